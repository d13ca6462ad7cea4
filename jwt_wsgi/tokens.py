"""Reading tokens from a request, verifying them (the one place PyJWT decodes), issuing them.

Verification is strict (RFC 8725): algorithms pinned by configuration, ``exp`` required, every
time claim a JSON number, ``sub`` a non-empty string, unknown ``crit`` headers refused, a size cap
checked before anything is parsed. Any failure becomes :class:`~jwt_wsgi.errors.InvalidToken`
(or :class:`~jwt_wsgi.errors.ExpiredToken`); PyJWT's exception text never reaches a client.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jwt
import jwt.utils

from .errors import AuthError, ExpiredToken, InvalidRequest, InvalidToken
from .keys import KeyRing
from .settings import Settings

log = logging.getLogger(__name__)

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
RESERVED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "type", "fam"})
_TIME_CLAIMS = ("exp", "nbf", "iat")
_PYJWT_ERRORS = (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError, UnicodeError, KeyError)


class TokenReader:
    """Finds the one token a request carries, in the configured sources.

    Two different tokens (two ``Authorization`` values, or a header and a cookie that disagree)
    are a malformed request (400 ``invalid_request``), never a guess.
    """

    def __init__(self, settings: Settings) -> None:
        self.max_size = settings.max_token_size
        name = settings.header_name
        self.bearer = name.lower() == "authorization"
        self.header_key = "HTTP_" + name.upper().replace("-", "_")
        self.cookie_name = settings.cookie_name if "cookie" in settings.token_sources else None
        self.query_param = settings.query_param if "query" in settings.token_sources else None
        self.use_header = "header" in settings.token_sources
        self.secure_setting = settings.cookie_secure

    def read(self, environ: Mapping[str, Any]) -> str | None:
        """The token, or ``None`` when the request carries none.

        :raises InvalidRequest: two tokens, an empty ``Bearer``, or a malformed credential.
        """
        return self.read_with_source(environ)[0]

    def read_with_source(self, environ: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(token, the source it came from: ``header``, ``cookie`` or ``query``), or (None, None).

        A cookie-borne token makes a request subject to CSRF checks, so callers need to know.
        """
        found: str | None = None
        source: str | None = None
        if self.use_header:
            value = environ.get(self.header_key)
            if value is not None:
                found = self._from_header(value)
                source = "header" if found else None
        if self.cookie_name is not None:
            cookie = environ.get("HTTP_COOKIE")
            name = self.cookie_for(environ)
            if cookie and name in cookie:
                from_cookie = _one_value(_cookie_values(cookie, name))
                found = _agree(found, from_cookie)
                source = source or ("cookie" if from_cookie else None)
        if self.query_param is not None:
            query = environ.get("QUERY_STRING")
            if query and self.query_param in query:
                from_query = _one_value(_query_values(query, self.query_param))
                found = _agree(found, from_query)
                source = source or ("query" if from_query else None)
        return found, source

    def cookie_for(self, environ: Mapping[str, Any]) -> str:
        """The access cookie's name for this request: ``__Host-`` prefixed when it must be Secure."""
        assert self.cookie_name is not None
        return "__Host-" + self.cookie_name if self.cookie_secure(environ) else self.cookie_name

    def cookie_secure(self, environ: Mapping[str, Any]) -> bool:
        if self.secure_setting == "auto":
            return environ.get("wsgi.url_scheme") == "https"
        return self.secure_setting == "true"

    def _from_header(self, value: str) -> str | None:
        if not self.bearer:
            # A custom header (the article's ``TOKEN``) carries the raw token.
            token = value.strip()
            if not token:
                return None
            if not _TOKEN68.fullmatch(token):
                raise InvalidRequest("The token header is malformed")
            return token
        scheme, sep, credentials = value.partition(" ")
        if scheme.lower() != "bearer":
            if "," in value and "bearer" in value.lower():
                raise InvalidRequest("More than one Authorization header")
            return None  # another scheme (Basic, ...): not ours, so no bearer token
        if not sep or not credentials:
            raise InvalidRequest("The Bearer credentials are missing")
        if not _TOKEN68.fullmatch(credentials):
            # Two headers joined by the server ("Bearer a,Bearer b"), extra spaces, junk.
            raise InvalidRequest("The Authorization header is malformed")
        return credentials


def _agree(first: str | None, second: str | None) -> str | None:
    if first is None or second is None or first == second:
        return first or second
    raise InvalidRequest("The request carries more than one token")


def _one_value(values: list[str]) -> str | None:
    distinct = set(values)
    if len(distinct) > 1:
        raise InvalidRequest("The request carries more than one token")
    if not distinct:
        return None
    value = distinct.pop()
    if not value:
        return None
    if not _TOKEN68.fullmatch(value):
        raise InvalidRequest("The token is malformed")
    return value


def _cookie_values(header: str, name: str) -> list[str]:
    values = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            values.append(value.strip().strip('"'))
    return values


