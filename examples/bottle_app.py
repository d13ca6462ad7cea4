"""A Bottle application behind jwt_wsgi.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    gunicorn -c examples/gunicorn.conf.py examples.bottle_app:application

JSON clients send ``Authorization: Bearer ...``; a browser opening http://127.0.0.1:8000/dashboard
is sent to the login page and comes back with the token in an HttpOnly cookie. Forms that change
something (here: "Say hello" and "Sign out") carry the token's ``csrf`` claim as ``csrf_token``.
"""

from __future__ import annotations

import html
import string
import sys

import bottle

from jwt_wsgi import ConfigurationError, JWTMiddleware
from jwt_wsgi.contrib.bottle import JWTPlugin, current_claims, current_user, requires

app = bottle.Bottle()
app.install(JWTPlugin())

DASHBOARD = string.Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dashboard</title>
<style>
  body { margin: 0; font: 16px/1.5 system-ui, sans-serif; background: #f4f6fa; color: #1d2330; }
  header { display: flex; align-items: center; gap: 1rem; padding: 0.7rem 1.5rem;
           background: #fff; border-bottom: 1px solid #dde2eb; }
  header span { margin-left: auto; color: #555e6e; }
  main { max-width: 36rem; margin: 2.5rem auto; padding: 0 1.5rem; }
  section { padding: 1.5rem; background: #fff; border: 1px solid #dde2eb; border-radius: 12px; }
  h1 { margin: 0 0 0.5rem; font-size: 1.5rem; }
  form { display: inline; }
  button { padding: 0.45rem 0.9rem; font: inherit; border: 1px solid #2f6fdf; border-radius: 8px;
           background: #2f6fdf; color: #fff; cursor: pointer; }
  header button { background: #fff; color: #2f6fdf; }
  .notice { padding: 0.5rem 0.8rem; border-radius: 8px; background: #e3f4e8; }
</style>
</head>
<body>
<header>
  <strong>Example app</strong>
  <span>Signed in as <strong>$user</strong></span>
  <form method="post" action="/auth/logout">
    <input type="hidden" name="csrf_token" value="$csrf"><button>Sign out</button>
  </form>
</header>
<main>
  <section>
    <h1>Hello, $user!</h1>
    <p>This page is behind jwt_wsgi: your browser keeps the token in an HttpOnly cookie, and the
       application only reads who you are.</p>
    $notice
    <form method="post" action="/dashboard/hello">
      <input type="hidden" name="csrf_token" value="$csrf"><button>Say hello</button>
    </form>
  </section>
</main>
</body>
</html>
""")


def render_dashboard(user: str, csrf: str, notice: str = "") -> str:
    """The signed-in page; every value is HTML-escaped."""
    esc = html.escape
    return DASHBOARD.substitute(user=esc(user), csrf=esc(csrf),
                                notice=f'<p class="notice" role="status">{esc(notice)}</p>' if notice else "")


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
