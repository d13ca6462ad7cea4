"""Browser sign-in end to end: real headless Chromium (Selenium) against real gunicorn.

``gunicorn -c examples/gunicorn.conf.py examples.flask_app:app`` (2 workers, a SQLite store of its
own, the test secret, a users file with alice and mallory) is driven by Debian's ``chromium`` and
``chromium-driver``; Selenium never downloads anything (``SE_OFFLINE``, explicit paths).

What a person does: open ``/dashboard`` -> the login page (``next=/dashboard``) -> sign in -> back on
the page; reload keeps them in; the access cookie gone -> silent refresh; sign out -> login page.
What an attacker tries, from a second origin served by this process: forged form POSTs to the
app's logout and to a protected form action, login CSRF with the attacker's own account, and
open-redirect ``next`` values. Every navigation's status comes from Chrome's own network log.

Two attacker origins, because the browser treats them differently:
- ``http://127.0.0.1:OTHER`` is cross-origin but *same-site* (ports do not make sites), so the
  browser sends the ``SameSite=Lax`` cookies and only the middleware's CSRF checks stand in the way;
- ``http://localhost:OTHER`` is cross-site: ``SameSite=Lax`` keeps the cookies home as well.

Screenshots: ``test-artifacts/login.png``, ``test-artifacts/signed-in.png`` (900x700 viewport; copy
them to ``docs/`` by hand to refresh the README's) and ``test-artifacts/login-failed.png``. A test run
writes nothing outside ``test-artifacts/``.

The ``*_in_process`` tests at the end need no browser: both examples' pages through Werkzeug.
"""

from __future__ import annotations

import hashlib
import html
import importlib
import json
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from werkzeug.security import generate_password_hash

from tests._services import unavailable
from tests.conftest import ALICE_PASSWORD, FAST_HASH, SECRET, BufferedClient
from tests.servers import GUNICORN, REPO_ROOT, Response, Server, request, server_env

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO_ROOT / "test-artifacts"
DOCS = REPO_ROOT / "docs"
# The README's screenshots as checked out: a test run must not rewrite them (a dirty checkout).
def _docs_pngs() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in DOCS.glob("*.png")}


DOCS_BEFORE = _docs_pngs()
VIEWPORT = (900, 700)
WAIT = 15.0  # seconds for one navigation; a normal one takes well under a second

MALLORY_PASSWORD = "P@ss-mallory"  # TEST-ONLY: the attacker's own, genuine account
HTML_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHROME_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-default-browser-check", "--mute-audio",
    "--disable-features=PasswordLeakDetection,Translate,OptimizationHints,MediaRouter",
    "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US",
]


def write_users(path: Path, users: dict[str, tuple[str, dict[str, Any]]]) -> Path:
    """A users file as ``jwt-wsgi users add`` writes it (fast hashes: TEST-ONLY)."""
    path.write_text(json.dumps({"users": {
        name: {"password": generate_password_hash(password, method=FAST_HASH), "claims": claims}
        for name, (password, claims) in users.items()
    }}))
    return path


USERS = {"alice": (ALICE_PASSWORD, {"scope": "read"}), "mallory": (MALLORY_PASSWORD, {"scope": "read"})}


# == the attacker's site ==========================================================================
class AttackerSite:
    """A second origin on 127.0.0.1: serves pages the test puts there, in a thread of this process."""

    def __init__(self) -> None:
        pages: dict[str, bytes] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = pages.get(self.path.split("?", 1)[0])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="attacker-site", daemon=True)

    def origin(self, kind: str) -> str:
        """``same-site``: another port of the app's host; ``cross-site``: another host name."""
        return f"http://{'127.0.0.1' if kind == 'same-site' else 'localhost'}:{self.port}"

    def forge(self, name: str, action: str, fields: dict[str, str]) -> str:
        """A page that POSTs ``fields`` to ``action`` as soon as it loads; its path."""
        inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in fields.items())
        self.pages[f"/{name}"] = (
            f'<!doctype html><title>You won a prize</title><form method="post" action="{html.escape(action)}">'
            f"{inputs}<button>Claim</button></form><script>document.forms[0].submit()</script>"
        ).encode()
        return f"/{name}"

    def start(self) -> AttackerSite:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


# == the browser ====================================================================================
@dataclass(frozen=True)
class Hop:
    """One document request of a navigation, as Chrome's network log saw it."""

    method: str
    url: str
    status: int | None


