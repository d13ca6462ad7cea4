"""Serving a wrapped application with gunicorn (``jwt-wsgi serve`` and ``jwt-wsgi demo``).

Safe defaults: no peer is trusted to set forwarded headers (``SCRIPT_NAME``, ``PATH_INFO``,
``X-Forwarded-*``) unless named with ``--trusted-proxy``; gunicorn's request-line and header
limits are kept; the wrapped application is built in the master process (configuration errors
stop the boot) and inherited by the forked workers, whose stores connect lazily; ``SIGHUP`` builds
it again, from the configuration file and keys, before gunicorn replaces the workers (a broken
configuration is logged and the previous one kept); threaded workers (``gthread``), so that a few
clients sending their bodies slowly cannot hold every worker.

Logs: :class:`Logger` is the gunicorn logger class of ``jwt-wsgi serve`` and
``examples/gunicorn.conf.py`` (``logger_class = "jwt_wsgi.serving.Logger"``). Everything a client
sends reaches the logs escaped, on one line, and without query strings or credentials.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gunicorn import glogging

from .errors import ConfigurationError
from .logs import JSONFormatter, escape_log_text
from .middleware import WSGIApp
from .settings.loading import import_object

WORKER_CLASSES = ("gthread", "sync")
DEFAULT_WORKER_CLASS = "gthread"
DEFAULT_THREADS = 4
DEFAULT_TIMEOUT = 30
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


def import_app(target: str) -> WSGIApp:
    """``package.module:attribute`` -> the WSGI callable (``:application`` when omitted)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return import_object("MODULE:APP", target, default_attr="application", what="a WSGI callable")  # type: ignore[no-any-return]


def gunicorn_options(
    bind: str,
    workers: int,
    *,
    worker_class: str = DEFAULT_WORKER_CLASS,
    threads: int = DEFAULT_THREADS,
    timeout: int = DEFAULT_TIMEOUT,
    trusted_proxies: Iterable[str] = (),
    log_format: str = "text",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """gunicorn settings for ``serve`` and ``demo``.

    :param worker_class: ``gthread`` (default) or ``sync``. A sync worker is busy for as long as
        one client takes to send its request: a few slow clients hold every worker, unless a
        buffering proxy sits in front.
    :param threads: requests each ``gthread`` worker serves at once.
    :param timeout: seconds a worker may stay silent before the master restarts it.
    :param log_format: ``text`` (gunicorn's lines: time, pid, level) or ``json`` (JSON lines,
        :class:`JSONLogger`).
    """
    trusted = ",".join(trusted_proxies)
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "worker_class": worker_class,
        "threads": threads,
        "timeout": timeout,
        "forwarded_allow_ips": trusted,
        # Even a trusted proxy may not move the mount point: the middleware decides on
        # SCRIPT_NAME + PATH_INFO, and the application should see the path the client sent.
        "forwarder_headers": "",
        "proxy_allow_ips": trusted,
        "accesslog": "-",
        # gunicorn's control socket defaults to one path per user: two servers would collide.
        "control_socket_disable": True,
        # The default access log line carries the request line (and so any token in a query
        # string); the middleware never accepts query tokens unless told to.
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": f"{__name__}.{'JSONLogger' if log_format == 'json' else 'Logger'}",
    }
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        options["child_exit"] = _metrics_child_exit
    options.update(extra or {})
    return options


def run(app: WSGIApp, options: dict[str, Any],
        reload: Callable[[], tuple[WSGIApp, dict[str, Any]]] | None = None) -> None:
    """Serve ``app`` with gunicorn until interrupted.

    The workers are forked from this (the master) process and inherit ``app``; it is never built
    in a worker, so a worker cannot fail to boot over a configuration.

    :param reload: called in the master on ``SIGHUP``, before gunicorn starts new workers (and
        stops the old ones gracefully): the application and options the new workers get. If it
        raises, one error line is logged and the new workers get the application in use: a broken
        configuration never stops the server. The line quotes a :class:`ConfigurationError`'s
        message, and only the class of any other exception.
    """
    from gunicorn.app.base import BaseApplication

    serving, serving_options = app, options

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in serving_options.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            return serving  # in each worker, after the fork

        def reload(self) -> None:
            nonlocal serving, serving_options
            if reload is not None:
                try:
                    serving, serving_options = reload()
                except Exception as exc:  # whatever it is, the master keeps serving
                    # A ConfigurationError says what to fix and names no secret; any other text
                    # might quote one, so only its class is logged.
                    reason = str(exc) if isinstance(exc, ConfigurationError) else type(exc).__name__
                    logging.getLogger("gunicorn.error").error(
                        "reload failed, the new workers keep the previous configuration: %s", reason)
                else:
                    logging.getLogger("gunicorn.error").info("reloaded the configuration and keys")
            super().reload()

    _Server().run()


# -- logs ------------------------------------------------------------------------------------------
def _indented(text: str) -> str:
    # A traceback keeps its lines, each indented and escaped: only a record's first line starts
    # at the margin, so a message with a line break in it cannot pass for another record.
    return "\n".join("    " + escape_log_text(line) for line in text.split("\n"))


