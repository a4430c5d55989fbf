"""The node IPAM controller: gives every Node that has none a pod CIDR of its own.

kube-controller-manager's range allocator, cut down: a node agent registers its Node without
`spec.podCIDR` (unless it was told one), and this controller writes the lowest free block of the
cluster CIDR into `spec.podCIDR` and `spec.podCIDRs` (`core.nodeipam`); the agent waits for it
before it builds its bridge. The field may be set once (validation refuses a change), so a block
is never taken from a node that has it.

Level-triggered: a Node without a pod CIDR enqueues its name; `sync` reads the cache, picks a
block that no cached Node has and that this controller has not already handed to another node
in a write its cache has not shown yet (`_handed`), and writes it to the stored Node (a stale
read fails with Conflict and is retried). Only the leader runs controllers, so two API servers
never hand out blocks at once. A Node deleted frees its block for the next.

A Node that names a block itself (`clusterip up --pod-cidr`) keeps it; if that block lies outside
the cluster CIDR or is another node's, a Warning event `CIDRNotAvailable` says so. A full cluster
CIDR is a Warning `CIDRAssignmentFailed` on the Node, retried when any Node changes.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from clusterip.control.informer import Informer, InformerFactory
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import NotFound, RangeFull
from clusterip.core.nodeipam import NodeCidrs, claim_errors
from clusterip.registry.client import Client
from clusterip.registry.events import DISCARD, EventRecorder

__all__ = ["NodeIpamController"]

log = logging.getLogger(__name__)


class NodeIpamController:
    """Assigns pod CIDRs to Nodes. See the module docstring."""

    def __init__(self, client: Client, cidrs: NodeCidrs, *,
                 informers: InformerFactory | None = None,
                 events: EventRecorder = DISCARD) -> None:
        self._client = client
        self.cidrs = cidrs
        self._events = events
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client)
        self.nodes: Informer[m.Node] = self.informers.informer(m.Node)
        self.nodes.add_handler(self._on_node)
        self.queue = WorkQueue("nodeipam")
        self.ready = asyncio.Event()
        self._handed: dict[str, str] = {}  # node → block written but not yet in the cache

    def _on_node(self, key: str, old: m.Node | None, new: m.Node | None) -> None:
        if new is None:
            self._handed.pop(key, None)
            for other in self.nodes:  # its block is free: a node that waited may have it
                if not self._cidr_of(other):
                    self.queue.add(other)
        elif not new.spec.pod_cidr or (old is None or old.spec.pod_cidr != new.spec.pod_cidr):
            self.queue.add(key)

    def _cidr_of(self, key: str) -> str:
        node = self.nodes.get(key)
        return node.spec.pod_cidr if node is not None else ""

    async def run(self) -> None:
        """Run (the informers, if its own, and) one worker. Never returns."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._own_informers:
                    tg.create_task(self.informers.run())
                await self.nodes.has_synced.wait()
                self.ready.set()
                tg.create_task(run_worker(self.queue, self.sync))
        finally:
            self.queue.shutdown()

    def _owners(self, but: str) -> dict[str, str]:
        """Every block in use, and its node (but `but`'s own)."""
        owners = {block: name for name, block in self._handed.items() if name != but}
        for key in self.nodes:
            block = self._cidr_of(key)
            if block and key != but:
                owners[block] = key
        return owners

    async def sync(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            return
        owners = self._owners(key)
        if node.spec.pod_cidr:
            self._handed.pop(key, None)
            problems = claim_errors(self.cidrs, key, node.spec.pod_cidr, owners)
            if problems:
                self._events.record(node, ev.WARNING, ev.CIDR_NOT_AVAILABLE, "; ".join(problems))
            return
        try:
            block = self._handed.get(key) or self.cidrs.assign(owners)
        except RangeFull as exc:
            self._events.record(node, ev.WARNING, ev.CIDR_ASSIGNMENT_FAILED, str(exc))
            return
        self._handed[key] = block
        try:
            stored = await self._client.get(m.Node, "", key)
        except NotFound:
            self._handed.pop(key, None)
            return
        if stored.spec.pod_cidr or stored.metadata.uid != node.metadata.uid:
            return  # the cache is behind: its next event brings the node here again
        spec = msgspec.structs.replace(stored.spec, pod_cidr=block, pod_cidrs=(block,))
        await self._client.update(msgspec.structs.replace(stored, spec=spec))
        log.info("pod CIDR assigned node=%s cidr=%s", key, block)
