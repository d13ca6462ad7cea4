"""examples/django_app run as its docstring says: ``manage.py migrate``, then
``gunicorn -c examples/gunicorn.conf.py examples.django_app.wsgi:application`` with 2 workers.

Only in real processes: Django is configured once per process, and tests/test_django.py owns
this one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ALICE_PASSWORD, mint
from tests.servers import GUNICORN, PYTHON, REPO_ROOT, Server, bearer, get, login, on_every_worker, post
from tests.test_examples import ROOT_PASSWORD, cli_users, example_env, state  # noqa: F401 (fixtures)

TARGET = "examples.django_app.wsgi:application"
pytestmark = pytest.mark.slow


def django_env(directory: Path, users: Path, name: str, **extra: str | None) -> dict[str, str]:
    return example_env(directory, users, name, DJANGO_DB=str(directory / f"{name}-django.db"), **extra)


@pytest.fixture(scope="module")
def django_site(state: Path, cli_users: Path) -> Iterator[Server]:  # noqa: F811
    env = django_env(state, cli_users, "django_app")
    migrate = subprocess.run([PYTHON, "examples/django_app/manage.py", "migrate", "--noinput"], cwd=REPO_ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", TARGET], env=env, log_dir=state,
                    name="django_app", ready_path="/api/health")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_public_routes(django_site: Server) -> None:
    health = get(django_site.base_url, "/api/health")
    django_site.check(health.status == 200 and health.json() == {"status": "ok"}, str(health))
    index = get(django_site.base_url, "/")
    django_site.check(index.status == 200 and index.json() == {"hello": "anonymous"}, str(index))


def test_refuses_without_a_valid_token(django_site: Server) -> None:
    for path in ("/api/me", "/api/admin", "/api/items/1", "/API/me", "//api/me"):
        response = get(django_site.base_url, path)
        django_site.check(response.status == 401, f"{path}: {response}")
        django_site.check(response.json()["error"] == "missing_token", f"{path}: {response}")
        django_site.check(response.headers.get("www-authenticate", "").startswith('Bearer realm="'), str(response))
    now = int(time.time())
    expired = get(django_site.base_url, "/api/me", headers=bearer(mint(iat=now - 7200, exp=now - 3600)))
    django_site.check(expired.status == 401 and expired.json()["error"] == "token_expired", str(expired))


def test_login_and_request_user_in_every_worker(django_site: Server) -> None:
    tokens = login(django_site.base_url, "alice", ALICE_PASSWORD)
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 1800
    headers = bearer(tokens["access_token"])
    ids = set()
    for response in [*on_every_worker(django_site.base_url, "/api/me", headers),
                     *(get(django_site.base_url, "/api/me", headers=headers) for _ in range(4))]:
        django_site.check(response.status == 200, f"a worker refused the token: {response}")
        body = response.json()
        assert body["user"] == "alice" and body["authenticated"] is True
        assert body["claims"]["scope"] == "read write"
        ids.add(body["id"])
    assert len(ids) == 1 and isinstance(ids.pop(), int), "one Django user row, created once"
    assert get(django_site.base_url, "/", headers=headers).json() == {"hello": "alice"}
    assert get(django_site.base_url, "/api/items/7", headers=headers).json() == {"item": 7, "owner": "alice"}
    assert get(django_site.base_url, "/api/editors", headers=headers).json() == {"editor": "alice"}


def test_scoped_view_answers_403_then_200(django_site: Server) -> None:
    alice = bearer(login(django_site.base_url, "alice", ALICE_PASSWORD)["access_token"])
    for response in on_every_worker(django_site.base_url, "/api/admin", alice):
        django_site.check(response.status == 403, f"alice on /api/admin: {response}")
        assert response.json()["error"] == "insufficient_scope"
        challenge = response.headers.get("www-authenticate", "")
        django_site.check('error="insufficient_scope"' in challenge and 'scope="admin"' in challenge, str(response))
    root = bearer(login(django_site.base_url, "root", ROOT_PASSWORD)["access_token"])
    admin = get(django_site.base_url, "/api/admin", headers=root)
    django_site.check(admin.status == 200 and admin.json() == {"admin": "root"}, str(admin))


def test_logout_revokes_in_every_worker(django_site: Server) -> None:
    tokens = login(django_site.base_url, "alice", ALICE_PASSWORD)
    headers = bearer(tokens["access_token"])
    django_site.check(post(django_site.base_url, "/auth/logout", headers=headers).status == 204, "logout")
    for response in on_every_worker(django_site.base_url, "/api/me", headers):
        django_site.check(response.status == 401 and response.json()["error"] == "token_revoked", str(response))


def test_without_secret_refuses_to_start(state: Path, cli_users: Path) -> None:  # noqa: F811
    env = django_env(state, cli_users, "django_nosecret", JWT_WSGI_SECRET=None)
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", TARGET], env=env, log_dir=state,
                    name="django_nosecret").start()
    try:
        code = server.wait_exit(30)
    finally:
        server.stop()
    output = server.output()
    assert code is not None and code != 0, output[-3000:]
    assert "JWT_WSGI_SECRET" in output, output[-3000:]
