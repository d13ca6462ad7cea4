"""Monitoring and logs of real servers: Prometheus counters summed over gunicorn workers
(multiprocess mode), and what ``jwt-wsgi serve`` writes for an operator (text and JSON lines)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from tests._services import unavailable
from tests.conftest import ALICE_PASSWORD, FAST_HASH, SECRET
from tests.servers import GUNICORN, JWT_WSGI, Server, bearer, get, login, on_every_worker, post, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("prometheus_client") is None:
        unavailable("prometheus_client is not installed (pip install -e '.[dev]')")
    path = tmp_path_factory.mktemp("users") / "users.json"
    path.write_text(json.dumps({"users": {
        "alice": {"password": generate_password_hash(ALICE_PASSWORD, method=FAST_HASH), "claims": {"scope": "read"}},
    }}))
    return path


def sample(page: str, name: str, labels: str = "") -> float:
    found = re.search("^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$", page, re.M)
    return float(found.group(1)) if found else 0.0


def secrets_absent(output: str, *values: str) -> None:
    for value in (ALICE_PASSWORD, SECRET, *values):
        assert value not in output, f"a secret in the server's output:\n{output[-3000:]}"


def test_serve_sums_two_workers_and_logs_a_timestamped_audit_line(tmp_path, users):
    # jwt-wsgi serve with metrics_path: it sets up prometheus_client's multiprocess directory
    # itself. Sync workers, so that on_every_worker reaches each of the two for certain.
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users),
                     JWT_WSGI_METRICS_PATH="/metrics", PROMETHEUS_MULTIPROC_DIR=None)
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "2",
                     "--worker-class", "sync", "--protect", "/api"], env, tmp_path / "logs", name="serve")
    with server:
        tokens = login(server.base_url, "alice", ALICE_PASSWORD)
        answers = on_every_worker(server.base_url, "/api/me", bearer(tokens["access_token"]), workers=2)
        assert [r.status for r in answers] == [200, 200]
        assert post(server.base_url, "/auth/login", json_body={"username": "alice", "password": "wrong"}).status == 401
        page = get(server.base_url, "/metrics")
        assert page.status == 200, page
        text = page.body.decode()
    # One request in each worker: only the sum of both processes' files says 2.
    assert sample(text, "jwt_wsgi_revocation_checks_total", 'result="not_revoked"') == 2, text
    assert sample(text, "jwt_wsgi_events_total", 'event="login",reason=""') == 1, text
    assert sample(text, "jwt_wsgi_decisions_total", 'reason="allowed"') == 2, text
    assert sample(text, "jwt_wsgi_events_total", 'event="login_failed",reason="invalid_credentials"') == 1, text
    errors = server.stderr_path.read_text()
    stamp = r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[INFO\] "
    assert re.search(stamp + r"login sub=alice client=127\.0\.0\.1 request_id=[0-9a-f]{32} path=/auth/login$",
                     errors, re.M), errors
    assert re.search(stamp + r"login_failed reason=invalid_credentials sub=alice client=127\.0\.0\.1 ", errors,
                     re.M), errors
    output = server.output()
    assert "Traceback" not in output
    secrets_absent(output, "wrong", tokens["access_token"], tokens["refresh_token"])


def test_serve_json_lines(tmp_path, users):
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users))
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "1",
                     "--protect", "/api", "--log-format", "json"], env, tmp_path / "logs", name="serve-json")
    with server:
        response = post(server.base_url, "/auth/login", json_body={"username": "alice", "password": ALICE_PASSWORD},
                        headers={"X-Request-Id": "trace-7"})
        assert response.status == 200
        tokens = response.json()
        assert get(server.base_url, "/api/me", headers=bearer(tokens["access_token"])).status == 200
    lines = [line for line in server.output().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line: gunicorn's, the access log's, ours
    (event,) = [e for e in entries if e.get("logger") == "jwt_wsgi.audit"]
    assert {k: event[k] for k in ("level", "event", "sub", "client", "request_id", "path")} == {
        "level": "INFO", "event": "login", "sub": "alice", "client": "127.0.0.1", "request_id": "trace-7",
        "path": "/auth/login"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"]) and event["pid"] > 0
    assert any(e["logger"] == "gunicorn.access" and '"GET /api/me" 200' in e["message"] for e in entries)
    secrets_absent("\n".join(lines), tokens["access_token"], tokens["refresh_token"])


def test_gunicorn_conf_with_a_multiprocess_directory_sums_the_workers(tmp_path, users):
    # A deployment of one's own: examples/gunicorn.conf.py, PROMETHEUS_MULTIPROC_DIR set by the operator.
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users),
                     JWT_WSGI_METRICS_PATH="/metrics", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                     BIND="127.0.0.1:{port}", WORKERS="2", WORKER_CLASS="sync")
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", "examples.plain_wsgi:application"], env,
                    tmp_path / "logs", name="gunicorn", ready_path="/api/health")
    with server:
        token = login(server.base_url, "alice", ALICE_PASSWORD)["access_token"]
        assert [r.status for r in on_every_worker(server.base_url, "/api/me", bearer(token), workers=2)] == [200, 200]
        text = get(server.base_url, "/metrics").body.decode()
    assert sample(text, "jwt_wsgi_revocation_checks_total", 'result="not_revoked"') == 2, text
    assert sample(text, "jwt_wsgi_store_call_seconds_count", 'op="is_revoked"') == 2, text
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 2  # one file per worker that counted
    assert "Traceback" not in server.output()


@pytest.mark.parametrize(("public", "note"), [
    pytest.param("", "to requests with a valid token (it is under protect)", id="protected"),
    pytest.param("/metrics", "to ANY client (it is not under protect)", id="public"),
])
def test_check_shows_metrics_path_and_who_may_read_it(tmp_path, users, public, note):
    import subprocess

    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, JWT_WSGI_METRICS_PATH="/metrics",
                     JWT_WSGI_PUBLIC=public or None)
    result = subprocess.run([JWT_WSGI, "check"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["metrics_path"] == "/metrics"
    assert shown["metrics"] is None  # the default: Prometheus, because metrics_path is set
    assert f"metrics: /metrics serves the metrics page {note}" in result.stderr
    bad = subprocess.run([JWT_WSGI, "check"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**env, "JWT_WSGI_METRICS_PATH": "metrics"})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "metrics_path" in bad.stderr, bad.stderr


def test_counts_survive_a_hup_reload(tmp_path, users):
    import os
    import signal

    from tests.test_reload import replace_workers, started

    config = tmp_path / "jwt.toml"
    config.write_text(f'secret = "{SECRET}"\nprotect = ["/api"]\nusers_file = "{users}"\nmetrics_path = "/metrics"\n')
    # (The example module builds its own middleware too, from JWT_WSGI_SECRET, when imported.)
    env = server_env(tmp_path / "run", JWT_WSGI_SECRET=SECRET, PROMETHEUS_MULTIPROC_DIR=None)
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--config", str(config), "--bind",
                     "127.0.0.1:{port}", "--workers", "2"], env, tmp_path / "logs", name="serve-hup")

    def logins() -> float:
        return sample(get(server.base_url, "/metrics").body.decode(), "jwt_wsgi_events_total",
                      'event="login",reason=""')

    with server:
        started(server)
        login(server.base_url, "alice", ALICE_PASSWORD)
        assert logins() == 1
        replace_workers(server, lambda: os.kill(server.pid, signal.SIGHUP))  # a new middleware, new workers
        assert logins() == 1  # the old workers' counts are still summed
        login(server.base_url, "alice", ALICE_PASSWORD)
        assert logins() == 2
    assert "reload failed" not in server.output() and "Traceback" not in server.output()
