"""Browser sign-in through WSGI: every cookie attribute, CSRF failure mode and ``next`` spelling."""

from __future__ import annotations

import json
import re
import time
from http.cookies import SimpleCookie
from urllib.parse import quote

import jwt
import pytest

from jwt_wsgi.browser import safe_next, wants_html

from .conftest import ALICE_PASSWORD, SECRET, FakeClock, bearer

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
LOGIN = "/auth/login"


@pytest.fixture
def browser(make_client):
    return make_client(token_sources=["header", "cookie"])


def cookies_of(response) -> dict[str, dict[str, str]]:
    """name -> attributes (lower-cased keys, plus 'value'), from every Set-Cookie header."""
    result = {}
    for header in response.headers.getlist("Set-Cookie"):
        name_value, *attrs = [p.strip() for p in header.split(";")]
        name, _, value = name_value.partition("=")
        entry = {"value": value}
        for attr in attrs:
            key, _, val = attr.partition("=")
            entry[key.lower()] = val or "true"
        result[name] = entry
    return result


def open_form(client, next_path="/app/page", https=False):
    overrides = {"wsgi.url_scheme": "https"} if https else {}
    page = client.get(f"{LOGIN}?next={quote(next_path, safe='')}", headers=HTML, environ_overrides=overrides)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    csrf = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    cookie = next(v["value"] for k, v in cookies_of(page).items() if k.endswith("login_csrf"))
    return page, csrf, cookie


def sign_in(client, next_path="/app/page", password=ALICE_PASSWORD, https=False, origin="http://localhost"):
    _, csrf, cookie = open_form(client, next_path, https)
    name = ("__Host-" if https else "") + "login_csrf"
    overrides = {"HTTP_COOKIE": f"{name}={cookie}"}
    if https:
        overrides["wsgi.url_scheme"] = "https"
        origin = origin.replace("http://", "https://")
    headers = {**HTML, "Origin": origin} if origin else dict(HTML)
    return client.post(LOGIN, data={"username": "alice", "password": password, "csrf_token": csrf, "next": next_path},
                       headers=headers, environ_overrides=overrides)


def session_cookie_header(response) -> str:
    jar = cookies_of(response)
    return "; ".join(f"{k}={v['value']}" for k, v in jar.items() if v["value"] and "login_csrf" not in k)


def test_login_page_is_served_to_browsers_only(browser, make_client):
    page, csrf, _ = open_form(browser)
    assert b"<form" in page.data and b'type="password"' in page.data and b'<label for="username">' in page.data
    assert page.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # API clients, and JSON-only deployments, get 405.
    assert browser.get(LOGIN, headers={"Accept": "*/*"}).status_code == 405
    assert make_client().get(LOGIN, headers=HTML).status_code == 405


