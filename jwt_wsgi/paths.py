"""Readings of a request path, and segment-aware prefix matching.

The middleware and the application's router must never disagree about which resource a request
names. Servers hand the path over in different spellings (gunicorn percent-decodes ``PATH_INFO``
once but keeps ``//``, dot segments, ``;params`` and case; a proxy may set ``SCRIPT_NAME``), and
routers read what they get in different ways: Werkzeug, Flask, Bottle, Django, Pyramid, Falcon
and hand-written prefix routers match ``PATH_INFO`` as it is, where ``..`` is literal text;
others resolve dot segments, decode again, or take ``\\`` for ``/``.

So a path is not decided on one canonical form. :func:`readings` lists every form a router
could take -- the path exactly as the server passed it; after each further percent-decoding
round; with ``\\`` as itself and as ``/``; with ``;params`` kept and stripped; with dot segments
kept as literal text and resolved -- and the middleware protects the request when *any* reading
falls under ``protect``, and exempts it (``public``, endpoint paths) only when *every* reading
agrees (see docs/threat-model.md, "Paths and routing").

``protect`` is matched on a *folded* form (NFKC, case-folded, trailing dots and spaces of each
segment removed) so that every spelling an application might treat as the same resource is
protected -- matching fails closed. ``public`` exceptions and the endpoint paths are matched
exactly, case included.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote

_MAX_DECODE_ROUNDS = 4


class BadPath(ValueError):
    """The path holds control characters (NUL, CR, LF, ...): answered with 400."""


def wsgi_to_text(native: str, errors: str = "replace") -> str:
    """PEP 3333: a native string holds latin-1 decoded bytes; recover the UTF-8 text.

    :param errors: what becomes of bytes that are not UTF-8: ``replace`` (U+FFFD) or ``ignore``.
    """
    if native.isascii():
        return native
    return native.encode("latin-1", "replace").decode("utf-8", errors)


def canonical_path(script_name: str, path_info: str) -> str:
    """The normalised path the client asked for, with a trailing ``/`` kept when present.

    :raises BadPath: when the path contains control characters.
    """
    text = _decoding_rounds(wsgi_to_text(script_name + path_info), "replace")[-1]
    if _is_control(text):
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


def _is_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _decoding_rounds(text: str, errors: str) -> list[str]:
    """``text`` and each further percent-decoding of it (bounded), until nothing changes."""
    rounds = [text]
    for _ in range(_MAX_DECODE_ROUNDS):
        if "%" not in text:
            break
        decoded = unquote(text, errors=errors)
        if decoded == text:
            break
        rounds.append(decoded)
        text = decoded
    return rounds


def _segment_forms(text: str) -> set[str]:
    """``text`` as segments with empty ones dropped: ``;params`` kept and stripped, dot segments
    literal and resolved (``..`` never above the root); a trailing ``/`` is kept."""
    trailing = text.endswith("/") and len(text) > 1
    raw = [segment for segment in text.split("/") if segment]
    variants = [raw]
    if any(";" in segment for segment in raw):
        variants.append([segment.split(";", 1)[0] for segment in raw])
    forms: set[str] = set()
    for segments in variants:
        kept = [segment for segment in segments if segment]
        resolved: list[str] = []
        for segment in kept:
            if segment == ".":
                continue
            if segment == "..":
                if resolved:
                    resolved.pop()
                continue
            resolved.append(segment)
        for path_segments in (kept, resolved):
            path = "/" + "/".join(path_segments)
            if trailing and path_segments:
                path += "/"
            forms.add(path)
    return forms


def readings(script_name: str, path_info: str) -> frozenset[str]:
    """Every path a router could read this request as (see the module docstring).

    The readings of ``SCRIPT_NAME + PATH_INFO`` (what the client asked for) and of ``PATH_INFO``
    alone (what routers inside a mount dispatch on) are both included, so a ``SCRIPT_NAME`` set by
    a proxy can neither hide nor move a protected path. :func:`canonical_path` of the request is
    always among them.

    :raises BadPath: when any reading holds control characters (NUL, CR, LF, ...).
    """
    found: set[str] = set()
    bases = [script_name + path_info, path_info] if script_name else [path_info]
    texts: set[str] = set()
    for base in bases:
        texts.update(_decoding_rounds(wsgi_to_text(base), "replace"))
        if not base.isascii() or "%" in base:
            # Bytes that are not UTF-8 replaced (Werkzeug, Django) or dropped (Bottle decodes
            # with errors="ignore": "/a\xffpi" is its "/api").
            texts.update(_decoding_rounds(wsgi_to_text(base, "ignore"), "ignore"))
    for text in texts:
        if _is_control(text):
            raise BadPath(text)
        for spelling in {text, text.replace("\\", "/")}:
            found.add(spelling if spelling.startswith("/") else "/" + spelling)
            found |= _segment_forms(spelling)
    return frozenset(found)


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
