"""Remote JWK Sets (issue 4): ``jwks_url``, OpenID Connect discovery, providers, and what a slow,
broken or hostile JWK Set endpoint cannot do (threat model §4).

A real HTTP server on 127.0.0.1 (``http.server`` in a thread) serves the JWK Set. It can rotate
keys, answer slowly, fail, return junk or huge bodies, redirect, and it counts every request and
connection. Time-dependent behaviour (TTL, cooldown) is driven by a fake clock given to the key
ring's constructor (``KeyRing(settings, clock=...)``), never by sleeping or patching; network
timeouts are real, and no test measures how long anything took.
"""

from __future__ import annotations

import collections
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from jwt_wsgi import JWTMiddleware
from jwt_wsgi.errors import InvalidToken, ServiceUnavailable
from jwt_wsgi.keys import KeyRing, thumbprint
from jwt_wsgi.remote import MAX_BYTES, FetchError, RemoteKeySet
from jwt_wsgi.settings import Settings
from jwt_wsgi.tokens import TokenVerifier

from .conftest import CANARY_API, HS, BufferedClient, b64, bearer, canary_app, claims, login
from .servers import GUNICORN, JWT_WSGI, Server, free_port, get, on_every_worker, server_env  # noqa: F401

ISS = "https://idp.test/"
AUD = "api://jwt-wsgi-tests"


