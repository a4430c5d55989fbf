"""The endpoints controller: keeps each Service's EndpointSlices equal to its ready pods.

Shape (Kubernetes' `endpointslice_controller.go`): three informers (Services, Pods,
EndpointSlices) feed one work queue of *service keys*; workers call `sync(key)`, which reads the
caches, asks the pure `core.endpoints.plan_slices` for the writes, and applies them through the
`Client`. Handlers only compute keys:

- a Service event enqueues the service;
- a Pod event enqueues the services, in the pod's namespace, whose selector matches the pod's old
  or new labels (both: a relabelled pod leaves one service and joins another). Pod updates that
  change nothing an endpoint shows (a status heartbeat, an annotation) enqueue nothing;
- an EndpointSlice event enqueues the service named by its `kubernetes.io/service-name` label, if
  the slice is managed by this controller, so a slice deleted or changed by someone else is put
  back. The echo of the controller's own write is recognised (by its resourceVersion) and skipped.

Speed. A pod's readiness change must reach its slice in well under 50 ms with 10,000 services and
100,000 endpoints, so nothing on that path scans all services or all pods:

- services are indexed under one pair of their selector ("ns/key=value"): every service that
  selects a pod is filed under one of the pod's own label pairs, so the candidates are found with
  one dict lookup per pod label, then checked with the full selector;
- pods are indexed under each of their label pairs, and a sync reads only the pods filed under
  the service's rarest selector pair;
- slices are indexed by their service's key;
- only the affected service is synced, and the plan writes only the slices that changed.

Stale caches. After writing slices at revision R for a service, the controller does not plan for
that service again until the slice cache has reached R (`Expectations`; usually at once):
planning on a cache without its own last writes would create duplicate slices.

Errors. A write that fails (Conflict: the cache was stale; AlreadyExists: a name collision)
fails the sync, and the key is retried through the queue with per-key backoff (5 ms doubling to
1 s, at most 15 times). A Service that is gone has its managed slices deleted.

The `endpoints.kubernetes.io/last-change-trigger-time` annotation of each slice written is the
wall time (from the injected `Clock`) at which the controller first saw the change that led to
the write, as RFC 3339 with microseconds; proxies measure programming latency from it.

Events. After a sync's writes succeed, each endpoint the Service lost (`EndpointRemoved`) or
that stopped being ready (`EndpointNotReady`, `EndpointTerminating`) is recorded on the Service
(`core.events.endpoint_changes`: one event per endpoint and change; the recorder counts
repeats and limits floods). Recording never changes what a sync plans or writes.

`run()` owns its informers and workers in one `asyncio.TaskGroup`; `ready` is set once the
three caches have synced, and only then do workers start (a controller that acted on a partial
cache would delete slices of services it had not listed yet).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from clusterip.clock import Clock
from clusterip.control.informer import (
    Expectations,
    Informer,
    InformerFactory,
    key_of,
    split_key,
)
from clusterip.control.workqueue import WorkQueue, run_worker
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.endpoints import (
    ANNOTATION_TRIGGER_TIME,
    LABEL_SERVICE_NAME,
    MAX_ENDPOINTS_PER_SLICE,
    SlicePlan,
    is_managed,
    plan_slices,
    pod_is_ready,
    selector_matches,
)
from clusterip.core.errors import NotFound, StateError
from clusterip.registry.client import Client
from clusterip.registry.events import DISCARD, EventRecorder

__all__ = ["SUFFIX_ALPHABET", "EndpointsController", "StaleCache", "random_suffix"]

log = logging.getLogger(__name__)

# Kubernetes' utilrand alphabet: no vowels (no words), no 0/1/3 (no confusion with o/l/e).
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

STALE_CACHE_TIMEOUT = 1.0


def random_suffix(length: int = 5) -> str:
    """A random name suffix, as the API server's generateName makes (`web-x7k2p`)."""
    return "".join(random.choices(SUFFIX_ALPHABET, k=length))


class StaleCache(StateError):
    """The cache has not caught up with the controller's own last write; retried later."""


def _pair(namespace: str, key: str, value: str) -> str:
    return f"{namespace}/{key}={value}"


def _service_selector_index(service: m.Service) -> tuple[str, ...]:
    """File a service under one pair of its selector (any pair will do: all must match)."""
    selector = service.spec.selector
    if not selector:
        return ()
    key = min(selector)
    return (_pair(service.metadata.namespace, key, selector[key]),)


