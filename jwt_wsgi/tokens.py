"""Reading tokens from a request, verifying them (the one place tokens are decoded), issuing them.

Verification is strict (RFC 8725): algorithms pinned by configuration, ``exp`` required, every
time claim a JSON number, ``sub`` a non-empty string, unknown ``crit`` headers refused, a size cap
checked before anything is parsed. Any failure becomes :class:`~jwt_wsgi.errors.InvalidToken`
(or :class:`~jwt_wsgi.errors.ExpiredToken`); PyJWT's exception text never reaches a client.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jwt

from .claims import RESERVED_CLAIMS, is_numeric_date, time_ordered_id
from .errors import ExpiredToken, InvalidRequest, InvalidToken, MissingToken
from .http import cookie_values, query_values
from .keys import KeyRing
from .settings import Settings

log = logging.getLogger(__name__)

# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A compact JWS: three base64url segments, the signature not empty (alg "none" is never allowed).
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


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
        wrong_scheme = False
        if self.use_header:
            value = environ.get(self.header_key)
            if value is not None:
                found = self._from_header(value)
                source = "header" if found else None
                wrong_scheme = found is None and self.bearer and _looks_like_a_token_sent_wrong(value)
        if self.cookie_name is not None:
            cookie = environ.get("HTTP_COOKIE")
            name = self.cookie_for(environ)
            if cookie and name in cookie:
                from_cookie = _one_value(cookie_values(cookie, name))
                found = _agree(found, from_cookie)
                source = source or ("cookie" if from_cookie else None)
        if self.query_param is not None:
            query = environ.get("QUERY_STRING")
            if query and self.query_param in query:
                from_query = _one_value(query_values(query, self.query_param))
                found = _agree(found, from_query)
                source = source or ("query" if from_query else None)
        if found is None and wrong_scheme:
            # Still no token (401 missing_token), but the caller learns what we expected.
            raise MissingToken("Send the token as 'Authorization: Bearer <token>' (the Bearer scheme; "
                               "'JWT <token>', 'Token <token>' or a bare token are not read)")
        return found, source

    def cookie_for(self, environ: Mapping[str, Any]) -> str:
        """The access cookie's name for this request: ``__Host-`` prefixed when it must be Secure."""
        assert self.cookie_name is not None
        return "__Host-" + self.cookie_name if self.cookie_secure(environ) else self.cookie_name

    def cookie_secure(self, environ: Mapping[str, Any]) -> bool:
        if self.secure_setting is None:  # auto
            return environ.get("wsgi.url_scheme") == "https"
        return self.secure_setting

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


def _looks_like_a_token_sent_wrong(value: str) -> bool:
    """``JWT <token>``, ``Token <token>`` or a bare JWT: a token under another habit's scheme.
    (Basic, Digest, Negotiate ... belong to other authentication and are left alone.)"""
    scheme, sep, rest = value.strip().partition(" ")
    if not sep:
        return scheme.count(".") == 2
    return scheme.lower() in ("jwt", "token") and bool(rest.strip())


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


