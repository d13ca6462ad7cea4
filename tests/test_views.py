"""What applications use: requires(), get_claims(), the Flask and Bottle helpers."""

from __future__ import annotations

import bottle
import flask
import pytest

from jwt_wsgi import JWTMiddleware, MissingToken, requires
from jwt_wsgi.contrib import bottle as jwt_bottle
from jwt_wsgi.contrib import flask as jwt_flask

from .conftest import SECRET, BufferedClient, bearer, mint


@requires("admin")
def admin_wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"admin " + environ["REMOTE_USER"].encode()]


@requires()
def any_user_wsgi(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


def router(environ, start_response):
    return (admin_wsgi if environ["PATH_INFO"] == "/admin" else any_user_wsgi)(environ, start_response)


@pytest.mark.parametrize(
    ("headers", "path", "status"),
    [
        pytest.param({}, "/admin", 401, id="no-token"),
        pytest.param("read", "/admin", 403, id="wrong-scope"),
        pytest.param("admin", "/admin", 200, id="scope"),
        pytest.param({}, "/hello", 401, id="any-user-no-token"),
        pytest.param("read", "/hello", 200, id="any-user"),
    ],
)
def test_requires_on_wsgi_callables(headers, path, status):
    # protect=[] would be an error-free "nothing protected" config: the view decides on its own.
    client = BufferedClient(JWTMiddleware(router, secret=SECRET, protect=["/nothing-here"], error_format="problem"))
    if isinstance(headers, str):
        headers = bearer(mint(scope=headers))
    response = client.get(path, headers=headers)
    assert response.status_code == status
    if status != 200:
        assert response.headers["Content-Type"] == "application/problem+json"  # the middleware's format
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_requires_keeps_names_and_rejects_bad_scopes():
    assert admin_wsgi.__name__ == "admin_wsgi" and admin_wsgi.required_scopes == ("admin",)
    with pytest.raises(ValueError):
        requires("two words")


def test_requires_outside_a_request_raises():
    @requires()
    def view():
        return "never"

    with pytest.raises(MissingToken):
        view()


def make_flask():
    app = flask.Flask("t")

    @app.get("/api/items/<int:item_id>")
    def item(item_id):
        return {"item": item_id, "user": jwt_flask.current_user()}

    @app.get("/api/other/<name>")
    def other(name):
        return {"name": name, "claims": jwt_flask.current_claims()["sub"]}

    @app.get("/api/admin")
    @jwt_flask.requires("admin")
    def admin():
        return {"admin": jwt_flask.current_user()}

    @app.get("/open")
    @requires("admin")
    def open_but_guarded():
        return {"ok": True}

    jwt_flask.protect(app, secret=SECRET, protect=["/api"])
    return app


def test_flask_helpers():
    client = BufferedClient(make_flask())
    token = mint(scope="read")
    # Two decorated views with arguments (the article's decorator broke both).
    assert client.get("/api/items/7", headers=bearer(token)).json == {"item": 7, "user": "alice"}
    assert client.get("/api/other/x", headers=bearer(token)).json == {"name": "x", "claims": "alice"}
    forbidden = client.get("/api/admin", headers=bearer(token))
    assert forbidden.status_code == 403 and 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]
    assert client.get("/api/admin", headers=bearer(mint(scope="admin"))).json == {"admin": "alice"}
    assert client.get("/open").status_code == 401
    assert client.get("/api/items/7").status_code == 401


def make_bottle():
    app = bottle.Bottle(catchall=True)
    app.install(jwt_bottle.JWTPlugin())

    @app.get("/api/items/<item_id:int>")
    def item(item_id):
        return {"item": item_id, "user": jwt_bottle.current_user()}

    @app.get("/api/admin")
    @jwt_bottle.requires("admin")
    def admin():
        return {"admin": jwt_bottle.current_user(), "claims": jwt_bottle.current_claims()["scope"]}

    @app.get("/open")
    @requires()
    def guarded():
        return {"ok": True}

    return JWTMiddleware(app, secret=SECRET, protect=["/api"])


def test_bottle_helpers():
    client = BufferedClient(make_bottle())
    assert client.get("/api/items/3", headers=bearer(mint())).json == {"item": 3, "user": "alice"}
    forbidden = client.get("/api/admin", headers=bearer(mint(scope="read")))
    assert forbidden.status_code == 403 and forbidden.json["error"] == "insufficient_scope"
    assert client.get("/api/admin", headers=bearer(mint(scope="admin"))).json == {"admin": "alice", "claims": "admin"}
    missing = client.get("/open")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'
    assert client.get("/open", headers=bearer(mint())).json == {"ok": True}
