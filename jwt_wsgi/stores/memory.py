"""``memory://`` — state in this process only: tests and single-worker development.

Bounded (``memory://?max_entries=N``, 100,000 per kind by default), with flat cost under a flood:

- records are kept in expiry order per lifetime, so expired ones are swept from the front in
  amortised O(1) — never a scan of the whole table;
- a full table never drops a live record: a full revocation table refuses further revocations
  (:class:`~jwt_wsgi.errors.StoreUnavailable`, which fails closed), and a full counter table
  answers every *new* counter as over any limit (so logins get 429 until windows end) instead of
  evicting someone's lockout.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from ..errors import ConfigurationError, StoreUnavailable

DEFAULT_MAX_ENTRIES = 100_000


class _Expiring:
    """key -> expiry, in insertion order per lifetime so the oldest expire first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.values: dict[str, float] = {}
        self._queues: dict[float, OrderedDict[str, float]] = {}

    def __len__(self) -> int:
        return len(self.values)

    def get(self, key: str, now: float) -> float | None:
        exp = self.values.get(key)
        return exp if exp is not None and exp > now else None

    def sweep(self, now: float) -> list[str]:
        """Forget expired keys (cheap: only the expired ones are touched); returns them."""
        gone: list[str] = []
        for queue in self._queues.values():
            while queue:
                key, exp = next(iter(queue.items()))
                if exp > now:
                    break
                queue.popitem(last=False)
                if self.values.get(key) == exp:
                    del self.values[key]
                    gone.append(key)
        return gone

    def put(self, key: str, expires_at: float, now: float, lifetime: float) -> bool:
        """Store ``key`` (keeping the later expiry); False when full of live records."""
        old = self.values.get(key)
        if old is None and len(self.values) >= self.max_entries:
            return False
        expires_at = max(expires_at, old or 0.0)
        self.values[key] = expires_at
        # Bucket by lifetime rounded to a second: within a bucket, insertion order ~ expiry order.
        queue = self._queues.setdefault(round(lifetime), OrderedDict())
        queue.pop(key, None)
        queue[key] = expires_at
        return True


class MemoryStore:
    """A :class:`~jwt_wsgi.stores.base.Store` held in dicts, guarded by one lock.

    :param max_entries: the bound per kind of record.
    :param clock: seconds since the epoch; injectable for tests.
    """

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._max = max_entries
        self._revoked = _Expiring(max_entries)
        self._families = _Expiring(max_entries)
        self._spent = _Expiring(max_entries)
        self._successors: dict[str, str] = {}  # spent jti -> its successor, within the reuse interval
        self._successor_expiry = _Expiring(max_entries)
        self._subjects: dict[str, tuple[float, float]] = {}  # sub -> (cutoff, expires_at)
        self._subject_expiry = _Expiring(max_entries)
        self._counters: dict[str, list[float]] = {}  # key -> [count, window_ends_at]
        self._counter_expiry = _Expiring(max_entries)

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> MemoryStore:
        params = dict(parse_qsl(urlsplit(url).query))
        unknown = set(params) - {"max_entries"}
        if unknown:
            raise ConfigurationError("store", f"unknown memory:// parameter {sorted(unknown)[0]!r}")
        try:
            max_entries = int(params.get("max_entries", DEFAULT_MAX_ENTRIES))
        except ValueError:
            raise ConfigurationError("store", "memory://?max_entries= takes a whole number") from None
        if max_entries < 1:
            raise ConfigurationError("store", "memory://?max_entries= must be at least 1")
        return cls(max_entries=max_entries, clock=clock)

    def stats(self) -> dict[str, int]:
        """How many live-or-not-yet-swept records of each kind are held (for monitoring and tests)."""
        return {"revoked": len(self._revoked), "families": len(self._families), "spent": len(self._spent),
                "subjects": len(self._subjects), "counters": len(self._counters),
                "successors": len(self._successors)}

    # -- revocation --------------------------------------------------------------------------
    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        now = self._clock()
        if jti is not None and self._revoked.get(jti, now) is not None:
            return True
        if family is not None and self._families.get(family, now) is not None:
            return True
        mark = self._subjects.get(sub)
        return mark is not None and mark[1] > now and iat < mark[0]

    def _put(self, table: _Expiring, key: str, expires_at: float) -> None:
        with self._lock:
            now = self._clock()
            table.sweep(now)
            if not table.put(key, expires_at, now, expires_at - now):
                raise StoreUnavailable("memory store is full")

    def revoke(self, jti: str, expires_at: float) -> None:
        self._put(self._revoked, jti, expires_at)

    def revoke_family(self, family: str, expires_at: float) -> None:
        self._put(self._families, family, expires_at)

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        with self._lock:
            now = self._clock()
            for key in self._subject_expiry.sweep(now):
                self._subjects.pop(key, None)
            old = self._subjects.get(sub)
            if old is not None and old[1] > now:
                cutoff, expires_at = max(cutoff, old[0]), max(expires_at, old[1])
            if not self._subject_expiry.put(sub, expires_at, now, expires_at - now):
                raise StoreUnavailable("memory store is full")
            self._subjects[sub] = (cutoff, expires_at)

    def spend(self, jti: str, expires_at: float) -> bool:
        with self._lock:
            now = self._clock()
            if self._spent.get(jti, now) is not None:
                return False
            self._spent.sweep(now)
            if not self._spent.put(jti, expires_at, now, expires_at - now):
                raise StoreUnavailable("memory store is full")
            return True

    def rotate(self, jti: str, expires_at: float, successor: str, reuse_interval: float) -> str | None:
        with self._lock:
            now = self._clock()
            if self._spent.get(jti, now) is not None:
                if self._successor_expiry.get(jti, now) is None:
                    return None
                return self._successors.get(jti)
            self._spent.sweep(now)
            if not self._spent.put(jti, expires_at, now, expires_at - now):
                raise StoreUnavailable("memory store is full")
            if reuse_interval > 0:
                for gone in self._successor_expiry.sweep(now):
                    self._successors.pop(gone, None)
                # Full: nothing recorded, so a repeat counts as reuse (fail closed).
                if self._successor_expiry.put(jti, now + reuse_interval, now, reuse_interval):
                    self._successors[jti] = successor
            return successor

    # -- rate limits -------------------------------------------------------------------------
    def hit(self, key: str, window: float) -> tuple[int, float]:
        with self._lock:
            now = self._clock()
            for gone in self._counter_expiry.sweep(now):
                self._counters.pop(gone, None)
            entry = self._counters.get(key)
            if entry is not None and entry[1] <= now:
                entry = None
            if entry is None:
                ends = now + window
                if not self._counter_expiry.put(key, ends, now, window):
                    # Full of live counters: treat the newcomer as over every limit rather than
                    # evicting (and so resetting) somebody's lockout.
                    return sys.maxsize, window
                entry = [0, ends]
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
