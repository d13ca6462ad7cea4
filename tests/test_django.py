"""jwt_wsgi.contrib.django in-process: a Django project (this module is its URLconf) behind the middleware.

Django is configured once per process. The router differential tests (tests/routers/django_app.py)
configure it too, on first use, unless it already is: this module configures it at import, for
both, with their URLconf as ROOT_URLCONF; the handlers built here route with this module's own
(request.urlconf, set by their first middleware). examples/django_app runs under gunicorn only
(tests/test_example_django.py).
"""

from __future__ import annotations

import time

import django
import pytest
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="test-only-django-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",  # TEST-ONLY
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        MIDDLEWARE=[],
        AUTHENTICATION_BACKENDS=["jwt_wsgi.contrib.django.JWTBackend"],
        ROOT_URLCONF="tests.routers.django_app",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # TEST-ONLY: fast
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )
    django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.test import override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from django.utils.decorators import method_decorator  # noqa: E402
from django.views import View  # noqa: E402

import jwt_wsgi  # noqa: E402
from jwt_wsgi import InsufficientScope, JWTMiddleware, MissingToken  # noqa: E402
from jwt_wsgi.contrib.django import current_claims, requires  # noqa: E402

from .conftest import SECRET, BufferedClient, bearer, mint  # noqa: E402


# -- the project ---------------------------------------------------------------------------------
def describe(request):
    user = request.user
    return JsonResponse({"user": user.get_username(), "authenticated": user.is_authenticated, "id": user.pk,
                         "claims": request.jwt_claims, "same": current_claims(request) is request.jwt_claims})


@requires("admin")
def admin(request):
    return JsonResponse({"admin": request.user.get_username()})


@requires(any_role=["editor", "admin"], roles_claim="groups")
def editors(request, page):
    return JsonResponse({"page": page, "editor": request.user.get_username()})


@requires("read")
async def read_async(request):
    return JsonResponse({"async": True})


@method_decorator(requires("write"), name="dispatch")
class WriteView(View):
    def get(self, request):
        return JsonResponse({"cbv": request.user.get_username()})


class MethodView(View):
    @requires(check=lambda claims: claims.get("tenant") == "acme")
    def get(self, request):
        return JsonResponse({"tenant": "acme"})


def raises(request):
    if request.GET.get("why") == "scope":
        raise InsufficientScope(("billing",))
    if request.GET.get("why") == "token":
        raise MissingToken()
    raise ValueError("an application bug stays a 500")


@jwt_wsgi.requires("admin")  # the framework-neutral decorator, no Django glue
def generic_admin(request):
    return JsonResponse({"generic": True})


urlpatterns = [
    path("whoami", describe),
    path("open/admin", admin),
    path("open/generic", generic_admin),
    path("open/raises", raises),
    path("api/me", describe),
    path("api/admin", admin),
    path("api/pages/<int:page>", editors),
    path("api/async", read_async),
    path("api/write", WriteView.as_view()),
    path("api/tenant", MethodView.as_view()),
]


@pytest.fixture(scope="module")
def database():
    call_command("migrate", verbosity=0, interactive=False)


def this_urlconf(get_response):
    """Route with this module's urlpatterns, whatever ROOT_URLCONF says."""

    def middleware(request):
        request.urlconf = __name__
        return get_response(request)

    return middleware


MIDDLEWARE = [f"{__name__}.this_urlconf", "jwt_wsgi.contrib.django.JWTUserMiddleware"]


def handler():
    """Django's WSGI handler with this project's middleware (loaded when the handler is built)."""
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        return WSGIHandler()


@pytest.fixture
def make_django(database):
    def make(**options):
        options.setdefault("secret", SECRET)
        options.setdefault("protect", ["/api"])
        return BufferedClient(JWTMiddleware(handler(), **options))

    return make


@pytest.fixture
def dj(make_django):
    return make_django()


def user(name, **fields):
    return User.objects.create_user(name, password=None, **fields)


# -- request.user --------------------------------------------------------------------------------
def test_no_token_is_anonymous(dj):
    response = dj.get("/whoami")
    assert response.json == {"user": "", "authenticated": False, "id": None, "claims": None, "same": True}


def test_known_user_is_request_user(dj):
    known = user("dj-alice")
    response = dj.get("/api/me", headers=bearer(mint(sub="dj-alice", scope="read")))
    assert response.status_code == 200
    body = response.json
    assert (body["user"], body["authenticated"], body["id"]) == ("dj-alice", True, known.pk)
    assert body["claims"]["scope"] == "read" and body["same"] is True
    # Outside protect, a valid token still makes the user known (optional authentication).
    assert dj.get("/whoami", headers=bearer(mint(sub="dj-alice"))).json["id"] == known.pk