def test_sign_in_sets_cookies_and_redirects(browser):
    response = sign_in(browser)
    assert response.status_code == 303
    assert response.headers["Location"] == "/app/page"
    jar = cookies_of(response)
    access = jar["access_token"]
    assert access["httponly"] == "true" and access["samesite"] == "Lax" and access["path"] == "/"
    assert access["max-age"] == "1800" and "domain" not in access and "secure" not in access
    claims = jwt.decode(access["value"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["csrf"] == jar["csrf_token"]["value"]
    assert "httponly" not in jar["csrf_token"]  # readable by the page's scripts
    refresh = jar["refresh_token"]
    assert refresh["path"] == "/auth/refresh" and refresh["httponly"] == "true" and refresh["samesite"] == "Strict"
    assert jar["login_csrf"]["max-age"] == "0" or jar["login_csrf"]["value"] == ""
    # The cookie authenticates page requests.
    page = browser.get("/api/me", headers={**HTML, "Cookie": session_cookie_header(response)})
    assert page.status_code == 200 and b'"user": "alice"' in page.data


def test_https_cookies_are_secure_and_host_prefixed(browser):
    response = sign_in(browser, https=True)
    assert response.status_code == 303
    jar = cookies_of(response)
    assert set(jar) >= {"__Host-access_token", "__Host-csrf_token", "__Secure-refresh_token"}
    for name in ("__Host-access_token", "__Host-csrf_token", "__Secure-refresh_token"):
        assert jar[name]["secure"] == "true"
    # On HTTPS only the prefixed cookie counts: a tossed plain cookie is not read.
    token = jar["__Host-access_token"]["value"]
    https = {"wsgi.url_scheme": "https"}
    assert browser.get("/api/me", headers={"Cookie": f"__Host-access_token={token}"},
                       environ_overrides=https).status_code == 200
    assert browser.get("/api/me", headers={"Cookie": f"access_token={token}"},
                       environ_overrides=https).status_code == 401


@pytest.mark.parametrize(
    "next_value",
    [
        "https://evil.example/", "//evil.example", "/\\evil.example", "\\/evil.example", "/%2F%2Fevil.example",
        "/%5Cevil.example", "%09//evil.example", "///evil.example", "https:evil.example", "javascript:alert(1)",
        "data:text/html,x", "http://127.0.0.1@evil.example", "/ /evil.example", "/ok\r\nSet-Cookie: x=y",
        "/ok%0d%0aSet-Cookie:%20x=y", "", "evil.example", "/" + "a" * 3000,
    ],
)
def test_open_redirect_spellings_fall_back_to_root(browser, next_value):
    assert safe_next(next_value) == "/"
    response = sign_in(browser, next_path=next_value)
    assert response.status_code == 303 and response.headers["Location"] == "/"


@pytest.mark.parametrize("next_value", ["/", "/app/page", "/app/page?tab=2", "/a/b/c#frag"])
def test_same_site_next_is_kept(next_value):
    assert safe_next(next_value) == next_value


@pytest.mark.parametrize("path", [LOGIN, "/auth/refresh"])
def test_a_flood_of_query_parameters_is_not_a_500(browser, path):
    query = "&".join(f"a{i}=1" for i in range(200))
    response = browser.get(f"{path}?next=%2Fx&{query}", headers=HTML)
    assert response.status_code in (200, 303)


def test_next_is_escaped_in_the_page(browser):
    page = browser.get(LOGIN + "?next=" + quote('/x"><script>alert(1)</script>'), headers=HTML)
    assert b"<script>alert" not in page.data and b"&quot;&gt;&lt;script&gt;" in page.data


@pytest.mark.parametrize(
    ("mutate", "why"),
    [
        pytest.param(lambda d, o: d.update(csrf_token="forged"), "wrong form token", id="wrong-token"),
        pytest.param(lambda d, o: d.pop("csrf_token"), "no form token", id="no-token"),
        pytest.param(lambda d, o: o.pop("HTTP_COOKIE"), "no cookie", id="no-cookie"),
        pytest.param(lambda d, o: o.update(HTTP_ORIGIN="https://evil.example"), "cross-site origin",
                     id="evil-origin"),
    ],
)
def test_login_csrf(browser, mutate, why):
    _, csrf, cookie = open_form(browser)
    data = {"username": "alice", "password": ALICE_PASSWORD, "csrf_token": csrf, "next": "/"}
    overrides = {"HTTP_COOKIE": f"login_csrf={cookie}"}
    mutate(data, overrides)
    response = browser.post(LOGIN, data=data, headers=HTML, environ_overrides=overrides)
    assert response.status_code == 403, why
    assert not any(k.endswith("access_token") and v["value"] for k, v in cookies_of(response).items())


def test_failed_sign_in_rerenders_with_a_generic_message(browser):
    response = sign_in(browser, password="wrong")
    assert response.status_code == 401 and b"Invalid username or password" in response.data
    assert b'value="alice"' in response.data and ALICE_PASSWORD.encode() not in response.data


def test_sign_in_rate_limit_page(browser):
    for _ in range(5):
        sign_in(browser, password="wrong")
    response = sign_in(browser, password="wrong")
    assert response.status_code == 429 and response.headers["Retry-After"]


def test_protected_page_redirects_browsers_but_not_apis(browser):
    response = browser.get("/api/me?x=1", headers=HTML)
    assert response.status_code == 303
    assert response.headers["Location"] == "/auth/login?next=%2Fapi%2Fme%3Fx%3D1"
    assert browser.get("/api/me", headers={"Accept": "application/json"}).status_code == 401
    assert browser.get("/api/me", headers={"Accept": "*/*"}).status_code == 401
    assert browser.post("/api/me", headers=HTML).status_code == 401  # only GET/HEAD navigate
    assert browser.get("/api/me", headers={**HTML, **bearer("junk")}).status_code == 303


@pytest.mark.parametrize(
    ("headers", "form", "status"),
    [
        pytest.param({}, {}, 403, id="no-csrf"),
        pytest.param({"X-CSRF-Token": "forged"}, {}, 403, id="wrong-header"),
        pytest.param({"X-CSRF-Token": "RIGHT", "Origin": "https://evil.example"}, {}, 403, id="evil-origin"),
        pytest.param({"X-CSRF-Token": "RIGHT", "Referer": "https://evil.example/x"}, {}, 403, id="evil-referer"),
        pytest.param({"X-CSRF-Token": "RIGHT"}, {}, 200, id="header-token"),
        pytest.param({"X-CSRF-Token": "RIGHT", "Origin": "http://localhost"}, {}, 200, id="same-origin"),
        pytest.param({}, {"csrf_token": "RIGHT", "item": "x"}, 200, id="form-field"),
        pytest.param({}, {"csrf_token": "forged"}, 403, id="wrong-form-field"),
    ],
)
def test_csrf_on_cookie_authenticated_unsafe_requests(browser, headers, form, status):
    jar = cookies_of(sign_in(browser))
    right = jar["csrf_token"]["value"]
    headers = {k: (right if v == "RIGHT" else v) for k, v in headers.items()}
    form = {k: (right if v == "RIGHT" else v) for k, v in form.items()}
    cookie = f"access_token={jar['access_token']['value']}; csrf_token={right}"
    response = browser.post("/api/items", headers={**headers, "Cookie": cookie}, data=form or None)
    assert response.status_code == status
    if status == 403:
        assert response.json["error"] == "csrf_failed"


def test_bearer_calls_need_no_csrf(browser):
    response = sign_in(browser)
    token = cookies_of(response)["access_token"]["value"]
    assert browser.post("/api/items", headers=bearer(token)).status_code == 200


def test_silent_refresh_and_logout(make_client):
    clock = FakeClock(int(time.time()) - 1000.0)  # in the past: the verifier's clock is real
    browser = make_client(token_sources=["header", "cookie"], clock=clock)
    jar = cookies_of(sign_in(browser))
    csrf = jar["csrf_token"]["value"]
    # The access cookie is gone (expired); the long-lived CSRF cookie says a session exists.
    redirect = browser.get("/api/me", headers={**HTML, "Cookie": f"csrf_token={csrf}"})
    assert redirect.status_code == 303 and redirect.headers["Location"].startswith("/auth/refresh?next=")
    refreshed = browser.get(redirect.headers["Location"], headers={
        **HTML, "Cookie": f"csrf_token={csrf}; refresh_token={jar['refresh_token']['value']}"})
    assert refreshed.status_code == 303 and refreshed.headers["Location"] == "/api/me"
    new = cookies_of(refreshed)
    assert new["access_token"]["value"] and new["refresh_token"]["value"] != jar["refresh_token"]["value"]
    assert new["csrf_token"]["value"] == csrf
    cookie = f"access_token={new['access_token']['value']}; csrf_token={csrf}"
    assert browser.get("/api/me", headers={**HTML, "Cookie": cookie}).status_code == 200
    # The spent refresh cookie, once refresh_reuse_interval is over, sends the page to the login
    # form, clearing cookies.
    clock.now += 10
    again = browser.get("/auth/refresh?next=%2Fapi%2Fme", headers={
        **HTML, "Cookie": f"refresh_token={jar['refresh_token']['value']}"})
    assert again.status_code == 303 and again.headers["Location"].startswith("/auth/login?next=")
    assert cookies_of(again)["access_token"]["max-age"] == "0"


def test_logout_from_a_page(browser):
    jar = cookies_of(sign_in(browser))
    csrf = jar["csrf_token"]["value"]
    cookie = f"access_token={jar['access_token']['value']}; csrf_token={csrf}"
    assert browser.get("/auth/logout", headers={**HTML, "Cookie": cookie}).status_code == 405
    assert browser.post("/auth/logout", headers={**HTML, "Cookie": cookie}).status_code == 403  # no CSRF
    response = browser.post("/auth/logout", headers={**HTML, "Cookie": cookie}, data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    cleared = cookies_of(response)
    for name, path in (("access_token", "/"), ("csrf_token", "/"), ("refresh_token", "/auth/refresh")):
        assert cleared[name]["max-age"] == "0" and cleared[name]["path"] == path
    assert browser.get("/api/me", headers={"Cookie": cookie}).status_code == 401
    refresh = browser.post("/auth/refresh", headers={"Cookie": f"refresh_token={jar['refresh_token']['value']}"})
    assert refresh.status_code == 401


def test_every_login_mints_a_fresh_session(browser):
    first = cookies_of(sign_in(browser))
    second = cookies_of(sign_in(browser))
    assert first["access_token"]["value"] != second["access_token"]["value"]
    assert first["csrf_token"]["value"] != second["csrf_token"]["value"]


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("text/html", True), ("text/html,application/xhtml+xml,*/*;q=0.8", True), ("*/*", False),
        ("application/json", False), ("application/json, text/html", False),
        ("text/html;q=0.5, application/json", False),
        ("text/*", False), ("text/html;q=bogus", False), ("", False),
    ],
)
def test_wants_html(accept, html):
    assert wants_html({"HTTP_ACCEPT": accept}) is html


def test_cookie_parsing_is_strict_about_duplicates(browser):
    jar = cookies_of(sign_in(browser))
    token = jar["access_token"]["value"]
    tossed = f"access_token={token}; access_token=attacker"
    assert browser.get("/api/me", headers={"Cookie": tossed}).status_code == 400
    assert SimpleCookie  # noqa: B018 - parsed by hand above on purpose (SimpleCookie is lenient)


def test_custom_login_template_text_and_file(make_client, tmp_path):
    template = ('<html><body>$error<form method="post" action="$action"><input name="csrf_token" value="$csrf">'
                '<input name="next" value="$next"><input name="username" value="$username">$title</form></body></html>')
    page = make_client(token_sources=["header", "cookie"], login_template=template).get(LOGIN, headers=HTML)
    assert page.status_code == 200 and page.data.startswith(b"<html><body><form") and b"Sign in" in page.data
    path = tmp_path / "login.html"
    path.write_text(template.replace("$title", "Company sign-in"))
    page = make_client(token_sources=["header", "cookie"], login_template=str(path)).get(LOGIN, headers=HTML)
    assert b"Company sign-in" in page.data


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("<form action='$action'></form>", "csrf", id="no-csrf-field"),
        pytest.param("<form>$csrf</form>", "action", id="no-action"),
        pytest.param("<form action='$action'>$csrf $unknown</form>", "placeholder", id="unknown-placeholder"),
        pytest.param("/no/such/template.html", "cannot read", id="missing-file"),
    ],
)
def test_bad_login_templates_fail_at_construction(make_client, template, message):
    with pytest.raises(ValueError, match=message):
        make_client(token_sources=["header", "cookie"], login_template=template)


