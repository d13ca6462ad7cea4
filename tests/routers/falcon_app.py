"""Falcon: its compiled router (``{name}`` fields and the ``{rest:path}`` converter)."""

from __future__ import annotations

import falcon

from tests.routers import answer, protect


class _Route:
    def __init__(self, route: str) -> None:
        self.route = route

    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        resp.content_type = "application/json"
        resp.data = answer(self.route, next(iter(params.values()), ""), req.env.get("REMOTE_USER"))


def make() -> falcon.App:
    app = falcon.App()
    app.add_route("/api/users/{name}", _Route("users"))
    app.add_route("/api/{rest:path}", _Route("api"))
    app.add_route("/admin/{rest:path}", _Route("admin"))
    app.add_route("/public", _Route("public"))
    app.add_route("/public/{rest:path}", _Route("public"))
    return app


def stack(config: str) -> object:
    return protect(make(), config)
