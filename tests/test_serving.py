"""``jwt-wsgi serve`` and ``examples/gunicorn.conf.py`` as real gunicorn servers: what they log, and
how they hold up against clients that send their requests slowly.

Raw bytes over sockets, so that the request line is exactly what an attacker would send.
"""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from jwt_wsgi.stores.sqlite import SQLiteStore
from tests.conftest import SECRET, mint
from tests.servers import GUNICORN, JWT_WSGI, REPO_ROOT, REQUEST_TIMEOUT, Server, server_env


def exploding_authenticate(username: str, password: str) -> None:
    """An ``authenticate`` hook that fails with the user name in its message (JWT_WSGI_AUTHENTICATE)."""
    raise ValueError(f"no such user: {username}")


def raw_request(port: int, data: bytes, timeout: float = REQUEST_TIMEOUT) -> bytes:
    """Send ``data`` on a new connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def get_raw(port: int, target: bytes, *headers: bytes) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *headers, b"Connection: close", b"", b""]
    return raw_request(port, b"\r\n".join(lines))


def post_json_raw(port: int, target: bytes, body: bytes) -> bytes:
    head = (b"POST " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
    return raw_request(port, head + body)


def lines_of(text: str) -> list[str]:
    # Every line break a log viewer might honour, not only "\n".
    return text.splitlines()


def assert_no_forged_line(text: str, word: str = "FORGED") -> None:
    forged = [line for line in lines_of(text) if line.startswith(word)]
    assert not forged, f"a forged log line: {forged}\n--- log ---\n{text[-3000:]}"


# -- the access log --------------------------------------------------------------------------------
INJECTIONS = [
    # (request target as sent, text the access log must show instead)
    pytest.param(b"/api/x%0d%0aFORGED", r"/api/x\x0d\x0aFORGED", id="crlf"),
    pytest.param(b"/api/x%0aFORGED", r"/api/x\x0aFORGED", id="lf"),
    pytest.param(b"/api/x%e2%80%a8FORGED", r"/api/x\u2028FORGED", id="line-separator"),
    pytest.param(b"/api/x%e2%80%a9FORGED", r"/api/x\u2029FORGED", id="paragraph-separator"),
    pytest.param(b"/api/x%c2%85FORGED", r"/api/x\x85FORGED", id="next-line-c1"),
    pytest.param(b"/api/x%85FORGED", r"/api/x\x85FORGED", id="next-line-latin-1-byte"),
    pytest.param(b"/api/x%0bFORGED%0c%1b[2J%7f", r"/api/x\x0bFORGED\x0c\x1b[2J\x7f", id="vt-ff-escape-del"),
    pytest.param(b"/api/x%e2%80%aeDEGROF", r"/api/x\u202eDEGROF", id="bidi-override"),
    pytest.param(b"/api/%5cx0d%0d", r"/api/\\x0d\x0d", id="backslash-is-escaped-too"),
    pytest.param(b"/api/caf%c3%a9", "/api/café", id="plain-utf-8-stays-readable"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, bytes]]]:
    """``jwt-wsgi serve`` hit by every injection, then stopped: (server, answers by target)."""
    state = tmp_path_factory.mktemp("serve-log")
    env = server_env(state / "runtime", JWT_WSGI_SECRET=SECRET, TMPDIR=str(state), PYTHONPATH=str(REPO_ROOT),
                     JWT_WSGI_AUTHENTICATE=f"{__name__}:exploding_authenticate")
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "1",
                     "--protect", "/api"], env=env, log_dir=state, name="serve")
    answers: dict[str, bytes] = {}
    with server:
        for param in INJECTIONS:
            target = param.values[0]
            assert isinstance(target, bytes)
            answers[param.id or ""] = get_raw(server.port, target)
        answers["query"] = get_raw(server.port, b"/api/q?access_token=SECRET-IN-QUERY&x=%0d%0aFORGED")
        answers["login"] = post_json_raw(server.port, b"/auth/login",
                                         b'{"username": "eve\\nFORGED-IN-ERROR-LOG", "password": "long-enough"}')
    yield server, answers


@pytest.mark.slow
@pytest.mark.parametrize(("target", "shown"), INJECTIONS)
def test_serve_access_log_escapes_the_path(served: tuple[Server, dict[str, bytes]], target: bytes,
                                           shown: str) -> None:
    server, _ = served
    log = server.stdout_path.read_text(encoding="utf-8")
    assert f'"GET {shown}" ' in log, log[-3000:]
    assert_no_forged_line(log)
    assert all(line.isprintable() for line in lines_of(log)), log[-3000:]


@pytest.mark.slow
def test_serve_access_log_has_no_query_string(served: tuple[Server, dict[str, bytes]]) -> None:
    server, answers = served
    assert status_of(answers["query"]) == 401
    log = server.stdout_path.read_text(encoding="utf-8")
    assert '"GET /api/q" 401' in log, log[-3000:]
    assert "SECRET-IN-QUERY" not in log + server.stderr_path.read_text()
    assert "access_token" not in log


@pytest.mark.slow
def test_serve_escapes_jwt_wsgi_log_records(served: tuple[Server, dict[str, bytes]]) -> None:
    # The authenticate hook fails with the user name in its message: the middleware logs the
    # traceback (and answers 500). That record reaches gunicorn's error log, formatted as
    # gunicorn's own records and with no line of it at the margin but the first.
    server, answers = served
    assert status_of(answers["login"]) == 500
    errors = server.stderr_path.read_text(encoding="utf-8")
    assert re.search(r"^\[.*\] \[\d+\] \[ERROR\] jwt_wsgi failed while handling a request$", errors, re.M), errors
    assert "    ValueError: no such user: eve" in errors, errors
    assert_no_forged_line(errors, "FORGED-IN-ERROR-LOG")
    assert "    FORGED-IN-ERROR-LOG" in errors


# -- every atom, under examples/gunicorn.conf.py -----------------------------------------------------
EVERY_ATOM = (
    '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" q=%(q)s U=%(U)s m=%(m)s '
    "auth=%({authorization}i)s cookie=%({cookie}i)s csrf=%({x-csrf-token}i)s custom=%({x-custom}i)s "
    "qs=%({query_string}e)s raw=%({raw_uri}e)s env_auth=%({http_authorization}e)s "
    "claims=%({jwt_wsgi.claims}e)s location=%({location}o)s end"
)


@pytest.mark.slow
def test_example_conf_escapes_every_atom_and_logs_no_secret(tmp_path: Path) -> None:
    # gunicorn -c examples/gunicorn.conf.py --access-logformat "<every atom>" examples.plain_wsgi:application
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, JWT_WSGI_STORE=f"sqlite:///{tmp_path}/s.db",
                     BIND="127.0.0.1:{port}", WORKERS="1")
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", "--access-logformat", EVERY_ATOM,
                     "examples.plain_wsgi:application"],
                    env=env, log_dir=tmp_path, name="example", ready_path="/api/health")
    # A store in service since long before the token (a new one would refuse every token minted
    # before its first use: it cannot know what it never saw).
    early = SQLiteStore(tmp_path / "s.db", clock=lambda: 1.0)
    early.ping()
    early.close()
    token = mint(sub="alice")
    basic = base64.b64encode(b"eve\r\nFORGED-USER:pw")
    with server:
        answers = [
            # Header values: gunicorn refuses C0 controls there, but not bytes >= 0x80 nor TAB.
            get_raw(server.port, b"/api/me?access_token=" + token.encode(),
                    b"User-Agent: ua\txx\xc2\x85FORGED-UA\xe2\x80\xa8\xe2\x80\xa9",
                    b"Referer: http://127.0.0.1/page?access_token=REFERER-TOKEN",
                    b"Authorization: Bearer " + token.encode(),
                    b"Cookie: access_token=COOKIE-TOKEN",
                    b"X-CSRF-Token: CSRF-VALUE",
                    b"X-Custom: a\x85FORGED-HEADER"),
            get_raw(server.port, b"/api/me", b"Authorization: Basic " + basic),
            get_raw(server.port, b"/api/x%0d%0aFORGED-PATH?q=1"),
        ]
    statuses = [status_of(answer) for answer in answers]
    assert statuses[:2] == [200, 401] and statuses[2] in (400, 401), statuses
    log = server.stdout_path.read_text(encoding="utf-8")
    lines = [line for line in lines_of(log) if line.endswith(" end")]
    assert len(lines) >= 3, log[-3000:]
    for word in ("FORGED-UA", "FORGED-USER", "FORGED-PATH", "FORGED-HEADER"):
        assert_no_forged_line(log, word)
    assert r'"ua\x09xx\x85FORGED-UA\u2028\u2029"' in log, log[-3000:]
    assert r"custom=a\x85FORGED-HEADER" in log
    assert r"eve\x0d\x0aFORGED-USER" in log
    assert r'"GET /api/x%0d%0aFORGED-PATH HTTP/1.1"' in log
    assert r"U=/api/x\x0d\x0aFORGED-PATH" in log
    assert all(line.isprintable() for line in lines_of(log)), log[-3000:]
    for secret in (token, "REFERER-TOKEN", "COOKIE-TOKEN", "CSRF-VALUE", "access_token", "q=1"):
        assert secret not in log, f"{secret!r} in the access log:\n{log[-3000:]}"
    assert "auth=- cookie=- csrf=- " in log and "qs=- " in log and "env_auth=- claims=- " in log
    assert '"http://127.0.0.1/page"' in log, "the referer loses its query, not its path"


# -- slow clients ------------------------------------------------------------------------------------
def refuse_everyone(username: str, password: str) -> None:
    """An ``authenticate`` hook: the login endpoint is mounted and reads request bodies."""
    return None


def stall_mid_body(port: int) -> socket.socket:
    """A login request whose body stops after one byte of the 100 announced, once a worker holds it.

    ``Expect: 100-continue`` makes gunicorn answer ``100 Continue`` when a worker has parsed the
    headers and is about to call the application: from then on that worker (or thread) is busy.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=REQUEST_TIMEOUT)
    sock.sendall(b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n")
    assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue"), "no worker took the request"
    sock.sendall(b"{")
    return sock


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    pytest.param([], id="defaults"),
    pytest.param(["--worker-class", "gthread", "--threads", "3", "--timeout", "60"], id="explicit-gthread"),
])
def test_serve_answers_while_two_clients_stall_mid_body(tmp_path: Path, options: list[str]) -> None:
    # Two workers; two clients send their headers and then stall in the body. With sync workers
    # both workers would wait for those bodies (until gunicorn's timeout) and nobody else would
    # be answered; threaded workers keep answering.
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, TMPDIR=str(tmp_path), PYTHONPATH=str(REPO_ROOT),
                     JWT_WSGI_AUTHENTICATE=f"{__name__}:refuse_everyone")
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "2",
                     "--protect", "/api", *options], env=env, log_dir=tmp_path, name="serve")
    with server:
        stalled = [stall_mid_body(server.port) for _ in range(2)]
        try:
            try:
                answer = get_raw(server.port, b"/")  # a public path; bounded by REQUEST_TIMEOUT
            except TimeoutError:
                server.check(False, "GET / was not answered while two clients stalled mid-body")
            server.check(status_of(answer) == 200 and b'"anonymous"' in answer, str(answer[:300]))
        finally:
            for sock in stalled:
                sock.close()
    server.check("Using worker: gthread" in server.stderr_path.read_text(), "serve did not use gthread workers")


