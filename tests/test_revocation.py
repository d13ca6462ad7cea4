"""Logout and "log out everywhere" through the endpoints: never a success without an effect."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import jwt
import pytest

from jwt_wsgi.claims import issued_at

from .conftest import SECRET, FakeClock, bearer, login, mint


def test_logout_of_a_token_without_jti_is_refused_and_changes_nothing(client: Any) -> None:
    token = mint(jti=None)  # e.g. another issuer's token, which carries no jti
    response = client.post("/auth/logout", headers=bearer(token))
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert "no jti" in response.json["message"] and '{"all": true}' in response.json["message"]
    # Nothing was revoked, so nothing pretends it was: the token still works.
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"json": {"all": True}}, id="json"),
        pytest.param({"data": {"all": "true"}}, id="form"),
    ],
)
def test_logout_everywhere_revokes_a_token_without_jti(client: Any, kwargs: dict[str, Any]) -> None:
    token = mint(jti=None, iat=None)  # undated too: a cut-off covers it
    other = mint(jti="other-device")
    assert client.post("/auth/logout", headers=bearer(token), **kwargs).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/me", headers=bearer(other)).status_code == 401


def test_logout_with_a_jti_less_token_and_a_refresh_token_is_all_or_nothing(client: Any) -> None:
    tokens = login(client)
    response = client.post("/auth/logout", headers=bearer(mint(jti=None)),
                           json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 400
    # The refresh token was not revoked on the way to the refusal.
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200


def test_a_token_with_a_family_but_no_jti_is_revoked_with_its_family(client: Any) -> None:
    token = mint(jti=None, fam="family-1")
    assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


# -- issue times: whole seconds in iat, the millisecond in the jti --------------------------------
def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def test_issued_tokens_carry_whole_seconds_and_a_time_ordered_jti(make_client: Any) -> None:
    clock = FakeClock(int(time.time()) - 100 + 0.987)
    client = make_client(clock=clock)
    tokens = login(client)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        claims = _claims(token)
        assert type(claims["iat"]) is int and type(claims["exp"]) is int, claims
        assert claims["iat"] == int(clock.now)
        assert uuid.UUID(claims["jti"]).version == 7  # RFC 9562: the millisecond, then random bits
        assert issued_at(claims) == math.floor(clock.now * 1000) / 1000
    # Other libraries verify it at once: an integer iat is never "issued in the future".
    now = int(time.time())
    fresh = make_client()
    claims = jwt.decode(login(fresh)["access_token"], SECRET, algorithms=["HS256"], leeway=0)
    assert claims["iat"] <= now + 1


def test_log_out_everywhere_then_sign_in_within_the_same_second(make_client: Any) -> None:
    second = float(int(time.time()) - 100)
    clock = FakeClock(second + 0.100)
    client = make_client(clock=clock)
    before = login(client)
    clock.now = second + 0.400
    assert client.post("/auth/logout", headers=bearer(before["access_token"]), json={"all": True}).status_code == 204
    clock.now = second + 0.401  # the next millisecond, the same second
    after = login(client)
    assert _claims(after["access_token"])["iat"] == _claims(before["access_token"])["iat"]  # same iat
    assert client.get("/api/me", headers=bearer(before["access_token"])).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": before["refresh_token"]}).status_code == 401
    assert client.get("/api/me", headers=bearer(after["access_token"])).status_code == 200
    clock.now = second + 0.500
    assert client.post("/auth/refresh", json={"refresh_token": after["refresh_token"]}).status_code == 200


def test_a_sign_in_in_the_very_millisecond_of_a_log_out_everywhere_is_refused(make_client: Any) -> None:
    """Within one millisecond, before and after cannot be told apart: refused (fail closed)."""
    second = float(int(time.time()) - 100)
    clock = FakeClock(second + 0.2001)
    client = make_client(clock=clock)
    token = login(client)["access_token"]
    clock.now = second + 0.2003
    assert client.post("/auth/logout", headers=bearer(token), json={"all": True}).status_code == 204
    clock.now = second + 0.2008
    same_millisecond = login(client)["access_token"]
    assert client.get("/api/me", headers=bearer(same_millisecond)).status_code == 401


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        pytest.param({"iat": 100, "jti": "0000000186a5" + "7" + "0" * 19}, 100.005, id="uuid7-in-its-second"),
        pytest.param({"iat": 100, "jti": "000000018a89" + "7" + "0" * 19}, 100.0, id="uuid7-other-second-uses-iat"),
        pytest.param({"iat": 100, "jti": "0000000186a1" + "4" + "0" * 19}, 100.0, id="uuid4-uses-iat"),
        pytest.param({"iat": 100.25, "jti": "x"}, 100.25, id="fractional-iat"),
        pytest.param({"iat": 100, "jti": "zzzzzzzzzzzz7" + "0" * 19}, 100.0, id="not-hex"),
        pytest.param({"jti": "0000000186a0" + "7" + "0" * 19}, 0.0, id="undated"),
        pytest.param({"iat": True}, 0.0, id="bool-iat"),
    ],
)
def test_issued_at(claims: dict[str, Any], expected: float) -> None:
    """The jti's millisecond counts only within the token's own iat second."""
    assert issued_at(claims) == expected
