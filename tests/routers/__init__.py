"""One small application per real router, each behind :class:`~jwt_wsgi.JWTMiddleware`.

TEST-ONLY. Used by ``tests/test_router_differential.py`` in-process, and by gunicorn
(``tests.routers.flask_app:by_host``) for the wire rows.

Every application has the same routes, written the way each framework spells them:

- ``/api/users/<name>``  -> route ``users`` (one segment);
- ``/api/<path>``        -> route ``api`` (catch-all);
- ``/admin/<path>``      -> route ``admin`` (catch-all);
- ``/public`` and ``/public/<path>`` -> route ``public``.

A handler answers ``200`` with JSON ``{"route": ROUTE, "arg": ARGUMENT, "user": REMOTE_USER}``,
so a test can tell which route the router dispatched to, whatever the middleware decided.
The routers are used with their defaults: none of them resolves dot segments, which is the point.

Two middleware configurations (:data:`CONFIGS`): ``prefixes`` protects ``/api`` and ``/admin``;
``default`` protects everything (``protect=["/"]``) except ``public=["/public"]``. Both require
the ``admin`` scope under ``/admin``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable
from typing import Any

with warnings.catch_warnings():
    # WebOb 1.8 (used by the WebOb and Pyramid apps) imports the stdlib ``cgi`` module, deprecated
    # since Python 3.11: import it once here, whichever app comes first.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import webob  # noqa: F401

from jwt_wsgi import JWTMiddleware
from tests.conftest import SECRET

WSGIApp = Callable[..., Iterable[bytes]]

#: The routes a request must not reach without a valid token (and, for ``admin``, the ``admin`` scope).
PROTECTED_ROUTES = {"api": (), "users": (), "admin": ("admin",)}

SCOPES = {"/admin": ["admin"]}
CONFIGS: dict[str, dict[str, Any]] = {
    "prefixes": {"protect": ["/api", "/admin"], "scopes": SCOPES},
    "default": {"public": ["/public"], "scopes": SCOPES},
}


def answer(route: str, arg: Any, user: Any = None) -> bytes:
    """The body every handler answers: which route the router chose, and with which argument."""
    return json.dumps({"route": route, "arg": arg, "user": user}).encode()


def protect(app: WSGIApp, config: str) -> JWTMiddleware:
    """``app`` behind the middleware in one of the :data:`CONFIGS` (no login endpoint users)."""
    return JWTMiddleware(app, secret=SECRET, login_rate_limit="off", login_ip_rate_limit="off", **CONFIGS[config])


def by_host(stacks: dict[str, WSGIApp]) -> WSGIApp:
    """One WSGI callable serving one stack per configuration, chosen by the ``Host`` name
    (``prefixes.test``, ``default.test``), so that one gunicorn serves both. It changes nothing
    in the environ: each stack sees the request exactly as the server built it."""

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        host = environ.get("HTTP_HOST", "").partition(":")[0]
        stack = stacks.get(host.removesuffix(".test"))
        if stack is None:
            body = b"unknown host"
            start_response("421 Misdirected Request", [("Content-Type", "text/plain"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        return stack(environ, start_response)

    return dispatch
