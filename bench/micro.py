"""``python -m bench``: per-request cost of jwt_wsgi next to the bare app and the alternatives,
in one process, paired rotating rounds (see ``bench/README.md`` for what every case means).
"""

from __future__ import annotations

import argparse
import cProfile
import fnmatch
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt

from bench import report
from bench.fixtures import (
    ALGORITHMS,
    PUBLIC_PATH,
    REPO,
    KeyPair,
    RedisServer,
    TokenPool,
    bad_signature,
    bare_app,
    base_environ,
    flask_article,
    flask_bare,
    flask_jwt_extended,
    machine,
    new_secret,
)
from bench.runner import Case, calibrate, run_rounds

RESULTS = REPO / "bench" / "results"


def _environs(path: str = "/api/hello", header: str | None = None,
              token: str | None = None) -> Callable[[int], list[dict[str, Any]]]:
    """``n`` fresh copies of one request (the middleware writes into its environ)."""
    base = base_environ(path)
    if header is not None and token is not None:
        base[header] = token

    def build(n: int) -> list[dict[str, Any]]:
        return [base.copy() for _ in range(n)]

    return build


def _fresh_environs(pool: TokenPool, header: str = "HTTP_AUTHORIZATION",
                    prefix: str = "Bearer ") -> Callable[[int], list[dict[str, Any]]]:
    """``n`` requests, each with a token never sent before."""
    base = base_environ()

    def build(n: int) -> list[dict[str, Any]]:
        out = []
        for token in pool.take(n):
            env = base.copy()
            env[header] = prefix + token
            out.append(env)
        return out

    return build


def _repeat(n: int, value: Any) -> list[Any]:
    return [value] * n


