"""Options: validated at construction, the same names and meanings in kwargs, TOML, env, PasteDeploy."""

from __future__ import annotations

import dataclasses
import textwrap
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwt_wsgi import ConfigurationError, JWTMiddleware, Settings
from jwt_wsgi.settings import RateLimit

from .conftest import ALICE_PASSWORD, SECRET, canary_app


def build(**options):
    options.setdefault("secret", SECRET)
    return JWTMiddleware(canary_app, **options)


@pytest.mark.parametrize(
    ("options", "option"),
    [
        pytest.param({"protekt": ["/api"]}, "protekt", id="unknown-option"),
        pytest.param({"secret": "short"}, "secret", id="short-secret"),
        pytest.param({"secret": "x" * 31}, "secret", id="31-bytes"),
        pytest.param({"secret": "a" * 64}, "secret", id="low-entropy"),
        pytest.param({"algorithm": "HS512", "secret": SECRET[:40]}, "secret", id="hs512-needs-64"),
        pytest.param({"secret": None}, "secret", id="no-secret"),
        pytest.param({"algorithm": "none"}, "algorithm", id="alg-none"),
        pytest.param({"algorithm": "hs256"}, "algorithm", id="alg-case"),
        pytest.param({"algorithm": "RS256"}, "secret", id="rs256-with-secret"),
        pytest.param({"protect": ["api"]}, "protect", id="relative-protect"),
        pytest.param({"public": ["health"]}, "public", id="relative-public"),
        pytest.param({"protect": "/api\x00"}, "protect", id="nul-in-prefix"),
        pytest.param({"scopes": {"admin": ["x"]}}, "scopes", id="relative-scope-prefix"),
        pytest.param({"scopes": {"/admin": []}}, "scopes", id="empty-scopes"),
        pytest.param({"login_path": "login"}, "login_path", id="relative-login"),
        pytest.param({"login_path": "/x", "logout_path": "/x"}, "login_path", id="same-endpoint-paths"),
        pytest.param({"metrics_path": "metrics"}, "metrics_path", id="relative-metrics-path"),
        pytest.param({"metrics_path": "/x", "health_path": "/x"}, "login_path", id="metrics-path-is-health-path"),
        pytest.param({"metrics": "graphite"}, "metrics", id="unknown-metrics-hooks"),
        pytest.param({"access_ttl": "soon"}, "access_ttl", id="bad-duration"),
        pytest.param({"access_ttl": 0}, "access_ttl", id="zero-ttl"),
        pytest.param({"leeway": "1h"}, "leeway", id="huge-leeway"),
        pytest.param({"refresh_reuse_interval": "-1s"}, "refresh_reuse_interval", id="negative-reuse-interval"),
        pytest.param({"refresh_reuse_interval": "1h"}, "refresh_reuse_interval", id="huge-reuse-interval"),
        pytest.param({"token_sources": ["header", "body"]}, "token_sources", id="unknown-source"),
        pytest.param({"token_sources": []}, "token_sources", id="no-source"),
        pytest.param({"token_sources": ["query"]}, "query_param", id="query-without-param"),
        pytest.param({"query_param": "t"}, "query_param", id="param-without-query"),
        pytest.param({"header_name": "Bad Header"}, "header_name", id="bad-header-name"),
        pytest.param({"store": "mysql://x"}, "store", id="unknown-store"),
        pytest.param({"login_rate_limit": "lots"}, "login_rate_limit", id="bad-rate"),
        pytest.param({"error_format": "xml"}, "error_format", id="bad-error-format"),
        pytest.param({"authenticate": "no.such.module:f"}, "authenticate", id="bad-authenticate"),
        pytest.param({"users_file": "/nonexistent/users.json"}, "users_file", id="missing-users-file"),
        pytest.param({"max_token_size": 10}, "max_token_size", id="tiny-token-cap"),
        pytest.param({"realm": 'a"b'}, "realm", id="quote-in-realm"),
    ],
)
def test_bad_options_fail_at_construction(options, option):
    with pytest.raises(ValueError) as info:
        build(**options)
    assert isinstance(info.value, ConfigurationError)
    assert info.value.option == option
    assert option in str(info.value)


def test_unknown_option_suggests_the_right_name():
    with pytest.raises(ConfigurationError, match="did you mean 'protect'"):
        build(protekt=["/api"])


