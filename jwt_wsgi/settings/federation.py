"""Entries of ``keys`` (rotation) and ``providers`` (other issuers): their parsing from tables
(TOML ``[[keys]]``, JSON text, Python mappings) and their checks against the algorithm they serve.

The files they name are loaded later, by :mod:`jwt_wsgi.keys`; here they are only paths.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..jose import ALGORITHMS, HMAC_ALGORITHMS
from .convert import audience, boolean, optional_str, secret_bytes, str_list
from .strength import check_secret

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


def key_specs(option: str, value: Any) -> tuple[KeySpec, ...]:
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
            secret=secret_bytes(option, item.get("secret")),
            private_key=optional_str(option, item.get("private_key")),
            private_key_passphrase=secret_bytes(option, item.get("private_key_passphrase")),
            public_key=optional_str(option, item.get("public_key")),
            active=boolean(option, item.get("active", False)),
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


def provider_specs(option: str, value: Any) -> tuple[Provider, ...]:
    found: list[Provider] = []
    for index, item in enumerate(_mappings(option, value)):
        if isinstance(item, Provider):
            found.append(item)
            continue
        if isinstance(item, KeySpec):
            raise ConfigurationError(option, f"entry {index} is a key, not a provider")
        _unknown_fields(option, index, item, _PROVIDER_FIELDS)
        issuer = item.get("issuer")
        if not isinstance(issuer, str) or not issuer.strip():
            raise ConfigurationError(option, f"entry {index}: issuer is required (the exact iss of its tokens)")
        aud = audience(option, item.get("audience"))
        if aud is None:
            raise ConfigurationError(
                option,
                f"entry {index} ({issuer}): audience is required (the aud its tokens carry for this application), "
                "so that tokens the provider issued to other applications are refused",
            )
        keys = key_specs(option, item.get("keys"))
        public_key = optional_str(option, item.get("public_key"))
        if public_key:
            keys = (*keys, KeySpec(public_key=public_key))
        jwks_url = optional_str(option, item.get("jwks_url"))
        if jwks_url and keys:
            raise ConfigurationError(option, f"entry {index} ({issuer}): give jwks_url or keys/public_key, not both")
        if "algorithms" in item:
            algorithms = str_list(option, item["algorithms"])
        else:
            algorithms = tuple(sorted({k.algorithm for k in keys if k.algorithm})) or ("RS256",)
        sub_claim = optional_str(option, item.get("sub_claim"))
        found.append(Provider(issuer=issuer, audience=aud, jwks_url=jwks_url, keys=keys,
                                  algorithms=algorithms, sub_claim=sub_claim))
    return tuple(found)


def check_key_spec(option: str, index: int, spec: KeySpec, default_alg: str, allow_weak: bool,
                   allowed: tuple[str, ...] = ALGORITHMS) -> None:
    where = f"entry {index}" + (f" (kid {spec.kid!r})" if spec.kid else "") + ": "
    alg = spec.algorithm or default_alg
    if alg not in allowed:
        raise ConfigurationError(option, f"{where}algorithm {alg!r} is not one of {', '.join(allowed)}")
    if alg in HMAC_ALGORITHMS:
        if spec.secret is None:
            raise ConfigurationError(option, f"{where}{alg} needs a secret")
        check_secret(option, alg, spec.secret, allow_weak, where)
    elif spec.secret is not None:
        raise ConfigurationError(option, f"{where}{alg} verifies with a public key: give public_key (or private_key)")


def provider_error(where: str, message: str) -> ConfigurationError:
    return ConfigurationError("providers", where + message)


def resolve_key_paths(value: Any, base_dir: str | os.PathLike[str]) -> Any:
    """Relative key file paths inside ``keys`` / ``providers`` entries, against the TOML file."""

    def fix(path: str | None) -> str | None:
        return str(Path(base_dir, path)) if path and not os.path.isabs(path) else path

    def spec(s: KeySpec) -> KeySpec:
        return dataclasses.replace(s, private_key=fix(s.private_key), public_key=fix(s.public_key))

    return tuple(
        dataclasses.replace(v, keys=tuple(spec(k) for k in v.keys)) if isinstance(v, Provider) else spec(v)
        for v in value
    )


