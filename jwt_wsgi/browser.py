"""Browser sign-in: the login page, token cookies, CSRF protection and safe redirects.

Active when ``cookie`` is among ``token_sources``. API clients are never redirected: only a
request whose ``Accept`` prefers ``text/html`` over JSON gets a page or a ``303``.

Security, in the second person: cookies are sent by the browser on its own, so a cookie-borne
token must not let another site act for your user. Every unsafe request (anything but GET, HEAD,
OPTIONS) authenticated by the cookie must carry the token's ``csrf`` value in the ``X-CSRF-Token``
header or a ``csrf_token`` form field (double submit, as Flask-JWT-Extended does), and an
``Origin`` or ``Referer`` it sends must be this origin. The login form carries its own CSRF token
(login CSRF). ``next`` may only name a path on this site.
"""

from __future__ import annotations

import hmac
import html
import secrets
import string
import unicodedata
from collections.abc import Mapping
from importlib import resources
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .errors import ConfigurationError
from .errors import CSRFFailed as CSRFFailed  # its home is errors.py; this import path stays
from .http import cookie_value as cookie_value
from .http import form_field, set_cookie
from .http import wants_html as wants_html
from .settings import Settings
from .settings.loading import is_template_text

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "HTTP_X_CSRF_TOKEN"
CSRF_FIELD = "csrf_token"
LOGIN_CSRF_COOKIE = "login_csrf"
CSRF_COOKIE = "csrf_token"
REFRESH_COOKIE = "refresh_token"


def origin_of(environ: Mapping[str, Any]) -> str:
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}".lower()


def same_origin(environ: Mapping[str, Any]) -> bool:
    """``Origin`` (or else ``Referer``), when the browser sends one, must be this site."""
    origin = environ.get("HTTP_ORIGIN")
    if origin is not None:
        return bool(origin.lower() == origin_of(environ))
    referer = environ.get("HTTP_REFERER")
    if referer:
        parts = urlsplit(referer)
        return f"{parts.scheme}://{parts.netloc}".lower() == origin_of(environ)
    return True