def test_weak_secret_allowed_only_when_asked():
    assert build(secret="short-test-secret", allow_weak_secret=True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param(90, 90.0, id="int"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(timedelta(minutes=2), 120.0, id="timedelta"),
        pytest.param("90s", 90.0, id="s"),
        pytest.param("30m", 1800.0, id="m"),
        pytest.param("12h", 43200.0, id="h"),
        pytest.param("14d", 1209600.0, id="d"),
        pytest.param("45", 45.0, id="bare-string"),
    ],
)
def test_durations(value, seconds):
    assert Settings(secret=SECRET, access_ttl=value).access_ttl == seconds


def test_defaults_match_the_contract():
    s = Settings(secret=SECRET)
    assert s.algorithm == "HS256"
    assert s.protect == ("/",)
    assert s.public == ()
    assert (s.login_path, s.refresh_path, s.logout_path) == ("/auth/login", "/auth/refresh", "/auth/logout")
    assert s.jwks_path == "/.well-known/jwks.json"
    assert s.access_ttl == 1800 and s.refresh_ttl == 14 * 86400 and s.leeway == 0
    assert s.token_sources == ("header",) and s.header_name == "Authorization" and s.query_param is None
    assert s.store == "memory://" and s.error_format == "json" and s.cors_preflight is True
    assert s.login_rate_limit == RateLimit(5, 60.0) and s.login_ip_rate_limit == RateLimit(20, 60.0)
    assert s.max_token_size == 8192


def test_secret_never_in_repr_or_public_view():
    s = Settings(secret=SECRET, store="redis://:hunter2-password@127.0.0.1:6379/0")
    assert SECRET not in repr(s)
    view = str(s.public_view())
    assert SECRET not in view and "hunter2" not in view and "<hidden>" in view


EXPECTED = {
    "protect": ("/api", "/admin"),
    "public": ("/api/health",),
    "access_ttl": 900.0,
    "leeway": 5.0,
    "cors_preflight": False,
    "scopes": {"/admin": ("admin",), "/api/write": ("write", "edit")},
    "login_path": None,
    "token_sources": ("header", "cookie"),
    "login_rate_limit": RateLimit(3, 600.0),
    "audience": ("svc-a", "svc-b"),
}


def _check(s: Settings) -> None:
    for name, value in EXPECTED.items():
        assert getattr(s, name) == value, name
    assert s.secret == SECRET.encode()


def test_kwargs_toml_env_and_paste_build_the_same_settings(tmp_path, monkeypatch):
    kwargs = Settings(
        secret=SECRET, protect=["/api", "/admin"], public=["/api/health"], access_ttl=timedelta(minutes=15),
        leeway=5, cors_preflight=False, scopes={"/admin": ["admin"], "/api/write": "write edit"}, login_path=None,
        token_sources=["header", "cookie"], login_rate_limit="3/10m", audience=["svc-a", "svc-b"],
    )
    _check(kwargs)

    toml = tmp_path / "jwt.toml"
    toml.write_text(textwrap.dedent(f"""
        [jwt_wsgi]
        secret = "{SECRET}"
        protect = ["/api", "/admin"]
        public = ["/api/health"]
        access_ttl = "15m"
        leeway = 5
        cors_preflight = false
        login_path = "none"
        token_sources = ["header", "cookie"]
        login_rate_limit = "3/10m"
        audience = ["svc-a", "svc-b"]
        [jwt_wsgi.scopes]
        "/admin" = ["admin"]
        "/api/write" = "write edit"
    """))
    _check(Settings.from_file(toml))
    top_level = tmp_path / "top.toml"
    top_level.write_text(toml.read_text().replace("[jwt_wsgi]\n", "").replace("[jwt_wsgi.scopes]", "[scopes]"))
    _check(Settings.from_file(top_level))

    env = {
        "JWT_WSGI_SECRET": SECRET, "JWT_WSGI_PROTECT": "/api, /admin", "JWT_WSGI_PUBLIC": "/api/health",
        "JWT_WSGI_ACCESS_TTL": "15m", "JWT_WSGI_LEEWAY": "5s", "JWT_WSGI_CORS_PREFLIGHT": "false",
        "JWT_WSGI_SCOPES": "/admin=admin,/api/write=write edit", "JWT_WSGI_LOGIN_PATH": "",
        "JWT_WSGI_TOKEN_SOURCES": "header,cookie", "JWT_WSGI_LOGIN_RATE_LIMIT": "3/10m",
        "JWT_WSGI_AUDIENCE": "svc-a,svc-b", "UNRELATED": "x",
    }
    _check(Settings.from_env(env))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _check(JWTMiddleware.from_env(canary_app).settings)

    from jwt_wsgi.paste import filter_app_factory

    for key in env:
        monkeypatch.delenv(key)
    paste = filter_app_factory(canary_app, {}, **{k[len("JWT_WSGI_"):].lower(): v for k, v in env.items()
                                                   if k.startswith("JWT_WSGI_")})
    _check(paste.settings)


