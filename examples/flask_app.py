"""A Flask application behind jwt_wsgi: the views only read who the caller is.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app
"""

from __future__ import annotations

import sys

from flask import Flask

from jwt_wsgi import ConfigurationError, Settings
from jwt_wsgi.contrib.flask import current_claims, current_user, protect, requires

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


try:
    protect(app, Settings.from_env(None, protect=["/api"], public=["/api/health"]))
except ConfigurationError as exc:
    sys.exit(f"flask_app: {exc}")

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
