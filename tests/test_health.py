"""``health_path``: 200 when keys are loaded and the store answers, 503 with the reason otherwise.

Through the WSGI interface with real stores (memory, a SQLite file, a real redis-server that is
stopped and started again), a real JWK Set server that fails, and one real gunicorn. Time is an
injected clock: the verdict a process keeps for a second is driven by it, never by sleeping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jwt_wsgi import ConfigurationError, JWTMiddleware, Settings
from tests._services import unavailable
from tests.redis_server import running_redis
from tests.servers import GUNICORN, Server, get, on_every_worker, request, server_env

from .conftest import SECRET, BufferedClient, canary_app
from .test_jwks import AUD, ISS, FakeClock, Issuer, JWKSServer

HEALTH = "/healthz"


class CountingStore:
    """The middleware's real store, with its pings counted."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.pings = 0

    def ping(self) -> None:
        self.pings += 1
        self.store.ping()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def client_for(clock: FakeClock | None = None, **options: Any) -> tuple[JWTMiddleware, BufferedClient]:
    options = {"secret": SECRET, "health_path": HEALTH, **options}
    middleware = JWTMiddleware(canary_app, clock=clock or FakeClock(), **options)
    return middleware, BufferedClient(middleware)


def verdict(client: BufferedClient) -> tuple[int, dict[str, Any]]:
    response = client.get(HEALTH)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Content-Type"].startswith("application/json")
    return response.status_code, response.get_json()


# -- the endpoint ---------------------------------------------------------------------------------
def test_health_path_is_off_by_default():
    assert Settings(secret=SECRET).health_path is None
    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET))
    assert client.get(HEALTH).status_code == 401  # "/" is protected and nothing answers for it


def test_healthy_without_a_token_even_when_everything_is_protected():
    _, client = client_for(protect=["/"])
    assert verdict(client) == (200, {"status": "ok"})
    head = client.head(HEALTH)
    assert head.status_code == 200 and head.headers["Cache-Control"] == "no-store"
    assert client.get("/api").status_code == 401  # the rest stays protected


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(method):
    _, client = client_for()
    response = client.open(HEALTH, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_health_path_option_is_validated():
    with pytest.raises(ConfigurationError, match="health_path"):
        Settings(secret=SECRET, health_path="healthz")
    with pytest.raises(ConfigurationError, match="must differ"):
        Settings(secret=SECRET, health_path="/.well-known/jwks.json")
    assert Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_HEALTH_PATH": "/healthz"}).health_path == "/healthz"
    assert Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_HEALTH_PATH": "none"}).health_path is None


def test_a_flood_of_probes_pings_the_store_once_per_second():
    clock = FakeClock()
    middleware, client = client_for(clock)
    counting = CountingStore(middleware.store)
    middleware.store = counting
    for _ in range(50):
        assert verdict(client)[0] == 200
    assert counting.pings == 1
    clock.advance(0.999)
    assert verdict(client)[0] == 200
    assert counting.pings == 1
    clock.advance(0.001)
    for _ in range(50):
        assert verdict(client)[0] == 200
    assert counting.pings == 2


def test_a_clock_set_back_does_not_keep_a_verdict_forever():
    clock = FakeClock()
    middleware, client = client_for(clock)
    counting = CountingStore(middleware.store)
    middleware.store = counting
    verdict(client)
    clock.advance(-3600)
    verdict(client)
    assert counting.pings == 2


# -- stores ---------------------------------------------------------------------------------------
def test_sqlite_file_that_becomes_unusable_is_503_then_recovers(tmp_path):
    clock = FakeClock()
    db = tmp_path / "state" / "store.db"
    db.parent.mkdir()
    _, client = client_for(clock, store=f"sqlite:///{db}")
    assert verdict(client) == (200, {"status": "ok"})
    junk = tmp_path / "junk"
    junk.write_bytes(b"this is not an SQLite database\n" * 200)
    os.replace(junk, db)  # replaced under the open connection, and its write-ahead log gone with it
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink(missing_ok=True)
    clock.advance(2)
    status, body = verdict(client)
    assert (status, body) == (503, {"status": "unavailable", "reason": "store unreachable"})
    db.unlink()  # a fresh file is created on the next open
    clock.advance(2)
    assert verdict(client) == (200, {"status": "ok"})


def test_sqlite_directory_gone_is_503_without_the_path(tmp_path):
    clock = FakeClock()
    directory = tmp_path / "secret-looking-dir"
    directory.mkdir()
    _, client = client_for(clock, store=f"sqlite:///{directory}/store.db")
    assert verdict(client)[0] == 200
    shutil.rmtree(directory)
    clock.advance(2)
    response = client.get(HEALTH)
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "reason": "store unreachable"}
    assert b"secret-looking-dir" not in response.data