# Printable ASCII but the space: left as they are when a path is percent-encoded for a header.
_ASCII_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site, else ``default``; always ASCII, as a ``Location``
    header must be (RFC 9110 §5.5): other characters are percent-encoded as UTF-8 (``/Ā`` ->
    ``/%C4%80``), so the answer that carries it can always be sent.

    Security: a path on this site starts with exactly one ``/`` and names no scheme or host —
    as given, once percent-decoded, and after NFKC normalisation of both, since a browser or a
    proxy may fold ``／`` (fullwidth solidus) into ``/`` or ``﹨`` into a backslash. A backslash, a
    space, a control character, a line or paragraph separator, a bidi override or any other
    unprintable character refuses the whole value.
    """
    if not value or len(value) > 2048:
        return default
    decoded = unquote(value)
    for spelling in (value, decoded):
        for candidate in (spelling, unicodedata.normalize("NFKC", spelling)):
            if not candidate.startswith("/") or candidate.startswith("//"):
                return default
            if "\\" in candidate or " " in candidate or not candidate.isprintable():
                return default
            parts = urlsplit(candidate)
            if parts.scheme or parts.netloc:
                return default
    return quote(value, safe=_ASCII_SAFE)


def csrf_ok(environ: dict[str, Any], claims: Mapping[str, Any], cap: int,
            fields: Mapping[str, Any] | None = None) -> bool:
    """The double-submit and origin checks for a cookie-authenticated unsafe request.

    :param fields: the body's fields when the caller already parsed it (else it is read here).
    """
    if not same_origin(environ):
        return False
    expected = claims.get("csrf")
    if not isinstance(expected, str) or not expected:
        return False
    given = environ.get(CSRF_HEADER) or (fields.get(CSRF_FIELD) if fields is not None
                                         else form_field(environ, cap, CSRF_FIELD))
    # A JSON body can carry a lone surrogate: compared as it is, never a UnicodeEncodeError.
    return isinstance(given, str) and hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


class Cookies:
    """Builds ``Set-Cookie`` values with one set of attributes for setting and clearing."""

    def __init__(self, settings: Settings, secure: bool) -> None:
        self.secure = secure
        self.samesite = settings.cookie_samesite
        base = settings.cookie_name
        self.access = ("__Host-" if secure else "") + base
        self.csrf = ("__Host-" if secure else "") + CSRF_COOKIE
        self.refresh = ("__Secure-" if secure else "") + REFRESH_COOKIE
        self.login_csrf = ("__Host-" if secure else "") + LOGIN_CSRF_COOKIE
        self.refresh_path = settings.refresh_path or "/"
        self.login_path = settings.login_path or "/"

    def _cookie(self, name: str, value: str, *, path: str, max_age: int, http_only: bool = True,
                samesite: str | None = None) -> tuple[str, str]:
        return set_cookie(name, value, path=path, max_age=max_age, secure=self.secure,
                          samesite=samesite or self.samesite, http_only=http_only)

    def session(
        self, access: str, access_ttl: int, csrf: str, refresh: str | None, refresh_ttl: int
    ) -> list[tuple[str, str]]:
        headers = [
            self._cookie(self.access, access, path="/", max_age=access_ttl),
            # Readable by the page's scripts, so they can echo it in X-CSRF-Token. It lives as long
            # as the refresh token: its presence tells the middleware a silent refresh may work.
            self._cookie(self.csrf, csrf, path="/", max_age=refresh_ttl if refresh else access_ttl, http_only=False),
        ]
        if refresh is not None:
            headers.append(self._cookie(self.refresh, refresh, path=self.refresh_path, max_age=refresh_ttl,
                                        samesite="Strict"))
        return headers

    def clear(self) -> list[tuple[str, str]]:
        return [
            self._cookie(self.access, "", path="/", max_age=0),
            self._cookie(self.csrf, "", path="/", max_age=0, http_only=False),
            self._cookie(self.refresh, "", path=self.refresh_path, max_age=0, samesite="Strict"),
        ]

    def login_form(self, token: str, max_age: int = 3600) -> tuple[str, str]:
        return self._cookie(self.login_csrf, token, path=self.login_path, max_age=max_age, samesite="Strict")


DEFAULT_TEMPLATE = "login.html"


class LoginPage:
    """The sign-in page: ``string.Template`` with ``$title``, ``$action``, ``$next``, ``$csrf``,
    ``$username``, ``$error`` (each HTML-escaped, ``$error`` a whole ``<p>`` or empty).

    :param template: your own template — its text, or the path of a file holding it — or ``None``
        for the built-in one. It must post to ``$action`` with hidden fields ``csrf_token`` =
        ``$csrf`` and ``next`` = ``$next``.
    """

    def __init__(self, template: str | None, action: str) -> None:
        if not template:
            text = resources.files("jwt_wsgi").joinpath(DEFAULT_TEMPLATE).read_text(encoding="utf-8")
        elif is_template_text(template):
            text = template  # the template itself
        else:
            try:
                with open(template, encoding="utf-8") as fh:
                    text = fh.read()
            except OSError as exc:
                raise ConfigurationError("login_template", f"cannot read {template!r}: {exc.strerror}") from None
        self.template = string.Template(text)
        try:
            self.template.substitute(title="", action="", next="", csrf="", username="", error="")
        except (KeyError, ValueError) as exc:
            raise ConfigurationError("login_template", f"unknown or malformed placeholder: {exc}") from None
        for needed in ("$csrf", "$action"):
            if needed not in text and "${" + needed[1:] + "}" not in text:
                raise ConfigurationError(
                    "login_template", f"the form needs {needed} (sign-in is refused without the CSRF field)"
                )
        self.action = action

    def render(self, *, next_path: str, csrf: str, username: str = "", error: str = "") -> bytes:
        esc = html.escape
        return self.template.substitute(
            title="Sign in",
            action=esc(self.action),
            next=esc(next_path),
            csrf=esc(csrf),
            username=esc(username),
            error=f'<p class="error" role="alert">{esc(error)}</p>' if error else "",
        ).encode("utf-8")


def login_redirect(login_path: str, environ: Mapping[str, Any]) -> str:
    """``login_path?next=<the path asked for>`` (relative, so it stays on this site)."""
    target = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/"
    target = quote(target.encode("latin-1", "replace"), safe="/")
    if environ.get("QUERY_STRING"):
        # PEP 3333: the query's bytes as Latin-1 characters; those over 0x7F are percent-encoded.
        target += "?" + quote(environ["QUERY_STRING"].encode("latin-1", "replace"), safe=_ASCII_SAFE)
    return f"{login_path}?next={quote(safe_next(target), safe='')}"
