"""Forward auth: ``verify_path`` answers a proxy's question with the middleware's own decision.

nginx ``auth_request`` names the request it holds in ``X-Original-URI``/``X-Original-Method``,
Traefik ``ForwardAuth`` in ``X-Forwarded-Uri``/``X-Forwarded-Method``/``X-Forwarded-Host``. Each
row below asks the verifier about a URI and checks the answer against what the middleware itself
does with the same request, so the two cannot drift apart.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

import pytest

from jwt_wsgi import ConfigurationError, JWTMiddleware

from .conftest import SECRET, BufferedClient, bearer, canary_app, mint
from .test_paths import BYPASS_ROWS

VERIFY = "/_verify"
OPTIONS = {"secret": SECRET, "protect": ["/api", "/admin"], "public": ["/api/health"],
           "scopes": {"/admin": ["admin"]}, "verify_path": VERIFY}


def verifier(**options):
    return BufferedClient(JWTMiddleware(canary_app, **{"login_path": None, **OPTIONS, **options}))


def ask(client, uri, method="GET", headers=None, style="nginx"):
    names = ("X-Original-URI", "X-Original-Method") if style == "nginx" else ("X-Forwarded-Uri", "X-Forwarded-Method")
    sent = {names[0]: uri, names[1]: method, **(headers or {})}
    if style == "traefik":
        sent["X-Forwarded-Host"] = "app.example"
    return client.get(VERIFY, headers=sent)


ROWS = [
    # uri, method, token, expected status
    pytest.param("/api/me", "GET", None, 401, id="protected-no-token"),
    pytest.param("/api/me", "GET", "read", 200, id="protected-token"),
    pytest.param("/api/me?x=1&y=/public", "POST", "read", 200, id="query-dropped"),
    pytest.param("/api/health", "GET", None, 200, id="public"),
    pytest.param("/api/health/", "GET", None, 401, id="public-is-exact"),
    pytest.param("/elsewhere", "GET", None, 200, id="not-protected"),
    pytest.param("/admin/users", "GET", "read", 403, id="scope-missing"),
    pytest.param("/admin/users", "GET", "read admin", 200, id="scope-granted"),
    pytest.param("/API/me", "GET", None, 401, id="case"),
    pytest.param("//api/me", "GET", None, 401, id="double-slash"),
    pytest.param("/api/%2e%2e/x", "GET", None, 401, id="encoded-dotdot"),
    pytest.param("/api/%252e%252e/x", "GET", None, 401, id="double-encoded-dotdot"),
    pytest.param("/admin/..", "GET", "read", 403, id="dotdot-scopes"),
    pytest.param("/admin/..", "GET", None, 401, id="dotdot-to-root"),
    pytest.param("/api/health/../me", "GET", None, 401, id="public-then-dotdot"),
    pytest.param("/api/health#/../me", "GET", None, 401, id="fragment-then-dotdot"),
    pytest.param("/api/me%00", "GET", None, 400, id="nul"),
    pytest.param("/api/me%0d%0aX: y", "GET", None, 400, id="crlf"),
    pytest.param("http://app.example/api/me", "GET", None, 401, id="absolute-form"),
]


@pytest.mark.parametrize("style", ["nginx", "traefik"])
@pytest.mark.parametrize(("uri", "method", "scope", "expected"), ROWS)
def test_decision_table(uri, method, scope, expected, style):
    client = verifier()
    headers = bearer(mint(scope=scope)) if scope else {}
    response = ask(client, uri, method, headers, style)
    assert response.status_code == expected, (uri, response.data)
    if expected == 200:
        assert response.headers.get("X-Auth-User") == ("alice" if scope else None)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.data == b""
    if expected == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if expected == 403:
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


DIRECT_ROWS = [row for row in ROWS if "://" not in row.values[0]]


@pytest.mark.parametrize(("uri", "method", "scope", "expected"), DIRECT_ROWS)
def test_the_verifier_agrees_with_the_middleware(uri, method, scope, expected):
    """The same request sent to the middleware directly gets the same status (the app's 200/404 aside)."""
    client = verifier()
    headers = bearer(mint(scope=scope)) if scope else {}
    path, _, query = uri.partition("?")
    direct = client.open("/", method=method, headers=headers, query_string=query,
                         environ_overrides={"PATH_INFO": unquote_to_bytes(path).decode("latin-1")})
    asked = ask(client, uri, method, headers)
    assert (200 if direct.status_code in (200, 404) else direct.status_code) == asked.status_code


@pytest.mark.parametrize(("protect", "public", "path_info"), BYPASS_ROWS)
def test_no_spelling_around_a_protected_path_is_allowed(protect, public, path_info):
    client = verifier(protect=protect, public=public)
    for uri in {path_info, quote(path_info, safe="/"), quote(path_info, safe="/;")}:
        response = ask(client, uri)
        assert response.status_code == 401, (uri, response.data)
        assert "X-Auth-User" not in response.headers


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="none"),
    pytest.param({"X-Original-URI": "/api/me"}, id="no-method"),
    pytest.param({"X-Original-Method": "GET"}, id="no-uri"),
    pytest.param({"X-Original-URI": "", "X-Original-Method": "GET"}, id="empty-uri"),
    pytest.param({"X-Original-URI": "api/me", "X-Original-Method": "GET"}, id="relative-uri"),
    pytest.param({"X-Original-URI": "/api/me", "X-Original-Method": "G ET"}, id="bad-method"),
    pytest.param({"X-Original-URI": "/api/me", "X-Original-Method": "GET",
                  "X-Forwarded-Uri": "/elsewhere", "X-Forwarded-Method": "GET"}, id="disagreeing-spellings"),
])
def test_a_question_without_a_clear_request_is_400(headers):
    response = verifier().get(VERIFY, headers={**headers, **bearer(mint())})
    assert response.status_code == 400, response.data
    assert "X-Auth-User" not in response.headers


