"""Canonical paths and prefix matching: no spelling of a protected path reaches the app."""

from __future__ import annotations

import json

import pytest

from jwt_wsgi import JWTMiddleware
from jwt_wsgi.paths import BadPath, PrefixSet, canonical_path, fold, readings

from .conftest import CANARY_ADMIN, CANARY_API, SECRET, BufferedClient, bearer, canary_app, mint


def native(text: str) -> str:
    """The PEP 3333 native string a server puts in PATH_INFO for UTF-8 ``text``."""
    return text.encode("utf-8").decode("latin-1")


@pytest.mark.parametrize(
    ("script_name", "path_info", "expected"),
    [
        pytest.param("", "/api", "/api", id="plain"),
        pytest.param("", "", "/", id="empty"),
        pytest.param("", "//api//me", "/api/me", id="double-slashes"),
        pytest.param("", "/./api/./me", "/api/me", id="dot-segments"),
        pytest.param("", "/x/../api", "/api", id="dotdot"),
        pytest.param("", "/../../api", "/api", id="dotdot-above-root"),
        pytest.param("", "/%2Fapi", "/api", id="encoded-slash-left-by-server"),
        pytest.param("", "/api%252Fme", "/api/me", id="double-encoded"),
        pytest.param("", "/%2e%2e/api", "/api", id="encoded-dots"),
        pytest.param("/api", "/me", "/api/me", id="script-name"),
        pytest.param("", "/api;x=1/me", "/api/me", id="path-params"),
        pytest.param("", "/\\api\\me", "/api/me", id="backslashes"),
        pytest.param("", "/api/me/", "/api/me/", id="trailing-slash-kept"),
        pytest.param("", native("/ad\u200bmin"), "/ad\u200bmin", id="utf8-decoded"),
        pytest.param("", "/\xff\xfe", "/\ufffd\ufffd", id="invalid-utf8-replaced"),
    ],
)
def test_canonical_path(script_name, path_info, expected):
    assert canonical_path(script_name, path_info) == expected


@pytest.mark.parametrize("path", ["/admin\x00", "/admin%00", "/a\r\nb", "/a%0d%0ab", "/admin\t"])
def test_control_characters_are_bad_paths(path):
    with pytest.raises(BadPath):
        canonical_path("", path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/API/Me", "/api/me"),
        ("/ad\u200bmin", "/admin"),
        ("/\uff21dmin", "/admin"),  # full-width A (NFKC)
        ("/admin.", "/admin"),
        ("/admin /x", "/admin/x"),
        ("/api/", "/api"),
    ],
)
def test_fold(path, expected):
    assert fold(path) == expected


def test_prefix_matching_is_by_segment():
    prefixes = PrefixSet(["/api", "/Admin/"])
    assert prefixes.covers("/api") and prefixes.covers("/api/x") and prefixes.covers("/admin")
    assert not prefixes.covers("/apiary") and not prefixes.covers("/administrator") and not prefixes.covers("/")
    assert PrefixSet(["/"]).covers("/anything")


# -- through the middleware: every spelling is refused without a token ----------------------------
SPELLINGS = [
    "/api/me", "/api/me/", "//api/me", "///api/me", "/api//me", "/./api/me", "/x/../api/me", "/public/../api/me",
    "/%2Fapi/me", "/api%2Fme", "/%2e/api/me", "/%2E%2E/api/me", "/API/me", "/Api/Me", "/api;x=1/me",
    "/api/me;.css", "/%5capi/me", "/api.", "/api%20", native("/\uff21PI/me"), native("/ap\u200bi/me"),
    "/admin", "/admin/panel", "//admin/panel", "/ADMIN/panel", "/admin/panel/.", "/admin%252Fpanel",
]


@pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD")
@pytest.mark.parametrize("path", SPELLINGS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "PROPFIND", "FOO"])
def test_no_spelling_of_a_protected_path_passes(client, path, method):
    # PATH_INFO set directly, as a server delivers it: Werkzeug's client would read "//api" as a host.
    response = client.open("/", method=method, environ_overrides={"PATH_INFO": path})
    assert response.status_code == 401
    assert CANARY_API not in response.data and CANARY_ADMIN not in response.data
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


