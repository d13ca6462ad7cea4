"""Network helpers shared by the configuration checks and the remote key client."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from .errors import ConfigurationError


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address: the only hosts plain HTTP may be used with."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(option: str, url: str) -> None:
    """An ``https://`` URL (plain ``http://`` only for a loopback host: tests, sidecars)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise ConfigurationError(option, f"{url!r} is not a valid URL") from None
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return
    raise ConfigurationError(
        option, f"{url!r} must be an https:// URL (plain http:// is allowed only for localhost, for tests)"
    )