def test_a_client_header_cannot_move_the_question_elsewhere():
    """Behind nginx the client may add X-Forwarded-Uri; behind Traefik, X-Original-URI: refused."""
    client = verifier()
    response = client.get(VERIFY, headers={"X-Original-URI": "/api/me", "X-Original-Method": "GET",
                                           "X-Forwarded-Uri": "/elsewhere", "X-Forwarded-Method": "GET"})
    assert response.status_code == 400
    agreeing = client.get(VERIFY, headers={"X-Original-URI": "/api/me", "X-Original-Method": "GET",
                                           "X-Forwarded-Uri": "/api/me", "X-Forwarded-Method": "GET"})
    assert agreeing.status_code == 401


def test_cors_preflight_is_let_through_only_as_the_middleware_lets_it():
    client = verifier()
    preflight = {"Origin": "https://spa.example", "Access-Control-Request-Method": "POST"}
    assert ask(client, "/api/me", "OPTIONS", preflight).status_code == 200
    assert "X-Auth-User" not in ask(client, "/api/me", "OPTIONS", preflight).headers
    assert ask(client, "/api/me", "OPTIONS").status_code == 401  # not a preflight: a token is needed
    assert ask(client, "/api/me", "GET", preflight).status_code == 401
    assert ask(verifier(cors_preflight=False), "/api/me", "OPTIONS", preflight).status_code == 401


