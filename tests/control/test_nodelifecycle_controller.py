"""The node lifecycle controller on a fake clock: a node that stops posting heartbeats goes
Unknown and its pods not ready; after the eviction time they are deleted; a node that comes
back is left alone; pods bound to a deleted node are deleted at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clusterip.control.nodelifecycle import NodeLifecycleController
from clusterip.core import model as m
from clusterip.core.nodelifecycle import Timing
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_pod
from clusterip.testing.clock import FakeClock
from clusterip.testing.events import FakeRecorder

pytestmark = pytest.mark.anyio

TIMING = Timing(grace=10, eviction=30, period=0.01)  # periods are real time, the rest fake


def node(name: str, heartbeat: str) -> m.Node:
    return m.Node(metadata=m.ObjectMeta(name=name), status=m.NodeStatus(conditions=(
        m.Condition(type="Ready", status="True", last_heartbeat_time=heartbeat),)))


async def heartbeat(objects: ObjectStore, name: str, value: str) -> None:
    await objects.update_status(node(name, value))


async def ready_status(objects: ObjectStore, kind: type[Any], ns: str, name: str) -> str:
    obj = await objects.get(kind, ns, name)
    return next(c.status for c in obj.status.conditions if c.type == "Ready")


@pytest.fixture
async def cluster(objects: ObjectStore) -> ObjectStore:
    for name in ("n1", "n2"):
        await objects.create(node(name, "h0"))
    for name, on in (("a", "n1"), ("b", "n2")):
        await objects.create(make_pod(name, node=on, ip=f"10.244.{on[1]}.5", ready=True))
    return objects


async def test_a_silent_node_goes_unknown_then_its_pods_are_evicted(
        cluster: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    clock, events = FakeClock(), FakeRecorder()
    controller = NodeLifecycleController(cluster, clock=clock, timing=TIMING, events=events)
    async with running(controller.run):
        await eventually(lambda: _observed(controller, "n1", "n2"))
        await seconds_pass(11, clock, cluster, controller, eventually)  # n2 posts, n1 is silent
        assert await eventually(lambda: _is(cluster, m.Node, "", "n1", "Unknown"))
        assert await eventually(lambda: _is(cluster, m.Pod, "default", "a", "False"))
        assert await ready_status(cluster, m.Pod, "default", "b") == "True"
        assert "NodeNotReady" in events.reasons()

        await seconds_pass(30, clock, cluster, controller, eventually)
        assert await eventually(lambda: _gone(cluster, "a"))
    assert "TaintManagerEviction" in events.reasons()
    assert (await cluster.get(m.Pod, "default", "b")).metadata.deletion_timestamp is None


async def test_a_node_that_comes_back_in_time_keeps_its_pods(
        cluster: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    clock = FakeClock()
    controller = NodeLifecycleController(cluster, clock=clock, timing=TIMING)
    async with running(controller.run):
        await eventually(lambda: _observed(controller, "n1", "n2"))
        clock.advance(11)
        assert await eventually(lambda: _is(cluster, m.Node, "", "n1", "Unknown"))
        await heartbeat(cluster, "n1", "h1")  # the agent is back: Ready=True again
        await eventually(lambda: _saw(controller, "n1", "h1"))
        clock.advance(5)
        await heartbeat(cluster, "n1", "h2")
        await eventually(lambda: _saw(controller, "n1", "h2"))
        assert await _is(cluster, m.Node, "", "n1", "True")
    assert (await cluster.get(m.Pod, "default", "a")).metadata.deletion_timestamp is None


async def test_pods_of_a_deleted_node_are_deleted_at_once(
        cluster: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    controller = NodeLifecycleController(cluster, clock=FakeClock(), timing=TIMING)
    async with running(controller.run):
        await controller.ready.wait()
        await cluster.delete(m.Node, "", "n1")
        assert await eventually(lambda: _gone(cluster, "a"))


async def seconds_pass(count: int, clock: FakeClock, objects: ObjectStore,
                       controller: NodeLifecycleController,
                       eventually: Callable[..., Awaitable[Any]]) -> None:
    """`count` seconds of fake time, n2 posting a heartbeat each second (and the controller
    seeing it before the next)."""
    for _ in range(count):
        clock.advance(1)
        value = f"h{clock.monotonic()}"
        await heartbeat(objects, "n2", value)
        await eventually(lambda value=value: _saw(controller, "n2", value))


async def _saw(controller: NodeLifecycleController, name: str, value: str) -> bool:
    seen = controller.observed(name)
    return seen is not None and seen.heartbeat == value


async def _observed(controller: NodeLifecycleController, *names: str) -> bool:
    return all(controller.observed(name) is not None for name in names)


async def _is(objects: ObjectStore, kind: type[Any], ns: str, name: str, status: str) -> bool:
    return await ready_status(objects, kind, ns, name) == status


async def _gone(objects: ObjectStore, name: str) -> bool:
    pods, _ = await objects.list(m.Pod, "default")
    return name not in {p.metadata.name for p in pods}


