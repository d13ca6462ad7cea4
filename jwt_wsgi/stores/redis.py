"""``redis://host:port/db`` (``rediss://`` for TLS) — state in Redis, shared by every host.

Needs Redis 7.0 or newer (or a compatible server such as Valkey) and the ``redis`` package
(``pip install jwt_wsgi[redis]``). The URL is handed to :meth:`redis.Redis.from_url`, so a
password (``redis://:secret@host:6379/0``), a database number and that method's query parameters
(``socket_timeout``, ``socket_connect_timeout``, ``health_check_interval``, ...) work as
documented there. Three parameters are this store's own and are removed before: ``prefix``,
the start of every key [``jwt_wsgi:``], so several deployments can share one database, and
``wait_replicas``/``wait_timeout`` (below).

Two more URL shapes reach more than one Redis (``rediss+...`` for TLS to every node):

- ``redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE_NAME[/DB]``: the hosts are
  Sentinels [port 26379]; the master is the one they name for ``SERVICE_NAME``. The password
  is the data nodes'; ``sentinel_password=`` (and ``sentinel_username=``) authenticate to the
  Sentinels. Each new connection asks the Sentinels where the master is now (redis-py's
  ``SentinelConnectionPool``), so after a failover the next connection reaches the new master;
  a call on a connection to the dead one fails (503) and is not retried if it may have written.
  Every script starts with a ``#!lua`` line without ``no-writes``, so a replica (such as a
  demoted master that a pooled connection still reaches) refuses it instead of answering from a
  copy that may lack the latest revocations.
- ``redis+cluster://[user:password@]host:port[,host:port...]``: seed nodes of a Redis Cluster
  [port 6379]. The prefix becomes a hash tag, ``{jwt_wsgi:}revoked:<jti>``, so every key of one
  store hashes to one slot. That is what keeps each check one atomic round trip: the revocation
  script reads the ``jti``, family and subject keys together with the epoch marker, and a
  cluster runs a script only on keys of one slot; per-token tags would scatter them over
  shards, need several round trips and an epoch per shard, and lose the atomic check. The price
  is that one store's traffic lands on one primary (one small script per request, well within a
  single Redis); applications with different prefixes land on different slots. The client reads
  the cluster's layout when it is built, so it is built on first use (after gunicorn forks).

Replication is asynchronous: a master that acknowledged a revocation and died before its
replica had it would take the revocation with it in a failover. ``wait_replicas`` [1 behind
Sentinel, else 0] makes every revocation, spent and rotated refresh token wait (``WAIT``, on the
same connection) until that many replicas have it, at most ``wait_timeout`` [half the socket
timeout]; fewer is :class:`~jwt_wsgi.errors.StoreUnavailable` (503), never a success a failover
could undo. These writes are safe to repeat, so the client may simply try again. Not offered
with Cluster (``WAIT`` would have to follow each write on the slot owner's own connection).

How the contract maps onto Redis:

- every record is a key with an absolute expiry (``PXAT``/``PEXPIREAT``, from the token's
  ``exp``), so Redis forgets it by itself and nothing needs purging;
- each method is one round trip, and each method that reads and then writes is a Lua script,
  which Redis runs atomically: :meth:`~RedisStore.spend` is ``SET NX``, the subject cut-off only
  moves forward, a counter's window starts with its first hit;
- ``<prefix>epoch``, a key without expiry, holds the time from which the database has kept every
  record; the revocation script reads it, and when it is missing (a restart without
  persistence, ``FLUSHALL``, eviction) writes a new one and refuses every token issued before
  it, so nothing that was revoked comes back (``jwt-wsgi check`` warns about such servers);
- no command is retried after it may have reached the server (a retried ``INCR`` counts twice, a
  retried ``SET NX`` reports a fresh refresh token as already spent); a failure is reported as
  :class:`~jwt_wsgi.errors.StoreUnavailable` after at most the socket timeout [1 s], and the
  next call connects afresh.

Security: whoever can write to this database can revoke any token or lift any revocation. Use
a password (or an ACL user limited to the prefix), ``rediss://`` across untrusted networks, and
keep the URL out of logs; this store never prints its passwords.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, StoreUnavailable
from .base import cutoff_after

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisClusterException, RedisError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    _IMPORT_ERROR: ImportError | None = exc
    _ERRORS: tuple[type[Exception], ...] = ()
else:
    _IMPORT_ERROR = None
    # RedisClusterException (no route, keys in several slots, no node reachable) is not a RedisError.
    _ERRORS = (RedisError, RedisClusterException)

__all__ = ["RedisStore", "DEFAULT_PREFIX"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "jwt_wsgi:"

# The state marker: this store's epoch, the time from which it has kept every record. It has no
# expiry, so it vanishes only with the data (a restart without persistence, FLUSHALL, eviction);
# whoever finds it missing writes a new one with the current time. Every script that reads it
# runs this block, given the marker's key and the current time; it leaves the locals ``epoch``
# and ``created`` (1 when this call wrote the marker).
def _read_epoch(key: str, now: str) -> str:
    return f"""local epoch = redis.call('GET', {key})
