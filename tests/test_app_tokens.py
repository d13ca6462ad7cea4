"""Tokens from Python: issue_tokens(), revoke(), revoke_user(), and fresh tokens with requires(fresh=True).

Driven through the public surface: the middleware's methods, then requests through a WSGI client
(the login, refresh and logout endpoints, protected paths, Flask, Bottle and plain WSGI views).
"""

from __future__ import annotations

import json

import bottle
import flask
import jwt
import pytest

from jwt_wsgi import (
    ExpiredToken,
    FreshTokenRequired,
    InvalidToken,
    JWTMiddleware,
    UnsupportedTokenType,
    get_claims,
    requires,
)
from jwt_wsgi.contrib import bottle as jwt_bottle
from jwt_wsgi.contrib import flask as jwt_flask

from .conftest import ALICE_PASSWORD, OTHER_SECRET, SECRET, BufferedClient, bearer, canary_app, mint
from .redis_server import redis_server  # noqa: F401


def unverified(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def app(users_file):
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], users_file=users_file,
                               issuer="https://issuer.example", audience="my-api")
    return middleware, BufferedClient(middleware)


# -- issue_tokens ----------------------------------------------------------------------------------
def test_issue_tokens_gives_what_the_login_endpoint_gives(app):
    middleware, client = app
    login = client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}).json
    issued = middleware.issue_tokens("alice", {"scope": "read"})
    assert json.loads(json.dumps(issued)) == issued  # JSON-ready
    assert set(issued) == set(login)
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == login["expires_in"]
    for kind in ("access_token", "refresh_token"):
        mine, theirs = unverified(issued[kind]), unverified(login[kind])
        assert set(mine) == set(theirs), kind
        assert {k: mine[k] for k in ("sub", "type", "iss", "aud", "scope")} == \
               {k: theirs[k] for k in ("sub", "type", "iss", "aud", "scope")}
        assert mine.get("fresh") == theirs.get("fresh")
    access, refresh = unverified(issued["access_token"]), unverified(issued["refresh_token"])
    assert access["fam"] == refresh["fam"] and access["jti"] != refresh["jti"]
    assert access["fam"] != unverified(login["access_token"])["fam"]  # a sign-in of its own


def test_issued_tokens_work_everywhere_a_login_does():
    # No users_file: a custom login view is the only source of users (with one, a refresh reads
    # the user's claims from it again, and a subject it does not know cannot refresh).
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], refresh_reuse_interval=0)
    client = BufferedClient(middleware)
    issued = middleware.issue_tokens("bob", {"roles": ["editor"]})
    me = client.get("/api/me", headers=bearer(issued["access_token"]))
    assert me.status_code == 200 and b'"user": "bob"' in me.data
    # The refresh token rotates at refresh_path, and the spent one is then refused.
    refreshed = client.post("/auth/refresh", json={"refresh_token": issued["refresh_token"]})
    assert refreshed.status_code == 200
    assert unverified(refreshed.json["access_token"])["roles"] == ["editor"]
    again = client.post("/auth/refresh", json={"refresh_token": issued["refresh_token"]})
    assert again.status_code in (400, 401)
    # Logout at logout_path revokes it like any other.
    second = middleware.issue_tokens("bob")
    assert client.post("/auth/logout", headers=bearer(second["access_token"])).status_code == 204
    assert client.get("/api/me", headers=bearer(second["access_token"])).status_code == 401


def test_issue_tokens_without_a_refresh_path_gives_no_refresh_token():
    middleware = JWTMiddleware(canary_app, secret=SECRET, refresh_path=None)
    issued = middleware.issue_tokens("alice")
    assert "refresh_token" not in issued and issued["access_token"]


def test_issue_tokens_in_article_mode_has_the_article_login_shape(tmp_path):
    middleware = JWTMiddleware(canary_app, secret=SECRET, error_format="article")
    issued = middleware.issue_tokens("alice")
    assert issued["error"] == "0" and issued["message"] == "Successful"
    assert unverified(issued["token"])["sub"] == "alice" and issued["Elapse_time"] == 1800