def test_unknown_subject_stays_anonymous_by_default(dj):
    response = dj.get("/api/me", headers=bearer(mint(sub="dj-nobody", scope="admin")))
    assert response.status_code == 200
    assert response.json["authenticated"] is False and response.json["claims"]["sub"] == "dj-nobody"
    assert not User.objects.filter(username="dj-nobody").exists()
    # requires() refuses a token whose subject has no Django user.
    refused = dj.get("/api/admin", headers=bearer(mint(sub="dj-nobody", scope="admin")))
    assert refused.status_code == 401
    assert refused.json == {"error": "user_not_found", "message": "The token's user is unknown or inactive"}
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]


def test_create_users_setting_creates_once(dj):
    token = bearer(mint(sub="dj-new", scope="read"))
    with override_settings(JWT_WSGI_CREATE_USERS=True):
        first = dj.get("/api/me", headers=token).json
        second = dj.get("/api/me", headers=token).json
    assert first["authenticated"] is True and first["id"] == second["id"]
    created = User.objects.get(username="dj-new")
    assert created.pk == first["id"]
    assert not created.has_usable_password()  # tokens only: no password can sign it in


def test_inactive_user_is_refused(dj):
    user("dj-gone", is_active=False)
    token = bearer(mint(sub="dj-gone", scope="admin"))
    assert dj.get("/api/me", headers=token).json["authenticated"] is False
    with override_settings(JWT_WSGI_CREATE_USERS=True):
        assert dj.get("/api/admin", headers=token).status_code == 401


# -- requires() on Django views ------------------------------------------------------------------------
def test_requires_answers_401_and_403_itself(dj):
    user("dj-root")
    user("dj-reader")
    missing = dj.get("/open/admin")  # not under protect: the view itself refuses
    assert missing.status_code == 401
    assert missing.json == {"error": "missing_token", "message": "Authentication required"}
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'
    assert missing.headers["Cache-Control"] == "no-store"

    forbidden = dj.get("/api/admin", headers=bearer(mint(sub="dj-reader", scope="read")))
    assert forbidden.status_code == 403
    assert forbidden.json["error"] == "insufficient_scope"
    assert forbidden.headers["WWW-Authenticate"] == (
        'Bearer realm="jwt_wsgi", error="insufficient_scope", '
        'error_description="The token does not grant the required scope", scope="admin"'
    )
    assert dj.get("/api/admin", headers=bearer(mint(sub="dj-root", scope="admin"))).json == {"admin": "dj-root"}


def test_requires_uses_the_middlewares_error_format(make_django):
    client = make_django(error_format="problem")
    response = client.get("/open/admin")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["code"] == "missing_token"


def test_roles_async_and_class_based_views(dj):
    user("dj-editor")
    editor = bearer(mint(sub="dj-editor", groups=["editor"], scope="read"))
    assert dj.get("/api/pages/3", headers=editor).json == {"page": 3, "editor": "dj-editor"}
    roles_claim = dj.get("/api/pages/3", headers=bearer(mint(sub="dj-editor", roles=["editor"])))
    assert roles_claim.status_code == 403  # read from groups only
    assert dj.get("/api/async", headers=editor).json == {"async": True}
    assert dj.get("/api/async", headers=bearer(mint(sub="dj-editor"))).status_code == 403
    assert dj.get("/api/write", headers=editor).status_code == 403
    assert dj.get("/api/write", headers=bearer(mint(sub="dj-editor", scope="write"))).json == {"cbv": "dj-editor"}
    assert dj.get("/api/tenant", headers=bearer(mint(sub="dj-editor", tenant="acme"))).json == {"tenant": "acme"}
    assert dj.get("/api/tenant", headers=editor).status_code == 403


def test_generic_requires_on_a_django_view_is_not_a_500(dj):
    # Before: InsufficientScope escaped the view and Django answered 500.
    missing = dj.get("/open/generic")
    assert missing.status_code == 401 and missing.json["error"] == "missing_token"
    forbidden = dj.get("/open/generic", headers=bearer(mint(scope="read")))
    assert forbidden.status_code == 403 and 'error="insufficient_scope"' in forbidden.headers["WWW-Authenticate"]
    assert dj.get("/open/generic", headers=bearer(mint(scope="admin"))).json == {"generic": True}


def test_expired_token_never_reaches_django(dj):
    now = int(time.time())
    response = dj.get("/api/me", headers=bearer(mint(sub="dj-alice", iat=now - 7200, exp=now - 3600)))
    assert response.status_code == 401 and response.json["error"] == "token_expired"


