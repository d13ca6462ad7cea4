"""Reloading ``jwt-wsgi serve`` without a restart, through a real gunicorn master.

``SIGHUP`` re-reads the ``--config`` file and the keys in the master, then gunicorn replaces the
workers: a key rotation drops no request. A broken configuration is one error line and changes
nothing. ``SIGUSR2`` then ``SIGTERM`` (a new master from scratch, then the old one stopped) works
too. A client keeps sending requests through every change, and every answer it gets is counted.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from werkzeug.security import generate_password_hash

from jwt_wsgi.users import save_atomically
from tests.conftest import FAST_HASH, mint
from tests.servers import (
    JWT_WSGI,
    REPO_ROOT,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Server,
    bearer,
    free_port,
    get,
    login,
    post,
    server_env,
)

pytestmark = pytest.mark.slow

# TEST-ONLY secrets, one per key.
SECRETS = {
    "a": "reload-test-only-secret-A-0123456789-abcdefghijklmnopqrstuvwxyz",
    "b": "reload-test-only-secret-B-0123456789-abcdefghijklmnopqrstuvwxyz",
    "c": "reload-test-only-secret-C-0123456789-abcdefghijklmnopqrstuvwxyz",
}
PASSWORD = "P@ss-reload"
APP = f"{__name__}:whoami"


def whoami(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The application served: who the middleware says is calling."""
    body = json.dumps({"user": environ.get("REMOTE_USER")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def config(*kids: str, store: str | None = None) -> str:
    """A TOML configuration: ``kids[0]`` signs, every one verifies."""
    lines = ['protect = ["/api"]', 'users_file = "users.json"']
    if store:
        lines.append(f"store = {json.dumps(store)}")
    for kid in kids:
        lines += ["[[keys]]", f'kid = "{kid}"', f'secret = "{SECRETS[kid]}"']
        if kid == kids[0]:
            lines.append("active = true")
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    """Replace ``path`` whole, as a deployment tool would (never a half-written file)."""
    aside = path.with_suffix(".new")
    aside.write_text(text)
    os.replace(aside, path)


def token(kid: str) -> str:
    # No iat: a store's epoch starts with the server, and refuses the tokens dated before it.
    return mint(SECRETS[kid], headers={"kid": kid}, jti=uuid.uuid4().hex, iat=None)


def status(server: Server, tok: str) -> int:
    return get(server.base_url, "/api/me", headers=bearer(tok)).status


def children(pid: int) -> set[int]:
    """The processes ``pid`` forked (gunicorn's workers, and a new master after USR2)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def describe(pids: set[int]) -> str:
    """``pid state command`` of each process, for failure messages."""
    found = []
    for pid in sorted(pids):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            state, command = "gone", ""
        found.append(f"{pid} {state} {command[:120]}")
    return "; ".join(found) or "none"


def until(server: Server, condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll ``condition`` until it holds (bounded); the failure quotes the server's log."""
    deadline = time.monotonic() + timeout
    while not condition():
        server.check(time.monotonic() < deadline,
                     f"{what}: not within {timeout:g} s; the master's children: {describe(children(server.pid))}")
        time.sleep(0.05)  # polling another process


class Client(threading.Thread):
    """Sends ``GET /api/me`` with one token, one fresh connection at a time, until stopped."""

    def __init__(self, server: Server, tok: str) -> None:
        super().__init__(daemon=True)
        self.server, self.headers = server, bearer(tok)
        self.answers: Counter[int | str] = Counter()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.answers[get(self.server.base_url, "/api/me", headers=self.headers).status] += 1
            except (OSError, http.client.HTTPException) as exc:
                self.answers[type(exc).__name__] += 1

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self.join(STOP_TIMEOUT)

    def ok(self) -> int:
        """How many answers were 200; fails if any was not."""
        self.join(STOP_TIMEOUT)
        failed = {k: v for k, v in self.answers.items() if k != 200}
        self.server.check(not failed and self.answers[200] > 0, f"answers during the reload: {dict(self.answers)}")
        return self.answers[200]


def started(server: Server, workers: int = 2) -> Server:
    """``server``, once its master has forked every worker (it answers as soon as one has)."""
    until(server, lambda: len([pid for pid in children(server.pid) if alive(pid)]) == workers, "the workers to start")
    return server


def replace_workers(server: Server, send: Callable[[], None]) -> None:
    """``send()`` a signal, then wait until every worker the master had before is gone."""
    before = children(server.pid)
    server.check(bool(before), "no workers before the signal")
    send()
    until(server, lambda: not any(alive(pid) for pid in before), "the old workers to stop")


def log_lines(server: Server, text: str) -> list[str]:
    return [line for line in server.stderr_path.read_text(errors="replace").splitlines() if text in line]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    save_atomically(str(tmp_path / "users.json"),
                    {"users": {"alice": {"password": generate_password_hash(PASSWORD, method=FAST_HASH)}}})
    write(tmp_path / "jwt.toml", config("a"))
    (tmp_path / "exploding_import.py").write_text('raise RuntimeError("IMPORT-ERROR-TEXT")\n')
    return tmp_path


@pytest.fixture
def served(project: Path) -> Iterator[Server]:
    """``jwt-wsgi serve --config jwt.toml`` with two workers and no store configured."""
    env = server_env(project / "runtime", PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(project)]))
    server = Server([JWT_WSGI, "serve", APP, "--config", str(project / "jwt.toml"),
                     "--bind", "127.0.0.1:{port}", "--workers", "2"], env=env, log_dir=project, name="serve")
    with server:
        yield started(server)


def signing_kid(server: Server) -> Any:
    issued = login(server.base_url, "alice", PASSWORD)["access_token"]
    return jwt.get_unverified_header(issued)["kid"]


