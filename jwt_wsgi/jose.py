"""JOSE tables: the algorithms this package speaks and what each one needs from a key.

RFC 7518 (JWA), RFC 8037 (EdDSA) and RFC 7638 (thumbprints). No other module of the package is
imported here, so settings, keys and the remote key client can all depend on it.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .errors import ConfigurationError

# Algorithm name -> minimum HMAC secret length in bytes (RFC 7518 §3.2: at least the hash size).
HMAC_ALGORITHMS = {"HS256": 32, "HS384": 48, "HS512": 64}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
# Algorithm name -> the curve it signs with (cryptography's name).
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
ASYMMETRIC_ALGORITHMS = (*RSA_ALGORITHMS, *EC_ALGORITHMS, "EdDSA")
ALGORITHMS = (*HMAC_ALGORITHMS, *ASYMMETRIC_ALGORITHMS)

# RFC 7638 §3.2: the members a thumbprint covers; also the only members a published or
# fetched public JWK keeps (a "private" member in a JWK Set is dropped, never used).
PUBLIC_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
REQUIRED_JWK_MEMBERS = {**PUBLIC_MEMBERS, "oct": ("k", "kty")}
# The JWK key type each asymmetric algorithm needs (RFC 7518 §6, RFC 8037).
KEY_TYPES = {**{alg: "RSA" for alg in RSA_ALGORITHMS}, **{alg: "EC" for alg in EC_ALGORITHMS}, "EdDSA": "OKP"}
CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}

#: How many keys a token without ``kid`` is tried against, at most, per algorithm.
MAX_KIDLESS_TRIES = 3


def check_key_type(option: str, algorithm: str, key: Any, where: str = "") -> None:
    """Raise :class:`ConfigurationError` unless ``key`` has the type and size ``algorithm`` needs."""
    if algorithm in RSA_ALGORITHMS:
        if not isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
            raise ConfigurationError(option, f"{where}{algorithm} needs an RSA key")
        if key.key_size < 2048:
            raise ConfigurationError(option, f"{where}RSA keys must have at least 2048 bits, got {key.key_size}")
    elif algorithm in EC_ALGORITHMS:
        if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
            raise ConfigurationError(option, f"{where}{algorithm} needs an EC key")
        if key.curve.name != EC_ALGORITHMS[algorithm]:
            raise ConfigurationError(
                option, f"{where}{algorithm} needs a {EC_ALGORITHMS[algorithm]} key, got {key.curve.name}"
            )
    elif algorithm == "EdDSA":
        if not isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey,
                                ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
            raise ConfigurationError(option, f"{where}EdDSA needs an Ed25519 or Ed448 key")