@pytest.mark.slow
def test_redis_stopped_is_503_then_recovers(tmp_path):
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    password = "health-probe-password-0123456789"
    with running_redis(tmp_path, password=password) as redis:
        clock = FakeClock()
        middleware, client = client_for(clock, store=redis.url + "?socket_timeout=0.5")
        counting = CountingStore(middleware.store)
        middleware.store = counting
        assert verdict(client) == (200, {"status": "ok"})
        redis.stop()
        clock.advance(1)
        for _ in range(20):
            response = client.get(HEALTH)
            assert response.status_code == 503
            assert response.get_json() == {"status": "unavailable", "reason": "store unreachable"}
            assert password.encode() not in response.data and b"127.0.0.1" not in response.data
        assert counting.pings == 2  # one before the outage, one for the 20 probes within a second
        redis.start()  # same port, same password
        assert verdict(client)[0] == 503  # the verdict of this second is kept...
        clock.advance(1)
        assert verdict(client) == (200, {"status": "ok"})  # ...and the next one sees Redis back
        assert counting.pings == 3


# -- keys -----------------------------------------------------------------------------------------
@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer().start()
    yield server
    server.stop()


def test_remote_jwks_that_cannot_be_fetched_is_503_no_keys(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    jwks_server.mode = "fail"
    clock = FakeClock()
    middleware, client = client_for(clock, secret=None, algorithm="RS256", jwks_url=jwks_server.url(),
                                    issuer=ISS, audience=AUD)
    assert verdict(client) == (503, {"status": "unavailable", "reason": "no keys"})
    assert jwks_server.fetches == 1
    # Every probe within the cooldown is answered from what is known: no fetch.
    for _ in range(3):
        clock.advance(1)
        assert verdict(client) == (503, {"status": "unavailable", "reason": "no keys"})
    assert jwks_server.fetches == 1
    # The endpoint recovers: once the cooldown is over, a probe fetches the keys itself (a new
    # worker must not wait for a token to become ready).
    jwks_server.mode = "ok"
    clock.advance(5)
    assert verdict(client) == (200, {"status": "ok"})
    assert jwks_server.fetches == 2
    # With keys in hand a probe never fetches, not even when their TTL is over.
    jwks_server.mode = "fail"
    clock.advance(3600)
    assert verdict(client) == (200, {"status": "ok"})
    assert jwks_server.fetches == 2


def test_a_remote_set_without_usable_keys_is_503_no_keys(jwks_server):
    jwks_server.keys = []
    _, client = client_for(secret=None, algorithm="RS256", jwks_url=jwks_server.url(), issuer=ISS, audience=AUD)
    assert verdict(client) == (503, {"status": "unavailable", "reason": "no keys"})


def test_both_reasons_are_named(jwks_server, tmp_path):
    jwks_server.mode = "fail"
    directory = tmp_path / "gone"
    _, client = client_for(secret=None, algorithm="RS256", jwks_url=jwks_server.url(), issuer=ISS, audience=AUD,
                           store=f"sqlite:///{directory}/store.db")
    assert verdict(client) == (503, {"status": "unavailable", "reason": "no keys, store unreachable"})


# -- a real server --------------------------------------------------------------------------------
@pytest.mark.slow
def test_gunicorn_answers_the_probe_on_every_worker(tmp_path: Path) -> None:
    # examples/plain_wsgi.py protects /api; the probe lives under it and needs no token.
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, JWT_WSGI_STORE=f"sqlite:///{tmp_path}/s.db",
                     JWT_WSGI_HEALTH_PATH="/api/healthz", BIND="127.0.0.1:{port}", WORKERS="2",
                     WORKER_CLASS="sync")
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", "examples.plain_wsgi:application"], env=env,
                    log_dir=tmp_path, name="gunicorn-health", ready_path="/api/healthz")
    with server:
        for response in on_every_worker(server.base_url, "/api/healthz", {}):
            server.check(response.status == 200 and response.json() == {"status": "ok"}, f"probe: {response}")
            server.check(response.headers.get("cache-control") == "no-store", f"probe headers: {response}")
        head = request(server.base_url, "HEAD", "/api/healthz")
        server.check(head.status == 200 and head.body == b"", f"HEAD: {head}")
        post = request(server.base_url, "POST", "/api/healthz", body=b"")
        server.check(post.status == 405, f"POST: {post}")
        server.check(get(server.base_url, "/api/me").status == 401, "/api/me without a token")
