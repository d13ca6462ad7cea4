"""gunicorn settings for the examples, and a starting point for your own application.

From the repository::

    gunicorn -c examples/gunicorn.conf.py examples.flask_app:app

From your own project's directory (your module is imported from there; relative paths such as
``JWT_WSGI_USERS_FILE=users.json`` are relative to it)::

    gunicorn -c /path/to/jwt_wsgi/examples/gunicorn.conf.py myapp:application

Several workers share revocations and login rate limits only through a shared store. Unless
``JWT_WSGI_STORE`` is set (``sqlite:///path/store.db`` on one host, ``redis://...`` for several),
each application gets a SQLite file of its own under ``<tmp>/jwt-wsgi-<uid>/``, named after the
directory, the ``MODULE:APP``, the issuer and the keys: two applications never share state
by accident.
"""

import os
import sys

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _app_spec():
    """The ``MODULE:APP`` gunicorn was given (its last positional argument)."""
    positional = [a for a in sys.argv[1:] if not a.startswith("-")]
    return positional[-1] if positional else ""


# ``examples.*`` run from elsewhere: find the examples (and, when it is not installed, jwt_wsgi)
# in this repository, after everything else on the path. Your own app is imported from the
# directory you start gunicorn in, as gunicorn always does: no chdir.
if _app_spec().startswith("examples.") and _REPOSITORY not in sys.path:
    sys.path.append(_REPOSITORY)


def _default_store():
    try:
        from jwt_wsgi import ConfigurationError, Settings
        from jwt_wsgi.state import default_store_url
    except ImportError:
        return None
    try:
        return default_store_url(_app_spec(), Settings.from_env(None))
    except ConfigurationError:
        return None  # no secret yet, ...: the application itself says what is missing


if "JWT_WSGI_STORE" not in os.environ:
    _store = _default_store()
    if _store:
        os.environ["JWT_WSGI_STORE"] = _store

from jwt_wsgi.serving import ACCESS_LOG_FORMAT, DEFAULT_THREADS, DEFAULT_TIMEOUT  # noqa: E402 (after the path set-up)

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WORKERS", "2"))
# gthread: a browser's idle speculative connections would each hold a whole sync worker (a sync
# worker needs a buffering proxy in front). WORKER_CLASS=sync for an API behind such a proxy.
worker_class = os.environ.get("WORKER_CLASS", "gthread")
threads = int(os.environ.get("THREADS", str(DEFAULT_THREADS)))
# Build the app once in the master: a configuration error (no JWT_WSGI_SECRET, ...) stops the
# start-up at once instead of failing in every worker. Stores connect after the fork. A HUP
# therefore keeps jwt_wsgi's configuration and keys: change them with USR2 then TERM, or a
# restart (README, "Reloading the configuration and rotating keys"; `jwt-wsgi serve` reloads).
preload_app = True
timeout = DEFAULT_TIMEOUT
# Trust no peer to move the mount point or forge the client address; behind a proxy, name it:
# FORWARDED_ALLOW_IPS=10.0.0.5 (and let the proxy strip SCRIPT_NAME / PATH_INFO headers).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")
forwarder_headers = ""
accesslog = "-"
# %(U)s is the path without the query string: tokens must never land in access logs.
access_log_format = ACCESS_LOG_FORMAT
# Escapes what clients send (a path with %0d%0a in it cannot start a forged log line), drops
# query strings and credential headers from any format, and escapes jwt_wsgi's own log records.
logger_class = "jwt_wsgi.serving.Logger"

# Prometheus (metrics_path): with several workers, start gunicorn with PROMETHEUS_MULTIPROC_DIR
# set to an empty directory, so the metrics page sums every worker's counters; a worker that
# exits takes its live series with it.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):

    def child_exit(server, worker):
        from jwt_wsgi.contrib.prometheus import mark_process_dead

        mark_process_dead(worker.pid)
