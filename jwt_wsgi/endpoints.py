"""The endpoints the middleware mounts: login, refresh, logout, JWKS.

These are cold paths: clarity over speed. Request bodies are read only up to ``max_body_size``
(also with chunked transfer encoding), parsed strictly (one content type, UTF-8, no duplicate
keys, no NaN, bounded nesting) and every defect is a precise 4xx. Responses that carry tokens
are ``Cache-Control: no-store`` (RFC 6749 §5.1).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from .errors import (
    BadRequest,
    InvalidCredentials,
    InvalidRequest,
    InvalidToken,
    MethodNotAllowed,
    MissingToken,
    PayloadTooLarge,
    RevokedToken,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    UnsupportedMediaType,
)
from .responses import NO_STORE, StartResponse, json_response
from .settings import Settings
from .stores import Store, check_revoked
from .tokens import RESERVED_CLAIMS, TokenIssuer, TokenReader, TokenVerifier
from .users import MAX_PASSWORD, MAX_USERNAME, Authenticate

log = logging.getLogger(__name__)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_MAX_FIELDS = 16


# -- request bodies -----------------------------------------------------------------------------
def read_body(environ: Mapping[str, Any], cap: int) -> bytes:
    """At most ``cap`` bytes of the request body; :class:`PayloadTooLarge` beyond that."""
    length = environ.get("CONTENT_LENGTH") or ""
    stream = environ["wsgi.input"]
    if length.strip():
        try:
            size = int(length)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size < 0:
            raise BadRequest("Content-Length is not a number")
        if size > cap:
            raise PayloadTooLarge()
        data: bytes = stream.read(size) if size else b""
        return data
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked or environ.get("wsgi.input_terminated"):
        data = stream.read(cap + 1)
        if len(data) > cap:
            raise PayloadTooLarge()
        return data
    return b""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequest("Duplicate key in JSON body")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise BadRequest("NaN and Infinity are not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest("Number out of range")
    return value


def parse_fields(environ: Mapping[str, Any], cap: int, *, allow_empty: bool = False) -> dict[str, Any]:
    """The fields of a JSON object or urlencoded form body.

    :param allow_empty: an empty body (no content type needed) yields ``{}``.
    :raises AuthError: 400, 413 or 415 with a fixed message.
    """
    body = read_body(environ, cap)
    content_type = environ.get("CONTENT_TYPE", "")
    if not body and allow_empty:
        return {}
    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    charset = ""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if charset not in ("", "utf-8", "utf8") or mime not in (JSON, FORM):
        raise UnsupportedMediaType()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body is not UTF-8") from None
    if mime == JSON:
        try:
            data = json.loads(
                text,
                object_pairs_hook=_no_duplicates,
                parse_constant=_reject_constant,
                parse_float=_finite_float,
            )
        except (ValueError, RecursionError):
            # ValueError covers malformed JSON and integers over Python's digit limit.
            raise BadRequest("The body is not valid JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("The body must be a JSON object")
        return data
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=_MAX_FIELDS,
                          errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The form is malformed") from None
    return _no_duplicates(pairs)


def _text_field(fields: Mapping[str, Any], name: str, limit: int) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{name}' must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"'{name}' is too long")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{name}' is not valid text") from None
    return value


def client_address(environ: Mapping[str, Any], trusted: frozenset[str]) -> str:
    """``REMOTE_ADDR``, or the nearest untrusted ``X-Forwarded-For`` hop behind trusted proxies."""
    addr = str(environ.get("REMOTE_ADDR") or "-")
    if addr not in trusted:
        return addr
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if hop not in trusted:
            return hop
    return addr


def _bucket(kind: str, value: str) -> str:
    # Hashed so that counters never store raw user input and keys have a fixed size.
    return f"rl:{kind}:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- the endpoints --------------------------------------------------------------------------------
class Endpoints:
    """Login, refresh, logout and JWKS handlers sharing one issuer, verifier and store.

    Each handler takes ``(environ, start_response)`` and raises :class:`AuthError` for the
    middleware to render.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        issuer: TokenIssuer | None,
        verifier: TokenVerifier,
        reader: TokenReader,
        store: Store,
        authenticate: Authenticate | None,
        jwks: dict[str, Any] | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.issuer = issuer
        self.verifier = verifier
        self.reader = reader
        self.store = store
        self.authenticate = authenticate
        self.lookup: Callable[[str], Mapping[str, Any] | None] | None = getattr(authenticate, "lookup", None)
        self.clock = clock
        self.trusted = frozenset(settings.trusted_proxies)
        self.refresh_enabled = settings.refresh_path is not None
        self.jwks_body = json.dumps(jwks, separators=(",", ":")).encode() if jwks else None

    def routes(self) -> dict[str, Callable[[dict[str, Any], StartResponse], list[bytes]]]:
        s = self.settings
        table: dict[str, Callable[[dict[str, Any], StartResponse], list[bytes]]] = {}
        if s.login_path and self.issuer is not None and self.authenticate is not None:
            table[s.login_path] = self.login
        if s.refresh_path and self.issuer is not None:
            table[s.refresh_path] = self.refresh
        if s.logout_path:
            table[s.logout_path] = self.logout
        if s.jwks_path and self.jwks_body is not None:
            table[s.jwks_path] = self.jwks
        return table

    # -- login ---------------------------------------------------------------------------------
    def login(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            raise MethodNotAllowed("POST")
        fields = parse_fields(environ, self.settings.max_body_size)
        username = _text_field(fields, "username", MAX_USERNAME)
        password = _text_field(fields, "password", MAX_PASSWORD)
        buckets = self._count_attempt(username, client_address(environ, self.trusted))
        assert self.authenticate is not None
        claims = self.authenticate(username, password)
        if claims is None:
            log.info("login failed for a user (rate-limit buckets %s)", ",".join(b[-8:] for b in buckets))
            raise InvalidCredentials()
        self._forget_attempt(buckets)
        sub = claims.get("sub", username)
        if not isinstance(sub, str) or not sub:
            raise TypeError("authenticate() returned a 'sub' that is not a non-empty string")
        log.info("login succeeded")
        body = self._token_response(sub, claims)
        if self.settings.error_format == "article":
            # The article's clients read {"error": "0", "token": ...}; the OAuth 2.0 members stay.
            body = {"error": "0", "message": "Login successful", "token": body["access_token"], **body}
        return json_response(start_response, 200, body, NO_STORE)

    def _count_attempt(self, username: str, address: str) -> list[str]:
        """Count this attempt before checking the password, so concurrent guesses are bounded."""
        limits = (
            (self.settings.login_rate_limit, _bucket("user", username)),
            (self.settings.login_ip_rate_limit, _bucket("ip", address)),
        )
        counted: list[str] = []
        retry = 0.0
        try:
            for limit, key in limits:
                if not limit.limit:
                    continue
                count, remaining = self.store.hit(key, limit.window)
                counted.append(key)
                if count > limit.limit:
                    retry = max(retry, remaining)
        except StoreUnavailable:
            log.warning("store unavailable while counting a login attempt")
            raise ServiceUnavailable() from None
        if retry:
            raise TooManyRequests(max(1, math.ceil(retry)))
        return counted

    def _forget_attempt(self, buckets: list[str]) -> None:
        try:
            for key in buckets:
                self.store.unhit(key)
        except StoreUnavailable:
            log.warning("store unavailable while clearing a login attempt")

    def _token_response(self, sub: str, claims: Mapping[str, Any], family: str | None = None) -> dict[str, Any]:
        assert self.issuer is not None
        s = self.settings
        if family is None:
            family = uuid.uuid4().hex  # one login = one refresh family
        access, _ = self.issuer.issue(sub, s.access_ttl, claims=claims, family=family)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": int(s.access_ttl)}
        if self.refresh_enabled:
            refresh, _ = self.issuer.issue(sub, s.refresh_ttl, token_type="refresh", claims=claims, family=family)
            body["refresh_token"] = refresh
            body["refresh_expires_in"] = int(s.refresh_ttl)
        return body

    # -- refresh -------------------------------------------------------------------------------
    def _token_from_body_or_header(self, environ: dict[str, Any], fields: Mapping[str, Any], name: str) -> str | None:
        in_body = fields.get(name)
        if in_body is not None and (not isinstance(in_body, str) or not in_body):
            raise InvalidRequest(f"'{name}' must be a string")
        in_header = self.reader.read(environ)
        if in_body and in_header and in_body != in_header:
            raise InvalidRequest("The request carries more than one token")
        return in_body or in_header

    def _check_revoked(self, claims: Mapping[str, Any]) -> None:
        check_revoked(self.store, claims)

    def refresh(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            raise MethodNotAllowed("POST")
        fields = parse_fields(environ, self.settings.max_body_size, allow_empty=True)
        token = self._token_from_body_or_header(environ, fields, "refresh_token")
        if token is None:
            raise InvalidRequest("The refresh token is missing")
        claims = self.verifier.verify(token, expected_type="refresh")
        family = claims.get("fam")
        if not isinstance(family, str) or not isinstance(claims.get("jti"), str):
            raise InvalidToken()
        self._check_revoked(claims)
        now = self.clock()
        try:
            first_use = self.store.spend(claims["jti"], float(claims["exp"]))
            if not first_use:
                # A spent refresh token came back: someone holds a copy. Revoke the whole family
                # (RFC 9700 §4.14.2), so the thief's and the victim's tokens stop together.
                self.store.revoke_family(family, now + self.settings.refresh_ttl)
                log.warning("refresh token reuse detected; family revoked")
                raise RevokedToken()
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        sub = claims["sub"]
        if self.lookup is not None:
            fresh = self.lookup(sub)
            if fresh is None:
                raise RevokedToken()  # the user no longer exists
            extra: Mapping[str, Any] = fresh
        else:
            # Without a lookup, the claims we signed at login are the best source there is.
            extra = {k: v for k, v in claims.items() if k not in RESERVED_CLAIMS}
        return json_response(start_response, 200, self._token_response(sub, extra, family), NO_STORE)

    # -- logout --------------------------------------------------------------------------------
    def logout(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            raise MethodNotAllowed("POST")
        fields = parse_fields(environ, self.settings.max_body_size, allow_empty=True)
        everywhere = fields.get("all", False)
        if isinstance(everywhere, str):
            everywhere = everywhere.lower() in ("1", "true", "yes", "on")
        if not isinstance(everywhere, bool):
            raise BadRequest("'all' must be true or false")
        access = self.reader.read(environ)
        refresh = fields.get("refresh_token")
        if refresh is not None and (not isinstance(refresh, str) or not refresh):
            raise InvalidRequest("'refresh_token' must be a string")
        verified: list[dict[str, Any]] = []
        if access:
            verified.append(self.verifier.verify(access, expected_type="access"))
        if refresh:
            verified.append(self.verifier.verify(refresh, expected_type="refresh"))
        if not verified:
            raise MissingToken()
        subjects = {c["sub"] for c in verified}
        if len(subjects) != 1:
            raise InvalidRequest("The tokens belong to different users")
        now = self.clock()
        horizon = now + max(self.settings.refresh_ttl, self.settings.access_ttl)
        try:
            for claims in verified:
                self._check_revoked(claims)
            for claims in verified:
                if isinstance(claims.get("jti"), str):
                    self.store.revoke(claims["jti"], float(claims["exp"]))
                if isinstance(claims.get("fam"), str):
                    self.store.revoke_family(claims["fam"], now + self.settings.refresh_ttl)
            if everywhere:
                self.store.revoke_subject(subjects.pop(), now, horizon)
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        log.info("logout%s", " everywhere" if everywhere else "")
        start_response("204 No Content", [*NO_STORE])
        return []

    # -- jwks ----------------------------------------------------------------------------------
    def jwks(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            raise MethodNotAllowed("GET, HEAD")
        assert self.jwks_body is not None
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/jwk-set+json"),
                ("Content-Length", str(len(self.jwks_body))),
                ("Cache-Control", "public, max-age=300"),
            ],
        )
        return [self.jwks_body]

