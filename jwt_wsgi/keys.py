"""Keys: loaded and checked once, bound to one algorithm, rotated by ``kid``, published as a JWK Set.

The algorithm is pinned by configuration, never read from a token (RFC 8725 §2.1, §3.1). Each
verification key is a :class:`jwt.PyJWK`, which binds key and algorithm together: PyJWT refuses
a token whose ``alg`` differs from the key's, whatever the ``algorithms`` list says.

A token's ``kid`` is only a lookup key into the keys configured here (or fetched from the one
configured JWK Set URL). The ``jwk``, ``jku``, ``x5u`` and ``x5c`` headers are never read: a
token does not get to say which key verifies it (RFC 8725 §3.10).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from .errors import ConfigurationError
from .jose import (
    EC_ALGORITHMS,
    HMAC_ALGORITHMS,
    MAX_KIDLESS_TRIES,
    PUBLIC_MEMBERS,
    REQUIRED_JWK_MEMBERS,
    KidTable,
    check_key_type,
)
from .settings import KeySpec, Provider, Settings

if TYPE_CHECKING:
    from .remote import RemoteKeySet


@dataclass(frozen=True)
class Key:
    """One key: its ``kid``, its algorithm, and the PyJWT objects that sign and verify."""

    kid: str | None
    algorithm: str
    verifier: jwt.PyJWK
    signer: Any | None  # private key object or HMAC secret bytes; None for verify-only keys
    public_jwk: dict[str, Any] | None  # None for symmetric keys: never published


class KeySource(Protocol):
    """Where a token's verification keys come from: static keys, or a remote JWK Set."""

    algorithms: tuple[str, ...]

    def verification_keys(self, header: dict[str, Any]) -> tuple[jwt.PyJWK, ...]:
        """The keys to try for a token's header, in order (empty, or :class:`InvalidToken`:
        none fits)."""
        ...


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url), used as the default ``kid``."""
    members = {name: jwk[name] for name in REQUIRED_JWK_MEMBERS[jwk["kty"]]}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _read(option: str, path: str, where: str = "") -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigurationError(option, f"{where}cannot read key file {path!r}: {exc.strerror}") from None


def _public_bytes(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)  # type: ignore[no-any-return]


def _load(
    alg: str,
    *,
    secret: bytes | None = None,
    private_key: str | None = None,
    public_key: str | None = None,
    passphrase: bytes | None = None,
    kid: str | None = None,
    option: str | None = None,
    where: str = "",
) -> Key:
    """One key, every check done here, once. Errors name ``option`` (or the top-level options)."""

    def error(name: str, message: str) -> ConfigurationError:
        return ConfigurationError(option or name, where + message)

    if alg in HMAC_ALGORITHMS:
        assert secret is not None  # validated by Settings
        jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()}
        return Key(kid=kid, algorithm=alg, verifier=jwt.PyJWK(jwk, algorithm=alg), signer=secret, public_jwk=None)

    private = public = None
    if private_key:
        data = _read(option or "private_key", private_key, where)
        try:
            private = serialization.load_pem_private_key(data, password=passphrase)
        except TypeError:
            raise error(
                "private_key_passphrase",
                "the private key is encrypted: set private_key_passphrase (JWT_WSGI_PRIVATE_KEY_PASSPHRASE)"
                if passphrase is None
                else "the private key is not encrypted: remove private_key_passphrase",
            ) from None
        except ValueError:
            raise error(
                "private_key", f"{private_key!r} is not a PEM private key (or the passphrase is wrong)"
            ) from None
        check_key_type(option or "private_key", alg, private, where)
    if public_key:
        data = _read(option or "public_key", public_key, where)
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError:
            raise error("public_key", f"{public_key!r} is not a PEM public key") from None
        check_key_type(option or "public_key", alg, public, where)
    if private is not None:
        derived = private.public_key()
        if public is not None and _public_bytes(public) != _public_bytes(derived):
            raise error("public_key", "does not belong to private_key")
        public = derived
    assert public is not None  # Settings requires one of the two
    return _asymmetric_key(alg, public, private, kid)


def _asymmetric_key(alg: str, public: Any, private: Any | None, kid: str | None) -> Key:
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(public))
    jwk = {name: jwk[name] for name in PUBLIC_MEMBERS[jwk["kty"]]}
    kid = kid or thumbprint(jwk)
    jwk.update(kid=kid, alg=alg, use="sig")
    return Key(kid=kid, algorithm=alg, verifier=jwt.PyJWK(jwk, algorithm=alg), signer=private, public_jwk=jwk)


def load_key(settings: Settings) -> Key:
    """The one signing/verification key the top-level options describe."""
    return _load(
        settings.algorithm,
        secret=settings.secret,
        private_key=settings.private_key,
        public_key=settings.public_key,
        passphrase=settings.private_key_passphrase,
    )


def load_spec(option: str, index: int, spec: KeySpec, default_alg: str, passphrase: bytes | None = None) -> Key:
    """The key of one ``keys`` entry (``option`` and ``index`` name it in errors)."""
    where = f"entry {index}" + (f" (kid {spec.kid!r})" if spec.kid else "") + ": "
    return _load(
        spec.algorithm or default_alg,
        secret=spec.secret,
        private_key=spec.private_key,
        public_key=spec.public_key,
        passphrase=spec.private_key_passphrase if spec.private_key_passphrase is not None else passphrase,
        kid=spec.kid,
        option=option,
        where=where,
    )


class StaticKeys:
    """Keys known at construction, looked up by ``kid`` (the rules of :class:`~jwt_wsgi.jose.KidTable`).

    - A ``kid`` that names a configured key selects that key, and only it.
    - With exactly one key for the token's algorithm, any other ``kid`` is verified with that
      key: providers name their keys (``A-ec``, ``issuer-key-2024``) where a downloaded PEM
      file carries no name, and a single top-level ``secret`` has no ``kid`` at all.
    - A token without ``kid`` (issued under a top-level ``secret`` before the move to ``keys``,
      or by a provider that names no keys) is tried against the keys of its algorithm in the
      configured order, at most :data:`MAX_KIDLESS_TRIES` of them; the others verify only the
      tokens that name their ``kid``.

    The cost of a forged token stays bounded: it is at most :data:`MAX_KIDLESS_TRIES` signature
    checks (each microseconds for HMAC, tens of microseconds for RSA, EC or EdDSA public keys),
    the candidates are worked out once here (no per-token search), and a token that names an
    unknown ``kid`` among several keys of its algorithm is refused without any check at all.

    :param keys: the loaded keys; their kids are unique (checked by :class:`Settings`).
    """

    def __init__(self, keys: Sequence[Key]) -> None:
        self.keys = tuple(keys)
        self.algorithms = _unique(k.algorithm for k in self.keys)
        self._select = KidTable.build((k.kid, k.algorithm, k.verifier) for k in self.keys).select

    def verification_keys(self, header: dict[str, Any]) -> tuple[jwt.PyJWK, ...]:
        """The keys to try for a token's header, in order; empty when no configured key fits."""
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or not (kid is None or isinstance(kid, str)):
            return ()
        return self._select(kid, alg, any_kid=True)

    def describe(self) -> list[str]:
        """How tokens find their key here, in words (``jwt-wsgi check``)."""
        lines = []
        for alg in self.algorithms:
            keys = [k for k in self.keys if k.algorithm == alg]
            names = ", ".join(_name(k) for k in keys)
            lines.append(f"{alg}: {len(keys)} verification key{'s' if len(keys) != 1 else ''} ({names})")
            if len(keys) == 1:
                lines.append(f"  {alg} tokens are verified with it, whatever kid they name, and without kid")
                continue
            tried = keys[:MAX_KIDLESS_TRIES]
            lines.append(f"  {alg} tokens naming one of these kids are verified with that key only; "
                         "naming another kid: refused")
            lines.append(f"  {alg} tokens without kid (issued before keys had kids, e.g. under secret): "
                         f"tried against {', '.join(_name(k) for k in tried)}, in this order")
            if len(keys) > len(tried):
                rest = ", ".join(_name(k) for k in keys[len(tried):])
                lines.append(f"  ({rest}: only for tokens naming their kid; at most {MAX_KIDLESS_TRIES} keys "
                             "are tried for a token without kid)")
        return lines


