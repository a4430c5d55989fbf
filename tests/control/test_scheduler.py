"""The scheduler binds pods that name no node, and waits while no node is ready."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clusterip.control.informer import InformerFactory
from clusterip.control.scheduler import Scheduler
from clusterip.core import model as m
from clusterip.core.projections import slim_pod
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_pod

pytestmark = pytest.mark.anyio


def ready_node(name: str) -> m.Node:
    return m.Node(metadata=m.ObjectMeta(name=name), status=m.NodeStatus(
        conditions=(m.Condition(type="Ready", status="True"),)))


async def test_pods_are_bound_once_a_node_is_ready(
    objects: ObjectStore, running: Callable[..., Any],
    eventually: Callable[..., Awaitable[Any]],
) -> None:
    await objects.create(make_pod("p1", node=""))
    scheduler = Scheduler(objects)

    async def bound() -> str:
        return (await objects.get(m.Pod, "default", "p1")).spec.node_name

    async with running(scheduler.run):
        await scheduler.synced()
        assert await bound() == ""
        await objects.create(ready_node("node-1"))
        await eventually(lambda: bound())
        assert await bound() == "node-1"


async def test_binding_keeps_the_full_spec_when_the_cache_holds_slim_pods(
    objects: ObjectStore, running: Callable[..., Any],
    eventually: Callable[..., Awaitable[Any]],
) -> None:
    pod = make_pod("p1", node="", command=("sleep", "1d"))
    await objects.create(pod)
    await objects.create(ready_node("node-1"))
    scheduler = Scheduler(objects, informers=InformerFactory(
        objects, transforms={m.Pod: slim_pod}))

    async def bound() -> m.Pod | None:
        stored = await objects.get(m.Pod, "default", "p1")
        return stored if stored.spec.node_name else None

    async with running(scheduler.informers.run, scheduler.run):
        stored = await eventually(lambda: bound())
    assert stored.spec.containers[0].command == ("sleep", "1d")
