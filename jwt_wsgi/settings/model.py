"""The :class:`Settings` dataclass: every option, its safe default and its converter, built from
keyword arguments, a mapping, ``JWT_WSGI_*`` variables or a TOML file, then validated.

Keyword arguments, TOML files, ``JWT_WSGI_*`` environment variables and PasteDeploy
``[filter:...]`` sections all build this one object through :meth:`Settings.from_mapping`,
so an option name means the same thing everywhere. Strings are converted by the option's
type (durations such as ``90s``/``30m``/``12h``/``14d``, comma-separated lists, booleans).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..jose import HMAC_ALGORITHMS
from .convert import (
    FrozenMap,
    RateLimit,
    audience,
    auto_or_boolean,
    boolean,
    callable_or_import,
    choice,
    claim_headers,
    error_format,
    metrics_hooks,
    optional_str,
    parse_duration,
    resolve_sqlite_path,
    scope_map,
    secret_bytes,
    store_url,
    str_list,
    stripped,
    text,
    whole_number,
)
from .federation import KeySpec, Provider, key_specs, provider_specs, resolve_key_paths
from .loading import is_template_text
from .validate import ENV_PREFIX, validate

# How issued access tokens are typed: a plain JWT, or an RFC 9068 access token.
ACCESS_TOKEN_FORMATS = ("jwt", "at+jwt")

# How each option's value becomes the typed value the field holds (see Settings: once per value).
CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "secret": secret_bytes,
    "algorithm": stripped,
    "private_key": optional_str,
    "private_key_passphrase": secret_bytes,
    "public_key": optional_str,
    "keys": key_specs,
    "jwks_url": optional_str,
    "jwks_cache_ttl": parse_duration,
    "jwks_timeout": parse_duration,
    "jwks_cooldown": parse_duration,
    "providers": provider_specs,
    "issuer": optional_str,
    "audience": audience,
    "leeway": parse_duration,
    "access_ttl": parse_duration,
    "refresh_ttl": parse_duration,
    "refresh_reuse_interval": parse_duration,
    "access_token_format": choice(ACCESS_TOKEN_FORMATS),
    "access_token_client_id": optional_str,
    "protect": str_list,
    "public": str_list,
    "scopes": scope_map,
    "login_path": optional_str,
    "refresh_path": optional_str,
    "logout_path": optional_str,
    "revocation_path": optional_str,
    "jwks_path": optional_str,
    "health_path": optional_str,
    "metrics_path": optional_str,
    "metrics": metrics_hooks,
    "cors_preflight": boolean,
    "token_sources": str_list,
    "header_name": stripped,
    "cookie_name": stripped,
    "cookie_secure": auto_or_boolean,
    "cookie_samesite": choice(("Lax", "Strict")),
    "login_template": optional_str,
    "query_param": optional_str,
    "users_file": optional_str,
    "authenticate": callable_or_import,
    "user_loader": callable_or_import,
    "store": store_url,
    "store_fail_open": boolean,
    "login_rate_limit": RateLimit.parse,
    "login_ip_rate_limit": RateLimit.parse,
    "trusted_proxies": str_list,
    "error_format": error_format,
    "realm": text,
    "max_token_size": whole_number,
    "max_body_size": whole_number,
    "token_cache_size": whole_number,
    "allow_weak_secret": boolean,
    "verify_path": optional_str,
    "verify_claim_headers": claim_headers,
}

# Options whose values never appear in repr(), logs or `jwt-wsgi check`.
SECRET_OPTIONS = frozenset({"secret", "private_key_passphrase"})
# Options that hold file system paths; relative paths in a TOML file are relative to it.
PATH_OPTIONS = frozenset({"private_key", "public_key", "users_file", "login_template"})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated options of a :class:`~jwt_wsgi.JWTMiddleware`. See the README's options table.

    A value, like a string: frozen all the way down (``scopes`` and ``verify_claim_headers`` are
    :class:`~jwt_wsgi.settings.FrozenMap`), hashable, equal when the options are.

    Each value goes through its option's converter exactly once: :meth:`from_mapping` (and
    ``from_env``, ``from_file``, ``JWTMiddleware(app, **options)``) converts what it is given;
    ``Settings(...)`` converts the values passed to it; ``dataclasses.replace`` converts only the
    values it changes. Defaults, and the values an instance already holds, are never converted
    again, so a converter need not accept its own output.
    """

    # keys
    secret: bytes | None = field(default=None, repr=False)
    algorithm: str = "HS256"
    private_key: str | None = None
    private_key_passphrase: bytes | None = field(default=None, repr=False)
    public_key: str | None = None
    keys: tuple[KeySpec, ...] = ()
    jwks_url: str | None = None
    jwks_cache_ttl: float = 600.0
    jwks_timeout: float = 3.0
    jwks_cooldown: float = 5.0
    providers: tuple[Provider, ...] = ()
    issuer: str | None = None
    audience: str | tuple[str, ...] | None = None
    leeway: float = 0.0
    access_ttl: float = 1800.0
    refresh_ttl: float = 14 * 86400.0
    refresh_reuse_interval: float = 10.0
    access_token_format: str = "jwt"
    access_token_client_id: str | None = None
    # paths
    protect: tuple[str, ...] = ("/",)
    public: tuple[str, ...] = ()
    scopes: FrozenMap[str, tuple[str, ...]] = FrozenMap()
    login_path: str | None = "/auth/login"
    refresh_path: str | None = "/auth/refresh"
    logout_path: str | None = "/auth/logout"
    revocation_path: str | None = "/auth/revoke"  # RFC 7009
    jwks_path: str | None = "/.well-known/jwks.json"
    health_path: str | None = None  # off: a probe endpoint answered without a token
    metrics_path: str | None = None  # off: the metrics page (Prometheus), under protect like any path
    cors_preflight: bool = True
    # token sources
    token_sources: tuple[str, ...] = ("header",)
    header_name: str = "Authorization"
    cookie_name: str = "access_token"
    cookie_secure: bool | None = None  # auto: Secure when the request came over HTTPS
    cookie_samesite: str = "Lax"
    login_template: str | None = None
    query_param: str | None = None
    # credentials
    users_file: str | None = None
    authenticate: Callable[[str, str], Mapping[str, Any] | None] | None = None
    # application
    user_loader: Callable[[dict[str, Any]], Any] | None = None
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
    # observability: hooks called as requests are decided (jwt_wsgi.metrics.Metrics), or "prometheus"
    metrics: Any = None
    # forward auth (nginx auth_request, Traefik ForwardAuth): off unless a path is set
    verify_path: str | None = None
    verify_claim_headers: FrozenMap[str, str] = FrozenMap({"sub": "X-Auth-User"})

    # The converted values, carried from an instance into the one ``dataclasses.replace`` builds
    # from it (replace passes an init-only variable on as the instance's attribute of that name).
    _converted: InitVar[Mapping[str, Any] | None] = None

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
            value = CONVERTERS[name](name, raw)
            if base_dir is not None and name in PATH_OPTIONS and isinstance(value, str) and not is_template_text(value):
                value = str(Path(base_dir, value)) if not os.path.isabs(value) else value
            elif base_dir is not None and name in ("keys", "providers"):
                value = resolve_key_paths(value, base_dir)
            elif base_dir is not None and name == "store" and isinstance(value, str):
                value = resolve_sqlite_path(value, base_dir)
            values[name] = value
        return cls(**values, _converted=values)

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
                    raise ConfigurationError(_printable(key), f"unknown jwt_wsgi variable{fix}")
                if _undecodable(value) and names[suffix] not in SECRET_OPTIONS:
                    raise ConfigurationError(key, "is not valid UTF-8 text")
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

    # -- conversion (once per value) and validation -----------------------------------------
    def __post_init__(self, _converted: Mapping[str, Any] | None) -> None:
        converted = _converted or {}
        for option in dataclasses.fields(self):
            value = getattr(self, option.name)
            if value is not option.default and value is not converted.get(option.name, option.default):
                object.__setattr__(self, option.name, CONVERTERS[option.name](option.name, value))
        object.__setattr__(self, "_converted", {f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        validate(self)

    @property
    def discovers_keys(self) -> bool:
        """No keys and no ``jwks_url``, but an ``issuer`` and an asymmetric ``algorithm``: the keys
        come from the issuer's OpenID Connect discovery document."""
        return (
            self.algorithm not in HMAC_ALGORITHMS
            and self.issuer is not None
            and not (self.secret is not None or self.private_key or self.public_key or self.keys or self.jwks_url)
        )

    # -- presentation ------------------------------------------------------------------------
    def public_view(self) -> dict[str, Any]:
        """Every option with secrets hidden: for ``jwt-wsgi check`` and logs."""
        view: dict[str, Any] = {}
        for name in self.option_names():
            value = getattr(self, name)
            if name in SECRET_OPTIONS:
                value = None if value is None else "<hidden>"
            elif name == "cookie_secure":
                value = "auto" if value is None else value
            elif name == "store":
                value = _hide_password(value)
            elif callable(value):
                value = f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
            elif name == "metrics" and value is not None and not isinstance(value, str):
                value = f"{type(value).__module__}:{type(value).__qualname__}"
            elif isinstance(value, RateLimit):
                value = str(value)
            elif name in ("keys", "providers"):
                value = [entry.public_view() for entry in value]
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in value.items()}
            view[name] = value
        return view


def _undecodable(text: str) -> bool:
    """Bytes that were not UTF-8 in the environment arrive as lone surrogates (PEP 383)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _undecodable(text) else text


def _hide_password(url: str) -> str:
    url = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:<hidden>@", url)
    # ... and query parameters such as redis+sentinel://'s sentinel_password=
    return re.sub(r"([?&][^=&#]*password=)[^&#]*", r"\1<hidden>", url)