class Bench:
    """Builds every case; keeps what must be cleaned up (temp dir, redis-server)."""

    def __init__(self, workdir: Path, *, with_redis: bool = True) -> None:
        self.workdir = workdir
        self.secret = new_secret()
        self.cases: list[Case] = []
        self.notes: dict[str, str] = {}
        self.redis: RedisServer | None = None
        self.with_redis = with_redis
        self._closers: list[Callable[[], None]] = []

    # -- helpers -------------------------------------------------------------------------
    def add(self, case: Case) -> Case:
        self.cases.append(case)
        return case

    def na(self, case_id: str, group: str, label: str, reason: str) -> None:
        self.cases.append(Case(case_id, group, label, inputs=lambda n: [], error=f"n/a: {reason}"))

    def middleware(self, app: Any, **options: Any) -> Any:
        from jwt_wsgi import JWTMiddleware

        options.setdefault("protect", ["/api"])
        return JWTMiddleware(app, **options)

    # -- the cases -----------------------------------------------------------------------
    def build(self) -> None:
        hs = KeyPair("HS256", self.workdir, self.secret)
        token = hs.mint()
        bad = bad_signature(token)
        bearer = "Bearer " + token
        opts = hs.middleware_options()

        # WSGI: the bare app and the middleware on each path through it.
        # The bare apps get the same request as the repeated-token cases (they ignore the header).
        self.add(Case("bare", "wsgi", "bare WSGI app", _environs(header="HTTP_AUTHORIZATION", token=bearer),
                      app=bare_app, expect="200"))
        self.add(Case("mw_unprotected", "wsgi", "JWTMiddleware, unprotected path, no token",
                      _environs(PUBLIC_PATH), app=self.middleware(bare_app, **opts), baseline="bare", expect="200"))
        self.add(Case("mw_missing", "wsgi", "JWTMiddleware, protected, no token (401)",
                      _environs(), app=self.middleware(bare_app, **opts), baseline="bare", expect="401"))
        self.add(Case("mw_bad_signature", "wsgi", "JWTMiddleware, bad signature (401)",
                      _environs(header="HTTP_AUTHORIZATION", token="Bearer " + bad),
                      app=self.middleware(bare_app, **opts), baseline="bare", expect="401"))
        pool = TokenPool(hs)
        self.add(Case("mw_first", "wsgi", "JWTMiddleware, valid first-seen token",
                      _fresh_environs(pool), app=self.middleware(bare_app, **opts), baseline="bare",
                      expect="200", pool=pool))
        self.add(Case("mw_repeat", "wsgi", "JWTMiddleware, valid repeated token",
                      _environs(header="HTTP_AUTHORIZATION", token=bearer),
                      app=self.middleware(bare_app, **opts), baseline="bare", expect="200"))
        # The token in a cookie among others (token_sources with cookie: the cookie is parsed on
        # every request, so its parser is on the hot path).
        cookie = f"theme=dark; lang=en-GB; access_token={token}; _ga=GA1.2.3456789.1700000000"
        self.add(Case("mw_cookie_repeat", "wsgi", "JWTMiddleware, valid repeated token in a cookie",
                      _environs(header="HTTP_COOKIE", token=cookie),
                      app=self.middleware(bare_app, token_sources=["header", "cookie"], **opts),
                      baseline="bare", expect="200"))
        secret = self.secret
        self.add(Case("jwt_decode", "wsgi", "plain jwt.decode (HS256, same token)",
                      lambda n: _repeat(n, token),
                      func=lambda t: jwt.decode(t, secret, algorithms=["HS256"])))

        # Flask: the same view bare, with the article's decorator, with Flask-JWT-Extended,
        # and behind the middleware.
        fbare = flask_bare()
        self.add(Case("flask_bare", "flask", "bare Flask app", _environs(header="HTTP_AUTHORIZATION", token=bearer),
                      app=fbare, expect="200"))
        self.add(Case("flask_article", "flask", "article decorator (TOKEN header; no cache)",
                      _environs(header="HTTP_TOKEN", token=token), app=flask_article(secret),
                      baseline="flask_bare", expect="200"))
        fje = flask_jwt_extended(secret)
        fje_pool = TokenPool(hs)
        self.add(Case("flask_fje_first", "flask", "Flask-JWT-Extended @jwt_required(), first-seen",
                      _fresh_environs(fje_pool), app=fje, baseline="flask_bare", expect="200", pool=fje_pool,
                      refs=("flask_mw_first",)))
        self.add(Case("flask_fje_repeat", "flask", "Flask-JWT-Extended @jwt_required(), repeated",
                      _environs(header="HTTP_AUTHORIZATION", token=bearer), app=fje,
                      baseline="flask_bare", expect="200", refs=("flask_mw_repeat",)))
        fmw_pool = TokenPool(hs)
        self.add(Case("flask_mw_first", "flask", "JWTMiddleware around Flask, first-seen",
                      _fresh_environs(fmw_pool), app=self.middleware(fbare, **opts), baseline="flask_bare",
                      expect="200", pool=fmw_pool, refs=("flask_fje_first",)))
        self.add(Case("flask_mw_repeat", "flask", "JWTMiddleware around Flask, repeated",
                      _environs(header="HTTP_AUTHORIZATION", token=bearer), app=self.middleware(fbare, **opts),
                      baseline="flask_bare", expect="200", refs=("flask_fje_repeat",)))

        # Algorithms (HS256 is the wsgi group's mw_first / mw_repeat / jwt_decode).
        for alg in ALGORITHMS[1:]:
            self._algorithm(alg)

        # Stores: the revocation check on a repeated token (memory is the wsgi group's mw_repeat).
        self._store("sqlite", "JWTMiddleware, repeated token, SQLite store", bearer, opts,
                    lambda: f"sqlite:///{self.workdir / 'bench-store.db'}")
        if self.with_redis:
            self._store("redis", "JWTMiddleware, repeated token, Redis store", bearer, opts, self._redis_url)
            self._redis_ping()
        else:
            self.na("store_redis", "stores", "JWTMiddleware, repeated token, Redis store", "--no-redis")

    def _algorithm(self, alg: str) -> None:
        key = alg.lower()
        try:
            keys = KeyPair(alg, self.workdir, self.secret)
            token = keys.mint()
            opts = keys.middleware_options()
            pool = TokenPool(keys)
            first = self.middleware(bare_app, **opts)
            repeat = self.middleware(bare_app, **opts)
        except Exception as exc:  # an algorithm the middleware cannot do yet: report, go on
            for suffix in ("first", "repeat", "decode"):
                self.na(f"{key}_{suffix}", "algorithms", f"{alg} {suffix}", f"{type(exc).__name__}: {exc}")
            return
        self.add(Case(f"{key}_first", "algorithms", f"JWTMiddleware {alg}, first-seen", _fresh_environs(pool),
                      app=first, baseline="bare", expect="200", pool=pool, refs=(f"{key}_decode",)))
        self.add(Case(f"{key}_repeat", "algorithms", f"JWTMiddleware {alg}, repeated",
                      _environs(header="HTTP_AUTHORIZATION", token="Bearer " + token),
                      app=repeat, baseline="bare", expect="200", refs=(f"{key}_decode",)))
        public = keys.verifying
        self.add(Case(f"{key}_decode", "algorithms", f"plain jwt.decode {alg} (loaded key object)",
                      lambda n: _repeat(n, token), func=lambda t: jwt.decode(t, public, algorithms=[alg])))

    def _store(self, name: str, label: str, bearer: str, opts: dict[str, Any], url: Callable[[], str]) -> None:
        case_id = f"store_{name}"
        try:
            app = self.middleware(bare_app, store=url(), **opts)
            # A store refuses tokens dated before its first use (it cannot know what it never
            # saw), so the token comes from the middleware itself, after the store has begun.
            if hasattr(app, "issue_tokens"):
                bearer = "Bearer " + app.issue_tokens("bench-user")["access_token"]
        except Exception as exc:
            self.na(case_id, "stores", label, f"{type(exc).__name__}: {exc}")
            return
        self.add(Case(case_id, "stores", label, _environs(header="HTTP_AUTHORIZATION", token=bearer),
                      app=app, baseline="bare", expect="200", refs=("mw_repeat", "redis_ping")))

    def _redis_url(self) -> str:
        self.redis = RedisServer(self.workdir)
        self.redis.start()
        return self.redis.url

    def _redis_ping(self) -> None:
        if self.redis is None or self.redis.process is None:
            return
        try:
            import redis

            client = redis.Redis.from_url(self.redis.url)
            client.ping()
        except Exception as exc:
            self.na("redis_ping", "stores", "redis-py PING (one round trip)", f"{type(exc).__name__}: {exc}")
            return
        self._closers.append(client.close)
        self.add(Case("redis_ping", "stores", "redis-py PING (one round trip, reference)",
                      lambda n: _repeat(n, None), func=lambda _: client.ping()))

    def close(self) -> None:
        for close in self._closers:
            try:
                close()
            except Exception:  # best effort on the way out
                pass
        if self.redis is not None:
            self.redis.stop()


