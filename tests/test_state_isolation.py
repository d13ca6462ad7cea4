"""Two unrelated applications on one host never share state by accident.

Deployed the way a newcomer does (``jwt-wsgi serve`` with several workers, or
``gunicorn -c examples/gunicorn.conf.py myapp:application`` from their own directory), with no
store configured: each application gets a SQLite file of its own, so failed logins in one never
lock a user out of the other.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from jwt_wsgi import JWTMiddleware
from jwt_wsgi.stores import open_store
from tests._services import unavailable
from tests.conftest import ALICE_PASSWORD, OTHER_SECRET, SECRET, BufferedClient, canary_app, mint
from tests.conftest import login as client_login
from tests.redis_server import running_redis
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
        files = {name: next(word for word in text.split() if word.startswith("sqlite:///"))
                 for name, text in said.items()}
        assert files["one"] != files["two"], files
        assert all(SECRET not in f and OTHER_SECRET not in f for f in files.values())
        for server in servers.values():
            _alice_gets_in(server)
        _lock_out(servers["one"])
        _alice_gets_in(servers["two"])


# == one store shared on purpose: a SQLite file or a Redis database, two applications ==========
@pytest.fixture(params=["sqlite", "redis"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    with running_redis(tmp_path) as server:
        yield server.url


def _app(store: str, users_file: str, **options: str) -> BufferedClient:
    return BufferedClient(JWTMiddleware(canary_app, store=store, users_file=users_file, protect=["/api"], **options))


@pytest.mark.slow
@pytest.mark.parametrize("second", [
    pytest.param({"secret": OTHER_SECRET}, id="other-secret"),
    pytest.param({"secret": SECRET, "issuer": "https://other.example"}, id="same-secret-other-issuer"),
])
def test_apps_sharing_a_store_keep_their_users_apart(shared_store: str, users_file: str,
                                                      second: dict[str, str]) -> None:
    one = _app(shared_store, users_file, secret=SECRET)
    two = _app(shared_store, users_file, **second)
    token_one = client_login(one)["access_token"]
    token_two = client_login(two)["access_token"]

    # "Log out everywhere" in one application: alice is signed out there, not in the other.
    assert one.post("/auth/logout", json={"all": True}, headers=bearer(token_one)).status_code == 204
    assert one.get("/api/me", headers=bearer(token_one)).status_code == 401
    assert two.get("/api/me", headers=bearer(token_two)).status_code == 200

    # Six wrong passwords in one: alice is locked out there, and still signs in to the other.
    statuses = [one.post("/auth/login", json={"username": "alice", "password": "wrong-password"}).status_code
                for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert two.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD}).status_code == 200


@pytest.mark.slow
def test_one_app_restarted_keeps_its_own_state(shared_store: str, users_file: str) -> None:
    # The namespace is stable: the same application, built again, sees its own revocations.
    first = _app(shared_store, users_file, secret=SECRET, issuer="https://app.example")
    token = client_login(first)["access_token"]
    assert first.post("/auth/logout", json={"all": True}, headers=bearer(token)).status_code == 204
    again = _app(shared_store, users_file, secret=SECRET, issuer="https://app.example")
    assert again.get("/api/me", headers=bearer(token)).status_code == 401


@pytest.mark.slow
def test_a_logout_everywhere_from_before_the_upgrade_still_holds(shared_store: str, users_file: str) -> None:
    # An earlier version kept subject cut-offs without a namespace. Its "log out everywhere" for
    # alice must still refuse her older tokens once the new version runs on the same store.
    now = time.time()
    earlier = open_store(shared_store, clock=lambda: now - 100)  # the earlier version, 100 s ago
    try:
        earlier.ping()  # the store begins then (its epoch)
        earlier.revoke_subject("alice", now - 10, now + 3600)  # alice logged out everywhere, 10 s ago
    finally:
        earlier.close()
    app = _app(shared_store, users_file, secret=SECRET)
    before = mint(sub="alice", iat=int(now) - 50, exp=int(now) + 600)  # issued before that logout
    after = mint(sub="alice", iat=int(now) - 5, exp=int(now) + 600)
    assert app.get("/api/me", headers=bearer(before)).status_code == 401
    assert app.get("/api/me", headers=bearer(after)).status_code == 200