class Browser:
    """A thin layer over one Selenium driver: navigations with their statuses, cookies, screenshots."""

    def __init__(self, driver: Any, base_url: str) -> None:
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base = base_url
        self.By = By
        self._wait = WebDriverWait
        self._driver_error = WebDriverException

    # -- navigation -----------------------------------------------------------------------------
    def reset(self) -> None:
        """No cookies, a blank page, an empty network log: a fresh visitor."""
        self.driver.get("about:blank")
        self.driver.execute_cdp_cmd("Storage.clearCookies", {})
        self.hops()

    def until(self, condition: Callable[[Any], Any], what: str) -> Any:
        return self._wait(self.driver, WAIT).until(condition, message=f"waiting for {what}; at {self.url}")

    def _loaded(self) -> None:
        self.until(self._new_document_ready, "the page to load")

    def _mark_document(self) -> None:
        """Tag the current document, so that :meth:`_new_document_ready` can tell it from the next."""
        self.driver.execute_script("window.__e2e_seen = true")

    def _new_document_ready(self, driver: Any) -> bool:
        # Asked while a navigation is under way, the driver may fail in several ways: not ready yet.
        script = "return window.__e2e_seen !== true && document.readyState === 'complete'"
        try:
            return bool(driver.execute_script(script))
        except self._driver_error:
            return False

    def open(self, target: str) -> list[Hop]:
        """``driver.get`` an absolute URL or a path of the app; the document requests it made."""
        self.hops()
        self.driver.get(self.base + target if target.startswith("/") else target)
        self._loaded()
        return self.hops()

    def follow(self, target: str, lands_on: str) -> list[Hop]:
        """Open ``target`` (an attacker page that navigates on its own); wait until at ``lands_on``."""
        self.hops()
        self.driver.get(target)
        self.until(lambda d: d.current_url.startswith(lands_on) and self._new_document_ready(d), lands_on)
        return self.hops()

    def click(self, label: str) -> list[Hop]:
        """Click the button labelled ``label`` and wait for the next document."""
        self.hops()
        self._mark_document()
        self.button(label).click()
        self.until(self._new_document_ready, f"the page after clicking {label!r}")
        return self.hops()

    def reload(self) -> list[Hop]:
        self.hops()
        self._mark_document()
        self.driver.refresh()
        self.until(self._new_document_ready, "the reloaded page")
        return self.hops()

    def button(self, label: str) -> Any:
        return self.driver.find_element(self.By.XPATH, f"//button[normalize-space()='{label}']")

    def sign_in(self, username: str = "alice", password: str = ALICE_PASSWORD) -> list[Hop]:
        """Fill in and submit the login page the browser is on."""
        self.fill(username=username, password=password)
        return self.click("Sign in")

    def fill(self, **fields: str) -> None:
        for name, value in fields.items():
            element = self.driver.find_element(self.By.ID, name)
            element.clear()
            element.send_keys(value)

    def hops(self) -> list[Hop]:
        """The document requests (redirects included) since the last call, oldest first."""
        hops: list[list[Any]] = []
        index: dict[str, int] = {}
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if params.get("type") != "Document":
                continue
            rid = params.get("requestId")
            if message["method"] == "Network.requestWillBeSent":
                redirect = params.get("redirectResponse")
                if redirect is not None and rid in index:
                    hops[index[rid]][2] = redirect["status"]
                hops.append([params["request"]["method"], params["request"]["url"], None])
                index[rid] = len(hops) - 1
            elif message["method"] == "Network.responseReceived" and rid in index:
                hops[index[rid]][2] = params["response"]["status"]
        return [Hop(*hop) for hop in hops]

    def trail(self, hops: list[Hop]) -> list[tuple[str, str, int | None]]:
        """Hops with the app's URLs made relative, for readable assertions."""
        return [(h.method, h.url.removeprefix(self.base), h.status) for h in hops]

    # -- the page -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return str(self.driver.current_url)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)

    @property
    def text(self) -> str:
        return str(self.driver.find_element(self.By.TAG_NAME, "body").text)

    def value(self, name: str) -> str:
        return str(self.driver.find_element(self.By.NAME, name).get_attribute("value"))

    # -- cookies --------------------------------------------------------------------------------
    def cookies(self) -> dict[str, dict[str, Any]]:
        """Every cookie the browser holds for the app's host (whatever its path), by name."""
        host = urlsplit(self.base).hostname
        found = self.driver.execute_cdp_cmd("Storage.getCookies", {})["cookies"]
        return {c["name"]: c for c in found if c["domain"] == host}

    def cookie_header(self) -> str:
        """The ``Cookie`` header a page request of the app carries."""
        return "; ".join(f"{n}={c['value']}" for n, c in self.cookies().items() if c["path"] == "/")

    def drop_cookie(self, name: str) -> None:
        self.driver.execute_cdp_cmd("Network.deleteCookies", {"name": name, "url": self.base + "/"})

    # -- screenshots ----------------------------------------------------------------------------
    def screenshot(self, name: str) -> Path:
        """``test-artifacts/NAME`` (git-ignored). The README's ``docs/`` copies are refreshed by hand
        (``cp test-artifacts/login.png docs/``): a test run never changes a tracked file."""
        png: bytes = self.driver.get_screenshot_as_png()
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.write_bytes(png)
        return path


