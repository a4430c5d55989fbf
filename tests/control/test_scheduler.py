"""The scheduler binds pods that name no node, and waits while no node is ready."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clusterip.control.scheduler import Scheduler
from clusterip.core import model as m
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