def test_cookie_options(make_client):
    strict = make_client(token_sources=["header", "cookie"], cookie_samesite="Strict", cookie_secure="true")
    jar = cookies_of(sign_in(strict, https=True))
    assert jar["__Host-access_token"]["samesite"] == "Strict" and jar["__Host-access_token"]["secure"] == "true"
    assert jar["__Host-csrf_token"]["samesite"] == "Strict"
    # cookie_secure=true also marks cookies Secure (and __Host-) on a plain-HTTP hop behind a TLS proxy.
    _, csrf, cookie = open_form(strict)
    assert csrf and cookie
    with pytest.raises(ValueError, match="cookie_samesite"):
        make_client(token_sources=["header", "cookie"], cookie_samesite="None")


# -- next spellings outside ASCII: a Location header is ASCII, and no spelling leaves the site -------
NEXT_SPELLINGS = [
    # (next as the browser sends it, the Location it gets)
    pytest.param("/Ā", "/%C4%80", id="latin-extended-a"),
    pytest.param("/café?tab=ü#frag", "/caf%C3%A9?tab=%C3%BC#frag", id="path-query-fragment"),
    pytest.param("/caf%C3%A9", "/caf%C3%A9", id="already-percent-encoded"),
    pytest.param("/😀", "/%F0%9F%98%80", id="astral"),
    pytest.param("/。evil", "/%E3%80%82evil", id="ideographic-full-stop-is-just-a-path"),
    pytest.param("/．．/x", "/%EF%BC%8E%EF%BC%8E/x", id="fullwidth-dots-are-just-a-path"),
    pytest.param("/／／evil", "/", id="fullwidth-solidus-twice"),
    pytest.param("/／evil.example", "/", id="fullwidth-solidus-after-slash"),
    pytest.param("／／evil", "/", id="fullwidth-solidus-first"),
    pytest.param("/＼evil", "/", id="fullwidth-reverse-solidus"),
    pytest.param("/﹨evil", "/", id="small-reverse-solidus"),
    pytest.param("/%EF%BC%8F%EF%BC%8Fevil", "/", id="fullwidth-solidus-percent-encoded"),
    pytest.param("ｈｔｔｐｓ://evil.example", "/", id="fullwidth-scheme"),
    pytest.param("/x\u2028y", "/", id="line-separator"),
    pytest.param("/x%E2%80%A8y", "/", id="line-separator-percent-encoded"),
    pytest.param("/x\u0085y", "/", id="c1-next-line"),
    pytest.param("/x\u202ey", "/", id="bidi-override"),
    pytest.param("/x\u200by", "/", id="zero-width-space"),
    pytest.param("/x\u3000/evil", "/", id="ideographic-space"),
    pytest.param("/x\u00a0y", "/", id="no-break-space"),
]


