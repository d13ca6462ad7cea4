"""Metrics hooks: what the middleware counts and times, for Prometheus or anything else.

:class:`Metrics` is the interface: an object whose methods the middleware calls as things happen.
Every method of the base class does nothing, so a subclass overrides only what it counts, and a
middleware without ``metrics`` pays nothing for them (it does not even call them: see
:func:`active`). :class:`jwt_wsgi.contrib.prometheus.PrometheusMetrics` is the adapter for
``prometheus_client``; it is what ``metrics_path`` serves when no other ``metrics`` is given.

.. code-block:: python

    class StatsdMetrics(jwt_wsgi.metrics.Metrics):
        def decision(self, reason):
            statsd.incr(f"jwt.decision.{reason}")

        def store_call(self, op, seconds, ok):
            statsd.timing(f"jwt.store.{op}", seconds * 1000)

    app = JWTMiddleware(app, ..., metrics=StatsdMetrics())

The hooks are called on the request path, in every worker thread: keep them quick and
thread-safe, and never raise (an exception in a hook is a 500 for that request).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .errors import MethodNotAllowed, StoreUnavailable
from .responses import NO_STORE, StartResponse
from .stores import Store

#: :meth:`Metrics.decision` reasons besides the error codes of refused requests.
ALLOWED = "allowed"  # a protected request with a valid token reached the application
PREFLIGHT = "preflight"  # an anonymous CORS preflight passed to the application
LOGIN_REDIRECT = "login_redirect"  # a browser without a valid token sent to the sign-in page

#: :meth:`Metrics.revocation_check` results.
NOT_REVOKED, REVOKED, UNAVAILABLE = "not_revoked", "revoked", "unavailable"

#: :meth:`Metrics.event` names: the audit events (see :mod:`jwt_wsgi.logs`).
EVENTS = ("login", "login_failed", "refresh", "refresh_reuse", "logout", "revocation")


class Metrics:
    """The hooks the middleware calls; every one does nothing here. Override the ones you need.

    Labels are short, fixed strings chosen by jwt_wsgi (never a user, a path or a token), so a
    counter per label value stays a handful of series.
    """

    def decision(self, reason: str) -> None:
        """A request under ``protect`` was decided: ``"allowed"``, ``"preflight"``,
        ``"login_redirect"``, or the ``error`` code it was refused with (``"missing_token"``,
        ``"invalid_token"``, ``"token_expired"``, ``"token_revoked"``, ``"insufficient_scope"``,
        ``"invalid_request"``, ``"csrf_failed"``, ``"user_not_found"``, ``"service_unavailable"``,
        ``"internal_error"`` ...)."""

    def cache(self, hit: bool) -> None:
        """A token was looked up in the cache of verified tokens: found (no signature check) or not."""

    def revocation_check(self, result: str) -> None:
        """The store was asked whether a token was revoked: ``"not_revoked"``, ``"revoked"`` or
        ``"unavailable"`` (the store could not answer)."""

    def store_call(self, op: str, seconds: float, ok: bool) -> None:
        """One store method returned (``ok``) or failed: ``op`` is its name (``"is_revoked"``,
        ``"revoke"``, ``"rotate"``, ``"hit"``, ...), ``seconds`` its duration."""

    def rate_limited(self, kind: str) -> None:
        """A login was refused with 429: ``kind`` is ``"user"`` or ``"ip"``, the limit it hit."""

    def reuse_detected(self) -> None:
        """A spent refresh token came back after ``refresh_reuse_interval``: its family was revoked."""

    def event(self, event: str, reason: str | None = None) -> None:
        """An audit event (one of :data:`EVENTS`), as written to the ``jwt_wsgi.audit`` logger."""

    def exposition(self, accept: str = "") -> tuple[bytes, str] | None:
        """``(body, content type)`` for ``metrics_path``, or ``None`` when these hooks have no page.

        :param accept: the scraper's ``Accept`` header (to choose, say, OpenMetrics)."""
        return None


def active(metrics: Metrics | None) -> Metrics | None:
    """``metrics`` unless it does nothing (``None``, or the base class itself): the middleware
    skips the calls altogether then, and does not time its store."""
    if metrics is None or type(metrics) is Metrics:
        return None
    return metrics


