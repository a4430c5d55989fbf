"""The node lifecycle controller: a node whose agent stops posting heartbeats goes Unknown, its
pods go not ready, and after the eviction time they are deleted so their Deployments replace
them on other nodes. Pods bound to a Node that no longer exists are deleted at once (kube's pod
garbage collector).

Decisions are `core.nodelifecycle`'s; this is the loop around them. Level-triggered: a Node
that changes enqueues its name, and so does every node every `timing.period` seconds (time
passing is what turns a silent node Unknown, and no watch event says so). `sync(name)`:

1. judges the node against what was last seen of its heartbeat, on the controller's clock;
2. UNKNOWN: writes `Ready=Unknown` on the Node (once) and a `NodeNotReady` event;
3. not READY: writes `Ready=False` on each of its pods that still says True (the stored pod,
   read now: the cache may hold slim copies), so endpoints drop them;
4. evict: deletes its pods that are not terminating yet (a graceful delete: if the agent comes
   back it stops them) with a `TaintManagerEviction` event on each.

Only the leader runs it. What it has seen lives in memory: a new leader starts every node's
grace period afresh, so it never evicts on a heartbeat it did not watch age.
"""

from __future__ import annotations

import asyncio
import logging

from clusterip.clock import Clock
from clusterip.control.informer import Informer, InformerFactory
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import Conflict, NotFound
from clusterip.core.nodelifecycle import (
    Health,
    Seen,
    Timing,
    judge,
    not_ready_pod,
    unknown_node,
)
from clusterip.core.timefmt import rfc3339
from clusterip.registry.client import Client
from clusterip.registry.events import DISCARD, EventRecorder

__all__ = ["NodeLifecycleController"]

log = logging.getLogger(__name__)

BY_NODE = "node"


def _node_of(pod: m.Pod) -> tuple[str, ...]:
    return (pod.spec.node_name,) if pod.spec.node_name else ()


class NodeLifecycleController:
    """Watches node heartbeats and acts on silent nodes. See the module docstring."""

    def __init__(self, client: Client, *, clock: Clock, timing: Timing | None = None,
                 informers: InformerFactory | None = None,
                 events: EventRecorder = DISCARD) -> None:
        self._client = client
        self._clock = clock
        self.timing = timing or Timing()
        self._events = events
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client)
        self.nodes: Informer[m.Node] = self.informers.informer(m.Node)
        self.pods: Informer[m.Pod] = self.informers.informer(m.Pod)
        self.pods.add_indexer(BY_NODE, _node_of)
        self.nodes.add_handler(lambda key, old, new: self.queue.add(key))
        self.queue = WorkQueue("nodelifecycle")
        self.ready = asyncio.Event()
        self._seen: dict[str, Seen] = {}

    async def run(self) -> None:
        """Run (the informers, if its own,) one worker and the periodic look. Never returns."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._own_informers:
                    tg.create_task(self.informers.run())
                await self.nodes.has_synced.wait()
                await self.pods.has_synced.wait()
                self.ready.set()
                tg.create_task(run_worker(self.queue, self.sync))
                tg.create_task(self._monitor())
        finally:
            self.queue.shutdown()

    async def _monitor(self) -> None:
        while True:
            for name in {*self.nodes, *(p.spec.node_name for p in self.pods.values()
                                        if p.spec.node_name)}:
                self.queue.add(name)
            await asyncio.sleep(self.timing.period)

    def observed(self, name: str) -> Seen | None:
        """What the controller last saw of the node's heartbeat, and when."""
        return self._seen.get(name)

    def _pods_on(self, name: str) -> list[m.Pod]:
        pods = (self.pods.get(key) for key in sorted(self.pods.index(BY_NODE, name)))
        return [p for p in pods if p is not None]

    async def sync(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            self._seen.pop(name, None)
            for pod in self._pods_on(name):  # bound to a node that is gone: nothing runs it
                await self._delete(pod, grace=0)
            return
        verdict = judge(node, self._seen.get(name), self._clock.monotonic(), self.timing)
        self._seen[name] = verdict.seen
        if verdict.health is Health.READY:
            return
        now = rfc3339(self._clock.now())
        if verdict.health is Health.UNKNOWN:
            await self._mark_node_unknown(name, now)
        for pod in self._pods_on(name):
            if verdict.evict and pod.metadata.deletion_timestamp is None:
                self._events.record(pod, ev.NORMAL, ev.EVICTION,
                                    f"Marking for deletion Pod {pod.metadata.namespace}/"
                                    f"{pod.metadata.name}")
                await self._delete(pod, grace=None)
            else:
                await self._mark_pod_not_ready(pod, now)

    async def _mark_node_unknown(self, name: str, now: str) -> None:
        try:
            stored = await self._client.get(m.Node, "", name)
        except NotFound:
            return
        marked = unknown_node(stored, now)
        if marked is not None:
            await self._client.update_status(marked)
            log.warning("node %s stopped posting status: Ready=Unknown", name)
            self._events.record(marked, ev.NORMAL, ev.NODE_NOT_READY,
                                f"Node {name} status is now: NodeNotReady")

    async def _mark_pod_not_ready(self, pod: m.Pod, now: str) -> None:
        if not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions):
            return
        try:
            stored = await self._client.get(m.Pod, pod.metadata.namespace, pod.metadata.name)
            marked = not_ready_pod(stored, now)
            if marked is not None:
                await self._client.update_status(marked)
        except NotFound:
            return

    async def _delete(self, pod: m.Pod, *, grace: int | None) -> None:
        try:
            await self._client.delete(m.Pod, pod.metadata.namespace, pod.metadata.name,
                                      resource_version=pod.metadata.resource_version,
                                      grace_period_seconds=grace)
        except (NotFound, Conflict):
            return  # gone, or changed since the cache showed it: the next look decides again
