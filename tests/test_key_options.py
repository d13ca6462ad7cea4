"""Key-related options: ``leeway`` up to 5 minutes, binary secrets written as ``base64:`` /
``base64url:`` text in every option source, one-line errors for undecodable environment values,
and RFC 9068 access tokens (``access_token_format = "at+jwt"``) with explicit typing checks.
"""

from __future__ import annotations

import base64
import json
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from jwt_wsgi import ConfigurationError, Settings
from jwt_wsgi.paste import filter_app_factory
from tests.conftest import HS, SECRET, canary_app, claims, login
from tests.test_cli import assert_user_error, ok, run
from tests.test_keys import forge, status, write_pair

# TEST-ONLY binary secret: 40 bytes, not UTF-8 (no NUL: it must fit in an environment variable),
# whose base64 needs '+' and '/' (base64url: '-' and '_').
RAW = bytes([0xFF, 0xFB, 0xEF, 0xBE, 0x07, 0x80]) + bytes(range(0x41, 0x5B)) + bytes(
    [0xFC, 0xFD, 0xFE, 0xC0, 0x01, 0xF8, 0x3E, 0x3F])
STANDARD = "base64:" + base64.b64encode(RAW).decode()
URLSAFE = "base64url:" + base64.urlsafe_b64encode(RAW).decode().rstrip("=")


# -- leeway -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [60, "60s", "5m", 300, timedelta(minutes=5), "2.5m"])
def test_leeway_up_to_five_minutes_is_accepted(value):
    assert Settings(secret=SECRET, leeway=value).leeway <= 300


@pytest.mark.parametrize("value", [301, "6m", "1h", timedelta(minutes=5, seconds=1)])
def test_leeway_beyond_five_minutes_is_refused_with_the_limit(value):
    with pytest.raises(ConfigurationError, match=r"at most 300 s \(5m\)") as info:
        Settings(secret=SECRET, leeway=value)
    assert info.value.option == "leeway"


def test_a_minute_of_leeway_is_a_minute(make_client):
    client = make_client(leeway="60s")
    now = int(time.time())
    assert status(client, jwt.encode(claims(exp=now - 45), SECRET, algorithm="HS256")) == 200
    assert status(client, jwt.encode(claims(iat=now + 45, nbf=now + 45), SECRET, algorithm="HS256")) == 200
    assert status(client, jwt.encode(claims(exp=now - 120), SECRET, algorithm="HS256")) == 401
    assert status(client, jwt.encode(claims(nbf=now + 120), SECRET, algorithm="HS256")) == 401


# -- binary secrets ----------------------------------------------------------------------------
@pytest.mark.parametrize("text", [STANDARD, URLSAFE, STANDARD.rstrip("="), "base64: " + STANDARD[7:] + " "],
                         ids=["base64", "base64url-unpadded", "base64-unpadded", "surrounding-spaces"])
def test_base64_secret_forms_give_the_bytes(text):
    assert Settings(secret=text).secret == RAW
    assert Settings(keys=[{"kid": "k", "secret": text, "active": True}]).keys[0].secret == RAW


def test_a_base64_secret_means_the_same_in_every_option_source(tmp_path, make_client):
    token = jwt.encode(claims(), RAW, algorithm="HS256")
    toml = tmp_path / "jwt.toml"
    toml.write_text(f'secret = "{URLSAFE}"\n')
    built = [
        Settings(secret=STANDARD),
        Settings.from_env({"JWT_WSGI_SECRET": STANDARD}),
        Settings.from_file(toml),
        filter_app_factory(canary_app, {}, secret=URLSAFE, protect="/api").settings,
    ]
    assert {s.secret for s in built} == {RAW}
    client = make_client(secret=URLSAFE)
    assert status(client, token) == 200
    assert jwt.decode(login(client)["access_token"], RAW, algorithms=["HS256"])["sub"] == "alice"


@pytest.mark.parametrize(
    "text, match",
    [
        pytest.param("base64:" + STANDARD[7:].replace("A", "-", 1), "not valid base64 after 'base64:'", id="url-char"),
        pytest.param("base64url:" + URLSAFE[10:] + "/", "not valid base64url", id="slash-in-url"),
        pytest.param("base64:" + STANDARD[7:-2] + "*", "not valid base64", id="junk"),
        pytest.param("base64:QUJD" + "Q", "not valid base64", id="impossible-length"),
        pytest.param("base64:", "not valid base64", id="empty"),
        pytest.param("base64:" + base64.b64encode(b"short-binary\xff").decode(), "at least 32 bytes", id="short"),
    ],
)
def test_malformed_base64_secrets_are_refused_without_quoting_them(text, match):
    with pytest.raises(ConfigurationError, match=match) as info:
        Settings(secret=text)
    assert info.value.option == "secret"
    assert not text[8:] or text[8:] not in str(info.value)


