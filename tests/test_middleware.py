"""The HTTP contract of protected paths (PRODUCT.md §2), through WSGI."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwt_wsgi import ConfigurationError, JWTMiddleware, get_claims

from .conftest import (
    CANARY_API,
    HS,
    OTHER_SECRET,
    SECRET,
    BufferedClient,
    J,
    b64,
    bearer,
    canary_app,
    claims,
    login,
    mint,
)

NOW = int(time.time())
H0 = {"alg": "HS256", "typ": "JWT"}


def _rsa_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, public


ATTACKER_RSA, ATTACKER_PUB = _rsa_pem()

# Every row: a token that must be refused with 401 invalid_token.
BAD_TOKENS = [
    pytest.param(lambda: mint(key=OTHER_SECRET), id="wrong-key"),
    pytest.param(lambda: mint()[:-4], id="signature-truncated"),
    pytest.param(lambda: mint().rsplit(".", 1)[0] + ".", id="empty-signature"),
    pytest.param(lambda: J({"alg": "none", "typ": "JWT"}) + "." + J(claims()) + ".", id="alg-none"),
    pytest.param(lambda: J({"alg": "None"}) + "." + J(claims()) + ".", id="alg-None"),
    pytest.param(lambda: J({"alg": "nOnE"}) + "." + J(claims()) + "." + mint().split(".")[2], id="alg-none-with-sig"),
    pytest.param(lambda: HS(SECRET, {"alg": None}, claims()), id="alg-null"),
    pytest.param(lambda: HS(SECRET, {"alg": "HS384"}, claims(), hashlib.sha384), id="alg-substitution-hs384"),
    pytest.param(lambda: HS(SECRET, {"alg": "HS512"}, claims(), hashlib.sha512), id="alg-hs512"),
    pytest.param(lambda: jwt.encode(claims(), ATTACKER_RSA, algorithm="RS256"), id="attacker-rs256"),
    pytest.param(lambda: HS("", H0, claims(sub="admin")), id="blank-secret"),
    pytest.param(lambda: HS("secret", H0, claims()), id="common-secret"),
    pytest.param(lambda: mint(exp=NOW - 10), id="expired"),
    pytest.param(lambda: mint(exp=None), id="no-exp"),
    pytest.param(lambda: mint(exp=str(NOW + 600)), id="exp-string"),
    pytest.param(lambda: mint(exp=True), id="exp-bool"),
    pytest.param(lambda: HS(SECRET, H0, {**claims(), "exp": [NOW + 600]}), id="exp-list"),
    pytest.param(lambda: mint(nbf=NOW + 3600), id="nbf-future"),
    pytest.param(lambda: mint(nbf="0"), id="nbf-string"),
    pytest.param(lambda: mint(iat=NOW + 3600), id="iat-future"),
    pytest.param(lambda: mint(iat="now"), id="iat-string"),
    pytest.param(lambda: mint(sub=None), id="no-sub"),
    pytest.param(lambda: mint(sub=""), id="sub-empty"),
    pytest.param(lambda: HS(SECRET, H0, {**claims(), "sub": 123}), id="sub-number"),
    pytest.param(lambda: HS(SECRET, H0, {**claims(), "sub": ["alice", "admin"]}), id="sub-list"),
    pytest.param(lambda: mint(aud="other"), id="unexpected-aud"),
    pytest.param(lambda: mint(type="refresh"), id="refresh-as-access"),
    pytest.param(lambda: mint(headers={"crit": ["exp"]}), id="unknown-crit"),
    pytest.param(lambda: HS(SECRET, {**H0, "kid": 42}, claims()), id="kid-not-string"),
    pytest.param(lambda: HS("", {**H0, "kid": "../../../../dev/null"}, claims()), id="kid-path-empty-key"),
    pytest.param(lambda: (lambda t: J(jwt.get_unverified_header(t)) + "." + J({**claims(), "sub": "admin"})
                          + "." + t.split(".")[2])(mint()), id="claims-edited"),
    pytest.param(lambda: mint() + ".x", id="four-segments"),
    pytest.param(lambda: "a.b.c.d.e", id="five-segments-jwe"),
    pytest.param(lambda: "x" * 9000, id="over-size-cap"),
    pytest.param(lambda: "." * 2, id="dots"),
    pytest.param(lambda: "null", id="null"),
    pytest.param(lambda: "A" * 4000 + "." + "B" * 3000 + ".AAAA", id="junk-segments"),
    pytest.param(lambda: b64(b'{"alg":"HS256","x":' + b"[" * 3000 + b"]" * 3000 + b"}") + "." + J({}) + ".AAAA",
                 id="nested-json-header"),
    pytest.param(lambda: "=".join(mint().split(".")) , id="no-dots"),
    pytest.param(lambda: HS(SECRET, {"alg": "HS256", "alg2": "x"}, [1, 2]), id="payload-not-object"),
    pytest.param(lambda: HS(OTHER_SECRET, {**H0, "jku": "http://127.0.0.1:9/keys"}, claims()), id="jku-header"),
    pytest.param(lambda: jwt.encode(claims(), ATTACKER_RSA, algorithm="RS256",
                                    headers={"jwk": json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(
                                        ATTACKER_RSA.public_key()))}), id="embedded-jwk"),
]


@pytest.mark.parametrize("make_token", BAD_TOKENS)
def test_bad_tokens_are_refused(client, make_token):
    token = make_token()
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code in (400, 401), response.data
    assert CANARY_API not in response.data
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="jwt_wsgi"')
    if response.status_code == 401:
        assert 'error="invalid_token"' in challenge
    body = response.json
    assert set(body) == {"error", "message"}
    # No library text, no token, no claim values echoed.
    assert "Signature" not in response.text and token[:20] not in response.text
    # The valid token keeps working after every invalid one (persistence check).
    assert client.get("/api/me", headers=bearer(mint())).status_code == 200


def test_expired_is_told_apart_from_invalid(client):
    expired = client.get("/api/me", headers=bearer(mint(exp=NOW - 10)))
    forged = client.get("/api/me", headers=bearer(mint(key=OTHER_SECRET)))
    assert expired.json == {"error": "token_expired", "message": "The token has expired"}
    assert forged.json == {"error": "invalid_token", "message": "The token is invalid"}
    assert 'error_description="The token has expired"' in expired.headers["WWW-Authenticate"]


def test_missing_token_is_401_with_challenge_and_no_error_code(client):
    response = client.get("/api/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'
    assert response.json == {"error": "missing_token", "message": "Authentication required"}
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Bearer", id="bearer-without-token"),
        pytest.param("Bearer ", id="bearer-space"),
        pytest.param("Bearer  TOKEN", id="two-spaces"),
        pytest.param("Bearer TOKEN,Bearer OTHER", id="two-headers-joined"),
        pytest.param("Bearer TOKEN, Bearer OTHER", id="two-headers-joined-space"),
        pytest.param("Bearer a b", id="two-credentials"),
        pytest.param("Bearer tok\u00e9n", id="non-token68"),
    ],
)
def test_malformed_requests_are_400(client, header):
    response = client.get("/api/me", headers={"Authorization": header.replace("TOKEN", mint())})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    assert response.json["error"] == "invalid_request"


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cHc=", "Token abc", "Digest x", "null"])
def test_other_schemes_count_as_no_token(client, header):
    response = client.get("/api/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json["error"] == "missing_token"


def test_scheme_is_case_insensitive(client):
    assert client.get("/api/me", headers={"Authorization": "bearer " + mint()}).status_code == 200
    assert client.get("/api/me", headers={"Authorization": "BEARER " + mint()}).status_code == 200


def test_app_receives_claims_remote_user_and_auth_type(client):
    response = client.get("/api/me", headers=bearer(mint(scope="read")))
    seen = json.loads(response.data[len(CANARY_API) + 1:])
    assert seen["user"] == "alice" and seen["auth"] == "Bearer"
    assert seen["claims"]["sub"] == "alice" and seen["claims"]["scope"] == "read"


def test_forged_environ_keys_are_removed(client):
    forged = {"jwt_wsgi.claims": {"sub": "admin"}, "jwt_wsgi.admin": True}
    response = client.get("/public", environ_overrides=forged)
    assert response.json["claims"] is None and response.json["forged"] == []
    response = client.get("/api/me", environ_overrides=forged)
    assert response.status_code == 401


# -- optional authentication outside `protect` ---------------------------------------------------
@pytest.mark.parametrize(
    ("headers", "user"),
    [
        pytest.param({}, None, id="no-token"),
        pytest.param({"Authorization": "Bearer junk"}, None, id="junk-token"),
        pytest.param({"Authorization": "Bearer"}, None, id="malformed"),
        pytest.param({"Authorization": "Bearer a,Bearer b"}, None, id="two-tokens"),
        pytest.param("expired", None, id="expired"),
        pytest.param("valid", "alice", id="valid-token-fills-claims"),
    ],
)
def test_unprotected_paths_authenticate_optionally(client, headers, user):
    if headers == "expired":
        headers = bearer(mint(exp=NOW - 5))
    elif headers == "valid":
        headers = bearer(mint())
    response = client.get("/public", headers=headers)
    assert response.status_code == 200
    assert response.json["user"] == user


def test_public_exception_with_token_still_fills_claims(make_client):
    client = make_client(public=["/api/health"])
    response = client.get("/api/health", headers=bearer(mint()))
    assert response.status_code == 200 and b'"user": "alice"' in response.data


# -- scopes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("claim", "status"),
    [
        pytest.param({}, 403, id="no-scope-claim"),
        pytest.param({"scope": "read"}, 403, id="other-scope"),
        pytest.param({"scope": "read admin"}, 200, id="scope-string"),
        pytest.param({"scp": ["admin"]}, 200, id="scp-list"),
        pytest.param({"scopes": ["read", "admin"]}, 200, id="scopes-list"),
        pytest.param({"scope": "administrator"}, 403, id="no-substring-match"),
        pytest.param({"scope": ["admin"]}, 200, id="scope-list"),
    ],
)
def test_scopes(make_client, claim, status):
    client = make_client(scopes={"/admin": ["admin"]})
    response = client.get("/admin/panel", headers=bearer(mint(**claim)))
    assert response.status_code == status
    if status == 403:
        challenge = response.headers["WWW-Authenticate"]
        assert 'error="insufficient_scope"' in challenge and 'scope="admin"' in challenge
        assert response.json["error"] == "insufficient_scope"


def test_nested_scope_prefixes_add_up(make_client):
    client = make_client(scopes={"/api": ["read"], "/api/write": ["write"]})
    assert client.get("/api/me", headers=bearer(mint(scope="read"))).status_code == 200
    assert client.get("/api/write/x", headers=bearer(mint(scope="read"))).status_code == 403
    assert client.get("/api/write/x", headers=bearer(mint(scope="write"))).status_code == 403
    assert client.get("/API/Write/x", headers=bearer(mint(scope="read write"))).status_code == 200


# -- CORS preflight -------------------------------------------------------------------------------
def test_cors_preflight_passes_without_token(make_client):
    seen = []

    def cors_app(environ, start_response):
        seen.append((environ["REQUEST_METHOD"], environ.get("REMOTE_USER")))
        start_response("200 OK", [("Content-Type", "text/plain"), ("Access-Control-Allow-Origin", "https://app.example"),
                                  ("Access-Control-Allow-Methods", "GET, DELETE"), ("Vary", "Origin"),
                                  ("Set-Cookie", "x=y")])
        return [b"CANARY-API from a handler that ignores the method"]

    client = make_client(cors_app)
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"}
    response = client.options("/api/me", headers=preflight)
    # The app's CORS answer comes back; nothing else of its response does (threat model §3.3).
    assert response.status_code == 204 and response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert response.headers["Vary"] == "Origin" and "Set-Cookie" not in response.headers
    assert seen == [("OPTIONS", None)]
    assert client.options("/api/me", headers={"Origin": "https://app.example"}).status_code == 401
    assert client.options("/api/me").status_code == 401
    strict = make_client(cors_app, cors_preflight=False)
    assert strict.options("/api/me", headers=preflight).status_code == 401


# -- token sources ------------------------------------------------------------------------------
def test_custom_header_takes_the_raw_token(make_client):
    client = make_client(header_name="TOKEN")
    assert client.get("/api/me", headers={"TOKEN": mint()}).status_code == 200
    assert client.get("/api/me", headers={"Authorization": "Bearer " + mint()}).status_code == 401
    assert client.get("/api/me", headers={"TOKEN": "Bearer " + mint()}).status_code == 400


def test_cookie_and_query_sources(make_client):
    client = make_client(token_sources=["header", "cookie", "query"], query_param="access_token")
    token = mint()

    def cookie(value):  # Werkzeug's client manages Cookie itself; set the raw header as a server would
        return {"HTTP_COOKIE": value}

    assert client.get("/api/me", environ_overrides=cookie(f"theme=dark; access_token={token}")).status_code == 200
    assert client.get(f"/api/me?access_token={token}").status_code == 200
    # The same token in two places is fine; two different tokens are not.
    assert client.get("/api/me", headers=bearer(token),
                      environ_overrides=cookie(f"access_token={token}")).status_code == 200
    other = mint(jti="other")
    assert client.get("/api/me", headers=bearer(token),
                      environ_overrides=cookie(f"access_token={other}")).status_code == 400
    two_cookies = cookie(f"access_token={token}; access_token={other}")
    assert client.get("/api/me", environ_overrides=two_cookies).status_code == 400
    assert client.get(f"/api/me?access_token={token}&access_token={other}").status_code == 400


def test_query_tokens_are_ignored_unless_configured(client):
    assert client.get(f"/api/me?access_token={mint()}").status_code == 401
    assert client.get("/api/me", environ_overrides={"HTTP_COOKIE": f"access_token={mint()}"}).status_code == 401


# -- error formats ------------------------------------------------------------------------------
def test_problem_format(make_client):
    response = make_client(error_format="problem").get("/api/me", headers=bearer(mint(exp=NOW - 1)))
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json == {"type": "about:blank", "title": "Unauthorized", "status": 401,
                             "detail": "The token has expired", "code": "token_expired"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, {"error": "2", "message": "Token required"}, id="missing"),
        pytest.param({"TOKEN": mint(exp=NOW - 1)}, {"error": "1", "message": "Token has expired"}, id="expired"),
        pytest.param({"TOKEN": mint(key=OTHER_SECRET)}, {"error": "1", "message": "Invalid Token"}, id="invalid"),
    ],
)
def test_article_format(make_client, headers, message):
    response = make_client(error_format="article", header_name="TOKEN").get("/api/me", headers=headers)
    assert response.status_code == 401
    assert response.json == message


def test_article_format_other_failures_are_error_3(make_client):
    # Any failure that is not about the token itself: the article's "An error occured", our status.
    client = make_client(error_format="article", header_name="TOKEN", scopes={"/api/admin": ["admin"]})
    response = client.get("/api/admin", headers={"TOKEN": mint(scope="read")})
    assert response.status_code == 403
    assert response.json == {"error": "3", "message": "An error occured"}


def test_callable_format(make_client):
    client = make_client(error_format=lambda error: {"msg": error.message, "status": error.status})
    response = client.get("/api/me")
    assert response.status_code == 401 and response.json == {"msg": "Authentication required", "status": 401}
    assert "WWW-Authenticate" in response.headers


# -- failures: ours are 500 and generic, the app's pass through ----------------------------------
def test_internal_failure_is_generic_500_and_logged(make_client, caplog):
    def broken_format(error):
        raise RuntimeError("secret internals")

    client = make_client(error_format=broken_format)
    caplog.set_level(logging.ERROR, logger="jwt_wsgi")
    response = client.get("/api/me")
    assert response.status_code == 500
    assert b"secret internals" not in response.data and b"Traceback" not in response.data
    assert "secret internals" in caplog.text


class AppError(Exception):
    pass


def test_app_exceptions_are_not_swallowed():
    def failing_app(environ, start_response):
        raise AppError("the app's own")

    client = BufferedClient(JWTMiddleware(failing_app, secret=SECRET, protect=["/api"]))
    with pytest.raises(AppError):
        client.get("/public")
    with pytest.raises(AppError):
        client.get("/api/x", headers=bearer(mint()))


def test_app_iterable_is_returned_as_is_and_closed():
    closed = []

    class Body:
        def __iter__(self):
            yield b"streamed"

        def close(self):
            closed.append(True)

    body = Body()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    middleware = JWTMiddleware(app, secret=SECRET, protect=["/api"])
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/x", "SCRIPT_NAME": "",
               "HTTP_AUTHORIZATION": "Bearer " + mint()}
    assert middleware(environ, lambda *a: None) is body
    response = BufferedClient(middleware).get("/api/x", headers=bearer(mint()))
    assert response.data == b"streamed" and closed


def test_get_claims_and_context(client):
    seen = {}

    def app(environ, start_response):
        seen["explicit"] = get_claims(environ)
        seen["implicit"] = get_claims()
        start_response("200 OK", [])
        return [b""]

    BufferedClient(JWTMiddleware(app, secret=SECRET)).get("/", headers=bearer(mint()))
    assert seen["explicit"]["sub"] == "alice" and seen["implicit"] is seen["explicit"]
    assert get_claims() is None  # no request in flight: nothing leaks between requests


# -- issuer / audience / leeway -------------------------------------------------------------------
def test_issuer_and_audience(make_client):
    client = make_client(issuer="https://login.example", audience="api")
    good = mint(iss="https://login.example", aud="api")
    assert client.get("/api/me", headers=bearer(good)).status_code == 200
    for bad in [mint(iss="https://login.example"), mint(aud="api"), mint(iss="https://login.exampl", aud="api"),
                mint(iss="evil", aud="api"), mint(iss="https://login.example", aud="other"),
                HS(SECRET, H0, claims(iss=["https://login.example"], aud="api"))]:
        assert client.get("/api/me", headers=bearer(bad)).status_code == 401
    # Tokens issued by the login endpoint carry both.
    token = login(client)["access_token"]
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["iss"] == "https://login.example" and payload["aud"] == "api"
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


def test_leeway(make_client):
    now = int(time.time())  # not the module's NOW: a long run would eat the leeway
    assert make_client(leeway=30).get("/api/me", headers=bearer(mint(exp=now - 5))).status_code == 200
    assert make_client(leeway=30).get("/api/me", headers=bearer(mint(exp=now - 60))).status_code == 401


# -- asymmetric algorithms -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alg", "make_key"),
    [
        pytest.param("RS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), id="RS256"),
        pytest.param("PS256", lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), id="PS256"),
        pytest.param("ES256", lambda: ec.generate_private_key(ec.SECP256R1()), id="ES256"),
        pytest.param("ES384", lambda: ec.generate_private_key(ec.SECP384R1()), id="ES384"),
        pytest.param("EdDSA", lambda: __import__("cryptography.hazmat.primitives.asymmetric.ed25519",
                                                 fromlist=["x"]).Ed25519PrivateKey.generate(), id="EdDSA"),
    ],
)
def test_asymmetric_round_trip_and_key_confusion(tmp_path, users_file, alg, make_key):
    key = make_key()
    priv = tmp_path / "priv.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    client = BufferedClient(JWTMiddleware(canary_app, algorithm=alg, private_key=str(priv), users_file=users_file,
                                          protect=["/api"]))
    token = login(client)["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"]
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    # The public key as an HMAC secret (RS->HS confusion), in every spelling an attacker has.
    spellings = [pub_pem, pub_pem.rstrip(b"\n"), key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)]
    jwks = client.get("/.well-known/jwks.json").json
    spellings.append(json.dumps(jwks["keys"][0]).encode())
    for secret in spellings:
        forged = HS(secret, {"alg": "HS256", "kid": header["kid"]}, claims(sub="admin"))
        assert client.get("/api/me", headers=bearer(forged)).status_code == 401
    # Published JWKS: public members only.
    assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(jwks["keys"][0])
    assert jwks["keys"][0]["kid"] == header["kid"]


def test_hmac_deployments_publish_no_jwks(client):
    response = client.get("/.well-known/jwks.json")
    assert response.json["public"] == "/.well-known/jwks.json"  # not mounted: the app's own path
    assert SECRET.encode() not in response.data


def test_endpoint_paths_set_to_none_are_not_mounted(make_client):
    client = make_client(protect=["/api"], login_path=None, refresh_path=None, logout_path=None)
    response = client.post("/auth/login", json={"username": "alice", "password": "P@ss-alice"})
    assert response.status_code == 200 and b"public" in response.data  # reached the app


def test_base64_padding_is_not_a_second_token(client):
    token = mint()
    padded = token + "="
    response = client.get("/api/me", headers=bearer(padded))
    assert response.status_code in (200, 401)  # whatever PyJWT decides, never a 500
    assert client.get("/api/me", headers=bearer(base64.b64encode(b"x").decode())).status_code == 401


# -- start-up warnings -------------------------------------------------------------------------
def test_login_not_mounted_is_logged_at_start_up(caplog):
    # No users_file and no authenticate: /auth/login is left to the application; the log says why.
    caplog.set_level(logging.WARNING, logger="jwt_wsgi")
    JWTMiddleware(canary_app, secret=SECRET, protect=["/api"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("login_path /auth/login is not mounted" in w for w in warnings), warnings
    caplog.clear()
    JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], login_path=None)
    assert not [r for r in caplog.records if "not mounted" in r.getMessage()]


@pytest.mark.parametrize("value", [
    pytest.param("JWT {token}", id="JWT-scheme"),
    pytest.param("Token {token}", id="Token-scheme"),
    pytest.param("{token}", id="bare-token"),
])
def test_a_token_under_another_scheme_is_told_the_bearer_scheme(make_client, value):
    # Still no token for us (401 missing_token, as PRODUCT fixes), but the message says what to send.
    response = make_client().get("/api/me", headers={"Authorization": value.format(token=mint())})
    assert response.status_code == 401
    assert response.json["error"] == "missing_token"
    assert "Authorization: Bearer <token>" in response.json["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


def test_other_authentication_schemes_are_left_alone(make_client):
    client = make_client()
    basic = client.get("/api/me", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert basic.status_code == 401 and basic.json["message"] == "Authentication required"
    # Outside protect, a token under the wrong scheme is ignored as before: the app answers.
    assert client.get("/public", headers={"Authorization": "JWT " + mint()}).status_code == 200


def test_keyword_construction_says_it_does_not_read_the_environment(monkeypatch):
    monkeypatch.setenv("JWT_WSGI_SECRET", "an-exported-secret-that-keywords-do-not-read-" + "x" * 20)
    with pytest.raises(ConfigurationError) as info:
        JWTMiddleware(canary_app, protect=["/api"])
    assert "do not read the environment" in str(info.value) and "from_env" in str(info.value)
    assert "an-exported-secret" not in str(info.value)
    monkeypatch.delenv("JWT_WSGI_SECRET")
    with pytest.raises(ConfigurationError) as info:
        JWTMiddleware(canary_app, protect=["/api"])
    assert "from_env" not in str(info.value)


# -- one clock: the middleware's clock is the verifier's, the cache's, the issuer's, the store's ---------
def test_one_injected_clock_decides_every_time_check(users_file):
    from jwt_wsgi.testing import TokenFactory

    from .conftest import FakeClock

    later = NOW - 10 * 365 * 86400  # years ago: a real clock would call these tokens expired
    clock = FakeClock(later)
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], users_file=users_file, clock=clock)
    client = BufferedClient(middleware)
    token = mint(iat=later, exp=later + 60)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200  # verified by the injected clock
    issued = middleware.issue_tokens("alice")["access_token"]
    assert jwt.decode(issued, options={"verify_signature": False})["iat"] == later
    assert client.get("/api/me", headers=bearer(issued)).status_code == 200
    expired = TokenFactory(middleware).expired()  # an hour before the middleware's clock (the wall's: "not yet valid")
    assert client.get("/api/me", headers=bearer(expired)).json["error"] == "token_expired"
    clock.now = later + 60  # the cached verdict ends with exp, by the same clock
    assert client.get("/api/me", headers=bearer(token)).json["error"] == "token_expired"
    assert client.post("/auth/logout", headers=bearer(issued)).status_code == 204
    assert client.get("/api/me", headers=bearer(issued)).json["error"] == "token_revoked"
