"""The store contract (``jwt_wsgi/stores/base.py``), run against every backend.

The memory store runs in-process; the SQLite store on a file under ``tmp_path``; the Redis store
against a real ``redis-server`` (``tests/redis_server.py``). Nothing sleeps: expiry is tested on
every backend with records written already expired (Redis keeps time on the server, so a fake
clock cannot reach it), and at the exact instant with a fake clock where one can be injected.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jwt_wsgi.errors import ConfigurationError, StoreUnavailable
from jwt_wsgi.stores import MemoryStore, Store, cutoff_after, open_store
from jwt_wsgi.stores.redis import RedisStore
from jwt_wsgi.stores.sqlite import SQLiteStore
from tests.redis_server import (  # noqa: F401
    free_port,
    redis_cluster,
    redis_cluster_url,
    redis_sentinel,
    redis_sentinel_url,
    redis_server,
    redis_url,
    running_redis,
)

REDIS = pytest.param("redis", id="redis", marks=pytest.mark.slow)
# The same store on a Redis Cluster (three primaries) and behind Redis Sentinel (master + replica).
REDIS_TOPOLOGIES = [pytest.param("redis_cluster", id="redis-cluster", marks=pytest.mark.slow),
                    pytest.param("redis_sentinel", id="redis-sentinel", marks=pytest.mark.slow)]
ALL_KINDS = [pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite"), REDIS, *REDIS_TOPOLOGIES]
SHARED_KINDS = [pytest.param("sqlite", id="sqlite"), REDIS, *REDIS_TOPOLOGIES]
HOUR = 3600.0


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "memory":
        return "memory://"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("redis_url" if kind == "redis" else f"{kind}_url")
    return url


def long_running(url: str, since: float = 1.0) -> str:
    """``url``, its store set up as if it had kept its state since ``since`` (its epoch).

    A store first used empty refuses every token issued before that moment (it cannot know
    what it never saw); the contract tests below date tokens freely, so their store begins early.
    """
    if url.startswith("sqlite"):
        early: Store = SQLiteStore(SQLiteStore.from_url(url).path, clock=lambda: since)
    elif url.startswith("redis"):
        early = RedisStore(url, clock=lambda: since)
    else:
        return url
    early.ping()
    early.close()
    return url


@pytest.fixture(params=ALL_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store(long_running(_url(request.param, request, tmp_path)))
    yield opened
    opened.close()


@pytest.fixture(params=SHARED_KINDS)
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store URL that several processes can open and see the same state through."""
    return _url(request.param, request, tmp_path)


# -- revocation ---------------------------------------------------------------------------------
def test_implements_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    store.ping()


def test_nothing_is_revoked_at_first(store: Store) -> None:
    assert store.is_revoked("j1", "alice", time.time(), "f1") is False
    assert store.is_revoked(None, "alice", time.time(), None) is False


def test_revoke_one_token_id(store: Store) -> None:
    now = time.time()
    store.revoke("j1", now + HOUR)
    assert store.is_revoked("j1", "alice", now, None) is True
    assert store.is_revoked("j2", "alice", now, None) is False
    assert store.is_revoked(None, "alice", now, None) is False


def test_revoke_a_family(store: Store) -> None:
    now = time.time()
    store.revoke_family("fam", now + HOUR)
    assert store.is_revoked("j1", "alice", now, "fam") is True
    assert store.is_revoked(None, "alice", now, "fam") is True
    assert store.is_revoked("j1", "alice", now, "other") is False
    assert store.is_revoked("j1", "alice", now, None) is False


@pytest.mark.parametrize(
    ("iat_offset", "revoked"),
    [
        pytest.param(-100.0, True, id="issued-long-before"),
        pytest.param(-0.001, True, id="issued-just-before"),
        pytest.param(0.0, False, id="issued-at-cutoff"),
        pytest.param(5.0, False, id="issued-after"),
    ],
)
def test_subject_cutoff(store: Store, iat_offset: float, revoked: bool) -> None:
    cutoff = time.time()
    store.revoke_subject("alice", cutoff, cutoff + HOUR)
    assert store.is_revoked(None, "alice", cutoff + iat_offset, None) is revoked
    assert store.is_revoked(None, "bob", cutoff + iat_offset, None) is False


