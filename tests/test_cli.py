"""The ``jwt-wsgi`` command through its public surface: real subprocesses, real files.

Every user's mistake must be one line on stderr starting with ``jwt-wsgi: error:``, exit status
2, and no traceback (PRODUCT.md §3).
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from werkzeug.security import check_password_hash

import jwt_wsgi
from tests.conftest import ALICE_PASSWORD, OTHER_SECRET, SECRET, mint
from tests.servers import JWT_WSGI, PYTHON, REPO_ROOT, server_env

pytestmark = pytest.mark.slow  # every test here runs the CLI in a subprocess

PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

INVOCATIONS = [
    pytest.param([JWT_WSGI], id="script"),
    pytest.param([PYTHON, "-m", "jwt_wsgi"], id="module"),
]


def run(
    *args: str,
    cwd: Path,
    stdin: str | None = None,
    secret: str | None = SECRET,
    prefix: list[str] | None = None,
    **env: str | None,
) -> subprocess.CompletedProcess[str]:
    """``jwt-wsgi ARGS`` in ``cwd``, with ``JWT_WSGI_SECRET`` (unless ``secret=None``) and ``env``."""
    environ = server_env(cwd / ".runtime", JWT_WSGI_SECRET=secret, **env)
    return subprocess.run(
        [*(prefix or [JWT_WSGI]), *args], cwd=cwd, env=environ, input=stdin if stdin is not None else "",
        capture_output=True, text=True, timeout=60,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result


def assert_user_error(result: subprocess.CompletedProcess[str], match: str = "") -> str:
    """Exit 2, one line on stderr starting with ``jwt-wsgi: error:``, no traceback; the line."""
    where = f"\nexit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr + result.stdout, "a traceback for a user's mistake" + where
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, "expected exactly one line on stderr" + where
    assert lines[0].startswith("jwt-wsgi: error: "), where
    assert result.returncode == 2, where
    assert match.lower() in lines[0].lower(), f"the message should mention {match!r}" + where
    return lines[0]


def read_users(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())["users"]
    return data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- --version ---------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", INVOCATIONS)
def test_version(tmp_path: Path, prefix: list[str]) -> None:
    result = ok(run("--version", cwd=tmp_path, prefix=prefix))
    assert result.stdout.strip() == f"jwt-wsgi {jwt_wsgi.__version__}"


# -- users ------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", INVOCATIONS)
def test_users_add_as_the_readme_says(tmp_path: Path, prefix: list[str]) -> None:
    # export JWT_WSGI_SECRET=...; jwt-wsgi users add alice --users-file users.json --password-stdin
    result = ok(run("users", "add", "alice", "--users-file", "users.json", "--password-stdin",
                    "--claim", "scope=read write", cwd=tmp_path, stdin=ALICE_PASSWORD + "\n", prefix=prefix))
    assert "alice" in result.stdout
    path = tmp_path / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    users = read_users(path)
    assert set(users) == {"alice"}
    assert users["alice"]["claims"] == {"scope": "read write"}
    assert check_password_hash(users["alice"]["password"], ALICE_PASSWORD), "the newline must not be part of it"
    assert ALICE_PASSWORD not in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".runtime") == ["users.json"], "temp file left"


def test_users_password_is_the_first_line_only(tmp_path: Path) -> None:
    ok(run("users", "add", "bob", "--users-file", "u.json", "--password-stdin", cwd=tmp_path,
           stdin="first-line-pw\r\nsecond line\n"))
    stored = read_users(tmp_path / "u.json")["bob"]["password"]
    assert check_password_hash(stored, "first-line-pw")


def test_users_file_from_environment(tmp_path: Path) -> None:
    ok(run("users", "add", "carol", "--password-stdin", cwd=tmp_path, stdin="carol-password\n",
           JWT_WSGI_USERS_FILE=str(tmp_path / "from-env.json")))
    assert set(read_users(tmp_path / "from-env.json")) == {"carol"}


def test_users_add_without_a_terminal_points_to_password_stdin(tmp_path: Path) -> None:
    # echo pw | jwt-wsgi users add alice: no terminal to ask on, no --password-stdin.
    assert_user_error(run("users", "add", "alice", cwd=tmp_path, stdin="long-enough-pw\n"), "--password-stdin")
    assert not (tmp_path / "users.json").exists()


def test_users_list_of_a_missing_file_says_so(tmp_path: Path) -> None:
    line = assert_user_error(run("users", "list", "--users-file", "nobody.json", cwd=tmp_path), "no users file")
    assert str(tmp_path / "nobody.json") in line


def test_users_added_in_parallel_are_all_kept(tmp_path: Path) -> None:
    # Ten `jwt-wsgi users add` at once: each reads, changes and writes the file under a lock.
    env = server_env(tmp_path / ".runtime", JWT_WSGI_SECRET=SECRET)
    procs = [subprocess.Popen([JWT_WSGI, "users", "add", f"user{i}", "--users-file", "users.json",
                               "--password-stdin"], cwd=tmp_path, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(10)]
    outputs = [p.communicate(f"password-{i}\n", timeout=120) for i, p in enumerate(procs)]
    assert [p.returncode for p in procs] == [0] * 10, outputs
    users = read_users(tmp_path / "users.json")
    assert sorted(users) == sorted(f"user{i}" for i in range(10))
    for i in range(10):
        assert check_password_hash(users[f"user{i}"]["password"], f"password-{i}")
    listed = ok(run("users", "list", cwd=tmp_path)).stdout.split()
    assert sorted(listed) == sorted(users)


@pytest.mark.parametrize("command", [["serve", "examples.plain_wsgi:app"], ["demo"]])
def test_serve_without_gunicorn_is_one_line(tmp_path: Path, command: list[str]) -> None:
    # As if the serve extra were not installed: gunicorn cannot be imported.
    code = ("import sys; sys.modules['gunicorn'] = None; from jwt_wsgi.cli import main; "
            f"sys.exit(main({command!r}))")
    line = assert_user_error(run(prefix=[PYTHON, "-c", code], cwd=tmp_path), "gunicorn")
    assert "jwt_wsgi[serve]" in line


def test_users_list_remove_and_readd(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    ok(run("users", "add", "alice", "--users-file", str(path), "--password-stdin", "--claim", "scope=read write",
           cwd=tmp_path, stdin=ALICE_PASSWORD + "\n"))
    ok(run("users", "add", "root", "--users-file", str(path), "--password-stdin", "--claim", "scope=read admin",
           "--claim", "level=3", cwd=tmp_path, stdin="root-password\n"))

    listing = ok(run("users", "list", "--users-file", str(path), cwd=tmp_path)).stdout.splitlines()
    assert listing == ['alice scope="read write"', 'root level=3 scope="read admin"']
    assert "pbkdf2" not in "".join(listing) and "scrypt" not in "".join(listing), "hashes are not listed"

    # Re-adding updates the password and replaces the claims, atomically, still 0600.
    path.chmod(0o644)
    inode = path.stat().st_ino
    result = ok(run("users", "add", "alice", "--users-file", str(path), "--password-stdin", "--claim", "scope=read",
                    cwd=tmp_path, stdin="a-new-password\n"))
    assert "updated" in result.stdout
    users = read_users(path)
    assert users["alice"]["claims"] == {"scope": "read"}
    assert check_password_hash(users["alice"]["password"], "a-new-password")
    assert not check_password_hash(users["alice"]["password"], ALICE_PASSWORD)
    assert users["root"]["claims"] == {"scope": "read admin", "level": 3}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != inode, "written in place, not through a temporary file and a rename"

    ok(run("users", "remove", "alice", "--users-file", str(path), cwd=tmp_path))
    assert set(read_users(path)) == {"root"}
    listing = ok(run("users", "list", "--users-file", str(path), cwd=tmp_path)).stdout.splitlines()
    assert listing == ['root level=3 scope="read admin"']
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".runtime") == ["users.json"], "temp file left"


# -- token and decode ---------------------------------------------------------------------------
def test_token_then_decode(tmp_path: Path) -> None:
    token = ok(run("token", "--sub", "alice", "--ttl", "30m", "--claim", "scope=read write", "--claim", "level=3",
                   cwd=tmp_path)).stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert claims["scope"] == "read write"
    assert claims["level"] == 3
    assert claims["type"] == "access"
    assert claims["jti"]
    assert 1795 <= claims["exp"] - claims["iat"] <= 1800
    assert abs(claims["iat"] - time.time()) < 60

    result = ok(run("decode", token, cwd=tmp_path))
    assert '"sub": "alice"' in result.stdout
    assert '"alg": "HS256"' in result.stdout
    status = [line for line in result.stdout.splitlines() if line.startswith("status:")]
    assert len(status) == 1 and "valid" in status[0] and "INVALID" not in status[0]
    assert "expires:" in result.stdout and "in 29m" in result.stdout

    # The token can also come from standard input.
    from_stdin = ok(run("decode", "-", cwd=tmp_path, stdin=token + "\n")).stdout
    assert '"sub": "alice"' in from_stdin
    assert "status: valid" in from_stdin


def test_decode_says_what_a_refresh_token_is_valid_for(tmp_path: Path) -> None:
    access = ok(run("decode", mint(type="access"), cwd=tmp_path)).stdout
    assert "status: valid access token" in access
    refresh = ok(run("decode", mint(type="refresh"), cwd=tmp_path)).stdout
    status = next(line for line in refresh.splitlines() if line.startswith("status:"))
    assert "REFRESH" in status and "/auth/refresh" in status and "refused on protected routes" in status, status


@pytest.mark.parametrize("kind", [pytest.param("id", id="string"), pytest.param(5, id="number")])
def test_decode_a_token_of_another_type_is_invalid(tmp_path: Path, kind: Any) -> None:
    # Routes accept only access tokens: decode must not call such a token valid.
    result = run("decode", mint(type=kind), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "status: INVALID" in result.stdout and "type claim" in result.stdout


@pytest.mark.parametrize("claims", [
    pytest.param({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, id="expired"),
    pytest.param({"exp": None}, id="no-exp"),
])
def test_decode_no_verify_still_exits_non_zero_for_a_dead_token(tmp_path: Path, claims: dict[str, Any]) -> None:
    token = jwt.encode({k: v for k, v in {"sub": "alice", **claims}.items() if v is not None}, SECRET)
    result = run("decode", "--no-verify", token, cwd=tmp_path, secret=None)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_decode_expired_token(tmp_path: Path) -> None:
    now = int(time.time())
    token = mint(iat=now - 7200, exp=now - 3600)
    result = run("decode", token, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "status: EXPIRED" in result.stdout
    assert "ago" in result.stdout


def test_decode_forged_token(tmp_path: Path) -> None:
    token = mint(key=OTHER_SECRET)
    result = run("decode", token, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "status: INVALID" in result.stdout


def test_decode_alg_none_is_invalid(tmp_path: Path) -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": "alice", "exp": int(time.time()) + 600, "type": "access"}).encode())
    result = run("decode", f"{header}.{payload}.", cwd=tmp_path)
    assert result.returncode != 0
    assert "status: INVALID" in result.stdout


@pytest.mark.parametrize("exp", [pytest.param("99999999999999", id="year-3170843"), pytest.param("1e400", id="inf")])
@pytest.mark.parametrize("extra", [pytest.param([], id="verify"), pytest.param(["--no-verify"], id="no-verify")])
def test_decode_survives_an_out_of_range_exp(tmp_path: Path, exp: str, extra: list[str]) -> None:
    # decode is the tool for looking at untrusted tokens: a crafted exp must not crash it.
    header = b64url(b'{"alg":"HS256"}')
    payload = b64url(b'{"sub":"a","exp":' + exp.encode() + b"}")
    result = run("decode", *extra, f"{header}.{payload}.c2ln", cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 2:  # refused as a user's mistake: one line
        assert_user_error(result)
    elif not extra:  # shown: the signature is wrong, so INVALID
        assert result.returncode == 1 and "status: INVALID" in result.stdout, result.stdout + result.stderr
    else:
        assert result.returncode == 0 and '"sub": "a"' in result.stdout, result.stdout + result.stderr


def test_decode_no_verify_needs_no_secret(tmp_path: Path) -> None:
    token = mint(key=OTHER_SECRET, scope="read")
    result = ok(run("decode", "--no-verify", token, cwd=tmp_path, secret=None))
    assert '"scope": "read"' in result.stdout
    assert "not verified" in result.stdout


# -- check ------------------------------------------------------------------------------------
def test_check_from_environment_hides_the_secret(tmp_path: Path) -> None:
    result = ok(run("check", cwd=tmp_path, JWT_WSGI_PROTECT="/api,/admin", JWT_WSGI_ACCESS_TTL="15m"))
    assert SECRET not in result.stdout + result.stderr
    config = json.loads(result.stdout)
    assert config["secret"] not in (None, SECRET)
    assert config["protect"] == ["/api", "/admin"]
    assert config["access_ttl"] == 900


def test_check_config_file(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('{"users": {}}')
    config = tmp_path / "jwt.toml"
    config.write_text(f'[jwt_wsgi]\nsecret = "{SECRET}"\nprotect = ["/api"]\nusers_file = "users.json"\n'
                      f'store = "sqlite:///{tmp_path}/store.db"\n')
    result = ok(run("check", "--config", str(config), cwd=REPO_ROOT, secret=None))
    assert SECRET not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["protect"] == ["/api"]
    assert shown["users_file"] == str(users), "relative paths in a TOML file are relative to the file"


def test_check_does_not_create_the_sqlite_file(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    result = ok(run("check", cwd=tmp_path, JWT_WSGI_STORE="sqlite:///state/store.db"))
    assert not (tmp_path / "state" / "store.db").exists(), "check created the store file"
    assert "created on first use" in result.stderr


def test_check_warns_when_login_is_not_mounted(tmp_path: Path) -> None:
    # No users_file, no authenticate: the login endpoint is not there; check says so (exit 0).
    alone = ok(run("check", cwd=tmp_path))
    assert "login_path /auth/login is NOT mounted" in alone.stderr
    assert "configuration OK" in alone.stderr
    (tmp_path / "users.json").write_text('{"users": {}}')
    with_users = ok(run("check", cwd=tmp_path, JWT_WSGI_USERS_FILE="users.json"))
    assert "NOT mounted" not in with_users.stderr
    quiet = ok(run("check", cwd=tmp_path, JWT_WSGI_LOGIN_PATH="none"))
    assert "NOT mounted" not in quiet.stderr


def test_a_relative_users_file_error_names_the_absolute_path(tmp_path: Path) -> None:
    line = assert_user_error(run("check", cwd=tmp_path, JWT_WSGI_USERS_FILE="nobody.json"), "users_file")
    assert str(tmp_path / "nobody.json") in line


def test_toml_sqlite_store_is_relative_to_the_file(tmp_path: Path) -> None:
    # users_file and the store: both relative to the TOML file, wherever check runs from.
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "users.json").write_text('{"users": {}}')
    (conf / "jwt.toml").write_text(f'secret = "{SECRET}"\nusers_file = "users.json"\nstore = "sqlite:///state.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shown = json.loads(ok(run("check", "--config", str(conf / "jwt.toml"), cwd=elsewhere, secret=None)).stdout)
    assert shown["users_file"] == str(conf / "users.json")
    assert shown["store"] == f"sqlite:///{conf / 'state.db'}"


def test_a_json_list_in_a_variable_gets_the_comma_hint(tmp_path: Path) -> None:
    assert_user_error(run("check", cwd=tmp_path, JWT_WSGI_PROTECT='["/api", "/admin"]'), "comma-separated")


# -- keys -------------------------------------------------------------------------------------
def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256)."""
    required = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def test_keys_generate_es256(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    result = ok(run("keys", "generate", "--alg", "ES256", "--out", str(out), cwd=tmp_path, secret=None))
    private, public = out / "private.pem", out / "public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert not stat.S_IMODE(public.stat().st_mode) & 0o022
    key = serialization.load_pem_private_key(private.read_bytes(), password=None)
    assert key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) \
        == public.read_bytes()
    kid_lines = [line for line in result.stdout.splitlines() if line.startswith("kid:")]
    assert len(kid_lines) == 1
    kid = kid_lines[0].split(":", 1)[1].strip()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    assert kid == thumbprint(jwk)