local created = 0
if not epoch then
  epoch = {now}
  created = 1
  redis.call('SET', {key}, epoch)
end
"""


# Returns {epoch, created}. KEYS[1]: the marker; ARGV[1]: now.
_EPOCH_LUA = "#!lua flags=allow-oom\n" + _read_epoch("KEYS[1]", "ARGV[1]") + "return {epoch, created}\n"

# The marker first (see _EPOCH_LUA): a token issued before the epoch is revoked, since whatever
# the store knew about it may be lost (an undated token, iat 0, cannot be judged so). Returns {revoked, epoch, created}.
# KEYS[1]: the marker, then the revoked-jti and revoked-family keys that apply, then the subject
# key; ARGV[1]: iat, ARGV[2]: now.
_IS_REVOKED = "#!lua flags=allow-oom\n" + _read_epoch("KEYS[1]", "ARGV[2]") + """local iat = tonumber(ARGV[1])
if iat ~= 0 and iat < tonumber(epoch) then return {1, epoch, created} end
for i = 2, #KEYS - 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {1, epoch, created} end
end
local cutoff = redis.call('GET', KEYS[#KEYS])
if cutoff and iat < tonumber(cutoff) then return {1, epoch, created} end
return {0, epoch, created}
"""

# Create with an expiry, or push an existing expiry later (never earlier). ARGV[1]: expiry (ms).
_REVOKE = """#!lua
if not redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1], 'GT')
end
"""

# ARGV[1]: cut-off, ARGV[2]: expiry (ms). Both only move forward while the mark lives.
_REVOKE_SUBJECT = """#!lua
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

# Spend a refresh token (KEYS[1], until ARGV[1] ms) and record its successor (KEYS[2]: ARGV[2],
# for ARGV[3] ms by the server's clock); or, already spent, return the recorded successor (nil
# once the interval is over).
_ROTATE = """#!lua
if redis.call('SET', KEYS[1], '1', 'NX', 'PXAT', ARGV[1]) then
  if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3]) end
  return ARGV[2]
end
return redis.call('GET', KEYS[2])
"""

# ARGV[1]: window (ms). The expiry is set by the hit that creates the key, never moved after.
# A login counts its attempt before it issues tokens, so it also begins a missing epoch (KEYS[2],
# ARGV[2]: now): the tokens it is about to issue come after it, not before.
_HIT = """#!lua
local count = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
""" + _read_epoch("KEYS[2]", "ARGV[2]") + """return {count, redis.call('PTTL', KEYS[1]), epoch, created}
"""

_UNHIT = """#!lua
local count = tonumber(redis.call('GET', KEYS[1]))
if count and count > 0 then redis.call('DECR', KEYS[1]) end
"""


