"""Logout and "log out everywhere" through the endpoints: never a success without an effect."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import bearer, login, mint


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
