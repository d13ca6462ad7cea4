"""Property-based tests (issue 6 item 5): Hypothesis strategies for ``Authorization`` values,
``PATH_INFO`` / ``SCRIPT_NAME`` strings, token-like strings and login bodies.

Invariants, checked against oracles that do not use the code under test where one is possible:

- never a 500;
- no protected resource (the canaries) without a valid token, whatever the path spelling, and a
  path that is protected by the canonical/folded definition gets 400/401;
- a token is accepted only if its signature is HMAC-SHA256 under the configured secret over its
  own first two segments and its header says ``HS256`` (checked here with :mod:`hmac`);
- login bodies never 500, and only the real credentials log in.

A fixed budget (``max_examples=300``, ``derandomize=True``, no example database) keeps the run
bounded and reproducible in CI.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwt_wsgi.paths import BadPath, ExactSet, PrefixSet, canonical_path, fold
from tests.conftest import ALICE_PASSWORD, CANARY_ADMIN, CANARY_API, HS, OTHER_SECRET, SECRET, J, b64
from tests.fuzz import BUDGET, FUZZ_RANDOM
from tests.security import apps
from tests.security.conftest import STATS, call, environ_for

STACKS = {
    "werkzeug": apps.protect(apps.werkzeug_router_app, login_rate_limit="off", login_ip_rate_limit="off"),
    "webob": apps.protect(apps.webob_router_app, login_rate_limit="off", login_ip_rate_limit="off"),
}
PROTECTED = PrefixSet(apps.PROTECT)
NO_PUBLIC = ExactSet([])


def native(text: str) -> str:
    """PEP 3333: what a server puts in environ for this text (UTF-8 bytes read as latin-1)."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def no_canary(body: bytes) -> bool:
    return CANARY_API not in body and CANARY_ADMIN not in body


# -- tokens ------------------------------------------------------------------------------------------
def now() -> int:
    return int(time.time())


