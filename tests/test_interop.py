"""Standard OAuth 2.0 clients against a real server, and the examples under other WSGI servers.

- authlib's ``OAuth2Session`` (requests) and ``OAuth2Client`` (httpx), requests-oauthlib's
  ``LegacyApplicationClient`` and oauthlib's error classes, against gunicorn serving
  ``examples/plain_wsgi.py`` (``examples/gunicorn.conf.py``, 2 gthread workers, a SQLite store):
  the password grant, refresh, auto-refresh with ``token_endpoint`` set to ``login_path``, RFC 7009
  revocation, and the RFC 6749 §5.2 error each client turns into its own exception;
- waitress and uWSGI (its HTTP router) serving ``examples/plain_wsgi.py`` and
  ``examples/flask_app.py``: login, a protected call, logout; a chunked body uWSGI does not hand
  over is ``411``, not a complaint about the user name.
"""

from __future__ import annotations

import json
import socket
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.security import generate_password_hash

from tests.conftest import ADMIN_PASSWORD, ALICE_PASSWORD, FAST_HASH, SECRET, BufferedClient, canary_app
from tests.servers import BIN, GUNICORN, PYTHON, Server, bearer, get, login, post, server_env

LOGIN = "/auth/login"
REVOKE = "/auth/revoke"
LOGOUT = "/auth/logout"

pytestmark = pytest.mark.slow


def _users(path: Path) -> Path:
    path.write_text(json.dumps({"users": {
        "alice": {"password": generate_password_hash(ALICE_PASSWORD, method=FAST_HASH), "claims": {"scope": "read"}},
        "root": {"password": generate_password_hash(ADMIN_PASSWORD, method=FAST_HASH),
                 "claims": {"scope": "read admin"}},
    }}))
    return path


# The spent-token checks need a spent refresh token presented again to be reuse at once:
# refresh_reuse_interval (a repeat within it gets the same successor) is off on this server.
IMMEDIATE_REUSE = {"JWT_WSGI_REFRESH_REUSE_INTERVAL": "0"}


def _env(state: Path, name: str, **extra: str) -> dict[str, str]:
    return server_env(
        state / f"runtime-{name}",
        JWT_WSGI_SECRET=SECRET,
        JWT_WSGI_USERS_FILE=str(state / "users.json"),
        JWT_WSGI_STORE=f"sqlite:///{state / name}.db",
        JWT_WSGI_LOGIN_RATE_LIMIT="1000/minute",  # the error tests fail many logins on purpose
        JWT_WSGI_LOGIN_IP_RATE_LIMIT="1000/minute",
        BIND="127.0.0.1:{port}",
        WORKERS="2",
        **extra,
    )


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("interop")
    _users(path / "users.json")
    return path


@pytest.fixture(scope="module")
def server(state: Path) -> Iterator[Server]:
    """gunicorn -c examples/gunicorn.conf.py examples.plain_wsgi:application (gthread workers)."""
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", "examples.plain_wsgi:application"],
                    env=_env(state, "gunicorn", **IMMEDIATE_REUSE), log_dir=state, name="gunicorn",
                    ready_path="/api/health")
    with server:
        yield server
    assert "Traceback" not in server.output()


def url(server: Server, path: str) -> str:
    return server.base_url + path


def expired(token: dict[str, Any]) -> dict[str, Any]:
    """The same token as a client that believes its access token has expired would hold it."""
    return {**token, "expires_at": int(time.time()) - 3600}