@pytest.mark.parametrize("path", ["/administrator", "/apiary", "/public", "/", "/ap", "/api-docs"])
def test_neighbours_of_a_prefix_are_not_protected(client, path):
    assert client.get(path).status_code == 200


def test_script_name_cannot_move_the_mount():
    # Not through wsgiref.validate: gunicorn really produces PATH_INFO "in/panel" for SCRIPT_NAME "/adm".
    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, protect=["/api", "/admin"]))
    for script_name, path_info in [("/admin", "/panel"), ("/adm", "in/panel"), ("/api", "/me"), ("/api", "")]:
        response = client.get("/", environ_overrides={"SCRIPT_NAME": script_name, "PATH_INFO": path_info})
        assert response.status_code == 401, (script_name, path_info)


@pytest.mark.parametrize(
    ("script_name", "path_info"),
    [("/zzz", "/admin/panel"), ("/x", "/api/me"), ("/app", "/api/me"), ("/app", "//admin/panel")],
)
def test_a_mount_point_cannot_hide_a_protected_path(script_name, path_info):
    """Routers dispatch on PATH_INFO alone: a SCRIPT_NAME in front must not unprotect it (threat model §3.2)."""
    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, protect=["/api", "/admin"]))
    response = client.get("/", environ_overrides={"SCRIPT_NAME": script_name, "PATH_INFO": path_info})
    assert response.status_code == 401


def test_prefixes_may_name_the_mount_too():
    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, protect=["/app/api"], public=["/app/api/health"]))
    mounted = {"SCRIPT_NAME": "/app"}
    assert client.get("/", environ_overrides={**mounted, "PATH_INFO": "/api/me"}).status_code == 401
    assert client.get("/", environ_overrides={**mounted, "PATH_INFO": "/api/health"}).status_code == 200
    assert client.get("/", environ_overrides={**mounted, "PATH_INFO": "/other"}).status_code == 200


def test_public_exceptions_match_exactly(make_client):
    client = make_client(public=["/api/health"])
    assert client.get("/api/health").status_code == 200
    # Other spellings of the public path are exempt only if every router reading agrees: a router
    # that reads "//" or "." literally would send them to a catch-all under /api instead.
    for path in ["/API/health", "/api/health/", "/api/health/x", "/api/healthz", "//api/./health", "/api/./health",
                 "/api/x/../health", "/api/health;x", "/api/%68ealth"]:
        assert client.get("/", environ_overrides={"PATH_INFO": path}).status_code == 401, path


def test_control_characters_get_400(client):
    response = client.get("/api/me", environ_overrides={"PATH_INFO": "/api/me\x00"})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_valid_token_on_odd_spelling_reaches_app(client):
    response = client.get("/", headers=bearer(mint()), environ_overrides={"PATH_INFO": "//API/./me"})
    assert response.status_code == 200 and b'"user": "alice"' in response.data


def test_everything_is_protected_by_default(make_client):
    client = make_client(protect=["/"])
    for path in ["/", "/x", "/public"]:
        assert client.get(path).status_code == 401
    assert client.post("/auth/login", json={"username": "alice", "password": "nope"}).status_code == 401
    assert client.post("/auth/login", json={"username": "alice", "password": "P@ss-alice"}).status_code == 200


# -- every reading a router could take --------------------------------------------------------------
def test_readings_include_the_literal_and_the_resolved_path():
    assert readings("", "/api/../x") == {"/api/../x", "/x"}
    assert readings("", "/api/%2e%2e/x") == {"/api/%2e%2e/x", "/api/../x", "/x"}
    assert readings("", "/api/users/42") == {"/api/users/42"}
    assert canonical_path("", "/a\\..\\api;x/y") in readings("", "/a\\..\\api;x/y")


def test_a_control_character_in_any_decoding_round_is_a_bad_path():
    with pytest.raises(BadPath):
        readings("", "/api/x%0d%0aFORGED")


