"""Every error jwt_wsgi answers with, and the configuration error it raises at construction.

An :class:`AuthError` knows its HTTP status, its stable machine code (the ``error`` member of
the JSON body), a fixed human message, its RFC 6750 error code (``WWW-Authenticate``) and, for
the token endpoint, its RFC 6749 §5.2 code. Messages are fixed strings: no exception text, token
or header value is ever echoed to a client.

The tree says who is at fault, so that an ``except`` clause means what it reads::

    AuthError
    ├── ClientError                 4xx: the request is refused; sending it again will not help
    │   ├── Unauthenticated         401: no credentials, or credentials that are no good
    │   │   ├── MissingToken
    │   │   ├── InvalidToken  ──  ExpiredToken, RevokedToken,
    │   │   │                     UserNotFound, FreshTokenRequired   (the application's checks)
    │   │   └── InvalidGrant  ──  InvalidCredentials
    │   ├── InvalidRequest          400: the request is malformed
    │   │   └── BadRequest          (a malformed body or field)
    │   ├── UnsupportedGrantType, UnauthorizedClient, InvalidScope   400 (RFC 6749 §5.2)
    │   ├── UnsupportedTokenType    400 (RFC 7009 §2.2.1)
    │   ├── Forbidden               403  ──  InsufficientScope  ──  RoleRequired, CheckFailed
    │   │                                    CSRFFailed (the browser's double submit)
    │   ├── MethodNotAllowed 405, LengthRequired 411, PayloadTooLarge 413,
    │   │   UnsupportedMediaType 415, TooManyRequests 429
    └── ServerError                 5xx: our side failed; the same request may work later
        ├── InternalError           500
        └── ServiceUnavailable      503  ──  StoreUnavailable

Catch :class:`ClientError` for "the caller got something wrong" and :class:`ServerError` for
"tell the caller to try again"; never the other way round.
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


class AuthError(Exception):
    """Base of every error the middleware answers itself.

    Subclasses set ``status``, ``code`` (stable, machine-readable), ``message`` (fixed text),
    ``rfc6750`` (the ``error=`` of ``WWW-Authenticate``, or ``None``), ``rfc6749`` (the RFC 6749
    §5.2 code a token endpoint answers with, or ``None``) and ``challenge`` (send
    ``WWW-Authenticate``). Raise a subclass: the two branches, :class:`ClientError` and
    :class:`ServerError`, say whose fault the error is.
    """

    status: ClassVar[int] = 401
    code: ClassVar[str] = "unauthorized"
    message: ClassVar[str] = "Authentication required"
    rfc6750: ClassVar[str | None] = None
    rfc6749: ClassVar[str | None] = None
    challenge: ClassVar[bool] = True  # send WWW-Authenticate

    def __init__(self, message: str | None = None, *, headers: tuple[tuple[str, str], ...] = ()) -> None:
        if message is not None:
            self.message = message  # type: ignore[misc]
        self.headers = headers
        super().__init__(self.message)


# == client errors (4xx) ======================================================================
class ClientError(AuthError):
    """The request is refused because of what it carries (or lacks): a 4xx."""

    status = 400
    code = "client_error"
    message = "The request was refused"
    challenge = False


# -- 401: authentication ----------------------------------------------------------------------
class Unauthenticated(ClientError):
    """401: the request carries no credentials, or credentials that are no good."""

    status = 401
    code = "unauthorized"
    message = "Authentication required"
    challenge = True


class MissingToken(Unauthenticated):
    code = "missing_token"
    message = "Authentication required"


class InvalidToken(Unauthenticated):
    """The token is forged, malformed, expired, revoked or not for us (RFC 6750 §3.1)."""

    code = "invalid_token"
    message = "The token is invalid"
    rfc6750 = "invalid_token"


class ExpiredToken(InvalidToken):
    code = "token_expired"
    message = "The token has expired"


class RevokedToken(InvalidToken):
    code = "token_revoked"
    message = "The token has been revoked"


class UserNotFound(InvalidToken):
    """401: a valid token whose user the application does not know (any more).

    Raised when ``user_loader`` returns ``None`` (and by the Django glue for a subject without an
    active Django user): a deleted or deactivated user is refused before their token expires.
    """

    code = "user_not_found"
    message = "The token's user is unknown or inactive"


class FreshTokenRequired(InvalidToken):
    """401: the view needs a token from a password sign-in, and this one came from a refresh.

    ``requires(fresh=True)``: the client should ask for the password again (and get a token with
    ``"fresh": true``), not refresh.
    """

    code = "fresh_token_required"
    message = "This request needs a fresh token: sign in again"


class InvalidGrant(Unauthenticated):
    """The token endpoint refuses the grant: a refresh token spent, expired, revoked or forged.

    RFC 6749 §5.2 answers ``invalid_grant`` with ``400``; jwt_wsgi answers ``401`` because its
    contract fixes 401 for wrong credentials and one failed grant should look like another
    (OAuth 2.0 clients decide on the ``error`` member, not the status).
    """

    code = "invalid_grant"
    message = "The grant is invalid, expired or revoked"
    rfc6749 = "invalid_grant"


class InvalidCredentials(InvalidGrant):
    """Wrong user name or password: the same answer whether or not the user exists."""

    message = "Invalid username or password"


# -- 400: malformed requests ------------------------------------------------------------------
class InvalidRequest(ClientError):
    """400: the request is malformed (two tokens, ``Bearer`` without a token, a bad parameter)."""

    status = 400
    code = "invalid_request"
    message = "The request is malformed"
    rfc6750: ClassVar[str | None] = "invalid_request"
    rfc6749 = "invalid_request"
    challenge = True


class BadRequest(InvalidRequest):
    """400: a request body or one of its fields is malformed (no token is involved)."""

    message = "The request body is malformed"
    rfc6750 = None
    challenge = False


class UnsupportedGrantType(ClientError):
    """400: a ``grant_type`` this server does not know (RFC 6749 §5.2)."""

    code = "unsupported_grant_type"
    message = "The grant type is not supported"
    rfc6749 = "unsupported_grant_type"


class UnauthorizedClient(ClientError):
    """400: a grant only registered clients may use; this server has no clients (RFC 6749 §5.2)."""

    code = "unauthorized_client"
    message = "This grant type needs a registered client; none can use it here"
    rfc6749 = "unauthorized_client"


class UnsupportedTokenType(ClientError):
    """400: a valid token this server cannot revoke on its own (RFC 7009 §2.2.1), such as another
    issuer's token without ``jti``: refused rather than answered with a success that did nothing."""

    code = "unsupported_token_type"
    message = "This token carries no identifier (jti) to revoke it by"
    rfc6749 = "unsupported_token_type"