@pytest.mark.parametrize(
    ("subject", "claims", "words"),
    [
        pytest.param("", None, "subject", id="empty-subject"),
        pytest.param(42, None, "subject", id="subject-not-a-string"),
        pytest.param("alice", {"sub": "root"}, "sub", id="sub-in-claims"),
        pytest.param("alice", {"exp": 1}, "exp", id="exp"),
        pytest.param("alice", {"type": "refresh"}, "type", id="type"),
        pytest.param("alice", {"fresh": True}, "fresh", id="fresh-claim"),
        pytest.param("alice", [("scope", "read")], "mapping", id="claims-not-a-mapping"),
        pytest.param("alice", {"blob": "x" * 9000}, "max_token_size", id="too-large"),
    ],
)
def test_issue_tokens_refuses_mistakes(subject, claims, words):
    middleware = JWTMiddleware(canary_app, secret=SECRET)
    with pytest.raises(ValueError, match=words):
        middleware.issue_tokens(subject, claims)


def test_a_verify_only_middleware_cannot_issue(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "public.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    middleware = JWTMiddleware(canary_app, algorithm="ES256", public_key=str(public))
    with pytest.raises(RuntimeError, match="only verifies"):
        middleware.issue_tokens("alice")


def test_issue_tokens_with_an_unreachable_store_is_a_503_error():
    from jwt_wsgi.errors import ServiceUnavailable

    # Port 9 (discard) on localhost: nothing answers; the timeout bounds the wait.
    middleware = JWTMiddleware(canary_app, secret=SECRET, store="redis://127.0.0.1:9/0?socket_timeout=1")
    with pytest.raises(ServiceUnavailable):
        middleware.issue_tokens("alice")


def test_issue_tokens_with_a_new_sqlite_store_works_at_once(tmp_path):
    # The store file does not exist yet: minting must not come before the store's first use.
    middleware = JWTMiddleware(canary_app, secret=SECRET, store=f"sqlite:///{tmp_path}/store.db", protect=["/api"])
    issued = middleware.issue_tokens("alice")
    assert BufferedClient(middleware).get("/api/me", headers=bearer(issued["access_token"])).status_code == 200


@pytest.mark.slow
def test_issue_tokens_on_an_empty_redis_store_works_at_once(redis_server):  # noqa: F811
    # An empty Redis begins its epoch at the millisecond after the first use, and refuses every
    # token dated before it: issue_tokens must not mint within that same millisecond.
    for _ in range(30):
        redis_server.flush()
        middleware = JWTMiddleware(canary_app, secret=SECRET, store=redis_server.url, protect=["/api"])
        issued = middleware.issue_tokens("alice")
        response = BufferedClient(middleware).get("/api/me", headers=bearer(issued["access_token"]))
        assert response.status_code == 200, response.json


def test_login_cookies_on_an_empty_redis_store_work_at_once(redis_server):  # noqa: F811
    # The same for the cookies an application's own view sets with login_cookies().
    for _ in range(30):
        redis_server.flush()
        middleware = JWTMiddleware(canary_app, secret=SECRET, store=redis_server.url, protect=["/api"],
                                   token_sources=["header", "cookie"])
        headers, _ = middleware.login_cookies({"wsgi.url_scheme": "http"}, "carol")
        cookie = next(value.split(";", 1)[0] for name, value in headers
                      if name == "Set-Cookie" and value.startswith("access_token="))
        response = BufferedClient(middleware).get("/api/me", headers={"Cookie": cookie})
        assert response.status_code == 200, response.json


# -- revoke, revoke_user ---------------------------------------------------------------------------
def test_revoke_an_access_token(app):
    middleware, client = app
    issued = middleware.issue_tokens("alice")
    other = middleware.issue_tokens("alice")
    middleware.revoke(issued["access_token"])
    refused = client.get("/api/me", headers=bearer(issued["access_token"]))
    assert refused.status_code == 401 and refused.json["error"] == "token_revoked"
    assert client.get("/api/me", headers=bearer(other["access_token"])).status_code == 200
    # Its refresh token still works: an access token is revoked alone.
    assert client.post("/auth/refresh", json={"refresh_token": issued["refresh_token"]}).status_code == 200
    middleware.revoke(issued["access_token"])  # again: nothing to say


def test_revoke_a_refresh_token_takes_its_family(app):
    middleware, client = app
    issued = middleware.issue_tokens("alice")
    refreshed = client.post("/auth/refresh", json={"refresh_token": issued["refresh_token"]}).json
    other = middleware.issue_tokens("alice")
    middleware.revoke(refreshed["refresh_token"])
    for token in (issued["access_token"], refreshed["access_token"]):
        assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": refreshed["refresh_token"]}).status_code in (400, 401)
    assert client.get("/api/me", headers=bearer(other["access_token"])).status_code == 200


def test_revoke_works_in_every_worker_sharing_the_store(tmp_path):
    store = f"sqlite:///{tmp_path}/store.db"
    one = JWTMiddleware(canary_app, secret=SECRET, store=store, protect=["/api"])
    two = JWTMiddleware(canary_app, secret=SECRET, store=store, protect=["/api"])
    issued = one.issue_tokens("alice")
    client = BufferedClient(two)
    assert client.get("/api/me", headers=bearer(issued["access_token"])).status_code == 200
    one.revoke(issued["access_token"])
    assert client.get("/api/me", headers=bearer(issued["access_token"])).status_code == 401


@pytest.mark.parametrize(
    ("token", "error"),
    [
        pytest.param("not a token", InvalidToken, id="junk"),
        pytest.param("a.b.c", InvalidToken, id="three-junk-segments"),
        pytest.param(mint(OTHER_SECRET), InvalidToken, id="forged"),
        pytest.param(mint(exp=1_000_000), ExpiredToken, id="expired"),
        pytest.param(mint(type="something"), InvalidToken, id="unknown-type"),
        pytest.param(mint(jti=None), UnsupportedTokenType, id="no-jti"),
        pytest.param("x" * 10_000, InvalidToken, id="oversized"),
    ],
)
def test_revoke_refuses_what_is_not_a_valid_token(token, error):
    middleware = JWTMiddleware(canary_app, secret=SECRET)
    with pytest.raises(error):
        middleware.revoke(token)


def test_revoke_refuses_a_non_string():
    with pytest.raises(TypeError):
        JWTMiddleware(canary_app, secret=SECRET).revoke(b"bytes")  # type: ignore[arg-type]


def test_revoke_user_revokes_every_token_issued_so_far(app):
    middleware, client = app
    first = middleware.issue_tokens("alice")
    login = client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}).json
    bob = middleware.issue_tokens("bob")
    middleware.revoke_user("alice")
    for token in (first["access_token"], login["access_token"]):
        assert client.get("/api/me", headers=bearer(token)).status_code == 401
    for token in (first["refresh_token"], login["refresh_token"]):
        assert client.post("/auth/refresh", json={"refresh_token": token}).status_code in (400, 401)
    assert client.get("/api/me", headers=bearer(bob["access_token"])).status_code == 200
    # The next sign-in works.
    after = middleware.issue_tokens("alice")
    assert client.get("/api/me", headers=bearer(after["access_token"])).status_code == 200


