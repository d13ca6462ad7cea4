"""Token lifecycle across processes and hosts (issue 3): real gunicorn workers, SQLite, Redis."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from . import servers
from ._services import unavailable
from .conftest import ALICE_PASSWORD, FAST_HASH, SECRET
from .redis_server import RedisServer, running_redis
from .servers import Server, bearer, get, login, on_every_worker, post, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def users(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.json"
    path.write_text(json.dumps({"users": {
        "alice": {"password": generate_password_hash(ALICE_PASSWORD, method=FAST_HASH), "claims": {"scope": "read"}},
    }}))
    return path


def serve(tmp_path: Path, users: Path, name: str, *args: str, workers: int = 3) -> Server:
    env = server_env(tmp_path / f"run-{name}", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users))
    argv = [servers.JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}",
            "--workers", str(workers), "--protect", "/api", *args]
    return Server(argv, env, tmp_path / "logs", name=name, ready_path="/")


def bad_login(base_url: str, i: int) -> int:
    return post(base_url, "/auth/login", json_body={"username": "alice", "password": f"wrong-{i}"}).status


# -- one host, several workers, SQLite --------------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory, users):
    tmp = tmp_path_factory.mktemp("sqlite-serve")
    with serve(tmp, users, "sqlite", "--store", f"sqlite:///{tmp}/store.db", workers=3) as server:
        yield server
    assert "Traceback" not in server.output()


def test_logout_holds_in_every_worker(sqlite_server):
    base = sqlite_server.base_url
    token = login(base, "alice", ALICE_PASSWORD)["access_token"]
    assert [r.status for r in on_every_worker(base, "/api/me", bearer(token), workers=3)] == [200, 200, 200]
    assert post(base, "/auth/logout", headers=bearer(token)).status == 204
    statuses = [get(base, "/api/me", headers=bearer(token)).status for _ in range(40)]
    assert statuses == [401] * 40
    assert [r.status for r in on_every_worker(base, "/api/me", bearer(token), workers=3)] == [401, 401, 401]


def test_login_rate_limit_counts_across_workers(sqlite_server):
    base = sqlite_server.base_url
    statuses = [bad_login(base, i) for i in range(6)]
    assert statuses == [401] * 5 + [429], statuses
    response = post(base, "/auth/login", json_body={"username": "alice", "password": ALICE_PASSWORD})
    assert response.status == 429 and int(response.headers["retry-after"]) >= 1


def concurrent_refreshes(base_urls: list[str], refresh: str, n: int = 8) -> list[servers.Response]:
    """``n`` refreshes with one token at the same moment, spread over ``base_urls``."""
    results: list[servers.Response] = []
    barrier = threading.Barrier(n)

    def attempt(i: int) -> None:
        barrier.wait()
        results.append(post(base_urls[i % len(base_urls)], "/auth/refresh", json_body={"refresh_token": refresh}))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_refreshes_all_get_the_same_successor(sqlite_server, tmp_path):
    """One client's 8 concurrent refreshes (refresh_reuse_interval, 10 s by default) over 3
    workers: one rotation, and every answer carries its tokens; the chain goes on from there."""
    base = sqlite_server.base_url
    # A fresh user per test run would need a users-file edit; a different client address would too.
    # Log in before the rate-limit test's lockout matters: use the refresh endpoint only.
    env = server_env(tmp_path / "tok", JWT_WSGI_SECRET=SECRET)
    minted = subprocess.run([servers.PYTHON, "-c", (
        "import jwt, time, uuid;"
        f"print(jwt.encode({{'sub': 'alice', 'iat': time.time(), 'exp': int(time.time()) + 600,"
        " 'jti': uuid.uuid4().hex, 'type': 'refresh', 'fam': uuid.uuid4().hex},"
        f" {SECRET!r}, algorithm='HS256'))")], capture_output=True, text=True, env=env, check=True)
    refresh = minted.stdout.strip()
    results = concurrent_refreshes([base], refresh)
    assert [r.status for r in results] == [200] * 8, [str(r) for r in results]
    bodies = [r.json() for r in results]
    # HS256 signs deterministically: the same successor is the same two strings.
    assert len({(b["access_token"], b["refresh_token"]) for b in bodies}) == 1
    successor = bodies[0]
    assert get(base, "/api/me", headers=bearer(successor["access_token"])).status == 200
    assert post(base, "/auth/refresh", json_body={"refresh_token": successor["refresh_token"]}).status == 200


# -- two hosts sharing Redis -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def redis(tmp_path_factory):
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


def test_two_hosts_share_revocation_and_rate_limits(tmp_path, users, redis: RedisServer):
    redis.flush()
    store = ["--store", redis.url]
    with serve(tmp_path, users, "host-a", *store, workers=2) as host_a, \
            serve(tmp_path, users, "host-b", *store, workers=2) as host_b:
        token = login(host_a.base_url, "alice", ALICE_PASSWORD)["access_token"]
        assert get(host_b.base_url, "/api/me", headers=bearer(token)).status == 200
        assert post(host_a.base_url, "/auth/logout", headers=bearer(token)).status == 204
        assert [get(host_b.base_url, "/api/me", headers=bearer(token)).status for _ in range(10)] == [401] * 10
        # One client's concurrent refreshes through both hosts: one successor for all.
        shared = login(host_b.base_url, "alice", ALICE_PASSWORD)["refresh_token"]
        results = concurrent_refreshes([host_a.base_url, host_b.base_url], shared)
        assert [r.status for r in results] == [200] * 8, [str(r) for r in results]
        assert len({r.json()["refresh_token"] for r in results}) == 1
        # Failed logins split across both hosts still add up to one limit.
        statuses = [bad_login(host.base_url, i) for i, host in enumerate([host_a, host_b] * 3)]
        assert statuses == [401] * 5 + [429], statuses
    for host in (host_a, host_b):
        assert "Traceback" not in host.output()


def test_store_outage_fails_closed_and_recovers(tmp_path, users, redis: RedisServer):
    redis.flush()
    with serve(tmp_path, users, "outage", "--store", redis.url, workers=2) as server:
        token = login(server.base_url, "alice", ALICE_PASSWORD)["access_token"]
        assert get(server.base_url, "/api/me", headers=bearer(token)).status == 200
        redis.stop()
        try:
            for _ in range(4):
                response = get(server.base_url, "/api/me", headers=bearer(token), timeout=10)
                assert response.status == 503, response
                assert response.json()["error"] == "service_unavailable"
            assert get(server.base_url, "/").status == 200  # unprotected routes keep working
            assert post(server.base_url, "/auth/login",
                        json_body={"username": "alice", "password": ALICE_PASSWORD}).status == 503
        finally:
            redis.start()
        # Redis came back empty (the test server persists nothing): the token issued before is
        # refused from now on, since its revocation could have been lost; signing in again works.
        assert [r.status for r in on_every_worker(server.base_url, "/api/me", bearer(token))] == [401, 401]
        fresh = login(server.base_url, "alice", ALICE_PASSWORD)["access_token"]
        assert [r.status for r in on_every_worker(server.base_url, "/api/me", bearer(fresh))] == [200, 200]
    assert "Traceback" not in server.output()


def test_redis_that_forgot_everything_keeps_refusing_older_tokens(tmp_path, users):
    """Redis restarted without persistence: no revoked token comes back, no spent refresh token
    rotates again, every older token is refused, new sign-ins work, and it is logged loudly."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    (tmp_path / "redis").mkdir()
    with running_redis(tmp_path / "redis") as store, \
            serve(tmp_path, users, "amnesia", "--store", store.url, workers=2) as server:
        base = server.base_url
        logged_out, kept, rotated = (login(base, "alice", ALICE_PASSWORD) for _ in range(3))
        assert post(base, "/auth/logout", headers=bearer(logged_out["access_token"]),
                    json_body={"refresh_token": logged_out["refresh_token"]}).status == 204
        successor = post(base, "/auth/refresh", json_body={"refresh_token": rotated["refresh_token"]})
        assert successor.status == 200
        assert get(base, "/api/me", headers=bearer(kept["access_token"])).status == 200

        store.restart()  # same port, empty

        for tokens in (logged_out, kept, rotated, successor.json()):
            statuses = [get(base, "/api/me", headers=bearer(tokens["access_token"])).status for _ in range(6)]
            assert statuses == [401] * 6, statuses
        for tokens in (logged_out, kept, rotated, successor.json()):
            again = post(base, "/auth/refresh", json_body={"refresh_token": tokens["refresh_token"]})
            assert again.status == 401, again
        fresh = login(base, "alice", ALICE_PASSWORD)
        assert [get(base, "/api/me", headers=bearer(fresh["access_token"])).status for _ in range(6)] == [200] * 6
        assert post(base, "/auth/refresh", json_body={"refresh_token": fresh["refresh_token"]}).status == 200
    output = server.output()
    assert "Traceback" not in output
    lost = [line for line in output.splitlines() if "lost its state" in line]
    assert 1 <= len(lost) <= 2, lost  # once per worker that saw it (at ERROR), never once per request


