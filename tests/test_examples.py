"""Every example, run the way the README says: in-process first, then under real servers.

- in-process: the module imported with ``JWT_WSGI_SECRET`` / ``JWT_WSGI_USERS_FILE`` set, driven
  with Werkzeug's test client;
- ``gunicorn -c examples/gunicorn.conf.py examples.X:app`` with 2 workers and a SQLite store of
  its own (``JWT_WSGI_STORE``), a users file made with ``jwt-wsgi users add``;
- ``gunicorn --paste examples/paste.ini``, ``python examples/plain_wsgi.py PORT`` (wsgiref) and
  ``jwt-wsgi serve examples.plain_wsgi:app --workers 2 --protect /api``;
- without ``JWT_WSGI_SECRET`` every one of them must stop with a message naming the secret.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jwt_wsgi import ConfigurationError
from tests.conftest import ADMIN_PASSWORD, ALICE_PASSWORD, OTHER_SECRET, SECRET, BufferedClient, mint
from tests.servers import (
    GUNICORN,
    JWT_WSGI,
    PYTHON,
    REPO_ROOT,
    Server,
    bearer,
    get,
    login,
    on_every_worker,
    post,
    request,
    server_env,
)


@dataclass(frozen=True)
class Example:
    name: str  # examples/<name>.py
    attr: str  # the WSGI callable the README hands to gunicorn
    items: bool = False  # has /api/items/<int>

    @property
    def target(self) -> str:
        return f"examples.{self.name}:{self.attr}"


PLAIN = Example("plain_wsgi", "application")
FLASK = Example("flask_app", "app", items=True)
BOTTLE = Example("bottle_app", "application", items=True)
ARTICLE = Example("article_app", "app")
BEARER_EXAMPLES = [pytest.param(e, id=e.name) for e in (PLAIN, FLASK, BOTTLE)]
ALL_EXAMPLES = [*BEARER_EXAMPLES, pytest.param(ARTICLE, id=ARTICLE.name)]

ROOT_PASSWORD = "root-password-for-tests"  # TEST-ONLY


def expired_token(**extra: Any) -> str:
    now = int(time.time())
    return mint(iat=now - 7200, exp=now - 3600, **extra)


def forged_token() -> str:
    return mint(key=OTHER_SECRET)


# == (a) in-process ===========================================================================
@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch, users_file: str) -> Iterator[Any]:
    """Import ``examples.<name>`` with the README's variables set; forget it afterwards."""
    loaded: list[str] = []

    def load(example: Example, **env: str | None) -> Any:
        for name in [k for k in os.environ if k.startswith("JWT_WSGI_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("JWT_WSGI_SECRET", SECRET)
        monkeypatch.setenv("JWT_WSGI_USERS_FILE", users_file)
        for key, value in env.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        module_name = f"examples.{example.name}"
        sys.modules.pop(module_name, None)
        loaded.append(module_name)
        module = importlib.import_module(module_name)
        return getattr(module, example.attr)

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)


def _login(client: BufferedClient, username: str, password: str, path: str = "/auth/login") -> dict[str, Any]:
    response = client.post(path, json={"username": username, "password": password})
    assert response.status_code == 200, response.data
    assert response.headers["Cache-Control"] == "no-store"
    return response.json  # type: ignore[no-any-return]


@pytest.mark.parametrize("example", BEARER_EXAMPLES)
def test_in_process(load_example: Any, example: Example) -> None:
    client = BufferedClient(load_example(example))

    assert client.get("/api/health").json == {"status": "ok"}
    assert client.get("/").json == {"hello": "anonymous"}

    missing = client.get("/api/me")
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"].startswith('Bearer realm="')
    assert missing.json["error"] == "missing_token"

    for token in ("junk", forged_token(), expired_token()):
        refused = client.get("/api/me", headers=bearer(token))
        assert refused.status_code == 401, token
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]

    wrong = client.post("/auth/login", json={"username": "alice", "password": "wrong-password"})
    assert wrong.status_code == 401
    assert wrong.json["error"] == "invalid_grant"

    tokens = _login(client, "alice", ALICE_PASSWORD)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert tokens["refresh_token"]
    me = client.get("/api/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json["user"] == "alice"
    assert me.json["claims"]["scope"] == "read"
    assert client.get("/", headers=bearer(tokens["access_token"])).json == {"hello": "alice"}
    if example.items:
        assert client.get("/api/items/7", headers=bearer(tokens["access_token"])).json == {"item": 7, "owner": "alice"}

    admin = client.get("/api/admin", headers=bearer(tokens["access_token"]))
    assert admin.status_code == 403
    assert admin.json["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in admin.headers["WWW-Authenticate"]
    root = _login(client, "root", ADMIN_PASSWORD)
    assert client.get("/api/admin", headers=bearer(root["access_token"])).json == {"admin": "root"}

    assert client.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204
    revoked = client.get("/api/me", headers=bearer(tokens["access_token"]))
    assert revoked.status_code == 401
    assert revoked.json["error"] == "token_revoked"


class ArticleClient:
    """A client written the article's way: it posts JSON to ``/loginEndpoint``, keeps
    ``["token"]`` when ``["error"] == "0"``, sends it raw in a ``TOKEN`` header and branches on
    ``["error"]`` and ``["message"]`` (never on the status code: the article answered errors with 200
    or 403, we answer 401). ``send(method, path, headers, json_body) -> (status, body)`` is the transport.
    """

    def __init__(self, send: Any) -> None:
        self.send = send
        self.token: str | None = None

    def login(self, username: str, password: str) -> dict[str, Any]:
        _, body = self.send("POST", "/loginEndpoint", {}, {"username": username, "password": password})
        if body.get("error") == "0":
            self.token = body["token"]
        return body  # type: ignore[no-any-return]

    def call(self, path: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        token = token if token is not None else self.token
        return self.send("GET", path, {"TOKEN": token} if token is not None else {}, None)  # type: ignore[no-any-return]


def in_process_article_client(client: BufferedClient) -> ArticleClient:
    def send(method: str, path: str, headers: dict[str, str], json_body: Any) -> tuple[int, Any]:
        response = client.open(path, method=method, headers=headers, json=json_body)
        return response.status_code, response.json

    return ArticleClient(send)


def http_article_client(base_url: str) -> ArticleClient:
    def send(method: str, path: str, headers: dict[str, str], json_body: Any) -> tuple[int, Any]:
        response = request(base_url, method, path, headers=headers, json_body=json_body)
        return response.status, response.json()

    return ArticleClient(send)


# The article's answers, word for word: "2" no token, "1" expired or unusable token, "0" success.
ARTICLE_REFUSALS = [
    pytest.param({}, {"error": "2", "message": "Token required"}, id="missing"),
    pytest.param({"TOKEN": "expired"}, {"error": "1", "message": "Token has expired"}, id="expired"),
    pytest.param({"TOKEN": "junk"}, {"error": "1", "message": "Invalid Token"}, id="junk"),
    pytest.param({"TOKEN": "forged"}, {"error": "1", "message": "Invalid Token"}, id="forged"),
    # The article's header only: a Bearer header is no token at all for this app.
    pytest.param({"Authorization": "bearer"}, {"error": "2", "message": "Token required"}, id="bearer-header"),
]


def _article_headers(headers: dict[str, str], good: str) -> dict[str, str]:
    made = {"expired": expired_token, "forged": forged_token}
    if headers.get("Authorization") == "bearer":
        return bearer(good)
    return {k: made[v]() if v in made else v for k, v in headers.items()}


def test_article_in_process(load_example: Any) -> None:
    client = BufferedClient(load_example(ARTICLE))
    article = in_process_article_client(client)

    body = article.login("alice", ALICE_PASSWORD)
    assert body == {"error": "0", "message": "Successful", "token": article.token, "Elapse_time": 1800}
    assert client.post("/loginEndpoint", json={"username": "alice", "password": ALICE_PASSWORD}
                       ).headers["Cache-Control"] == "no-store"

    assert article.call("/anEndpoint") == (200, {"error": "0", "message": "Hello, alice! This endpoint is protected."})
    assert article.call("/anotherEndpoint/bob") == (200, {"error": "0", "message": "bob seen by alice"})

    for param in ARTICLE_REFUSALS:
        headers, expected = param.values
        for path in ("/anEndpoint", "/anotherEndpoint/bob"):
            refused = client.get(path, headers=_article_headers(headers, article.token or ""))
            assert refused.status_code == 401, (param.id, path)
            assert refused.json == expected, (param.id, path)
            assert refused.headers["WWW-Authenticate"].startswith("Bearer realm=")

    # A wrong password is a failure ("3"), and, unlike the article, a made-up user gets no token.
    for username, password in (("alice", "not-her-password"), ("nobody", "whatever1")):
        wrong = client.post("/loginEndpoint", json={"username": username, "password": password})
        assert wrong.status_code == 401
        assert wrong.json == {"error": "3", "message": "An error occured"}


@pytest.mark.parametrize("example", ALL_EXAMPLES)
def test_in_process_without_secret_refuses_to_start(load_example: Any, example: Example) -> None:
    # Imported (as servers do), the example raises; run as a script it exits with one line
    # (test_wsgiref_without_secret and the gunicorn variants below cover those).
    with pytest.raises(ConfigurationError) as info:
        load_example(example, JWT_WSGI_SECRET=None)
    message = str(info.value)
    assert "JWT_WSGI_SECRET" in message and info.value.option == "secret"
    assert len(message.splitlines()) == 1


# == (b) real servers ===========================================================================
@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def cli_users(state: Path) -> Path:
    """users.json made as the README says: ``jwt-wsgi users add NAME --password-stdin``."""
    path = state / "users.json"
    env = server_env(state / "runtime-cli", JWT_WSGI_SECRET=SECRET)
    for name, password, scope in (("alice", ALICE_PASSWORD, "read write"), ("root", ROOT_PASSWORD, "read admin")):
        subprocess.run(
            [JWT_WSGI, "users", "add", name, "--users-file", str(path), "--password-stdin",
             "--claim", f"scope={scope}"],
            input=password + "\n", env=env, cwd=state, check=True, capture_output=True, text=True, timeout=60,
        )
    return path


def example_env(state: Path, users: Path, name: str, **extra: str | None) -> dict[str, str]:
    """The README's variables, a SQLite store of this server's own, BIND and WORKERS for the conf."""
    variables: dict[str, str | None] = {
        "JWT_WSGI_SECRET": SECRET,
        "JWT_WSGI_USERS_FILE": str(users),
        "JWT_WSGI_STORE": f"sqlite:///{state / name}.db",  # an absolute path: four slashes
        "BIND": "127.0.0.1:{port}",
        "WORKERS": "2",
        # Sync workers serve one connection at a time, which on_every_worker() relies on to
        # reach each worker deterministically (the conf's own default is gthread).
        "WORKER_CLASS": "sync",
    }
    variables.update(extra)
    return server_env(state / f"runtime-{name}", **variables)


def start(server: Server) -> Iterator[Server]:
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=BEARER_EXAMPLES)
def served(request: pytest.FixtureRequest, state: Path, cli_users: Path) -> Iterator[tuple[Example, Server]]:
    """``gunicorn -c examples/gunicorn.conf.py examples.X:app`` with 2 workers, one per module."""
    example: Example = request.param
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", example.target],
                    env=example_env(state, cli_users, example.name), log_dir=state, name=example.name,
                    ready_path="/api/health")
    for running in start(server):
        yield example, running


@pytest.mark.slow
def test_gunicorn_public_routes(served: tuple[Example, Server]) -> None:
    _, server = served
    health = get(server.base_url, "/api/health")
    server.check(health.status == 200 and health.json() == {"status": "ok"}, f"/api/health: {health}")
    index = get(server.base_url, "/")
    server.check(index.status == 200 and index.json() == {"hello": "anonymous"}, f"/: {index}")


@pytest.mark.slow
def test_gunicorn_refuses_without_token(served: tuple[Example, Server]) -> None:
    _, server = served
    for path in ("/api/me", "/api/admin", "/api/items/1", "/API/me", "//api/me"):
        response = get(server.base_url, path)
        server.check(response.status == 401, f"{path}: {response}")
        server.check(response.headers.get("www-authenticate", "").startswith('Bearer realm="'), f"{path}: {response}")
        server.check(response.json()["error"] == "missing_token", f"{path}: {response}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param("junk", "invalid_token", id="junk"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.", "invalid_token", id="alg-none"),
        pytest.param(forged_token(), "invalid_token", id="forged"),
        pytest.param(expired_token(), "token_expired", id="expired"),
    ],
)
def test_gunicorn_refuses_bad_token(served: tuple[Example, Server], token: str, code: str) -> None:
    _, server = served
    response = get(server.base_url, "/api/me", headers=bearer(token))
    server.check(response.status == 401, str(response))
    server.check('error="invalid_token"' in response.headers.get("www-authenticate", ""), str(response))
    server.check(response.json()["error"] == code, str(response))