def test_subject_cutoff_only_moves_forward(store: Store) -> None:
    now = time.time()
    store.revoke_subject("alice", now, now + HOUR)
    store.revoke_subject("alice", now - 50, now + HOUR)
    assert store.is_revoked(None, "alice", now - 10, None) is True
    store.revoke_subject("alice", now + 50, now + HOUR)
    assert store.is_revoked(None, "alice", now + 10, None) is True
    assert store.is_revoked(None, "alice", now + 60, None) is False


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("a:b:c", id="colons"),
        pytest.param("jwt_wsgi:revoked:x", id="looks-like-a-key"),
        pytest.param("Zoë 🔑", id="non-ascii"),
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("k" * 2000, id="long"),
    ],
)
def test_keys_are_exact(store: Store, key: str) -> None:
    now = time.time()
    store.revoke(key, now + HOUR)
    store.revoke_subject(key, now, now + HOUR)
    assert store.is_revoked(key, "nobody", now, None) is True
    assert store.is_revoked(None, key, now - 1, None) is True
    for near in (key + "x", key.upper() + "X", "\ufffd", " " + key):
        assert store.is_revoked(near, "nobody", now, None) is False
        assert store.is_revoked(None, near, now - 1, None) is False
    assert store.spend(key, now + HOUR) is True
    assert store.hit(key, 60)[0] == 1


def test_records_past_their_expiry_do_not_count(store: Store) -> None:
    """A record counts until its expiry, by the store's clock, and not after. No waiting: these
    records are written with an expiry already past (the exact instant is tested below with a
    fake clock for the stores that take one; Redis expires keys by its own clock)."""
    now = time.time()
    past = now - 1
    store.revoke("short", past)
    store.revoke_family("short-fam", past)
    store.revoke_subject("short-sub", now, past)
    store.spend("short-spent", past)
    # A later call with an earlier expiry must not shorten a record.
    store.revoke("long", now + HOUR)
    store.revoke("long", past)
    store.revoke_family("long-fam", now + HOUR)
    store.revoke_family("long-fam", past)
    store.revoke_subject("long-sub", now, now + HOUR)
    store.revoke_subject("long-sub", now, past)

    assert store.is_revoked("short", "x", now, None) is False
    assert store.is_revoked(None, "x", now, "short-fam") is False
    assert store.is_revoked(None, "short-sub", now - 1, None) is False
    assert store.spend("short-spent", now + HOUR) is True
    assert store.spend("short-spent", now + HOUR) is False
    assert store.is_revoked("long", "x", now, None) is True
    assert store.is_revoked(None, "x", now, "long-fam") is True
    assert store.is_revoked(None, "long-sub", now - 1, None) is True


# -- refresh tokens -----------------------------------------------------------------------------
def test_spend_is_true_once(store: Store) -> None:
    exp = time.time() + HOUR
    assert store.spend("r1", exp) is True
    assert store.spend("r1", exp) is False
    assert store.spend("r1", exp) is False
    assert store.spend("r2", exp) is True


def test_spend_is_true_once_across_threads(store: Store) -> None:
    exp = time.time() + HOUR
    store.ping()
    barrier = threading.Barrier(8)
    results: list[bool] = []

    def spend() -> None:
        barrier.wait(10)
        results.append(store.spend("contested", exp))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False] * 7 + [True]


def test_rotate_gives_every_use_within_the_interval_the_first_successor(store: Store) -> None:
    exp = time.time() + HOUR
    assert store.rotate("r1", exp, "successor-a", 60) == "successor-a"
    assert store.rotate("r1", exp, "successor-b", 60) == "successor-a"
    assert store.rotate("r1", exp, "successor-c", 60) == "successor-a"
    assert store.rotate("r2", exp, "successor-d", 60) == "successor-d"  # tokens are apart
    assert store.spend("r1", exp) is False  # rotate spends as spend does, and the other way round
    assert store.spend("r3", exp) is True
    assert store.rotate("r3", exp, "successor-e", 60) is None


