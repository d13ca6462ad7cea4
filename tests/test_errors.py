"""The error tree (jwt_wsgi.errors): every class's status and codes, its branch, and what a
store outage looks like on the sign-in page and the JSON login (a server error, never a
credential error)."""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

import jwt_wsgi
from jwt_wsgi import errors
from jwt_wsgi.browser import CSRFFailed
from jwt_wsgi.errors import (
    AuthError,
    BadRequest,
    CheckFailed,
    ClientError,
    ExpiredToken,
    Forbidden,
    FreshTokenRequired,
    InsufficientScope,
    InternalError,
    InvalidCredentials,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    LengthRequired,
    MethodNotAllowed,
    MissingToken,
    PayloadTooLarge,
    RevokedToken,
    RoleRequired,
    ServerError,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    Unauthenticated,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedMediaType,
    UnsupportedTokenType,
    UserNotFound,
)

from ._services import unavailable
from .conftest import ALICE_PASSWORD
from .redis_server import running_redis

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
LOGIN = "/auth/login"


def _make(cls: type[AuthError]) -> AuthError:
    if cls is MethodNotAllowed:
        return MethodNotAllowed("POST")
    if cls is TooManyRequests:
        return TooManyRequests(7)
    return cls()


# class, status, code, RFC 6750 code, RFC 6749 §5.2 code, WWW-Authenticate, parents (nearest first)
TREE = [
    (ClientError, 400, "client_error", None, None, False, [AuthError]),
    (Unauthenticated, 401, "unauthorized", None, None, True, [ClientError]),
    (MissingToken, 401, "missing_token", None, None, True, [Unauthenticated, ClientError]),
    (InvalidToken, 401, "invalid_token", "invalid_token", None, True, [Unauthenticated, ClientError]),
    (ExpiredToken, 401, "token_expired", "invalid_token", None, True, [InvalidToken, Unauthenticated]),
    (RevokedToken, 401, "token_revoked", "invalid_token", None, True, [InvalidToken, Unauthenticated]),
    (UserNotFound, 401, "user_not_found", "invalid_token", None, True, [InvalidToken, Unauthenticated]),
    (FreshTokenRequired, 401, "fresh_token_required", "invalid_token", None, True, [InvalidToken, Unauthenticated]),
    (InvalidGrant, 401, "invalid_grant", None, "invalid_grant", True, [Unauthenticated, ClientError]),
    (InvalidCredentials, 401, "invalid_grant", None, "invalid_grant", True, [InvalidGrant, Unauthenticated]),
    (InvalidRequest, 400, "invalid_request", "invalid_request", "invalid_request", True, [ClientError]),
    (BadRequest, 400, "invalid_request", None, "invalid_request", False, [InvalidRequest, ClientError]),
    (UnsupportedGrantType, 400, "unsupported_grant_type", None, "unsupported_grant_type", False, [ClientError]),
    (UnauthorizedClient, 400, "unauthorized_client", None, "unauthorized_client", False, [ClientError]),
    (InvalidScope, 400, "invalid_scope", None, "invalid_scope", False, [ClientError]),
    (UnsupportedTokenType, 400, "unsupported_token_type", None, "unsupported_token_type", False, [ClientError]),
    (Forbidden, 403, "forbidden", None, None, False, [ClientError]),
    (InsufficientScope, 403, "insufficient_scope", "insufficient_scope", None, True, [Forbidden, ClientError]),
    (RoleRequired, 403, "insufficient_scope", "insufficient_scope", None, True, [InsufficientScope, Forbidden]),
    (CheckFailed, 403, "insufficient_scope", "insufficient_scope", None, True, [InsufficientScope, Forbidden]),
    (CSRFFailed, 403, "csrf_failed", None, None, False, [Forbidden, ClientError]),
    (MethodNotAllowed, 405, "method_not_allowed", None, None, False, [ClientError]),
    (LengthRequired, 411, "length_required", None, None, False, [ClientError]),
    (PayloadTooLarge, 413, "payload_too_large", None, None, False, [ClientError]),
    (UnsupportedMediaType, 415, "unsupported_media_type", None, None, False, [ClientError]),
    (TooManyRequests, 429, "too_many_requests", None, None, False, [ClientError]),
    (ServerError, 500, "server_error", None, None, False, [AuthError]),
    (InternalError, 500, "internal_error", None, None, False, [ServerError]),
    (ServiceUnavailable, 503, "service_unavailable", None, None, False, [ServerError]),
    (StoreUnavailable, 503, "service_unavailable", None, None, False, [ServiceUnavailable, ServerError]),
]


@pytest.mark.parametrize(("cls", "status", "code", "rfc6750", "rfc6749", "challenge", "parents"),
                         [pytest.param(*row, id=row[0].__name__) for row in TREE])