def test_check_warns_when_redis_persists_nothing(tmp_path, users, redis: RedisServer):
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users),
                     JWT_WSGI_STORE=redis.url)
    result = subprocess.run([servers.JWT_WSGI, "check"], cwd=servers.REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result
    warnings = [line for line in result.stderr.splitlines() if line.startswith("jwt-wsgi: warning:")]
    assert len(warnings) == 1 and "persists nothing" in warnings[0] and "appendonly yes" in warnings[0], result.stderr
    assert "Traceback" not in result.stderr


def test_store_fail_open_skips_only_the_revocation_check(tmp_path, users, redis: RedisServer):
    redis.flush()
    env = server_env(tmp_path / "run-open", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users),
                     JWT_WSGI_STORE=redis.url, JWT_WSGI_STORE_FAIL_OPEN="true")
    argv = [servers.JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "1",
            "--protect", "/api"]
    with Server(argv, env, tmp_path / "logs", name="fail-open-env", ready_path="/") as server:
        token = login(server.base_url, "alice", ALICE_PASSWORD)["access_token"]
        redis.stop()
        try:
            assert get(server.base_url, "/api/me", headers=bearer(token)).status == 200  # accepted: fail open
            assert post(server.base_url, "/auth/login",
                        json_body={"username": "alice", "password": ALICE_PASSWORD}).status == 503  # limits stay closed
        finally:
            redis.start()
    assert "Traceback" not in server.output()


