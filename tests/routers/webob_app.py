"""WebOb, routed by hand on ``req.path_info`` by prefix, as small hand-written routers do
(lower-cased first, as some do, so that ``/API/x`` is the API too)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

with warnings.catch_warnings():
    # WebOb 1.8 imports the stdlib ``cgi`` module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    from webob import Request, Response

from tests.routers import answer, protect

PREFIXES = [("/api/users/", "users"), ("/api/", "api"), ("/admin/", "admin"), ("/public/", "public")]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    req = Request(environ)
    try:
        path = req.path_info
    except UnicodeDecodeError:  # the app's own strictness, so that NEVER-500 measures the middleware
        return Response(status=400, body=b"bad path")(environ, start_response)  # type: ignore[no-any-return]
    lowered = path.lower()
    route, arg = None, ""
    if lowered == "/public":
        route = "public"
    for prefix, name in PREFIXES:
        if route is None and lowered.startswith(prefix):
            route, arg = name, path[len(prefix):]
            if name == "users" and "/" in arg:
                route, arg = "api", path[len("/api/"):]
    if route is None:
        return Response(status=404, body=b"not found")(environ, start_response)  # type: ignore[no-any-return]
    body = answer(route, arg, environ.get("REMOTE_USER"))
    return Response(body=body, content_type="application/json")(environ, start_response)  # type: ignore[no-any-return]


def stack(config: str) -> object:
    return protect(app, config)
