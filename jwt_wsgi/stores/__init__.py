"""Shared state for revocation, refresh rotation and rate limits, chosen by URL.

``memory://`` (one process), ``sqlite:///path/file.db`` (several workers on one host),
``redis://host:port/db`` or ``rediss://`` (several hosts), ``redis+sentinel://`` (a master found
through Redis Sentinel) and ``redis+cluster://`` (Redis Cluster), each with a TLS ``rediss+`` form.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..claims import issued_at
from ..errors import ConfigurationError, RevokedToken, ServiceUnavailable, StoreUnavailable
from ..logs import throttle
from .base import Store, cutoff_after
from .memory import MemoryStore

__all__ = ["Store", "MemoryStore", "open_store", "store_kind", "check_revoked", "is_revoked", "revocation_args",
           "cutoff_after"]

log = logging.getLogger(__name__)

_SCHEMES = ("memory", "sqlite", "redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster",
            "rediss+cluster")


def store_kind(url: str) -> str:
    """The scheme of a store URL, validated (``ConfigurationError`` naming ``store`` otherwise)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError as exc:  # an unbalanced [ or ] (IPv6 literal)
        raise ConfigurationError("store", f"malformed store URL: {exc}") from None
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            "store",
            f"unsupported store URL scheme {scheme!r}; use memory://, sqlite:///path/file.db, "
            "redis://host:port/db, redis+sentinel://host:port[,host:port...]/SERVICE_NAME[/DB] "
            "or redis+cluster://host:port[,host:port...]",
        )
    return scheme


def open_store(url: str, *, clock: Callable[[], float] = time.time) -> Store:
    """Build the store a URL names. Connections are opened lazily (after gunicorn forks).

    :param clock: seconds since the epoch; injectable for tests.
    """
    kind = store_kind(url)
    if kind == "memory":
        return MemoryStore.from_url(url, clock=clock)
    if kind == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url, clock=clock)
    from .redis import RedisStore

    return RedisStore.from_url(url, clock=clock)


def revocation_args(claims: Mapping[str, Any]) -> tuple[str | None, str, float, str | None]:
    """``(jti, sub, issued, family)`` for :meth:`Store.is_revoked`, from verified claims of any issuer.

    Claims from other issuers may lack ``jti``/``fam``/``iat`` or carry them with other types:
    only strings are looked up. ``issued`` is :func:`~jwt_wsgi.claims.issued_at`: to the
    millisecond for this middleware's tokens, ``iat`` for others, and ``0.0`` without ``iat``
    (so a subject cut-off covers it).
    """
    jti, family = claims.get("jti"), claims.get("fam")
    return (
        jti if isinstance(jti, str) else None,
        claims["sub"],
        issued_at(claims),
        family if isinstance(family, str) else None,
    )


def is_revoked(store: Store, revocation: tuple[Any, ...], *, fail_open: bool = False) -> bool:
    """``store.is_revoked(*revocation)``, with the one answer to an unreachable store.

    :param fail_open: when the store is unreachable, answer "not revoked" instead of 503.
    :raises ServiceUnavailable: the store is unreachable (and ``fail_open`` is false).
    """
    try:
        return bool(store.is_revoked(*revocation))
    except StoreUnavailable:
        if fail_open:
            throttle.warning(log, "store unavailable; revocation check skipped (store_fail_open)")
            return False
        # Once per interval per process, with a count: an outage is not a line per request.
        throttle.warning(log, "store unavailable; request refused (fail closed)")
        raise ServiceUnavailable() from None


def check_revoked(store: Store, claims: Mapping[str, Any], *, fail_open: bool = False) -> None:
    """Refuse verified ``claims`` whose token was revoked (by ``jti``, family or subject cut-off).

    :param fail_open: when the store is unreachable, skip the check instead of answering 503.
    :raises RevokedToken: the token was revoked.
    :raises ServiceUnavailable: the store is unreachable (and ``fail_open`` is false).
    """
    if is_revoked(store, revocation_args(claims), fail_open=fail_open):
        raise RevokedToken()