def test_rotate_without_an_interval_works_once(store: Store) -> None:
    exp = time.time() + HOUR
    assert store.rotate("r1", exp, "successor-a", 0) == "successor-a"
    assert store.rotate("r1", exp, "successor-b", 0) is None
    assert store.rotate("r1", exp, "successor-b", 60) is None


def test_rotate_across_threads_hands_out_one_successor(store: Store) -> None:
    exp = time.time() + HOUR
    store.ping()
    barrier = threading.Barrier(8)
    results: list[str | None] = []

    def rotate(i: int) -> None:
        barrier.wait(10)
        results.append(store.rotate("contested", exp, f"successor-{i}", 60))

    threads = [threading.Thread(target=rotate, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 8 and len(set(results)) == 1 and results[0] is not None, results


# -- rate limits --------------------------------------------------------------------------------
def test_hit_counts_in_a_window_that_starts_at_the_first_hit(store: Store) -> None:
    count, first = store.hit("login:alice", 60)
    assert count == 1
    assert 59 < first <= 60
    count, second = store.hit("login:alice", 60)
    assert count == 2
    assert second <= first  # the second hit did not restart the window
    assert store.hit("login:alice", 60)[0] == 3
    assert store.hit("login:bob", 60)[0] == 1


def test_unhit_takes_back_one_attempt_and_never_goes_below_zero(store: Store) -> None:
    store.unhit("never-hit")
    assert store.hit("never-hit", 60)[0] == 1
    for _ in range(3):
        store.hit("k", 60)
    store.unhit("k")
    assert store.hit("k", 60)[0] == 3
    for _ in range(5):
        store.unhit("k")
    assert store.hit("k", 60)[0] == 1


def test_hits_across_threads_lose_nothing(store: Store) -> None:
    store.ping()
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def hit() -> None:
        barrier.wait(10)
        for _ in range(10):
            counts.append(store.hit("busy", 60)[0])

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(counts) == list(range(1, 41))


# -- lifecycle ----------------------------------------------------------------------------------
def test_usable_after_close(store: Store) -> None:
    now = time.time()
    store.revoke("j1", now + HOUR)
    store.close()
    store.close()
    store.ping()
    assert store.is_revoked("j1", "a", now, None) is True


# -- an injected clock (memory, SQLite): exact windows, no sleeping -------------------------------
class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=[pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite")])
def clocked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Store, FakeClock]]:
    clock = FakeClock()
    opened: Store = (
        MemoryStore(clock=clock) if request.param == "memory" else SQLiteStore(tmp_path / "s.db", clock=clock)
    )
    clock.now -= HOUR  # the store's epoch: an hour before the tests' tokens
    opened.ping()
    clock.now += HOUR
    yield opened, clock
    opened.close()


def test_exact_window_with_a_fake_clock(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    assert store.hit("k", 60) == (1, 60.0)
    clock.now += 30
    assert store.hit("k", 60) == (2, 30.0)
    clock.now += 29.5
    assert store.hit("k", 60) == (3, 0.5)
    clock.now += 0.5
    assert store.hit("k", 60) == (1, 60.0)


def test_exact_expiry_with_a_fake_clock(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    t0 = clock.now
    store.revoke("j", t0 + 10)
    store.revoke_family("f", t0 + 10)
    store.revoke_subject("s", t0, t0 + 10)
    assert store.spend("r", t0 + 10) is True
    clock.now = t0 + 9.999
    assert store.is_revoked("j", "x", t0, None) and store.is_revoked(None, "x", t0, "f")
    assert store.is_revoked(None, "s", t0 - 1, None) and not store.spend("r", t0 + 10)
    clock.now = t0 + 10
    assert not store.is_revoked("j", "x", t0, None) and not store.is_revoked(None, "x", t0, "f")
    assert not store.is_revoked(None, "s", t0 - 1, None) and store.spend("r", t0 + 20)
    # An expired mark is replaced, not merged: its old, later cut-off is gone.
    store.revoke_subject("s", t0 - 100, t0 + 20)
    assert not store.is_revoked(None, "s", t0 - 1, None)


def test_exact_reuse_interval_with_a_fake_clock(clocked: tuple[Store, FakeClock]) -> None:
    store, clock = clocked
    t0 = clock.now
    assert store.rotate("r", t0 + HOUR, "first", 10) == "first"
    clock.now = t0 + 9.999
    assert store.rotate("r", t0 + HOUR, "second", 10) == "first"
    clock.now = t0 + 10
    assert store.rotate("r", t0 + HOUR, "third", 10) is None


# -- several processes --------------------------------------------------------------------------
def _report(results: Any, work: Callable[[], object]) -> None:
    try:
        results.put(("ok", work()))
    except BaseException as exc:  # noqa: BLE001 - carried to the parent, which fails the test
        results.put(("error", repr(exc)))


def _spend_in_child(store: Store, jti: str, barrier: Any, results: Any) -> None:
    def work() -> bool:
        barrier.wait(20)
        return store.spend(jti, time.time() + HOUR)

    _report(results, work)


def _rotate_in_child(store: Store, jti: str, barrier: Any, results: Any) -> None:
    def work() -> str | None:
        barrier.wait(20)
        return store.rotate(jti, time.time() + HOUR, f"successor-of-{os.getpid()}", 60)

    _report(results, work)


def _hit_in_child(url: str, key: str, barrier: Any, results: Any) -> None:
    def work() -> list[int]:
        child_store = open_store(url)
        try:
            child_store.ping()
            barrier.wait(30)
            return [child_store.hit(key, 60)[0] for _ in range(10)]
        finally:
            child_store.close()

    _report(results, work)


def _run(ctx: Any, target: Callable[..., None], args: Callable[[Any, Any], tuple[Any, ...]], n: int) -> list[Any]:
    """Start ``n`` processes of ``target(*args(barrier, queue))``; return what each reported."""
    barrier, results = ctx.Barrier(n), ctx.Queue()
    processes = [ctx.Process(target=target, args=args(barrier, results)) for _ in range(n)]
    for process in processes:
        process.start()
    try:
        reports = [results.get(timeout=60) for _ in processes]
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    errors = [detail for status, detail in reports if status != "ok"]
    assert not errors, errors
    assert [process.exitcode for process in processes] == [0] * n
    return [detail for _, detail in reports]


def test_spend_is_true_once_across_processes(shared_url: str) -> None:
    """Eight forked workers present one refresh token at the same moment: one wins.

    The store is opened and used in the parent first, as under ``gunicorn --preload``, so each
    child must notice the fork and open its own connection.
    """
    store = open_store(shared_url)
    try:
        store.ping()
        assert store.is_revoked("x", "y", 0.0, None) is False
        ctx = multiprocessing.get_context("fork")
        outcomes = _run(ctx, _spend_in_child, lambda b, q: (store, "contested", b, q), 8)
        assert sorted(outcomes) == [False] * 7 + [True]
        assert store.spend("contested", time.time() + HOUR) is False
    finally:
        store.close()


def test_rotate_across_processes_hands_out_one_successor(shared_url: str) -> None:
    """Eight forked workers rotate one refresh token at the same moment: all get one successor."""
    store = open_store(shared_url)
    try:
        store.ping()
        ctx = multiprocessing.get_context("fork")
        outcomes = _run(ctx, _rotate_in_child, lambda b, q: (store, "contested", b, q), 8)
        assert len(set(outcomes)) == 1 and str(outcomes[0]).startswith("successor-of-"), outcomes
        assert store.rotate("contested", time.time() + HOUR, "late", 60) == outcomes[0]
    finally:
        store.close()


@pytest.mark.slow
def test_hits_across_processes_lose_nothing(shared_url: str) -> None:
    """Four freshly spawned workers count 10 failed logins each on one key: 40, none lost."""
    ctx = multiprocessing.get_context("spawn")
    reports = _run(ctx, _hit_in_child, lambda b, q: (shared_url, "login:alice", b, q), 4)
    assert sorted(count for counts in reports for count in counts) == list(range(1, 41))
    store = open_store(shared_url)
    try:
        assert store.hit("login:alice", 60)[0] == 41
    finally:
        store.close()


# -- SQLite -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "path"),
    [
        pytest.param("sqlite:////tmp/x.db", "/tmp/x.db", id="absolute"),
        pytest.param("sqlite:///x.db", "{cwd}/x.db", id="relative"),
        pytest.param("sqlite:///var/state/x.db", "{cwd}/var/state/x.db", id="relative-dir"),
        pytest.param("sqlite:////tmp/a%20b.db", "/tmp/a b.db", id="percent-encoded"),
        pytest.param("SQLite:////tmp/x.db?timeout=0.5", "/tmp/x.db", id="timeout"),
    ],
)
def test_sqlite_url(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SQLiteStore)
    assert store.path == path.format(cwd=os.getcwd())
    assert store.timeout == (0.5 if "timeout" in url else 5.0)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("sqlite://", id="no-path"),
        pytest.param("sqlite:///", id="empty-path"),
        pytest.param("sqlite:////tmp/", id="directory"),
        pytest.param("sqlite://host/x.db", id="host"),
        pytest.param("sqlite:///:memory:", id="in-memory"),
        pytest.param("sqlite:////tmp/x.db?mode=ro", id="unknown-parameter"),
        pytest.param("sqlite:////tmp/x.db?timeout=soon", id="bad-timeout"),
        pytest.param("sqlite:////tmp/x.db?timeout=-1", id="negative-timeout"),
    ],
)
def test_sqlite_url_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        SQLiteStore.from_url(url)
    assert info.value.option == "store"


