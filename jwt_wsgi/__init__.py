"""JSON Web Token authentication in front of any WSGI application.

.. code-block:: python

    from jwt_wsgi import JWTMiddleware

    app = JWTMiddleware(app, secret=os.environ["JWT_WSGI_SECRET"], protect=["/api"],
                        users_file="users.json")
"""

from .errors import (
    AuthError,
    BadRequest,
    ClientError,
    ConfigurationError,
    ExpiredToken,
    Forbidden,
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
    ServerError,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    Unauthenticated,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedMediaType,
    UnsupportedTokenType,
)
from .middleware import JWTMiddleware
from .settings import Settings
from .views import get_claims, requires

__version__ = "0.1.0"

__all__ = [
    "JWTMiddleware",
    "Settings",
    "get_claims",
    "requires",
    # the error tree (jwt_wsgi.errors)
    "AuthError",
    "ClientError",
    "Unauthenticated",
    "MissingToken",
    "InvalidToken",
    "ExpiredToken",
    "RevokedToken",
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
