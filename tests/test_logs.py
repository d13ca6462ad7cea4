"""Audit events, their record structure, JSON lines and throttled warnings (``jwt_wsgi.logs``),
through the middleware's endpoints and Python API with Werkzeug's test client."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import pytest

import jwt_wsgi.logs
from jwt_wsgi.logs import AUDIT_LOGGER, FIELDS, JSONFormatter, Throttle, fields_of
from tests.conftest import ALICE_PASSWORD, SECRET, bearer, login, mint
from tests.servers import free_port

REFRESH = "/auth/refresh"


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="jwt_wsgi")
    return caplog


ADDRESS = {"REMOTE_ADDR": "127.0.0.1"}


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [dict(fields_of(r), level=r.levelname) for r in caplog.records if r.name == AUDIT_LOGGER]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JSONFormatter()
    return "\n".join([r.getMessage() for r in caplog.records] + [formatter.format(r) for r in caplog.records])


def test_login_success_names_user_client_request_id_and_path(make_client, audit):
    client = make_client()
    response = client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD},
                           headers={"X-Request-Id": "req-42"}, environ_base=ADDRESS)
    assert response.status_code == 200
    assert events(audit) == [{"event": "login", "sub": "alice", "client": "127.0.0.1", "request_id": "req-42",
                              "path": "/auth/login", "level": "INFO"}]
    record = next(r for r in audit.records if r.name == AUDIT_LOGGER)
    assert record.getMessage() == "login sub=alice client=127.0.0.1 request_id=req-42 path=/auth/login"
    text = everything_logged(audit)
    for secret in (ALICE_PASSWORD, response.json["access_token"], response.json["refresh_token"], SECRET):
        assert secret not in text


def test_failed_login_names_a_known_user_and_never_the_password(make_client, audit):
    client = make_client()
    assert client.post("/auth/login", json={"username": "alice", "password": "wrong-Pa55"}).status_code == 401
    # A "user name" nobody has: perhaps a password typed into the wrong field. Never logged.
    assert client.post("/auth/login", json={"username": "Hunter2-typed-here", "password": "x"}).status_code == 401
    found = events(audit)
    assert [(e["event"], e["reason"], e.get("sub")) for e in found] == [
        ("login_failed", "invalid_credentials", "alice"), ("login_failed", "invalid_credentials", None)]
    assert all(len(e["request_id"]) == 32 for e in found)  # generated: no X-Request-Id was sent
    text = everything_logged(audit)
    assert "wrong-Pa55" not in text and "Hunter2-typed-here" not in text


def test_rate_limited_login_is_an_event(make_client, audit):
    client = make_client(login_rate_limit="2/minute")
    statuses = [client.post("/auth/login", json={"username": "alice", "password": f"no-{i}"}).status_code
                for i in range(3)]
    assert statuses == [401, 401, 429]
    assert [e["reason"] for e in events(audit)] == ["invalid_credentials", "invalid_credentials", "rate_limited_user"]


def test_refresh_and_reuse_name_user_family_and_client(make_client, audit):
    # Behind a trusted proxy, the client address is the forwarded one.
    client = make_client(refresh_reuse_interval=0, trusted_proxies=["127.0.0.1"])
    tokens = login(client)
    proxy = {"X-Forwarded-For": "203.0.113.9"}
    audit.clear()
    for status in (200, 401):
        assert client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}, headers=proxy,
                           environ_base=ADDRESS).status_code == status
    refresh, reuse = events(audit)
    family = refresh["family"]
    assert refresh["event"] == "refresh" and refresh["sub"] == "alice" and len(family) == 32
    assert reuse == {"event": "refresh_reuse", "reason": "family_revoked", "sub": "alice", "jti": refresh["jti"],
                     "family": family, "client": "203.0.113.9", "request_id": reuse["request_id"],
                     "path": REFRESH, "level": "WARNING"}
    assert tokens["refresh_token"] not in everything_logged(audit)


def test_logout_and_every_kind_of_revocation_are_events(make_client, audit):
    client = make_client()
    first, second, third = login(client), login(client), login(client)
    audit.clear()
    assert client.post("/auth/logout", headers=bearer(first["access_token"])).status_code == 204
    assert client.post("/auth/logout", json={"all": True}, headers=bearer(second["access_token"])).status_code == 204
    assert client.post("/auth/revoke", data={"token": third["refresh_token"]}).status_code == 200
    client.middleware.revoke(third["access_token"])
    client.middleware.revoke_user("alice")
    found = [(e["event"], e.get("reason"), e["sub"], "jti" in e, "family" in e, "path" in e) for e in events(audit)]
    assert found == [
        ("logout", None, "alice", True, True, True),  # the token's sign-in (its refresh family) ends too
        ("logout", "everywhere", "alice", True, True, True),
        ("revocation", "endpoint", "alice", True, True, True),  # a refresh token takes its family
        ("revocation", "api", "alice", True, False, False),  # from Python: no request to name
        ("revocation", "user", "alice", False, False, False),
    ]


def test_request_derived_values_are_escaped_and_bad_request_ids_replaced(make_client, audit):
    client = make_client(authenticate=lambda username, password: {"sub": "eve\nFORGED\u202e"})
    response = client.post("/auth/login", json={"username": "eve", "password": "x"},
                           headers={"X-Request-Id": "has space"})
    assert response.status_code == 200
    (event,) = events(audit)
    assert event["sub"] == "eve\\x0aFORGED\\u202e"
    assert event["request_id"] != "has space" and len(event["request_id"]) == 32
    line = JSONFormatter().format(next(r for r in audit.records if r.name == AUDIT_LOGGER))
    assert "\n" not in line and json.loads(line)["sub"] == "eve\\x0aFORGED\\u202e"


def test_json_formatter_writes_one_object_per_line_with_the_fields(make_client, audit):
    client = make_client()
    assert client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD},
                       environ_base=ADDRESS).status_code == 200
    record = next(r for r in audit.records if r.name == AUDIT_LOGGER)
    entry = json.loads(JSONFormatter().format(record))
    assert set(entry) == {"time", "level", "logger", "pid", "message", "event", "sub", "client", "request_id",
                          "path"}
    assert entry["time"].endswith("Z") and entry["level"] == "INFO" and entry["logger"] == "jwt_wsgi.audit"
    assert set(FIELDS) >= set(entry) - {"time", "level", "logger", "pid", "message"}
    # A traceback stays inside its line.
    try:
        raise ValueError("boom\nFORGED")
    except ValueError:
        failing = logging.LogRecord("jwt_wsgi.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JSONFormatter().format(failing)
    assert "\n" not in line and "FORGED" in json.loads(line)["exc_info"]


def test_store_outage_warning_is_written_once_per_interval_with_a_count(make_client, caplog, monkeypatch):
    # A Redis nobody listens on: every revocation check fails at once (connection refused).
    now = [1e9]
    monkeypatch.setattr(jwt_wsgi.logs.throttle, "clock", lambda: now[0])
    client = make_client(store=f"redis://127.0.0.1:{free_port()}/0?socket_timeout=1")
    token = mint(sub="alice")
    caplog.set_level(logging.WARNING, logger="jwt_wsgi")
    statuses = [client.get("/api/me", headers=bearer(token)).status_code for _ in range(25)]
    now[0] += jwt_wsgi.logs.WARNING_INTERVAL
    statuses.append(client.get("/api/me", headers=bearer(token)).status_code)
    assert statuses == [503] * 26
    refused = [r for r in caplog.records if "request refused" in r.getMessage()]
    # (The first may count repeats left over from an earlier test in this process.)
    assert len(refused) == 2 and refused[0].getMessage().startswith("store unavailable; request refused (fail closed)")
    assert refused[1].getMessage() == "store unavailable; request refused (fail closed) (24 similar suppressed)"
    assert refused[1].suppressed == 24 and fields_of(refused[1]) == {"suppressed": 24}


def test_throttle_keys_by_message_and_counts_per_interval():
    now = [0.0]
    throttle = Throttle(interval=10, clock=lambda: now[0])
    logger = logging.getLogger("jwt_wsgi.test_throttle")
    written = [throttle.warning(logger, "a %s", 1), throttle.warning(logger, "a %s", 2),
               throttle.warning(logger, "b"), throttle.warning(logger, "a %s", 3)]
    assert written == [True, False, True, False]
    now[0] = 9.9
    assert not throttle.warning(logger, "a %s", 4)
    now[0] = 10.0
    assert throttle.warning(logger, "a %s", 5)
    now[0] = 20.0
    assert throttle.warning(logger, "a %s", 6)  # nothing suppressed since: written as it is


def test_sign_ins_from_the_application_are_events(make_client, audit):
    client = make_client(token_sources=["header", "cookie"])
    client.middleware.issue_tokens("bob")
    client.middleware.login_cookies({"REMOTE_ADDR": "192.0.2.1", "PATH_INFO": "/my-login", "SCRIPT_NAME": "",
                                     "wsgi.url_scheme": "https"}, "carol")
    found = events(audit)
    assert [(e["event"], e["reason"], e["sub"], e.get("client"), e.get("path")) for e in found] == [
        ("login", "api", "bob", None, None), ("login", "api", "carol", "192.0.2.1", "/my-login")]
