"""A bounded cache of verified tokens: the repeated-token fast path.

Verifying a signature costs tens of microseconds; looking a token up costs a fraction of one.
The cache is safe because of what it keys on and what it keeps:

- the key is the exact token text, so a byte-different variant (``T + "="``, another signature
  spelling) never shares an entry — it is verified on its own;
- only tokens that passed full verification are stored, so an attacker cannot fill it without
  a signing key, and its memory is bounded by ``max_entries`` x ``max_token_size``;
- an entry never outlives the token's ``exp`` (plus the configured leeway — exactly the instant
  verification itself would start refusing it);
- the revocation check is *not* cached: the middleware asks the store on every request, hit or miss;
- each hit returns a fresh copy of the claims (nested lists and objects included), so an
  application that edits its claims cannot change what the next request sees.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .claims import is_numeric_date
from .stores import revocation_args


class VerifiedTokens:
    """LRU map of token text -> (claims, usable until, the store's ``is_revoked`` arguments).

    :param max_entries: the bound; ``0`` disables caching.
    :param leeway: seconds after ``exp`` during which a token still verifies.
    :param clock: seconds since the epoch; injectable for tests.
    """

    def __init__(self, max_entries: int, leeway: float = 0.0, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self.leeway = leeway
        self.clock = clock
        # token -> (claims, usable until, the store's is_revoked arguments for them, claims are flat)
        self._entries: OrderedDict[str, tuple[dict[str, Any], float, tuple[Any, ...], bool]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every verdict (the keys they were reached with have changed)."""
        with self._lock:
            self._entries.clear()

    def get(self, token: str) -> dict[str, Any] | None:
        """A copy of the cached claims, or ``None`` (unknown or expired: verify again)."""
        found = self.lookup(token)
        return None if found is None else found[0]

    def lookup(self, token: str) -> tuple[dict[str, Any], tuple[Any, ...]] | None:
        """(a copy of the claims, the arguments of the store's ``is_revoked`` for them), or ``None``."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, until, revocation, flat = entry
        if self.clock() >= until:
            with self._lock:
                self._entries.pop(token, None)
            return None
        try:
            self._entries.move_to_end(token)  # atomic under the GIL; no lock on the hot path
        except KeyError:
            pass  # evicted by another thread meanwhile: the claims we hold are still valid
        return (claims.copy() if flat else _deep(claims)), revocation

    def put(self, token: str, claims: dict[str, Any]) -> None:
        """Remember verified ``claims`` until ``exp + leeway``; the least recently used goes first."""
        if not self.max_entries:
            return
        exp = claims.get("exp")
        if not is_numeric_date(exp):
            return
        flat = not any(type(value) in (dict, list) for value in claims.values())
        entry = (claims.copy() if flat else _deep(claims), exp + self.leeway, revocation_args(claims), flat)
        with self._lock:
            self._entries[token] = entry
            self._entries.move_to_end(token)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def _deep(value: Any) -> Any:
    """A copy the application may change freely: nested lists and objects are copied too.

    Claims are JSON, so dicts, lists and immutable scalars are all there is; flat claims (the
    common case) are copied with one ``dict.copy`` instead.
    """
    if type(value) is dict:
        return {k: _deep(v) for k, v in value.items()}
    if type(value) is list:
        return [_deep(v) for v in value]
    return value
