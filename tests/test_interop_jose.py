"""Interoperability with JOSE libraries nobody on this project wrote: authlib (``authlib.jose``),
joserfc, jwcrypto and PyJWT.

- Tokens we issue (a login through the middleware; HS256, RS256, ES256, EdDSA) are verified by
  each library **immediately after issue**, claims included, with the public keys taken from our
  JWK Set endpoint: in-process through the WSGI endpoint for every algorithm, and over real HTTP
  (``jwt-wsgi serve`` under gunicorn, PyJWT's ``PyJWKClient`` and plain HTTP for the others).
- Tokens each library signs (HS256, RS256, ES256, EdDSA, each with a ``kid`` of its own choosing)
  are verified by us, with the key configured as a secret under that ``kid`` or as a PEM
  ``public_key`` (which names no kid: one key for an algorithm verifies any kid).

The libraries check claims against a clock of whole seconds (authlib and joserfc refuse an
``iat`` that is a fraction of a second "in the future"); the immediate checks here are what
catches a fractional ``iat``.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from werkzeug.security import generate_password_hash

from tests import servers
from tests._services import unavailable
from tests.conftest import ALICE_PASSWORD, FAST_HASH, OTHER_SECRET, SECRET, bearer, login
from tests.servers import GUNICORN, JWT_WSGI, Server, server_env

ALGORITHMS = ["HS256", "RS256", "ES256", "EdDSA"]
LIBRARIES = ["authlib", "joserfc", "jwcrypto", "pyjwt"]


def _authlib_jose() -> Any:
    # authlib.jose announces its own deprecation (in favour of joserfc) when imported; it is
    # still what authlib's OAuth clients use, so it is tested as it is.
    with warnings.catch_warnings():
        import authlib.deprecate  # installs an "always" filter for its warnings: the next line goes first

        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        import authlib.jose

    return authlib.jose


@contextlib.contextmanager
def _joserfc_eddsa(alg: str) -> Iterator[None]:
    """joserfc warns that the name "EdDSA" is deprecated (RFC 9864 prefers "Ed25519"); PRODUCT.md
    names EdDSA, and what is tested here is that the tokens interoperate."""
    from joserfc.errors import SecurityWarning

    with warnings.catch_warnings():
        if alg == "EdDSA":
            warnings.filterwarnings("ignore", "EdDSA is deprecated", SecurityWarning)
        yield


# -- our keys -----------------------------------------------------------------------------------
def _private_key(alg: str) -> Any:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def _pem(key: Any, private: bool) -> bytes:
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[no-any-return]
                                 serialization.NoEncryption())
    return key.public_bytes(serialization.Encoding.PEM,  # type: ignore[no-any-return]
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_options(tmp_path: Path, alg: str) -> dict[str, Any]:
    if alg == "HS256":
        return {"secret": SECRET}
    path = tmp_path / f"{alg}.key.pem"
    path.write_bytes(_pem(_private_key(alg), private=True))
    return {"secret": None, "algorithm": alg, "private_key": str(path)}


# -- verifying our tokens with each library -----------------------------------------------------
# Each takes (token, algorithm, key material) where the material is the secret (HS256) or our JWK
# Set as JSON text, and returns the verified claims; each raises if anything does not verify.
def _verify_authlib(token: str, alg: str, material: Any) -> dict[str, Any]:
    jose = _authlib_jose()
    key = material.encode() if alg == "HS256" else jose.JsonWebKey.import_key_set(json.loads(material))
    claims = jose.JsonWebToken([alg]).decode(token, key, claims_options={"sub": {"essential": True},
                                                                         "exp": {"essential": True},
                                                                         "iat": {"essential": True}})
    claims.validate()  # exp, nbf, iat against an integer clock
    return dict(claims)


def _verify_joserfc(token: str, alg: str, material: Any) -> dict[str, Any]:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet, OctKey

    key = OctKey.import_key(material) if alg == "HS256" else KeySet.import_key_set(json.loads(material))
    with _joserfc_eddsa(alg):
        decoded = jose_jwt.decode(token, key, algorithms=[alg])
    registry = jose_jwt.JWTClaimsRegistry(sub={"essential": True}, exp={"essential": True},
                                          iat={"essential": True}, jti={"essential": True})
    registry.validate(decoded.claims)  # exp, nbf, iat against an integer clock
    return dict(decoded.claims)


def _verify_jwcrypto(token: str, alg: str, material: Any) -> dict[str, Any]:
    from jwcrypto import jwk
    from jwcrypto import jwt as jwc_jwt

    if alg == "HS256":
        key: Any = jwk.JWK(kty="oct", k=jwt.utils.base64url_encode(material.encode()).decode())
    else:
        key = jwk.JWKSet.from_json(material)
    verified = jwc_jwt.JWT(jwt=token, key=key, algs=[alg], expected_type="JWS",
                           check_claims={"sub": None, "exp": None, "iat": None, "jti": None})
    return json.loads(verified.claims)  # type: ignore[no-any-return]


def _verify_pyjwt(token: str, alg: str, material: Any) -> dict[str, Any]:
    if alg == "HS256":
        key: Any = material
    else:
        key = jwt.PyJWKSet.from_json(material)[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, key, algorithms=[alg], options={"require": ["sub", "exp", "iat", "jti"]})


VERIFIERS: dict[str, Callable[[str, str, Any], dict[str, Any]]] = {
    "authlib": _verify_authlib, "joserfc": _verify_joserfc, "jwcrypto": _verify_jwcrypto, "pyjwt": _verify_pyjwt,
}


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("library", LIBRARIES)
def test_our_tokens_verify_in_each_library_the_moment_they_are_issued(tmp_path, make_client, library, alg):
    client = make_client(**_key_options(tmp_path, alg))
    material = SECRET if alg == "HS256" else client.get("/.well-known/jwks.json").get_data(as_text=True)
    # Several logins in a row, each verified at once: a fractional iat fails most of them.
    for _ in range(5):
        tokens = login(client)
        claims = VERIFIERS[library](tokens["access_token"], alg, material)
        assert claims["sub"] == "alice" and claims["type"] == "access" and claims["scope"] == "read"
        # The refresh token too: another service may inspect it with its own library.
        assert VERIFIERS[library](tokens["refresh_token"], alg, material)["type"] == "refresh"


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_token_signed_by_another_key_is_refused_by_each_library(tmp_path, make_client, library):
    """The verifiers above can fail: a token from another key under our kid is refused by each."""
    ours = make_client(**_key_options(tmp_path, "ES256"))
    material = ours.get("/.well-known/jwks.json").get_data(as_text=True)
    (tmp_path / "other").mkdir()
    impostor = make_client(**_key_options(tmp_path / "other", "ES256"))
    token = login(impostor)["access_token"]
    kid = json.loads(material)["keys"][0]["kid"]
    forged = jwt.encode(jwt.decode(token, options={"verify_signature": False}),
                        serialization.load_pem_private_key((tmp_path / "other" / "ES256.key.pem").read_bytes(), None),
                        algorithm="ES256", headers={"kid": kid})
    with pytest.raises(Exception):  # each library has its own error class
        VERIFIERS[library](forged, "ES256", material)
    with pytest.raises(Exception):
        VERIFIERS[library](login(ours)["access_token"], "ES256", material.replace(kid, kid + "x"))
    assert VERIFIERS[library](login(ours)["access_token"], "ES256", material)["sub"] == "alice"


# -- over HTTP: jwt-wsgi serve, its JWK Set fetched by URL ---------------------------------------
@pytest.fixture(scope="module")
def served_es256(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``jwt-wsgi serve jwt_wsgi.demo:demo_app --config FILE`` signing ES256 (gunicorn, 1 worker)."""
    if not Path(GUNICORN).exists():
        unavailable("gunicorn is not installed in the virtualenv")
    state = tmp_path_factory.mktemp("interop-serve")
    (state / "es256.key.pem").write_bytes(_pem(ec.generate_private_key(ec.SECP256R1()), private=True))
    (state / "users.json").write_text(json.dumps({"users": {"alice": {
        "password": generate_password_hash(ALICE_PASSWORD, method=FAST_HASH), "claims": {"scope": "read"}}}}))
    (state / "jwt.toml").write_text('algorithm = "ES256"\nprivate_key = "es256.key.pem"\n'
                                    'users_file = "users.json"\nissuer = "https://login.test"\n')
    server = Server([JWT_WSGI, "serve", "jwt_wsgi.demo:demo_app", "--config", str(state / "jwt.toml"),
                     "--bind", "127.0.0.1:{port}", "--workers", "1", "--protect", "/api"],
                    env=server_env(state / "runtime"), log_dir=state, name="serve-es256", ready_path="/")
    with server:
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("library", LIBRARIES)
def test_our_tokens_verify_in_each_library_with_the_jwks_fetched_over_http(served_es256, library):
    url = served_es256.base_url + "/.well-known/jwks.json"
    for _ in range(5):
        token = servers.login(served_es256.base_url, "alice", ALICE_PASSWORD)["access_token"]
        if library == "pyjwt":
            # What a resource server written with PyJWT does: PyJWKClient picks the key by kid.
            key = jwt.PyJWKClient(url, cache_keys=False, timeout=10).get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key, algorithms=["ES256"], issuer="https://login.test",
                                options={"require": ["sub", "exp", "iat", "jti", "iss"]})
        else:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a loopback test URL
                material = response.read().decode()
            claims = VERIFIERS[library](token, "ES256", material)
        assert claims["sub"] == "alice" and claims["iss"] == "https://login.test"
        me = servers.get(served_es256.base_url, "/api/me", headers=bearer(token))
        assert me.status == 200, str(me)