@pytest.mark.slow
def test_serve_sync_workers_on_request(tmp_path: Path) -> None:
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, TMPDIR=str(tmp_path))
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "1",
                     "--protect", "/api", "--worker-class", "sync", "--timeout", "45"],
                    env=env, log_dir=tmp_path, name="serve-sync")
    with server:
        server.check(status_of(get_raw(server.port, b"/")) == 200, "GET / under sync workers")
    server.check("Using worker: sync" in server.stderr_path.read_text(), "--worker-class sync was not used")


def test_a_reloaded_logger_takes_over_jwt_wsgi_records() -> None:
    """SIGHUP makes gunicorn build a new Logger in the same process: jwt_wsgi's records must go
    through the new one's handlers (which USR1 reopens after log rotation), not the old one's,
    and never through both."""
    import logging

    from gunicorn.config import Config

    from jwt_wsgi.serving import Logger

    package = logging.getLogger("jwt_wsgi")
    # As in a gunicorn worker: nobody configured logging (pytest's capture handlers are set aside).
    saved_package, saved_root = list(package.handlers), list(logging.root.handlers)
    for handler in saved_package:
        package.removeHandler(handler)
    for handler in saved_root:
        logging.root.removeHandler(handler)
    level = package.level
    try:
        first = Logger(Config())
        lent = [h for h in first.error_log.handlers if getattr(h, "_gunicorn", False)]
        assert lent and package.handlers == lent
        second = Logger(Config())  # what a SIGHUP does
        fresh = [h for h in second.error_log.handlers if getattr(h, "_gunicorn", False)]
        assert package.handlers == fresh and not set(lent) & set(package.handlers)
    finally:
        for handler in list(package.handlers):
            package.removeHandler(handler)
        for handler in saved_package:
            package.addHandler(handler)
        for handler in saved_root:
            logging.root.addHandler(handler)
        package.setLevel(level)
