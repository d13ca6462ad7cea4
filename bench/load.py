"""``python -m bench.load``: the operator's two-host Redis scenario, as a load run with an oracle.

Two "hosts" (two ``jwt-wsgi serve`` processes on their own loopback ports, ``--workers`` gunicorn
workers each) share one Redis store. Client processes send mixed traffic to both: valid tokens,
expired and forged ones (bad signature, ``alg: none``, another key), revocation through one host
checked on the other, refresh, refresh-token reuse (the family must then be refused on both hosts)
and logout. Every response is checked against what the client knows is right (the oracle).

Three phases: steady; Redis stalled (SIGSTOP, then SIGCONT); Redis failover (``--store
sentinel``: master, replica and sentinel, the master SIGKILLed) or, when the installed jwt_wsgi
does not accept ``redis+sentinel://`` URLs (or with ``--store redis``), a restart (redis-server
SIGKILLed and started again on its port, from its appendonly file). It prints, per phase: requests,
5xx, wrong decisions, p50/p99 latency; per worker: RSS at start and end. Exit status 1 when any
decision was wrong, 2 when the run itself could not be carried out.

What counts as wrong: a success where the oracle says refuse (a revoked, spent, expired or forged
token accepted), a refusal (4xx) where it says accept, a 200 naming another user, or a 500. A 503
is accepted for a request that needs the store if it overlapped an outage (from the fault until
the store answered again, plus a grace of ``--grace`` seconds); elsewhere it is counted as
unexpected, not as a wrong decision. A write that got a 503 (revoke, logout, refresh) may or may
not have reached Redis: that flow stops there, since nothing certain can be expected of it after.

Every process is started here and stopped by its PID (also on Ctrl-C), on random free ports, in a
private temporary directory.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import http.client
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SERVICE = "loadmaster"  # the sentinel's name for the monitored master
PASSWORD = "load-run-password"  # what authenticate() accepts for any user name (bench only)
GRACE = 2.0  # seconds after the store answers again during which a 503 is still expected
PHASES = ("steady", "stall", "failover")


# -- the application both hosts serve (imported by gunicorn: keep it light) ------------------------
def whoami(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The protected app: answers with ``REMOTE_USER``, so the client can check *who* was let in."""
    user = str(environ.get("REMOTE_USER", "")).encode("utf-8", "replace")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(user)))])
    return [user]


def authenticate(username: str, password: str) -> dict[str, str] | None:
    """The hosts' ``authenticate`` hook: any user name with :data:`PASSWORD` (no hash to wait for)."""
    return {"sub": username} if hmac.compare_digest(password.encode(), PASSWORD.encode()) else None


# -- what each kind of request must get ----------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    name: str
    expect: int  # the status the oracle wants
    accept: bool  # a success is expected (else a refusal)
    store: bool  # the decision needs the store (a 503 is fine during an outage)
    writes: bool = False  # it writes to the store (a 503 is fine while writes cannot be confirmed)


KINDS = [
    Kind("valid token", 200, True, True),
    Kind("expired token", 401, False, False),
    Kind("bad signature", 401, False, False),
    Kind("alg none", 401, False, False),
    Kind("other key", 401, False, False),
    Kind("revoked token", 401, False, True),
    Kind("login", 200, True, True, writes=True),  # counts the attempt
    Kind("refresh", 200, True, True, writes=True),
    Kind("refresh reused", 401, False, True, writes=True),  # revokes the family
    Kind("refresh, family revoked", 401, False, True),
    Kind("revoke", 200, True, True, writes=True),
    Kind("logout", 204, True, True, writes=True),
]
KIND = {k.name: i for i, k in enumerate(KINDS)}

# (t0, t1, kind index, host index, status, same user) per request; status 0: no answer at all.
Row = tuple[float, float, int, int, int, bool]