def _pod_label_index(pod: m.Pod) -> tuple[str, ...]:
    labels = pod.metadata.labels
    if not labels:
        return ()
    ns = pod.metadata.namespace
    return tuple(_pair(ns, k, v) for k, v in labels.items())


def _slice_service_index(sl: m.EndpointSlice) -> tuple[str, ...]:
    service = (sl.metadata.labels or {}).get(LABEL_SERVICE_NAME)
    if not service:
        return ()
    return (f"{sl.metadata.namespace}/{service}",)


def _endpoint_view(pod: m.Pod) -> tuple[Any, ...]:
    """Everything about a pod that an endpoint shows or that decides whether it is one."""
    return (
        pod.metadata.uid,
        pod.metadata.labels,
        pod.metadata.deletion_timestamp,
        pod.status.phase,
        pod.status.pod_ip,
        pod.status.pod_ips,
        pod_is_ready(pod),
        pod.spec.node_name,
        pod.spec.hostname,
        pod.spec.subdomain,
        tuple(c.ports for c in pod.spec.containers),
    )


def _timestamp(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EndpointsController:
    """Writes the EndpointSlices of Services with selectors. See the module docstring.

    Args:
        client: where to read and write (the Registry in the app, an ObjectStore in tests).
        clock: wall time for the last-change-trigger-time annotation.
        new_suffix: the random part of new slice names (tests pass a deterministic one).
        max_per_slice: the most endpoints one slice holds.
        workers: how many syncs may run at once (each on a different service).
        informers: shared informers (their owner runs them); None: the controller makes and
            runs its own.
        events: where the endpoints a Service loses are recorded.
    """

    def __init__(
        self,
        client: Client,
        *,
        clock: Clock,
        new_suffix: Callable[[], str] = random_suffix,
        max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
        workers: int = 4,
        informers: InformerFactory | None = None,
        events: EventRecorder = DISCARD,
    ) -> None:
        self._client = client
        self._events = events
        self._own_informers = informers is None
        self.informers = informers or InformerFactory(client)
        self._clock = clock
        self._new_suffix = new_suffix
        self.max_per_slice = max_per_slice
        self._workers = workers
        self.services: Informer[m.Service] = self.informers.informer(m.Service)
        self.services.add_indexer("selector", _service_selector_index)
        self.pods: Informer[m.Pod] = self.informers.informer(m.Pod)
        self.pods.add_indexer("label", _pod_label_index)
        self.slices: Informer[m.EndpointSlice] = self.informers.informer(m.EndpointSlice)
        self.slices.add_indexer("service", _slice_service_index)
        self.services.add_handler(self._on_service)
        self.pods.add_handler(self._on_pod)
        self.slices.add_handler(self._on_slice)
        self.queue = WorkQueue("endpoints")
        self.ready = asyncio.Event()
        self._expectations = Expectations()
        self._triggers: dict[str, float] = {}  # service key → first unsynced change (wall time)
        self._own_writes: dict[str, str | None] = {}  # slice key → rv written (None: deleted)
        self.syncs = 0
        self.writes = 0

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the informers, then (once they have synced) the workers. Never returns."""
        try:
            async with asyncio.TaskGroup() as tg:
                if self._own_informers:
                    tg.create_task(self.informers.run())
                await self.services.has_synced.wait()
                await self.pods.has_synced.wait()
                await self.slices.has_synced.wait()
                log.info(
                    "endpoints controller synced services=%d pods=%d slices=%d",
                    len(self.services), len(self.pods), len(self.slices),
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

    def _enqueue(self, service_key: str) -> None:
        self._triggers.setdefault(service_key, self._clock.now())
        self.queue.add(service_key)

    def _on_service(self, key: str, old: m.Service | None, new: m.Service | None) -> None:
        if old is not None and new is not None and old.spec == new.spec \
                and old.metadata.uid == new.metadata.uid:
            return  # status or metadata only: nothing an endpoint depends on
        self._enqueue(key)

    def _on_pod(self, key: str, old: m.Pod | None, new: m.Pod | None) -> None:
        if old is not None and new is not None and _endpoint_view(old) == _endpoint_view(new):
            return
        targets: set[str] = set()
        for pod in (old, new):
            if pod is not None:
                targets.update(self.services_for(pod.metadata.namespace, pod.metadata.labels))
        for service_key in targets:
            self._enqueue(service_key)

    def _on_slice(
        self, key: str, old: m.EndpointSlice | None, new: m.EndpointSlice | None
    ) -> None:
        sl = new if new is not None else old
        assert sl is not None
        if key in self._own_writes:
            written = self._own_writes.pop(key)
            seen = new.metadata.resource_version if new is not None else None
            if written == seen:
                return  # the echo of our own write
        if not (is_managed(sl) or (old is not None and is_managed(old))):
            return
        for service_key in _slice_service_index(sl):
            self._enqueue(service_key)

    def services_for(self, namespace: str, labels: Mapping[str, str] | None) -> Iterator[str]:
        """Keys of the services in `namespace` whose selector matches `labels` (via the index)."""
        if not labels:
            return
        for k, v in labels.items():
            for service_key in self.services.index("selector", _pair(namespace, k, v)):
                service = self.services.get(service_key)
                if service is not None and selector_matches(service.spec.selector, labels):
                    yield service_key

    # --- sync: read the caches, plan, write ----------------------------------------------------

    def _candidate_pods(self, service: m.Service) -> list[m.Pod]:
        selector = service.spec.selector
        if not selector:
            return []
        ns = service.metadata.namespace
        smallest = min(
            (self.pods.index("label", _pair(ns, k, v)) for k, v in selector.items()), key=len
        )
        pods = self.pods
        return [pod for pod in (pods.get(k) for k in smallest) if pod is not None]

    def plan(self, key: str) -> SlicePlan:
        """The writes `sync(key)` would make now, from the caches."""
        service = self.services.get(key)
        slices = self.slices.by_index("service", key)
        pods = self._candidate_pods(service) if service is not None else []
        return plan_slices(
            service, pods, slices, new_suffix=self._new_suffix, max_per_slice=self.max_per_slice
        )

    async def sync(self, key: str) -> None:
        """Make the slices of service `key` ("namespace/name") match its pods."""
        self.syncs += 1
        wanted = self._expectations.pending(key, self.slices.revision)
        if wanted and not await self.slices.wait_for_revision(wanted, STALE_CACHE_TIMEOUT):
            raise StaleCache(f"slice cache at {self.slices.revision}, wrote {wanted}")
        plan = self.plan(key)
        if plan:
            service = self.services.get(key)
            before = self.slices.by_index("service", key) if service is not None else []
            trigger = self._triggers.get(key, self._clock.now())
            await self._apply(key, plan, _timestamp(trigger))
            if service is not None:
                for change in ev.endpoint_changes(before, plan):
                    self._events.record(service, change.type, change.reason, change.message)
            log.debug(
                "synced service=%s created=%d updated=%d deleted=%d",
                key, len(plan.create), len(plan.update), len(plan.delete),
            )
        self._triggers.pop(key, None)

    async def _apply(self, key: str, plan: SlicePlan, trigger: str) -> None:
        namespace, _ = split_key(key)
        highest = 0
        try:
            # Creates and updates before deletes: endpoints move before the old slice goes.
            for sl in plan.create:
                created = await self._client.create(_stamped(sl, trigger))
                highest = max(highest, self._wrote(created))
            for sl in plan.update:
                updated = await self._client.update(_stamped(sl, trigger))
                highest = max(highest, self._wrote(updated))
            for sl in plan.delete:
                try:
                    deleted = await self._client.delete(
                        m.EndpointSlice, namespace, sl.metadata.name,
                        resource_version=sl.metadata.resource_version,
                    )
                except NotFound:
                    continue
                self._own_writes[key_of(deleted)] = None
                self.writes += 1
                highest = max(highest, int(deleted.metadata.resource_version or 0))
        finally:
            if highest:
                self._expectations.expect(key, highest)

    def _wrote(self, sl: m.EndpointSlice) -> int:
        self._own_writes[key_of(sl)] = sl.metadata.resource_version
        self.writes += 1
        return int(sl.metadata.resource_version or 0)


def _stamped(sl: m.EndpointSlice, trigger: str) -> m.EndpointSlice:
    annotations = {**(sl.metadata.annotations or {}), ANNOTATION_TRIGGER_TIME: trigger}
    return msgspec.structs.replace(
        sl, metadata=msgspec.structs.replace(sl.metadata, annotations=annotations)
    )