def test_middleware_without_backend_fails_at_start_up(database):
    with override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend"]):
        with pytest.raises(ImproperlyConfigured, match="JWTBackend"):
            handler()


def test_django_requires_rejects_a_class():
    with pytest.raises(TypeError, match="method_decorator"):
        requires("a")(WriteView)


def test_a_token_is_not_a_failed_sign_in(dj):
    # Lock-out tools count user_login_failed; an API call with an unknown subject is not one.
    from django.contrib.auth.signals import user_login_failed

    fired = []

    def receiver(**kwargs):
        fired.append(kwargs)

    user_login_failed.connect(receiver)
    try:
        assert dj.get("/api/me", headers=bearer(mint(sub="dj-stranger"))).json["authenticated"] is False
    finally:
        user_login_failed.disconnect(receiver)
    assert fired == []


def test_auth_errors_raised_by_a_view_are_answered(dj):
    scope = dj.get("/open/raises?why=scope")
    assert scope.status_code == 403 and scope.json["error"] == "insufficient_scope"
    assert scope.headers["WWW-Authenticate"].endswith('scope="billing"')
    token = dj.get("/open/raises?why=token")
    assert token.status_code == 401 and token.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'
    assert dj.get("/open/raises").status_code == 500  # the application's own exceptions are its own


# -- tokens from Python, user_loader, fresh tokens ----------------------------------------------------
MIDDLEWARE_FOR_VIEWS: list[JWTMiddleware] = []  # the project's JWTMiddleware, as wsgi.py's `application`


def custom_login(request):
    # A login view of the project's own: it checks the Django user's password, then mints our tokens.
    import json

    from django.contrib.auth import authenticate

    fields = json.loads(request.body)
    found = authenticate(request, username=fields.get("username"), password=fields.get("password"))
    if found is None:
        return JsonResponse({"error": "invalid_credentials"}, status=401)
    return JsonResponse(MIDDLEWARE_FOR_VIEWS[-1].issue_tokens(found.get_username(), {"scope": "read"}))


@requires(fresh=True)
def change_email(request):
    return JsonResponse({"changed": request.user.get_username()})


def loaded(request):
    from jwt_wsgi.contrib.django import current_user

    return JsonResponse({"loaded": current_user(request), "django": request.user.get_username()})


urlpatterns += [  # noqa: E305
    path("login", custom_login),
    path("api/email", change_email),
    path("api/loaded", loaded),
]


def test_a_custom_login_view_issues_our_tokens(make_django):
    from django.contrib.auth.hashers import make_password

    User.objects.create(username="dj-login", password=make_password("dj-password"))
    with override_settings(AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.ModelBackend",
                                                    "jwt_wsgi.contrib.django.JWTBackend"]):
        client = make_django()
        MIDDLEWARE_FOR_VIEWS.append(client.application)
        assert client.post("/login", json={"username": "dj-login", "password": "wrong"}).status_code == 401
        tokens = client.post("/login", json={"username": "dj-login", "password": "dj-password"}).json
    me = client.get("/api/me", headers=bearer(tokens["access_token"])).json
    assert me["user"] == "dj-login" and me["authenticated"] is True
    # A login is fresh; the token a refresh gives is not.
    assert client.post("/api/email", headers=bearer(tokens["access_token"])).json == {"changed": "dj-login"}
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json
    refused = client.post("/api/email", headers=bearer(refreshed["access_token"]))
    assert refused.status_code == 401 and refused.json["error"] == "fresh_token_required"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    # revoke_user, e.g. after a password change.
    client.application.revoke_user("dj-login")
    assert client.get("/api/me", headers=bearer(refreshed["access_token"])).status_code == 401


def test_current_user_is_what_the_user_loader_returned(make_django):
    user("dj-loaded")
    client = make_django(user_loader=lambda claims: {"account": claims["sub"].upper()}
                         if claims["sub"] != "dj-ghost" else None)
    body = client.get("/api/loaded", headers=bearer(mint(sub="dj-loaded"))).json
    assert body == {"loaded": {"account": "DJ-LOADED"}, "django": "dj-loaded"}
    ghost = client.get("/api/loaded", headers=bearer(mint(sub="dj-ghost")))
    assert ghost.status_code == 401 and ghost.json["error"] == "user_not_found"
    # Without a user_loader: the sub, as get_user() gives it.
    assert make_django().get("/api/loaded", headers=bearer(mint(sub="dj-loaded"))).json["loaded"] == "dj-loaded"


def test_one_user_not_found_error():
    from jwt_wsgi.contrib.django import UnknownUser

    assert UnknownUser is jwt_wsgi.UserNotFound
