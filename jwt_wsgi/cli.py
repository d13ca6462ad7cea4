"""The ``jwt-wsgi`` command (also ``python -m jwt_wsgi``).

A user's mistake is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import jwt

from ._version import __version__
from .errors import ConfigurationError
from .jose import ALGORITHMS, HMAC_ALGORITHMS
from .settings import Settings, parse_duration

if TYPE_CHECKING:
    from .middleware import JWTMiddleware
    from .remote import RemoteKeySet

PROG = "jwt-wsgi"


class UsageError(Exception):
    """A mistake on the command line: printed as one line, exit status 2."""


def _fail(message: str) -> NoReturn:
    raise UsageError(message)


# -- configuration ----------------------------------------------------------------------------
def load_settings(config: str | None, **overrides: Any) -> Settings:
    """Settings from ``--config FILE`` (TOML) or, without it, from ``JWT_WSGI_*`` variables."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if config:
        return Settings.from_file(config, **overrides)
    return Settings.from_env(None, **overrides)


def _claims(pairs: Sequence[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    from .claims import RESERVED_CLAIMS

    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _fail(f"--claim takes KEY=VALUE, got {pair!r}")
        if key in RESERVED_CLAIMS:
            reserved = ", ".join(sorted(RESERVED_CLAIMS))
            _fail(f"--claim {key}=...: {key!r} is set by jwt_wsgi itself (reserved: {reserved})")
        try:
            claims[key] = json.loads(raw)  # numbers, true/false, lists ...
        except ValueError:
            claims[key] = raw
    return claims


# -- users ------------------------------------------------------------------------------------
def _users_file(args: argparse.Namespace) -> str:
    path = args.users_file or os.environ.get("JWT_WSGI_USERS_FILE")
    return path or "users.json"


def cmd_users(args: argparse.Namespace) -> int:
    from .users import edit_lock, hash_password, valid_username

    path = _users_file(args)
    if args.users_command == "list":
        if not os.path.exists(path):
            _fail(f"no users file at {_shown(path)}; create it with '{PROG} users add NAME' (or pass --users-file)")
        for name, claims in sorted(_load_users(path)["users"].items()):
            extra = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted((claims.get("claims") or {}).items()))
            print(f"{name} {extra}".rstrip())
        return 0
    name = args.name
    if args.users_command == "add":
        if not valid_username(name):
            _fail(f"{name!r} is not a valid user name (printable, no spaces or ':', at most 256 characters)")
        password = _read_password(name, args.password_stdin)  # before the lock: a prompt may wait
        entry = {"password": hash_password(password), "claims": _claims(args.claim)}
    # Read, change and write under an exclusive lock: concurrent edits are applied one after the
    # other (none is lost), and readers only ever see a whole file (written aside, then renamed).
    try:
        with edit_lock(path):
            data = _load_users(path)
            users = data["users"]
            if args.users_command == "remove":
                if name not in users:
                    _fail(f"no user {name!r} in {_shown(path)}")
                del users[name]
                done = "removed"
            else:
                done = "updated" if name in users else "added"
                users[name] = entry
            _save(path, data)
    except OSError as exc:
        _fail(f"cannot lock users file {_shown(path)}: {exc.strerror or exc}")
    print(f"{done} {name}" + (f" in {path}" if done != "removed" else ""))
    return 0


def _shown(path: str) -> str:
    return repr(path) if os.path.isabs(path) else f"{path!r} (that is {os.path.abspath(path)})"


def _load_users(path: str) -> dict[str, Any]:
    from .users import load_for_edit

    try:
        return load_for_edit(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        _fail(f"cannot read users file {_shown(path)}: {reason}")


def _read_password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
    else:
        if not sys.stdin.isatty():
            _fail("standard input is not a terminal, so the password cannot be asked for; "
                  "pipe it with --password-stdin (e.g. printf '%s\\n' \"$PW\" | "
                  f"{PROG} users add {name} --password-stdin)")
        try:
            password = getpass.getpass(f"Password for {name}: ")
            if getpass.getpass("Again: ") != password:
                _fail("the passwords do not match")
        except EOFError:
            _fail("no password given (end of input)")
    if len(password) < 8:
        _fail("the password must have at least 8 characters")
    return password


def _save(path: str, data: dict[str, Any]) -> None:
    from .users import save_atomically

    try:
        save_atomically(path, data)
    except OSError as exc:
        _fail(f"cannot write users file {_shown(path)}: {exc.strerror or exc}")


# -- tokens -----------------------------------------------------------------------------------
def cmd_token(args: argparse.Namespace) -> int:
    from .keys import KeyRing
    from .tokens import TokenIssuer

    if not args.sub or args.sub != args.sub.strip():
        _fail("--sub must be a non-empty name without surrounding spaces")
    settings = load_settings(args.config)
    ttl = parse_duration("--ttl", args.ttl) if args.ttl else settings.access_ttl
    if ttl <= 0:
        _fail("--ttl must be longer than zero")
    keys = KeyRing(settings)
    if not keys.can_sign:
        _fail("minting tokens needs a signing key (secret, or private_key)")
    token, _ = TokenIssuer(settings, keys).issue(args.sub, ttl, claims=_claims(args.claim))
    print(token)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    token = args.token.strip()
    if token == "-":
        token = sys.stdin.readline().strip()
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        _fail("this is not a JWT (expected three base64url segments with JSON header and claims)")
    if args.no_verify:
        status, code = "not verified (--no-verify)", 0
    else:
        status, code = _verify_status(token, claims, args.config)
    print("header: " + json.dumps(header, indent=2, sort_keys=True))
    print("claims: " + json.dumps(claims, indent=2, sort_keys=True))
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        try:
            left = exp - time.time()
            when = datetime.fromtimestamp(exp, tz=UTC).isoformat(timespec="seconds")
            print(f"expires: {when} ({'in ' + _span(left) if left > 0 else _span(-left) + ' ago'})")
        except (ValueError, OverflowError, OSError):
            print(f"expires: {exp!r} is not a representable date")
        if args.no_verify and exp <= time.time():
            status, code = status + "; EXPIRED by its exp claim", 1
    else:
        print("expires: never (no numeric exp claim: jwt_wsgi refuses such tokens)")
        status, code = status + ("; refused: no numeric exp claim" if args.no_verify else ""), 1
    print(f"status: {status}")
    return code


def _verify_status(token: str, claims: dict[str, Any], config: str | None) -> tuple[str, int]:
    """(the status line, the exit status) of verifying ``token`` as the routes would."""
    from .errors import ExpiredToken, InvalidToken, ServiceUnavailable
    from .keys import KeyRing
    from .tokens import TokenVerifier

    settings = load_settings(config)
    verifier = TokenVerifier(settings, KeyRing(settings))
    kind = claims.get("type")
    try:
        if kind == "refresh":
            verifier.verify(token, expected_type="refresh")
            where = f"only by the refresh endpoint ({settings.refresh_path})" if settings.refresh_path \
                else "by no endpoint (refresh_path is off)"
            return ("valid REFRESH token: signature, algorithm and claims verified; accepted " + where
                    + ", refused on protected routes (send its access token there)"), 0
        verifier.verify(token)
        return ("valid access token: signature, algorithm and claims verified (revocation is not checked "
                "here: it lives in the store)"), 0
    except ExpiredToken:
        return "EXPIRED: the signature is good but the token has expired", 1
    except InvalidToken:
        if kind is not None and kind not in ("access", "refresh"):
            return f"INVALID: its type claim is {json.dumps(kind)}; routes accept only access tokens", 1
        return "INVALID: forged, signed with another key or algorithm, or its claims are not accepted", 1
    except ServiceUnavailable:
        _fail("cannot verify: the JWK Set that holds the keys could not be fetched (try --no-verify)")


def _span(seconds: float) -> str:
    """``3725`` -> ``1h 2m 5s``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return " ".join(parts) or "0s"


def cmd_check(args: argparse.Namespace) -> int:
    from .middleware import JWTMiddleware

    settings = load_settings(args.config)

    def nothing(environ: Any, start_response: Any) -> list[bytes]:
        return []

    # Start-up warnings are repeated below as check's own notes, once each.
    logging.getLogger("jwt_wsgi.middleware").setLevel(logging.ERROR)
    middleware = JWTMiddleware(nothing, settings)  # loads keys and users: every check there is
    notes = []
    try:
        notes.extend(_check_store(middleware.store, settings))
    finally:
        middleware.store.close()
    _check_remote_keys(middleware.keys.remotes)
    if settings.login_path and middleware.issuer is not None and middleware.endpoints.authenticate is None:
        notes.append(f"warning: login_path {settings.login_path} is NOT mounted: no users_file (JWT_WSGI_USERS_FILE) "
                     "or authenticate is configured, so nobody can log in here; tokens must come from elsewhere")
    if settings.metrics_path:
        guarded = middleware.endpoints.metrics_page is not None and middleware.endpoints.metrics_page.guard is not None
        notes.append(f"metrics: {settings.metrics_path} serves the metrics page " + (
            "to requests with a valid token (it is under protect)" if guarded else
            "to ANY client (it is not under protect): keep it away from the public, at the proxy"))
    print(json.dumps(settings.public_view(), indent=2, sort_keys=True, default=str))
    # How tokens find their key (which signs, which verify, tokens without kid): on stderr, so
    # that stdout stays the JSON above.
    for line in middleware.keys.describe():
        print(f"keys: {line}", file=sys.stderr)
    for note in notes:
        print(note, file=sys.stderr)
    print("configuration OK", file=sys.stderr)
    return 0


def _check_store(store: Any, settings: Settings) -> list[str]:
    """Reach the store, without creating anything: a SQLite file that does not exist yet is
    only checked for a writable directory (it is created on first use)."""
    path = getattr(store, "path", None) if settings.store.lower().startswith("sqlite:") else None
    if isinstance(path, str) and not os.path.exists(path):
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            _fail(f"store {settings.public_view()['store']}: the directory {directory} does not exist")
        if not os.access(directory, os.W_OK | os.X_OK):
            _fail(f"store {settings.public_view()['store']}: cannot create files in {directory}")
        return [f"store: {path} does not exist yet; it will be created on first use"]
    try:
        store.ping()
    except Exception as exc:  # StoreUnavailable and the like
        _fail(f"store {settings.public_view()['store']}: unreachable ({exc})")
    # A store that can forget (Redis without persistence) makes jwt_wsgi refuse every
    # earlier token after a restart: say so now rather than after the first outage.
    durability = getattr(store, "durability_warnings", None)
    return [f"{PROG}: warning: {warning}" for warning in (durability() if durability is not None else ())]


def _check_remote_keys(remotes: Sequence[RemoteKeySet]) -> None:
    """Fetch each remote JWK Set now (discovery included, within ``jwks_timeout``): a set-up whose
    keys cannot be had is refused here rather than answering 503 to every request later."""
    from .remote import FetchError

    found = []
    for remote in remotes:
        source = "jwks_url" if remote.jwks_url else f"issuer {remote.issuer} (discovery)"
        try:
            url, usable = remote.probe()
        except FetchError as exc:
            _fail(f"{source}: {exc.url or remote.jwks_url or remote.issuer}: {exc.reason}")
        if not usable:
            _fail(f"{source}: {url}: no key in this JWK Set can verify {'/'.join(remote.algorithms)} "
                  "(check algorithm against the provider's keys)")
        found.append(f"{source}: {url}: {usable} usable key(s)")
    for line in found:  # only once all are known good: an error stays the one line on stderr
        print(line, file=sys.stderr)


# -- keys -------------------------------------------------------------------------------------
def cmd_keys(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from .keys import KeyRing

    if args.keys_command == "jwks":
        if args.key_files:
            from .keys import jwks_for_files

            if args.config:
                _fail("give --config or key files, not both")
            print(json.dumps(jwks_for_files(args.key_files, args.alg), indent=2))
            return 0
        if args.alg:
            _fail("--alg applies to key files given as arguments; with --config, the configuration names it")
        settings = load_settings(args.config)
        jwks = KeyRing(settings).jwks()
        if jwks is None:
            _fail(f"{settings.algorithm} uses a shared secret: there is no public key to publish")
        print(json.dumps(jwks, indent=2))
        return 0
    alg = args.alg
    if alg in HMAC_ALGORITHMS:
        _fail(f"{alg} uses a shared secret, not a key pair; set JWT_WSGI_SECRET to a random value instead")
    if alg not in ALGORITHMS:
        _fail(f"unsupported algorithm {alg!r}")
    if alg.startswith(("RS", "PS")):
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        curve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
        private = ec.generate_private_key(curve)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create --out directory {args.out!r}: {exc.strerror or exc}")
    priv_path = os.path.join(args.out, "private.pem")
    pub_path = os.path.join(args.out, "public.pem")
    for path in (priv_path, pub_path):
        if os.path.exists(path):
            _fail(f"{path} exists; choose another --out directory (keys are never overwritten)")
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with open(pub_path, "wb") as fh:
        fh.write(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    ring = KeyRing(Settings(algorithm=alg, private_key=priv_path))
    print(f"kid: {ring.keys[0].kid}")
    print(f"private key: {priv_path} (mode 0600)")
    print(f"public key: {pub_path}")
    return 0


# -- serving ----------------------------------------------------------------------------------
def _refuse_memory_store(settings: Settings, workers: int) -> None:
    if workers > 1 and settings.store.startswith("memory:"):
        _fail(
            f"the memory:// store lives in one process, but {workers} workers would each keep their own "
            "revocations and rate limits; use store = sqlite:///path/file.db (one host) or redis://... "
            "(several hosts), or --workers 1"
        )


def _check_bind(bind: str) -> None:
    """``HOST:PORT`` (or ``unix:/path``), checked here so a typo is one line, not gunicorn's exit."""
    if bind.startswith("unix:"):
        return
    host, sep, port = bind.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        _fail(f"--bind takes HOST:PORT (for example 127.0.0.1:8000), got {bind!r}")


def _serve_threads(args: argparse.Namespace) -> int:
    """``--threads``, resolved for ``--worker-class`` (gunicorn silently turns sync into gthread
    when given more than one thread)."""
    from .serving import DEFAULT_THREADS

    if args.worker_class == "sync":
        if args.threads not in (None, 1):
            _fail("--threads applies to --worker-class gthread; a sync worker serves one request at a time")
        return 1
    return DEFAULT_THREADS if args.threads is None else int(args.threads)


def _need_gunicorn() -> None:
    """One line instead of an ImportError when the ``serve`` extra is not installed."""
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        _fail(f"{PROG} serve and demo run gunicorn, which is not installed: pip install 'jwt_wsgi[serve]'")


def cmd_serve(args: argparse.Namespace) -> int:
    _need_gunicorn()
    from .serving import gunicorn_options, run

    _check_bind(args.bind)
    threads = _serve_threads(args)
    if args.app is None and not args.forward_auth:
        _fail("serve needs MODULE:APP, the WSGI application to wrap (or --forward-auth to serve only the verifier)")
    # Built and checked here, in the master, before anything binds: a mistake is one line.
    app = _serve_app(args)
    _ping(app)
    first_store = app.settings.store

    def options(app: JWTMiddleware) -> dict[str, Any]:
        return gunicorn_options(args.bind, args.workers, worker_class=args.worker_class, threads=threads,
                                timeout=args.timeout, trusted_proxies=app.settings.trusted_proxies,
                                log_format=args.log_format)

    def reload() -> tuple[JWTMiddleware, dict[str, Any]]:
        # SIGHUP: the configuration file and the keys again, checked the same way. When the
        # configuration names no store, the one in use is kept: the default file's name covers the
        # keys, and revocations must outlive a key rotation.
        try:
            fresh = _serve_app(args, default_store=first_store)
            if fresh.settings.store != first_store:
                _ping(fresh)  # a new store must answer; an outage of the same one must not block a rotation
            else:
                fresh.store.close()  # opened again, lazily, in each worker (as _ping leaves it)
        except UsageError as exc:
            raise ConfigurationError("serve", str(exc)) from None
        return fresh, options(fresh)

    run(app, options(app), reload=reload)
    return 0


def _serve_app(args: argparse.Namespace, *, default_store: str | None = None) -> JWTMiddleware:
    """The middleware ``serve`` runs, from ``--config`` (or ``JWT_WSGI_*``) and the command line.

    :param default_store: the store to use when none is configured and several workers need one
        (default: a SQLite file of this application's own, announced on stderr).
    """
    from .middleware import JWTMiddleware
    from .serving import import_app, prepare_metrics_dir

    overrides: dict[str, Any] = {}
    if args.protect:
        overrides["protect"] = args.protect
    if args.trusted_proxy:
        overrides["trusted_proxies"] = args.trusted_proxy
    if args.store:
        overrides["store"] = args.store
    settings = load_settings(args.config, **overrides)
    if args.forward_auth and settings.verify_path is None:
        overrides["verify_path"] = "/verify"
        settings = load_settings(args.config, **overrides)
    label = args.app or "forward-auth"
    if args.workers > 1 and settings.store.startswith("memory:") and not args.store and not _store_configured(args):
        from .state import default_store_url

        # A file of this application's own: another app served from the same host must never
        # share its revocations or lock its users out.
        settings = load_settings(args.config, **overrides, store=default_store or default_store_url(label, settings))
        if default_store is None:
            print(f"{PROG}: {args.workers} workers share revocations and rate limits in {settings.store}",
                  file=sys.stderr)
    _refuse_memory_store(settings, args.workers)
    if settings.metrics_path or settings.metrics == "prometheus":
        prepare_metrics_dir()  # every worker's counts on the metrics page
    return JWTMiddleware(import_app(args.app) if args.app else _not_found, settings)


def _not_found(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The application behind ``serve --forward-auth``: the verifier and the endpoints are all there is."""
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "10")])
    return [b"Not Found\n"]


def _store_configured(args: argparse.Namespace) -> bool:
    if args.config:
        import tomllib

        with open(args.config, "rb") as fh:
            data = tomllib.load(fh)
        return "store" in data.get("jwt_wsgi", data)
    return "JWT_WSGI_STORE" in os.environ


def _ping(app: Any) -> None:
    from .errors import StoreUnavailable

    try:
        app.store.ping()
    except StoreUnavailable as exc:
        _fail(f"store {app.settings.public_view()['store']} is unreachable: {exc}")
    finally:
        app.store.close()


def cmd_demo(args: argparse.Namespace) -> int:
    _need_gunicorn()
    from .demo import demo_app
    from .middleware import JWTMiddleware
    from .serving import gunicorn_options, run
    from .users import hash_password, save_atomically

    _check_bind(args.bind)
    state = tempfile.mkdtemp(prefix="jwt-wsgi-demo-")
    password = secrets.token_urlsafe(12)
    users_file = os.path.join(state, "users.json")
    save_atomically(users_file, {"users": {
        "demo": {"password": hash_password(password), "claims": {"scope": "read"}},
    }})
    # Generated once in this (master) process; the forked workers inherit it, so a token
    # issued by one worker verifies in all of them. Demo only: a real deployment sets its own.
    secret = secrets.token_urlsafe(48)
    store = "memory://" if args.workers == 1 else f"sqlite:///{state}/store.db"
    app = JWTMiddleware(demo_app, secret=secret, protect=["/api"], public=["/api/health"],
                        scopes={"/api/admin": ["admin"]}, users_file=users_file, store=store)
    _ping(app)
    base = f"http://{args.bind}"
    login = json.dumps({"username": "demo", "password": password})
    print(f"""jwt_wsgi demo on {base}  (state in {state}; Ctrl-C to stop)

demo user: demo
password:  {password}    (shown once)

Try it:
  curl -i {base}/api/me
  curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' -d {shlex.quote(login)}
  TOKEN=$(curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' -d {shlex.quote(login)} | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -s {base}/api/me -H "Authorization: Bearer $TOKEN"
  curl -i {base}/api/admin -H "Authorization: Bearer $TOKEN"
  curl -i -X POST {base}/auth/logout -H "Authorization: Bearer $TOKEN"
  curl -i {base}/api/me -H "Authorization: Bearer $TOKEN"
""", flush=True)
    run(app, gunicorn_options(args.bind, args.workers, extra={"accesslog": None}))
    return 0


# -- the parser -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (the contract), with a pointer to --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def _worker_class(value: str) -> str:
    try:
        from .serving import WORKER_CLASSES
    except ImportError:
        return value  # no gunicorn: the command says so, in one line, before it looks at this
    if value not in WORKER_CLASSES:
        raise argparse.ArgumentTypeError(f"choose {' or '.join(WORKER_CLASSES)}, not {value!r}")
    return value


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {high}, not {value!r}")
        return number

    return convert


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="JSON Web Token authentication for any WSGI application.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="run an example app behind the middleware")
    p.add_argument("--bind", default="127.0.0.1:8000")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("serve", help="wrap an existing WSGI app and serve it with gunicorn")
    p.add_argument("app", metavar="MODULE:APP", nargs="?",
                   help="the WSGI application to wrap, e.g. myapp:application (none with --forward-auth)")
    p.add_argument("--config", metavar="FILE", help="TOML options (default: JWT_WSGI_* variables)")
    p.add_argument("--forward-auth", action="store_true",
                   help="answer a proxy's auth_request/ForwardAuth at verify_path (default /verify); "
                        "without MODULE:APP, every other path is 404")
    p.add_argument("--bind", default="127.0.0.1:8000", metavar="HOST:PORT",
                   help="address to listen on (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="worker processes (default: %(default)s)")
    p.add_argument("--protect", action="append", metavar="PREFIX",
                   help="a path prefix that needs a token (repeatable; default: the configuration's protect, '/')")
    p.add_argument("--store", metavar="URL",
                   help="revocations and rate limits (default: the configuration's store; with several workers "
                        "and none configured, a SQLite file of this application's own under $TMPDIR/jwt-wsgi-UID/)")
    p.add_argument("--trusted-proxy", action="append", metavar="IP",
                   help="a proxy allowed to set X-Forwarded-For/-Proto (repeatable)")
    p.add_argument("--worker-class", default="gthread", type=_worker_class, metavar="{gthread,sync}",
                   help="gthread serves several requests per worker, so slow clients cannot hold them all; "
                        "sync serves one at a time (only behind a buffering proxy) (default: %(default)s)")
    p.add_argument("--threads", type=_bounded_int(1, 1000), metavar="N",
                   help="requests each gthread worker serves at once (default: 4)")
    p.add_argument("--timeout", type=_bounded_int(1, 86400), default=30, metavar="SECONDS",
                   help="a worker silent for longer is restarted (default: %(default)s)")
    p.add_argument("--log-format", choices=("text", "json"), default="text",
                   help="text: gunicorn's lines with time, pid and level; json: one JSON object per line "
                        "(time, level, logger, pid, message and the audit fields) (default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("users", help="manage the users file")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    for action, text in (("add", "add or update a user (asks for the password)"), ("remove", "remove a user"),
                         ("list", "list users and their claims")):
        q = users.add_parser(action, help=text)
        if action != "list":
            q.add_argument("name", metavar="NAME")
        q.add_argument("--users-file", metavar="F", help="default: $JWT_WSGI_USERS_FILE or users.json")
        if action == "add":
            q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
            q.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("token", help="mint a token")
    p.add_argument("--sub", required=True, metavar="NAME")
    p.add_argument("--ttl", metavar="DURATION", help="e.g. 90s, 30m, 12h (default: access_ttl)")
    p.add_argument("--claim", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("decode", help="show a token's header, claims and expiry")
    p.add_argument("token", metavar="TOKEN", help="the token, or - to read it from standard input")
    p.add_argument("--config", metavar="FILE")
    p.add_argument("--no-verify", action="store_true", help="do not check the signature or claims")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("keys", help="key pairs and JWK Sets")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    q = keys.add_parser("generate", help="write a new key pair (private key mode 0600) and print its kid")
    q.add_argument("--alg", required=True, choices=[a for a in ALGORITHMS if a not in HMAC_ALGORITHMS])
    q.add_argument("--out", required=True, metavar="DIR")
    q = keys.add_parser("jwks", help="print the JWK Set of the configured keys, or of PEM key files")
    q.add_argument("--config", metavar="FILE")
    q.add_argument("key_files", nargs="*", metavar="KEY.pem", help="public (or unencrypted private) PEM key files")
    q.add_argument("--alg", choices=[a for a in ALGORITHMS if a not in HMAC_ALGORITHMS],
                   help="algorithm of the key files (default: RS256 for RSA, ES256/384/512 by curve, EdDSA)")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("check", help="validate a configuration and print it with secrets hidden")
    p.add_argument("--config", metavar="FILE")
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be at least 1")
    try:
        return int(args.func(args))
    except (UsageError, ConfigurationError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
