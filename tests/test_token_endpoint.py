"""login_path as an RFC 6749 token endpoint, refresh_path's RFC 6749 §6 form, revocation_path
(RFC 7009), and request bodies servers hand over oddly — through WSGI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jwt
import pytest
from werkzeug.test import Client

from .conftest import ADMIN_PASSWORD, ALICE_PASSWORD, SECRET, bearer, login, mint

LOGIN = "/auth/login"
REFRESH = "/auth/refresh"
REVOKE = "/auth/revoke"
# A spent refresh token presented again is reuse at once (refresh_reuse_interval, which gives a
# client's concurrent refreshes the same successor, is off).
IMMEDIATE_REUSE = {"refresh_reuse_interval": 0}


def claims_of(token: str) -> dict:
    return jwt.decode(token, SECRET, algorithms=["HS256"])


def password_grant(client, username="alice", password=ALICE_PASSWORD, as_json=False, **extra):
    fields = {"grant_type": "password", "username": username, "password": password, **extra}
    return client.post(LOGIN, json=fields) if as_json else client.post(LOGIN, data=fields)


# -- grant types ---------------------------------------------------------------------------------
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_password_grant(client, as_json):
    response = password_grant(client, as_json=as_json)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["token_type"] == "Bearer" and body["scope"] == "read"
    assert client.get("/api/me", headers=bearer(body["access_token"])).status_code == 200


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
@pytest.mark.parametrize("path", [LOGIN, REFRESH])
def test_refresh_token_grant(make_client, path, as_json):
    client = make_client(**IMMEDIATE_REUSE)
    tokens = login(client)
    fields = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    response = client.post(path, json=fields) if as_json else client.post(path, data=fields)
    assert response.status_code == 200, response.json
    rotated = response.json
    assert claims_of(rotated["refresh_token"])["fam"] == claims_of(tokens["refresh_token"])["fam"]
    assert client.get("/api/me", headers=bearer(rotated["access_token"])).status_code == 200
    # The spent token again: invalid_grant, and the family is gone (reuse detection still works).
    again = client.post(path, data=fields)
    assert again.status_code == 401
    assert again.json == {"error": "invalid_grant", "message": "The token has been revoked"}
    assert client.get("/api/me", headers=bearer(rotated["access_token"])).status_code == 401


@pytest.mark.parametrize(
    ("grant", "status", "code"),
    [
        pytest.param("foo", 400, "unsupported_grant_type", id="unknown"),
        pytest.param("urn:ietf:params:oauth:grant-type:device_code", 400, "unsupported_grant_type", id="device"),
        pytest.param("PASSWORD", 400, "unsupported_grant_type", id="case-matters"),
        pytest.param("client_credentials", 400, "unauthorized_client", id="client-credentials"),
        pytest.param("authorization_code", 400, "unauthorized_client", id="authorization-code"),
        pytest.param("", 400, "invalid_request", id="empty"),
    ],
)
def test_other_grant_types_get_no_tokens_even_with_a_good_password(client, grant, status, code):
    response = password_grant(client, grant_type=grant)
    assert response.status_code == status
    assert response.json["error"] == code and "access_token" not in response.json
    assert "WWW-Authenticate" not in response.headers


def test_grant_type_must_be_a_string(client):
    response = client.post(LOGIN, json={"grant_type": 1, "username": "alice", "password": ALICE_PASSWORD})
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


def test_refresh_path_takes_no_password_grant(client):
    response = password_grant(client, grant_type="password")
    assert response.status_code == 200
    at_refresh = client.post(REFRESH, data={"grant_type": "password", "username": "alice", "password": ALICE_PASSWORD})
    assert at_refresh.status_code == 400 and at_refresh.json["error"] == "unsupported_grant_type"


def test_refresh_grant_without_refresh_tokens_is_unsupported(make_client):
    client = make_client(refresh_path=None)
    tokens = login(client)
    assert "refresh_token" not in tokens
    response = client.post(LOGIN, data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]})
    assert response.status_code == 400 and response.json["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("fields", "status", "code"),
    [
        pytest.param({"grant_type": "refresh_token"}, 400, "invalid_request", id="missing"),
        pytest.param({"grant_type": "refresh_token", "refresh_token": "junk"}, 401, "invalid_grant", id="junk"),
        pytest.param({"grant_type": "password", "username": "alice"}, 400, "invalid_request", id="no-password"),
        pytest.param({"grant_type": "password", "username": "alice", "password": "wrong-one"}, 401, "invalid_grant",
                     id="wrong-password"),
        pytest.param({"grant_type": "password", "username": "nobody", "password": "wrong-one"}, 401,
                     "invalid_grant", id="unknown-user"),
    ],
)
def test_token_endpoint_errors_use_rfc6749_codes(client, fields, status, code):
    response = client.post(LOGIN, data=fields)
    assert (response.status_code, response.json["error"]) == (status, code)


def test_access_token_is_not_a_refresh_grant(client):
    tokens = login(client)
    response = client.post(LOGIN, data={"grant_type": "refresh_token", "refresh_token": tokens["access_token"]})
    assert response.status_code == 401 and response.json["error"] == "invalid_grant"


def test_expired_refresh_token_is_invalid_grant(client):
    expired = jwt.encode({"sub": "alice", "type": "refresh", "jti": "x1", "fam": "f1", "iat": 1, "exp": 2},
                         SECRET, algorithm="HS256")
    response = client.post(LOGIN, data={"grant_type": "refresh_token", "refresh_token": expired})
    assert response.status_code == 401
    assert response.json == {"error": "invalid_grant", "message": "The token has expired"}


@pytest.mark.parametrize("error_format", ["json", "problem", "article"])
def test_wrong_password_body_is_the_same_for_unknown_users_in_every_format(make_client, error_format):
    client = make_client(error_format=error_format, login_rate_limit="100/minute")
    wrong = password_grant(client, password="wrong-password")
    unknown = password_grant(client, username="ghost", password="wrong-password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.data == unknown.data
    assert sorted(wrong.headers.items()) == sorted(unknown.headers.items())
    expected = {
        "json": {"error": "invalid_grant", "message": "Invalid username or password"},
        "problem": {"type": "about:blank", "title": "Unauthorized", "status": 401,
                    "detail": "Invalid username or password", "code": "invalid_grant", "error": "invalid_grant"},
        "article": {"error": "3", "message": "An error occured"},  # the article's catch-all, spelling included
    }[error_format]
    assert json.loads(wrong.data) == expected


def test_problem_format_keeps_the_oauth_code_for_clients(make_client):
    client = make_client(error_format="problem")
    response = password_grant(client, grant_type="foo")
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json["error"] == "unsupported_grant_type" and response.json["status"] == 400


def test_article_login_answer_keeps_its_shape(make_client):
    client = make_client(error_format="article")
    body = password_grant(client).json
    assert body["error"] == "0" and body["message"] == "Successful"
    assert claims_of(body["token"])["sub"] == "alice" and body["Elapse_time"] == 1800


# -- scope ---------------------------------------------------------------------------------------
def test_requested_scope_narrows_the_grant(make_client):
    client = make_client(scopes={"/admin": ["admin"]})
    response = password_grant(client, username="root", password=ADMIN_PASSWORD, scope="read")
    assert response.status_code == 200
    assert "scope" not in response.json  # exactly as requested (RFC 6749 §5.1)
    assert claims_of(response.json["access_token"])["scope"] == "read"
    assert client.get("/admin/x", headers=bearer(response.json["access_token"])).status_code == 403
    # Refreshing, even with the users file granting "read admin", never widens it again.
    refreshed = client.post(LOGIN, data={"grant_type": "refresh_token",
                                         "refresh_token": response.json["refresh_token"]})
    assert refreshed.status_code == 200 and refreshed.json["scope"] == "read"
    assert claims_of(refreshed.json["access_token"])["scope"] == "read"
    wider = client.post(LOGIN, data={"grant_type": "refresh_token", "scope": "read admin",
                                     "refresh_token": refreshed.json["refresh_token"]})
    assert wider.status_code == 400 and wider.json["error"] == "invalid_scope"


def test_full_grant_reports_its_scope(make_client):
    client = make_client(scopes={"/admin": ["admin"]})
    body = password_grant(client, username="root", password=ADMIN_PASSWORD).json
    assert body["scope"] == "read admin"
    assert client.get("/admin/x", headers=bearer(body["access_token"])).status_code == 200


@pytest.mark.parametrize(
    ("username", "password", "scope"),
    [
        pytest.param("alice", ALICE_PASSWORD, "admin", id="not-granted"),
        pytest.param("root", ADMIN_PASSWORD, "read write", id="partly-granted"),
        pytest.param("root", ADMIN_PASSWORD, 'read "admin"', id="malformed"),
        pytest.param("root", ADMIN_PASSWORD, "read\\admin", id="backslash"),
    ],
)
def test_scope_beyond_the_grant_is_invalid_scope(client, username, password, scope):
    response = password_grant(client, username=username, password=password, scope=scope)
    assert response.status_code == 400 and response.json["error"] == "invalid_scope"
    assert "access_token" not in response.json


def test_non_string_scope_is_invalid_scope(client):
    response = client.post(LOGIN, json={"username": "root", "password": ADMIN_PASSWORD, "scope": ["read"]})
    assert response.status_code == 400 and response.json["error"] == "invalid_scope"


def test_empty_scope_asks_for_the_whole_grant(client):
    body = password_grant(client, username="root", password=ADMIN_PASSWORD, scope="").json
    assert body["scope"] == "read admin"


def test_refresh_scope_narrows_the_access_token_only(client):
    tokens = password_grant(client, username="root", password=ADMIN_PASSWORD).json
    narrowed = client.post(REFRESH, data={"grant_type": "refresh_token", "scope": "admin",
                                          "refresh_token": tokens["refresh_token"]})
    assert narrowed.status_code == 200 and "scope" not in narrowed.json
    assert claims_of(narrowed.json["access_token"])["scope"] == "admin"
    # RFC 6749 §6: the new refresh token keeps the scope of the grant.
    assert claims_of(narrowed.json["refresh_token"])["scope"] == "read admin"
    full = client.post(REFRESH, data={"grant_type": "refresh_token", "refresh_token": narrowed.json["refresh_token"]})
    assert full.json["scope"] == "read admin"


def test_invalid_scope_on_refresh_does_not_spend_the_token(client):
    tokens = login(client)
    refused = client.post(REFRESH, data={"grant_type": "refresh_token", "scope": "admin",
                                         "refresh_token": tokens["refresh_token"]})
    assert refused.status_code == 400 and refused.json["error"] == "invalid_scope"
    assert client.post(REFRESH, data={"refresh_token": tokens["refresh_token"]}).status_code == 200


def test_narrowed_grant_follows_the_users_file_downwards(client, users_file):
    tokens = password_grant(client, username="root", password=ADMIN_PASSWORD, scope="admin").json
    data = json.loads(Path(users_file).read_text())
    data["users"]["root"]["claims"] = {"scope": "read"}  # admin taken away
    Path(users_file).write_text(json.dumps(data) + "  ")
    refreshed = client.post(REFRESH, data={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200 and "scope" not in refreshed.json
    assert claims_of(refreshed.json["access_token"])["scope"] == ""


# -- revocation (RFC 7009) -----------------------------------------------------------------------
@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_revoking_an_access_token(client, as_json):
    tokens = login(client)
    fields = {"token": tokens["access_token"], "token_type_hint": "access_token"}
    response = client.post(REVOKE, json=fields) if as_json else client.post(REVOKE, data=fields)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401
    # Only that token: the grant's refresh token still works.
    assert client.post(REFRESH, data={"refresh_token": tokens["refresh_token"]}).status_code == 200


@pytest.mark.parametrize("hint", [None, "refresh_token", "access_token", "something_else"])
def test_revoking_a_refresh_token_revokes_its_family(client, hint):
    tokens = login(client)
    fields = {"token": tokens["refresh_token"]}
    if hint:
        fields["token_type_hint"] = hint  # a wrong or unknown hint still finds the token (§2.1)
    assert client.post(REVOKE, data=fields).status_code == 200
    assert client.post(REFRESH, data={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("junk", id="junk"),
        pytest.param("a.b.c", id="three-segments"),
        pytest.param(jwt.encode({"sub": "x", "exp": 2}, SECRET, algorithm="HS256"), id="expired"),
        pytest.param(jwt.encode({"sub": "x", "exp": 9999999999}, "another-secret-of-32-bytes-length!",
                                algorithm="HS256"), id="forged"),
        pytest.param("x" * 9000, id="oversized"),
    ],
)
def test_revocation_answers_200_whatever_the_token(client, token):
    response = client.post(REVOKE, data={"token": token})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        pytest.param({"json": {}}, 400, id="no-token"),
        pytest.param({"data": {"token_type_hint": "access_token"}}, 400, id="hint-only"),
        pytest.param({"json": {"token": 1}}, 400, id="not-a-string"),
        pytest.param({"json": {"token": "x", "token_type_hint": 2}}, 400, id="bad-hint"),
        pytest.param({"data": b"token=x", "content_type": "text/plain"}, 415, id="text-plain"),
    ],
)
def test_malformed_revocation_requests(client, kwargs, status):
    response = client.post(REVOKE, **kwargs)
    assert response.status_code == status
    assert response.json["error"] in ("invalid_request", "unsupported_media_type")


def test_a_valid_token_without_jti_cannot_be_revoked_and_says_so(client):
    """Another issuer's token without jti: no 200 after which it keeps working (RFC 7009 §2.2.1)."""
    token = mint(jti=None, type=None)
    response = client.post(REVOKE, data={"token": token})
    assert response.status_code == 400
    assert response.json == {"error": "unsupported_token_type",
                             "message": "This token carries no identifier (jti) to revoke it by"}
    assert client.get("/api/me", headers=bearer(token)).status_code == 200


