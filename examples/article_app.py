"""The blog post this project grew from, rebuilt on the middleware with none of its flaws.

Same public behaviour, so a client written for the article works unchanged: ``POST /loginEndpoint``
answers ``{"error": "0", "message": "Successful", "token": ..., "Elapse_time": 1800}`` (a 30-minute
token); ``GET /anEndpoint`` needs it in a ``TOKEN`` header; errors are the article's
``{"error": "2", "message": "Token required"}``, ``{"error": "1", "message": "Token has expired"}``
(or ``"Invalid Token"``) and ``{"error": "3", "message": "An error occured"}``.
Fixed: real credential checks (users file, hashed passwords), correct status codes (401, not 200
or 403), no hard-coded secret (``JWT_WSGI_SECRET``), PyJWT 2 (no ``.decode("UTF-8")``), no bare
``except``, views keep their arguments, no ``debug=True``, and any WSGI framework would do.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    gunicorn -c examples/gunicorn.conf.py examples.article_app:app
"""

from __future__ import annotations

import sys

from flask import Flask

from jwt_wsgi import ConfigurationError, Settings
from jwt_wsgi.contrib.flask import current_user, protect

app = Flask(__name__)


@app.get("/anEndpoint")
def an_endpoint():
    return {"error": "0", "message": f"Hello, {current_user()}! This endpoint is protected."}


@app.get("/anotherEndpoint/<name>")
def another_endpoint(name: str):
    # A second protected view with an argument: the article's decorator broke both.
    return {"error": "0", "message": f"{name} seen by {current_user()}"}


try:
    protect(app, Settings.from_env(
        None,
        protect=["/anEndpoint", "/anotherEndpoint"],
        login_path="/loginEndpoint",
        refresh_path=None,
        logout_path=None,
        header_name="TOKEN",
        error_format="article",
        access_ttl="30m",
    ))
except ConfigurationError as exc:
    # One line when run as a script; under gunicorn the worker fails to boot and the master stops.
    if __name__ == "__main__":
        sys.exit(f"article_app: {exc}")
    raise

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
