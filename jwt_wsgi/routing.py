"""The route decision: what the middleware does with one request path, decided once per path.

A :class:`Router` is built once from the settings and the table of endpoint paths; it answers
with a :class:`Route`, a kind and, for protected paths, the scopes they require. The decision
reads the path every way a router behind us could (:func:`~jwt_wsgi.paths.readings`), so the
middleware, forward auth and the health check all see one answer for one path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from .paths import BadPath, ExactSet, PrefixSet, fold, readings
from .responses import StartResponse
from .settings import Settings

#: A WSGI callable the middleware answers with itself (login, JWKS, health, ``verify_path`` ...).
Handler = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Distinct paths remembered; the path space is the client's to choose, so the memo is bounded.
MAX_ROUTES = 4096


class Kind(enum.Enum):
    """What a path is."""

    ENDPOINT = "endpoint"  # answered by the middleware itself, no token required
    OPEN = "open"  # outside protect: a valid token fills in the claims, anything else is ignored
    PROTECTED = "protected"  # a valid token is required, with the route's scopes
    MALFORMED = "malformed"  # control characters, bad escapes: 400 whatever else is sent


class Route(NamedTuple):
    """The decision for one path: its kind, the scopes it requires, the endpoint that answers it."""

    kind: Kind
    scopes: tuple[str, ...] = ()  # PROTECTED only: every one is required (in configuration order)
    endpoint: Handler | None = None  # ENDPOINT only


OPEN_ROUTE = Route(Kind.OPEN)
MALFORMED_ROUTE = Route(Kind.MALFORMED)


class Router:
    """Decides on every reading of a path; remembers the decision (bounded).

    :param settings: ``protect``, ``public`` and ``scopes`` are read from them.
    :param endpoints: path -> the handler the middleware answers that exact path with.
    """

    def __init__(self, settings: Settings, endpoints: Mapping[str, Handler]) -> None:
        self.endpoints = dict(endpoints)
        self._protect = PrefixSet(settings.protect)
        self._public = ExactSet(settings.public)
        self._scopes = [(PrefixSet([prefix]), tuple(scopes)) for prefix, scopes in settings.scopes.items()]
        #: ``(SCRIPT_NAME, PATH_INFO)`` -> its route. Read directly on the request path (one dict
        #: lookup); cleared in place when full, so a reference to it stays valid.
        self.memo: dict[tuple[str, str], Route] = {}

    def route(self, key: tuple[str, str]) -> Route:
        """The route of ``(SCRIPT_NAME, PATH_INFO)``: from the memo, or decided and remembered."""
        route = self.memo.get(key)
        if route is None:
            route = self.decide(*key)
            if len(self.memo) >= MAX_ROUTES:
                self.memo.clear()
            self.memo[key] = route
        return route

    def decide(self, script_name: str, path_info: str) -> Route:
        """Decide on every reading of the path a router could take (:func:`~jwt_wsgi.paths.readings`).

        The request is protected when *any* reading falls under ``protect`` (and is not exactly a
        ``public`` path); its required scopes are those of every protected reading. An endpoint
        answers it only when *every* reading names that endpoint. So ``/api/../x`` is protected
        for a router that reads ``..`` literally and for one that resolves it, and a
        ``SCRIPT_NAME`` set by a proxy can neither hide nor move a protected path.
        """
        try:
            if script_name:
                bases = [readings("", script_name + path_info), readings("", path_info)]
                paths = bases[0] | bases[1]  # what readings(script_name, path_info) gives
            else:
                paths = readings("", path_info)
                bases = [paths]
        except BadPath:
            return MALFORMED_ROUTE
        for base in bases:
            named = {self.endpoints.get(path) for path in base}
            if len(named) == 1 and None not in named:
                return Route(Kind.ENDPOINT, endpoint=named.pop())
        protected = False
        scopes: list[str] = []
        for path in sorted(paths):
            folded = fold(path)
            if not self._protect.covers(folded) or self._public.covers(path):
                continue
            protected = True
            for prefixes, required in self._scopes:
                if prefixes.covers(folded):
                    scopes.extend(s for s in required if s not in scopes)
        return Route(Kind.PROTECTED, tuple(scopes)) if protected else OPEN_ROUTE
