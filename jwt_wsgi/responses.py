"""The only code that builds responses the middleware originates.

Error bodies are fixed per error class and format, so they are rendered once and reused;
``WWW-Authenticate`` follows RFC 6750 §3 on every 400/401/403 the middleware sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from .errors import AuthError, InsufficientScope, InvalidToken, MissingToken

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
StartResponse = Callable[..., Any]

# The article's shapes, word for word (its spelling included): "2" when no token was sent, "1" for
# a token that is expired or otherwise unusable, "3" for any other failure, "0" for success.
ARTICLE_TOKEN_REQUIRED = {"error": "2", "message": "Token required"}
ARTICLE_EXPIRED = {"error": "1", "message": "Token has expired"}
ARTICLE_INVALID = {"error": "1", "message": "Invalid Token"}
ARTICLE_FAILURE = {"error": "3", "message": "An error occured"}


def article_body(error: AuthError) -> dict[str, str]:
    """The article's body for ``error``; the status code and headers stay ours."""
    if isinstance(error, MissingToken):
        return dict(ARTICLE_TOKEN_REQUIRED)
    if isinstance(error, InvalidToken):
        return dict(ARTICLE_EXPIRED if error.code == "token_expired" else ARTICLE_INVALID)
    return dict(ARTICLE_FAILURE)


def article_login(tokens: Mapping[str, Any]) -> dict[str, Any]:
    """The article's login answer built from the OAuth 2.0 token response ``tokens``.

    ``Elapse_time`` is the access token's lifetime in seconds (``expires_in``). A refresh token,
    which the article never had, is kept when one was issued so the refresh endpoint stays usable.
    """
    body: dict[str, Any] = {"error": "0", "message": "Successful", "token": tokens["access_token"],
                            "Elapse_time": tokens["expires_in"]}
    if "refresh_token" in tokens:
        body["refresh_token"] = tokens["refresh_token"]
    return body

NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))


