"""The user_loader option and get_user(): the application's user object for a verified token."""

from __future__ import annotations

import logging

import bottle
import flask
import pytest

from jwt_wsgi import InsufficientScope, JWTMiddleware, UserNotFound, get_claims, get_user, requires
from jwt_wsgi.contrib import bottle as jwt_bottle
from jwt_wsgi.contrib import flask as jwt_flask

from .conftest import SECRET, BufferedClient, bearer, mint


class User:
    def __init__(self, name: str) -> None:
        self.name = name


class Directory:
    """A user store that counts its look-ups."""

    def __init__(self, *names: str) -> None:
        self.users = {name: User(name) for name in names}
        self.calls: list[str] = []

    def __call__(self, claims):
        self.calls.append(claims["sub"])
        if claims["sub"] == "broken":
            raise RuntimeError("database is down: secret-connection-string")
        if claims["sub"] == "suspended":
            raise InsufficientScope()
        return self.users.get(claims["sub"])


def describe(environ, start_response):
    user = get_user(environ)
    body = f"{type(user).__name__}:{getattr(user, 'name', user)}:{get_user() is user}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture
def directory():
    return Directory("alice", "bob")


@pytest.fixture
def client(directory):
    return BufferedClient(JWTMiddleware(describe, secret=SECRET, protect=["/api"], user_loader=directory))


def test_the_loaded_user_reaches_the_application(client, directory):
    assert client.get("/api/x", headers=bearer(mint(sub="bob"))).data == b"User:bob:True"
    assert directory.calls == ["bob"]  # once per request


def test_called_once_per_request_also_for_a_repeated_token(client, directory):
    token = mint()
    for _ in range(3):
        assert client.get("/api/x", headers=bearer(token)).data == b"User:alice:True"
    assert directory.calls == ["alice"] * 3


def test_none_is_401_user_not_found_with_a_challenge(client, directory):
    response = client.get("/api/x", headers=bearer(mint(sub="carol")))
    assert response.status_code == 401
    assert response.json == {"error": "user_not_found", "message": UserNotFound.message}
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="jwt_wsgi", error="invalid_token", error_description="The token\'s user is unknown or inactive"'
    )


def test_not_called_without_a_valid_token(client, directory):
    assert client.get("/api/x").status_code == 401
    assert client.get("/api/x", headers=bearer(mint(exp=1_000_000))).status_code == 401
    assert client.get("/open").data == b"NoneType:None:True"
    assert directory.calls == []


def test_not_called_for_a_refused_scope(directory):
    client = BufferedClient(JWTMiddleware(describe, secret=SECRET, scopes={"/admin": ["admin"]}, user_loader=directory))
    assert client.get("/admin", headers=bearer(mint(scope="read"))).status_code == 403
    assert directory.calls == []


def test_optional_authentication_outside_protect(client, directory):
    # A known user is loaded outside protect too; an unknown one is anonymous, as an invalid token is.
    assert client.get("/open", headers=bearer(mint(sub="bob"))).data == b"User:bob:True"
    assert client.get("/open", headers=bearer(mint(sub="carol"))).data == b"NoneType:None:True"
    assert client.get("/open", headers=bearer(mint(sub="suspended"))).data == b"NoneType:None:True"
    assert directory.calls == ["bob", "carol", "suspended"]


def test_an_exception_in_the_loader_is_a_generic_500_and_logged(client, caplog):
    with caplog.at_level(logging.ERROR, logger="jwt_wsgi"):
        response = client.get("/api/x", headers=bearer(mint(sub="broken")))
    assert response.status_code == 500
    assert response.json == {"error": "internal_error", "message": "Internal server error"}
    assert b"secret-connection-string" not in response.data
    assert "user_loader" in caplog.text and "RuntimeError" in caplog.text
    # The same outside protect: a failing user store is not an anonymous caller.
    assert client.get("/open", headers=bearer(mint(sub="broken"))).status_code == 500


