"""JOSE tables: the algorithms this package speaks, what each one needs from a key, and which
key a token's header selects.

RFC 7518 (JWA), RFC 8037 (EdDSA) and RFC 7638 (thumbprints). Only :mod:`jwt_wsgi.errors` is
imported here, so settings, keys and the remote key client can all depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import jwt
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


class KidTable(NamedTuple):
    """Which keys a token's header selects, worked out once for a set of keys (configured or
    fetched), so that a lookup is two dictionary reads and no search.

    Built by :meth:`build`; the same rules for static keys and remote JWK Sets.
    """

    by_kid: dict[str, dict[str, tuple[jwt.PyJWK]]]  # kid -> algorithm -> its key
    without_kid: dict[str, tuple[jwt.PyJWK, ...]]  # algorithm -> the keys a token without kid is tried with
    only: dict[str, tuple[jwt.PyJWK]]  # algorithm -> its key, when there is exactly one for it

    @classmethod
    def build(cls, entries: Iterable[tuple[str | None, str, jwt.PyJWK]]) -> KidTable:
        """The table of ``(kid, algorithm, key)`` entries, in order of preference (a duplicate
        ``kid`` for the same algorithm: the first one wins)."""
        by_kid: dict[str, dict[str, tuple[jwt.PyJWK]]] = {}
        per_alg: dict[str, list[jwt.PyJWK]] = {}
        for kid, alg, key in entries:
            per_alg.setdefault(alg, []).append(key)
            if kid is not None:
                by_kid.setdefault(kid, {}).setdefault(alg, (key,))
        return cls(
            by_kid,
            {alg: tuple(keys[:MAX_KIDLESS_TRIES]) for alg, keys in per_alg.items()},
            {alg: (keys[0],) for alg, keys in per_alg.items() if len(keys) == 1},
        )

    def select(self, kid: str | None, alg: str, *, any_kid: bool) -> tuple[jwt.PyJWK, ...]:
        """The keys to try for a token's ``kid`` and ``alg``, in order (empty: none fits).

        - A ``kid`` the table knows selects that key, and only it.
        - A token without ``kid`` is tried against the keys of its algorithm, at most
          :data:`MAX_KIDLESS_TRIES` of them.
        - An unknown ``kid`` selects nothing, unless ``any_kid`` and the algorithm has exactly
          one key: then that key (an issuer that names its keys differently from its tokens,
          a single ``secret`` that has no ``kid`` at all).
        """
        if kid is None:
            return self.without_kid.get(alg, ())
        named = self.by_kid.get(kid)
        if named is not None:
            return named.get(alg, ())
        return self.only.get(alg, ()) if any_kid else ()