def test_error_class_table(cls, status, code, rfc6750, rfc6749, challenge, parents):
    error = _make(cls)
    assert (error.status, error.code, error.rfc6750, error.rfc6749, error.challenge) == (
        status, code, rfc6750, rfc6749, challenge)
    assert cls.__mro__[1] is parents[0]
    assert all(issubclass(cls, parent) for parent in parents)
    # Exactly one branch: the caller's fault or ours.
    assert issubclass(cls, ClientError) != issubclass(cls, ServerError)
    assert issubclass(cls, ClientError) == (400 <= status < 500)
    assert error.message and "\n" not in error.message


def test_every_error_class_is_in_the_table_and_exported():
    defined = {obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, AuthError) and obj is not AuthError}
    assert defined <= {row[0] for row in TREE}
    for cls in [*defined, AuthError, errors.ConfigurationError]:
        assert cls.__name__ in jwt_wsgi.__all__ and getattr(jwt_wsgi, cls.__name__) is cls


def test_server_errors_are_never_caught_as_credential_errors():
    """The bug: ServiceUnavailable and InternalError derived from the 400 error class."""
    for server_side in (ServiceUnavailable, InternalError, StoreUnavailable):
        assert not issubclass(server_side, (ClientError, InvalidRequest, BadRequest, InvalidCredentials))


def test_store_unavailable_keeps_its_detail_out_of_the_answer():
    error = StoreUnavailable("Redis store redis://127.0.0.1:1/0: ConnectionError: refused")
    assert str(error) == error.detail == "Redis store redis://127.0.0.1:1/0: ConnectionError: refused"
    assert error.message == ServiceUnavailable.message
    assert error.headers == (("Retry-After", "5"),)


# -- a store outage, end to end through WSGI ------------------------------------------------------
class Outage:
    """A real store that a test can take down: a stopped redis-server or a locked SQLite file."""

    def __init__(self, url: str, down, up) -> None:
        self.url, self.down, self.up = url, down, up


@pytest.fixture(params=["redis", "sqlite"])
def outage(request, tmp_path: Path) -> Iterator[Outage]:
    if request.param == "redis":
        if shutil.which("redis-server") is None:
            unavailable("redis-server is not installed (apt-get install redis-server)")
        (tmp_path / "redis").mkdir()
        with running_redis(tmp_path / "redis") as server:
            yield Outage(server.url, server.stop, server.start)
        return
    path = tmp_path / "state.db"
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        # Another process holding the write lock past the store's timeout: every write fails.
        yield Outage(f"sqlite:///{path}?timeout=0.05", lambda: holder.execute("BEGIN EXCLUSIVE"),
                     lambda: holder.execute("ROLLBACK"))
    finally:
        holder.close()


def _sign_in_form(client) -> tuple[str, str]:
    page = client.get(LOGIN, headers=HTML)
    assert page.status_code == 200
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    jar = SimpleCookie()
    for header in page.headers.getlist("Set-Cookie"):
        jar.load(header)
    return csrf, f"login_csrf={jar['login_csrf'].value}"


def _post_form(client, csrf: str, cookie: str, password: str = ALICE_PASSWORD):
    return client.post(LOGIN, data={"username": "alice", "password": password, "csrf_token": csrf, "next": "/app"},
                       headers={**HTML, "Origin": "http://localhost"}, environ_overrides={"HTTP_COOKIE": cookie})


@pytest.mark.slow
def test_store_down_sign_in_page_says_unavailable_not_wrong_password(make_client, outage: Outage):
    client = make_client(token_sources=["header", "cookie"], store=outage.url)
    csrf, cookie = _sign_in_form(client)
    assert _post_form(client, csrf, cookie).status_code == 303  # the store is up: signed in
    csrf, cookie = _sign_in_form(client)
    outage.down()
    try:
        page = _post_form(client, csrf, cookie)
    finally:
        outage.up()
    assert page.status_code == 503
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Retry-After"] == "5"
    assert b"The sign-in service is unavailable. Please try again in a moment." in page.data
    assert b"Invalid username or password" not in page.data
    assert b'value="alice"' in page.data  # the person does not have to type the name again
    # Once the store is back, the same person signs in.
    csrf, cookie = _sign_in_form(client)
    assert _post_form(client, csrf, cookie).status_code == 303


@pytest.mark.slow
def test_store_down_json_login_is_503(make_client, outage: Outage):
    client = make_client(store=outage.url)
    outage.down()
    try:
        good = client.post(LOGIN, json={"username": "alice", "password": ALICE_PASSWORD})
        wrong = client.post(LOGIN, data={"username": "alice", "password": "not-the-password"})
    finally:
        outage.up()
    for response in (good, wrong):
        assert response.status_code == 503
        assert response.json == {"error": "service_unavailable", "message": "Authentication is temporarily unavailable"}
        assert response.headers["Retry-After"] == "5" and "WWW-Authenticate" not in response.headers
    assert client.post(LOGIN, json={"username": "alice", "password": ALICE_PASSWORD}).status_code == 200