@pytest.mark.slow
def test_cli_with_a_base64_secret_in_the_environment(tmp_path: Path) -> None:
    token = ok(run("token", "--sub", "bob", cwd=tmp_path, secret=URLSAFE)).stdout.strip()
    assert jwt.decode(token, RAW, algorithms=["HS256"])["sub"] == "bob"
    checked = ok(run("check", cwd=tmp_path, secret=STANDARD))
    assert json.loads(checked.stdout)["secret"] == "<hidden>"
    assert STANDARD[7:] not in checked.stdout + checked.stderr


@pytest.mark.slow
def test_cli_refuses_undecodable_environment_values_in_one_line(tmp_path: Path) -> None:
    # A variable holding bytes that are not UTF-8 reaches Python as lone surrogates (PEP 383);
    # subprocess turns them back into those bytes.
    binary = RAW.decode("utf-8", "surrogateescape")
    line = assert_user_error(run("check", cwd=tmp_path, secret=binary), "secret")
    assert "base64:" in line and "UTF-8" in line
    assert_user_error(run("token", "--sub", "bob", cwd=tmp_path, secret=binary), "base64:")
    assert_user_error(run("check", cwd=tmp_path, JWT_WSGI_PROTECT="/api" + binary), "JWT_WSGI_PROTECT")
    assert_user_error(run("check", cwd=tmp_path, **{"JWT_WSGI_PROTECT\udcff": "/api"}), "unknown jwt_wsgi variable")


# -- RFC 9068 access tokens ---------------------------------------------------------------------
AT_JWT = {"access_token_format": "at+jwt", "access_token_client_id": "web-app", "issuer": "https://login.example",
          "audience": "https://api.example"}


def test_rfc9068_access_tokens_are_issued_when_asked(make_client):
    client = make_client(**AT_JWT)
    tokens = login(client)
    header = jwt.get_unverified_header(tokens["access_token"])
    payload = jwt.decode(tokens["access_token"], SECRET, algorithms=["HS256"], audience="https://api.example",
                         issuer="https://login.example")
    assert header["typ"] == "at+jwt"
    # RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti.
    assert payload["client_id"] == "web-app"
    assert {"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} <= set(payload)
    assert status(client, tokens["access_token"]) == 200
    # The refresh token stays a plain JWT, and refreshing gives RFC 9068 access tokens again.
    assert jwt.get_unverified_header(tokens["refresh_token"])["typ"] == "JWT"
    assert "client_id" not in jwt.decode(tokens["refresh_token"], options={"verify_signature": False})
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json["access_token"])["typ"] == "at+jwt"
    # The default is unchanged.
    plain = login(make_client())["access_token"]
    assert jwt.get_unverified_header(plain)["typ"] == "JWT"
    assert "client_id" not in jwt.decode(plain, SECRET, algorithms=["HS256"])


@pytest.mark.parametrize(
    "options, option",
    [
        pytest.param({**AT_JWT, "access_token_client_id": None}, "access_token_client_id", id="no-client-id"),
        pytest.param({**AT_JWT, "issuer": None}, "issuer", id="no-issuer"),
        pytest.param({**AT_JWT, "audience": None}, "audience", id="no-audience"),
        pytest.param({"access_token_client_id": "web-app"}, "access_token_client_id", id="client-id-alone"),
        pytest.param({"access_token_format": "rfc9068"}, "access_token_format", id="unknown-format"),
    ],
)
def test_rfc9068_options_are_checked_at_construction(options, option):
    with pytest.raises(ConfigurationError) as info:
        Settings(secret=SECRET, **options)
    assert info.value.option == option


def test_rfc9068_option_from_toml_and_environment(tmp_path):
    toml = tmp_path / "jwt.toml"
    toml.write_text(textwrap.dedent(f"""
        secret = "{SECRET}"
        access_token_format = "at+jwt"
        access_token_client_id = "web-app"
        issuer = "https://login.example"
        audience = "https://api.example"
    """))
    env = {"JWT_WSGI_" + k.upper(): v for k, v in {**AT_JWT, "secret": SECRET}.items()}
    assert Settings.from_file(toml) == Settings.from_env(env) == Settings(secret=SECRET, **AT_JWT)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT", "JWT",
                                 "application/jwt", "jwt", None])
