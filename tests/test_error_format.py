"""error_format callables: the body alone (as before), or a whole response with a correct challenge."""

from __future__ import annotations

import logging

import flask
import pytest

from jwt_wsgi import (
    AuthError,
    ErrorResponse,
    ExpiredToken,
    InsufficientScope,
    InvalidToken,
    JWTMiddleware,
    MissingToken,
    UserNotFound,
    requires,
)
from jwt_wsgi.contrib import flask as jwt_flask

from .conftest import SECRET, BufferedClient, bearer, canary_app, mint


def client_with(error_format, **options):
    options.setdefault("protect", ["/api"])
    options.setdefault("scopes", {"/api/admin": ["admin"]})
    return BufferedClient(JWTMiddleware(canary_app, secret=SECRET, error_format=error_format, **options))


def test_a_mapping_is_the_body_with_our_status_and_headers():
    client = client_with(lambda error: {"oops": error.code})
    response = client.get("/api/me")
    assert response.status_code == 401 and response.json == {"oops": "missing_token"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="jwt_wsgi"'
    assert response.headers["Cache-Control"] == "no-store"


def shaped(error: AuthError):
    if isinstance(error, InsufficientScope):
        return ErrorResponse(404, {"detail": "Not Found"})  # hide that the resource exists
    if isinstance(error, ExpiredToken):
        return {"detail": "expired"}, 401, {"X-Reason": "expired"}
    if isinstance(error, MissingToken):
        return ErrorResponse(401, "sign in first", headers={"WWW-Authenticate": 'Bearer realm="mine"'})
    if isinstance(error, InvalidToken):
        return ErrorResponse(403, {"detail": error.message}, headers=[("X-Code", error.code)])
    return ErrorResponse(error.status, b"raw bytes", headers={"Content-Type": "application/x-custom"})


@pytest.mark.parametrize(
    ("headers", "path", "status", "content_type", "body", "challenge", "extra"),
    [
        pytest.param(bearer(mint(scope="read")), "/api/admin", 404, "application/json", b'{"detail":"Not Found"}',
                     None, {}, id="status-changed-no-challenge-on-404"),
        pytest.param(bearer(mint(exp=1_000_000)), "/api/me", 401, "application/json", b'{"detail":"expired"}',
                     'Bearer realm="jwt_wsgi", error="invalid_token", error_description="The token has expired"',
                     {"X-Reason": "expired"}, id="tuple-401-gets-our-challenge"),
        pytest.param({}, "/api/me", 401, "text/plain; charset=utf-8", b"sign in first", 'Bearer realm="mine"', {},
                     id="own-challenge-kept"),
        pytest.param(bearer("a.b.c"), "/api/me", 403, "application/json",
                     b'{"detail":"The token is invalid"}',
                     'Bearer realm="jwt_wsgi", error="invalid_token", error_description="The token is invalid"',
                     {"X-Code": "invalid_token"}, id="401-made-403-keeps-the-challenge"),
        pytest.param({"Authorization": "Bearer"}, "/api/me", 400, "application/x-custom", b"raw bytes",
                     'Bearer realm="jwt_wsgi", error="invalid_request", error_description="The Bearer credentials are '
                     'missing"', {}, id="bytes-and-own-content-type"),
    ],
)
def test_a_whole_response(headers, path, status, content_type, body, challenge, extra):
    response = client_with(shaped).get(path, headers=headers)
    assert response.status_code == status
    assert response.headers["Content-Type"] == content_type
    assert response.data == body and response.headers["Content-Length"] == str(len(body))
    assert response.headers.get("WWW-Authenticate") == challenge
    assert response.headers["Cache-Control"] == "no-store"
    for name, value in extra.items():
        assert response.headers[name] == value


def test_a_403_for_a_scope_keeps_its_scope_challenge():
    client = client_with(lambda error: ErrorResponse(error.status, {"e": error.code}))
    response = client.get("/api/admin", headers=bearer(mint(scope="read")))
    assert response.status_code == 403 and response.json == {"e": "insufficient_scope"}
    assert response.headers["WWW-Authenticate"].endswith('error="insufficient_scope", '
                                                         'error_description="The token does not grant the required '
                                                         'scope", scope="admin"')


def test_the_errors_own_headers_are_kept_unless_replaced():
    # A refused login 429 carries Retry-After; a custom shape keeps it, or replaces it.
    def shape(error):
        if error.status == 429:
            return ErrorResponse(429, {"slow": "down"}, headers={"Retry-After": "120"})
        return ErrorResponse(error.status, {"e": error.code})

    def authenticate(username, password):
        return None

    client = client_with(shape, authenticate=authenticate, login_rate_limit="1/minute")
    for _ in range(2):
        response = client.post("/auth/login", json={"username": "u", "password": "p"})
    assert response.status_code == 429 and response.headers.getlist("Retry-After") == ["120"]
    wrong = client.post("/auth/login", data="x", content_type="text/plain")
    assert wrong.status_code == 415 and wrong.json == {"e": "unsupported_media_type"}
    assert "WWW-Authenticate" not in wrong.headers
    assert client.put("/auth/login").headers["Allow"]  # 405 keeps its Allow


@pytest.mark.parametrize(
    "result",
    [
        pytest.param(None, id="none"),
        pytest.param("a string", id="string"),
        pytest.param(ErrorResponse(99, {}), id="status-too-low"),
        pytest.param(ErrorResponse(600, {}), id="status-too-high"),
        pytest.param(ErrorResponse("401", {}), id="status-not-an-int"),  # type: ignore[arg-type]
        pytest.param(ErrorResponse(401, {}, headers={"X-Bad": "a\r\nSet-Cookie: x=1"}), id="header-injection"),
        pytest.param(ErrorResponse(401, {}, headers=[("X-Bad", 1)]), id="header-not-a-string"),
        pytest.param(ErrorResponse(401, {"x": object()}), id="not-json"),
        pytest.param(({}, 401, {}, "extra"), id="four-tuple"),
    ],
)
def test_a_broken_shape_is_a_generic_500_logged(result, caplog):
    with caplog.at_level(logging.ERROR, logger="jwt_wsgi"):
        response = client_with(lambda error: result).get("/api/me")
    assert response.status_code == 500
    assert response.json == {"error": "internal_error", "message": "Internal server error"}
    assert "Set-Cookie" not in response.headers
    assert "error_format" in caplog.text


def test_a_callable_that_raises_is_a_generic_500():
    def boom(error):
        raise KeyError("no")

    assert client_with(boom).get("/api/me").status_code == 500


def test_requires_and_the_framework_glue_use_the_same_shape():
    @requires("admin")
    def admin(environ, start_response):
        start_response("200 OK", [])
        return [b""]

    client = BufferedClient(JWTMiddleware(admin, secret=SECRET, protect=["/nothing"], error_format=shaped))
    assert client.get("/", headers=bearer(mint(scope="read"))).status_code == 404

    app = flask.Flask("shapes")

    @app.get("/api/raise")
    def raises():
        raise UserNotFound()

    @app.get("/api/admin")
    @jwt_flask.requires("admin")
    def flask_admin():
        return {}

    jwt_flask.protect(app, secret=SECRET, protect=["/api"], error_format=shaped)
    flask_client = BufferedClient(app)
    raised = flask_client.get("/api/raise", headers=bearer(mint()))
    assert raised.status_code == 403 and raised.json == {"detail": UserNotFound.message}
    assert raised.headers["WWW-Authenticate"].startswith('Bearer realm="jwt_wsgi", error="invalid_token"')
    assert flask_client.get("/api/admin", headers=bearer(mint(scope="read"))).status_code == 404


def test_the_error_tree_is_exported():
    # Every AuthError subclass the package defines can be named from jwt_wsgi, for isinstance() checks.
    import jwt_wsgi.browser
    import jwt_wsgi.errors
    import jwt_wsgi.views

    defined = {cls for module in (jwt_wsgi.errors, jwt_wsgi.views, jwt_wsgi.browser) for cls in vars(module).values()
               if isinstance(cls, type) and issubclass(cls, AuthError) and cls.__module__ == module.__name__}
    exported = {getattr(jwt_wsgi, name) for name in jwt_wsgi.__all__}
    assert defined - exported == set()
    assert jwt_wsgi.ErrorResponse is ErrorResponse
