"""A real OpenID provider: tokens from the npm package ``oidc-provider``, verified by us.

``tests/oidc/provider.mjs`` runs oidc-provider on 127.0.0.1 (``npm ci`` in ``tests/oidc`` installs
it; ``.ci/run`` does). A client gets JWT access tokens (``typ: at+jwt``) by the client credentials
grant with a resource indicator (RFC 8707): ``https://api.test/rs256`` is signed RS256,
``https://api.test/es256`` ES256, each token's ``aud`` is its resource. The provider rotates its
signing keys on ``POST /admin/rotate``.

The middleware finds the keys by OpenID Connect discovery (``issuer`` + ``audience`` +
``algorithm``), by ``jwks_url``, and through ``providers``; tokens altered in any way are 401;
a rotation at the provider is picked up once the default cooldown allows a refetch.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from jwt_wsgi import JWTMiddleware

from ._services import unavailable
from .conftest import CANARY_API, HS, BufferedClient, b64, bearer, canary_app
from .servers import Server, get, post, server_env
from .test_jwks import FakeClock, Verifier

pytestmark = pytest.mark.slow

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "jwt-wsgi-tests"
RESOURCES = {"RS256": "https://api.test/rs256", "ES256": "https://api.test/es256"}


class OpenIDProvider:
    """``node tests/oidc/provider.mjs PORT SECRET`` as a :class:`~tests.servers.Server`."""

    def __init__(self, log_dir: Path) -> None:
        node = shutil.which("node")
        if node is None:
            unavailable("node is not installed (the OpenID provider tests run oidc-provider)")
        if not (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
            unavailable("oidc-provider is not installed: run `npm ci` in tests/oidc")
        self.client_secret = secrets.token_urlsafe(32)  # TEST-ONLY, new for each run
        self.server = Server([str(node), str(OIDC_DIR / "provider.mjs"), "{port}", self.client_secret],
                             env=server_env(log_dir / "runtime"), log_dir=log_dir, name="oidc-provider",
                             ready_path="/.well-known/openid-configuration")

    def start(self) -> OpenIDProvider:
        self.server.start().wait_ready()
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def issuer(self) -> str:
        return self.server.base_url

    def discovery(self) -> dict[str, Any]:
        response = get(self.issuer, "/.well-known/openid-configuration")
        self.server.check(response.status == 200, f"discovery: {response}")
        data: dict[str, Any] = response.json()
        return data

    def token(self, alg: str = "RS256", scope: str = "read") -> str:
        """An access token for the resource signed with ``alg`` (client credentials, RFC 8707)."""
        form = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": self.client_secret,
                "resource": RESOURCES[alg], "scope": scope}
        response = post(self.issuer, "/token", body=urllib.parse.urlencode(form).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.server.check(response.status == 200, f"token request: {response}")
        token: str = response.json()["access_token"]
        return token

    def rotate(self, *, drop: bool = False) -> list[str]:
        """New signing keys; the old ones stay published unless ``drop``. The new kids."""
        response = post(self.issuer, "/admin/rotate" + ("?drop=1" if drop else ""), body=b"")
        self.server.check(response.status == 200, f"rotate: {response}")
        kids: list[str] = response.json()["kids"]
        return kids


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenIDProvider]:
    idp = OpenIDProvider(tmp_path_factory.mktemp("oidc-provider")).start()
    yield idp
    idp.stop()


def user_of(client: BufferedClient, token: str) -> str | None:
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code == 200, response.data
    user: str | None = json.loads(response.data.split(b" ", 1)[1])["user"]
    return user


def status(client: BufferedClient, token: str) -> int:
    response = client.get("/api/me", headers=bearer(token))
    assert response.status_code != 500, response.data
    if response.status_code != 200:
        assert CANARY_API not in response.data
    return int(response.status_code)


def middleware_client(**options: Any) -> BufferedClient:
    return BufferedClient(JWTMiddleware(canary_app, protect=["/api"], **options))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    head, body, signature = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(head + "==")), json.loads(base64.urlsafe_b64decode(body + "==")),
            signature)


def assemble(header: dict[str, Any], payload: dict[str, Any], signature: str) -> str:
    return ".".join((b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), signature))


# -- the provider's tokens, three ways of finding its keys ---------------------------------------------
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_provider_tokens_verify_through_discovery(provider, alg):
    token = provider.token(alg)
    header, payload, _ = parts(token)
    # What a real provider sends: an RFC 9068 access token, a named key, aud = the resource.
    assert header["typ"] == "at+jwt" and header["alg"] == alg and header["kid"]
    assert payload["aud"] == RESOURCES[alg] and payload["client_id"] == CLIENT_ID
    client = middleware_client(algorithm=alg, issuer=provider.issuer, audience=RESOURCES[alg])
    assert user_of(client, token) == CLIENT_ID
    assert user_of(client, provider.token(alg, scope="read write")) == CLIENT_ID
    other = "ES256" if alg == "RS256" else "RS256"
    assert status(client, provider.token(other)) == 401  # another resource's token: wrong aud and alg


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_provider_tokens_verify_through_jwks_url(provider, alg):
    jwks_uri = provider.discovery()["jwks_uri"]
    client = middleware_client(algorithm=alg, jwks_url=jwks_uri, issuer=provider.issuer, audience=RESOURCES[alg])
    assert user_of(client, provider.token(alg)) == CLIENT_ID
    # The issuer is checked as well as the signature.
    wrong_issuer = middleware_client(algorithm=alg, jwks_url=jwks_uri, issuer="https://other.test",
                                     audience=RESOURCES[alg])
    assert status(wrong_issuer, provider.token(alg)) == 401


def test_provider_tokens_verify_through_providers(provider):
    both = {"issuer": provider.issuer, "audience": list(RESOURCES.values()), "algorithms": ["RS256", "ES256"]}
    discovered = middleware_client(providers=[{**both, "sub_claim": "email"}])
    listed = middleware_client(providers=[{**both, "jwks_url": provider.discovery()["jwks_uri"]}])
    for alg in RESOURCES:
        assert user_of(discovered, provider.token(alg)) == "robot@api.test"
        assert user_of(listed, provider.token(alg)) == CLIENT_ID
    # Next to the middleware's own logins, the token's iss picks the provider's keys.
    ours = middleware_client(secret="our-own-test-only-secret-0123456789-abcdefghijk", issuer="our-login",
                             providers=[both])
    assert user_of(ours, provider.token("ES256")) == CLIENT_ID
    assert status(ours, jwt.encode({"iss": provider.issuer, "aud": RESOURCES["RS256"], "sub": "x",
                                    "exp": int(time.time()) + 60},
                                   "our-own-test-only-secret-0123456789-abcdefghijk", "HS256")) == 401


# -- altered tokens ---------------------------------------------------------------------------------
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_altered_provider_tokens_are_refused(provider, alg):
    client = middleware_client(algorithm=alg, issuer=provider.issuer, audience=RESOURCES[alg])
    token = provider.token(alg)
    assert status(client, token) == 200
    header, payload, signature = parts(token)
    raw_signature = base64.urlsafe_b64decode(signature + "==")
    public_jwk = next(k for k in get(provider.issuer, "/jwks").json()["keys"] if k["kid"] == header["kid"])
    public_pem = jwt.PyJWK(public_jwk).key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    altered = {
        "payload-sub": assemble(header, {**payload, "sub": "admin"}, signature),
        "payload-scope": assemble(header, {**payload, "scope": "read write admin"}, signature),
        "payload-exp": assemble(header, {**payload, "exp": payload["exp"] + 86400}, signature),
        "signature-flipped": token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
        "signature-other-token": ".".join(token.split(".")[:2]) + "." + provider.token(alg).split(".")[2],
        "signature-truncated": ".".join(token.split(".")[:2]) + "." + b64(raw_signature[:-1]),
        "signature-empty": ".".join(token.split(".")[:2]) + ".",
        "alg-none": assemble({**header, "alg": "none"}, payload, ""),
        "alg-hs256-with-public-key": HS(public_pem, {**header, "alg": "HS256"}, payload),
        "alg-swapped": assemble({**header, "alg": "ES256" if alg == "RS256" else "RS256"}, payload, signature),
        "alg-family": assemble({**header, "alg": alg[:2] + "384"}, payload, signature),
        "kid-unknown": assemble({**header, "kid": uuid.uuid4().hex}, payload, signature),
        "kid-of-other-key": assemble({**header, "kid": "nope-" + header["kid"]}, payload, signature),
        "typ-and-kid-dropped": assemble({"alg": alg}, payload, signature),
    }
    for name, forged in altered.items():
        assert status(client, forged) == 401, name
    assert status(client, token) == 200  # the original still verifies


# -- key rotation at the provider ---------------------------------------------------------------------
def test_key_rotation_at_the_provider_is_picked_up_after_the_cooldown(tmp_path):
    """The provider rotates both its keys (RS256 and ES256) at once; one verifier per algorithm,
    default settings (jwks_cooldown 5 s), on a clock the test moves."""
    idp = OpenIDProvider(tmp_path).start()
    try:
        clock = FakeClock()
        verifiers = {alg: Verifier(clock, algorithm=alg, issuer=idp.issuer, audience=RESOURCES[alg])
                     for alg in RESOURCES}
        before = {alg: idp.token(alg) for alg in RESOURCES}
        for alg, verifier in verifiers.items():
            assert verifier.status(before[alg]) == 200
        kids = idp.rotate()  # new keys sign from now on; the old ones stay published
        after = {alg: idp.token(alg) for alg in RESOURCES}
        for alg, verifier in verifiers.items():
            assert parts(after[alg])[0]["kid"] in kids and parts(after[alg])[0]["kid"] != parts(before[alg])[0]["kid"]
            assert verifier.status(after[alg]) == 401  # fetched just now: the cooldown holds
        clock.advance(5)
        for alg, verifier in verifiers.items():
            assert verifier.status(after[alg]) == 200  # the unknown kid refetches
            assert verifier.status(before[alg]) == 200  # the old key still verifies what it signed
        # The provider retires the old keys: the refetch for the next new kid drops them too.
        idp.rotate(drop=True)
        clock.advance(5)
        for alg, verifier in verifiers.items():
            assert verifier.status(idp.token(alg)) == 200
            assert verifier.status(before[alg]) == 401
            assert verifier.keys.version == 1  # a cache of verified tokens starts over
    finally:
        idp.stop()


def test_check_fetches_the_providers_discovery_and_keys(provider, tmp_path):
    from .test_cli import ok, run

    config = tmp_path / "idp.toml"
    config.write_text(f'store = "sqlite:///{tmp_path / "store.db"}"\nalgorithm = "ES256"\n'
                      f'issuer = "{provider.issuer}"\naudience = "{RESOURCES["ES256"]}"\nprotect = ["/api"]\n')
    result = ok(run("check", "--config", str(config), cwd=tmp_path, secret=None))
    assert f"issuer {provider.issuer} (discovery): {provider.discovery()['jwks_uri']}: 1 usable key(s)" \
        in result.stderr