def test_hup_rotates_the_keys_without_failing_a_request(served: Server, project: Path) -> None:
    a, b = token("a"), token("b")
    assert status(served, a) == 200
    assert status(served, b) == 401
    assert signing_kid(served) == "a"
    revoked = token("a")
    assert post(served.base_url, "/auth/logout", headers=bearer(revoked)).status == 204
    assert status(served, revoked) == 401

    write(project / "jwt.toml", config("b", "a"))  # B signs, A still verifies
    with Client(served, a) as client:
        replace_workers(served, lambda: os.kill(served.pid, signal.SIGHUP))
        until(served, lambda: status(served, b) == 200, "a token signed by the new key to be accepted")
    assert client.ok() > 0
    assert signing_kid(served) == "b"
    assert status(served, a) == 200
    # The store was not configured: the one chosen at start is kept, and with it the revocation
    # (a file named after the new keys would have started empty).
    assert status(served, revoked) == 401
    assert served.process is not None and served.process.poll() is None
    assert len(log_lines(served, "reloaded the configuration and keys")) == 1


BROKEN = [
    pytest.param("[[keys]\nkid = 'b'\n", "is not valid TOML", id="not-toml"),
    pytest.param('algorithm = "RS256"\n[[keys]]\nkid = "b"\nprivate_key = "missing.pem"\nactive = true\n',
                 "missing.pem", id="missing-key-file"),
    # A store other than the one in use must answer (nothing listens on that port).
    pytest.param('store = "redis://127.0.0.1:{unused_port}/0"\n' + config("b", "a"), "is unreachable",
                 id="unreachable-new-store"),
    # Not a ConfigurationError: its text might hold anything, so only its class is logged.
    pytest.param('authenticate = "exploding_import:check"\n' + config("b", "a"), ": RuntimeError", id="raises"),
]


@pytest.mark.parametrize(("broken", "reason"), BROKEN)
def test_hup_with_a_broken_configuration_keeps_the_last_good_one(served: Server, project: Path, broken: str,
                                                                 reason: str) -> None:
    write(project / "jwt.toml", config("b", "a"))
    replace_workers(served, lambda: os.kill(served.pid, signal.SIGHUP))
    a, b = token("a"), token("b")

    write(project / "jwt.toml", broken.replace("{unused_port}", str(free_port())))
    with Client(served, b) as client:
        replace_workers(served, lambda: os.kill(served.pid, signal.SIGHUP))
        until(served, lambda: bool(log_lines(served, "reload failed")), "the reload error in the log")
    assert client.ok() > 0
    errors = log_lines(served, "reload failed")
    assert len(errors) == 1, errors
    assert "[ERROR]" in errors[0] and "keep the previous configuration" in errors[0] and reason in errors[0], errors
    log = served.output()
    assert "Traceback" not in log and "IMPORT-ERROR-TEXT" not in log
    assert not any(secret in log for secret in SECRETS.values())
    assert served.process is not None and served.process.poll() is None  # the master lives on
    assert (status(served, a), status(served, b)) == (200, 200)
    assert signing_kid(served) == "b"

    # Fixed: the next HUP takes it.
    write(project / "jwt.toml", config("c", "b"))
    replace_workers(served, lambda: os.kill(served.pid, signal.SIGHUP))
    assert (status(served, token("c")), status(served, b), status(served, a)) == (200, 200, 401)
    assert signing_kid(served) == "c"


def test_usr2_then_term_replaces_the_master(project: Path) -> None:
    # A new master reads everything from scratch, store included: name the store, or the default
    # file (named after the keys) would start empty.
    write(project / "jwt.toml", config("a", store="sqlite:///store.db"))
    env = server_env(project / "runtime", PYTHONPATH=str(REPO_ROOT))
    server = Server([JWT_WSGI, "serve", APP, "--config", str(project / "jwt.toml"),
                     "--bind", "127.0.0.1:{port}", "--workers", "2"], env=env, log_dir=project, name="serve")
    with server:
        started(server)
        try:
            a, b, revoked = token("a"), token("b"), token("a")
            assert post(server.base_url, "/auth/logout", headers=bearer(revoked)).status == 204
            old_workers = children(server.pid)
            # A broken configuration stops the new master at once, with one line; the old one
            # serves on, and can be asked again.
            write(project / "jwt.toml", "[[keys]\n")
            os.kill(server.pid, signal.SIGUSR2)
            until(server, lambda: bool(log_lines(server, "jwt-wsgi: error: config:")), "the new master's error")
            until(server, lambda: children(server.pid) == old_workers, "the new master to exit")
            assert status(server, a) == 200
            assert len(log_lines(server, "jwt-wsgi: error:")) == 1

            write(project / "jwt.toml", config("b", "a", store="sqlite:///store.db"))
            with Client(server, a) as client:
                os.kill(server.pid, signal.SIGUSR2)
                until(server, lambda: len(children(server.pid) - old_workers) == 1, "the new master to start")
                until(server, lambda: status(server, b) == 200, "the new master's workers to answer")
                os.kill(server.pid, signal.SIGTERM)
                server.check(server.wait_exit(STOP_TIMEOUT) is not None, "the old master did not stop")
                # Served by the new master alone now.
                assert status(server, b) == 200
            assert client.ok() > 0
            assert (status(server, a), status(server, revoked)) == (200, 401)
            assert signing_kid(server) == "b"
        finally:
            _stop_group(server)


def _stop_group(server: Server) -> None:
    """The new master is not the test's child: stop the process group it shares with the old one."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)  # polling processes that are not ours to wait for
    os.killpg(server.pid, signal.SIGKILL)
