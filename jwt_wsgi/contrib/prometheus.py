"""Prometheus metrics for jwt_wsgi, with ``prometheus_client`` (``pip install 'jwt_wsgi[prometheus]'``).

.. code-block:: python

    from jwt_wsgi.contrib.prometheus import PrometheusMetrics

    app = JWTMiddleware(app, ..., metrics=PrometheusMetrics())   # counted; exposed by you
    app = JWTMiddleware(app, ..., metrics_path="/metrics")        # counted and served there

Series (all under ``jwt_wsgi_``; label values are fixed words, never a user or a path):

=================================== ============================================================
``decisions_total{reason}``         protected requests: ``allowed`` or the refusal's error code
``token_cache_lookups_total{result}`` ``hit`` / ``miss`` in the cache of verified tokens
``revocation_checks_total{result}`` ``not_revoked`` / ``revoked`` / ``unavailable``
``store_call_seconds{op}``          histogram of store calls by method (its ``_count``: calls)
``store_errors_total{op}``          store calls that failed (an outage: ``StoreUnavailable``)
``rate_limited_total{kind}``        logins refused with 429, by limit (``user``, ``ip``)
``refresh_reuse_total``             spent refresh tokens presented again (families revoked)
``events_total{event,reason}``      audit events: login, login_failed, refresh, logout, ...
=================================== ============================================================

Several worker processes (gunicorn): each worker counts on its own, and a scrape reaches one of
them. Use ``prometheus_client``'s multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory, writable by the workers, *before* the server starts (``prometheus_client``
reads it when first imported), and wipe it at each start; the page then sums every worker's
counters. In a gunicorn configuration file, also tell ``prometheus_client`` when a worker exits::

    from prometheus_client import multiprocess

    def child_exit(server, worker):
        multiprocess.mark_process_dead(worker.pid)

(``jwt-wsgi serve`` does both for you when ``metrics_path`` is set: see the README's Monitoring.)
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..errors import ConfigurationError

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.exposition import choose_encoder
except ImportError:  # pragma: no cover - the extra is not installed
    prometheus_client = None  # type: ignore[assignment]

__all__ = ["PrometheusMetrics", "STORE_BUCKETS", "mark_process_dead", "shared"]

#: Histogram buckets for store calls, in seconds: a local SQLite or Redis answers well under a
#: millisecond, a stalled one only at its socket timeout.
STORE_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class PrometheusMetrics:
    """The hooks of :class:`jwt_wsgi.metrics.Metrics`, counted with ``prometheus_client``.

    (It has every method of ``Metrics`` without inheriting from it, so that
    :mod:`jwt_wsgi.metrics` may choose it without an import cycle.)

    :param registry: where the series are registered: by default a registry of this object's
        own (so two middlewares in one process never collide); pass
        ``prometheus_client.REGISTRY`` to have them on the page your application already serves
        (the option ``metrics = "prometheus"`` does). In multiprocess mode the page is built from
        ``PROMETHEUS_MULTIPROC_DIR`` instead.
    :param namespace: prefix of every series name.
    :raises ConfigurationError: ``prometheus_client`` is not installed.
    """

    def __init__(self, registry: Any = None, namespace: str = "jwt_wsgi") -> None:
        if prometheus_client is None:
            raise ConfigurationError("metrics", "needs prometheus_client: pip install 'jwt_wsgi[prometheus]'")
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory and not (os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)):
            raise ConfigurationError("metrics", f"PROMETHEUS_MULTIPROC_DIR={directory} is not a writable directory "
                                     "(create it, empty, before the server starts)")
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r, ns = self.registry, namespace
        self._decisions = Counter("decisions", "Requests under protect, by decision", ["reason"], namespace=ns,
                                  registry=r)
        self._cache = Counter("token_cache_lookups", "Lookups in the cache of verified tokens", ["result"],
                              namespace=ns, registry=r)
        self._revocation = Counter("revocation_checks", "Revocation checks, by result", ["result"], namespace=ns,
                                   registry=r)
        self._store_seconds = Histogram("store_call_seconds", "Store calls, by method", ["op"], namespace=ns,
                                        registry=r, buckets=STORE_BUCKETS)
        self._store_errors = Counter("store_errors", "Store calls that failed, by method", ["op"], namespace=ns,
                                     registry=r)
        self._rate_limited = Counter("rate_limited", "Logins refused by a rate limit", ["kind"], namespace=ns,
                                     registry=r)
        self._reuse = Counter("refresh_reuse", "Spent refresh tokens presented again (family revoked)",
                              namespace=ns, registry=r)
        self._events = Counter("events", "Audit events", ["event", "reason"], namespace=ns, registry=r)
        #: Every series of these hooks (to ``registry.unregister()`` them).
        self.collectors = (self._decisions, self._cache, self._revocation, self._store_seconds, self._store_errors,
                           self._rate_limited, self._reuse, self._events)
        # The child of each label value, found with one dict look-up on the request path
        # (prometheus_client's labels() takes a lock).
        self._decision_of: dict[str, Any] = {}
        self._cache_of = {True: self._cache.labels("hit"), False: self._cache.labels("miss")}
        self._revocation_of: dict[str, Any] = {}
        self._seconds_of: dict[str, Any] = {}

    @staticmethod
    def _child(children: dict[str, Any], metric: Any, value: str) -> Any:
        child = children.get(value)
        if child is None:
            child = children[value] = metric.labels(value)
        return child

    def decision(self, reason: str) -> None:
        (self._decision_of.get(reason) or self._child(self._decision_of, self._decisions, reason)).inc()

    def cache(self, hit: bool) -> None:
        self._cache_of[hit].inc()

    def revocation_check(self, result: str) -> None:
        (self._revocation_of.get(result) or self._child(self._revocation_of, self._revocation, result)).inc()

    def store_call(self, op: str, seconds: float, ok: bool) -> None:
        (self._seconds_of.get(op) or self._child(self._seconds_of, self._store_seconds, op)).observe(seconds)
        if not ok:
            self._store_errors.labels(op).inc()

    def rate_limited(self, kind: str) -> None:
        self._rate_limited.labels(kind).inc()

    def reuse_detected(self) -> None:
        self._reuse.inc()

    def event(self, event: str, reason: str | None = None) -> None:
        self._events.labels(event, reason or "").inc()

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The text exposition format (or OpenMetrics when ``accept`` asks for it); in multiprocess
        mode, summed over every process that wrote to ``PROMETHEUS_MULTIPROC_DIR``."""
        registry = self.registry
        if _multiprocess():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        encoder, content_type = choose_encoder(accept)
        return encoder(registry), content_type


_shared: PrometheusMetrics | None = None
_shared_lock = threading.Lock()


def shared() -> PrometheusMetrics:
    """The process's hooks in ``prometheus_client.REGISTRY`` (the option ``metrics = "prometheus"``):
    created once, then shared by every middleware that names them, a reloaded one included, so
    the series are registered once and keep counting."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = PrometheusMetrics(registry=prometheus_client.REGISTRY if prometheus_client else None)
        return _shared


def mark_process_dead(pid: int) -> None:
    """For gunicorn's ``child_exit`` hook in multiprocess mode: drop the live data of a worker
    that exited (its counters stay counted). Does nothing outside multiprocess mode."""
    if prometheus_client is not None and _multiprocess():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
