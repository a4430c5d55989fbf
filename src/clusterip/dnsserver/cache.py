"""The DNS view, kept current from the shared informers of Services, EndpointSlices and Pods.

`DnsCache` is the glue between the informers (list+watch caches, `control.informer`) and the
server shell: `current()` returns the `Responder` to answer with, and the server calls it for
every query.

How it stays current:

1. At construction it asks the `InformerFactory` for the Service, EndpointSlice and Pod
   informers (shared with the controllers: each kind is watched and cached once) and adds a
   handler to each. The factory should slim pods (`core.projections.slim_pod`): the view reads
   only their metadata, IPs and phase.
2. A handler only notes the change (key → the new object, or None for a delete) and marks the
   view dirty; it must not block the informer. Changes that cannot change an answer are
   ignored: a Service whose spec did not change (a status update), a Pod whose labels, IPs,
   phase, hostname and subdomain did not change (a condition flip).
3. `run()` rebuilds whenever the view is dirty. It takes the changes noted so far (on the event
   loop, swapping in an empty batch), gives them to the pure `core.dnsview.ZoneBuilder`, which
   keeps the zone as fragments per object and patches only the names those objects touch, and
   swaps the new view's `Responder` in with one assignment. The work is proportional to the
   changes (a fraction of a millisecond for one Service at 10,000), so a batch of at most
   `INLINE_CHANGES` is applied right there on the loop: a thread's hand-off would cost more. A
   larger batch (the first build after the sync, a relist) is applied in a worker thread, so
   that the loop goes on answering from the old view meanwhile; the builder is then touched by
   that thread alone (the handlers only fill the next batch), and the objects are immutable.
   Bursts coalesce: at most one rebuild is in flight, and changes that arrive during it are
   folded into a single rebuild right after it. Each view gets the next SOA serial.
4. Until all three informers have synced (listed everything once), the view is built with
   `synced=False`, which answers every cluster-zone query SERVFAIL: a name that merely has not
   been seen yet must not be cached as NXDOMAIN by clients. A rebuild follows the sync of the
   last one at once, even if it brought no objects.
5. The first rebuild starts from scratch: a new builder given everything in the three caches.
   A rebuild that raises (a bug) is logged; the old view stays, the builder (whose state is
   then unknown) is dropped, and after a second the rebuild is tried again, from scratch.

`rebuilds`, `full_rebuilds` (those from scratch), `failures`, `generation`,
`last_build_seconds` (applying the changes and making the view) and `last_rebuild_seconds`
(from taking the changes to the swap) are for logs, tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, NoReturn, TypeVar

from clusterip.control.informer import Informer, InformerFactory, key_of
from clusterip.core import model as m
from clusterip.core.dnsanswer import Responder
from clusterip.core.dnsview import ZoneBuilder

__all__ = ["DnsCache"]

log = logging.getLogger(__name__)

_RETRY_AFTER_FAILURE = 1.0
# A batch of at most INLINE_CHANGES changed objects is applied on the loop; a larger one in a
# worker thread.
INLINE_CHANGES = 1000

T = TypeVar("T", bound=m.KubeObject)


class _Batch:
    """Changes noted by the handlers and not applied yet: key → the new object (None: gone)."""

    __slots__ = ("pods", "services", "slices")

    def __init__(self) -> None:
        self.services: dict[str, m.Service | None] = {}
        self.slices: dict[str, m.EndpointSlice | None] = {}
        self.pods: dict[str, m.Pod | None] = {}

    def __len__(self) -> int:
        return len(self.services) + len(self.slices) + len(self.pods)


class DnsCache:
    """The current `Responder`, kept up to date from the informers. See the module doc.

    Args:
        informers: the shared informer factory (not yet running: informers are added here).
        zone: the cluster domain.
        dns_ips: the cluster DNS addresses (the NS glue at the apex).
        ttl: the TTL of answers in the zone, in seconds.
    """

    def __init__(
        self,
        informers: InformerFactory,
        *,
        zone: str = "cluster.local",
        dns_ips: Sequence[str] = ("10.96.0.10",),
        ttl: int = 5,
    ) -> None:
        self.zone = zone
        self.dns_ips = tuple(dns_ips)
        self.ttl = ttl
        self.services: Informer[m.Service] = informers.informer(m.Service)
        self.slices: Informer[m.EndpointSlice] = informers.informer(m.EndpointSlice)
        self.pods: Informer[m.Pod] = informers.informer(m.Pod)
        self.services.add_handler(self._service_changed)
        self.slices.add_handler(self._slice_changed)
        self.pods.add_handler(self._pod_changed)
        self._dirty = asyncio.Event()
        self._changes = _Batch()
        # None: the next rebuild starts from scratch (the first one, and after a failure).
        self._builder: ZoneBuilder | None = None
        self._responder = Responder(self._new_builder().view(synced=False, serial=1))
        self._synced = False
        self.generation = 0  # views swapped in so far
        self.rebuilds = 0
        self.full_rebuilds = 0
        self.failures = 0
        self.last_build_seconds = 0.0
        self.last_rebuild_seconds = 0.0

    def current(self) -> Responder:
        """The responder of the latest view."""
        return self._responder

    @property
    def synced(self) -> bool:
        """Whether the current view was built after all three informers synced."""
        return self._synced

    # --- handlers (called by the informers; quick, never blocking) ------------------------------

    def _service_changed(self, key: str, old: m.Service | None, new: m.Service | None) -> None:
        if old is not None and new is not None and old.spec == new.spec:
            return
        self._changes.services[key] = new
        self._dirty.set()

    def _slice_changed(
        self, key: str, old: m.EndpointSlice | None, new: m.EndpointSlice | None
    ) -> None:
        self._changes.slices[key] = new
        self._dirty.set()

    def _pod_changed(self, key: str, old: m.Pod | None, new: m.Pod | None) -> None:
        if old is not None and new is not None and _pod_dns(old) == _pod_dns(new):
            return
        self._changes.pods[key] = new
        self._dirty.set()

    # --- the loop -----------------------------------------------------------------------------

    async def run(self) -> NoReturn:
        """Rebuild the view whenever it is dirty. Never returns: run it in a TaskGroup."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._await_sync())
            while True:
                await self._dirty.wait()
                self._dirty.clear()
                if not await self.rebuild():
                    await asyncio.sleep(_RETRY_AFTER_FAILURE)
                    self._dirty.set()
        raise AssertionError("unreachable")  # pragma: no cover

    async def rebuild(self) -> bool:
        """Apply the changes noted so far (everything in the caches, if the builder starts from
        scratch) and swap the new view in; False (logged) if building failed.

        `run()` calls it; call it directly only where `run()` is not running (one rebuild in
        flight at a time)."""
        synced = all(i.has_synced.is_set() for i in (self.services, self.slices, self.pods))
        start = time.perf_counter()
        serial = (self.generation + 2) & 0xFFFFFFFF  # the first (unsynced) view had 1
        batch, self._changes = self._changes, _Batch()
        builder, full = self._builder, self._builder is None
        if builder is None:
            builder = self._new_builder()
            batch.services = _everything(self.services)
            batch.slices = _everything(self.slices)
            batch.pods = _everything(self.pods)
        self._builder = None  # until this build succeeds
        try:
            if len(batch) <= INLINE_CHANGES:
                responder = self._build(builder, batch, synced=synced, serial=serial)
            else:
                responder = await asyncio.to_thread(
                    self._build, builder, batch, synced=synced, serial=serial)
        except Exception:
            self.failures += 1
            log.exception(
                "dns view rebuild failed full=%s services=%d slices=%d pods=%d",
                full, len(batch.services), len(batch.slices), len(batch.pods),
            )
            return False
        self._builder = builder
        self._responder = responder
        self._synced = synced
        self.generation += 1
        self.rebuilds += 1
        if full:
            self.full_rebuilds += 1
        self.last_rebuild_seconds = time.perf_counter() - start
        log.debug(
            "dns view rebuilt full=%s services=%d slices=%d pods=%d synced=%s build=%.4fs "
            "total=%.4fs", full, len(batch.services), len(batch.slices), len(batch.pods),
            synced, self.last_build_seconds, self.last_rebuild_seconds,
        )
        return True

    async def _await_sync(self) -> None:
        for informer in (self.services, self.slices, self.pods):
            await informer.has_synced.wait()
        log.info("dns cache synced services=%d slices=%d pods=%d",
                 len(self.services), len(self.slices), len(self.pods))
        self._dirty.set()

    def _new_builder(self) -> ZoneBuilder:
        return ZoneBuilder(zone=self.zone, dns_ips=self.dns_ips, ttl=self.ttl)

    def _build(self, builder: ZoneBuilder, batch: _Batch, *, synced: bool, serial: int
               ) -> Responder:
        start = time.perf_counter()
        for key, service in batch.services.items():
            builder.set_service(key, service)
        for key, endpoint_slice in batch.slices.items():
            builder.set_slice(key, endpoint_slice)
        for key, pod in batch.pods.items():
            builder.set_pod(key, pod)
        responder = Responder(builder.view(synced=synced, serial=serial))
        self.last_build_seconds = time.perf_counter() - start
        return responder


def _everything(informer: Informer[T]) -> dict[str, T | None]:
    """The informer's whole cache, as a batch of changes (taken on the loop: consistent)."""
    return {key_of(obj): obj for obj in informer.values()}


def _pod_dns(pod: m.Pod) -> tuple[Any, ...]:
    """The parts of a pod an answer can depend on."""
    return (
        pod.metadata.labels, pod.status.pod_ip, pod.status.pod_ips, pod.status.phase,
        pod.spec.hostname, pod.spec.subdomain,
    )
