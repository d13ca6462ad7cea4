"""Shared fixtures. TEST-ONLY secrets and passwords below: never use them anywhere else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.validate import validator

import jwt
import pytest
from werkzeug.security import generate_password_hash
from werkzeug.test import Client

from jwt_wsgi import JWTMiddleware

# TEST-ONLY values (the user the attack tests log in as: alice / P@ss-alice).
SECRET = "test-only-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
OTHER_SECRET = "another-test-secret-9876543210-zyxwvutsrqponmlkjihgfedcba"
ALICE_PASSWORD = "P@ss-alice"
ADMIN_PASSWORD = "P@ss-admin-!"
FAST_HASH = "pbkdf2:sha256:1000"  # fast for tests; production uses Werkzeug's default (scrypt)

CANARY_API = b"CANARY-API"
CANARY_ADMIN = b"CANARY-ADMIN"


def canary_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Serves canaries on its protected routes and echoes what the middleware told it."""
    path = environ.get("PATH_INFO", "")
    if path == "/api/me" or path.startswith("/api/"):
        body = CANARY_API + b" " + json.dumps({"user": environ.get("REMOTE_USER"), "auth": environ.get("AUTH_TYPE"),
                                                 "claims": environ.get("jwt_wsgi.claims"), "path": path}).encode()
    elif path.startswith("/admin"):
        body = CANARY_ADMIN
    else:
        body = json.dumps({"public": path, "user": environ.get("REMOTE_USER"),
                           "claims": environ.get("jwt_wsgi.claims"),
                           "forged": sorted(k for k in environ if k.startswith("jwt_wsgi.")
                                         and k not in ("jwt_wsgi.errors", "jwt_wsgi.claims"))}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def J(obj: Any) -> str:
    """base64url (no padding) of compact JSON: ``J(x)`` in the attack tests."""
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def HS(key: str | bytes, header: dict[str, Any], payload: dict[str, Any], digest: Any = hashlib.sha256) -> str:
    """A token built from raw bytes, without PyJWT's encoder: HMAC over ``J(header).J(payload)``."""
    key = key.encode() if isinstance(key, str) else key
    signing_input = f"{J(header)}.{J(payload)}"
    return signing_input + "." + b64(hmac.new(key, signing_input.encode(), digest).digest())


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"sub": "alice", "iat": now, "exp": now + 600, "jti": "jti-" + str(now), "type": "access"}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: str | bytes = SECRET, alg: str = "HS256", headers: dict[str, Any] | None = None, **extra: Any) -> str:
    return jwt.encode(claims(**extra), key, algorithm=alg, headers=headers)


class BufferedClient(Client):
    """Reads and closes every response, as a server does (wsgiref.validate insists), and sends
    ``Cookie`` headers exactly as given (no cookie jar) unless ``use_cookies=True``."""

    def __init__(self, application: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("use_cookies", False)
        super().__init__(application, *args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


#: Fixtures that start a process: a test that uses one, even through another fixture, is ``slow``
#: (``make test-fast`` leaves it out) whether or not it says so itself.
PROCESS_FIXTURES = frozenset({"redis_server", "redis_cluster", "redis_sentinel", "wire"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def users_file(tmp_path: Any) -> str:
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": {
        "alice": {"password": generate_password_hash(ALICE_PASSWORD, method=FAST_HASH), "claims": {"scope": "read"}},
        "root": {"password": generate_password_hash(ADMIN_PASSWORD, method=FAST_HASH),
                 "claims": {"scope": "read admin"}},
    }}))
    return str(path)


@pytest.fixture
def make_client(users_file: str) -> Callable[..., BufferedClient]:
    """A Werkzeug client for the canary app behind a middleware, validated on both sides (PEP 3333)."""

    def make(app: Any = canary_app, **options: Any) -> BufferedClient:
        options.setdefault("secret", SECRET)
        options.setdefault("protect", ["/api", "/admin"])
        if "authenticate" not in options:
            options.setdefault("users_file", users_file)
        middleware = JWTMiddleware(validator(app), **options)
        client = BufferedClient(validator(middleware))
        client.middleware = middleware  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


def login(client: Client, username: str = "alice", password: str = ALICE_PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.data
    return response.json  # type: ignore[no-any-return]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class FakeClock:
    """An injectable clock (``JWTMiddleware(..., clock=clock)``): tests move time, never sleep."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