# -- the client ----------------------------------------------------------------------------------
class Connection:
    """One keep-alive ``http.client`` connection to a host, opened again when the server closed it
    or it sat idle long enough that gunicorn may be closing it (its keep-alive is 2 s)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.last = 0.0

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.conn is not None and time.monotonic() - self.last > 1.0:
            self.close()
        fresh = self.conn is None
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
            try:
                self.conn.request(method, path, body, headers)
                response = self.conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                # Only a GET is sent again, and only when a kept-alive connection failed: the
                # server may have closed it just then. A POST may have had its effect.
                if attempt == 0 and not fresh and method == "GET":
                    fresh = True
                    continue
                raise
            self.last = time.monotonic()
            if response.will_close:
                self.close()
            return response.status, data
        raise AssertionError("unreachable")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Client:
    """One client process: runs flows one after another until told to stop, and records every
    request with what the oracle expected of it."""

    def __init__(self, number: int, ports: list[int], secret: str, seed: int) -> None:
        import jwt

        from jwt_wsgi.tokens import time_ordered_id

        self._jwt, self._id = jwt, time_ordered_id
        self.number = number
        self.hosts = [Connection(port) for port in ports]
        self.secret = secret
        self.other_secret = secret[::-1] + "x"
        self.random = random.Random(seed)
        self.rows: list[Row] = []
        self.flows: dict[str, int] = {}
        self.stopped: dict[str, int] = {}  # flows that stopped at a refusal (a 503, say)
        self.broken: dict[str, int] = {}  # flows that stopped at an answer they could not read
        self.serial = 0

    # one request, recorded
    def send(self, kind: str, host: int, method: str, path: str, *, token: str | None = None,
             body: dict[str, Any] | None = None, user: str | None = None) -> tuple[int, bytes]:
        headers = {"Host": "127.0.0.1"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        elif method == "POST":
            data = b""
        t0 = time.monotonic()
        try:
            status, answer = self.hosts[host].request(method, path, data, headers)
        except (OSError, http.client.HTTPException):
            status, answer = 0, b""
        t1 = time.monotonic()
        same = not (status == 200 and user is not None and answer != user.encode())
        self.rows.append((t0, t1, KIND[kind], host, status, same))
        return status, answer

    def mint(self, sub: str, *, ttl: int = 1800, key: str | None = None) -> str:
        now = time.time()
        claims = {"sub": sub, "iat": int(now), "exp": int(now) + ttl, "jti": self._id(now), "type": "access"}
        return str(self._jwt.encode(claims, key or self.secret, algorithm="HS256"))

    def user(self) -> str:
        self.serial += 1
        return f"c{self.number}u{self.serial}"

    def hosts_ab(self) -> tuple[int, int]:
        a = self.random.randrange(2)
        return a, 1 - a

    # the flows
    def flow_valid(self) -> None:
        sub = self.user()
        token = self.mint(sub)
        for _ in range(3):
            self.send("valid token", self.random.randrange(2), "GET", "/api/me", token=token, user=sub)

    def flow_expired(self) -> None:
        sub = self.user()
        token = self.mint(sub, ttl=-self.random.randint(1, 3600))
        self.send("expired token", self.random.randrange(2), "GET", "/api/me", token=token)

    def flow_forged(self) -> None:
        sub = self.user()
        host = self.random.randrange(2)
        choice = self.random.randrange(3)
        if choice == 0:
            head, payload, signature = self.mint(sub).split(".")
            flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
            self.send("bad signature", host, "GET", "/api/me", token=f"{head}.{payload}.{flipped}")
        elif choice == 1:
            _, payload, _ = self.mint(sub).split(".")
            head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            self.send("alg none", host, "GET", "/api/me", token=f"{head}.{payload}.")
        else:
            self.send("other key", host, "GET", "/api/me", token=self.mint(sub, key=self.other_secret))

    def login(self, host: int, sub: str) -> tuple[str, str] | None:
        status, answer = self.send("login", host, "POST", "/auth/login", body={"username": sub, "password": PASSWORD})
        if status != 200:
            return None
        tokens = json.loads(answer)
        return tokens["access_token"], tokens["refresh_token"]

    def flow_revoke(self) -> bool:
        """Signed in on one host, revoked (RFC 7009) through one, refused on both."""
        a, b = self.hosts_ab()
        sub = self.user()
        tokens = self.login(a, sub)
        if tokens is None:
            return False
        access, _ = tokens
        self.send("valid token", b, "GET", "/api/me", token=access, user=sub)
        if self.send("revoke", a, "POST", "/auth/revoke", body={"token": access})[0] != 200:
            return False
        self.send("revoked token", b, "GET", "/api/me", token=access)
        self.send("revoked token", a, "GET", "/api/me", token=access)
        return True

    def flow_refresh(self) -> bool:
        """Refresh on one host; the spent refresh token presented again on the other revokes the
        whole family: the new access token and the new refresh token are refused on both."""
        a, b = self.hosts_ab()
        sub = self.user()
        tokens = self.login(a, sub)
        if tokens is None:
            return False
        access1, refresh1 = tokens
        status, answer = self.send("refresh", a, "POST", "/auth/refresh", body={"refresh_token": refresh1})
        if status != 200:
            return False
        fresh = json.loads(answer)
        access2, refresh2 = fresh["access_token"], fresh["refresh_token"]
        self.send("valid token", b, "GET", "/api/me", token=access2, user=sub)
        if self.send("refresh reused", b, "POST", "/auth/refresh", body={"refresh_token": refresh1})[0] not in (
                401, 200):
            return False  # a 503: the family may or may not be revoked
        self.send("revoked token", a, "GET", "/api/me", token=access2)
        self.send("revoked token", b, "GET", "/api/me", token=access2)
        self.send("refresh, family revoked", a, "POST", "/auth/refresh", body={"refresh_token": refresh2})
        self.send("revoked token", b, "GET", "/api/me", token=access1)
        return True

    def flow_logout(self) -> bool:
        """Log out on one host (access and refresh token); both are refused on the other."""
        a, b = self.hosts_ab()
        sub = self.user()
        tokens = self.login(b, sub)
        if tokens is None:
            return False
        access, refresh = tokens
        self.send("valid token", a, "GET", "/api/me", token=access, user=sub)
        if self.send("logout", a, "POST", "/auth/logout", token=access, body={"refresh_token": refresh})[0] != 204:
            return False
        self.send("revoked token", b, "GET", "/api/me", token=access)
        self.send("revoked token", a, "GET", "/api/me", token=access)
        self.send("refresh, family revoked", b, "POST", "/auth/refresh", body={"refresh_token": refresh})
        return True

    FLOWS: list[tuple[str, int]] = [("valid", 30), ("expired", 10), ("forged", 10), ("revoke", 15),
                                    ("refresh", 20), ("logout", 15)]

    def run(self, stop: Any) -> None:
        names = [name for name, _ in self.FLOWS]
        weights = [weight for _, weight in self.FLOWS]
        while not stop.is_set():
            name = self.random.choices(names, weights)[0]
            self.flows[name] = self.flows.get(name, 0) + 1
            try:
                completed = getattr(self, f"flow_{name}")()
            except (ValueError, KeyError, TypeError):  # a 200 whose body is not the token response
                self.broken[name] = self.broken.get(name, 0) + 1
                continue
            if completed is False:
                self.stopped[name] = self.stopped.get(name, 0) + 1
        for host in self.hosts:
            host.close()


def _client_main(number: int, ports: list[int], secret: str, seed: int, stop: Any, out: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent cleans up on Ctrl-C
    client = Client(number, ports, secret, seed)
    try:
        client.run(stop)
    finally:
        out.send((client.rows, client.flows, client.stopped, client.broken))
        out.close()


# -- processes ------------------------------------------------------------------------------------
_LIVE: list[Any] = []  # everything started here, stopped (by PID) on every way out


def _stop_all() -> None:
    for item in reversed(list(_LIVE)):
        with contextlib.suppress(Exception):
            item.stop()
    _LIVE.clear()


def _redis_executable() -> str:
    executable = shutil.which("redis-server")
    if executable is None and os.path.exists("/usr/bin/redis-server"):
        executable = "/usr/bin/redis-server"
    if executable is None:
        raise SetupError("redis-server is not installed (Debian package redis-server)")
    return executable


class SetupError(RuntimeError):
    """The run could not be set up (a server missing or not starting): exit status 2."""


class RedisProcess:
    """One ``redis-server`` (or sentinel) of this run's own, on a loopback port, in its own
    directory, with a config file it may rewrite (a sentinel does)."""

    def __init__(self, name: str, directory: Path, port: int, config: list[str], *, sentinel: bool = False) -> None:
        self.name = name
        self.directory = directory
        self.port = port
        self.config = config
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 15.0) -> None:
        conf = self.directory / ("sentinel.conf" if self.sentinel else "redis.conf")
        lines = [f"port {self.port}", "bind 127.0.0.1", "daemonize no", f"dir {self.directory}",
                 f"logfile {self.directory / 'redis.log'}", "save \"\"", *self.config]
        if not conf.exists():  # a restart keeps the file (a sentinel has rewritten it)
            conf.write_text("\n".join(lines) + "\n")
        command = [_redis_executable(), str(conf)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(command, cwd=self.directory, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        if self not in _LIVE:
            _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise SetupError(f"{self.name} did not start on port {self.port}: {tail}")
            time.sleep(0.02)

    def client(self, timeout: float = 1.0) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def answers(self) -> bool:
        import redis

        try:
            with contextlib.closing(self.client(0.5)) as c:
                return bool(c.ping())
        except redis.RedisError:
            return False

    def log_tail(self) -> str:
        try:
            return (self.directory / "redis.log").read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused and self.process is not None and self.process.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL, as a crash would (no shutdown, no last save)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            if self.paused:
                os.kill(process.pid, signal.SIGCONT)
                self.paused = False
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self in _LIVE:
            _LIVE.remove(self)


def _free_port() -> int:
    from bench.fixtures import free_port

    return free_port()


class Store:
    """The Redis the two hosts share: one server (``redis``), or master + replica + sentinel."""

    def __init__(self, directory: Path, sentinel: bool, down_after_ms: int) -> None:
        self.directory = directory
        self.sentinel = sentinel
        persistence = ["appendonly yes", "appendfsync everysec"]
        self.master = RedisProcess("redis 1" if sentinel else "redis-server", directory / "master",
                                   _free_port(), persistence)
        self.replica: RedisProcess | None = None
        self.watcher: RedisProcess | None = None
        if sentinel:
            self.replica = RedisProcess("redis 2", directory / "replica", _free_port(),
                                        [*persistence, f"replicaof 127.0.0.1 {self.master.port}"])
            self.watcher = RedisProcess("redis sentinel", directory / "sentinel", _free_port(), [
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1",
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
                f"sentinel failover-timeout {SERVICE} 10000",
                f"sentinel parallel-syncs {SERVICE} 1",
            ], sentinel=True)

    @property
    def url(self) -> str:
        if self.watcher is not None:
            return f"redis+sentinel://127.0.0.1:{self.watcher.port}/{SERVICE}/0"
        return f"redis://127.0.0.1:{self.master.port}/0"

    def start(self) -> None:
        self.master.start()
        if self.replica is None or self.watcher is None:
            return
        self.replica.start()
        _wait(lambda: _confirms(self.master), 15, "the replica did not sync with the master")
        self.watcher.start()

        def sentinel_knows_replica() -> bool:
            with contextlib.closing(self.watcher.client()) as c:  # type: ignore[union-attr]
                return bool(c.execute_command("SENTINEL", "REPLICAS", SERVICE))
        _wait(sentinel_knows_replica, 20, "the sentinel did not discover the replica")

    def sentinel_set(self, option: str, value: str) -> None:
        assert self.watcher is not None
        with contextlib.closing(self.watcher.client()) as c:
            c.execute_command("SENTINEL", "SET", SERVICE, option, value)

    def current_master(self) -> RedisProcess:
        if self.watcher is None or self.replica is None:
            return self.master
        with contextlib.closing(self.watcher.client()) as c:
            _, port = c.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return self.replica if int(port) == self.replica.port else self.master

    def epoch_keys(self) -> dict[str, str]:
        """Every jwt_wsgi state marker (``...epoch``) on the current master, by key."""
        with contextlib.closing(self.current_master().client()) as c:
            return {k.decode(): c.get(k).decode() for k in c.scan_iter(match="*epoch", count=1000)}

    def stop(self) -> None:
        for server in (self.watcher, self.replica, self.master):
            if server is not None:
                server.stop()


def _info(server: RedisProcess | None, section: str) -> dict[str, Any]:
    import redis

    assert server is not None
    try:
        with contextlib.closing(server.client()) as c:
            return dict(c.info(section))
    except redis.RedisError:
        return {}


def _confirms(master: RedisProcess) -> bool:
    """A replica has acknowledged everything ``master`` holds (``WAIT 1``): writes can be confirmed."""
    with contextlib.closing(master.client()) as c:
        return int(c.execute_command("WAIT", 1, 200)) >= 1


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until true; the time it took. SetupError after ``timeout`` seconds."""
    import redis

    started = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - started
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() - started > timeout:
            raise SetupError(what)
        time.sleep(0.05)


