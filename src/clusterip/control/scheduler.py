"""The scheduler: binds every pod that names no node to a node (`core.scheduling` decides which).

Level-triggered like the other controllers: a pod without `spec.nodeName` (and not being
deleted) enqueues its key, and a node that changes enqueues every unbound pod; `sync(key)` reads
the caches, asks `choose_node` (counting the bindings it wrote that the cache does not show
yet, as kube-scheduler "assumes" them), and writes the stored pod with `spec.nodeName` set
(the binding; never the cached copy, which may be a slim projection). A stale cache makes the
write fail with Conflict, and the key is retried with back-off. With no ready node the pod
waits: the next node change enqueues it again.

Events, on the pod (the scheduler's words): `Scheduled` `Successfully assigned default/p1 to
node-1` after the binding is written. No FailedScheduling: a pod waits quietly for a node (the
scheduler looks again at every node change, heartbeats included, and after every restart: each
look would be a write).
"""

from __future__ import annotations

import asyncio
import logging

import msgspec

from clusterip.control.informer import Informer, InformerFactory, split_key
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import NotFound
from clusterip.core.scheduling import choose_node
from clusterip.registry.client import Client
from clusterip.registry.events import DISCARD, EventRecorder

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


def _unbound(pod: m.Pod | None) -> bool:
    return pod is not None and not pod.spec.node_name and not pod.metadata.deletion_timestamp


class Scheduler:
    """Binds unscheduled pods to ready nodes. See the module docstring."""

    def __init__(self, client: Client, *, informers: InformerFactory | None = None,
                 events: EventRecorder = DISCARD) -> None:
        self._client = client
        self._events = events
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client)
        self.pods: Informer[m.Pod] = self.informers.informer(m.Pod)
        self.nodes: Informer[m.Node] = self.informers.informer(m.Node)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.queue = WorkQueue("scheduler")
        self.ready = asyncio.Event()
        # pod key → node: bound by this scheduler, not yet shown bound by the cache
        self._assumed: dict[str, str] = {}

    def _on_pod(self, key: str, old: m.Pod | None, new: m.Pod | None) -> None:
        if new is None or new.spec.node_name:
            self._assumed.pop(key, None)  # the cache shows the binding (or the pod is gone)
        if _unbound(new):
            self.queue.add(key)

    def _on_node(self, key: str, old: m.Node | None, new: m.Node | None) -> None:
        for pod_key in self.pods:
            if _unbound(self.pods.get(pod_key)):
                self.queue.add(pod_key)

    async def run(self) -> None:
        """Run (the informers, if its own, and) one worker. Never returns."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._own_informers:
                    tg.create_task(self.informers.run())
                await self.pods.has_synced.wait()
                await self.nodes.has_synced.wait()
                self.ready.set()
                tg.create_task(run_worker(self.queue, self.sync))
        finally:
            self.queue.shutdown()

    async def synced(self) -> None:
        await self.ready.wait()

    async def sync(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not _unbound(pod):
            return
        node = choose_node(self.nodes.values(), self.pods.values(), self._assumed)
        if node is None:
            return
        # The cache may hold slim pods (`core.projections`): bind the stored pod, as read now,
        # and only if it is still the one the cache showed (its resourceVersion) and unbound.
        namespace, name = split_key(key)
        try:
            stored = await self._client.get(m.Pod, namespace, name)
            if stored.spec.node_name or stored.metadata.uid != pod.metadata.uid:
                return
            spec = msgspec.structs.replace(stored.spec, node_name=node)
            bound = await self._client.update(msgspec.structs.replace(stored, spec=spec))
        except NotFound:
            return
        self._assumed[key] = node
        log.info("scheduled pod=%s/%s node=%s", namespace, name, node)
        self._events.record(bound, ev.NORMAL, ev.SCHEDULED, ev.scheduled_message(bound, node))