def _name(key: Key) -> str:
    return repr(key.kid) if key.kid is not None else "secret, no kid"


class _NoKeys:
    """A middleware that only accepts tokens of ``providers`` has no keys of its own."""

    algorithms: tuple[str, ...] = ()

    def verification_keys(self, header: dict[str, Any]) -> tuple[jwt.PyJWK, ...]:
        return ()


def _describe_source(source: KeySource) -> list[str]:
    if isinstance(source, StaticKeys):
        return source.describe()
    if not _is_remote(source):
        return ["verifies: no keys of its own (only the providers' tokens)"]
    where = source.jwks_url or f"discovered from {source.issuer}"
    return [f"verifies: {', '.join(source.algorithms)} keys of the JWK Set {where}, fetched and cached; "
            "a token names its key by kid; one without kid is tried against the set's keys of its algorithm "
            f"(at most {MAX_KIDLESS_TRIES}); an unknown kid refetches the set, then uses the algorithm's key "
            "if the set has only one"]


def _is_remote(source: KeySource) -> TypeGuard[RemoteKeySet]:
    return not isinstance(source, (StaticKeys, _NoKeys))


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _remote(
    settings: Settings, algorithms: Sequence[str], jwks_url: str | None, issuer: str | None, ring: KeyRing
) -> RemoteKeySet:
    from .remote import RemoteKeySet  # only deployments with a JWK Set URL load the HTTP client

    return RemoteKeySet(
        on_change=ring._retired,
        clock=ring.clock,
        algorithms=algorithms,
        jwks_url=jwks_url,
        issuer=issuer,
        ttl=settings.jwks_cache_ttl,
        timeout=settings.jwks_timeout,
        cooldown=settings.jwks_cooldown,
    )