def _query_values(query: str, name: str) -> list[str]:
    from urllib.parse import parse_qsl

    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=100)
    except ValueError:
        raise InvalidRequest("The query string is malformed") from None
    return [value for key, value in pairs if key == name]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class TokenVerifier:
    """Verifies compact JWS tokens against the configured keys and claim rules.

    :param settings: validated settings.
    :param keys: the key ring to look keys up in.
    """

    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self.keys = keys
        self.max_size = settings.max_token_size
        self.algorithms = list(keys.algorithms)
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway = settings.leeway
        self._jwt = jwt.PyJWT(options={"require": ["exp"], "enforce_minimum_key_length": not settings.allow_weak_secret})
        self._options: Any = {"require": ["exp"]}
        own = (
            _Trust(keys.verification_key, self.algorithms, settings.issuer, settings.audience, None, True)
            if keys.verifies else None
        )
        self._default = own
        # With providers, the token's (unverified) iss picks the issuer, hence the keys; the
        # signature and every claim are then checked against that issuer's settings only.
        self._by_issuer: dict[str | None, _Trust] | None = None
        if keys.providers:
            self._by_issuer = {own.issuer: own} if own is not None else {}
            for entry in keys.providers:
                p = entry.provider
                self._by_issuer[p.issuer] = _Trust(
                    entry.source.verification_key, list(p.algorithms), p.issuer, p.audience, p.sub_claim, False
                )

    def verify(self, token: str, expected_type: str = "access") -> dict[str, Any]:
        """The verified claims of ``token``.

        :param expected_type: tokens carrying a ``type`` claim must carry this one; tokens from
            other issuers (no ``type``) count as access tokens. Only this middleware's own
            tokens can be anything else (a provider's token is never a refresh token here).
        :raises InvalidToken: for any defect; :class:`ExpiredToken` when only ``exp`` is past.
        :raises ServiceUnavailable: the keys live in a JWK Set that could never be fetched.
        """
        if len(token) > self.max_size or token.count(".") != 2:
            raise InvalidToken()
        trust = self._default if self._by_issuer is None else self._select(token)
        if trust is None or (expected_type != "access" and not trust.own):
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
            key = trust.key_for(header)
            decoded = self._jwt.decode_complete(
                token,
                key=key,
                algorithms=trust.algorithms,
                options=self._options,
                issuer=trust.issuer,
                audience=trust.audience,
                leeway=self.leeway,
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredToken() from None
        except AuthError:
            raise  # InvalidToken, or ServiceUnavailable (503) from a JWK Set that cannot be fetched
        except _PYJWT_ERRORS as exc:
            log.debug("token rejected: %s", type(exc).__name__)
            raise InvalidToken() from None
        claims: dict[str, Any] = decoded["payload"]
        if not isinstance(claims, dict):
            raise InvalidToken()
        for name in _TIME_CLAIMS:
            if name in claims and not _is_number(claims[name]):
                raise InvalidToken()
        if trust.sub_claim is not None:
            claims["sub"] = claims.get(trust.sub_claim)  # e.g. Entra ID's oid: becomes sub and REMOTE_USER
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken()
        token_type = claims.get("type", "access")
        if token_type != expected_type:
            raise InvalidToken()
        return claims

    def _select(self, token: str) -> _Trust | None:
        """The issuer named by the token's ``iss`` (read unverified, only to pick the keys)."""
        assert self._by_issuer is not None
        try:
            payload = json.loads(jwt.utils.base64url_decode(token.split(".", 2)[1]))
        except (ValueError, TypeError, RecursionError, UnicodeError):
            raise InvalidToken() from None
        iss = payload.get("iss") if isinstance(payload, dict) else None
        return self._by_issuer.get(iss) if isinstance(iss, str) else None


class _Trust(NamedTuple):
    """One issuer whose tokens verify: where its keys come from and what its tokens must say."""

    key_for: Callable[[dict[str, Any]], jwt.PyJWK]
    algorithms: list[str]
    issuer: str | None
    audience: str | tuple[str, ...] | None
    sub_claim: str | None
    own: bool  # this middleware's own keys (only these may verify refresh tokens)


class TokenIssuer:
    """Mints the tokens this middleware hands out (``sub``, ``iat``, ``exp``, ``jti``, ``type``).

    :param clock: seconds since the epoch; injectable for tests.
    """

    def __init__(self, settings: Settings, keys: KeyRing, *, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.clock = clock

    def issue(
        self,
        sub: str,
        ttl: float,
        *,
        token_type: str = "access",
        claims: Mapping[str, Any] | None = None,
        family: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """(token, payload). Extra ``claims`` never override the reserved ones."""
        now = self.clock()
        payload: dict[str, Any] = {k: v for k, v in (claims or {}).items() if k not in RESERVED_CLAIMS}
        # iat keeps milliseconds (RFC 7519 NumericDate allows fractions) so that a "log out
        # everywhere" cut-off separates tokens issued within the same second.
        payload.update(sub=sub, iat=round(now, 3), exp=int(now + ttl), jti=uuid.uuid4().hex, type=token_type)
        if family is not None:
            payload["fam"] = family
        if self.issuer is not None:
            payload["iss"] = self.issuer
        if self.audience is not None:
            payload["aud"] = self.audience
        key, algorithm, headers = self.keys.signing()
        return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None), payload
