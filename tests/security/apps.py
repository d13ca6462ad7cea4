"""The two downstream applications the adversarial suite attacks, behind the middleware.

TEST-ONLY. Importable by gunicorn (``tests.security.apps:werkzeug_stack``) as well as by pytest.

- :func:`werkzeug_router_app` routes with a Werkzeug :class:`~werkzeug.routing.Map` (defaults:
  ``merge_slashes=True``, so ``//admin/panel`` *matches* ``/admin/panel``), on ``PATH_INFO``.
- :func:`webob_router_app` routes on WebOb's ``req.path`` (``SCRIPT_NAME + PATH_INFO``), honours
  ``X-HTTP-Method-Override`` and forwards ``/public?next=PATH`` internally through the whole
  stack (threat model §3.2, §3.6).

Both serve the canaries only on the canonical protected paths ``/api/me`` (``CANARY-API``) and
``/admin`` / ``/admin/panel`` (``CANARY-ADMIN``), for *every* method (the handlers do not look at
the method, as many bare WSGI handlers do not), plus the public ``/public`` and ``/administrator``.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

with warnings.catch_warnings():
    # WebOb 1.8 imports the stdlib ``cgi`` module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    from webob import Request as WebObRequest
    from webob import Response as WebObResponse
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.security import check_password_hash, generate_password_hash

from jwt_wsgi import JWTMiddleware
from tests.conftest import ADMIN_PASSWORD, ALICE_PASSWORD, CANARY_ADMIN, CANARY_API, FAST_HASH, SECRET

PROTECT = ["/api", "/admin"]
PUBLIC_BODY = b"PUBLIC-OK"
ADMINISTRATOR_BODY = b"ADMINISTRATOR-PUBLIC"

# TEST-ONLY users: alice / P@ss-alice, root, and "admin" for look-alike user names (threat model §5.4).
ADMIN_USER_PASSWORD = "P@ss-admin-user"
_USERS = {
    "alice": (generate_password_hash(ALICE_PASSWORD, method=FAST_HASH), {"scope": "read"}),
    "root": (generate_password_hash(ADMIN_PASSWORD, method=FAST_HASH), {"scope": "read admin"}),
    "admin": (generate_password_hash(ADMIN_USER_PASSWORD, method=FAST_HASH), {"scope": "read admin"}),
}
_DUMMY = generate_password_hash("no-such-user-dummy", method=FAST_HASH)


def authenticate(username: str, password: str) -> Mapping[str, Any] | None:
    """The ``authenticate`` protocol with the same hash work for unknown users."""
    entry = _USERS.get(username)
    if entry is None:
        check_password_hash(_DUMMY, password)
        return None
    return dict(entry[1]) if check_password_hash(entry[0], password) else None


def _body(endpoint: str, environ: Mapping[str, Any]) -> bytes:
    if endpoint == "api":
        return CANARY_API + b" " + json.dumps({"user": environ.get("REMOTE_USER")}).encode()
    if endpoint == "admin":
        return CANARY_ADMIN + b" " + json.dumps({"user": environ.get("REMOTE_USER")}).encode()
    if endpoint == "administrator":
        return ADMINISTRATOR_BODY
    return PUBLIC_BODY + b" " + json.dumps({"user": environ.get("REMOTE_USER")}).encode()


# -- (a) Werkzeug Map router ------------------------------------------------------------------
URL_MAP = Map(
    [
        Rule("/api/me", endpoint="api"),
        Rule("/admin", endpoint="admin"),
        Rule("/admin/panel", endpoint="admin"),
        Rule("/public", endpoint="public"),
        Rule("/administrator", endpoint="administrator"),
    ]
)


def werkzeug_router_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    adapter = URL_MAP.bind_to_environ(environ)
    try:
        endpoint, _ = adapter.match()
    except HTTPException as exc:  # 404, 405, and the 308 of merge_slashes / strict_slashes
        return exc(environ, start_response)  # type: ignore[no-any-return]
    body = _body(endpoint, environ)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# -- (b) WebOb router on SCRIPT_NAME + PATH_INFO ----------------------------------------------
ROUTES = {"/api/me": "api", "/admin": "admin", "/admin/panel": "admin", "/public": "public",
          "/administrator": "administrator"}


def webob_router_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    req = WebObRequest(environ)
    try:
        path = req.path
    except UnicodeDecodeError:  # the app's own strictness, so that NEVER-500 measures the middleware
        return WebObResponse(status=400, body=b"bad path")(environ, start_response)  # type: ignore[no-any-return]
    endpoint = ROUTES.get(path)
    if endpoint is None:
        return WebObResponse(status=404, body=b"not found")(environ, start_response)  # type: ignore[no-any-return]
    # The application honours a method override (the middleware must not care: threat model §3.2).
    _effective_method = req.headers.get("X-HTTP-Method-Override", req.method)
    if endpoint == "public" and "next" in req.GET:
        # An internal forward goes through the whole stack again, with the caller's credentials.
        inner = WebObRequest.blank(req.GET["next"])
        if "Authorization" in req.headers:
            inner.headers["Authorization"] = req.headers["Authorization"]
        forwarded = inner.get_response(webob_stack)
        body = b"FORWARDED " + forwarded.status.encode() + b" " + forwarded.body
        return WebObResponse(status=forwarded.status_code, body=body)(environ, start_response)  # type: ignore[no-any-return]
    return WebObResponse(body=_body(endpoint, environ), content_type="text/plain")(environ, start_response)  # type: ignore[no-any-return]


def protect(app: Callable[..., Iterable[bytes]], **options: Any) -> JWTMiddleware:
    """``app`` behind the middleware as the attack tests configure it (protect /api and /admin)."""
    options.setdefault("secret", SECRET)
    options.setdefault("protect", PROTECT)
    options.setdefault("authenticate", authenticate)
    return JWTMiddleware(app, **options)


werkzeug_stack = protect(werkzeug_router_app)
webob_stack = protect(webob_router_app)

APPS: dict[str, Callable[..., Iterable[bytes]]] = {"werkzeug": werkzeug_router_app, "webob": webob_router_app}
