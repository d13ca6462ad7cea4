"""Django: ``django.urls`` (``<str:name>``, ``<path:rest>``) behind ``get_wsgi_application()``.

Django is configured in-process, once: :func:`application` calls ``settings.configure`` the first
time and returns the same handler afterwards (a second ``configure`` would raise). This module is
its own ``ROOT_URLCONF``.
"""

from __future__ import annotations

import logging
from typing import Any

from tests.routers import answer, protect

_HANDLER: Any = None


def _reply(route: str) -> Any:
    from django.http import HttpResponse

    def view(request: Any, **kwargs: str) -> Any:
        arg = next(iter(kwargs.values()), "")
        return HttpResponse(answer(route, arg, request.META.get("REMOTE_USER")), content_type="application/json")

    return view


def _urlpatterns() -> list[Any]:
    from django.urls import path

    return [
        path("api/users/<str:name>", _reply("users")),
        path("api/<path:rest>", _reply("api")),
        path("admin/<path:rest>", _reply("admin")),
        path("public", _reply("public")),
        path("public/<path:rest>", _reply("public")),
    ]


def __getattr__(name: str) -> Any:
    if name == "urlpatterns":  # read by Django's resolver, after settings are configured
        return _urlpatterns()
    raise AttributeError(name)


def application() -> Any:
    """Django's WSGI handler for this URLconf (configured on first use, then shared)."""
    global _HANDLER
    if _HANDLER is None:
        from django.conf import settings

        if not settings.configured:
            settings.configure(
                DEBUG=False,
                SECRET_KEY="test-only-django-secret-key-not-used-for-anything-0123456789",  # noqa: S106
                ALLOWED_HOSTS=["*"],
                ROOT_URLCONF=__name__,
                MIDDLEWARE=[],
                INSTALLED_APPS=[],
                USE_TZ=True,
                LOGGING_CONFIG=None,
            )
        from django.core.wsgi import get_wsgi_application

        _HANDLER = get_wsgi_application()
        # Django logs every 404 as a warning; keep errors (a 500's traceback) only.
        logging.getLogger("django.request").setLevel(logging.ERROR)
    return _HANDLER


def stack(config: str) -> object:
    return protect(application(), config)
