"""What the application uses: :func:`get_claims`, :func:`get_user` and the :func:`requires` decorator."""

from __future__ import annotations

import functools
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from .claims import FRESH_CLAIM
from .context import CLAIMS_KEY, RENDERER_KEY, USER_KEY, current_environ, token_scopes
from .errors import AuthError, CheckFailed, FreshTokenRequired, InsufficientScope, MissingToken, RoleRequired
from .responses import ErrorRenderer

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
ClaimsCheck = Callable[[Mapping[str, Any]], bool]

_DEFAULT_RENDERER = ErrorRenderer("json", "jwt_wsgi")


def get_claims(environ: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The verified claims of the current request, or ``None``.

    :param environ: the WSGI environ; by default the one of the request being handled (set by
        :class:`~jwt_wsgi.JWTMiddleware` for the duration of the application call).
    """
    if environ is None:
        environ = current_environ.get()
        if environ is None:
            return None
    claims = environ.get(CLAIMS_KEY)
    return claims if isinstance(claims, dict) else None


def get_user(environ: Mapping[str, Any] | None = None) -> Any:
    """The caller of the current request: what ``user_loader`` returned for its token.

    Without a ``user_loader`` option, the ``sub`` claim (a string). ``None`` when the request
    carries no valid token (outside ``protect``) or no request is being handled. With a
    ``user_loader``, a request whose user it did not find never gets here: 401 ``user_not_found``
    under ``protect``, anonymous (``None`` here) elsewhere.

    :param environ: the WSGI environ; by default the one of the request being handled.
    """
    if environ is None:
        environ = current_environ.get()
        if environ is None:
            return None
    claims = get_claims(environ)
    if claims is None:
        return None
    if USER_KEY in environ:
        return environ[USER_KEY]
    return claims.get("sub")


def token_roles(claims: Mapping[str, Any], claim: str | tuple[str, ...] = "roles") -> frozenset[str]:
    """Roles granted by a token: the strings of the list in ``claim`` (one string counts as one role).

    :param claim: a claim name (``"roles"``, ``"groups"``, ``"cognito:groups"``,
        ``"https://example.com/roles"``), or a tuple naming a path into nested objects
        (``("realm_access", "roles")`` for Keycloak). Dots are never split: they are legal in names.
    """
    path = (claim,) if isinstance(claim, str) else claim
    value: Any = claims
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    if isinstance(value, str):
        return frozenset((value,)) if value else frozenset()
    if isinstance(value, list):
        return frozenset(v for v in value if isinstance(v, str) and v)
    return frozenset()


def _names(option: str, values: Iterable[str] | None, *, scope: bool) -> tuple[str, ...] | None:
    """Validated names for ``option``; ``None`` when the option was not given."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise TypeError(f"requires(): {option} takes a list of names, not the string {values!r}")
    names = tuple(values)
    if not names:
        raise ValueError(f"requires(): {option} is empty, so no token could ever pass; leave it out instead")
    for name in names:
        if not isinstance(name, str) or not name or (scope and any(c.isspace() for c in name)):
            raise ValueError(f"requires(): {name!r} in {option} is not a {'scope' if scope else 'role'} name")
    return names


class Requirement:
    """What one view requires of the token, validated once (when the view is decorated).

    Every condition given must hold: a fresh token if ``fresh``, all of ``scopes``, at least one
    of ``any_scope``, all of ``roles``, at least one of ``any_role``, and ``check(claims) is True``.
    No token: 401 ``missing_token``; not fresh: 401 ``fresh_token_required`` (``invalid_token``);
    a condition unmet: 403 ``insufficient_scope`` (RFC 6750 §3.1).
    """

    def __init__(
        self,
        scopes: Iterable[str] = (),
        *,
        any_scope: Iterable[str] | None = None,
        roles: Iterable[str] | None = None,
        any_role: Iterable[str] | None = None,
        roles_claim: str | tuple[str, ...] = "roles",
        check: ClaimsCheck | None = None,
        fresh: bool = False,
    ) -> None:
        if not isinstance(fresh, bool):
            raise TypeError(f"requires(): fresh must be True or False, not {fresh!r}")
        self.fresh = fresh
        self.scopes: tuple[str, ...] = ()
        for scope in scopes:
            if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
                hint = " (pass scopes as separate arguments: requires('a', 'b'))" if not isinstance(scope, str) else ""
                raise ValueError(f"requires(): {scope!r} is not a scope name{hint}")
            self.scopes += (scope,)
        self.any_scope = _names("any_scope", any_scope, scope=True)
        self.roles = _names("roles", roles, scope=False)
        self.any_role = _names("any_role", any_role, scope=False)
        if isinstance(roles_claim, str):
            claim_ok = bool(roles_claim)
        else:
            claim_ok = (isinstance(roles_claim, tuple) and bool(roles_claim)
                        and all(isinstance(part, str) and part for part in roles_claim))
        if not claim_ok:
            raise ValueError(f"requires(): roles_claim must be a claim name or a tuple of names, not {roles_claim!r}")
        if roles_claim != "roles" and self.roles is None and self.any_role is None:
            raise ValueError("requires(): roles_claim is given without roles or any_role")
        self.roles_claim = roles_claim
        if check is not None and not callable(check):
            raise TypeError(f"requires(): check must be a callable taking the claims, not {check!r}")
        self.check = check

    def error(self, claims: Mapping[str, Any] | None) -> AuthError | None:
        """The error a request with these claims deserves, or ``None`` when it may pass."""
        if claims is None:
            return MissingToken()
        if self.fresh and claims.get(FRESH_CLAIM) is not True:
            # Who the caller is comes before what they may do: a 401 that asks for a sign-in.
            return FreshTokenRequired()
        if self.scopes or self.any_scope:
            granted = token_scopes(claims)
            if not granted.issuperset(self.scopes):
                return InsufficientScope(self.scopes)
            if self.any_scope and granted.isdisjoint(self.any_scope):
                return InsufficientScope()  # no scope= hint: the challenge's list would mean "all of"
        if self.roles or self.any_role:
            held = token_roles(claims, self.roles_claim)
            if (self.roles and not held.issuperset(self.roles)) or (self.any_role and held.isdisjoint(self.any_role)):
                return RoleRequired()
        if self.check is not None:
            try:
                allowed = self.check(claims)
            except Exception:
                # Fail closed, loudly: a predicate that trips over a claim refuses the request.
                log.exception("requires(check=...) raised; request refused")
                return CheckFailed()
            if allowed is not True:
                return CheckFailed()
        return None


def render_error(environ: Mapping[str, Any] | None, error: AuthError) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status, headers and body for ``error``, in the format of the middleware that handled the request."""
    renderer = (environ or {}).get(RENDERER_KEY, _DEFAULT_RENDERER)
    return renderer.render(error)  # type: ignore[no-any-return]


def _is_environ(value: Any) -> bool:
    return isinstance(value, dict) and "wsgi.version" in value


def _django_request(args: tuple[Any, ...]) -> Any:
    """The Django ``HttpRequest`` among a view's first two arguments (a function or a method), or ``None``."""
    http = sys.modules.get("django.http")
    if http is None:
        return None
    for arg in args[:2]:
        if isinstance(arg, http.HttpRequest):
            return arg
    return None


def _flask_environ() -> Any:
    flask = sys.modules.get("flask")
    if flask is not None and flask.has_request_context():
        return flask.request.environ
    return None


def _bottle_environ(environ: Mapping[str, Any] | None) -> Any:
    bottle = sys.modules.get("bottle")
    if bottle is None:
        return None
    try:
        bound = bottle.request.environ
    except (RuntimeError, AttributeError):  # no request bound to this thread
        return None
    if not isinstance(bound, dict) or RENDERER_KEY not in bound or "bottle.route" not in bound:
        return None  # not a routed request that came through a JWTMiddleware
    # A thread keeps its last Bottle request bound (Bottle never unbinds it): when the request
    # being handled is known, only that one counts.
    return bound if environ is None or bound is environ else None


class _Call:
    """How one call of a decorated view is answered: where its environ is, how to refuse it."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.wsgi = len(args) >= 2 and _is_environ(args[0]) and callable(args[1])
        self.start_response = args[1] if self.wsgi else None
        self.django = None if self.wsgi else _django_request(args)
        environ: Any = None
        if self.wsgi:
            environ = args[0]
        elif self.django is not None:
            environ = self.django.META  # Django's WSGIRequest.META is the WSGI environ
        else:
            # Never Bottle's request here: a thread keeps its last one bound, claims and all.
            environ = current_environ.get() or _flask_environ()
        self.environ: Mapping[str, Any] | None = environ

    def refuse(self, error: AuthError) -> Any:
        """The framework's own way of answering ``error``; raises it where no framework is known."""
        bottle_environ = None if self.wsgi or self.django is not None else _bottle_environ(self.environ)
        status, headers, body = render_error(self.environ or bottle_environ, error)
        if self.start_response is not None:
            self.start_response(status, list(headers))
            return [body]
        if self.django is not None:
            return django_response(status, headers, body)
        if _flask_environ() is not None:
            # An HTTPException carrying a response: Flask sends it unchanged, past the app's own
            # HTTPException handlers (it has no code for them to rewrite).
            from werkzeug.exceptions import HTTPException
            from werkzeug.wrappers import Response

            raise HTTPException(response=Response(body, status=status, headers=headers))
        if bottle_environ is not None:
            bottle = sys.modules["bottle"]
            response = bottle.HTTPResponse(body=body, status=status)
            for name, value in headers:
                response.set_header(name, value)
            raise response
        raise error


def django_response(status: str, headers: Iterable[tuple[str, str]], body: bytes) -> Any:
    """A Django ``HttpResponse`` with exactly this status, these headers and this body."""
    from django.http import HttpResponse

    response = HttpResponse(body, status=int(status.split(" ", 1)[0]))
    for name, value in headers:
        response[name] = value
    return response


def guard(
    view: F,
    decide: Callable[[_Call], AuthError | None],
    adecide: Callable[[_Call], Awaitable[AuthError | None]] | None = None,
) -> F:
    """Wrap ``view`` (sync or ``async def``) so that ``decide`` runs first; refusals are answered.

    :param adecide: what an ``async def`` view awaits instead of ``decide`` (when deciding may
        touch a database, say).
    """
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            call = _Call(args)
            error = decide(call) if adecide is None else await adecide(call)
            if error is not None:
                return call.refuse(error)
            return await view(*args, **kwargs)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _Call(args)
        error = decide(call)
        if error is not None:
            return call.refuse(error)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def requires(
    *scopes: str,
    any_scope: Iterable[str] | None = None,
    roles: Iterable[str] | None = None,
    any_role: Iterable[str] | None = None,
    roles_claim: str | tuple[str, ...] = "roles",
    check: ClaimsCheck | None = None,
    fresh: bool = False,
) -> Callable[[F], F]:
    """Require a valid token, and what else the view needs of it, for one view.

    Every condition given must hold:

    - ``*scopes``: all of these scopes;
    - ``any_scope=[...]``: at least one of these scopes;
    - ``roles=[...]`` / ``any_role=[...]``: all of / at least one of these roles, read from the
      list in ``roles_claim`` (``"roles"`` by default; ``"groups"``, ``"cognito:groups"``, or a
      tuple such as ``("realm_access", "roles")`` for a nested claim);
    - ``check=lambda claims: ...``: your own predicate; only ``True`` lets the request through
      (an exception in it refuses the request and is logged);
    - ``fresh=True``: a token from a password sign-in (``"fresh": true``, set by the login
      endpoint and :meth:`~jwt_wsgi.JWTMiddleware.issue_tokens`), not one from a refresh: for
      changing a password or an e-mail address. A non-fresh token gets 401
      ``fresh_token_required`` with ``error="invalid_token"``: ask for the password again.

    Scopes are read from ``scope`` (space-separated), ``scp`` and ``scopes`` (lists). No token:
    401 ``missing_token``; a condition unmet: 403 ``insufficient_scope``, both with the RFC 6750
    ``WWW-Authenticate`` challenge and in the middleware's ``error_format``. The arguments are
    checked here, when the view is decorated: a mistake fails at start-up.

    The refusal is answered in the view's own way: a WSGI callable ``(environ, start_response)``
    answers it directly; a Django view returns an ``HttpResponse``; a Flask view aborts with the
    response; a Bottle route raises ``bottle.HTTPResponse``. Called outside any of those it raises
    the :class:`~jwt_wsgi.errors.AuthError` (render it with :func:`render_error`).
    ``async def`` views are supported.

    .. code-block:: python

        @requires("admin")
        def admin_app(environ, start_response): ...

        @requires(any_role=["editor", "admin"], roles_claim="groups")
        def edit(request): ...
    """
    requirement = Requirement(scopes, any_scope=any_scope, roles=roles, any_role=any_role,
                              roles_claim=roles_claim, check=check, fresh=fresh)

    def decide(call: _Call) -> AuthError | None:
        return requirement.error(get_claims(call.environ) if call.environ is not None else None)

    def decorate(view: F) -> F:
        if isinstance(view, type):
            raise TypeError(
                "requires() decorates a view function or method, not a class; on a class-based "
                "Django view use django.utils.decorators.method_decorator(requires(...), name='dispatch')"
            )
        wrapper = guard(view, decide)
        wrapper.required_scopes = requirement.scopes  # type: ignore[attr-defined]
        wrapper.requirement = requirement  # type: ignore[attr-defined]
        return wrapper

    return decorate
