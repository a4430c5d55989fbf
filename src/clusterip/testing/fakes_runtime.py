"""A `ProcessRunner` whose processes are scripted by the test, for the node agent's unit tests.

`FakeProcessRunner.start(spec)` validates like the real runner (`check_spec`: an empty argv, an
empty program name or a relative working directory raise `StartError`; so does a program the
test declared missing with `fail_start`) and returns a `FakeProcess` that runs until the test
ends it::

    runner = FakeProcessRunner(clock)
    runner.fail_start("nosuch")                  # start() raises StartError, as ENOENT would
    proc = await runner.started(0)               # the first process started (waits for it)
    proc.exit(1)                                 # wait() returns 1
    proc.ignores_sigterm = True                  # terminate(grace) kills it after the grace

Signals are recorded in `proc.signals`; SIGTERM ends a process with 143 unless it ignores it,
SIGKILL with 137. `fail_exec(program)` models `ip netns exec` failing to exec the program:
`start` succeeds and `wait()` raises StartError, as the real runner reports it.

`FakePodNetwork` is a `PodNetwork` in memory, for the node agent's unit tests: pod namespaces
are entries of `pods` (named `<prefix>-<pod id>`, which no real namespace ever is: the agent's
`ip netns pids` of one finds nothing), checked as the real one checks them (a 10-character pod
id, an address inside the node's pod CIDR, no address given to two pods).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import re

from clusterip.clock import Clock, SystemClock
from clusterip.runtime.containers import ProcessSpec, StartError, check_spec
from clusterip.runtime.podnet import PodNet

__all__ = ["FakePodNetwork", "FakeProcess", "FakeProcessRunner"]

SIGTERM_EXIT = 143
SIGKILL_EXIT = 137


class FakeProcess:
    """A scripted process: it runs until `exit()`, a signal, or `terminate()` ends it."""

    def __init__(self, spec: ProcessSpec, pid: int, started_at: float,
                 exec_error: str | None = None) -> None:
        self.spec = spec
        self._pid = pid
        self._started_at = started_at
        self._exec_error = exec_error
        self.signals: list[str] = []
        self.ignores_sigterm = False
        self.returncode: int | None = None
        self._exited = asyncio.Event()
        if exec_error is not None:
            self.exit(1)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def started_at(self) -> float:
        return self._started_at

    @property
    def running(self) -> bool:
        return self.returncode is None

    def exit(self, code: int) -> None:
        """The process ends now with `code` (a later exit changes nothing)."""
        if self.returncode is None:
            self.returncode = code
            self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        if self._exec_error is not None:
            raise StartError(self._exec_error)
        assert self.returncode is not None
        return self.returncode

    async def terminate(self, grace_seconds: float) -> int:
        if self.returncode is None:
            self.signals.append("SIGTERM")
            if not self.ignores_sigterm:
                self.exit(SIGTERM_EXIT)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(grace_seconds, 0.0)):
                    await self._exited.wait()
            self.kill()
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self.signals.append("SIGKILL")
            self.exit(SIGKILL_EXIT)


class FakeProcessRunner:
    """Starts `FakeProcess`es; `processes` lists them in start order."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or SystemClock()
        self._pids = itertools.count(10_000)
        self._missing: dict[str, str] = {}
        self._exec_failures: dict[str, str] = {}
        self.processes: list[FakeProcess] = []
        self.specs: list[ProcessSpec] = []
        self._started = asyncio.Condition()

    def fail_start(self, program: str, error: str = "No such file or directory") -> None:
        """`start` of `program` raises StartError (`exec: "<program>": <error>`)."""
        self._missing[program] = error

    def fail_exec(self, program: str, error: str = "No such file or directory") -> None:
        """`program` starts, but `wait()` raises StartError (ip netns exec could not exec)."""
        self._exec_failures[program] = error

    async def start(self, spec: ProcessSpec) -> FakeProcess:
        check_spec(spec)
        program = spec.argv[0]
        self.specs.append(spec)
        if program in self._missing:
            raise StartError(f'exec: "{program}": {self._missing[program]}')
        exec_error = self._exec_failures.get(program)
        proc = FakeProcess(
            spec, next(self._pids), self._clock.monotonic(),
            f'exec: "{program}": {exec_error}' if exec_error is not None else None,
        )
        async with self._started:
            self.processes.append(proc)
            self._started.notify_all()
        return proc

    async def started(self, index: int) -> FakeProcess:
        """The `index`-th process started (from 0), waiting until it has been."""
        async with self._started:
            await self._started.wait_for(lambda: len(self.processes) > index)
            return self.processes[index]

    def running(self) -> list[FakeProcess]:
        return [p for p in self.processes if p.running]


class FakePodNetwork:
    """Pod networks as entries in `pods` (netns name → PodNet); see the module docstring."""

    def __init__(self, pod_cidr: str = "10.244.0.0/24", prefix: str = "fakenode-pod") -> None:
        self.pod_cidr = ipaddress.IPv4Network(pod_cidr)
        self.prefix = prefix
        self.pods: dict[str, PodNet] = {}
        self.resolv_confs: dict[str, str] = {}
        self.node_ready = False

    async def ensure_node(self) -> None:
        self.node_ready = True

    async def setup_pod(self, pod_id: str, ip: ipaddress.IPv4Address,
                        resolv_conf: str) -> PodNet:
        if not re.fullmatch(r"[a-z0-9]{10}", pod_id):
            raise ValueError(f"pod id must be 10 characters of [a-z0-9], got {pod_id!r}")
        if ip not in self.pod_cidr or ip in (self.pod_cidr.network_address,
                                             self.pod_cidr.network_address + 1,
                                             self.pod_cidr.broadcast_address):
            raise ValueError(f"{ip} is not a pod address of {self.pod_cidr}")
        netns = f"{self.prefix}-{pod_id}"
        taken = {p.ip for name, p in self.pods.items() if name != netns}
        if ip in taken:
            raise ValueError(f"{ip} is already the address of another pod")
        net = PodNet(netns=netns, pod_id=pod_id, ip=ip, host_veth=f"veth{pod_id[:8]}")
        self.pods[netns] = net
        self.resolv_confs[netns] = resolv_conf
        return net

    async def teardown_pod(self, netns: str) -> None:
        self.pods.pop(netns, None)
        self.resolv_confs.pop(netns, None)

    async def list_pods(self) -> list[PodNet]:
        return list(self.pods.values())

    async def teardown_node(self, *, remove_namespace: bool = False) -> None:
        self.pods.clear()
        self.resolv_confs.clear()
        self.node_ready = False
