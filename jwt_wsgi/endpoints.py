"""The endpoints the middleware mounts: login (an RFC 6749 token endpoint), refresh, logout,
revocation (RFC 7009), JWKS, and the health check (see :mod:`jwt_wsgi.health`).

These are cold paths: clarity over speed. Request bodies are read only up to ``max_body_size``
(also with chunked transfer encoding), parsed strictly (one content type, UTF-8, no duplicate
keys, no NaN, bounded nesting) and every defect is a precise 4xx. Responses that carry tokens
are ``Cache-Control: no-store`` (RFC 6749 §5.1).

Token endpoint errors carry the RFC 6749 §5.2 code in ``error``, with §5.2's ``400`` except for a
failed grant (wrong credentials; a refresh token spent, expired, revoked or forged):
``401 invalid_grant``, because the product contract fixes 401 for wrong credentials, one failed
grant should look like another, and OAuth 2.0 clients (authlib, oauthlib) decide on ``error``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, NamedTuple
from urllib.parse import quote

from .browser import Cookies, LoginPage, csrf_ok, new_csrf, safe_next, same_origin
from .claims import FRESH_CLAIM, RESERVED_CLAIMS, time_ordered_id
from .errors import (
    AuthError,
    BadRequest,
    CSRFFailed,
    ExpiredToken,
    InsufficientScope,
    InvalidCredentials,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidToken,
    MethodNotAllowed,
    MissingToken,
    RevokedToken,
    ServerError,
    ServiceUnavailable,
    StoreUnavailable,
    TooManyRequests,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
)
from .http import FORM, JSON, cookie_value, media_type, parse_fields, query_value, wants_html
from .logs import audit, throttle
from .metrics import Metrics, MetricsPage
from .responses import NO_STORE, StartResponse, article_login, json_response, status_line
from .settings import Settings
from .stores import Store, check_revoked, cutoff_after
from .tokens import TokenIssuer, TokenReader, TokenVerifier
from .users import MAX_PASSWORD, MAX_USERNAME, Authenticate

log = logging.getLogger(__name__)

_NOT_REVOCABLE = ("The token has no jti and cannot be revoked alone; "
                  'send {"all": true} to revoke every token of this user')
#: The request an endpoint is answering, for its audit events (``None`` in calls from Python).
_request: ContextVar[dict[str, Any] | None] = ContextVar("jwt_wsgi_endpoint_request", default=None)
_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"


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


# -- RFC 6749 token requests ------------------------------------------------------------------------
#: Grants that need a registered client; this server has none (RFC 6749 §5.2 ``unauthorized_client``).
_CLIENT_GRANTS = frozenset({"client_credentials", "authorization_code"})
#: RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
_SCOPE_CLAIMS = ("scope", "scp", "scopes")
#: Claim of the tokens of a grant narrowed by a requested ``scope``: later refreshes never exceed it,
#: even when the user's claims (read again at each refresh) grant more.
SCOPE_LIMIT = "grant_scope"


def grant_type(fields: Mapping[str, Any]) -> str:
    """``password`` or ``refresh_token``; a body without ``grant_type`` is a password grant."""
    value = fields.get("grant_type")
    if value is None:
        return "password"
    if not isinstance(value, str) or not value:
        raise BadRequest("'grant_type' must be a non-empty string")
    if value in ("password", "refresh_token"):
        return value
    if value in _CLIENT_GRANTS:
        raise UnauthorizedClient()
    raise UnsupportedGrantType()


def requested_scope(fields: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The scopes a token request asks for (RFC 6749 §3.3), in order, or ``None`` for all granted."""
    value = fields.get("scope")
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidScope()
    scopes = [token for token in value.split(" ") if token]
    if not all(_SCOPE_TOKEN.fullmatch(token) for token in scopes):
        raise InvalidScope()
    return tuple(dict.fromkeys(scopes)) or None  # an empty scope asks for nothing in particular


def granted_scopes(claims: Mapping[str, Any]) -> list[str]:
    """The scopes ``claims`` grant (``scope``, ``scp``, ``scopes``), within the grant's limit."""
    found: list[str] = []
    for name in _SCOPE_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            found.extend(value.split())
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str))
    limit = claims.get(SCOPE_LIMIT)
    if isinstance(limit, str):
        allowed = set(limit.split())
        found = [s for s in found if s in allowed]
    return list(dict.fromkeys(found))