# -- the JWK Set server -----------------------------------------------------------------------------
class JWKSServer:
    """A JWK Set endpoint on 127.0.0.1 whose behaviour a test changes between requests.

    ``mode``: ``ok``, ``fail`` (500), ``slow`` (no answer until released), ``drip`` (headers, then
    a byte every 0.2 s), ``gated`` (answers once ``gate`` is set), ``junk`` (not JSON),
    ``not-a-set``, ``huge`` (50 MiB announced), ``huge-no-length`` (streams without
    Content-Length), ``redirect-file``, ``redirect-here``. ``abandoned`` is set when the client
    hung up in the middle of an answer, ``sent`` counts the body bytes written; a ``CONNECT``
    (the server used as a proxy) is counted in ``hits`` and refused.
    """

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"
        self.discovery_issuer: str | None = None  # None: the server's own base URL
        self.jwks_uri: str | None = None  # None: this server's /jwks.json
        self.hits: collections.Counter[str] = collections.Counter()
        self.connections = 0
        self.received = threading.Event()  # set when a request arrives
        self.abandoned = threading.Event()  # set when the client hung up before the whole answer
        self.sent = 0  # body bytes written by the drip and huge modes
        self.release = threading.Event()  # set at teardown: slow handlers give up
        self.gate = threading.Event()  # mode "gated": the answer waits for it
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with outer._lock:
                    outer.hits[self.path] += 1
                outer.received.set()
                try:
                    outer._answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    outer.abandoned.set()  # the client gave up (timeouts, size caps): that is the point

            def do_CONNECT(self) -> None:
                with outer._lock:
                    outer.hits[f"CONNECT {self.path}"] += 1
                self.send_response(502)
                self.end_headers()

        class Counting(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def process_request(self, request: Any, client_address: Any) -> None:
                with outer._lock:
                    outer.connections += 1
                super().process_request(request, client_address)

        self.httpd = Counting(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/jwks.json") -> str:
        return self.base + path

    @property
    def fetches(self) -> int:
        return self.hits["/jwks.json"]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path == "/.well-known/openid-configuration":
            return self._send(handler, 200, json.dumps({
                "issuer": self.discovery_issuer or self.base,
                "jwks_uri": self.jwks_uri or self.url(),
                "id_token_signing_alg_values_supported": ["RS256", "HS256", "none"],
            }).encode())
        if path == "/real-jwks.json":
            return self._send(handler, 200, json.dumps({"keys": self.keys}).encode())
        if path != "/jwks.json":
            return self._send(handler, 404, b"{}")
        mode = self.mode
        if mode == "ok":
            self._send(handler, 200, json.dumps({"keys": self.keys}).encode(), "application/jwk-set+json")
        elif mode == "fail":
            self._send(handler, 500, b"upstream error")
        elif mode == "slow":
            self.release.wait(60)
        elif mode == "drip":
            handler.send_response(200)
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            while not self.release.wait(0.2):
                handler.wfile.write(b" ")
                handler.wfile.flush()
                self.sent += 1
        elif mode == "gated":  # answers normally once the test opens the gate
            if self.gate.wait(30):
                self._send(handler, 200, json.dumps({"keys": self.keys}).encode(), "application/jwk-set+json")
        elif mode == "junk":
            self._send(handler, 200, b"<html>not a key set</html>")
        elif mode == "not-a-set":
            self._send(handler, 200, json.dumps({"kty": "RSA", "keys": "all of them"}).encode())
        elif mode == "deep":
            self._send(handler, 200, b"[" * 100000 + b"]" * 100000)
        elif mode in ("huge", "huge-no-length"):
            handler.send_response(200)
            if mode == "huge":
                handler.send_header("Content-Length", str(50 * 1024 * 1024))
            handler.end_headers()
            chunk = b'{"keys": [' + b" " * 65526
            for _ in range(800):  # 50 MiB at most, unless the client stops reading first
                if self.release.is_set():
                    break
                handler.wfile.write(chunk)
                self.sent += len(chunk)
        elif mode == "redirect-file":
            handler.send_response(302)
            handler.send_header("Location", "file:///etc/passwd")
            handler.end_headers()
        elif mode == "redirect-here":
            handler.send_response(302)
            handler.send_header("Location", self.url("/real-jwks.json"))
            handler.end_headers()

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json") -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def start(self) -> JWKSServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer().start()
    yield server
    server.stop()


@pytest.fixture
def listener() -> Iterator[JWKSServer]:
    """A server a token's jku/x5u points at: it must never see a connection. It never answers."""
    server = JWKSServer()
    server.mode = "slow"
    server.start()
    yield server
    server.stop()


class FakeClock:
    """Wall-clock seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Issuer:
    """An external issuer: a private key our app never sees as a file, published as a JWK."""

    def __init__(self, alg: str = "RS256", kid: str | None = None, key: Any = None, iss: str = ISS) -> None:
        self.alg = alg
        self.key = key or (ec.generate_private_key(ec.SECP256R1()) if alg.startswith("ES")
                           else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        public = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(self.key.public_key()))
        self.kid = kid or thumbprint(public)
        self.jwk = {**public, "kid": self.kid, "alg": alg, "use": "sig"}
        self.iss = iss

    def mint(self, headers: dict[str, Any] | None = None, *, kid: Any = "default", **extra: Any) -> str:
        head = dict(headers or {})
        if kid == "default":
            head["kid"] = self.kid
        elif kid is not None:
            head["kid"] = kid
        payload = claims(**{"iss": self.iss, "aud": AUD, "type": None, **extra})
        return jwt.encode(payload, self.key, algorithm=self.alg, headers=head)


def remote_client(jwks: JWKSServer, **options: Any) -> BufferedClient:
    options = {"algorithm": "RS256", "jwks_url": jwks.url(), "issuer": ISS, "audience": AUD,
               "protect": ["/api"], **options}
    middleware = JWTMiddleware(canary_app, **options)
    client = BufferedClient(middleware)
    client.middleware = middleware  # type: ignore[attr-defined]
    return client


class Verifier:
    """The verifier a middleware builds (``KeyRing`` + ``TokenVerifier``) from ``options``, its
    remote JWK Sets on ``clock``: for the tests that move time. :meth:`status` is what a
    middleware would answer: 200, 401 or 503.

    Built from the middleware's parts because the clock reaches a ``KeyRing`` through its
    constructor; once ``JWTMiddleware(..., clock=clock)`` hands its clock to its keys, these
    tests can go through the middleware instead.
    """

    def __init__(self, clock: Callable[[], float], **options: Any) -> None:
        settings = Settings(**options)
        self.keys = KeyRing(settings, clock=clock)
        self.verifier = TokenVerifier(settings, self.keys)
        self.retry_after: int | None = None

    def status(self, token: str) -> int:
        try:
            self.verifier.verify(token)
        except ServiceUnavailable as exc:
            self.retry_after = exc.retry_after
            return 503
        except InvalidToken:
            return 401
        return 200


def remote_verifier(jwks: JWKSServer, clock: FakeClock, **options: Any) -> Verifier:
    return Verifier(clock, **{"algorithm": "RS256", "jwks_url": jwks.url(), "issuer": ISS, "audience": AUD,
                              **options})


def status(client: BufferedClient, token: str, path: str = "/api/me") -> int:
    response = client.get(path, headers=bearer(token))
    assert response.status_code != 500, response.data
    if response.status_code != 200:
        assert CANARY_API not in response.data
    return int(response.status_code)


# -- tokens from an external issuer ------------------------------------------------------------------
def test_external_issuer_tokens_verify_through_the_jwk_set(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    client = remote_client(jwks_server)
    assert jwks_server.hits.total() == 0  # nothing fetched at construction
    response = client.get("/api/me", headers=bearer(idp.mint(sub="ext-user", scope="read")))
    assert response.status_code == 200
    assert json.loads(response.data.split(b" ", 1)[1])["user"] == "ext-user"
    for _ in range(20):
        assert status(client, idp.mint(jti=uuid.uuid4().hex)) == 200
    assert jwks_server.fetches == 1  # cached
    assert status(client, idp.mint(aud="another-app")) == 401
    assert status(client, idp.mint(iss="https://evil.test/")) == 401
    assert status(client, idp.mint(exp=int(time.time()) - 10)) == 401
    # Someone else's keys are not republished, and there is nothing to sign with: no login.
    assert client.get("/.well-known/jwks.json").json["public"] == "/.well-known/jwks.json"
    assert client.middleware.issuer is None


def test_token_without_kid_is_tried_against_the_keys_of_its_algorithm(jwks_server):
    idp, other, third, fourth = Issuer(), Issuer(), Issuer(), Issuer()
    jwks_server.keys = [idp.jwk, Issuer(alg="ES256").jwk]  # one RSA key: fits a kid-less RS256 token
    client = remote_client(jwks_server)
    assert status(client, idp.mint(kid=None)) == 200
    jwks_server.keys = [other.jwk, idp.jwk]
    client = remote_client(jwks_server)
    assert status(client, idp.mint(kid=None)) == 200  # two RSA keys: each is tried
    assert status(client, idp.mint()) == 200
    assert status(client, Issuer().mint(kid=None)) == 401  # signed by neither
    # Bounded: a kid-less token costs at most three signature checks, the set's first three keys.
    jwks_server.keys = [other.jwk, third.jwk, fourth.jwk, idp.jwk]
    client = remote_client(jwks_server)
    assert status(client, fourth.mint(kid=None)) == 200
    assert status(client, idp.mint(kid=None)) == 401
    assert status(client, idp.mint()) == 200  # named by its kid, the fourth key still verifies


def test_one_key_in_the_set_verifies_whatever_the_kid(jwks_server):
    """An issuer whose tokens name the key differently from its JWK Set (a PEM turned into a
    JWK, a renamed key): with one key for the algorithm, any kid is verified with it, after
    one refetch in case the issuer has just rotated."""
    idp = Issuer(kid="issuer-key-2024")
    jwks_server.keys = [idp.jwk, Issuer(alg="ES256").jwk]
    client = remote_client(jwks_server)
    assert status(client, idp.mint(kid="A-ec")) == 200
    assert status(client, Issuer().mint(kid="A-ec")) == 401  # another key, whatever it is called
    jwks_server.keys = [idp.jwk, Issuer().jwk]
    client = remote_client(jwks_server)
    assert status(client, idp.mint(kid="A-ec")) == 401  # two RSA keys: an unknown kid names neither
    assert status(client, idp.mint()) == 200


def test_the_jwk_set_cannot_widen_the_algorithms(jwks_server):
    """Configured: RS256. The set offers everything else; none of it is usable."""
    es, ps, weak = Issuer(alg="ES256"), Issuer(), Issuer(key=rsa.generate_private_key(65537, 1024))
    enc, ops, rs512 = Issuer(), Issuer(), Issuer()
    oct_secret = secrets.token_bytes(32)
    jwks_server.keys = [
        es.jwk,
        {**ps.jwk, "alg": "PS256"},
        weak.jwk,
        {**enc.jwk, "use": "enc"},
        {**ops.jwk, "key_ops": ["encrypt"]},
        {**rs512.jwk, "alg": "RS512"},
        {"kty": "oct", "kid": "oct-1", "k": b64(oct_secret), "alg": "HS256"},
        {"kty": "RSA", "kid": "junk", "n": 5, "e": "AQAB"},
        "not a key",
    ]
    client = remote_client(jwks_server)
    assert status(client, es.mint()) == 401
    assert status(client, jwt.encode(claims(iss=ISS, aud=AUD), ps.key, "PS256", headers={"kid": ps.kid})) == 401
    assert status(client, ps.mint()) == 401  # its JWK says PS256: not usable for RS256 either
    with pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        weak_token = weak.mint()
    assert status(client, weak_token) == 401
    assert status(client, enc.mint()) == 401
    assert status(client, ops.mint()) == 401
    assert status(client, rs512.mint()) == 401
    assert status(client, HS(oct_secret, {"alg": "HS256", "kid": "oct-1"}, claims(iss=ISS, aud=AUD))) == 401
    assert status(client, HS(json.dumps(es.jwk).encode(), {"alg": "HS256", "kid": es.kid},
                             claims(iss=ISS, aud=AUD))) == 401
    assert jwks_server.fetches == 1  # one fetch, then the cooldown


def test_private_members_in_a_jwk_set_are_ignored(jwks_server):
    idp = Issuer()
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(idp.key))
    private.pop("key_ops", None)  # PyJWT writes ["sign"]: a JWK that may not verify is skipped
    jwks_server.keys = [{**private, "kid": idp.kid, "alg": "RS256"}]
    client = remote_client(jwks_server)
    assert status(client, idp.mint()) == 200


# -- never trusted from the token --------------------------------------------------------------------
@pytest.mark.parametrize("config", ["static", "jwks"])
def test_token_supplied_key_urls_are_never_fetched(tmp_path, jwks_server, listener, config):
    idp, attacker = Issuer(), Issuer()
    jwks_server.keys = [idp.jwk]
    if config == "jwks":
        client = remote_client(jwks_server)
    else:
        from .test_keys import write_pair

        _, pub = write_pair(tmp_path, idp.key, "idp")
        client = remote_client(jwks_server, jwks_url=None, public_key=pub)
    attacker_set = {"keys": [attacker.jwk]}
    tokens = [
        attacker.mint({"jku": listener.url("/jwks.json")}, kid=attacker.kid),
        attacker.mint({"jku": listener.url("/jwks.json")}, kid=None),
        attacker.mint({"jku": listener.url("/jwks.json")}, kid=idp.kid),
        attacker.mint({"x5u": listener.url("/cert.pem")}),
        attacker.mint({"x5u": listener.url("/cert.pem"), "jku": listener.url()}, kid=uuid.uuid4().hex),
        attacker.mint({"jwk": attacker.jwk}),
        attacker.mint({"jwk": attacker.jwk}, kid=idp.kid),
        attacker.mint({"jku": "file:///etc/passwd", "kid": "x"}),
        attacker.mint({"jku": json.dumps(attacker_set)}),
    ]
    for token in tokens:
        assert status(client, token) == 401
    assert listener.connections == 0 and listener.hits.total() == 0
    # Signed by the real key, the same headers are merely ignored.
    assert status(client, idp.mint({"jku": listener.url(), "x5u": listener.url()})) == 200
    assert listener.connections == 0


# -- flood, cooldown, rotation at the provider --------------------------------------------------------
def _random_kid_token(idp: Issuer) -> str:
    header = {"alg": "RS256", "kid": uuid.uuid4().hex}
    return b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims(iss=ISS, aud=AUD)).encode()) + "." + \
        b64(secrets.token_bytes(256))


def test_random_kid_flood_costs_one_fetch_per_cooldown_window(jwks_server):
    """200 requests with random kids on a cold cache, the clock standing still: one fetch. The
    bound is the default ``jwks_cooldown`` (5 s): one more window, one more fetch at most."""
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock)
    assert verifier.keys.remotes[0].cooldown == 5
    for _ in range(200):
        assert verifier.status(_random_kid_token(idp)) == 401
    assert jwks_server.fetches == 1  # the first; every later unknown kid is within the cooldown
    assert verifier.status(idp.mint()) == 200
    clock.advance(4.9)
    for _ in range(50):
        assert verifier.status(_random_kid_token(idp)) == 401
    assert jwks_server.fetches == 1
    clock.advance(0.2)
    for _ in range(50):
        assert verifier.status(_random_kid_token(idp)) == 401
    assert jwks_server.fetches == 2


def test_random_kid_flood_from_many_threads_costs_one_fetch(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    verifier = remote_verifier(jwks_server, FakeClock())
    results: list[int] = []
    lock = threading.Lock()

    def flood() -> None:
        for _ in range(25):
            code = verifier.status(_random_kid_token(idp))
            with lock:
                results.append(code)

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results.count(401) == 200
    assert jwks_server.fetches == 1


def test_flood_over_simulated_time_stays_within_one_fetch_per_window(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock)
    for _ in range(200):
        assert verifier.status(_random_kid_token(idp)) == 401
        clock.advance(0.5)  # 200 requests over 100 simulated seconds: 20 windows of 5 s
    assert jwks_server.fetches == 20


def test_rotation_at_the_provider_is_picked_up_within_the_cooldown(jwks_server):
    old, new = Issuer(), Issuer()
    jwks_server.keys = [old.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock)
    assert verifier.status(old.mint()) == 200
    # The provider rotates: publishes the new key next to the old one, signs with the new one.
    jwks_server.keys = [new.jwk, old.jwk]
    clock.advance(1)
    assert verifier.status(new.mint()) == 401  # a second after the last fetch: not yet
    assert jwks_server.fetches == 1
    clock.advance(4)
    assert verifier.status(new.mint()) == 200  # unknown kid, 5 s after the last fetch: one refetch
    assert verifier.status(old.mint()) == 200
    assert jwks_server.fetches == 2
    # The old key is retired at the provider: gone from our key cache after the TTL (10 min),
    # and the ring's version moves on, which tells a cache of verified tokens to start over.
    jwks_server.keys = [new.jwk]
    clock.advance(599)
    assert verifier.status(old.mint(jti="x1")) == 200
    assert verifier.keys.version == 0
    clock.advance(2)
    assert verifier.status(old.mint(jti="x2")) == 401
    assert verifier.keys.version == 1
    assert verifier.status(new.mint(jti="x3")) == 200
    assert jwks_server.fetches == 3



def _in_threads(verifier: Verifier, tokens: list[str]) -> tuple[list[threading.Thread], list[int]]:
    codes: list[int] = []

    def call(token: str) -> None:
        codes.append(verifier.status(token))

    threads = [threading.Thread(target=call, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    return threads, codes


def test_concurrent_requests_for_a_new_key_share_one_fetch(jwks_server):
    """Single flight: while one request fetches for a new kid, the others with that kid wait for
    that fetch and use its result, even when the fetch outlasts the cooldown."""
    old, new = Issuer(), Issuer()
    jwks_server.keys = [old.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock, jwks_timeout=10)
    assert verifier.status(old.mint()) == 200
    jwks_server.keys = [new.jwk, old.jwk]
    jwks_server.mode = "gated"
    jwks_server.received.clear()
    clock.advance(10)
    threads, codes = _in_threads(verifier, [new.mint(jti=f"t{i}") for i in range(6)])
    assert jwks_server.received.wait(5)  # one of them is fetching; the gate holds the answer
    clock.advance(60)  # the fetch takes "a minute", far longer than the cooldown
    jwks_server.gate.set()
    for thread in threads:
        thread.join(15)
    assert codes == [200] * 6
    assert jwks_server.fetches == 2


def test_a_ttl_refresh_under_way_does_not_hold_up_requests_with_cached_keys(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock, jwks_timeout=10)
    assert verifier.status(idp.mint()) == 200
    jwks_server.mode = "gated"
    jwks_server.received.clear()
    clock.advance(601)  # the TTL is over: the next request refreshes, and the gate holds it
    (refreshing,), codes = _in_threads(verifier, [idp.mint(jti="refreshing")])
    assert jwks_server.received.wait(5)
    for index in range(5):  # answered from the cached keys while that fetch is under way
        assert verifier.status(idp.mint(jti=f"other-{index}")) == 200
    assert refreshing.is_alive()  # still held at the gate: nobody waited for it
    jwks_server.gate.set()
    refreshing.join(15)
    assert codes == [200] and jwks_server.fetches == 2


# -- a slow, broken or hostile endpoint ---------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["slow", "drip"])
def test_slow_jwk_set_fails_within_the_timeout_and_other_routes_keep_answering(jwks_server, mode):
    """A server that never answers, or drips a byte at a time (each read is quick, the body never
    ends): the fetch is abandoned at the deadline, 503, and nothing else waits for it."""
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    jwks_server.mode = mode
    client = remote_client(jwks_server, jwks_timeout=2)
    outcome: dict[str, Any] = {}

    def protected() -> None:
        response = BufferedClient(client.middleware).get("/api/me", headers=bearer(idp.mint()))
        outcome.update(status=response.status_code, json=response.json, headers=dict(response.headers))

    waiting = threading.Thread(target=protected)
    waiting.start()
    assert jwks_server.received.wait(5)
    # While that request waits on the JWK Set, the rest of the application keeps answering.
    assert client.get("/health").status_code == 200
    assert client.get("/api/me").status_code == 401  # no token: no fetch needed
    assert waiting.is_alive() and not outcome  # ... answered while the fetch was still under way
    waiting.join(10)  # the server would hold it for 60 s: only the deadline ends it sooner
    assert not waiting.is_alive()
    assert outcome["status"] == 503 and outcome["json"]["error"] == "service_unavailable"
    assert int(outcome["headers"]["Retry-After"]) >= 1
    if mode == "drip":
        assert 0 < jwks_server.sent < 100000  # it was reading, and hung up before the announced end
        assert jwks_server.abandoned.wait(5)
    # Within the cooldown, the next requests fail at once instead of connecting again.
    for _ in range(5):
        assert status(client, idp.mint()) == 503
    assert jwks_server.fetches == 1 and jwks_server.connections == 1


@pytest.mark.parametrize(
    "mode",
    ["fail", "junk", "not-a-set", "deep", "huge", "huge-no-length", "redirect-file", "redirect-here"],
)
def test_broken_jwk_set_fails_safely(jwks_server, mode):
    """Junk, huge bodies and redirects are a failed fetch: 503, never 500 or accept."""
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    jwks_server.mode = mode
    client = remote_client(jwks_server)
    response = client.get("/api/me", headers=bearer(idp.mint()))
    assert response.status_code == 503, response.data
    assert response.json["error"] == "service_unavailable"
    assert "WWW-Authenticate" not in response.headers
    assert CANARY_API not in response.data
    assert jwks_server.fetches == 1
    if mode.startswith("huge"):  # the client hung up after at most MAX_BYTES, long before 50 MiB
        assert jwks_server.abandoned.wait(5)
        assert jwks_server.sent < 50 * 1024 * 1024
    assert jwks_server.hits["/real-jwks.json"] == 0  # redirects are never followed
    # Outside the protected prefixes the same token is just ignored (optional authentication).
    assert client.get("/health", headers=bearer(idp.mint())).json["user"] is None


def test_the_size_cap_is_what_real_jwk_sets_need(jwks_server):
    idp = Issuer()
    padding = [Issuer(kid=f"pad-{i}", key=idp.key).jwk for i in range(40)]  # ~20 KiB, like Entra ID's
    jwks_server.keys = [*padding, idp.jwk]
    assert len(json.dumps({"keys": jwks_server.keys})) < MAX_BYTES
    assert status(remote_client(jwks_server), idp.mint()) == 200


def test_stale_while_error_keeps_the_last_good_keys(jwks_server):
    idp, rotated = Issuer(), Issuer()
    jwks_server.keys = [idp.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock, jwks_timeout=1)
    assert verifier.status(idp.mint()) == 200
    for mode in ("fail", "junk", "slow", "redirect-file"):
        jwks_server.mode = mode
        clock.advance(601)  # the TTL is over: a refresh is due and fails ...
        assert verifier.status(idp.mint(jti=uuid.uuid4().hex)) == 200  # ... the cached keys still work
    assert jwks_server.fetches == 5
    # During the outage a token with an unknown kid is refused (401), not a 503: we have keys.
    jwks_server.keys = [rotated.jwk]
    jwks_server.mode = "fail"
    clock.advance(31)
    assert verifier.status(rotated.mint()) == 401
    # The endpoint recovers: the next refresh (after the cooldown) brings the new keys.
    jwks_server.mode = "ok"
    clock.advance(31)
    assert verifier.status(rotated.mint()) == 200


def test_no_keys_yet_is_503_and_retried_after_the_cooldown(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    jwks_server.mode = "fail"
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock)
    assert verifier.status(idp.mint()) == 503 and verifier.retry_after == 5
    jwks_server.mode = "ok"
    clock.advance(4)
    assert verifier.status(idp.mint()) == 503 and verifier.retry_after == 1
    assert jwks_server.fetches == 1
    clock.advance(1)
    assert verifier.status(idp.mint()) == 200
    assert jwks_server.fetches == 2


def test_a_clock_stepped_back_does_not_freeze_the_keys(jwks_server):
    """The clock is wall-clock time and may be stepped back (NTP, a VM resumed): TTL and cooldown
    then last at most their configured length from the new time, not the length of the step."""
    old, new = Issuer(), Issuer()
    jwks_server.keys = [old.jwk]
    clock = FakeClock()
    verifier = remote_verifier(jwks_server, clock)
    assert verifier.status(old.mint()) == 200
    clock.advance(-3600)
    jwks_server.keys = [new.jwk]  # rotated during the hour the clock went back
    assert verifier.status(new.mint()) == 200  # the TTL and the cooldown do not wait an hour
    assert jwks_server.fetches == 2
    assert verifier.status(_random_kid_token(new)) == 401  # ... and the cooldown holds again
    assert jwks_server.fetches == 2
    # No keys yet, failing, then the clock goes back: retried after the cooldown, not an hour.
    jwks_server.mode = "fail"
    cold = remote_verifier(jwks_server, clock)
    assert cold.status(new.mint()) == 503
    clock.advance(-3600)
    assert cold.status(new.mint()) == 503 and cold.retry_after == 5
    jwks_server.mode = "ok"
    clock.advance(5)
    assert cold.status(new.mint()) == 200


def test_tokens_that_cannot_fit_never_cause_a_fetch(jwks_server):
    idp = Issuer()
    jwks_server.keys = [idp.jwk]
    client = remote_client(jwks_server)
    never = [
        jwt.encode(claims(iss=ISS, aud=AUD), ec.generate_private_key(ec.SECP256R1()), "ES256",
                   headers={"kid": "x"}),  # an algorithm we do not accept
        HS(b"k" * 32, {"alg": "HS256", "kid": uuid.uuid4().hex}, claims(iss=ISS, aud=AUD)),
        HS(b"k" * 32, {"alg": "none"}, claims()),
        HS(b"k" * 32, {"alg": "RS256", "kid": 7}, claims()),  # kid not a string
        "not.a.token",
    ]
    for token in never:
        assert status(client, token) in (400, 401)
    assert jwks_server.hits.total() == 0


def test_remote_key_set_directly(jwks_server):
    """The same guarantees through the module's own API."""
    idp = Issuer()
    jwks_server.keys = [idp.jwk, Issuer().jwk]  # two keys: an unknown kid names neither
    clock = FakeClock()
    remote = RemoteKeySet(algorithms=["RS256"], jwks_url=jwks_server.url(), cooldown=30, ttl=600, clock=clock)
    assert remote.fetches == 0
    (key,) = remote.verification_keys({"alg": "RS256", "kid": idp.kid})
    assert jwt.decode(idp.mint(), key, algorithms=["RS256"], audience=AUD)["iss"] == ISS
    with pytest.raises(InvalidToken):
        remote.verification_keys({"alg": "RS256", "kid": "nope"})
    assert remote.fetches == 1
    broken = RemoteKeySet(algorithms=["RS256"], jwks_url=jwks_server.url("/missing"), clock=clock)
    with pytest.raises(ServiceUnavailable):
        broken.verification_keys({"alg": "RS256", "kid": idp.kid})
    with pytest.raises(ValueError, match="https"):
        RemoteKeySet(algorithms=["RS256"], jwks_url="http://idp.example/jwks.json")


def test_a_kid_in_the_set_selects_its_key_only(jwks_server):
    """The rules of configured keys (one kid table for both): an unknown kid falls back to the
    algorithm's only key, a kid the set gives to another algorithm's key does not."""
    rs, es = Issuer(kid="rs"), Issuer(alg="ES256", kid="es")
    jwks_server.keys = [rs.jwk, es.jwk]
    remote = RemoteKeySet(algorithms=["RS256", "ES256"], jwks_url=jwks_server.url(), clock=FakeClock())
    (key,) = remote.verification_keys({"alg": "RS256", "kid": "rs"})
    assert remote.verification_keys({"alg": "RS256", "kid": "renamed"}) == (key,)
    assert remote.verification_keys({"alg": "RS256"}) == (key,)
    with pytest.raises(InvalidToken):
        remote.verification_keys({"alg": "RS256", "kid": "es"})
    assert remote.fetches == 1  # the unknown kids asked within the cooldown


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("https_proxy", "http_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_the_environment_proxy_is_used_for_https_unless_no_proxy_covers_the_host(jwks_server, proxy_env):
    """``https_proxy`` gets a CONNECT for the JWK Set's host (the TLS is end to end through it);
    ``no_proxy`` sends the request straight to the host; a loopback host never uses the proxy."""
    proxy_env.setenv("https_proxy", jwks_server.base)
    proxy_env.setenv("http_proxy", jwks_server.base)
    remote = RemoteKeySet(algorithms=["RS256"], jwks_url="https://idp.test/jwks.json")
    with pytest.raises(FetchError) as refused:
        remote.probe()
    assert refused.value.url == "https://idp.test/jwks.json"
    assert jwks_server.hits == {"CONNECT idp.test:443": 1}  # the proxy said 502: nothing else was asked
    proxy_env.setenv("no_proxy", "idp.test")
    with pytest.raises(FetchError):
        remote.probe()  # straight to idp.test, a name that never resolves
    assert jwks_server.hits == {"CONNECT idp.test:443": 1}
    proxy_env.delenv("no_proxy")
    jwks_server.keys = [Issuer().jwk]
    assert RemoteKeySet(algorithms=["RS256"], jwks_url=jwks_server.url()).probe() == (jwks_server.url(), 1)
    assert jwks_server.hits == {"CONNECT idp.test:443": 1, "/jwks.json": 1}  # directly, not through the proxy


# -- OpenID Connect discovery and several providers ---------------------------------------------------
def test_discovery_from_the_issuer(jwks_server):
    idp = Issuer(iss=jwks_server.base)
    jwks_server.keys = [idp.jwk]
    middleware = JWTMiddleware(canary_app, protect=["/api"], providers=[
        {"issuer": jwks_server.base, "audience": AUD},
    ])
    client = BufferedClient(middleware)
    assert jwks_server.hits.total() == 0
    assert status(client, idp.mint()) == 200
    assert status(client, idp.mint(jti="again")) == 200
    assert jwks_server.hits["/.well-known/openid-configuration"] == 1 and jwks_server.fetches == 1


def test_discovery_from_the_top_level_issuer(jwks_server):
    """Only issuer + audience + an asymmetric algorithm: keys from /.well-known/openid-configuration."""
    idp = Issuer(iss=jwks_server.base)
    jwks_server.keys = [idp.jwk]
    middleware = JWTMiddleware(canary_app, protect=["/api"], algorithm="RS256", issuer=jwks_server.base, audience=AUD)
    client = BufferedClient(middleware)
    assert jwks_server.hits.total() == 0  # nothing fetched at construction
    assert status(client, idp.mint()) == 200
    assert status(client, idp.mint(iss="https://someone.else")) == 401
    assert jwks_server.hits["/.well-known/openid-configuration"] == 1 and jwks_server.fetches == 1
    # Verify-only: no signing key, so no login endpoint (the path is the app's own).
    assert b'"public": "/auth/login"' in client.post("/auth/login", json={"username": "a", "password": "b"}).data
    with pytest.raises(ValueError, match="audience"):
        JWTMiddleware(canary_app, algorithm="RS256", issuer=jwks_server.base)
    with pytest.raises(ValueError, match="https"):
        JWTMiddleware(canary_app, algorithm="RS256", issuer="http://idp.example", audience=AUD)


@pytest.mark.parametrize(
    ("issuer", "jwks_uri"),
    [
        pytest.param("https://another.test", None, id="document-names-another-issuer"),
        pytest.param(None, "http://jwks.example.com/keys", id="jwks-uri-plain-http"),
        pytest.param(None, "file:///etc/passwd", id="jwks-uri-file"),
    ],
)
def test_discovery_refuses_a_document_it_cannot_trust(jwks_server, issuer, jwks_uri):
    idp = Issuer(iss=jwks_server.base)
    jwks_server.keys = [idp.jwk]
    jwks_server.discovery_issuer = issuer
    jwks_server.jwks_uri = jwks_uri
    client = BufferedClient(JWTMiddleware(canary_app, protect=["/api"],
                                          providers=[{"issuer": jwks_server.base, "audience": AUD}]))
    assert status(client, idp.mint()) == 503
    assert jwks_server.fetches == 0


def test_two_remote_providers_and_our_own_login_selected_by_iss(jwks_server, users_file):
    second = JWKSServer().start()
    try:
        corp = Issuer(iss="https://corp.test/")
        partner = Issuer(iss=second.base)  # discovered
        jwks_server.keys = [corp.jwk]
        second.keys = [partner.jwk]
        middleware = JWTMiddleware(
            canary_app, secret="our-own-test-only-secret-0123456789-abcdefghijk", issuer="our-login",
            users_file=users_file, protect=["/api"],
            providers=[
                {"issuer": corp.iss, "audience": AUD, "jwks_url": jwks_server.url(), "sub_claim": "email"},
                {"issuer": partner.iss, "audience": AUD},
            ],
        )
        client = BufferedClient(middleware)
        ours = login(client)["access_token"]
        assert status(client, ours) == 200
        response = client.get("/api/me", headers=bearer(corp.mint(email="a@corp.test")))
        assert response.status_code == 200 and json.loads(response.data.split(b" ", 1)[1])["user"] == "a@corp.test"
        assert status(client, partner.mint()) == 200
        # Unknown iss: 401 without any fetch; a key of one provider under the other's iss: 401.
        fetched = (jwks_server.hits.total(), second.hits.total())
        assert status(client, Issuer(iss="https://unknown.test/").mint(kid=uuid.uuid4().hex)) == 401
        assert status(client, corp.mint(iss=partner.iss)) == 401
        assert status(client, partner.mint(iss=corp.iss, email="x@corp.test")) == 401
        assert (jwks_server.hits.total(), second.hits.total()) <= (fetched[0] + 1, fetched[1] + 1)
        # One provider down does not affect the others.
        jwks_server.mode = "fail"
        assert status(client, partner.mint(jti="p2")) == 200
        assert status(client, ours) == 200
    finally:
        second.stop()


# -- rotation end to end under gunicorn (2 workers) ----------------------------------------------------
APP_MODULE = '''
import json

def app(environ, start_response):
    body = json.dumps({"user": environ.get("REMOTE_USER"), "path": environ.get("PATH_INFO")}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
'''


def _service_a_config(directory: Path, users: str, keys: list[dict[str, Any]], name: str) -> Path:
    entries = "\n".join(
        "[[keys]]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in entry.items()) for entry in keys
    )
    path = directory / f"{name}.toml"
    path.write_text(f'''algorithm = "RS256"
issuer = "service-a"
audience = "{AUD}"
protect = ["/api"]
users_file = "{users}"
store = "sqlite:///{directory / "a-store.db"}"
{entries}
''')
    return path


@pytest.mark.slow
def test_rotation_end_to_end_under_gunicorn(tmp_path, users_file):
    """Service A signs and publishes its JWK Set; service B verifies A's tokens through it.

    A rotates (restart with a new active key, the old one verify-only), then drops the old key.
    Both services run under gunicorn with 2 sync workers; B fetches only after forking, and
    boots even while A (its JWK Set) is down.
    """
    from .test_keys import write_pair

    (tmp_path / "rotation_app.py").write_text(APP_MODULE)
    old_priv, old_pub = write_pair(tmp_path, rsa.generate_private_key(65537, 2048), "old")
    new_priv, _ = write_pair(tmp_path, rsa.generate_private_key(65537, 2048), "new")
    a_port = free_port()
    b_config = tmp_path / "b.toml"
    b_config.write_text(f'''algorithm = "RS256"
jwks_url = "http://127.0.0.1:{a_port}/.well-known/jwks.json"
issuer = "service-a"
audience = "{AUD}"
protect = ["/api"]
jwks_cooldown = "1s"
jwks_cache_ttl = "1s"
jwks_timeout = "2s"
store = "sqlite:///{tmp_path / "b-store.db"}"
''')

    def serve(name: str, config: Path, port: int | None = None) -> Server:
        argv = [JWT_WSGI, "serve", "rotation_app:app", "--config", str(config), "--workers", "2",
                "--bind", "127.0.0.1:{port}"]
        server = Server(argv, env=server_env(tmp_path / f"runtime-{name}"), log_dir=tmp_path, name=name,
                        ready_path="/health", cwd=tmp_path, **({"port": port} if port else {}))
        return server.start().wait_ready()

    def everywhere(server: Server, token: str) -> list[int]:
        return [r.status for r in on_every_worker(server.base_url, "/api/me", bearer(token))]

    def eventually(server: Server, token: str, expected: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while True:
            codes = everywhere(server, token)
            if codes == [expected, expected]:
                return
            server.check(time.monotonic() < deadline, f"expected {expected} on every worker, got {codes}")
            time.sleep(0.2)  # B's cooldown/TTL is a real 1 s here: poll, bounded

    b_port = free_port()
    while b_port == a_port:  # A's port is only reserved by number until A starts: never give it to B
        b_port = free_port()
    b = serve("service-b", b_config, b_port)
    a = None
    try:
        # B boots and answers while its JWK Set (service A) is down: 503, never 500.
        down = get(b.base_url, "/api/me", headers=bearer("x" + ".y" * 2))
        b.check(down.status == 401, str(down))
        probe = jwt.encode(claims(iss="service-a", aud=AUD), rsa.generate_private_key(65537, 2048), "RS256",
                           headers={"kid": "k"})
        b.check(set(everywhere(b, probe)) == {503}, "B without its JWK Set must answer 503")

        a = serve("service-a", _service_a_config(tmp_path, users_file, [{"private_key": old_priv, "active": True}],
                                                 "a1"), a_port)
        first = login_http(a.base_url)
        a.check(everywhere(a, first) == [200, 200], "A accepts its own token on every worker")
        eventually(b, first, 200)  # B fetched A's JWK Set, in each worker, after the cooldown

        # Rotation: a new active key; the old one verifies the tokens it signed until they expire.
        a.stop()
        a = serve("service-a", _service_a_config(tmp_path, users_file, [
            {"private_key": new_priv, "active": True}, {"public_key": old_pub}], "a2"), a_port)
        second = login_http(a.base_url)
        a.check(jwt.get_unverified_header(second)["kid"] != jwt.get_unverified_header(first)["kid"], "new kid")
        a.check(everywhere(a, first) == [200, 200] and everywhere(a, second) == [200, 200], "both verify on A")
        eventually(b, second, 200)  # unknown kid at B: refetched (cooldown permitting)
        b.check(everywhere(b, first) == [200, 200], "B still accepts the old token")

        # The old key is dropped: only new tokens verify, at A at once and at B after its TTL.
        a.stop()
        a = serve("service-a", _service_a_config(tmp_path, users_file, [{"private_key": new_priv, "active": True}],
                                                 "a3"), a_port)
        a.check(everywhere(a, first) == [401, 401], "A refuses tokens of the removed key")
        a.check(everywhere(a, second) == [200, 200], "A accepts tokens of the active key")
        eventually(b, first, 401)
        b.check(everywhere(b, second) == [200, 200], "B accepts tokens of the active key")
    finally:
        if a is not None:
            a.stop()
        b.stop()


def login_http(base_url: str) -> str:
    from .conftest import ALICE_PASSWORD
    from .servers import login as server_login

    return str(server_login(base_url, "alice", ALICE_PASSWORD)["access_token"])


# -- jwt-wsgi check fetches what it will need --------------------------------------------------------
def _check(tmp_path: Path, config: str) -> Any:
    from .test_cli import run

    path = tmp_path / "remote.toml"
    path.write_text(f'store = "sqlite:///{tmp_path / "store.db"}"\n' + config)
    return run("check", "--config", str(path), cwd=tmp_path, secret=None)


def _discovery_config(issuer: str, algorithm: str = "RS256") -> str:
    return f'algorithm = "{algorithm}"\nissuer = "{issuer}"\naudience = "{AUD}"\nprotect = ["/api"]\n'


@pytest.mark.slow
def test_check_fetches_the_discovery_document_and_the_jwk_set(tmp_path, jwks_server):
    from .test_cli import ok

    jwks_server.keys = [Issuer().jwk, Issuer().jwk]
    result = ok(_check(tmp_path, _discovery_config(jwks_server.base)))
    assert f"issuer {jwks_server.base} (discovery): {jwks_server.url()}: 2 usable key(s)" in result.stderr
    assert jwks_server.hits["/.well-known/openid-configuration"] == 1 and jwks_server.fetches == 1
    assert json.loads(result.stdout)["issuer"] == jwks_server.base


@pytest.mark.slow
def test_check_refuses_a_discovery_issuer_that_cannot_be_reached(tmp_path):
    from .test_cli import assert_user_error

    issuer = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    line = assert_user_error(_check(tmp_path, _discovery_config(issuer)), "connection refused")
    assert f"{issuer}/.well-known/openid-configuration" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        pytest.param({"mode": "fail"}, "HTTP 500", id="jwk-set-500"),
        pytest.param({"mode": "junk"}, "not JSON", id="jwk-set-not-json"),
        pytest.param({"mode": "not-a-set"}, "not a JWK Set", id="not-a-jwk-set"),
        pytest.param({"mode": "redirect-here"}, "HTTP 302", id="jwk-set-redirects"),
        pytest.param({"discovery_issuer": "https://another.test"}, "names another issuer", id="another-issuer"),
        pytest.param({"jwks_uri": "http://jwks.example.com/keys"}, "not an https URL", id="jwks-uri-plain-http"),
    ],
)
def test_check_refuses_a_discovery_set_up_it_cannot_use(tmp_path, jwks_server, setup, reason):
    from .test_cli import assert_user_error

    jwks_server.keys = [Issuer().jwk]
    for name, value in setup.items():
        setattr(jwks_server, name, value)
    line = assert_user_error(_check(tmp_path, _discovery_config(jwks_server.base)), reason)
    failing = jwks_server.url() if "mode" in setup else jwks_server.url("/.well-known/openid-configuration")
    assert failing in line


@pytest.mark.slow
def test_check_refuses_a_jwk_set_without_a_key_for_the_algorithm(tmp_path, jwks_server):
    from .test_cli import assert_user_error

    jwks_server.keys = [Issuer().jwk]  # RSA only
    line = assert_user_error(_check(tmp_path, _discovery_config(jwks_server.base, "ES256")), "no key")
    assert "ES256" in line and jwks_server.url() in line


@pytest.mark.slow
def test_check_fetches_jwks_url_and_each_provider(tmp_path, jwks_server):
    from .test_cli import assert_user_error, ok

    jwks_server.keys = [Issuer().jwk]
    own = (f'algorithm = "RS256"\njwks_url = "{jwks_server.url()}"\nissuer = "{ISS}"\naudience = "{AUD}"\n'
           'protect = ["/api"]\n')
    assert f"jwks_url: {jwks_server.url()}: 1 usable key(s)" in ok(_check(tmp_path, own)).stderr
    down = f"http://127.0.0.1:{free_port()}"
    providers = (f'{own}\n[[providers]]\nissuer = "{jwks_server.base}"\naudience = "{AUD}"\n\n'
                 f'[[providers]]\nissuer = "{down}"\naudience = "{AUD}"\n')
    line = assert_user_error(_check(tmp_path, providers), "connection refused")
    assert f"issuer {down} (discovery): {down}/.well-known/openid-configuration" in line
    jwks_server.mode = "fail"
    assert_user_error(_check(tmp_path, own), f"jwks_url: {jwks_server.url()}: HTTP 500")
