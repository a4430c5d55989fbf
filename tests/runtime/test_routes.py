"""NodeRoutes keeps the node's routes equal to what the Nodes say: other nodes' pod CIDRs via
their InternalIPs, followed as nodes come, change and go (a fake route table; the kernel's is
tested in test_podnet.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N
from typing import Any

import msgspec
import pytest

from clusterip.control.informer import InformerFactory
from clusterip.core import model as m
from clusterip.registry.objects import ObjectStore
from clusterip.runtime.routes import NodeRoutes
from clusterip.testing.routes import FakeRouteTable

pytestmark = pytest.mark.anyio


def node(name: str, cidr: str, ip: str) -> m.Node:
    return m.Node(metadata=m.ObjectMeta(name=name), spec=m.NodeSpec(pod_cidr=cidr),
                  status=m.NodeStatus(addresses=(m.NodeAddress(type="InternalIP", address=ip),)))


async def test_routes_follow_the_nodes(objects: ObjectStore, running: Callable[..., Any],
                                       eventually: Callable[..., Awaitable[Any]]) -> None:
    await objects.create(node("n1", "10.244.0.0/24", "172.18.0.2"))
    await objects.create(node("n2", "10.244.1.0/24", "172.18.0.3"))
    table = FakeRouteTable()
    table.routes[N("10.244.9.0/24")] = A("172.18.0.9")  # a node that left while we were down
    informers = InformerFactory(objects)
    routes = NodeRoutes(informers, "n1", table)
    async with running(informers.run, routes.run):
        await eventually(lambda: _is(table, {N("10.244.1.0/24"): A("172.18.0.3")}))
        await objects.create(node("n3", "10.244.2.0/24", "172.18.0.4"))
        await eventually(lambda: _is(table, {N("10.244.1.0/24"): A("172.18.0.3"),
                                             N("10.244.2.0/24"): A("172.18.0.4")}))
        moved = await objects.get(m.Node, "", "n2")
        await objects.update_status(msgspec.structs.replace(moved, status=m.NodeStatus(
            addresses=(m.NodeAddress(type="InternalIP", address="172.18.0.30"),))))
        await objects.delete(m.Node, "", "n3")
        await eventually(lambda: _is(table, {N("10.244.1.0/24"): A("172.18.0.30")}))


async def _is(table: FakeRouteTable, expected: dict[N, A]) -> bool:
    return table.routes == expected
