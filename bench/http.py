"""``python -m bench.http``: gunicorn (sync and gthread, 2 workers) serving the bare app and the same
app behind JWTMiddleware on loopback, in paired alternating runs, with a Python load generator.

Reports requests/s, p50/p99 latency and the servers' CPU time per request (utime+stime of the
gunicorn master and its workers from ``/proc/<pid>/stat``), and the wrapped/bare ratios with
PASS/MISS against issue 7's targets. Every server is started here and stopped by its PID.
"""

from __future__ import annotations

import argparse
import array
import atexit
import math
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fixtures import PATH, REPO, KeyPair, free_port, machine, new_secret
from bench.report import machine_line, write_json
from bench.runner import percentile

CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULTS = REPO / "bench" / "results"
TARGETS = [
    ("rps", "requests/s, wrapped / bare", ">=", 0.95),
    ("cpu_per_request", "server CPU per request, wrapped / bare", "<=", 1.05),
    ("p99", "p99 latency, wrapped / bare", "<=", 1.2),
]

_LIVE: list[Server] = []  # stopped on any exit path


# -- /proc ------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 is field 3, ``state``)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return data.rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime (clock ticks) of these processes, all threads included."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total


# -- servers ----------------------------------------------------------------------------------
@dataclass
class Server:
    name: str  # bare | wrapped
    app: str
    worker_class: str
    workers: int
    threads: int
    env: dict[str, str]
    log: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    workers_seen: dict[int, str] = field(default_factory=dict)  # pid -> start time (field 22)

    def start(self, timeout: float = 30.0) -> None:
        self.port = free_port()
        command = [
            sys.executable, "-m", "gunicorn",
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--worker-class", self.worker_class,
            "--threads", str(self.threads),
            "--keep-alive", "5",
            "--graceful-timeout", "5",
            "--worker-tmp-dir", "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
            "--log-level", "warning",
            "--error-logfile", str(self.log),
            "--chdir", str(REPO),
            self.app,
        ]
        self.process = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn {self.name} exited: {self.log_tail()}")
            self._remember_workers()
            if len(self.workers_seen) >= self.workers and _answers(self.port):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn {self.name} did not come up: {self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return "(no log)"

    def _remember_workers(self) -> None:
        assert self.process is not None
        for pid in children(self.process.pid):
            fields = _stat(pid)
            if fields is not None:
                self.workers_seen.setdefault(pid, fields[19])

    def pids(self) -> list[int]:
        assert self.process is not None
        self._remember_workers()
        return [self.process.pid, *children(self.process.pid)]

    def stop(self) -> None:
        """SIGTERM the master (it stops its workers), SIGKILL after a grace period; then make sure
        no worker it started outlives it (each by its own PID)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            self.process = process
            self._remember_workers()
            self.process = None
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        deadline = time.monotonic() + 5
        for pid, started in self.workers_seen.items():
            while _same_process(pid, started) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _same_process(pid, started):
                os.kill(pid, signal.SIGKILL)
        if self in _LIVE:
            _LIVE.remove(self)


def _same_process(pid: int, started: str) -> bool:
    """The worker we recorded is still running: same PID *and* same start time (a PID reused by
    someone else's process after ours exited is never touched), and not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def _stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _answers(port: int) -> bool:
    try:
        status, _ = request_once(port, b"GET /public/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    except OSError:
        return False
    return status > 0


# -- the client --------------------------------------------------------------------------------
def _read_response(sock: socket.socket) -> tuple[int, bool]:
    """(status, server closes the connection) of one response; the body is read and dropped."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        buf += chunk
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            break
    lines = buf[:end].split(b"\r\n")
    status = int(lines[0].split(None, 2)[1])
    length, close = 0, lines[0].startswith(b"HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            close = value.strip().lower() == b"close"
    have = len(buf) - end - 4
    while have < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed mid-body")
        have += len(chunk)
    return status, close


def request_once(port: int, request: bytes) -> tuple[int, bool]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        return _read_response(sock)


def _client(port: int, request: bytes, start: float, end: float, out: Any) -> None:
    """One closed-loop connection (reconnecting whenever the server closes it, as gunicorn's sync
    worker does after every response). Latency includes any connect."""
    latencies = array.array("d")
    ok = errors = 0
    sock: socket.socket | None = None
    monotonic = time.monotonic
    while monotonic() < start:
        time.sleep(0.0005)
    cpu0 = time.process_time()
    while True:
        t0 = monotonic()
        if t0 >= end:
            break
        try:
            if sock is None:
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request)
            status, close = _read_response(sock)
        except OSError:
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
            continue
        t1 = monotonic()
        if status == 200:
            ok += 1
            latencies.append(t1 - t0)
        else:
            errors += 1
        if close:
            sock.close()
            sock = None
    if sock is not None:
        sock.close()
    out.send((ok, errors, latencies.tobytes(), time.process_time() - cpu0))
    out.close()


def load(port: int, request: bytes, connections: int, duration: float, server: Server | None = None) -> dict[str, Any]:
    """Run ``connections`` client processes for ``duration`` seconds; measure the server's CPU
    over the same window when ``server`` is given."""
    ctx = multiprocessing.get_context("fork")
    start = time.monotonic() + 0.2
    end = start + duration
    pipes, procs = [], []
    try:
        for _ in range(connections):
            recv, send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_client, args=(port, request, start, end, send), daemon=True)
            proc.start()
            send.close()
            pipes.append(recv)
            procs.append(proc)
        pids: list[int] = []
        ticks0 = 0
        if server is not None:
            pids = server.pids()
            while time.monotonic() < start:
                time.sleep(0.0005)
            ticks0 = cpu_ticks(pids)
        results = [pipe.recv() for pipe in pipes]  # each client sends after ``end``
        ticks1 = cpu_ticks(pids) if server is not None else 0
        if server is not None:
            lost = set(pids) - set(server.pids())
            if lost:
                print(f"warning: gunicorn {server.name} lost processes {sorted(lost)} during a run", file=sys.stderr)
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    latencies = sorted(x for r in results for x in array.array("d", r[2]))
    client_cpu = sum(r[3] for r in results)
    window = end - start  # clients start and stop on these instants; the CPU is read on them too
    out: dict[str, Any] = {
        "requests": ok,
        "errors": errors,
        "rps": ok / window,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "client_cpu_us_per_request": client_cpu / ok * 1e6 if ok else None,
    }
    if server is not None:
        out["server_cpu_s"] = (ticks1 - ticks0) / CLK_TCK
        out["server_cpu_us_per_request"] = (ticks1 - ticks0) / CLK_TCK / ok * 1e6 if ok else None
    return out




# -- the run ----------------------------------------------------------------------------------
def _http_request(port: int, token: str | None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode("ascii")


def run_worker_class(worker_class: str, args: argparse.Namespace, secret: str, token: str, store: str,
                     workdir: Path) -> dict[str, Any]:
    env = dict(os.environ, BENCH_JWT_SECRET=secret, BENCH_JWT_STORE=store, PYTHONDONTWRITEBYTECODE="1")
    threads = args.threads if worker_class == "gthread" else 1
    servers = {
        name: Server(name, f"bench.serve_app:{name}", worker_class, args.workers, threads, env,
                     workdir / f"gunicorn-{worker_class}-{name}.log")
        for name in ("bare", "wrapped")
    }
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "wrapped": []}
    try:
        for server in servers.values():
            server.start()
        # The wrapped server must really authenticate: 401 without the token, 200 with it.
        wrapped, bare = servers["wrapped"], servers["bare"]
        checks = {
            "bare with token": request_once(bare.port, _http_request(bare.port, token) )[0],
            "wrapped with token": request_once(wrapped.port, _http_request(wrapped.port, token))[0],
            "wrapped without token": request_once(wrapped.port, _http_request(wrapped.port, None))[0],
        }
        if checks != {"bare with token": 200, "wrapped with token": 200, "wrapped without token": 401}:
            raise RuntimeError(f"servers do not behave as expected: {checks}")
        for pair in range(args.pairs):
            order = ("bare", "wrapped") if pair % 2 == 0 else ("wrapped", "bare")
            for name in order:
                server = servers[name]
                request = _http_request(server.port, token)
                load(server.port, request, args.connections, args.warmup)
                result = load(server.port, request, args.connections, args.duration, server)
                if result["errors"]:
                    print(f"warning: {worker_class}/{name}: {result['errors']} failed requests", file=sys.stderr)
                runs[name].append(result)
            print(f"  {worker_class}: pair {pair + 1}/{args.pairs} done", file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return summarise_class(worker_class, threads, runs)


def summarise_class(worker_class: str, threads: int, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    def med(name: str, key: str) -> float:
        values = [r[key] for r in runs[name] if r.get(key) is not None]
        return statistics.median(values) if values else math.nan

    def ratio(key: str) -> float:
        values = [w[key] / b[key] for w, b in zip(runs["wrapped"], runs["bare"], strict=True)
                  if w.get(key) is not None and b.get(key)]
        return statistics.median(values) if values else math.nan

    keys = ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_request", "client_cpu_us_per_request")
    summary = {name: {key: med(name, key) for key in keys} for name in ("bare", "wrapped")}
    ratios = {"rps": ratio("rps"), "p50": ratio("p50_ms"), "p99": ratio("p99_ms"),
              "cpu_per_request": ratio("server_cpu_us_per_request")}
    targets = []
    for tid, what, op, limit in TARGETS:
        value = ratios[tid]
        ok = value >= limit if op == ">=" else value <= limit
        result = "n/a" if math.isnan(value) else ("PASS" if ok else "MISS")
        targets.append({"id": tid, "what": what, "value": value, "op": op, "limit": limit, "result": result})
    return {"worker_class": worker_class, "threads": threads, "runs": runs, "median": summary,
            "ratios": ratios, "targets": targets}


def render(results: dict[str, Any]) -> str:
    a = results["settings"]
    lines = [
        f"jwt_wsgi bench.http -- {'QUICK (smoke run; not for reporting)' if a['quick'] else 'full'}: gunicorn "
        f"{a['workers']} workers, {a['connections']} keep-alive connections (Python closed-loop clients), "
        f"{a['pairs']} paired alternating runs x {a['duration']:g} s, repeated token, store {a['store']}; "
        f"{results['duration_s']} s",
        f"machine: {machine_line(results['machine'])}",
    ]
    for c in results["classes"]:
        lines.append("")
        title = c["worker_class"] + (f" ({c['threads']} threads)" if c["worker_class"] == "gthread" else "")
        lines.append(f"gunicorn {title}      req/s    p50 ms    p99 ms   server CPU µs/req   client CPU µs/req")
        for name in ("bare", "wrapped"):
            m = c["median"][name]
            lines.append(f"  {name:<22} {m['rps']:>8.0f} {m['p50_ms']:>9.3f} {m['p99_ms']:>9.3f} "
                         f"{m['server_cpu_us_per_request']:>19.1f} {m['client_cpu_us_per_request']:>19.1f}")
        r = c["ratios"]
        lines.append(f"  {'wrapped / bare':<22} {r['rps']:>8.3f} {r['p50']:>9.3f} {r['p99']:>9.3f} "
                     f"{r['cpu_per_request']:>19.3f}")
        for t in c["targets"]:
            lines.append(f"  {t['result']:<5} {t['what']:<42} {t['value']:>7.3f}  {t['op']} {t['limit']:g}")
    passed = sum(t["result"] == "PASS" for c in results["classes"] for t in c["targets"])
    total = sum(len(c["targets"]) for c in results["classes"])
    lines.append("")
    lines.append(f"{passed}/{total} targets PASS")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run under ~40 s")
    parser.add_argument("--pairs", type=int, help="paired alternating runs per worker class (default 5; 2 quick)")
    parser.add_argument("--duration", type=float, help="seconds per measured run (default 5; 1.5 quick)")
    parser.add_argument("--warmup", type=float, help="seconds of load before each run (default 1; 0.5 quick)")
    parser.add_argument("--connections", type=int, default=4, help="client connections (one process each)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--worker-class", action="append", choices=("sync", "gthread"), dest="classes",
                        help="repeatable; default both")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory",
                        help="the wrapped app's store (sqlite: a file in a temp dir shared by the workers)")
    parser.add_argument("--json", type=Path, help="default bench/results/http-latest.json (http-quick.json)")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")  # "µs" on a non-UTF-8 terminal
    args.pairs = args.pairs or (2 if args.quick else 5)
    args.duration = args.duration or (1.5 if args.quick else 5.0)
    args.warmup = args.warmup if args.warmup is not None else (0.5 if args.quick else 1.0)
    classes = args.classes or ["sync", "gthread"]
    json_path = args.json or RESULTS / ("http-quick.json" if args.quick else "http-latest.json")

    atexit.register(_stop_all)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda s, f: sys.exit(128 + s))

    started = time.time()
    secret = new_secret()
    with tempfile.TemporaryDirectory(prefix="jwt-wsgi-bench-http-") as tmp:
        workdir = Path(tmp)
        store = "memory://" if args.store == "memory" else f"sqlite:///{workdir / 'store.db'}"
        token = KeyPair("HS256", workdir, secret).mint(ttl=3600)
        out = []
        try:
            for worker_class in classes:
                out.append(run_worker_class(worker_class, args, secret, token, store, workdir))
        finally:
            _stop_all()
    results = {
        "schema": 1,
        "kind": "bench.http",
        "argv": sys.argv if argv is None else ["python -m bench.http", *argv],
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "settings": {"quick": args.quick, "pairs": args.pairs, "duration": args.duration, "warmup": args.warmup,
                     "connections": args.connections, "workers": args.workers, "threads": args.threads,
                     "store": args.store, "load_generator": "python raw-socket closed loop"},
        "machine": machine(),
        "classes": out,
    }
    print(render(results))
    write_json(results, json_path)
    print(f"\nwrote {json_path.relative_to(REPO) if json_path.is_relative_to(REPO) else json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
