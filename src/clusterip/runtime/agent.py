"""The node agent: runs the pods bound to this node as processes in network namespaces.

What a kubelet does, for clusterip's pods:

    Node object ── registered at start (pod CIDR, addresses, Ready) and heartbeated
    pod informer ── a key per pod of this node ──► queue ──► sync(key)
        new pod          → a PodRuntime: IP from the pod CIDR, namespace + veth (podnet),
                           one supervisor per container, status written back
        deletionTimestamp → the runtime stops (SIGTERM, grace, SIGKILL), the namespace goes,
                           the IP is released, and the pod object is deleted (grace 0)
        pod gone         → the runtime is stopped at once

A container supervisor (`PodRuntime._supervise`) starts the process, learns of its exit from the
process itself (`RunningProcess.wait()`), never from a poll, so a crash makes the pod not ready
at once; it runs the readiness and liveness probes while the process runs, and restarts the
container as the restart policy and Kubernetes' back-off say (`core.pods`). Every change marks
the pod's status dirty; one writer per pod computes the status (`core.pods.pod_status`, pure)
and writes it through the `/status` path, coalescing bursts.

Restart safety: at start the agent lists the pod namespaces that exist on the node. A pod
namespace whose pod no longer exists (or is no longer bound here) is removed with every process
in it; a pod that still exists is started afresh in a clean namespace at the IP it had, so no
namespace, veth, IP or process is leaked or duplicated across agent restarts.

Events, on the pod, per container (`involvedObject.fieldPath` `spec.containers{main}`), in
kubelet's words: `Created` and `Started` when a process starts, `Failed` when its program cannot
be run, `Killing` when it is stopped (the pod is deleted, or its liveness probe failed),
`Unhealthy` (Warning) for each failed probe run (`Readiness probe failed: ...`), `BackOff` while
a container waits to be restarted. They go through the agent's `EventRecorder`, which never
waits: recording changes nothing in the pod's life.

Every task has an owner: the agent's TaskGroup holds the workers, the heartbeat and one task per
pod runtime; each runtime's TaskGroup holds its container supervisors and its status writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from clusterip.clock import Clock
from clusterip.control.informer import Informer, InformerFactory
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core import pods as podcore
from clusterip.core.errors import ClusterIPError, Conflict, NotFound
from clusterip.core.naming import pod_id
from clusterip.core.podips import PodAddresses
from clusterip.core.timefmt import rfc3339
from clusterip.registry.client import Client
from clusterip.registry.events import DISCARD, EventRecorder
from clusterip.runtime.containers import ProcessRunner, ProcessSpec, RunningProcess, StartError
from clusterip.runtime.podnet import PodNet, PodNetwork
from clusterip.runtime.probes import make_exec_runner, probe_once

__all__ = ["AgentConfig", "NodeAgent"]

log = logging.getLogger(__name__)

Connect = Callable[[str, int, float], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
ExecRunner = Callable[[list[str], float], Awaitable[int]]

KUBELET_VERSION = "v1.32.0-clusterip"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    state_dir: Path
    node_name: str = "node-1"
    pod_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.244.0.0/24")
    cluster_dns: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    heartbeat_seconds: float = 10.0

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.pod_cidr.network_address + 1


class NodeAgent:
    """Runs this node's pods. See the module docstring."""

    def __init__(
        self,
        client: Client,
        network: PodNetwork,
        runner: ProcessRunner,
        connect: Connect,
        *,
        config: AgentConfig,
        clock: Clock,
        informers: InformerFactory,
        node_address: str = "",
        events: EventRecorder = DISCARD,
    ) -> None:
        self._client = client
        self.events = events
        self._network = network
        self._runner = runner
        self._connect = connect
        self.config = config
        self._clock = clock
        self._node_address = node_address or str(config.gateway)
        self.pods: Informer[m.Pod] = informers.informer(m.Pod)
        self.services: Informer[m.Service] = informers.informer(m.Service)
        self.pods.add_handler(self._on_pod)
        self.queue = WorkQueue("node-agent")
        self.ready = asyncio.Event()
        self.addresses = PodAddresses(config.pod_cidr)
        self.runtimes: dict[str, PodRuntime] = {}
        self._tasks: asyncio.TaskGroup | None = None

    # --- events: only keys --------------------------------------------------------------------

    def _on_pod(self, key: str, old: m.Pod | None, new: m.Pod | None) -> None:
        pod = new or old
        if pod is not None and (pod.spec.node_name == self.config.node_name
                                or key in self.runtimes):
            self.queue.add(key)

    # --- running ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Prepare the node, register it, adopt what exists, then serve. Never returns."""
        await self._network.ensure_node()
        await self._register()
        try:
            async with asyncio.TaskGroup() as tasks:
                self._tasks = tasks
                tasks.create_task(self._heartbeat())
                await self.pods.has_synced.wait()
                await self.services.has_synced.wait()
                await self._recover()
                self.ready.set()
                log.info("node agent ready node=%s pods=%d", self.config.node_name,
                         len(self.runtimes))
                tasks.create_task(run_worker(self.queue, self.sync))
        finally:
            self.queue.shutdown()

    async def synced(self) -> None:
        await self.ready.wait()

    async def sync(self, key: str) -> None:
        slim = self.pods.get(key)
        runtime = self.runtimes.get(key)
        mine = slim is not None and slim.spec.node_name == self.config.node_name
        if not mine:
            if runtime is not None:
                runtime.stop(grace=0)
            return
        assert slim is not None
        if runtime is not None and runtime.uid != slim.metadata.uid:
            runtime.stop(grace=0)  # a new pod of the same name: the old one's runtime ends
            await runtime.done.wait()
            runtime = None
        if runtime is None:
            if slim.metadata.deletion_timestamp:
                await self._delete_object(slim)
                return
            if slim.status.phase in ("Succeeded", "Failed"):
                return
            pod = await self._client.get(m.Pod, slim.metadata.namespace, slim.metadata.name)
            self._start(key, pod)
        elif slim.metadata.deletion_timestamp:
            runtime.stop(grace=_grace(slim))

    def _start(self, key: str, pod: m.Pod, ip: ipaddress.IPv4Address | None = None) -> None:
        assert self._tasks is not None
        wanted = ip or _parse_ip(pod.status.pod_ip)
        runtime = PodRuntime(self, pod, self.addresses.take(wanted))
        self.runtimes[key] = runtime
        self._tasks.create_task(self._own(key, runtime))

    async def _own(self, key: str, runtime: PodRuntime) -> None:
        try:
            await runtime.run()
        except Exception:
            log.exception("pod runtime failed pod=%s", key)
        finally:
            self.addresses.release(runtime.ip)
            if self.runtimes.get(key) is runtime:
                del self.runtimes[key]
            self.queue.add(key)  # look again: deleted, replaced, or finished
        if runtime.delete_after:
            await self._delete_object(runtime.pod)

    async def _delete_object(self, pod: m.Pod) -> None:
        with contextlib.suppress(NotFound):
            await self._client.delete(m.Pod, pod.metadata.namespace, pod.metadata.name,
                                      grace_period_seconds=0)

    # --- node ---------------------------------------------------------------------------------

    def _node_status(self) -> m.NodeStatus:
        now = rfc3339(self._clock.now())
        return m.NodeStatus(
            addresses=(m.NodeAddress(type="InternalIP", address=self._node_address),
                       m.NodeAddress(type="Hostname", address=self.config.node_name)),
            conditions=(m.Condition(
                type="Ready", status="True", reason="KubeletReady",
                message="clusterip node agent is posting ready status",
                last_heartbeat_time=now, last_transition_time=now),),
            node_info={"kubeletVersion": KUBELET_VERSION, "operatingSystem": "linux",
                       "containerRuntimeVersion": "clusterip://processes"},
            capacity={"pods": str(self.config.pod_cidr.num_addresses - 3)},
        )

    async def _register(self) -> None:
        cidr = str(self.config.pod_cidr)
        node = m.Node(
            metadata=m.ObjectMeta(name=self.config.node_name,
                                  labels={"kubernetes.io/hostname": self.config.node_name}),
            spec=m.NodeSpec(pod_cidr=cidr, pod_cidrs=(cidr,)),
            status=self._node_status(),
        )
        try:
            await self._client.create(node)
        except ClusterIPError as exc:
            if "already exists" not in str(exc):
                raise
        await self._client.update_status(node)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            status = self._node_status()
            try:
                await self._client.update_status(
                    m.Node(metadata=m.ObjectMeta(name=self.config.node_name), status=status))
            except ClusterIPError as exc:
                log.warning("node heartbeat failed node=%s error=%s", self.config.node_name, exc)

    # --- restart safety ------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Adopt or remove the pod namespaces a previous run of the agent left."""
        by_id = {pod_id(p.metadata.uid): (key, p) for key, p in
                 ((k, self.pods.get(k)) for k in self.pods) if p is not None}
        for net in await self._network.list_pods():
            await _kill_namespace_processes(net.netns)
            await self._network.teardown_pod(net.netns)
            found = by_id.get(net.pod_id)
            if found is None:
                log.info("removed a pod namespace with no pod netns=%s", net.netns)
                continue
            key, slim = found
            if slim.metadata.deletion_timestamp:
                await self._delete_object(slim)
                continue
            if slim.spec.node_name != self.config.node_name:
                continue
            pod = await self._client.get(m.Pod, slim.metadata.namespace, slim.metadata.name)
            log.info("restarting a pod found at agent start pod=%s ip=%s", key, net.ip)
            self._start(key, pod, net.ip)

    # --- what a PodRuntime needs ---------------------------------------------------------------

    def service_env(self, pod: m.Pod) -> dict[str, str]:
        services = [s for s in (self.services.get(k) for k in self.services) if s is not None]
        links = pod.spec.enable_service_links is not False
        return podcore.service_env(services, pod.metadata.namespace, links)

    def log_dir(self, pod: m.Pod) -> Path:
        meta = pod.metadata
        return self.config.state_dir / "pods" / f"{meta.namespace}_{meta.name}_{meta.uid}"

    async def read_log(self, namespace: str, name: str, container: str, previous: bool) -> bytes:
        """The `log` subresource: the container's current (or previous) run's output."""
        pod = await self._client.get(m.Pod, namespace, name)
        folder = self.log_dir(pod) / container
        runs = sorted(int(p.stem) for p in folder.glob("*.log") if p.stem.isdigit())
        if previous:
            runs = runs[:-1]
        if not runs:
            what = "previous terminated container" if previous else "container"
            raise NotFound(f'{what} "{container}" in pod "{name}" has no log')
        return (folder / f"{runs[-1]}.log").read_bytes()


