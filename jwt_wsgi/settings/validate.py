"""Checks across options, once every value is converted: each raises
:class:`~jwt_wsgi.ConfigurationError` naming the option to change and how.
"""

from __future__ import annotations

import difflib
import os
import re
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..jose import ALGORITHMS, HMAC_ALGORITHMS
from ..net import check_url
from .federation import check_key_spec, provider_error
from .strength import check_secret

if TYPE_CHECKING:
    from .model import Settings

ENV_PREFIX = "JWT_WSGI_"
TOKEN_SOURCES = ("header", "cookie", "query")
# The most clock skew ``leeway`` may allow (ASP.NET's default; Envoy's is 60 s).
MAX_LEEWAY = 300.0
# The longest refresh_reuse_interval: a stolen copy of a used refresh token gets the successor
# within it, so it is meant for seconds of concurrency, not minutes of grace.
MAX_REFRESH_REUSE_INTERVAL = 300.0


def validate(s: Settings) -> None:
    """Every check, in the order a reader of the options table would expect them."""
    check_keys(s)
    check_federation(s)
    check_paths(s)
    check_sources(s)
    check_misc(s)
    if s.verify_path is not None:
        check_absolute("verify_path", s.verify_path)


def check_absolute(option: str, path: str) -> None:
    if not path.startswith("/") or any(ord(c) < 32 or c == "\x7f" for c in path):
        raise ConfigurationError(option, f"{path!r} must be an absolute path starting with '/'")


def check_keys(s: Settings) -> None:
    alg = s.algorithm
    if alg not in ALGORITHMS:
        hint = difflib.get_close_matches(alg.upper(), ALGORITHMS, n=1)
        raise ConfigurationError(
            "algorithm",
            f"unsupported algorithm {alg!r}" + (f"; did you mean {hint[0]!r}?" if hint else
                                                 f"; choose one of {', '.join(ALGORITHMS)}"),
        )
    single = s.secret is not None or s.private_key or s.public_key
    if s.keys or s.jwks_url or s.discovers_keys or (s.providers and not single):
        pass  # several keys, a JWK Set (named or discovered), or other issuers only: see _validate_federation
    elif alg in HMAC_ALGORITHMS:
        if s.private_key or s.public_key:
            raise ConfigurationError(
                "algorithm",
                f"{alg} signs with a shared secret, but private_key/public_key are set; "
                "use an asymmetric algorithm such as RS256 or ES256 with key files",
            )
        if not s.secret:
            exported = ENV_PREFIX + "SECRET" in os.environ
            raise ConfigurationError(
                "secret",
                f"{alg} needs a secret: set JWT_WSGI_SECRET (for example to the output of "
                "`python -c \"import secrets; print(secrets.token_urlsafe(48))\"`)"
                + ("; JWT_WSGI_SECRET is set, but options given as keywords do not read the environment: "
                   "use JWTMiddleware.from_env(app, ...) or Settings.from_env(None, ...), or pass secret="
                   if exported else ""),
            )
        check_secret("secret", alg, s.secret, s.allow_weak_secret)
    else:
        if s.secret is not None:
            raise ConfigurationError(
                "secret",
                f"{alg} verifies with a public key; remove secret and set public_key "
                "(and private_key to issue tokens)",
            )
        if not s.private_key and not s.public_key:
            raise ConfigurationError(
                "public_key",
                f"{alg} needs public_key (and private_key to issue tokens), jwks_url (keys published "
                "elsewhere), or providers (OpenID Connect discovery from an issuer)",
            )
    if s.access_ttl <= 0:
        raise ConfigurationError("access_ttl", "must be longer than zero seconds")
    if s.refresh_ttl <= 0:
        raise ConfigurationError("refresh_ttl", "must be longer than zero seconds")
    if not 0 <= s.refresh_reuse_interval <= MAX_REFRESH_REUSE_INTERVAL:
        raise ConfigurationError(
            "refresh_reuse_interval",
            "must be between 0 (a refresh token works once) and 5 minutes: within it a copy of a "
            "used refresh token still gets its successor, so keep it to the seconds that "
            "concurrent refreshes of one client need",
        )
    if s.access_token_format == "at+jwt":
        # RFC 9068 §2.2: iss, aud and client_id are required claims of a JWT access token.
        for name, what in (("issuer", "the iss claim"), ("audience", "the aud claim"),
                           ("access_token_client_id", "the client_id claim")):
            if getattr(s, name) is None:
                raise ConfigurationError(
                    name, f"access_token_format 'at+jwt' (RFC 9068) needs {what}: set {name}"
                )
    elif s.access_token_client_id is not None:
        raise ConfigurationError(
            "access_token_client_id", "is only used with access_token_format = 'at+jwt' (RFC 9068): set that too"
        )
    if s.leeway > MAX_LEEWAY:
        raise ConfigurationError(
            "leeway",
            f"{s.leeway:g} s is more clock skew than any real clock has, and stretches every token's "
            f"life by as much; allow at most {MAX_LEEWAY:g} s (5m)",
        )



