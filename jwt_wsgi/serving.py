"""Serving a wrapped application with gunicorn (``jwt-wsgi serve`` and ``jwt-wsgi demo``).

Safe defaults: no peer is trusted to set forwarded headers (``SCRIPT_NAME``, ``PATH_INFO``,
``X-Forwarded-*``) unless named with ``--trusted-proxy``; gunicorn's request-line and header
limits are kept; the wrapped application is built once in the master process (configuration
errors stop the boot) and inherited by the forked workers, whose stores connect lazily.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

from .errors import ConfigurationError
from .middleware import WSGIApp


def import_app(target: str) -> WSGIApp:
    """``package.module:attribute`` -> the WSGI callable (``:application`` when omitted)."""
    module_name, _, attr = target.partition(":")
    attr = attr or "application"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise ConfigurationError("MODULE:APP", f"{target!r} is not of the form package.module:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError("MODULE:APP", f"cannot import {module_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigurationError("MODULE:APP", f"{module_name!r} has no attribute {attr!r}")
    if not callable(obj):
        raise ConfigurationError("MODULE:APP", f"{target!r} is not a WSGI callable")
    return obj  # type: ignore[no-any-return]


def gunicorn_options(
    bind: str, workers: int, *, trusted_proxies: Iterable[str] = (), extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    trusted = ",".join(trusted_proxies)
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
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
        "access_log_format": '%(h)s %(t)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss',
    }
    options.update(extra or {})
    return options


def run(app: WSGIApp, options: dict[str, Any]) -> None:
    """Serve ``app`` with gunicorn until interrupted."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            return app

    _Server().run()
