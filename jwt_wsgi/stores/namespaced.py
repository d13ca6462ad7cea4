"""One application's records in a store that others may share.

Two applications pointed at one SQLite file or one Redis database must not act on each other's
users: a "log out everywhere" for ``alice`` in one, or six wrong passwords for ``alice`` in the
other, concern only the application where they happened. Token ids (``jti``) and refresh
families are random per token, so they cannot meet; what names a *user* can: subject cut-offs
and the login counters (by user name and by client address). :class:`NamespacedStore` prefixes
those with the application's namespace (see :func:`jwt_wsgi.state.store_namespace`).

Subject cut-offs written before namespacing existed carry no prefix. So that an upgrade never
brings a revoked token back, a token issued before this process started is also checked against
the unprefixed cut-off of its subject (one more look-up, for tokens older than the process only).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from .base import Store

__all__ = ["NamespacedStore", "namespaced"]

_SEPARATOR = "\x1f"  # cannot occur in a namespace digest; a subject may contain anything


class NamespacedStore:
    """``store`` with subject cut-offs and rate-limit counters kept under ``namespace``.

    Every other call goes to ``store`` unchanged (attributes too: ``path``, ``epoch``, ...).

    :param store: the shared store.
    :param namespace: any string naming the application; only a digest of it is stored.
    :param started: when this process began using it [now, by ``clock``].
    :param clock: seconds since the epoch.
    """

    def __init__(self, store: Store, namespace: str, *, started: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.namespace = namespace
        self._prefix = hashlib.sha256(namespace.encode("utf-8", "surrogatepass")).hexdigest()[:16] + _SEPARATOR
        # Whole seconds: our tokens carry integer iat, so one issued in this very second is new.
        self._started = int(clock() if started is None else started)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def __repr__(self) -> str:
        return f"NamespacedStore({self.store!r}, namespace digest {self._prefix[:-1]})"

    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        if self.store.is_revoked(jti, self._prefix + sub, iat, family):
            return True
        # A cut-off from before namespacing (an upgrade) still holds for the tokens it covered.
        return iat < self._started and self.store.is_revoked(None, sub, iat, None)

    def revoke(self, jti: str, expires_at: float) -> None:
        self.store.revoke(jti, expires_at)

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        self.store.revoke_subject(self._prefix + sub, cutoff, expires_at)

    def revoke_family(self, family: str, expires_at: float) -> None:
        self.store.revoke_family(family, expires_at)

    def spend(self, jti: str, expires_at: float) -> bool:
        return self.store.spend(jti, expires_at)

    def rotate(self, jti: str, expires_at: float, successor: str, reuse_interval: float) -> str | None:
        return self.store.rotate(jti, expires_at, successor, reuse_interval)

    def hit(self, key: str, window: float) -> tuple[int, float]:
        return self.store.hit(self._prefix + key, window)

    def unhit(self, key: str) -> None:
        self.store.unhit(self._prefix + key)

    def ping(self) -> None:
        self.store.ping()

    def close(self) -> None:
        self.store.close()


def namespaced(store: Store, namespace: str, *, clock: Callable[[], float] = time.time) -> Store:
    """``store`` under ``namespace``; unchanged when there is none, or for ``memory://`` (a memory
    store belongs to one middleware in one process: nothing else can share it)."""
    from .memory import MemoryStore

    if not namespace or isinstance(store, MemoryStore):
        return store
    return NamespacedStore(store, namespace, clock=clock)
