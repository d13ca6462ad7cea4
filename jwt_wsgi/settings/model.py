"""Every option, as one frozen keyword-only dataclass, validated once at construction.

Keyword arguments, TOML files, ``JWT_WSGI_*`` environment variables and PasteDeploy
``[filter:...]`` sections all build this one object through :meth:`Settings.from_mapping`,
so an option name means the same thing everywhere. Strings are converted by the option's
type (durations such as ``90s``/``30m``/``12h``/``14d``, comma-separated lists, booleans).
"""

from __future__ import annotations

import base64
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

from ..errors import ConfigurationError
from ..jose import ALGORITHMS, HMAC_ALGORITHMS
from ..net import check_url

TOKEN_SOURCES = ("header", "cookie", "query")
ERROR_FORMATS = ("json", "problem", "article")
ENV_PREFIX = "JWT_WSGI_"
# The most clock skew ``leeway`` may allow (ASP.NET's default; Envoy's is 60 s).
MAX_LEEWAY = 300.0
# How issued access tokens are typed: a plain JWT, or an RFC 9068 access token.
ACCESS_TOKEN_FORMATS = ("jwt", "at+jwt")

# Values that appear in tutorials, README files and the article this project grew from.
# They are refused even when long enough: an attacker tries them first (threat model §2.6).
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