class EscapingFormatter(logging.Formatter):
    """Formats a record with ``inner`` after escaping its message (see :func:`escape_log_text`).

    A traceback or stack is kept, indented under the record's line. The record itself is left as
    it was for other handlers.
    """

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        clean = copy.copy(record)
        clean.msg, clean.args = escape_log_text(record.getMessage()), None
        if record.exc_info:
            clean.exc_text = _indented(self.formatException(record.exc_info).rstrip("\n"))
        elif record.exc_text:
            clean.exc_text = _indented(record.exc_text)
        clean.exc_info = None
        if record.stack_info:
            clean.stack_info = _indented(record.stack_info)
        return self.inner.format(clean)


# Request and response headers, and environ keys, never written to a log whatever the format asks.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-csrf-token"})
_SECRET_ENVIRON = frozenset({"query_string", "http_authorization", "http_proxy_authorization", "http_cookie",
                             "http_x_csrf_token"})
_URL_ATOMS = frozenset({"f", "{referer}i", "{location}o", "{raw_uri}e", "{request_uri}e", "{http_referer}e"})


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


class Logger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's logger, with every client-controlled value escaped and nothing secret logged.

    Every access-log atom is escaped with :func:`escape_log_text`; query strings (``%(q)s``, and the
    query part of ``%(r)s``, the referer, ``Location`` and the URI environ keys) are dropped, since
    a token may ride in one; ``Authorization``, ``Cookie``, ``Set-Cookie`` and ``X-CSRF-Token`` are
    logged as ``-``, as is any environ value that is not a string (the verified claims, say).
    The error log, and jwt_wsgi's own log records when you have not configured logging yourself,
    go through :class:`EscapingFormatter`.

    jwt_wsgi's records (the audit events of ``jwt_wsgi.audit`` included) are shown from gunicorn's
    log level (``info`` by default), with gunicorn's time, pid and level.

    Usage, in a gunicorn configuration file::

        logger_class = "jwt_wsgi.serving.Logger"
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if getattr(handler, "_gunicorn", False) and not isinstance(handler.formatter, EscapingFormatter):
                handler.setFormatter(EscapingFormatter(handler.formatter))
        package = logging.getLogger(__name__.rpartition(".")[0])
        for handler in list(package.handlers):
            # gunicorn's own handlers, lent by this Logger or by the one a SIGHUP replaced: the
            # replaced one's streams are no longer reopened on USR1 (log rotation).
            if getattr(handler, "_gunicorn", False):
                package.removeHandler(handler)
        self._package_handlers: list[logging.Handler] = []
        if not package.handlers and not logging.root.handlers:
            # Nobody configured logging: without this, jwt_wsgi's warnings and tracebacks would
            # reach stderr through logging's last resort, unformatted and unescaped.
            for handler in self.error_log.handlers:
                if getattr(handler, "_gunicorn", False):
                    package.addHandler(handler)
                    self._package_handlers.append(handler)
            if self._package_handlers and package.level == logging.NOTSET:
                # Below WARNING, or the audit events (INFO) would stop at the root logger's level.
                package.setLevel(self.error_log.level)

    def atoms(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms["q"] = "-"
        atoms["r"] = "{} {} {}".format(environ.get("REQUEST_METHOD"), _without_query(str(environ.get("RAW_URI", ""))),
                                       environ.get("SERVER_PROTOCOL"))
        for key, value in atoms.items():
            if _hidden(key, value):
                atoms[key] = "-"
            elif isinstance(value, str):
                atoms[key] = escape_log_text(_without_query(value) if key in _URL_ATOMS else value, wsgi=True)
        return atoms


class JSONLogger(Logger):
    """:class:`Logger` writing JSON lines (:class:`jwt_wsgi.logs.JSONFormatter`): the error log,
    jwt_wsgi's records and the access log (its escaped line as ``message``).

    Usage: ``jwt-wsgi serve --log-format json``, or in a gunicorn configuration file::

        logger_class = "jwt_wsgi.serving.JSONLogger"
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(JSONFormatter())


def prepare_metrics_dir() -> str:
    """``PROMETHEUS_MULTIPROC_DIR`` for ``serve``: the one set, or a new private directory
    (removed when the server exits), so that the metrics page sums every worker's counters.

    Called before anything imports ``prometheus_client``, which reads the variable then.
    """
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        return given
    path = tempfile.mkdtemp(prefix="jwt-wsgi-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    owner = os.getpid()
    # The workers are forked from this process: only the master cleans up.
    atexit.register(lambda: shutil.rmtree(path, ignore_errors=True) if os.getpid() == owner else None)
    return path


def _metrics_child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit``: a worker's live series leave with it (its counts stay counted)."""
    from .contrib.prometheus import mark_process_dead

    mark_process_dead(worker.pid)


def _hidden(atom: str, value: Any) -> bool:
    """``{name}i`` / ``{name}o`` for a credential header, ``{key}e`` for a secret or non-text value."""
    if not atom.startswith("{"):
        return False
    name, kind = atom[1:-2], atom[-1]
    if kind in "io":
        return name in _SECRET_HEADERS
    return kind == "e" and (name in _SECRET_ENVIRON or not isinstance(value, str))
