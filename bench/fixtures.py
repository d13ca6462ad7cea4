"""What the benchmarks are run against: apps, keys, tokens, a redis-server, machine facts.

Everything here is built once, before any timing starts.
"""

from __future__ import annotations

import functools
import io
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

REPO = Path(__file__).resolve().parent.parent
PATH = "/api/hello"  # protected by every wrapped app
PUBLIC_PATH = "/public/hello"  # outside ``protect``
BODY = b"hello\n"
ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


# -- the bare application --------------------------------------------------------------------
def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The smallest honest WSGI app: a fixed body with its length."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [BODY]


# -- keys and tokens -------------------------------------------------------------------------
def new_secret() -> str:
    """A fresh random HS256 secret (64 characters; no known-weak value)."""
    return secrets.token_urlsafe(48)


class KeyPair:
    """The signing key, the verification key and the PEM file the middleware loads, for one alg."""

    def __init__(self, algorithm: str, directory: Path | None, secret: str) -> None:
        self.algorithm = algorithm
        self.pem_path: Path | None = None
        if algorithm == "HS256" or directory is None:
            if algorithm != "HS256":
                raise ValueError(f"{algorithm} needs a directory for its PEM file")
            self.signing: Any = secret
            self.verifying: Any = secret
            return
        if algorithm == "RS256":
            private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        elif algorithm == "ES256":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "EdDSA":
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            raise ValueError(algorithm)
        self.signing = private
        self.verifying = private.public_key()
        self.pem_path = directory / f"{algorithm.lower()}-private.pem"
        self.pem_path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def middleware_options(self) -> dict[str, Any]:
        """The :class:`JWTMiddleware` key options for this pair."""
        if self.pem_path is None:
            return {"secret": self.signing}
        return {"algorithm": self.algorithm, "private_key": str(self.pem_path)}

    def mint(self, sub: str = "alice", ttl: int = 3600) -> str:
        """A valid access token as the middleware issues them: sub, iat, exp, jti, type."""
        now = int(time.time())
        claims = {"sub": sub, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex, "type": "access"}
        return jwt.encode(claims, self.signing, algorithm=self.algorithm)


def bad_signature(token: str) -> str:
    """``token`` with its signature replaced by another valid-looking one (same length)."""
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{payload}.{flipped}"


class TokenPool:
    """Distinct valid tokens, minted ahead of the timed loops; :meth:`take` never repeats one."""

    def __init__(self, keys: KeyPair) -> None:
        self.keys = keys
        self._tokens: list[str] = []
        self.used = 0

    def fill(self, count: int) -> None:
        missing = count - len(self._tokens)
        self._tokens.extend(self.keys.mint() for _ in range(max(0, missing)))

    def take(self, count: int) -> list[str]:
        self.fill(count)  # only mints if fill() was too small: never inside a timed loop
        taken, self._tokens = self._tokens[:count], self._tokens[count:]
        self.used += count
        return taken


# -- WSGI plumbing ---------------------------------------------------------------------------
_ERRORS = io.StringIO()


def base_environ(path: str = PATH) -> dict[str, Any]:
    """A minimal PEP 3333 environ for ``GET path`` (what a server hands the app)."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": _ERRORS,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def call_once(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, bytes]:
    """(status line, body) of one request; used to check each case before timing it."""
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        seen.append(status)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return (seen[-1] if seen else "(no start_response)"), body


# -- Flask apps ------------------------------------------------------------------------------
def flask_bare() -> Any:
    from flask import Flask

    app = Flask("bench_bare")

    @app.get(PATH)
    def hello() -> str:
        return "hello\n"

    return app


def flask_article(secret: str) -> Any:
    """The article's ``TOKEN`` header decorator, ported to PyJWT 2, with ``functools.wraps``
    and without the bare ``except`` (the shape PRODUCT.md §5 describes)."""
    from flask import Flask, jsonify, request

    app = Flask("bench_article")

    def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            token = request.headers.get("TOKEN")
            if not token:
                return jsonify({"error": "1", "message": "Token is missing"}), 401
            try:
                jwt.decode(token, secret, algorithms=["HS256"])
            except jwt.ExpiredSignatureError:
                return jsonify({"error": "1", "message": "Token has expired"}), 401
            except jwt.InvalidTokenError:
                return jsonify({"error": "1", "message": "Invalid Token"}), 401
            return view(*args, **kwargs)

        return decorated

    @app.get(PATH)
    @token_required
    def hello() -> str:
        return "hello\n"

    return app


def flask_jwt_extended(secret: str) -> Any:
    """Flask-JWT-Extended's ``@jwt_required()`` with its defaults (headers, HS256)."""
    from flask import Flask
    from flask_jwt_extended import JWTManager, jwt_required

    app = Flask("bench_fje")
    app.config["JWT_SECRET_KEY"] = secret
    app.config["JWT_TOKEN_LOCATION"] = ["headers"]
    JWTManager(app)

    @app.get(PATH)
    @jwt_required()
    def hello() -> str:
        return "hello\n"

    return app


# -- ports and processes ---------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, this one process (by its PID), and reap it."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class RedisServer:
    """A ``redis-server`` of the benchmark's own on a free loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        executable = shutil.which("redis-server")
        if executable is None and os.path.exists("/usr/bin/redis-server"):
            executable = "/usr/bin/redis-server"  # not on PATH for some users
        if executable is None:
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            stop_process(process)


# -- machine facts ---------------------------------------------------------------------------
def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine() -> dict[str, Any]:
    """Where and on what the numbers were measured."""
    status = _git("status", "--porcelain", "--", "jwt_wsgi")
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg": list(os.getloadavg()),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "jwt_wsgi_modified": bool(status) if status is not None else None,
        "versions": {name: _version(name) for name in
                     ("jwt_wsgi", "PyJWT", "cryptography", "Flask", "Werkzeug", "Flask-JWT-Extended",
                      "gunicorn", "redis")},
    }
