"""What jwt_wsgi writes to Python's logging: audit events, their record structure, a JSON-lines
formatter, and warnings that repeat at most once per interval.

Loggers, all under ``jwt_wsgi``: one per module (``jwt_wsgi.middleware``, ``jwt_wsgi.stores``,
...) for operational messages, and :data:`AUDIT_LOGGER` (``jwt_wsgi.audit``) for the events an
operator or an auditor asks about: who signed in, who failed, which refresh token came back,
who logged out, what was revoked. An audit record carries its fields as record attributes (the
``extra=`` of :meth:`logging.Logger.info`), named in :data:`FIELDS`:

========== ==================================================================================
event      ``login``, ``login_failed``, ``refresh``, ``refresh_reuse``, ``logout``, ``revocation``
reason     why (``invalid_credentials``, ``rate_limited``, ``everywhere``, ``api`` ...), or absent
sub        the user (the token's ``sub``; for a failed login only a user the users file knows)
jti        the token id concerned
family     the refresh family (one sign-in and its refreshes)
client     the client address (``REMOTE_ADDR``, or past ``trusted_proxies`` the forwarded one)
request_id ``X-Request-Id`` when the request has a well-formed one, else a new random id
path       the request path
suppressed how many repeats of a throttled warning were left out before this one
========== ==================================================================================

A field that does not apply is absent. The message repeats the fields as ``key=value`` words,
so a plain text log shows them too. Never in a record: a token, a password, a secret, or a user
name someone typed at a failed login (it may be their password). Everything taken from a request
is escaped with :func:`escape_log_text`: one record is one line.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

#: The logger of audit events.
AUDIT_LOGGER = "jwt_wsgi.audit"
#: The structured fields of a jwt_wsgi record, in the order the message and JSON lines show them.
FIELDS = ("event", "reason", "sub", "jti", "family", "client", "request_id", "path", "suppressed")
#: The environ key under which a request's id is kept once an event has needed one.
REQUEST_ID_KEY = "jwt_wsgi.request_id"
#: Seconds during which a repeated warning is counted rather than written again (per process).
WARNING_INTERVAL = 10.0

audit_log = logging.getLogger(AUDIT_LOGGER)

# -- escaping ---------------------------------------------------------------------------------------
# Anything but printable ASCII, and the backslash that starts our escapes: the slow path.
_NEEDS_ESCAPE = re.compile(r"[^\x20-\x5b\x5d-\x7e]")


def escape_log_text(value: str, *, wsgi: bool = False) -> str:
    """``value`` as one line of printable text: a log reader sees what was sent, never a new line.

    Control characters (C0, DEL, C1), line and paragraph separators, format characters (bidi
    overrides, zero-width ones) and every other character Python deems unprintable become
    ``\\xNN`` / ``\\uNNNN`` escapes; a backslash becomes ``\\\\``, so an escape in the log always
    means the character was there.

    :param wsgi: ``value`` is a PEP 3333 string (bytes carried as Latin-1): shown as UTF-8 text when
        the bytes are UTF-8, so ``/%E2%80%A8`` is logged as ``/\\u2028``.
    """
    if not _NEEDS_ESCAPE.search(value):
        return value
    if wsgi:
        try:
            value = value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            pass  # not UTF-8 (or not a WSGI string after all): escape what is there
    out: list[str] = []
    for char in value:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char.isprintable():
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


# -- audit events -----------------------------------------------------------------------------------
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
_MAX_FIELD = 256  # a claim or an address longer than this is cut: a log line is not a store


def request_id(environ: dict[str, Any]) -> str:
    """The request's id: its ``X-Request-Id`` (1-128 characters of ``A-Za-z0-9._:/+=@-``), or a new
    random one; kept in ``environ["jwt_wsgi.request_id"]`` so every event of a request shares it."""
    known = environ.get(REQUEST_ID_KEY)
    if isinstance(known, str):
        return known
    given = environ.get("HTTP_X_REQUEST_ID")
    value = given if isinstance(given, str) and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    environ[REQUEST_ID_KEY] = value
    return value


def _field(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return escape_log_text(text[:_MAX_FIELD], wsgi=False)


def audit(event: str, environ: dict[str, Any] | None = None, *, level: int = logging.INFO,
          client: str | None = None, **fields: Any) -> None:
    """Write one audit event to ``jwt_wsgi.audit``.

    :param event: the event name (see the module's table).
    :param environ: the request it happened in (adds ``request_id`` and ``path``); ``None`` for a
        call from the application's own code.
    :param client: the client address, as :func:`jwt_wsgi.endpoints.client_address` found it.
    :param fields: ``reason``, ``sub``, ``jti``, ``family``; ``None`` values are left out.
    """
    if not audit_log.isEnabledFor(level):
        return
    record: dict[str, Any] = {"event": event}
    for name in ("reason", "sub", "jti", "family"):
        value = fields.get(name)
        if value is not None:
            record[name] = _field(value)
    if client is not None:
        record["client"] = _field(client)
    if environ is not None:
        record["request_id"] = request_id(environ)
        path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        record["path"] = escape_log_text(path[:_MAX_FIELD], wsgi=True)
    message = " ".join([event, *(f"{name}={record[name]}" for name in FIELDS[1:] if name in record)])
    audit_log.log(level, "%s", message, extra=record)


# -- warnings that repeat ---------------------------------------------------------------------------
class Throttle:
    """Write a repeated warning at most once per ``interval`` seconds per process, counting the rest.

    The first occurrence is written at once; repeats within ``interval`` are only counted; the
    first one after it is written with ``(N similar suppressed)`` and ``suppressed=N``. Keyed by
    logger and message template, so "store unavailable; request refused" during an outage is a
    line every ``interval`` seconds per worker, not one per request.

    :param interval: seconds.
    :param clock: a monotonic clock in seconds; injectable for tests.
    """

    def __init__(self, interval: float = WARNING_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._state: dict[tuple[str, str], list[float]] = {}  # key -> [last written, suppressed]

    def log(self, logger: logging.Logger, level: int, message: str, *args: Any) -> bool:
        """Log ``message % args`` unless it was written less than ``interval`` ago; True if written."""
        if not logger.isEnabledFor(level):
            return False
        key = (logger.name, message)
        now = self.clock()
        with self._lock:
            state = self._state.get(key)
            if state is not None and now - state[0] < self.interval:
                state[1] += 1
                return False
            suppressed = int(state[1]) if state is not None else 0
            if len(self._state) >= 1024:  # templates are ours, but stay bounded
                self._state.clear()
            self._state[key] = [now, 0]
        if suppressed:
            logger.log(level, message + " (%d similar suppressed)", *args, suppressed,
                       extra={"suppressed": suppressed})
        else:
            logger.log(level, message, *args)
        return True

    def warning(self, logger: logging.Logger, message: str, *args: Any) -> bool:
        return self.log(logger, logging.WARNING, message, *args)


#: The process's throttle for jwt_wsgi's repeated warnings.
throttle = Throttle()


# -- JSON lines ---------------------------------------------------------------------------------
class JSONFormatter(logging.Formatter):
    """One JSON object per record, on one line: ``time`` (UTC, ISO 8601 with milliseconds),
    ``level``, ``logger``, ``pid``, ``message``, the structured fields present (:data:`FIELDS`),
    and ``exc_info`` (the traceback as text) when there is one.

    Usage, with :func:`logging.config.dictConfig`::

        "formatters": {"json": {"()": "jwt_wsgi.logs.JSONFormatter"}}

    Non-ASCII characters are written as ``\\uXXXX`` escapes, so no character in a value can
    break the line, whatever the handler's encoding.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        return json.dumps(entry, ensure_ascii=True, default=str, separators=(",", ":"))


def fields_of(record: logging.LogRecord) -> Mapping[str, Any]:
    """The structured fields a record carries (for tests and custom formatters)."""
    return {name: getattr(record, name) for name in FIELDS if getattr(record, name, None) is not None}
