"""A pytest plugin with tokens for testing an application behind :class:`~jwt_wsgi.JWTMiddleware`.

Installed with jwt_wsgi (entry point ``pytest11``), it adds two fixtures:

- ``jwt_middleware``: yours to override, returning the middleware your application is wrapped
  in (or the :class:`~jwt_wsgi.Settings` it is built from);
- ``jwt_tokens``: a :class:`TokenFactory` minting tokens with that middleware's own keys,
  issuer and audience: valid, scoped, expired, meant for another audience or issuer, forged.

.. code-block:: python

    # conftest.py
    @pytest.fixture
    def jwt_middleware():
        return myapp.application          # the JWTMiddleware

    # test_api.py
    def test_admin(jwt_tokens):
        client = werkzeug.test.Client(myapp.application)
        assert client.get("/api/admin", headers=jwt_tokens.headers(scopes=["admin"])).status_code == 200
        assert client.get("/api/admin", headers=jwt_tokens.headers(jwt_tokens.expired())).status_code == 401

The plugin is only a fixture definition until a test asks for ``jwt_tokens``: nothing is built,
read or imported beyond jwt_wsgi itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pytest

from .claims import MINTED_CLAIMS

if TYPE_CHECKING:
    from .middleware import JWTMiddleware
    from .settings import Settings

__all__ = ["TokenFactory", "jwt_middleware", "jwt_tokens"]

_OVERRIDE = (
    "jwt_wsgi.testing: override the jwt_middleware fixture (in your conftest.py) to return the "
    "JWTMiddleware your application is wrapped in, or its Settings"
)


def _no_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
    return []


class TokenFactory:
    """Mints tokens as ``middleware`` issues them, and variations it must refuse.

    Tokens come from :meth:`JWTMiddleware.issue_tokens <jwt_wsgi.JWTMiddleware.issue_tokens>`,
    so they carry what the login endpoint puts in them (``sub``, ``iat``, ``exp``, ``jti``,
    ``type``, ``fam``, ``fresh``, and ``iss``/``aud`` when configured), signed with the
    middleware's active key (``kid`` included), and refresh and logout work on them.

    :param target: a :class:`~jwt_wsgi.JWTMiddleware` (Flask: the app after
        :func:`jwt_wsgi.contrib.flask.protect`, or ``app.wsgi_app``), or
        :class:`~jwt_wsgi.Settings` (a middleware is built from them, in front of an empty app).
    :param clock: seconds since the epoch, for tokens relative to a clock of your own [the
        middleware's ``clock``].
    """

    def __init__(self, target: JWTMiddleware | Settings | Any, *, clock: Any = None) -> None:
        from .middleware import JWTMiddleware
        from .settings import Settings

        if isinstance(target, Settings):
            target = JWTMiddleware(_no_app, target)
        wrapped = getattr(target, "wsgi_app", None)  # a Flask app after protect()
        if isinstance(wrapped, JWTMiddleware):
            target = wrapped
        if not isinstance(target, JWTMiddleware):
            raise TypeError(f"{_OVERRIDE}; got {type(target).__name__}")
        if target.issuer is None:
            raise ValueError(
                "jwt_wsgi.testing: this middleware only verifies tokens (no secret or private key to "
                "sign with); mint test tokens with your identity provider instead"
            )
        self.middleware = target
        self.settings = target.settings
        self.clock = target.clock if clock is None else clock

    # -- tokens ------------------------------------------------------------------------------------
    def token(
        self,
        sub: str = "alice",
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] | None = None,
        claims: Mapping[str, Any] | None = None,
        ttl: float | None = None,
        fresh: bool = True,
    ) -> str:
        """A valid access token.

        :param scopes: put in the ``scope`` claim, space-separated.
        :param roles: put in the ``roles`` claim (a list).
        :param claims: more claims; here even ``exp``, ``aud``... may be set, to build odd tokens.
        :param ttl: seconds until it expires (default: the middleware's ``access_ttl``).
        :param fresh: as from a password login (``True``), or as from a refresh (``False``):
            what ``requires(fresh=True)`` tells apart.
        """
        return self._mint(sub, scopes, roles, claims, ttl, {}, fresh=fresh)

    def login(
        self,
        sub: str = "alice",
        *,
        scopes: Iterable[str] = (),
        roles: Iterable[str] | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """What a password login answers: ``access_token``, ``refresh_token``, ``expires_in``...

        For tests of refresh and logout: the refresh token works at ``refresh_path`` (unless a
        users file or ``authenticate.lookup`` there does not know ``sub``).
        """
        return self.middleware.issue_tokens(sub, self._claims(scopes, roles, claims))

    def expired(self, sub: str = "alice", *, scopes: Iterable[str] = (), roles: Iterable[str] | None = None,
                claims: Mapping[str, Any] | None = None) -> str:
        """A token that expired an hour ago (well beyond any ``leeway``): 401 ``token_expired``."""
        past = int(self.clock()) - 3600 - int(self.settings.leeway)
        return self._mint(sub, scopes, roles, claims, None, {"iat": past - 1800, "exp": past})

    def wrong_audience(self, sub: str = "alice", *, audience: str = "https://someone-else.example",
                       scopes: Iterable[str] = (), roles: Iterable[str] | None = None,
                       claims: Mapping[str, Any] | None = None) -> str:
        """A token for another audience: 401 ``invalid_token`` (also where no ``audience`` is set)."""
        return self._mint(sub, scopes, roles, claims, None, {"aud": audience})

    def wrong_issuer(self, sub: str = "alice", *, issuer: str = "https://someone-else.example",
                     scopes: Iterable[str] = (), roles: Iterable[str] | None = None,
                     claims: Mapping[str, Any] | None = None) -> str:
        """A token from another issuer: 401 ``invalid_token`` where ``issuer`` is set."""
        return self._mint(sub, scopes, roles, claims, None, {"iss": issuer})

    def forged(self, sub: str = "alice", **options: Any) -> str:
        """A well-formed token with the right algorithm and claims, signed with a key nobody trusts."""
        token = self.token(sub, **options)
        import jwt

        payload = jwt.decode(token, options={"verify_signature": False})
        header = jwt.get_unverified_header(token)
        algorithm = header.pop("alg")
        header.pop("typ", None)
        return jwt.encode(payload, _stranger_key(algorithm), algorithm=algorithm, headers=header or None)

    # -- for test clients ----------------------------------------------------------------------------
    def headers(self, token: str | None = None, **options: Any) -> dict[str, str]:
        """The request headers that carry ``token`` (minted with :meth:`token` ``**options`` if not given).

        ``Authorization: Bearer ...``, or the raw token in a custom ``header_name`` (``TOKEN``).
        """
        if token is None:
            token = self.token(**options)
        elif options:
            raise TypeError("headers(): pass a token or options to mint one, not both")
        name = self.settings.header_name
        if name.lower() == "authorization":
            return {"Authorization": f"Bearer {token}"}
        return {name: token}

    # -- the one place tokens are made ------------------------------------------------------------------
    @staticmethod
    def _claims(scopes: Iterable[str], roles: Iterable[str] | None,
                claims: Mapping[str, Any] | None) -> dict[str, Any]:
        if isinstance(scopes, str) or isinstance(roles, str):
            raise TypeError("scopes and roles take lists of names, not a string")
        extra: dict[str, Any] = {}
        scope_list = list(scopes)
        if scope_list:
            extra["scope"] = " ".join(scope_list)
        if roles is not None:
            extra["roles"] = list(roles)
        extra.update(claims or {})
        return extra

    def _mint(
        self,
        sub: str,
        scopes: Iterable[str],
        roles: Iterable[str] | None,
        claims: Mapping[str, Any] | None,
        ttl: float | None,
        overrides: Mapping[str, Any],
        *,
        fresh: bool = True,
    ) -> str:
        extra = self._claims(scopes, roles, claims)
        # The claims the middleware sets itself (exp, aud, type, ...) cannot be asked of
        # issue_tokens: they are changed afterwards, and the token signed again.
        reserved = {k: v for k, v in extra.items() if k in MINTED_CLAIMS}
        token = str(self.middleware.issue_tokens(
            sub, {k: v for k, v in extra.items() if k not in reserved}, fresh=fresh)["access_token"])
        import jwt

        payload = jwt.decode(token, options={"verify_signature": False})
        changes = {**reserved, **overrides}
        if ttl is not None:
            changes.setdefault("exp", int(payload["iat"] + ttl))
        changes = {k: v for k, v in changes.items() if payload.get(k) != v}
        if not changes:
            return token
        key, algorithm, headers = self.middleware.keys.signing()
        return jwt.encode({**payload, **changes}, key, algorithm=algorithm, headers=headers or None)


def _stranger_key(algorithm: str) -> Any:
    """A fresh key of the kind ``algorithm`` signs with."""
    if algorithm.startswith("HS"):
        import secrets

        return secrets.token_bytes(64)
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm.startswith(("RS", "PS")):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    return ec.generate_private_key(curves[algorithm])


@pytest.fixture
def jwt_middleware() -> Any:
    """Override me: the :class:`~jwt_wsgi.JWTMiddleware` (or :class:`~jwt_wsgi.Settings`) under test."""
    pytest.fail(_OVERRIDE, pytrace=False)


@pytest.fixture
def jwt_tokens(jwt_middleware: Any) -> TokenFactory:
    """A :class:`TokenFactory` bound to the ``jwt_middleware`` fixture."""
    return TokenFactory(jwt_middleware)
