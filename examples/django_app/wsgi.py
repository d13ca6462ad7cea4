"""The Django project behind jwt_wsgi: Django's WSGI application, wrapped.

    export JWT_WSGI_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(48))')
    export JWT_WSGI_USERS_FILE=users.json
    export DJANGO_DB=/var/lib/myapp/django.db
    python examples/django_app/manage.py migrate
    gunicorn -c examples/gunicorn.conf.py examples.django_app.wsgi:application
"""

import os
import sys

from django.core.wsgi import get_wsgi_application

from jwt_wsgi import ConfigurationError, JWTMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")

try:
    # Secret, users file and store come from JWT_WSGI_* variables; the shape of the site from here.
    application = JWTMiddleware.from_env(get_wsgi_application(), protect=["/api"], public=["/api/health"])
except ConfigurationError as exc:
    # Under gunicorn the app fails to load and the master stops, naming the missing option.
    if __name__ == "__main__":
        sys.exit(f"django_app: {exc}")
    raise
