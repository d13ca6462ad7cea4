"""Keys from a JWK Set published by another issuer (``jwks_url``, or OpenID Connect discovery).

What can go wrong with a remote key set, and what this module does about it:

- **Nothing happens at import or construction.** The first token that needs a key fetches the
  set, in the worker process that received it, so gunicorn's master never fetches before it
  forks and no thread is ever started. A lock created in the parent is replaced in each child
  (``os.register_at_fork``), so a fork taken mid-fetch cannot leave a worker deadlocked.
- **A rotation at the issuer is picked up within seconds; a token still cannot make us fetch
  often.** A refetch happens when the cache's TTL is over, or for a ``kid`` we do not know, but
  never within ``cooldown`` seconds (default 5) of the end of the previous fetch, per process,
  whatever the tokens say: a flood of random ``kid`` values costs at most one fetch per
  ``cooldown`` seconds, and a token signed with a freshly published key waits at most that long.
  Concurrent requests share one fetch (single flight): those that need it wait for the fetch
  under way and use its result; those whose key is already cached do not wait for a TTL refresh.
- **A slow or broken endpoint cannot hang a worker.** One deadline (``timeout``) covers
  discovery and the JWK Set together: connect, every read, the whole body. Redirects are not
  followed, bodies over ``max_bytes`` are refused, anything but ``200`` + a JSON JWK Set fails
  (:class:`JWKSClient`: PyJWT's client with that fetch).
- **Time is the caller's clock** (wall-clock seconds, injectable): TTL and cooldown are counted
  on it; a clock stepped backwards cannot stretch either beyond its configured length. Only the
  socket deadline is on ``time.monotonic``.
- **Stale-while-error.** A failed refresh keeps the last good key set; only a process that has
  never had keys answers ``503`` (:class:`~jwt_wsgi.errors.ServiceUnavailable`), never ``500``,
  never "accept".
- **The set cannot widen what is accepted.** Keys are kept only if their type (and ``alg``, when
  given) fits the configured algorithms, they are meant for signatures, and they are strong
  enough (RSA >= 2048 bits); only public members are used. Symmetric (``oct``) keys are ignored.
"""

from __future__ import annotations

import functools
import http.client
import json
import logging
import math
import os
import socket
import ssl
import threading
import time
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jwt

from ._version import __version__
from .errors import ConfigurationError, InvalidToken, ServiceUnavailable
from .jose import CURVES, KEY_TYPES, PUBLIC_MEMBERS, KidTable, check_key_type
from .net import check_url, is_loopback

log = logging.getLogger(__name__)

MAX_BYTES = 512 * 1024  # real JWK Sets are a few KiB; Entra ID's, the largest common one, ~20 KiB
MAX_KEYS = 100
_ACCEPT = "application/jwk-set+json, application/json;q=0.9"
_OKP_CURVES = ("Ed25519", "Ed448")


