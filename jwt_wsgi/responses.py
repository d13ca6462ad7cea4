"""The only code that builds responses the middleware originates.

Error bodies are fixed per error class and format, so they are rendered once and reused;
``WWW-Authenticate`` follows RFC 6750 §3 on every 400/401/403 the middleware sends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
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


class ErrorRenderer:
    """Turns an :class:`AuthError` into status, headers and body in the configured format.

    :param error_format: ``json``, ``problem`` (RFC 9457), ``article`` or a callable taking the
        error and returning a JSON-serialisable mapping (status and headers stay ours).
    :param realm: the ``realm`` of ``WWW-Authenticate``.
    """

    def __init__(self, error_format: str | Callable[[AuthError], Mapping[str, Any]], realm: str) -> None:
        self.format = error_format
        self.realm = realm
        self._cache: dict[tuple[Any, ...], tuple[str, Headers, bytes]] = {}

    def body(self, error: AuthError) -> tuple[str, Any]:
        """(content type, JSON-serialisable body) for ``error``."""
        if callable(self.format):
            return "application/json", dict(self.format(error))
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
        if not callable(self.format) and len(self._cache) < 256:
            self._cache[key] = rendered
        return rendered

    def respond(self, error: AuthError, start_response: StartResponse) -> list[bytes]:
        status, headers, body = self.render(error)
        start_response(status, list(headers))
        return [body]
