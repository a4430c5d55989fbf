"""The deployment controller: keeps `spec.replicas` pods of each Deployment's template alive.

Level-triggered, like the endpoints controller: two informers (Deployments, and Pods indexed by
the Deployment their controller ownerReference names) feed one work queue of deployment keys, and
`sync(key)` reads the caches, asks the pure `core.deployments.plan_deployment` what to do, and
applies it through the `Client`:

- a Deployment event enqueues it, unless only its status or metadata changed (the echo of the
  controller's own status write, among others);
- a Pod event enqueues the Deployment named by the pod's controller ownerReference, old and new
  (so a pod that dies, turns Ready, or is deleted leads to a sync of its Deployment).

The rollout policy (surge, unavailability, which pods go first, template hashes, names) is all in
`core.deployments`; this module only moves data. Writes: pods are created, then deleted, then the
status is written with `update_status` (its conditions stamped with the injected `Clock`'s wall
time when they change). Any failure (Conflict, AlreadyExists on a name collision)
fails the sync, and the queue retries the key with backoff.

Stale caches. A sync that created three pods must not run again on a cache that does not show
them yet, or it would create three more (Kubernetes' "expectations"). After writing, the
controller records the highest revision it wrote (`Expectations`), and the next sync of the key
first waits until the pod cache has reached it; the same for the status write and the Deployment
cache. A Deployment that is gone has the pods it controlled deleted (the garbage collector's job
in Kubernetes).

Events, on the Deployment (Kubernetes' ReplicaSet controller records them on the ReplicaSet;
clusterip's Deployments own their pods directly): `SuccessfulCreate` `Created pod: web-x7k2p`
after each pod created, `SuccessfulDelete` after each deleted, `FailedCreate` with the error
when a create fails. Recording never changes what a sync plans or writes.

`run()` owns the informers and workers in one `asyncio.TaskGroup`; `ready` is set once both
caches have synced, and workers start only then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from clusterip.clock import Clock
from clusterip.control.endpoints import StaleCache, random_suffix
from clusterip.control.informer import Expectations, Informer, InformerFactory, split_key
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.deployments import DeploymentPlan, controller_ref, plan_deployment
from clusterip.core.errors import NotFound
from clusterip.core.timefmt import rfc3339
from clusterip.registry.client import Client
from clusterip.registry.events import DISCARD, EventRecorder

__all__ = ["DeploymentController"]

log = logging.getLogger(__name__)

STALE_CACHE_TIMEOUT = 1.0


def _owner_index(pod: m.Pod) -> tuple[str, ...]:
    """File a pod under "namespace/deployment" of its controller ownerReference."""
    ref = controller_ref(pod)
    if ref is None or ref.kind != m.Deployment.KIND:
        return ()
    return (f"{pod.metadata.namespace}/{ref.name}",)


class DeploymentController:
    """Creates and deletes the pods of Deployments. See the module docstring.

    Args:
        client: where to read and write (the Registry in the app, an ObjectStore in tests).
        clock: wall time for the status conditions' transition times.
        new_suffix: the random part of new pod names (tests pass a deterministic one).
        workers: how many syncs may run at once (each on a different deployment).
        informers: shared informers (their owner runs them); None: the controller makes and
            runs its own.
        events: where pod creates and deletes are recorded.
    """

    def __init__(
        self,
        client: Client,
        *,
        clock: Clock,
        new_suffix: Callable[[], str] = random_suffix,
        workers: int = 2,
        informers: InformerFactory | None = None,
        events: EventRecorder = DISCARD,
    ) -> None:
        self._client = client
        self._events = events
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client)
        self._clock = clock
        self._new_suffix = new_suffix
        self._workers = workers
        self.deployments: Informer[m.Deployment] = self.informers.informer(m.Deployment)
        self.pods: Informer[m.Pod] = self.informers.informer(m.Pod)
        self.pods.add_indexer("owner", _owner_index)
        self.deployments.add_handler(self._on_deployment)
        self.pods.add_handler(self._on_pod)
        self.queue = WorkQueue("deployments")
        self.ready = asyncio.Event()
        self._pod_writes = Expectations()
        self._status_writes = Expectations()
        self.syncs = 0

    async def run(self) -> None:
        """Run the informers, then (once they have synced) the workers. Never returns."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._own_informers:
                    tg.create_task(self.informers.run())
                await self.deployments.has_synced.wait()
                await self.pods.has_synced.wait()
                log.info(
                    "deployment controller synced deployments=%d pods=%d",
                    len(self.deployments), len(self.pods),
                )
                self.ready.set()
                for _ in range(self._workers):
                    tg.create_task(run_worker(self.queue, self.sync))
        finally:
            self.queue.shutdown()

    async def synced(self) -> None:
        """Return once the caches have synced and workers are starting (`ready` is set)."""
        await self.ready.wait()

    # --- handlers: only keys -----------------------------------------------------------------

    def _on_deployment(
        self, key: str, old: m.Deployment | None, new: m.Deployment | None
    ) -> None:
        if old is not None and new is not None and old.spec == new.spec \
                and old.metadata.uid == new.metadata.uid \
                and old.metadata.generation == new.metadata.generation:
            return
        self.queue.add(key)

    def _on_pod(self, key: str, old: m.Pod | None, new: m.Pod | None) -> None:
        owners: set[str] = set()
        for pod in (old, new):
            if pod is not None:
                owners.update(_owner_index(pod))
        for owner in owners:
            self.queue.add(owner)

    # --- sync --------------------------------------------------------------------------------

    def plan(self, key: str) -> DeploymentPlan:
        """What `sync(key)` would do now, from the caches."""
        _, name = split_key(key)
        return plan_deployment(
            self.deployments.get(key),
            self.pods.by_index("owner", key),
            new_suffix=self._new_suffix,
            name=name,
            now=rfc3339(self._clock.now()),
        )

    async def sync(self, key: str) -> None:
        """Make the pods and status of deployment `key` ("namespace/name") match its spec."""
        self.syncs += 1
        for informer, expectations in (
            (self.pods, self._pod_writes), (self.deployments, self._status_writes)
        ):
            wanted = expectations.pending(key, informer.revision)
            if wanted and not await informer.wait_for_revision(wanted, STALE_CACHE_TIMEOUT):
                raise StaleCache(f"{informer.kind} cache at {informer.revision}, wrote {wanted}")
        plan = self.plan(key)
        if plan:
            await self._apply(key, plan)

    def _record(self, deployment: m.Deployment | None, type_: str, reason: str,
                message: str) -> None:
        """An event on the Deployment; none for the pods of one that is gone."""
        if deployment is not None:
            self._events.record(deployment, type_, reason, message)

    async def _apply(self, key: str, plan: DeploymentPlan) -> None:
        namespace, _ = split_key(key)
        owner = self.deployments.get(key)
        highest = 0
        try:
            for pod in plan.create:
                try:
                    created = await self._client.create(pod)
                except Exception as exc:
                    self._record(owner, ev.WARNING, ev.FAILED_CREATE,
                                 ev.failed_create_message(str(exc)))
                    raise
                highest = max(highest, int(created.metadata.resource_version or 0))
                self._record(owner, ev.NORMAL, ev.SUCCESSFUL_CREATE,
                             ev.created_pod_message(created.metadata.name))
            for pod in plan.delete:
                try:
                    deleted = await self._client.delete(
                        m.Pod, namespace, pod.metadata.name,
                        resource_version=pod.metadata.resource_version,
                    )
                except NotFound:
                    continue
                highest = max(highest, int(deleted.metadata.resource_version or 0))
                self._record(owner, ev.NORMAL, ev.SUCCESSFUL_DELETE,
                             ev.deleted_pod_message(deleted.metadata.name))
        finally:
            if highest:
                self._pod_writes.expect(key, highest)
        if plan.create or plan.delete:
            log.info(
                "deployment pods deployment=%s created=%s deleted=%s", key,
                ",".join(p.metadata.name for p in plan.create) or "-",
                ",".join(p.metadata.name for p in plan.delete) or "-",
            )
        deployment = self.deployments.get(key)
        if plan.status is not None and deployment is not None:
            written = await self._client.update_status(
                msgspec.structs.replace(deployment, status=plan.status)
            )
            self._status_writes.expect(key, int(written.metadata.resource_version or 0))
