"""``redis://host:port/db`` (``rediss://`` for TLS) — state in Redis, shared by every host.

Needs Redis 7.0 or newer (or a compatible server such as Valkey) and the ``redis`` package
(``pip install jwt_wsgi[redis]``). The URL is handed to :meth:`redis.Redis.from_url`, so a
password (``redis://:secret@host:6379/0``), a database number and that method's query parameters
(``socket_timeout``, ``socket_connect_timeout``, ``health_check_interval``, ...) work as
documented there. One parameter is this store's own and is removed before: ``prefix``, the
start of every key [``jwt_wsgi:``], so several deployments can share one database.

How the contract maps onto Redis:

- every record is a key with an absolute expiry (``PXAT``/``PEXPIREAT``, from the token's
  ``exp``), so Redis forgets it by itself and nothing needs purging;
- each method is one round trip, and each method that reads and then writes is a Lua script,
  which Redis runs atomically: :meth:`~RedisStore.spend` is ``SET NX``, the subject cut-off only
  moves forward, a counter's window starts with its first hit;
- no command is retried after it may have reached the server (a retried ``INCR`` counts twice, a
  retried ``SET NX`` reports a fresh refresh token as already spent); a failure is reported as
  :class:`~jwt_wsgi.errors.StoreUnavailable` after at most the socket timeout [1 s], and the
  next call connects afresh.

Security: whoever can write to this database can revoke any token or lift any revocation. Use
a password (or an ACL user limited to the prefix), ``rediss://`` across untrusted networks, and
keep the URL out of logs; this store never prints it.
"""

from __future__ import annotations

import math
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreUnavailable

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

__all__ = ["RedisStore", "DEFAULT_PREFIX"]

DEFAULT_PREFIX = "jwt_wsgi:"

# KEYS: the revoked-jti and revoked-family keys that apply, then the subject key; ARGV[1]: iat.
_IS_REVOKED = """
for i = 1, #KEYS - 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then return 1 end
end
local cutoff = redis.call('GET', KEYS[#KEYS])
if cutoff and tonumber(ARGV[1]) < tonumber(cutoff) then return 1 end
return 0
"""