# -- their tokens, verified by us ---------------------------------------------------------------
def _claims() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "carol", "iat": now, "nbf": now, "exp": now + 300, "jti": f"jti-{time.monotonic_ns()}"}


def _sign_authlib(alg: str, kid: str) -> tuple[str, bytes]:
    """(token, public PEM or secret)."""
    jose = _authlib_jose()
    if alg == "HS256":
        return jose.jwt.encode({"alg": alg, "kid": kid}, _claims(), SECRET.encode()).decode(), SECRET.encode()
    kty, param = {"RS256": ("RSA", 2048), "ES256": ("EC", "P-256"), "EdDSA": ("OKP", "Ed25519")}[alg]
    key = jose.JsonWebKey.generate_key(kty, param, is_private=True)
    token = jose.JsonWebToken([alg]).encode({"alg": alg, "kid": kid}, _claims(), key).decode()
    return token, key.as_pem(is_private=False)


def _sign_joserfc(alg: str, kid: str) -> tuple[str, bytes]:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

    key: Any
    if alg == "HS256":
        key = OctKey.import_key(SECRET)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256")
    else:
        key = OKPKey.generate_key("Ed25519")
    with _joserfc_eddsa(alg):
        token = jose_jwt.encode({"alg": alg, "kid": kid}, _claims(), key, algorithms=[alg])
    return token, SECRET.encode() if alg == "HS256" else key.as_pem(private=False)


