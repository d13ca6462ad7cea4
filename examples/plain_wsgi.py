"""A plain WSGI application behind jwt_wsgi: no framework at all.

Run it (see the README for the users file):

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    python examples/plain_wsgi.py                                  # wsgiref, one process
    gunicorn -c examples/gunicorn.conf.py examples.plain_wsgi:application
"""

from __future__ import annotations

import json
import sys

from jwt_wsgi import ConfigurationError, JWTMiddleware, get_claims, requires


def _json(start_response, status, data):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@requires("admin")
def admin(environ, start_response):
    return _json(start_response, "200 OK", {"admin": environ["REMOTE_USER"]})


def app(environ, start_response):
    """Knows nothing about tokens: reads REMOTE_USER and the claims the middleware verified."""
    path = environ.get("PATH_INFO", "")
    if path == "/":
        return _json(start_response, "200 OK", {"hello": environ.get("REMOTE_USER") or "anonymous"})
    if path == "/api/health":
        return _json(start_response, "200 OK", {"status": "ok"})
    if path == "/api/me":
        return _json(start_response, "200 OK", {"user": environ["REMOTE_USER"], "claims": get_claims(environ)})
    if path == "/api/admin":
        return admin(environ, start_response)
    return _json(start_response, "404 Not Found", {"error": "not_found"})


def make_app(global_conf, **local_conf):
    """PasteDeploy ``call:`` factory for the bare application (examples/paste.ini)."""
    return app


def build():
    # Secret, users file and store come from JWT_WSGI_* variables; the shape of the app from here.
    return JWTMiddleware.from_env(app, protect=["/api"], public=["/api/health"])


try:
    application = build()
except ConfigurationError as exc:
    # One line when run as a script; under gunicorn the worker fails to boot and the master stops.
    if __name__ == "__main__":
        sys.exit(f"plain_wsgi: {exc}")
    raise

if __name__ == "__main__":
    from wsgiref.simple_server import make_server

    host, port = "127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    print(f"serving on http://{host}:{port}", flush=True)
    make_server(host, port, application).serve_forever()
