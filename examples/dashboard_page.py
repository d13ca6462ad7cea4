"""The signed-in HTML page both the Flask and the Bottle example serve at ``/dashboard``."""

from __future__ import annotations

import html
import string

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