def refresh_page(client, jar, next_path):
    """The silent refresh a page is sent to: ``GET /auth/refresh?next=...`` with the session cookies."""
    cookie = f"csrf_token={jar['csrf_token']['value']}; refresh_token={jar['refresh_token']['value']}"
    return client.get(f"/auth/refresh?next={quote(next_path, safe='')}", headers={**HTML, "Cookie": cookie})


def assert_ascii_location(response, expected):
    location = response.headers["Location"]
    assert location.isascii() and location.isprintable(), f"Location {location!r} is not ASCII"
    assert location == expected


@pytest.mark.parametrize(("next_value", "location"), NEXT_SPELLINGS)
def test_next_spellings_give_an_ascii_location_on_this_site(browser, next_value, location):
    assert safe_next(next_value) == location
    page, _, _ = open_form(browser, next_value)
    hidden = re.search(rb'name="next" value="([^"]*)"', page.data).group(1).decode()
    assert hidden == location
    assert_ascii_location(sign_in(browser, next_path=next_value), location)


@pytest.mark.parametrize(("next_value", "location"), NEXT_SPELLINGS)
def test_silent_refresh_with_any_next_keeps_the_session(make_client, next_value, location):
    clock = FakeClock(int(time.time()) - 1000.0)  # in the past: the verifier's clock is real
    browser = make_client(token_sources=["header", "cookie"], clock=clock)
    jar = cookies_of(sign_in(browser))
    refreshed = refresh_page(browser, jar, next_value)
    assert refreshed.status_code == 303
    assert_ascii_location(refreshed, location)
    new = cookies_of(refreshed)
    assert new["refresh_token"]["value"] != jar["refresh_token"]["value"]
    # The rotated refresh token the browser now holds works (the old one is spent).
    again = refresh_page(browser, {**jar, **new}, "/app/page")
    assert again.status_code == 303 and again.headers["Location"] == "/app/page"
    assert cookies_of(again)["access_token"]["value"]
    clock.now += 10  # past refresh_reuse_interval: the spent token is refused
    assert refresh_page(browser, jar, "/app/page").headers["Location"].startswith("/auth/login?next=")


