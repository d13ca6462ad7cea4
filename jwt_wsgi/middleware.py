"""``JWTMiddleware``: route a request to an endpoint, to verification, or straight through."""

from __future__ import annotations

import io
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from .browser import (
    CSRF_COOKIE,
    SAFE_METHODS,
    Cookies,
    CSRFFailed,
    cookie_value,
    csrf_ok,
    login_redirect,
    wants_html,
)
from .cache import VerifiedTokens
from .claims import MINTED_CLAIMS
from .context import CLAIMS_KEY, ENVIRON_PREFIX, RENDERER_KEY, USER_KEY, current_environ, token_scopes
from .endpoints import Endpoints
from .errors import (
    AuthError,
    ConfigurationError,
    InsufficientScope,
    InternalError,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    RevokedToken,
    ServiceUnavailable,
    StoreUnavailable,
    UserNotFound,
)
from .health import Health
from .keys import KeyRing
from .logs import throttle
from .metrics import LOGIN_REDIRECT, PREFLIGHT, active, hooks_for, timed
from .responses import ErrorRenderer, StartResponse
from .routing import OPEN_ROUTE, Handler, Kind, Route, Router
from .settings import Settings
from .state import store_namespace
from .stores import Store, is_revoked, open_store, revocation_args
from .stores.namespaced import namespaced
from .tokens import TokenIssuer, TokenReader, TokenVerifier
from .users import UsersFile

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_PROTECTED, _ENDPOINT, _OPEN = Kind.PROTECTED, Kind.ENDPOINT, Kind.OPEN  # (a global is read faster than an enum member)
_MAX_CLEAN_KEYS = 4096  # environ keys known not to be ours (clients choose header names: bounded)
_BEARER_PREFIXES = frozenset({"Bearer ", "bearer ", "BEARER "})
_GENERIC_500 = b'{"error":"internal_error","message":"Internal server error"}'
_METHOD = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{1,1024}")
# What the proxy tells the verifier about the request it holds: nginx auth_request, Traefik ForwardAuth.
_ORIGINAL = (("HTTP_X_ORIGINAL_URI", "HTTP_X_ORIGINAL_METHOD"), ("HTTP_X_FORWARDED_URI", "HTTP_X_FORWARDED_METHOD"))


