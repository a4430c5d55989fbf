"""The events the node agent records on its pods, in kubelet's words, with every kernel-facing
part faked: FakePodNetwork (no namespace is made), FakeProcessRunner (no process runs), a
`connect` that is always refused (so every probe fails), a Registry over a MemoryStore (so a
status write changes only the status, and a delete is graceful, as through the API) and a
FakeRecorder that checks each event as the API would.

Covered: Created and Started per container, Unhealthy for a failed readiness probe, Killing on
a failed liveness probe and on the pod's deletion, BackOff when a container waits to restart,
Failed when its program cannot be run; each event on the pod, at `spec.containers{<name>}`.
No root needed; nothing here touches a network namespace.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest

from clusterip.control.informer import InformerFactory
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.ipalloc import ServiceRange
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.registry.registry import Registry
from clusterip.runtime.agent import AgentConfig, NodeAgent
from clusterip.testing.builders import make_pod
from clusterip.testing.clock import FakeClock
from clusterip.testing.events import FakeRecorder, RecordedEvent
from clusterip.testing.fakes_runtime import FakePodNetwork, FakeProcessRunner

pytestmark = pytest.mark.anyio

Eventually = Callable[..., Awaitable[Any]]
MAIN = "spec.containers{main}"


async def refused(host: str, port: int, timeout: float
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    raise ConnectionRefusedError(f"[Errno 111] Connect call failed ('{host}', {port})")


@dataclass
class Node:
    agent: NodeAgent
    runner: FakeProcessRunner
    network: FakePodNetwork
    recorder: FakeRecorder
    objects: Registry

    def seen(self, reason: str) -> list[RecordedEvent]:
        return self.recorder.of(reason)


@pytest.fixture
async def node(objects: ObjectStore, clock: FakeClock, tmp_path: Path,
               running: Any) -> AsyncIterator[Node]:
    ranges = [ServiceRange.parse("10.96.0.0/12")]
    registry = Registry(objects, ClusterIPAllocator(objects, ranges, random.Random(1)),
                        service_cidrs=[r.cidr for r in ranges], clock=clock)
    await registry.bootstrap(api_port=7080)
    recorder = FakeRecorder(component=ev.KUBELET)
    runner = FakeProcessRunner(clock)
    network = FakePodNetwork()
    informers = InformerFactory(registry)
    agent = NodeAgent(registry, network, runner, refused,
                      config=AgentConfig(state_dir=tmp_path / "node"), clock=clock,
                      informers=informers, events=recorder)
    async with running(informers.run, agent.run):
        await agent.synced()
        yield Node(agent, runner, network, recorder, registry)


def probe(failures: int = 3) -> m.Probe:
    return m.Probe(tcp_socket=m.TCPSocketAction(port=8080), period_seconds=3600,
                   failure_threshold=failures)


def with_probes(readiness: m.Probe | None = None, liveness: m.Probe | None = None
                ) -> Callable[[m.Pod], m.Pod]:
    def mutate(pod: m.Pod) -> m.Pod:
        (c,) = pod.spec.containers
        c = msgspec.structs.replace(c, readiness_probe=readiness, liveness_probe=liveness)
        return msgspec.structs.replace(pod, spec=msgspec.structs.replace(
            pod.spec, containers=(c,)))
    return mutate


async def test_a_started_container_and_its_failing_readiness_probe(
    node: Node, eventually: Eventually,
) -> None:
    pod = await node.objects.create(make_pod("web-1", mutate=with_probes(readiness=probe())))
    await eventually(lambda: node.seen("Unhealthy"), message="the probe ran")
    created, started = node.seen("Created")[0], node.seen("Started")[0]
    unhealthy = node.seen("Unhealthy")[0]
    assert [(e.type, e.message, e.field_path) for e in (created, started, unhealthy)] == [
        ("Normal", "Created container: main", MAIN),
        ("Normal", "Started container main", MAIN),
        ("Warning", "Readiness probe failed: [Errno 111] Connect call failed "
                    "('10.244.0.2', 8080)", MAIN),
    ]
    assert all(e.obj.metadata.uid == pod.metadata.uid for e in node.recorder.events)
    assert node.seen("Killing") == []  # a readiness failure kills nothing


async def test_a_failed_liveness_probe_kills_and_the_restart_backs_off(
    node: Node, eventually: Eventually,
) -> None:
    await node.objects.create(make_pod("web-1", mutate=with_probes(liveness=probe(1))))
    await eventually(lambda: node.seen("BackOff"), message="killed, then backing off")
    assert [e.message for e in node.seen("Unhealthy")] == [
        "Liveness probe failed: [Errno 111] Connect call failed ('10.244.0.2', 8080)"]
    (killing,) = node.seen("Killing")
    assert killing.message == "Container main failed liveness probe, will be restarted"
    (back_off,) = node.seen("BackOff")
    uid = back_off.obj.metadata.uid
    assert (back_off.type, back_off.message, back_off.field_path) == (
        "Warning", f"Back-off restarting failed container main in pod web-1_default({uid})",
        MAIN)
    assert node.runner.processes[0].signals == ["SIGTERM"]


async def test_a_deleted_pod_has_its_containers_stopped(
    node: Node, eventually: Eventually,
) -> None:
    await node.objects.create(make_pod("web-1"))
    await eventually(lambda: node.seen("Started"))
    await node.objects.delete(m.Pod, "default", "web-1", grace_period_seconds=5)
    await eventually(lambda: node.seen("Killing"))
    (killing,) = node.seen("Killing")
    assert (killing.type, killing.message, killing.field_path) == (
        "Normal", "Stopping container main", MAIN)
    await eventually(lambda: not node.network.pods, message="the pod's network is gone")
    assert node.seen("BackOff") == []  # a stopped pod is not restarted


async def test_a_program_that_cannot_run_fails(node: Node, eventually: Eventually) -> None:
    node.runner.fail_start("nosuch")
    await node.objects.create(make_pod("web-1", command=("nosuch",)))
    await eventually(lambda: node.seen("Failed"))
    (failed,) = node.seen("Failed")
    assert (failed.type, failed.message, failed.field_path) == (
        "Warning", 'Error: exec: "nosuch": No such file or directory', MAIN)
    assert node.seen("Started") == []
    await eventually(lambda: node.seen("BackOff"))