def test_sqlite_touches_nothing_until_used_then_runs_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore.from_url(f"sqlite:///{path}")
    assert not path.exists()
    try:
        store.ping()
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda tmp: tmp / "missing" / "state.db", "does not exist", id="missing-directory"),
        pytest.param(lambda tmp: tmp, "unable to open", id="path-is-a-directory"),
        pytest.param(
            lambda tmp: (tmp / "junk.db").write_bytes(b"not a database, " * 512) and tmp / "junk.db",
            "not a database",
            id="not-a-database",
        ),
    ],
)
def test_sqlite_unusable_path_is_unavailable(tmp_path: Path, make: Callable[[Path], Path], message: str) -> None:
    store = SQLiteStore(make(tmp_path))
    try:
        with pytest.raises(StoreUnavailable, match=message):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.is_revoked("j", "s", 0.0, None)
        with pytest.raises(StoreUnavailable):
            store.revoke("j", time.time() + HOUR)
    finally:
        store.close()


def test_sqlite_recovers_once_the_directory_exists(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "later" / "state.db")
    try:
        with pytest.raises(StoreUnavailable, match="does not exist"):
            store.ping()
        (tmp_path / "later").mkdir()
        store.ping()
        assert store.spend("r", time.time() + HOUR) is True
    finally:
        store.close()