def test_an_auth_error_raised_by_the_loader_is_answered(client):
    response = client.get("/api/x", headers=bearer(mint(sub="suspended")))
    assert response.status_code == 403 and response.json["error"] == "insufficient_scope"


def test_a_forged_user_key_is_removed(client, directory):
    response = client.get("/open", environ_overrides={"jwt_wsgi.user": User("mallory"),
                                                      "jwt_wsgi.claims": {"sub": "mallory"}})
    assert response.data == b"NoneType:None:True"


def test_without_a_loader_get_user_is_the_sub():
    client = BufferedClient(JWTMiddleware(describe, secret=SECRET, protect=["/api"]))
    assert client.get("/api/x", headers=bearer(mint())).data == b"str:alice:True"
    assert client.get("/open").data == b"NoneType:None:True"


def test_get_user_outside_a_request_is_none():
    assert get_user() is None and get_user({}) is None


def test_user_loader_from_a_dotted_name_and_validation():
    middleware = JWTMiddleware(describe, secret=SECRET, user_loader="tests.test_user_loader:load_alice_only")
    client = BufferedClient(middleware)
    assert client.get("/", headers=bearer(mint())).data == b"User:alice:True"
    assert client.get("/", headers=bearer(mint(sub="bob"))).status_code == 401
    with pytest.raises(ValueError, match="user_loader"):
        JWTMiddleware(describe, secret=SECRET, user_loader="tests.test_user_loader:nothing_here")
    with pytest.raises(ValueError, match="user_loader"):
        JWTMiddleware(describe, secret=SECRET, user_loader=42)


def load_alice_only(claims):
    return User("alice") if claims["sub"] == "alice" else None


def test_user_loader_from_the_environment():
    middleware = JWTMiddleware.from_env(describe, {"JWT_WSGI_SECRET": SECRET,
                                                   "JWT_WSGI_USER_LOADER": "tests.test_user_loader:load_alice_only"})
    assert middleware.settings.user_loader is load_alice_only


def test_requires_sees_the_same_request(directory):
    @requires("admin")
    def admin(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [get_user(environ).name.encode()]

    client = BufferedClient(JWTMiddleware(admin, secret=SECRET, user_loader=directory))
    assert client.get("/", headers=bearer(mint(scope="admin"))).data == b"alice"
    assert client.get("/", headers=bearer(mint(scope="read"))).status_code == 403
    assert directory.calls == ["alice", "alice"]


def test_flask_and_bottle_current_user(directory):
    app = flask.Flask("users")

    @app.get("/api/me")
    def me():
        user = jwt_flask.current_user()
        return {"name": user.name, "sub": jwt_flask.current_claims()["sub"]}

    @app.get("/open")
    def anyone():
        return {"user": jwt_flask.current_user()}

    jwt_flask.protect(app, secret=SECRET, protect=["/api"], user_loader=directory)
    client = BufferedClient(app)
    assert client.get("/api/me", headers=bearer(mint(sub="bob"))).json == {"name": "bob", "sub": "bob"}
    assert client.get("/api/me", headers=bearer(mint(sub="carol"))).json["error"] == "user_not_found"
    assert client.get("/open").json == {"user": None}

    bapp = bottle.Bottle()

    @bapp.get("/api/me")
    def bme():
        return {"name": jwt_bottle.current_user().name}

    bclient = BufferedClient(JWTMiddleware(bapp, secret=SECRET, protect=["/api"], user_loader=directory))
    assert bclient.get("/api/me", headers=bearer(mint(sub="alice"))).json == {"name": "alice"}


def test_flask_current_user_without_a_loader_is_still_the_sub():
    app = flask.Flask("compat")

    @app.get("/api/me")
    def me():
        return {"user": jwt_flask.current_user(), "claims": get_claims()["sub"]}

    jwt_flask.protect(app, secret=SECRET, protect=["/api"])
    assert BufferedClient(app).get("/api/me", headers=bearer(mint())).json == {"user": "alice", "claims": "alice"}