# == authlib ===================================================================================
@pytest.fixture(params=["requests", "httpx"])
def authlib_session(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """A factory of authlib sessions over requests (``OAuth2Session``) or httpx (``OAuth2Client``)."""
    if request.param == "requests":
        from authlib.integrations.requests_client import OAuth2Session as Session
    else:
        with warnings.catch_warnings():
            # authlib 1.9 prefers the httpx2 fork and warns when it runs on httpx, which is what
            # most users of its httpx integration have installed: that is the set-up tested here.
            warnings.filterwarnings("ignore", message="The httpx module is deprecated")
            from authlib.integrations.httpx_client import OAuth2Client as Session  # type: ignore[assignment]
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        session = Session(**kwargs)
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


def test_authlib_password_grant_refresh_and_revocation(server: Server, authlib_session: Any) -> None:
    from authlib.integrations.base_client import OAuthError

    session = authlib_session()
    token = session.fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD)
    assert token["token_type"] == "Bearer" and token["scope"] == "read" and token["expires_at"] > time.time()
    me = session.get(url(server, "/api/me"))
    assert me.status_code == 200 and me.json()["user"] == "alice"

    first_refresh = token["refresh_token"]
    rotated = session.refresh_token(url(server, LOGIN))
    assert rotated["access_token"] != token["access_token"] and rotated["refresh_token"] != first_refresh
    assert session.get(url(server, "/api/me")).status_code == 200

    # RFC 7009: the access token stops working at once; its refresh token still works.
    revoked = session.revoke_token(url(server, REVOKE), token=rotated["access_token"], token_type_hint="access_token")
    assert revoked.status_code == 200
    assert session.get(url(server, "/api/me")).status_code == 401
    again = session.refresh_token(url(server, LOGIN))
    assert session.get(url(server, "/api/me")).status_code == 200

    # Revoking the refresh token ends the grant: the access token of its family too.
    assert session.revoke_token(url(server, REVOKE), token=again["refresh_token"]).status_code == 200
    assert session.get(url(server, "/api/me")).status_code == 401
    with pytest.raises(OAuthError) as refused:
        session.refresh_token(url(server, LOGIN))
    assert refused.value.error == "invalid_grant"


def test_authlib_auto_refresh_at_the_login_path(server: Server, authlib_session: Any) -> None:
    token = authlib_session().fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD)
    updates: list[dict[str, Any]] = []
    session = authlib_session(token=expired(token), token_endpoint=url(server, LOGIN),
                              update_token=lambda new, **_: updates.append(dict(new)))
    me = session.get(url(server, "/api/me"))
    assert me.status_code == 200 and me.json()["user"] == "alice"
    assert len(updates) == 1 and updates[0]["access_token"] != token["access_token"]
    assert session.token["refresh_token"] == updates[0]["refresh_token"] != token["refresh_token"]
    # The refreshed token is not refreshed again while it is fresh.
    assert session.get(url(server, "/api/me")).status_code == 200 and len(updates) == 1


def test_authlib_refresh_at_the_refresh_path(server: Server, authlib_session: Any) -> None:
    session = authlib_session()
    token = session.fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD)
    rotated = session.refresh_token(url(server, "/auth/refresh"))
    assert rotated["refresh_token"] != token["refresh_token"]
    assert session.get(url(server, "/api/me")).status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"username": "alice", "password": "wrong-password"}, "invalid_grant", id="wrong-password"),
        pytest.param({"username": "nobody", "password": "wrong-password"}, "invalid_grant", id="unknown-user"),
        pytest.param({"username": "alice", "password": ALICE_PASSWORD, "grant_type": "foo"},
                     "unsupported_grant_type", id="unknown-grant"),
        pytest.param({"grant_type": "client_credentials"}, "unauthorized_client", id="client-credentials"),
        pytest.param({"username": "alice", "password": ALICE_PASSWORD, "scope": "admin"}, "invalid_scope",
                     id="scope-not-granted"),
    ],
)
def test_authlib_raises_the_rfc6749_error(server: Server, authlib_session: Any, kwargs: dict[str, Any],
                                          error: str) -> None:
    from authlib.integrations.base_client import OAuthError

    with pytest.raises(OAuthError) as raised:
        authlib_session().fetch_token(url(server, LOGIN), **kwargs)
    assert raised.value.error == error


def test_authlib_narrower_scope(server: Server, authlib_session: Any) -> None:
    session = authlib_session(scope="read")
    token = session.fetch_token(url(server, LOGIN), username="root", password=ADMIN_PASSWORD)
    assert "scope" not in token  # exactly as requested (RFC 6749 §5.1)
    assert session.get(url(server, "/api/admin")).status_code == 403
    rotated = session.refresh_token(url(server, LOGIN))
    assert rotated.get("scope", "read") == "read"  # authlib asks for its scope again
    assert session.get(url(server, "/api/admin")).status_code == 403
    with authlib_session() as full:
        full.fetch_token(url(server, LOGIN), username="root", password=ADMIN_PASSWORD)
        assert full.get(url(server, "/api/admin")).status_code == 200


