"""Every option, as one frozen keyword-only dataclass, validated once at construction.

Keyword arguments, TOML files, ``JWT_WSGI_*`` environment variables and PasteDeploy
``[filter:...]`` sections all build this one object through :meth:`Settings.from_mapping`,
so an option name means the same thing everywhere. Strings are converted by the option's
type (durations such as ``90s``/``30m``/``12h``/``14d``, comma-separated lists, booleans).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
ASYMMETRIC_ALGORITHMS = (*RSA_ALGORITHMS, *EC_ALGORITHMS, "EdDSA")
ALGORITHMS = (*HMAC_ALGORITHMS, *ASYMMETRIC_ALGORITHMS)

TOKEN_SOURCES = ("header", "cookie", "query")
ERROR_FORMATS = ("json", "problem", "article")
ENV_PREFIX = "JWT_WSGI_"

# Values that appear in tutorials, README files and the article this project grew from.
# They are refused even when long enough: an attacker tries them first (catalogue T12/T13).
_KNOWN_WEAK_SECRETS = {
    "secret", "changeme", "change-me", "password", "your-256-bit-secret", "your-secret-key",
    "secret-key", "secretkey", "supersecret", "super-secret", "jwt-secret", "mysecretkey",
    "thisismyflasksecretkey", "thisissecret", "this-is-a-secret", "test", "key",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day|s|m|h|d)s?\s*$")
_RATE_UNITS = {"second": 1, "s": 1, "minute": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}


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


def _str_list(option: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = tuple(value)
        if not all(isinstance(item, str) for item in items):
            raise ConfigurationError(option, "every entry must be a string")
        return items
    raise ConfigurationError(option, f"expected a list of strings, got {type(value).__name__}")


def _bool(option: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
    raise ConfigurationError(option, f"expected true or false, got {value!r}")


def _int(option: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ConfigurationError(option, f"expected a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(option, f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ConfigurationError(option, "must not be negative")
    return number


def _optional_str(option: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(option, f"expected a string, got {type(value).__name__}")
    return None if value.strip().lower() in ("", "none", "off") else value


def _import_object(option: str, value: Any) -> Any:
    """``"package.module:attribute"`` -> the attribute; a callable is returned unchanged."""
    if callable(value) or value is None:
        return value
    if not isinstance(value, str) or ":" not in value:
        raise ConfigurationError(option, f"expected a callable or 'module:attribute', got {value!r}")
    module_name, _, attr = value.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(option, f"cannot import {value!r}: {exc}") from None
    if not callable(obj):
        raise ConfigurationError(option, f"{value!r} is not callable")
    return obj


def _scopes(option: str, value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            import json

            try:
                value = json.loads(text)
            except ValueError:
                raise ConfigurationError(option, "is not valid JSON") from None
        else:
            pairs: dict[str, Any] = {}
            for item in _str_list(option, text):
                prefix, sep, scopes = item.partition("=")
                if not sep:
                    raise ConfigurationError(option, f"expected 'PREFIX=scope1 scope2', got {item!r}")
                pairs[prefix.strip()] = scopes
            value = pairs
    if not isinstance(value, Mapping):
        raise ConfigurationError(option, "expected a mapping of path prefix to required scopes")
    result: dict[str, tuple[str, ...]] = {}
    for prefix, scopes in value.items():
        if isinstance(scopes, str):
            scopes = scopes.split()
        names = _str_list(option, scopes)
        if not names or any(not s or any(c.isspace() for c in s) for s in names):
            raise ConfigurationError(option, f"prefix {prefix!r} needs one or more scope names without spaces")
        result[str(prefix)] = names
    return result


def _secret(option: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ConfigurationError(option, "expected a string or bytes")


def _audience(option: str, value: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    items = _str_list(option, value)
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def _error_format(option: str, value: Any) -> str | Callable[..., Any]:
    if callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str) and value in ERROR_FORMATS:
        return value
    if isinstance(value, str) and ":" in value:
        return _import_object(option, value)  # type: ignore[no-any-return]
    raise ConfigurationError(option, f"expected one of {', '.join(ERROR_FORMATS)} or a callable, got {value!r}")


def _path_option(option: str, value: Any) -> str | None:
    return _optional_str(option, value)


# How a string from TOML, the environment or PasteDeploy becomes the option's value.
_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "secret": _secret,
    "algorithm": lambda o, v: str(v).strip(),
    "private_key": _optional_str,
    "private_key_passphrase": _secret,
    "public_key": _optional_str,
    "issuer": _optional_str,
    "audience": _audience,
    "leeway": parse_duration,
    "access_ttl": parse_duration,
    "refresh_ttl": parse_duration,
    "protect": _str_list,
    "public": _str_list,
    "scopes": _scopes,
    "login_path": _path_option,
    "refresh_path": _path_option,
    "logout_path": _path_option,
    "jwks_path": _path_option,
    "cors_preflight": _bool,
    "token_sources": _str_list,
    "header_name": lambda o, v: str(v).strip(),
    "cookie_name": lambda o, v: str(v).strip(),
    "query_param": _optional_str,
    "users_file": _optional_str,
    "authenticate": _import_object,
    "store": lambda o, v: str(v).strip(),
    "store_fail_open": _bool,
    "login_rate_limit": RateLimit.parse,
    "login_ip_rate_limit": RateLimit.parse,
    "trusted_proxies": _str_list,
    "error_format": _error_format,
    "realm": lambda o, v: str(v),
    "max_token_size": _int,
    "max_body_size": _int,
    "token_cache_size": _int,
    "allow_weak_secret": _bool,
}

# Options whose values never appear in repr(), logs or `jwt-wsgi check`.
SECRET_OPTIONS = frozenset({"secret", "private_key_passphrase"})
# Options that hold file system paths; relative paths in a TOML file are relative to it.
PATH_OPTIONS = frozenset({"private_key", "public_key", "users_file"})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated options of a :class:`~jwt_wsgi.JWTMiddleware`. See the README's options table."""

    # keys
    secret: bytes | None = field(default=None, repr=False)
    algorithm: str = "HS256"
    private_key: str | None = None
    private_key_passphrase: bytes | None = field(default=None, repr=False)
    public_key: str | None = None
    issuer: str | None = None
    audience: str | tuple[str, ...] | None = None
    leeway: float = 0.0
    access_ttl: float = 1800.0
    refresh_ttl: float = 14 * 86400.0
    # paths
    protect: tuple[str, ...] = ("/",)
    public: tuple[str, ...] = ()
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    login_path: str | None = "/auth/login"
    refresh_path: str | None = "/auth/refresh"
    logout_path: str | None = "/auth/logout"
    jwks_path: str | None = "/.well-known/jwks.json"
    cors_preflight: bool = True
    # token sources
    token_sources: tuple[str, ...] = ("header",)
    header_name: str = "Authorization"
    cookie_name: str = "access_token"
    query_param: str | None = None
    # credentials
    users_file: str | None = None
    authenticate: Callable[[str, str], Mapping[str, Any] | None] | None = None
    # state
    store: str = "memory://"
    store_fail_open: bool = False
    login_rate_limit: RateLimit = RateLimit(5, 60.0)
    login_ip_rate_limit: RateLimit = RateLimit(20, 60.0)
    trusted_proxies: tuple[str, ...] = ()
    # responses
    error_format: str | Callable[..., Any] = "json"
    realm: str = "jwt_wsgi"
    max_token_size: int = 8192
    max_body_size: int = 16384
    token_cache_size: int = 4096
    allow_weak_secret: bool = False

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None) -> Settings:
        """Build settings from option names and values (strings are converted).

        :param options: option name -> value, as kwargs, TOML, environment or PasteDeploy give them.
        :param base_dir: directory that relative file paths are resolved against.
        :raises ConfigurationError: naming the first unknown or invalid option.
        """
        known = set(cls.option_names())
        values: dict[str, Any] = {}
        for name, raw in options.items():
            if name not in known:
                hint = difflib.get_close_matches(name, known, n=1)
                fix = f"; did you mean {hint[0]!r}?" if hint else f"; known options: {', '.join(sorted(known))}"
                raise ConfigurationError(name, f"unknown option{fix}")
            value = _CONVERTERS[name](name, raw)
            if base_dir is not None and name in PATH_OPTIONS and isinstance(value, str):
                value = str(Path(base_dir, value)) if not os.path.isabs(value) else value
            values[name] = value
        return cls(**values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Options from ``JWT_WSGI_<OPTION>`` variables (upper case), then ``overrides``."""
        environ = os.environ if environ is None else environ
        options: dict[str, Any] = {}
        names = {name.upper(): name for name in cls.option_names()}
        for key, value in environ.items():
            if key.startswith(ENV_PREFIX):
                suffix = key[len(ENV_PREFIX):]
                if suffix not in names:
                    hint = difflib.get_close_matches(suffix, names, n=1)
                    fix = f"; did you mean {ENV_PREFIX}{hint[0]}?" if hint else ""
                    raise ConfigurationError(key, f"unknown jwt_wsgi variable{fix}")
                options[names[suffix]] = value
        options.update(overrides)
        return cls.from_mapping(options)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **overrides: Any) -> Settings:
        """Options from a TOML file: top-level keys, or the ``[jwt_wsgi]`` table."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigurationError("config", f"cannot read {os.fspath(path)!r}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError("config", f"{os.fspath(path)!r} is not valid TOML: {exc}") from None
        table = data.get("jwt_wsgi", data)
        if not isinstance(table, Mapping):
            raise ConfigurationError("config", "[jwt_wsgi] must be a table")
        options = {k: v for k, v in table.items() if k != "jwt_wsgi"}
        options.update(overrides)
        return cls.from_mapping(options, base_dir=Path(path).resolve().parent)

    # -- validation --------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for name, convert in _CONVERTERS.items():
            value = getattr(self, name)
            # Values passed as kwargs go through the same converters as strings do.
            if name in ("secret", "private_key_passphrase") and isinstance(value, str):
                object.__setattr__(self, name, value.encode("utf-8"))
            elif name in ("leeway", "access_ttl", "refresh_ttl"):
                object.__setattr__(self, name, parse_duration(name, value))
            elif name in ("protect", "public", "token_sources", "trusted_proxies"):
                object.__setattr__(self, name, _str_list(name, value))
            elif name == "scopes":
                object.__setattr__(self, name, _scopes(name, value))
            elif name in ("login_rate_limit", "login_ip_rate_limit"):
                object.__setattr__(self, name, RateLimit.parse(name, value))
            elif name == "audience":
                object.__setattr__(self, name, _audience(name, value))
            elif name == "error_format":
                object.__setattr__(self, name, _error_format(name, value))
            elif name == "authenticate":
                object.__setattr__(self, name, _import_object(name, value))
            elif name in ("cors_preflight", "allow_weak_secret", "store_fail_open") and not isinstance(value, bool):
                object.__setattr__(self, name, convert(name, value))
            elif name in ("max_token_size", "max_body_size", "token_cache_size"):
                object.__setattr__(self, name, _int(name, value))
        self._validate_keys()
        self._validate_paths()
        self._validate_sources()
        self._validate_misc()

    def _validate_keys(self) -> None:
        alg = self.algorithm
        if alg not in ALGORITHMS:
            hint = difflib.get_close_matches(alg.upper(), ALGORITHMS, n=1)
            raise ConfigurationError(
                "algorithm",
                f"unsupported algorithm {alg!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                     f"; choose one of {', '.join(ALGORITHMS)}"),
            )
        if alg in HMAC_ALGORITHMS:
            if self.private_key or self.public_key:
                raise ConfigurationError(
                    "algorithm",
                    f"{alg} signs with a shared secret, but private_key/public_key are set; "
                    "use an asymmetric algorithm such as RS256 or ES256 with key files",
                )
            if not self.secret:
                raise ConfigurationError(
                    "secret",
                    f"{alg} needs a secret: set JWT_WSGI_SECRET (for example to the output of "
                    "`python -c \"import secrets; print(secrets.token_urlsafe(48))\"`)",
                )
            need = HMAC_ALGORITHMS[alg]
            if not self.allow_weak_secret:
                if len(self.secret) < need:
                    raise ConfigurationError(
                        "secret",
                        f"{alg} needs a secret of at least {need} bytes, got {len(self.secret)}; "
                        "generate one with `python -c \"import secrets; print(secrets.token_urlsafe(48))\"`",
                    )
                text = self.secret.decode("utf-8", "replace").strip().lower()
                if text in _KNOWN_WEAK_SECRETS or len(set(self.secret)) < 8:
                    raise ConfigurationError("secret", "is a well-known or low-entropy value; generate a random one")
        else:
            if self.secret is not None:
                raise ConfigurationError(
                    "secret",
                    f"{alg} verifies with a public key; remove secret and set public_key "
                    "(and private_key to issue tokens)",
                )
            if not self.private_key and not self.public_key:
                raise ConfigurationError("public_key", f"{alg} needs public_key (and private_key to issue tokens)")
        if self.access_ttl <= 0:
            raise ConfigurationError("access_ttl", "must be longer than zero seconds")
        if self.refresh_ttl <= 0:
            raise ConfigurationError("refresh_ttl", "must be longer than zero seconds")
        if self.leeway > 300:
            raise ConfigurationError("leeway", "more than 300 seconds defeats token expiry; use at most 30 s")

    def _validate_paths(self) -> None:
        for option in ("protect", "public"):
            for prefix in getattr(self, option):
                _check_absolute(option, prefix)
        for prefix in self.scopes:
            _check_absolute("scopes", prefix)
        for option in ("login_path", "refresh_path", "logout_path", "jwks_path"):
            path = getattr(self, option)
            if path is not None:
                _check_absolute(option, path)
        mounted = [p for p in (self.login_path, self.refresh_path, self.logout_path, self.jwks_path) if p]
        if len(set(mounted)) != len(mounted):
            raise ConfigurationError("login_path", "login, refresh, logout and jwks paths must differ")

    def _validate_sources(self) -> None:
        if not self.token_sources:
            raise ConfigurationError("token_sources", "name at least one of header, cookie, query")
        for source in self.token_sources:
            if source not in TOKEN_SOURCES:
                raise ConfigurationError("token_sources", f"unknown source {source!r}; use header, cookie or query")
        if len(set(self.token_sources)) != len(self.token_sources):
            raise ConfigurationError("token_sources", "each source may appear once")
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", self.header_name):
            raise ConfigurationError("header_name", f"{self.header_name!r} is not a valid HTTP header name")
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", self.cookie_name):
            raise ConfigurationError("cookie_name", f"{self.cookie_name!r} is not a valid cookie name")
        if "query" in self.token_sources and not self.query_param:
            raise ConfigurationError("query_param", "token_sources includes 'query': name the parameter with query_param")
        if self.query_param and "query" not in self.token_sources:
            raise ConfigurationError(
                "query_param",
                "is set but token_sources does not include 'query' (tokens in URLs end up in logs; "
                "add 'query' to token_sources only if you must)",
            )

    def _validate_misc(self) -> None:
        from .stores import store_kind

        store_kind(self.store)
        if self.users_file and self.authenticate:
            raise ConfigurationError("users_file", "set users_file or authenticate, not both")
        if self.max_token_size < 256:
            raise ConfigurationError("max_token_size", "must be at least 256 bytes")
        if self.max_body_size < 256:
            raise ConfigurationError("max_body_size", "must be at least 256 bytes")
        if '"' in self.realm or "\\" in self.realm or any(ord(c) < 32 for c in self.realm):
            raise ConfigurationError("realm", "must not contain quotes, backslashes or control characters")

    # -- presentation ------------------------------------------------------------------------
    def public_view(self) -> dict[str, Any]:
        """Every option with secrets hidden: for ``jwt-wsgi check`` and logs."""
        view: dict[str, Any] = {}
        for name in self.option_names():
            value = getattr(self, name)
            if name in SECRET_OPTIONS:
                value = None if value is None else "<hidden>"
            elif name == "store":
                value = _hide_password(value)
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
            elif isinstance(value, RateLimit):
                value = str(value)
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) for k, v in value.items()}
            view[name] = value
        return view


def _check_absolute(option: str, path: str) -> None:
    if not path.startswith("/") or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise ConfigurationError(option, f"{path!r} must be an absolute path starting with '/'")


def _hide_password(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:<hidden>@", url)
