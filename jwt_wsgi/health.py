"""The health check at ``health_path``: can this process verify a token and reach its store?

Answered by the middleware without a token, for load balancers and orchestrators probing every
second or so, so it is cheap: the verdict is kept for :data:`VERDICT_TTL` seconds per process (a
flood of probes costs at most one store round trip per second per worker, however many threads),
the store's ``ping`` is bounded by its own socket timeout, and a remote JWK Set is fetched only
while this process has no usable keys from it (cooldown permitting), never refreshed from here.

The body names the failure with a fixed phrase (``"no keys"``, ``"store unreachable"``), never
an exception text, URL or secret; the details go to the log, once per change of verdict.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .errors import MethodNotAllowed, StoreUnavailable
from .keys import KeyRing
from .responses import NO_STORE, StartResponse, json_response
from .stores import Store

log = logging.getLogger(__name__)

#: Seconds a verdict is reused by the same process.
VERDICT_TTL = 1.0

NO_KEYS = "no keys"
STORE_UNREACHABLE = "store unreachable"


class Health:
    """A WSGI handler answering ``GET``/``HEAD`` with 200 or 503 (``405`` otherwise).

    :param keys: the middleware's keys.
    :param store: the store to ping, looked up on every check (so it can be swapped, wrapped).
    :param clock: seconds; the verdict is reused while less than :data:`VERDICT_TTL` of them pass.
    """

    def __init__(self, keys: KeyRing, store: Callable[[], Store], clock: Callable[[], float]) -> None:
        self.keys = keys
        self.store = store
        self.clock = clock
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._reasons: tuple[str, ...] | None = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            raise MethodNotAllowed("GET, HEAD")
        reasons = self.reasons()
        if reasons:
            body = {"status": "unavailable", "reason": ", ".join(reasons)}
            return json_response(start_response, 503, body, NO_STORE)
        return json_response(start_response, 200, {"status": "ok"}, NO_STORE)

    def reasons(self) -> tuple[str, ...]:
        """Why this process is not healthy (empty when it is); checked at most once per :data:`VERDICT_TTL`."""
        with self._lock:  # concurrent probes share one check rather than each pinging the store
            now = self.clock()
            if self._reasons is not None and self._checked <= now < self._checked + VERDICT_TTL:
                return self._reasons
            reasons = self._check()
            if reasons != self._reasons:
                if reasons:
                    log.warning("health check: unavailable (%s)", ", ".join(reasons))
                elif self._reasons is not None:
                    log.info("health check: ok again")
            self._reasons = reasons
            self._checked = self.clock()
            return reasons

    def _check(self) -> tuple[str, ...]:
        reasons = []
        try:
            keys_ready = self.keys.ready()
        except Exception:  # never an exception out of a probe: a failure is a verdict
            log.exception("health check: the key check failed")
            keys_ready = False
        if not keys_ready:
            reasons.append(NO_KEYS)
        try:
            self.store().ping()
        except StoreUnavailable as exc:
            log.debug("health check: %s", exc)
            reasons.append(STORE_UNREACHABLE)
        except Exception:
            log.exception("health check: the store ping failed")
            reasons.append(STORE_UNREACHABLE)
        return tuple(reasons)