@pytest.mark.slow
def test_gunicorn_login_and_every_worker_accepts_the_token(served: tuple[Example, Server]) -> None:
    example, server = served
    response = post(server.base_url, "/auth/login", json_body={"username": "alice", "password": ALICE_PASSWORD})
    server.check(response.status == 200, f"login: {response}")
    server.check(response.headers.get("cache-control") == "no-store", str(response))
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 1800
    assert tokens["access_token"] and tokens["refresh_token"]
    headers = bearer(tokens["access_token"])

    for response in on_every_worker(server.base_url, "/api/me", headers):
        server.check(response.status == 200, f"a worker refused the token: {response}")
        assert response.json()["user"] == "alice"
        assert response.json()["claims"]["scope"] == "read write"
    for _ in range(6):  # fresh connections, spread over the workers
        server.check(get(server.base_url, "/api/me", headers=headers).status == 200, "refused on a fresh connection")

    assert get(server.base_url, "/", headers=headers).json() == {"hello": "alice"}
    if example.items:
        assert get(server.base_url, "/api/items/7", headers=headers).json() == {"item": 7, "owner": "alice"}


@pytest.mark.slow
def test_gunicorn_admin_needs_admin_scope(served: tuple[Example, Server]) -> None:
    _, server = served
    alice = bearer(login(server.base_url, "alice", ALICE_PASSWORD)["access_token"])
    for response in on_every_worker(server.base_url, "/api/admin", alice):
        server.check(response.status == 403, f"alice on /api/admin: {response}")
        server.check('error="insufficient_scope"' in response.headers.get("www-authenticate", ""), str(response))
        server.check(response.json()["error"] == "insufficient_scope", str(response))

    root = bearer(login(server.base_url, "root", ROOT_PASSWORD)["access_token"])
    for response in on_every_worker(server.base_url, "/api/admin", root):
        server.check(response.status == 200, f"root on /api/admin: {response}")
        assert response.json() == {"admin": "root"}


