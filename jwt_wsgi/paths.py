"""Canonical request paths and segment-aware prefix matching.

Servers hand the path over in different spellings (catalogue §2): gunicorn percent-decodes
``PATH_INFO`` once but keeps ``//``, dot segments, ``;params`` and case; Werkzeug's router then
merges slashes; a proxy may set ``SCRIPT_NAME``. The middleware therefore decides on the whole
path the client asked for (``SCRIPT_NAME + PATH_INFO``) after:

1. PEP 3333 decoding (latin-1 native string -> UTF-8 text; invalid bytes are replaced, never raise);
2. repeated percent-decoding (a router that decodes again must not find a protected path we missed);
3. ``\\`` read as ``/``, empty and ``.`` segments dropped, ``..`` resolved (never above the root),
   ``;params`` stripped from each segment.

``protect`` is matched on a *folded* form of that path (NFKC, case-folded, trailing dots and
spaces of each segment removed) so that every spelling an application might treat as the same
resource is protected — matching fails closed. ``public`` exceptions and the endpoint paths are
matched exactly, case included, on the canonical path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote

_MAX_DECODE_ROUNDS = 4


class BadPath(ValueError):
    """The path holds control characters (NUL, CR, LF, ...): answered with 400."""


def wsgi_to_text(native: str) -> str:
    """PEP 3333: a native string holds latin-1 decoded bytes; recover the UTF-8 text."""
    if native.isascii():
        return native
    return native.encode("latin-1", "replace").decode("utf-8", "replace")


def canonical_path(script_name: str, path_info: str) -> str:
    """The normalised path the client asked for, with a trailing ``/`` kept when present.

    :raises BadPath: when the path contains control characters.
    """
    text = wsgi_to_text(script_name + path_info)
    for _ in range(_MAX_DECODE_ROUNDS):
        if "%" not in text:
            break
        decoded = unquote(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadPath(text)
    text = text.replace("\\", "/")
    trailing = text.endswith("/") and len(text) > 1
    segments: list[str] = []
    for raw in text.split("/"):
        segment = raw.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    path = "/" + "/".join(segments)
    if trailing and segments:
        path += "/"
    return path


def fold(path: str) -> str:
    """The form ``protect`` is compared in: NFKC, case-folded, segment-trailing dots/spaces gone."""
    if not path.isascii():
        path = unicodedata.normalize("NFKC", path)
        # Zero-width and other format characters are invisible to people and some routers.
        path = "".join(c for c in path if unicodedata.category(c) != "Cf")
    path = path.casefold()
    if "." in path or " " in path:
        path = "/".join(seg.rstrip(". ") or seg for seg in path.split("/"))
    return path.rstrip("/") or "/"


class PrefixSet:
    """Segment-aware, folded prefixes: ``/api`` covers ``/api``, ``/API/``, ``/api/x``, not ``/apiary``.

    :param prefixes: absolute paths; ``/`` covers everything.
    """

    def __init__(self, prefixes: Iterable[str]) -> None:
        normal = {fold(canonical_path("", prefix)) for prefix in prefixes}
        self.everything = "/" in normal
        # Longest first, so the most specific prefix comes first in matches().
        self.prefixes = tuple(sorted(normal, key=len, reverse=True))

    def matches(self, folded_path: str) -> list[str]:
        """Every configured prefix that covers ``folded_path`` (a result of :func:`fold`)."""
        return [p for p in self.prefixes if p == "/" or folded_path == p or folded_path.startswith(p + "/")]

    def covers(self, folded_path: str) -> bool:
        if self.everything:
            return True
        for prefix in self.prefixes:
            if folded_path == prefix or folded_path.startswith(prefix + "/"):
                return True
        return False


class ExactSet:
    """Exact paths (``public`` exceptions): only the path itself, case and trailing slash included."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = frozenset(canonical_path("", p) for p in paths)

    def covers(self, path: str) -> bool:
        return path in self.paths
