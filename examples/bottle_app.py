"""A Bottle application behind jwt_wsgi.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    gunicorn -c examples/gunicorn.conf.py examples.bottle_app:application

JSON clients send ``Authorization: Bearer ...``; a browser opening http://127.0.0.1:8000/dashboard
is sent to the login page and comes back with the token in an HttpOnly cookie. Forms that change
something (here: "Say hello" and "Sign out") carry the token's ``csrf`` claim as ``csrf_token``.
"""

from __future__ import annotations

import sys

import bottle

from jwt_wsgi import ConfigurationError, JWTMiddleware
from jwt_wsgi.contrib.bottle import JWTPlugin, current_claims, current_user, requires

try:
    from examples.dashboard_page import render_dashboard
except ImportError:  # run as a script: python examples/<name>.py
    from dashboard_page import render_dashboard  # type: ignore[no-redef]

app = bottle.Bottle()
app.install(JWTPlugin())


@app.get("/")
def index():
    return {"hello": current_user() or "anonymous"}


@app.get("/api/health")
def health():
    return {"status": "ok"}


@app.get("/api/me")
def me():
    return {"user": current_user(), "claims": current_claims()}


@app.get("/api/items/<item_id:int>")
def item(item_id):
    return {"item": item_id, "owner": current_user()}


@app.get("/api/admin")
@requires("admin")
def admin():
    return {"admin": current_user()}


@app.get("/dashboard")
def dashboard():
    # Protected: the middleware sent anyone without a valid cookie (or bearer token) to sign in.
    claims = current_claims() or {}
    notice = "The server heard your hello." if bottle.request.query.get("said") == "hello" else ""
    bottle.response.content_type = "text/html; charset=utf-8"
    bottle.response.set_header("Cache-Control", "no-store")
    return render_dashboard(current_user() or "", str(claims.get("csrf", "")), notice)


@app.post("/dashboard/hello")
def say_hello():
    # Reached only with a valid token and, for a cookie, the matching csrf_token from this site.
    bottle.redirect("/dashboard?said=hello", 303)


try:
    application = JWTMiddleware.from_env(app, protect=["/api", "/dashboard"], public=["/api/health"],
                                         token_sources=["header", "cookie"])
except ConfigurationError as exc:
    # One line when run as a script; under gunicorn the worker fails to boot and the master stops.
    if __name__ == "__main__":
        sys.exit(f"bottle_app: {exc}")
    raise

if __name__ == "__main__":
    bottle.run(application, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000, quiet=True)