@pytest.mark.slow
def test_gunicorn_wrong_password(served: tuple[Example, Server]) -> None:
    _, server = served
    response = post(server.base_url, "/auth/login", json_body={"username": "alice", "password": "wrong-password"})
    server.check(response.status == 401, str(response))
    server.check(response.json()["error"] == "invalid_grant", str(response))
    server.check("access_token" not in response.json(), str(response))


@pytest.mark.slow
def test_gunicorn_logout_revokes_in_every_worker(served: tuple[Example, Server]) -> None:
    _, server = served
    tokens = login(server.base_url, "alice", ALICE_PASSWORD)
    headers = bearer(tokens["access_token"])
    logout = post(server.base_url, "/auth/logout", headers=headers)
    server.check(logout.status == 204, f"logout: {logout}")
    for response in [*on_every_worker(server.base_url, "/api/me", headers),
                     *(get(server.base_url, "/api/me", headers=headers) for _ in range(5))]:
        server.check(response.status == 401, f"a revoked token was accepted: {response}")
        server.check(response.json()["error"] == "token_revoked", str(response))
    refresh = post(server.base_url, "/auth/refresh", json_body={"refresh_token": tokens["refresh_token"]})
    server.check(refresh.status == 401, f"the refresh token of a logged-out session still works: {refresh}")