def sentinel_supported() -> tuple[bool, str]:
    """Whether the installed jwt_wsgi accepts a ``redis+sentinel://`` store URL (and why not)."""
    from jwt_wsgi.stores import open_store

    try:
        open_store(f"redis+sentinel://127.0.0.1:1/{SERVICE}/0")
    except Exception as exc:  # ConfigurationError (a ValueError) today; anything means "no"
        return False, str(exc).splitlines()[0][:160]
    return True, ""


def _host_class() -> type:
    from bench.http import Server, _answers, children

    class Host(Server):  # type: ignore[misc]
        """``jwt-wsgi serve bench.load:whoami`` on a free port: one "host" of the scenario."""

        store_url: str = ""

        def start(self, timeout: float = 60.0) -> None:
            from bench.fixtures import free_port

            self.port = free_port()
            command = [sys.executable, "-m", "jwt_wsgi", "serve", "bench.load:whoami",
                       "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
                       "--threads", str(self.threads), "--protect", "/api", "--store", self.store_url]
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen(command, env=self.env, cwd=REPO, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
            _LIVE.append(self)
            deadline = time.monotonic() + timeout
            while True:
                if self.process.poll() is not None:
                    raise SetupError(f"{self.name} exited: {self.log_tail()}")
                self._remember_workers()
                if len(children(self.process.pid)) >= self.workers and _answers(self.port):
                    return
                if time.monotonic() > deadline:
                    raise SetupError(f"{self.name} did not come up: {self.log_tail()}")
                time.sleep(0.1)

        def stop(self) -> None:
            super().stop()
            if self in _LIVE:
                _LIVE.remove(self)

        def workers_now(self) -> list[int]:
            assert self.process is not None
            self._remember_workers()
            return sorted(children(self.process.pid))

    return Host


def rss_kb(pid: int) -> int | None:
    """VmRSS of a process, in kB (``None`` once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# -- the run --------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    start: float = 0.0
    end: float = 0.0
    outage: tuple[float, float] | None = None  # when a 503 is expected of requests needing the store
    write_outage: tuple[float, float] | None = None  # when a 503 is expected of requests writing to it
    notes: list[str] = field(default_factory=list)


def _sleep_until(deadline: float) -> None:
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))


def run_phases(args: argparse.Namespace, store: Store, failover: bool) -> list[Phase]:
    """Steady, stall, failover (or restart), each ``args.phase`` seconds or as long as the fault
    takes to recover plus ``args.grace``."""
    phases = []
    steady = Phase("steady", time.monotonic())
    _sleep_until(steady.start + args.phase)
    steady.end = time.monotonic()
    phases.append(steady)

    stall = Phase("stall", steady.end)
    lead = min(1.0, args.phase / 4)  # steady traffic before each fault
    length = args.stall
    _sleep_until(stall.start + lead)
    server = store.current_master()
    began = time.monotonic()  # before the signal: a request may fail the instant it lands
    server.pause()
    _sleep_until(began + length)
    server.resume()
    resumed = time.monotonic()
    stall.outage = (began, resumed + args.grace)
    stall.notes.append(f"the master ({server.name}) SIGSTOPped for {resumed - began:.1f} s, then SIGCONT")
    _sleep_until(max(stall.start + args.phase, resumed + args.grace))
    stall.end = time.monotonic()
    phases.append(stall)

    last = Phase("failover" if failover else "restart", stall.end)
    _sleep_until(last.start + lead)
    old = store.current_master()
    if failover:
        store.sentinel_set("down-after-milliseconds", str(args.down_after_ms))
        _sleep_until(time.monotonic() + 0.2)
        began = time.monotonic()
        old.kill()
        new = store.replica if old is store.master else store.master
        assert new is not None

        def promoted() -> bool:
            return store.current_master() is new and _info(new, "replication").get("role") == "master"
        took = _wait(promoted, 60, "the sentinel did not promote the replica within 60 s")
        last.outage = (began, began + took + args.grace)
        # As a supervisor would: the dead master is started again (after --down seconds), and the
        # sentinel makes it a replica of the new master. Until a replica is back, a store that
        # waits for a replica to confirm its writes cannot confirm any.
        _sleep_until(max(began + args.down, time.monotonic()))
        old.start()

        def rejoined() -> bool:
            return _info(old, "replication").get("role") == "slave" and _confirms(new)
        _wait(rejoined, 60, f"{old.name} did not rejoin as a replica within 60 s")
        back = time.monotonic()
        last.write_outage = (began, back + args.grace)
        last.notes.append(f"the master ({old.name}) SIGKILLed; the sentinel promoted {new.name} {took:.1f} s later; "
                          f"{old.name}, started again {args.down:g} s after the kill, was a synced replica "
                          f"{back - began:.1f} s after it")
    else:
        began = time.monotonic()
        old.kill()
        _sleep_until(began + args.down)
        old.start()
        back = time.monotonic()
        last.outage = (began, back + args.grace)
        last.notes.append(f"redis-server SIGKILLed, started again {back - began:.1f} s later on the same port "
                          "from its appendonly file")
    _sleep_until(max(last.start + args.phase, back + args.grace + lead))
    last.end = time.monotonic()
    phases.append(last)
    return phases


def _overlaps(t0: float, t1: float, window: tuple[float, float] | None) -> bool:
    return window is not None and t0 < window[1] and t1 > window[0]


def verdict(row: Row, phase: Phase) -> str:
    """ok | outage (an accepted 503) | wrong | unexpected | no answer."""
    t0, t1, kind_index, _, status, same = row
    kind = KINDS[kind_index]
    if status == 0:
        return "no answer"
    if status == kind.expect:
        return "ok" if same else "wrong"
    if status == 503 and (kind.store and _overlaps(t0, t1, phase.outage)
                          or kind.writes and _overlaps(t0, t1, phase.write_outage)):
        return "outage"
    if status >= 500 and status != 503:
        return "wrong"  # an unexpected failure inside the middleware
    if kind.accept and 400 <= status < 500:
        return "wrong"  # refused what must be accepted
    if not kind.accept and 200 <= status < 300:
        return "wrong"  # accepted what must be refused
    return "unexpected"


def summarise(rows: list[Row], phases: list[Phase]) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Per phase: counts and latency; and the first 50 wrong decisions and unexpected answers
    (times in seconds from the start of the first phase; each phase lists its outage windows)."""
    from bench.runner import percentile  # here: gunicorn imports this module for its app

    out: list[dict[str, Any]] = []
    listed: dict[str, list[dict[str, Any]]] = {"wrong": [], "unexpected": []}
    for phase in phases:
        mine = [r for r in rows if phase.start <= r[0] < phase.end]
        counts: dict[str, int] = {}
        by_kind: dict[str, dict[str, int]] = {}
        for r in mine:
            v = verdict(r, phase)
            counts[v] = counts.get(v, 0) + 1
            k = by_kind.setdefault(KINDS[r[2]].name, {})
            k[v] = k.get(v, 0) + 1
            if v in listed and len(listed[v]) < 50:
                listed[v].append({"phase": phase.name, "kind": KINDS[r[2]].name, "host": "AB"[r[3]],
                                  "status": r[4], "same_user": r[5], "at_s": round(r[0] - phases[0].start, 3),
                                  "took_s": round(r[1] - r[0], 3)})
        latencies = sorted(r[1] - r[0] for r in mine if r[4] != 0)
        seconds = phase.end - phase.start
        out.append({
            "phase": phase.name,
            "seconds": round(seconds, 1),
            "requests": len(mine),
            "rps": len(mine) / seconds if seconds > 0 else math.nan,
            "5xx": sum(1 for r in mine if r[4] >= 500),
            "503_in_outage": counts.get("outage", 0),
            "wrong": counts.get("wrong", 0),
            "unexpected": counts.get("unexpected", 0),
            "no_answer": counts.get("no answer", 0),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "max_ms": latencies[-1] * 1000 if latencies else math.nan,
            "outage_s": None if phase.outage is None else round(phase.outage[1] - phase.outage[0], 1),
            "windows_s": {name: [round(w[0] - phases[0].start, 3), round(w[1] - phases[0].start, 3)]
                          for name, w in (("span", (phase.start, phase.end)), ("outage", phase.outage),
                                          ("write_outage", phase.write_outage)) if w is not None},
            "write_outage_s": (None if phase.write_outage is None
                               else round(phase.write_outage[1] - phase.write_outage[0], 1)),
            "notes": phase.notes,
            "by_kind": by_kind,
        })
    return out, listed


def render(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"jwt_wsgi bench.load -- 2 hosts x {s['workers']} gunicorn workers (jwt-wsgi serve, gthread x "
        f"{s['threads']}), {s['clients']} client processes, store {s['store_url_shape']}; {results['duration_s']} s",
        f"failover phase: {results['variant']}",
    ]
    from bench.report import machine_line

    lines.append(f"machine: {machine_line(results['machine'])}")
    lines.append("")
    lines.append(f"{'phase':<9} {'secs':>5} {'requests':>9} {'req/s':>7} {'5xx':>6} {'503 ok':>7} {'wrong':>6} "
                 f"{'unexp':>6} {'no ans':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for p in results["phases"]:
        lines.append(f"{p['phase']:<9} {p['seconds']:>5.1f} {p['requests']:>9} {p['rps']:>7.0f} {p['5xx']:>6} "
                     f"{p['503_in_outage']:>7} {p['wrong']:>6} {p['unexpected']:>6} {p['no_answer']:>6} "
                     f"{p['p50_ms']:>8.1f} {p['p99_ms']:>8.1f} {p['max_ms']:>8.0f}")
    total = results["total"]
    lines.append(f"{'total':<9} {'':>5} {total['requests']:>9} {'':>7} {total['5xx']:>6} {total['503_in_outage']:>7} "
                 f"{total['wrong']:>6} {total['unexpected']:>6} {total['no_answer']:>6}")
    for p in results["phases"]:
        for note in p["notes"]:
            accepted = f"; 503 accepted for {p['outage_s']} s" if p["outage_s"] else ""
            if p["write_outage_s"]:
                accepted += f" (for writes: {p['write_outage_s']} s)"
            lines.append(f"  {p['phase']}: {note}{accepted}")
    lines.append("")
    lines.append(f"{'host':<5} {'worker pid':>10} {'RSS start MB':>13} {'RSS end MB':>11} {'growth MB':>10}")
    for w in results["workers"]:
        end = "gone" if w["end_kb"] is None else f"{w['end_kb'] / 1024:.1f}"
        growth = "" if w["end_kb"] is None else f"{(w['end_kb'] - w['start_kb']) / 1024:+.1f}"
        lines.append(f"{w['host']:<5} {w['pid']:>10} {w['start_kb'] / 1024:>13.1f} {end:>11} {growth:>10}")
    for host, pids in results["replaced_workers"].items():
        if pids:
            lines.append(f"host {host}: workers started during the run (a worker was replaced): {pids}")
    lines.append("")
    flows = results["flows"]
    lines.append("flows: " + ", ".join(f"{name} {count}" + (f" ({results['flows_cut'][name]} cut short)"
                                                              if results["flows_cut"].get(name) else "")
                                     for name, count in sorted(flows.items())))
    if results["flows_broken"]:
        lines.append(f"flows stopped at an answer the client could not read: {results['flows_broken']}")
    lines.append(f"store state marker kept through every phase: {'yes' if results['epoch_kept'] else 'NO'}")
    if results["wrong_decisions"]:
        lines.append("wrong decisions (first ones):")
        for w in results["wrong_decisions"][:20]:
            lines.append(f"  {w}")
    lines.append(f"wrong decisions: {total['wrong']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load over the three phases "
                        "(default %(default)g; a phase lasts longer if its fault needs it)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers per host (default %(default)s)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (default %(default)s)")
    parser.add_argument("--clients", type=int, default=6, help="client processes (default %(default)s)")
    parser.add_argument("--store", choices=("redis", "sentinel"), default="sentinel",
                        help="sentinel: master + replica + sentinel, the failover phase kills the master "
                             "(falls back to redis and a restart when jwt_wsgi does not accept redis+sentinel://); "
                             "redis: one server, restarted in the last phase (default %(default)s)")
    parser.add_argument("--stall", type=float, default=8.0, help="seconds Redis stays SIGSTOPped (default %(default)g)")
    parser.add_argument("--down", type=float, default=3.0,
                        help="restart variant: seconds Redis stays down (default %(default)g)")
    parser.add_argument("--down-after-ms", type=int, default=1000,
                        help="sentinel down-after-milliseconds for the failover phase (default %(default)s)")
    parser.add_argument("--grace", type=float, default=GRACE,
                        help="seconds after recovery during which a 503 is still expected (default %(default)g)")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the clients")
    parser.add_argument("--json", type=Path, default=RESULTS / "load-latest.json")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.clients < 1 or args.duration <= 0:
        parser.error("--workers, --clients and --duration must be positive")
    args.phase = args.duration / 3

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, f: sys.exit(128 + s))
    try:
        return _run(args, sys.argv[1:] if argv is None else argv)
    except SetupError as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench.load: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    finally:
        _stop_all()


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from bench.fixtures import machine
    from bench.report import write_json

    started = time.time()
    failover, why = False, ""
    if args.store == "sentinel":
        failover, why = sentinel_supported()
    variant = ("sentinel failover: master SIGKILLed, replica promoted, the old master back as a replica"
               if failover else
               "restart (redis-server SIGKILLed and started again on its port, appendonly yes)"
               + (f"; sentinel not used: the installed jwt_wsgi refuses redis+sentinel:// ({why})"
                  if args.store == "sentinel" else ""))
    print(f"bench.load: failover phase variant: {variant}", file=sys.stderr, flush=True)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="jwt-wsgi-load-") as tmp:
        try:
            m = _measure(args, Path(tmp), failover, seed)
        finally:
            _stop_all()  # before the directory they write in goes

    rows = [row for part in m["collected"] for row in part[0]]
    flows: dict[str, int] = {}
    cut: dict[str, int] = {}
    broken: dict[str, int] = {}
    for _, *counts in m["collected"]:
        for total_, part in zip((flows, cut, broken), counts, strict=True):
            for name, n in part.items():
                total_[name] = total_.get(name, 0) + n
    per_phase, listed = summarise(rows, m["phases"])
    total = {key: sum(p[key] for p in per_phase)
             for key in ("requests", "5xx", "503_in_outage", "wrong", "unexpected", "no_answer")}
    results = {
        "schema": 1,
        "kind": "bench.load",
        "argv": ["python -m bench.load", *argv],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "settings": {"workers": args.workers, "threads": args.threads, "clients": args.clients,
                     "duration": args.duration, "store": args.store, "stall_s": args.stall, "down_s": args.down,
                     "grace_s": args.grace, "seed": seed,
                     "store_url_shape": f"redis+sentinel://127.0.0.1:PORT/{SERVICE}/0" if failover
                     else "redis://127.0.0.1:PORT/0"},
        "variant": variant,
        "variant_id": "failover" if failover else "restart",
        "machine": machine(),
        "phases": per_phase,
        "total": total,
        "wrong_decisions": listed["wrong"],
        "unexpected_answers": listed["unexpected"],
        "workers": [{"host": host, "pid": pid, "start_kb": kb, "end_kb": m["rss_end"][(host, pid)]}
                    for (host, pid), kb in m["rss_start"].items() if kb is not None],
        "replaced_workers": m["replaced"],
        "flows": flows,
        "flows_cut": cut,
        "flows_broken": broken,
        "epoch_kept": bool(m["epochs_before"]) and m["epochs_before"] == m["epochs_after"],
        "epochs": {"before": m["epochs_before"], "after": m["epochs_after"]},
    }
    if total["wrong"] or total["unexpected"]:
        results["host_log_tails"] = m["logs"]
    print(render(results))
    write_json(results, args.json)
    print(f"\nwrote {args.json.relative_to(REPO) if args.json.is_relative_to(REPO) else args.json}")
    return 1 if total["wrong"] else 0