# Create with an expiry, or push an existing expiry later (never earlier). ARGV[1]: expiry (ms).
_REVOKE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
end
"""

# ARGV[1]: cut-off, ARGV[2]: expiry (ms). Both only move forward while the mark lives.
_REVOKE_SUBJECT = """
local old = redis.call('GET', KEYS[1])
if not old then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  return
end
if tonumber(old) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT')
"""

# ARGV[1]: window (ms). The expiry is set by the hit that creates the key, never moved after.
_HIT = """
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return {count, redis.call('PTTL', KEYS[1])}
"""

_UNHIT = """
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 0 then redis.call('DECR', KEYS[1]) end
"""


def _ms(seconds: float) -> int:
    """POSIX seconds as the whole milliseconds Redis wants; at least 1 (0 is refused)."""
    return max(math.ceil(seconds * 1000), 1)


def _number(value: float) -> str:
    # repr() round-trips a float exactly, and Lua's tonumber() reads it back bit for bit.
    return repr(float(value))


def _redacted(url: str) -> str:
    """``url`` without user, password and query: safe for messages and logs."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class RedisStore:
    """A :class:`~jwt_wsgi.stores.base.Store` in Redis, shared by every process on every host.

    Usually built from the ``store`` option through :func:`jwt_wsgi.stores.open_store`::

        store = RedisStore.from_url("redis://:secret@cache.internal:6379/2?prefix=shop:")
        store.ping()  # raises StoreUnavailable if Redis cannot be reached

    Building the store opens no connection (gunicorn forks afterwards); each process builds
    its own client and connection pool on first use, and replaces it if it finds itself in a
    forked child.

    :param url: a ``redis://`` or ``rediss://`` URL, without the ``prefix`` parameter.
    :param prefix: prepended to every key.
    :param socket_timeout: seconds to wait for an answer; the URL's own parameter wins.
    :param socket_connect_timeout: seconds to wait for a connection; the URL's own parameter wins.
    :param health_check_interval: seconds a pooled connection may idle before it is checked with
        a ``PING`` ahead of the next command; the URL's own parameter wins.
    :raises ConfigurationError: (option ``store``) if the ``redis`` package is missing or the URL
        is not one :meth:`redis.Redis.from_url` accepts.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        health_check_interval: int = 30,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise ConfigurationError(
                "store", "a redis:// store needs the redis package: pip install 'jwt_wsgi[redis]'"
            ) from _IMPORT_ERROR
        self.prefix = prefix
        self._url = url
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": health_check_interval,
            # No retries: the commands are not idempotent (see the module docstring).
            "retry": Retry(NoBackoff(), 0),
            "encoding_errors": "surrogatepass",
        }
        self._revoked_prefix = prefix + "revoked:"
        self._family_prefix = prefix + "family:"
        self._subject_prefix = prefix + "subject:"
        self._spent_prefix = prefix + "spent:"
        self._hits_prefix = prefix + "hits:"
        # (pid, client, scripts): replaced as a whole, so a thread never sees a mixed state.
        self._state: tuple[int, redis.Redis, dict[str, Any]] | None = None
        self._state = self._build()  # validates the URL; connects to nothing

    @classmethod
    def from_url(cls, url: str) -> RedisStore:
        """Build a store from a Redis URL, taking this store's ``prefix`` parameter out of it."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefixes = [value for name, value in query if name == "prefix"]
        rest = urlencode([(name, value) for name, value in query if name != "prefix"])
        options: dict[str, Any] = {}
        if prefixes:
            options["prefix"] = prefixes[-1]
        return cls(urlunsplit(parts._replace(query=rest)), **options)

    def __repr__(self) -> str:
        return f"RedisStore({_redacted(self._url)!r}, prefix={self.prefix!r})"

    # -- connections -------------------------------------------------------------------------
    def _build(self) -> tuple[int, redis.Redis, dict[str, Any]]:
        try:
            client = redis.Redis.from_url(self._url, **self._options)
        except ValueError as exc:
            raise ConfigurationError("store", f"bad Redis URL {_redacted(self._url)!r}: {exc}") from None
        scripts = {
            name: client.register_script(source)
            for name, source in (
                ("is_revoked", _IS_REVOKED),
                ("revoke", _REVOKE),
                ("revoke_subject", _REVOKE_SUBJECT),
                ("hit", _HIT),
                ("unhit", _UNHIT),
            )
        }
        return os.getpid(), client, scripts

    def _current(self) -> tuple[int, redis.Redis, dict[str, Any]]:
        state = self._state
        if state is None or state[0] != os.getpid():
            # A forked child must not touch the parent's sockets: it drops the inherited
            # client (redis-py closes only this process's copies of the descriptors) and
            # builds its own.
            state = self._state = self._build()
        return state

    def _unavailable(self, exc: RedisError) -> StoreUnavailable:
        return StoreUnavailable(f"Redis store {_redacted(self._url)}: {type(exc).__name__}: {exc}")

    def _read(self, name: str, keys: list[str], args: list[str]) -> Any:
        """Run a read-only script. A broken connection is retried once on a new one: a read
        has no effect to repeat, and a server restart leaves broken sockets in the pool."""
        try:
            try:
                return self._current()[2][name](keys=keys, args=args)
            except RedisConnectionError:
                return self._current()[2][name](keys=keys, args=args)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def _write(self, name: str, keys: list[str], args: list[str]) -> Any:
        try:
            return self._current()[2][name](keys=keys, args=args)
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    # -- revocation --------------------------------------------------------------------------
    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        keys = [self._subject_prefix + sub]
        if family is not None:
            keys.insert(0, self._family_prefix + family)
        if jti is not None:
            keys.insert(0, self._revoked_prefix + jti)
        return bool(self._read("is_revoked", keys, [_number(iat)]))

    def revoke(self, jti: str, expires_at: float) -> None:
        self._write("revoke", [self._revoked_prefix + jti], [str(_ms(expires_at))])

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        self._write("revoke_subject", [self._subject_prefix + sub], [_number(cutoff), str(_ms(expires_at))])

    def revoke_family(self, family: str, expires_at: float) -> None:
        self._write("revoke", [self._family_prefix + family], [str(_ms(expires_at))])

    def spend(self, jti: str, expires_at: float) -> bool:
        try:
            client = self._current()[1]
            return bool(client.set(self._spent_prefix + jti, b"1", nx=True, pxat=_ms(expires_at)))
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    # -- rate limits -------------------------------------------------------------------------
    def hit(self, key: str, window: float) -> tuple[int, float]:
        count, ttl_ms = self._write("hit", [self._hits_prefix + key], [str(_ms(window))])
        return int(count), max(int(ttl_ms), 0) / 1000.0

    def unhit(self, key: str) -> None:
        self._write("unhit", [self._hits_prefix + key], [])

    # -- lifecycle ---------------------------------------------------------------------------
    def ping(self) -> None:
        """Send ``PING``, connecting first if needed.

        :raises StoreUnavailable: Redis refused, timed out, rejected the password, ...
        """
        try:
            try:
                self._current()[1].ping()
            except RedisConnectionError:
                self._current()[1].ping()
        except RedisError as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """Disconnect this process's connection pool. Later calls connect again."""
        state, self._state = self._state, None
        if state is not None and state[0] == os.getpid():
            state[1].close()