def status_line(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def json_bytes(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def json_response(
    start_response: StartResponse, status: int, data: Any, headers: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    """Send ``data`` as a JSON body; returns the WSGI iterable."""
    body = json_bytes(data)
    start_response(
        status_line(status),
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_GENERIC_500 = b'{"error":"internal_error","message":"Internal server error"}'
_CUSTOM_FAILED = (
    "500 Internal Server Error",
    [("Content-Type", "application/json"), ("Content-Length", str(len(_GENERIC_500))), *NO_STORE],
    _GENERIC_500,
)


@dataclass(frozen=True)
class ErrorResponse:
    """A whole error response, as an ``error_format`` callable may return it.

    .. code-block:: python

        def my_errors(error: jwt_wsgi.AuthError) -> ErrorResponse:
            if isinstance(error, jwt_wsgi.InsufficientScope):
                return ErrorResponse(404, {"detail": "Not found"})   # hide what exists
            return ErrorResponse(error.status, {"detail": error.message, "code": error.code},
                                 headers={"X-Error-Code": error.code})

    A tuple works too, in Flask's order: ``(body, status)`` or ``(body, status, headers)``; a
    mapping alone is the body, with the error's own status and headers (as before).

    :param status: the HTTP status (100-599).
    :param body: JSON-serialisable data (sent as JSON), ``str`` (UTF-8 text) or ``bytes`` (as is).
    :param headers: a mapping or (name, value) pairs. ``Content-Type`` is chosen from the body
        unless given; ``Content-Length`` is always computed. A 401 or 403 without a
        ``WWW-Authenticate`` gets the middleware's RFC 6750 challenge for the error, and the
        error's own headers (``Retry-After``, ``Allow``) and ``Cache-Control: no-store`` are kept
        unless you set the same names.
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = ()


class ErrorRenderer:
    """Turns an :class:`AuthError` into status, headers and body in the configured format.

    :param error_format: ``json``, ``problem`` (RFC 9457), ``article`` or a callable taking the
        error and returning a JSON-serialisable mapping (the body; status and headers stay
        ours), an :class:`ErrorResponse`, or a tuple ``(body, status[, headers])``.
    :param realm: the ``realm`` of ``WWW-Authenticate``.
    """

    def __init__(self, error_format: str | Callable[[AuthError], Any], realm: str) -> None:
        self.format = error_format
        self.realm = realm
        self._cache: dict[tuple[Any, ...], tuple[str, Headers, bytes]] = {}

    def body(self, error: AuthError) -> tuple[str, Any]:
        """(content type, JSON-serialisable body) for ``error`` in a named format."""
        if self.format == "problem":
            problem: dict[str, Any] = {
                "type": "about:blank",
                "title": HTTPStatus(error.status).phrase,
                "status": error.status,
                "detail": error.message,
                "code": error.code,
            }
            if error.rfc6749:
                # OAuth 2.0 clients read the RFC 6749 §5.2 code from "error": an extension member.
                problem["error"] = error.rfc6749
            return "application/problem+json", problem
        if self.format == "article":
            return "application/json", article_body(error)
        return "application/json", {"error": error.code, "message": error.message}

    def challenge(self, error: AuthError) -> str:
        parts = [f'Bearer realm="{_quote(self.realm)}"']
        if error.rfc6750:
            parts.append(f'error="{error.rfc6750}"')
            parts.append(f'error_description="{_quote(error.message)}"')
        if isinstance(error, InsufficientScope) and error.scopes:
            parts.append(f'scope="{_quote(" ".join(error.scopes))}"')
        return ", ".join(parts)

    def render(self, error: AuthError) -> tuple[str, Headers, bytes]:
        """(status line, headers, body) for ``error``; never raises.

        A custom ``error_format`` that fails (raises, or returns something that is not a
        response shape) gets a generic 500, its traceback logged.
        """
        if callable(self.format):
            try:
                return self._custom(error, self.format(error))
            except Exception:
                log.exception("the error_format callable failed; answering a generic 500")
                return _CUSTOM_FAILED[0], list(_CUSTOM_FAILED[1]), _CUSTOM_FAILED[2]
        scopes = error.scopes if isinstance(error, InsufficientScope) else ()
        key = (type(error), error.message, error.headers, scopes)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        content_type, data = self.body(error)
        body = json_bytes(data)
        headers: Headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if error.challenge:
            headers.append(("WWW-Authenticate", self.challenge(error)))
        headers.extend(NO_STORE)
        headers.extend(error.headers)
        rendered = (status_line(error.status), headers, body)
        if len(self._cache) < 256:
            self._cache[key] = rendered
        return rendered

    def _custom(self, error: AuthError, result: Any) -> tuple[str, Headers, bytes]:
        """What a custom ``error_format`` returned, as a response with a correct challenge."""
        if isinstance(result, Mapping):
            result = ErrorResponse(error.status, dict(result))
        elif isinstance(result, tuple) and len(result) in (2, 3):
            result = ErrorResponse(result[1], result[0], result[2] if len(result) == 3 else ())
        if not isinstance(result, ErrorResponse):
            raise TypeError(f"error_format returned {type(result).__name__}: return a mapping (the body), "
                            "an ErrorResponse, or (body, status[, headers])")
        status = result.status
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError(f"error_format returned the status {status!r}")
        given = result.headers.items() if isinstance(result.headers, Mapping) else result.headers
        headers: Headers = []
        for name, value in given:
            if not isinstance(name, str) or not isinstance(value, str) or any(c in name + value for c in "\r\n\0"):
                raise ValueError("error_format returned a header that is not a pair of one-line strings")
            if name.lower() != "content-length":
                headers.append((name, value))
        names = {name.lower() for name, _ in headers}
        if isinstance(result.body, bytes):
            body, content_type = result.body, "application/octet-stream"
        elif isinstance(result.body, str):
            body, content_type = result.body.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            body, content_type = json_bytes(result.body), "application/json"
        if "content-type" not in names:
            headers.insert(0, ("Content-Type", content_type))
        headers.insert(1, ("Content-Length", str(len(body))))
        # A 401 must carry a challenge (RFC 9110 §15.5.2) and RFC 6750 says which; a 403 for a
        # scope names it (§3.1). The error knows both, whatever the callable made of the body.
        if "www-authenticate" not in names and (status == 401 or (error.challenge and status in (403, error.status))):
            headers.append(("WWW-Authenticate", self.challenge(error)))
        for name, value in (*NO_STORE, *error.headers):
            if name.lower() not in names:
                headers.append((name, value))
        return status_line(status), headers, body

    def respond(self, error: AuthError, start_response: StartResponse) -> list[bytes]:
        status, headers, body = self.render(error)
        start_response(status, list(headers))
        return [body]
