"""A real ``redis-server`` for tests: on a free port of 127.0.0.1, in a temporary directory,
without persistence, stopped by its PID.

Use the fixtures by importing them into a test module (pytest finds fixtures in its namespace)::

    from tests.redis_server import redis_server, redis_url  # noqa: F401

- ``redis_server`` (session): one :class:`RedisServer` for the whole run;
- ``redis_url`` (function): its URL, with the database emptied first (and the server started
  again if an earlier test stopped it).

A test that stops the server on purpose should run its own with :func:`running_redis`, so the
shared one stays up for the others.

The same for the other shapes of Redis the store supports, each on loopback with its own
processes, stopped by PID: ``redis_cluster``/``redis_cluster_url`` (three primaries, formed by
hand) and ``redis_sentinel``/``redis_sentinel_url`` (a master, a replica and a sentinel; a test
that fails it over runs its own with :func:`running_sentinel`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests._services import unavailable
from tests.servers import free_port

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


def _command(port: int, password: str | None, command: bytes, timeout: float) -> bytes:
    """Send one inline command (after ``AUTH`` if needed) and return the raw first reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        if password is not None:
            sock.sendall(b"AUTH " + password.encode() + b"\r\n")
            sock.recv(64)
        sock.sendall(command + b"\r\n")
        return sock.recv(64)


def _answers_ping(port: int, password: str | None) -> bool:
    try:
        return _command(port, password, b"PING", 0.5).startswith(b"+PONG")
    except OSError:
        return False


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        unavailable(f"{tool} not installed")


