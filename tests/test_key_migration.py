"""Moving from one ``secret`` to rotating ``keys``, end to end (the README's migration steps).

Tokens issued under ``secret=`` carry no ``kid``. After the switch to ``keys = [new (active),
old]`` they must keep working: access tokens from the login endpoint and from ``jwt-wsgi token``,
and refresh tokens (whose rotation state lives in the shared store, here a SQLite file). New
tokens name the new key; once the old key is removed, only tokens signed by the new one verify.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jwt
import pytest

from tests.conftest import SECRET, bearer, login
from tests.test_cli import ok, run

NEW = "new-rotation-test-only-secret-5a1f09c2e7b34d8e9f60a1b2c3d4e5f6"


@pytest.mark.slow
def test_tokens_issued_under_secret_verify_after_the_switch_to_keys(tmp_path: Path, make_client) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    # 1. Today: one secret.
    before = make_client(secret=SECRET, store=store)
    issued = login(before)
    cli_token = ok(run("token", "--sub", "bob", "--claim", "scope=read", cwd=tmp_path)).stdout.strip()
    for token in (issued["access_token"], issued["refresh_token"], cli_token):
        assert "kid" not in jwt.get_unverified_header(token)

    # 2. The switch: a new key signs, the old secret becomes a verification key with a kid.
    during = make_client(secret=None, store=store, keys=[{"kid": "2026-12", "secret": NEW, "active": True},
                                                         {"kid": "before-keys", "secret": SECRET}])
    for token in (issued["access_token"], cli_token):
        assert during.get("/api/me", headers=bearer(token)).status_code == 200
    refreshed = during.post("/auth/refresh", json={"refresh_token": issued["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.data
    assert jwt.get_unverified_header(refreshed.json["access_token"])["kid"] == "2026-12"
    assert during.get("/api/me", headers=bearer(refreshed.json["access_token"])).status_code == 200
    fresh = login(during)
    assert jwt.get_unverified_header(fresh["access_token"])["kid"] == "2026-12"

    # The CLI under the same rotation set-up mints with the new key; `check` explains the set-up.
    config = tmp_path / "rotation.toml"
    config.write_text(textwrap.dedent(f"""
        [jwt_wsgi]
        store = "{store}"

        [[jwt_wsgi.keys]]
        kid = "2026-12"
        secret = "{NEW}"
        active = true

        [[jwt_wsgi.keys]]
        kid = "before-keys"
        secret = "{SECRET}"
    """))
    new_cli = ok(run("token", "--sub", "bob", "--config", str(config), cwd=tmp_path, secret=None)).stdout.strip()
    assert jwt.get_unverified_header(new_cli)["kid"] == "2026-12"
    assert during.get("/api/me", headers=bearer(new_cli)).status_code == 200
    checked = ok(run("check", "--config", str(config), cwd=tmp_path, secret=None))
    assert json.loads(checked.stdout)["keys"][0]["secret"] == "<hidden>"
    explained = checked.stderr
    assert SECRET not in explained and NEW not in explained
    assert "signs: HS256 with key '2026-12'" in explained
    assert "HS256: 2 verification keys ('2026-12', 'before-keys')" in explained
    assert "without kid" in explained and "tried against '2026-12', 'before-keys'" in explained

    # 3. Once the last old token has expired, the old key goes: only the new key's tokens verify.
    after = make_client(secret=None, store=store, keys=[{"kid": "2026-12", "secret": NEW, "active": True}])
    assert after.get("/api/me", headers=bearer(issued["access_token"])).status_code == 401
    assert after.get("/api/me", headers=bearer(cli_token)).status_code == 401
    assert after.get("/api/me", headers=bearer(fresh["access_token"])).status_code == 200
    assert after.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]}).status_code == 200
