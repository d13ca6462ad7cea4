"""Bottle: ``<name>`` and ``<rest:path>`` wildcards on ``PATH_INFO``."""

from __future__ import annotations

import bottle

from tests.routers import CONFIGS, answer, protect
from tests.routers import by_host as _by_host


def make() -> bottle.Bottle:
    app = bottle.Bottle()

    def reply(route: str, arg: str) -> bytes:
        bottle.response.content_type = "application/json"
        return answer(route, arg, bottle.request.environ.get("REMOTE_USER"))

    app.route("/api/users/<name>", callback=lambda name: reply("users", name))
    app.route("/api/<rest:path>", callback=lambda rest: reply("api", rest))
    app.route("/admin/<rest:path>", callback=lambda rest: reply("admin", rest))
    app.route("/public", callback=lambda: reply("public", ""))
    app.route("/public/<rest:path>", callback=lambda rest: reply("public", rest))
    return app


def stack(config: str) -> object:
    return protect(make(), config)


STACKS = {config: stack(config) for config in CONFIGS}
by_host = _by_host(STACKS)  # a gunicorn target, as for Flask