# == requests-oauthlib and oauthlib =============================================================
@pytest.fixture
def insecure_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses plain HTTP unless told; the test server listens on 127.0.0.1 only.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def test_requests_oauthlib_legacy_client_fetch_and_auto_refresh(server: Server, insecure_transport: None) -> None:
    from oauthlib.oauth2 import LegacyApplicationClient
    from requests_oauthlib import OAuth2Session

    with OAuth2Session(client=LegacyApplicationClient(client_id="any-client")) as session:
        token = session.fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD,
                                    include_client_id=True)
        assert token["token_type"] == "Bearer" and token["refresh_token"]
        assert session.get(url(server, "/api/me")).json()["user"] == "alice"

    updates: list[dict[str, Any]] = []
    with OAuth2Session(client=LegacyApplicationClient(client_id="any-client"), token=expired(token),
                       auto_refresh_url=url(server, LOGIN), token_updater=updates.append) as session:
        me = session.get(url(server, "/api/me"))
        assert me.status_code == 200 and me.json()["user"] == "alice"
        assert len(updates) == 1 and updates[0]["refresh_token"] != token["refresh_token"]
        assert session.get(url(server, "/api/me")).status_code == 200 and len(updates) == 1


def test_oauthlib_error_classes(server: Server, insecure_transport: None) -> None:
    from oauthlib.oauth2 import BackendApplicationClient, LegacyApplicationClient
    from oauthlib.oauth2.rfc6749.errors import (
        InvalidGrantError,
        InvalidScopeError,
        UnauthorizedClientError,
        UnsupportedGrantTypeError,
    )
    from requests_oauthlib import OAuth2Session

    class UnknownGrantClient(LegacyApplicationClient):
        grant_type = "foo"

    def session(client: Any = None, **kwargs: Any) -> OAuth2Session:
        return OAuth2Session(client=client or LegacyApplicationClient(client_id="any-client"), **kwargs)

    # Code that catches InvalidGrantError to send the user to sign in again now runs.
    with session() as s, pytest.raises(InvalidGrantError):
        s.fetch_token(url(server, LOGIN), username="alice", password="wrong-password")
    with session() as s:
        token = s.fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD)
        s.refresh_token(url(server, LOGIN))
        with pytest.raises(InvalidGrantError):  # the spent refresh token
            s.refresh_token(url(server, LOGIN), refresh_token=token["refresh_token"])
    with session(UnknownGrantClient(client_id="any-client")) as s, pytest.raises(UnsupportedGrantTypeError):
        s.fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD)
    with session(BackendApplicationClient(client_id="any-client")) as s, pytest.raises(UnauthorizedClientError):
        s.fetch_token(url(server, LOGIN), client_secret="nothing-registered")
    with session(scope=["admin"]) as s, pytest.raises(InvalidScopeError):
        s.fetch_token(url(server, LOGIN), username="alice", password=ALICE_PASSWORD, scope=["admin"])


@pytest.mark.parametrize("error_format", ["json", "problem"])
def test_oauthlib_reads_our_error_bodies_in_either_format(users_file: str, error_format: str) -> None:
    from oauthlib.oauth2.rfc6749.errors import InvalidGrantError, UnsupportedGrantTypeError
    from oauthlib.oauth2.rfc6749.parameters import parse_token_response

    from jwt_wsgi import JWTMiddleware

    client = BufferedClient(JWTMiddleware(canary_app, secret=SECRET, users_file=users_file, error_format=error_format))
    wrong = client.post(LOGIN, data={"grant_type": "password", "username": "alice", "password": "wrong"})
    with pytest.raises(InvalidGrantError):
        parse_token_response(wrong.get_data(as_text=True))
    unknown = client.post(LOGIN, data={"grant_type": "foo", "username": "alice", "password": ALICE_PASSWORD})
    with pytest.raises(UnsupportedGrantTypeError):
        parse_token_response(unknown.get_data(as_text=True))


# == the examples under waitress and uWSGI ========================================================
EXAMPLES = {"plain": "examples.plain_wsgi:application", "flask": "examples.flask_app:app"}


def _waitress(target: str) -> list[str]:
    return [str(BIN / "waitress-serve"), "--listen=127.0.0.1:{port}", "--threads=4", target]


def _uwsgi(target: str) -> list[str]:
    uwsgi = BIN / "uwsgi"
    # --http: uWSGI's HTTP router in front of 2 worker processes, as deployed without nginx.
    return [str(uwsgi), "--strict", "--http", "127.0.0.1:{port}", "--master", "--processes", "2",
            "--threads", "2", "--module", target, "--need-app", "--die-on-term",
            "--virtualenv", str(Path(PYTHON).parent.parent), "--disable-logging"]


