"""Metrics hooks (``jwt_wsgi.metrics``), the Prometheus adapter and ``metrics_path``, through the
middleware with Werkzeug's test client."""

from __future__ import annotations

import re
from typing import Any

import pytest

from jwt_wsgi import ConfigurationError, JWTMiddleware
from jwt_wsgi.metrics import Metrics, TimedStore
from tests.conftest import ALICE_PASSWORD, SECRET, BufferedClient, bearer, canary_app, login, mint

try:
    from jwt_wsgi.contrib.prometheus import PrometheusMetrics
except ImportError:  # pragma: no cover
    PrometheusMetrics = None  # type: ignore[assignment,misc]


@pytest.fixture(autouse=True)
def _prometheus_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tests._services import unavailable

    if importlib.util.find_spec("prometheus_client") is None:
        unavailable("prometheus_client is not installed (pip install -e '.[dev]')")
    # One process here: never read another run's multiprocess directory.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


class Recorder(Metrics):
    """Hooks that remember every call (a real subclass, as a user would write one)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def decision(self, reason: str) -> None:
        self.calls.append(("decision", reason))

    def cache(self, hit: bool) -> None:
        self.calls.append(("cache", hit))

    def revocation_check(self, result: str) -> None:
        self.calls.append(("revocation_check", result))

    def store_call(self, op: str, seconds: float, ok: bool) -> None:
        assert seconds >= 0
        self.calls.append(("store_call", op, ok))

    def rate_limited(self, kind: str) -> None:
        self.calls.append(("rate_limited", kind))

    def reuse_detected(self) -> None:
        self.calls.append(("reuse_detected",))

    def event(self, event: str, reason: str | None = None) -> None:
        self.calls.append(("event", event, reason))


def sample(page: str, name: str, **labels: str) -> float:
    """The value of one series in a text exposition page (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)$"
    found = re.search(pattern, page, re.M)
    return float(found.group(1)) if found else 0.0


def test_without_metrics_the_store_is_not_wrapped(make_client):
    client = make_client()
    assert client.middleware.metrics is None
    assert not isinstance(client.middleware.store, TimedStore)
    assert make_client(metrics=Metrics()).middleware.store.__class__ is not TimedStore  # the no-op base

    class Counting(Metrics):
        def decision(self, reason: str) -> None:
            pass

    assert isinstance(make_client(metrics=Counting()).middleware.store, TimedStore)  # a subclass is called


def test_hooks_hear_logins_store_calls_revocation_checks_rate_limits_and_reuse(make_client):
    hooks = Recorder()
    client = make_client(metrics=hooks, login_rate_limit="2/minute", refresh_reuse_interval=0)
    tokens = login(client)
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 200
    for status in (200, 401):
        assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == status
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 401  # its family is revoked
    for status in (401, 401, 429):
        assert client.post("/auth/login", json={"username": "alice", "password": "no"}).status_code == status
    calls = hooks.calls
    assert ("event", "login", None) in calls and ("event", "refresh", None) in calls
    assert ("event", "refresh_reuse", "family_revoked") in calls and ("reuse_detected",) in calls
    assert calls.count(("event", "login_failed", "invalid_credentials")) == 2
    assert ("rate_limited", "user") in calls and ("event", "login_failed", "rate_limited_user") in calls
    assert ("revocation_check", "not_revoked") in calls and ("revocation_check", "revoked") in calls
    assert {c[1] for c in calls if c[0] == "store_call"} >= {"hit", "unhit", "is_revoked", "rotate", "revoke_family"}
    assert all(c[2] for c in calls if c[0] == "store_call")  # memory:// never fails


def test_store_errors_are_reported(make_client):
    from tests.servers import free_port

    hooks = Recorder()
    client = make_client(metrics=hooks, store=f"redis://127.0.0.1:{free_port()}/0?socket_timeout=1")
    assert client.get("/api/me", headers=bearer(mint(sub="alice"))).status_code == 503
    assert ("store_call", "is_revoked", False) in hooks.calls
    assert ("revocation_check", "unavailable") in hooks.calls


def test_metrics_path_serves_prometheus_counters(make_client):
    client = make_client(metrics_path="/metrics", public=["/metrics"], refresh_reuse_interval=0)
    tokens = login(client)
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).status_code == 200
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    assert sample(page, "jwt_wsgi_events_total", event="login", reason="") == 1
    assert sample(page, "jwt_wsgi_refresh_reuse_total") == 1
    assert sample(page, "jwt_wsgi_revocation_checks_total", result="not_revoked") >= 1
    assert sample(page, "jwt_wsgi_store_call_seconds_count", op="rotate") == 2
    assert sample(page, "jwt_wsgi_decisions_total", reason="allowed") == 1
    assert sample(page, "jwt_wsgi_token_cache_lookups_total", result="miss") == 1
    assert client.head("/metrics").status_code == 200
    assert client.post("/metrics").status_code == 405
    open_metrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert open_metrics.headers["Content-Type"].startswith("application/openmetrics-text")


def test_metrics_path_under_protect_needs_a_token_and_its_scopes(make_client):
    # The default protect (everything) covers it: a scraper sends a token, as for any API.
    client = make_client(protect=["/"], metrics_path="/metrics", scopes={"/metrics": ["metrics"]})
    missing = client.get("/metrics")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers=bearer(mint(sub="alice", scope="read"))).status_code == 403
    assert client.get("/metrics", headers=bearer(mint(sub="prometheus", scope="metrics"))).status_code == 200
    assert client.get("/metrics", headers=bearer(mint(sub="prometheus", scope="metrics", exp=1))).status_code == 401