class TokenVerifier:
    """Verifies compact JWS tokens against the configured keys and claim rules.

    :param settings: validated settings.
    :param keys: the key ring to look keys up in.
    :param clock: seconds since the epoch, for ``exp``, ``nbf`` and ``iat``; injectable for tests.
    """

    def __init__(self, settings: Settings, keys: KeyRing, *, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.clock = clock
        self.max_size = settings.max_token_size
        self.algorithms = list(keys.algorithms)
        self.issuer = settings.issuer
        self.audience = settings.audience
        self.leeway = settings.leeway
        own = (
            _Trust(keys.verification_keys, self.algorithms, settings.issuer, settings.audience, None, True)
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
                    entry.source.verification_keys, list(p.algorithms), p.issuer, p.audience, p.sub_claim, False
                )

    def verify(self, token: str, expected_type: str = "access") -> dict[str, Any]:
        """The verified claims of ``token``.

        The token is parsed once, strictly: three canonical base64url segments (no padding, no
        stray bits), JSON objects, no duplicate header members. The signature is checked with
        PyJWT's algorithm object and the key prepared at construction (a :class:`jwt.PyJWK`,
        bound to one algorithm), then the claims as PyJWT would check them, and stricter:
        ``exp`` required, every time claim a number within year 9999, ``sub`` a non-empty string.

        :param expected_type: tokens carrying a ``type`` claim must carry this one; tokens from
            other issuers (no ``type``) count as access tokens. Only this middleware's own
            tokens can be anything else (a provider's token is never a refresh token here).
        :raises InvalidToken: for any defect; :class:`ExpiredToken` when only ``exp`` is past.
        :raises ServiceUnavailable: the keys live in a JWK Set that could never be fetched.
        """
        if len(token) > self.max_size:
            raise InvalidToken()
        match = _COMPACT.fullmatch(token)
        if match is None:
            raise InvalidToken()
        try:
            header = json.loads(_b64decode(match[1]), object_pairs_hook=_unique_members)
            payload = _b64decode(match[2])
            claims = json.loads(payload)
            if isinstance(claims, dict) and payload.count(b",") >= len(claims):
                # Maybe a member twice (the plain parse kept the last): parse again, strictly.
                claims = json.loads(payload, object_pairs_hook=_unique_members)
            signature = _b64decode(match[3])
        except (ValueError, TypeError, RecursionError, UnicodeError):
            raise InvalidToken() from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise InvalidToken()
        trust = self._default if self._by_issuer is None else self._select(claims)
        if trust is None or (expected_type != "access" and not trust.own):
            raise InvalidToken()
        alg = header.get("alg")
        if (
            not isinstance(alg, str)
            or alg not in trust.algorithms
            or "crit" in header  # no extension is understood here (RFC 7515 §4.1.11)
            or header.get("b64", True) is not True
            or ("kid" in header and not isinstance(header["kid"], str))
        ):
            raise InvalidToken()
        if not _typ_fits(header.get("typ", "JWT"), expected_type):
            raise InvalidToken()
        # InvalidToken, or ServiceUnavailable for an unreachable JWK Set. Several keys only for a
        # token without kid among static keys, and a few at most (see StaticKeys).
        keys = trust.keys_for(header)
        signing_input = token[: match.end(2)].encode("ascii")
        for key in keys:
            if key.algorithm_name != alg:
                continue  # the key is bound to its algorithm, whatever the token says
            try:
                if key.Algorithm.verify(signing_input, key.key, signature):
                    break
            except (ValueError, TypeError) as exc:
                log.debug("token rejected: %s", type(exc).__name__)
        else:
            raise InvalidToken()
        self._check_claims(claims, trust)
        if trust.sub_claim is not None:
            claims["sub"] = claims.get(trust.sub_claim)  # e.g. Entra ID's oid: becomes sub and REMOTE_USER
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken()
        if claims.get("type", "access") != expected_type:
            raise InvalidToken()
        return claims

    def _check_claims(self, claims: dict[str, Any], trust: _Trust) -> None:
        """RFC 7519 §4.1 as PyJWT checks it (exp, nbf, iat, iss, aud, sub, jti), numbers required."""
        if not is_numeric_date(claims.get("exp")):
            raise InvalidToken()  # missing or not a number: no token lives forever here
        exp: float = claims["exp"]
        for name in ("nbf", "iat"):
            if name in claims and not is_numeric_date(claims[name]):
                raise InvalidToken()
        now = self.clock()
        # Whole seconds, as PyJWT compares them: a token minted a millisecond "ahead" by
        # another host's clock is not refused for it.
        if int(claims.get("iat", 0)) > now + self.leeway or int(claims.get("nbf", 0)) > now + self.leeway:
            raise InvalidToken()  # not valid yet
        if exp <= now - self.leeway:
            raise ExpiredToken()
        if trust.issuer is not None:
            iss = claims.get("iss")
            if not isinstance(iss, str) or iss != trust.issuer:
                raise InvalidToken()
        aud = claims.get("aud")
        if trust.audience is None:
            if aud:
                raise InvalidToken()  # meant for someone in particular, and that is not us
        else:
            wanted = (trust.audience,) if isinstance(trust.audience, str) else trust.audience
            given = [aud] if isinstance(aud, str) else aud
            if not isinstance(given, list) or not given or not all(isinstance(a, str) for a in given):
                raise InvalidToken()
            if not any(a in given for a in wanted):
                raise InvalidToken()
        if "sub" in claims and not isinstance(claims["sub"], str):
            raise InvalidToken()
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise InvalidToken()

    def _select(self, claims: Mapping[str, Any]) -> _Trust | None:
        """The issuer named by the token's ``iss`` (read unverified, only to pick the keys)."""
        assert self._by_issuer is not None
        iss = claims.get("iss")
        return self._by_issuer.get(iss) if isinstance(iss, str) else None


def _b64decode(segment: str) -> bytes:
    """Canonical base64url without padding: anything that re-encodes differently is refused."""
    if len(segment) % 4 == 1:
        raise ValueError("impossible length")
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != segment.encode("ascii"):
        raise ValueError("non-canonical base64url")  # stray bits in the last character
    return data


# Media types (RFC 7515 §4.1.9: compared without case, "application/" may be left out) an access
# or refresh token may declare: a plain JWT, or an RFC 9068 access token.
_JWT_TYPES = frozenset({"jwt", "application/jwt"})
_ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def _typ_fits(typ: Any, expected_type: str) -> bool:
    """Explicit typing (RFC 8725 §3.11): a token that says it is something else is refused.

    ``JWT`` (or no ``typ``) fits any use; ``at+jwt`` only an access token (RFC 9068 §4), so an
    access token never passes as a refresh token on the strength of its claims alone; anything
    else (``logout+jwt``, ``secevent+jwt``, ``dpop+jwt``, ...) is a token for another purpose.
    """
    if not isinstance(typ, str):
        return False
    typ = typ.lower()
    return typ in _JWT_TYPES or (typ in _ACCESS_TOKEN_TYPES and expected_type == "access")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JOSE header or claims set with a member twice is refused (RFC 7515 §4, RFC 7519 §4,
    RFC 8725 §2.6): two readers of one token must never see two different ``sub``.

    The payload is first parsed without this hook (it costs as much as the parse itself): each
    member after the first of an object is preceded by a comma, so a payload with a duplicate
    member anywhere has at least as many commas as its top level has distinct members. Only a
    payload meeting that bound (arrays, commas in strings, nested objects, or a duplicate) is
    parsed again with this hook.
    """
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate member")
    return obj


class _Trust(NamedTuple):
    """One issuer whose tokens verify: where its keys come from and what its tokens must say."""

    keys_for: Callable[[dict[str, Any]], tuple[jwt.PyJWK, ...]]
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
        # RFC 9068 access tokens: "typ: at+jwt" and a client_id claim (refresh tokens stay plain JWTs).
        self.client_id = settings.access_token_client_id if settings.access_token_format == "at+jwt" else None

    def issue(
        self,
        sub: str,
        ttl: float,
        *,
        token_type: str = "access",  # noqa: S107 - a token kind, not a password
        claims: Mapping[str, Any] | None = None,
        family: str | None = None,
        now: float | None = None,
        jti: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """(token, payload). Extra ``claims`` never override the reserved ones.

        :param now: the issue time [the clock's]; with ``jti``, re-issues a token minted before
            (same claims: the same token, or with a randomised signature an equivalent one).
        :param jti: the token id [a new :func:`time_ordered_id` of ``now``].
        """
        if now is None:
            now = self.clock()
        payload: dict[str, Any] = {k: v for k, v in (claims or {}).items() if k not in RESERVED_CLAIMS}
        # Whole seconds: other JOSE libraries compare iat with an integer clock and refuse a
        # fractional one as "issued in the future" for up to a second. The millisecond of issue,
        # which a "log out everywhere" cut-off needs, is in the jti (see issued_at).
        payload.update(sub=sub, iat=int(now), exp=int(now + ttl), jti=jti or time_ordered_id(now), type=token_type)
        if family is not None:
            payload["fam"] = family
        if self.issuer is not None:
            payload["iss"] = self.issuer
        if self.audience is not None:
            payload["aud"] = self.audience
        key, algorithm, headers = self.keys.signing()
        if self.client_id is not None and token_type == "access":
            payload["client_id"] = self.client_id
            headers = {**headers, "typ": "at+jwt"}
        return jwt.encode(payload, key, algorithm=algorithm, headers=headers or None), payload