def test_revoke_user_refuses_an_empty_subject():
    with pytest.raises(ValueError):
        JWTMiddleware(canary_app, secret=SECRET).revoke_user("")


# -- custom login views, as the README shows them -----------------------------------------------------
USERS = {"alice@example.com": ("alice", "correct horse")}  # TEST-ONLY


def check_password(email, password):
    user = USERS.get(email)
    return user[0] if user is not None and user[1] == password else None


def make_flask_app():
    app = flask.Flask("custom_login")

    @app.post("/login")
    def login():
        sub = check_password(flask.request.json.get("email"), flask.request.json.get("password"))
        if sub is None:
            return {"error": "invalid_credentials"}, 401
        return jwt_app.issue_tokens(sub, {"scope": "read"})

    @app.post("/api/logout-everywhere")
    def logout_everywhere():
        jwt_app.revoke_user(jwt_flask.current_claims()["sub"])
        return "", 204

    @app.get("/api/me")
    def me():
        return {"user": jwt_flask.current_user()}

    jwt_app = jwt_flask.protect(app, secret=SECRET, protect=["/api"])
    return app


def make_bottle_app():
    app = bottle.Bottle()
    app.install(jwt_bottle.JWTPlugin())

    @app.post("/login")
    def login():
        sub = check_password(bottle.request.json.get("email"), bottle.request.json.get("password"))
        if sub is None:
            bottle.response.status = 401
            return {"error": "invalid_credentials"}
        return application.issue_tokens(sub, {"scope": "read"})

    @app.post("/api/logout-everywhere")
    def logout_everywhere():
        application.revoke_user(jwt_bottle.current_claims()["sub"])
        bottle.response.status = 204

    @app.get("/api/me")
    def me():
        return {"user": jwt_bottle.current_user()}

    application = JWTMiddleware(app, secret=SECRET, protect=["/api"])
    return application