def test_another_issuers_token_with_jti_is_revoked(client):
    token = mint(jti="their-jti-1", type=None)
    assert client.post(REVOKE, data={"token": token}).status_code == 200
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_revocation_is_post_only(client):
    assert client.get(REVOKE).status_code == 405


def test_revocation_path_none_is_not_mounted(make_client):
    client = make_client(revocation_path=None, protect=["/"])
    response = client.post(REVOKE, data={"token": "x"})
    assert response.status_code == 401 and response.json["error"] == "missing_token"


def test_revocation_reaches_every_middleware_sharing_the_store(make_client, tmp_path):
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    one, other = make_client(store=store), make_client(store=store)
    tokens = login(one)
    assert other.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 200
    assert other.post(REVOKE, data={"token": tokens["refresh_token"]}).status_code == 200
    assert one.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401


# -- bodies ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(f"username=alice&password={ALICE_PASSWORD}&", id="trailing-amp"),
        pytest.param(f"&username=alice&&password={ALICE_PASSWORD}", id="empty-pairs"),
        pytest.param(f"grant_type=password&username=alice&password={ALICE_PASSWORD}&&&", id="grant-and-amps"),
    ],
)
def test_forms_with_empty_pairs_are_read(client, body):
    response = client.post(LOGIN, data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200, response.json


def test_a_pair_without_equals_is_still_malformed(client):
    response = client.post(LOGIN, data=f"username=alice&password={ALICE_PASSWORD}&junk",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.json["error"] == "invalid_request"


@pytest.mark.parametrize("path", [LOGIN, REFRESH, REVOKE, "/auth/logout"])
def test_chunked_body_the_server_did_not_hand_over_is_411(client, path):
    """uWSGI's HTTP router: Transfer-Encoding chunked, no CONTENT_LENGTH, no wsgi.input_terminated."""
    body = io.BytesIO(f"username=alice&password={ALICE_PASSWORD}".encode())
    response = client.post(path, input_stream=body, content_type="application/x-www-form-urlencoded",
                           environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""})
    assert response.status_code == 411
    assert response.json == {"error": "length_required",
                             "message": "The request body could not be read: send it with a Content-Length"}


def test_chunked_body_a_server_terminates_is_read(client):
    body = io.BytesIO(f"username=alice&password={ALICE_PASSWORD}".encode())
    response = client.post(LOGIN, input_stream=body, content_type="application/x-www-form-urlencoded",
                           environ_overrides={"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": "",
                                              "wsgi.input_terminated": True})
    assert response.status_code == 200


def test_revocation_path_option_in_every_source():
    from jwt_wsgi import ConfigurationError, Settings

    assert Settings(secret=SECRET).revocation_path == "/auth/revoke"
    assert Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_REVOCATION_PATH": "none"}).revocation_path is None
    assert Settings.from_env({"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_REVOCATION_PATH": "/oauth/revoke"}
                             ).revocation_path == "/oauth/revoke"
    with pytest.raises(ConfigurationError, match="must differ"):
        Settings(secret=SECRET, revocation_path="/auth/logout")
    with pytest.raises(ConfigurationError, match="revocation_path"):
        Settings(secret=SECRET, revocation_path="auth/revoke")


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        pytest.param("application/x-www-form-urlencoded; charset=UTF-8", 200, id="upper-case"),
        pytest.param('application/x-www-form-urlencoded; charset="utf-8"', 200, id="quoted"),
        pytest.param("application/x-www-form-urlencoded;charset=utf8", 200, id="utf8-no-space"),
        pytest.param("Application/X-WWW-Form-URLEncoded", 200, id="type-case"),
        pytest.param("application/x-www-form-urlencoded; charset*=UTF-8''utf-8", 200, id="rfc2231"),
        pytest.param("application/x-www-form-urlencoded; charset=iso-8859-1", 415, id="latin-1"),
        pytest.param("application/x-www-form-urlencoded ; charset = utf-16", 415, id="unreadable-charset"),
        pytest.param('application/x-www-form-urlencoded; charset="utf-8', 415, id="open-quote"),
        pytest.param("application/x-www-form-urlencoded; charset=", 415, id="empty-charset"),
        pytest.param("application/x-www-form-urlencoded, application/json", 415, id="two-types"),
        pytest.param("application/x-www-form-urlencoded\x00", 415, id="nul"),
    ],
)
def test_content_type_and_charset_spellings(client, content_type, status):
    """The media type and its charset parameter, as Werkzeug parses them: UTF-8 or a 415, never a 500."""
    response = client.post(LOGIN, data=f"username=alice&password={ALICE_PASSWORD}", content_type=content_type)
    assert response.status_code == status, response.json
    if status == 415:
        assert response.json["error"] == "unsupported_media_type"



@pytest.mark.parametrize("length", ["abc", "-1", "1e3", "0x10"])
def test_a_content_length_that_is_not_a_number_is_400(client, length):
    """Werkzeug would read a bad Content-Length as 0 (an empty form); the HTTP layer says what is wrong.
    (Sent to the middleware itself: wsgiref's validator refuses such an environ before it.)"""
    raw = Client(client.middleware)
    response = raw.post(LOGIN, data=f"username=alice&password={ALICE_PASSWORD}",
                        content_type="application/x-www-form-urlencoded", environ_overrides={"CONTENT_LENGTH": length})
    assert response.status_code == 400
    assert response.json == {"error": "invalid_request", "message": "Content-Length is not a number"}
