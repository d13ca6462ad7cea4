"""The HTTP layer: everything the middleware reads from a request, and the cookies it sets.

One implementation for the endpoints, the browser flow and the middleware. Werkzeug parses what
it parses as strictly as the contract asks: ``Accept`` negotiation, ``Content-Type`` and its
parameters, ``Set-Cookie``. The rest is parsed here by hand, because the contract is stricter
than Werkzeug or WebOb (both verified on the pinned versions):

- cookies: a name sent twice must be seen, not resolved (both libraries keep one value silently,
  so a cookie planted by a sibling subdomain could shadow ours); and with a cookie token source
  this runs on every request, where a split costs a fraction of Werkzeug's ``parse_cookie``.
- bodies: ``Content-Length`` must be a number (Werkzeug reads a bad one as 0), the cap applies
  before anything is read, chunked bodies included, and a chunked body the server did not hand
  over is a 411, not an empty form.
- forms: UTF-8, every pair with ``=`` (Werkzeug keeps ``%FF`` and a bare ``junk``), and a field
  the middleware reads must appear once.
- JSON: only as ``application/json`` (``text/plain`` is what another site's form can send), no
  duplicate keys, no ``NaN``, finite numbers.

The one rule for repeated form fields (and JSON keys): a field the middleware reads that appears
more than once is refused, whatever the values, rather than resolved. An endpoint reads its whole
body, so there any repeated field is a 400; in an application's form only ``csrf_token`` is ours,
so a repeated one fails the CSRF check while the application's own repeated fields (checkboxes)
are its business.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import parse_qsl

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import dump_cookie, parse_accept_header, parse_options_header

from .errors import AuthError, BadRequest, InvalidRequest, LengthRequired, PayloadTooLarge, UnsupportedMediaType

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_UTF8 = frozenset({"", "utf-8", "utf8"})
#: Fields an endpoint's form may have (a token request has six at most).
_MAX_ENDPOINT_FIELDS = 16
#: Fields of an application's form searched for its CSRF token.
_MAX_APP_FIELDS = 100


# -- cookies and the query string --------------------------------------------------------------
def cookie_values(header: str, name: str) -> list[str]:
    """Every value of cookie ``name`` in a ``Cookie`` header, in order: a name sent twice gives two."""
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            values.append(value.strip().strip('"'))
    return values


def cookie_value(environ: Mapping[str, Any], name: str) -> str | None:
    """The one value of cookie ``name``, or ``None`` (absent, or sent twice with different values)."""
    values = set(cookie_values(environ.get("HTTP_COOKIE", ""), name))
    return values.pop() if len(values) == 1 else None


def query_values(query: str, name: str) -> list[str]:
    """Every value of parameter ``name`` in a query string.

    :raises InvalidRequest: the query has more than 100 parameters.
    """
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        raise InvalidRequest("The query string is malformed") from None
    return [value for key, value in pairs if key == name]


def query_value(environ: Mapping[str, Any], name: str) -> str | None:
    """The one value of query parameter ``name``; ``None`` when absent, repeated or unparseable
    (a page falls back to its default rather than failing on someone's query)."""
    try:
        values = query_values(environ.get("QUERY_STRING", ""), name)
    except InvalidRequest:
        return None
    return values[0] if len(values) == 1 else None


# -- headers ------------------------------------------------------------------------------------
def wants_html(environ: Mapping[str, Any]) -> bool:
    """True when ``Accept`` prefers HTML to JSON (a browser navigating); ties (``*/*``) go to JSON.

    The quality of each type is that of the most specific range naming it (RFC 9110 §12.5.1). A
    range that names no ``html`` (``text/*``, ``*/*``) never asks for a page: API clients send those.
    """
    accept = environ.get("HTTP_ACCEPT")
    if not accept or "html" not in accept:
        return False
    ranges = parse_accept_header(accept, MIMEAccept)
    return bool(ranges.quality("text/html") > ranges.quality(JSON))


def media_type(environ: Mapping[str, Any]) -> tuple[str, str]:
    """(the body's media type, its ``charset`` parameter), both lower case; ``""`` for either when absent.

    A ``charset`` that Werkzeug cannot read (``charset = utf-16``, an open quote) is ``"?"``, so
    that it is refused rather than taken for the default.
    """
    header = environ.get("CONTENT_TYPE") or ""
    mime, params = parse_options_header(header)
    charset = params.get("charset") or ("?" if "charset" in header.lower() else "")
    return mime.lower(), charset.lower()


def set_cookie(name: str, value: str, *, path: str, max_age: int, secure: bool, samesite: str,
               http_only: bool = True) -> tuple[str, str]:
    """A ``Set-Cookie`` header. ``Max-Age`` only: no ``Expires``, which would read the wall clock."""
    return ("Set-Cookie", dump_cookie(name, value, max_age=max_age, path=path, secure=secure, httponly=http_only,
                                      samesite=samesite, sync_expires=False, max_size=0))


# -- bodies ---------------------------------------------------------------------------------------
def read_body(environ: Mapping[str, Any], cap: int) -> bytes:
    """At most ``cap`` bytes of the request body; :class:`PayloadTooLarge` beyond that.

    :raises BadRequest: ``Content-Length`` is not a number.
    :raises LengthRequired: a chunked body the server did not hand over.
    """
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length.strip():
        try:
            size = int(length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size < 0:
            raise BadRequest("Content-Length is not a number")
        if size > cap:
            raise PayloadTooLarge()
        data: bytes = stream.read(size) if size else b""
        return data
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not environ.get("wsgi.input_terminated"):
        # PEP 3333 lets an application read only CONTENT_LENGTH bytes; a server that neither
        # passes a length nor promises an end (uWSGI's HTTP router hands such a body over as
        # empty) has not given us the body. Say so, rather than blame an empty field.
        raise LengthRequired()
    if environ.get("wsgi.input_terminated"):
        data = stream.read(cap + 1)
        if len(data) > cap:
            raise PayloadTooLarge()
        return data
    return b""


def single_fields(pairs: list[tuple[str, Any]], read: Collection[str] | None = None) -> dict[str, Any]:
    """``pairs`` as a mapping; a name in ``read`` (``None``: every name) given twice is refused.

    :raises BadRequest: a repeated field.
    """
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result and (read is None or key in read):
            raise BadRequest("A field or key appears more than once")
        result[key] = value
    return result


def form_pairs(body: bytes, max_fields: int = _MAX_ENDPOINT_FIELDS) -> list[tuple[str, str]]:
    """The pairs of an urlencoded body: UTF-8, every pair with ``=``.

    Empty pairs (``a=1&``, ``a=1&&b=2``) are harmless and some clients send them (WHATWG URL
    parsing skips them too), so they are skipped.

    :raises BadRequest: not UTF-8 (also once percent-decoded), a pair without ``=``, too many fields.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8") from None
    text = "&".join(pair for pair in text.split("&") if pair)
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=max_fields,
                         errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The form is malformed") from None


def _reject_constant(name: str) -> Any:
    raise BadRequest("NaN and Infinity are not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest("Number out of range")
    return value


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON object body: UTF-8, no duplicate keys, no ``NaN``, finite numbers.

    :raises BadRequest: anything else.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8") from None
    try:
        data = json.loads(text, object_pairs_hook=single_fields, parse_constant=_reject_constant,
                          parse_float=_finite_float)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and integers over Python's digit limit.
        raise BadRequest("The body is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object")
    return data


def parse_fields(environ: Mapping[str, Any], cap: int, *, allow_empty: bool = False) -> dict[str, Any]:
    """The fields of an endpoint's body: a JSON object or an urlencoded form, in UTF-8.

    :param allow_empty: an empty body (no content type needed) yields ``{}``.
    :raises AuthError: 400, 411, 413 or 415 with a fixed message.
    """
    body = read_body(environ, cap)
    if not body and allow_empty:
        return {}
    mime, charset = media_type(environ)
    if charset not in _UTF8 or mime not in (JSON, FORM):
        raise UnsupportedMediaType()
    if mime == JSON:
        return json_object(body)
    return single_fields(form_pairs(body))


def form_field(environ: dict[str, Any], cap: int, name: str) -> str | None:
    """Field ``name`` of an application's urlencoded body, which stays readable for the application.

    ``None`` when the field is absent or repeated, or the body is not a form this layer reads:
    another content type, no ``Content-Length`` (chunked), over ``cap``, or malformed.
    """
    mime, charset = media_type(environ)
    if mime != FORM or charset not in _UTF8 or not str(environ.get("CONTENT_LENGTH") or "").strip():
        return None
    try:
        body = read_body(environ, cap)  # refuses a bad or oversized length before reading
        environ["wsgi.input"] = io.BytesIO(body)
        value = single_fields(form_pairs(body, _MAX_APP_FIELDS), (name,)).get(name)
    except AuthError:
        return None
    return value if isinstance(value, str) else None
