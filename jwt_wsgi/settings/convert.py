"""Converters: an option's value as kwargs, TOML, ``JWT_WSGI_*`` variables or PasteDeploy give it
(text, lists, numbers, :class:`~datetime.timedelta`, ...) -> the typed value :class:`Settings` holds.

Each converter takes ``(option, value)``, raises :class:`~jwt_wsgi.ConfigurationError` naming the
option, and runs once per value (see :class:`~jwt_wsgi.settings.Settings`): it never sees its own
output again, so it need not accept it unchanged.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, NoReturn, TypeVar

from ..errors import ConfigurationError
from .loading import import_object

ERROR_FORMATS = ("json", "problem", "article")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day|s|m|h|d)s?\s*$")
_RATE_UNITS = {"second": 1, "s": 1, "minute": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}

K = TypeVar("K")
V = TypeVar("V")


class FrozenMap(Mapping[K, V], Generic[K, V]):
    """A read-only, hashable mapping: ``scopes`` and ``verify_claim_headers`` of frozen settings.

    It reads like a ``dict`` (``[key]``, ``.items()``, ``==`` a dict with the same items), but has
    no way to change it, so settings that hold one are values: hashable, safe to share.
    """

    __slots__ = ("_items",)
    _items: dict[K, V]

    def __init__(self, items: Mapping[K, V] | Iterable[tuple[K, V]] = ()) -> None:
        object.__setattr__(self, "_items", dict(items))

    def __getitem__(self, key: K) -> V:
        return self._items[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._items.items()))

    def __repr__(self) -> str:
        return f"FrozenMap({self._items!r})"

    def __reduce__(self) -> tuple[type[FrozenMap[K, V]], tuple[dict[K, V]]]:
        return type(self), (dict(self._items),)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is read-only")


@dataclass(frozen=True)
class RateLimit:
    """``limit`` attempts per ``window`` seconds; ``limit == 0`` disables the limit."""

    limit: int
    window: float

    @classmethod
    def parse(cls, option: str, value: Any) -> RateLimit:
        if isinstance(value, RateLimit):
            return value
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "off")):
            return cls(0, 60.0)
        match = _RATE.match(str(value))
        if not match:
            raise ConfigurationError(option, f"expected a rate such as '5/minute' or '20/10m', got {value!r}")
        count, mult, unit = match.groups()
        return cls(int(count), float(int(mult or 1) * _RATE_UNITS[unit]))

    def __str__(self) -> str:
        return "off" if not self.limit else f"{self.limit}/{self.window:g}s"


def parse_duration(option: str, value: Any) -> float:
    """Seconds from a number, a :class:`datetime.timedelta` or a string like ``90s``, ``30m``,
    ``12h``, ``14d``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ConfigurationError(option, f"expected a duration, got {value!r}")
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ConfigurationError(option, f"expected a duration such as 90s, 30m, 12h or 14d, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ConfigurationError(option, f"expected a duration, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(option, "must be a finite, non-negative duration")
    return seconds


def resolve_sqlite_path(url: str, base_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///relative.db`` in a configuration file: relative to the file, like every path there."""
    if not url.lower().startswith("sqlite:///") or url.lower().startswith("sqlite:////"):
        return url
    rest = url[len("sqlite:///"):]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    return "sqlite:///" + str(Path(base_dir, path)) + sep + query


def str_list(option: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        if value.strip().startswith("[") and value.strip().endswith("]"):
            raise ConfigurationError(option, f"{value!r} looks like a JSON list; in a variable, lists are "
                                             "comma-separated: /api,/admin")
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = tuple(value)
        if not all(isinstance(item, str) for item in items):
            raise ConfigurationError(option, "every entry must be a string")
        return items
    raise ConfigurationError(option, f"expected a list of strings, got {type(value).__name__}")


def boolean(option: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ConfigurationError(option, f"expected true or false, got {value!r}")


def auto_or_boolean(option: str, value: Any) -> bool | None:
    """``cookie_secure``: ``None`` (``auto``: decided per request from its scheme), ``True`` or ``False``."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    try:
        return boolean(option, value)
    except ConfigurationError:
        raise ConfigurationError(option, f"expected auto, true or false, got {value!r}") from None


def whole_number(option: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(option, f"expected a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(option, f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ConfigurationError(option, "must not be negative")
    return number


def text(option: str, value: Any) -> str:
    """A plain string option (``realm``)."""
    return str(value)


def stripped(option: str, value: Any) -> str:
    """A name or URL without surrounding spaces (``algorithm``, ``header_name``, ``cookie_name``)."""
    return str(value).strip()


def optional_str(option: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ConfigurationError(option, f"expected a string, got {type(value).__name__}")
    return None if value.strip().lower() in ("", "none", "off") else value


def choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    """A converter to one of ``choices``, whatever the case it is written in."""

    def convert(option: str, value: Any) -> str:
        written = str(value).strip() if not isinstance(value, bool) else str(value).lower()
        for name in choices:
            if written.lower() == name.lower():
                return name
        raise ConfigurationError(option, f"expected one of {', '.join(choices)}, got {value!r}")

    return convert


def store_url(option: str, value: Any) -> str:
    """A store URL. Which schemes are supported is the stores' business (checked when the
    middleware opens it); here it must at least be a URL."""
    url = str(value).strip()
    if "://" not in url:
        raise ConfigurationError(
            option, f"unsupported store URL {url!r}; use memory://, sqlite:///path/file.db or redis://host:port/db"
        )
    return url


def callable_or_import(option: str, value: Any) -> Any:
    """A callable, or ``"package.module:attribute"`` naming one; ``None`` stays ``None``."""
    if callable(value) or value is None:
        return value
    if not isinstance(value, str) or ":" not in value:
        raise ConfigurationError(option, f"expected a callable or 'module:attribute', got {value!r}")
    return import_object(option, value)


#: The methods of :class:`jwt_wsgi.metrics.Metrics` (named here: settings import nothing above them).
METRICS_HOOKS = ("decision", "cache", "revocation_check", "store_call", "rate_limited", "reuse_detected", "event",
                 "exposition")


def metrics_hooks(option: str, value: Any) -> Any:
    """Metrics hooks: an object with the methods of :class:`jwt_wsgi.metrics.Metrics`,
    ``"module:attribute"`` naming one, or ``"prometheus"`` (the ``prometheus_client`` adapter)."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "off"):
            return None
        if text.lower() == "prometheus":
            return "prometheus"
        if ":" not in text:
            raise ConfigurationError(option, f"expected 'prometheus' or 'module:attribute', got {value!r}")
        value = import_object(option, text, what=None)
    if value is None:
        return None
    missing = [name for name in METRICS_HOOKS if not callable(getattr(value, name, None))]
    if isinstance(value, type) or missing:
        raise ConfigurationError(option, f"{value!r} is not a metrics hooks object (jwt_wsgi.metrics.Metrics); "
                                 f"it lacks {', '.join(missing) or 'an instance'}")
    return value


def error_format(option: str, value: Any) -> str | Callable[..., Any]:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and value in ERROR_FORMATS:
        return value
    if isinstance(value, str) and ":" in value:
        return import_object(option, value)  # type: ignore[no-any-return]
    raise ConfigurationError(option, f"expected one of {', '.join(ERROR_FORMATS)} or a callable, got {value!r}")


def audience(option: str, value: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    items = str_list(option, value)
    if not items:
        return None
    return items[0] if len(items) == 1 else items


# A binary secret written as text: ``base64:`` (standard alphabet) or ``base64url:`` (RFC 4648 §5),
# padding optional. Anything else is the secret's own UTF-8 text.
_BASE64_FORMS = {"base64:": re.compile(r"[A-Za-z0-9+/]+={0,2}"), "base64url:": re.compile(r"[A-Za-z0-9_-]+={0,2}")}


def secret_bytes(option: str, value: Any) -> bytes | None:
    """Secret bytes from bytes, text, or ``base64:...`` / ``base64url:...`` text (a binary secret
    in an environment variable, a TOML file or a PasteDeploy section). Messages never quote it."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise ConfigurationError(option, "expected a string or bytes")
    for prefix, alphabet in _BASE64_FORMS.items():
        if value.startswith(prefix):
            encoded = value[len(prefix):].strip()
            if not alphabet.fullmatch(encoded) or len(encoded.rstrip("=")) % 4 == 1:
                raise ConfigurationError(
                    option, f"is not valid {prefix[:-1]} after {prefix!r} (alphabet "
                    + ("A-Z a-z 0-9 + /" if prefix == "base64:" else "A-Z a-z 0-9 - _") + ", padding optional)"
                )
            padded = encoded.rstrip("=") + "=" * (-len(encoded.rstrip("=")) % 4)
            return base64.b64decode(padded, altchars=b"-_" if prefix == "base64url:" else None)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in an environment variable (surrogateescape)
        raise ConfigurationError(
            option, "is not valid UTF-8 text; give a binary secret as base64:<its standard base64>"
        ) from None


def mapping_text(option: str, value: Any, form: str) -> Any:
    """A mapping written as text (TOML string, environment, PasteDeploy): a JSON object, or
    comma-separated ``KEY=VALUE`` pairs in ``form``. Anything but a string is returned as it is."""
    if not isinstance(value, str):
        return value
    written = value.strip()
    if written.startswith("{"):
        try:
            return json.loads(written)
        except ValueError:
            raise ConfigurationError(option, "is not valid JSON") from None
    pairs: dict[str, Any] = {}
    for item in str_list(option, written):
        key, sep, rest = item.partition("=")
        if not sep:
            raise ConfigurationError(option, f"expected {form!r}, got {item!r}")
        pairs[key.strip()] = rest.strip()
    return pairs


def scope_map(option: str, value: Any) -> FrozenMap[str, tuple[str, ...]]:
    """``scopes``: path prefix -> the scopes a token needs there (``/admin=admin,/api/write=write edit``)."""
    if value is None:
        return FrozenMap()
    value = mapping_text(option, value, "PREFIX=scope1 scope2")
    if not isinstance(value, Mapping):
        raise ConfigurationError(option, "expected a mapping of path prefix to required scopes")
    result: dict[str, tuple[str, ...]] = {}
    for prefix, scopes in value.items():
        names = str_list(option, scopes.split() if isinstance(scopes, str) else scopes)
        if not names or any(not s or any(c.isspace() for c in s) for s in names):
            raise ConfigurationError(option, f"prefix {prefix!r} needs one or more scope names without spaces")
        result[str(prefix)] = names
    return FrozenMap(result)


_OWN_HEADERS = frozenset({"cache-control", "connection", "content-length", "content-type", "location",
                          "set-cookie", "transfer-encoding", "vary", "www-authenticate"})
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")


def claim_headers(option: str, value: Any) -> FrozenMap[str, str]:
    """``verify_claim_headers``: claim name -> response header name (``sub=X-Auth-User,email=X-Auth-Email``)."""
    if value is None:
        return FrozenMap()
    value = mapping_text(option, value, "claim=Header-Name")
    if not isinstance(value, Mapping):
        raise ConfigurationError(option, "expected a mapping of claim name to response header name")
    result: dict[str, str] = {}
    for claim, header in value.items():
        if not isinstance(claim, str) or not claim or not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
            raise ConfigurationError(option, f"{claim!r}: {header!r} is not a claim name and an HTTP header name")
        if header.lower() in _OWN_HEADERS:
            raise ConfigurationError(option, f"{header!r} is a header the verifier's answer sets itself")
        if header.lower() in {h.lower() for h in result.values()}:
            raise ConfigurationError(option, f"header {header!r} is named twice")
        result[claim] = header
    return FrozenMap(result)
