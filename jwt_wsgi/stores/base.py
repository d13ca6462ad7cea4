"""The store protocol: the state every worker process (and every host) must agree on.

A store keeps four kinds of records, each with an expiry after which it may vanish:

- revoked token ids (``jti``), until the token's own ``exp``;
- per-subject cut-offs: "every token of ``sub`` issued before *T* is revoked";
- spent refresh-token ids and revoked refresh families (rotation and theft detection), and for
  ``refresh_reuse_interval`` seconds after a refresh token's first use, the successor it got;
- rate-limit counters (fixed windows that start at the first hit).

A store that can lose its records while the middleware runs (Redis restarted without
persistence, a SQLite file deleted or replaced) keeps an *epoch*: the time from which it has kept
every record, begun when it is first used empty. Every dated token issued before the epoch counts
as revoked, since its revocation (or its refresh token's use) may be among what was lost: after a
loss everyone signs in again, and no revoked token comes back. (``memory://`` lives and dies with
its process and has none.)

Every method is atomic with respect to other processes sharing the store. A store that cannot
be reached raises :class:`~jwt_wsgi.errors.StoreUnavailable`; it never hangs longer than its
configured socket timeout and never returns a guess.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable


def cutoff_after(now: float) -> float:
    """A revocation cut-off for ``now``: the start of the next millisecond. Tokens dated before
    it are revoked: every token issued up to ``now``, and those issued later in the same
    millisecond, which :func:`~jwt_wsgi.claims.issued_at` cannot tell apart (fail closed)."""
    return (math.floor(now * 1000) + 1) / 1000


@runtime_checkable
class Store(Protocol):
    """What the middleware needs from shared state. Times are POSIX seconds (floats)."""

    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        """True when ``jti`` was revoked, ``family`` was revoked, ``sub`` has a cut-off later
        than ``iat``, or ``iat`` is before the store's epoch. One round trip at most.

        ``iat`` is the issue time as precisely as it is known (see
        :func:`~jwt_wsgi.stores.revocation_args`); ``0.0`` for a token without one, which every
        subject cut-off covers but the epoch cannot judge."""
        ...

    def revoke(self, jti: str, expires_at: float) -> None:
        """Revoke one token id until ``expires_at`` (the token's ``exp``)."""
        ...

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        """Revoke every token of ``sub`` with ``iat < cutoff``; the mark lives until ``expires_at``
        (the latest ``exp`` any such token can have). A later cut-off replaces an earlier one,
        never the other way round."""
        ...

    def revoke_family(self, family: str, expires_at: float) -> None:
        """Revoke a refresh-token family (every token minted from one login) until ``expires_at``."""
        ...

    def spend(self, jti: str, expires_at: float) -> bool:
        """Mark a refresh token id as used. True the first time, False for every later call,
        across all processes: of two concurrent calls exactly one gets True."""
        ...

    def rotate(self, jti: str, expires_at: float, successor: str, reuse_interval: float) -> str | None:
        """Spend refresh token ``jti`` (as :meth:`spend`) and say which successor to answer with.

        The first call records ``successor`` (an opaque string, kept ``reuse_interval`` seconds
        from now) and returns it. A later call within that interval returns the recorded one, so
        concurrent refreshes of one client all get the same successor; any later call returns
        ``None``: the token was used before, and its family should be revoked. All of it
        atomically, across processes. ``reuse_interval`` 0 records nothing (a second call is
        always ``None``)."""
        ...

    def hit(self, key: str, window: float) -> tuple[int, float]:
        """Count one attempt under ``key``. The window starts at the first hit and lasts
        ``window`` seconds. Returns (attempts in the current window including this one,
        seconds until the window ends)."""
        ...

    def unhit(self, key: str) -> None:
        """Take back one attempt (a login that succeeded). Never goes below zero."""
        ...

    def ping(self) -> None:
        """Raise :class:`~jwt_wsgi.errors.StoreUnavailable` if the store cannot be reached."""
        ...

    def close(self) -> None:
        """Release connections. The store may be used again afterwards (it reconnects)."""
        ...