@dataclass(frozen=True)
class ProviderKeys:
    """Another issuer: its settings and where its keys come from."""

    provider: Provider
    source: KeySource


def _provider_keys(settings: Settings, provider: Provider, ring: KeyRing) -> ProviderKeys:
    if provider.keys:
        keys = [load_spec("providers", i, spec, provider.algorithms[0]) for i, spec in enumerate(provider.keys)]
        return ProviderKeys(provider, StaticKeys(keys))
    # jwks_url, or OpenID Connect discovery from the issuer when neither URL nor keys is given.
    return ProviderKeys(provider, _remote(settings, provider.algorithms, provider.jwks_url, provider.issuer, ring))


class KeyRing:
    """The keys a middleware signs and verifies with.

    - one key: ``secret``, or ``private_key``/``public_key`` (its ``kid`` is the RFC 7638 thumbprint);
    - several keys for rotation: ``keys``, the ``active`` one signs, all of them verify;
    - a JWK Set published elsewhere: ``jwks_url`` (fetched lazily, after the server forks);
    - other issuers: ``providers`` (see :class:`~jwt_wsgi.tokens.TokenVerifier`).

    :param settings: validated settings.
    :param clock: wall-clock seconds (the middleware's clock, default :func:`time.time`): the
        remote JWK Sets count their TTL and cooldown on it.
    """

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: Bumped when a remote JWK Set drops a key: caches of verified tokens start over.
        self.version = 0
        self.active: Key | None = None
        self.remote: RemoteKeySet | None = None
        keys: list[Key] = []
        if settings.keys:
            for index, spec in enumerate(settings.keys):
                key = load_spec("keys", index, spec, settings.algorithm, settings.private_key_passphrase)
                keys.append(key)
                if spec.active:
                    self.active = key
        elif settings.secret is not None or settings.private_key or settings.public_key:
            self.active = load_key(settings)
            keys.append(self.active)
        self.keys = tuple(keys)
        source: KeySource
        if settings.jwks_url:
            source = self.remote = _remote(settings, (settings.algorithm,), settings.jwks_url, None, self)
        elif settings.discovers_keys:
            # Only an issuer: its OpenID Connect discovery document names the JWK Set.
            source = self.remote = _remote(settings, (settings.algorithm,), None, settings.issuer, self)
        elif keys:
            source = StaticKeys(keys)
        else:
            source = _NoKeys()
        self.source = source
        self.algorithms = list(source.algorithms)
        #: The lookup the verifier calls per token: the keys to try, in order.
        self.verification_keys = source.verification_keys
        self.providers = tuple(_provider_keys(settings, p, self) for p in settings.providers)
        #: The remote JWK Sets among the sources (own and providers'); empty for static keys.
        self.remotes: tuple[RemoteKeySet, ...] = tuple(
            s for s in (self.source, *(p.source for p in self.providers)) if _is_remote(s)
        )

    def _retired(self) -> None:
        self.version += 1

    def refresh_due(self) -> int:
        """Refresh the remote JWK Sets whose TTL is over; the :attr:`version` afterwards.

        For callers that skip key lookups (a cache of verified tokens): without this, a cached
        token would keep its JWK Set from ever refreshing, and a dropped key from taking effect.
        """
        for remote in self.remotes:
            remote.refresh_if_due()
        return self.version

    def ready(self) -> bool:
        """Whether every key source can verify now: static keys always; a remote JWK Set once
        usable keys were fetched (see :meth:`RemoteKeySet.ready`, which may fetch when there
        are none yet)."""
        return all(remote.ready() for remote in self.remotes)

    @property
    def verifies(self) -> bool:
        """Whether this middleware has keys of its own (not only other issuers')."""
        return not isinstance(self.source, _NoKeys)

    @property
    def can_sign(self) -> bool:
        return self.active is not None and self.active.signer is not None

    def signing(self) -> tuple[Any, str, dict[str, Any]]:
        """(key, algorithm, extra JOSE headers) for issuing a token."""
        if self.active is None or self.active.signer is None:
            raise ConfigurationError("private_key", "issuing tokens needs private_key (or an active key in keys)")
        headers = {"kid": self.active.kid} if self.active.kid else {}
        return self.active.signer, self.active.algorithm, headers

    def describe(self) -> list[str]:
        """Which key signs, which verify, what tokens without ``kid`` do: for ``jwt-wsgi check``."""
        lines = []
        if self.active is not None and self.active.signer is not None:
            if self.active.kid:
                lines.append(f"signs: {self.active.algorithm} with key {self.active.kid!r} "
                             "(its kid is in the header of every token issued)")
            else:
                lines.append(f"signs: {self.active.algorithm} with the secret (issued tokens carry no kid)")
        else:
            lines.append("signs: nothing (verify only: no login, refresh or CLI tokens)")
        lines.extend(_describe_source(self.source))
        for entry in self.providers:
            lines.append(f"provider {entry.provider.issuer}:")
            lines.extend("  " + line for line in _describe_source(entry.source))
        return lines

    def jwks(self) -> dict[str, Any] | None:
        """The public JWK Set, or ``None`` when there is no public key to publish.

        Every configured public key is published, the active one first: services that verify
        our tokens need the retired keys until the last token signed by them has expired.
        Symmetric keys are never published; keys fetched from a JWK Set are someone else's.
        """
        ordered = sorted(self.keys, key=lambda k: k is not self.active)
        published = [dict(k.public_jwk) for k in ordered if k.public_jwk is not None]
        return {"keys": published} if published else None