# == fixtures =======================================================================================
@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-e2e")


@pytest.fixture(scope="module")
def users(state: Path) -> Path:
    return write_users(state / "users.json", USERS)


def serve_example(state: Path, users: Path, target: str, name: str) -> Iterator[Server]:
    """``gunicorn -c examples/gunicorn.conf.py TARGET``: 2 workers, a SQLite store of its own."""
    env = server_env(state / f"runtime-{name}", JWT_WSGI_SECRET=SECRET, JWT_WSGI_USERS_FILE=str(users),
                     JWT_WSGI_STORE=f"sqlite:///{state / name}.db", BIND="127.0.0.1:{port}", WORKERS="2")
    server = Server([GUNICORN, "-c", "examples/gunicorn.conf.py", target], env=env, log_dir=state, name=name,
                    ready_path="/api/health")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def app(state: Path, users: Path) -> Iterator[Server]:
    yield from serve_example(state, users, "examples.flask_app:app", "flask")


@pytest.fixture(scope="module")
def attacker() -> Iterator[AttackerSite]:
    site = AttackerSite().start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture(scope="module")
def driver(state: Path) -> Iterator[Any]:
    """One headless Chromium for the module, from Debian's packages; never a download."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        unavailable(f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (pip install -e '.[dev]')")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not reach for the network
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*CHROME_FLAGS, f"--user-data-dir={state / 'chromium-profile'}",
                     f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}"):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {
            "credentials_enable_service": False, "profile.password_manager_enabled": False,
            # No speculative connections: an idle preconnected socket pins a gunicorn *sync* worker
            # (it blocks reading a request that never comes) and this server has two. With Chrome's
            # defaults, requests here stall for seconds at a time (a deployment, not a test, problem:
            # browsers need a buffering proxy or gthread workers in front of sync ones).
            "net.network_prediction_options": 2,
        })
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
        options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True, "enablePage": False})
        service = Service(executable_path=CHROMEDRIVER, log_output=str(state / "chromedriver.log"))
        chrome = webdriver.Chrome(service=service, options=options)
    try:
        chrome.set_page_load_timeout(WAIT)
        # Make the *viewport* (what screenshots show) 900x700, whatever the window decorations take.
        inner = chrome.execute_script("return [window.innerWidth, window.innerHeight]")
        outer = chrome.get_window_size()
        chrome.set_window_size(VIEWPORT[0] + outer["width"] - inner[0], VIEWPORT[1] + outer["height"] - inner[1])
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture
def browser(driver: Any, app: Server) -> Browser:
    """A fresh visitor (no cookies) for every test, on the Flask example."""
    page = Browser(driver, app.base_url)
    page.reset()
    return page


def signed_in(browser: Browser, username: str = "alice", password: str = ALICE_PASSWORD) -> None:
    browser.open("/dashboard")
    assert browser.path == "/auth/login", browser.url
    hops = browser.sign_in(username, password)
    assert browser.trail(hops)[-1] == ("GET", "/dashboard", 200), browser.trail(hops)
    assert f"Hello, {username}!" in browser.text


def still_signed_in(browser: Browser, username: str = "alice") -> None:
    hops = browser.open("/dashboard")
    assert browser.trail(hops) == [("GET", "/dashboard", 200)], f"signed out? {browser.trail(hops)}"
    assert f"Signed in as {username}" in browser.text


def signed_out(browser: Browser) -> None:
    hops = browser.open("/dashboard")
    assert browser.trail(hops) == [("GET", "/dashboard", 303), ("GET", "/auth/login?next=%2Fdashboard", 200)], \
        browser.trail(hops)
    assert not any(browser.cookies().get(name, {}).get("value") for name in ("access_token", "csrf_token"))


def http_login_form(base_url: str) -> tuple[str, str]:
    """What an attacker gets by loading the login page themselves: (form token, login_csrf cookie)."""
    page = request(base_url, "GET", "/auth/login", headers={"Accept": HTML_ACCEPT})
    assert page.status == 200, str(page)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.body)
    cookie = re.search(r"login_csrf=([^;]+)", page.headers.get("set-cookie", ""))
    assert token and cookie, str(page)
    return token.group(1).decode(), cookie.group(1)


def http_form_post(base_url: str, path: str, fields: dict[str, str], cookie: str, **headers: str) -> Response:
    return request(base_url, "POST", path, body=urlencode(fields).encode(), headers={
        "Accept": HTML_ACCEPT, "Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, **headers})


# == the person's path ===============================================================================
@pytest.mark.slow
def test_protected_page_login_and_back(browser: Browser) -> None:
    hops = browser.open("/dashboard")
    assert browser.trail(hops) == [("GET", "/dashboard", 303), ("GET", "/auth/login?next=%2Fdashboard", 200)]
    assert browser.path == "/auth/login" and browser.query == {"next": ["/dashboard"]}
    assert browser.driver.title == "Sign in"
    assert browser.value("next") == "/dashboard"
    for field, label in (("username", "Username"), ("password", "Password")):
        assert browser.driver.find_element(browser.By.CSS_SELECTOR, f"label[for={field}]").text == label
    browser.screenshot("login.png")

    hops = browser.sign_in(password="not-her-password")
    assert browser.trail(hops) == [("POST", "/auth/login", 401)]
    assert "Invalid username or password." in browser.text
    assert browser.value("username") == "alice" and browser.value("password") == ""
    assert browser.value("next") == "/dashboard"
    browser.screenshot("login-failed.png")

    hops = browser.sign_in()
    assert browser.trail(hops) == [("POST", "/auth/login", 303), ("GET", "/dashboard", 200)]
    assert browser.path == "/dashboard"
    assert "Hello, alice!" in browser.text and "Signed in as alice" in browser.text
    browser.screenshot("signed-in.png")

    jar = browser.cookies()
    access, csrf, refresh = jar["access_token"], jar["csrf_token"], jar["refresh_token"]
    assert (access["httpOnly"], access["sameSite"], access["path"], access["secure"]) == (True, "Lax", "/", False)
    assert (csrf["httpOnly"], csrf["path"]) == (False, "/")
    assert (refresh["httpOnly"], refresh["sameSite"], refresh["path"]) == (True, "Strict", "/auth/refresh")
    assert not jar.get("login_csrf", {}).get("value")
    # The page's scripts see the CSRF cookie, never the token.
    visible = browser.driver.execute_script("return document.cookie")
    assert f"csrf_token={csrf['value']}" in visible and "access_token" not in visible
    assert browser.value("csrf_token") == csrf["value"]

    assert browser.trail(browser.reload()) == [("GET", "/dashboard", 200)]
    assert "Hello, alice!" in browser.text
    still_signed_in(browser)


@pytest.mark.slow
def test_silent_refresh_when_the_access_cookie_is_gone(browser: Browser) -> None:
    signed_in(browser)
    before = browser.cookies()
    browser.drop_cookie("access_token")  # as when its Max-Age runs out
    hops = browser.open("/dashboard")
    assert browser.trail(hops) == [("GET", "/dashboard", 303), ("GET", "/auth/refresh?next=%2Fdashboard", 303),
                                   ("GET", "/dashboard", 200)]
    assert "Hello, alice!" in browser.text
    after = browser.cookies()
    assert after["access_token"]["value"] and after["access_token"]["value"] != before["access_token"]["value"]
    assert after["refresh_token"]["value"] != before["refresh_token"]["value"]  # rotated
    assert after["csrf_token"]["value"] == before["csrf_token"]["value"] == browser.value("csrf_token")


@pytest.mark.slow
def test_own_form_with_the_csrf_token_is_accepted(browser: Browser) -> None:
    # The positive control for the CSRF tests below: the same POST, from the app's own page.
    signed_in(browser)
    hops = browser.click("Say hello")
    assert browser.trail(hops) == [("POST", "/dashboard/hello", 303), ("GET", "/dashboard?said=hello", 200)]
    assert "The server heard your hello." in browser.text


@pytest.mark.slow
def test_sign_out(browser: Browser, app: Server) -> None:
    signed_in(browser)
    old_session = browser.cookie_header()
    hops = browser.open("/auth/logout")  # a link or a prefetch must not sign anyone out
    assert browser.trail(hops) == [("GET", "/auth/logout", 405)]
    still_signed_in(browser)

    hops = browser.click("Sign out")
    assert browser.trail(hops) == [("POST", "/auth/logout", 303), ("GET", "/auth/login", 200)]
    assert browser.path == "/auth/login"
    assert not {"access_token", "csrf_token", "refresh_token"} & set(browser.cookies())
    signed_out(browser)
    # The token is revoked, not just forgotten by this browser: a copy of the cookie is refused.
    replay = request(app.base_url, "GET", "/api/me", headers={"Cookie": old_session})
    app.check(replay.status == 401 and replay.json()["error"] == "token_revoked", str(replay))


# == forged requests =================================================================================
ORIGINS = ["same-site", "cross-site"]
# same-site: the browser sends the cookies, the middleware's Origin + double-submit check refuses (403).
# cross-site: SameSite=Lax keeps the cookies home, so the request arrives without a token (401).
REFUSAL = {"same-site": (403, "csrf_failed"), "cross-site": (401, "missing_token")}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ORIGINS)
@pytest.mark.parametrize(("target", "fields"), [
    pytest.param("/auth/logout", {"all": "true"}, id="logout-everywhere"),
    pytest.param("/dashboard/hello", {"note": "forged"}, id="protected-form-action"),
    pytest.param("/dashboard/hello", {"csrf_token": "guessed-token"}, id="guessed-csrf-token"),
])
def test_forged_cross_origin_form_post_is_refused(browser: Browser, attacker: AttackerSite, kind: str,
                                                  target: str, fields: dict[str, str]) -> None:
    signed_in(browser)
    page = attacker.forge("forge", browser.base + target, fields)
    hops = browser.follow(attacker.origin(kind) + page, lands_on=browser.base + target)
    status, code = REFUSAL[kind]
    assert browser.trail(hops)[-1] == ("POST", target, status), browser.trail(hops)
    assert json.loads(browser.text)["error"] == code
    still_signed_in(browser)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["/auth/logout", "/dashboard/hello"])
def test_forged_posts_get_403_over_http(browser: Browser, app: Server, attacker: AttackerSite, target: str) -> None:
    """The same forgeries byte for byte, with the victim's cookies attached: every one is 403."""
    signed_in(browser)
    cookie = browser.cookie_header()
    right = browser.cookies()["csrf_token"]["value"]
    # mallory's genuine CSRF value, from her own session: valid, but not alice's.
    token, login_cookie = http_login_form(app.base_url)
    own = http_form_post(app.base_url, "/auth/login", {"username": "mallory", "password": MALLORY_PASSWORD,
                                                       "csrf_token": token, "next": "/"}, f"login_csrf={login_cookie}")
    app.check(own.status == 303, f"mallory's own sign-in: {own}")
    mallory_csrf = re.search(r"(?:^|, )csrf_token=([^;]+)", own.headers["set-cookie"]).group(1)
    same_site, cross_site = attacker.origin("same-site"), attacker.origin("cross-site")
    cases: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("no token, attacker Origin", {}, {"Origin": same_site}),
        ("no token, no Origin or Referer", {}, {}),
        ("wrong form token", {"csrf_token": "guessed"}, {}),
        ("wrong X-CSRF-Token header", {}, {"X-CSRF-Token": "guessed"}),
        ("another session's token (form)", {"csrf_token": mallory_csrf}, {}),
        ("another session's token (header)", {}, {"X-CSRF-Token": mallory_csrf}),
        ("right token, same-site Origin", {"csrf_token": right}, {"Origin": same_site}),
        ("right token, cross-site Origin", {"csrf_token": right}, {"Origin": cross_site}),
        ("right token, Origin null", {"csrf_token": right}, {"Origin": "null"}),
        ("right token, attacker Referer", {"csrf_token": right}, {"Referer": same_site + "/forge"}),
        ("right header, attacker Origin", {}, {"X-CSRF-Token": right, "Origin": same_site}),
    ]
    for why, fields, headers in cases:
        response = http_form_post(app.base_url, target, fields, cookie, **headers)
        app.check(response.status == 403, f"{target}, {why}: {response}")
        assert response.json()["error"] == "csrf_failed", (why, str(response))
    still_signed_in(browser)
    if target == "/dashboard/hello":  # the control: the same request from the app's own origin passes
        for fields, headers in (({"csrf_token": right}, {"Origin": app.base_url}), ({}, {"X-CSRF-Token": right})):
            response = http_form_post(app.base_url, target, fields, cookie, **headers)
            app.check(response.status == 303 and response.headers["location"].endswith("/dashboard?said=hello"),
                      str(response))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ORIGINS)
