"""``jwt-wsgi demo``: start it, read what it prints, and run the printed curl lines with bash."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import JWT_WSGI, Server, server_env

PRINT_TIMEOUT = 20.0
MARK = "@@jwt-wsgi-test-line-done"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """The running demo and what it printed before serving."""
    env = server_env(tmp_path / "runtime", TMPDIR=str(tmp_path))
    server = Server([JWT_WSGI, "demo", "--bind", "127.0.0.1:{port}"], env=env, log_dir=tmp_path, name="demo",
                    ready_path="/api/health")
    server.start()
    try:
        deadline = time.monotonic() + PRINT_TIMEOUT
        while True:
            printed = server.stdout_path.read_text()
            # The block of curl lines ends with an empty line.
            if "Try it:" in printed and "\n\n" in printed.split("Try it:", 1)[1]:
                break
            server.check(server.process is not None and server.process.poll() is None, "the demo exited early")
            server.check(time.monotonic() < deadline, f"no curl lines within {PRINT_TIMEOUT:g} s")
            time.sleep(0.05)  # polling the output of a starting process
        server.wait_ready()
        yield server, printed
    finally:
        assert server.stop() is not None, "the demo did not stop"


def classify(line: str) -> str:
    if line.startswith("TOKEN=$(") and "/auth/login" in line:
        return "token"
    if "/auth/login" in line:
        return "login"
    if "/auth/logout" in line:
        return "logout"
    if "/api/admin" in line:
        return "admin"
    if "/api/me" in line:
        return "me" if "$TOKEN" in line else "me-anonymous"
    return "other"


def status_of(output: str) -> int:
    match = re.search(r"^HTTP/[\d.]+ (\d{3})", output, re.MULTILINE)
    assert match, f"no status line in curl -i output: {output!r}"
    return int(match.group(1))


@pytest.mark.slow
def test_demo_prints_curl_lines_that_work(demo: tuple[Server, str], tmp_path: Path) -> None:
    server, printed = demo
    password = re.search(r"^password:\s+(\S+)", printed, re.MULTILINE)
    assert password, printed
    assert re.search(r"^demo user:\s+demo$", printed, re.MULTILINE), printed
    assert server.base_url in printed

    lines = [line.strip() for line in printed.split("Try it:", 1)[1].splitlines() if "curl " in line]
    kinds = [classify(line) for line in lines]
    assert kinds == ["me-anonymous", "login", "token", "me", "admin", "logout", "me"], lines
    assert all(server.base_url in line for line in lines)
    assert password.group(1) in lines[1], "the login line carries the printed password"

    # Exactly as printed, in one bash session (so $TOKEN carries over), each followed by a marker.
    script = "".join(f"{line}\necho; echo \"{MARK} $?\"\n" for line in lines)
    result = subprocess.run(["bash", "-c", script], env=server_env(tmp_path / "runtime-bash"), capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    # stdout is: output 1, marker with status 1, output 2, marker with status 2, ...
    chunks = re.split(rf"\n{MARK} (\d+)\n", result.stdout)
    assert len(chunks) == 2 * len(lines) + 1, result.stdout + result.stderr
    outs, codes = chunks[0:-1:2], [int(code) for code in chunks[1::2]]
    assert codes == [0] * len(lines), f"a curl line failed: {codes}\n{result.stderr}"
    anonymous, login, _token, me, admin, logout, after_logout = outs

    def context(what: str) -> str:
        return f"{what}\n--- curl output ---\n{result.stdout}\n{result.stderr}\n{server.log_tail()}"

    assert status_of(anonymous) == 401, context("GET /api/me without a token")
    assert "www-authenticate: bearer" in anonymous.lower(), context("401 without WWW-Authenticate")
    tokens = json.loads(login)
    assert tokens["access_token"] and tokens["token_type"] == "Bearer", context("login")
    claims = json.loads(me)
    assert claims["user"] == "demo", context("GET /api/me with $TOKEN")
    assert "demo" in me
    assert status_of(admin) == 403, context("GET /api/admin without the admin scope")
    assert "insufficient_scope" in admin, context("403 without insufficient_scope")
    assert status_of(logout) == 204, context("POST /auth/logout")
    assert status_of(after_logout) == 401, context("GET /api/me after logout")
    assert "token_revoked" in after_logout, context("the token after logout")
