"""The node's routes to other nodes' pods, kept equal to what the Nodes say.

Level-triggered with one key: any Node change enqueues "routes"; `sync` computes the table the
node must have (`core.noderoutes.desired_routes` over the cache of Nodes), reads the routes it
has (only clusterip's own, marked ones), and replaces or deletes the difference. A failed sync
is retried with back-off by the work queue; a route someone deleted by hand comes back at the
next Node change or resync.

The kernel sits behind `RouteTable` (a real one over `runtime.netlink` in the node's namespace,
run in a worker thread; `testing.routes.FakeRouteTable` in tests).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Protocol

from clusterip.control.informer import Informer, InformerFactory
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import model as m
from clusterip.core.noderoutes import desired_routes, route_changes
from clusterip.runtime.netlink import Netlink

__all__ = ["NetlinkRouteTable", "NodeRoutes", "RouteTable"]

log = logging.getLogger(__name__)

Routes = dict[ipaddress.IPv4Network, ipaddress.IPv4Address]
_KEY = "routes"


class RouteTable(Protocol):
    async def read(self) -> Routes: ...

    async def replace(self, network: ipaddress.IPv4Network,
                      via: ipaddress.IPv4Address) -> None: ...

    async def delete(self, network: ipaddress.IPv4Network) -> None: ...


class NetlinkRouteTable:
    """clusterip's gateway routes in network namespace `netns` (None: this one)."""

    def __init__(self, netns: str | None) -> None:
        self.netns = netns

    async def read(self) -> Routes:
        return await asyncio.to_thread(self._read)

    def _read(self) -> Routes:
        with Netlink(self.netns) as nl:
            return nl.gateway_routes()

    async def replace(self, network: ipaddress.IPv4Network, via: ipaddress.IPv4Address) -> None:
        await asyncio.to_thread(self._replace, network, via)

    def _replace(self, network: ipaddress.IPv4Network, via: ipaddress.IPv4Address) -> None:
        with Netlink(self.netns) as nl:
            nl.replace_gateway_route(network, via)

    async def delete(self, network: ipaddress.IPv4Network) -> None:
        await asyncio.to_thread(self._delete, network)

    def _delete(self, network: ipaddress.IPv4Network) -> None:
        with Netlink(self.netns) as nl:
            nl.delete_gateway_route(network)


class NodeRoutes:
    """Keeps node `node_name`'s routes to the other nodes' pod CIDRs. See the module docstring."""

    def __init__(self, informers: InformerFactory, node_name: str, table: RouteTable) -> None:
        self.node_name = node_name
        self.table = table
        self.nodes: Informer[m.Node] = informers.informer(m.Node)
        self.nodes.add_handler(lambda key, old, new: self.queue.add(_KEY))
        self.queue = WorkQueue("noderoutes")
        self.synced = asyncio.Event()

    async def run(self) -> None:
        """One worker, once the Node cache has synced (its owner runs the informers)."""
        try:
            await self.nodes.has_synced.wait()
            self.queue.add(_KEY)
            await run_worker(self.queue, self.sync)
        finally:
            self.queue.shutdown()

    async def sync(self, key: str) -> None:
        desired = desired_routes(self.node_name, self.nodes.values())
        replace, delete = route_changes(desired, await self.table.read())
        for network, via in replace:
            await self.table.replace(network, via)
            log.info("route to pods of another node %s via %s", network, via)
        for network in delete:
            await self.table.delete(network)
            log.info("route %s deleted: no node has those pods now", network)
        self.synced.set()