def _measure(args: argparse.Namespace, workdir: Path, failover: bool, seed: int) -> dict[str, Any]:
    """Start the store and the hosts, run the clients through the phases; what was measured."""
    from bench.fixtures import new_secret

    secret = new_secret()
    # A long down-after while stalling (a stall must not turn into a failover); short for the kill.
    store = Store(workdir / "redis", failover, int((args.stall + 30) * 1000))
    _LIVE.append(store)
    store.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JWT_WSGI_")}
    env.update(JWT_WSGI_SECRET=secret, JWT_WSGI_AUTHENTICATE="bench.load:authenticate",
               JWT_WSGI_REFRESH_REUSE_INTERVAL="0",  # a spent refresh token presented again is reuse at once
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
               PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(workdir))
    host_class = _host_class()
    hosts = []
    for name in ("A", "B"):
        host = host_class(name, "bench.load:whoami", "gthread", args.workers, args.threads, env,
                          workdir / f"host-{name}.log")
        host.store_url = store.url
        host.start()
        hosts.append(host)
    where = f"sentinel :{store.watcher.port}" if store.watcher else f"redis :{store.master.port}"
    print(f"bench.load: hosts A :{hosts[0].port} and B :{hosts[1].port} up, {args.workers} workers each; "
          f"store {where}", file=sys.stderr, flush=True)
    epochs_before = store.epoch_keys()
    _check_hosts([h.port for h in hosts], secret)

    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    pipes, procs = [], []
    for number in range(args.clients):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_client_main, daemon=True,
                           args=(number, [h.port for h in hosts], secret, seed + number, stop, send))
        proc.start()
        send.close()
        pipes.append(recv)
        procs.append(proc)
    try:
        time.sleep(min(2.0, args.phase / 3))  # warm-up: every worker has served before RSS is read
        rss_start = {(h.name, pid): rss_kb(pid) for h in hosts for pid in h.workers_now()}
        first_workers = {h.name: set(h.workers_now()) for h in hosts}
        phases = run_phases(args, store, failover)
        stop.set()
        collected = [pipe.recv() for pipe in pipes]
    except BaseException:
        for proc in procs:  # interrupted: their results are not wanted
            proc.terminate()
        raise
    finally:
        stop.set()
        for proc in procs:
            proc.join(20)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    return {
        "collected": collected,
        "phases": phases,
        "rss_start": rss_start,
        "rss_end": {key: rss_kb(key[1]) for key in rss_start},
        "replaced": {h.name: sorted(set(h.workers_now()) - first_workers[h.name]) for h in hosts},
        "epochs_before": epochs_before,
        "epochs_after": store.epoch_keys(),
        "logs": {h.name: h.log_tail() for h in hosts},
    }


def _check_hosts(ports: list[int], secret: str) -> None:
    """Before any load: each host refuses no token, accepts a login's token, and answers its user."""
    client = Client(0, ports, secret, 0)
    for host in (0, 1):
        status, _ = client.send("revoked token", host, "GET", "/api/me")
        tokens = client.login(host, "check")
        if status != 401 or tokens is None:
            raise SetupError(f"host {'AB'[host]} does not behave: {status} without a token, login "
                             f"{'ok' if tokens else 'refused'}")
        status, answer = client.send("valid token", 1 - host, "GET", "/api/me", token=tokens[0], user="check")
        if (status, answer) != (200, b"check"):
            raise SetupError(f"host {'AB'[1 - host]} refused a token host {'AB'[host]} issued: {status}")
    for conn in client.hosts:
        conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