@pytest.mark.parametrize("make", [make_flask_app, make_bottle_app], ids=["flask", "bottle"])
def test_a_custom_login_view(make):
    client = BufferedClient(make())
    wrong = client.post("/login", json={"email": "alice@example.com", "password": "nope"})
    assert wrong.status_code == 401
    tokens = client.post("/login", json={"email": "alice@example.com", "password": "correct horse"}).json
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).json == {"user": "alice"}
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json
    assert client.post("/api/logout-everywhere", headers=bearer(refreshed["access_token"])).status_code == 204
    assert client.get("/api/me", headers=bearer(refreshed["access_token"])).status_code == 401


# -- fresh tokens ------------------------------------------------------------------------------------
@requires(fresh=True)
def change_password(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"changed for " + get_claims(environ)["sub"].encode()]


@pytest.fixture
def fresh_app(users_file):
    def route(environ, start_response):
        if environ["PATH_INFO"] == "/api/password":
            return change_password(environ, start_response)
        return canary_app(environ, start_response)

    middleware = JWTMiddleware(route, secret=SECRET, protect=["/api"], users_file=users_file)
    return middleware, BufferedClient(middleware)


def test_login_tokens_are_fresh_and_refreshed_ones_are_not(fresh_app):
    middleware, client = fresh_app
    login = client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}).json
    assert unverified(login["access_token"])["fresh"] is True
    assert "fresh" not in unverified(login["refresh_token"])
    refreshed = client.post("/auth/refresh", json={"refresh_token": login["refresh_token"]}).json
    assert unverified(refreshed["access_token"])["fresh"] is False
    again = client.post("/auth/refresh", json={"refresh_token": refreshed["refresh_token"]}).json
    assert unverified(again["access_token"])["fresh"] is False  # never fresh again by refreshing

    assert client.post("/api/password", headers=bearer(login["access_token"])).data == b"changed for alice"
    refused = client.post("/api/password", headers=bearer(refreshed["access_token"]))
    assert refused.status_code == 401
    assert refused.json == {"error": "fresh_token_required", "message": FreshTokenRequired.message}
    assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="jwt_wsgi", error="invalid_token"')
    # Everything else accepts a refreshed token as before.
    assert client.get("/api/me", headers=bearer(refreshed["access_token"])).status_code == 200