def check_federation(s: Settings) -> None:
    """``keys`` (rotation), ``jwks_url`` (a JWK Set published elsewhere), ``providers``."""
    single = [name for name in ("secret", "private_key", "public_key") if getattr(s, name)]
    if s.discovers_keys:
        assert s.issuer is not None
        check_url("issuer", s.issuer)  # https://issuer/.well-known/openid-configuration
        if s.audience is None:
            raise ConfigurationError(
                "audience",
                "with keys discovered from issuer, set audience to the aud the provider puts in tokens for this "
                "application, so that tokens it issued to other applications are refused",
            )
    if s.keys:
        if single or s.jwks_url:
            other = (single or ["jwks_url"])[0]
            raise ConfigurationError("keys", f"set keys or {other}, not both: put every key in keys")
        for index, spec in enumerate(s.keys):
            check_key_spec("keys", index, spec, s.algorithm, s.allow_weak_secret)
    if s.jwks_url:
        if single:
            raise ConfigurationError(
                "jwks_url",
                f"verifies tokens issued elsewhere: remove {single[0]} (or list that issuer in providers)",
            )
        check_url("jwks_url", s.jwks_url)
        if s.algorithm in HMAC_ALGORITHMS:
            raise ConfigurationError(
                "algorithm",
                f"a JWK Set holds public keys: set algorithm to the one the issuer signs with (e.g. RS256), "
                f"not {s.algorithm}",
            )
        if not s.issuer or s.audience is None:
            raise ConfigurationError(
                "audience" if s.issuer else "issuer",
                "with jwks_url, set issuer and audience to the iss and aud the provider puts in tokens for this "
                "application, so that tokens it issued to other applications are refused",
            )
    own = bool(single or s.keys or s.jwks_url or s.discovers_keys)
    if s.providers and own and not s.issuer:
        raise ConfigurationError(
            "issuer",
            "with providers, set issuer: the iss of this middleware's own tokens (a token's iss picks its keys)",
        )
    seen = {s.issuer} if own else set()
    for index, provider in enumerate(s.providers):
        where = f"entry {index} ({provider.issuer}): "
        if provider.issuer in seen:
            raise provider_error(where, "this issuer is listed twice (or is the middleware's own)")
        seen.add(provider.issuer)
        if not provider.algorithms:
            raise provider_error(where, "algorithms must name at least one algorithm")
        for alg in provider.algorithms:
            if alg not in ALGORITHMS:
                raise provider_error(where, f"unsupported algorithm {alg!r}; choose from {', '.join(ALGORITHMS)}")
        if provider.jwks_url or not provider.keys:
            if any(alg in HMAC_ALGORITHMS for alg in provider.algorithms):
                raise provider_error(where, "a JWK Set holds public keys: algorithms must be asymmetric")
            # Without jwks_url or keys, the keys are discovered from the issuer (OpenID Connect).
            check_url("providers", provider.jwks_url or provider.issuer)
        for key_index, spec in enumerate(provider.keys):
            if spec.private_key or spec.active:
                raise provider_error(where, "its keys only verify: give public_key, not private_key/active")
            if spec.algorithm is None and len(provider.algorithms) != 1:
                raise ConfigurationError("providers", f"{where}with several algorithms, name each key's algorithm")
            check_key_spec("providers", key_index, spec, provider.algorithms[0], s.allow_weak_secret,
                            allowed=provider.algorithms)
    if not 0 < s.jwks_timeout <= 10:
        raise ConfigurationError(
            "jwks_timeout", "must be more than 0 and at most 10 seconds (a sync worker waits that long)"
        )
    if s.jwks_cooldown < 1:
        raise ConfigurationError(
            "jwks_cooldown", "must be at least 1 second: it bounds how often unknown kids cause fetches"
        )
    if s.jwks_cache_ttl < s.jwks_cooldown:
        raise ConfigurationError("jwks_cache_ttl", "must be at least jwks_cooldown")



def check_paths(s: Settings) -> None:
    for option in ("protect", "public"):
        for prefix in getattr(s, option):
            check_absolute(option, prefix)
    for prefix in s.scopes:
        check_absolute("scopes", prefix)
    endpoints = ("login_path", "refresh_path", "logout_path", "revocation_path", "jwks_path", "health_path",
                 "metrics_path")
    for option in endpoints:
        path = getattr(s, option)
        if path is not None:
            check_absolute(option, path)
    mounted = [p for p in (getattr(s, option) for option in endpoints) if p]
    if len(set(mounted)) != len(mounted):
        raise ConfigurationError("login_path",
                                 "login, refresh, logout, revocation, jwks, health and metrics paths must differ")



def check_sources(s: Settings) -> None:
    if not s.token_sources:
        raise ConfigurationError("token_sources", "name at least one of header, cookie, query")
    for source in s.token_sources:
        if source not in TOKEN_SOURCES:
            raise ConfigurationError("token_sources", f"unknown source {source!r}; use header, cookie or query")
    if len(set(s.token_sources)) != len(s.token_sources):
        raise ConfigurationError("token_sources", "each source may appear once")
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", s.header_name):
        raise ConfigurationError("header_name", f"{s.header_name!r} is not a valid HTTP header name")
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", s.cookie_name):
        raise ConfigurationError("cookie_name", f"{s.cookie_name!r} is not a valid cookie name")
    if "query" in s.token_sources and not s.query_param:
        raise ConfigurationError(
            "query_param", "token_sources includes 'query': name the parameter with query_param"
        )
    if s.query_param and "query" not in s.token_sources:
        raise ConfigurationError(
            "query_param",
            "is set but token_sources does not include 'query' (tokens in URLs end up in logs; "
            "add 'query' to token_sources only if you must)",
        )



def check_misc(s: Settings) -> None:
    if s.users_file and s.authenticate:
        raise ConfigurationError("users_file", "set users_file or authenticate, not both")
    if s.max_token_size < 256:
        raise ConfigurationError("max_token_size", "must be at least 256 bytes")
    if s.max_body_size < 256:
        raise ConfigurationError("max_body_size", "must be at least 256 bytes")
    if '"' in s.realm or "\\" in s.realm or any(ord(c) < 32 for c in s.realm):
        raise ConfigurationError("realm", "must not contain quotes, backslashes or control characters")

