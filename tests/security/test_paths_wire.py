"""Path spellings (threat model §3), as raw HTTP bytes over real sockets.

Every row goes, unnormalised, to four servers: gunicorn (2 sync workers, gunicorn's DEFAULT
configuration, so ``SCRIPT_NAME`` headers from 127.0.0.1 are honoured) and Werkzeug's dev server,
each serving (a) the Werkzeug ``Map`` router and (b) the WebOb router on ``SCRIPT_NAME + PATH_INFO``
behind the middleware (``protect=["/api", "/admin"]``). No request carries a token.

Expectations: ``deny`` = 401 with a ``Bearer`` challenge; ``deny400`` = that or a 400;
``nocanary`` = any status but 500, never the protected body; ``public`` = the public route is
served. Every row is also never a 500 and never the protected body, except a ``SCRIPT_NAME`` header
that is not a prefix of the path, to which gunicorn itself answers its "500 Bad Request"
(ConfigurationProblem) without calling the application.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix

from tests.conftest import CANARY_ADMIN, CANARY_API
from tests.security import apps
from tests.security.conftest import WIRE_SERVERS, build_request, client_for


@dataclass(frozen=True)
class Case:
    method: str
    target: str | bytes
    headers: tuple[tuple[str, str], ...] = ()
    expect: str = "deny"
    gunicorn: str | None = None  # expectation on gunicorn when it differs
    devserver: str | None = None  # expectation on Werkzeug's dev server when it differs
    body: bytes = b""


def row(name: str, method: str, target: str | bytes, *headers: tuple[str, str], expect: str = "deny",
        gunicorn: str | None = None, devserver: str | None = None, body: bytes = b"") -> Any:
    return pytest.param(Case(method, target, headers, expect, gunicorn, devserver, body), id=name)


PREFLIGHT = (("Origin", "https://evil.example"), ("Access-Control-Request-Method", "DELETE"))

ROWS = [
    row("plain-admin", "GET", "/admin"),
    row("plain-admin-panel", "GET", "/admin/panel"),
    row("plain-api-me", "GET", "/api/me"),
    row("leading-double-slash", "GET", "//admin/panel"),
    row("leading-triple-slash", "GET", "///api/me"),
    row("double-slash-prefix-only", "GET", "//admin"),
    row("inner-double-slash-admin", "GET", "/admin//panel"),
    row("inner-double-slash-api", "GET", "/api//me"),
    row("encoded-leading-slash", "GET", "/%2Fadmin/panel"),
    row("encoded-inner-slash", "GET", "/admin%2Fpanel"),
    row("encoded-slash-lower-case", "GET", "/api%2fme"),
    row("two-encoded-slashes", "GET", "/%2F%2Fadmin/panel"),
    row("double-encoded-slash", "GET", "/admin%252Fpanel"),
    row("dot-segment", "GET", "/./admin/panel"),
    row("dotdot-segment", "GET", "/x/../admin/panel"),
    row("dotdot-from-public", "GET", "/public/../admin/panel"),
    row("encoded-dot", "GET", "/%2e/admin/panel"),
    row("encoded-dotdot-upper", "GET", "/%2E%2E/admin/panel"),
    row("encoded-dotdot-from-public", "GET", "/public/%2e%2e/admin/panel"),
    row("dotdot-encoded-slash", "GET", "/api/..%2fadmin"),
    row("dotdot-escapes-prefix-to-public", "GET", "/api/../public", expect="nocanary"),
    row("dotdot-escapes-prefix-to-admin", "GET", "/api/../admin/panel"),
    row("trailing-slash-prefix", "GET", "/admin/"),
    row("trailing-slash-route", "GET", "/admin/panel/"),
    row("trailing-dot", "GET", "/admin."),
    row("trailing-dot-segment", "GET", "/admin/panel/."),
    row("trailing-slash-api", "GET", "/api/me/"),
    row("upper-case", "GET", "/ADMIN/panel"),
    row("title-case", "GET", "/Admin/panel"),
    row("upper-case-api", "GET", "/API/me"),
    row("administrator-is-public", "GET", "/administrator", expect="public"),
    row("apiary-is-not-protected", "GET", "/apiary", expect="nocanary"),
    row("suffix-json", "GET", "/admin.json", expect="nocanary"),
    row("suffix-space", "GET", "/admin%20", expect="deny400"),
    row("suffix-nul", "GET", "/admin%00", expect="400"),
    row("suffix-nul-route", "GET", "/admin/panel%00", expect="400"),
    row("suffix-tab", "GET", "/admin%09", expect="deny400"),
    row("semicolon-param-prefix", "GET", "/api;x=1/me"),
    row("semicolon-empty-param", "GET", "/admin;/panel"),
    row("semicolon-suffix", "GET", "/api/me;.css"),
    row("encoded-backslash", "GET", "/%5cadmin/panel", expect="deny400"),
    row("raw-backslash", "GET", "/admin\\panel", expect="deny400"),
    row("fullwidth-A", "GET", "/%EF%BC%A1dmin/panel", expect="nocanary"),
    row("zero-width-space", "GET", "/ad%E2%80%8Bmin/panel", expect="nocanary"),
    row("a-acute", "GET", "/%C3%A1dmin", expect="nocanary"),
    row("raw-utf8-bytes", "GET", b"/\xef\xbc\xa1dmin/panel", expect="nocanary"),
    row("overlong-slash-2", "GET", "/%C0%AFadmin", expect="nocanary"),
    row("overlong-slash-3", "GET", "/%E0%80%AFadmin", expect="nocanary"),
    row("invalid-byte", "GET", "/%FF", expect="nocanary"),
    row("invalid-byte-in-prefix", "GET", "/admin/%FF/panel", expect="nocanary"),
    row("query-looks-like-path", "GET", "/public?/admin/panel", expect="public"),
    row("fragment-on-protected", "GET", "/admin/panel#x"),
    row("fragment-on-public", "GET", "/public#/admin", expect="public"),
    row("absolute-form-loopback", "GET", "http://127.0.0.1/admin/panel"),
    row("absolute-form-other-host", "GET", "http://evil.example/admin/panel"),
    row("absolute-form-api", "GET", "http://127.0.0.1/api/me"),
    row("script-name-admin", "GET", "/admin/panel", ("SCRIPT_NAME", "/admin")),
    row("script-name-partial-segment", "GET", "/admin/panel", ("SCRIPT_NAME", "/adm")),
    row("script-name-api", "GET", "/api/me", ("SCRIPT_NAME", "/api")),
    row("script-name-whole-path", "GET", "/api/me", ("SCRIPT_NAME", "/api/me")),
    # The other direction: a SCRIPT_NAME header that *adds* a mount point in front of a protected path.
    row("script-name-prepended-admin", "GET", "/zzz/admin/panel", ("SCRIPT_NAME", "/zzz"), expect="nocanary"),
    row("script-name-prepended-api", "GET", "/x/api/me", ("SCRIPT_NAME", "/x"), expect="nocanary"),
    row("path-info-header", "GET", "/public", ("PATH_INFO", "/admin/panel"), expect="public"),
    row("script-name-not-a-prefix", "GET", "/admin/panel", ("SCRIPT_NAME", "/zzz"), gunicorn="gunicorn500"),
    row("mounted-under-app", "GET", "/app/admin/panel", ("SCRIPT_NAME", "/app"), devserver="nocanary"),
    row("mounted-double-slash", "GET", "/app//admin/panel", ("SCRIPT_NAME", "/app"), devserver="nocanary"),
    row("mounted-api", "GET", "/app/api/me", ("SCRIPT_NAME", "/app"), devserver="nocanary"),
    row("x-original-url", "GET", "/public", ("X-Original-URL", "/admin/panel"), expect="public"),
    row("x-rewrite-url", "GET", "/public", ("X-Rewrite-URL", "/admin/panel"), expect="public"),
    row("head-admin", "HEAD", "/admin/panel"),
    row("head-api", "HEAD", "/api/me"),
    row("cors-preflight-admin", "OPTIONS", "/admin/panel", *PREFLIGHT, expect="preflight"),
    row("cors-preflight-api", "OPTIONS", "/api/me", *PREFLIGHT, expect="preflight"),
    row("options-without-preflight-headers", "OPTIONS", "/admin/panel"),
    row("method-propfind", "PROPFIND", "/admin/panel"),
    row("method-trace", "TRACE", "/admin/panel"),
    row("method-foo", "FOO", "/admin/panel"),
    row("method-connect", "CONNECT", "/admin/panel", expect="deny400"),
    row("method-post", "POST", "/admin/panel", ("Content-Type", "text/plain"), body=b"x"),
    row("method-put", "PUT", "/api/me", ("Content-Type", "application/json"), body=b"{}"),
    row("method-delete", "DELETE", "/admin/panel"),
    row("method-patch", "PATCH", "/api/me"),
    row("method-override-header", "POST", "/admin/panel", ("X-HTTP-Method-Override", "DELETE"),
        ("Content-Length", "0")),
    row("method-override-to-options", "POST", "/admin/panel", ("X-HTTP-Method-Override", "OPTIONS"),
        *PREFLIGHT, ("Content-Length", "0")),
    row("method-override-form", "POST", "/admin/panel", ("Content-Type", "application/x-www-form-urlencoded"),
        body=b"_method=DELETE"),
    row("lower-case-method", "get", "/admin/panel", gunicorn="400"),
    row("mixed-case-method", "Get", "/admin/panel", gunicorn="400"),
    row("options-asterisk", "OPTIONS", "*", expect="nocanary"),
    row("protected-with-query", "GET", "/api/me?x=1"),
    row("protected-with-empty-query", "GET", "/api/me?"),
    row("public-forwards-internally", "GET", "/public?next=/admin/panel", expect="nocanary"),
    row("public-forwards-double-slash", "GET", "/public?next=//admin/panel", expect="nocanary"),
]


def check(server: str, case: Case, response: Any) -> None:
    expect = case.expect
    if server.startswith("gunicorn") and case.gunicorn:
        expect = case.gunicorn
    if server.startswith("devserver") and case.devserver:
        expect = case.devserver
    detail = f"{server}: {case.method} {case.target!r} {case.headers} -> {response}"
    assert response.status != 0, f"no HTTP response: {detail}"
    assert CANARY_API not in response.body and CANARY_ADMIN not in response.body, f"CANARY LEAKED: {detail}"
    if expect == "gunicorn500":
        # gunicorn's own ConfigurationProblem page: "500 Bad Request", the app is never called.
        assert response.status == 500 and response.reason == "Bad Request", detail
        return
    assert response.status != 500, f"500: {detail}"
    challenge = response.headers.get("www-authenticate", "")
    if expect == "deny":
        assert response.status == 401 and challenge.startswith("Bearer realm="), detail
    elif expect == "deny400":
        assert response.status in (400, 401), detail
        if response.status == 401:
            assert challenge.startswith("Bearer realm="), detail
    elif expect == "400":
        assert response.status == 400, detail
    elif expect == "public":
        assert response.status == 200, detail
        assert response.body.startswith((apps.PUBLIC_BODY, apps.ADMINISTRATOR_BODY)), detail
    elif expect == "preflight":
        # Threat model §3.3: DENY, or a CORS-only 204 generated by the middleware that never invokes
        # the application's handler.
        assert response.status in (204, 401), detail
    elif expect == "nocanary":
        pass
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(expect)


@pytest.mark.parametrize("server", WIRE_SERVERS)
@pytest.mark.parametrize("case", ROWS)
def test_path_spellings_over_the_wire(wire: Any, server: str, case: Case) -> None:
    data = build_request(case.method, case.target, list(case.headers), case.body)
    response = wire.send(server, data, method=case.method.upper())
    check(server, case, response)


@pytest.mark.parametrize("server", WIRE_SERVERS)
def test_controls_with_a_token_over_the_wire(wire: Any, server: str) -> None:
    """Positive controls: the canaries are reachable with a valid token (so NO-CANARY means something)."""
    from tests.conftest import bearer, mint

    auth = list(bearer(mint(jti=f"ctl-{server}")).items())
    for target in ("/api/me", "/admin/panel", "/admin"):
        response = wire.send(server, build_request("GET", target, auth))
        assert response.status == 200 and (CANARY_API in response.body or CANARY_ADMIN in response.body), str(response)
    public = wire.send(server, build_request("GET", "/public"))
    assert public.status == 200 and public.body.startswith(apps.PUBLIC_BODY)


# -- X-Forwarded-Prefix (ProxyFix in front), in-process ----------------------------------------------
@pytest.mark.parametrize(
    ("target", "prefix"),
    [
        pytest.param("/panel", "/admin", id="prefix-completes-protected-path"),
        pytest.param("/me", "/api", id="prefix-completes-api"),
        pytest.param("/in/panel", "/adm", id="prefix-partial-segment"),
        pytest.param("/admin/panel", "/x", id="prefix-prepended-admin"),
        pytest.param("/api/me", "/mount", id="prefix-prepended-api"),
    ],
)
def test_x_forwarded_prefix_through_proxyfix(router: str, target: str, prefix: str) -> None:
    stack = ProxyFix(apps.protect(apps.APPS[router]), x_for=1, x_proto=1, x_host=1, x_prefix=1)
    client = client_for(stack)
    response = client.get(target, headers={"X-Forwarded-Prefix": prefix})
    assert CANARY_API not in response.data and CANARY_ADMIN not in response.data, (response.status, response.data)
    assert response.status_code != 500


def test_prefix_configured_with_trailing_slash_covers_the_bare_prefix(router: str) -> None:
    client = client_for(apps.protect(apps.APPS[router], protect=["/admin/", "/api/"]))
    for path in ("/admin", "/admin/panel", "/api/me"):
        response = client.get(path)
        assert response.status_code == 401 and CANARY_ADMIN not in response.data, path
    assert client.get("/administrator").status_code == 200