_SOURCES = {
    "is_revoked": _IS_REVOKED,
    "epoch": _EPOCH_LUA,
    "revoke": _REVOKE,
    "revoke_subject": _REVOKE_SUBJECT,
    "hit": _HIT,
    "rotate": _ROTATE,
    "unhit": _UNHIT,
}


def _ms(seconds: float) -> int:
    """POSIX seconds as the whole milliseconds Redis wants; at least 1 (0 is refused)."""
    return max(math.ceil(seconds * 1000), 1)


def _number(value: float) -> str:
    # repr() round-trips a float exactly, and Lua's tonumber() reads it back bit for bit.
    return repr(float(value))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _redacted(url: str) -> str:
    """``url`` without user, password and query: safe for messages and logs. Keeps every host
    of a ``redis+sentinel://`` or ``redis+cluster://`` list."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{hosts}{parts.path}"


# -- Sentinel and Cluster URLs ---------------------------------------------------------------------
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
_DEFAULT_PORTS = {"sentinel": 26379, "cluster": 6379}
# The query parameters of a Sentinel or Cluster URL that redis-py reads (as with redis://), less
# those that would make it retry a command that may have reached the server.
_CONNECTION_QUERY = frozenset({
    "socket_timeout", "socket_connect_timeout", "socket_keepalive", "socket_read_size",
    "health_check_interval", "max_connections", "client_name", "protocol", "ssl_cert_reqs",
    "ssl_ca_certs", "ssl_ca_path", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname", "ssl_min_version",
})
# This store's own query parameters, taken out of every Redis URL by RedisStore.from_url.
_STORE_QUERY = ("prefix", "wait_replicas", "wait_timeout")


@dataclass(frozen=True)
class _Topology:
    """Where the data lives, as a ``redis+sentinel://`` or ``redis+cluster://`` URL says."""

    kind: str  # "sentinel" or "cluster"
    nodes: tuple[tuple[str, int], ...]  # the sentinels, or the cluster's seed nodes
    service: str  # the Sentinel service name ("" for a cluster)
    options: dict[str, Any]  # connection options of the data nodes (password, db, timeouts, TLS)
    sentinel_options: dict[str, Any]  # connection options of the sentinels


