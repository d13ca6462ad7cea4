"""Differential tests: the middleware's decision against what real routers do with the same path.

The middleware decides on its reading(s) of the path; the router behind it dispatches on its
own. Flask, Bottle, a Werkzeug ``Map``, a WebOb prefix router, Django's URL resolver, Pyramid's
URL dispatch and Falcon's router each serve catch-all routes under ``/api`` and ``/admin`` (see
:mod:`tests.routers`), behind the middleware in two configurations.

Requests are built as gunicorn builds them: the raw request path is percent-decoded ONCE into
``PATH_INFO`` (``unquote_to_bytes(raw).decode("latin-1")``), ``RAW_URI`` / ``REQUEST_URI`` keep it
raw. Each request is sent three times: without a token, with a valid token without scopes, and with
a valid token carrying the ``admin`` scope.

The property: **if the router dispatched to a protected route (``api``, ``users``, ``admin``), the
request carried a valid token, and for ``admin`` one with the ``admin`` scope.** Never a 500.

Corpus: Hypothesis over paths made of dot, encoded-dot, encoded-slash, backslash, ``;param`` and
mixed-case segments (fixed, derandomized budget; ``FUZZ_EXAMPLES`` / ``FUZZ_RANDOM`` as in
``tests/security/test_properties.py``), plus the rows of the bypass report as explicit cases,
in-process and as raw bytes over sockets against gunicorn serving the Flask and the Bottle app.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from tests.conftest import bearer, mint
from tests.fuzz import BUDGET, FUZZ_RANDOM
from tests.routers import CONFIGS, PROTECTED_ROUTES

ROUTERS = ["flask", "bottle", "werkzeug", "webob", "django", "pyramid", "falcon"]
TOKEN_STATES = ["none", "valid", "admin"]


def _build(router: str, config: str) -> Callable[..., Iterable[bytes]]:
    from tests.routers import bottle_app, django_app, falcon_app, flask_app, pyramid_app, webob_app, werkzeug_app

    modules: dict[str, Any] = {"flask": flask_app, "bottle": bottle_app, "werkzeug": werkzeug_app,
                               "webob": webob_app, "django": django_app, "pyramid": pyramid_app,
                               "falcon": falcon_app}
    return modules[router].stack(config)  # type: ignore[no-any-return]


_STACKS: dict[tuple[str, str], Callable[..., Iterable[bytes]]] = {}


def stack(router: str, config: str) -> Callable[..., Iterable[bytes]]:
    """Built once per process (Django can be configured only once)."""
    key = (router, config)
    if key not in _STACKS:
        _STACKS[key] = _build(router, config)
    return _STACKS[key]


def tokens() -> dict[str, str | None]:
    """Fresh each time (cheap), so that no token expires during a long run."""
    exp = int(time.time()) + 600
    return {"none": None, "valid": mint(exp=exp, jti="rt-valid"), "admin": mint(exp=exp, jti="rt-admin", scope="admin")}


# -- a request as gunicorn hands it over ----------------------------------------------------------
def path_info_for(raw_path: str) -> str:
    """gunicorn: ``PATH_INFO`` is the raw path percent-decoded once, as latin-1 text (PEP 3333)."""
    return unquote_to_bytes(raw_path).decode("latin-1")


def server_environ(raw_path: str, token: str | None, mount: str = "") -> dict[str, Any]:
    """The environ gunicorn builds for ``GET raw_path`` (under ``SCRIPT_NAME=mount`` when a proxy
    says the application is mounted there: gunicorn then strips it from the path)."""
    builder = EnvironBuilder(path="/", method="GET", headers=bearer(token) if token else {},
                             environ_overrides={"HTTP_HOST": "127.0.0.1"})
    try:
        environ = builder.get_environ()
    finally:
        builder.close()
    environ["SCRIPT_NAME"] = mount
    environ["PATH_INFO"] = path_info_for(raw_path)
    environ["RAW_URI"] = environ["REQUEST_URI"] = mount + raw_path
    return environ


@dataclass
class Outcome:
    status: int
    body: bytes

    @property
    def route(self) -> str | None:
        """The route the router dispatched to (its handler's JSON), or ``None``."""
        if self.status != 200:
            return None
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data.get("route") if isinstance(data, dict) else None

    @property
    def arg(self) -> Any:
        return json.loads(self.body).get("arg") if self.route else None


def run(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> Outcome:
    seen: list[str] = []
    result = app(environ, lambda status, headers, exc_info=None: seen.append(status))
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return Outcome(int(seen[0].split()[0]), body)


def violation(token_state: str, outcome: Outcome) -> str | None:
    """What is wrong with this outcome, or ``None``."""
    if outcome.status == 500:
        return f"500: {outcome.body[:200]!r}"
    route = outcome.route
    if route not in PROTECTED_ROUTES:
        return None
    if token_state == "none":
        return f"reached route {route!r} (arg {outcome.arg!r}) WITHOUT a token"
    if "admin" in PROTECTED_ROUTES[route] and token_state != "admin":
        return f"reached route {route!r} (arg {outcome.arg!r}) with a token lacking the 'admin' scope"
    return None


def differential(router: str, raw_path: str, mount: str = "") -> Iterator[str]:
    """Every violation of the property for ``raw_path`` on ``router``, over configs and tokens."""
    where = f"SCRIPT_NAME {mount!r} " if mount else ""
    for config in CONFIGS:
        app = stack(router, config)
        for state, token in tokens().items():
            outcome = run(app, server_environ(raw_path, token, mount))
            problem = violation(state, outcome)
            if problem:
                yield (f"{router} [{config}] raw {mount + raw_path!r} {where}PATH_INFO {path_info_for(raw_path)!r} "
                       f"token={state}: {problem}")


# -- the rows of the bypass report, and neighbours --------------------------------------------------
ROWS = [
    pytest.param("/api/foo", id="api-plain"),
    pytest.param("/api/%2e%2e/x", id="api-encoded-dotdot"),
    pytest.param("/api/.%2e/x", id="api-half-encoded-dotdot"),
    pytest.param("/api/%2E%2E/etc", id="api-upper-encoded-dotdot"),
    pytest.param("/api/../x", id="api-literal-dotdot-path-as-is"),
    pytest.param("/api/users/..%252F..", id="users-double-encoded-slash"),
    pytest.param("/admin/../public", id="admin-dotdot-to-public"),
    pytest.param("/admin/..", id="admin-dotdot-scope"),
    # Neighbours of the same family.
    pytest.param("/admin/.%2e", id="admin-half-encoded-dotdot-scope"),
    pytest.param("/admin/x/../..", id="admin-two-levels-up"),
    pytest.param("/admin/../api/x", id="admin-dotdot-to-api-scope"),
    pytest.param("/api/%252e%252e/x", id="api-double-encoded-dotdot"),
    pytest.param("/api/..%2f..%2fx", id="api-dotdot-encoded-slashes"),
    pytest.param("/api/..%5cx", id="api-dotdot-encoded-backslash"),
    pytest.param("/api/..\\x", id="api-dotdot-backslash"),
    pytest.param("/api/..;x/y", id="api-dotdot-param"),
    pytest.param("/api/users/%2e%2e", id="users-encoded-dotdot"),
    pytest.param("/api/./x", id="api-dot"),
    pytest.param("/public/../admin/x", id="public-dotdot-to-admin"),
    pytest.param("/public/%2e%2e/api/x", id="public-encoded-dotdot-to-api"),
    pytest.param("//api/x", id="leading-double-slash"),
    pytest.param("/api//..", id="api-empty-then-dotdot"),
    pytest.param("/API/x", id="api-upper-case"),
    pytest.param("/ADMIN/x", id="admin-upper-case-scope"),
    pytest.param("/Admin/%2e%2e", id="admin-mixed-case-encoded-dotdot-scope"),
    # Bytes that are not UTF-8 inside a prefix: Bottle 0.13 decodes PATH_INFO with
    # errors="ignore", so it routes /a\xffpi/x as /api/x.
    pytest.param("/a%ffpi/x", id="api-invalid-utf8-inside"),
    pytest.param("/admi%c0n/x", id="admin-invalid-utf8-inside-scope"),
    pytest.param("/api%ff/x", id="api-invalid-utf8-after"),
    pytest.param("/ap%e2%80i/x", id="api-truncated-utf8-inside"),
]

# The rows /a%ffpi/x, /api%ff/x, /ap%e2%80i/x and /admi%c0n/x once reached Bottle's /api and
# /admin without a token (Bottle drops bytes that are not UTF-8 from PATH_INFO); readings() now
# includes that reading, and the rows pass for every router.


@pytest.mark.parametrize("router", ROUTERS)
@pytest.mark.parametrize("raw_path", ROWS)
def test_reported_spellings_reach_no_protected_route_without_the_token_it_needs(router: str, raw_path: str) -> None:
    problems = list(differential(router, raw_path))
    assert not problems, "\n".join(problems)


# -- controls: the routes exist, the tokens work, so the property above is not vacuous -------------
CONTROLS = [
    # raw path, token state, expected status, expected route
    ("/api/foo", "none", 401, None),
    ("/api/foo", "valid", 200, "api"),
    ("/api/a/b", "valid", 200, "api"),
    ("/api/users/bob", "none", 401, None),
    ("/api/users/bob", "valid", 200, "users"),
    ("/admin/x", "none", 401, None),
    ("/admin/x", "valid", 403, None),
    ("/admin/x", "admin", 200, "admin"),
    ("/public", "none", 200, "public"),
]


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("router", ROUTERS)
def test_controls_each_router_dispatches_canonical_paths(router: str, config: str) -> None:
    app = stack(router, config)
    for raw_path, state, status, route in CONTROLS:
        outcome = run(app, server_environ(raw_path, tokens()[state]))
        assert (outcome.status, outcome.route) == (status, route), (raw_path, state, outcome)
    # The arguments the routers pass, as the report shows them: nothing resolves dot segments.
    outcome = run(app, server_environ("/api/users/bob", tokens()["valid"]))
    assert outcome.arg == "bob"
    outcome = run(app, server_environ("/api/a/b", tokens()["valid"]))
    assert outcome.arg == "a/b"


# -- the generated corpus ----------------------------------------------------------------------------
PIECES = ["..", ".", "%2e", "%2E", ".%2e", "%2e%2e", "%252e", "%2f", "%2F", "%252f", "%5c", "%5C", "\\", ";x", ";",
          "", "api", "API", "Api", "admin", "Admin", "public", "users", "x",
          # Not UTF-8 once decoded, a fullwidth dot, an encoded space and semicolon: no router takes
          # them for a dot or a separator, but each must still get an answer that is not a 500.
          "%ff", "%c0%ae", "%ef%bc%8e", "%20", "%3b"]

segment = st.lists(st.sampled_from(PIECES), min_size=1, max_size=2).map("".join)
segments = st.lists(segment, min_size=0, max_size=5)
raw_paths = st.one_of(
    # Most paths start where the routes are, so that the routers get something to dispatch.
    st.builds(lambda first, rest: "/" + "/".join([first, *rest]),
              st.sampled_from(["api", "admin", "public", "api/users", "API", "Admin", ".", "..", "%2e%2e", ""]),
              segments),
    segments.map(lambda segs: "/" + "/".join(segs)),
)
# Mostly no mount point; sometimes a SCRIPT_NAME (set by a proxy header gunicorn trusts).
mounts = st.sampled_from(["", "", "", "", "/x", "/public", "/api", "/admin"])


@pytest.mark.parametrize("router", ROUTERS)
@BUDGET
@given(raw_path=raw_paths, mount=mounts)
def test_no_generated_spelling_reaches_a_protected_route_without_the_token_it_needs(router: str, raw_path: str,
                                                                                    mount: str) -> None:
    problems = list(differential(router, raw_path, mount))
    assert not problems, "\n".join(problems)


def test_budget_is_fixed() -> None:
    if "FUZZ_EXAMPLES" in os.environ or FUZZ_RANDOM:
        return  # a maintainer's longer run, on purpose
    assert BUDGET.max_examples == 300 and BUDGET.derandomize and BUDGET.deadline is None


# -- the same rows over the wire: raw bytes to gunicorn (2 workers) serving Flask, then Bottle -------
@pytest.fixture(scope="module", params=["flask", "bottle"])
def wire_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """gunicorn with 2 sync workers serving both configurations of one app, chosen by ``Host``
    (``prefixes.test`` / ``default.test``): the app's name and the port."""
    from tests._services import unavailable
    from tests.servers import GUNICORN, Server, server_env

    if not os.path.exists(GUNICORN):
        unavailable("gunicorn is not installed in this virtualenv")
    name = request.param
    base = tmp_path_factory.mktemp(f"router-wire-{name}")
    server = Server(
        argv=[GUNICORN, "--workers", "2", "--worker-class", "sync", "--bind", "127.0.0.1:{port}",
              f"tests.routers.{name}_app:by_host"],
        env=server_env(base / "runtime"),
        log_dir=base,
        name=f"gunicorn-{name}-routers",
        ready_path="/public",
    )
    with server:
        yield name, server.port


WIRE_ROWS = [
    pytest.param("/api/foo", id="api-plain"),
    pytest.param("/api/%2e%2e/x", id="api-encoded-dotdot"),
    pytest.param("/api/.%2e/x", id="api-half-encoded-dotdot"),
    pytest.param("/api/%2E%2E/etc", id="api-upper-encoded-dotdot"),
    pytest.param("/api/../x", id="api-literal-dotdot-path-as-is"),
    pytest.param("/api/users/..%252F..", id="users-double-encoded-slash"),
    pytest.param("/admin/../public", id="admin-dotdot-to-public"),
    pytest.param("/admin/..", id="admin-dotdot-scope"),
    pytest.param("/api/%252e%252e/x", id="api-double-encoded-dotdot"),
    pytest.param("/admin/..;x", id="admin-dotdot-param"),
    pytest.param("/a%ffpi/x", id="api-invalid-utf8-inside"),
    pytest.param("/admi%c0n/x", id="admin-invalid-utf8-inside-scope"),
]


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("raw_path", WIRE_ROWS)
def test_reported_spellings_over_the_wire_to_gunicorn(wire_app: tuple[str, int], raw_path: str, config: str) -> None:
    from tests.security.conftest import build_request, raw_http

    app, port = wire_app
    problems = []
    for state, token in tokens().items():
        headers = [("Host", f"{config}.test")] + (list(bearer(token).items()) if token else [])
        response = raw_http(port, build_request("GET", raw_path.encode("latin-1"), headers))
        assert response.status != 0, f"no HTTP response to {raw_path!r}: {response.raw[:300]!r}"
        problem = violation(state, Outcome(response.status, response.body))
        if problem:
            problems.append(f"gunicorn+{app} [{config}] raw {raw_path!r} token={state}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_controls_over_the_wire(wire_app: tuple[str, int], config: str) -> None:
    """gunicorn decodes the path once, and the app's routes answer behind the middleware."""
    from tests.security.conftest import build_request, raw_http

    app, port = wire_app
    for raw_path, state, status, route in CONTROLS:
        token = tokens()[state]
        headers = [("Host", f"{config}.test")] + (list(bearer(token).items()) if token else [])
        response = raw_http(port, build_request("GET", raw_path, headers))
        outcome = Outcome(response.status, response.body)
        assert (outcome.status, outcome.route) == (status, route), (raw_path, state, str(response))
    # One decoding round by the server, none by the router: the handler sees the once-decoded text.
    token = tokens()["valid"]
    response = raw_http(port, build_request("GET", "/api/users/b%2573", [("Host", f"{config}.test")]
                                                       + list(bearer(token).items())))
    assert Outcome(response.status, response.body).arg == "b%73", str(response)