def _resolve_sqlite_path(url: str, base_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///relative.db`` in a configuration file: relative to the file, like every path there."""
    if not url.lower().startswith("sqlite:///") or url.lower().startswith("sqlite:////"):
        return url
    rest = url[len("sqlite:///"):]
    path, sep, query = rest.partition("?")
    if not path or path == ":memory:" or os.path.isabs(path):
        return url
    return "sqlite:///" + str(Path(base_dir, path)) + sep + query


def _str_list(option: str, value: Any) -> tuple[str, ...]:
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
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
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


def _mapping_text(option: str, value: Any, form: str) -> Any:
    """A mapping written as text (TOML string, environment, PasteDeploy): a JSON object, or
    comma-separated ``KEY=VALUE`` pairs in ``form``. Anything but a string is returned as it is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("{"):
        import json

        try:
            return json.loads(text)
        except ValueError:
            raise ConfigurationError(option, "is not valid JSON") from None
    pairs: dict[str, Any] = {}
    for item in _str_list(option, text):
        key, sep, rest = item.partition("=")
        if not sep:
            raise ConfigurationError(option, f"expected {form!r}, got {item!r}")
        pairs[key.strip()] = rest.strip()
    return pairs


def _scopes(option: str, value: Any) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    value = _mapping_text(option, value, "PREFIX=scope1 scope2")
    if not isinstance(value, Mapping):
        raise ConfigurationError(option, "expected a mapping of path prefix to required scopes")
    result: dict[str, tuple[str, ...]] = {}
    for prefix, scopes in value.items():
        names = _str_list(option, scopes.split() if isinstance(scopes, str) else scopes)
        if not names or any(not s or any(c.isspace() for c in s) for s in names):
            raise ConfigurationError(option, f"prefix {prefix!r} needs one or more scope names without spaces")
        result[str(prefix)] = names
    return result


# A binary secret written as text: ``base64:`` (standard alphabet) or ``base64url:`` (RFC 4648 §5),
# padding optional. Anything else is the secret's own UTF-8 text.
_BASE64_FORMS = {"base64:": re.compile(r"[A-Za-z0-9+/]+={0,2}"), "base64url:": re.compile(r"[A-Za-z0-9_-]+={0,2}")}


def _secret(option: str, value: Any) -> bytes | None:
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
            text = value[len(prefix):].strip()
            if not alphabet.fullmatch(text) or len(text.rstrip("=")) % 4 == 1:
                raise ConfigurationError(
                    option, f"is not valid {prefix[:-1]} after {prefix!r} (alphabet "
                    + ("A-Z a-z 0-9 + /" if prefix == "base64:" else "A-Z a-z 0-9 - _") + ", padding optional)"
                )
            padded = text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4)
            return base64.b64decode(padded, altchars=b"-_" if prefix == "base64url:" else None)
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in an environment variable (surrogateescape)
        raise ConfigurationError(
            option, "is not valid UTF-8 text; give a binary secret as base64:<its standard base64>"
        ) from None


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


def _choice(option: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip() if not isinstance(value, bool) else str(value).lower()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise ConfigurationError(option, f"expected one of {', '.join(choices)}, got {value!r}")


def _path_option(option: str, value: Any) -> str | None:
    return _optional_str(option, value)


_OWN_HEADERS = frozenset({"cache-control", "connection", "content-length", "content-type", "location",
                          "set-cookie", "transfer-encoding", "vary", "www-authenticate"})
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")


def _claim_headers(option: str, value: Any) -> dict[str, str]:
    """``verify_claim_headers``: claim name -> response header name (``sub=X-Auth-User,email=X-Auth-Email``)."""
    if value is None:
        return {}
    value = _mapping_text(option, value, "claim=Header-Name")
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
    return result


# -- keys for rotation, and other issuers (``keys``, ``jwks_url``, ``providers``) -----------------
# A kid is only a lookup key: printable ASCII without spaces, bounded (no paths or queries are
# ever built from it, but a tidy alphabet keeps logs and configuration unambiguous).
_KID = re.compile(r"[\x21-\x7e]{1,128}")
_KEY_FIELDS = ("kid", "algorithm", "secret", "private_key", "private_key_passphrase", "public_key", "active")
_PROVIDER_FIELDS = ("issuer", "audience", "jwks_url", "keys", "public_key", "algorithms", "sub_claim")


@dataclass(frozen=True, kw_only=True)
class KeySpec:
    """One entry of ``keys`` (or of a provider's ``keys``), before its files are loaded.

    ``kid`` defaults to the RFC 7638 thumbprint for public-key entries; a ``secret`` needs one.
    ``algorithm`` defaults to the top-level ``algorithm``. At most one entry is ``active`` (it
    signs the tokens the middleware issues); the others only verify.
    """

    kid: str | None = None
    algorithm: str | None = None
    secret: bytes | None = field(default=None, repr=False)
    private_key: str | None = None
    private_key_passphrase: bytes | None = field(default=None, repr=False)
    public_key: str | None = None
    active: bool = False

    def public_view(self) -> dict[str, Any]:
        view = {k: getattr(self, k) for k in _KEY_FIELDS}
        for name in ("secret", "private_key_passphrase"):
            view[name] = None if view[name] is None else "<hidden>"
        return {k: v for k, v in view.items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Provider:
    """Another issuer whose tokens are accepted: the token's ``iss`` selects it.

    Keys come from ``jwks_url``, from static ``keys``, or (neither given) from OpenID Connect
    discovery of ``issuer``. ``sub_claim`` names the claim that identifies the user when the
    provider's ``sub`` is not the one wanted (its value becomes ``sub`` and ``REMOTE_USER``).
    """

    issuer: str
    audience: str | tuple[str, ...]
    jwks_url: str | None = None
    keys: tuple[KeySpec, ...] = ()
    algorithms: tuple[str, ...] = ("RS256",)
    sub_claim: str | None = None

    def public_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {k: getattr(self, k) for k in ("issuer", "audience", "jwks_url", "sub_claim")}
        view["algorithms"] = list(self.algorithms)
        view["keys"] = [k.public_view() for k in self.keys]
        if isinstance(view["audience"], tuple):
            view["audience"] = list(view["audience"])
        return {k: v for k, v in view.items() if v not in (None, [])}


def _mappings(option: str, value: Any) -> list[Any]:
    """A list of tables: TOML ``[[option]]``, a Python list, or JSON text (environment, PasteDeploy)."""
    if value is None:
        return []
    if isinstance(value, str):
        import json

        if not value.strip():
            return []
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigurationError(option, "expected a JSON list of objects (as in [{\"kid\": ...}])") from None
    if isinstance(value, (Mapping, KeySpec, Provider)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError(option, f"expected a list of tables, got {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, (Mapping, KeySpec, Provider)):
            raise ConfigurationError(option, f"entry {index} must be a table (a mapping), got {type(item).__name__}")
    return list(value)


def _unknown_fields(option: str, index: int, item: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for name in item:
        if name not in known:
            hint = difflib.get_close_matches(str(name), known, n=1)
            fix = f"; did you mean {hint[0]!r}?" if hint else f"; known fields: {', '.join(known)}"
            raise ConfigurationError(option, f"entry {index}: unknown field {name!r}{fix}")


def _key_specs(option: str, value: Any) -> tuple[KeySpec, ...]:
    specs: list[KeySpec] = []
    for index, item in enumerate(_mappings(option, value)):
        if isinstance(item, KeySpec):
            specs.append(item)
            continue
        if isinstance(item, Provider):
            raise ConfigurationError(option, f"entry {index} is a provider, not a key")
        _unknown_fields(option, index, item, _KEY_FIELDS)
        kid = item.get("kid")
        if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid)):
            raise ConfigurationError(option, f"entry {index}: kid must be 1-128 printable characters without spaces")
        algorithm = item.get("algorithm")
        if algorithm is not None and not isinstance(algorithm, str):
            raise ConfigurationError(option, f"entry {index}: algorithm must be a string")
        spec = KeySpec(
            kid=kid,
            algorithm=algorithm.strip() if algorithm else None,
            secret=_secret(option, item.get("secret")),
            private_key=_optional_str(option, item.get("private_key")),
            private_key_passphrase=_secret(option, item.get("private_key_passphrase")),
            public_key=_optional_str(option, item.get("public_key")),
            active=_bool(option, item.get("active", False)),
        )
        where = f"entry {index}" + (f" (kid {kid!r})" if kid else "")
        if spec.secret is not None and (spec.private_key or spec.public_key):
            raise ConfigurationError(option, f"{where}: give secret or private_key/public_key, not both")
        if spec.secret is None and not spec.private_key and not spec.public_key:
            raise ConfigurationError(option, f"{where}: needs secret, private_key or public_key")
        if spec.secret is not None and kid is None:
            raise ConfigurationError(
                option, f"{where}: a secret key needs a kid (a public key's defaults to its thumbprint)"
            )
        if spec.active and spec.secret is None and not spec.private_key:
            raise ConfigurationError(option, f"{where}: the active key signs tokens, so it needs secret or private_key")
        specs.append(spec)
    kids = [s.kid for s in specs if s.kid is not None]
    if len(set(kids)) != len(kids):
        raise ConfigurationError(option, "every kid must be unique")
    if sum(s.active for s in specs) > 1:
        raise ConfigurationError(option, "at most one key may be active (the one that signs); mark the others inactive")
    return tuple(specs)


def _providers(option: str, value: Any) -> tuple[Provider, ...]:
    providers: list[Provider] = []
    for index, item in enumerate(_mappings(option, value)):
        if isinstance(item, Provider):
            providers.append(item)
            continue
        if isinstance(item, KeySpec):
            raise ConfigurationError(option, f"entry {index} is a key, not a provider")
        _unknown_fields(option, index, item, _PROVIDER_FIELDS)
        issuer = item.get("issuer")
        if not isinstance(issuer, str) or not issuer.strip():
            raise ConfigurationError(option, f"entry {index}: issuer is required (the exact iss of its tokens)")
        audience = _audience(option, item.get("audience"))
        if audience is None:
            raise ConfigurationError(
                option,
                f"entry {index} ({issuer}): audience is required (the aud its tokens carry for this application), "
                "so that tokens the provider issued to other applications are refused",
            )
        keys = _key_specs(option, item.get("keys"))
        public_key = _optional_str(option, item.get("public_key"))
        if public_key:
            keys = (*keys, KeySpec(public_key=public_key))
        jwks_url = _optional_str(option, item.get("jwks_url"))
        if jwks_url and keys:
            raise ConfigurationError(option, f"entry {index} ({issuer}): give jwks_url or keys/public_key, not both")
        if "algorithms" in item:
            algorithms = _str_list(option, item["algorithms"])
        else:
            algorithms = tuple(sorted({k.algorithm for k in keys if k.algorithm})) or ("RS256",)
        sub_claim = _optional_str(option, item.get("sub_claim"))
        providers.append(Provider(issuer=issuer, audience=audience, jwks_url=jwks_url, keys=keys,
                                  algorithms=algorithms, sub_claim=sub_claim))
    return tuple(providers)


def _check_secret(option: str, alg: str, secret: bytes, allow_weak: bool, where: str = "") -> None:
    need = HMAC_ALGORITHMS[alg]
    if allow_weak:
        return
    if len(secret) < need:
        raise ConfigurationError(
            option,
            f"{where}{alg} needs a secret of at least {need} bytes, got {len(secret)}; "
            "generate one with `python -c \"import secrets; print(secrets.token_urlsafe(48))\"`",
        )
    text = secret.decode("utf-8", "replace").strip().lower()
    if text in _KNOWN_WEAK_SECRETS or len(set(secret)) < 8 or _repetitive(secret):
        raise ConfigurationError(option, f"{where}is a well-known or low-entropy value; generate a random one")


def _check_key_spec(option: str, index: int, spec: KeySpec, default_alg: str, allow_weak: bool,
                    allowed: tuple[str, ...] = ALGORITHMS) -> None:
    where = f"entry {index}" + (f" (kid {spec.kid!r})" if spec.kid else "") + ": "
    alg = spec.algorithm or default_alg
    if alg not in allowed:
        raise ConfigurationError(option, f"{where}algorithm {alg!r} is not one of {', '.join(allowed)}")
    if alg in HMAC_ALGORITHMS:
        if spec.secret is None:
            raise ConfigurationError(option, f"{where}{alg} needs a secret")
        _check_secret(option, alg, spec.secret, allow_weak, where)
    elif spec.secret is not None:
        raise ConfigurationError(option, f"{where}{alg} verifies with a public key: give public_key (or private_key)")


def _provider_error(where: str, message: str) -> ConfigurationError:
    return ConfigurationError("providers", where + message)


def _resolve_key_paths(value: Any, base_dir: str | os.PathLike[str]) -> Any:
    """Relative key file paths inside ``keys`` / ``providers`` entries, against the TOML file."""

    def fix(path: str | None) -> str | None:
        return str(Path(base_dir, path)) if path and not os.path.isabs(path) else path

    def spec(s: KeySpec) -> KeySpec:
        return dataclasses.replace(s, private_key=fix(s.private_key), public_key=fix(s.public_key))

    return tuple(
        dataclasses.replace(v, keys=tuple(spec(k) for k in v.keys)) if isinstance(v, Provider) else spec(v)
        for v in value
    )


# How a string from TOML, the environment or PasteDeploy becomes the option's value.
_CONVERTERS: dict[str, Callable[[str, Any], Any]] = {
    "secret": _secret,
    "algorithm": lambda o, v: str(v).strip(),
    "private_key": _optional_str,
    "private_key_passphrase": _secret,
    "public_key": _optional_str,
    "keys": _key_specs,
    "jwks_url": _optional_str,
    "jwks_cache_ttl": parse_duration,
    "jwks_timeout": parse_duration,
    "jwks_cooldown": parse_duration,
    "providers": _providers,
    "issuer": _optional_str,
    "audience": _audience,
    "leeway": parse_duration,
    "access_ttl": parse_duration,
    "refresh_ttl": parse_duration,
    "refresh_reuse_interval": parse_duration,
    "access_token_format": lambda o, v: _choice(o, v, ACCESS_TOKEN_FORMATS),
    "access_token_client_id": _optional_str,
    "protect": _str_list,
    "public": _str_list,
    "scopes": _scopes,
    "login_path": _path_option,
    "refresh_path": _path_option,
    "logout_path": _path_option,
    "revocation_path": _path_option,
    "jwks_path": _path_option,
    "health_path": _path_option,
    "cors_preflight": _bool,
    "token_sources": _str_list,
    "header_name": lambda o, v: str(v).strip(),
    "cookie_name": lambda o, v: str(v).strip(),
    "cookie_secure": lambda o, v: _choice(o, v, ("auto", "true", "false")),
    "cookie_samesite": lambda o, v: _choice(o, v, ("Lax", "Strict")),
    "login_template": _optional_str,
    "query_param": _optional_str,
    "users_file": _optional_str,
    "authenticate": _import_object,
    "user_loader": _import_object,
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
    "verify_path": _path_option,
    "verify_claim_headers": _claim_headers,
}

# The longest refresh_reuse_interval: a stolen copy of a used refresh token gets the successor
# within it, so it is meant for seconds of concurrency, not minutes of grace.
MAX_REFRESH_REUSE_INTERVAL = 300.0

# Options whose values never appear in repr(), logs or `jwt-wsgi check`.
SECRET_OPTIONS = frozenset({"secret", "private_key_passphrase"})
# Options that hold file system paths; relative paths in a TOML file are relative to it.
PATH_OPTIONS = frozenset({"private_key", "public_key", "users_file", "login_template"})


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated options of a :class:`~jwt_wsgi.JWTMiddleware`. See the README's options table."""

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
    scopes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    login_path: str | None = "/auth/login"
    refresh_path: str | None = "/auth/refresh"
    logout_path: str | None = "/auth/logout"
    revocation_path: str | None = "/auth/revoke"  # RFC 7009
    jwks_path: str | None = "/.well-known/jwks.json"
    health_path: str | None = None  # off: a probe endpoint answered without a token
    cors_preflight: bool = True
    # token sources
    token_sources: tuple[str, ...] = ("header",)
    header_name: str = "Authorization"
    cookie_name: str = "access_token"
    cookie_secure: str = "auto"
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
    # forward auth (nginx auth_request, Traefik ForwardAuth): off unless a path is set
    verify_path: str | None = None
    verify_claim_headers: Mapping[str, str] = field(default_factory=lambda: {"sub": "X-Auth-User"})

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
            if base_dir is not None and name in PATH_OPTIONS and isinstance(value, str) and not _template_text(value):
                value = str(Path(base_dir, value)) if not os.path.isabs(value) else value
            elif base_dir is not None and name in ("keys", "providers"):
                value = _resolve_key_paths(value, base_dir)
            elif base_dir is not None and name == "store" and isinstance(value, str):
                value = _resolve_sqlite_path(value, base_dir)
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

    # -- validation --------------------------------------------------------------------------
    def __post_init__(self) -> None:
        # Values passed as kwargs go through the same converters as strings from TOML, the
        # environment or PasteDeploy (every converter accepts its own output unchanged).
        for name, convert in _CONVERTERS.items():
            object.__setattr__(self, name, convert(name, getattr(self, name)))
        self._validate_keys()
        self._validate_federation()
        self._validate_paths()
        self._validate_sources()
        self._validate_misc()
        if self.verify_path is not None:
            _check_absolute("verify_path", self.verify_path)

    def _validate_keys(self) -> None:
        alg = self.algorithm
        if alg not in ALGORITHMS:
            hint = difflib.get_close_matches(alg.upper(), ALGORITHMS, n=1)
            raise ConfigurationError(
                "algorithm",
                f"unsupported algorithm {alg!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                     f"; choose one of {', '.join(ALGORITHMS)}"),
            )
        single = self.secret is not None or self.private_key or self.public_key
        if self.keys or self.jwks_url or self.discovers_keys or (self.providers and not single):
            pass  # several keys, a JWK Set (named or discovered), or other issuers only: see _validate_federation
        elif alg in HMAC_ALGORITHMS:
            if self.private_key or self.public_key:
                raise ConfigurationError(
                    "algorithm",
                    f"{alg} signs with a shared secret, but private_key/public_key are set; "
                    "use an asymmetric algorithm such as RS256 or ES256 with key files",
                )
            if not self.secret:
                exported = ENV_PREFIX + "SECRET" in os.environ
                raise ConfigurationError(
                    "secret",
                    f"{alg} needs a secret: set JWT_WSGI_SECRET (for example to the output of "
                    "`python -c \"import secrets; print(secrets.token_urlsafe(48))\"`)"
                    + ("; JWT_WSGI_SECRET is set, but options given as keywords do not read the environment: "
                       "use JWTMiddleware.from_env(app, ...) or Settings.from_env(None, ...), or pass secret="
                       if exported else ""),
                )
            _check_secret("secret", alg, self.secret, self.allow_weak_secret)
        else:
            if self.secret is not None:
                raise ConfigurationError(
                    "secret",
                    f"{alg} verifies with a public key; remove secret and set public_key "
                    "(and private_key to issue tokens)",
                )
            if not self.private_key and not self.public_key:
                raise ConfigurationError(
                    "public_key",
                    f"{alg} needs public_key (and private_key to issue tokens), jwks_url (keys published "
                    "elsewhere), or providers (OpenID Connect discovery from an issuer)",
                )
        if self.access_ttl <= 0:
            raise ConfigurationError("access_ttl", "must be longer than zero seconds")
        if self.refresh_ttl <= 0:
            raise ConfigurationError("refresh_ttl", "must be longer than zero seconds")
        if not 0 <= self.refresh_reuse_interval <= MAX_REFRESH_REUSE_INTERVAL:
            raise ConfigurationError(
                "refresh_reuse_interval",
                "must be between 0 (a refresh token works once) and 5 minutes: within it a copy of a "
                "used refresh token still gets its successor, so keep it to the seconds that "
                "concurrent refreshes of one client need",
            )
        if self.access_token_format == "at+jwt":
            # RFC 9068 §2.2: iss, aud and client_id are required claims of a JWT access token.
            for name, what in (("issuer", "the iss claim"), ("audience", "the aud claim"),
                               ("access_token_client_id", "the client_id claim")):
                if getattr(self, name) is None:
                    raise ConfigurationError(
                        name, f"access_token_format 'at+jwt' (RFC 9068) needs {what}: set {name}"
                    )
        elif self.access_token_client_id is not None:
            raise ConfigurationError(
                "access_token_client_id", "is only used with access_token_format = 'at+jwt' (RFC 9068): set that too"
            )
        if self.leeway > MAX_LEEWAY:
            raise ConfigurationError(
                "leeway",
                f"{self.leeway:g} s is more clock skew than any real clock has, and stretches every token's "
                f"life by as much; allow at most {MAX_LEEWAY:g} s (5m)",
            )

    @property
    def discovers_keys(self) -> bool:
        """No keys and no ``jwks_url``, but an ``issuer`` and an asymmetric ``algorithm``: the keys
        come from the issuer's OpenID Connect discovery document."""
        return (
            self.algorithm not in HMAC_ALGORITHMS
            and self.issuer is not None
            and not (self.secret is not None or self.private_key or self.public_key or self.keys or self.jwks_url)
        )

    def _validate_federation(self) -> None:
        """``keys`` (rotation), ``jwks_url`` (a JWK Set published elsewhere), ``providers``."""
        single = [name for name in ("secret", "private_key", "public_key") if getattr(self, name)]
        if self.discovers_keys:
            assert self.issuer is not None
            check_url("issuer", self.issuer)  # https://issuer/.well-known/openid-configuration
            if self.audience is None:
                raise ConfigurationError(
                    "audience",
                    "with keys discovered from issuer, set audience to the aud the provider puts in tokens for this "
                    "application, so that tokens it issued to other applications are refused",
                )
        if self.keys:
            if single or self.jwks_url:
                other = (single or ["jwks_url"])[0]
                raise ConfigurationError("keys", f"set keys or {other}, not both: put every key in keys")
            for index, spec in enumerate(self.keys):
                _check_key_spec("keys", index, spec, self.algorithm, self.allow_weak_secret)
        if self.jwks_url:
            if single:
                raise ConfigurationError(
                    "jwks_url",
                    f"verifies tokens issued elsewhere: remove {single[0]} (or list that issuer in providers)",
                )
            check_url("jwks_url", self.jwks_url)
            if self.algorithm in HMAC_ALGORITHMS:
                raise ConfigurationError(
                    "algorithm",
                    f"a JWK Set holds public keys: set algorithm to the one the issuer signs with (e.g. RS256), "
                    f"not {self.algorithm}",
                )
            if not self.issuer or self.audience is None:
                raise ConfigurationError(
                    "audience" if self.issuer else "issuer",
                    "with jwks_url, set issuer and audience to the iss and aud the provider puts in tokens for this "
                    "application, so that tokens it issued to other applications are refused",
                )
        own = bool(single or self.keys or self.jwks_url or self.discovers_keys)
        if self.providers and own and not self.issuer:
            raise ConfigurationError(
                "issuer",
                "with providers, set issuer: the iss of this middleware's own tokens (a token's iss picks its keys)",
            )
        seen = {self.issuer} if own else set()
        for index, provider in enumerate(self.providers):
            where = f"entry {index} ({provider.issuer}): "
            if provider.issuer in seen:
                raise _provider_error(where, "this issuer is listed twice (or is the middleware's own)")
            seen.add(provider.issuer)
            if not provider.algorithms:
                raise _provider_error(where, "algorithms must name at least one algorithm")
            for alg in provider.algorithms:
                if alg not in ALGORITHMS:
                    raise _provider_error(where, f"unsupported algorithm {alg!r}; choose from {', '.join(ALGORITHMS)}")
            if provider.jwks_url or not provider.keys:
                if any(alg in HMAC_ALGORITHMS for alg in provider.algorithms):
                    raise _provider_error(where, "a JWK Set holds public keys: algorithms must be asymmetric")
                # Without jwks_url or keys, the keys are discovered from the issuer (OpenID Connect).
                check_url("providers", provider.jwks_url or provider.issuer)
            for key_index, spec in enumerate(provider.keys):
                if spec.private_key or spec.active:
                    raise _provider_error(where, "its keys only verify: give public_key, not private_key/active")
                if spec.algorithm is None and len(provider.algorithms) != 1:
                    raise ConfigurationError("providers", f"{where}with several algorithms, name each key's algorithm")
                _check_key_spec("providers", key_index, spec, provider.algorithms[0], self.allow_weak_secret,
                                allowed=provider.algorithms)
        if not 0 < self.jwks_timeout <= 10:
            raise ConfigurationError(
                "jwks_timeout", "must be more than 0 and at most 10 seconds (a sync worker waits that long)"
            )
        if self.jwks_cooldown < 1:
            raise ConfigurationError(
                "jwks_cooldown", "must be at least 1 second: it bounds how often unknown kids cause fetches"
            )
        if self.jwks_cache_ttl < self.jwks_cooldown:
            raise ConfigurationError("jwks_cache_ttl", "must be at least jwks_cooldown")

    def _validate_paths(self) -> None:
        for option in ("protect", "public"):
            for prefix in getattr(self, option):
                _check_absolute(option, prefix)
        for prefix in self.scopes:
            _check_absolute("scopes", prefix)
        endpoints = ("login_path", "refresh_path", "logout_path", "revocation_path", "jwks_path", "health_path")
        for option in endpoints:
            path = getattr(self, option)
            if path is not None:
                _check_absolute(option, path)
        mounted = [p for p in (getattr(self, option) for option in endpoints) if p]
        if len(set(mounted)) != len(mounted):
            raise ConfigurationError("login_path",
                                     "login, refresh, logout, revocation, jwks and health paths must differ")

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
            raise ConfigurationError(
                "query_param", "token_sources includes 'query': name the parameter with query_param"
            )
        if self.query_param and "query" not in self.token_sources:
            raise ConfigurationError(
                "query_param",
                "is set but token_sources does not include 'query' (tokens in URLs end up in logs; "
                "add 'query' to token_sources only if you must)",
            )

    def _validate_misc(self) -> None:
        from ..stores import store_kind

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


def _repetitive(secret: bytes) -> bool:
    """A pattern, not randomness: ``0123456789ABCDEF0123...``, ``abcabc...`` (threat model §2.6).

    Random secrets of 32+ characters repeat hardly any 4-character sequence; these repeat most.
    """
    grams = [secret[i:i + 4] for i in range(len(secret) - 3)]
    return len(set(grams)) < len(grams) * 0.75


def _template_text(value: str) -> bool:
    """``login_template`` may hold the template itself rather than a file path."""
    return "$" in value or "<" in value


def _check_absolute(option: str, path: str) -> None:
    if not path.startswith("/") or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise ConfigurationError(option, f"{path!r} must be an absolute path starting with '/'")


def _hide_password(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:<hidden>@", url)