def with_scopes(claims: Mapping[str, Any], scopes: Sequence[str]) -> dict[str, Any]:
    """``claims`` with every scope claim cut down to ``scopes`` (each in its own shape)."""
    keep = set(scopes)
    narrowed = dict(claims)
    for name in _SCOPE_CLAIMS:
        value = claims.get(name)
        if isinstance(value, str):
            narrowed[name] = " ".join(s for s in scopes if s in set(value.split()))
        elif isinstance(value, list):
            narrowed[name] = [v for v in value if v in keep]
    return narrowed


def client_address(environ: Mapping[str, Any], trusted: frozenset[str]) -> str:
    """``REMOTE_ADDR``, or the nearest untrusted ``X-Forwarded-For`` hop behind trusted proxies."""
    addr = str(environ.get("REMOTE_ADDR") or "-")
    if addr not in trusted:
        return addr
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([h.strip() for h in str(forwarded).split(",") if h.strip()]):
        if hop not in trusted:
            return hop
    return addr


def _bucket(kind: str, value: str) -> str:
    # Hashed so that counters never store raw user input and keys have a fixed size.
    return f"rl:{kind}:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class _Successor(NamedTuple):
    """What a refresh token was rotated into: enough to mint the same two tokens again."""

    access_jti: str
    refresh_jti: str
    issued: float

    def encode(self) -> str:
        return f"{self.access_jti} {self.refresh_jti} {self.issued!r}"

    @classmethod
    def decode(cls, text: str) -> _Successor | None:
        """The successor a store recorded; ``None`` (treated as reuse) if it is not one."""
        parts = text.split(" ")
        if len(parts) != 3:
            return None
        try:
            issued = float(parts[2])
        except ValueError:
            return None
        return cls(parts[0], parts[1], issued) if math.isfinite(issued) else None