def test_claim_headers_are_selected_and_header_safe():
    client = verifier(verify_claim_headers={"sub": "X-Auth-User", "email": "X-Auth-Email", "tenant": "X-Tenant",
                                            "roles": "X-Roles", "admin": "X-Admin", "note": "X-Note"})
    token = mint(scope="read", email="alice@example.com", tenant=42, roles=["a"], admin=True,
                 note="line\r\nX-Injected: 1")
    response = ask(client, "/api/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.headers["X-Auth-User"] == "alice"
    assert response.headers["X-Auth-Email"] == "alice@example.com"
    assert response.headers["X-Tenant"] == "42"
    for absent in ("X-Roles", "X-Admin", "X-Note", "X-Injected"):
        assert absent not in response.headers
    assert token not in str(response.headers)


def test_a_token_outside_protect_still_names_the_user():
    response = ask(verifier(), "/elsewhere", headers=bearer(mint()))
    assert response.status_code == 200
    assert response.headers["X-Auth-User"] == "alice"
    assert ask(verifier(), "/elsewhere", headers=bearer("junk")).headers.get("X-Auth-User") is None


def test_revoked_and_expired_tokens_are_refused(make_client):
    client = make_client(verify_path=VERIFY)
    tokens = client.post("/auth/login", json={"username": "alice", "password": "P@ss-alice"}).json
    access = tokens["access_token"]
    assert ask(client, "/api/me", headers=bearer(access)).status_code == 200
    assert client.post("/auth/logout", headers=bearer(access), json={}).status_code in (200, 204)
    assert ask(client, "/api/me", headers=bearer(access)).status_code == 401
    expired = mint(exp=1)
    assert ask(client, "/api/me", headers=bearer(expired)).status_code == 401


def test_forward_auth_is_off_by_default():
    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, protect=["/api"]))
    response = client.get("/verify", headers={"X-Original-URI": "/api/me", "X-Original-Method": "GET"})
    assert response.status_code == 200 and b'"public": "/verify"' in response.data  # the app answered
    assert "X-Auth-User" not in response.headers


def test_an_endpoint_path_is_allowed_only_when_every_reading_names_it():
    client = verifier(protect=["/"])
    assert ask(client, "/auth/refresh").status_code == 200
    assert ask(client, "/auth/refresh/..").status_code == 401
    assert ask(client, "/auth/x/../refresh").status_code == 401


def test_the_metrics_page_under_protect_is_refused_without_a_token_as_the_middleware_refuses_it():
    """``metrics_path`` is decided as any path is: the verifier does not wave it through as an endpoint."""
    client = verifier(protect=["/"], metrics_path="/metrics", scopes={"/metrics": ["metrics"]})
    assert client.get("/metrics").status_code == 401  # the middleware itself
    assert ask(client, "/metrics").status_code == 401
    assert ask(client, "/metrics", headers=bearer(mint(sub="alice", scope="read"))).status_code == 403
    assert ask(client, "/metrics", headers=bearer(mint(sub="prometheus", scope="metrics"))).status_code == 200
    assert ask(verifier(protect=["/api"], metrics_path="/metrics"), "/metrics").status_code == 200  # not protected


def test_verify_path_is_reached_only_by_its_exact_spelling():
    """``/_verify/..`` or ``/_VERIFY`` is not the verifier: it is an ordinary (protected) request."""
    client = verifier(protect=["/"])
    for path in ("/_verify/..", "/_VERIFY", "//_verify/x/.."):
        response = client.get(path, headers={"X-Original-URI": "/public", "X-Original-Method": "GET"})
        assert response.status_code == 401, path


@pytest.mark.parametrize(("options", "name"), [
    ({"verify_path": "verify"}, "verify_path"),
    ({"verify_path": "/auth/refresh"}, "verify_path"),
    ({"verify_path": "/healthz", "health_path": "/healthz"}, "verify_path"),
    ({"verify_claim_headers": {"sub": "Bad Header"}}, "verify_claim_headers"),
    ({"verify_claim_headers": {"sub": "Set-Cookie"}}, "verify_claim_headers"),
    ({"verify_claim_headers": "sub"}, "verify_claim_headers"),
])
def test_bad_forward_auth_options_fail_at_start(options, name):
    with pytest.raises(ConfigurationError) as caught:
        JWTMiddleware(canary_app, **{**OPTIONS, **options})
    assert name in str(caught.value)


def test_claim_headers_from_a_string():
    client = verifier(verify_claim_headers="sub=X-User, email=X-Email")
    response = ask(client, "/api/me", headers=bearer(mint(email="a@example.com")))
    assert response.headers["X-User"] == "alice" and response.headers["X-Email"] == "a@example.com"
