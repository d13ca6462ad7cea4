"""What the application uses: :func:`get_claims` and the :func:`requires` decorator."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .errors import AuthError, InsufficientScope, MissingToken
from .middleware import CLAIMS_KEY, RENDERER_KEY, current_environ, token_scopes
from .responses import ErrorRenderer

F = TypeVar("F", bound=Callable[..., Any])

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


def check(environ: Mapping[str, Any] | None, scopes: Iterable[str]) -> AuthError | None:
    """The error a request without the given scopes deserves, or ``None`` when it has them."""
    claims = get_claims(environ) if environ is not None else None
    if claims is None:
        return MissingToken()
    required = tuple(scopes)
    if required and not token_scopes(claims).issuperset(required):
        return InsufficientScope(required)
    return None


def render_error(environ: Mapping[str, Any] | None, error: AuthError) -> tuple[str, list[tuple[str, str]], bytes]:
    """Status, headers and body for ``error``, in the format of the middleware that handled the request."""
    renderer = (environ or {}).get(RENDERER_KEY, _DEFAULT_RENDERER)
    return renderer.render(error)  # type: ignore[no-any-return]


def _is_environ(value: Any) -> bool:
    return isinstance(value, dict) and "wsgi.version" in value


def requires(*scopes: str) -> Callable[[F], F]:
    """Require a valid token (and every one of ``scopes``) for one view.

    Works on a WSGI callable ``(environ, start_response)`` — the error is answered directly, in
    the middleware's error format — and on any other view behind :class:`~jwt_wsgi.JWTMiddleware`,
    where it raises the :class:`~jwt_wsgi.errors.AuthError` (``jwt_wsgi.contrib.flask`` and
    ``jwt_wsgi.contrib.bottle`` turn it into the response).

    .. code-block:: python

        @requires("admin")
        def admin_app(environ, start_response): ...
    """
    for scope in scopes:
        if not isinstance(scope, str) or not scope or any(c.isspace() for c in scope):
            raise ValueError(f"requires(): {scope!r} is not a scope name")

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wsgi = len(args) >= 2 and _is_environ(args[0]) and callable(args[1])
            environ = args[0] if wsgi else current_environ.get()
            error = check(environ, scopes)
            if error is None:
                return view(*args, **kwargs)
            if not wsgi:
                raise error
            status, headers, body = render_error(environ, error)
            args[1](status, list(headers))
            return [body]

        wrapper.required_scopes = scopes  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