# -- the endpoints --------------------------------------------------------------------------------
class Endpoints:
    """Login (token), refresh, logout, revocation and JWKS handlers sharing one issuer, verifier and store.

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
        health: Callable[[dict[str, Any], StartResponse], list[bytes]] | None = None,
        metrics: Metrics | None = None,
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
        self.health = health
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics_page = (MetricsPage(self.metrics, self._metrics_guard())
                             if settings.metrics_path and metrics is not None else None)
        # Browser sign-in needs somewhere to keep the token: the cookie source.
        self.browser = "cookie" in settings.token_sources and settings.login_path is not None
        self.page = LoginPage(settings.login_template, settings.login_path or "/") if self.browser else None

    def routes(self) -> dict[str, Callable[[dict[str, Any], StartResponse], list[bytes]]]:
        s = self.settings
        table: dict[str, Callable[[dict[str, Any], StartResponse], list[bytes]]] = {}
        if s.login_path and self.issuer is not None and self.authenticate is not None:
            table[s.login_path] = self.login
        if s.refresh_path and self.issuer is not None:
            table[s.refresh_path] = self.refresh
        if s.logout_path:
            table[s.logout_path] = self.logout
        if s.revocation_path:
            table[s.revocation_path] = self.revoke
        if s.jwks_path and self.jwks_body is not None:
            table[s.jwks_path] = self.jwks
        if s.health_path and self.health is not None:
            table[s.health_path] = self.health
        if s.metrics_path and self.metrics_page is not None:
            table[s.metrics_path] = self.metrics_page
        # Audit events name the request they happened in (client address, request id, path).
        return {path: self._observed(handler) for path, handler in table.items()}

    @staticmethod
    def _observed(handler: Callable[[dict[str, Any], StartResponse], list[bytes]]
                  ) -> Callable[[dict[str, Any], StartResponse], list[bytes]]:
        def answer(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
            token = _request.set(environ)
            try:
                return handler(environ, start_response)
            finally:
                _request.reset(token)

        answer.__wrapped__ = handler  # type: ignore[attr-defined]
        return answer

    def _audit(self, event: str, level: int = logging.INFO, *, environ: Any = None, **fields: Any) -> None:
        """An audit event (:func:`jwt_wsgi.logs.audit`) and its count (:meth:`Metrics.event`), in the
        request an endpoint is answering (or ``environ``, the application's, for a call from Python)."""
        environ = _request.get() if environ is None else environ if isinstance(environ, dict) else None
        client = None if environ is None or not environ.get("REMOTE_ADDR") else client_address(environ, self.trusted)
        audit(event, environ, level=level, client=client, **fields)
        self.metrics.event(event, fields.get("reason"))

    def _metrics_guard(self) -> Callable[[dict[str, Any]], None] | None:
        """``metrics_path`` honours ``protect``, ``public`` and ``scopes`` as any path does: under
        ``protect`` (the default: everything) the scraper needs a valid access token."""
        from .paths import ExactSet, PrefixSet, fold

        s = self.settings
        path = s.metrics_path
        if path is None:
            return None
        folded = fold(path)
        if not PrefixSet(s.protect).covers(folded) or ExactSet(s.public).covers(path):
            return None
        # Decided once here: the scopes the scraper's token must grant, as a tuple (for the 403) and a set.
        required = tuple(scope for prefix, scopes in s.scopes.items() if PrefixSet([prefix]).covers(folded)
                         for scope in scopes)
        needed = frozenset(required)

        def guard(environ: dict[str, Any]) -> None:
            token = self.reader.read(environ)
            if token is None:
                raise MissingToken()
            claims = self.verifier.verify(token, expected_type="access")
            self._check_revoked(claims)
            if not needed.issubset(granted_scopes(claims)):
                raise InsufficientScope(required)

        return guard

    # -- login ---------------------------------------------------------------------------------
    def login(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        browser = self.browser and wants_html(environ)
        if browser and method in ("GET", "HEAD"):
            return self._login_page(environ, start_response, next_path=query_value(environ, "next"))
        if method != "POST":
            raise MethodNotAllowed("GET, HEAD, POST" if self.browser else "POST")
        if browser and media_type(environ)[0] == FORM:
            return self._browser_login(environ, start_response)
        fields = parse_fields(environ, self.settings.max_body_size)
        if grant_type(fields) == "refresh_token":
            if not self.refresh_enabled:
                raise UnsupportedGrantType()  # no refresh tokens are issued here
            return self._refresh_grant(environ, start_response, fields)
        username = _text_field(fields, "username", MAX_USERNAME)
        password = _text_field(fields, "password", MAX_PASSWORD)
        scope = requested_scope(fields)
        with_cookies = self._wants_cookies(environ, fields)  # refused before any password is checked
        sub, claims = self._authenticate(username, password, environ)
        if scope is not None:
            if not set(scope) <= set(granted_scopes(claims)):
                raise InvalidScope()
            claims = {**with_scopes(claims, scope), SCOPE_LIMIT: " ".join(scope)}
        if with_cookies:
            headers, body = self.cookie_session(environ, sub, claims)
            return json_response(start_response, 200, body, [*NO_STORE, *headers])
        return json_response(start_response, 200, self.login_body(sub, claims, scope=scope), NO_STORE)

    def login_body(self, sub: str, claims: Mapping[str, Any], *, fresh: bool = True,
                   scope: tuple[str, ...] | None = None) -> dict[str, Any]:
        """What a successful password login answers (also :meth:`JWTMiddleware.issue_tokens`)."""
        body = self._token_response(sub, claims, scope=scope, fresh=fresh)
        if _request.get() is None:  # issue_tokens(): the application checked the credentials
            self._audit("login", reason="api", sub=sub)
        if self.settings.error_format == "article":
            body = article_login(body)
        return body

    def _wants_cookies(self, environ: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
        """``"cookies": true`` in a JSON login: a single-page app's sign-in, kept in cookies."""
        if "cookies" not in fields:
            return False
        wanted = fields["cookies"]
        if media_type(environ)[0] != JSON:
            # A urlencoded body can come from any site's form (login CSRF); JSON cannot.
            raise BadRequest("'cookies' is accepted in a JSON body only")
        if not isinstance(wanted, bool):
            raise BadRequest("'cookies' must be true or false")
        if wanted and not self.browser:
            raise BadRequest("'cookies' needs the cookie token source (token_sources = header,cookie)")
        return wanted

    def cookie_session(self, environ: Mapping[str, Any], sub: str, claims: Mapping[str, Any]
                       ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """Sign ``sub`` in with cookies, as the HTML form does: (``Set-Cookie`` headers, JSON body).

        The body has no token (the cookies are ``HttpOnly``, out of scripts' reach) but the CSRF
        token that unsafe requests must echo in ``X-CSRF-Token`` (also in a readable cookie).
        """
        csrf = new_csrf()
        tokens = self._token_response(sub, {**claims, "csrf": csrf}, fresh=True)
        cookies = Cookies(self.settings, self.reader.cookie_secure(environ))
        body = {k: v for k, v in tokens.items() if k not in ("access_token", "refresh_token")}
        body["csrf_token"] = csrf
        if _request.get() is None:  # login_cookies(): the application checked the credentials
            self._audit("login", reason="api", sub=sub, environ=environ)
        return self._session_cookies(cookies, tokens, csrf), body

    def _authenticate(self, username: str, password: str, environ: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
        """(sub, extra claims) for good credentials; rate limits first, then one password check."""
        buckets = self._count_attempt(username, client_address(environ, self.trusted))
        assert self.authenticate is not None
        claims = self.authenticate(username, password)
        if claims is None:
            # The name only when it is a user's: an unknown "name" may be a password typed in
            # the wrong field.
            known = self.lookup is not None and self.lookup(username) is not None
            self._audit("login_failed", reason="invalid_credentials", sub=username if known else None)
            raise InvalidCredentials()
        self._forget_attempt(buckets)
        sub = claims.get("sub", username)
        if not isinstance(sub, str) or not sub:
            raise TypeError("authenticate() returned a 'sub' that is not a non-empty string")
        self._audit("login", sub=sub)
        return sub, claims

    # -- the browser flow ------------------------------------------------------------------------
    def _login_page(self, environ: Mapping[str, Any], start_response: StartResponse, *, next_path: str | None,
                    status: int = 200, error: str = "", username: str = "",
                    extra: tuple[tuple[str, str], ...] = ()) -> list[bytes]:
        assert self.page is not None
        token = new_csrf()
        body = self.page.render(next_path=safe_next(next_path), csrf=token, username=username, error=error)
        cookies = Cookies(self.settings, self.reader.cookie_secure(environ))
        start_response(status_line(status), [
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body))),
            *NO_STORE, ("X-Frame-Options", "DENY"), ("Content-Security-Policy", _PAGE_CSP),
            cookies.login_form(token), *extra,
        ])
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _browser_login(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        cookies = Cookies(self.settings, self.reader.cookie_secure(environ))
        try:
            fields = parse_fields(environ, self.settings.max_body_size)
        except AuthError as error:
            return self._login_page(environ, start_response, next_path=None, status=error.status,
                                    error="The form could not be read. Please try again.")
        next_path = fields.get("next") if isinstance(fields.get("next"), str) else None
        target = safe_next(next_path)  # settled (and ASCII) before any token is minted
        given = fields.get("csrf_token")
        expected = cookie_value(environ, cookies.login_csrf)
        if (not isinstance(given, str) or not expected or not hmac.compare_digest(given.encode(), expected.encode())
                or not same_origin(environ)):
            # Login CSRF (threat model §6.3): someone else's form tried to sign this browser in.
            return self._login_page(environ, start_response, next_path=next_path, status=403,
                                    error="Your sign-in form expired. Please try again.")
        given_name = fields.get("username")
        username = given_name if isinstance(given_name, str) else ""
        try:
            sub, claims = self._authenticate(_text_field(fields, "username", MAX_USERNAME),
                                             _text_field(fields, "password", MAX_PASSWORD), environ)
        except TooManyRequests as error:
            return self._login_page(environ, start_response, next_path=next_path, status=429, username=username,
                                    error="Too many attempts. Please wait a minute.", extra=error.headers)
        except (InvalidCredentials, BadRequest) as error:
            return self._login_page(environ, start_response, next_path=next_path, status=error.status,
                                    username=username, error="Invalid username or password.")
        except ServerError as error:
            # Our fault (the store is down): the person's password may well be right.
            return self._login_page(environ, start_response, next_path=next_path, status=error.status,
                                    username=username, extra=error.headers,
                                    error="The sign-in service is unavailable. Please try again in a moment.")
        session, _ = self.cookie_session(environ, sub, claims)
        return self._redirect(start_response, target, [*session, cookies.login_form("", max_age=0)])

    @staticmethod
    def _redirect(start_response: StartResponse, location: str, headers: list[tuple[str, str]]) -> list[bytes]:
        start_response("303 See Other", [("Location", location), ("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", "0"), *NO_STORE, *headers])
        return []

    def _count_attempt(self, username: str, address: str) -> list[str]:
        """Count this attempt before checking the password, so concurrent guesses are bounded."""
        # The address first: once it is over its limit, a flood of distinct user names from it
        # creates no more counters (threat model §5.1, §8.2).
        limits = (
            (self.settings.login_ip_rate_limit, _bucket("ip", address)),
            (self.settings.login_rate_limit, _bucket("user", username)),
        )
        counted: list[str] = []
        retry = 0.0
        try:
            for (limit, key), kind in zip(limits, ("ip", "user"), strict=True):
                if not limit.limit:
                    continue
                count, remaining = self.store.hit(key, limit.window)
                counted.append(key)
                if count > limit.limit:
                    retry = max(retry, remaining)
                    self.metrics.rate_limited(kind)
                    self._audit("login_failed", reason=f"rate_limited_{kind}")
                    break
        except StoreUnavailable:
            throttle.warning(log, "store unavailable while counting a login attempt")
            raise ServiceUnavailable() from None
        if retry:
            raise TooManyRequests(max(1, math.ceil(retry)))
        return counted

    def _forget_attempt(self, buckets: list[str]) -> None:
        try:
            for key in buckets:
                self.store.unhit(key)
        except StoreUnavailable:
            throttle.warning(log, "store unavailable while clearing a login attempt")

    def _token_response(self, sub: str, claims: Mapping[str, Any], family: str | None = None,
                        successor: _Successor | None = None,
                        scope: tuple[str, ...] | None = None, *, fresh: bool = False) -> dict[str, Any]:
        """The RFC 6749 §5.1 token response; with ``successor``, the tokens it names (minted again,
        the same); ``scope`` narrows the access token only (RFC 6749 §6); ``fresh``: the access
        token comes from a credential check, not from a refresh."""
        assert self.issuer is not None
        s = self.settings
        if family is None:
            family = uuid.uuid4().hex  # one login = one refresh family
        # Only `fresh` says whether a token is fresh: never the user's claims, nor those a refresh
        # token carries over (the refresh token itself has no marker).
        claims = {k: v for k, v in claims.items() if k != FRESH_CLAIM}
        access_claims = claims
        if scope is not None:
            allowed = set(granted_scopes(claims))
            access_claims = with_scopes(claims, [name for name in scope if name in allowed])
        now = self.clock() if successor is None else successor.issued
        age = 0.0 if successor is None else max(self.clock() - now, 0.0)
        access, _ = self.issuer.issue(sub, s.access_ttl, claims={**access_claims, FRESH_CLAIM: fresh}, family=family,
                                      now=now, jti=None if successor is None else successor.access_jti)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                "expires_in": max(int(s.access_ttl - age), 0)}
        granted = granted_scopes(access_claims)
        # RFC 6749 §5.1: "scope" is required unless the grant is exactly what the client asked for.
        if (granted != list(scope)) if scope is not None else granted:
            body["scope"] = " ".join(granted)
        if self.refresh_enabled:
            refresh, _ = self.issuer.issue(sub, s.refresh_ttl, token_type="refresh", claims=claims, family=family,
                                           now=now, jti=None if successor is None else successor.refresh_jti)
            body["refresh_token"] = refresh
            body["refresh_expires_in"] = max(int(s.refresh_ttl - age), 0)
        return body

    # -- refresh -------------------------------------------------------------------------------
    def _token_from_body_or_header(self, environ: dict[str, Any], fields: Mapping[str, Any], name: str) -> str | None:
        in_body = fields.get(name)
        if in_body is not None and (not isinstance(in_body, str) or not in_body):
            raise InvalidRequest(f"'{name}' must be a string")
        in_header, source = self.reader.read_with_source(environ)
        if source == "cookie":
            in_header = None  # the access cookie is never a refresh token (the refresh cookie is read after)
        if in_body and in_header and in_body != in_header:
            raise InvalidRequest("The request carries more than one token")
        return in_body or in_header

    def _check_revoked(self, claims: Mapping[str, Any]) -> None:
        check_revoked(self.store, claims)

    def refresh(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD")
        if self.browser and method in ("GET", "HEAD") and wants_html(environ):
            return self._browser_refresh(environ, start_response)
        if method != "POST":
            raise MethodNotAllowed("POST")
        fields = parse_fields(environ, self.settings.max_body_size, allow_empty=True)
        if "grant_type" in fields and grant_type(fields) != "refresh_token":
            raise UnsupportedGrantType()  # this path only refreshes; login_path takes passwords
        token = self._token_from_body_or_header(environ, fields, "refresh_token")
        cookies = Cookies(self.settings, self.reader.cookie_secure(environ)) if self.browser else None
        if token is None and cookies is not None:
            # The refresh cookie is SameSite=Strict and scoped to this path: no other site can send it.
            token = cookie_value(environ, cookies.refresh)
            if token is not None:
                body, csrf = self._spend_grant(token, None)
                return json_response(start_response, 200, body,
                                     [*NO_STORE, *self._session_cookies(cookies, body, csrf)])
        return self._grant_answer(start_response, token, fields)

    def _refresh_grant(self, environ: dict[str, Any], start_response: StartResponse,
                       fields: Mapping[str, Any]) -> list[bytes]:
        """``grant_type=refresh_token`` at the token endpoint (RFC 6749 §6)."""
        return self._grant_answer(start_response, self._token_from_body_or_header(environ, fields, "refresh_token"),
                                  fields)

    def _grant_answer(self, start_response: StartResponse, token: str | None,
                      fields: Mapping[str, Any]) -> list[bytes]:
        """The token response for a refresh token from a body or header (none: ``invalid_request``)."""
        if token is None:
            raise InvalidRequest("The refresh token is missing")
        return json_response(start_response, 200, self._spend_grant(token, requested_scope(fields))[0], NO_STORE)

    def _spend_grant(self, token: str, scope: tuple[str, ...] | None) -> tuple[dict[str, Any], str]:
        """:meth:`_rotate`, with a refused token answered as RFC 6749 §5.2 ``invalid_grant``."""
        try:
            return self._rotate(token, scope)
        except InvalidToken as error:
            raise InvalidGrant(error.message) from None

    def _session_cookies(self, cookies: Cookies, body: Mapping[str, Any], csrf: str) -> list[tuple[str, str]]:
        return cookies.session(body["access_token"], int(self.settings.access_ttl), csrf,
                               body.get("refresh_token"), int(self.settings.refresh_ttl))

    def _browser_refresh(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Silent refresh for a page: new cookies, then back to ``next`` — or to the login page."""
        cookies = Cookies(self.settings, self.reader.cookie_secure(environ))
        # Both answers are settled (and ASCII) before the refresh token is spent: an answer that
        # failed after the rotation would lose the session.
        next_path = safe_next(query_value(environ, "next"))
        login = f"{self.settings.login_path}?next={quote(next_path, safe='')}"
        token = cookie_value(environ, cookies.refresh)
        try:
            if token is None:
                raise InvalidToken()
            body, csrf = self._rotate(token)
        except (InvalidToken, InvalidRequest):
            return self._redirect(start_response, login, cookies.clear())
        return self._redirect(start_response, next_path, self._session_cookies(cookies, body, csrf))

    def _rotate(self, token: str, scope: tuple[str, ...] | None = None) -> tuple[dict[str, Any], str]:
        """Spend a refresh token and mint the next pair of its family: (token response, csrf value)."""
        if len(token) > self.settings.max_token_size:
            raise InvalidToken()
        claims = self.verifier.verify(token, expected_type="refresh")
        family = claims.get("fam")
        if not isinstance(family, str) or not isinstance(claims.get("jti"), str):
            raise InvalidToken()
        self._check_revoked(claims)
        if scope is not None and not set(scope) <= set(granted_scopes(claims)):
            raise InvalidScope()  # before the token is spent: the client keeps its grant
        now = self.clock()
        ours = _Successor(time_ordered_id(now), time_ordered_id(now), now)
        try:
            recorded = self.store.rotate(claims["jti"], float(claims["exp"]), ours.encode(),
                                         self.settings.refresh_reuse_interval)
            successor = None if recorded is None else _Successor.decode(recorded)
            if successor is None:
                # A spent refresh token came back after refresh_reuse_interval: someone holds a
                # copy. Revoke the whole family (RFC 9700 §4.14.2), so the thief's and the
                # victim's tokens stop together.
                self.store.revoke_family(family, now + self.settings.refresh_ttl)
                self.metrics.reuse_detected()
                self._audit("refresh_reuse", logging.WARNING, reason="family_revoked", sub=claims.get("sub"),
                            jti=claims["jti"], family=family)
                raise RevokedToken()
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        if successor != ours:
            # Presented again within refresh_reuse_interval (a client's concurrent refreshes):
            # the same successor as the first time, so the family stays one chain.
            log.info("refresh token presented again within the reuse interval; same successor")
        sub = claims["sub"]
        if self.lookup is not None:
            fresh = self.lookup(sub)
            if fresh is None:
                raise RevokedToken()  # the user no longer exists
            extra: Mapping[str, Any] = fresh
        else:
            # Without a lookup, the claims we signed at login are the best source there is.
            extra = {k: v for k, v in claims.items() if k not in RESERVED_CLAIMS}
        limit = claims.get(SCOPE_LIMIT)
        if isinstance(limit, str):  # a grant narrowed at sign-in stays narrowed
            extra = {**with_scopes(extra, granted_scopes({**extra, SCOPE_LIMIT: limit})), SCOPE_LIMIT: limit}
        csrf = claims.get("csrf")
        if isinstance(csrf, str):
            extra = {**extra, "csrf": csrf}  # the browser keeps its CSRF cookie
        self._audit("refresh", reason=None if successor == ours else "within_reuse_interval", sub=sub,
                    jti=claims["jti"], family=family)
        return self._token_response(sub, extra, family, successor, scope), csrf if isinstance(csrf, str) else ""

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
        access, source = self.reader.read_with_source(environ)
        refresh = fields.get("refresh_token")
        if refresh is not None and (not isinstance(refresh, str) or not refresh):
            raise InvalidRequest("'refresh_token' must be a string")
        verified: list[dict[str, Any]] = []
        if access:
            verified.append(self.verifier.verify(access, expected_type="access"))
            if source == "cookie" and not csrf_ok(environ, verified[0], self.settings.max_body_size, fields):
                raise CSRFFailed()
        if refresh:
            verified.append(self.verifier.verify(refresh, expected_type="refresh"))
        if not verified:
            raise MissingToken()
        subjects = {c["sub"] for c in verified}
        if len(subjects) != 1:
            raise InvalidRequest("The tokens belong to different users")
        if not everywhere and any(not isinstance(c.get("jti"), str) and not isinstance(c.get("fam"), str)
                                  for c in verified):
            # Revocation is keyed on jti (or the refresh family): without either, this token alone
            # cannot be revoked, and a 204 would claim an effect that did not happen. Refused
            # before anything is revoked, so the answer is all or nothing.
            raise InvalidRequest(_NOT_REVOCABLE)
        now = self.clock()
        try:
            for claims in verified:
                self._check_revoked(claims)
            for claims in verified:
                if isinstance(claims.get("jti"), str):
                    self.store.revoke(claims["jti"], float(claims["exp"]))
                if isinstance(claims.get("fam"), str):
                    self.store.revoke_family(claims["fam"], now + self.settings.refresh_ttl)
            if everywhere:
                self._revoke_subject(subjects.pop(), now)
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        first = verified[0]
        self._audit("logout", reason="everywhere" if everywhere else None, sub=first["sub"], jti=first.get("jti"),
                    family=next((c["fam"] for c in verified if isinstance(c.get("fam"), str)), None))
        if not self.browser:
            start_response("204 No Content", [*NO_STORE])
            return []
        cookies = Cookies(self.settings, self.reader.cookie_secure(environ))
        if wants_html(environ):
            return self._redirect(start_response, self.settings.login_path or "/", cookies.clear())
        start_response("204 No Content", [*NO_STORE, *cookies.clear()])
        return []

    # -- revocation (RFC 7009) ------------------------------------------------------------------
    def revoke(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """``token`` (and an optional ``token_type_hint``) in a form or JSON body: ``200`` whatever the
        token is (RFC 7009 §2.2); one of ours that is still valid stops working at once, everywhere.

        Possession of the token is the only credential: this server has no clients to authenticate
        (an ``Authorization`` header is not read here), and revoking cannot hand anything out.
        """
        if environ.get("REQUEST_METHOD") != "POST":
            raise MethodNotAllowed("POST")
        fields = parse_fields(environ, self.settings.max_body_size)
        token = fields.get("token")
        if not isinstance(token, str) or not token:
            raise BadRequest("'token' must be a non-empty string")
        hint = fields.get("token_type_hint")
        if hint is not None and not isinstance(hint, str):
            raise BadRequest("'token_type_hint' must be a string")
        # The hint only orders the search (§2.1): an unknown or wrong hint still finds the token.
        kinds = ("refresh", "access") if hint == "refresh_token" else ("access", "refresh")
        claims = self._verified_as_any(token, kinds)
        if claims is not None:
            # §2.2.1: a store out of reach is a 503: the client must assume the token still works.
            self.revoke_token(claims)
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2"), *NO_STORE])
        return [b"{}"]

    def _verified_as_any(self, token: str, kinds: Sequence[str]) -> dict[str, Any] | None:
        """The claims of ``token`` verified as one of ``kinds``, or ``None`` when it is not valid."""
        if len(token) > self.settings.max_token_size:
            return None
        for kind in kinds:
            try:
                return self.verifier.verify(token, expected_type=kind)
            except InvalidToken:
                continue
        return None

    # -- revocation, also from Python --------------------------------------------------------
    def verified_any(self, token: str) -> dict[str, Any]:
        """The claims of ``token``, one of ours (access or refresh) or, as an access token, another issuer's.

        :raises InvalidToken: (or :class:`ExpiredToken`) as for a request carrying it.
        """
        try:
            return self.verifier.verify(token, expected_type="access")
        except ExpiredToken:
            raise
        except InvalidToken:
            return self.verifier.verify(token, expected_type="refresh")

    def revoke_token(self, claims: Mapping[str, Any]) -> None:
        """Revoke the token with these verified claims, everywhere; a refresh token takes its
        grant with it: every token of its family (RFC 7009 §2.1).

        :raises UnsupportedTokenType: the token carries no ``jti`` to revoke it by (another
            issuer's): refused rather than answered with a success after which it keeps working.
        :raises ServiceUnavailable: the store cannot be reached (nothing may have been revoked).
        """
        jti = claims.get("jti")
        if not isinstance(jti, str):
            raise UnsupportedTokenType()
        now = self.clock()
        fam = claims.get("fam")
        family = fam if claims.get("type") == "refresh" and isinstance(fam, str) else None
        try:
            self.store.revoke(jti, float(claims["exp"]))
            if family is not None:
                self.store.revoke_family(family, now + self.settings.refresh_ttl)
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        self._audit("revocation", reason="endpoint" if _request.get() is not None else "api", sub=claims.get("sub"),
                    jti=jti, family=family)

    def revoke_subject(self, sub: str) -> None:
        """Revoke every token of ``sub`` issued so far (a per-subject cut-off at the current time).

        :raises ServiceUnavailable: the store cannot be reached.
        """
        try:
            self._revoke_subject(sub, self.clock())
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        self._audit("revocation", reason="user", sub=sub)

    def _revoke_subject(self, sub: str, now: float) -> None:
        # The mark lives as long as any token issued before it can. To the millisecond: a sign-in
        # right after, even within the same second, keeps its tokens (their jti dates them; see
        # tokens.issued_at).
        horizon = now + max(self.settings.refresh_ttl, self.settings.access_ttl)
        self.store.revoke_subject(sub, cutoff_after(now), horizon)

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