class FetchError(jwt.PyJWKClientConnectionError):
    """A fetch failed; the message is for logs (no token or secret is ever part of it).

    :ivar url: the URL that failed (the discovery document or the JWK Set), when known.
    """

    def __init__(self, reason: str, url: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.url = url


class _State(NamedTuple):
    loaded: bool
    table: KidTable
    expires: float  # clock time after which the next token triggers a refresh
    prints: frozenset[tuple[Any, ...]] = frozenset()  # (kid, algorithm, public members) of each key


_EMPTY = _State(False, KidTable.build(()), 0.0)
_instances: weakref.WeakSet[RemoteKeySet] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for remote in list(_instances):
        remote._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class RemoteKeySet:
    """Verification keys from a JWK Set URL, cached, refreshed safely.

    .. code-block:: python

        keys = RemoteKeySet(algorithms=["RS256"], jwks_url="https://idp.example/.well-known/jwks.json")
        for key in keys.verification_keys(jwt.get_unverified_header(token)):
            ...  # jwt.decode(token, key=key, algorithms=[key.algorithm_name]) until one verifies

    :param algorithms: the configured algorithms; keys that fit none of them are ignored.
    :param jwks_url: the JWK Set URL; without it, ``issuer`` is discovered (OpenID Connect
        Discovery 1.0 §4: ``{issuer}/.well-known/openid-configuration`` -> ``jwks_uri``).
    :param ttl: seconds a fetched set is used before it is refreshed.
    :param timeout: seconds one refresh (discovery included) may take in all.
    :param cooldown: at least this many seconds from the end of one fetch to the start of the
        next: how soon an unknown ``kid`` can be looked up again, and the bound on a flood.
    :param clock: wall-clock seconds (default :func:`time.time`), the middleware's clock: TTL
        and cooldown are counted on it.
    :param on_change: called after a refresh in which a key disappeared from the set (so that
        whatever was verified with it, and cached, can be forgotten).
    """

    def __init__(
        self,
        *,
        algorithms: Sequence[str],
        jwks_url: str | None = None,
        issuer: str | None = None,
        ttl: float = 600.0,
        timeout: float = 3.0,
        cooldown: float = 5.0,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if jwks_url is None and issuer is None:
            raise ConfigurationError("jwks_url", "give a JWK Set URL or an issuer to discover it from")
        check_url("jwks_url" if jwks_url else "issuer", jwks_url or issuer or "")
        self.algorithms = tuple(algorithms)
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.ttl = ttl
        self.timeout = timeout
        self.cooldown = cooldown
        self.max_bytes = max_bytes
        self.clock = clock
        self.on_change = on_change
        self.fetches = 0  # attempts made by this process (for tests and `jwt-wsgi check`)
        self._accepted = frozenset(self.algorithms)
        self._state = _EMPTY
        self._next_fetch = -math.inf  # no fetch before this clock time (the cooldown)
        self._generation = 0  # fetches started: a thread that waited sees whether one happened
        self._lock = threading.Lock()
        # The JWK Set's client: known now, or once discovery has named the URL.
        self._client = self._client_for(jwks_url) if jwks_url else None
        _instances.add(self)

    # -- the per-token path --------------------------------------------------------------------
    def verification_keys(self, header: dict[str, Any]) -> tuple[jwt.PyJWK, ...]:
        """The keys to try for a token's header, in order (the rules of :class:`KidTable`).

        An unknown ``kid`` first refetches the set (the issuer may have rotated; cooldown
        permitting); if it is still unknown and the set has exactly one key for the algorithm,
        that key is tried (an issuer that names its keys differently from its tokens).

        :raises InvalidToken: no key fits (after at most one refresh, cooldown permitting).
        :raises ServiceUnavailable: no key set could ever be fetched.
        """
        alg = header.get("alg")
        kid = header.get("kid")
        # Refused before any fetch: a token cannot make us fetch for an algorithm we never accept.
        if not isinstance(alg, str) or alg not in self._accepted or not (kid is None or isinstance(kid, str)):
            raise InvalidToken()
        state = self._state
        if self._expired(state):
            # The TTL is over: one thread refreshes; meanwhile the others go on with the keys
            # they have (they wait only when there are none yet).
            state = self._refresh(wait=not state.loaded)
        keys = state.table.select(kid, alg, any_kid=False)
        if not keys:
            # Perhaps the issuer rotated its keys: refetch, or share the fetch under way, unless
            # the cooldown says we just did.
            state = self._refresh(wait=True)
            keys = state.table.select(kid, alg, any_kid=True)
            if not keys:
                raise InvalidToken()
        return keys

    def refresh_if_due(self) -> None:
        """Refresh now if keys were loaded and their TTL is over (cooldown permitting).

        Before the first fetch there is nothing to refresh (and nothing verified with it), so a
        token that never reaches a key lookup never causes a fetch. Failures keep the last set.
        Never waits for a refresh another thread has under way.
        """
        state = self._state
        if state.loaded and self._expired(state):
            self._refresh(wait=False)

    def ready(self) -> bool:
        """Whether usable keys are in hand: a set fetched at least once, with a key that fits.

        For a health check. With keys in hand nothing is fetched (a due refresh is left to the
        tokens); without, one fetch is tried, cooldown permitting (waiting for one under way),
        so a new worker becomes ready without waiting for a token, and a flood of checks
        costs at most one fetch per ``cooldown`` seconds.
        """
        if not self._state.prints:
            try:
                self._refresh(wait=True)
            except ServiceUnavailable:
                return False
        return bool(self._state.prints)

    def probe(self) -> tuple[str, int]:
        """Fetch now, discovery included, whatever the cache and the cooldown say (for
        ``jwt-wsgi check``); the cached keys are left alone.

        :returns: the JWK Set URL and how many of its keys are usable for the configured
            algorithms (a key usable for two of them counts twice).
        :raises FetchError: naming the URL that failed and why.
        """
        deadline = time.monotonic() + self.timeout
        client = self._client_for(self.jwks_url) if self.jwks_url else self._discover(deadline)
        return client.uri, len(self._parse(client, deadline).prints)

    # -- time ----------------------------------------------------------------------------------
    # The clock is wall-clock time: a step backwards must not stretch a TTL or a cooldown to the
    # size of the step, so each is capped at its configured length from now.
    def _expired(self, state: _State) -> bool:
        left = state.expires - self.clock()
        return left <= 0 or left > max(self.ttl, self.cooldown)

    def _cooling(self, now: float) -> float:
        """Seconds until the cooldown allows a fetch (0: now)."""
        left = self._next_fetch - now
        return left if 0 < left <= self.cooldown else 0.0

    # -- refreshing ----------------------------------------------------------------------------
    def _refresh(self, *, wait: bool) -> _State:
        """A fresh state if the cooldown allows a fetch now, else the current one.

        Single flight: a thread that finds a fetch under way waits for it (``wait``, bounded)
        and uses its result rather than fetching again; without ``wait`` it goes on at once.
        """
        generation = self._generation
        acquired = self._lock.acquire(timeout=self.timeout + 1.0) if wait else self._lock.acquire(blocking=False)
        if not acquired:
            return self._usable(self._state)
        try:
            state = self._state
            if self._generation != generation:
                return self._usable(state)  # another thread fetched while this one waited
            now = self.clock()
            if self._cooling(now):
                return self._usable(state)
            self._generation += 1
            self._next_fetch = now + self.cooldown
            self.fetches += 1
            try:
                deadline = time.monotonic() + self.timeout
                fresh = self._parse(self._client or self._discover(deadline), deadline)
            except FetchError as exc:
                self._next_fetch = self.clock() + self.cooldown
                log.warning("JWK Set fetch from %s failed (%s); %s", exc.url or self._where(), exc.reason,
                            "keeping the last good keys" if state.loaded else "no keys yet: answering 503")
                # Stale-while-error: serve the last good set until the cooldown allows a retry.
                self._state = state._replace(expires=self._next_fetch)
                return self._usable(state)
            # The cooldown counts from the end of the fetch: a slow endpoint is not asked again
            # the moment it has answered.
            self._next_fetch = self.clock() + self.cooldown
            self._state = fresh._replace(expires=now + self.ttl)
            if state.prints - fresh.prints and self.on_change is not None:
                self.on_change()  # a key was retired (or replaced) by the issuer
            return self._state
        finally:
            self._lock.release()

    def _usable(self, state: _State) -> _State:
        if not state.loaded:
            raise ServiceUnavailable(max(1, math.ceil(self._cooling(self.clock()))))
        return state

    def _where(self) -> str:
        return self._client.uri if self._client else f"{self.issuer} (discovery)"

    def _client_for(self, url: str) -> JWKSClient:
        return JWKSClient(url, timeout=self.timeout, max_bytes=self.max_bytes)

    def _parse(self, client: JWKSClient, deadline: float) -> _State:
        try:
            return parse_jwk_set(client.fetch_data(deadline), self.algorithms)
        except FetchError as exc:
            raise FetchError(exc.reason, client.uri) from None

    def _discover(self, deadline: float) -> JWKSClient:
        """The JWK Set's client, its URL from the issuer's OpenID configuration."""
        assert self.issuer is not None
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._client_for(url).fetch_data(deadline)
        if not isinstance(document, dict):
            raise FetchError("the OpenID configuration is not a JSON object", url)
        # OpenID Connect Discovery 1.0 §4.3: the document's issuer MUST equal the one we asked.
        if document.get("issuer") != self.issuer:
            raise FetchError("the OpenID configuration names another issuer", url)
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise FetchError("the OpenID configuration has no jwks_uri", url)
        try:
            check_url("jwks_uri", jwks_uri)
        except ConfigurationError:
            raise FetchError("its jwks_uri is not an https URL", url) from None
        client = self._client_for(jwks_uri)
        if self.jwks_url is None:
            self._client = client
        return client


# -- HTTP ------------------------------------------------------------------------------------------
_tls = functools.cache(ssl.create_default_context)  # the system's trust store, loaded once, when needed


class JWKSClient(jwt.PyJWKClient):
    """PyJWT's JWK Set client for one URL, with a fetch a server can afford.

    PyJWT's :meth:`~jwt.PyJWKClient.fetch_data` (urllib) applies ``timeout`` to each socket
    operation and reads the whole body, so a server dripping a byte at a time, or sending
    gigabytes, would hold the worker. This one is ``GET`` with one deadline for the whole
    exchange, at most ``max_bytes``, ``200`` only (redirects are not followed), ``https`` only
    (plain ``http`` for a loopback host), through the environment's ``https_proxy`` /
    ``http_proxy`` unless ``no_proxy`` covers the host (never for a loopback host). PyJWT's
    caching is off: :class:`RemoteKeySet` caches, with its own cooldown and stale-while-error.
    """

    def __init__(self, uri: str, *, timeout: float, max_bytes: int = MAX_BYTES) -> None:
        super().__init__(uri, cache_jwk_set=False, timeout=timeout,
                         headers={"Accept": _ACCEPT, "User-Agent": f"jwt_wsgi/{__version__}"})
        self.max_bytes = max_bytes

    def fetch_data(self, deadline: float | None = None) -> Any:
        """The JSON document at :attr:`uri`, read before ``deadline`` (``time.monotonic``;
        default: :attr:`timeout` from now).

        :raises FetchError: naming the URL and why (never a token or a secret).
        """
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        try:
            body = self._get(deadline)
        except FetchError as exc:
            raise FetchError(exc.reason, self.uri) from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise FetchError("the response is not JSON", self.uri) from None

    def _get(self, deadline: float) -> bytes:
        parts = urlsplit(self.uri)
        host = parts.hostname or ""
        if not (parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host))):
            raise FetchError("not an https URL")
        connection = self._connection(parts.scheme, host, parts.port, _remaining(deadline))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.connect()
            sock = connection.sock
            connection.request("GET", target, headers=self.headers)
            sock.settimeout(_remaining(deadline))
            response = connection.getresponse()
            if response.status != 200:
                # Redirects included: a JWK Set URL is configured exactly, never followed elsewhere.
                raise FetchError(f"HTTP {response.status}")
            length = response.getheader("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
                raise FetchError(f"larger than {self.max_bytes} bytes")
            body = bytearray()
            while not response.isclosed():  # closed once the whole body has been read
                sock.settimeout(_remaining(deadline))
                # read1: one system call at most, so a server dripping a byte at a time still
                # meets the deadline (read(n) would wait for all n bytes, however long).
                chunk = response.read1(min(65536, self.max_bytes + 1 - len(body)))
                if not chunk:
                    break
                body += chunk
                if len(body) > self.max_bytes:
                    raise FetchError(f"larger than {self.max_bytes} bytes")
            return bytes(body)
        except TimeoutError:
            raise FetchError(f"no complete answer within {self.timeout:g} s") from None
        except ssl.SSLCertVerificationError as exc:
            raise FetchError(f"TLS certificate not trusted ({exc.verify_message})") from None
        except ConnectionRefusedError:
            raise FetchError("connection refused") from None
        except socket.gaierror:
            raise FetchError("host name not resolved") from None
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise FetchError(type(exc).__name__) from None
        finally:
            connection.close()

    def _connection(self, scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
        proxy = None if is_loopback(host) else _proxy_for(scheme, host)
        target_host, target_port = (proxy[0], proxy[1]) if proxy else (host, port)
        connection: http.client.HTTPConnection
        if scheme == "https":
            context = self.ssl_context or _tls()
            connection = http.client.HTTPSConnection(target_host, target_port, timeout=timeout, context=context)
        else:
            connection = http.client.HTTPConnection(target_host, target_port, timeout=timeout)
        if proxy:
            connection.set_tunnel(host, port)  # CONNECT through the environment's proxy
        return connection


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError("timed out")
    return left


def _proxy_for(scheme: str, host: str) -> tuple[str, int | None] | None:
    """The ``https_proxy``/``http_proxy`` of the environment, unless ``no_proxy`` covers ``host``."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    return (parts.hostname, parts.port) if parts.hostname else None


# -- parsing -----------------------------------------------------------------------------------------
def _fitting_algorithms(jwk: dict[str, Any], algorithms: Sequence[str]) -> list[str]:
    """The configured algorithms this JWK may verify (RFC 7517 §4: ``use``, ``key_ops``, ``alg``)."""
    if jwk.get("use", "sig") != "sig":
        return []
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return []
    kty = jwk.get("kty")
    declared = jwk.get("alg")
    fitting = []
    for alg in algorithms:
        if KEY_TYPES.get(alg) != kty or (declared is not None and declared != alg):
            continue
        if kty == "EC" and jwk.get("crv") != CURVES[alg]:
            continue
        if kty == "OKP" and jwk.get("crv") not in _OKP_CURVES:
            continue
        fitting.append(alg)
    return fitting


def _public_key(jwk: dict[str, Any], alg: str) -> jwt.PyJWK | None:
    members = {name: jwk.get(name) for name in PUBLIC_MEMBERS[KEY_TYPES[alg]]}
    if not all(isinstance(value, str) for value in members.values()):
        return None
    try:
        key = jwt.PyJWK(members, algorithm=alg)
        check_key_type("jwks_url", alg, key.key)
    except (jwt.PyJWTError, ConfigurationError, ValueError, TypeError):
        return None
    return key


def parse_jwk_set(data: Any, algorithms: Sequence[str]) -> _State:
    """The usable keys of a JWK Set document (unusable keys are skipped, not fatal)."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise FetchError("not a JWK Set (no keys list)")
    entries: list[tuple[str | None, str, jwt.PyJWK]] = []
    prints: set[tuple[Any, ...]] = set()
    skipped = 0
    for jwk in data["keys"][:MAX_KEYS]:
        if not isinstance(jwk, dict):
            skipped += 1
            continue
        kid = jwk.get("kid")
        if kid is not None and not isinstance(kid, str):
            skipped += 1
            continue
        fitting = _fitting_algorithms(jwk, algorithms)
        if not fitting:
            skipped += 1
        for alg in fitting:
            key = _public_key(jwk, alg)
            if key is None:
                skipped += 1
                break
            entries.append((kid, alg, key))
            prints.add((kid, alg, json.dumps({n: jwk[n] for n in PUBLIC_MEMBERS[KEY_TYPES[alg]]}, sort_keys=True)))
    if skipped:
        log.info("JWK Set: %d key(s) ignored (wrong type, use or algorithm, or too weak)", skipped)
    return _State(True, KidTable.build(entries), 0.0, frozenset(prints))