def _check(bench: Bench) -> None:
    for case in bench.cases:
        if case.error is not None:
            continue
        try:
            case.check()
        except Exception as exc:
            case.error = f"n/a: {type(exc).__name__}: {exc}" if case.group == "stores" else f"error: {exc}"


def _profile(bench: Bench, case_id: str, calls: int, top: int) -> int:
    case = next((c for c in bench.cases if c.id == case_id), None)
    if case is None or case.error is not None:
        print(f"no runnable case {case_id!r}; cases: {', '.join(c.id for c in bench.cases)}", file=sys.stderr)
        return 2
    case.run(50)  # warm
    inputs = case.inputs(calls)
    profiler = cProfile.Profile()
    profiler.enable()
    case.timed(inputs)
    profiler.disable()
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(order).print_stats(top)
        print(f"== {case_id}: {calls} calls, top {top} by {order} ==")
        print(out.getvalue().split("\n", 4)[-1] if order == "tottime" else out.getvalue())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, help="paired rounds (default 9; 3 with --quick)")
    parser.add_argument("--batch-ms", type=float,
                        help="target time of one case's batch in a round (default 40; 5 quick)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (few rounds, short batches)")
    parser.add_argument("--cases", help="only case ids matching this glob (e.g. 'mw_*'); the baselines are kept")
    parser.add_argument("--no-redis", action="store_true", help="do not start redis-server (its rows are n/a)")
    parser.add_argument("--json", type=Path, help="results file (default bench/results/latest.json; quick.json)")
    parser.add_argument("--svg", type=Path, help="chart file (default bench/results/overhead.svg; quick.svg)")
    parser.add_argument("--profile", metavar="CASE", help="instead of timing, cProfile one case (e.g. mw_first)")
    parser.add_argument("--profile-calls", type=int, default=5000)
    parser.add_argument("--profile-top", type=int, default=25)
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # "µs" on a non-UTF-8 terminal

    rounds = args.rounds or (3 if args.quick else 9)
    batch_ms = args.batch_ms or (5.0 if args.quick else 40.0)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    json_path = args.json or RESULTS / ("quick.json" if args.quick else "latest.json")
    svg_path = args.svg or RESULTS / ("quick.svg" if args.quick else "overhead.svg")

    started = time.time()
    with tempfile.TemporaryDirectory(prefix="jwt-wsgi-bench-") as tmp:
        bench = Bench(Path(tmp), with_redis=not args.no_redis)
        try:
            bench.build()
            _check(bench)
            if args.profile:
                return _profile(bench, args.profile, args.profile_calls, args.profile_top)
            if args.cases:
                keep = {c.id for c in bench.cases if fnmatch.fnmatch(c.id, args.cases)}
                keep |= {c.baseline for c in bench.cases if c.id in keep and c.baseline}
                keep |= {ref for c in bench.cases if c.id in keep for ref in c.refs}
                keep |= {"bare", "jwt_decode"}  # the references every ratio needs
                bench.cases = [c for c in bench.cases if c.id in keep]
            errors = [c for c in bench.cases if c.error and c.error.startswith("error")]
            for case in errors:
                print(f"case {case.id}: {case.error}", file=sys.stderr)
            batch_ns = int(batch_ms * 1e6)
            print(f"calibrating {sum(c.error is None for c in bench.cases)} cases "
                  f"(batch ~{batch_ms:g} ms, {rounds} rounds)...", file=sys.stderr, flush=True)
            for case in bench.cases:
                if case.error is None:
                    calibrate(case, batch_ns, min_n=5, max_n=200_000)
            run_rounds(bench.cases, rounds,
                       progress=lambda r, total: print(f"  round {r}/{total}", file=sys.stderr, flush=True))
        finally:
            bench.close()

    results = report.summarise(bench.cases, rounds=rounds, batch_ms=batch_ms, quick=args.quick,
                               machine=machine(), started=started, duration=time.time() - started,
                               argv=sys.argv if argv is None else ["python -m bench", *argv])
    print(report.render_text(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.write_json(results, json_path)
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.write_text(report.render_svg(results), encoding="utf-8")
    print(f"\nwrote {_rel(json_path)} and {_rel(svg_path)}")
    return 1 if errors else 0


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
