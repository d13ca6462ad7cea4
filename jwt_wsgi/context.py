"""The request context: the environ keys a verified request carries, and the request in hand.

Both the middleware (which sets them) and the views (which read them) import this module, so
neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

CLAIMS_KEY = "jwt_wsgi.claims"
USER_KEY = "jwt_wsgi.user"  # what user_loader returned, when one is configured
RENDERER_KEY = "jwt_wsgi.errors"  # how this middleware renders errors, for requires()
ENVIRON_PREFIX = "jwt_wsgi."

#: The environ of the request being handled on this thread/task (for :func:`jwt_wsgi.requires`).
current_environ: ContextVar[dict[str, Any] | None] = ContextVar("jwt_wsgi_environ", default=None)


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """Scopes granted by a token: ``scope`` (space-delimited, RFC 8693) or ``scp``/``scopes``."""
    granted: set[str] = set()
    for name in ("scope", "scp", "scopes"):
        value = claims.get(name)
        if isinstance(value, str):
            granted.update(value.split())
        elif isinstance(value, list):
            granted.update(v for v in value if isinstance(v, str))
    return frozenset(granted)
