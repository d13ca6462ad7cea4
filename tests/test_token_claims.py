"""The claims of a signed token as the verifier reads them: numbers, duplicate members, issuing.

Every token here is correctly signed with the deployment's secret, so what is tested is the
claims check alone: whatever a signed payload says, the answer is 200 or 401, never a 500.
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

from .conftest import CANARY_API, SECRET, b64, bearer, mint

NOW = int(time.time())
H0 = b'{"alg":"HS256","typ":"JWT"}'


@pytest.fixture
def client(make_client: Any) -> Any:
    """The middleware on a clock stopped at ``NOW``: the tokens below are dated when the module loads,
    and a long run must not let them expire before their test."""
    return make_client(clock=lambda: float(NOW))


def signed(payload: bytes, header: bytes = H0) -> str:
    """A token over raw payload bytes (so it can say things ``json.dumps`` never writes)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    return signing_input + "." + b64(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())


def payload(**members: str) -> bytes:
    """A claims set whose members are given as raw JSON text (defaults: a valid access token)."""
    base = {"sub": '"alice"', "iat": str(NOW), "exp": str(NOW + 600), "jti": '"j-1"', "type": '"access"'}
    base.update(members)
    return ("{" + ",".join(f'"{name}":{value}' for name, value in base.items() if value) + "}").encode()


HUGE = "9" * 400
ODD_NUMBERS = [
    pytest.param(HUGE, id="400-digit"),
    pytest.param("-" + HUGE, id="minus-400-digit"),
    pytest.param("1" + "0" * 4000, id="4001-digit"),
    pytest.param("1e400", id="1e400-infinity"),
    pytest.param("-1e400", id="minus-1e400"),
    pytest.param("1e308", id="1e308"),
    pytest.param("NaN", id="NaN"),
    pytest.param("Infinity", id="Infinity"),
    pytest.param("-Infinity", id="minus-Infinity"),
    pytest.param("true", id="true"),
    pytest.param("false", id="false"),
    pytest.param("null", id="null"),
    pytest.param('"1796284661"', id="string"),
    pytest.param("[1]", id="array"),
    pytest.param("253402300800", id="year-10000"),
]


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ODD_NUMBERS)
def test_any_time_claim_value_is_401_never_500(client: Any, claim: str, value: str) -> None:
    response = client.get("/api/me", headers=bearer(signed(payload(**{claim: value}))))
    assert response.status_code == 401, response.data
    assert response.json["error"] == "invalid_token"
    assert CANARY_API not in response.data


@pytest.mark.parametrize(
    ("members", "status"),
    [
        pytest.param({"exp": "253402300799"}, 200, id="exp-end-of-year-9999"),
        pytest.param({"exp": f"{NOW + 600}.999"}, 200, id="exp-fraction"),
        pytest.param({"iat": "-5", "nbf": "-" + "9" * 11}, 200, id="negative-iat-nbf"),
        pytest.param({"iat": "0.0"}, 200, id="iat-zero-float"),
        pytest.param({"exp": "-1"}, 401, id="negative-exp-expired"),
        pytest.param({"exp": "-253402300799"}, 401, id="exp-start-of-year-minus-9999"),
        pytest.param({"nbf": "253402300799"}, 401, id="nbf-far-future"),
        pytest.param({"iat": "1e20"}, 401, id="iat-1e20"),
    ],
)
def test_numbers_in_range_are_judged_as_times(client: Any, members: dict[str, str], status: int) -> None:
    response = client.get("/api/me", headers=bearer(signed(payload(**members))))
    assert response.status_code == status, response.data


def test_far_future_exp_can_be_logged_out(client: Any) -> None:
    """A valid token whose exp is at the end of the range goes through the store and back."""
    token = signed(payload(exp="253402300799", jti='"far-future"'))
    assert client.get("/api/me", headers=bearer(token)).status_code == 200
    assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


DUPLICATES = [
    pytest.param(b'{"sub":"alice","sub":"admin","exp":%d,"jti":"j"}', id="two-sub"),
    pytest.param(b'{"sub":"alice","exp":1,"jti":"j","exp":%d}', id="two-exp-expired-first"),
    pytest.param(b'{"sub" : "alice" , "sub" : "admin" , "exp" : %d}', id="two-sub-with-spaces"),
    pytest.param(b'{"sub":"alice","exp":%d,"scope":"read","scope":"admin"}', id="two-scope"),
    pytest.param(b'{"sub":"alice","exp":%d,"s\\u0075b":"admin"}', id="escaped-second-sub"),
    pytest.param(b'{"sub":"alice","exp":%d,"ctx":{"role":"user","role":"admin"}}', id="nested-duplicate"),
    pytest.param(b'{"sub":"alice","exp":%d,"aud2":["a","b"],"sub":"admin"}', id="duplicate-after-array"),
]


@pytest.mark.parametrize("template", DUPLICATES)
def test_duplicate_claim_members_are_refused(client: Any, template: bytes) -> None:
    response = client.get("/api/me", headers=bearer(signed(template % (NOW + 600))))
    assert response.status_code == 401, response.data
    assert response.json["error"] == "invalid_token"
    assert CANARY_API not in response.data


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"sub":"alice","exp":%d}', id="minimal"),
        pytest.param(b'{"sub":"alice","exp":%d,"scope":"read, write","note":",,,,,,"}', id="commas-in-strings"),
        pytest.param(b'{"sub":"alice","exp":%d,"roles":["a","b","c"],"ctx":{"a":1,"b":[1,2]}}', id="arrays-objects"),
        pytest.param(b'{"sub":"alice","exp":%d,"Sub":"other","sub2":"x"}', id="similar-names"),
    ],
)
def test_distinct_members_are_accepted_whatever_the_commas(client: Any, raw: bytes) -> None:
    assert client.get("/api/me", headers=bearer(signed(raw % (NOW + 600)))).status_code == 200


def test_duplicate_header_members_are_still_refused(client: Any) -> None:
    token = signed(payload(), header=b'{"alg":"HS256","typ":"JWT","typ":"JWT"}')
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_signed_helper_matches_pyjwt() -> None:
    """The raw builder above signs exactly as PyJWT does (so the tests test the claims)."""
    token = signed(payload())
    # PyJWT reads the wall clock: the payload's times are NOW, when this module was loaded.
    assert jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})["sub"] == "alice"
    assert base64.urlsafe_b64decode(token.split(".")[1] + "==") == payload()
    assert json.loads(payload(exp=HUGE))["exp"] == int(HUGE)
    assert mint()  # the shared helper still works alongside
