"""``memory://`` — state in this process only: tests and single-worker development.

Bounded: at most ``max_entries`` records per kind; expired records are swept as new ones arrive,
and when a kind is full the records closest to expiry are dropped first (revocations are never
dropped before their expiry: a full revocation table refuses further revocations by raising
:class:`~jwt_wsgi.errors.StoreUnavailable`, which fails closed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import StoreUnavailable


class MemoryStore:
    """A :class:`~jwt_wsgi.stores.base.Store` held in a dict, guarded by one lock."""

    def __init__(self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._max = max_entries
        self._revoked: dict[str, float] = {}
        self._families: dict[str, float] = {}
        self._spent: dict[str, float] = {}
        # sub -> (cutoff, expires_at)
        self._subjects: dict[str, tuple[float, float]] = {}
        # key -> [count, window_ends_at]
        self._counters: dict[str, list[float]] = {}

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _sweep(table: dict[str, float], now: float) -> None:
        for key in [k for k, exp in table.items() if exp <= now]:
            del table[key]

    def _room(self, table: dict[str, float], now: float, *, may_evict: bool) -> None:
        if len(table) < self._max:
            return
        self._sweep(table, now)
        if len(table) < self._max:
            return
        if not may_evict:
            raise StoreUnavailable("memory store is full")
        # Drop the entry that expires first.
        del table[min(table, key=table.__getitem__)]

    # -- revocation --------------------------------------------------------------------------
    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        now = self._clock()
        if jti is not None:
            exp = self._revoked.get(jti)
            if exp is not None and exp > now:
                return True
        if family is not None:
            exp = self._families.get(family)
            if exp is not None and exp > now:
                return True
        mark = self._subjects.get(sub)
        return mark is not None and mark[1] > now and iat < mark[0]

    def revoke(self, jti: str, expires_at: float) -> None:
        with self._lock:
            now = self._clock()
            self._room(self._revoked, now, may_evict=False)
            self._revoked[jti] = max(expires_at, self._revoked.get(jti, 0.0))

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        with self._lock:
            now = self._clock()
            old = self._subjects.get(sub)
            if old is not None and old[1] > now:
                cutoff, expires_at = max(cutoff, old[0]), max(expires_at, old[1])
            elif len(self._subjects) >= self._max:
                for key in [k for k, v in self._subjects.items() if v[1] <= now]:
                    del self._subjects[key]
                if len(self._subjects) >= self._max:
                    raise StoreUnavailable("memory store is full")
            self._subjects[sub] = (cutoff, expires_at)

    def revoke_family(self, family: str, expires_at: float) -> None:
        with self._lock:
            now = self._clock()
            self._room(self._families, now, may_evict=False)
            self._families[family] = max(expires_at, self._families.get(family, 0.0))

    def spend(self, jti: str, expires_at: float) -> bool:
        with self._lock:
            now = self._clock()
            exp = self._spent.get(jti)
            if exp is not None and exp > now:
                return False
            self._room(self._spent, now, may_evict=False)
            self._spent[jti] = expires_at
            return True

    # -- rate limits -------------------------------------------------------------------------
    def hit(self, key: str, window: float) -> tuple[int, float]:
        with self._lock:
            now = self._clock()
            entry = self._counters.get(key)
            if entry is None or entry[1] <= now:
                if entry is None and len(self._counters) >= self._max:
                    for k in [k for k, v in self._counters.items() if v[1] <= now]:
                        del self._counters[k]
                    if len(self._counters) >= self._max:
                        # Evicting a live counter would reset someone's limit: evict the one
                        # closest to the end of its window, which loses the least.
                        del self._counters[min(self._counters, key=lambda k: self._counters[k][1])]
                entry = [0, now + window]
                self._counters[key] = entry
            entry[0] += 1
            return int(entry[0]), max(entry[1] - now, 0.0)

    def unhit(self, key: str) -> None:
        with self._lock:
            entry = self._counters.get(key)
            if entry is not None and entry[0] > 0:
                entry[0] -= 1

    # -- lifecycle ---------------------------------------------------------------------------
    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