@pytest.mark.slow
def test_gunicorn_login_rate_limit_is_shared_by_the_workers(served: tuple[Example, Server]) -> None:
    _, server = served
    statuses = []
    for _ in range(6):
        response = post(server.base_url, "/auth/login", json_body={"username": "mallory", "password": "guess-1234"})
        statuses.append(response.status)
    server.check(statuses == [401] * 5 + [429], f"statuses {statuses}")
    server.check(response.headers.get("retry-after", "").isdigit(), str(response))


# -- the article app under gunicorn --------------------------------------------------------------
@pytest.fixture(scope="module")
def article(state: Path, cli_users: Path) -> Iterator[Server]:
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", ARTICLE.target],
                    env=example_env(state, cli_users, ARTICLE.name), log_dir=state, name=ARTICLE.name,
                    ready_path="/anEndpoint")
    yield from start(server)


@pytest.mark.slow
def test_article_gunicorn_login_and_endpoints(article: Server) -> None:
    client = http_article_client(article.base_url)
    body = client.login("alice", ALICE_PASSWORD)
    assert body == {"error": "0", "message": "Successful", "token": client.token, "Elapse_time": 1800}
    token = {"TOKEN": client.token or ""}
    for response in on_every_worker(article.base_url, "/anEndpoint", token):
        article.check(response.status == 200, f"a worker refused the token: {response}")
        assert response.json() == {"error": "0", "message": "Hello, alice! This endpoint is protected."}
    for response in on_every_worker(article.base_url, "/anotherEndpoint/bob", token):
        article.check(response.status == 200, str(response))
        assert response.json() == {"error": "0", "message": "bob seen by alice"}


