"""Login, refresh and logout endpoints through WSGI (PRODUCT.md §2)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import jwt
import pytest
from werkzeug.security import generate_password_hash

from jwt_wsgi import JWTMiddleware

from .conftest import (
    ADMIN_PASSWORD,
    ALICE_PASSWORD,
    FAST_HASH,
    SECRET,
    BufferedClient,
    FakeClock,
    bearer,
    canary_app,
    login,
    mint,
)

LOGIN = "/auth/login"


def test_login_returns_the_oauth_token_response(client):
    before = time.time()
    response = client.post(LOGIN, json={"username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    body = response.json
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
    access = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    refresh = jwt.decode(body["refresh_token"], SECRET, algorithms=["HS256"])
    assert access["sub"] == "alice" and access["type"] == "access" and access["scope"] == "read"
    assert isinstance(access["jti"], str) and access["jti"] != refresh["jti"]
    assert before - 1 <= access["iat"] <= time.time() + 1
    assert access["exp"] - access["iat"] <= 1800
    assert refresh["type"] == "refresh" and refresh["exp"] - refresh["iat"] <= 14 * 86400
    assert client.get("/api/me", headers=bearer(body["access_token"])).status_code == 200


def test_form_login(client):
    response = client.post(LOGIN, data={"username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == 200 and response.json["access_token"]


def test_wrong_credentials_look_the_same_for_unknown_users(make_client):
    client = make_client(login_rate_limit="100/minute", login_ip_rate_limit="100/minute")
    wrong = client.post(LOGIN, json={"username": "alice", "password": "wrong-password"})
    unknown = client.post(LOGIN, json={"username": "nosuchuser", "password": "wrong-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.data == unknown.data
    assert sorted(wrong.headers.items()) == sorted(unknown.headers.items())
    assert wrong.json == {"error": "invalid_grant", "message": "Invalid username or password"}


def test_unknown_users_cost_a_password_hash(tmp_path):
    """Timing (threat model §5.2): measured as work done, not wall time — a hash check happens either way."""
    import werkzeug.security

    calls = []
    original = werkzeug.security.check_password_hash

    def counting(pwhash, password):
        calls.append(pwhash.split("$", 1)[0])
        return original(pwhash, password)

    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"alice": {"password": generate_password_hash("x" * 12, method=FAST_HASH)}}}))
    import jwt_wsgi.users as users_module

    users_module.check_password_hash = counting
    try:
        client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, users_file=str(users)))
        client.post(LOGIN, json={"username": "alice", "password": "nope"})
        client.post(LOGIN, json={"username": "ghost", "password": "nope"})
    finally:
        users_module.check_password_hash = original
    assert calls == [FAST_HASH, FAST_HASH]  # same method, same cost


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        pytest.param({"data": '{"username":"alice","password":"P@ss-alice"}', "content_type": "text/plain"}, 415,
                     id="json-as-text-plain"),
        pytest.param({"data": "x", "content_type": "multipart/form-data; boundary=x"}, 415, id="multipart"),
        pytest.param({"data": '{"username":"alice","password":"P@ss-alice"}'}, 415, id="no-content-type"),
        pytest.param({"data": "{}", "content_type": "application/jsonx"}, 415, id="jsonx"),
        pytest.param({"data": "{}", "content_type": "application/json; charset=utf-16"}, 415, id="utf-16"),
        pytest.param({"json": {"username": "alice"}}, 400, id="no-password"),
        pytest.param({"json": {"password": "x"}}, 400, id="no-username"),
        pytest.param({"json": {"username": ["alice"], "password": "x"}}, 400, id="username-list"),
        pytest.param({"json": {"username": {"$ne": None}, "password": {"$ne": None}}}, 400, id="nosql-object"),
        pytest.param({"json": {"username": "alice", "password": True}}, 400, id="password-bool"),
        pytest.param({"json": {"username": "alice", "password": 1234}}, 400, id="password-number"),
        pytest.param({"json": {"username": "", "password": "x"}}, 400, id="empty-username"),
        pytest.param({"data": "null", "content_type": "application/json"}, 400, id="null"),
        pytest.param({"json": []}, 400, id="list"),
        pytest.param({"json": "str"}, 400, id="string"),
        pytest.param({"data": "{", "content_type": "application/json"}, 400, id="broken-json"),
        pytest.param({"data": '{"username":"bob","username":"alice","password":"P@ss-alice"}',
                      "content_type": "application/json"}, 400, id="duplicate-keys"),
        pytest.param({"data": '{"username":' + "[" * 100000 + "]" * 100000 + "}", "content_type": "application/json"},
                     413, id="deep-nesting-oversized"),
        pytest.param({"data": '{"username":' + "[" * 5000 + "]" * 5000 + "}", "content_type": "application/json"},
                     400, id="deep-nesting"),
        pytest.param({"data": '{"username":"alice","password":' + "1" * 5000 + "}",
                      "content_type": "application/json"}, 400, id="huge-integer"),
        pytest.param({"data": '{"username":"alice","password":1e999999}', "content_type": "application/json"}, 400,
                     id="huge-float"),
        pytest.param({"data": '{"username":"alice","password":NaN}', "content_type": "application/json"}, 400,
                     id="nan"),
        pytest.param({"data": b'\xff\xfe{"username":"alice"}', "content_type": "application/json"}, 400,
                     id="not-utf8"),
        pytest.param({"data": '{"username":"\\ud800","password":"x"}', "content_type": "application/json"}, 400,
                     id="lone-surrogate"),
        pytest.param({"data": '\ufeff{"username":"alice","password":"P@ss-alice"}'.encode(),
                      "content_type": "application/json"}, 400, id="bom"),
        pytest.param({"json": {"username": "a" * 300, "password": "x"}}, 400, id="long-username"),
        pytest.param({"json": {"username": "alice", "password": "x" * 2000}}, 400, id="long-password"),
        pytest.param({"data": "username=alice&username=bob&password=x",
                      "content_type": "application/x-www-form-urlencoded"}, 400, id="duplicate-form-fields"),
        pytest.param({"data": "username=%ff&password=x", "content_type": "application/x-www-form-urlencoded"}, 400,
                     id="form-not-utf8"),
        pytest.param({"data": "x" * 20000, "content_type": "application/json"}, 413, id="oversized"),
    ],
)
def test_bad_login_bodies(client, kwargs, status):
    response = client.post(LOGIN, **kwargs)
    assert response.status_code == status, response.data
    assert response.json["error"] in ("invalid_request", "unsupported_media_type", "payload_too_large")
    assert response.headers["Content-Type"] == "application/json"


def test_oversized_declared_body_is_refused_before_reading(client):
    class Exploding(io.BytesIO):
        def read(self, *args):
            raise AssertionError("the body must not be read")

    response = client.post(LOGIN, input_stream=Exploding(), content_type="application/json",
                           environ_overrides={"CONTENT_LENGTH": str(10 * 1024 * 1024)})
    assert response.status_code == 413


def test_chunked_body_is_capped(client):
    body = io.BytesIO(b'{"username":"' + b"a" * 100_000 + b'"}')
    response = client.post(LOGIN, input_stream=body, content_type="application/json",
                           environ_overrides={"wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"})
    assert response.status_code == 413


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD", "PATCH"])
def test_login_methods(client, method):
    response = client.open(LOGIN + "?username=alice&password=P@ss-alice", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_credentials_in_the_query_string_never_log_in(client):
    response = client.post(LOGIN + "?username=alice&password=P@ss-alice")
    assert response.status_code in (400, 415)


def test_username_is_not_normalised(client):
    for name in ["Alice", "ALICE", "\uff41lice", "alice\u200b", " alice", "alice "]:
        response = client.post(LOGIN, json={"username": name, "password": ALICE_PASSWORD})
        assert response.status_code == 401, name


def test_reserved_claims_cannot_be_set_by_users(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"eve": {
        "password": generate_password_hash("eve-password", method=FAST_HASH),
        "claims": {"sub": "admin", "exp": 9999999999, "type": "refresh", "role": "user"}}}}))
    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, users_file=str(users)))
    token = login(client, "eve", "eve-password")["access_token"]
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert payload["sub"] == "eve" and payload["type"] == "access" and payload["exp"] < 9999999999
    assert payload["role"] == "user"


def test_authenticate_callable(users_file):
    seen = []

    def authenticate(username, password):
        seen.append(username)
        return {"sub": "user-42", "scope": "read"} if (username, password) == ("bob", "bob-password") else None

    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, authenticate=authenticate))
    assert client.post(LOGIN, json={"username": "bob", "password": "nope"}).status_code == 401
    token = login(client, "bob", "bob-password")["access_token"]
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == "user-42"
    assert seen == ["bob", "bob"]


def test_users_file_changes_take_effect_without_restart(client, users_file):
    data = json.loads(Path(users_file).read_text())
    data["users"]["carol"] = {"password": generate_password_hash("carol-password", method=FAST_HASH), "claims": {}}
    with open(users_file, "w") as fh:
        json.dump(data, fh)
        fh.write(" " * 7)  # a different size, whatever the file system's time resolution
    assert login(client, "carol", "carol-password")["access_token"]


# -- rate limits -------------------------------------------------------------------------------
def test_sixth_failed_attempt_gets_429_with_retry_after(client):
    statuses = [client.post(LOGIN, json={"username": "alice", "password": f"wrong{i}"}).status_code for i in range(5)]
    assert statuses == [401] * 5
    response = client.post(LOGIN, json={"username": "alice", "password": "wrong6"})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Even the right password waits (consistent lockout), and other users are unaffected.
    assert client.post(LOGIN, json={"username": "alice", "password": ALICE_PASSWORD}).status_code == 429
    assert client.post(LOGIN, json={"username": "root", "password": ADMIN_PASSWORD}).status_code == 200


def test_unknown_users_are_limited_the_same_way(client):
    statuses = [client.post(LOGIN, json={"username": "ghost", "password": "x"}).status_code for _ in range(7)]
    assert statuses == [401] * 5 + [429] * 2


def test_successful_logins_do_not_count(client):
    for _ in range(8):
        login(client)


def test_per_address_limit_catches_spraying(make_client):
    client = make_client(login_ip_rate_limit="3/minute")
    statuses = [client.post(LOGIN, json={"username": f"user{i}", "password": "x"}).status_code for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    other = client.post(LOGIN, json={"username": "alice", "password": ALICE_PASSWORD},
                        environ_overrides={"REMOTE_ADDR": "10.9.9.9"})
    assert other.status_code == 200


def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(make_client):
    client = make_client(login_ip_rate_limit="2/minute", login_rate_limit="100/minute")
    for i in range(3):
        response = client.post(LOGIN, json={"username": f"u{i}", "password": "x"},
                               headers={"X-Forwarded-For": f"10.0.0.{i}"})
    assert response.status_code == 429
    trusted = make_client(login_ip_rate_limit="2/minute", login_rate_limit="100/minute",
                          trusted_proxies=["127.0.0.1"])
    for i in range(3):
        response = trusted.post(LOGIN, json={"username": f"u{i}", "password": "x"},
                                headers={"X-Forwarded-For": f"10.0.0.{i}"},
                                environ_overrides={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 401


# -- refresh and logout ------------------------------------------------------------------------
def test_refresh_rotates_and_detects_reuse(make_client):
    clock = FakeClock(int(time.time()) - 1000.0)  # in the past: the verifier's clock is real
    client = make_client(clock=clock)
    tokens = login(client)
    first = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200 and first.headers["Cache-Control"] == "no-store"
    rotated = first.json
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert client.get("/api/me", headers=bearer(rotated["access_token"])).status_code == 200
    # Reuse of the spent token after refresh_reuse_interval (10 s): refused, and the whole family
    # (including the rotated tokens) dies.
    clock.now += 10
    reuse = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.json == {"error": "invalid_grant", "message": "The token has been revoked"}
    assert client.post("/auth/refresh", json={"refresh_token": rotated["refresh_token"]}).status_code == 401
    assert client.get("/api/me", headers=bearer(rotated["access_token"])).status_code == 401
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401


def test_refresh_from_form_and_header(client):
    tokens = login(client)
    by_form = client.post("/auth/refresh", data={"refresh_token": tokens["refresh_token"]})
    assert by_form.status_code == 200
    by_header = client.post("/auth/refresh", headers=bearer(by_form.json["refresh_token"]))
    assert by_header.status_code == 200


def test_token_types_are_not_interchangeable(client):
    tokens = login(client)
    assert client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401
    assert client.get("/api/me", headers=bearer(tokens["refresh_token"])).status_code == 401
    assert client.post("/auth/refresh", json={}).status_code == 400
    assert client.get("/auth/refresh").status_code == 405


def test_refresh_claims_come_from_the_users_file(client, users_file):
    tokens = login(client)
    data = json.loads(Path(users_file).read_text())
    data["users"]["alice"]["claims"] = {"scope": "read write"}
    with open(users_file, "w") as fh:
        json.dump(data, fh)
        fh.write("  ")
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json
    assert jwt.decode(refreshed["access_token"], SECRET, algorithms=["HS256"])["scope"] == "read write"
    del data["users"]["alice"]
    with open(users_file, "w") as fh:
        json.dump(data, fh)
    assert client.post("/auth/refresh", json={"refresh_token": refreshed["refresh_token"]}).status_code == 401


def test_logout_revokes_access_and_refresh(client):
    tokens = login(client)
    response = client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    assert response.status_code == 204
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/auth/logout").status_code == 401
    assert client.get("/auth/logout", headers=bearer(login(client)["access_token"])).status_code == 405


def test_logout_everywhere(client):
    first, second = login(client), login(client)
    other_user = login(client, "root", ADMIN_PASSWORD)
    assert client.post("/auth/logout", json={"all": True}, headers=bearer(first["access_token"])).status_code == 204
    for tokens in (first, second):
        assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401
        assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.get("/api/me", headers=bearer(other_user["access_token"])).status_code == 200
    # A login after "log out everywhere" works at once.
    assert client.get("/api/me", headers=bearer(login(client)["access_token"])).status_code == 200


def test_revocation_is_keyed_on_jti_not_text(client):
    tokens = login(client)
    client.post("/auth/logout", headers=bearer(tokens["access_token"]))
    for variant in (tokens["access_token"] + "=", tokens["access_token"] + "=="):
        assert client.get("/api/me", headers=bearer(variant)).status_code in (400, 401)


def test_foreign_tokens_without_jti_still_verify(client):
    assert client.get("/api/me", headers=bearer(mint(jti=None, type=None))).status_code == 200