def test_freshness_cannot_be_claimed_by_the_users_own_claims(tmp_path):
    # A users file (or an authenticate callable) that puts "fresh" in a user's claims does not
    # make refreshed tokens fresh.
    def authenticate(username, password):
        return {"fresh": True, "scope": "read"} if password == "pw" else None

    authenticate.lookup = lambda sub: {"fresh": True, "scope": "read"}  # type: ignore[attr-defined]
    middleware = JWTMiddleware(change_password, secret=SECRET, authenticate=authenticate)
    client = BufferedClient(middleware)
    login = client.post("/auth/login", json={"username": "alice", "password": "pw"}).json
    refreshed = client.post("/auth/refresh", json={"refresh_token": login["refresh_token"]}).json
    assert unverified(refreshed["access_token"])["fresh"] is False
    assert client.get("/x", headers=bearer(refreshed["access_token"])).status_code == 401


def test_issue_tokens_fresh_option():
    middleware = JWTMiddleware(change_password, secret=SECRET)
    client = BufferedClient(middleware)
    assert client.get("/x", headers=bearer(middleware.issue_tokens("alice")["access_token"])).status_code == 200
    stale = middleware.issue_tokens("alice", fresh=False)["access_token"]
    assert client.get("/x", headers=bearer(stale)).status_code == 401


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        pytest.param({"fresh": True}, 200, id="fresh"),
        pytest.param({"fresh": False}, 401, id="not-fresh"),
        pytest.param({}, 401, id="no-marker"),
        pytest.param({"fresh": "true"}, 401, id="string-is-not-true"),
        pytest.param({"fresh": 1}, 401, id="one-is-not-true"),
    ],
)
def test_requires_fresh_reads_a_boolean_claim(claims, status):
    response = BufferedClient(JWTMiddleware(change_password, secret=SECRET)).get("/x", headers=bearer(mint(**claims)))
    assert response.status_code == status


def test_fresh_is_checked_before_scopes():
    @requires("admin", fresh=True)
    def view(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    client = BufferedClient(JWTMiddleware(view, secret=SECRET))
    assert client.get("/", headers=bearer(mint(scope="read"))).json["error"] == "fresh_token_required"
    assert client.get("/", headers=bearer(mint(scope="read", fresh=True))).status_code == 403
    assert client.get("/", headers=bearer(mint(scope="admin", fresh=True))).status_code == 200


def test_requires_fresh_in_flask_and_bottle():
    app = flask.Flask("fresh")

    @app.post("/api/email")
    @jwt_flask.requires(fresh=True)
    def email():
        return {"ok": True}

    jwt_flask.protect(app, secret=SECRET, protect=["/api"])
    client = BufferedClient(app)
    assert client.post("/api/email", headers=bearer(mint(fresh=True))).json == {"ok": True}
    refused = client.post("/api/email", headers=bearer(mint(fresh=False)))
    assert refused.status_code == 401 and refused.json["error"] == "fresh_token_required"

    bapp = bottle.Bottle()

    @bapp.post("/api/email")
    @jwt_bottle.requires(fresh=True)
    def bemail():
        return {"ok": True}

    bclient = BufferedClient(JWTMiddleware(bapp, secret=SECRET, protect=["/api"]))
    assert bclient.post("/api/email", headers=bearer(mint(fresh=True))).json == {"ok": True}
    refused = bclient.post("/api/email", headers=bearer(mint()))
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_requires_fresh_takes_a_boolean():
    with pytest.raises(TypeError, match="fresh"):
        requires(fresh="yes")  # type: ignore[arg-type]


def test_a_browser_sign_in_is_fresh_and_its_silent_refresh_is_not(make_client):
    from .test_browser import HTML, cookies_of, sign_in

    browser = make_client(token_sources=["header", "cookie"])
    jar = cookies_of(sign_in(browser))
    assert unverified(jar["access_token"]["value"])["fresh"] is True
    refreshed = browser.get("/auth/refresh?next=%2Fapi%2Fme", headers={
        **HTML, "Cookie": f"csrf_token={jar['csrf_token']['value']}; refresh_token={jar['refresh_token']['value']}"})
    assert refreshed.status_code == 303
    assert unverified(cookies_of(refreshed)["access_token"]["value"])["fresh"] is False