def test_sqlite_holds_no_lock_between_calls_and_reads_under_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SQLiteStore.from_url(f"sqlite:///{path}?timeout=0.1")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        store.revoke("j", time.time() + HOUR)
        assert store.spend("r", time.time() + HOUR) is True
        store.hit("k", 60)
        other.execute("BEGIN IMMEDIATE")  # would fail at once if the store still held the lock
        assert store.is_revoked("j", "s", 0.0, None) is True  # WAL: readers do not wait
        with pytest.raises(StoreUnavailable, match="locked"):  # after its 0.1 s busy timeout
            store.revoke("j2", time.time() + HOUR)
        other.execute("ROLLBACK")
        store.revoke("j2", time.time() + HOUR)
    finally:
        other.close()
        store.close()


def test_sqlite_file_does_not_grow_with_expired_rows(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = SQLiteStore(path, clock=clock)
    try:
        for i in range(20):
            store.revoke(f"j{i}", clock.now + 10)
            store.revoke_family(f"f{i}", clock.now + 10)
            store.revoke_subject(f"s{i}", clock.now, clock.now + 10)
            store.spend(f"r{i}", clock.now + 10)
            store.hit(f"k{i}", 10)
        clock.now += 10
        store.revoke("fresh", clock.now + 10)  # purges its own table on the way
        store.hit("fresh", 10)
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT count(*) FROM revoked").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM counters").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM spent").fetchone() == (20,)
        conn.close()
        store.purge()
        with sqlite3.connect(path) as conn:
            for table, left in (("revoked", 1), ("families", 0), ("subjects", 0), ("spent", 0), ("counters", 1)):
                assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (left,), table
        conn.close()
    finally:
        store.close()


