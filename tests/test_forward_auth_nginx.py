"""Forward auth over real sockets: nginx ``auth_request`` asks ``jwt-wsgi serve --forward-auth``
before proxying to a backend that is not Python (a static directory served by nginx itself).

The front server passes ``$request_uri`` (the URI as the client sent it) in ``X-Original-URI``:
nginx matches locations on its own normalised ``$uri`` (``/api/%2e%2e/x`` becomes ``/x``, and
``/admin/..`` becomes ``/``) and proxies the raw URI on, so the backend may read the path either
way; the verifier decides on every reading, and refuses both.
"""

from __future__ import annotations

import os
import shutil

import pytest

from ._services import unavailable
from .conftest import SECRET, mint
from .servers import JWT_WSGI, Server, free_port, get, server_env

pytestmark = pytest.mark.slow  # real nginx and a real jwt-wsgi serve

NGINX_CONF = """\
worker_processes 1;
{user}
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    default_type text/plain;

    # The front: every request is asked about first.
    server {{
        listen 127.0.0.1:{front};
        location = /_auth {{
            internal;
            proxy_pass http://127.0.0.1:{verifier}/verify;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
            # Only the X-Original-* spelling is nginx's: a client's X-Forwarded-* never gets there.
            proxy_set_header X-Forwarded-Uri "";
            proxy_set_header X-Forwarded-Method "";
        }}
        location / {{
            auth_request /_auth;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            proxy_set_header X-Auth-User $auth_user;  # the client's own X-Auth-User is replaced
            proxy_pass http://127.0.0.1:{backend};
        }}
    }}

    # The backend: static files; it echoes the user nginx told it about.
    server {{
        listen 127.0.0.1:{backend};
        root {prefix}/www;
        add_header X-Seen-User "$http_x_auth_user" always;
    }}
}}
"""

FILES = {
    "index.html": "home page\n",
    "x": "open file\n",
    "api/secret": "api secret\n",
    "api/health": "ok\n",
    "admin/panel": "admin panel\n",
}


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)
    if nginx is None:
        unavailable("nginx is not installed (Debian package nginx)")
    tmp = tmp_path_factory.mktemp("forward-auth")
    prefix = tmp / "nginx"
    for sub in ("temp", "logs"):
        (prefix / sub).mkdir(parents=True)
    for name, text in FILES.items():
        path = prefix / "www" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = server_env(tmp / "runtime", JWT_WSGI_SECRET=SECRET, JWT_WSGI_PROTECT="/api,/admin",
                     JWT_WSGI_PUBLIC="/api/health", JWT_WSGI_SCOPES="/admin=admin", JWT_WSGI_LOGIN_PATH="off")
    verifier = Server([JWT_WSGI, "serve", "--forward-auth", "--bind", "127.0.0.1:{port}", "--workers", "1"],
                      env, tmp / "logs", name="verifier")
    front_port, backend_port = free_port(), free_port()
    user = "user root root;" if os.geteuid() == 0 else ""  # CI runs as root; the files are in a private tmp
    (prefix / "nginx.conf").write_text(NGINX_CONF.format(prefix=prefix, front=front_port, backend=backend_port,
                                                         verifier=verifier.port, user=user))
    proxy = Server([nginx, "-p", str(prefix), "-c", "nginx.conf", "-e", str(prefix / "logs" / "error.log"),
                    "-g", f"daemon off; pid {prefix / 'nginx.pid'};"],
                   server_env(tmp / "runtime"), tmp / "logs", name="nginx", port=front_port, ready_path="/x")
    with verifier, proxy:
        proxy.verifier = verifier  # type: ignore[attr-defined]
        yield proxy


def ask(front, path, token=None, **headers):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return get(front.base_url, path, headers=headers)


def test_a_protected_path_needs_a_token(front):
    refused = ask(front, "/api/secret")
    assert refused.status == 401, front.log_tail()
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert b"api secret" not in refused.body
    allowed = ask(front, "/api/secret", mint(scope="read"))
    assert allowed.status == 200 and allowed.body == b"api secret\n"
    assert allowed.headers["x-seen-user"] == "alice"
    assert ask(front, "/api/secret", "junk").status == 401
    assert ask(front, "/api/secret", mint(exp=1)).status == 401


def test_a_public_path_needs_none(front):
    response = ask(front, "/api/health")
    assert response.status == 200 and response.body == b"ok\n"
    assert response.headers.get("x-seen-user", "") == ""
    assert ask(front, "/x").body == b"open file\n"


def test_a_scoped_path_needs_its_scope(front):
    assert ask(front, "/admin/panel", mint(scope="read")).status == 403
    response = ask(front, "/admin/panel", mint(scope="read admin"))
    assert response.status == 200 and response.body == b"admin panel\n"


@pytest.mark.parametrize("path", ["/api/%2e%2e/x", "/api/%2E%2E/x", "/api/.%2e/x", "/admin/..", "/admin/../x",
                                  "/API/secret", "//api/secret", "/api/secret%3bx", "/api;x/secret",
                                  "/admin/%2e%2e/api/health"])
def test_spelled_around_paths_are_refused(front, path):
    """nginx would serve these as /x, / or /api/health; the verifier reads /api or /admin in them."""
    response = ask(front, path)
    assert response.status == 401, (path, response)
    assert b"open file" not in response.body and b"home page" not in response.body


def test_the_client_cannot_name_the_user_or_the_path(front):
    forged = ask(front, "/x", **{"X-Auth-User": "root"})
    assert forged.status == 200 and forged.headers.get("x-seen-user", "") == ""
    moved = ask(front, "/api/secret", **{"X-Forwarded-Uri": "/x", "X-Forwarded-Method": "GET",
                                         "X-Original-URI": "/x", "X-Original-Method": "GET"})
    assert moved.status == 401


def test_a_token_on_an_open_path_names_the_user(front):
    response = ask(front, "/x", mint())
    assert response.status == 200 and response.headers["x-seen-user"] == "alice"


@pytest.mark.parametrize(("path", "served"), [("/api/%2e%2e/x", b"open file\n"), ("/admin/..", b"home page\n")])
def test_what_the_backend_serves_for_a_spelled_around_path(front, path, served):
    """With a token that may see both, the backend serves the normalised path: nginx resolved the
    dot segments for its own location match, so deciding on ``$uri`` would have let these through."""
    response = ask(front, path, mint(scope="admin"))
    assert response.status == 200 and response.body == served


def test_the_verifier_alone_answers_nothing_else(front):
    base = front.verifier.base_url
    assert get(base, "/verify").status == 400  # no proxy headers: no question to answer
    assert get(base, "/elsewhere").status == 404  # the 404 app behind the verifier
    assert get(base, "/api/x").status == 401
    assert get(base, "/api/x", headers={"Authorization": f"Bearer {mint()}"}).status == 404


def test_serve_without_an_app_needs_forward_auth(tmp_path):
    from .test_cli import assert_user_error, run

    line = assert_user_error(run("serve", "--bind", "127.0.0.1:1", cwd=tmp_path), "MODULE:APP")
    assert "--forward-auth" in line