def test_a_failed_silent_refresh_with_an_odd_next_goes_to_the_login_page(browser):
    refused = browser.get("/auth/refresh?next=" + quote("/Ā\u2028"), headers={**HTML, "Cookie": "refresh_token=junk"})
    assert_ascii_location(refused, "/auth/login?next=%2F")
    odd = browser.get("/auth/refresh?next=" + quote("/Ā"), headers={**HTML, "Cookie": "refresh_token=junk"})
    assert_ascii_location(odd, "/auth/login?next=%2F%25C4%2580")


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        pytest.param("/api/Ā", "", "/auth/login?next=%2Fapi%2F%25C4%2580", id="utf-8-path"),
        pytest.param("/api/me", "q=\u00c3\u00bc", "/auth/login?next=%2Fapi%2Fme%3Fq%3D%25C3%25BC",
                     id="raw-utf-8-bytes-in-the-query"),
        pytest.param("/api/me", "q=\u00e9", "/auth/login?next=%2Fapi%2Fme%3Fq%3D%25E9", id="raw-latin-1-byte"),
        pytest.param("/api/me", "q=%E2%80%A8", "/auth/login?next=%2F", id="encoded-line-separator"),
    ],
)
def test_protected_page_redirect_is_ascii(browser, path, query, location):
    # PEP 3333: PATH_INFO and QUERY_STRING carry the request's bytes as Latin-1 characters; a
    # server may pass bytes over 0x7F in the query string as they came.
    overrides = {"QUERY_STRING": query} if query else {}
    response = browser.get(path, headers=HTML, environ_overrides=overrides)
    assert response.status_code == 303
    assert_ascii_location(response, location)


