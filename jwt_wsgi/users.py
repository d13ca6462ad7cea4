"""Credentials: a JSON users file with Werkzeug password hashes, or your own callable.

The users file (managed with ``jwt-wsgi users``) looks like::

    {"users": {"alice": {"password": "scrypt:32768:8:1$...", "claims": {"scope": "read write"}}}}

``claims`` are copied into every token the user gets (reserved claims such as ``sub`` or ``exp``
are ignored). The file is re-read when it changes, so ``jwt-wsgi users add`` takes effect without
a restart. Unknown users cost the same password hash as known ones, so neither the answer nor
its timing tells whether a user exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from .claims import RESERVED_CLAIMS
from .errors import ConfigurationError

Authenticate = Callable[[str, str], Mapping[str, Any] | None]

MAX_USERNAME = 256
MAX_PASSWORD = 1024


def hash_password(password: str) -> str:
    """A Werkzeug password hash (scrypt by default)."""
    return generate_password_hash(password)


def valid_username(name: str) -> bool:
    """Printable, no white space or separators, already in NFC form, at most 256 characters."""
    return (
        0 < len(name) <= MAX_USERNAME
        and name.isprintable()
        and not any(c.isspace() for c in name)
        and ":" not in name
        and unicodedata.normalize("NFC", name) == name
    )


class UsersFile:
    """Users read from a JSON file; callable as ``authenticate(username, password)``.

    :param path: the file; it must exist (an empty ``{"users": {}}`` is fine).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, dict[str, Any]] = {}
        # A relative path is resolved against the current directory: say which one was meant.
        shown = repr(path) if os.path.isabs(path) else f"{path!r} (that is {os.path.abspath(path)})"
        try:
            self._reload()
        except OSError as exc:
            raise ConfigurationError("users_file", f"cannot read {shown}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigurationError("users_file", f"{shown}: {exc}") from None
        # A real hash of a random password with the same method as the file's users, checked
        # for unknown users so that they cost the same time (threat model §5.2).
        sample = next((u["password"] for u in self._users.values()), None)
        method = sample.split("$", 1)[0] if sample else None
        self._dummy = generate_password_hash(secrets.token_urlsafe(16), **({"method": method} if method else {}))

    @staticmethod
    def parse(data: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(data, dict) or not isinstance(data.get("users"), dict):
            raise ValueError('expected {"users": {NAME: {"password": HASH, "claims": {...}}}}')
        users: dict[str, dict[str, Any]] = {}
        for name, entry in data["users"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("password"), str):
                raise ValueError(f"user {name!r} needs a password hash")
            claims = entry.get("claims", {})
            if not isinstance(claims, dict):
                raise ValueError(f"user {name!r}: claims must be an object")
            # The file may not choose sub, exp, type ...: the middleware sets those.
            users[name] = {"password": entry["password"],
                           "claims": {k: v for k, v in claims.items() if k not in RESERVED_CLAIMS}}
        return users

    def _reload(self) -> None:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        with open(self.path, encoding="utf-8") as fh:
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
        self._users = self.parse(data)
        self._stamp = stamp

    def lookup(self, username: str) -> Mapping[str, Any] | None:
        """The extra claims of an existing user (for refresh), or ``None``."""
        self._refresh()
        entry = self._users.get(username)
        return None if entry is None else dict(entry["claims"])

    def _refresh(self) -> None:
        with self._lock:
            try:
                self._reload()
            except (OSError, ValueError):
                # Keep serving the last good file; a half-written edit must not lock everyone out.
                pass

    def __call__(self, username: str, password: str) -> Mapping[str, Any] | None:
        self._refresh()
        entry = self._users.get(username)
        if entry is None:
            check_password_hash(self._dummy, password)
            return None
        if not check_password_hash(entry["password"], password):
            return None
        return dict(entry["claims"])


# -- editing the file (the CLI) ---------------------------------------------------------------
def load_for_edit(path: str) -> dict[str, Any]:
    if not os.path.exists(path):
        return {"users": {}}
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    UsersFile.parse(data)
    return data  # type: ignore[no-any-return]


@contextlib.contextmanager
def edit_lock(path: str) -> Iterator[None]:
    """Hold an exclusive lock for a read-change-write of the users file ``path``.

    The lock (``flock``) is taken on the file's directory: the users file itself is replaced on
    every write, so a lock on it would not outlive the first edit, and a lock file beside it
    would be left behind. Blocks until granted; released when the block ends.
    """
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def save_atomically(path: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file and ``os.replace``, mode 0600."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".users-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
