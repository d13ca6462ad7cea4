"""The cache of verified tokens: fast, bounded, never wrong (issue 7, item 3)."""

from __future__ import annotations

import tracemalloc

import pytest

from jwt_wsgi import JWTMiddleware
from jwt_wsgi.cache import VerifiedTokens

from .conftest import OTHER_SECRET, SECRET, BufferedClient, FakeClock, bearer, canary_app, login, mint

NOW = 2_000_000_000  # the injected clock's time: tokens are minted around it


def wrapped(**options):
    clock = FakeClock(NOW)
    middleware = JWTMiddleware(canary_app, secret=SECRET, protect=["/api"], clock=clock, **options)
    return middleware, clock, BufferedClient(middleware)


def fresh(**extra):
    """A token valid at NOW (issued then, for ten minutes)."""
    return mint(**{"iat": NOW, "exp": NOW + 600, "jti": "jti-cache", **extra})


def cached(client, clock, token):
    """Whether ``token`` is served from the cache: asked with the clock turned back before its
    ``iat``, when verifying it would refuse it ("not valid yet") but a cached verdict still holds."""
    now, clock.now = clock.now, NOW - 3600
    try:
        return client.get("/api/me", headers=bearer(token)).status_code == 200
    finally:
        clock.now = now


def test_repeated_token_is_served_from_the_cache():
    _, clock, client = wrapped()
    token = fresh()
    assert not cached(client, clock, token)  # the probe itself: refused before the token was ever verified
    for _ in range(5):
        assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert cached(client, clock, token)


def test_byte_different_variant_never_shares_an_entry():
    _, clock, client = wrapped()
    token = fresh()
    client.get("/api/me", headers=bearer(token))
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert client.get("/api/me", headers=bearer(forged)).status_code == 401
    assert cached(client, clock, token)
    assert not cached(client, clock, token + "=")
    assert not cached(client, clock, forged)


def test_revoked_token_is_refused_even_when_cached(users_file):
    middleware, clock, client = wrapped(users_file=users_file)
    token = login(client)["access_token"]
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert len(middleware.verified) == 1  # it was cached, and refused all the same


def test_entries_never_outlive_exp():
    middleware, clock, client = wrapped(leeway=5)
    exp = NOW + 60
    token = fresh(exp=exp)
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    clock.now = exp + 4.9  # within leeway: still valid
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert cached(client, clock, token)
    clock.now = exp + 5  # exp + leeway: the entry is gone, and verification refuses the token
    assert client.get("/api/me", headers=bearer(token)).status_code == 401
    assert not cached(client, clock, token) and len(middleware.verified) == 0


def test_failed_verifications_are_not_cached():
    middleware, clock, client = wrapped()
    bad = fresh(key=OTHER_SECRET)
    for _ in range(3):
        assert client.get("/api/me", headers=bearer(bad)).status_code == 401
    assert len(middleware.verified) == 0


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
    middleware, clock, client = wrapped(token_cache_size=0)
    token = fresh()
    for _ in range(3):
        assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert not cached(client, clock, token) and len(middleware.verified) == 0


def test_bounded_lru_and_memory_at_the_bound():
    cache = VerifiedTokens(max_entries=1000, clock=lambda: NOW)
    exp = NOW + 600
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
