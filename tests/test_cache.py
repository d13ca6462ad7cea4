"""The cache of verified tokens: fast, bounded, never wrong (issue 7, item 3)."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from jwt_wsgi import JWTMiddleware
from jwt_wsgi.cache import VerifiedTokens

from .conftest import SECRET, BufferedClient, bearer, canary_app, login, mint


class Counting:
    """Wraps the middleware's verifier to count full verifications."""

    def __init__(self, verifier):
        self.verifier = verifier
        self.calls = 0

    def verify(self, token, expected_type="access"):
        self.calls += 1
        return self.verifier.verify(token, expected_type)


def wrapped(**options):
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], **options)
    counter = Counting(middleware.verifier)
    middleware.verifier = counter
    return middleware, counter, BufferedClient(middleware)


def test_repeated_token_is_verified_once():
    _, counter, client = wrapped()
    token = mint()
    for _ in range(5):
        assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert counter.calls == 1


def test_byte_different_variant_never_shares_an_entry():
    _, counter, client = wrapped()
    token = mint()
    client.get("/api/me", headers=bearer(token))
    client.get("/api/me", headers=bearer(token + "="))
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert client.get("/api/me", headers=bearer(forged)).status_code == 401
    assert counter.calls == 3


def test_revoked_token_is_refused_even_when_cached(users_file):
    middleware, counter, client = wrapped(users_file=users_file)
    token = login(client)["access_token"]
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert len(middleware.verified) == 1  # it was cached, and refused all the same


def test_entries_never_outlive_exp():
    middleware, counter, client = wrapped(leeway=5)
    exp = int(time.time()) + 60
    token = mint(exp=exp)
    client.get("/api/me", headers=bearer(token))
    middleware.verified.clock = lambda: exp + 4.9  # within leeway: still served from the cache
    client.get("/api/me", headers=bearer(token))
    assert counter.calls == 1
    middleware.verified.clock = lambda: exp + 5  # exp + leeway: verified again (and refused, were it real time)
    client.get("/api/me", headers=bearer(token))
    assert counter.calls == 2


def test_failed_verifications_are_not_cached():
    middleware, counter, client = wrapped()
    bad = mint(key="another-test-secret-9876543210-zyxwvutsrqponmlkjihgfedcba")
    for _ in range(3):
        assert client.get("/api/me", headers=bearer(bad)).status_code == 401
    assert counter.calls == 3 and len(middleware.verified) == 0


def test_application_cannot_poison_the_cache():
    def mutating(environ, start_response):
        claims = environ["jwt_wsgi.claims"]
        seen = claims.get("scope")
        claims["scope"] = "admin"
        start_response("200 OK", [])
        return [str(seen).encode()]

    middleware = JWTMiddleware(mutating, secret=SECRET)
    client = BufferedClient(middleware)
    token = mint(scope="read")
    assert client.get("/", headers=bearer(token)).data == b"read"
    assert client.get("/", headers=bearer(token)).data == b"read"


def test_application_cannot_poison_nested_claims():
    """A scope list edited in place by one request must not grant the scope to the next."""

    def escalating(environ, start_response):
        environ["jwt_wsgi.claims"]["scp"].append("admin")
        environ["jwt_wsgi.claims"]["profile"]["role"] = "admin"
        start_response("200 OK", [])
        return [b""]

    middleware = JWTMiddleware(escalating, secret=SECRET, protect=["/api"], scopes={"/api/admin": ["admin"]})
    client = BufferedClient(middleware)
    token = mint(scp=["read"], profile={"role": "user"})
    assert client.get("/api/admin", headers=bearer(token)).status_code == 403
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.get("/api/admin", headers=bearer(token)).status_code == 403
    assert middleware.verified.get(token)["profile"] == {"role": "user"}


def test_disabling_the_cache():
    _, counter, client = wrapped(token_cache_size=0)
    token = mint()
    for _ in range(3):
        client.get("/api/me", headers=bearer(token))
    assert counter.calls == 3


def test_bounded_lru_and_memory_at_the_bound():
    cache = VerifiedTokens(max_entries=1000)
    exp = time.time() + 600
    tokens = [mint(jti=f"j{i}", exp=int(exp)) for i in range(3000)]
    claims = {"sub": "alice", "exp": exp, "jti": "x", "type": "access", "iat": exp - 600}
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for token in tokens:
        cache.put(token, dict(claims))
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(cache) == 1000
    assert cache.get(tokens[0]) is None and cache.get(tokens[-1]) is not None
    # Recently used entries survive eviction.
    cache.get(tokens[-1000])
    cache.put(mint(jti="new"), dict(claims))
    assert cache.get(tokens[-1000]) is not None and cache.get(tokens[-999]) is None
    # About a kilobyte per entry with these tokens; the bound keeps it flat however many arrive.
    assert used < 1000 * 2048, used


@pytest.mark.parametrize("size", [-1, "lots"])
def test_cache_size_is_validated(size):
    with pytest.raises(ValueError, match="token_cache_size"):
        JWTMiddleware(canary_app, secret=SECRET, token_cache_size=size)
