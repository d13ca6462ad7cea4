"""gunicorn settings for the examples: ``gunicorn -c examples/gunicorn.conf.py examples.flask_app:app``.

Several workers share revocations and login rate limits only through a shared store: set
``JWT_WSGI_STORE=sqlite:///path/store.db`` (one host) or ``redis://...`` (several hosts).
"""

import os
import tempfile

# Every worker must see the same revocations and login counters: default to one SQLite file.
os.environ.setdefault("JWT_WSGI_STORE", f"sqlite:///{tempfile.gettempdir()}/jwt-wsgi-examples.db")

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WORKERS", "2"))
# gthread: a browser's idle speculative connections would each hold a whole sync worker (a sync
# worker needs a buffering proxy in front). WORKER_CLASS=sync for an API behind such a proxy.
worker_class = os.environ.get("WORKER_CLASS", "gthread")
threads = int(os.environ.get("THREADS", "4"))
# Build the app once in the master: a configuration error (no JWT_WSGI_SECRET, ...) stops the
# start-up at once instead of failing in every worker. Stores connect after the fork.
preload_app = True
timeout = 30
# Trust no peer to move the mount point or forge the client address; behind a proxy, name it:
# FORWARDED_ALLOW_IPS=10.0.0.5 (and let the proxy strip SCRIPT_NAME / PATH_INFO headers).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
forwarder_headers = ""
accesslog = "-"
# %(U)s is the path without the query string: tokens must never land in access logs.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
# Escapes what clients send (a path with %0d%0a in it cannot start a forged log line), drops
# query strings and credential headers from any format, and escapes jwt_wsgi's own log records.
logger_class = "jwt_wsgi.serving.Logger"
chdir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