# -- Redis --------------------------------------------------------------------------------------
def _redis_store(url: str) -> Any:
    from jwt_wsgi.stores.redis import RedisStore

    return RedisStore.from_url(url)


def test_redis_builds_without_connecting() -> None:
    store = _redis_store(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(StoreUnavailable, match="ConnectionError"):
            store.ping()
    finally:
        store.close()


@pytest.mark.slow
def test_redis_outage_fails_fast_and_recovers(tmp_path: Path) -> None:
    with running_redis(tmp_path) as server:
        store = _redis_store(server.url)
        try:
            now = time.time()
            store.revoke("j", now + HOUR)
            assert store.is_revoked("j", "s", now, None) is True

            server.stop()
            calls: list[Callable[[], object]] = [
                lambda: store.is_revoked("j", "s", now, "f"),
                lambda: store.revoke("j2", now + HOUR),
                lambda: store.revoke_subject("s", now, now + HOUR),
                lambda: store.revoke_family("f", now + HOUR),
                lambda: store.spend("r", now + HOUR),
                lambda: store.hit("k", 60),
                lambda: store.unhit("k"),
                store.ping,
            ]
            for call in calls:
                with pytest.raises(StoreUnavailable):  # at once: nothing listens (no retry loop)
                    call()

            server.start()  # same port, empty: nothing was persisted, and the store notices
            assert store.is_revoked("j", "s", now, None) is True  # the lost revocation holds
            assert store.is_revoked("never-revoked", "s", now, None) is True  # so does every older token
            after = time.time()
            assert store.is_revoked("new", "s", after, None) is False
            store.revoke("new", after + HOUR)
            assert store.is_revoked("new", "s", after, None) is True

            # A restart between two calls leaves a dead socket in the pool: even a write,
            # which is never retried, must get a fresh connection.
            server.restart()
            assert store.spend("r", now + HOUR) is True
            assert store.hit("k", 60)[0] == 1
        finally:
            store.close()


@pytest.mark.parametrize("query", [pytest.param("?socket_timeout=0.2", id="from-url"),
                                   pytest.param("", id="default-1s", marks=pytest.mark.slow)])
def test_redis_gives_up_on_a_server_that_never_answers(query: str) -> None:
    """A server that accepts connections and never answers (a hung or overloaded Redis): the store
    answers StoreUnavailable after its socket timeout and hangs up, rather than waiting forever."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        store = _redis_store(f"redis://127.0.0.1:{silent.getsockname()[1]}/0{query}")
        try:
            with pytest.raises(StoreUnavailable, match="Timeout"):
                store.is_revoked("j", "s", 0.0, None)
        finally:
            store.close()
        silent.settimeout(10)  # bounded: the store connected before it timed out
        connection, _ = silent.accept()
        with connection:
            connection.settimeout(10)  # bounded: the store has closed its end, so this reads EOF at once
            while connection.recv(65536):
                pass


@pytest.mark.slow
def test_redis_prefix_separates_deployments(redis_url: str) -> None:  # noqa: F811
    import redis

    shop = _redis_store(f"{redis_url}?prefix=shop:&socket_timeout=0.5")
    blog = _redis_store(redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        assert shop.prefix == "shop:" and blog.prefix == "jwt_wsgi:"
        shop.ping()  # each deployment begins its own epoch (start-up), before its tokens
        blog.ping()
        now = max(time.time(), shop.epoch, blog.epoch)
        shop.revoke("j", now + HOUR)
        assert shop.is_revoked("j", "s", now, None) is True
        assert blog.is_revoked("j", "s", now, None) is False
        blog.hit("k", 60)
        assert sorted(raw.keys()) == [b"jwt_wsgi:epoch", b"jwt_wsgi:hits:k", b"shop:epoch", b"shop:revoked:j"]
        assert 0 < raw.pttl("shop:revoked:j") <= HOUR * 1000
    finally:
        raw.close()
        shop.close()
        blog.close()


@pytest.mark.slow
def test_redis_password_works_and_is_never_shown(tmp_path: Path) -> None:
    with running_redis(tmp_path, password="hunter2") as server:
        good = _redis_store(server.url)
        bad = _redis_store(server.url.replace("hunter2", "hunter3"))
        try:
            good.ping()
            assert good.spend("r", time.time() + HOUR) is True
            for store in (good, bad):
                assert "hunter" not in repr(store)
            with pytest.raises(StoreUnavailable) as info:
                bad.ping()
            assert "hunter" not in str(info.value)
        finally:
            good.close()
            bad.close()
    with pytest.raises(ConfigurationError) as config:
        _redis_store("redis://:hunter2@127.0.0.1:6379/0?socket_timeout=soon")
    assert config.value.option == "store" and "hunter2" not in str(config.value)


# -- a store that lost its state (the epoch) ------------------------------------------------------
def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.slow
def test_redis_restarted_without_persistence_refuses_every_older_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis comes back empty: the lost revocation, and every token issued before, stay refused."""
    with running_redis(tmp_path) as server:
        store = _redis_store(server.url)
        other_worker = _redis_store(server.url)
        try:
            store.ping()
            other_worker.ping()
            before = time.time()
            store.revoke("logged-out", before + HOUR)
            assert store.spend("spent-refresh", before + HOUR) is True
            assert store.is_revoked("logged-out", "alice", before, None) is True
            assert store.is_revoked("live", "alice", before, None) is False
            assert not _errors(caplog)

            server.restart()  # same port, nothing persisted
            for _ in range(3):
                assert store.is_revoked("logged-out", "alice", before, None) is True
                assert store.is_revoked("live", "alice", before, "family") is True
                assert store.is_revoked(None, "bob", before, None) is True
            # The spent refresh token's record is gone, but the token itself predates the epoch.
            assert other_worker.is_revoked("spent-refresh", "alice", before, "fam") is True
            errors = _errors(caplog)
            assert len(errors) == 2, errors  # once per process that saw the loss, not per call
            assert all("lost its state" in e and "hunter" not in e for e in errors)
            assert store.epoch is not None and store.epoch > before

            after = store.epoch  # a token issued from then on
            assert store.is_revoked("new", "alice", after, None) is False
            assert other_worker.is_revoked("new", "alice", after, None) is False
            store.revoke("new", after + HOUR)
            assert other_worker.is_revoked("new", "alice", after, None) is True
            # A token without iat cannot be dated: only explicit revocations apply to it.
            assert store.is_revoked("undated", "alice", 0.0, None) is False
            assert len(_errors(caplog)) == 2
        finally:
            store.close()
            other_worker.close()


@pytest.mark.slow
def test_redis_first_use_of_an_empty_database_begins_the_epoch(redis_url: str) -> None:  # noqa: F811
    """An empty database may be a new one or one that forgot: tokens from before are refused."""
    before = time.time()
    store = _redis_store(redis_url)
    try:
        store.ping()  # at start-up
        assert store.epoch is not None and store.epoch >= before
        assert store.is_revoked("j", "alice", before - 1, None) is True
        assert store.is_revoked("j", "alice", store.epoch, None) is False  # issued from then on
    finally:
        store.close()


def _delete_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path + suffix)