def test_login_csrf_does_not_sign_the_browser_in(browser: Browser, app: Server, attacker: AttackerSite,
                                                 kind: str) -> None:
    browser.open("/auth/login")  # the victim has a login form (and its login_csrf cookie) of their own
    token, login_cookie = http_login_form(app.base_url)  # a genuine token, bound to the attacker's cookie
    page = attacker.forge("login", browser.base + "/auth/login", {
        "username": "mallory", "password": MALLORY_PASSWORD, "csrf_token": token, "next": "/dashboard"})
    hops = browser.follow(attacker.origin(kind) + page, lands_on=browser.base + "/auth/login")
    assert browser.trail(hops)[-1] == ("POST", "/auth/login", 403), browser.trail(hops)
    assert "Your sign-in form expired. Please try again." in browser.text
    assert "access_token" not in browser.cookies()
    signed_out(browser)
    # With the attacker's own cookie too (all a page could ever send), a foreign Origin is refused.
    forged = http_form_post(app.base_url, "/auth/login", {
        "username": "mallory", "password": MALLORY_PASSWORD, "csrf_token": token, "next": "/"},
        f"login_csrf={login_cookie}", Origin=attacker.origin(kind))
    app.check(forged.status == 403 and "access_token=" not in forged.headers.get("set-cookie", ""), str(forged))


