"""A stalled store costs one timeout per request, never two (a real redis-server, paused)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jwt_wsgi import JWTMiddleware
from jwt_wsgi.claims import time_ordered_id
from tests._services import unavailable
from tests.redis_server import RedisServer, running_redis

from .conftest import SECRET, BufferedClient, bearer, canary_app, mint

pytestmark = pytest.mark.slow


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    with running_redis(tmp_path) as server:
        yield server


@contextmanager
def stalled(server: RedisServer) -> Iterator[None]:
    """The server process paused: connections open, nothing answers (a stall, not a refusal)."""
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


class CountingStore:
    """The middleware's real store, with its revocation queries counted."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.queries = 0

    def is_revoked(self, *args: Any) -> bool:
        self.queries += 1
        return bool(self.store.is_revoked(*args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.mark.parametrize(("fail_open", "status"), [(False, 503), (True, 200)])
def test_a_cached_token_asks_a_stalled_store_once(redis, fail_open, status):
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], store=redis.url + "?socket_timeout=0.3",
                               store_fail_open=fail_open)
    counting = CountingStore(middleware.store)
    middleware.store = counting
    client = BufferedClient(middleware)
    middleware.store.ping()  # start-up: the store's epoch begins at the next millisecond...
    began = int(time.time() * 1000)
    while int(time.time() * 1000) <= began:  # ...so the token below is dated after it
        pass
    now = time.time()
    token = bearer(mint(iat=int(now), jti=time_ordered_id(now)))  # dated to the millisecond, as ours are
    assert client.get("/api/me", headers=token).status_code == 200  # verified and cached
    assert client.get("/api/me", headers=token).status_code == 200  # the repeated-token path
    counting.queries = 0
    with stalled(redis):
        for _ in range(2):
            assert client.get("/api/me", headers=token).status_code == status
    assert counting.queries == 2  # one per request
    assert client.get("/api/me", headers=token).status_code == 200  # and back once it answers
