"""Flask: ``<path:...>`` and ``<name>`` converters (Werkzeug's routing, ``PATH_INFO`` as given).

``gunicorn tests.routers.flask_app:by_host`` serves both configurations (see :func:`by_host`).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

from tests.routers import CONFIGS, answer, protect
from tests.routers import by_host as _by_host


def make() -> Flask:
    app = Flask(__name__)

    def reply(route: str, arg: Any) -> Any:
        return app.response_class(answer(route, arg, request.environ.get("REMOTE_USER")),
                                  mimetype="application/json")

    @app.route("/api/users/<name>")
    def users(name: str) -> Any:
        return reply("users", name)

    @app.route("/api/<path:rest>")
    def api(rest: str) -> Any:
        return reply("api", rest)

    @app.route("/admin/<path:rest>")
    def admin(rest: str) -> Any:
        return reply("admin", rest)

    @app.route("/public", defaults={"rest": ""})
    @app.route("/public/<path:rest>")
    def public(rest: str) -> Any:
        return reply("public", rest)

    return app


def stack(config: str) -> Flask:
    """A Flask app whose ``wsgi_app`` is wrapped, as the README and the issue show."""
    app = make()
    app.wsgi_app = protect(app.wsgi_app, config)  # type: ignore[method-assign]
    return app


STACKS = {config: stack(config) for config in CONFIGS}
by_host = _by_host(STACKS)  # the gunicorn target
