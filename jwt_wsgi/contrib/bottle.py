"""Bottle wiring: a plugin that answers :func:`jwt_wsgi.requires` errors, and claim helpers.

.. code-block:: python

    import bottle
    from jwt_wsgi.contrib.bottle import JWTPlugin, current_claims, requires

    app = bottle.Bottle()
    app.install(JWTPlugin())

    @app.get("/api/me")
    def me():
        return {"user": current_claims()["sub"]}

    application = JWTMiddleware(app, secret=..., protect=["/api"])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import bottle

from ..errors import AuthError
from ..views import get_claims, get_user, render_error, requires

__all__ = ["JWTPlugin", "current_claims", "current_user", "requires"]


class JWTPlugin:
    """Turns an :class:`AuthError` raised by a route callback into an HTTP response.

    :func:`requires` needs no plugin (it raises ``bottle.HTTPResponse`` by itself); this is for
    the errors your own code raises.
    """

    name = "jwt_wsgi"
    api = 2

    def apply(self, callback: Callable[..., Any], route: Any) -> Callable[..., Any]:
        @functools.wraps(callback)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return callback(*args, **kwargs)
            except AuthError as error:
                status, headers, body = render_error(bottle.request.environ, error)
                response = bottle.HTTPResponse(body=body, status=status)
                for name, value in headers:
                    response.set_header(name, value)
                return response

        return wrapper


def current_claims() -> dict[str, Any] | None:
    """The verified claims of the current request, or ``None``."""
    return get_claims(bottle.request.environ)


def current_user() -> Any:
    """The caller: what the ``user_loader`` option returned for the token, or ``None``.

    Without a ``user_loader``, the ``sub`` claim (a string), as before ``user_loader`` existed.
    See :func:`jwt_wsgi.get_user`.
    """
    return get_user(bottle.request.environ)