def _address(text: str, default_port: int) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad address {text!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError(f"an address without a host in {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def _topology(url: str, overrides: dict[str, Any]) -> _Topology:
    """Parse a Sentinel or Cluster URL (see the module docstring). ``overrides`` are this store's
    connection defaults; the URL's own query parameters win over them.

    :raises ValueError: with a message naming what is wrong (never the password).
    """
    from redis import connection

    parse_url: Any = connection.parse_url  # untyped in redis-py
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    kind = "sentinel" if scheme in SENTINEL_SCHEMES else "cluster"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise ValueError("no host: list at least one host:port")
    nodes = tuple(_address(item.strip(), _DEFAULT_PORTS[kind]) for item in hosts.split(","))
    options: dict[str, Any] = dict(overrides)
    if at:
        username, colon, password = userinfo.partition(":")
        if username:
            options["username"] = unquote(username)
        if colon and password:
            options["password"] = unquote(password)
    segments = [unquote(segment) for segment in parts.path.split("/")[1:]]
    service = ""
    if kind == "sentinel":
        if not segments or not segments[0]:
            raise ValueError("no service name: use redis+sentinel://host:port/SERVICE_NAME[/DB]")
        service = segments[0]
        if len(segments) > 2 or (len(segments) == 2 and not segments[1].isdigit()):
            raise ValueError("the path must be /SERVICE_NAME or /SERVICE_NAME/DB (a database number)")
        if len(segments) == 2:
            options["db"] = int(segments[1])
    elif any(segments):
        raise ValueError("a cluster has no database numbers or service names: nothing may follow the hosts")
    query = parse_qsl(parts.query, keep_blank_values=True)
    sentinel_auth = {name: value for name, value in query if name in ("sentinel_password", "sentinel_username")}
    if kind == "cluster" and sentinel_auth:
        raise ValueError("sentinel_password and sentinel_username apply to redis+sentinel:// only")
    unknown = sorted({name for name, _ in query} - _CONNECTION_QUERY - set(sentinel_auth) - set(_STORE_QUERY))
    if unknown:
        raise ValueError(
            f"unknown parameter {unknown[0]!r}; known: "
            f"{', '.join(sorted(_CONNECTION_QUERY | {'sentinel_password', 'sentinel_username', *_STORE_QUERY}))}"
        )
    # redis-py's own parser gives these the types and checks it gives them for redis:// URLs.
    known = [(name, value) for name, value in query if name in _CONNECTION_QUERY]
    options.update(parse_url("redis://localhost/?" + urlencode(known)))
    options.pop("host", None)
    tls = scheme.startswith("rediss")
    if tls:
        options["ssl"] = True
    sentinel_options = {name: options[name] for name in options if name.startswith(("socket_", "ssl"))}
    sentinel_options["retry"] = options["retry"]
    if "sentinel_username" in sentinel_auth:
        sentinel_options["username"] = sentinel_auth["sentinel_username"]
    if "sentinel_password" in sentinel_auth:
        sentinel_options["password"] = sentinel_auth["sentinel_password"]
    return _Topology(kind, nodes, service, options, sentinel_options)


def _hash_tagged(prefix: str) -> str:
    """``prefix`` as a Redis Cluster hash tag: every key of the store then hashes to one slot."""
    if not prefix:
        raise ConfigurationError("store", "a redis+cluster:// store needs a non-empty prefix (it becomes the "
                                          "hash tag that keeps the store's keys on one slot)")
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError("store", "with redis+cluster:// the prefix may not contain { or }: the store "
                                          "wraps it in braces itself, as the hash tag of every key")
    return "{" + prefix + "}"


class RedisStore:
    """A :class:`~jwt_wsgi.stores.base.Store` in Redis, shared by every process on every host.

    Usually built from the ``store`` option through :func:`jwt_wsgi.stores.open_store`::

        store = RedisStore.from_url("redis://:secret@cache.internal:6379/2?prefix=shop:")
        store.ping()  # raises StoreUnavailable if Redis cannot be reached

    Building the store opens no connection (gunicorn forks afterwards); each process builds
    its own client and connection pool on first use, and replaces it if it finds itself in a
    forked child.

    :param url: a ``redis://``, ``rediss://``, ``redis+sentinel://`` or ``redis+cluster://``
        URL (see the module docstring), without this store's own parameters.
    :param prefix: prepended to every key; wrapped in braces (a hash tag) for a cluster.
    :param socket_timeout: seconds to wait for an answer; the URL's own parameter wins.
    :param socket_connect_timeout: seconds to wait for a connection; the URL's own parameter wins.
    :param health_check_interval: seconds a pooled connection may idle before it is checked with
        a ``PING`` ahead of the next command; the URL's own parameter wins.
    :param wait_replicas: replicas that must have each revocation and refresh-token write before
        it counts as done [1 for ``redis+sentinel://``, else 0; not with a cluster].
    :param wait_timeout: seconds to wait for them [half the socket timeout; must be shorter].
    :param clock: the current POSIX time, written as the epoch of a new state marker (records
        expire on the server's clock, from the absolute times the callers give).
    :raises ConfigurationError: (option ``store``) if the ``redis`` package is missing or the URL
        is not one this store (or :meth:`redis.Redis.from_url`) accepts.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        health_check_interval: int = 30,
        wait_replicas: int | None = None,
        wait_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise ConfigurationError(
                "store", "a redis:// store needs the redis package: pip install 'jwt_wsgi[redis]'"
            ) from _IMPORT_ERROR
        self._url = url
        self._options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": health_check_interval,
            # No retries: the commands are not idempotent (see the module docstring).
            "retry": Retry(NoBackoff(), 0),
            "encoding_errors": "surrogatepass",
        }
        scheme = urlsplit(url).scheme.lower()
        self._topology: _Topology | None = None
        if scheme in SENTINEL_SCHEMES or scheme in CLUSTER_SCHEMES:
            try:
                self._topology = _topology(url, self._options)
            except ValueError as exc:
                raise ConfigurationError("store", f"bad Redis URL {_redacted(url)!r}: {exc}") from None
        cluster = self._topology is not None and self._topology.kind == "cluster"
        # A cluster keeps every key of the store in one slot (see the module docstring).
        self.prefix = _hash_tagged(prefix) if cluster else prefix
        self.wait_replicas = self._replicas_to_wait_for(wait_replicas, cluster)
        self.wait_timeout = self._wait_timeout(wait_timeout)
        prefix = self.prefix
        self._revoked_prefix = prefix + "revoked:"
        self._family_prefix = prefix + "family:"
        self._subject_prefix = prefix + "subject:"
        self._spent_prefix = prefix + "spent:"
        self._successor_prefix = prefix + "next:"
        self._hits_prefix = prefix + "hits:"
        self._epoch_key = prefix + "epoch"
        self._clock = clock
        # The epoch this process last saw (inherited across fork: a worker knows what its master
        # saw at start-up); a different one means the store lost its state meanwhile.
        self._epoch: bytes | None = None  # as Redis returns it: compared without decoding
        # (pid, client, scripts, sentinel): replaced as a whole, so a thread never sees a mixed state.
        self._state: tuple[int, Any, dict[str, Any], Any] | None = None
        if not cluster:
            # Validates the URL; connects to nothing. A cluster client reads the cluster's layout
            # as it is built, so it is built on first use (after gunicorn forks) instead.
            self._state = self._build()

    def _replicas_to_wait_for(self, wait_replicas: int | None, cluster: bool) -> int:
        if wait_replicas is None:
            # A Sentinel deployment exists to fail over to a replica: a revocation is confirmed
            # once one has it. A single Redis (or a cluster) answers as soon as it has applied it.
            return 1 if self._topology is not None and self._topology.kind == "sentinel" else 0
        if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or not 0 <= wait_replicas <= 100:
            raise ConfigurationError("store", "wait_replicas must be a whole number from 0 to 100")
        if cluster and wait_replicas:
            raise ConfigurationError(
                "store", "wait_replicas is not supported with redis+cluster:// (WAIT must follow the write on "
                         "the same connection to the slot's primary); use redis+sentinel:// for confirmed writes",
            )
        return wait_replicas

    def _wait_timeout(self, wait_timeout: float | None) -> float:
        socket_timeout = (self._topology.options if self._topology is not None else self._options)["socket_timeout"]
        if self._topology is None:
            from redis import connection

            parse_url: Any = connection.parse_url  # untyped in redis-py
            try:
                socket_timeout = parse_url(self._url).get("socket_timeout", socket_timeout)
            except ValueError:
                pass  # reported by _build, with the URL
        if wait_timeout is None:
            return float(socket_timeout) / 2 if socket_timeout else 0.5
        if not isinstance(wait_timeout, (int, float)) or isinstance(wait_timeout, bool) or not wait_timeout > 0:
            raise ConfigurationError("store", "wait_timeout must be a positive number of seconds")
        if socket_timeout and wait_timeout >= float(socket_timeout):
            raise ConfigurationError(
                "store", f"wait_timeout ({wait_timeout:g}s) must be shorter than socket_timeout "
                         f"({float(socket_timeout):g}s), or every confirmed write would time out",
            )
        return float(wait_timeout)

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> RedisStore:
        """Build a store from a Redis URL, taking this store's own parameters (``prefix``,
        ``wait_replicas``, ``wait_timeout``) out of it."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # an unbalanced [ or ] (IPv6 literal)
            raise ConfigurationError("store", f"malformed Redis URL: {exc}") from None
        query = parse_qsl(parts.query, keep_blank_values=True)
        own = {name: value for name, value in query if name in _STORE_QUERY}  # the last one wins
        rest = urlencode([(name, value) for name, value in query if name not in _STORE_QUERY])
        options: dict[str, Any] = {"clock": clock}
        if "prefix" in own:
            options["prefix"] = own["prefix"]
        try:
            if "wait_replicas" in own:
                options["wait_replicas"] = int(own["wait_replicas"])
            if "wait_timeout" in own:
                options["wait_timeout"] = float(own["wait_timeout"])
        except ValueError:
            raise ConfigurationError(
                "store", "wait_replicas must be a whole number and wait_timeout a number of seconds"
            ) from None
        return cls(urlunsplit(parts._replace(query=rest)), **options)

    def __repr__(self) -> str:
        return f"RedisStore({_redacted(self._url)!r}, prefix={self.prefix!r})"

    # -- connections -------------------------------------------------------------------------
    def _build(self) -> tuple[int, Any, dict[str, Any], Any]:
        topology, sentinel = self._topology, None
        if topology is None:
            try:
                client: Any = redis.Redis.from_url(self._url, **self._options)
            except ValueError as exc:
                raise ConfigurationError("store", f"bad Redis URL {_redacted(self._url)!r}: {exc}") from None
        elif topology.kind == "sentinel":
            from redis import sentinel as sentinels

            Sentinel: Any = sentinels.Sentinel  # untyped in redis-py

            # Connects to nothing yet: each new connection asks the sentinels where the master
            # is now, so a failover is followed by the next connection (see the module docstring).
            sentinel = Sentinel(list(topology.nodes), sentinel_kwargs=topology.sentinel_options)
            client = sentinel.master_for(topology.service, **topology.options)
        else:
            from redis import cluster as clusters

            ClusterNode: Any = clusters.ClusterNode  # untyped in redis-py
            RedisCluster = clusters.RedisCluster

            options = dict(topology.options)
            retry = options.pop("retry")
            try:
                client = RedisCluster(
                    startup_nodes=[ClusterNode(host, port) for host, port in topology.nodes], retry=retry, **options
                )
            except (RedisError, RedisClusterException) as exc:
                raise self._unavailable(exc) from exc
        scripts = {name: client.register_script(source) for name, source in _SOURCES.items()}
        return os.getpid(), client, scripts, sentinel

    def _current(self) -> tuple[int, Any, dict[str, Any], Any]:
        state = self._state
        if state is None or state[0] != os.getpid():
            # A forked child must not touch the parent's sockets: it drops the inherited
            # client (redis-py closes only this process's copies of the descriptors) and
            # builds its own.
            state = self._state = self._build()
        return state

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        # redis-py names each sentinel it could not ask by the whole client's repr: keep its address.
        text = re.sub(r"<redis\.client\.Redis\(.*?host=([^,]*),port=(\d+).*?\)> - ", r"sentinel \1:\2 - ", str(exc))
        return StoreUnavailable(f"Redis store {_redacted(self._url)}: {type(exc).__name__}: {text}")

    def _read(self, name: str, keys: list[str], args: list[str]) -> Any:
        """Run a read-only script. A broken connection is retried once on a new one: a read
        has no effect to repeat, and a server restart leaves broken sockets in the pool."""
        try:
            try:
                return self._current()[2][name](keys=keys, args=args)
            except RedisConnectionError:
                return self._current()[2][name](keys=keys, args=args)
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc

    def _write(self, name: str, keys: list[str], args: list[str]) -> Any:
        try:
            return self._current()[2][name](keys=keys, args=args)
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc

    def _confirmed(self, write: Callable[[Any], object]) -> Any:
        """Run ``write(pipeline)`` and, if ``wait_replicas`` is set, ``WAIT`` on the same
        connection: the answer comes once that many replicas have the write.

        :raises StoreUnavailable: Redis failed, or fewer replicas confirmed the write within
            ``wait_timeout`` (it is applied on the master, and may still reach them; every
            confirmed write here is safe to repeat, so the caller may try again).
        """
        try:
            pipeline = self._current()[1].pipeline(transaction=False)
            write(pipeline)
            pipeline.execute_command("WAIT", self.wait_replicas, _ms(self.wait_timeout))
            result, confirmed = pipeline.execute()
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc
        if int(confirmed) < self.wait_replicas:
            raise StoreUnavailable(
                f"Redis store {_redacted(self._url)}: the write reached {int(confirmed)} of the "
                f"{self.wait_replicas} replica(s) wait_replicas asks for within {self.wait_timeout:g}s"
            )
        return result

    def _durable(self, name: str, keys: list[str], args: list[str]) -> Any:
        """:meth:`_write`, confirmed by ``wait_replicas`` replicas when set (see :meth:`_confirmed`).
        The script is sent whole (``EVAL``): a pipeline cannot fall back from ``EVALSHA``."""
        if not self.wait_replicas:
            return self._write(name, keys, args)
        source = _SOURCES[name]
        return self._confirmed(lambda pipeline: pipeline.eval(source, len(keys), *keys, *args))

    # -- revocation --------------------------------------------------------------------------
    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        keys = [self._epoch_key]
        if jti is not None:
            keys.append(self._revoked_prefix + jti)
        if family is not None:
            keys.append(self._family_prefix + family)
        keys.append(self._subject_prefix + sub)
        # Idempotent (the marker is written only when missing), so _read may retry it.
        revoked, epoch, created = self._read("is_revoked", keys, [_number(iat), _number(cutoff_after(self._clock()))])
        if epoch != self._epoch:
            self._saw_epoch(epoch, created)
        return bool(revoked)

    @property
    def epoch(self) -> float | None:
        """The time from which this store has kept every record, as this process last saw it
        (``None`` before the first call). Tokens issued before it count as revoked."""
        return None if self._epoch is None else float(self._epoch)

    def _saw_epoch(self, epoch: bytes, created: int) -> None:
        known, self._epoch = self._epoch, epoch
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(epoch)))
        if known is not None:
            log.error(
                "%r lost its state (restarted without persistence, flushed or evicted): "
                "every revocation and spent refresh token it held is gone, so every token issued "
                "before %s is now refused; users must sign in again. Enable persistence "
                "(appendonly yes) and maxmemory-policy noeviction; see `jwt-wsgi check`.",
                self, when,
            )
        elif created:
            log.warning(
                "%r held no state marker (a new database, or one that lost its data): "
                "tokens issued before %s are refused", self, when,
            )

    def revoke(self, jti: str, expires_at: float) -> None:
        self._durable("revoke", [self._revoked_prefix + jti], [str(_ms(expires_at))])

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        self._durable("revoke_subject", [self._subject_prefix + sub], [_number(cutoff), str(_ms(expires_at))])

    def revoke_family(self, family: str, expires_at: float) -> None:
        self._durable("revoke", [self._family_prefix + family], [str(_ms(expires_at))])

    def spend(self, jti: str, expires_at: float) -> bool:
        key, expiry = self._spent_prefix + jti, _ms(expires_at)
        if self.wait_replicas:
            return bool(self._confirmed(lambda pipeline: pipeline.set(key, b"1", nx=True, pxat=expiry)))
        try:
            return bool(self._current()[1].set(key, b"1", nx=True, pxat=expiry))
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc

    def rotate(self, jti: str, expires_at: float, successor: str, reuse_interval: float) -> str | None:
        recorded = self._durable(
            "rotate",
            [self._spent_prefix + jti, self._successor_prefix + jti],
            [str(_ms(expires_at)), successor, str(math.ceil(reuse_interval * 1000)) if reuse_interval > 0 else "0"],
        )
        if recorded is None:
            return None
        return recorded.decode("utf-8", "surrogatepass") if isinstance(recorded, bytes) else str(recorded)

    # -- rate limits -------------------------------------------------------------------------
    def hit(self, key: str, window: float) -> tuple[int, float]:
        count, ttl_ms, epoch, created = self._write(
            # An epoch this login begins starts with its millisecond, not the next one: the tokens
            # it is about to issue are dated after it, even within the same millisecond.
            "hit", [self._hits_prefix + key, self._epoch_key],
            [str(_ms(window)), _number(math.floor(self._clock() * 1000) / 1000)],
        )
        if epoch != self._epoch:
            self._saw_epoch(epoch, created)
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
                self._ping()
            except RedisConnectionError:
                self._ping()
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc
        # At start-up: read (or begin) the epoch, so that a loss later is told apart.
        epoch, created = self._read("epoch", [self._epoch_key], [_number(cutoff_after(self._clock()))])
        if epoch != self._epoch:
            self._saw_epoch(epoch, created)

    def _ping(self) -> None:
        client = self._current()[1]
        if self._topology is not None and self._topology.kind == "cluster":
            # The primary that holds the store's slot: the one node this store needs.
            client.ping(target_nodes=client.get_node_from_key(self._epoch_key))
        else:
            client.ping()

    def durability_warnings(self) -> list[str]:
        """What in the server's configuration can make this store forget revocations.

        Reads ``CONFIG GET`` (``save``, ``appendonly``, ``maxmemory``, ``maxmemory-policy``); a
        server that disables ``CONFIG`` gets one warning saying it could not be checked.

        :raises StoreUnavailable: Redis cannot be reached.
        """
        from redis.exceptions import ResponseError

        client = self._current()[1]
        # A cluster: the primary that holds the store's slot.
        target = {} if self._topology is None or self._topology.kind != "cluster" else {
            "target_nodes": client.get_node_from_key(self._epoch_key)
        }
        config: dict[str, str] = {}
        replicas = None
        try:
            for name in ("save", "appendonly", "maxmemory", "maxmemory-policy"):
                for key, value in client.config_get(name, **target).items():
                    config[_text(key or "")] = _text(value or "")
            if self.wait_replicas:
                replicas = int(client.info("replication").get("connected_slaves", 0))
        except ResponseError:
            return [
                f"Redis store {_redacted(self._url)}: CONFIG is disabled, so its persistence could "
                "not be checked. Without persistence a restart forgets every revocation (jwt_wsgi "
                "then refuses every earlier token): enable appendonly or RDB snapshots."
            ]
        except _ERRORS as exc:
            raise self._unavailable(exc) from exc
        warnings = []
        if replicas is not None and replicas < self.wait_replicas:
            warnings.append(
                f"Redis store {_redacted(self._url)}: the master has {replicas} connected replica(s), but "
                f"wait_replicas={self.wait_replicas}: every revocation, logout and refresh is refused (503) "
                "until enough replicas are back. Add a replica, or set wait_replicas=0 to accept writes "
                "that a failover could lose."
            )
        if not config.get("save", "").strip() and config.get("appendonly", "no") != "yes":
            warnings.append(
                f"Redis store {_redacted(self._url)} persists nothing (save \"\" and appendonly no): "
                "a restart forgets every revocation and spent refresh token, and jwt_wsgi then "
                "refuses every token issued before it (everyone signs in again). Set appendonly yes."
            )
        policy = config.get("maxmemory-policy", "noeviction")
        if config.get("maxmemory", "0") not in ("", "0") and policy != "noeviction":
            warnings.append(
                f"Redis store {_redacted(self._url)} evicts keys when full (maxmemory-policy {policy}): "
                "an evicted revocation is a revoked token accepted again. Use noeviction."
            )
        return warnings

    def close(self) -> None:
        """Disconnect this process's connection pool. Later calls connect again."""
        state, self._state = self._state, None
        if state is not None and state[0] == os.getpid():
            state[1].close()
            if state[3] is not None:  # the sentinels' own clients
                state[3].close()
