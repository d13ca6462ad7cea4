"""What the claims of a token mean to this package: reserved names, NumericDates, issue times.

A leaf module (standard library only), shared by the verifier, the issuer, the stores and the
views.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, TypeGuard

#: Claims this middleware sets itself; ``issue_tokens`` and users files may not override them.
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "type", "fam"})
#: Set on access tokens minted by a login with a password (not by a refresh): see ``requires(fresh=True)``.
FRESH_CLAIM = "fresh"
#: Every claim a token minted here gets from the middleware, ``fresh`` included: what the
#: application's own claims (``issue_tokens``) may not set.
MINTED_CLAIMS = RESERVED_CLAIMS | {FRESH_CLAIM}

# The largest NumericDate accepted: the last second of the year 9999. Any time claim beyond it
# (a 400-digit integer, 1e400 read as infinity, NaN) is refused as a malformed token rather than
# reaching arithmetic that would overflow; within it, every value converts to a float exactly
# enough for the stores and the cache.
MAX_NUMERIC_DATE = 253_402_300_799


def is_numeric_date(value: Any) -> TypeGuard[int | float]:
    """A JSON number usable as a NumericDate: an int or float (not a bool) within ±year 9999.

    Comparisons only (no ``float()``/``math.isfinite`` on the value), so no integer is too large
    to check: NaN fails both comparisons, infinities and huge integers the bound.
    """
    return type(value) in (int, float) and -MAX_NUMERIC_DATE <= value <= MAX_NUMERIC_DATE


def time_ordered_id(now: float) -> str:
    """A UUIDv7 (RFC 9562 §5.7) as 32 hex digits: the millisecond of ``now``, then 74 random bits.

    Unique and opaque to anyone else, and it dates the token to the millisecond where ``iat``
    (whole seconds) cannot: see :func:`issued_at`.
    """
    millis = math.floor(now * 1000) & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")
    value = millis << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (1 << 62) - 1)
    return f"{value:032x}"


def issued_at(claims: Mapping[str, Any]) -> float:
    """When a token was issued, as precisely as its claims tell; ``0.0`` when they do not.

    ``iat`` counts whole seconds in this middleware's tokens (and most others). A jti made by
    :func:`time_ordered_id` in that same second gives the millisecond; anything else is judged by
    ``iat`` alone, that is as early in its second as it could be, so a cut-off within that second
    covers it (fail closed).
    """
    iat = claims.get("iat")
    if not is_numeric_date(iat):
        return 0.0
    jti = claims.get("jti")
    if type(jti) is str and len(jti) == 32 and jti[12] == "7":
        try:
            millis = int(jti[:12], 16)
        except ValueError:
            return float(iat)
        if millis // 1000 == math.floor(iat):
            return millis / 1000
    return float(iat)
