"""Shared material for the adversarial suite (the attacks of docs/threat-model.md).

TEST-ONLY keys, secrets and passwords. Everything here builds attacks from raw bytes:
:func:`RS`, :func:`PS`, :func:`ES`, :func:`ED` sign with ``cryptography`` directly (no PyJWT
encoder), :func:`raw_http` speaks HTTP/1.1 over a plain socket, and the ``wire`` fixture starts
the real servers the path rows are sent to.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.conftest import SECRET, BufferedClient, J, b64
from tests.security import apps

H0 = {"alg": "HS256", "typ": "JWT"}

#: Counters for the closing note of issue 6 (printed at the end of the run).
STATS = {"socket_requests": 0, "hypothesis_examples": 0}


# -- raw signers: RS(key, header, payload) and friends ---------------------------------------------
def _signing_input(header: dict[str, Any], payload: Any) -> bytes:
    return f"{J(header)}.{J(payload)}".encode()


def RS(key: rsa.RSAPrivateKey, header: dict[str, Any], payload: Any, digest: hashes.HashAlgorithm | None = None) -> str:
    """RSASSA-PKCS1-v1_5 (RS256 unless ``digest`` says otherwise), built from raw bytes."""
    data = _signing_input(header, payload)
    return data.decode() + "." + b64(key.sign(data, padding.PKCS1v15(), digest or hashes.SHA256()))


def PS(key: rsa.RSAPrivateKey, header: dict[str, Any], payload: Any) -> str:
    data = _signing_input(header, payload)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size)
    return data.decode() + "." + b64(key.sign(data, pss, hashes.SHA256()))


def ES(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], payload: Any) -> str:
    """ECDSA with the JWS raw ``r || s`` signature (RFC 7518 §3.4)."""
    data = _signing_input(header, payload)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    size = (key.curve.key_size + 7) // 8
    return data.decode() + "." + b64(r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def ED(key: ed25519.Ed25519PrivateKey, header: dict[str, Any], payload: Any) -> str:
    data = _signing_input(header, payload)
    return data.decode() + "." + b64(key.sign(data))


def rsa_jwk(public: rsa.RSAPublicKey, **extra: Any) -> dict[str, Any]:
    numbers = public.public_numbers()

    def enc(n: int) -> str:
        return b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "e": enc(numbers.e), "n": enc(numbers.n), **extra}


def split(token: str) -> tuple[str, str, str]:
    h, p, s = token.split(".")
    return h, p, s


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def decode_segment(segment: str) -> Any:
    return json.loads(unb64(segment))


# -- keys (generated once per run; TEST-ONLY) -----------------------------------------------------
@dataclass
class Keys:
    server_rsa: rsa.RSAPrivateKey
    attacker_rsa: rsa.RSAPrivateKey
    server_ec: ec.EllipticCurvePrivateKey
    attacker_ec: ec.EllipticCurvePrivateKey
    attacker_ed: ed25519.Ed25519PrivateKey
    dir: Path
    rsa_private_pem: Path = field(init=False)
    rsa_public_pem: Path = field(init=False)
    ec_private_pem: Path = field(init=False)

    def __post_init__(self) -> None:
        def write(name: str, data: bytes) -> Path:
            path = self.dir / name
            path.write_bytes(data)
            return path

        pkcs8 = serialization.PrivateFormat.PKCS8
        none = serialization.NoEncryption()
        self.rsa_private_pem = write("rsa.pem", self.server_rsa.private_bytes(serialization.Encoding.PEM, pkcs8, none))
        self.rsa_public_pem = write("rsa.pub.pem", self.server_rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.ec_private_pem = write("ec.pem", self.server_ec.private_bytes(serialization.Encoding.PEM, pkcs8, none))


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(
        server_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        attacker_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        server_ec=ec.generate_private_key(ec.SECP256R1()),
        attacker_ec=ec.generate_private_key(ec.SECP256R1()),
        attacker_ed=ed25519.Ed25519PrivateKey.generate(),
        dir=tmp_path_factory.mktemp("keys"),
    )


# -- in-process stacks ------------------------------------------------------------------------------
def client_for(app: Any) -> BufferedClient:
    client = BufferedClient(app)
    client.middleware = app  # type: ignore[attr-defined]
    return client


@pytest.fixture(params=["werkzeug", "webob"])
def router(request: pytest.FixtureRequest) -> str:
    """Which downstream app: a Werkzeug Map, or WebOb on SCRIPT_NAME + PATH_INFO."""
    return str(request.param)


@pytest.fixture
def stack(router: str) -> Callable[..., BufferedClient]:
    """A fresh middleware (its own memory store) around the chosen router, as a test client,
    with ``wsgiref.validate`` checking PEP 3333 on the server side of the middleware."""

    def make(**options: Any) -> BufferedClient:
        middleware = apps.protect(apps.APPS[router], **options)
        client = BufferedClient(validator(middleware))
        client.middleware = middleware  # type: ignore[attr-defined]
        return client

    return make


# -- a bare WSGI call, without a test client's overhead (floods, properties) ----------------------
def environ_for(method: str = "GET", path: str = "/api/me", headers: dict[str, str] | None = None,
                body: bytes = b"", content_type: str | None = None, remote: str = "203.0.113.9") -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": remote,
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)) if body else "",
    }
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def call(app: Any, environ: dict[str, Any]) -> tuple[int, bytes]:
    seen: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: seen.append(status)))
    return int(seen[0].split()[0]), body


# -- a listener that counts connections (no fetch of token-supplied URLs, threat model §4.1) ------
class Listener:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture(scope="session")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


# -- raw HTTP over a socket --------------------------------------------------------------------------
@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str]  # lower-cased names, repeated ones joined with ", "
    body: bytes
    raw: bytes

    def __str__(self) -> str:
        return f"{self.status} {self.reason} {self.headers} {self.body[:300]!r}"


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        line, _, data = data.partition(b"\r\n")
        size = int(line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def read_response(sock: socket.socket, method: str = "GET") -> RawResponse:
    """Read until the server closes the connection (requests say ``Connection: close``)."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2) if lines and lines[0] else [b"", b"0", b""]
    if len(parts) < 2 or not parts[1].isdigit():
        return RawResponse(0, "", {}, b"", raw)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    if method == "HEAD":
        body = b""
    return RawResponse(int(parts[1]), parts[2].decode("latin-1") if len(parts) > 2 else "", headers, body, raw)


