"""Every error jwt_wsgi answers with, and the configuration error it raises at construction.

An :class:`AuthError` knows its HTTP status, its stable machine code (the ``error`` member of
the JSON body), a fixed human message, and, for 400/401/403, its RFC 6750 error code. Messages
are fixed strings: no exception text, token or header value is ever echoed to a client.
"""

from __future__ import annotations

from typing import ClassVar


class ConfigurationError(ValueError):
    """An option is missing, unknown or wrong. Raised when the middleware is built.

    :param option: the option's public name.
    :param message: what is wrong and how to fix it.
    """

    def __init__(self, option: str, message: str) -> None:
        self.option = option
        self.message = message
        super().__init__(f"{option}: {message}")


class StoreUnavailable(RuntimeError):
    """The shared store (SQLite, Redis) cannot be reached or did not answer in time."""


class AuthError(Exception):
    """Base of every error the middleware answers itself.

    Subclasses set ``status``, ``code`` (stable, machine-readable), ``message`` (fixed text)
    and ``rfc6750`` (the ``error=`` of ``WWW-Authenticate``, or ``None``).
    """

    status: ClassVar[int] = 401
    code: ClassVar[str] = "unauthorized"
    message: ClassVar[str] = "Authentication required"
    rfc6750: ClassVar[str | None] = None
    challenge: ClassVar[bool] = True  # send WWW-Authenticate

    def __init__(self, message: str | None = None, *, headers: tuple[tuple[str, str], ...] = ()) -> None:
        if message is not None:
            self.message = message  # type: ignore[misc]
        self.headers = headers
        super().__init__(self.message)


# -- token errors (RFC 6750 §3.1) -----------------------------------------------------------
class MissingToken(AuthError):
    code = "missing_token"
    message = "Authentication required"


class InvalidToken(AuthError):
    code = "invalid_token"
    message = "The token is invalid"
    rfc6750 = "invalid_token"


class ExpiredToken(InvalidToken):
    code = "token_expired"
    message = "The token has expired"


class RevokedToken(InvalidToken):
    code = "token_revoked"
    message = "The token has been revoked"


class InvalidRequest(AuthError):
    status = 400
    code = "invalid_request"
    message = "The request is malformed"
    rfc6750 = "invalid_request"


class InsufficientScope(AuthError):
    status = 403
    code = "insufficient_scope"
    message = "The token does not grant the required scope"
    rfc6750 = "insufficient_scope"

    def __init__(self, scopes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.scopes = scopes


# -- endpoint errors ------------------------------------------------------------------------
class InvalidCredentials(AuthError):
    code = "invalid_credentials"
    message = "Invalid username or password"


class BadRequest(AuthError):
    status = 400
    code = "bad_request"
    message = "The request body is malformed"
    challenge = False


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large"


class UnsupportedMediaType(BadRequest):
    status = 415
    code = "unsupported_media_type"
    message = "Send application/json or application/x-www-form-urlencoded"


class MethodNotAllowed(BadRequest):
    status = 405
    code = "method_not_allowed"
    message = "Method not allowed"

    def __init__(self, allow: str) -> None:
        super().__init__(headers=(("Allow", allow),))


class TooManyRequests(BadRequest):
    status = 429
    code = "too_many_requests"
    message = "Too many attempts; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers=(("Retry-After", str(retry_after)),))
        self.retry_after = retry_after


class ServiceUnavailable(BadRequest):
    status = 503
    code = "service_unavailable"
    message = "Authentication is temporarily unavailable"

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__(headers=(("Retry-After", str(retry_after)),))


class InternalError(BadRequest):
    status = 500
    code = "internal_error"
    message = "Internal server error"