class InvalidScope(ClientError):
    """400: a requested scope that is malformed or wider than the grant (RFC 6749 §5.2)."""

    code = "invalid_scope"
    message = "The requested scope is invalid or exceeds the scope granted"
    rfc6749 = "invalid_scope"


# -- 403 and the rest of 4xx -------------------------------------------------------------------
class Forbidden(ClientError):
    """403: the caller is known but may not do this."""

    status = 403
    code = "forbidden"
    message = "Forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    message = "The token does not grant the required scope"
    rfc6750 = "insufficient_scope"
    challenge = True

    def __init__(self, scopes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.scopes = scopes


class RoleRequired(InsufficientScope):
    """403: the token carries none (or not all) of the roles a view requires."""

    message = "The token does not grant the required role"


class CheckFailed(InsufficientScope):
    """403: the application's own predicate on the claims (``requires(check=...)``) said no."""

    message = "The token does not allow this request"


class CSRFFailed(Forbidden):
    """403: a cookie-authenticated unsafe request without this site's CSRF token or origin."""

    code = "csrf_failed"
    message = "Cross-site request refused: the CSRF token or origin is missing or wrong"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"
    message = "Method not allowed"

    def __init__(self, allow: str) -> None:
        super().__init__(headers=(("Allow", allow),))


class LengthRequired(ClientError):
    """411: the body arrived without a length and the server could not hand it over whole."""

    status = 411
    code = "length_required"
    message = "The request body could not be read: send it with a Content-Length"


class PayloadTooLarge(ClientError):
    status = 413
    code = "payload_too_large"
    message = "The request body is too large"


class UnsupportedMediaType(ClientError):
    status = 415
    code = "unsupported_media_type"
    message = "Send application/json or application/x-www-form-urlencoded"


class TooManyRequests(ClientError):
    status = 429
    code = "too_many_requests"
    message = "Too many attempts; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers=(("Retry-After", str(retry_after)),))
        self.retry_after = retry_after


# == server errors (5xx) ======================================================================
class ServerError(AuthError):
    """Our side failed (a bug, a store or key set out of reach): a 5xx, never the caller's fault."""

    status = 500
    code = "server_error"
    message = "Internal server error"
    challenge = False


class InternalError(ServerError):
    code = "internal_error"
    message = "Internal server error"


class ServiceUnavailable(ServerError):
    """503 with ``Retry-After``: a dependency is out of reach for now."""

    status = 503
    code = "service_unavailable"
    message = "Authentication is temporarily unavailable"

    def __init__(self, retry_after: int = 5) -> None:
        super().__init__(headers=(("Retry-After", str(retry_after)),))
        self.retry_after = retry_after


class StoreUnavailable(ServiceUnavailable):
    """The shared store (SQLite, Redis) cannot be reached or did not answer in time.

    Raised by the stores with a detail for the log (``str(error)``, ``error.detail``); a client
    only ever sees the fixed 503 message of :class:`ServiceUnavailable`.

    :param detail: what failed, for operators.
    """

    def __init__(self, detail: str = "the store is unavailable") -> None:
        super().__init__()
        self.detail = detail
        self.args = (detail,)  # str(error) is the detail, for the log