def literal_router(environ, start_response):
    """What Werkzeug, Flask, Bottle, Django and hand-written prefix routers do: match PATH_INFO as
    the server passed it, ``..`` as literal text."""
    path = environ["PATH_INFO"]
    for prefix, route in (("/api/users/", "users"), ("/api/", "api"), ("/admin/", "admin"), ("/public", "public")):
        if path.startswith(prefix) or path == prefix.rstrip("/"):
            body = json.dumps({"route": route, "arg": path[len(prefix):], "user": environ.get("REMOTE_USER")}).encode()
            start_response("200 OK", [("Content-Type", "application/json")])
            return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


# The reported bypass: PATH_INFO as gunicorn passes it (percent-decoded once), the route a literal
# router reaches, and the answer without a token.
BYPASS_ROWS = [
    pytest.param(["/api", "/admin"], [], "/api/foo", id="plain"),
    pytest.param(["/api", "/admin"], [], "/api/../x", id="encoded-dotdot"),  # raw /api/%2e%2e/x
    pytest.param(["/api", "/admin"], [], "/api/.%2e/x", id="half-encoded-dotdot"),
    pytest.param(["/api", "/admin"], [], "/api/%2E%2E/etc", id="double-encoded-dotdot"),
    pytest.param(["/api", "/admin"], [], "/api/users/..%2F..", id="double-encoded-slash"),  # raw ..%252F..
    pytest.param(["/"], ["/public"], "/admin/../public", id="dotdot-into-public"),
    pytest.param(["/"], ["/public"], "/admin/..", id="dotdot-to-root"),
    pytest.param(["/"], ["/public"], "/public/../admin/x", id="public-then-dotdot"),
    pytest.param(["/"], ["/public"], "/admin/./..;x/public", id="params-and-dots"),
    pytest.param(["/"], ["/public"], "/admin\\..\\public", id="backslashes"),
]


@pytest.mark.parametrize(("protect", "public", "path_info"), BYPASS_ROWS)
def test_no_router_reading_reaches_a_protected_route_without_a_token(protect, public, path_info):
    client = BufferedClient(JWTMiddleware(literal_router, secret=SECRET, protect=protect, public=public,
                                          scopes={"/admin": ["admin"]}))
    response = client.get("/", environ_overrides={"PATH_INFO": path_info})
    assert response.status_code == 401, (path_info, response.data)
    assert b"route" not in response.data


@pytest.mark.parametrize("path_info", ["/admin/..", "/admin/../public", "/admin/%2e%2e", "/public/../admin/x"])
def test_scopes_of_every_reading_are_required(path_info):
    client = BufferedClient(JWTMiddleware(literal_router, secret=SECRET, protect=["/"], public=["/public"],
                                          scopes={"/admin": ["admin"]}))
    without = client.get("/", headers=bearer(mint(scope="read")), environ_overrides={"PATH_INFO": path_info})
    assert without.status_code == 403, path_info
    assert 'error="insufficient_scope"' in without.headers["WWW-Authenticate"]
    with_scope = client.get("/", headers=bearer(mint(scope="admin")), environ_overrides={"PATH_INFO": path_info})
    assert with_scope.status_code in (200, 404), path_info


@pytest.mark.parametrize("path_info", ["/public", "/public/", "/api/users/42", "/v1.2/file.tar.gz", "/a;b", "/%7Euser"])
def test_ordinary_paths_keep_working(path_info):
    client = BufferedClient(JWTMiddleware(literal_router, secret=SECRET, protect=["/api", "/admin"]))
    expected = 401 if path_info.startswith("/api") else (200 if path_info.startswith("/public") else 404)
    assert client.get("/", environ_overrides={"PATH_INFO": path_info}).status_code == expected
    assert client.get("/", headers=bearer(mint()), environ_overrides={"PATH_INFO": path_info}).status_code in (200, 404)


@pytest.mark.parametrize("path_info", ["/auth/login/..", "/auth/x/../login", "/auth/login;x", "//auth/login"])
def test_an_endpoint_answers_only_when_every_reading_names_it(make_client, path_info):
    client = make_client(protect=["/"])
    good = {"username": "alice", "password": "P@ss-alice"}
    assert client.post("/auth/login", json=good).status_code == 200
    response = client.post("/", json=good, environ_overrides={"PATH_INFO": path_info})
    assert response.status_code == 401
    assert "access_token" not in response.get_data(as_text=True)
