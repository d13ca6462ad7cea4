"""Keys: loaded and checked once, bound to one algorithm, published as a JWK Set.

The algorithm is pinned by configuration, never read from a token (RFC 8725 §2.1, §3.1). Each
verification key is a :class:`jwt.PyJWK`, which binds key and algorithm together: PyJWT refuses
a token whose ``alg`` differs from the key's, whatever the ``algorithms`` list says.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .errors import ConfigurationError, InvalidToken
from .settings import EC_ALGORITHMS, HMAC_ALGORITHMS, RSA_ALGORITHMS, Settings

_REQUIRED_JWK_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "oct": ("k", "kty")}


@dataclass(frozen=True)
class Key:
    """One key: its ``kid``, its algorithm, and the PyJWT objects that sign and verify."""

    kid: str | None
    algorithm: str
    verifier: jwt.PyJWK
    signer: Any | None  # private key object or HMAC secret bytes; None for verify-only keys
    public_jwk: dict[str, Any] | None  # None for symmetric keys: never published


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url), used as the default ``kid``."""
    members = {name: jwk[name] for name in _REQUIRED_JWK_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _read(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigurationError(option, f"cannot read key file {path!r}: {exc.strerror}") from None


def _check_type(option: str, algorithm: str, key: Any) -> None:
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            raise ConfigurationError(option, f"{algorithm} needs an RSA key")
        if key.key_size < 2048:
            raise ConfigurationError(option, f"RSA keys must have at least 2048 bits, got {key.key_size}")
    elif algorithm in EC_ALGORITHMS:
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            raise ConfigurationError(option, f"{algorithm} needs an EC key")
        if key.curve.name != EC_ALGORITHMS[algorithm]:
            raise ConfigurationError(option, f"{algorithm} needs a {EC_ALGORITHMS[algorithm]} key, got {key.curve.name}")
    elif algorithm == "EdDSA":
        if not isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey,
                                ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
            raise ConfigurationError(option, "EdDSA needs an Ed25519 or Ed448 key")


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def load_key(settings: Settings) -> Key:
    """The signing/verification key the settings describe; every check happens here, once."""
    alg = settings.algorithm
    if alg in HMAC_ALGORITHMS:
        assert settings.secret is not None  # validated by Settings
        secret = settings.secret
        jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
        return Key(kid=None, algorithm=alg, verifier=jwt.PyJWK(jwk, algorithm=alg), signer=secret, public_jwk=None)

    private = public = None
    if settings.private_key:
        data = _read("private_key", settings.private_key)
        try:
            private = serialization.load_pem_private_key(data, password=settings.private_key_passphrase)
        except TypeError:
            raise ConfigurationError(
                "private_key_passphrase",
                "the private key is encrypted: set private_key_passphrase (JWT_WSGI_PRIVATE_KEY_PASSPHRASE)"
                if settings.private_key_passphrase is None
                else "the private key is not encrypted: remove private_key_passphrase",
            ) from None
        except ValueError:
            raise ConfigurationError(
                "private_key", f"{settings.private_key!r} is not a PEM private key (or the passphrase is wrong)"
            ) from None
        _check_type("private_key", alg, private)
    if settings.public_key:
        data = _read("public_key", settings.public_key)
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError:
            raise ConfigurationError("public_key", f"{settings.public_key!r} is not a PEM public key") from None
        _check_type("public_key", alg, public)
    if private is not None:
        derived = private.public_key()
        if public is not None and _public_bytes(public) != _public_bytes(derived):
            raise ConfigurationError("public_key", "does not belong to private_key")
        public = derived
    assert public is not None  # Settings requires one of the two
    algo = jwt.get_algorithm_by_name(alg)
    jwk = json.loads(algo.to_jwk(public))
    kid = thumbprint(jwk)
    jwk.update(kid=kid, alg=alg, use="sig")
    return Key(kid=kid, algorithm=alg, verifier=jwt.PyJWK(jwk, algorithm=alg), signer=private, public_jwk=jwk)


class KeyRing:
    """The keys a middleware signs and verifies with.

    :param settings: validated settings.
    """

    def __init__(self, settings: Settings) -> None:
        self.active = load_key(settings)
        self.algorithms = [self.active.algorithm]
        self._by_kid = {self.active.kid: self.active} if self.active.kid else {}

    @property
    def can_sign(self) -> bool:
        return self.active.signer is not None

    def signing(self) -> tuple[Any, str, dict[str, Any]]:
        """(key, algorithm, extra JOSE headers) for issuing a token."""
        if self.active.signer is None:
            raise ConfigurationError("private_key", "issuing tokens needs private_key")
        headers = {"kid": self.active.kid} if self.active.kid else {}
        return self.active.signer, self.active.algorithm, headers

    def verification_key(self, header: dict[str, Any]) -> jwt.PyJWK:
        """The key for a token's header. A ``kid`` is only a lookup key among configured keys."""
        kid = header.get("kid")
        if kid is None or not self._by_kid:
            return self.active.verifier
        found = self._by_kid.get(kid) if isinstance(kid, str) else None
        if found is None:
            raise InvalidToken()
        return found.verifier

    def jwks(self) -> dict[str, Any] | None:
        """The public JWK Set, or ``None`` when signing is symmetric (nothing may be published)."""
        keys = [k.public_jwk for k in self._by_kid.values() if k.public_jwk is not None]
        return {"keys": keys} if keys else None
