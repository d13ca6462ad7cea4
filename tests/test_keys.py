"""Static keys (issue 4): asymmetric signing, rotation with ``keys``, kid selection, the published
JWK Set, key confusion, providers with static keys, and the ``keys`` CLI.

Remote JWK Sets (``jwks_url``, discovery, flood, timeouts) are in ``test_jwks.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import textwrap
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from jwt_wsgi import ConfigurationError, JWTMiddleware, Settings
from jwt_wsgi.cli import main as cli_main
from jwt_wsgi.jose import MAX_KIDLESS_TRIES
from jwt_wsgi.keys import thumbprint

from .conftest import CANARY_API, HS, SECRET, b64, bearer, claims, login

OTHER = "rotated-test-only-secret-9876543210-zyxwvutsrqponmlkjih"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


# -- key material ---------------------------------------------------------------------------------
def _rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


MAKERS = {
    "RS256": _rsa,
    "RS384": _rsa,
    "RS512": _rsa,
    "PS256": _rsa,
    "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ES384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "EdDSA": ed25519.Ed25519PrivateKey.generate,
}


def write_pair(directory: Path, key: Any, name: str) -> tuple[str, str]:
    """(private PEM path, public PEM path)."""
    directory.mkdir(parents=True, exist_ok=True)
    priv = directory / f"{name}.key.pem"
    pub = directory / f"{name}.pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(priv), str(pub)


def kid_of(key: Any, alg: str) -> str:
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(key.public_key()))
    return thumbprint(jwk)


def forge(key: Any, alg: str, headers: dict[str, Any] | None = None, **extra: Any) -> str:
    return jwt.encode(claims(**extra), key, algorithm=alg, headers=headers)


def status(client: Any, token: str, path: str = "/api/me") -> int:
    response = client.get(path, headers=bearer(token))
    assert response.status_code != 500, response.data
    if response.status_code != 200:
        assert CANARY_API not in response.data
    return int(response.status_code)


# -- asymmetric algorithms ------------------------------------------------------------------------
@pytest.mark.parametrize("alg", list(MAKERS))
def test_every_asymmetric_algorithm_signs_verifies_and_publishes(tmp_path, make_client, alg):
    key = MAKERS[alg]()
    priv, pub = write_pair(tmp_path, key, "k")
    client = make_client(secret=None, algorithm=alg, private_key=priv, public_key=pub)
    token = login(client)["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == alg and header["kid"] == kid_of(key, alg)  # RFC 7638 thumbprint
    assert status(client, token) == 200
    # A verify-only deployment (public key only) accepts it and mounts no login.
    verifier = make_client(secret=None, algorithm=alg, public_key=pub)
    assert status(verifier, token) == 200
    assert verifier.middleware.issuer is None
    assert b"access_token" not in verifier.post("/auth/login", json={"username": "alice", "password": "x"}).data
    published = client.get("/.well-known/jwks.json")
    assert published.status_code == 200
    assert published.headers["Cache-Control"].startswith("public, max-age=")
    (jwk,) = published.json["keys"]
    assert jwk["kid"] == header["kid"] and jwk["alg"] == alg and jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(jwk)
    # The published key verifies the token: what another service does with our JWK Set.
    jwt.decode(token, jwt.PyJWK(jwk), algorithms=[alg], options={"verify_aud": False})


# -- rotation -------------------------------------------------------------------------------------
def test_rotation_of_asymmetric_keys(tmp_path, make_client):
    old, new = _rsa(), ec.generate_private_key(ec.SECP256R1())
    old_priv, old_pub = write_pair(tmp_path, old, "old")
    new_priv, _ = write_pair(tmp_path, new, "new")

    before = make_client(secret=None, algorithm="RS256", keys=[{"private_key": old_priv, "active": True}])
    old_token = login(before)["access_token"]
    assert jwt.get_unverified_header(old_token)["kid"] == kid_of(old, "RS256")

    # Rotation: the new key signs (and may use another algorithm), the old one only verifies.
    during = make_client(secret=None, algorithm="RS256", keys=[
        {"private_key": new_priv, "algorithm": "ES256", "active": True},
        {"public_key": old_pub},
    ])
    new_token = login(during)["access_token"]
    assert jwt.get_unverified_header(new_token) == {"alg": "ES256", "kid": kid_of(new, "ES256"), "typ": "JWT"}
    assert status(during, old_token) == 200
    assert status(during, new_token) == 200
    published = during.get("/.well-known/jwks.json").json["keys"]
    assert [k["kid"] for k in published] == [kid_of(new, "ES256"), kid_of(old, "RS256")]  # active first

    # The old key is dropped once its last token has expired: only new tokens verify.
    after = make_client(secret=None, algorithm="ES256", keys=[{"private_key": new_priv, "active": True}])
    assert status(after, old_token) == 401
    assert status(after, new_token) == 200


def test_rotation_of_hmac_keys_and_refresh_across_it(make_client):
    before = make_client(secret=None, keys=[{"kid": "2024", "secret": SECRET, "active": True}])
    tokens = login(before)
    assert jwt.get_unverified_header(tokens["access_token"])["kid"] == "2024"
    during = make_client(secret=None, keys=[{"kid": "2024", "secret": SECRET},
                                            {"kid": "2025", "secret": OTHER, "active": True}])
    assert status(during, tokens["access_token"]) == 200
    refreshed = during.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json["access_token"])["kid"] == "2025"
    after = make_client(secret=None, keys=[{"kid": "2025", "secret": OTHER, "active": True}])
    assert status(after, tokens["access_token"]) == 401
    assert status(after, refreshed.json["access_token"]) == 200
    assert after.get("/.well-known/jwks.json").json["public"]  # HS only: no JWK Set mounted


def test_verify_only_keys_mount_no_login(make_client):
    client = make_client(secret=None, keys=[{"kid": "a", "secret": SECRET}, {"kid": "b", "secret": OTHER}])
    assert client.middleware.issuer is None
    assert status(client, forge(SECRET.encode(), "HS256", {"kid": "a"})) == 200
    assert status(client, forge(OTHER.encode(), "HS256", {"kid": "b"})) == 200


# -- kid selection --------------------------------------------------------------------------------
@pytest.fixture
def ring(tmp_path, make_client):
    """Three keys: RSA (active), EC and an HMAC secret: HS256 is an accepted algorithm here."""
    rsa_key, ec_key = _rsa(), ec.generate_private_key(ec.SECP256R1())
    rsa_priv, _ = write_pair(tmp_path, rsa_key, "rsa")
    _, ec_pub = write_pair(tmp_path, ec_key, "ec")
    client = make_client(secret=None, algorithm="RS256", keys=[
        {"kid": "rsa-1", "private_key": rsa_priv, "active": True},
        {"kid": "ec-1", "public_key": ec_pub, "algorithm": "ES256"},
        {"kid": "hs-1", "secret": SECRET, "algorithm": "HS256"},
    ])
    return client, rsa_key, ec_key


def test_kid_selects_among_configured_keys(ring):
    client, rsa_key, ec_key = ring
    assert status(client, forge(rsa_key, "RS256", {"kid": "rsa-1"})) == 200
    assert status(client, forge(ec_key, "ES256", {"kid": "ec-1"})) == 200
    assert status(client, forge(SECRET.encode(), "HS256", {"kid": "hs-1"})) == 200
    # The right key under the wrong kid: each kid is bound to its key and its algorithm.
    assert status(client, forge(rsa_key, "RS256", {"kid": "ec-1"})) == 401
    assert status(client, forge(ec_key, "ES256", {"kid": "rsa-1"})) == 401
    assert status(client, forge(SECRET.encode(), "HS256", {"kid": "rsa-1"})) == 401
    assert status(client, forge(rsa_key, "PS256", {"kid": "rsa-1"})) == 401  # same key, other algorithm


@pytest.mark.parametrize(
    "kid",
    [
        pytest.param("unknown", id="unknown"),
        pytest.param("", id="empty"),
        pytest.param("../../../../dev/null", id="path-traversal"),
        pytest.param("/dev/null", id="absolute-path"),
        pytest.param("x' UNION SELECT 'hs-1';--", id="sql"),
        pytest.param("|sleep 10", id="command"),
        pytest.param("hs-1?x=1", id="query"),
        pytest.param("HS-1", id="case"),
        pytest.param(None, id="null-with-extra"),
        pytest.param(0, id="number"),
        pytest.param(True, id="bool"),
        pytest.param(["hs-1"], id="list"),
        pytest.param({"kid": "hs-1"}, id="object"),
    ],
)
def test_kid_is_only_a_lookup_key(ring, kid):
    client, _, _ = ring
    header = {"alg": "HS256", "kid": kid} if kid is not None else {"alg": "HS256", "kid": None}
    for key in (b"", b"2", b"1", SECRET.encode()[:-1]):
        assert status(client, HS(key, header, claims(sub="admin"))) == 401


def test_token_without_kid_is_tried_against_each_key_of_its_algorithm(tmp_path, ring, make_client):
    client, rsa_key, ec_key = ring
    # One key per algorithm here: a token without kid is tried against the one that fits.
    assert status(client, forge(rsa_key, "RS256")) == 200
    assert status(client, forge(ec_key, "ES256")) == 200
    assert status(client, forge(SECRET.encode(), "HS256")) == 200
    # Two HMAC keys: a token without kid (issued before keys had kids) is tried against both.
    two = make_client(secret=None, keys=[{"kid": "a", "secret": SECRET, "active": True},
                                         {"kid": "b", "secret": OTHER}])
    assert status(two, forge(SECRET.encode(), "HS256")) == 200
    assert status(two, forge(OTHER.encode(), "HS256")) == 200
    assert status(two, forge((OTHER + "x").encode(), "HS256")) == 401
    assert status(two, forge(SECRET.encode(), "HS384")) == 401  # its algorithm's keys only
    # A kid names its key, and only it: the other key's kid, or an unknown one, is refused.
    assert status(two, forge(SECRET.encode(), "HS256", {"kid": "a"})) == 200
    assert status(two, forge(SECRET.encode(), "HS256", {"kid": "b"})) == 401
    assert status(two, forge(SECRET.encode(), "HS256", {"kid": "c"})) == 401


def test_tokens_without_kid_try_a_bounded_number_of_keys(make_client):
    """Four HMAC keys: a token without kid is tried against the first three in configured order."""
    secrets_ = [f"{n}-rotation-test-only-secret-{n}-0123456789abcdefghijklmnop" for n in "wxyz"]
    client = make_client(secret=None, keys=[{"kid": f"k{i}", "secret": s, "active": i == 0}
                                            for i, s in enumerate(secrets_)])
    assert MAX_KIDLESS_TRIES == 3
    for tried in secrets_[:MAX_KIDLESS_TRIES]:
        assert status(client, forge(tried.encode(), "HS256")) == 200
    assert status(client, forge(secrets_[3].encode(), "HS256")) == 401  # beyond the cap
    assert status(client, forge(secrets_[3].encode(), "HS256", {"kid": "k3"})) == 200  # named: verified


@pytest.mark.parametrize("kid", ["A-ec", "issuer-key-2024", "", "x" * 200])
def test_one_key_for_an_algorithm_verifies_whatever_the_kid(tmp_path, make_client, kid):
    """A provider's PEM file carries no name, the provider's tokens do: one key verifies them all."""
    corp, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    _, corp_pub = write_pair(tmp_path, corp, "corp")
    provider = make_client(secret=None, providers=[{"issuer": "https://idp.example", "audience": "api",
                                                    "algorithms": ["ES256"], "public_key": corp_pub}])
    own = make_client(secret=None, algorithm="ES256", public_key=corp_pub)
    named = make_client(secret=None, algorithm="ES256", keys=[{"kid": "mine", "public_key": corp_pub}])
    good = forge(corp, "ES256", {"kid": kid}, iss="https://idp.example", aud="api")
    assert status(provider, good) == 200
    assert status(own, forge(corp, "ES256", {"kid": kid})) == 200
    assert status(named, forge(corp, "ES256", {"kid": kid})) == 200
    # Still that key and that algorithm only.
    assert status(provider, forge(other, "ES256", {"kid": kid}, iss="https://idp.example", aud="api")) == 401
    assert status(own, forge(other, "ES256", {"kid": kid})) == 401
    assert status(own, forge(_rsa(), "RS256", {"kid": kid})) == 401


def test_single_top_level_secret_ignores_kid_as_before(client):
    assert status(client, forge(SECRET.encode(), "HS256", {"kid": "anything"})) == 200


# -- never trusted from the token -----------------------------------------------------------------
def _confusion_spellings(key: Any, jwks_text: bytes) -> list[tuple[str, bytes]]:
    public = key.public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    spellings = [
        ("pem", pem),
        ("pem-no-newline", pem.rstrip(b"\n")),
        ("der", public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)),
        ("openssh", public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)),
        ("jwk-set-text", jwks_text),
    ]
    if isinstance(public, rsa.RSAPublicKey):
        pkcs1 = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        spellings.append(("pkcs1-pem", pkcs1))
    if isinstance(public, ec.EllipticCurvePublicKey):
        spellings.append(("x962-point", public.public_bytes(serialization.Encoding.X962,
                                                           serialization.PublicFormat.UncompressedPoint)))
    if isinstance(public, ed25519.Ed25519PublicKey):
        spellings.append(("raw", public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)))
    return spellings


def test_public_keys_as_hmac_secrets_are_refused_in_every_spelling(tmp_path, make_client):
    """Key confusion and algorithm substitution against a ring that accepts HS256 too (the worst case for confusion)."""
    keys = {"RS256": _rsa(), "ES256": ec.generate_private_key(ec.SECP256R1()),
            "EdDSA": ed25519.Ed25519PrivateKey.generate()}
    entries: list[dict[str, Any]] = [{"kid": "hs", "secret": SECRET, "algorithm": "HS256"}]
    for alg, key in keys.items():
        _, pub = write_pair(tmp_path, key, alg)
        entries.append({"public_key": pub, "algorithm": alg})
    client = make_client(secret=None, algorithm="RS256", keys=entries)
    published = client.get("/.well-known/jwks.json")
    assert published.status_code == 200
    assert {k["alg"] for k in published.json["keys"]} == set(keys)  # the HMAC key is never published
    assert SECRET.encode() not in published.data and b64(SECRET.encode()).encode() not in published.data
    by_alg = {k["alg"]: k for k in published.json["keys"]}
    refused = 0
    for alg, key in keys.items():
        jwk = by_alg[alg]
        spellings = _confusion_spellings(key, published.data) + [("jwk-text", json.dumps(jwk).encode())]
        for name, secret in spellings:
            for kid in (jwk["kid"], "hs", None):
                for hs_alg, digest in (("HS256", "sha256"), ("HS384", "sha384"), ("HS512", "sha512")):
                    header = {"alg": hs_alg} if kid is None else {"alg": hs_alg, "kid": kid}
                    token = HS(secret, header, claims(sub="admin"), getattr(hashlib, digest))
                    assert status(client, token) == 401, (alg, name, kid, hs_alg)
                    refused += 1
    assert refused >= 3 * 6 * 3 * 3


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda jwk, kid: {"jwk": jwk}, id="embedded-jwk"),
        pytest.param(lambda jwk, kid: {"jwk": jwk, "kid": kid}, id="embedded-jwk-with-our-kid"),
        pytest.param(lambda jwk, kid: {"x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}, id="x5c"),
        pytest.param(lambda jwk, kid: {"kid": kid, "x5c": ["MIIB"]}, id="x5c-with-our-kid"),
    ],
)
def test_keys_carried_by_the_token_are_never_used(tmp_path, make_client, headers):
    ours = _rsa()
    priv, _ = write_pair(tmp_path, ours, "ours")
    client = make_client(secret=None, algorithm="RS256", private_key=priv)
    attacker = _rsa()
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    token = forge(attacker, "RS256", headers(attacker_jwk, kid_of(ours, "RS256")), sub="admin")
    assert status(client, token) == 401


def test_unknown_crit_is_refused_even_when_signed_by_our_key(tmp_path, make_client):
    ours = _rsa()
    priv, _ = write_pair(tmp_path, ours, "ours")
    client = make_client(secret=None, algorithm="RS256", private_key=priv)
    assert status(client, forge(ours, "RS256")) == 200
    assert status(client, forge(ours, "RS256", {"crit": ["x-mfa"], "x-mfa": 1})) == 401
    assert status(client, forge(ours, "RS256", {"crit": "x-mfa"})) == 401
    assert status(client, forge(ours, "RS256", {"crit": []})) == 401


# -- providers with static keys -------------------------------------------------------------------
@pytest.fixture
def federation(tmp_path, make_client):
    """Our own login (HS256, iss=our-login) plus two other issuers with their own keys."""
    corp, partner = _rsa(), ec.generate_private_key(ec.SECP256R1())
    _, corp_pub = write_pair(tmp_path, corp, "corp")
    _, partner_pub = write_pair(tmp_path, partner, "partner")
    client = make_client(issuer="our-login", providers=[
        {"issuer": "https://corp.example/", "audience": "our-api", "public_key": corp_pub, "sub_claim": "oid"},
        {"issuer": "https://partner.example", "audience": ["our-api", "x"], "algorithms": ["ES256"],
         "keys": [{"kid": "p1", "public_key": partner_pub}]},
    ])
    return client, corp, partner


def test_two_providers_and_our_own_login_are_selected_by_iss(federation):
    client, corp, partner = federation
    ours = login(client)
    assert jwt.decode(ours["access_token"], options={"verify_signature": False})["iss"] == "our-login"
    assert status(client, ours["access_token"]) == 200
    corp_token = forge(corp, "RS256", iss="https://corp.example/", aud="our-api", oid="u-123", type=None)
    response = client.get("/api/me", headers=bearer(corp_token))
    assert response.status_code == 200
    seen = json.loads(response.data.split(b" ", 1)[1])
    assert seen["user"] == "u-123" and seen["claims"]["sub"] == "u-123"  # sub_claim mapping
    partner_token = forge(partner, "ES256", {"kid": "p1"}, iss="https://partner.example", aud="our-api")
    assert status(client, partner_token) == 200


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda c, p: forge(c, "RS256", iss="https://unknown.example/", aud="our-api", oid="x"),
                     id="unknown-iss"),
        pytest.param(lambda c, p: forge(c, "RS256", aud="our-api", oid="x"), id="no-iss"),
        pytest.param(lambda c, p: jwt.api_jws.encode(json.dumps(claims(iss=["https://corp.example/"], aud="our-api",
                                                                      oid="x")).encode(), c, algorithm="RS256"),
                     id="iss-list"),
        pytest.param(lambda c, p: forge(c, "RS256", iss="https://corp.example", aud="our-api", oid="x"),
                     id="iss-without-trailing-slash"),
        pytest.param(lambda c, p: forge(c, "RS256", iss="https://corp.example/", aud="other-api", oid="x"),
                     id="other-audience"),
        pytest.param(lambda c, p: forge(c, "RS256", iss="https://corp.example/", oid="x"), id="no-audience"),
        pytest.param(lambda c, p: forge(c, "RS256", iss="https://corp.example/", aud="our-api"),
                     id="sub-claim-missing"),
        pytest.param(lambda c, p: forge(p, "ES256", {"kid": "p1"}, iss="https://corp.example/", aud="our-api",
                                        oid="x"), id="partner-key-for-corp-iss"),
        pytest.param(lambda c, p: forge(c, "RS256", iss="https://partner.example", aud="our-api"),
                     id="corp-key-for-partner-iss"),
        pytest.param(lambda c, p: forge(c, "RS256", iss="our-login", aud="our-api"), id="corp-key-for-our-iss"),
        pytest.param(lambda c, p: HS(SECRET, {"alg": "HS256"}, claims(iss="https://corp.example/", aud="our-api",
                                                                      oid="x")), id="our-secret-for-corp-iss"),
    ],
)
def test_tokens_must_match_the_issuer_their_iss_names(federation, make):
    client, corp, partner = federation
    assert status(client, make(corp, partner)) == 401


def test_provider_tokens_are_never_refresh_tokens_here(federation):
    client, corp, _ = federation
    token = forge(corp, "RS256", iss="https://corp.example/", aud="our-api", oid="u-1", type="refresh", fam="f",
                  jti="j1")
    response = client.post("/auth/refresh", json={"refresh_token": token})
    assert response.status_code == 401
    assert "access_token" not in (response.json or {})


def test_providers_only_verifies_without_keys_of_its_own(tmp_path, make_client):
    corp = _rsa()
    _, corp_pub = write_pair(tmp_path, corp, "corp")
    client = make_client(secret=None, providers=[{"issuer": "corp", "audience": "api", "public_key": corp_pub}])
    assert client.middleware.issuer is None  # nothing to sign with: no login
    assert status(client, forge(corp, "RS256", iss="corp", aud="api")) == 200
    assert status(client, HS(SECRET, {"alg": "HS256"}, claims(iss="corp", aud="api"))) == 401


# -- configuration --------------------------------------------------------------------------------
def _pem(tmp_path: Path, make: Any = _rsa, name: str = "k") -> tuple[str, str]:
    return write_pair(tmp_path, make(), name)


@pytest.mark.parametrize(
    ("options", "option", "match"),
    [
        pytest.param({"keys": [{"kid": "a", "secret": SECRET, "active": True}], "secret": SECRET}, "keys", "not both",
                     id="keys-and-secret"),
        pytest.param({"keys": [{"kid": "a", "secret": SECRET, "active": True},
                               {"kid": "b", "secret": OTHER, "active": True}]}, "keys", "at most one",
                     id="two-active"),
        pytest.param({"keys": [{"kid": "a", "secret": SECRET}, {"kid": "a", "secret": OTHER}]}, "keys", "unique",
                     id="duplicate-kid"),
        pytest.param({"keys": [{"secret": SECRET}]}, "keys", "needs a kid", id="secret-without-kid"),
        pytest.param({"keys": [{"kid": "a"}]}, "keys", "needs secret", id="no-material"),
        pytest.param({"keys": [{"kid": "a", "secret": "short"}]}, "keys", "at least 32", id="short-secret"),
        pytest.param({"keys": [{"kid": "a", "secret": "a" * 64}]}, "keys", "low-entropy", id="weak-secret"),
        pytest.param({"keys": [{"kid": "a b", "secret": SECRET}]}, "keys", "printable", id="kid-with-space"),
        pytest.param({"keys": [{"kid": "a", "secret": SECRET, "algorithm": "none"}]}, "keys", "none",
                     id="alg-none"),
        pytest.param({"keys": [{"kid": "a", "secret": SECRET, "algorithm": "RS256"}]}, "keys", "public key",
                     id="secret-for-rs256"),
        pytest.param({"keys": [{"kid": "a", "secret": SECRET, "activ": True}]}, "keys", "did you mean 'active'",
                     id="typo-in-field"),
        pytest.param({"keys": "not json"}, "keys", "JSON", id="keys-not-json"),
        pytest.param({"keys": [1]}, "keys", "table", id="keys-entry-not-table"),
        pytest.param({"jwks_url": "http://idp.example/jwks", "algorithm": "RS256", "issuer": "i", "audience": "a"},
                     "jwks_url", "https", id="jwks-url-plain-http"),
        pytest.param({"jwks_url": "file:///etc/passwd", "algorithm": "RS256", "issuer": "i", "audience": "a"},
                     "jwks_url", "https", id="jwks-url-file"),
        pytest.param({"jwks_url": "https://idp.example/jwks", "issuer": "i", "audience": "a"}, "algorithm",
                     "public keys", id="jwks-url-with-hs256"),
        pytest.param({"jwks_url": "https://idp.example/jwks", "algorithm": "RS256", "audience": "a"}, "issuer",
                     "issuer and audience", id="jwks-url-without-issuer"),
        pytest.param({"jwks_url": "https://idp.example/jwks", "algorithm": "RS256", "issuer": "i"}, "audience",
                     "issuer and audience", id="jwks-url-without-audience"),
        pytest.param({"jwks_url": "https://idp.example/jwks", "algorithm": "RS256", "issuer": "i", "audience": "a",
                      "jwks_timeout": 30}, "jwks_timeout", "10 seconds", id="jwks-timeout-too-long"),
        pytest.param({"secret": SECRET, "jwks_cooldown": 0}, "jwks_cooldown", "1 second", id="no-cooldown"),
        pytest.param({"secret": SECRET, "jwks_cache_ttl": "2s"}, "jwks_cache_ttl", "jwks_cooldown",
                     id="ttl-below-cooldown"),
        pytest.param({"providers": [{"issuer": "https://idp.example"}]}, "providers", "audience",
                     id="provider-without-audience"),
        pytest.param({"providers": [{"audience": "a"}]}, "providers", "issuer", id="provider-without-issuer"),
        pytest.param({"providers": [{"issuer": "idp", "audience": "a"}]}, "providers", "https",
                     id="provider-discovery-needs-https-issuer"),
        pytest.param({"providers": [{"issuer": "https://idp.example", "audience": "a", "algorithms": ["HS256"]}]},
                     "providers", "asymmetric", id="provider-jwks-with-hs256"),
        pytest.param({"providers": [{"issuer": "https://i.example", "audience": "a"},
                                    {"issuer": "https://i.example", "audience": "b"}]}, "providers", "twice",
                     id="provider-listed-twice"),
        pytest.param({"secret": SECRET, "issuer": "https://i.example",
                      "providers": [{"issuer": "https://i.example", "audience": "b"}]},
                     "providers", "twice", id="provider-is-our-issuer"),
        pytest.param({"secret": SECRET, "providers": [{"issuer": "https://i.example", "audience": "b"}]},
                     "issuer", "own tokens", id="providers-and-own-keys-need-issuer"),
        pytest.param({"providers": [{"issuer": "https://i.example", "audience": "b", "jwks_urll": "x"}]},
                     "providers", "did you mean 'jwks_url'", id="provider-field-typo"),
    ],
)
def test_bad_key_options_fail_at_construction(options, option, match):
    with pytest.raises(ConfigurationError, match=match) as info:
        Settings(**options)
    assert info.value.option == option


def test_key_file_errors_name_the_entry(tmp_path):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    small_priv, _ = write_pair(tmp_path, small, "small")
    ok_priv, _ = _pem(tmp_path, name="ok")
    _, ec_pub = _pem(tmp_path, lambda: ec.generate_private_key(ec.SECP384R1()), "ec384")
    cases = [
        ([{"kid": "a", "private_key": ok_priv, "active": True}, {"kid": "old", "private_key": small_priv}], "2048"),
        ([{"kid": "a", "public_key": ec_pub, "algorithm": "ES256"}], "secp256r1"),
        ([{"kid": "a", "public_key": str(tmp_path / "missing.pem")}], "cannot read"),
        ([{"kid": "a", "public_key": ok_priv}], "not a PEM public key"),
    ]
    for keys, match in cases:
        with pytest.raises(ConfigurationError, match=match) as info:
            JWTMiddleware(lambda e, s: [], algorithm="RS256", keys=keys)
        assert info.value.option == "keys"
        assert "entry" in str(info.value)


def test_keys_and_providers_from_toml_and_environment(tmp_path, monkeypatch):
    key = _rsa()
    keydir = tmp_path / "keys"
    write_pair(keydir, key, "signing")
    config = tmp_path / "app.toml"
    config.write_text(textwrap.dedent(f"""
        [jwt_wsgi]
        algorithm = "RS256"
        issuer = "our-login"
        jwks_cache_ttl = "15m"
        jwks_cooldown = "1m"

        [[jwt_wsgi.keys]]
        private_key = "keys/signing.key.pem"
        active = true

        [[jwt_wsgi.keys]]
        kid = "hs-old"
        algorithm = "HS256"
        secret = "{SECRET}"

        [[jwt_wsgi.providers]]
        issuer = "https://login.example.com/"
        audience = "api://ours"
        sub_claim = "oid"
    """))
    from_toml = Settings.from_file(config)
    assert from_toml.keys[0].private_key == str(keydir / "signing.key.pem")  # relative to the file
    assert from_toml.keys[0].active and from_toml.keys[1].kid == "hs-old"
    assert from_toml.jwks_cache_ttl == 900 and from_toml.jwks_cooldown == 60 and from_toml.jwks_timeout == 3
    assert from_toml.providers[0].algorithms == ("RS256",) and from_toml.providers[0].sub_claim == "oid"
    view = json.dumps(from_toml.public_view())
    assert SECRET not in view and "<hidden>" in view

    env = {
        "JWT_WSGI_ALGORITHM": "RS256",
        "JWT_WSGI_ISSUER": "our-login",
        "JWT_WSGI_JWKS_CACHE_TTL": "15m",
        "JWT_WSGI_JWKS_COOLDOWN": "60",
        "JWT_WSGI_KEYS": json.dumps([{"private_key": str(keydir / "signing.key.pem"), "active": True},
                                     {"kid": "hs-old", "algorithm": "HS256", "secret": SECRET}]),
        "JWT_WSGI_PROVIDERS": json.dumps([{"issuer": "https://login.example.com/", "audience": "api://ours",
                                           "sub_claim": "oid"}]),
    }
    assert Settings.from_env(env) == from_toml
    ring = JWTMiddleware(lambda e, s: [], Settings.from_env(env)).keys
    assert ring.active is not None and ring.active.kid == kid_of(key, "RS256")
    assert SECRET not in repr(from_toml)


def test_passphrase_for_an_encrypted_key_in_keys(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "enc.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"test-only-passphrase")))
    entry = {"private_key": str(path), "active": True}
    with pytest.raises(ConfigurationError, match="private_key_passphrase"):
        JWTMiddleware(lambda e, s: [], algorithm="ES256", keys=[entry])
    assert JWTMiddleware(lambda e, s: [], algorithm="ES256", keys=[{**entry, "private_key_passphrase":
                                                                    "test-only-passphrase"}]).keys.can_sign
    assert JWTMiddleware(lambda e, s: [], algorithm="ES256", keys=[entry],
                         private_key_passphrase="test-only-passphrase").keys.can_sign


# -- command line ---------------------------------------------------------------------------------
def test_cli_keys_generate_prints_the_kid_and_keeps_the_private_key_private(tmp_path, capsys):
    out = tmp_path / "k"
    assert cli_main(["keys", "generate", "--alg", "EdDSA", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    private = serialization.load_pem_private_key((out / "private.pem").read_bytes(), None)
    assert f"kid: {kid_of(private, 'EdDSA')}" in printed
    assert stat.S_IMODE(os.stat(out / "private.pem").st_mode) == 0o600


def test_cli_keys_jwks_from_key_files(tmp_path, capsys):
    rsa_key, ec_key = _rsa(), ec.generate_private_key(ec.SECP384R1())
    rsa_priv, _ = write_pair(tmp_path, rsa_key, "rsa")
    _, ec_pub = write_pair(tmp_path, ec_key, "ec")
    assert cli_main(["keys", "jwks", rsa_priv, ec_pub]) == 0
    jwks = json.loads(capsys.readouterr().out)
    assert [(k["alg"], k["kid"]) for k in jwks["keys"]] == [("RS256", kid_of(rsa_key, "RS256")),
                                                            ("ES384", kid_of(ec_key, "ES384"))]
    assert not any(PRIVATE_MEMBERS & set(k) for k in jwks["keys"])
    assert cli_main(["keys", "jwks", "--alg", "PS256", rsa_priv]) == 0
    assert json.loads(capsys.readouterr().out)["keys"][0]["alg"] == "PS256"
    # Mistakes: one line, exit 2.
    for argv, match in [
        (["keys", "jwks", "--alg", "ES256", rsa_priv], "needs an EC key"),
        (["keys", "jwks", str(tmp_path / "missing.pem")], "cannot read"),
        (["keys", "jwks", "--config", "x.toml", rsa_priv], "not both"),
    ]:
        assert cli_main(argv) == 2
        err = capsys.readouterr().err
        assert match in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_keys_jwks_from_a_rotation_config(tmp_path, capsys):
    old, new = _rsa(), _rsa()
    write_pair(tmp_path, old, "old")
    write_pair(tmp_path, new, "new")
    config = tmp_path / "c.toml"
    config.write_text(textwrap.dedent(f"""
        algorithm = "RS256"
        [[keys]]
        private_key = "new.key.pem"
        active = true
        [[keys]]
        public_key = "old.pub.pem"
        [[keys]]
        kid = "hs"
        algorithm = "HS256"
        secret = "{SECRET}"
    """))
    assert cli_main(["keys", "jwks", "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert [k["kid"] for k in json.loads(printed)["keys"]] == [kid_of(new, "RS256"), kid_of(old, "RS256")]
    assert SECRET not in printed and b64(SECRET.encode()) not in printed  # no symmetric key, ever
