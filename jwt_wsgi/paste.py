"""PasteDeploy: ``[filter:jwt] use = egg:jwt_wsgi`` with the same option names as everywhere.

.. code-block:: ini

    [filter:jwt]
    use = egg:jwt_wsgi
    protect = /api, /admin
    users_file = %(here)s/users.json
    # the secret comes from JWT_WSGI_SECRET unless given here

Options from the section override ``JWT_WSGI_*`` environment variables; ``config = FILE``
reads a TOML file instead of the environment.
"""

from __future__ import annotations

from typing import Any

from .middleware import JWTMiddleware, WSGIApp
from .settings import Settings


def filter_app_factory(app: WSGIApp, global_conf: dict[str, Any], **local_conf: Any) -> JWTMiddleware:
    """The ``paste.filter_app_factory`` entry point."""
    config = local_conf.pop("config", None)
    if config:
        # A TOML file named by the section; the section's own keys override it.
        return JWTMiddleware(app, Settings.from_file(config, **local_conf))
    return JWTMiddleware(app, Settings.from_env(None, **local_conf))
