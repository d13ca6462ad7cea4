"""What applications use: requires(), get_claims(), the Flask and Bottle helpers."""

from __future__ import annotations

import threading

import bottle
import flask
import pytest
from werkzeug import exceptions as werkzeug_exceptions

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

    # In a thread of its own: Bottle leaves its last request bound to a thread that served one
    # (the Bottle tests here), and requires() would then answer in Bottle's way.
    raised = []

    def call():
        try:
            view()
        except Exception as exc:
            raised.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(10)
    assert len(raised) == 1 and isinstance(raised[0], MissingToken)


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


# -- conditions beyond all-of scopes --------------------------------------------------------------
def _guarded(**conditions):
    @requires(*conditions.pop("scopes", ()), **conditions)
    def view(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return BufferedClient(JWTMiddleware(view, secret=SECRET, protect=["/"]))


def _is_admin_of_acme(claims):
    return claims.get("tenant") == "acme"


def _raises(claims):
    return claims["tenant"] == "acme"  # KeyError on a token without tenant


@pytest.mark.parametrize(
    ("conditions", "claims", "status"),
    [
        pytest.param({"scopes": ["read", "write"]}, {"scope": "read write"}, 200, id="all-of"),
        pytest.param({"scopes": ["read", "write"]}, {"scope": "read"}, 403, id="all-of-missing-one"),
        pytest.param({"scopes": ["read"]}, {"scp": ["read"]}, 200, id="scp-list"),
        pytest.param({"scopes": ["read"]}, {"scopes": ["read"]}, 200, id="scopes-list"),
        pytest.param({"scopes": ["read"]}, {"scp": "read"}, 200, id="scp-string"),
        pytest.param({"scopes": ["read"]}, {"scope": ["read"]}, 200, id="scope-as-list"),
        pytest.param({"any_scope": ["write", "admin"]}, {"scope": "read admin"}, 200, id="any-of"),
        pytest.param({"any_scope": ["write", "admin"]}, {"scope": "read"}, 403, id="any-of-none"),
        pytest.param({"any_scope": ["write", "admin"]}, {}, 403, id="any-of-no-scope-claim"),
        pytest.param({"scopes": ["read"], "any_scope": ["w", "a"]}, {"scope": "read a"}, 200, id="both"),
        pytest.param({"scopes": ["read"], "any_scope": ["w", "a"]}, {"scope": "a"}, 403, id="both-missing-all-of"),
        pytest.param({"roles": ["admin"]}, {"roles": ["admin", "x"]}, 200, id="role"),
        pytest.param({"roles": ["admin"]}, {"roles": "admin"}, 200, id="role-string"),
        pytest.param({"roles": ["admin"]}, {"roles": ["administrator"]}, 403, id="role-missing"),
        pytest.param({"roles": ["admin"]}, {"scope": "admin"}, 403, id="a-scope-is-not-a-role"),
        pytest.param({"roles": ["admin"]}, {"groups": ["admin"]}, 403, id="groups-not-read-by-default"),
        pytest.param({"roles": ["a", "b"]}, {"roles": ["a"]}, 403, id="roles-all-of"),
        pytest.param({"any_role": ["a", "b"]}, {"roles": ["b"]}, 200, id="any-role"),
        pytest.param({"any_role": ["a", "b"]}, {"roles": ["c"]}, 403, id="any-role-none"),
        pytest.param({"roles": ["admin"], "roles_claim": "groups"}, {"groups": ["admin"]}, 200, id="groups-claim"),
        pytest.param({"roles": ["admin"], "roles_claim": "groups"}, {"roles": ["admin"]}, 403, id="only-that-claim"),
        pytest.param({"roles": ["admin"], "roles_claim": ("realm_access", "roles")},
                     {"realm_access": {"roles": ["admin"]}}, 200, id="nested-claim"),
        pytest.param({"roles": ["admin"], "roles_claim": ("realm_access", "roles")},
                     {"realm_access": ["admin"]}, 403, id="nested-claim-wrong-shape"),
        pytest.param({"roles": ["admin"], "roles_claim": "https://example.com/roles"},
                     {"https://example.com/roles": ["admin"]}, 200, id="claim-name-with-dots"),
        pytest.param({"roles": ["admin"]}, {"roles": [1, None, {"x": "admin"}]}, 403, id="junk-roles"),
        pytest.param({"check": _is_admin_of_acme}, {"tenant": "acme"}, 200, id="check-true"),
        pytest.param({"check": _is_admin_of_acme}, {"tenant": "other"}, 403, id="check-false"),
        pytest.param({"check": lambda claims: "yes"}, {}, 403, id="check-truthy-is-not-true"),
        pytest.param({"check": lambda claims: None}, {}, 403, id="check-forgot-return"),
        pytest.param({"check": _raises}, {}, 403, id="check-raises"),
        pytest.param({"scopes": ["read"], "check": _is_admin_of_acme}, {"tenant": "acme"}, 403, id="scope-and-check"),
    ],
)
def test_requires_conditions(conditions, claims, status, caplog):
    client = _guarded(**conditions)
    response = client.get("/", headers=bearer(mint(**claims)))
    assert response.status_code == status, response.data
    if status == 403:
        assert response.json["error"] == "insufficient_scope"
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="jwt_wsgi", error="insufficient_scope", error_description="')
        assert ("scope=" in challenge) == bool(conditions.get("scopes"))
    missing = client.get("/")
    assert missing.status_code == 401 and missing.json["error"] == "missing_token"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'


def test_requires_challenge_names_the_all_of_scopes():
    response = _guarded(scopes=["read", "write"]).get("/", headers=bearer(mint(scope="read")))
    assert response.headers["WWW-Authenticate"].endswith(', scope="read write"')
    roles = _guarded(roles=["admin"]).get("/", headers=bearer(mint(roles=["user"])))
    assert roles.json == {"error": "insufficient_scope", "message": "The token does not grant the required role"}


def test_a_failing_check_is_logged_and_refused(caplog):
    response = _guarded(check=_raises).get("/", headers=bearer(mint()))
    assert response.status_code == 403
    assert "requires(check=...) raised" in caplog.text and "KeyError" in caplog.text


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        pytest.param((["a", "b"],), {}, ValueError, "separate arguments", id="list-positional"),
        pytest.param(("two words",), {}, ValueError, "not a scope name", id="space-in-scope"),
        pytest.param(("",), {}, ValueError, "not a scope name", id="empty-scope"),
        pytest.param((), {"any_scope": "admin"}, TypeError, "not the string", id="any-scope-string"),
        pytest.param((), {"any_scope": []}, ValueError, "is empty", id="any-scope-empty"),
        pytest.param((), {"any_scope": ["a b"]}, ValueError, "not a scope name", id="any-scope-space"),
        pytest.param((), {"roles": "admin"}, TypeError, "not the string", id="roles-string"),
        pytest.param((), {"any_role": []}, ValueError, "is empty", id="any-role-empty"),
        pytest.param((), {"roles": [""]}, ValueError, "not a role name", id="empty-role"),
        pytest.param((), {"roles": ["a"], "roles_claim": ""}, ValueError, "roles_claim", id="empty-claim"),
        pytest.param((), {"roles": ["a"], "roles_claim": ()}, ValueError, "roles_claim", id="empty-path"),
        pytest.param((), {"roles": ["a"], "roles_claim": ["groups"]}, ValueError, "roles_claim", id="claim-list"),
        pytest.param((), {"roles_claim": "groups"}, ValueError, "without roles", id="claim-without-roles"),
        pytest.param((), {"check": True}, TypeError, "callable", id="check-not-callable"),
        pytest.param((), {"fresh": "yes"}, TypeError, "fresh", id="fresh-not-a-bool"),
        pytest.param((), {"freshness": True}, TypeError, "freshness", id="unknown-option"),
    ],
)
def test_requires_arguments_are_checked_when_decorating(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        requires(*args, **kwargs)


def test_requires_on_a_class_says_what_to_do():
    with pytest.raises(TypeError, match="method_decorator"):
        requires("a")(type("View", (), {}))


# -- requires without the Flask / Bottle glue: still a 401/403, never a 500 ------------------------
def test_flask_without_glue_answers_401_and_403():
    app = flask.Flask("bare")

    @app.get("/api/admin")
    @requires("admin")
    def admin():
        return {"admin": jwt_flask.current_user()}

    @app.get("/open")
    @requires(any_role=["editor"])
    def open_view():
        return {"ok": True}

    @app.errorhandler(werkzeug_exceptions.HTTPException)
    def json_errors(error):  # a common habit; it must not rewrite our answer
        return {"http_error": error.name}, error.code or 500

    client = BufferedClient(JWTMiddleware(app, secret=SECRET, protect=["/api"], error_format="problem"))
    forbidden = client.get("/api/admin", headers=bearer(mint(scope="read")))
    assert forbidden.status_code == 403, forbidden.data
    assert forbidden.headers["Content-Type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]
    assert forbidden.json["code"] == "insufficient_scope"
    assert client.get("/api/admin", headers=bearer(mint(scope="admin"))).json == {"admin": "alice"}
    missing = client.get("/open")  # not protected: no claims, the view refuses
    assert missing.status_code == 401 and missing.json["code"] == "missing_token"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'
    assert client.get("/open", headers=bearer(mint(roles=["editor"]))).json == {"ok": True}


def test_bottle_without_plugin_answers_401_and_403():
    app = bottle.Bottle(catchall=True)

    @app.get("/api/admin")
    @requires("admin")
    def admin():
        return {"admin": jwt_bottle.current_user()}

    @app.get("/open")
    @requires()
    def open_view():
        return {"ok": True}

    client = BufferedClient(JWTMiddleware(app, secret=SECRET, protect=["/api"]))
    forbidden = client.get("/api/admin", headers=bearer(mint(scope="read")))
    assert forbidden.status_code == 403, forbidden.data
    assert forbidden.json == {"error": "insufficient_scope", "message": "The token does not grant the required scope"}
    assert forbidden.headers["WWW-Authenticate"].endswith('scope="admin"')
    assert client.get("/api/admin", headers=bearer(mint(scope="admin"))).json == {"admin": "alice"}
    missing = client.get("/open")
    assert missing.status_code == 401 and missing.json["error"] == "missing_token"
    assert client.get("/open", headers=bearer(mint())).json == {"ok": True}