@pytest.mark.slow
@pytest.mark.parametrize(("headers", "expected"), ARTICLE_REFUSALS)
def test_article_gunicorn_errors(article: Server, headers: dict[str, str], expected: dict[str, str]) -> None:
    good = login(article.base_url, "alice", ALICE_PASSWORD, "/loginEndpoint")["token"]
    for path in ("/anEndpoint", "/anotherEndpoint/bob"):
        response = get(article.base_url, path, headers=_article_headers(headers, good))
        article.check(response.status == 401, f"{path}: {response}")
        assert response.json() == expected
        assert response.headers["www-authenticate"].startswith("Bearer realm=")


@pytest.mark.slow
def test_article_gunicorn_refuses_unknown_user(article: Server) -> None:
    client = http_article_client(article.base_url)
    assert client.login("anyone", "anything1") == {"error": "3", "message": "An error occured"}
    assert client.token is None
    assert client.call("/anEndpoint") == (401, {"error": "2", "message": "Token required"})


# -- paste.ini, wsgiref, jwt-wsgi serve -------------------------------------------------------------
@pytest.mark.slow
def test_paste_ini_under_gunicorn(tmp_path: Path, cli_users: Path) -> None:
    # JWT_WSGI_SECRET=... JWT_WSGI_USERS_FILE=users.json gunicorn --paste examples/paste.ini -b 127.0.0.1:PORT
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(cli_users))
    server = Server([GUNICORN, "--paste", "examples/paste.ini", "-b", "127.0.0.1:{port}"], env=env,
                    log_dir=tmp_path, name="paste", ready_path="/api/health")
    with server:
        assert get(server.base_url, "/api/health").json() == {"status": "ok"}
        server.check(get(server.base_url, "/api/me").status == 401, "/api/me without a token")
        tokens = login(server.base_url, "alice", ALICE_PASSWORD)
        assert tokens["expires_in"] == 900, "access_ttl = 15m from [filter:jwt]"
        me = get(server.base_url, "/api/me", headers=bearer(tokens["access_token"]))
        server.check(me.status == 200 and me.json()["user"] == "alice", str(me))
        admin = get(server.base_url, "/api/admin", headers=bearer(tokens["access_token"]))
        server.check(admin.status == 403, str(admin))


@pytest.mark.slow
def test_plain_wsgi_under_wsgiref(tmp_path: Path, cli_users: Path) -> None:
    # python examples/plain_wsgi.py PORT
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(cli_users))
    server = Server([PYTHON, "examples/plain_wsgi.py", "{port}"], env=env, log_dir=tmp_path, name="wsgiref",
                    ready_path="/api/health")
    with server:
        assert f"serving on {server.base_url}" in server.stdout_path.read_text()
        missing = get(server.base_url, "/api/me")
        server.check(missing.status == 401 and "www-authenticate" in missing.headers, str(missing))
        tokens = login(server.base_url, "alice", ALICE_PASSWORD)
        headers = bearer(tokens["access_token"])
        me = get(server.base_url, "/api/me", headers=headers)
        server.check(me.status == 200 and me.json()["user"] == "alice", str(me))
        server.check(get(server.base_url, "/api/admin", headers=headers).status == 403, "alice on /api/admin")
        server.check(post(server.base_url, "/auth/logout", headers=headers).status == 204, "logout")
        server.check(get(server.base_url, "/api/me", headers=headers).status == 401, "revoked token accepted")


