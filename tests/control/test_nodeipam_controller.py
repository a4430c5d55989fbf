"""The node IPAM controller gives each Node without one a pod CIDR of its own, the lowest free
block first; a node that names its own keeps it; a deleted node's block goes to the next."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clusterip.control.nodeipam import NodeIpamController
from clusterip.core import model as m
from clusterip.core.nodeipam import NodeCidrs
from clusterip.registry.objects import ObjectStore
from clusterip.testing.events import FakeRecorder

pytestmark = pytest.mark.anyio

CIDRS = NodeCidrs.parse("10.244.0.0/22", 24)  # room for four nodes


def node(name: str, pod_cidr: str = "") -> m.Node:
    spec = m.NodeSpec(pod_cidr=pod_cidr, pod_cidrs=(pod_cidr,) if pod_cidr else ())
    return m.Node(metadata=m.ObjectMeta(name=name), spec=spec)


async def cidrs(objects: ObjectStore) -> dict[str, str]:
    nodes, _ = await objects.list(m.Node)
    return {n.metadata.name: n.spec.pod_cidr for n in nodes}


async def test_nodes_registering_at_once_get_distinct_blocks_lowest_first(
        objects: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    controller = NodeIpamController(objects, CIDRS)
    async with running(controller.run):
        await asyncio.gather(*(objects.create(node(f"n{i}")) for i in range(3)))

        async def all_assigned() -> dict[str, str] | None:
            found = await cidrs(objects)
            return found if all(found.values()) else None

        assigned = await eventually(all_assigned)
    assert sorted(assigned.values()) == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    stored = await objects.get(m.Node, "", "n0")
    assert stored.spec.pod_cidrs == (stored.spec.pod_cidr,)


async def test_a_node_naming_its_block_keeps_it_and_others_go_around_it(
        objects: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    await objects.create(node("own", "10.244.0.0/24"))
    controller = NodeIpamController(objects, CIDRS)
    async with running(controller.run):
        await objects.create(node("new"))
        assert await eventually(lambda: _cidr(objects, "new")) == "10.244.1.0/24"
    assert (await cidrs(objects))["own"] == "10.244.0.0/24"


async def test_a_deleted_node_s_block_goes_to_the_node_that_waited_for_one(
        objects: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    for i in range(4):
        await objects.create(node(f"n{i}", f"10.244.{i}.0/24"))
    events = FakeRecorder()
    controller = NodeIpamController(objects, CIDRS, events=events)
    async with running(controller.run):
        await objects.create(node("late"))
        await eventually(lambda: events.reasons())
        assert events.reasons() == ["CIDRAssignmentFailed"]
        await objects.delete(m.Node, "", "n2")
        assert await eventually(lambda: _cidr(objects, "late")) == "10.244.2.0/24"


async def test_a_block_that_is_another_node_s_is_reported(
        objects: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    await objects.create(node("a", "10.244.0.0/24"))
    await objects.create(node("b", "10.244.0.0/24"))
    events = FakeRecorder()
    controller = NodeIpamController(objects, CIDRS, events=events)
    async with running(controller.run):
        await eventually(lambda: events.reasons())
    assert set(events.reasons()) == {"CIDRNotAvailable"}


async def _cidr(objects: ObjectStore, name: str) -> str:
    return (await objects.get(m.Node, "", name)).spec.pod_cidr
