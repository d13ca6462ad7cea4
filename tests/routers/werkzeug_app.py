"""A bare Werkzeug :class:`~werkzeug.routing.Map` (its defaults: ``merge_slashes``,
``strict_slashes``), bound to the environ as a hand-rolled Werkzeug app does."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from tests.routers import answer, protect

URL_MAP = Map([
    Rule("/api/users/<name>", endpoint="users"),
    Rule("/api/<path:rest>", endpoint="api"),
    Rule("/admin/<path:rest>", endpoint="admin"),
    Rule("/public", endpoint="public", defaults={"rest": ""}),
    Rule("/public/<path:rest>", endpoint="public"),
])


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    adapter = URL_MAP.bind_to_environ(environ)
    try:
        endpoint, args = adapter.match()
    except HTTPException as exc:  # 404, 405, and the 308 of merge_slashes / strict_slashes
        return exc(environ, start_response)  # type: ignore[no-any-return]
    body = answer(endpoint, next(iter(args.values()), ""), environ.get("REMOTE_USER"))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def stack(config: str) -> object:
    return protect(app, config)
