"""jwt_wsgi.testing, the pytest plugin, tried on projects of its users with pytester.

The plugin is loaded the way users get it: through its ``pytest11`` entry point (the inner runs
list it among their plugins), never by ``-p`` or ``pytest_plugins``.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

SECRET = "test-only-secret-0123456789-abcdefghijklmnopqrstuvwxyz"  # TEST-ONLY

PLAIN_APP = '''
import json

from jwt_wsgi import JWTMiddleware, get_claims, requires


@requires("admin")
def admin(environ, start_response):
    return reply(start_response, {"admin": environ["REMOTE_USER"]})


def reply(start_response, data):
    body = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    if environ["PATH_INFO"] == "/api/admin":
        return admin(environ, start_response)
    return reply(start_response, {"user": environ.get("REMOTE_USER"), "claims": get_claims(environ)})


application = JWTMiddleware(app, secret="SECRET", protect=["/api"], OPTIONS)
'''



def app_source(options: str = "") -> str:
    return PLAIN_APP.replace("SECRET", SECRET).replace("OPTIONS", options)


CONFTEST = """
import pytest
from myapp import application


@pytest.fixture
def jwt_middleware():
    return application
"""


# Hypothesis's plugin costs seconds per inner run and has nothing to do here.
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    result = pytester.runpytest(*QUIET, *args)
    result.stdout.re_match_lines([r"plugins: .*jwt_wsgi-"])  # loaded from its entry point
    return result


def test_tokens_for_a_plain_wsgi_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=app_source())
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_api="""
        from werkzeug.test import Client
        from myapp import application


        def test_valid_and_scoped(jwt_tokens):
            client = Client(application)
            assert client.get("/api/me").status_code == 401
            me = client.get("/api/me", headers=jwt_tokens.headers(sub="bob", claims={"tenant": "acme"}))
            assert me.status_code == 200
            assert me.json["user"] == "bob" and me.json["claims"]["tenant"] == "acme"
            assert me.json["claims"]["type"] == "access" and me.json["claims"]["jti"]
            assert client.get("/api/admin", headers=jwt_tokens.headers(scopes=["read"])).status_code == 403
            admin = client.get("/api/admin", headers=jwt_tokens.headers(scopes=["read", "admin"]))
            assert admin.json == {"admin": "alice"}


        def test_refused_tokens(jwt_tokens):
            client = Client(application)
            expired = client.get("/api/me", headers=jwt_tokens.headers(jwt_tokens.expired(scopes=["admin"])))
            assert expired.status_code == 401 and expired.json["error"] == "token_expired"
            for token in (jwt_tokens.wrong_audience(), jwt_tokens.forged()):
                refused = client.get("/api/me", headers=jwt_tokens.headers(token))
                assert refused.status_code == 401 and refused.json["error"] == "invalid_token"


        def test_odd_tokens_through_claims(jwt_tokens):
            client = Client(application)
            short = jwt_tokens.token(ttl=-5)
            assert client.get("/api/me", headers=jwt_tokens.headers(short)).json["error"] == "token_expired"
            refresh = jwt_tokens.token(claims={"type": "refresh"})
            assert client.get("/api/me", headers=jwt_tokens.headers(refresh)).status_code == 401
    """)
    run(pytester).assert_outcomes(passed=3)


def test_settings_with_issuer_audience_and_an_asymmetric_key(pytester: pytest.Pytester) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (pytester.path / "private.pem").write_bytes(pem)
    (pytester.path / "public.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    pytester.makeconftest("""
        import pytest
        from jwt_wsgi import Settings


        @pytest.fixture
        def jwt_middleware():
            return Settings(algorithm="ES256", private_key="private.pem", public_key="public.pem",
                            issuer="https://auth.example", audience="https://api.example", protect=["/"])
    """)
    pytester.makepyfile(test_api="""
        import jwt
        from werkzeug.test import Client
        from jwt_wsgi import JWTMiddleware


        def hello(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [environ["REMOTE_USER"].encode()]


        def test_same_keys_issuer_and_audience(jwt_tokens, jwt_middleware):
            client = Client(JWTMiddleware(hello, jwt_middleware))
            token = jwt_tokens.token("carol")
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["iss"] == "https://auth.example" and claims["aud"] == "https://api.example"
            assert jwt.get_unverified_header(token)["alg"] == "ES256"
            assert client.get("/", headers=jwt_tokens.headers(token)).data == b"carol"
            for bad in (jwt_tokens.wrong_audience(), jwt_tokens.wrong_issuer(), jwt_tokens.forged(),
                        jwt_tokens.expired()):
                assert client.get("/", headers=jwt_tokens.headers(bad)).status_code == 401
    """)
    run(pytester).assert_outcomes(passed=1)


def test_custom_token_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=app_source('header_name="TOKEN"'))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_api="""
        from werkzeug.test import Client
        from myapp import application


        def test_raw_token_in_its_header(jwt_tokens):
            headers = jwt_tokens.headers()
            assert list(headers) == ["TOKEN"] and not headers["TOKEN"].startswith("Bearer")
            assert Client(application).get("/api/me", headers=headers).json["user"] == "alice"
    """)
    run(pytester).assert_outcomes(passed=1)


def test_flask_readme_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=f"""
        from flask import Flask
        from jwt_wsgi.contrib.flask import current_user, protect, requires

        app = Flask(__name__)
        protect(app, secret="{SECRET}", protect=["/api"])


        @app.get("/api/me")
        def me():
            return {{"user": current_user()}}


        @app.get("/api/admin")
        @requires("admin")
        def admin():
            return {{"admin": current_user()}}
    """)
    pytester.makeconftest("""
        import pytest
        from myapp import app


        @pytest.fixture
        def jwt_middleware():
            return app.wsgi_app      # the JWTMiddleware protect() put in front of Flask


        @pytest.fixture
        def app_tokens():
            from jwt_wsgi.testing import TokenFactory
            return TokenFactory(app)     # the Flask app itself will do
    """)
    pytester.makepyfile(test_api="""
        from myapp import app


        def test_me(jwt_tokens):
            client = app.test_client()
            assert client.get("/api/me").status_code == 401
            assert client.get("/api/me", headers=jwt_tokens.headers(sub="alice")).json == {"user": "alice"}
            assert client.get("/api/admin", headers=jwt_tokens.headers(scopes=["read"])).status_code == 403
            assert client.get("/api/admin", headers=jwt_tokens.headers(scopes=["admin"])).status_code == 200
            assert client.get("/api/me", headers=jwt_tokens.headers(jwt_tokens.expired())).status_code == 401


        def test_factory_from_the_flask_app(app_tokens):
            assert app.test_client().get("/api/me", headers=app_tokens.headers(sub="bob")).json == {"user": "bob"}
    """)
    run(pytester).assert_outcomes(passed=2)


@pytest.mark.slow
def test_django_readme_example(pytester: pytest.Pytester) -> None:
    # A subprocess: Django is configured once per process, and this one's belongs to test_django.
    pytester.mkpydir("mysite")
    pytester.makepyfile(**{
        "mysite/settings": """
            SECRET_KEY = "test-only-django-key-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789"
            ALLOWED_HOSTS = ["localhost"]
            INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
            MIDDLEWARE = ["jwt_wsgi.contrib.django.JWTUserMiddleware"]
            AUTHENTICATION_BACKENDS = ["jwt_wsgi.contrib.django.JWTBackend"]
            JWT_WSGI_CREATE_USERS = True
            ROOT_URLCONF = "mysite.urls"
            DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
            USE_TZ = True
        """,
        "mysite/urls": """
            from django.http import JsonResponse
            from django.urls import path
            from jwt_wsgi.contrib.django import requires


            def me(request):
                return JsonResponse({"user": request.user.get_username(), "id": request.user.pk})


            @requires("admin")
            def admin(request):
                return JsonResponse({"admin": request.user.get_username()})


            urlpatterns = [path("api/me", me), path("api/admin", admin)]
        """,
        "mysite/wsgi": f"""
            import os
            from django.core.wsgi import get_wsgi_application
            from jwt_wsgi import JWTMiddleware

            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
            application = JWTMiddleware(get_wsgi_application(), secret="{SECRET}", protect=["/api"])
        """,
    })
    pytester.makeconftest("""
        import pytest
        from django.core.management import call_command
        from mysite.wsgi import application


        @pytest.fixture
        def jwt_middleware():
            call_command("migrate", verbosity=0)   # pytest-django users: @pytest.mark.django_db instead
            return application
    """)
    pytester.makepyfile(test_api="""
        from werkzeug.test import Client
        from mysite.wsgi import application


        def test_me(jwt_tokens):
            client = Client(application)     # not django.test.Client: it would skip the middleware
            assert client.get("/api/me").status_code == 401
            me = client.get("/api/me", headers=jwt_tokens.headers(sub="alice"))
            assert me.json["user"] == "alice" and me.json["id"] == 1
            assert client.get("/api/admin", headers=jwt_tokens.headers(scopes=["read"])).status_code == 403
            assert client.get("/api/admin", headers=jwt_tokens.headers(scopes=["admin"])).json == {"admin": "alice"}
    """)
    result = pytester.runpytest_subprocess(*QUIET)
    result.stdout.re_match_lines([r"plugins: .*jwt_wsgi-"])
    result.assert_outcomes(passed=1)


def test_without_override_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_api="""
        def test_needs_tokens(jwt_tokens):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*override the jwt_middleware fixture*"])


@pytest.mark.parametrize(
    ("call", "words"),
    [
        pytest.param("jwt_tokens.token(scopes='admin')", "lists of names", id="scopes-string"),
        pytest.param("jwt_tokens.expired(ttl=5)", "unexpected keyword argument 'ttl'", id="unknown-option"),
        pytest.param("jwt_tokens.headers('x', sub='bob')", "not both", id="token-and-options"),
    ],
)
def test_misuse_is_a_clear_error(pytester: pytest.Pytester, call: str, words: str) -> None:
    pytester.makepyfile(myapp=app_source())
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_api=f"""
        def test_misuse(jwt_tokens):
            {call}
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*TypeError*{words}*"])


def test_a_verify_only_middleware_cannot_mint(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import pytest
        from jwt_wsgi import Settings


        @pytest.fixture
        def jwt_middleware():
            return Settings(jwks_url="https://idp.example/.well-known/jwks.json", algorithm="RS256",
                            issuer="https://idp.example", audience="my-api", protect=["/"])
    """)
    pytester.makepyfile(test_api="""
        def test_needs_tokens(jwt_tokens):
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*only verifies tokens*"])


def test_login_pairs_and_fresh_tokens(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(myapp=app_source())
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_api="""
        import jwt
        from werkzeug.test import Client
        from myapp import application


        def test_refresh_and_logout(jwt_tokens):
            client = Client(application)
            pair = jwt_tokens.login("bob", scopes=["admin"])
            assert pair["token_type"] == "Bearer" and pair["refresh_token"]
            assert client.get("/api/admin", headers=jwt_tokens.headers(pair["access_token"])).json == {"admin": "bob"}
            refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            assert refreshed.status_code == 200
            new = refreshed.json["access_token"]
            assert client.post("/auth/logout", headers=jwt_tokens.headers(new)).status_code == 204
            assert client.get("/api/me", headers=jwt_tokens.headers(new)).status_code == 401


        def test_fresh_or_not(jwt_tokens):
            assert jwt.decode(jwt_tokens.token(), options={"verify_signature": False})["fresh"] is True
            stale = jwt.decode(jwt_tokens.token(fresh=False, ttl=60), options={"verify_signature": False})
            assert stale["fresh"] is False and stale["exp"] - stale["iat"] <= 61 and stale["fam"]
    """)
    run(pytester).assert_outcomes(passed=2)
