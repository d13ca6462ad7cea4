"""JSON Web Token authentication in front of any WSGI application.

.. code-block:: python

    from jwt_wsgi import JWTMiddleware

    app = JWTMiddleware(app, secret=os.environ["JWT_WSGI_SECRET"], protect=["/api"],
                        users_file="users.json")
"""

from .errors import (
    AuthError,
    ConfigurationError,
    ExpiredToken,
    InsufficientScope,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    RevokedToken,
    StoreUnavailable,
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
    "AuthError",
    "ConfigurationError",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidRequest",
    "InvalidToken",
    "MissingToken",
    "RevokedToken",
    "StoreUnavailable",
    "__version__",
]