def test_access_tokens_typed_jwt_or_at_jwt_are_accepted_from_providers(tmp_path, make_client, typ):
    idp = ec.generate_private_key(ec.SECP256R1())
    _, idp_pub = write_pair(tmp_path, idp, "idp")
    client = make_client(issuer="ours", providers=[{"issuer": "https://idp.example", "audience": "api",
                                                    "algorithms": ["ES256"], "public_key": idp_pub}])
    headers = {"kid": "idp-2026", "typ": typ}
    token = forge(idp, "ES256", headers, iss="https://idp.example", aud="api", client_id="c1", type=None)
    if typ is None:
        token = _without_typ(idp, iss="https://idp.example", aud="api", client_id="c1", type=None)
    assert status(client, token) == 200
    own = HS(SECRET, {"alg": "HS256", "typ": typ} if typ else {"alg": "HS256"}, claims(iss="ours"))
    assert status(client, own) == 200


def _without_typ(key, **extra):
    return jwt.api_jws.encode(json.dumps(claims(**extra)).encode(), key, algorithm="ES256",
                              headers={"typ": None})


@pytest.mark.parametrize("typ", ["logout+jwt", "secevent+jwt", "dpop+jwt", "application/jose", "JOSE", "", 1,
                                 ["JWT"], {"typ": "JWT"}, True])
def test_tokens_typed_for_another_purpose_are_refused(client, typ):
    assert status(client, HS(SECRET, {"alg": "HS256", "typ": typ}, claims())) == 401


def test_an_at_jwt_token_is_never_a_refresh_token(make_client):
    """RFC 9068 §4 / RFC 8725 §3.11: typed as an access token, it is not accepted as anything else,
    even when signed by our key and carrying a refresh token's claims."""
    client = make_client()
    genuine = login(client)["refresh_token"]
    payload = jwt.decode(genuine, SECRET, algorithms=["HS256"])
    for typ in ("at+jwt", "application/at+jwt"):
        retyped = jwt.encode(payload, SECRET, algorithm="HS256", headers={"typ": typ})
        answer = client.post("/auth/refresh", json={"refresh_token": retyped})
        assert answer.status_code == 401 and "access_token" not in (answer.json or {})
    assert client.post("/auth/refresh", json={"refresh_token": genuine}).status_code == 200


# -- jwt-wsgi check explains the keys -----------------------------------------------------------
@pytest.mark.slow
def test_check_explains_a_verify_only_set_up_with_providers_and_the_kidless_cap(tmp_path: Path) -> None:
    idp = ec.generate_private_key(ec.SECP256R1())
    _, idp_pub = write_pair(tmp_path, idp, "idp")
    keys = [{"kid": f"k{i}", "secret": f"{i}-check-test-only-secret-{i}-0123456789abcdefghijklmnop"} for i in range(4)]
    config = tmp_path / "jwt.toml"
    tables = ", ".join("{kid = " + json.dumps(k["kid"]) + ", secret = " + json.dumps(k["secret"]) + "}" for k in keys)
    config.write_text(f"issuer = \"ours\"\nkeys = [{tables}]\n"
                      f"providers = [{{issuer = \"https://idp.example\", audience = \"api\", algorithms = [\"ES256\"], "
                      f"public_key = \"{idp_pub}\"}}]\n")
    stderr = ok(run("check", "--config", str(config), cwd=tmp_path, secret=None)).stderr
    assert "keys: signs: nothing (verify only" in stderr
    assert "HS256: 4 verification keys ('k0', 'k1', 'k2', 'k3')" in stderr
    assert "tried against 'k0', 'k1', 'k2', in this order" in stderr
    assert "('k3': only for tokens naming their kid; at most 3 keys" in stderr
    assert "keys: provider https://idp.example:" in stderr
    assert "ES256: 1 verification key" in stderr and "verified with it, whatever kid they name" in stderr
    assert "-check-test-only-secret-" not in stderr


@pytest.mark.slow
def test_cli_token_follows_the_access_token_format(tmp_path: Path) -> None:
    env = {"JWT_WSGI_" + k.upper(): v for k, v in AT_JWT.items()}
    token = ok(run("token", "--sub", "bob", cwd=tmp_path, **env)).stdout.strip()
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    claims_ = jwt.decode(token, SECRET, algorithms=["HS256"], audience="https://api.example")
    assert claims_["client_id"] == "web-app" and claims_["iss"] == "https://login.example"
    decoded = ok(run("decode", token, cwd=tmp_path, **env)).stdout
    assert "valid access token: signature, algorithm and claims verified" in decoded
