"""Django wiring: ``request.user`` from the verified claims, and :func:`requires` for Django views.

The :class:`~jwt_wsgi.JWTMiddleware` wraps Django's WSGI application and verifies the token;
Django only reads what it verified (``environ["jwt_wsgi.claims"]``, which Django shows as
``request.META``). In ``settings.py``:

.. code-block:: python

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",  # optional (sessions)
        "jwt_wsgi.contrib.django.JWTUserMiddleware",                # after it
    ]
    AUTHENTICATION_BACKENDS = ["jwt_wsgi.contrib.django.JWTBackend"]
    JWT_WSGI_CREATE_USERS = False   # True: a Django user is created for a new token subject

In ``wsgi.py``:

.. code-block:: python

    application = JWTMiddleware.from_env(get_wsgi_application(), protect=["/api"])

In a view:

.. code-block:: python

    from jwt_wsgi.contrib.django import requires

    @requires("admin")
    def admin(request):
        return JsonResponse({"admin": request.user.get_username()})
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import SimpleLazyObject

from ..errors import AuthError, UserNotFound
from ..views import ClaimsCheck, Requirement, _Call, django_response, get_claims, get_user, guard, render_error

__all__ = ["JWTBackend", "JWTUserMiddleware", "UnknownUser", "current_claims", "current_user", "requires"]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

CLAIMS_ATTRIBUTE = "jwt_claims"  # request.jwt_claims, set by JWTUserMiddleware


#: 401 ``user_not_found``: a valid token whose subject has no active Django user. The same class
#: as :class:`jwt_wsgi.UserNotFound` (what a ``user_loader`` returning ``None`` gives); this name stays.
UnknownUser = UserNotFound


class JWTBackend(RemoteUserBackend):  # type: ignore[misc]
    """The Django user of a verified token: the one whose username is the ``sub`` claim.

    :class:`~django.contrib.auth.backends.RemoteUserBackend` semantics: an unknown subject gets
    a new user only when ``settings.JWT_WSGI_CREATE_USERS`` is true (default: false; the user
    is created with an unusable password), an inactive user is refused. Subclass it to pick
    another claim (:meth:`username`) or fill in new users from the claims (``configure_user``).

    Security: the claims were verified by the WSGI middleware before Django ran, and only
    ``JWTUserMiddleware`` passes them here; a username and password never reach this backend.
    """

    @property
    def create_unknown_user(self) -> bool:  # type: ignore[override]
        return bool(getattr(settings, "JWT_WSGI_CREATE_USERS", False))

    def username(self, claims: Mapping[str, Any]) -> str | None:
        """The username the claims name (``sub``), or ``None``."""
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else None

    def authenticate(self, request: Any, jwt_claims: Mapping[str, Any] | None = None) -> Any:
        if not isinstance(jwt_claims, Mapping):
            return None
        username = self.username(jwt_claims)
        if username is None:
            return None
        return super().authenticate(request, remote_user=username)

    def configure_user(self, request: Any, user: Any, created: bool = True) -> Any:
        if created and user is not None:
            user.set_unusable_password()  # it signs in with tokens only, never a password
            user.save(update_fields=["password"])
        return user


def _user(backend: JWTBackend, request: Any, claims: dict[str, Any]) -> Any:
    # The backend directly, not auth.authenticate(): a token is not a sign-in attempt, and an
    # unknown subject must not fire user_login_failed (lock-out counters listen to it).
    user = backend.authenticate(request, jwt_claims=claims)
    if user is None:
        log.info("token subject has no active Django user")
        return AnonymousUser()
    return user


class JWTUserMiddleware:
    """Sets ``request.user`` (loaded when first used) and ``request.jwt_claims`` from the token.

    With claims (a valid token, checked by :class:`~jwt_wsgi.JWTMiddleware`): the user
    :class:`JWTBackend` finds, or ``AnonymousUser`` for an unknown or inactive subject. Without:
    the user ``AuthenticationMiddleware`` set from the session, if any, else ``AnonymousUser``.
    Nothing is stored in a session. Use it instead of ``RemoteUserMiddleware``. An
    :class:`~jwt_wsgi.errors.AuthError` a view raises is answered as the middleware would.

    :raises ImproperlyConfigured: at start-up, when no :class:`JWTBackend` is in
        ``AUTHENTICATION_BACKENDS`` (every token would otherwise leave the user anonymous).
    """

    sync_capable: ClassVar[bool] = True
    async_capable: ClassVar[bool] = False

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        backends = [backend for backend in auth.get_backends() if isinstance(backend, JWTBackend)]
        if not backends:
            raise ImproperlyConfigured(
                "jwt_wsgi.contrib.django.JWTUserMiddleware needs 'jwt_wsgi.contrib.django.JWTBackend' "
                "(or a subclass) in AUTHENTICATION_BACKENDS"
            )
        self.backend: JWTBackend = backends[0]
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        claims = get_claims(request.META)
        setattr(request, CLAIMS_ATTRIBUTE, claims)
        if claims is not None:
            request.user = SimpleLazyObject(lambda: _user(self.backend, request, claims))
        elif not hasattr(request, "user"):
            request.user = AnonymousUser()
        return self.get_response(request)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """An :class:`AuthError` raised by a view (``raise InsufficientScope()``): its 401/403, not a 500."""
        if not isinstance(exception, AuthError):
            return None
        return django_response(*render_error(request.META, exception))


def current_claims(request: Any) -> dict[str, Any] | None:
    """The verified claims of ``request``, or ``None``."""
    return get_claims(request.META)


def current_user(request: Any) -> Any:
    """What the middleware's ``user_loader`` returned for the token of ``request``, or ``None``.

    Without a ``user_loader``, the ``sub`` claim (see :func:`jwt_wsgi.get_user`). This is not
    ``request.user`` (the Django user :class:`JWTBackend` finds): use that for Django's own
    permissions, this for an object of your own (a tenant, an account from another database).
    """
    return get_user(request.META)


def requires(
    *scopes: str,
    any_scope: Iterable[str] | None = None,
    roles: Iterable[str] | None = None,
    any_role: Iterable[str] | None = None,
    roles_claim: str | tuple[str, ...] = "roles",
    check: ClaimsCheck | None = None,
    fresh: bool = False,
) -> Callable[[F], F]:
    """:func:`jwt_wsgi.requires` for Django views: the refusal is the view's ``HttpResponse``.

    Same conditions and answers (401 without a token, 403 ``insufficient_scope``), plus, where
    :class:`JWTUserMiddleware` runs, 401 ``user_not_found`` when the token's subject has no
    active Django user: a deactivated user is refused even while their token is still valid.
    Works on function views, ``async def`` views and methods; on a class-based view use
    ``method_decorator(requires(...), name="dispatch")``.
    """
    requirement = Requirement(scopes, any_scope=any_scope, roles=roles, any_role=any_role,
                              roles_claim=roles_claim, check=check, fresh=fresh)

    def decide(call: _Call) -> AuthError | None:
        if call.django is None:
            raise TypeError("jwt_wsgi.contrib.django.requires() decorates Django views (a request argument)")
        error = requirement.error(get_claims(call.environ))
        if error is None and hasattr(call.django, CLAIMS_ATTRIBUTE) and not call.django.user.is_authenticated:
            error = UserNotFound()
        return error

    def decorate(view: F) -> F:
        if isinstance(view, type):
            raise TypeError("requires() decorates a view function or method, not a class; use "
                            "django.utils.decorators.method_decorator(requires(...), name='dispatch')")
        wrapper = guard(view, decide, sync_to_async(decide))  # request.user may need the database
        wrapper.required_scopes = requirement.scopes  # type: ignore[attr-defined]
        wrapper.requirement = requirement  # type: ignore[attr-defined]
        return wrapper

    return decorate
