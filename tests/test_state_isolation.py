"""Two unrelated applications on one host never share state by accident.

Deployed the way a newcomer does (``jwt-wsgi serve`` with several workers, or
``gunicorn -c examples/gunicorn.conf.py myapp:application`` from their own directory), with no
store configured: each application gets a SQLite file of its own, so failed logins in one never
lock a user out of the other.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import ALICE_PASSWORD, OTHER_SECRET, SECRET
from tests.servers import GUNICORN, JWT_WSGI, REPO_ROOT, Server, bearer, get, login, post, server_env

MYAPP = textwrap.dedent('''
    """A newcomer's own application, in their own directory."""
    import json

    from jwt_wsgi import JWTMiddleware, Settings


    def hello(environ, start_response):
        body = json.dumps({"app": __name__, "user": environ.get("REMOTE_USER")}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


    application = JWTMiddleware(hello, Settings.from_env(None, protect=["/api"]))
''')


def _users(directory: Path) -> None:
    """``users.json`` in ``directory``, made with the CLI there (a relative path, as a newcomer would)."""
    subprocess.run([JWT_WSGI, "users", "add", "alice", "--password-stdin", "--users-file", "users.json"],
                   input=ALICE_PASSWORD + "\n", cwd=directory, env=server_env(directory / "runtime-cli"),
                   check=True, capture_output=True, text=True, timeout=60)


def _lock_out(server: Server) -> None:
    """Six wrong passwords for alice: the sixth is refused with 429 (``login_rate_limit``)."""
    statuses = [post(server.base_url, "/auth/login", json_body={"username": "alice", "password": "wrong-password"}
                     ).status for _ in range(6)]
    server.check(statuses == [401] * 5 + [429], f"statuses {statuses}")


def _alice_gets_in(server: Server) -> None:
    token = login(server.base_url, "alice", ALICE_PASSWORD)["access_token"]
    me = get(server.base_url, "/api/me", headers=bearer(token))
    server.check(me.status == 200 and me.json()["user"] == "alice", str(me))


def _started(stack: ExitStack, server: Server) -> Server:
    server.start()
    stack.callback(server.stop)
    return server.wait_ready()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A directory of the newcomer's own with two apps and a users file, outside the repository."""
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "myapp.py").write_text(MYAPP)
    (directory / "otherapp.py").write_text(MYAPP)
    _users(directory)
    yield directory


@pytest.mark.slow
def test_gunicorn_conf_from_the_users_directory_keeps_apps_apart(tmp_path: Path, project: Path) -> None:
    # gunicorn -c /path/to/repo/examples/gunicorn.conf.py myapp:application, run from the user's
    # own directory with a relative users file, twice (two apps, two secrets), no JWT_WSGI_STORE.
    shared_tmp = tmp_path / "runtime" / "tmp"
    servers = {}
    with ExitStack() as stack:
        for name, secret in (("myapp", SECRET), ("otherapp", OTHER_SECRET)):
            env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=secret, JWT_WSGI_USERS_FILE="users.json",
                             BIND="127.0.0.1:{port}", WORKERS="2")
            servers[name] = _started(stack, Server(
                [GUNICORN, "-c", str(REPO_ROOT / "examples" / "gunicorn.conf.py"), f"{name}:application"],
                env=env, log_dir=tmp_path, name=name, ready_path="/", cwd=project))
        for server in servers.values():
            _alice_gets_in(server)
        # Each its own file (created on first use), named after the app for whoever looks.
        stores = sorted(p.name for p in shared_tmp.glob("jwt-wsgi-*/*.db"))
        assert len(stores) == 2 and stores[0].startswith("myapp-") and stores[1].startswith("otherapp-"), stores
        _lock_out(servers["myapp"])
        _alice_gets_in(servers["otherapp"])


@pytest.mark.slow
def test_serve_with_workers_keeps_apps_apart(tmp_path: Path, project: Path) -> None:
    # jwt-wsgi serve myapp:hello --workers 2, twice with different secrets (the same module run as
    # two applications), one host, one TMPDIR, no store: two files, and no shared lock-out.
    servers = {}
    with ExitStack() as stack:
        for name, secret in (("one", SECRET), ("two", OTHER_SECRET)):
            env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=secret, JWT_WSGI_USERS_FILE="users.json")
            servers[name] = _started(stack, Server(
                [JWT_WSGI, "serve", "myapp:hello", "--bind", "127.0.0.1:{port}", "--workers", "2",
                 "--protect", "/api"], env=env, log_dir=tmp_path, name=name, ready_path="/", cwd=project))
        said = {name: server.stderr_path.read_text() for name, server in servers.items()}
        files = {name: next(word for word in text.split() if word.startswith("sqlite:///")) for name, text in said.items()}
        assert files["one"] != files["two"], files
        assert all(SECRET not in f and OTHER_SECRET not in f for f in files.values())
        for server in servers.values():
            _alice_gets_in(server)
        _lock_out(servers["one"])
        _alice_gets_in(servers["two"])
