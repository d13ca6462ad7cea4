"""Catalogue §2, P1–P30, as raw HTTP bytes over real sockets.

Every row goes, unnormalised, to four servers: gunicorn (2 sync workers, gunicorn's DEFAULT
configuration, so ``SCRIPT_NAME`` headers from 127.0.0.1 are honoured) and Werkzeug's dev server,
each serving (a) the Werkzeug ``Map`` router and (b) the WebOb router on ``SCRIPT_NAME + PATH_INFO``
behind the middleware (``protect=["/api", "/admin"]``). No request carries a token.

Expectations (catalogue §0): ``deny`` = 401 with a ``Bearer`` challenge; ``deny400`` = that or a 400;
``nocanary`` = any status but 500, never the protected body; ``public`` = the public route is
served. Every row is also NEVER-500 and NO-CANARY, except P19 where gunicorn itself answers its
"500 Bad Request" (ConfigurationProblem) without calling the application, as the catalogue records.
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


def row(rid: str, method: str, target: str | bytes, *headers: tuple[str, str], expect: str = "deny",
        gunicorn: str | None = None, devserver: str | None = None, body: bytes = b"") -> Any:
    return pytest.param(Case(method, target, headers, expect, gunicorn, devserver, body), id=rid)


PREFLIGHT = (("Origin", "https://evil.example"), ("Access-Control-Request-Method", "DELETE"))

ROWS = [
    row("P1-admin", "GET", "/admin"),
    row("P1-admin-panel", "GET", "/admin/panel"),
    row("P1-api-me", "GET", "/api/me"),
    row("P2-leading-double-slash", "GET", "//admin/panel"),
    row("P2-leading-triple-slash", "GET", "///api/me"),
    row("P2-double-slash-prefix-only", "GET", "//admin"),
    row("P3-inner-double-slash-admin", "GET", "/admin//panel"),
    row("P3-inner-double-slash-api", "GET", "/api//me"),
    row("P4-encoded-leading-slash", "GET", "/%2Fadmin/panel"),
    row("P4-encoded-inner-slash", "GET", "/admin%2Fpanel"),
    row("P4-encoded-slash-lower-case", "GET", "/api%2fme"),
    row("P4-two-encoded-slashes", "GET", "/%2F%2Fadmin/panel"),
    row("P4-double-encoded-slash", "GET", "/admin%252Fpanel"),
    row("P5-dot", "GET", "/./admin/panel"),
    row("P5-dotdot", "GET", "/x/../admin/panel"),
    row("P5-dotdot-from-public", "GET", "/public/../admin/panel"),
    row("P6-encoded-dot", "GET", "/%2e/admin/panel"),
    row("P6-encoded-dotdot-upper", "GET", "/%2E%2E/admin/panel"),
    row("P6-encoded-dotdot-from-public", "GET", "/public/%2e%2e/admin/panel"),
    row("P6-dotdot-encoded-slash", "GET", "/api/..%2fadmin"),
    row("P7-dotdot-escapes-prefix-to-public", "GET", "/api/../public", expect="nocanary"),
    row("P7-dotdot-escapes-prefix-to-admin", "GET", "/api/../admin/panel"),
    row("P8-trailing-slash-prefix", "GET", "/admin/"),
    row("P8-trailing-slash-route", "GET", "/admin/panel/"),
    row("P8-trailing-dot", "GET", "/admin."),
    row("P8-trailing-dot-segment", "GET", "/admin/panel/."),
    row("P8-trailing-slash-api", "GET", "/api/me/"),
    row("P9-upper-case", "GET", "/ADMIN/panel"),
    row("P9-title-case", "GET", "/Admin/panel"),
    row("P9-upper-case-api", "GET", "/API/me"),
    row("P10-administrator-is-public", "GET", "/administrator", expect="public"),
    row("P10-apiary-is-not-protected", "GET", "/apiary", expect="nocanary"),
    row("P11-suffix-json", "GET", "/admin.json", expect="nocanary"),
    row("P11-suffix-space", "GET", "/admin%20", expect="deny400"),
    row("P11-suffix-nul", "GET", "/admin%00", expect="400"),
    row("P11-suffix-nul-route", "GET", "/admin/panel%00", expect="400"),
    row("P11-suffix-tab", "GET", "/admin%09", expect="deny400"),
    row("P12-semicolon-param-prefix", "GET", "/api;x=1/me"),
    row("P12-semicolon-empty-param", "GET", "/admin;/panel"),
    row("P12-semicolon-suffix", "GET", "/api/me;.css"),
    row("P13-encoded-backslash", "GET", "/%5cadmin/panel", expect="deny400"),
    row("P13-raw-backslash", "GET", "/admin\\panel", expect="deny400"),
    row("P14-fullwidth-A", "GET", "/%EF%BC%A1dmin/panel", expect="nocanary"),
    row("P14-zero-width-space", "GET", "/ad%E2%80%8Bmin/panel", expect="nocanary"),
    row("P14-a-acute", "GET", "/%C3%A1dmin", expect="nocanary"),
    row("P14-raw-utf8-bytes", "GET", b"/\xef\xbc\xa1dmin/panel", expect="nocanary"),
    row("P15-overlong-slash-2", "GET", "/%C0%AFadmin", expect="nocanary"),
    row("P15-overlong-slash-3", "GET", "/%E0%80%AFadmin", expect="nocanary"),
    row("P15-invalid-byte", "GET", "/%FF", expect="nocanary"),
    row("P15-invalid-byte-in-prefix", "GET", "/admin/%FF/panel", expect="nocanary"),
    row("P16-query-looks-like-path", "GET", "/public?/admin/panel", expect="public"),
    row("P16-fragment-on-protected", "GET", "/admin/panel#x"),
    row("P16-fragment-on-public", "GET", "/public#/admin", expect="public"),
    row("P17-absolute-form-loopback", "GET", "http://127.0.0.1/admin/panel"),
    row("P17-absolute-form-other-host", "GET", "http://evil.example/admin/panel"),
    row("P17-absolute-form-api", "GET", "http://127.0.0.1/api/me"),
    row("P18-script-name-admin", "GET", "/admin/panel", ("SCRIPT_NAME", "/admin")),
    row("P18-script-name-partial-segment", "GET", "/admin/panel", ("SCRIPT_NAME", "/adm")),
    row("P18-script-name-api", "GET", "/api/me", ("SCRIPT_NAME", "/api")),
    row("P18-script-name-whole-path", "GET", "/api/me", ("SCRIPT_NAME", "/api/me")),
    # The other direction: a SCRIPT_NAME header that *adds* a mount point in front of a protected path.
    row("P18-script-name-prepended-admin", "GET", "/zzz/admin/panel", ("SCRIPT_NAME", "/zzz"), expect="nocanary"),
    row("P18-script-name-prepended-api", "GET", "/x/api/me", ("SCRIPT_NAME", "/x"), expect="nocanary"),
    row("P18-path-info-header", "GET", "/public", ("PATH_INFO", "/admin/panel"), expect="public"),
    row("P19-script-name-not-a-prefix", "GET", "/admin/panel", ("SCRIPT_NAME", "/zzz"), gunicorn="gunicorn500"),
    row("P20-mounted-under-app", "GET", "/app/admin/panel", ("SCRIPT_NAME", "/app"), devserver="nocanary"),
    row("P20-mounted-double-slash", "GET", "/app//admin/panel", ("SCRIPT_NAME", "/app"), devserver="nocanary"),
    row("P20-mounted-api", "GET", "/app/api/me", ("SCRIPT_NAME", "/app"), devserver="nocanary"),
    row("P22-x-original-url", "GET", "/public", ("X-Original-URL", "/admin/panel"), expect="public"),
    row("P22-x-rewrite-url", "GET", "/public", ("X-Rewrite-URL", "/admin/panel"), expect="public"),
    row("P23-head-admin", "HEAD", "/admin/panel"),
    row("P23-head-api", "HEAD", "/api/me"),
    row("P24-cors-preflight-admin", "OPTIONS", "/admin/panel", *PREFLIGHT, expect="preflight"),
    row("P24-cors-preflight-api", "OPTIONS", "/api/me", *PREFLIGHT, expect="preflight"),
    row("P24-options-without-preflight-headers", "OPTIONS", "/admin/panel"),
    row("P25-propfind", "PROPFIND", "/admin/panel"),
    row("P25-trace", "TRACE", "/admin/panel"),
    row("P25-foo", "FOO", "/admin/panel"),
    row("P25-connect", "CONNECT", "/admin/panel", expect="deny400"),
    row("P25-post", "POST", "/admin/panel", ("Content-Type", "text/plain"), body=b"x"),
    row("P25-put", "PUT", "/api/me", ("Content-Type", "application/json"), body=b"{}"),
    row("P25-delete", "DELETE", "/admin/panel"),
    row("P25-patch", "PATCH", "/api/me"),
    row("P26-method-override-header", "POST", "/admin/panel", ("X-HTTP-Method-Override", "DELETE"),
        ("Content-Length", "0")),
    row("P26-method-override-to-options", "POST", "/admin/panel", ("X-HTTP-Method-Override", "OPTIONS"),
        *PREFLIGHT, ("Content-Length", "0")),
    row("P26-method-override-form", "POST", "/admin/panel", ("Content-Type", "application/x-www-form-urlencoded"),
        body=b"_method=DELETE"),
    row("P27-lower-case-method", "get", "/admin/panel", gunicorn="400"),
    row("P27-mixed-case-method", "Get", "/admin/panel", gunicorn="400"),
    row("P28-options-asterisk", "OPTIONS", "*", expect="nocanary"),
    row("P29-query", "GET", "/api/me?x=1"),
    row("P29-empty-query", "GET", "/api/me?"),
    row("P30-public-forwards-internally", "GET", "/public?next=/admin/panel", expect="nocanary"),
    row("P30-public-forwards-double-slash", "GET", "/public?next=//admin/panel", expect="nocanary"),
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
        # Catalogue P24: DENY, or a CORS-only 204 generated by the middleware that never invokes
        # the application's handler.
        assert response.status in (204, 401), detail
    elif expect == "nocanary":
        pass
    else:  # pragma: no cover - a typo in the table
        raise AssertionError(expect)


@pytest.mark.parametrize("server", WIRE_SERVERS)
@pytest.mark.parametrize("case", ROWS)
def test_path_rows_over_the_wire(wire: Any, server: str, case: Case) -> None:
    data = build_request(case.method, case.target, list(case.headers), case.body)
    response = wire.send(server, data, method=case.method.upper())
    check(server, case, response)


@pytest.mark.parametrize("server", WIRE_SERVERS)
def test_P10_P16_controls_with_a_token_over_the_wire(wire: Any, server: str) -> None:
    """Positive controls: the canaries are reachable with a valid token (so NO-CANARY means something)."""
    from tests.conftest import bearer, mint

    auth = list(bearer(mint(jti=f"ctl-{server}")).items())
    for target in ("/api/me", "/admin/panel", "/admin"):
        response = wire.send(server, build_request("GET", target, auth))
        assert response.status == 200 and (CANARY_API in response.body or CANARY_ADMIN in response.body), str(response)
    public = wire.send(server, build_request("GET", "/public"))
    assert public.status == 200 and public.body.startswith(apps.PUBLIC_BODY)


# -- P21 (ProxyFix in front), in-process -------------------------------------------------------------
@pytest.mark.parametrize(
    ("target", "prefix"),
    [
        pytest.param("/panel", "/admin", id="P21-prefix-completes-protected-path"),
        pytest.param("/me", "/api", id="P21-prefix-completes-api"),
        pytest.param("/in/panel", "/adm", id="P21-prefix-partial-segment"),
        pytest.param("/admin/panel", "/x", id="P21-prefix-prepended-admin"),
        pytest.param("/api/me", "/mount", id="P21-prefix-prepended-api"),
    ],
)
def test_P21_x_forwarded_prefix_through_proxyfix(router: str, target: str, prefix: str) -> None:
    stack = ProxyFix(apps.protect(apps.APPS[router]), x_for=1, x_proto=1, x_host=1, x_prefix=1)
    client = client_for(stack)
    response = client.get(target, headers={"X-Forwarded-Prefix": prefix})
    assert CANARY_API not in response.data and CANARY_ADMIN not in response.data, (response.status, response.data)
    assert response.status_code != 500


def test_P10_prefix_configured_with_trailing_slash_covers_the_bare_prefix(router: str) -> None:
    client = client_for(apps.protect(apps.APPS[router], protect=["/admin/", "/api/"]))
    for path in ("/admin", "/admin/panel", "/api/me"):
        response = client.get(path)
        assert response.status_code == 401 and CANARY_ADMIN not in response.data, path
    assert client.get("/administrator").status_code == 200