def test_metrics_prometheus_counts_in_prometheus_clients_registry(make_client):
    import prometheus_client

    def logins() -> float:
        # The application's own page (here prometheus_client's WSGI app) shows jwt_wsgi's series.
        page = BufferedClient(prometheus_client.make_wsgi_app()).get("/").get_data(as_text=True)
        return sample(page, "jwt_wsgi_events_total", event="login", reason="")

    first = make_client(metrics="prometheus")
    assert first.middleware.metrics.registry is prometheus_client.REGISTRY
    before = logins()
    login(first)
    # Another middleware of the process (a reloaded one, say) shares the hooks: one set of series.
    second = make_client(metrics="prometheus")
    assert second.middleware.metrics is first.middleware.metrics
    login(second)
    assert logins() == before + 2


def test_metrics_option_names_hooks_in_every_spelling(make_client):
    assert isinstance(make_client(metrics_path="/m", public=["/m"]).middleware.metrics, PrometheusMetrics)
    middleware = JWTMiddleware.from_env(canary_app, {"JWT_WSGI_SECRET": SECRET, "JWT_WSGI_METRICS_PATH": "/metrics",
                                                     "JWT_WSGI_METRICS": "tests.test_metrics:HOOKS"})
    assert middleware.metrics is HOOKS
    assert middleware.settings.public_view()["metrics"] == "jwt_wsgi.contrib.prometheus:PrometheusMetrics"


HOOKS = PrometheusMetrics() if PrometheusMetrics is not None else None


@pytest.mark.parametrize(("options", "option", "words"), [
    pytest.param({"metrics_path": "metrics"}, "metrics_path", "absolute path", id="relative-path"),
    pytest.param({"metrics_path": "/auth/login"}, "login_path", "must differ", id="same-as-login"),
    pytest.param({"metrics": "statsd"}, "metrics", "'prometheus' or 'module:attribute'", id="unknown-word"),
    pytest.param({"metrics": "tests.test_metrics:nothing_here"}, "metrics", "cannot import", id="no-such-object"),
    pytest.param({"metrics": object()}, "metrics", "lacks decision", id="not-hooks"),
    pytest.param({"metrics": Recorder}, "metrics", "an instance", id="a-class"),
    pytest.param({"metrics": Recorder(), "metrics_path": "/metrics"}, "metrics_path", "no page", id="no-page"),
])
def test_bad_metrics_options_are_refused_at_construction(options, option, words):
    with pytest.raises(ConfigurationError) as caught:
        JWTMiddleware(canary_app, secret=SECRET, **options)
    assert caught.value.option == option and words in caught.value.message


def test_a_recorder_sees_no_password(make_client, caplog):
    hooks = Recorder()
    client = make_client(metrics=hooks)
    client.post("/auth/login", json={"username": "alice", "password": ALICE_PASSWORD})
    assert ALICE_PASSWORD not in repr(hooks.calls) and "alice" not in repr(hooks.calls)


def test_the_prometheus_adapter_has_every_hook():
    from jwt_wsgi.settings.convert import METRICS_HOOKS

    hooks = [name for name in vars(Metrics) if not name.startswith("_")]
    assert tuple(hooks) == METRICS_HOOKS  # what the metrics option checks an object for
    assert all(getattr(PrometheusMetrics, name) is not getattr(Metrics, name) for name in hooks)
    assert all(callable(getattr(PrometheusMetrics, name)) for name in hooks)


def test_a_missing_multiprocess_directory_is_a_configuration_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigurationError) as caught:
        JWTMiddleware(canary_app, secret=SECRET, metrics_path="/metrics")
    assert caught.value.option == "metrics_path" and "PROMETHEUS_MULTIPROC_DIR" in caught.value.message


def test_decisions_by_reason_and_cache_lookups(make_client):
    hooks = Recorder()
    client = make_client(metrics=hooks, scopes={"/admin": ["admin"]})
    token = login(client)["access_token"]
    del hooks.calls[:]
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}
    statuses = [
        client.get("/api/me").status_code,  # no credential: answered inline
        client.get("/api/me", headers=bearer(token)).status_code,  # first seen: a cache miss
        client.get("/api/me", headers=bearer(token)).status_code,  # seen: a hit
        client.get("/api/me", headers=bearer(mint(exp=1))).status_code,
        client.get("/admin", headers=bearer(token)).status_code,
        client.get("/api/me", headers={"Authorization": "Bearer"}).status_code,
        client.options("/api/me", headers=preflight).status_code,
        client.get("/elsewhere", headers=bearer(token)).status_code,  # outside protect: no decision
        client.post("/auth/login", json={"username": "alice", "password": "no"}).status_code,  # an endpoint: none
    ]
    assert statuses == [401, 200, 200, 401, 403, 400, 204, 200, 401]
    decisions = [c[1] for c in hooks.calls if c[0] == "decision"]
    assert decisions == ["missing_token", "allowed", "allowed", "token_expired", "insufficient_scope",
                         "invalid_request", "preflight"]
    lookups = [c[1] for c in hooks.calls if c[0] == "cache"]
    assert lookups == [False, True, False, True, True]  # the expired token was never cached


def test_decisions_of_user_loader_refusals_and_forward_auth(make_client):
    hooks = Recorder()
    client = make_client(metrics=hooks, verify_path="/verify", user_loader=lambda claims: None)
    token = mint(sub="ghost")
    assert client.get("/api/me", headers=bearer(token)).status_code == 401  # the loader knows no ghost
    original = {"X-Original-URI": "/api/me", "X-Original-Method": "GET"}
    assert client.get("/verify", headers=original).status_code == 401
    assert [c[1] for c in hooks.calls if c[0] == "decision"] == ["user_not_found", "missing_token"]