def test_env_unknown_variable_is_an_error():
    with pytest.raises(ConfigurationError, match="JWT_WSGI_PROTECTS"):
        Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_PROTECTS": "/api"})


def test_toml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("protect = [")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        Settings.from_file(bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        Settings.from_file(tmp_path / "missing.toml")


def test_relative_paths_in_toml_resolve_against_the_file(tmp_path, users_file):
    import shutil

    shutil.copy(users_file, tmp_path / "u.json")
    conf = tmp_path / "c.toml"
    conf.write_text(f'secret = "{SECRET}"\nusers_file = "u.json"\n')
    assert Settings.from_file(conf).users_file == str(tmp_path / "u.json")


# -- asymmetric keys ------------------------------------------------------------------------
def _write_pair(tmp_path, private_key, name="k"):
    priv = tmp_path / f"{name}.pem"
    pub = tmp_path / f"{name}.pub.pem"
    priv.write_bytes(private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    pub.write_bytes(private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(priv), str(pub)


def test_asymmetric_key_checks(tmp_path):
    rsa_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa_ok = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_256 = ec.generate_private_key(ec.SECP256R1())
    small_priv, _ = _write_pair(tmp_path, rsa_small, "small")
    ok_priv, ok_pub = _write_pair(tmp_path, rsa_ok, "ok")
    ec_priv, ec_pub = _write_pair(tmp_path, ec_256, "ec")

    with pytest.raises(ConfigurationError, match="2048"):
        JWTMiddleware(canary_app, algorithm="RS256", private_key=small_priv)
    with pytest.raises(ConfigurationError, match="does not belong"):
        JWTMiddleware(canary_app, algorithm="RS256", private_key=ok_priv,
                      public_key=_write_pair(tmp_path, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                             "other")[1])
    with pytest.raises(ConfigurationError, match="needs an RSA key"):
        JWTMiddleware(canary_app, algorithm="RS256", private_key=ec_priv)
    with pytest.raises(ConfigurationError, match="secp384r1"):
        JWTMiddleware(canary_app, algorithm="ES384", public_key=ec_pub)
    with pytest.raises(ConfigurationError, match="public_key"):
        JWTMiddleware(canary_app, algorithm="ES256")
    with pytest.raises(ConfigurationError, match="not a PEM"):
        JWTMiddleware(canary_app, algorithm="ES256", public_key=ok_priv)
    with pytest.raises(ConfigurationError, match="cannot read"):
        JWTMiddleware(canary_app, algorithm="ES256", public_key=str(tmp_path / "nope.pem"))
    with pytest.raises(ConfigurationError, match="HS256 signs with a shared secret"):
        JWTMiddleware(canary_app, secret=SECRET, public_key=ok_pub)
    assert JWTMiddleware(canary_app, algorithm="RS256", private_key=ok_priv, public_key=ok_pub)
    assert JWTMiddleware(canary_app, algorithm="ES256", public_key=ec_pub, login_path=None)


def test_encrypted_private_key_needs_its_passphrase(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"test-only-passphrase")))
    with pytest.raises(ConfigurationError, match="private_key_passphrase"):
        JWTMiddleware(canary_app, algorithm="ES256", private_key=str(path))
    with pytest.raises(ConfigurationError, match="passphrase is wrong"):
        JWTMiddleware(canary_app, algorithm="ES256", private_key=str(path), private_key_passphrase="nope")
    assert JWTMiddleware(canary_app, algorithm="ES256", private_key=str(path),
                         private_key_passphrase="test-only-passphrase")


# -- settings are values: converted once, immutable, hashable ----------------------------------
def test_settings_are_hashable_and_equal_settings_hash_equal():
    from_kwargs = Settings(secret=SECRET, scopes={"/admin": ["admin"]}, verify_claim_headers="sub=X-User",
                           audience=["a", "b"], keys=None, login_rate_limit="3/10m")
    from_env = Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_SCOPES": "/admin=admin",
                                  "JWT_WSGI_VERIFY_CLAIM_HEADERS": "sub=X-User", "JWT_WSGI_AUDIENCE": "a,b",
                                  "JWT_WSGI_LOGIN_RATE_LIMIT": "3/10m"})
    assert from_kwargs == from_env and hash(from_kwargs) == hash(from_env)
    assert {from_kwargs: "one"}[from_env] == "one"
    assert len({from_kwargs, from_env, dataclasses.replace(from_env, leeway=5)}) == 2


