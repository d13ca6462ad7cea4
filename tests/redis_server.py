"""A real ``redis-server`` for tests: on a free port of 127.0.0.1, in a temporary directory,
without persistence, stopped by its PID.

Use the fixtures by importing them into a test module (pytest finds fixtures in its namespace)::

    from tests.redis_server import redis_server, redis_url  # noqa: F401

- ``redis_server`` (session): one :class:`RedisServer` for the whole run;
- ``redis_url`` (function): its URL, with the database emptied first (and the server started
  again if an earlier test stopped it).

A test that stops the server on purpose should run its own with :func:`running_redis`, so the
shared one stays up for the others.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests._services import unavailable
from tests.servers import free_port

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def _command(port: int, password: str | None, command: bytes, timeout: float) -> bytes:
    """Send one inline command (after ``AUTH`` if needed) and return the raw first reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if password is not None:
            sock.sendall(b"AUTH " + password.encode() + b"\r\n")
            sock.recv(64)
        sock.sendall(command + b"\r\n")
        return sock.recv(64)


def _answers_ping(port: int, password: str | None) -> bool:
    try:
        return _command(port, password, b"PING", 0.5).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process that a test can stop and start again on the same port.

    :param directory: its working directory (log file; nothing is persisted).
    :param port: the port to listen on; a free one by default.
    :param password: if set, clients must authenticate (``--requirepass``).
    """

    def __init__(self, directory: Path, port: int | None = None, *, password: str | None = None) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers ``PING``."""
        if self.running:
            return
        executable = shutil.which("redis-server")
        if executable is None:
            unavailable("redis-server not installed")
            raise AssertionError("unreachable")  # unavailable() always raises
        log = self.directory / "redis.log"
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.directory),
            "logfile": str(log),
        }
        if self.password is not None:
            options["requirepass"] = self.password
        self.process = subprocess.Popen(
            [executable, *(item for name, value in options.items() for item in (f"--{name}", value))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers_ping(self.port, self.password):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
                pytest.fail(f"redis-server did not start on port {self.port}:\n{tail}", pytrace=False)
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it. Safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port (with an empty database)."""
        self.stop()
        self.start()

    def flush(self) -> None:
        """Empty every database, with a raw ``FLUSHALL`` (no client library involved)."""
        reply = _command(self.port, self.password, b"FLUSHALL", 2.0)
        if not reply.startswith(b"+OK"):
            raise AssertionError(f"FLUSHALL answered {reply!r}")


@contextmanager
def running_redis(directory: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    """A :class:`RedisServer` of one's own, started, and stopped on the way out."""
    server = RedisServer(directory, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (skipped locally, failed in CI, when not installed)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server not installed")
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with an empty database."""
    redis_server.start()  # no-op unless an earlier test left it stopped
    redis_server.flush()
    return redis_server.url