def _echo_body(environ, start_response):
    """The application reads its own body after the middleware looked for the CSRF field."""
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        pytest.param("csrf_token=RIGHT&tag=a&tag=b", 200, id="the-apps-own-fields-repeated"),
        pytest.param("tag=a&csrf_token=RIGHT&&tag=b&", 200, id="empty-pairs"),
        pytest.param("csrf_token=RIGHT&csrf_token=RIGHT", 403, id="csrf-field-twice-same-value"),
        pytest.param("csrf_token=forged&csrf_token=RIGHT", 403, id="csrf-field-twice-the-last-right"),
        pytest.param("csrf_token=RIGHT&junk", 403, id="a-pair-without-equals"),
        pytest.param("csrf_token=RIGHT&x=%ff", 403, id="not-utf8-once-decoded"),
    ],
)
def test_one_rule_for_repeated_fields_in_an_applications_form(make_client, body, status):
    """A field the middleware reads appears once, as at the endpoints (a repeated one is refused,
    not resolved); the application's own repeated fields are its business, and its body stays
    readable. The form is parsed by the endpoints' parser."""
    client = make_client(_echo_body, token_sources=["header", "cookie"])
    jar = cookies_of(sign_in(client))
    right = jar["csrf_token"]["value"]
    body = body.replace("RIGHT", right)
    cookie = f"access_token={jar['access_token']['value']}; csrf_token={right}"
    response = client.post("/api/items", data=body, content_type="application/x-www-form-urlencoded",
                           headers={"Cookie": cookie})
    assert response.status_code == status
    if status == 200:
        assert response.data == body.encode()
    else:
        assert response.json["error"] == "csrf_failed"


@pytest.mark.parametrize(
    "csrf",
    [
        pytest.param("\ud800", id="lone-surrogate"),
        pytest.param("é" * 40, id="not-ascii"),
        pytest.param(["RIGHT"], id="a-list"),
    ],
)
def test_odd_csrf_values_in_a_json_logout_are_403(browser, csrf):
    jar = cookies_of(sign_in(browser))
    cookie = f"access_token={jar['access_token']['value']}; csrf_token={jar['csrf_token']['value']}"
    response = browser.post("/auth/logout", headers={"Cookie": cookie},
                            data=json.dumps({"csrf_token": csrf}), content_type="application/json")
    assert response.status_code == 403 and response.json["error"] == "csrf_failed"


def test_set_cookie_carries_max_age_and_no_expires(browser):
    """Set-Cookie is built by Werkzeug's dump_cookie, without Expires (which would read the wall clock)."""
    headers = sign_in(browser).headers.getlist("Set-Cookie")
    access = next(h for h in headers if h.startswith("access_token="))
    attributes = sorted(part.strip() for part in access.split(";")[1:])
    assert attributes == ["HttpOnly", "Max-Age=1800", "Path=/", "SameSite=Lax"]
    assert not any("expires" in h.lower() for h in headers)


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        pytest.param("text/html;q=0.1, */*", False, id="specific-range-decides"),
        pytest.param("*/*;q=0.1, text/html;q=0.2", True, id="html-above-any"),
        pytest.param("application/json;q=0.9, text/html", True, id="json-lower"),
        pytest.param("text/html;q=0", False, id="html-refused"),
        pytest.param("text/html;q=2", False, id="q-out-of-range-drops-the-range"),
        pytest.param("text/html, application/json;q=bogus", True, id="bogus-json-q"),
        pytest.param(", ,text/html;;", True, id="empty-members"),
        pytest.param("text/html" + ", x/y" * 5000, True, id="long"),
    ],
)
def test_wants_html_more_spellings(accept, html):
    assert wants_html({"HTTP_ACCEPT": accept}) is html