def test_scopes_and_claim_headers_cannot_be_changed():
    given = {"/admin": ["admin"]}
    s = Settings(secret=SECRET, scopes=given)
    given["/admin"].append("root")
    given["/other"] = ["x"]
    assert s.scopes == {"/admin": ("admin",)}  # reads (and compares) like a dict
    with pytest.raises(TypeError):
        s.scopes["/other"] = ("x",)  # type: ignore[index]
    with pytest.raises(TypeError):
        del s.scopes["/admin"]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        s.verify_claim_headers["email"] = "X-Email"  # type: ignore[index]
    with pytest.raises(AttributeError):
        s.scopes.update({"/other": ("x",)})  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        s.scopes._items = {}  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.scopes = {}  # type: ignore[misc]
    assert s.scopes == {"/admin": ("admin",)} and dict(s.verify_claim_headers) == {"sub": "X-Auth-User"}


def test_replace_converts_only_what_it_changes(tmp_path):
    template = tmp_path / "templates" / "login.html"
    conf = tmp_path / "jwt.toml"
    conf.write_text('login_template = "templates/login.html"\nscopes = "/admin=admin"\n'
                    'keys = [{kid = "k1", secret = "' + SECRET + '", active = true}]\n')
    built = Settings.from_file(conf)
    assert built.login_template == str(template)  # resolved against the file, once
    changed = dataclasses.replace(built, leeway="5s", login_template="other.html")
    assert changed.leeway == 5.0 and changed.login_template == "other.html"  # converted, and no file to resolve against
    # Unchanged values are the very objects the first conversion made: no converter ran on them again.
    for name in ("keys", "scopes", "verify_claim_headers", "login_rate_limit", "protect"):
        assert getattr(changed, name) is getattr(built, name), name
    assert dataclasses.replace(built) == built and dataclasses.replace(changed, leeway=0) != built
    with pytest.raises(ConfigurationError, match="leeway"):
        dataclasses.replace(built, leeway="soon")  # what replace changes is still converted and validated


@pytest.mark.parametrize(
    ("written", "value"),
    [("auto", None), ("AUTO", None), (None, None), ("true", True), ("True", True), ("1", True), ("yes", True),
     (True, True), ("false", False), ("FALSE", False), ("0", False), ("no", False), (False, False)],
)
def test_cookie_secure_spellings(written, value, tmp_path):
    assert Settings(secret=SECRET, cookie_secure=written).cookie_secure is value
    if isinstance(written, str):
        assert Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_COOKIE_SECURE": written}).cookie_secure is value
        conf = tmp_path / "jwt.toml"
        conf.write_text(f'secret = "{SECRET}"\ncookie_secure = "{written}"\n')
        assert Settings.from_file(conf).cookie_secure is value
    assert Settings(secret=SECRET, cookie_secure=written).public_view()["cookie_secure"] == (
        "auto" if value is None else value)


@pytest.mark.parametrize("written", ["sometimes", "https", "", 2])
def test_cookie_secure_refuses_other_values(written):
    with pytest.raises(ConfigurationError, match="expected auto, true or false") as info:
        Settings(secret=SECRET, cookie_secure=written)
    assert info.value.option == "cookie_secure"


