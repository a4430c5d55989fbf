"""Run an etcd cluster of 1, 3 (5, 7) members as subprocesses on loopback ports.

    cluster = start_etcd_cluster(directory, members=3, token="demo")   # healthy when it returns
    try:
        store = await EtcdStore.open(cluster.endpoints)
        cluster.kill("etcd-1"); cluster.restart("etcd-1")                # fault tests
    finally:
        cluster.stop()

How it works
============

What to run is a `core.clusterplan.EtcdPlan`: each member's name, loopback client and peer
ports, data directory (``<directory>/etcd-i``), log file (``<directory>/etcd-i.log``) and etcd 3.4
command line (``--initial-cluster`` naming every member, ``--initial-cluster-token``, watch
progress notifications every second: ``--experimental-watch-progress-notify-interval``).
`EtcdCluster(plan)` runs exactly that; `start_etcd_cluster` also makes the plan, on fresh free
ports of 127.0.0.1 (never 2379/2380, where a system etcd may listen).

`start()` spawns the members one after another, each as soon as the one before serves its peer
port (``/members`` answers, about 0.1 s after its start): spawned at the same moment, a member
that finds another's peer port open but not serving yet waits a second for it (etcd's "is this
member bootstrapped already" check), and three members took 2-3 s to start instead of about
half a second. Then it waits, under the same deadline, until each member's ``/health`` says
``"true"`` (a member of a new cluster cannot get there alone: the first election needs a
quorum), which in etcd 3.4 means the member sees a leader and a quorum read through raft
succeeded. A member that exits meanwhile fails the start at once, with the end of its log; if
its log says "address already in use" (someone took a port between `free_ports` and etcd's
bind) the error is `EtcdPortInUse`, and `start_etcd_cluster` tries again on fresh ports (and
fresh data directories: it deletes only the ones its failed attempt made). A start that fails
stops whatever it spawned. Starting a plan whose data directories already hold members restarts
that cluster: etcd then ignores the ``--initial-*`` flags and rejoins with what it stored.

Processes are ours and only ours: each member is a child (`subprocess.Popen`) in a session of its
own (a Ctrl-C at the terminal reaches the owner, who stops the members in order), signalled by
its own PID only, and reaped. `stop()` sends SIGTERM to the followers, then to the leader (a
leader that is asked to stop first hands its leadership over, and a hand-over to a member that
is stopping too, or just stopped, waits for etcd's 7 s request timeout), each given up to
`stop_timeout` before SIGKILL, except a leader left alone (see `stop`); it is idempotent
and keeps the data directories (the owner decides whether to delete them). For fault tests,
`kill(name)` SIGKILLs one member (as a crash would), `restart(name)` starts it again on its data
directory and ports and waits for its health; `leader()` names the member that leads now.
Environment variables that start with ``ETCD`` are not passed on (etcd reads flags from them).

These calls block (a start takes about a second for one member, a few for three); asyncio
callers run them with `asyncio.to_thread`. An `EtcdCluster` has one owner: it is not meant to be
used from two threads at once.

Errors: `EtcdError` (a `ClusterIPError`) when a member will not start or become healthy, with
the end of its log; ValueError for a member name the plan does not have.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from clusterip.core.clusterplan import (
    ETCD_BINARY,
    ETCD_PROGRESS_INTERVAL,
    RESERVED_PORTS,
    EtcdMember,
    EtcdPlan,
    EtcdTlsFiles,
    plan_etcd,
)
from clusterip.core.errors import ClusterIPError

__all__ = [
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "EtcdCluster",
    "EtcdError",
    "EtcdPortInUse",
    "find_etcd",
    "free_ports",
    "start_etcd_cluster",
]

START_TIMEOUT = 30.0  # seconds for every member to become healthy
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
LONE_LEADER_GRACE = 1.0  # seconds for a leader whose followers are gone (see `stop`)
START_ATTEMPTS = 3  # fresh ports tried when another process took ours
_HEALTH_TIMEOUT = 1.0  # seconds one /health request may take
_POLL = 0.05  # seconds between two rounds of health checks
_LOG_TAIL = 4000  # characters of a member's log quoted in an error
_PORT_IN_USE = "address already in use"


class EtcdError(ClusterIPError):
    """An etcd member did not start, or did not become healthy in time."""


class EtcdPortInUse(EtcdError):
    """An etcd member could not bind one of its ports: another process took it."""


def find_etcd() -> str | None:
    """The etcd binary: the apt package's, else one on PATH; None when there is none."""
    if os.access(ETCD_BINARY, os.X_OK):
        return ETCD_BINARY
    return shutil.which("etcd")


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (none of RESERVED_PORTS).

    The sockets are held until all are found, so the kernel hands out distinct ports; they are
    closed before returning, so another process may take one before our process binds it
    (`EtcdPortInUse`).
    """
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in RESERVED_PORTS:
                sockets.pop().close()
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _client_context(tls: EtcdTlsFiles | None) -> ssl.SSLContext | None:
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=tls.ca_file)
    context.load_cert_chain(tls.client_cert_file, tls.client_key_file)
    return context


@dataclass
class _Running:
    """A member's process, its open log, and where this run's output starts in the log."""

    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    log_start: int


class EtcdCluster:
    """The members of `plan` as child processes. `start()` it, and `stop()` it in a finally
    (or use it as a context manager, which does both).

    Args:
        plan: what to run (`core.clusterplan.plan_etcd`).
        start_timeout: seconds `start` and `restart` wait for health.
        stop_timeout: seconds between SIGTERM and SIGKILL.
    """

    def __init__(self, plan: EtcdPlan, *, start_timeout: float = START_TIMEOUT,
                 stop_timeout: float = STOP_TIMEOUT) -> None:
        self.plan = plan
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._running: dict[str, _Running] = {}
        self._ssl = _client_context(plan.tls)

    # -- what it is ----------------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        """Every member's client URL (``http://127.0.0.1:PORT``; https with TLS)."""
        return list(self.plan.endpoints)

    @property
    def store_url(self) -> str:
        """The ``etcd://`` URL of the whole cluster, an API server's ``--store``."""
        return self.plan.store_url

    @property
    def names(self) -> list[str]:
        return [member.name for member in self.plan.members]

    def member(self, name: str) -> EtcdMember:
        try:
            return self.plan.member(name)
        except KeyError as exc:
            raise ValueError(str(exc)) from None

    def pid(self, name: str) -> int | None:
        """The PID of member `name` while it runs (None when it is not running)."""
        self.member(name)
        running = self._running.get(name)
        if running is None or running.proc.poll() is not None:
            return None
        return running.proc.pid

    def is_running(self, name: str) -> bool:
        return self.pid(name) is not None

    def log_tail(self, name: str, chars: int = _LOG_TAIL) -> str:
        """The end of member `name`'s log (every run of it)."""
        try:
            return Path(self.member(name).log_file).read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    # -- asking the members --------------------------------------------------------------------

    def _request(self, member: EtcdMember, path: str, body: bytes | None) -> object:
        request = urllib.request.Request(
            member.client_url + path, data=body,
            headers={"Content-Type": "application/json"} if body is not None else {})
        with urllib.request.urlopen(request, timeout=_HEALTH_TIMEOUT,
                                    context=self._ssl) as response:
            return json.load(response)

    def healthy(self, name: str) -> bool:
        """Whether member `name` answers ``/health`` with ``"health": "true"`` right now."""
        try:
            answer = self._request(self.member(name), "/health", None)
        except (OSError, ValueError):
            return False
        return isinstance(answer, dict) and answer.get("health") == "true"

    def leader(self) -> str | None:
        """The name of the member that leads now, if a running member knows and the leader
        answers (None otherwise)."""
        ids: dict[str, str] = {}
        leaders: set[str] = set()
        for member in self.plan.members:
            if not self.is_running(member.name):
                continue
            try:
                status = self._request(member, "/v3/maintenance/status", b"{}")
            except (OSError, ValueError):
                continue
            if not isinstance(status, dict):
                continue
            header = status.get("header") or {}
            ids[str(header.get("member_id", ""))] = member.name
            leader = str(status.get("leader", "0"))
            if leader != "0":
                leaders.add(leader)
        found = [ids[leader] for leader in leaders if leader in ids]
        return found[0] if len(found) == 1 else None

    # -- processes -----------------------------------------------------------------------------

    def _spawn(self, member: EtcdMember) -> None:
        Path(member.data_dir).parent.mkdir(parents=True, exist_ok=True)
        log = open(member.log_file, "ab")  # noqa: SIM115 - closed by _reap
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
            proc = subprocess.Popen(member.argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        except BaseException:
            log.close()
            raise
        self._running[member.name] = _Running(proc, log, log.tell())

    def _reap(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is not None:
            running.proc.wait()
            running.log.close()

    def _signal(self, name: str, signum: signal.Signals) -> None:
        running = self._running.get(name)
        if running is not None and running.proc.poll() is None:
            running.proc.send_signal(signum)  # by its PID; Popen knows it is not reaped yet

    def _failure(self, name: str) -> EtcdError:
        """Why member `name` exited: this run's log says."""
        running = self._running.get(name)
        code = running.proc.poll() if running is not None else None
        try:
            with open(self.member(name).log_file, "rb") as f:
                f.seek(running.log_start if running is not None else 0)
                text = f.read().decode(errors="replace")
        except OSError:
            text = ""
        kind = EtcdPortInUse if _PORT_IN_USE in text else EtcdError
        return kind(f"etcd member {name} exited (status {code}) before it was healthy; "
                    f"its log:\n{text[-_LOG_TAIL:]}")

    def _peer_port_serves(self, member: EtcdMember) -> bool:
        try:
            with urllib.request.urlopen(member.peer_url + "/members",
                                        timeout=_HEALTH_TIMEOUT) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _await_peer_port(self, member: EtcdMember, deadline: float) -> None:
        """Wait until `member`'s peer port answers ``/members`` (about 0.1 s after its start)."""
        while not self._peer_port_serves(member):
            if not self.is_running(member.name):
                raise self._failure(member.name)
            if time.monotonic() >= deadline:
                raise EtcdError(f"etcd member {member.name} does not serve its peer port "
                                f"{member.peer_url}; its log:\n{self.log_tail(member.name)}")
            time.sleep(_POLL / 5)

    def wait_healthy(self, names: Iterable[str] | None = None,
                     timeout: float | None = None) -> None:
        """Wait until every member of `names` (default: all) is healthy.

        Raises:
            EtcdError: one of them exited (EtcdPortInUse if it could not bind a port), or the
                deadline (`timeout`, default `start_timeout`) passed.
        """
        waiting = list(self.names if names is None else names)
        for name in waiting:
            self.member(name)
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        with ThreadPoolExecutor(max_workers=len(waiting) or 1,
                                thread_name_prefix="etcd-health") as pool:
            while True:
                for name in waiting:
                    if not self.is_running(name):
                        raise self._failure(name)
                # together: a member that is not ready yet keeps a request for a whole timeout
                answers = list(pool.map(self.healthy, waiting))
                waiting = [name for name, ok in zip(waiting, answers, strict=True) if not ok]
                if not waiting:
                    return
                if time.monotonic() >= deadline:
                    logs = "\n".join(f"--- {name}:\n{self.log_tail(name)}" for name in waiting)
                    raise EtcdError(f"etcd members {', '.join(waiting)} not healthy within "
                                    f"{self.start_timeout if timeout is None else timeout:g}s; "
                                    f"their logs:\n{logs}")
                time.sleep(_POLL)

    def start(self) -> None:
        """Run every member and wait until all are healthy. On failure, stop what was started
        and raise `EtcdError` (with the failing member's log)."""
        if self._running:
            raise EtcdError("etcd cluster already started")
        deadline = time.monotonic() + self.start_timeout
        try:
            for member in self.plan.members:
                self._spawn(member)
                self._await_peer_port(member, deadline)
            self.wait_healthy(timeout=max(0.0, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise

    def stop(self, names: Sequence[str] | None = None) -> None:
        """SIGTERM the running members of `names` (default: all), SIGKILL those still running
        after `stop_timeout`, and reap them. Idempotent; keeps the data directories.

        The followers go first, then the leader: a leader asked to stop hands its leadership
        over first, and when the one it hands it to is stopping too, the hand-over waits for
        etcd's request timeout (7 s with the default election timeout). A leader left with no
        running member can hand over to nobody, but tries to if it has not noticed yet that
        its followers are gone (it notices at its next heartbeat): so it is sent SIGTERM once
        its ``etcd_network_active_peers`` metric is all 0, or after `LONE_LEADER_GRACE`, and
        SIGKILL after `LONE_LEADER_GRACE` more (harmless: etcd syncs its log to disk before
        it acknowledges a write).
        """
        stopping = [n for n in (self.names if names is None else names) if n in self._running]
        leader = self.leader() if len(stopping) > 1 else None
        if leader not in stopping:
            self._stop_together(stopping, self.stop_timeout)
            return
        self._stop_together([n for n in stopping if n != leader], self.stop_timeout)
        if any(self.is_running(n) for n in self.names if n != leader):
            self._stop_together([leader], self.stop_timeout)
            return
        deadline = time.monotonic() + LONE_LEADER_GRACE
        while self._peers_active(self.member(leader)) and time.monotonic() < deadline:
            time.sleep(_POLL / 5)
        self._stop_together([leader], min(self.stop_timeout, LONE_LEADER_GRACE))

    def _peers_active(self, member: EtcdMember) -> bool:
        """Whether `member` still counts a connection to a peer as active (its
        ``etcd_network_active_peers`` metric); False when it does not answer."""
        try:
            with urllib.request.urlopen(member.client_url + "/metrics", timeout=_HEALTH_TIMEOUT,
                                        context=self._ssl) as response:
                text = response.read().decode(errors="replace")
        except OSError:
            return False
        return any(line.startswith("etcd_network_active_peers{") and not line.endswith(" 0")
                   for line in text.splitlines())

    def _stop_together(self, names: Sequence[str], timeout: float) -> None:
        for name in names:
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for name in names:
            proc = self._running[name].proc
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
            self._reap(name)

    def kill(self, name: str) -> None:
        """SIGKILL member `name` (a crash: no leader hand-over, no clean shutdown) and reap it."""
        self.member(name)
        self._signal(name, signal.SIGKILL)
        self._reap(name)

    def restart(self, name: str, *, wait: bool = True) -> None:
        """Start member `name` again (stopping it first if it runs), on its data directory and
        ports, and with `wait` wait until it is healthy (which needs a quorum of members)."""
        self.stop([name])
        self._spawn(self.member(name))
        if wait:
            self.wait_healthy([name])

    def __enter__(self) -> EtcdCluster:
        if not self._running:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def start_etcd_cluster(
    directory: Path,
    *,
    members: int = 1,
    token: str = "clusterip",
    binary: str | None = None,
    tls: EtcdTlsFiles | None = None,
    progress_interval: str = ETCD_PROGRESS_INTERVAL,
    log_level: str = "warn",
    start_timeout: float = START_TIMEOUT,
    stop_timeout: float = STOP_TIMEOUT,
    attempts: int = START_ATTEMPTS,
) -> EtcdCluster:
    """A new etcd cluster of `members` members on fresh free loopback ports, data and logs in
    `directory`, healthy when this returns. The caller stops it (and deletes `directory`).

    Raises:
        EtcdError: a member did not become healthy (after `attempts` tries when the cause was a
            port someone else took), or `directory` already holds a member's data.
    """
    directory.mkdir(parents=True, exist_ok=True)
    executable = binary or find_etcd() or ETCD_BINARY
    for attempt in range(attempts):
        ports = free_ports(2 * members)
        plan = plan_etcd(token=token, data_dir=str(directory), client_ports=ports[:members],
                         peer_ports=ports[members:], binary=executable,
                         progress_interval=progress_interval, tls=tls, log_level=log_level)
        existing = [m.data_dir for m in plan.members if Path(m.data_dir).exists()]
        if existing:
            raise EtcdError(f"{', '.join(existing)} already hold etcd data: a new cluster "
                            "needs empty directories")
        cluster = EtcdCluster(plan, start_timeout=start_timeout, stop_timeout=stop_timeout)
        try:
            cluster.start()
        except EtcdPortInUse:
            for member in plan.members:
                shutil.rmtree(member.data_dir, ignore_errors=True)
            if attempt == attempts - 1:
                raise
            continue
        return cluster
    raise AssertionError("unreachable")
