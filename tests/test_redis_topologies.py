"""The Redis store beyond one server: Redis Cluster and Redis Sentinel, with real processes.

The store contract itself runs against both in ``tests/test_stores.py`` (kinds
``redis-cluster`` and ``redis-sentinel``). Here: the URLs and their errors, one slot per cluster
store, the middleware shared by two instances, a master that is no longer one, and a failover
under requests (``tests/redis_server.py`` starts the servers on loopback and stops them by PID).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from jwt_wsgi.errors import ConfigurationError, StoreUnavailable
from jwt_wsgi.settings import Settings
from jwt_wsgi.stores import open_store
from jwt_wsgi.stores.redis import RedisStore
from tests.redis_server import (  # noqa: F401
    ClusterServers,
    SentinelServers,
    free_port,
    redis_cluster,
    redis_cluster_url,
    redis_sentinel,
    redis_sentinel_url,
    redis_server,
    redis_url,
    running_sentinel,
    wait_until,
)

from .conftest import ALICE_PASSWORD, SECRET, bearer, login

SLOW = pytest.mark.slow


# -- URLs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("redis+sentinel://127.0.0.1:{p}/mymaster", id="sentinel"),
        pytest.param("redis+sentinel://user:s3cret@127.0.0.1:{p},[::1]:{q},localhost/mymaster/2"
                     "?socket_timeout=0.2&sentinel_password=sentinel-s3cret&wait_replicas=2&wait_timeout=0.1",
                     id="sentinel-everything"),
        pytest.param("rediss+sentinel://:s3cret@127.0.0.1:{p}/mymaster?ssl_cert_reqs=none", id="sentinel-tls"),
        pytest.param("redis+cluster://127.0.0.1:{p},127.0.0.1:{q}", id="cluster"),
        pytest.param("rediss+cluster://:s3cret@127.0.0.1:{p}/?prefix=shop:&health_check_interval=5", id="cluster-tls"),
    ],
)
def test_a_url_builds_a_store_without_connecting(url: str) -> None:
    url = url.format(p=free_port(), q=free_port())
    store = open_store(url)  # nothing listens there: building it must not try
    assert isinstance(store, RedisStore)
    assert "s3cret" not in repr(store)
    with pytest.raises(StoreUnavailable) as caught:
        store.ping()
    assert "s3cret" not in str(caught.value)
    store.close()


def test_a_cluster_store_keeps_its_keys_under_one_hash_tag() -> None:
    assert RedisStore.from_url(f"redis+cluster://127.0.0.1:{free_port()}").prefix == "{jwt_wsgi:}"
    assert RedisStore.from_url(f"redis+cluster://127.0.0.1:{free_port()}?prefix=shop:").prefix == "{shop:}"
    # Sentinel and plain Redis keep the key names they had.
    assert RedisStore.from_url(f"redis+sentinel://127.0.0.1:{free_port()}/m").prefix == "jwt_wsgi:"
    assert RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0").prefix == "jwt_wsgi:"


def test_confirmed_writes_by_default_behind_sentinel_only() -> None:
    port = free_port()
    assert RedisStore.from_url(f"redis+sentinel://127.0.0.1:{port}/m").wait_replicas == 1
    assert RedisStore.from_url(f"redis+sentinel://127.0.0.1:{port}/m?wait_replicas=0").wait_replicas == 0
    assert RedisStore.from_url(f"redis://127.0.0.1:{port}/0").wait_replicas == 0
    assert RedisStore.from_url(f"redis://127.0.0.1:{port}/0?wait_replicas=1").wait_replicas == 1
    assert RedisStore.from_url(f"redis+cluster://127.0.0.1:{port}").wait_replicas == 0


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1", "service name", id="no-service"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/", "service name", id="empty-service"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m/x", "database number", id="bad-db"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m/0/9", "database number", id="long-path"),
        pytest.param("redis+sentinel://:s3cret@/m", "no host", id="no-host"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1,,127.0.0.1:2/m", "without a host", id="empty-host"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:99999/m", "bad port", id="bad-port"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:x/m", "bad port", id="port-not-a-number"),
        pytest.param("redis+sentinel://:s3cret@[::1/m", "malformed", id="bad-ipv6"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?socket_timeout=soon", "socket_timeout", id="bad-timeout"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?retry_on_timeout=yes", "unknown parameter",
                     id="retries-refused"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?colour=blue", "unknown parameter", id="unknown"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?wait_replicas=many", "wait_replicas", id="bad-wait"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?wait_replicas=-1", "wait_replicas", id="negative-wait"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?wait_timeout=2", "shorter than socket_timeout",
                     id="wait-longer-than-socket"),
        pytest.param("redis+sentinel://:s3cret@127.0.0.1:1/m?wait_timeout=0", "wait_timeout", id="zero-wait"),
        pytest.param("redis+cluster://:s3cret@127.0.0.1:1/0", "nothing may follow", id="cluster-db"),
        pytest.param("redis+cluster://:s3cret@127.0.0.1:1?sentinel_password=x", "redis+sentinel:// only",
                     id="cluster-sentinel-password"),
        pytest.param("redis+cluster://:s3cret@127.0.0.1:1?wait_replicas=1", "not supported with redis+cluster",
                     id="cluster-wait"),
        pytest.param("redis+cluster://:s3cret@127.0.0.1:1?prefix={shop}:", "may not contain {", id="cluster-braces"),
        pytest.param("redis+cluster://:s3cret@127.0.0.1:1?prefix=", "non-empty prefix", id="cluster-no-prefix"),
        pytest.param("redis+clutser://:s3cret@127.0.0.1:1", "unsupported store URL scheme", id="misspelt-scheme"),
    ],
)
def test_a_bad_url_is_a_configuration_error_naming_store(url: str, needle: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_store(url)
    assert caught.value.option == "store"
    assert needle in caught.value.message
    assert "s3cret" not in str(caught.value)


def test_check_hides_every_password_of_a_store_url() -> None:
    url = ("redis+sentinel://app:data-s3cret@10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
           "?socket_timeout=0.5&sentinel_password=sentinel-s3cret")
    shown = Settings(secret=SECRET, store=url).public_view()["store"]
    assert "s3cret" not in shown
    assert shown == ("redis+sentinel://app:<hidden>@10.0.0.1:26379,10.0.0.2:26379/mymaster/0"
                     "?socket_timeout=0.5&sentinel_password=<hidden>")


# -- through the middleware, two instances on one store ------------------------------------------
@pytest.fixture(params=[pytest.param("redis_cluster_url", id="cluster", marks=SLOW),
                        pytest.param("redis_sentinel_url", id="sentinel", marks=SLOW)])
def topology_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(request.param)
    return url


def test_two_middlewares_share_logins_logouts_revocations_and_refresh_reuse(
    make_client: Any, topology_url: str
) -> None:
    one = make_client(store=topology_url, refresh_reuse_interval=0)
    two = make_client(store=topology_url, refresh_reuse_interval=0)

    first = login(one)
    assert two.get("/api/me", headers=bearer(first["access_token"])).status_code == 200
    assert one.post("/auth/logout", headers=bearer(first["access_token"])).status_code == 204
    assert two.get("/api/me", headers=bearer(first["access_token"])).status_code == 401

    # A refresh token used on one instance is spent on the other: its reuse revokes the family.
    second = login(two)
    rotated = one.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert rotated.status_code == 200
    reused = two.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert reused.status_code == 401 and reused.json["error"] == "invalid_grant"
    again = one.post("/auth/refresh", json={"refresh_token": rotated.json["refresh_token"]})
    assert again.status_code == 401, "the family was revoked by the reuse"

    # revoke() on one instance, "log out everywhere" on the other.
    third, fourth = login(one), login(two)
    one.middleware.revoke(third["access_token"])
    assert two.get("/api/me", headers=bearer(third["access_token"])).status_code == 401
    assert two.get("/api/me", headers=bearer(fourth["access_token"])).status_code == 200
    assert two.post("/auth/logout", headers=bearer(fourth["access_token"]), json={"all": True}).status_code == 204
    assert one.get("/api/me", headers=bearer(fourth["access_token"])).status_code == 401
    fifth = login(one)
    assert two.get("/api/me", headers=bearer(fifth["access_token"])).status_code == 200


@SLOW
def test_every_key_of_a_cluster_store_lives_on_one_slot(make_client: Any, redis_cluster: ClusterServers) -> None:  # noqa: F811
    import redis

    redis_cluster.flush()
    client = make_client(store=redis_cluster.url + "?prefix=shop:", refresh_reuse_interval=0)
    tokens = login(client)
    assert client.post("/auth/login", json={"username": "alice", "password": "wrong"}).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 200
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401  # reuse
    later = login(client)
    assert client.post("/auth/logout", headers=bearer(later["access_token"]), json={"all": True}).status_code == 204

    keys: dict[int, list[bytes]] = {}
    for node in redis_cluster.nodes:
        raw = redis.Redis(host="127.0.0.1", port=node.port)
        try:
            keys[node.port] = raw.keys("*")
            slots = {raw.cluster("KEYSLOT", key) for key in keys[node.port]}
            assert slots <= {raw.cluster("KEYSLOT", "{shop:}")}
        finally:
            raw.close()
    holding = [port for port, found in keys.items() if found]
    assert len(holding) == 1, keys
    names = b" ".join(keys[holding[0]])
    for kind in (b"epoch", b"revoked:", b"family:", b"subject:", b"spent:", b"hits:"):
        assert b"{shop:}" + kind in names, (kind, names)


@SLOW
def test_a_replica_never_answers_a_revocation_check(redis_sentinel_url: str, redis_sentinel: SentinelServers) -> None:  # noqa: F811,E501
    """Pointed at a replica (as a pooled connection is after its master was demoted), every script
    is refused, so the store reports itself unavailable instead of answering from a copy that may
    miss the latest revocations."""
    master = open_store(redis_sentinel_url)
    now = time.time()
    master.ping()  # the epoch marker: nothing left for the check to write
    master.revoke("j", now + 3600)  # confirmed by the replica (wait_replicas=1)
    master.close()
    port = redis_sentinel.master_port()
    replica = redis_sentinel.replica if redis_sentinel.master.port == port else redis_sentinel.master
    store = open_store(f"redis://:{redis_sentinel.password}@127.0.0.1:{replica.port}/0")
    try:
        for check in (lambda: store.is_revoked("j", "alice", now, None), store.ping):
            with pytest.raises(StoreUnavailable, match="read only replica"):
                check()
    finally:
        store.close()


@SLOW
def test_a_wrong_password_is_unavailable_and_never_shown(redis_sentinel_url: str) -> None:  # noqa: F811
    for wrong in (redis_sentinel_url.replace("sentinel-password", "sentinel-guess"),
                  redis_sentinel_url.replace("data-node-password", "data-node-guess")):
        store = open_store(wrong)
        try:
            with pytest.raises(StoreUnavailable) as caught:
                store.ping()
            assert "guess" not in str(caught.value) and "Redis(" not in str(caught.value)
        finally:
            store.close()


@SLOW
def test_wait_replicas_on_a_redis_without_replicas_refuses_the_revocation(redis_url: str) -> None:  # noqa: F811
    confirmed = open_store(redis_url + "?wait_replicas=1&wait_timeout=0.1")
    try:
        now = time.time()
        with pytest.raises(StoreUnavailable, match="reached 0 of the 1 replica"):
            confirmed.revoke("j", now + 3600)
        with pytest.raises(StoreUnavailable, match="reached 0 of the 1 replica"):
            confirmed.spend("r", now + 3600)
        # Applied on the master all the same (a retry is harmless), and checks need no replica.
        assert confirmed.is_revoked("j", "alice", now, None) is True
        assert confirmed.hit("login:alice", 60)[0] == 1
    finally:
        confirmed.close()


# -- failover ------------------------------------------------------------------------------------
@SLOW
def test_a_failover_loses_no_confirmed_revocation_and_never_accepts_a_revoked_token(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running_sentinel(tmp_path) as servers:
        # Generous timeouts: on a busy machine a replica may take a while to confirm a write, and
        # the dead master refuses connections at once anyway (loopback).
        url = servers.url + "&socket_timeout=2&wait_timeout=1.5"
        one, two = make_client(store=url), make_client(store=url)
        revoked, kept, spare = login(one), login(two), login(one)
        # Answered once the replica has it (wait_replicas=1 by default behind Sentinel).
        assert one.post("/auth/logout", headers=bearer(revoked["access_token"])).status_code == 204

        # Load through the failover: three more middlewares (workers) check both tokens nonstop.
        seen: Counter[tuple[str, int]] = Counter()
        wrong: list[str] = []
        lock, stop = threading.Lock(), threading.Event()
        workers = [make_client(store=url) for _ in range(3)]

        def load(client: Any) -> None:
            while not stop.is_set():
                for name, token, allowed in (("revoked", revoked, (401, 503)), ("kept", kept, (200, 503))):
                    answer = client.get("/api/me", headers=bearer(token["access_token"])).status_code
                    with lock:
                        seen[name, answer] += 1
                        if answer not in allowed:
                            wrong.append(f"{name} token answered {answer}")

        threads = [threading.Thread(target=load, args=(worker,), daemon=True) for worker in workers]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: seen["kept", 200] > 0, "the load to start")
            during = login(one)
            old_port = servers.master_port()
            dead = servers.kill_master()
            # No sign-in while the master is gone (unless the failover was already over).
            signin = one.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}).status_code
            assert signin == 503 or servers.master_port() != old_port, signin
            logouts: list[int] = []

            def promoted() -> bool:
                # A logout during the window: 503 (the client tries again), or 204 only if it holds.
                logouts.append(one.post("/auth/logout", headers=bearer(during["access_token"])).status_code)
                return servers.master_port() != old_port

            wait_until(promoted, "the sentinel to promote the replica")
            servers.wait_for_failover(old_port)
            with lock:
                after = seen["kept", 200]
            wait_until(lambda: seen["kept", 200] > after + 10, "the load to reach the new master")
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        assert not wrong, (wrong[:5], seen)
        assert seen["revoked", 503] > 0 and seen["kept", 503] > 0, seen  # the window was seen, and refused
        assert set(logouts) <= {204, 503}, logouts
        if 204 in logouts:
            assert two.get("/api/me", headers=bearer(during["access_token"])).status_code == 401

        # The promoted replica had the revocation: it still holds, on both instances.
        wait_until(lambda: two.get("/api/me", headers=bearer(kept["access_token"])).status_code == 200,
                   "requests to reach the new master")
        for client in (one, two):
            assert client.get("/api/me", headers=bearer(revoked["access_token"])).status_code == 401
            assert client.get("/api/me", headers=bearer(kept["access_token"])).status_code == 200
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR and "lost its state" in r.getMessage()]

        # No replica left to confirm a revocation: 503 (the client tries again), never a 204 a
        # second failover could undo.
        assert one.post("/auth/logout", headers=bearer(kept["access_token"])).status_code == 503
        lonely = open_store(url)
        try:  # and jwt-wsgi check says why
            assert any("0 connected replica(s)" in warning for warning in lonely.durability_warnings())
        finally:
            lonely.close()

        # The old master returns as a replica of the new one: revocations are confirmed again.
        new_port = servers.master_port()
        dead.options["replicaof"] = f"127.0.0.1 {new_port}"
        dead.start()
        wait_until(lambda: servers.replicas_in_sync(new_port) >= 1, "the old master to resync as a replica")
        assert one.post("/auth/logout", headers=bearer(spare["access_token"])).status_code == 204
        assert two.get("/api/me", headers=bearer(spare["access_token"])).status_code == 401
        assert two.get("/api/me", headers=bearer(login(two)["access_token"])).status_code == 200


# -- jwt-wsgi check ------------------------------------------------------------------------------
@SLOW
def test_check_reaches_the_master_through_the_sentinel_and_shows_no_password(
    tmp_path: Path, redis_sentinel_url: str  # noqa: F811
) -> None:
    from tests.test_cli import ok, run

    url = redis_sentinel_url + "&socket_timeout=0.5"
    result = ok(run("check", cwd=tmp_path, JWT_WSGI_STORE=url))
    output = result.stdout + result.stderr
    assert "data-node-password" not in output and "sentinel-password" not in output
    assert json.loads(result.stdout)["store"] == (
        url.replace("data-node-password", "<hidden>").replace("sentinel-password", "<hidden>")
    )
    assert "persists nothing" in output  # the master's configuration, read through the sentinel