@pytest.mark.slow
def test_jwt_wsgi_serve_two_workers_share_revocations(tmp_path: Path, cli_users: Path) -> None:
    # jwt-wsgi serve examples.plain_wsgi:app --bind 127.0.0.1:PORT --workers 2 --protect /api
    # No store configured: with 2 workers it must switch to SQLite (under TMPDIR) and say so.
    env = server_env(tmp_path / "runtime", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(cli_users),
                     TMPDIR=str(tmp_path))
    server = Server([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:{port}", "--workers", "2",
                     "--protect", "/api"], env=env, log_dir=tmp_path, name="serve", ready_path="/")
    with server:
        stderr = server.stderr_path.read_text()
        server.check("sqlite:///" in stderr and "2 workers" in stderr, "serve did not say it switched to SQLite")
        assert list(tmp_path.glob("jwt-wsgi-*/*.db")), "the SQLite store is not under TMPDIR"

        server.check(get(server.base_url, "/api/me").status == 401, "/api/me without a token")
        tokens = login(server.base_url, "alice", ALICE_PASSWORD)
        headers = bearer(tokens["access_token"])
        for response in on_every_worker(server.base_url, "/api/me", headers):
            server.check(response.status == 200, f"a worker refused the token: {response}")
            assert response.json()["user"] == "alice"
        admin = get(server.base_url, "/api/admin", headers=headers)
        server.check(admin.status == 403 and admin.json()["error"] == "insufficient_scope", str(admin))

        logout = post(server.base_url, "/auth/logout", headers=headers)
        server.check(logout.status == 204, f"logout: {logout}")
        statuses = [get(server.base_url, "/api/me", headers=headers).status for _ in range(10)]
        statuses += [r.status for r in on_every_worker(server.base_url, "/api/me", headers)]
        server.check(statuses == [401] * 12, f"a revoked token was accepted by a worker: {statuses}")


# -- started without JWT_WSGI_SECRET ---------------------------------------------------------------
NO_SECRET_COMMANDS = {
    "plain_wsgi": [GUNICORN, "-c", "examples/gunicorn.conf.py", PLAIN.target],
    "flask_app": [GUNICORN, "-c", "examples/gunicorn.conf.py", FLASK.target],
    "bottle_app": [GUNICORN, "-c", "examples/gunicorn.conf.py", BOTTLE.target],
    "article_app": [GUNICORN, "-c", "examples/gunicorn.conf.py", ARTICLE.target],
    "paste": [GUNICORN, "--paste", "examples/paste.ini", "-b", "127.0.0.1:{port}"],
    "wsgiref": [PYTHON, "examples/plain_wsgi.py", "{port}"],
}
NO_SECRET_DEADLINE = 10.0  # a correct refusal takes a second or two


@pytest.fixture(scope="module")
def without_secret(state: Path, cli_users: Path) -> Iterator[dict[str, tuple[int | None, str]]]:
    """Every command started at once without JWT_WSGI_SECRET: name -> (exit status or None, output)."""
    servers = {}
    for name, argv in NO_SECRET_COMMANDS.items():
        env = example_env(state, cli_users, f"nosecret-{name}", JWT_WSGI_SECRET=None)
        servers[name] = Server(argv, env=env, log_dir=state, name=f"nosecret-{name}").start()
    deadline = time.monotonic() + NO_SECRET_DEADLINE
    results = {}
    try:
        for name, server in servers.items():
            code = server.wait_exit(max(0.0, deadline - time.monotonic()))
            results[name] = (code, server.output())
    finally:
        for server in servers.values():
            server.stop()
    yield results


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NO_SECRET_COMMANDS))
def test_without_secret_refuses_to_start(without_secret: dict[str, tuple[int | None, str]], name: str) -> None:
    code, output = without_secret[name]
    assert code is not None, (
        f"{name}: still running {NO_SECRET_DEADLINE:g} s after start without JWT_WSGI_SECRET "
        f"(gunicorn keeps restarting workers that exit with status 1)\n{output[-1500:]}"
    )
    assert code != 0, output[-3000:]
    assert "JWT_WSGI_SECRET" in output, output[-3000:]


@pytest.mark.slow
def test_jwt_wsgi_serve_without_secret(tmp_path: Path) -> None:
    env = server_env(tmp_path / "runtime", TMPDIR=str(tmp_path))
    result = subprocess.run([JWT_WSGI, "serve", "examples.plain_wsgi:app", "--bind", "127.0.0.1:1", "--workers", "2"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "JWT_WSGI_SECRET" in result.stderr