def _sign_jwcrypto(alg: str, kid: str) -> tuple[str, bytes]:
    from jwcrypto import jwk
    from jwcrypto import jwt as jwc_jwt

    if alg == "HS256":
        key = jwk.JWK(kty="oct", k=jwt.utils.base64url_encode(SECRET.encode()).decode())
    elif alg == "RS256":
        key = jwk.JWK.generate(kty="RSA", size=2048)
    elif alg == "ES256":
        key = jwk.JWK.generate(kty="EC", crv="P-256")
    else:
        key = jwk.JWK.generate(kty="OKP", crv="Ed25519")
    token = jwc_jwt.JWT(header={"alg": alg, "kid": kid}, claims=_claims())
    token.make_signed_token(key)
    return token.serialize(), SECRET.encode() if alg == "HS256" else key.export_to_pem(private_key=False,
                                                                                      password=None)


def _sign_pyjwt(alg: str, kid: str) -> tuple[str, bytes]:
    if alg == "HS256":
        return jwt.encode(_claims(), SECRET, algorithm=alg, headers={"kid": kid}), SECRET.encode()
    key = _private_key(alg)
    return jwt.encode(_claims(), key, algorithm=alg, headers={"kid": kid}), _pem(key.public_key(), private=False)


SIGNERS: dict[str, Callable[[str, str], tuple[str, bytes]]] = {
    "authlib": _sign_authlib, "joserfc": _sign_joserfc, "jwcrypto": _sign_jwcrypto, "pyjwt": _sign_pyjwt,
}


@pytest.mark.parametrize("alg", ALGORITHMS)
@pytest.mark.parametrize("library", LIBRARIES)
def test_tokens_each_library_signs_are_verified_by_us(tmp_path, make_client, library, alg):
    kid = f"{library}-{alg.lower()}-2026"
    token, material = SIGNERS[library](alg, kid)
    assert jwt.get_unverified_header(token)["kid"] == kid
    if alg == "HS256":
        # Their kid names one of two secrets: that one verifies it.
        client = make_client(secret=None, keys=[{"kid": "other", "secret": OTHER_SECRET},
                                                {"kid": kid, "secret": material.decode()}])
        wrong = make_client(secret=None, keys=[{"kid": kid, "secret": OTHER_SECRET}])
    else:
        # Their public key as a PEM file, as a user downloads it: it names no kid.
        path = tmp_path / "theirs.pub.pem"
        path.write_bytes(material)
        client = make_client(secret=None, algorithm=alg, public_key=str(path))
        other = tmp_path / "other.pub.pem"
        other.write_bytes(_pem(_private_key(alg).public_key(), private=False))
        wrong = make_client(secret=None, algorithm=alg, public_key=str(other))
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 200, response.data
    assert json.loads(response.data.split(b" ", 1)[1])["user"] == "carol"
    assert wrong.get("/api/me", headers=bearer(token)).status_code == 401
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    assert client.get("/api/me", headers=bearer(tampered)).status_code == 401
