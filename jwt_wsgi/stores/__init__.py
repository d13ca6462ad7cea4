"""Shared state for revocation, refresh rotation and rate limits, chosen by URL.

``memory://`` (one process), ``sqlite:///path/file.db`` (several workers on one host),
``redis://host:port/db`` or ``rediss://`` (several hosts).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import Store
from .memory import MemoryStore

__all__ = ["Store", "MemoryStore", "open_store", "store_kind"]

_SCHEMES = ("memory", "sqlite", "redis", "rediss")


def store_kind(url: str) -> str:
    """The scheme of a store URL, validated (``ConfigurationError`` naming ``store`` otherwise)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            "store",
            f"unsupported store URL {url!r}; use memory://, sqlite:///path/file.db "
            "or redis://host:port/db",
        )
    return scheme


def open_store(url: str) -> Store:
    """Build the store a URL names. Connections are opened lazily (after gunicorn forks)."""
    kind = store_kind(url)
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        from .sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    from .redis import RedisStore

    return RedisStore.from_url(url)