def _grace(pod: m.Pod) -> float:
    if pod.metadata.deletion_grace_period_seconds is not None:
        return float(pod.metadata.deletion_grace_period_seconds)
    grace = pod.spec.termination_grace_period_seconds
    return 30.0 if grace is None else float(grace)


def _parse_ip(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text) if text else None
    except ValueError:
        return None


async def _kill_namespace_processes(netns: str) -> None:
    """SIGKILL every process in a pod namespace (`ip netns pids`) before it is removed."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "pids", netns, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    for pid in out.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


class PodRuntime:
    """One pod on this node: its network, its containers, its status. Ends when stopped, or
    when every container has finished for good."""

    def __init__(self, agent: NodeAgent, pod: m.Pod, ip: ipaddress.IPv4Address) -> None:
        self.agent = agent
        self.pod = pod
        self.uid = pod.metadata.uid
        self.ip = ip
        self.net: PodNet | None = None
        self.delete_after = False
        self.done = asyncio.Event()
        self._stopping = asyncio.Event()
        self._grace = 0.0
        self._dirty = asyncio.Event()
        self._start_time = rfc3339(agent._clock.now())
        self.containers: dict[str, podcore.ContainerRuntimeState] = {
            c.name: podcore.ContainerRuntimeState(name=c.name) for c in pod.spec.containers
        }

    def stop(self, *, grace: float) -> None:
        """Stop the pod (SIGTERM, then SIGKILL after `grace`); a deleted pod's object goes too."""
        self._grace = grace if not self._stopping.is_set() else min(self._grace, grace)
        self.delete_after = bool(self.pod.metadata.deletion_timestamp) or self.delete_after
        self._stopping.set()

    def _changed(self, name: str, state: podcore.ContainerRuntimeState) -> None:
        self.containers[name] = state
        self._dirty.set()

    def _event(self, container: str, type_: str, reason: str, message: str) -> None:
        self.agent.events.record(self.pod, type_, reason, message,
                                 field_path=ev.container_field_path(container))

    async def run(self) -> None:
        agent = self.agent
        meta = self.pod.metadata
        try:
            self.net = await agent._network.setup_pod(
                pod_id(meta.uid), self.ip,
                podcore.resolv_conf(meta.namespace, nameserver=agent.config.cluster_dns,
                                    domain=agent.config.cluster_domain))
            env = agent.service_env(self.pod)
            self._dirty.set()
            async with asyncio.TaskGroup() as tasks:
                writer = tasks.create_task(self._write_status())
                supervisors = [tasks.create_task(self._supervise(c, env))
                               for c in self.pod.spec.containers]
                await asyncio.gather(*supervisors)
                await self._flush()
                writer.cancel()
        finally:
            if self.net is not None:
                await _kill_namespace_processes(self.net.netns)
                await agent._network.teardown_pod(self.net.netns)
            self.done.set()

    # --- status ---------------------------------------------------------------------------------

    async def _write_status(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._write_once()

    async def _flush(self) -> None:
        if self._dirty.is_set():
            self._dirty.clear()
            await self._write_once()

    async def _write_once(self) -> None:
        agent = self.agent
        status = podcore.pod_status(
            self.pod, list(self.containers.values()), pod_ip=str(self.ip),
            host_ip=agent._node_address, start_time=self._start_time,
            now=rfc3339(agent._clock.now()))
        self.pod = msgspec.structs.replace(self.pod, status=status)
        meta = msgspec.structs.replace(self.pod.metadata, resource_version="")
        try:
            await agent._client.update_status(msgspec.structs.replace(self.pod, metadata=meta))
        except (NotFound, Conflict) as exc:
            log.debug("pod status not written pod=%s/%s error=%s",
                      self.pod.metadata.namespace, self.pod.metadata.name, exc)

    # --- containers ------------------------------------------------------------------------------

    async def _supervise(self, container: m.Container, env: dict[str, str]) -> None:
        """Start, watch, probe and restart one container until the pod stops or it is done."""
        name = container.name
        policy = self.pod.spec.restart_policy or "Always"
        runs = 0
        clock = self.agent._clock
        while not self._stopping.is_set():
            spec = self._process_spec(container, env, runs)
            runs += 1
            started = clock.monotonic()
            try:
                process = await self.agent._runner.start(spec)
                self._changed(name, podcore.started(self.containers[name], process.pid,
                                                    rfc3339(clock.now()),
                                                    container.readiness_probe is not None))
                self._event(name, ev.NORMAL, ev.CREATED, ev.created_message(name))
                self._event(name, ev.NORMAL, ev.STARTED, ev.started_message(name))
                outcome = await self._watch(container, process)
            except StartError as exc:
                outcome = exc
            ran = clock.monotonic() - started
            if isinstance(outcome, StartError):
                self._event(name, ev.WARNING, ev.FAILED, ev.failed_message(str(outcome)))
                self._changed(name, podcore.start_failed(self.containers[name], str(outcome),
                                                         rfc3339(clock.now())))
                exit_code = podcore.START_ERROR_EXIT_CODE
            else:
                exit_code = outcome
                self._changed(name, podcore.exited(self.containers[name], exit_code,
                                                   rfc3339(clock.now())))
            if self._stopping.is_set() or not podcore.should_restart(policy, exit_code):
                return
            await self._back_off(name, ran)

    async def _back_off(self, name: str, ran_seconds: float) -> None:
        state, delay = podcore.back_off(self.containers[name], ran_seconds)
        self._changed(name, state)
        self._event(name, ev.WARNING, ev.BACK_OFF, ev.back_off_message(name, self.pod))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if not self._stopping.is_set():
            self._changed(name, podcore.restarting(self.containers[name]))

    def _process_spec(self, container: m.Container, env: dict[str, str], run: int
                      ) -> ProcessSpec:
        folder = self.agent.log_dir(self.pod) / container.name
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / f"{run}.log"
        fields = podcore.pod_fields(self.pod, pod_ip=str(self.ip),
                                    host_ip=self.agent._node_address)
        full_env = {"HOSTNAME": self.pod.metadata.name,
                    **podcore.container_env(container, env, fields=fields)}
        return ProcessSpec(
            argv=podcore.container_argv(container, full_env),
            env=full_env,
            cwd=container.working_dir or "/",
            stdout_path=log_path,
            stderr_path=log_path,
            netns=self.net.netns if self.net else None,
        )

    async def _watch(self, container: m.Container, process: RunningProcess
                     ) -> int | StartError:
        """Wait for the process to exit, probing it meanwhile; stop it when the pod stops or
        its liveness probe fails. Returns its exit code (or the StartError of a program that
        `ip netns exec` could not run)."""
        async with asyncio.TaskGroup() as tasks:
            exited = tasks.create_task(_exit_of(process))
            stop = tasks.create_task(self._stopping.wait())
            probes = [tasks.create_task(self._probe(container, process, kind, probe))
                      for kind, probe in (("readiness", container.readiness_probe),
                                          ("liveness", container.liveness_probe))
                      if probe is not None]
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                self._event(container.name, ev.NORMAL, ev.KILLING,
                            ev.killing_message(container.name))
                await process.terminate(self._grace)
            for task in (stop, *probes):
                task.cancel()
            return await exited

    async def _probe(self, container: m.Container, process: RunningProcess, kind: str,
                     probe: m.Probe) -> None:
        agent = self.agent
        name = container.name
        state = podcore.ProbeState.initial(kind)
        timings = podcore.ProbeTimings.of(probe)
        exec_runner = make_exec_runner(self.net.netns if self.net else None)
        await asyncio.sleep(timings.initial_delay)
        while True:
            result = await probe_once(probe, pod_ip=str(self.ip), container=container,
                                      all_containers=self.pod.spec.containers,
                                      connect=agent._connect, exec_runner=exec_runner)
            if not result.ok:
                self._event(name, ev.WARNING, ev.UNHEALTHY,
                            ev.unhealthy_message(kind, result.message))
            state = podcore.record(state, probe, result.ok)
            if kind == "readiness":
                self._changed(name, podcore.with_readiness(self.containers[name], state))
            elif not state.result:
                log.info("liveness probe failed, restarting pod=%s container=%s",
                         self.pod.metadata.name, name)
                self._event(name, ev.NORMAL, ev.KILLING, ev.liveness_killing_message(name))
                await process.terminate(float(self.pod.spec.termination_grace_period_seconds
                                              or 30))
                return
            await asyncio.sleep(timings.period)


async def _exit_of(process: RunningProcess) -> int | StartError:
    """The exit code, or the StartError `wait()` raises for a program that never ran."""
    try:
        return await process.wait()
    except StartError as exc:
        return exc
