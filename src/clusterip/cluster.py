"""`clusterip cluster create`: a local multi-node cluster of network namespaces, as `kind` makes
one of containers.

`LocalCluster(spec)` follows the plan of `core.clusterplan`:

    free loopback ports ─► plan ─► network: a link namespace with a bridge, one namespace
    per node plugged into it (eth0 on 172.18.0.0/24; `runtime.clusternet`)
    ─► etcd: 1 or 3 members (`etcdcluster`) ─► API servers (`clusterip apiserver --store
    etcd://...`), each awaited until it prints that its API is ready ─► node agents
    (`clusterip node`), each awaited until it prints that its node is ready
    ─► DATA/kubeconfig, pointing at the first API server

`stop()` goes the other way: node agents, API servers, etcd (each process by its own PID:
SIGTERM, then SIGKILL after a grace period), then the namespaces. A process that exits before it
is ready fails the start with the end of its log. For fault tests, `kill_*` ends one part with
SIGKILL and `restart_*` starts it again with the same command line and data.

Every process is a child of this one and runs in a session of its own (a terminal's Ctrl-C
reaches only the supervisor, which stops the rest in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from clusterip.core.clusterplan import ClusterPlan, ClusterSpec, Ports, plan_cluster, ports_needed
from clusterip.core.errors import ClusterIPError
from clusterip.etcdcluster import EtcdCluster, EtcdPortInUse, free_ports
from clusterip.runtime.clusternet import create_network, delete_network

__all__ = ["ClusterError", "LocalCluster", "clusterip_program"]

log = logging.getLogger(__name__)

API_READY = "clusterip: API ready on "
NODE_READY = "clusterip: node "
START_TIMEOUT = 60.0  # seconds for one process to say it is ready
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL
PLAN_ATTEMPTS = 3  # fresh ports when another process took one of ours
LOG_TAIL = 2000


class ClusterError(ClusterIPError):
    """A part of the cluster did not start (the message ends with its log)."""


def clusterip_program() -> tuple[str, ...]:
    """How to run clusterip from here: this interpreter with `-m clusterip`."""
    return (sys.executable, "-m", "clusterip")


@dataclass
class _Process:
    """One clusterip process: started from `argv` with its stderr in `log_file`, ready when a
    line of its stdout starts with `ready`."""

    name: str
    argv: tuple[str, ...]
    log_file: str
    ready: str
    proc: asyncio.subprocess.Process | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    async def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start and wait until ready; returns the rest of the ready line."""
        self._log = open(self.log_file, "ab")  # noqa: SIM115 - closed in stop/kill
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while line := (await self.proc.stdout.readline()).decode(errors="replace"):
                    if line.startswith(self.ready):
                        return line[len(self.ready):].strip()
        except TimeoutError:
            await self.kill()
            raise ClusterError(f"{self.name} was not ready within {timeout:.0f} s; its log "
                               f"ends:\n{self.tail()}") from None
        await self.kill()
        raise ClusterError(f"{self.name} exited before it was ready; its log ends:\n"
                           f"{self.tail()}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, and SIGKILL if it has not ended after `grace` seconds."""
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), grace)
            except TimeoutError:
                log.warning("%s did not stop within %.0f s: killed", self.name, grace)
        await self.kill()

    async def kill(self) -> None:
        """SIGKILL (a crash, for fault tests), and reap it."""
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self) -> str:
        try:
            return Path(self.log_file).read_text(errors="replace")[-LOG_TAIL:]
        except OSError:
            return "(no log)"


class LocalCluster:
    """A cluster of etcd, API servers and nodes on this machine. See the module docstring."""

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.plan: ClusterPlan | None = None
        self.etcd: EtcdCluster | None = None
        self.apiservers: list[_Process] = []
        self.nodes: list[_Process] = []

    @property
    def kubeconfig(self) -> Path:
        return Path(self.spec.data_dir) / "kubeconfig"

    @property
    def servers(self) -> tuple[str, ...]:
        assert self.plan is not None
        return self.plan.servers

    async def start(self) -> ClusterPlan:
        """Make the network and start every process, in order; on a failure, stop what was
        started and raise."""
        Path(self.spec.data_dir).mkdir(parents=True, exist_ok=True)
        try:
            for attempt in range(PLAN_ATTEMPTS):
                self.plan = plan_cluster(
                    self.spec, Ports.deal(self.spec, free_ports(ports_needed(self.spec))))
                await asyncio.to_thread(create_network, self.plan.network)
                self.etcd = EtcdCluster(self.plan.etcd)
                try:
                    await asyncio.to_thread(self.etcd.start)
                    break
                except EtcdPortInUse:
                    if attempt + 1 == PLAN_ATTEMPTS:
                        raise
            assert self.plan is not None
            self.apiservers = [_Process(a.name, a.argv, a.log_file, API_READY)
                               for a in self.plan.apiservers]
            for server in self.apiservers:
                await server.start()
            first = Path(self.plan.apiservers[0].data_dir) / "kubeconfig"
            shutil.copyfile(first, self.kubeconfig)
            self.nodes = [_Process(n.name, n.argv, n.log_file, NODE_READY)
                          for n in self.plan.nodes]
            await asyncio.gather(*(node.start() for node in self.nodes))
        except BaseException:
            await self.stop()
            raise
        return self.plan

    async def stop(self) -> None:
        """Stop every process (nodes, API servers, etcd) and delete the namespaces."""
        await asyncio.gather(*(node.stop() for node in self.nodes))
        await asyncio.gather(*(server.stop() for server in self.apiservers))
        if self.etcd is not None:
            await asyncio.to_thread(self.etcd.stop)
        if self.plan is not None:
            deleted = await asyncio.to_thread(delete_network, self.plan.network)
            log.info("namespaces deleted: %s", ", ".join(deleted) or "none")

    # --- faults -------------------------------------------------------------------------------

    def _part(self, parts: Sequence[_Process], name: str) -> _Process:
        for part in parts:
            if part.name == name:
                return part
        raise KeyError(f"no {name} in this cluster: {[p.name for p in parts]}")

    async def kill_apiserver(self, name: str) -> None:
        await self._part(self.apiservers, name).kill()

    async def restart_apiserver(self, name: str) -> None:
        await self._part(self.apiservers, name).start()

    async def stop_node(self, name: str, *, kill: bool = False) -> None:
        node = self._part(self.nodes, name)
        await (node.kill() if kill else node.stop())

    async def restart_node(self, name: str) -> None:
        await self._part(self.nodes, name).start()

    def pids(self) -> dict[str, int]:
        """Every running process of the cluster, by name."""
        found = {p.name: p.pid for p in (*self.apiservers, *self.nodes) if p.pid is not None}
        if self.etcd is not None:
            for name in self.etcd.names:
                pid = self.etcd.pid(name)
                if pid is not None:
                    found[name] = pid
        return found