# -- JWK Sets for the command line -------------------------------------------------------------------
def infer_algorithm(key: Any) -> str:
    """The algorithm a key file is most likely meant for: RS256, ES256/384/512 by curve, EdDSA."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RS256"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        for alg, curve in EC_ALGORITHMS.items():
            if key.curve.name == curve:
                return alg
        raise ConfigurationError("key file", f"unsupported curve {key.curve.name}")
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey,
                        ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "EdDSA"
    raise ConfigurationError("key file", "not an RSA, EC or Ed25519/Ed448 key")


def jwks_for_files(paths: Sequence[str], algorithm: str | None = None) -> dict[str, Any]:
    """The public JWK Set of PEM key files (public or unencrypted private keys)."""
    published = []
    for path in paths:
        data = _read("key file", path)
        key: Any
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError:
            try:
                key = serialization.load_pem_private_key(data, password=None).public_key()
            except TypeError:
                raise ConfigurationError(
                    "key file", f"{path!r} is encrypted: give its public key file instead"
                ) from None
            except ValueError:
                raise ConfigurationError("key file", f"{path!r} is not a PEM public or private key") from None
        alg = algorithm or infer_algorithm(key)
        if alg in HMAC_ALGORITHMS:
            raise ConfigurationError("--alg", f"{alg} uses a shared secret: there is no public key to publish")
        check_key_type("key file", alg, key, f"{path}: ")
        published.append(_asymmetric_key(alg, key, None, None).public_jwk)
    return {"keys": published}