class JWTMiddleware:
    """Put JSON Web Token authentication in front of a WSGI application.

    Requests under a ``protect`` prefix (everything, by default) need a valid token; the
    application then finds the verified claims in ``environ["jwt_wsgi.claims"]`` and the ``sub``
    claim in ``REMOTE_USER``. Elsewhere a valid token still fills in the claims and an invalid
    one is ignored. The login, refresh, logout, revocation, JWKS and health endpoints are answered by the middleware.

    .. code-block:: python

        from jwt_wsgi import JWTMiddleware

        app = JWTMiddleware(app, secret=os.environ["JWT_WSGI_SECRET"],
                            protect=["/api"], public=["/api/health"], users_file="users.json")

    Every option is validated here, so a bad configuration fails at start-up (gunicorn's boot),
    never on the first request.

    Security: the algorithm is pinned by configuration, ``exp`` is required, prefixes are
    matched on the canonical path (so ``//api``, ``/./api`` or ``/API`` are protected as ``/api``
    is), and every failure is answered with a fixed message. You still have to run behind TLS:
    a bearer token is as good as a password to whoever reads it.

    :param app: any WSGI application; it is called unchanged.
    :param clock: seconds since the epoch, for issuing tokens and for the store; injectable for tests.
    :param options: see the README's options table (the names of :class:`~jwt_wsgi.settings.Settings`).
    """

    def __init__(self, app: WSGIApp, settings: Settings | None = None, *,
                 clock: Callable[[], float] = time.time, **options: Any) -> None:
        if settings is not None and options:
            raise TypeError("pass either settings or options, not both")
        self.app = app
        self.clock = clock
        self.settings = settings if settings is not None else Settings.from_mapping(options)
        s = self.settings
        self.keys = KeyRing(s, clock=clock)
        self.reader = TokenReader(s)
        self.verifier = TokenVerifier(s, self.keys, clock=clock)
        self.issuer = TokenIssuer(s, self.keys, clock=clock) if self.keys.can_sign else None
        # Several applications may share one SQLite file or Redis: user-named records are kept apart.
        self.metrics = hooks_for(s)  # the metrics hooks (jwt_wsgi.metrics.Metrics), or None
        self._metrics = active(self.metrics)  # None when they do nothing: not even called then
        self.store: Store = timed(namespaced(open_store(s.store, clock=clock), store_namespace(s, self.keys),
                                             clock=clock), self.metrics)
        self.renderer = ErrorRenderer(s.error_format, s.realm)
        authenticate = s.authenticate or (UsersFile(s.users_file) if s.users_file else None)
        self.endpoints = Endpoints(
            s,
            issuer=self.issuer,
            verifier=self.verifier,
            reader=self.reader,
            store=self.store,
            authenticate=authenticate,
            jwks=self.keys.jwks(),
            clock=clock,
            health=Health(self.keys, lambda: self.store, clock) if s.health_path else None,
            metrics=self.metrics,
        )
        table: dict[str, Handler] = dict(self.endpoints.routes())
        if s.verify_path:
            if s.verify_path in table:
                raise ConfigurationError("verify_path", f"{s.verify_path!r} is already the path of another endpoint")
            table[s.verify_path] = self._forward_auth
        self.router = Router(s, table)
        self._routes = self.router.memo  # read inline: one dict lookup per request
        if s.login_path and self.issuer is not None and authenticate is None:
            log.warning("login_path %s is not mounted: neither users_file nor authenticate is configured "
                        "(set login_path=None if tokens are issued elsewhere)", s.login_path)
        self._cors = s.cors_preflight
        self._fail_open = s.store_fail_open
        self._browser = self.endpoints.browser
        self._user_loader = s.user_loader
        # Nothing but "Authorization: Bearer" is read: a repeated token is found without parsing.
        self._plain_bearer = (
            s.token_sources == ("header",) and s.header_name.lower() == "authorization" and not self._browser
        )
        # The most common refusal, rendered once (a callable error_format renders every time).
        self._missing = None if callable(s.error_format) else self.renderer.render(MissingToken())
        self.verified = VerifiedTokens(s.token_cache_size, s.leeway, clock)
        self._remote_keys = bool(self.keys.remotes)
        self._keys_version = self.keys.version
        self._clean_keys: set[Any] = set()

    # -- construction helpers ----------------------------------------------------------------
    @classmethod
    def from_env(cls, app: WSGIApp, environ: Mapping[str, str] | None = None, **overrides: Any) -> JWTMiddleware:
        """Options from ``JWT_WSGI_<OPTION>`` environment variables (lists comma-separated)."""
        return cls(app, Settings.from_env(environ, **overrides))

    @classmethod
    def from_file(cls, app: WSGIApp, path: str | os.PathLike[str], **overrides: Any) -> JWTMiddleware:
        """Options from a TOML file (top-level keys, or a ``[jwt_wsgi]`` table)."""
        return cls(app, Settings.from_file(path, **overrides))

    # -- tokens from Python ------------------------------------------------------------------
    def issue_tokens(self, subject: str, claims: Mapping[str, Any] | None = None, *,
                     fresh: bool = True) -> dict[str, Any]:
        """Sign ``subject`` in from your own code: the dict the login endpoint answers with.

        For a login view of your own (a user table, an LDAP bind, a magic link): once *you* have
        checked the credentials, this mints the same tokens a password login at ``login_path``
        does (``sub``, ``iat``, ``exp``, ``jti``, ``type``, a new refresh family, ``fresh``,
        ``iss``/``aud``) and returns the same JSON-ready dict: ``access_token``, ``token_type``,
        ``expires_in`` and, unless ``refresh_path`` is off, ``refresh_token`` and
        ``refresh_expires_in``. Refresh, logout and revocation then work on them as on any other.

        .. code-block:: python

            @app.post("/my-login")
            def my_login():
                user = User.check(request.json["email"], request.json["password"])
                if user is None:
                    return {"error": "invalid_credentials"}, 401
                return auth.issue_tokens(str(user.id), {"roles": user.roles})

        :param subject: the ``sub`` claim (what ``REMOTE_USER`` becomes): a non-empty string.
        :param claims: extra claims (``scope``, ``roles``, ...), JSON-serialisable. The claims this
            middleware sets itself (``sub``, ``exp``, ``jti``, ``fresh``, ...) are refused.
        :param fresh: mark the access token as coming from a credential check, for
            ``requires(fresh=True)``. Pass ``False`` when no credential was checked just now.
        :raises ValueError: a bad subject or claims, or tokens beyond ``max_token_size``.
        :raises RuntimeError: this middleware only verifies tokens (no key to sign with).
        :raises ServiceUnavailable: the store cannot be reached (503 through ``init_app``).
        """
        if self.issuer is None:
            raise RuntimeError("issue_tokens(): this middleware only verifies tokens; set secret or private_key "
                               "to issue them")
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"issue_tokens(): subject must be a non-empty string, not {subject!r}")
        if claims is not None and not isinstance(claims, Mapping):
            raise ValueError("issue_tokens(): claims must be a mapping of claim names to values")
        extra = dict(claims or {})
        reserved = sorted(name for name in extra if name in MINTED_CLAIMS)
        if reserved or not all(isinstance(name, str) for name in extra):
            raise ValueError(f"issue_tokens(): claims may not set {', '.join(reserved) or 'non-string names'}: "
                             "the middleware sets them (the subject is the first argument)")
        if not isinstance(fresh, bool):
            raise ValueError("issue_tokens(): fresh must be True or False")
        self._store_ready()
        body = self.endpoints.login_body(subject, extra, fresh=fresh)
        longest = max(len(str(body.get(name, ""))) for name in ("access_token", "token", "refresh_token"))
        if longest > self.settings.max_token_size:
            raise ValueError(f"issue_tokens(): the tokens would be {longest} characters, more than max_token_size "
                             f"({self.settings.max_token_size}) allows; put fewer or smaller claims in them")
        return body

    def _store_ready(self) -> None:
        """Before minting from Python: the store's epoch (if it keeps one) has begun, and is past.

        As a login counts its attempt first, a store that keeps an epoch begins it before the
        tokens are issued, never after (which would revoke them). A new epoch begins at the next
        millisecond and tokens are dated to the millisecond, so when the epoch was begun just now
        the clock must reach it before a token is minted: waited for, at most a few milliseconds
        (a test's clock may stand still). Once the epoch is past, nothing is waited for.

        :raises ServiceUnavailable: the store cannot be reached.
        """
        try:
            self.store.ping()
        except StoreUnavailable:
            raise ServiceUnavailable() from None
        epoch = getattr(self.store, "epoch", None)
        if isinstance(epoch, float) and self.clock() < epoch:
            deadline = time.monotonic() + 0.005
            while self.clock() < epoch and time.monotonic() < deadline:
                pass

    def revoke(self, token: str) -> None:
        """Revoke one token now, in every worker and host sharing the store.

        An access token stops working; a refresh token stops working with every token of its
        family (the tokens of that sign-in, refreshed or not). The token is verified first.

        :raises InvalidToken: not a valid token (junk, forged, another issuer's refresh token);
            :class:`ExpiredToken` when it has expired (it no longer works anyway). A token
            revoked already is revoked again, without complaint.
        :raises UnsupportedTokenType: valid, but without ``jti`` to revoke it by (another issuer's token).
        :raises ServiceUnavailable: the store cannot be reached: the token may still work.
        """
        if not isinstance(token, str):
            raise TypeError(f"revoke(): token must be a string, not {type(token).__name__}")
        self.endpoints.revoke_token(self.endpoints.verified_any(token))
        log.info("token revoked from the application")

    def revoke_user(self, subject: str) -> None:
        """Revoke every token of ``subject`` issued so far ("log out everywhere", a password change).

        Tokens issued afterwards (the next sign-in) work. Same mark as ``{"all": true}`` at
        ``logout_path``: kept until the last token it covers would have expired.

        :raises ServiceUnavailable: the store cannot be reached: nothing was revoked.
        """
        if not isinstance(subject, str) or not subject:
            raise ValueError(f"revoke_user(): subject must be a non-empty string, not {subject!r}")
        self.endpoints.revoke_subject(subject)
        log.info("every token of a user revoked from the application")

    # -- cookies from the application's own views ---------------------------------------------
    def login_cookies(self, environ: Mapping[str, Any], subject: str, claims: Mapping[str, Any] | None = None
                      ) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """Sign ``subject`` in from your own view (a magic link, an LDAP bind ...) with the cookies
        the built-in login sets: returns the ``Set-Cookie`` headers to add to your response and a
        JSON-ready body (lifetimes and the ``csrf_token`` that unsafe requests echo in
        ``X-CSRF-Token``; no token: the cookies are ``HttpOnly``).

        :raises ConfigurationError: the cookie token source is off, or no signing key is configured.
        """
        if not self.endpoints.browser or self.issuer is None:
            raise ConfigurationError("token_sources", "login_cookies() needs the cookie token source "
                                     "(token_sources = header,cookie) and a signing key")
        if not isinstance(subject, str) or not subject:
            raise TypeError("subject must be a non-empty string")
        self._store_ready()
        return self.endpoints.cookie_session(environ, subject, dict(claims or {}))

    def logout_cookies(self, environ: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The ``Set-Cookie`` headers that clear the sign-in cookies (revoke the token as well
        if it must stop working before it expires)."""
        return Cookies(self.settings, self.reader.cookie_secure(environ)).clear()

    # -- the request -------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        # Keys under jwt_wsgi. that arrive with the request are removed. Servers send the same few
        # dozen keys again and again: one C-level subset test settles the usual request.
        if not environ.keys() <= self._clean_keys:
            self._screen(environ)
        environ[RENDERER_KEY] = self.renderer
        key = (environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", ""))
        route = self._routes.get(key) or self.router.route(key)
        if self._plain_bearer and "HTTP_AUTHORIZATION" not in environ:  # no credential: the route decides
            if route is OPEN_ROUTE:
                return self.app(environ, start_response)
            missing = self._missing  # as _decide would answer, without raising and rendering
            if missing is not None and route.kind is _PROTECTED and environ.get("REQUEST_METHOD") != "OPTIONS":
                if self._metrics is not None:
                    self._metrics.decision("missing_token")
                start_response(missing[0], list(missing[1]))
                return [missing[2]]
        try:
            answer, claims = self._decide(environ, route)
            if answer is not None:
                if self._metrics is not None and route.kind is _PROTECTED:
                    self._metrics.decision(PREFLIGHT if answer == self._preflight else LOGIN_REDIRECT)
                return answer(environ, start_response)
        except AuthError as error:
            if self._metrics is not None and route.kind is not _ENDPOINT:
                self._metrics.decision(error.code)
            return self._respond(error, start_response)
        except Exception:
            if self._metrics is not None and route.kind is not _ENDPOINT:
                self._metrics.decision("internal_error")
            log.exception("jwt_wsgi failed while handling a request")
            return self._respond(InternalError(), start_response)
        return self._grant(environ, start_response, claims, route.kind is _PROTECTED, self.app)

    def _screen(self, environ: dict[str, Any]) -> None:
        """Remove forged ``jwt_wsgi.*`` keys; remember the clean ones (a bounded set)."""
        for key in environ.keys() - self._clean_keys:
            if not isinstance(key, str) or key.startswith(ENVIRON_PREFIX):
                if isinstance(key, str):
                    del environ[key]
            elif len(self._clean_keys) < _MAX_CLEAN_KEYS:
                self._clean_keys.add(key)

    def _decide(self, environ: dict[str, Any], route: Route) -> tuple[Handler | None, dict[str, Any] | None]:
        """What becomes of a routed request: the middleware's own answer, or the app's call.

        :returns: ``(handler, None)`` when the middleware answers (an endpoint, a CORS preflight,
            the sign-in page's redirect); else ``(None, claims)``: the application is called with
            these verified claims, or anonymously when they are ``None`` (outside ``protect``).
        :raises AuthError: the request is refused.
        """
        kind = route.kind
        if kind is _PROTECTED:
            if (
                self._cors
                and environ.get("REQUEST_METHOD") == "OPTIONS"
                and "HTTP_ORIGIN" in environ
                and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
            ):
                # A CORS preflight carries no credentials (Fetch standard): it goes to the app, whose
                # CORS handling answers it, but only the CORS part of the answer comes back.
                return self._preflight, None
            try:
                return None, self._authenticate(environ, route.scopes)
            except (MissingToken, InvalidToken):
                if self._browser and environ.get("REQUEST_METHOD") in ("GET", "HEAD") and wants_html(environ):
                    return self._to_login, None  # a page, not an API: send the person to sign in
                raise
        if kind is _OPEN:
            try:
                return None, self._authenticate(environ, ())
            except AuthError:
                return None, None  # outside protect, a token that does not pass is no token
        if kind is _ENDPOINT:
            return route.endpoint, None
        raise InvalidRequest("The request path is malformed")

    def _authenticate(self, environ: dict[str, Any], scopes: tuple[str, ...]) -> dict[str, Any]:
        """The claims of the request's valid, unrevoked token, which must grant ``scopes``.

        This is the one reading of a request's credentials. The token comes from
        :class:`~jwt_wsgi.tokens.TokenReader` (header, cookie or query) and is looked up once in
        the cache of verified tokens. Only verified tokens are cache keys, so where nothing but
        ``Authorization: Bearer`` is read, a hit on the text after ``Bearer`` proves the header
        well formed: a repeated token is not parsed again.

        :raises AuthError: no token (:class:`MissingToken`, also for a token sent under another
            scheme), two tokens or a malformed credential (:class:`InvalidRequest`), an invalid
            or revoked token, a cookie-borne token on a cross-site request, missing scopes, an
            unreachable store or JWK Set (:class:`ServiceUnavailable`).
        """
        if self._remote_keys:
            self._refresh_keys()
        token: str | None
        source: str | None
        if self._plain_bearer:
            value = environ.get("HTTP_AUTHORIZATION")
            if value is None:
                raise MissingToken()
            token, source = (value[7:], "header") if value[:7] in _BEARER_PREFIXES else (None, None)
            hit = None if token is None else self.verified.lookup(token)
            if hit is None:  # parsed only now (a miss on a Bearer token: the reader finds the same text)
                token, source = self.reader.read_with_source(environ)
        else:
            token, source = self.reader.read_with_source(environ)
            hit = None if token is None else self.verified.lookup(token)
        if self._metrics is not None and token is not None:
            self._metrics.cache(hit is not None)
        if hit is not None:
            claims, revocation = hit
        elif token is None:
            raise MissingToken()
        else:
            claims = self.verifier.verify(token)
            if not self._remote_keys or self.keys.version == self._keys_version:
                self.verified.put(token, claims)
            revocation = revocation_args(claims)
        if is_revoked(self.store, revocation, fail_open=self._fail_open):  # never cached: asked every time
            raise RevokedToken()
        if source == "cookie" and environ.get("REQUEST_METHOD") not in SAFE_METHODS:
            if not csrf_ok(environ, claims, self.settings.max_body_size):
                raise CSRFFailed()
        if scopes and not token_scopes(claims).issuperset(scopes):
            raise InsufficientScope(scopes)
        return claims

    def _refresh_keys(self) -> None:
        """Keys from a JWK Set: refresh it when due, even for a cached token, and forget the
        verdicts reached with a key its issuer has dropped since."""
        version = self.keys.refresh_due()
        if version != self._keys_version:
            self.verified.clear()
            self._keys_version = version

    def _grant(self, environ: dict[str, Any], start_response: StartResponse, claims: dict[str, Any] | None,
               required: bool, app: WSGIApp) -> Iterable[bytes]:
        """Call ``app`` as the token's user: claims, ``REMOTE_USER``, ``user_loader``'s user, the
        request context; or anonymously when ``claims`` is ``None``.

        :param required: the path is protected: a user the loader does not find (or refuses) is
            answered 401; elsewhere the request goes on anonymously, as with an invalid token.
        """
        if claims is not None and self._user_loader is not None:
            try:
                user = self._load_user(claims)
                if user is None and required:
                    raise UserNotFound()
            except AuthError as error:
                if required or error.status >= 500:
                    if self._metrics is not None and required:
                        self._metrics.decision(error.code)
                    return self._respond(error, start_response)
                user = None  # the loader refused the user: anonymous here, as with an invalid token
            if user is None:
                claims = None  # an unknown user is nobody here, as an invalid token is
            else:
                environ[USER_KEY] = user
        if claims is None:
            return app(environ, start_response)  # nothing for requires()/get_claims() to find
        if self._metrics is not None and required:
            self._metrics.decision("allowed")
        environ[CLAIMS_KEY] = claims
        environ["REMOTE_USER"] = claims["sub"]
        environ["AUTH_TYPE"] = "Bearer"
        token = current_environ.set(environ)
        try:
            return app(environ, start_response)
        finally:
            current_environ.reset(token)

    def _respond(self, error: AuthError, start_response: StartResponse) -> list[bytes]:
        if isinstance(error, StoreUnavailable):  # not translated on its way out: still worth a line
            throttle.warning(log, "store unavailable: %s", error)  # once per interval, with a count
        try:
            return self.renderer.respond(error, start_response)
        except Exception:
            # A custom error_format failed: fall back to a body that cannot fail.
            log.exception("jwt_wsgi could not render an error response")
            start_response("500 Internal Server Error",
                           [("Content-Type", "application/json"), ("Content-Length", str(len(_GENERIC_500)))])
            return [_GENERIC_500]

    def _load_user(self, claims: dict[str, Any]) -> Any:
        """``user_loader(claims)``, once per request; a failure in it is a 500 with its traceback logged.

        An :class:`AuthError` it raises on purpose is answered as it says.
        """
        assert self._user_loader is not None
        try:
            return self._user_loader(claims)
        except AuthError:
            raise
        except Exception:
            log.exception("user_loader raised; the request gets a 500")
            raise InternalError() from None

    def _preflight(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Pass an anonymous preflight to the app; send back its status and CORS headers only.

        A handler that ignores the method would otherwise serve a protected page to anyone who
        adds two headers (threat model §3.3): the body is dropped, never sent.
        """
        captured: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, headers]
            return lambda data: None

        body = self.app(environ, capture)
        try:
            for _ in body:
                pass
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        status, headers = captured if captured else ("204 No Content", [])
        code = int(status.split(" ", 1)[0])
        kept = [(k, v) for k, v in headers if k.lower().startswith("access-control-") or k.lower() in ("vary", "allow")]
        if 200 <= code < 300:
            start_response("204 No Content", kept)
        else:
            start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"), *kept])
        return []

    # -- forward auth ------------------------------------------------------------------------
    def _forward_auth(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """``verify_path``: the decision this middleware would make for the proxy's original request.

        The proxy names the request in ``X-Original-URI``/``X-Original-Method`` (nginx
        ``auth_request``) or ``X-Forwarded-Uri``/``X-Forwarded-Method`` (Traefik ``ForwardAuth``);
        the path is routed and the token checked exactly as for a request made here. Allowed: 200
        with the configured claims as headers; refused: the same 401/403/400 as the middleware's.
        Those headers are believed only because this path must be reachable from the proxy alone.
        """
        try:
            original = self._original_request(environ)
            route = self.router.route((original["SCRIPT_NAME"], original["PATH_INFO"]))
            answer, claims = self._decide(original, route)
            page = self.endpoints.metrics_page
            guard = None if page is None else page.guard
            if guard is not None and getattr(answer, "__wrapped__", None) is page:
                guard(original)  # the one endpoint that asks for a token: the same question here
        except AuthError as error:
            if self._metrics is not None:
                self._metrics.decision(error.code)
            return self._respond(error, start_response)
        except Exception:
            if self._metrics is not None:
                self._metrics.decision("internal_error")
            log.exception("jwt_wsgi failed while verifying a forwarded request")
            return self._respond(InternalError(), start_response)
        if self._metrics is not None and answer is not None and route.kind is _PROTECTED:
            self._metrics.decision(PREFLIGHT if answer == self._preflight else LOGIN_REDIRECT)
        if answer == self._to_login:
            return self._to_login(original, start_response)  # the sign-in redirect of a browser page
        # An endpoint or a CORS preflight (no token needed), a path outside protect, or a granted
        # request: 200, with the claims as headers when there are any.
        return list(self._grant(original, start_response, claims, route.kind is _PROTECTED, self._allow))

    def _original_request(self, environ: dict[str, Any]) -> dict[str, Any]:
        """A WSGI environ for the request the proxy holds: its method, path and query, our headers.

        :raises InvalidRequest: no original URI or method, two that disagree, or a malformed one.
        """
        named = {(environ.get(uri_key), environ.get(method_key)) for uri_key, method_key in _ORIGINAL}
        named.discard((None, None))
        if len(named) != 1:
            # Both spellings, differing: one of them came from the client through the proxy.
            raise InvalidRequest("Name the original request in X-Original-URI and X-Original-Method "
                                 "or X-Forwarded-Uri and X-Forwarded-Method" if not named else
                                 "The forwarded request headers disagree")
        uri, method = named.pop()
        if not isinstance(uri, str) or not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise InvalidRequest("The original request's method or URI is missing or malformed")
        if not uri.startswith("/"):
            parts = urlsplit(uri) if "://" in uri else None
            if parts is None or not parts.scheme or not parts.netloc:
                raise InvalidRequest("The original request URI is malformed")
            uri = (parts.path or "/") + ("?" + parts.query if parts.query else "")
        # A "#" stays in the path: a backend given the raw URI may read past it, so every reading counts.
        path, _, query = uri.partition("?")
        original = {key: value for key, value in environ.items()
                    if key.startswith("HTTP_") or key.startswith("wsgi.") or key in ("SERVER_NAME", "SERVER_PORT",
                                                                                 "SERVER_PROTOCOL", "REMOTE_ADDR")}
        # As a WSGI server hands a request over: the path percent-decoded once, as Latin-1 characters.
        original.update({"REQUEST_METHOD": method, "SCRIPT_NAME": "",
                         "PATH_INFO": unquote_to_bytes(path).decode("latin-1"), "QUERY_STRING": query,
                         "CONTENT_LENGTH": "0", "wsgi.input": io.BytesIO(b"")})
        host = environ.get("HTTP_X_FORWARDED_HOST")
        if isinstance(host, str) and host:
            original["HTTP_HOST"] = host
        proto = environ.get("HTTP_X_FORWARDED_PROTO")
        if proto in ("http", "https"):
            original["wsgi.url_scheme"] = proto
        return original

    def _allow(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """Forward auth's answer to a request the middleware would let through."""
        claims = environ.get(CLAIMS_KEY)
        headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"),
                   ("Cache-Control", "no-store")]
        if claims is not None:
            for claim, header in self.settings.verify_claim_headers.items():
                value = claims.get(claim)
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    continue  # objects, lists and booleans have no single header spelling
                text = str(value)
                if _HEADER_VALUE.fullmatch(text):  # printable ASCII only: nothing to split a header with
                    headers.append((header, text))
        start_response("200 OK", headers)
        return []

    def _to_login(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """303 to the silent refresh when a session cookie says one may work, else to the login page."""
        target = login_redirect(self.settings.login_path or "/", environ)
        if self.settings.refresh_path and self._session_marker(environ):
            target = self.settings.refresh_path + target[target.index("?"):]
        start_response("303 See Other", [("Location", target), ("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", "0"),
                                         ("Cache-Control", "no-store"), ("Vary", "Accept")])
        return []

    def _session_marker(self, environ: dict[str, Any]) -> bool:
        name = ("__Host-" if self.reader.cookie_secure(environ) else "") + CSRF_COOKIE
        return cookie_value(environ, name) is not None
