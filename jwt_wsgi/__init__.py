"""JSON Web Token authentication in front of any WSGI application.

.. code-block:: python

    from jwt_wsgi import JWTMiddleware

    app = JWTMiddleware(app, secret=os.environ["JWT_WSGI_SECRET"], protect=["/api"],
                        users_file="users.json")
"""

from ._version import __version__
from .errors import (
    AuthError,
    BadRequest,
    CheckFailed,
    ClientError,
    ConfigurationError,
    CSRFFailed,
    ExpiredToken,
    Forbidden,
    FreshTokenRequired,
    InsufficientScope,
    InternalError,
    InvalidCredentials,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    LengthRequired,
    MethodNotAllowed,
    MissingToken,
    PayloadTooLarge,
    RevokedToken,
    RoleRequired,
    ServerError,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    Unauthenticated,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedMediaType,
    UnsupportedTokenType,
    UserNotFound,
)
from .middleware import JWTMiddleware
from .responses import ErrorResponse
from .settings import Settings
from .views import get_claims, get_user, requires

__all__ = [
    "JWTMiddleware",
    "Settings",
    "get_claims",
    "get_user",
    "requires",
    "ErrorResponse",
    # the error tree (jwt_wsgi.errors)
    "AuthError",
    "ClientError",
    "Unauthenticated",
    "MissingToken",
    "InvalidToken",
    "ExpiredToken",
    "RevokedToken",
    "UserNotFound",
    "FreshTokenRequired",
    "InvalidGrant",
    "InvalidCredentials",
    "InvalidRequest",
    "BadRequest",
    "UnsupportedGrantType",
    "UnsupportedTokenType",
    "UnauthorizedClient",
    "InvalidScope",
    "Forbidden",
    "InsufficientScope",
    "CSRFFailed",
    "RoleRequired",
    "CheckFailed",
    "MethodNotAllowed",
    "LengthRequired",
    "PayloadTooLarge",
    "UnsupportedMediaType",
    "TooManyRequests",
    "ServerError",
    "InternalError",
    "ServiceUnavailable",
    "StoreUnavailable",
    "ConfigurationError",
    "__version__",
]