def test_cookie_secure_decides_the_sign_in_page_cookie(make_client):
    # auto: Secure (and __Host-) exactly when the request came over HTTPS; false: never; true: always.
    def csrf_cookie(client, scheme):
        page = client.get("/auth/login", headers={"Accept": "text/html"}, environ_overrides={"wsgi.url_scheme": scheme})
        assert page.status_code == 200
        (cookie,) = [c for c in page.headers.getlist("Set-Cookie") if "login_csrf=" in c]
        return cookie.split("=")[0], "; Secure" in cookie

    def client(secure):
        return make_client(token_sources=["header", "cookie"], cookie_secure=secure)

    assert csrf_cookie(client("auto"), "https") == ("__Host-login_csrf", True)
    assert csrf_cookie(client("auto"), "http") == ("login_csrf", False)
    assert csrf_cookie(client("false"), "https") == ("login_csrf", False)
    assert csrf_cookie(client("true"), "http") == ("__Host-login_csrf", True)


def test_an_unsupported_store_scheme_is_refused_by_the_middleware():
    # The settings only ask for a URL; which schemes exist is for the stores to say, when the
    # middleware opens the store (the bad-options table above checks the option it names).
    assert Settings(secret=SECRET, store="mysql://x").store == "mysql://x"
    with pytest.raises(ConfigurationError, match="unsupported store URL") as info:
        build(store="mysql://x")
    assert info.value.option == "store"
    with pytest.raises(ConfigurationError, match="unsupported store URL") as info:
        Settings(secret=SECRET, store="memory")
    assert info.value.option == "store"


def test_the_settings_package_imports_nothing_above_it():
    from tests.test_architecture import import_graph

    graph = import_graph()
    below = {"jwt_wsgi.errors", "jwt_wsgi.jose", "jwt_wsgi.net"}
    modules = [name for name in graph if name.startswith("jwt_wsgi.settings.")]
    assert {"jwt_wsgi.settings.convert", "jwt_wsgi.settings.model", "jwt_wsgi.settings.loading"} <= set(modules)
    for name in modules:
        assert graph[name] <= below | set(modules), name
    assert "jwt_wsgi.settings.loading" in graph["jwt_wsgi.browser"] and "jwt_wsgi.settings.loading" in graph[
        "jwt_wsgi.serving"]


def test_every_name_imported_from_jwt_wsgi_settings_is_still_there():
    import jwt_wsgi.settings as package

    for name in ("Settings", "RateLimit", "parse_duration", "KeySpec", "Provider", "FrozenMap", "SECRET_OPTIONS",
                 "PATH_OPTIONS", "ENV_PREFIX", "MAX_LEEWAY", "TOKEN_SOURCES", "ERROR_FORMATS", "ACCESS_TOKEN_FORMATS",
                 "MAX_REFRESH_REUSE_INTERVAL"):
        assert hasattr(package, name), name
    assert set(package.__all__) <= set(dir(package))


def test_every_option_has_one_converter():
    # A value is converted once, by its option's converter: an option without one could not be set.
    from jwt_wsgi.settings.model import CONVERTERS

    assert set(CONVERTERS) == set(Settings.option_names())


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("authenticate", "tests.conftest:no_such_function", "has no attribute 'no_such_function'"),
        ("authenticate", "tests.conftest:SECRET", "is not callable"),
        ("user_loader", "no_such_module_anywhere:f", "cannot import"),
        ("error_format", "tests.conftest:ALICE_PASSWORD", "is not callable"),
        ("user_loader", "not a module:f", "expected 'package.module:attribute'"),
    ],
)
def test_objects_named_module_attribute_fail_with_the_option(option, value, match):
    with pytest.raises(ConfigurationError, match=match) as info:
        Settings(secret=SECRET, **{option: value})
    assert info.value.option == option
    assert ALICE_PASSWORD not in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("tiny_app:no_such_app", "has no attribute 'no_such_app'"),
        ("tiny_app", "has no attribute 'application'"),  # :application when no attribute is named
        ("tiny_app:NOT_AN_APP", "is not a WSGI callable"),
        ("tiny_app.py:app", "cannot import"),
        ("tiny app:app", "expected 'package.module:attribute'"),
    ],
)
def test_serve_names_its_app_as_the_options_name_objects(tmp_path, target, match):
    # jwt-wsgi serve reads MODULE:APP with the helper the options use: one line, no traceback.
    from tests.test_cli import assert_user_error, run

    (tmp_path / "tiny_app.py").write_text("NOT_AN_APP = 1\n\ndef app(environ, start_response):\n    return []\n")
    line = assert_user_error(run("serve", target, "--workers", "1", cwd=tmp_path), "MODULE:APP")
    assert match in line
