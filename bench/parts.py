"""``python -m bench.parts``: where one HS256 verification's time goes, step by step.

cProfile inflates small Python functions (a generator step is "a call"), so this times the steps
of PyJWT's decode directly, in paired rotating rounds like ``python -m bench``. Some steps are
PyJWT internals (``PyJWS._load``, ``_decode_base64url_segment``, ``HMACAlgorithm.prepare_key``):
diagnostics only, skipped with a note if a PyJWT release renames them.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
from collections.abc import Callable
from typing import Any

import jwt

from bench.fixtures import KeyPair, new_secret
from bench.runner import Case, calibrate, run_rounds


def steps(secret: str, token: str) -> list[tuple[str, str, Callable[[Any], Any]]]:
    head, payload, sig = token.split(".")
    signing_input = f"{head}.{payload}".encode()
    key_bytes = secret.encode()
    jwk = jwt.PyJWK({"kty": "oct", "k": jwt.utils.base64url_encode(key_bytes).decode()}, algorithm="HS256")
    pyjwt = jwt.PyJWT(options={"require": ["exp"]})
    jws = jwt.PyJWS()
    hs = jwt.get_algorithm_by_name("HS256")
    out: list[tuple[str, str, Callable[[Any], Any]]] = [
        ("decode", "jwt.decode(token, secret str, algorithms=[HS256])",
         lambda t: jwt.decode(t, secret, algorithms=["HS256"])),
        ("decode_pyjwk", "PyJWT().decode_complete(token, PyJWK, ...) (what the middleware calls)",
         lambda t: pyjwt.decode_complete(t, key=jwk, algorithms=["HS256"], options={"require": ["exp"]})),
        ("unverified_header", "jwt.get_unverified_header(token) (a full parse of all 3 segments)",
         jwt.get_unverified_header),
    ]
    optional: list[tuple[str, str, Callable[[], Callable[[Any], Any]]]] = [
        ("load", "PyJWS._load(token): split + 3 segment decodes + header JSON", lambda: jws._load),
        ("segment_payload", "PyJWS._decode_base64url_segment(payload) (alphabet check + round trip)",
         lambda: (lambda t, f=jws._decode_base64url_segment, p=payload.encode(): f(p, "payload"))),
        ("prepare_key_str", "HMAC prepare_key(secret) (PEM/SSH/DER sniffing; done on every decode)",
         lambda: (lambda t, f=hs.prepare_key: f(secret))),
    ]
    for sid, label, make in optional:
        try:
            func = make()
            func(token)
        except Exception as exc:  # renamed internals: report, go on
            print(f"skipped {sid}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        out.append((sid, label, func))
    out += [
        ("b64_payload", "base64.urlsafe_b64decode(payload) alone",
         lambda t, p=payload + "=" * (-len(payload) % 4): __import__("base64").urlsafe_b64decode(p)),
        ("json_payload", "json.loads(payload bytes)",
         lambda t, d=jwt.utils.base64url_decode(payload): json.loads(d)),
        ("hmac", "hmac.new(key, input, sha256).digest() + compare_digest (the crypto floor)",
         lambda t, s=jwt.utils.base64url_decode(sig): hmac.compare_digest(
             hmac.new(key_bytes, signing_input, hashlib.sha256).digest(), s)),
        ("dict_get", "dict lookup of the token text (a cache hit's floor)",
         lambda t, d={token: 1}: d.get(t)),
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parts", description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    secret = new_secret()
    token = KeyPair("HS256", None, secret).mint()
    cases = [Case(sid, "parts", label, inputs=lambda n: [token] * n, func=func)
             for sid, label, func in steps(secret, token)]
    for case in cases:
        calibrate(case, int(args.batch_ms * 1e6), 5, 1_000_000)
    run_rounds(cases, args.rounds)
    decode = cases[0].samples_us
    print(f"HS256 verification, step by step ({args.rounds} paired rounds, medians; token {len(token)} chars)")
    print(f"  {'step':<82} {'µs':>8} {'/ decode':>9}")
    for case in cases:
        ratio = sorted(x / y for x, y in zip(case.samples_us, decode, strict=True))[len(decode) // 2]
        print(f"  {case.label:<82} {case.median_us:>8.2f} {ratio:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
