"""A store used for the first time refuses tokens dated before its first use (it cannot know
what it never saw), but never the tokens of the login that began it (a real redis-server)."""

from __future__ import annotations

import pytest

from jwt_wsgi import JWTMiddleware
from tests.redis_server import RedisServer, redis_server, redis_url  # noqa: F401

from .conftest import SECRET, BufferedClient, bearer, canary_app

pytestmark = pytest.mark.slow


def fast_authenticate(username: str, password: str) -> dict[str, str] | None:
    """No password hash to wait for: the token is minted within the login's own millisecond."""
    return {"sub": username} if password == "right" else None


def test_the_first_login_on_an_empty_store_issues_tokens_that_work(redis_server: RedisServer) -> None:  # noqa: F811
    refused = 0
    for _ in range(40):
        redis_server.flush()  # an empty store: no epoch yet, the login's counter begins it
        client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], store=redis_server.url,
                                              authenticate=fast_authenticate))
        login = client.post("/auth/login", json={"username": "alice", "password": "right"})
        assert login.status_code == 200
        if client.get("/api/me", headers=bearer(login.json["access_token"])).status_code != 200:
            refused += 1
    assert refused == 0
