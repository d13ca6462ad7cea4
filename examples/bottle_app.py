"""A Bottle application behind jwt_wsgi.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    gunicorn -c examples/gunicorn.conf.py examples.bottle_app:application
"""

from __future__ import annotations

import sys

import bottle

from jwt_wsgi import ConfigurationError, JWTMiddleware
from jwt_wsgi.contrib.bottle import JWTPlugin, current_claims, current_user, requires

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


try:
    application = JWTMiddleware.from_env(app, protect=["/api"], public=["/api/health"])
except ConfigurationError as exc:
    sys.exit(f"bottle_app: {exc}")

if __name__ == "__main__":
    bottle.run(application, host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000, quiet=True)
