"""Single-page apps sign in with cookies: a JSON login with ``"cookies": true`` sets the cookies the
HTML form sets (HttpOnly token, readable CSRF token, refresh cookie), refresh and logout keep and
clear them, and ``login_cookies`` / ``logout_cookies`` do the same from the application's own view.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jwt_wsgi import ConfigurationError, JWTMiddleware

from .conftest import ALICE_PASSWORD, SECRET, BufferedClient, canary_app


def _client(users_file: str, app: Any = canary_app, **options: Any) -> BufferedClient:
    options.setdefault("token_sources", ["header", "cookie"])
    middleware = JWTMiddleware(app, secret=SECRET, protect=["/api"], users_file=users_file, **options)
    client = BufferedClient(middleware, use_cookies=True)
    client.middleware = middleware  # type: ignore[attr-defined]
    return client


def _set_cookies(response: Any) -> dict[str, str]:
    """name -> the whole Set-Cookie value."""
    return {v.split("=", 1)[0]: v for k, v in response.headers.items() if k == "Set-Cookie"}


def test_json_login_with_cookies_signs_the_page_in(users_file: str) -> None:
    client = _client(users_file)
    response = client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD, "cookies": True})
    assert response.status_code == 200
    body = response.json
    assert "access_token" not in body and "refresh_token" not in body  # HttpOnly: never handed to scripts
    assert body["token_type"] == "Bearer" and body["expires_in"] == 1800 and body["csrf_token"]
    cookies = _set_cookies(response)
    assert "HttpOnly" in cookies["access_token"] and "HttpOnly" not in cookies["csrf_token"]
    assert f"csrf_token={body['csrf_token']};" in cookies["csrf_token"]
    assert "Path=/auth/refresh" in cookies["refresh_token"] and "SameSite=Strict" in cookies["refresh_token"]

    me = client.get("/api/me")  # the cookie alone
    assert me.status_code == 200 and json.loads(me.data.split(b" ", 1)[1])["user"] == "alice"
    # Unsafe methods need the CSRF token echoed: another site's request has no way to read it.
    assert client.post("/api/things").status_code == 403
    assert client.post("/api/things", headers={"X-CSRF-Token": body["csrf_token"]}).status_code == 200


def test_refresh_and_logout_keep_and_clear_the_cookies(users_file: str) -> None:
    client = _client(users_file)
    csrf = client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD,
                                            "cookies": True}).json["csrf_token"]
    refreshed = client.post("/auth/refresh", json={})  # the refresh cookie, sent to its own path only
    assert refreshed.status_code == 200
    assert {"access_token", "csrf_token", "refresh_token"} <= set(_set_cookies(refreshed))
    assert client.get("/api/me").status_code == 200

    assert client.post("/auth/logout", json={}).status_code == 403  # no CSRF token: refused
    out = client.post("/auth/logout", json={}, headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert all("Max-Age=0" in v for v in _set_cookies(out).values()) and len(_set_cookies(out)) == 3
    assert client.get("/api/me").status_code == 401


@pytest.mark.parametrize(("send", "options", "message"), [
    pytest.param({"json": {"cookies": "yes"}}, {}, "true or false", id="not-a-boolean"),
    pytest.param({"json": {"cookies": True}}, {"token_sources": ["header"]}, "cookie token source",
                 id="cookie-source-off"),
    pytest.param({"data": {"cookies": "true"}}, {}, "JSON body only", id="urlencoded"),
])
def test_cookie_login_mistakes_are_400(users_file: str, send: dict[str, Any], options: dict[str, Any],
                                       message: str) -> None:
    client = _client(users_file, **options)
    for body in send.values():
        body.update(username="alice", password=ALICE_PASSWORD)
    if "data" in send:
        send["data"] = {k: str(v).lower() if isinstance(v, bool) else v for k, v in send["data"].items()}
    response = client.post("/auth/login", **send)
    assert response.status_code == 400, response.data
    assert message in response.json["message"]
    assert not _set_cookies(response)


def test_login_cookies_from_a_custom_view(users_file: str) -> None:
    # A magic-link view signs carol in with the middleware's cookies; a logout view clears them.
    holder: dict[str, JWTMiddleware] = {}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/magic":
            headers, body = holder["mw"].login_cookies(environ, "carol", {"scope": "read"})
            data = json.dumps(body).encode()
            start_response("200 OK", [("Content-Type", "application/json"), *headers])
            return [data]
        if path == "/bye":
            start_response("204 No Content", holder["mw"].logout_cookies(environ))
            return []
        return list(canary_app(environ, start_response))

    client = _client(users_file, app=app)
    holder["mw"] = client.middleware  # type: ignore[attr-defined]
    magic = client.get("/magic")
    assert magic.status_code == 200 and magic.json["csrf_token"] and "access_token" not in magic.json
    me = client.get("/api/me")
    claims = json.loads(me.data.split(b" ", 1)[1])["claims"]
    assert me.status_code == 200 and claims["sub"] == "carol" and claims["scope"] == "read"
    assert client.post("/api/x", headers={"X-CSRF-Token": magic.json["csrf_token"]}).status_code == 200
    assert client.get("/bye").status_code == 204
    assert client.get("/api/me").status_code == 401


def test_login_cookies_needs_the_cookie_source(users_file: str) -> None:
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], users_file=users_file)
    with pytest.raises(ConfigurationError, match="cookie token source"):
        middleware.login_cookies({"wsgi.url_scheme": "http"}, "carol")
