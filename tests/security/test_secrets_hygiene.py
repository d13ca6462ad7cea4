"""Issue 6 item 6 / threat model §9.2: no token, password or secret in any log line or response.

One full run — logins (good, wrong, unknown, rate-limited), API calls, refresh, refresh reuse,
logout, and a batch of attacks (forged, expired, revoked, query and cookie tokens, bad bodies, an
``authenticate`` backend that raises) — with every log record captured at DEBUG on the root
logger and every response kept. Then every secret value is searched for in all of it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.conftest import ALICE_PASSWORD, HS, OTHER_SECRET, SECRET, J, bearer
from tests.security import apps
from tests.security.conftest import H0, client_for, split

WRONG = ["wrong-pw-7f3a9c", "hunter2-5be1", "P@ss-alicf"]


def _flaky_authenticate(username: str, password: str) -> Any:
    if username == "backend-down":
        raise RuntimeError("user database unreachable")
    return apps.authenticate(username, password)


def test_no_secret_in_logs_or_responses(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: everything any library logs
    middleware = apps.protect(apps.webob_router_app, authenticate=_flaky_authenticate, login_rate_limit="3/minute",
                              token_sources=["header", "cookie"])
    client = client_for(middleware)
    responses: list[Any] = []
    tokens: set[str] = set()
    passwords = {ALICE_PASSWORD, "P@ss-admin-!", *WRONG}

    def send(method: str, path: str, **kwargs: Any) -> Any:
        response = client.open(path, method=method, **kwargs)
        responses.append(response)
        return response

    # logins
    good = send("POST", "/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}).json
    tokens.update([good["access_token"], good["refresh_token"]])
    root = send("POST", "/auth/login", data={"username": "root", "password": "P@ss-admin-!"}).json
    tokens.update([root["access_token"], root["refresh_token"]])
    for password in WRONG * 2:  # wrong passwords, then the rate limit
        send("POST", "/auth/login", json={"username": "alice", "password": password})
        send("POST", "/auth/login", json={"username": "nosuchuser", "password": password})
    send("POST", "/auth/login", json={"username": "backend-down", "password": WRONG[0]})  # logged 500 path
    send("POST", "/auth/login", data=json.dumps({"username": "root", "password": "P@ss-admin-!"}),
         content_type="text/plain")
    send("POST", "/auth/login", data='{"username":"root","password":"P@ss-admin-!","password":"x"}',
         content_type="application/json")
    send("POST", "/auth/login?username=root&password=P%40ss-admin-!")

    # use, refresh, reuse, logout
    send("GET", "/api/me", headers=bearer(good["access_token"]))
    send("GET", "/admin/panel", headers={"Cookie": f"access_token={root['access_token']}"})
    rotated = send("POST", "/auth/refresh", json={"refresh_token": good["refresh_token"]}).json
    tokens.update([rotated["access_token"], rotated["refresh_token"]])
    send("POST", "/auth/refresh", json={"refresh_token": good["refresh_token"]})  # reuse: family revoked
    send("POST", "/auth/logout", headers=bearer(root["access_token"]), json={"refresh_token": root["refresh_token"]})
    send("GET", "/api/me", headers=bearer(root["access_token"]))  # revoked

    # attacks
    now = int(time.time())
    h, p, s = split(good["access_token"])
    attacks = [
        f"{h}.{J({'sub': 'admin', 'exp': now + 60})}.{s}",
        J({"alg": "none"}) + "." + p + ".",
        HS(OTHER_SECRET, H0, {"sub": "alice", "exp": now + 60}),
        HS(SECRET, H0, {"sub": "alice", "exp": now - 60}),
        HS(SECRET, {"alg": "HS256", "crit": ["x"]}, {"sub": "alice", "exp": now + 60}),
        good["access_token"] + "=",
        good["refresh_token"],
        "A" * 9000,
    ]
    tokens.update(attacks)
    for token in attacks:
        send("GET", "/api/me", headers=bearer(token))
        send("GET", "/public", headers=bearer(token))  # optional authentication path
    send("GET", f"/api/me?access_token={rotated['access_token']}")
    send("GET", "/api/me", headers={"Authorization": f"Bearer {rotated['access_token']},Bearer {attacks[2]}"})
    send("GET", "/api/me", headers={"Authorization": f"Bearer {rotated['access_token']}",
                                    "Cookie": f"access_token={attacks[2]}"})
    send("POST", "/auth/refresh", json={"refresh_token": rotated["access_token"]})
    send("POST", "/auth/logout", json={"refresh_token": attacks[2]})

    assert any(r.status_code == 500 for r in responses), "the failing backend path was not exercised"
    assert any(r.status_code == 429 for r in responses) and any(r.status_code == 200 for r in responses)

    # Everything that was written anywhere.
    log_text = caplog.text + "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''} {getattr(record, 'stack_info', '') or ''}"
        for record in caplog.records
    )
    assert caplog.records, "nothing was logged: the capture is not working"
    outputs = [r.data for r in responses] + [
        "\n".join(f"{k}: {v}" for k, v in r.headers.items()).encode() for r in responses
    ]
    response_text = b"\n".join(outputs)

    for value in sorted(tokens):
        signature = value.rsplit(".", 1)[-1]
        assert value not in log_text, f"a token was logged: {value[:16]}..."
        if len(signature) >= 16:
            assert signature not in log_text, f"a token signature was logged: {signature[:8]}..."
    for password in passwords:
        assert password not in log_text, f"a password was logged: {password[:3]}..."
        assert password.encode() not in response_text, f"a password was sent back: {password[:3]}..."
    for secret in (SECRET, OTHER_SECRET):
        assert secret not in log_text and secret.encode() not in response_text
    # Responses may carry only the tokens issued to that very response (login and refresh).
    issued = {good["access_token"], good["refresh_token"], root["access_token"], root["refresh_token"],
              rotated["access_token"], rotated["refresh_token"]}
    for response in responses:
        for value in tokens - issued:
            assert value.encode() not in response.data, "a presented token was echoed"
        if b"access_token" not in response.data:
            for value in issued:
                assert value.encode() not in response.data, "a token was echoed in an error"


def test_configuration_never_shows_the_secret() -> None:
    middleware = apps.protect(apps.werkzeug_router_app)
    assert SECRET not in repr(middleware.settings)
    assert SECRET not in json.dumps(middleware.settings.public_view(), default=str)
