"""The application behind ``jwt-wsgi demo``: a plain WSGI app that knows nothing about JWTs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .responses import StartResponse

INDEX = """jwt_wsgi demo

  GET  /api/health      public
  GET  /api/me          needs a token: shows the verified claims
  GET  /api/admin       needs a token with the 'admin' scope
  POST /auth/login      {"username": ..., "password": ...} -> tokens
  POST /auth/refresh    {"refresh_token": ...} -> new tokens
  POST /auth/logout     Authorization: Bearer ... -> revoked
"""


def demo_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Routes on ``PATH_INFO``; reads the caller from ``jwt_wsgi.claims`` and ``REMOTE_USER``."""
    path = environ.get("PATH_INFO", "")
    if path == "/":
        return _send(start_response, "200 OK", INDEX.encode(), "text/plain; charset=utf-8")
    if path == "/api/health":
        return _json(start_response, "200 OK", {"status": "ok"})
    if path == "/api/me":
        claims = environ.get("jwt_wsgi.claims")
        return _json(start_response, "200 OK", {"user": environ.get("REMOTE_USER"), "claims": claims})
    if path == "/api/admin":
        return _json(start_response, "200 OK", {"admin": environ.get("REMOTE_USER")})
    return _json(start_response, "404 Not Found", {"error": "not_found"})


def _json(start_response: StartResponse, status: str, data: Any) -> Iterable[bytes]:
    return _send(start_response, status, json.dumps(data).encode(), "application/json")


def _send(start_response: StartResponse, status: str, body: bytes, content_type: str) -> Iterable[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