class TimedStore:
    """``store`` with every call reported to :meth:`Metrics.store_call` (and each revocation
    check to :meth:`Metrics.revocation_check`). Other attributes come from ``store``."""

    def __init__(self, store: Store, metrics: Metrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self.store = store
        self.metrics = metrics
        self._clock = clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __repr__(self) -> str:
        return f"TimedStore({self.store!r})"

    def _call(self, op: str, method: Callable[..., Any], *args: Any) -> Any:
        start = self._clock()
        try:
            result = method(*args)
        except BaseException:
            self.metrics.store_call(op, self._clock() - start, False)
            raise
        self.metrics.store_call(op, self._clock() - start, True)
        return result

    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        # On every authenticated request: timed inline rather than through _call.
        metrics, clock = self.metrics, self._clock
        start = clock()
        try:
            revoked = bool(self.store.is_revoked(jti, sub, iat, family))
        except BaseException as error:
            metrics.store_call("is_revoked", clock() - start, False)
            if isinstance(error, StoreUnavailable):
                metrics.revocation_check(UNAVAILABLE)
            raise
        metrics.store_call("is_revoked", clock() - start, True)
        metrics.revocation_check(REVOKED if revoked else NOT_REVOKED)
        return revoked

    def revoke(self, jti: str, expires_at: float) -> None:
        self._call("revoke", self.store.revoke, jti, expires_at)

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        self._call("revoke_subject", self.store.revoke_subject, sub, cutoff, expires_at)

    def revoke_family(self, family: str, expires_at: float) -> None:
        self._call("revoke_family", self.store.revoke_family, family, expires_at)

    def spend(self, jti: str, expires_at: float) -> bool:
        return bool(self._call("spend", self.store.spend, jti, expires_at))

    def rotate(self, jti: str, expires_at: float, successor: str, reuse_interval: float) -> str | None:
        result: str | None = self._call("rotate", self.store.rotate, jti, expires_at, successor, reuse_interval)
        return result

    def hit(self, key: str, window: float) -> tuple[int, float]:
        result: tuple[int, float] = self._call("hit", self.store.hit, key, window)
        return result

    def unhit(self, key: str) -> None:
        self._call("unhit", self.store.unhit, key)

    def ping(self) -> None:
        self._call("ping", self.store.ping)

    def close(self) -> None:
        self.store.close()


def timed(store: Store, metrics: Metrics | None) -> Store:
    """``store`` timed for ``metrics``; unchanged when the hooks do nothing (see :func:`active`)."""
    hooks = active(metrics)
    return store if hooks is None else TimedStore(store, hooks)


class MetricsPage:
    """The WSGI handler at ``metrics_path``: ``GET``/``HEAD`` answered with :meth:`Metrics.exposition`.

    :param metrics: hooks whose :meth:`~Metrics.exposition` returns a page.
    :param guard: called with the environ before answering; raises the
        :class:`~jwt_wsgi.errors.AuthError` that refuses the request (no token, wrong scope), or
        ``None`` when the path is not under ``protect``.
    """

    def __init__(self, metrics: Metrics, guard: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.metrics = metrics
        self.guard = guard

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            raise MethodNotAllowed("GET, HEAD")
        if self.guard is not None:
            self.guard(environ)
        page = self.metrics.exposition(str(environ.get("HTTP_ACCEPT", "")))
        body, content_type = page if page is not None else (b"", "text/plain; charset=utf-8")
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))), *NO_STORE])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def hooks_for(settings: Any) -> Metrics | None:
    """The hooks a middleware with ``settings`` calls: its ``metrics`` option; ``"prometheus"``, or
    none with ``metrics_path`` set, means :class:`~jwt_wsgi.contrib.prometheus.PrometheusMetrics`.

    :raises ConfigurationError: ``metrics_path`` is set but the hooks have no page to serve, or
        ``prometheus_client`` is missing.
    """
    from .errors import ConfigurationError

    hooks = settings.metrics
    if hooks == "prometheus" or (hooks is None and settings.metrics_path):
        from .contrib.prometheus import PrometheusMetrics, shared

        try:
            # "prometheus": in prometheus_client's own registry, so the page your application (or
            # prometheus_client.start_http_server) already serves shows jwt_wsgi's series too.
            hooks = shared() if hooks == "prometheus" else PrometheusMetrics()
        except ConfigurationError as error:
            raise ConfigurationError("metrics_path" if settings.metrics is None else "metrics", error.message) from None
    if settings.metrics_path and getattr(type(hooks), "exposition", Metrics.exposition) is Metrics.exposition:
        raise ConfigurationError("metrics_path", "the metrics hooks have no page to serve (no exposition()); "
                                 "leave metrics unset for Prometheus, or set metrics_path = off")
    return hooks  # type: ignore[no-any-return]