def build_request(method: str, target: str | bytes, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    """Request bytes exactly as given: no normalisation of the target, Host and Connection: close."""
    line = method.encode("latin-1") + b" " + (target if isinstance(target, bytes) else target.encode("latin-1"))
    out = [line + b" " + version.encode()]
    names = {name.lower() for name, _ in headers or []}
    if "host" not in names:
        out.append(b"Host: 127.0.0.1")
    for name, value in headers or []:
        out.append(f"{name}: {value}".encode("latin-1"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        out.append(f"Content-Length: {len(body)}".encode())
    out.append(b"Connection: close")
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def raw_http(port: int, data: bytes, *, method: str = "GET", timeout: float = 10.0) -> RawResponse:
    """Send ``data`` on a fresh connection and read the whole answer."""
    STATS["socket_requests"] += 1
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return read_response(sock, method)


# -- real servers -------------------------------------------------------------------------------------
class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's dev-server handler, with its log lines collected instead of printed."""

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - Werkzeug's signature
        self.server.log_lines.append((type, message % args if args else message))  # type: ignore[attr-defined]


@dataclass
class DevServer:
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def log_lines(self) -> list[tuple[str, str]]:
        return self.server.log_lines  # type: ignore[attr-defined, no-any-return]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_dev_server(app: Any) -> DevServer:
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    server.log_lines = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return DevServer(server, thread)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if STATS["socket_requests"] or STATS["hypothesis_examples"]:
        terminalreporter.write_line(
            f"security suite: {STATS['socket_requests']} requests sent over sockets, "
            f"{STATS['hypothesis_examples']} Hypothesis examples run"
        )


@dataclass
class Wire:
    """The servers of the wire tests: name -> port, and how to read their logs."""

    ports: dict[str, int]
    gunicorns: dict[str, Any]
    dev_servers: dict[str, DevServer]
    sent: list[str] = field(default_factory=list)  # one entry per request sent over a socket

    def send(self, name: str, data: bytes, method: str = "GET") -> RawResponse:
        self.sent.append(name)
        return raw_http(self.ports[name], data, method=method)


WIRE_SERVERS = ["gunicorn-werkzeug", "gunicorn-webob", "devserver-werkzeug", "devserver-webob"]


@pytest.fixture(scope="session")
def wire(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wire]:
    """Two gunicorns (2 sync workers, gunicorn's DEFAULT config: ``forwarded_allow_ips`` trusts
    127.0.0.1, ``forwarder_headers`` honours ``SCRIPT_NAME``) and two Werkzeug dev servers."""
    from tests.servers import GUNICORN, Server, server_env

    base = tmp_path_factory.mktemp("wire")
    gunicorns = {}
    started = []
    try:
        for name, target in [("gunicorn-werkzeug", "tests.security.apps:werkzeug_stack"),
                             ("gunicorn-webob", "tests.security.apps:webob_stack")]:
            server = Server(
                argv=[GUNICORN, "--workers", "2", "--worker-class", "sync", "--bind", "127.0.0.1:{port}", target],
                env=server_env(base / f"{name}-runtime"),
                log_dir=base,
                name=name,
                ready_path="/public",
            )
            server.start()
            started.append(server)
            gunicorns[name] = server
        for server in started:
            server.wait_ready()
        dev = {"devserver-werkzeug": start_dev_server(apps.werkzeug_stack),
               "devserver-webob": start_dev_server(apps.webob_stack)}
        ports = {name: s.port for name, s in gunicorns.items()} | {name: d.port for name, d in dev.items()}
        yield Wire(ports, gunicorns, dev)
    finally:
        for server in started:
            server.stop()
        for d in locals().get("dev", {}).values():
            d.stop()


@pytest.fixture
def secret() -> str:
    return SECRET


def digest_name(alg: str) -> Any:
    return {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
