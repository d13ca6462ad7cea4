"""Attacks on the login, refresh and logout endpoints (threat model §5, §7).

Rate limits are checked within one process here (the memory store); limits and revocations
across processes are covered by the store tests and tests/test_lifecycle.py. The browser attacks
(threat model §6) are in tests/test_browser.py (WSGI) and tests/test_browser_e2e.py (Chromium).
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jwt
import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import ALICE_PASSWORD, CANARY_API, FAST_HASH, HS, SECRET, FakeClock, bearer
from tests.security import apps
from tests.security.conftest import H0, STATS, build_request, client_for, raw_http, read_response, start_dev_server

LOGIN = "/auth/login"
REFRESH = "/auth/refresh"
LOGOUT = "/auth/logout"
JSON_CT = "application/json"


def fresh(**options: Any) -> Any:
    return client_for(apps.protect(apps.werkzeug_router_app, **options))


def post_json(client: Any, body: Any, **kwargs: Any) -> Any:
    return client.post(LOGIN, json=body, **kwargs)


def creds(username: str = "alice", password: str = ALICE_PASSWORD) -> dict[str, str]:
    return {"username": username, "password": password}


# -- a valid login -----------------------------------------------------------------------------------
def test_valid_login_is_not_cached() -> None:
    client = fresh()
    response = post_json(client, creds())
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store" and response.headers["Pragma"] == "no-cache"
    body = response.json
    assert body["token_type"] == "Bearer" and set(body) >= {"access_token", "expires_in", "refresh_token"}
    claims = jwt.decode(body["access_token"], SECRET, algorithms=["HS256"])
    assert 0 < claims["exp"] - claims["iat"] <= 1800
    assert client.get("/api/me", headers=bearer(body["access_token"])).status_code == 200
    refreshed = client.post(REFRESH, json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200
    assert refreshed.headers["Cache-Control"] == "no-store" and refreshed.headers["Pragma"] == "no-cache"


# -- brute force over fresh connections, one process -----------------------------------------------
def test_brute_force_one_user_over_new_connections() -> None:
    server = start_dev_server(apps.protect(apps.werkzeug_router_app))
    try:
        statuses, retry_after = [], []
        for i in range(20):
            body = json.dumps(creds(password=f"wrong{i}")).encode()
            response = raw_http(server.port, build_request("POST", LOGIN, [("Content-Type", JSON_CT)], body))
            statuses.append(response.status)
            if response.status == 429:
                retry_after.append(int(response.headers["retry-after"]))
        assert statuses == [401] * 5 + [429] * 15, statuses
        assert all(1 <= r <= 60 for r in retry_after), retry_after
        # The right password during the lockout gets the same 429 (consistent policy).
        right = raw_http(server.port, build_request("POST", LOGIN, [("Content-Type", JSON_CT)],
                                                    json.dumps(creds()).encode()))
        assert right.status == 429 and b"access_token" not in right.body
    finally:
        server.stop()


def test_password_spraying_many_users_one_address() -> None:
    client = fresh(login_rate_limit="100/minute")  # per-address limit default: 20/minute
    statuses = [post_json(client, creds(f"user{i}", "Summer2024!")).status_code for i in range(50)]
    assert statuses == [401] * 20 + [429] * 30, statuses


def test_distributed_attempts_on_one_user() -> None:
    client = fresh()
    statuses = [post_json(client, creds(password=f"guess{i}"), headers={"X-Forwarded-For": f"10.0.0.{i}"},
                          environ_overrides={"REMOTE_ADDR": f"192.0.2.{i}"}).status_code for i in range(20)]
    assert statuses == [401] * 5 + [429] * 15, statuses


def test_lockout_is_time_bounded() -> None:
    now = [float(int(time.time()))]
    client = fresh(login_rate_limit="2/1s", clock=lambda: now[0])
    assert [post_json(client, creds(password="x")).status_code for _ in range(3)] == [401, 401, 429]
    locked = post_json(client, creds(), environ_overrides={"REMOTE_ADDR": "198.51.100.7"})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) <= 1
    now[0] += 0.5  # still inside the window
    assert post_json(client, creds(), environ_overrides={"REMOTE_ADDR": "198.51.100.7"}).status_code == 429
    now[0] += 0.6  # the window has passed: the lockout ends by itself
    assert post_json(client, creds(), environ_overrides={"REMOTE_ADDR": "198.51.100.7"}).status_code == 200


# -- user enumeration ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs_known", "kwargs_unknown"),
    [
        pytest.param({"json": creds(password="x")}, {"json": creds("nosuchuser", "x")}, id="json"),
        pytest.param({"data": creds(password="x")}, {"data": creds("nosuchuser", "x")}, id="form"),
        pytest.param({"json": creds("admin", "x")}, {"json": creds("Admin", "x")}, id="case-variant"),
    ],
)
def test_wrong_credentials_are_byte_identical(kwargs_known: dict[str, Any], kwargs_unknown: dict[str, Any]) -> None:
    client = fresh()
    known, unknown = client.post(LOGIN, **kwargs_known), client.post(LOGIN, **kwargs_unknown)
    assert known.status_code == unknown.status_code == 401
    assert known.data == unknown.data
    assert sorted(known.headers.items()) == sorted(unknown.headers.items())


SLOW_HASH = "pbkdf2:sha256:20000"  # slow enough that the hash dominates the request


def _users_file(tmp_path: Path, users: dict[str, str], method: str = FAST_HASH) -> str:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": {name: {"password": generate_password_hash(pw, method=method),
                                                 "claims": {"scope": "read"}} for name, pw in users.items()}}))
    return str(path)


def test_unknown_users_do_the_same_hash_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = fresh(authenticate=None, users_file=_users_file(tmp_path, {"alice": ALICE_PASSWORD}, SLOW_HASH),
                   login_rate_limit="off", login_ip_rate_limit="off")
    work: list[tuple[str, int]] = []
    original = hashlib.pbkdf2_hmac

    def counting(name: str, password: bytes, salt: bytes, iterations: int, *rest: Any) -> bytes:
        work.append((name, iterations))
        return original(name, password, salt, iterations, *rest)

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counting)
    post_json(client, creds(password="wrong"))
    known = list(work)
    work.clear()
    post_json(client, creds("nosuchuser", "wrong"))
    assert known == work == [("sha256", 20000)]


def test_unknown_users_are_rate_limited_the_same_way() -> None:
    client = fresh()
    real = [post_json(client, creds(password=f"w{i}")) for i in range(7)]
    ghost = [post_json(client, creds("ghost", f"w{i}")) for i in range(7)]
    assert [r.status_code for r in real] == [r.status_code for r in ghost] == [401] * 5 + [429] * 2
    assert real[-1].data == ghost[-1].data
    assert set(real[-1].headers.keys()) == set(ghost[-1].headers.keys())


# -- body size and framing over the wire --------------------------------------------------------------
@pytest.mark.parametrize("server", ["gunicorn-werkzeug", "devserver-webob"])
def test_declared_oversized_body_is_refused_before_reading(wire: Any, server: str) -> None:
    head = build_request("POST", LOGIN, [("Content-Type", JSON_CT), ("Content-Length", str(10 * 1024 * 1024))])
    with socket.create_connection(("127.0.0.1", wire.ports[server]), timeout=10) as sock:
        sock.sendall(head + b'{"username":"alice","password":"')  # then nothing more: the cap must answer
        STATS["socket_requests"] += 1
        response = read_response(sock)
    assert response.status == 413, str(response)


@pytest.mark.parametrize("server", ["gunicorn-werkzeug", "gunicorn-webob"])
def test_chunked_body_is_capped_over_the_wire(wire: Any, server: str) -> None:
    import select

    head = build_request("POST", LOGIN, [("Content-Type", JSON_CT), ("Transfer-Encoding", "chunked")])
    chunk = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", wire.ports[server]), timeout=10) as sock:
        sock.sendall(head + b"12\r\n" + b'{"username":"alice' + b"\r\n")
        STATS["socket_requests"] += 1
        while sent < 10 * 1024 * 1024:
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        response = read_response(sock)
    assert response.status == 413, str(response)
    assert sent < 1024 * 1024, f"the server read {sent} bytes before answering"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("Content-Length", "4"), ("Transfer-Encoding", "chunked")], id="cl-and-te"),
        pytest.param([("Content-Length", "48"), ("Content-Length", "4")], id="two-content-lengths"),
    ],
)
@pytest.mark.parametrize("server", ["gunicorn-werkzeug", "devserver-werkzeug"])
def test_content_length_transfer_encoding_conflicts(wire: Any, server: str, headers: list[tuple[str, str]]) -> None:
    body = json.dumps(creds("root", "P@ss-admin-!")).encode()
    chunked = hex(len(body))[2:].encode() + b"\r\n" + body + b"\r\n0\r\n\r\n"
    response = wire.send(server, build_request("POST", LOGIN, [("Content-Type", JSON_CT), *headers], chunked))
    assert response.status != 500 and b"access_token" not in response.body, str(response)
    if server.startswith("gunicorn"):
        assert response.status == 400, str(response)


# -- body bombs and type confusion -------------------------------------------------------------------
BODIES = [
    pytest.param(b'{"username":' + b"[" * 100000 + b"]" * 100000 + b"}", JSON_CT, (400, 413), id="nesting-100000"),
    pytest.param(b'{"username":' + b"[" * 8000 + b"]" * 8000 + b"}", JSON_CT, (400,), id="nesting-8000"),
    pytest.param(b'{"username":"alice","password":{"a":' * 2000 + b"1" + b"}" * 2000 + b"}", JSON_CT, (400, 413),
                 id="nested-objects"),
    pytest.param(b'{"username":"alice","password":' + b"1" * 5000 + b"}", JSON_CT, (400,), id="huge-integer"),
    pytest.param(b'{"username":"alice","password":1e999999}', JSON_CT, (400,), id="huge-float"),
    pytest.param(b'{"username":"alice","password":-1e999999}', JSON_CT, (400,), id="huge-negative-float"),
    pytest.param(b'{"username":"alice","password":Infinity}', JSON_CT, (400,), id="infinity"),
    pytest.param(b'{"username":["alice"],"password":"x"}', JSON_CT, (400,), id="username-list"),
    pytest.param(b'{"username":{"$ne":null},"password":{"$ne":null}}', JSON_CT, (400,), id="nosql-operators"),
    pytest.param(b'{"username":"alice","password":true}', JSON_CT, (400,), id="password-true"),
    pytest.param(b'{"username":"alice","password":null}', JSON_CT, (400,), id="password-null"),
    pytest.param(b"null", JSON_CT, (400,), id="json-null"),
    pytest.param(b"[]", JSON_CT, (400,), id="json-list"),
    pytest.param(b'"str"', JSON_CT, (400,), id="json-string"),
    pytest.param(b"", JSON_CT, (400,), id="empty-body"),
    pytest.param(b'{"username":"bob","username":"alice","password":"P@ss-alice"}', JSON_CT, (400,),
                 id="duplicate-username"),
    pytest.param(b'{"username":"alice","password":"x","password":"P@ss-alice"}', JSON_CT, (400,),
                 id="duplicate-password"),
    pytest.param(b"username=bob&username=alice&password=P%40ss-alice", "application/x-www-form-urlencoded", (400,),
                 id="duplicate-form-field"),
    pytest.param(b'\xff\xfe{"username":"alice","password":"x"}', JSON_CT, (400,), id="not-utf8"),
    pytest.param(b'{"username":"\\ud800","password":"x"}', JSON_CT, (400,), id="lone-surrogate"),
    pytest.param(b'{"username":"alice","password":"\\udfff"}', JSON_CT, (400,), id="lone-surrogate-password"),
    pytest.param(b'\xef\xbb\xbf{"username":"alice","password":"P@ss-alice"}', JSON_CT, (400,), id="utf8-bom"),
    pytest.param('{"username":"alice","password":"P@ss-alice"}'.encode("utf-16"), "application/json; charset=utf-16",
                 (415,), id="utf16-body"),
    pytest.param(b"username=%FF&password=x", "application/x-www-form-urlencoded", (400,), id="form-not-utf8"),
    pytest.param(json.dumps({"username": "a" * (1024 * 1024), "password": "x"}).encode(), JSON_CT, (400, 413),
                 id="username-1MiB"),
    pytest.param(json.dumps({"username": "alice", "password": "x" * (1024 * 1024)}).encode(), JSON_CT, (400, 413),
                 id="password-1MiB"),
    pytest.param(json.dumps({"username": "a" * 300, "password": "x"}).encode(), JSON_CT, (400,),
                 id="username-300"),
    pytest.param(json.dumps({"username": "alice", "password": "x" * 5000}).encode(), JSON_CT, (400,),
                 id="password-5000"),
    pytest.param(b'{"username":"alice","password":"P@ss-alice"}', "text/plain", (415,), id="text-plain"),
    pytest.param(b'{"username":"alice","password":"P@ss-alice"}', "text/plain; charset=utf-8", (415,),
                 id="text-plain-charset"),
    pytest.param(b"--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--x--\r\n",
                 "multipart/form-data; boundary=x", (415,), id="multipart"),
    pytest.param(b'{"username":"alice","password":"P@ss-alice"}', None, (415,), id="no-content-type"),
    pytest.param(b'{"username":"alice","password":"P@ss-alice"}', "application/jsonx", (415,), id="jsonx"),
    pytest.param(b'{"username":"alice","password":"P@ss-alice"}', "application/json; charset=utf-16", (415,),
                 id="json-utf16-label"),
    pytest.param(b'{"username":"alice","password":"P@ss-alice"}', "application/x-json", (415,), id="x-json"),
]


@pytest.mark.parametrize(("body", "content_type", "statuses"), BODIES)
def test_bad_login_bodies(body: bytes, content_type: str | None, statuses: tuple[int, ...]) -> None:
    client = fresh()
    kwargs: dict[str, Any] = {"data": body}
    if content_type is not None:
        kwargs["content_type"] = content_type
    response = client.post(LOGIN, **kwargs)
    assert response.status_code in statuses, (response.status_code, response.data)
    assert b"access_token" not in response.data
    assert response.headers["Content-Type"] == "application/json"
    json.loads(response.data)  # a fixed JSON error, not a traceback


def test_no_password_truncation(tmp_path: Path) -> None:
    long_password = "p" * 72 + "Z"  # 73 bytes; bcrypt would ignore the last one
    client = fresh(authenticate=None, users_file=_users_file(tmp_path, {"carol": long_password}))
    assert post_json(client, creds("carol", "p" * 72 + "Y")).status_code == 401
    assert post_json(client, creds("carol", "p" * 72)).status_code == 401
    assert post_json(client, creds("carol", long_password)).status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("\uff41\uff44\uff4d\uff49\uff4e", id="fullwidth"),
        pytest.param("Admin", id="title-case"),
        pytest.param("ADMIN", id="upper-case"),
        pytest.param("admin\u200b", id="zero-width-space"),
        pytest.param("adm\u0131n", id="dotless-i"),
        pytest.param("a\u0064min", id="canonical-control"),
        pytest.param(" admin", id="leading-space"),
        pytest.param("admin\u0000", id="nul"),
        pytest.param("\u0430dmin", id="cyrillic-a"),
    ],
)
def test_look_alike_usernames(name: str) -> None:
    client = fresh()
    response = post_json(client, creds(name, apps.ADMIN_USER_PASSWORD))
    if name == "admin":  # "a\u0064min" is plain "admin": the control row
        assert response.status_code == 200
        assert jwt.decode(response.json["access_token"], SECRET, algorithms=["HS256"])["sub"] == "admin"
    else:
        assert response.status_code in (400, 401), (name, response.data)


@pytest.mark.parametrize(
    ("method", "target", "statuses"),
    [
        pytest.param("POST", LOGIN + "?username=alice&password=P%40ss-alice", (400, 415),
                     id="post-query-empty-body"),
        pytest.param("GET", LOGIN + "?username=alice&password=P%40ss-alice", (405,), id="get-query"),
        pytest.param("GET", LOGIN, (405,), id="get-login"),
        pytest.param("PUT", LOGIN, (405,), id="put-login"),
        pytest.param("HEAD", LOGIN, (405,), id="head-login"),
        pytest.param("DELETE", LOGIN, (405,), id="delete-login"),
        pytest.param("GET", REFRESH, (405,), id="get-refresh"),
        pytest.param("GET", LOGOUT, (405,), id="get-logout"),
    ],
)
def test_query_credentials_and_methods(method: str, target: str, statuses: tuple[int, ...]) -> None:
    client = fresh()
    response = client.open(target, method=method, headers={"Accept": "application/json"})
    assert response.status_code in statuses, (response.status_code, response.data)
    assert b"access_token" not in response.data
    if response.status_code == 405:
        assert response.headers["Allow"] == "POST"


# -- refresh -------------------------------------------------------------------------------------------
def _tokens(client: Any, username: str = "alice", password: str = ALICE_PASSWORD) -> dict[str, Any]:
    response = post_json(client, creds(username, password))
    assert response.status_code == 200
    return dict(response.json)


def test_refresh_replay_and_rotation() -> None:
    clock = FakeClock(int(time.time()) - 1000.0)  # in the past: the verifier's clock is real
    client = fresh(clock=clock)
    tokens = _tokens(client)
    first = client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert first.status_code == 200
    within = client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert within.status_code == 200 and within.json["refresh_token"] == first.json["refresh_token"]
    clock.now += 10  # after refresh_reuse_interval, a replay is theft
    replay = client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert replay.status_code == 401
    assert client.post(REFRESH, json={"refresh_token": first.json["refresh_token"]}).status_code == 401
    assert client.get("/api/me", headers=bearer(first.json["access_token"])).status_code == 401


def test_refresh_after_logout_expired_and_tampered() -> None:
    client = fresh()
    tokens = _tokens(client)
    assert client.post(LOGOUT, headers=bearer(tokens["access_token"])).status_code == 204
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401

    tokens = _tokens(client)
    claims = jwt.decode(tokens["refresh_token"], SECRET, algorithms=["HS256"])
    expired = HS(SECRET, H0, {**claims, "jti": "expired-refresh", "exp": int(time.time()) - 1})
    assert client.post(REFRESH, json={"refresh_token": expired}).status_code == 401
    h, _, s = tokens["refresh_token"].split(".")
    from tests.conftest import J

    tampered = f"{h}.{J({**claims, 'sub': 'root'})}.{s}"
    response = client.post(REFRESH, json={"refresh_token": tampered})
    assert response.status_code == 401 and b"access_token" not in response.data
    # The untouched refresh token still works afterwards.
    assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 200


def test_refresh_cannot_escalate(tmp_path: Path) -> None:
    client = fresh(authenticate=None, users_file=_users_file(tmp_path, {"alice": ALICE_PASSWORD}))
    tokens = _tokens(client)
    claims = jwt.decode(tokens["refresh_token"], SECRET, algorithms=["HS256"])
    h, _, s = tokens["refresh_token"].split(".")
    from tests.conftest import J

    escalated = f"{h}.{J({**claims, 'scope': 'admin'})}.{s}"
    assert client.post(REFRESH, json={"refresh_token": escalated}).status_code == 401
    # Even a refresh token signed with the key and carrying more scope (K): the new tokens' claims
    # come from the users file, not from the refresh token.
    forged = HS(SECRET, H0, {**claims, "jti": "forged-refresh", "scope": "admin", "role": "root"})
    response = client.post(REFRESH, json={"refresh_token": forged})
    assert response.status_code == 200
    fresh_claims = jwt.decode(response.json["access_token"], SECRET, algorithms=["HS256"])
    assert fresh_claims["scope"] == "read" and "role" not in fresh_claims


# -- parallel correct logins --------------------------------------------------------------------------
def test_parallel_correct_logins() -> None:
    server = start_dev_server(apps.protect(apps.werkzeug_router_app))
    body = json.dumps(creds()).encode()
    try:
        def one(_: int) -> int:
            return raw_http(server.port, build_request("POST", LOGIN, [("Content-Type", JSON_CT)], body)).status

        with ThreadPoolExecutor(max_workers=25) as pool:  # a stall would time out in raw_http
            statuses = list(pool.map(one, range(100)))
    finally:
        server.stop()
    # Attempts are counted before the password check (so concurrent guesses stay bounded) and a
    # success is taken back afterwards: more than 20 correct logins in flight from one address may
    # see 429, never an error or a stall.
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 20, statuses


# -- the endpoints never leak a protected body, whatever the spelling ---------------------------------
@pytest.mark.parametrize("path", ["/auth/login/", "//auth/login", "/AUTH/LOGIN", "/auth/./login", "/auth/login;x"])
def test_endpoint_spellings_do_not_reach_the_app_unauthenticated(path: str) -> None:
    client = fresh(protect=["/"])
    response = client.post("/", json=creds(), environ_overrides={"PATH_INFO": path})
    assert response.status_code in (200, 401, 404, 405), response.data
    assert CANARY_API not in response.data


def test_parallel_long_passwords_are_stopped_before_hashing() -> None:
    calls: list[str] = []
    lock = threading.Lock()

    def counting(username: str, password: str) -> Any:
        with lock:
            calls.append(username)
        return apps.authenticate(username, password)

    app = apps.protect(apps.werkzeug_router_app, authenticate=counting)
    client_factory: Callable[[], Any] = lambda: client_for(app)  # noqa: E731

    def one(i: int) -> int:
        return int(client_factory().post(LOGIN, json=creds(password="p" * 1000 + str(i))).status_code)

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(one, range(50)))
    assert statuses.count(401) <= 5 and statuses.count(429) >= 45, statuses
    assert len(calls) <= 5, len(calls)


def test_credentials_never_come_from_the_query_with_a_body() -> None:
    client = fresh()
    response = client.post(LOGIN + "?username=alice&password=P%40ss-alice", json={"username": "root", "password": "x"})
    assert response.status_code == 401


def test_login_is_not_an_oracle_for_the_secret() -> None:
    client = fresh()
    response = post_json(client, creds(password=SECRET))
    assert response.status_code == 401 and SECRET.encode() not in response.data
