"""``refresh_reuse_interval``: concurrent refreshes of one client share one successor.

A refresh token presented again within the interval of its first use gets the same successor
(the same jtis, and with HS256 the same token strings): one chain, never two, never a family
revocation. After the interval, a second presentation is reuse, and the family is revoked.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from jwt_wsgi import ConfigurationError
from jwt_wsgi.settings import Settings

from .conftest import SECRET, FakeClock, bearer, login


def _jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(int(time.time()) - 1000 + 0.25)  # in the past: the verifier's clock is real


def refresh(client: Any, token: str) -> Any:
    return client.post("/auth/refresh", json={"refresh_token": token})


def test_a_refresh_token_presented_again_within_the_interval_gets_the_same_successor(
    make_client: Any, clock: FakeClock
) -> None:
    client = make_client(clock=clock)
    first = login(client)
    clock.now += 1
    successor = refresh(client, first["refresh_token"])
    assert successor.status_code == 200
    for step in (0.001, 2.0, 7.9):  # 9.901 s after the first use at most
        clock.now += step
        again = refresh(client, first["refresh_token"])
        assert again.status_code == 200, again.data
        # The same tokens (HS256 signs deterministically), not a second chain.
        assert again.json["access_token"] == successor.json["access_token"]
        assert again.json["refresh_token"] == successor.json["refresh_token"]
        assert again.json["expires_in"] <= successor.json["expires_in"]
    assert client.get("/api/me", headers=bearer(successor.json["access_token"])).status_code == 200
    # The successor goes on as the one chain.
    clock.now += 1
    assert refresh(client, successor.json["refresh_token"]).status_code == 200


def test_reuse_after_the_interval_revokes_the_family(make_client: Any, clock: FakeClock) -> None:
    client = make_client(clock=clock)
    first = login(client)
    successor = refresh(client, first["refresh_token"]).json
    clock.now += 10  # refresh_reuse_interval's default, 10 s: over
    reused = refresh(client, first["refresh_token"])
    assert reused.status_code == 401 and reused.json["error"] == "invalid_grant"  # RFC 6749 §5.2
    assert client.get("/api/me", headers=bearer(successor["access_token"])).status_code == 401
    assert refresh(client, successor["refresh_token"]).status_code == 401


def test_within_the_interval_a_revoked_family_stays_revoked(make_client: Any, clock: FakeClock) -> None:
    client = make_client(clock=clock)
    first = login(client)
    successor = refresh(client, first["refresh_token"]).json
    assert client.post("/auth/logout", headers=bearer(successor["access_token"])).status_code == 204
    clock.now += 1
    assert refresh(client, first["refresh_token"]).status_code == 401


def test_interval_zero_keeps_one_use_only(make_client: Any, clock: FakeClock) -> None:
    client = make_client(clock=clock, refresh_reuse_interval=0)
    first = login(client)
    successor = refresh(client, first["refresh_token"]).json
    assert refresh(client, first["refresh_token"]).status_code == 401  # at once: reuse
    assert client.get("/api/me", headers=bearer(successor["access_token"])).status_code == 401


def test_successor_jtis_are_new_and_distinct(make_client: Any, clock: FakeClock) -> None:
    client = make_client(clock=clock)
    first = login(client)
    successor = refresh(client, first["refresh_token"]).json
    jtis = {_jti(t) for t in (first["access_token"], first["refresh_token"],
                              successor["access_token"], successor["refresh_token"])}
    assert len(jtis) == 4


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("10s", 10.0, id="seconds"),
        pytest.param("0", 0.0, id="off"),
        pytest.param("5m", 300.0, id="at-most-5m"),
        pytest.param(2.5, 2.5, id="float"),
    ],
)
def test_option_is_a_duration(value: Any, seconds: float) -> None:
    assert Settings.from_mapping({"secret": SECRET, "refresh_reuse_interval": value}).refresh_reuse_interval == seconds
    assert Settings.from_env({"JWT_WSGI_SECRET": SECRET,
                              "JWT_WSGI_REFRESH_REUSE_INTERVAL": str(value)}).refresh_reuse_interval == seconds


def test_option_defaults_to_ten_seconds() -> None:
    assert Settings(secret=SECRET.encode()).refresh_reuse_interval == 10.0


@pytest.mark.parametrize("value", ["-1s", "301s", "1h", "soon"])
def test_option_out_of_range_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigurationError, match="refresh_reuse_interval"):
        Settings.from_mapping({"secret": SECRET, "refresh_reuse_interval": value})
