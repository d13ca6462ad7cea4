"""Pyramid: URL dispatch (``{name}`` and ``*rest`` patterns) on ``PATH_INFO``."""

from __future__ import annotations

from typing import Any

from pyramid.config import Configurator
from pyramid.exceptions import URLDecodeError
from pyramid.response import Response

from tests.routers import answer, protect


def make() -> Any:
    with Configurator() as config:
        routes = [
            ("users", "/api/users/{name}", "name"),
            ("api", "/api/*rest", "rest"),
            ("admin", "/admin/*rest", "rest"),
            ("public", "/public", None),
            ("public-rest", "/public/*rest", "rest"),
        ]
        for name, pattern, key in routes:
            config.add_route(name, pattern)

            def view(request: Any, route: str = name.removesuffix("-rest"), key: str | None = key) -> Response:
                value = request.matchdict.get(key, "") if key else ""
                arg = "/".join(value) if isinstance(value, tuple) else value
                return Response(answer(route, arg, request.environ.get("REMOTE_USER")),
                                content_type="application/json")

            config.add_view(view, route_name=name)
        # Pyramid raises on a path that is not UTF-8: answer 400, as an application would, so that
        # NEVER-500 measures the middleware.
        config.add_exception_view(lambda exc, request: Response(status=400, body=b"bad path"), context=URLDecodeError)
        return config.make_wsgi_app()


def stack(config: str) -> object:
    return protect(make(), config)