def test_sqlite_file_deleted_under_running_workers_refuses_every_older_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = tmp_path / "state.db"
    store = SQLiteStore(path, clock=clock)
    try:
        clock.now -= HOUR
        store.ping()  # the file begins an hour before the tokens below
        clock.now += HOUR
        t0 = clock.now
        store.revoke("logged-out", t0 + HOUR)
        assert store.spend("spent", t0 + HOUR) is True
        assert store.is_revoked("live", "alice", t0, None) is False

        _delete_database(store.path)
        clock.now += 2  # the next call checks the file again
        assert store.is_revoked("logged-out", "alice", t0, None) is True
        assert store.is_revoked("live", "alice", t0, None) is True
        assert store.epoch == cutoff_after(clock.now)
        assert path.exists()  # a new file, with its own epoch
        errors = _errors(caplog)
        assert len(errors) == 1 and "lost its state" in errors[0], errors

        clock.now += 0.001
        assert store.is_revoked("new", "alice", clock.now, None) is False
        assert store.spend("new-refresh", clock.now + HOUR) is True
        clock.now += 5
        assert store.is_revoked("live", "alice", t0, None) is True
        assert len(_errors(caplog)) == 1
    finally:
        store.close()


def test_sqlite_file_replaced_is_seen_by_a_process_that_opens_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another worker finds a different file than the one it knew: the later epoch rules."""
    clock = FakeClock()
    path = tmp_path / "state.db"
    first = SQLiteStore(path, clock=clock)
    first.ping()
    first.close()  # as a worker between requests: it remembers the epoch, not the connection
    _delete_database(str(path))
    clock.now += 100
    replacement = SQLiteStore(path, clock=clock)
    replacement.ping()
    replacement.close()
    try:
        assert first.is_revoked("j", "alice", clock.now - 50, None) is True
        assert first.epoch == cutoff_after(clock.now)
        assert len(_errors(caplog)) == 1
    finally:
        first.close()


def test_sqlite_file_from_the_previous_schema_keeps_every_token(tmp_path: Path) -> None:
    """Upgrading is not a loss: a version-1 file has kept its records all along."""
    path = tmp_path / "v1.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE revoked (jti BLOB PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID")
        conn.execute("INSERT INTO revoked VALUES (?, ?)", (b"old-logout", time.time() + HOUR))
        conn.execute("PRAGMA user_version = 1")
        conn.commit()
    store = SQLiteStore(path)
    try:
        assert store.is_revoked("old-token", "alice", time.time() - HOUR, None) is False
        assert store.is_revoked("old-logout", "alice", time.time() - HOUR, None) is True
        assert store.epoch == 0.0
    finally:
        store.close()


@pytest.mark.slow
def test_redis_durability_warnings(tmp_path: Path) -> None:
    import redis

    with running_redis(tmp_path) as server:
        store = _redis_store(server.url)
        raw = redis.Redis.from_url(server.url)
        try:
            warnings = store.durability_warnings()  # the test server persists nothing
            assert len(warnings) == 1 and "persists nothing" in warnings[0], warnings
            raw.config_set("appendonly", "yes")
            assert store.durability_warnings() == []
            raw.config_set("maxmemory", "100mb")
            raw.config_set("maxmemory-policy", "allkeys-lru")
            assert ["allkeys-lru" in w for w in store.durability_warnings()] == [True]
            # CONFIG may be disabled for the application's user: one warning, no crash.
            raw.acl_setuser("app", enabled=True, passwords=["+app-password"], keys=["*"],
                            commands=["+@all", "-config"])
            limited = _redis_store(server.url.replace("redis://", "redis://app:app-password@"))
            try:
                limited.ping()
                warnings = limited.durability_warnings()
                assert len(warnings) == 1 and "CONFIG is disabled" in warnings[0], warnings
                assert "app-password" not in warnings[0]
            finally:
                limited.close()
        finally:
            raw.close()
            store.close()