class RedisServer:
    """One ``redis-server`` process that a test can stop and start again on the same port.

    :param directory: its working directory (log file; nothing is persisted).
    :param port: the port to listen on; a free one by default.
    :param password: if set, clients must authenticate (``--requirepass``).
    """

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        password: str | None = None,
        options: dict[str, str] | None = None,
        sentinel: list[str] | None = None,
    ) -> None:
        self.directory = directory
        self.port = port if port is not None else free_port()
        self.password = password
        self.options = dict(options or {})  # more redis-server options, such as cluster-enabled
        self.sentinel = sentinel  # the lines of a sentinel.conf: run as a sentinel (--sentinel)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the server and wait until it answers ``PING``."""
        if self.running:
            return
        executable = shutil.which("redis-server")
        if executable is None:
            unavailable("redis-server not installed")
            raise AssertionError("unreachable")  # unavailable() always raises
        log = self.directory / "redis.log"
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "save": "",
            "appendonly": "no",
            "dir": str(self.directory),
            "logfile": str(log),
        }
        if self.password is not None:
            options["requirepass"] = self.password
        options.update(self.options)
        arguments = [item for name, value in options.items() for item in (f"--{name}", value)]
        if self.sentinel is not None:
            # A sentinel rewrites its configuration file as it learns the topology.
            config = self.directory / "sentinel.conf"
            config.write_text("".join(line + "\n" for line in self.sentinel))
            options.pop("save"), options.pop("appendonly")
            arguments = [str(config), "--sentinel",
                         *(item for name, value in options.items() for item in (f"--{name}", value))]
        self.process = subprocess.Popen(
            [executable, *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers_ping(self.port, self.password):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
                pytest.fail(f"redis-server did not start on port {self.port}:\n{tail}", pytrace=False)
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it. Safe to call twice."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port (with an empty database)."""
        self.stop()
        self.start()

    def flush(self) -> None:
        """Empty every database, with a raw ``FLUSHALL`` (no client library involved)."""
        reply = _command(self.port, self.password, b"FLUSHALL", 2.0)
        if not reply.startswith(b"+OK"):
            raise AssertionError(f"FLUSHALL answered {reply!r}")


@contextmanager
def running_redis(directory: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    """A :class:`RedisServer` of one's own, started, and stopped on the way out."""
    server = RedisServer(directory, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (skipped locally, failed in CI, when not installed)."""
    _need("redis-server")
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session server's URL, with an empty database."""
    redis_server.start()  # no-op unless an earlier test left it stopped
    redis_server.flush()
    return redis_server.url


# -- Redis Cluster and Redis Sentinel ------------------------------------------------------------
_TOPOLOGY_TIMEOUT = 30.0  # to form a cluster, to see a replica in sync, to finish a failover

SERVICE = "jwtstore"  # the Sentinel service name of the fixtures


def _client(port: int, password: str | None = None) -> Any:
    """A plain redis-py client for one server (set-up and inspection only, never the store)."""
    import redis

    return redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2.0,
                       socket_connect_timeout=2.0)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = _TOPOLOGY_TIMEOUT) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout``. Errors count as "not
    yet" (a server still starting or failing over), except a failed ``assert`` in ``condition``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except AssertionError:
            raise
        except Exception:  # noqa: BLE001,S110 - a server still starting or failing over
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g}s waiting for {what}", pytrace=False)
        time.sleep(0.05)


class ClusterServers:
    """A Redis Cluster of three primaries (no replicas) on loopback, slots split evenly.

    Formed by hand (``CLUSTER ADDSLOTSRANGE``, ``CLUSTER MEET``), which needs no ``redis-cli``.
    """

    def __init__(self, directory: Path, size: int = 3) -> None:
        self.nodes = []
        for index in range(size):
            node_directory = directory / f"node{index}"
            node_directory.mkdir()
            self.nodes.append(RedisServer(node_directory, options={
                "cluster-enabled": "yes",
                "cluster-config-file": str(node_directory / "nodes.conf"),
                "cluster-port": str(free_port()),  # the cluster bus (port + 10000 may be taken)
                "cluster-node-timeout": "2000",
            }))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> None:
        _need("redis-server")
        for node in self.nodes:
            node.start()
        clients = [_client(node.port) for node in self.nodes]
        try:
            share = 16384 // len(self.nodes)
            for index, client in enumerate(clients):
                last = 16383 if index == len(clients) - 1 else (index + 1) * share - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", index * share, last)
            for node in self.nodes[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, node.options["cluster-port"])

            def formed() -> bool:
                for client in clients:
                    info = client.execute_command("CLUSTER", "INFO").decode()
                    if ("cluster_state:ok" not in info or f"cluster_known_nodes:{len(clients)}" not in info
                            or len(client.execute_command("CLUSTER", "SLOTS")) != len(clients)):
                        return False
                return True

            wait_until(formed, "the cluster to form")
        finally:
            for client in clients:
                client.close()

    def flush(self) -> None:
        for node in self.nodes:
            node.flush()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class SentinelServers:
    """A master, one replica and one sentinel (quorum 1) on loopback, each with a password (the
    sentinel's its own: the URL's ``sentinel_password``).

    The sentinel declares the master down after 500 ms without an answer, so after
    :meth:`kill_master` the replica is promoted within a few seconds.
    """

    def __init__(self, directory: Path, *, password: str = "data-node-password",
                 sentinel_password: str = "sentinel-password") -> None:
        self.password = password
        self.sentinel_password = sentinel_password
        for name in ("master", "replica", "sentinel"):
            (directory / name).mkdir()
        # masterauth on both: after a failover the old master comes back as a replica. A replica's
        # first sync starts at once (Redis waits 5 s by default for more replicas to share it).
        data_node = {"masterauth": password, "repl-diskless-sync-delay": "0"}
        self.master = RedisServer(directory / "master", password=password, options=data_node)
        self.replica = RedisServer(directory / "replica", password=password, options={
            **data_node, "replicaof": f"127.0.0.1 {self.master.port}",
        })
        self.sentinel = RedisServer(directory / "sentinel", password=sentinel_password, sentinel=[
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 1",
            f"sentinel auth-pass {SERVICE} {password}",
            f"sentinel down-after-milliseconds {SERVICE} 500",
            f"sentinel failover-timeout {SERVICE} 5000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ])

    @property
    def url(self) -> str:
        return (f"redis+sentinel://:{self.password}@127.0.0.1:{self.sentinel.port}/{SERVICE}"
                f"?sentinel_password={self.sentinel_password}")

    def master_port(self) -> int:
        """The master's port, as the sentinel tells it now."""
        client = _client(self.sentinel.port, self.sentinel_password)
        try:
            _host, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)
        finally:
            client.close()

    def start(self) -> None:
        _need("redis-server")
        self.master.start()
        self.replica.start()
        self.sentinel.start()
        replica = _client(self.replica.port, self.password)
        sentinel = _client(self.sentinel.port, self.sentinel_password)
        try:
            wait_until(lambda: replica.info("replication").get("master_link_status") == "up",
                       "the replica to sync")
            # ... and the master to hear from it: until then a WAIT would time out.
            wait_until(lambda: self.replicas_in_sync(self.master.port) >= 1, "the master to see its replica")

            def replica_known() -> bool:
                return any(not replica["is_sdown"] for replica in sentinel.sentinel_slaves(SERVICE))

            wait_until(replica_known, "the sentinel to see the replica")
        finally:
            replica.close()
            sentinel.close()

    def kill_master(self) -> RedisServer:
        """SIGKILL the current master (no goodbye, as in a crash); return it."""
        port = self.master_port()
        dead = self.master if self.master.port == port else self.replica
        assert dead.process is not None
        dead.process.kill()
        dead.process.wait()
        return dead

    def wait_for_failover(self, old_port: int) -> int:
        """Wait until the sentinel names a new master and it accepts writes; return its port."""
        wait_until(lambda: self.master_port() != old_port, "the sentinel to promote the replica")
        port = self.master_port()
        client = _client(port, self.password)
        try:
            wait_until(lambda: client.info("replication").get("role") == "master",
                       "the promoted replica to become master")
        finally:
            client.close()
        return port

    def replicas_in_sync(self, master_port: int) -> int:
        """How many replicas the master on ``master_port`` has online and acknowledging (an
        offset: right after a sync a replica is "online" before it answers the master's ``WAIT``)."""
        client = _client(master_port, self.password)
        try:
            info = client.info("replication")
        finally:
            client.close()
        return sum(1 for name, value in info.items()
                   if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
                   and int(value.get("offset", 0)) > 0)

    def flush(self) -> None:
        port = self.master_port()
        server = self.master if self.master.port == port else self.replica
        server.flush()

    def stop(self) -> None:
        self.sentinel.stop()
        self.replica.stop()
        self.master.stop()


@contextmanager
def running_cluster(directory: Path) -> Iterator[ClusterServers]:
    """A :class:`ClusterServers` of one's own, formed, and stopped on the way out."""
    cluster = ClusterServers(directory)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def running_sentinel(directory: Path) -> Iterator[SentinelServers]:
    """A :class:`SentinelServers` of one's own (for a test that fails it over), stopped on the way out."""
    servers = SentinelServers(directory)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """One three-primary Redis Cluster for the session."""
    _need("redis-server")
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_url(redis_cluster: ClusterServers) -> str:
    """The session cluster's ``redis+cluster://`` URL, every primary emptied first."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelServers]:
    """One master + replica + sentinel for the session (tests that fail over run their own)."""
    _need("redis-server")
    with running_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as servers:
        yield servers


@pytest.fixture
def redis_sentinel_url(redis_sentinel: SentinelServers) -> str:
    """The session sentinel's ``redis+sentinel://`` URL, the master emptied first."""
    redis_sentinel.flush()
    return redis_sentinel.url