def _b64decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def signed_by_configured_key(token: str) -> bool:
    """Independent oracle: header alg HS256 and an HMAC-SHA256 under SECRET over the segments."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    header = _b64decode(parts[0])
    signature = _b64decode(parts[2])
    if header is None or signature is None:
        return False
    try:
        alg = json.loads(header).get("alg")
    except (ValueError, AttributeError):
        return False
    expected = hmac.new(SECRET.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    return alg == "HS256" and hmac.compare_digest(expected, signature)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                         st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                  st.dictionaries(st.text(max_size=8), inner,
                                                                                  max_size=3)), max_leaves=8)

headers_st = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "HS256", "HS256", "HS384", "HS512", "none", "None", "RS256", "ES256", "EdDSA",
                             "", "hs256"])},
    optional={
        "typ": st.sampled_from(["JWT", "at+jwt", None, 0]),
        "kid": st.one_of(st.text(max_size=30), json_scalars),
        "jku": st.just("http://127.0.0.1:9/jwks.json"),
        "crit": st.lists(st.sampled_from(["b64", "exp", "x-mfa"]), max_size=2),
        "b64": st.booleans(),
        "cty": st.sampled_from(["JWT", "text/xml"]),
    },
)

payload_st = st.fixed_dictionaries(
    {},
    optional={
        "sub": st.one_of(st.just("alice"), st.just("admin"), json_scalars),
        "exp": st.one_of(st.just(now() + 600), st.just(now() - 600), json_scalars),
        "iat": st.one_of(st.just(now()), st.just(now() + 3600), json_scalars),
        "nbf": st.one_of(st.just(now() - 10), st.just(now() + 3600), json_scalars),
        "type": st.sampled_from(["access", "refresh", "id", ""]),
        "aud": st.one_of(st.just("other"), json_scalars),
        "scope": st.text(max_size=10),
        "extra": json_values,
    },
)


@st.composite
def generated_tokens(draw: st.DrawFn) -> str:
    header = draw(headers_st)
    payload = draw(st.one_of(payload_st, json_values))
    key = draw(st.sampled_from([SECRET, SECRET, OTHER_SECRET, "", "secret", SECRET + "x"]))
    digest = {"HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(str(header.get("alg")), hashlib.sha256)
    token = HS(key, header, payload, digest)
    mode = draw(st.sampled_from(["keep", "keep", "strip-sig", "truncate", "pad", "flip", "swap-payload"]))
    h, p, s = token.split(".")
    if mode == "strip-sig":
        return f"{h}.{p}."
    if mode == "truncate":
        return token[: draw(st.integers(0, len(token)))]
    if mode == "pad":
        return token + "=" * draw(st.integers(1, 3))
    if mode == "flip":
        i = draw(st.integers(0, len(token) - 1))
        return token[:i] + draw(st.sampled_from("Aa0-_.=+/")) + token[i + 1:]
    if mode == "swap-payload":
        return f"{h}.{J({'sub': 'admin', 'exp': now() + 600})}.{s}"
    return token


token_like = st.one_of(
    generated_tokens(),
    st.text(alphabet="ABCDEFabcdef0123456789-_.=+/~", max_size=120),
    st.lists(st.text(alphabet="ABCabc019-_=", max_size=40), min_size=1, max_size=6).map(".".join),
    st.binary(max_size=60).map(lambda raw: b64(raw) + "." + b64(raw[::-1]) + "." + b64(raw[:5])),
)

authorization_values = st.one_of(
    st.builds(lambda scheme, sep, cred: scheme + sep + cred,
              st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", "", "Bearer,Bearer"]),
              st.sampled_from([" ", " ", "  ", "\t", "", ","]), token_like),
    st.text(max_size=80).map(native),
    st.lists(token_like, min_size=2, max_size=3).map(lambda ts: ",".join("Bearer " + t for t in ts)),
)


def _get(stack: str, path: str, headers: dict[str, str], script_name: str = "") -> tuple[int, bytes]:
    environ = environ_for("GET", path, headers=headers)
    environ["SCRIPT_NAME"] = script_name
    return call(STACKS[stack], environ)


@BUDGET
@given(value=authorization_values, stack=st.sampled_from(sorted(STACKS)), path=st.sampled_from(["/api/me",
                                                                                                 "/admin/panel"]))
def test_authorization_header_values(value: str, stack: str, path: str) -> None:
    STATS["hypothesis_examples"] += 1
    status, body = _get(stack, path, {"Authorization": value})
    assert status != 500
    if status == 200:
        token = value.partition(" ")[2]
        assert value[:7].lower() == "bearer " and signed_by_configured_key(token), value
    else:
        assert status in (400, 401) and no_canary(body), (status, body)


@BUDGET
@given(token=token_like, stack=st.sampled_from(sorted(STACKS)))
def test_tokens_are_accepted_only_when_signed_with_the_configured_key_and_alg(token: str, stack: str) -> None:
    STATS["hypothesis_examples"] += 1
    status, body = _get(stack, "/api/me", {"Authorization": "Bearer " + token})
    assert status in (200, 400, 401), (status, body)
    if status == 200:
        assert signed_by_configured_key(token), token
        claims = json.loads(_b64decode(token.split(".")[1]) or b"{}")
        assert isinstance(claims.get("sub"), str) and claims["sub"]
        assert isinstance(claims.get("exp"), (int, float)) and claims["exp"] > time.time() - 5
    else:
        assert no_canary(body)


@BUDGET
@given(sub=st.text(min_size=1, max_size=20), extra=st.dictionaries(st.sampled_from(["scope", "role", "x"]),
                                                                      json_scalars, max_size=2))
def test_well_formed_tokens_signed_with_the_key_are_accepted(sub: str, extra: dict[str, Any]) -> None:
    """The converse, so that the property above is not vacuous."""
    STATS["hypothesis_examples"] += 1
    token = HS(SECRET, {"alg": "HS256", "typ": "JWT"}, {**extra, "sub": sub, "exp": now() + 600, "iat": now()})
    status, body = _get("werkzeug", "/api/me", {"Authorization": "Bearer " + token})
    assert status == 200 and CANARY_API in body, (status, body)


# -- paths ---------------------------------------------------------------------------------------------
SEGMENTS = [
    "api", "API", "Api", "admin", "ADMIN", "Admin", "me", "panel", "public", "administrator", "apiary", "x", "",
    ".", "..", "%2e", "%2E%2e", ".%2e", "%2f", "%2F", "%252F", "%5c", "\\", ";x=1", ";", "%3B", "%00", "\x00",
    "\t", "%09", "%20", " ", "\uff41\uff44\uff4d\uff49\uff4e", "ad\u200bmin", "%EF%BC%A1dmin", "%C0%AF", "%FF",
    "\u00e9", "%25", "admin.", "admin%20", "api%2Fme", "*", "?", "#", "%3F", "\r", "%0d%0a", "\u0130", "\u212a",
]

path_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(SEGMENTS), st.text(max_size=6)), max_size=6).map(
        lambda segs: "/" + "/".join(segs)),
    st.lists(st.sampled_from(SEGMENTS), max_size=6).map(lambda segs: "//".join(segs)),
    st.text(max_size=30),
)


@st.composite
def server_paths(draw: st.DrawFn) -> str:
    """PATH_INFO as a server delivers it: percent-decoded once (gunicorn) or not (direct WSGI)."""
    text = draw(path_text)
    if draw(st.booleans()):
        raw = quote(text, safe="/%;\\.~:@!$&'()*+,=") if draw(st.booleans()) else text
        return unquote_to_bytes(raw.encode("utf-8", "surrogatepass").decode("latin-1")).decode("latin-1")
    return native(text)


def _protected_by_definition(script_name: str, path_info: str) -> bool | None:
    try:
        path = canonical_path(script_name, path_info)
    except BadPath:
        return None  # 400
    return PROTECTED.covers(fold(path)) and not NO_PUBLIC.covers(path)


@BUDGET
@given(path=server_paths(), stack=st.sampled_from(sorted(STACKS)),
       method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "PROPFIND", "get", "OPTIONS"]))
def test_no_path_spelling_reaches_a_canary_without_a_token(path: str, stack: str, method: str) -> None:
    STATS["hypothesis_examples"] += 1
    environ = environ_for(method, path)
    status, body = call(STACKS[stack], environ)
    assert status != 500, path
    assert no_canary(body), (path, status, body)
    protected = _protected_by_definition("", path)
    if protected is None:
        assert status == 400, path
    elif protected:
        assert status == 401, (path, status)


mounts = st.one_of(st.sampled_from(["", "/x", "/app", "/admin", "/api", "/adm", "/api/me", "/zzz/", "/public"]),
                   st.lists(st.sampled_from(SEGMENTS[:12]), min_size=1, max_size=2).map(lambda s: "/" + "/".join(s)))


@BUDGET
@given(script_name=mounts, path=st.one_of(st.sampled_from(["/api/me", "/admin", "/admin/panel", "//admin/panel",
                                                           "/panel", "/me", "in/panel", ""]), server_paths()),
       stack=st.sampled_from(sorted(STACKS)))
def test_script_name_never_exposes_a_canary(script_name: str, path: str, stack: str) -> None:
    """Whatever SCRIPT_NAME a proxy (or a client gunicorn trusts) sets (threat model §3.2, §10.2)."""
    STATS["hypothesis_examples"] += 1
    status, body = _get(stack, path, {}, script_name=script_name)
    assert status != 500
    assert no_canary(body), (script_name, path, status, body)


# -- login bodies ------------------------------------------------------------------------------------
field_values = st.one_of(st.sampled_from(["alice", "root", "admin", ALICE_PASSWORD, "P@ss-admin-!", ""]),
                         st.text(max_size=30), json_values)


@st.composite
def login_requests(draw: st.DrawFn) -> tuple[bytes, str | None]:
    content_type = draw(st.sampled_from(["application/json", "application/json; charset=utf-8",
                                         "application/x-www-form-urlencoded", "text/plain", None,
                                         "application/json; charset=latin-1", "multipart/form-data; boundary=x"]))
    kind = draw(st.sampled_from(["json-object", "json-any", "form", "bytes", "nested"]))
    if kind == "json-object":
        fields = draw(st.dictionaries(st.sampled_from(["username", "password", "x", "Username"]), field_values,
                                      max_size=4))
        body = json.dumps(fields).encode()
    elif kind == "json-any":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "form":
        pairs = draw(st.lists(st.tuples(st.sampled_from(["username", "password", "x"]), st.text(max_size=20)),
                              max_size=4))
        body = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in pairs).encode()
    elif kind == "nested":
        depth = draw(st.integers(1, 20000))
        body = b'{"username":' + b"[" * depth + b"]" * depth + b"}"
    else:
        body = draw(st.binary(max_size=200))
    return body, content_type


KNOWN = {("alice", ALICE_PASSWORD), ("root", "P@ss-admin-!"), ("admin", apps.ADMIN_USER_PASSWORD)}


@BUDGET
@given(request=login_requests(), path=st.sampled_from(["/auth/login", "/auth/refresh", "/auth/logout"]))
def test_login_bodies_never_500(request: tuple[bytes, str | None], path: str) -> None:
    STATS["hypothesis_examples"] += 1
    body, content_type = request
    status, answer = call(STACKS["werkzeug"], environ_for("POST", path, body=body, content_type=content_type))
    assert status in (200, 204, 400, 401, 413, 415, 429), (status, answer)
    if status == 200:
        assert path != "/auth/logout"
        sent = json.loads(body) if content_type and "json" in content_type else None
        if path == "/auth/login" and isinstance(sent, dict):
            assert (sent.get("username"), sent.get("password")) in KNOWN
    json.loads(answer or b"{}")


def test_budget_is_fixed() -> None:
    if "FUZZ_EXAMPLES" in os.environ or FUZZ_RANDOM:
        return  # a maintainer's longer run, on purpose
    assert BUDGET.max_examples == 300 and BUDGET.derandomize and BUDGET.deadline is None


@pytest.mark.parametrize("value", ["Bearer " + "A" * 300, "Bearer a.b.c", "bearer x"])
def test_oracle_sanity(value: str) -> None:
    assert not signed_by_configured_key(value.partition(" ")[2])
    assert signed_by_configured_key(HS(SECRET, {"alg": "HS256"}, {"sub": "a"}))
