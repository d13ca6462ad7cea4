"""``sqlite:///path/file.db`` — state in one SQLite file, shared by every worker on one host.

The URL follows SQLAlchemy: three slashes and a relative path (``sqlite:///var/jwt.db``, resolved
against the working directory when the store is built, so a later ``chdir`` does not move it),
four slashes for an absolute one (``sqlite:////var/lib/jwt_wsgi/state.db``). One query parameter
is understood: ``timeout``, the seconds a write waits for another process's write [5].

How it stays correct with several gunicorn workers, each with several threads:

- the file runs in WAL mode, so readers never block writers and the hot read (:meth:`is_revoked`)
  never waits;
- every process opens its own connections, lazily, one per thread. A connection inherited across
  ``fork()`` is never used (SQLite forbids it), and never closed either: closing it in the child
  could checkpoint or unlock on the parent's behalf;
- every write is one ``BEGIN IMMEDIATE`` transaction that takes the write lock before it reads,
  so two processes cannot both see "not spent yet"; no lock is held between calls;
- each write first deletes the expired rows of the table it writes to (an index range scan that
  usually finds nothing), so the file holds live records plus at most what expired since that
  table was last written.

Security: you lose revocations if you lose this file. It is written with ``synchronous=FULL``,
so a logout survives a power cut, not just a crash; put it on a local disk (WAL needs shared
memory, which network file systems do not provide) and give only the service's user access.
A file deleted or replaced while the workers run is noticed (each thread compares the file at
the path with its connection's at most once a second) and fails closed: the new file's epoch,
the time it was created, refuses every token issued before it. An older copy of the same file
put back (a restored backup) cannot be told apart: do not.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigurationError, StoreUnavailable
from .base import cutoff_after

__all__ = ["SQLiteStore"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_SCHEMA_VERSION = 2  # 2: the meta table and its epoch, the successors table

# Keys are stored as BLOBs of their UTF-8 bytes ("surrogatepass", so that any Python string a
# JSON token can carry, lone surrogates included, maps to one distinct key instead of raising).
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS revoked (jti BLOB PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS revoked_expiry ON revoked (expires_at)",
    "CREATE TABLE IF NOT EXISTS families (family BLOB PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS families_expiry ON families (expires_at)",
    "CREATE TABLE IF NOT EXISTS subjects"
    " (sub BLOB PRIMARY KEY, cutoff REAL NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS subjects_expiry ON subjects (expires_at)",
    "CREATE TABLE IF NOT EXISTS spent (jti BLOB PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS spent_expiry ON spent (expires_at)",
    "CREATE TABLE IF NOT EXISTS counters"
    " (key BLOB PRIMARY KEY, count INTEGER NOT NULL, window_ends REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS counters_expiry ON counters (window_ends)",
    "CREATE TABLE IF NOT EXISTS successors"
    " (jti BLOB PRIMARY KEY, successor TEXT NOT NULL, until REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS successors_expiry ON successors (until)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value REAL NOT NULL) WITHOUT ROWID",
    f"PRAGMA user_version = {_SCHEMA_VERSION}",
)
# The epoch: the time from which this file has kept every record. A new file starts one at its
# creation; a file from schema version 1 kept its records all along (0: no cut-off).
_BEGIN_EPOCH = "INSERT INTO meta (name, value) VALUES ('epoch', ?) ON CONFLICT (name) DO NOTHING"
_EPOCH = "SELECT value FROM meta WHERE name = 'epoch'"
# How often (store clock seconds) a thread checks that its connection's file is still the one at
# the path: a deleted or replaced file is a store that lost its state.
_FILE_CHECK_INTERVAL = 1.0

# One statement, constant text (sqlite3 caches the prepared statement): ?1 jti, ?2 family,
# ?3 sub, ?4 iat, ?5 now. A NULL jti or family matches no row; LIMIT 1 stops at the first match.
_IS_REVOKED = (
    "SELECT 1 FROM revoked WHERE jti = ?1 AND expires_at > ?5"
    " UNION ALL SELECT 1 FROM families WHERE family = ?2 AND expires_at > ?5"
    " UNION ALL SELECT 1 FROM subjects WHERE sub = ?3 AND cutoff > ?4 AND expires_at > ?5"
    " LIMIT 1"
)
_PURGE_REVOKED = "DELETE FROM revoked WHERE expires_at <= ?"
_REVOKE = (
    "INSERT INTO revoked (jti, expires_at) VALUES (?1, ?2)"
    " ON CONFLICT (jti) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
)
_PURGE_FAMILIES = "DELETE FROM families WHERE expires_at <= ?"
_REVOKE_FAMILY = (
    "INSERT INTO families (family, expires_at) VALUES (?1, ?2)"
    " ON CONFLICT (family) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)"
)
_PURGE_SUBJECTS = "DELETE FROM subjects WHERE expires_at <= ?"
# Expired marks were just purged, so a conflicting row is live: keep the later cut-off and the
# later expiry, each on its own (SET expressions all read the row as it was before the update).
_REVOKE_SUBJECT = (
    "INSERT INTO subjects (sub, cutoff, expires_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (sub) DO UPDATE SET cutoff = max(cutoff, excluded.cutoff),"
    " expires_at = max(expires_at, excluded.expires_at)"
)
_PURGE_SPENT = "DELETE FROM spent WHERE expires_at <= ?"
_SPEND = "INSERT INTO spent (jti, expires_at) VALUES (?1, ?2) ON CONFLICT (jti) DO NOTHING"
_PURGE_SUCCESSORS = "DELETE FROM successors WHERE until <= ?"
_RECORD_SUCCESSOR = (
    "INSERT INTO successors (jti, successor, until) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (jti) DO UPDATE SET successor = excluded.successor, until = excluded.until"
)
_SUCCESSOR = "SELECT successor FROM successors WHERE jti = ? AND until > ?"
_PURGE_COUNTERS = "DELETE FROM counters WHERE window_ends <= ?"
_HIT = (
    "INSERT INTO counters (key, count, window_ends) VALUES (?1, 1, ?2)"
    " ON CONFLICT (key) DO UPDATE SET count = count + 1 RETURNING count, window_ends"
)
_UNHIT = "UPDATE counters SET count = count - 1 WHERE key = ? AND count > 0"

# Connections a forked child inherited from its parent. Referenced here for the life of the
# process so that garbage collection never closes them (see the module docstring).
_INHERITED: list[sqlite3.Connection] = []
# Every store in this process, so the fork hook can reset their locks and registries.
_STORES: weakref.WeakSet[SQLiteStore] = weakref.WeakSet()


def _key(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


class _Local(threading.local):
    """This thread's connection, the (process, generation) it was opened for, the file's
    identity and epoch when it was opened, and when the file was last checked."""

    conn: sqlite3.Connection | None = None
    pid: int = 0
    generation: int = -1
    file: tuple[int, int] = (0, 0)
    epoch: float = 0.0
    checked: float = 0.0


class SQLiteStore:
    """A :class:`~jwt_wsgi.stores.base.Store` in one SQLite file, safe across processes and threads.

    Usually built from the ``store`` option through :func:`jwt_wsgi.stores.open_store`::

        store = SQLiteStore.from_url("sqlite:////var/lib/jwt_wsgi/state.db")
        store.ping()  # creates the tables; raises StoreUnavailable if the file cannot be opened

    Building the store touches nothing on disk; the file and its tables are created on first
    use, in the process (after gunicorn's fork) and thread that uses it.

    :param path: the database file. Its directory must exist.
    :param timeout: seconds a write waits for another connection's write lock before giving up
        with :class:`~jwt_wsgi.errors.StoreUnavailable`.
    :param clock: the current POSIX time; tests inject a fake one to expire records without
        sleeping.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.timeout = float(timeout)
        self._clock = clock
        self._local = _Local()
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # Bumped by close() and after a fork: a thread whose connection is from an older
        # generation opens a new one.
        self._generation = 0
        # thread -> its connection, so close() can reach the connections of every thread.
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        # The epoch this process last saw; a different one means the file was lost meanwhile.
        self._epoch: float | None = None
        _STORES.add(self)

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> SQLiteStore:
        """Build a store from ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.

        :raises ConfigurationError: (option ``store``) for a URL without a file path, with a host,
            naming ``:memory:`` (one in-memory database per connection would give every thread its
            own revocation list), or with an unknown query parameter.
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != "sqlite" or parts.netloc:
            raise ConfigurationError(
                "store", f"{url!r} is not a SQLite URL; use sqlite:///relative.db or sqlite:////abs/path.db"
            )
        path = unquote(parts.path[1:])
        if not path or path.endswith("/"):
            raise ConfigurationError(
                "store", f"{url!r} names no file; use sqlite:///relative.db or sqlite:////abs/path.db"
            )
        if path == ":memory:":
            raise ConfigurationError(
                "store", "an in-memory SQLite database is not shared between threads; use memory://"
            )
        timeout = 5.0
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name != "timeout":
                raise ConfigurationError("store", f"unknown SQLite URL parameter {name!r}; only 'timeout'")
            try:
                timeout = float(value)
            except ValueError:
                raise ConfigurationError("store", f"SQLite 'timeout' must be seconds, not {value!r}") from None
            if not timeout >= 0:  # also refuses nan
                raise ConfigurationError("store", "SQLite 'timeout' must not be negative")
        return cls(path, timeout=timeout, clock=clock)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    # -- connections -------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        local = self._local
        conn = local.conn
        if conn is not None and local.generation == self._generation and local.pid == os.getpid():
            now = self._clock()
            if local.checked <= now < local.checked + _FILE_CHECK_INTERVAL:
                return conn
            local.checked = now
            if _identity(self.path) == local.file:
                return conn
            # The file was deleted or replaced under this connection: what it holds is no longer
            # what the other workers see. Open whatever is at the path now (a new file if none).
            self._drop(conn)
        return self._open()

    def _drop(self, conn: sqlite3.Connection) -> None:
        local = self._local
        local.conn = None
        with self._lock:
            if self._connections.get(threading.current_thread()) is conn:
                del self._connections[threading.current_thread()]
        conn.close()  # rolls back an unfinished transaction

    def _open(self) -> sqlite3.Connection:
        pid = os.getpid()
        if pid != self._pid:
            self._adopt_process()
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise StoreUnavailable(f"SQLite store {self.path}: directory {directory} does not exist")
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
        try:
            epoch, created = self._prepare(conn)
            identity = _identity(self.path)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
            raise
        with self._lock:
            # Connections of threads that have ended are closed here rather than left to the
            # garbage collector, which may run in any thread at any time.
            for thread in [t for t in self._connections if not t.is_alive()]:
                self._connections.pop(thread).close()
            old = self._connections.pop(threading.current_thread(), None)
            self._connections[threading.current_thread()] = conn
            local = self._local
            local.conn, local.pid, local.generation = conn, pid, self._generation
            local.file, local.epoch, local.checked = identity, epoch, self._clock()
            known, self._epoch = self._epoch, epoch
        if old is not None:
            old.close()
        if known is not None and known != epoch:
            log.error(
                "SQLite store %s lost its state (the file was deleted or replaced): every "
                "revocation and spent refresh token it held is gone, so every token issued before "
                "%s is now refused; users must sign in again.", self.path, _when(epoch),
            )
        elif known is None and created:
            log.info("SQLite store %s created: tokens issued before %s are refused", self.path, _when(epoch))
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> tuple[float, bool]:
        """WAL mode, the schema, the epoch: (epoch, whether this call began it)."""
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._enable_wal(conn)
        conn.execute("PRAGMA synchronous = FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == _SCHEMA_VERSION:
            row = conn.execute(_EPOCH).fetchone()
            if row is not None:
                return float(row[0]), False
        if version > _SCHEMA_VERSION:
            raise StoreUnavailable(f"SQLite store {self.path}: schema version {version} is newer than this jwt_wsgi")
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have set the file up meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for statement in _SCHEMA:
                conn.execute(statement)
            # Version 1 kept every record: no cut-off. Anything else is a new file (or one whose
            # epoch was deleted): it knows nothing of earlier tokens.
            created = conn.execute(_BEGIN_EPOCH, (0.0 if version == 1 else cutoff_after(self._clock()),)).rowcount == 1
            (epoch,) = conn.execute(_EPOCH).fetchone()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return float(epoch), created

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching to WAL needs an exclusive lock and SQLite reports "locked" at once instead
        # of waiting for the busy timeout, so workers racing to create the file retry here.
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def _adopt_process(self) -> None:
        """Forget the connections of the parent process (in a forked child)."""
        self._lock = threading.Lock()
        _INHERITED.extend(self._connections.values())
        self._connections = {}
        self._generation += 1
        self._pid = os.getpid()

    def _unavailable(self, exc: sqlite3.Error) -> StoreUnavailable:
        """Drop this thread's connection (the next call opens a fresh one) and describe ``exc``."""
        local = self._local
        conn = local.conn
        if conn is not None and local.pid == os.getpid():
            self._drop(conn)
        return StoreUnavailable(f"SQLite store {self.path}: {exc}")

    def _write(self, work: Callable[[sqlite3.Connection, float], _T]) -> _T:
        """Run ``work(conn, now)`` in one ``BEGIN IMMEDIATE`` transaction.

        ``now`` is read once the write lock is held, so time spent waiting for the lock does not
        shorten windows or revive expired records.
        """
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn, self._clock())
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

    # -- revocation --------------------------------------------------------------------------
    def is_revoked(self, jti: str | None, sub: str, iat: float, family: str | None) -> bool:
        try:
            conn = self._connection()
            if iat != 0 and iat < self._local.epoch:
                return True  # issued before this file began: whatever was known about it is lost
            row = (
                conn
                .execute(
                    _IS_REVOKED,
                    (
                        None if jti is None else _key(jti),
                        None if family is None else _key(family),
                        _key(sub),
                        iat,
                        self._clock(),
                    ),
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc
        return row is not None

    def revoke(self, jti: str, expires_at: float) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(_PURGE_REVOKED, (now,))
            conn.execute(_REVOKE, (_key(jti), expires_at))

        self._write(work)

    def revoke_subject(self, sub: str, cutoff: float, expires_at: float) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(_PURGE_SUBJECTS, (now,))
            conn.execute(_REVOKE_SUBJECT, (_key(sub), cutoff, expires_at))

        self._write(work)

    def revoke_family(self, family: str, expires_at: float) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(_PURGE_FAMILIES, (now,))
            conn.execute(_REVOKE_FAMILY, (_key(family), expires_at))

        self._write(work)

    def spend(self, jti: str, expires_at: float) -> bool:
        def work(conn: sqlite3.Connection, now: float) -> bool:
            conn.execute(_PURGE_SPENT, (now,))
            return conn.execute(_SPEND, (_key(jti), expires_at)).rowcount == 1

        return self._write(work)

    def rotate(self, jti: str, expires_at: float, successor: str, reuse_interval: float) -> str | None:
        def work(conn: sqlite3.Connection, now: float) -> str | None:
            conn.execute(_PURGE_SPENT, (now,))
            if conn.execute(_SPEND, (_key(jti), expires_at)).rowcount == 1:
                if reuse_interval > 0:
                    conn.execute(_PURGE_SUCCESSORS, (now,))
                    conn.execute(_RECORD_SUCCESSOR, (_key(jti), successor, now + reuse_interval))
                return successor
            row = conn.execute(_SUCCESSOR, (_key(jti), now)).fetchone()
            return None if row is None else str(row[0])

        return self._write(work)

    # -- rate limits -------------------------------------------------------------------------
    def hit(self, key: str, window: float) -> tuple[int, float]:
        def work(conn: sqlite3.Connection, now: float) -> tuple[int, float]:
            conn.execute(_PURGE_COUNTERS, (now,))
            # fetchall(): a RETURNING statement keeps its write open until it is stepped to the end.
            ((count, window_ends),) = conn.execute(_HIT, (_key(key), now + window)).fetchall()
            return int(count), max(window_ends - now, 0.0)

        return self._write(work)

    def unhit(self, key: str) -> None:
        def work(conn: sqlite3.Connection, now: float) -> None:
            conn.execute(_UNHIT, (_key(key),))

        self._write(work)

    # -- lifecycle ---------------------------------------------------------------------------
    def purge(self) -> None:
        """Delete every expired record now. Writes already do this table by table; call it from
        a maintenance job if a table may go unwritten for a long time after a burst."""

        def work(conn: sqlite3.Connection, now: float) -> None:
            for statement in (_PURGE_REVOKED, _PURGE_FAMILIES, _PURGE_SUBJECTS, _PURGE_SPENT, _PURGE_SUCCESSORS,
                              _PURGE_COUNTERS):
                conn.execute(statement, (now,))

        self._write(work)

    @property
    def epoch(self) -> float | None:
        """The time from which this file has kept every record, as this process last saw it
        (``None`` before first use). Tokens issued before it count as revoked."""
        return self._epoch

    def ping(self) -> None:
        """Open (and if needed create) the database and run a query.

        :raises StoreUnavailable: the directory does not exist, the file cannot be opened or
            written, or it is not a database.
        """
        try:
            self._connection().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        """Close the connections this process opened, in every thread. Later calls reopen.

        Call it when no request is in flight (at worker exit); a thread caught mid-call gets
        :class:`~jwt_wsgi.errors.StoreUnavailable`.
        """
        if os.getpid() != self._pid:
            self._adopt_process()
            return
        with self._lock:
            connections = list(self._connections.values())
            self._connections.clear()
            self._generation += 1
        self._local.conn = None
        for conn in connections:
            conn.close()


def _identity(path: str) -> tuple[int, int]:
    """(device, inode) of the file at ``path``; (0, 0) when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return (0, 0)
    return (stat.st_dev, stat.st_ino)


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _after_fork_in_child() -> None:
    # A lock held by another thread of the parent at fork time would stay locked forever in
    # the child: replace every store's lock before the child runs anything else.
    for store in list(_STORES):
        store._adopt_process()


os.register_at_fork(after_in_child=_after_fork_in_child)