def test_unreachable_store_is_a_one_line_startup_error(tmp_path, users):
    dead = f"redis://127.0.0.1:{servers.free_port()}/0"
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users), JWT_WSGI_STORE=dead)
    for argv in ([servers.JWT_WSGI, "check"],
                 [servers.JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:1"]):
        result = subprocess.run(argv, cwd=servers.REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("jwt-wsgi: error:") and "unreachable" in lines[0]
        assert "Traceback" not in result.stderr


def test_memory_store_with_several_workers_is_refused(tmp_path, users):
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users))
    result = subprocess.run([servers.JWT_WSGI, "serve", "examples.plain_wsgi:app", "--workers", "2",
                             "--store", "memory://", "--bind", "127.0.0.1:1"],
                            cwd=servers.REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "memory://" in result.stderr and "Traceback" not in result.stderr


def test_serve_defaults_to_sqlite_with_several_workers(tmp_path, users):
    server = serve(tmp_path, users, "default-store", workers=2)
    with server:
        token = login(server.base_url, "alice", ALICE_PASSWORD)["access_token"]
        assert post(server.base_url, "/auth/logout", headers=bearer(token)).status == 204
        assert [r.status for r in on_every_worker(server.base_url, "/api/me", bearer(token))] == [401, 401]
    assert "sqlite:///" in server.output()
