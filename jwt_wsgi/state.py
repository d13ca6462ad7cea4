"""Whose state is it: a per-application default store file, and the fingerprint behind it.

Two unrelated applications on one host must never share revocations or login counters by
accident. ``jwt-wsgi serve`` with several workers and ``examples/gunicorn.conf.py`` therefore
default to a SQLite file of the application's own, named after a fingerprint of what tells
applications apart: the directory it is started from, its ``MODULE:APP``, its issuer and
audience, and its keys. The fingerprint never contains a secret: a shared secret enters only as an
HMAC made *with* it (a value any token signed with that secret already reveals as much about), a
key pair as its public thumbprint, a remote JWK Set as its URL.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from typing import TYPE_CHECKING

from .settings import Settings

if TYPE_CHECKING:
    from .keys import KeyRing

__all__ = ["key_tags", "store_namespace", "state_directory", "default_store_url"]

_TAG = b"jwt_wsgi application state"


def key_tags(settings: Settings, keys: KeyRing | None = None) -> list[str]:
    """One short, non-secret tag per configured key (and the remote key sources), sorted."""
    if keys is None:
        from .keys import KeyRing

        keys = KeyRing(settings)
    tags: list[str] = []
    for key in keys.keys:
        if isinstance(key.signer, bytes) and key.public_jwk is None:
            tags.append("hmac:" + hmac.new(key.signer, _TAG, hashlib.sha256).hexdigest()[:32])
        else:
            tags.append(f"kid:{key.kid}")
    if settings.jwks_url:
        tags.append(f"jwks:{settings.jwks_url}")
    tags.extend(f"provider:{p.issuer}" for p in settings.providers)
    return sorted(tags)


def state_directory() -> str:
    """``<tmp>/jwt-wsgi-<uid>``, created mode 0700 (only this user can read or plant files)."""
    path = os.path.join(tempfile.gettempdir(), f"jwt-wsgi-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def default_store_url(app_spec: str, settings: Settings, *, cwd: str | None = None) -> str:
    """``sqlite:///<tmp>/jwt-wsgi-<uid>/<app>-<fingerprint>.db`` for the application ``app_spec``
    started from ``cwd`` (default: the current directory) with ``settings``."""
    parts = [os.path.realpath(cwd or os.getcwd()), app_spec, settings.issuer or "", repr(settings.audience),
             *key_tags(settings)]
    digest = hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = "".join(c if c.isalnum() else "-" for c in app_spec)[:40].strip("-") or "app"
    return f"sqlite:///{state_directory()}/{readable}-{digest}.db"


def store_namespace(settings: Settings, keys: KeyRing | None = None) -> str:
    """The name under which this application keeps user-named records (subject cut-offs, login
    counters) in a store that other applications may share.

    The ``issuer`` when set: it stays the same through key rotation. Otherwise the one key's tag
    (a new secret ends every earlier token anyway). With several keys or a JWK Set and no issuer
    there is nothing stable to go by: ``""``, no namespace (set ``issuer`` before sharing a store).
    """
    if settings.issuer:
        return "iss:" + settings.issuer
    tags = key_tags(settings, keys)
    return tags[0] if len(tags) == 1 and not settings.keys else ""
