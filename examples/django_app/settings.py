"""Settings of the example Django project: only what jwt_wsgi needs, plus the auth app's users.

The token side (secret, users file, store) comes from ``JWT_WSGI_*`` variables in wsgi.py;
``DJANGO_DB`` names the SQLite file of Django's own users (``manage.py migrate`` creates it).
"""

import os
import secrets
import tempfile

BASE_DIR = os.path.dirname(os.path.abspath(__file__))

# Nothing in this project signs with SECRET_KEY (no sessions, no forms, no password resets);
# a real project sets DJANGO_SECRET_KEY, the same in every process.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # request.user and request.jwt_claims from the token JWTMiddleware verified (see wsgi.py).
    "jwt_wsgi.contrib.django.JWTUserMiddleware",
]
AUTHENTICATION_BACKENDS = ["jwt_wsgi.contrib.django.JWTBackend"]
# The users file (jwt-wsgi users add) says who may sign in; Django gets a user row on first use.
JWT_WSGI_CREATE_USERS = True

ROOT_URLCONF = "examples.django_app.urls"
WSGI_APPLICATION = "examples.django_app.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", os.path.join(tempfile.gettempdir(), "jwt-wsgi-django-example.db")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
