"""Differential test of the hand-written JWS parser in ``jwt_wsgi/tokens.py`` against PyJWT.

Invariant: every token the middleware accepts (``200`` on a protected path) is also accepted by
``jwt.decode`` with the same key, the same algorithm and the same claim rules (``exp`` required,
``iss`` and ``aud`` when configured, no leeway). The middleware may be stricter (it refuses
padding, stray bits, duplicate header members, ``crit``, foreign ``typ`` values), never looser.
And never a ``500``, whatever the token.

Tokens are built from JSON *text*, so that what PyJWT's encoder would never produce is covered:
odd and unknown header members, whitespace and line breaks between members, duplicate members,
``\\uXXXX`` escapes and non-ASCII text, numbers spelled ``1.0`` / ``1e0`` / ``1E+0``, integers of
hundreds of digits, ``1e400`` (infinity), ``NaN``, and segments re-encoded with padding or the
standard base64 alphabet. Signatures are computed over the exact segments (HMAC for HS256,
``cryptography`` for ES256), by the right key or a wrong one.

Time claims are whole seconds from now, or fractions at least two seconds away from it: both
libraries read the clock a moment apart, and a value within a second of "now" would make the
outcome depend on which side of a second each read falls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import event, given
from hypothesis import strategies as st

from jwt_wsgi import JWTMiddleware
from tests.conftest import OTHER_SECRET, SECRET, BufferedClient, bearer, canary_app
from tests.fuzz import BUDGET
from tests.security.conftest import STATS

EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())
ISSUER, AUDIENCE = "https://issuer.test", ("api", "other-api")


def _write_pem(path: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(EC_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[BufferedClient, dict[str, Any]]]:
    """name -> (client, the same rules as jwt.decode keyword arguments)."""
    pem = _write_pem(tmp_path_factory.mktemp("differential") / "ec.pub.pem")
    rate = {"login_rate_limit": "off", "login_ip_rate_limit": "off", "protect": ["/api"]}
    hs = JWTMiddleware(canary_app, secret=SECRET, **rate)
    es = JWTMiddleware(canary_app, secret=None, algorithm="ES256", public_key=pem, issuer=ISSUER,
                       audience=list(AUDIENCE), **rate)
    return {
        "HS256": (BufferedClient(hs), {"key": SECRET, "algorithms": ["HS256"]}),
        "ES256": (BufferedClient(es), {"key": EC_KEY.public_key(), "algorithms": ["ES256"], "issuer": ISSUER,
                                       "audience": list(AUDIENCE)}),
    }


# -- JSON text with the oddities a hand-written parser might get wrong -------------------------------
WHITESPACE = st.sampled_from(["", "", "", " ", "\n", "\t", "\r\n  "])
BIG = [10**400, -(10**400), 2**64, 2**63 - 1, 2**53 + 1, 10**20]


def _number_text(draw: st.DrawFn, value: int | float) -> str:
    if isinstance(value, int) and abs(value) < 10**15:
        return draw(st.sampled_from([str(value), str(value), f"{value}.0", f"{value}e0", f"{value}E+0",
                                     f"{value}.000"]))
    return json.dumps(value)


def _string_text(draw: st.DrawFn, value: str) -> str:
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0 and value and value.isascii():
        # \\u-escape one character: the same string, spelled differently.
        i = draw(st.integers(0, len(value) - 1))
        text = json.dumps(value[:i])[:-1] + f"\\u{ord(value[i]):04x}" + json.dumps(value[i + 1:])[1:]
    return text


@st.composite
def value_text(draw: st.DrawFn, value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return _number_text(draw, value)
    if isinstance(value, str):
        return _string_text(draw, value)
    if isinstance(value, list):
        return "[" + ",".join(draw(value_text(v)) for v in value) + "]"
    return draw(object_text(list(value.items())))


@st.composite
def object_text(draw: st.DrawFn, members: list[tuple[str, Any]]) -> str:
    parts = []
    for name, value in members:
        ws = [draw(WHITESPACE) for _ in range(4)]
        parts.append(f"{ws[0]}{_string_text(draw, name)}{ws[1]}:{ws[2]}{draw(value_text(value))}{ws[3]}")
    return "{" + ",".join(parts) + draw(WHITESPACE) + "}"


odd_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.sampled_from(BIG),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["é", "😀", "\u2028", "ｊｗｔ", "a\u0000b", "\\", '"']),
)
odd_values = st.recursive(odd_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                               st.dictionaries(st.text(max_size=6), inner,
                                                                               max_size=2)), max_leaves=3)


def _time(offset: Any) -> Any:
    """Seconds from now (ints, or floats at least 2 s away), or an odd absolute value."""
    if isinstance(offset, tuple):
        return offset[1]
    return int(time.time()) + offset


time_offsets = st.one_of(
    st.sampled_from([-(10**6), -3600, -2, 2, 60, 3600, 10**6, 10**9]),
    st.sampled_from([-3600.5, -2.25, 2.75, 60.5, 3600.999]),
    st.tuples(st.just("absolute"), st.sampled_from([*BIG, 0, -1, 1e308, 2.5e9, True, False, None, "9999999999",
                                                    [], {}, 1.7976931348623157e308])),
)


GOOD_SUBS = st.sampled_from(["alice", "ünïcødé", "😀", "a" * 300, "a\u0000b", " "])
ODD_CLAIMS = {
    "exp": time_offsets.map(_time), "iat": time_offsets.map(_time), "nbf": time_offsets.map(_time),
    "sub": odd_scalars, "iss": st.sampled_from([ISSUER + "/", [ISSUER], "", 1, None]),
    "aud": st.sampled_from(["x", ["x"], [], "API", 0, [1, "api"], None, {"api": 1}]),
    "jti": odd_scalars, "type": st.sampled_from(["refresh", "id", "", None, 1]),
}


@st.composite
def claim_members(draw: st.DrawFn, config: str, mutations: int) -> list[tuple[str, Any]]:
    """Mostly a token that should verify, spelled oddly, with extra odd members; then now and
    then a claim made wrong, left out, or given twice."""
    members: list[tuple[str, Any]] = [
        ("exp", _time(draw(st.sampled_from([60, 3600, 60.5, 10**6])))),
        ("sub", draw(GOOD_SUBS)),
    ]
    for name, good in (("iat", _time(-2)), ("nbf", _time(draw(st.sampled_from([-2, -3600.5])))),
                       ("jti", "j-" + str(time.monotonic_ns())), ("type", "access")):
        if draw(st.booleans()):
            members.append((name, good))
    if config == "ES256":
        members.append(("iss", ISSUER))
        members.append(("aud", draw(st.sampled_from(["api", "other-api", ["x", "api"], ["other-api"]]))))
    members.extend(draw(st.lists(st.tuples(st.text(max_size=8), odd_values), max_size=3)))
    for _ in range(mutations):
        name = draw(st.sampled_from(sorted(ODD_CLAIMS)))
        change = draw(st.sampled_from(["replace", "drop", "twice"]))
        if change == "drop":
            members = [m for m in members if m[0] != name]
        elif change == "twice":
            members.append((name, draw(ODD_CLAIMS[name])))  # last one wins in PyJWT's reading
        else:
            members = [m for m in members if m[0] != name] + [(name, draw(ODD_CLAIMS[name]))]
    return draw(st.permutations(members))


@st.composite
def header_members(draw: st.DrawFn, config: str, odd: bool) -> list[tuple[str, Any]]:
    alg = config if not odd or draw(st.booleans()) else draw(st.sampled_from(["HS256", "ES256", "HS384", "none",
                                                                              "hs256"]))
    members: list[tuple[str, Any]] = [("alg", alg)]
    optional = {
        "typ": st.sampled_from(["JWT", "jwt", "at+jwt", "application/at+jwt", "JOSE", "", None, 1]),
        "kid": st.one_of(st.text(max_size=10), odd_scalars),
        "cty": st.sampled_from(["JWT", "json"]),
        "x-ünï": odd_values,
        "crit": st.sampled_from([[], ["exp"]]),
        "b64": st.booleans(),
        "jku": st.just("https://attacker.test/jwks.json"),
    }
    for name, strategy in optional.items():
        if draw(st.integers(0, 2 if odd else 12)) == 0:
            members.append((name, draw(strategy)))
    if odd and draw(st.integers(0, 3)) == 0:
        members.append(draw(st.sampled_from(members)))
    return draw(st.permutations(members))


def _b64(data: bytes, style: str) -> str:
    if style == "standard":
        return base64.b64encode(data).decode()
    text = base64.urlsafe_b64encode(data).decode()
    return text if style == "padded" else text.rstrip("=")


@st.composite
def tokens(draw: st.DrawFn, config: str) -> str:
    """One flavour of oddity per token (so that each is tried on an otherwise valid token), on
    top of odd spellings and extra members everywhere."""
    flavour = draw(st.sampled_from(["spelling"] * 3 + ["claims"] * 5 + ["header"] * 2 + ["encoding", "key",
                                                                                          "payload"]))
    header = draw(object_text(draw(header_members(config, odd=flavour == "header"))))
    mutations = draw(st.sampled_from([1, 1, 1, 2, 3])) if flavour == "claims" else 0
    payload = draw(object_text(draw(claim_members(config, mutations))))
    if flavour == "payload":
        payload = draw(st.sampled_from(["[]", '"x"', "null", "1", "{", '{"exp": NaN, "sub": "a"}',
                                        '{"exp": 1e400, "sub": "a"}', '{"exp": Infinity, "sub": "a"}']))
    style = draw(st.sampled_from(["padded", "standard"])) if flavour == "encoding" else "plain"
    signing_input = f"{_b64(header.encode(), style)}.{_b64(payload.encode('utf-8', 'surrogatepass'), style)}"
    right_key = flavour != "key"
    if config == "HS256":
        key = SECRET if right_key else OTHER_SECRET
        signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    else:
        r, s = decode_dss_signature((EC_KEY if right_key else OTHER_EC_KEY).sign(signing_input.encode(),
                                                                                  ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{_b64(signature, 'plain')}"


def _check(client: BufferedClient, rules: dict[str, Any], token: str) -> int:
    STATS["hypothesis_examples"] += 1
    response = client.get("/api/me", headers=bearer(token))
    # 400: a credential that is not token68 (padding inside it), refused before any parsing.
    assert response.status_code in (200, 400, 401), (response.status_code, response.data, token)
    if response.status_code == 200:
        # PyJWT must accept it too, with the same key, algorithm and claim rules.
        jwt.decode(token, rules["key"], algorithms=rules["algorithms"], issuer=rules.get("issuer"),
                   audience=rules.get("audience"), options={"require": ["exp"]}, leeway=0)
    return int(response.status_code)


@BUDGET
@given(data=st.data())
def test_every_hs256_token_we_accept_pyjwt_accepts(configs, data: st.DataObject) -> None:
    client, rules = configs["HS256"]
    token = data.draw(tokens("HS256"))
    event(f"status {_check(client, rules, token)}")


@BUDGET
@given(data=st.data())
def test_every_es256_token_we_accept_pyjwt_accepts_with_issuer_and_audience(configs, data: st.DataObject) -> None:
    client, rules = configs["ES256"]
    token = data.draw(tokens("ES256"))
    event(f"status {_check(client, rules, token)}")


def test_odd_but_valid_tokens_are_accepted_by_both(configs) -> None:
    """The oracle is not vacuous: hand-written odd spellings that both sides accept."""
    client, rules = configs["HS256"]
    now = int(time.time())
    payloads = [
        f'{{ "sub" :\n"alice",\t"exp": {now + 600}.0, "iat": {now}e0 }}',
        f'{{"sub": "\\u0061lice", "exp": {now + 600}, "x": {10**300}, "ü": ["😀", null, {{"a": -0}}]}}',
        f'{{"sub": "alice", "exp": {now + 600}, "nbf": {now - 5}.5, "aud": []}}',
    ]
    header = _b64(b'{ "alg" : "HS256", "x-odd": 1e308 }', "plain")
    for payload in payloads:
        signing_input = f"{header}.{_b64(payload.encode(), 'plain')}"
        token = signing_input + "." + _b64(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest(),
                                           "plain")
        assert client.get("/api/me", headers=bearer(token)).status_code == 200, payload
        _check(client, rules, token)
