"""Flask wiring: wrap ``app.wsgi_app`` and answer :func:`jwt_wsgi.requires` errors.

.. code-block:: python

    from flask import Flask
    from jwt_wsgi.contrib.flask import protect, current_claims, requires

    app = Flask(__name__)
    protect(app, secret=os.environ["JWT_WSGI_SECRET"], protect=["/api"], users_file="users.json")

    @app.get("/api/me")
    def me():
        return {"user": current_claims()["sub"]}

    @app.get("/api/admin")
    @requires("admin")
    def admin(): ...
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from ..errors import AuthError
from ..middleware import JWTMiddleware
from ..settings import Settings
from ..views import get_claims, get_user, render_error, requires

__all__ = ["protect", "init_app", "current_claims", "current_user", "requires"]


def init_app(app: Flask) -> None:
    """Answer an :class:`AuthError` raised in a view in the middleware's format.

    :func:`requires` needs no glue (it answers Flask's way by itself); this handler is for the
    errors your own code raises (``raise InsufficientScope(("admin",))``).
    """

    def handle(error: AuthError) -> Response:
        status, headers, body = render_error(request.environ, error)
        return Response(body, status=status, headers=headers)

    app.register_error_handler(AuthError, handle)


def protect(app: Flask, settings: Settings | None = None, **options: Any) -> JWTMiddleware:
    """Put a :class:`JWTMiddleware` in front of ``app`` (``app.wsgi_app``) and call :func:`init_app`."""
    middleware = JWTMiddleware(app.wsgi_app, settings, **options)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    init_app(app)
    return middleware


def current_claims() -> dict[str, Any] | None:
    """The verified claims of the current request, or ``None``."""
    return get_claims(request.environ)


def current_user() -> Any:
    """The caller: what the ``user_loader`` option returned for the token, or ``None``.

    Without a ``user_loader``, the ``sub`` claim (a string), as before ``user_loader`` existed.
    See :func:`jwt_wsgi.get_user`.
    """
    return get_user(request.environ)