# == redirects after sign-in ==========================================================================
OPEN_REDIRECTS = [
    # (id, the query string as it appears in the address bar, the next value the server decodes)
    ("scheme-relative", "next=//evil.example", "//evil.example"),
    ("absolute-https", "next=https://evil.example", "https://evil.example"),
    ("absolute-encoded", "next=" + quote("https://evil.example/x", safe=""), "https://evil.example/x"),
    ("scheme-relative-encoded", "next=%2F%2Fevil.example", "//evil.example"),
    ("triple-slash", "next=///evil.example", "///evil.example"),
    ("backslash", "next=%2F%5Cevil.example", "/\\evil.example"),
    ("double-encoded-slashes", "next=%2F%252F%252Fevil.example", "/%2F%2Fevil.example"),
    ("scheme-without-slashes", "next=https:evil.example", "https:evil.example"),
    ("userinfo", "next=http://127.0.0.1@evil.example", "http://127.0.0.1@evil.example"),
    ("leading-tab", "next=%09//evil.example", "\t//evil.example"),
    ("crlf-header-injection", "next=%2Fok%0D%0ALocation:%20https://evil.example", "/ok\r\nLocation: https://evil.example"),
    ("javascript", "next=javascript:alert(1)", "javascript:alert(1)"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("query", "raw"), [pytest.param(q, r, id=i) for i, q, r in OPEN_REDIRECTS])
def test_open_redirect_next_lands_on_root(browser: Browser, query: str, raw: str) -> None:
    browser.open(f"/auth/login?{query}")
    assert browser.path == "/auth/login"
    assert browser.value("next") == "/", "the page must not carry a foreign next"
    # Whatever the page carried, the POST is checked again: put the raw value back in the form.
    browser.driver.execute_script("document.querySelector('input[name=next]').value = arguments[0]", raw)
    hops = browser.sign_in()
    assert browser.trail(hops) == [("POST", "/auth/login", 303), ("GET", "/", 200)], browser.trail(hops)
    assert browser.url == browser.base + "/"
    assert json.loads(browser.text) == {"hello": "alice"}


@pytest.mark.slow
def test_same_site_next_is_kept(browser: Browser) -> None:
    browser.open("/auth/login?next=" + quote("/dashboard?said=hello", safe=""))
    hops = browser.sign_in()
    assert browser.trail(hops) == [("POST", "/auth/login", 303), ("GET", "/dashboard?said=hello", 200)]
    assert "The server heard your hello." in browser.text


# == the Bottle example, the same flow ================================================================
@pytest.fixture(scope="module")
def bottle_app(state: Path, users: Path) -> Iterator[Server]:
    yield from serve_example(state, users, "examples.bottle_app:application", "bottle")


@pytest.mark.slow
def test_bottle_example_round_trip(driver: Any, bottle_app: Server) -> None:
    browser = Browser(driver, bottle_app.base_url)
    browser.reset()
    signed_in(browser)
    hops = browser.click("Say hello")
    assert browser.trail(hops) == [("POST", "/dashboard/hello", 303), ("GET", "/dashboard?said=hello", 200)]
    assert "The server heard your hello." in browser.text
    hops = browser.click("Sign out")
    assert browser.trail(hops) == [("POST", "/auth/logout", 303), ("GET", "/auth/login", 200)]
    signed_out(browser)


# == both examples' pages in process (no browser) =========================================================
EXAMPLES = [pytest.param("flask_app", "app", id="flask"), pytest.param("bottle_app", "application", id="bottle")]
TRICKY_NAME = '<b>eve</b> & "co"'


@pytest.fixture
def load_example(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[[str, str], Any]]:
    users = write_users(tmp_path / "users.json", {**USERS, TRICKY_NAME: ("P@ss-eve-123", {})})
    loaded: list[str] = []

    def load(module: str, attr: str) -> Any:
        for name in [k for k in os.environ if k.startswith("JWT_WSGI_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("JWT_WSGI_SECRET", SECRET)
        monkeypatch.setenv("JWT_WSGI_USERS_FILE", str(users))
        name = f"examples.{module}"
        sys.modules.pop(name, None)
        loaded.append(name)
        return getattr(importlib.import_module(name), attr)

    yield load
    for name in loaded:
        sys.modules.pop(name, None)


def in_process_sign_in(client: BufferedClient, username: str, password: str) -> None:
    page = client.get("/auth/login?next=%2Fdashboard", headers={"Accept": HTML_ACCEPT})
    assert page.status_code == 200
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page.data).group(1).decode()
    response = client.post("/auth/login", headers={"Accept": HTML_ACCEPT}, data={
        "username": username, "password": password, "csrf_token": token, "next": "/dashboard"})
    assert response.status_code == 303 and response.headers["Location"] == "/dashboard", response.data


@pytest.mark.parametrize(("module", "attr"), EXAMPLES)
def test_example_dashboard_in_process(load_example: Callable[[str, str], Any], module: str, attr: str) -> None:
    client = BufferedClient(load_example(module, attr), use_cookies=True)
    redirect = client.get("/dashboard", headers={"Accept": HTML_ACCEPT})
    assert redirect.status_code == 303 and redirect.headers["Location"] == "/auth/login?next=%2Fdashboard"
    assert client.get("/dashboard", headers={"Accept": "application/json"}).status_code == 401  # APIs: no redirect

    in_process_sign_in(client, TRICKY_NAME, "P@ss-eve-123")
    page = client.get("/dashboard", headers={"Accept": HTML_ACCEPT})
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert TRICKY_NAME not in text and html.escape(TRICKY_NAME) in text  # escaped, every time
    csrf = client.get_cookie("csrf_token").value
    assert text.count(f'name="csrf_token" value="{csrf}"') == 2  # Say hello, Sign out

    assert client.post("/dashboard/hello", data={}).status_code == 403
    hello = client.post("/dashboard/hello", data={"csrf_token": csrf})
    assert hello.status_code == 303 and hello.headers["Location"].endswith("/dashboard?said=hello")
    assert "The server heard your hello." in client.get("/dashboard?said=hello").get_data(as_text=True)

    assert client.post("/auth/logout", headers={"Accept": HTML_ACCEPT}).status_code == 403
    logout = client.post("/auth/logout", headers={"Accept": HTML_ACCEPT}, data={"csrf_token": csrf})
    assert logout.status_code == 303 and logout.headers["Location"] == "/auth/login"
    assert client.get("/dashboard", headers={"Accept": HTML_ACCEPT}).status_code == 303


def test_the_run_left_the_readme_screenshots_alone() -> None:
    # Last in this module, after every screenshot: docs/ is exactly as it was checked out.
    assert _docs_pngs() == DOCS_BEFORE