@pytest.fixture(scope="module", params=[
    pytest.param((kind, example), id=f"{kind}-{example}")
    for kind in ("waitress", "uwsgi") for example in EXAMPLES
])
def other_server(request: pytest.FixtureRequest, state: Path) -> Iterator[tuple[str, Server]]:
    kind, example = request.param
    command = _waitress if kind == "waitress" else _uwsgi
    if not Path(command("x")[0]).exists():
        from tests._services import unavailable

        unavailable(f"{kind} is not installed (pip install -e '.[dev]')")
    server = Server(command(EXAMPLES[example]), env=_env(state, f"{kind}-{example}"), log_dir=state,
                    name=f"{kind}-{example}", ready_path="/api/health")
    with server:
        yield kind, server
    assert "Traceback" not in server.output(), server.log_tail()


def test_examples_login_protected_call_logout(other_server: tuple[str, Server]) -> None:
    _, server = other_server
    assert get(server.base_url, "/api/me").status == 401
    tokens = login(server.base_url, "alice", ALICE_PASSWORD)
    me = get(server.base_url, "/api/me", headers=bearer(tokens["access_token"]))
    server.check(me.status == 200 and me.json()["user"] == "alice", str(me))
    form = post(server.base_url, LOGIN, body=f"grant_type=password&username=alice&password={ALICE_PASSWORD}&".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"})
    server.check(form.status == 200, f"form login: {form}")
    logout = post(server.base_url, LOGOUT, headers=bearer(tokens["access_token"]))
    server.check(logout.status == 204, str(logout))
    after = get(server.base_url, "/api/me", headers=bearer(tokens["access_token"]))
    server.check(after.status == 401 and after.json()["error"] == "token_revoked", str(after))


def _chunked_login(server: Server) -> tuple[int, bytes]:
    body = f"username=alice&password={ALICE_PASSWORD}".encode()
    raw = (b"POST /auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
           + f"{len(body):x}".encode() + b"\r\n" + body + b"\r\n0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), payload


def test_chunked_login_is_read_or_refused_with_the_reason(other_server: tuple[str, Server]) -> None:
    kind, server = other_server
    status, payload = _chunked_login(server)
    if kind == "uwsgi":
        # The HTTP router passes no length and no end-of-input promise: the body is not ours to read.
        server.check(status == 411 and b"length_required" in payload, f"{status} {payload!r}")
    else:
        server.check(status == 200 and b"access_token" in payload, f"{status} {payload!r}")


def test_chunked_login_under_gunicorn_is_read(server: Server) -> None:
    status, payload = _chunked_login(server)
    assert status == 200 and b"access_token" in payload, payload


@pytest.fixture(scope="module")
def shared_server(state: Path) -> Iterator[Server]:
    """The same server with the default refresh_reuse_interval."""
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", "examples.plain_wsgi:application"],
                    env=_env(state, "gunicorn-shared"), log_dir=state, name="gunicorn-shared",
                    ready_path="/api/health")
    with server:
        yield server
    assert "Traceback" not in server.output()


def test_authlib_session_shared_by_8_threads_survives_its_refresh(shared_server: Server) -> None:
    """Eight threads find the token expired at once and refresh with the same refresh token; with
    ``refresh_reuse_interval`` they all get the same successor instead of revoking the family."""
    import threading

    from authlib.integrations.requests_client import OAuth2Session

    with OAuth2Session() as first:
        token = first.fetch_token(url(shared_server, LOGIN), username="alice", password=ALICE_PASSWORD)
    with OAuth2Session(token=expired(token), token_endpoint=url(shared_server, LOGIN)) as session:
        start = threading.Barrier(8)
        statuses: list[int | str] = []

        def call() -> None:
            try:
                start.wait(timeout=10)
                statuses.append(session.get(url(shared_server, "/api/me"), timeout=10).status_code)
            except Exception as exc:  # an OAuthError from a refresh refused as reuse, for one
                statuses.append(repr(exc))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert statuses == [200] * 8
        # Still one live chain: the session keeps working and refreshes again later.
        assert session.get(url(shared_server, "/api/me")).status_code == 200
        session.token = expired(session.token)
        assert session.get(url(shared_server, "/api/me")).status_code == 200
