"""Real server processes for tests: gunicorn, wsgiref, ``jwt-wsgi serve`` and ``jwt-wsgi demo``.

- :func:`server_env` builds an environment without the caller's ``JWT_WSGI_*`` variables, with
  the virtualenv's ``bin`` first on ``PATH`` and a private ``XDG_RUNTIME_DIR`` (gunicorn 25+
  opens a control socket there; without it every gunicorn would share ``~/.gunicorn``).
- :class:`Server` starts a command in the repository root on a free port of 127.0.0.1, in its
  own process group, with stdout and stderr in files; :meth:`Server.wait_ready` polls a path
  until the server answers (any HTTP status), bounded; :meth:`Server.stop` sends ``SIGTERM``
  to the group, waits, then ``SIGKILL``. Failures quote the tail of the server's log.
- :func:`request` opens a FRESH connection per request, so gunicorn's workers share the load;
  :func:`on_every_worker` sends one request to each of N sync workers, deterministically.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PYTHON = sys.executable
GUNICORN = str(BIN / "gunicorn")
JWT_WSGI = str(BIN / "jwt-wsgi")

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and never one this test run
    handed out before (a port is only reserved by number until its server binds it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def server_env(runtime_dir: Path, **variables: str | None) -> dict[str, str]:
    """``os.environ`` without ``JWT_WSGI_*`` (the test run's own included), plus ``variables``.

    A value of ``None`` removes the variable. ``runtime_dir`` becomes ``XDG_RUNTIME_DIR``, and
    ``runtime_dir/tmp`` becomes ``TMPDIR``.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_WSGI_")}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "/usr/bin:/bin")])
    env["PYTHONUNBUFFERED"] = "1"
    runtime_dir.mkdir(parents=True, exist_ok=True)
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    # A private temporary directory too: `jwt-wsgi serve` keeps its default SQLite store there,
    # and a file left by another checkout or an earlier run must not decide a test.
    (runtime_dir / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(runtime_dir / "tmp")
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# -- HTTP --------------------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names; repeated headers joined with ", "
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __iter__(self) -> Any:  # status, headers, body = request(...)
        return iter((self.status, self.headers, self.body))

    def __str__(self) -> str:
        return f"{self.status} {self.headers} {self.body[:500]!r}"


def _headers(message: http.client.HTTPMessage) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in message.items():
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def request(
    base_url: str,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    json_body: Any = None,
    timeout: float = REQUEST_TIMEOUT,
) -> Response:
    """One request on a new connection (closed afterwards)."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    send_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        send_headers.setdefault("Content-Type", "application/json")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=send_headers)
        response = conn.getresponse()
        data = response.read()
        return Response(response.status, _headers(response.msg), data)
    finally:
        conn.close()


def get(base_url: str, path: str, **kwargs: Any) -> Response:
    return request(base_url, "GET", path, **kwargs)


def post(base_url: str, path: str, **kwargs: Any) -> Response:
    return request(base_url, "POST", path, **kwargs)


def on_every_worker(
    base_url: str, path: str, headers: Mapping[str, str], workers: int = 2, timeout: float = REQUEST_TIMEOUT
) -> list[Response]:
    """``GET path`` once in each of ``workers`` gunicorn sync workers.

    A sync worker serves one connection at a time. ``workers - 1`` connections send only half a
    request, so the workers that accepted them are busy reading; the one complete request can
    only be served by the remaining worker. Then the held requests are completed, one per busy
    worker. No guessing with load balancing, no sleeps.
    """
    host, _, port = base_url.removeprefix("http://").partition(":")
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n".encode()
    rest = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode() + b"Connection: close\r\n\r\n"
    held: list[socket.socket] = []
    try:
        for _ in range(workers - 1):
            sock = socket.create_connection((host, int(port)), timeout=timeout)
            held.append(sock)
            sock.sendall(head)
        responses = [request(base_url, "GET", path, headers=headers, timeout=timeout)]
        for sock in held:
            sock.sendall(rest)
            raw = http.client.HTTPResponse(sock, method="GET")
            raw.begin()
            responses.append(Response(raw.status, _headers(raw.msg), raw.read()))
        return responses
    finally:
        for sock in held:
            sock.close()


def login(base_url: str, username: str, password: str, path: str = "/auth/login") -> dict[str, Any]:
    response = post(base_url, path, json_body={"username": username, "password": password})
    assert response.status == 200, f"login as {username} failed: {response}"
    data: dict[str, Any] = response.json()
    return data


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- processes ---------------------------------------------------------------------------------
@dataclass
class Server:
    """A server subprocess. ``argv`` may contain ``{port}``, replaced by the chosen free port.

    :param argv: the command, as a user would type it (executables from the virtualenv).
    :param env: the complete environment (see :func:`server_env`); ``{port}`` is replaced in values.
    :param log_dir: where ``NAME.stdout`` and ``NAME.stderr`` are written.
    :param ready_path: polled with GET until the server answers.
    """

    argv: Sequence[str]
    env: Mapping[str, str]
    log_dir: Path
    name: str = "server"
    ready_path: str = "/"
    port: int = field(default_factory=free_port)
    cwd: Path = REPO_ROOT
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"{self.name}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"{self.name}.stderr"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        return (
            f"--- {self.name} stdout (tail) ---\n{tail(self.stdout_path, lines)}\n"
            f"--- {self.name} stderr (tail) ---\n{tail(self.stderr_path, lines)}"
        )

    def start(self) -> Server:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = [part.replace("{port}", str(self.port)) for part in self.argv]
        env = {k: v.replace("{port}", str(self.port)) for k, v in self.env.items()}
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,  # its own process group: gunicorn's workers stop with it
            )
        return self

    def answers(self) -> Response | None:
        try:
            return get(self.base_url, self.ready_path, timeout=2.0)
        except (OSError, http.client.HTTPException):
            return None

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Server:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise AssertionError(f"{self.name} exited with status {code} before answering\n{self.log_tail()}")
            if self.answers() is not None:
                return self
            time.sleep(0.05)  # polling a starting process; the only wait in these helpers
        self.stop()
        raise AssertionError(
            f"{self.name} did not answer GET {self.ready_path} within {timeout:g} s\n{self.log_tail()}"
        )

    def wait_exit(self, timeout: float) -> int | None:
        """The exit status, or ``None`` if it is still running after ``timeout`` seconds."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        return tail(self.stdout_path, 10**6) + "\n" + tail(self.stderr_path, 10**6)

    def stop(self) -> int | None:
        """SIGTERM to the process group (by the leader's PID), wait, then SIGKILL."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                # The whole group, so that no worker outlives its master.
                self._signal(signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        return process.returncode

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> Server:
        return self.start().wait_ready()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check(self, condition: bool, message: str) -> None:
        """``assert condition`` with the server's log tail in the failure message."""
        if not condition:
            raise AssertionError(f"{message}\n{self.log_tail()}")
