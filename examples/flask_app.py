"""A Flask application behind jwt_wsgi: the views only read who the caller is.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app

JSON clients send ``Authorization: Bearer ...``; a browser opening http://127.0.0.1:8000/dashboard
is sent to the login page and comes back with the token in an HttpOnly cookie. Forms that change
something (here: "Say hello" and "Sign out") carry the token's ``csrf`` claim as ``csrf_token``.
"""

from __future__ import annotations

import sys

from flask import Flask, redirect, request

from jwt_wsgi import ConfigurationError, Settings
from jwt_wsgi.contrib.flask import current_claims, current_user, protect, requires

try:
    from examples.dashboard_page import render_dashboard
except ImportError:  # run as a script: python examples/<name>.py
    from dashboard_page import render_dashboard  # type: ignore[no-redef]

app = Flask(__name__)


@app.get("/")
def index():
    return {"hello": current_user() or "anonymous"}


@app.get("/api/health")
def health():
    return {"status": "ok"}


@app.get("/api/me")
def me():
    return {"user": current_user(), "claims": current_claims()}


@app.get("/api/items/<int:item_id>")
def item(item_id: int):
    return {"item": item_id, "owner": current_user()}


@app.get("/api/admin")
@requires("admin")
def admin():
    return {"admin": current_user()}


@app.get("/dashboard")
def dashboard():
    # Protected: the middleware sent anyone without a valid cookie (or bearer token) to sign in.
    claims = current_claims() or {}
    notice = "The server heard your hello." if request.args.get("said") == "hello" else ""
    body = render_dashboard(current_user() or "", str(claims.get("csrf", "")), notice)
    return body, 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}


@app.post("/dashboard/hello")
def say_hello():
    # Reached only with a valid token and, for a cookie, the matching csrf_token from this site.
    return redirect("/dashboard?said=hello", 303)


try:
    protect(app, Settings.from_env(None, protect=["/api", "/dashboard"], public=["/api/health"],
                                    token_sources=["header", "cookie"]))
except ConfigurationError as exc:
    # One line when run as a script; under gunicorn the worker fails to boot and the master stops.
    if __name__ == "__main__":
        sys.exit(f"flask_app: {exc}")
    raise

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