def test_keys_jwks_rs256_publishes_no_private_member(tmp_path: Path) -> None:
    ok(run("keys", "generate", "--alg", "RS256", "--out", "keys", cwd=tmp_path, secret=None))
    config = tmp_path / "jwt.toml"
    config.write_text('algorithm = "RS256"\nprivate_key = "keys/private.pem"\n')
    result = ok(run("keys", "jwks", "--config", str(config), cwd=REPO_ROOT, secret=None))
    jwks = json.loads(result.stdout)
    assert len(jwks["keys"]) == 1
    (jwk,) = jwks["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS256"
    assert not PRIVATE_JWK_MEMBERS & set(jwk), f"private members published: {PRIVATE_JWK_MEMBERS & set(jwk)}"
    assert jwk["kid"] == thumbprint(jwk)

    # A token minted with that configuration verifies with the published key alone.
    token = ok(run("token", "--sub", "alice", "--config", str(config), cwd=REPO_ROOT, secret=None)).stdout.strip()
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    public = jwt.PyJWK(jwk)
    assert jwt.decode(token, public.key, algorithms=["RS256"])["sub"] == "alice"
    assert "status: valid" in ok(run("decode", token, "--config", str(config), cwd=REPO_ROOT, secret=None)).stdout


# -- a user's mistakes: one line, exit 2, no traceback ------------------------------------------------
GOOD = f'secret = "{SECRET}"\n'

MISTAKES = [
    # (argv, files to create, stdin, environment, a word the message must contain)
    pytest.param(["serve", "examples.plain_wsgi:app", "--bind", "nonsense:abc"], {}, None, {}, "--bind",
                 id="serve-bad-bind"),
    pytest.param(["demo", "--bind", "8000"], {}, None, {}, "--bind", id="demo-bad-bind"),
    pytest.param(["check", "--config", "c.toml"], {"c.toml": GOOD + 'protec = ["/api"]\n'}, None, {}, "protect",
                 id="check-unknown-option-in-toml"),
    pytest.param(["check", "--config", "c.toml"], {"c.toml": 'secret = "too-short"\n'}, None, {}, "secret",
                 id="check-short-secret"),
    pytest.param(["check", "--config", "c.toml"], {"c.toml": GOOD + 'protect = ["api"]\n'}, None, {}, "protect",
                 id="check-relative-protect-path"),
    pytest.param(["check", "--config", "c.toml"], {"c.toml": "secret = [\n"}, None, {}, "TOML",
                 id="check-invalid-toml"),
    pytest.param(["check", "--config", "missing.toml"], {}, None, {}, "missing.toml", id="check-missing-config"),
    pytest.param(["check", "--config", "c.toml"], {"c.toml": GOOD + 'access_ttl = "forever"\n'}, None, {},
                 "access_ttl", id="check-bad-duration"),
    pytest.param(["check", "--config", "c.toml"], {"c.toml": GOOD + 'algorithm = "HS257"\n'}, None, {}, "HS256",
                 id="check-unknown-algorithm-suggests"),
    pytest.param(["check"], {}, None, {"JWT_WSGI_PROTECTT": "/api"}, "JWT_WSGI_PROTECT", id="check-typo-in-variable"),
    pytest.param(["check"], {}, None, {"JWT_WSGI_SECRET": None}, "JWT_WSGI_SECRET", id="check-no-secret"),
    pytest.param(["check"], {}, None, {"JWT_WSGI_SECRET": "changeme" * 5}, "secret", id="check-weak-secret"),
    pytest.param(["check"], {}, None, {"JWT_WSGI_STORE": "ftp://example.org/x"}, "store", id="check-bad-store-url"),
    pytest.param(["check"], {}, None, {"JWT_WSGI_USERS_FILE": "nobody.json"}, "users_file",
                 id="check-missing-users-file"),
    pytest.param(["check"], {}, None, {"JWT_WSGI_STORE": "sqlite:////nonexistent-dir/x/store.db"}, "store",
                 id="check-store-directory-missing"),
    pytest.param(["token", "--sub", "alice", "--ttl", "forever"], {}, None, {}, "--ttl", id="token-bad-ttl"),
    pytest.param(["token", "--sub", "alice", "--ttl", "0"], {}, None, {}, "--ttl", id="token-zero-ttl"),
    pytest.param(["token", "--sub", "alice", "--claim", "scope"], {}, None, {}, "--claim", id="token-claim-no-equals"),
    pytest.param(["token", "--sub", ""], {}, None, {}, "sub", id="token-empty-sub"),
    pytest.param(["decode", "not-a-jwt"], {}, None, {}, "JWT", id="decode-not-a-jwt"),
    pytest.param(["users", "add", "bob", "--users-file", "u.json", "--password-stdin"], {}, "short\n", {},
                 "8 characters", id="users-add-short-password"),
    pytest.param(["users", "add", "bad name", "--users-file", "u.json", "--password-stdin"], {}, "long-enough-pw\n",
                 {}, "user name", id="users-add-bad-name"),
    pytest.param(["users", "add", "bob", "--users-file", "no/such/dir/u.json", "--password-stdin"], {},
                 "long-enough-pw\n", {}, "u.json", id="users-add-missing-directory"),
    pytest.param(["users", "remove", "ghost", "--users-file", "u.json"], {"u.json": '{"users": {}}'}, None, {},
                 "ghost", id="users-remove-unknown"),
    pytest.param(["users", "list", "--users-file", "u.json"], {"u.json": "{"}, None, {}, "u.json",
                 id="users-list-broken-json"),
    pytest.param(["users", "list", "--users-file", "u.json"], {"u.json": '{"users": []}'}, None, {}, "u.json",
                 id="users-list-wrong-shape"),
    pytest.param(["keys", "generate", "--alg", "ES256", "--out", "k"], {"k/private.pem": "old"}, None, {}, "exists",
                 id="keys-generate-never-overwrites"),
    pytest.param(["keys", "generate", "--alg", "ES256", "--out", "afile"], {"afile": "x"}, None, {}, "afile",
                 id="keys-generate-out-is-a-file"),
    pytest.param(["keys", "jwks"], {}, None, {}, "secret", id="keys-jwks-with-hs256"),
    pytest.param(["serve", "no_such_module:app", "--workers", "1"], {}, None, {}, "no_such_module",
                 id="serve-unimportable-app"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--workers", "1", "--protect", "api"], {}, None, {},
                 "protect", id="serve-relative-protect"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--worker-class", "gevent"], {}, None, {}, "--worker-class",
                 id="serve-unknown-worker-class"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--threads", "0"], {}, None, {}, "--threads",
                 id="serve-zero-threads"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--threads", "many"], {}, None, {}, "--threads",
                 id="serve-threads-not-a-number"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--threads", "100000"], {}, None, {}, "--threads",
                 id="serve-too-many-threads"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--worker-class", "sync", "--threads", "4"], {}, None, {},
                 "--threads", id="serve-threads-with-sync-workers"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--timeout", "0"], {}, None, {}, "--timeout",
                 id="serve-zero-timeout"),
    pytest.param(["serve", "examples.plain_wsgi:app", "--timeout", "30s"], {}, None, {}, "--timeout",
                 id="serve-timeout-with-unit"),
]


@pytest.mark.parametrize(("argv", "files", "stdin", "env", "match"), MISTAKES)
def test_user_mistake_is_one_line_exit_2(
    tmp_path: Path, argv: list[str], files: dict[str, str], stdin: str | None, env: dict[str, str | None], match: str
) -> None:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    cwd = REPO_ROOT if argv[0] == "serve" else tmp_path
    env = dict(env)
    secret = env.pop("JWT_WSGI_SECRET", SECRET)
    result = run(*argv, cwd=cwd, stdin=stdin, secret=secret, **env)
    assert_user_error(result, match)
    assert SECRET not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["frobnicate"], id="unknown-command"),
        pytest.param(["token"], id="token-without-sub"),
        pytest.param(["keys", "generate", "--alg", "HS256", "--out", "k"], id="keys-generate-hmac-alg"),
        pytest.param(["serve", "examples.plain_wsgi:app", "--workers", "0"], id="serve-zero-workers"),
    ],
)
def test_argument_syntax_errors_exit_2_without_traceback(tmp_path: Path, argv: list[str]) -> None:
    # argparse's own errors: a usage line, then the error line; never a traceback.
    result = run(*argv, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("jwt-wsgi")
    assert "error:" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "k").exists()


def test_serve_help_shows_the_worker_options_and_their_defaults(tmp_path: Path) -> None:
    text = " ".join(ok(run("serve", "--help", cwd=tmp_path)).stdout.split())
    for option, default in (("--worker-class", "gthread"), ("--threads", "4"), ("--timeout", "30"),
                            ("--bind", "127.0.0.1:8000"), ("--workers", "2")):
        assert option in text
        after = text[text.rindex(option):]
        assert f"(default: {default})" in after[:400], f"{option} without its default in --help:\n{text}"


def test_check_is_quiet_about_the_secret_even_when_it_fails(tmp_path: Path) -> None:
    result = run("check", cwd=tmp_path, JWT_WSGI_PROTECT="api")
    assert_user_error(result, "protect")
    assert SECRET not in result.stdout + result.stderr
