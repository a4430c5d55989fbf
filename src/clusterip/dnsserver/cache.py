"""The DNS view, kept current from the shared informers of Services, EndpointSlices and Pods.

`DnsCache` is the glue between the informers (list+watch caches, `control.informer`) and the
server shell: `current()` returns the `Responder` to answer with, and the server calls it for
every query.

How it stays current:

1. At construction it asks the `InformerFactory` for the Service, EndpointSlice and Pod
   informers (shared with the controllers: each kind is watched and cached once) and adds a
   handler to each. The factory should slim pods (`core.projections.slim_pod`): the view reads
   only their metadata, IPs and phase.
2. A handler only marks the view dirty (it must not block the informer). Changes that cannot
   change an answer are ignored: a Service whose spec did not change (a status update), a Pod
   whose labels, IPs, phase, hostname and subdomain did not change (a condition flip).
3. `run()` rebuilds whenever the view is dirty: it takes a snapshot of the three caches (on the
   event loop, so it is consistent), builds the view and its `Responder` with the pure
   `core.dnsanswer.build_view`, and swaps it in with one assignment. A small view is built
   right there on the loop (at most `INLINE_OBJECTS` objects and under `INLINE_BUILD` seconds
   the last time: a thread's hand-off would cost more than the build); a larger one in a
   worker thread, so that the loop goes on answering from the old view meanwhile instead of
   stalling for the whole build (safe: the cached objects are immutable). Bursts
   coalesce: at most one rebuild is in flight, and changes that arrive during it are folded
   into a single rebuild right after it. Each view gets the next SOA serial.
4. Until all three informers have synced (listed everything once), the view is built with
   `synced=False`, which answers every cluster-zone query SERVFAIL: a name that merely has not
   been seen yet must not be cached as NXDOMAIN by clients. A rebuild follows the sync of the
   last one at once, even if it brought no objects.
5. A rebuild that raises (a bug) is logged; the old view stays, and the rebuild is tried again
   after a second.

`rebuilds`, `generation`, `last_build_seconds` (the build alone) and `last_rebuild_seconds`
(from the snapshot to the swap) are for logs, tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from clusterip.control.informer import Informer, InformerFactory
from clusterip.core import model as m
from clusterip.core.dnsanswer import Responder, build_view

__all__ = ["DnsCache"]

log = logging.getLogger(__name__)

_RETRY_AFTER_FAILURE = 1.0
# A build runs on the loop when the last one took under INLINE_BUILD seconds and there are at
# most INLINE_OBJECTS objects (the second guards the first build after the sync); else in a thread.
INLINE_BUILD = 0.005
INLINE_OBJECTS = 1000


class DnsCache:
    """The current `Responder`, rebuilt from the informers on every change. See the module doc.

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
        self.last_build_seconds = 0.0
        self._responder = self._build([], [], [], synced=False, serial=1)
        self._synced = False
        self.generation = 0  # views swapped in so far
        self.rebuilds = 0
        self.failures = 0
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
        self._dirty.set()

    def _slice_changed(
        self, key: str, old: m.EndpointSlice | None, new: m.EndpointSlice | None
    ) -> None:
        self._dirty.set()

    def _pod_changed(self, key: str, old: m.Pod | None, new: m.Pod | None) -> None:
        if old is not None and new is not None and _pod_dns(old) == _pod_dns(new):
            return
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
        """Build a view from the caches now and swap it in; False (logged) if building failed.

        `run()` calls it; call it directly only where `run()` is not running (one rebuild in
        flight at a time)."""
        synced = all(i.has_synced.is_set() for i in (self.services, self.slices, self.pods))
        services = self.services.values()
        slices = self.slices.values()
        pods = self.pods.values()
        start = time.perf_counter()
        serial = (self.generation + 2) & 0xFFFFFFFF  # the first (unsynced) view had 1
        try:
            objects = len(services) + len(slices) + len(pods)
            if self.last_build_seconds < INLINE_BUILD and objects <= INLINE_OBJECTS:
                responder = self._build(services, slices, pods, synced=synced, serial=serial)
            else:
                responder = await asyncio.to_thread(
                    self._build, services, slices, pods, synced=synced, serial=serial
                )
        except Exception:
            self.failures += 1
            log.exception(
                "dns view rebuild failed services=%d slices=%d pods=%d",
                len(services), len(slices), len(pods),
            )
            return False
        self._responder = responder
        self._synced = synced
        self.generation += 1
        self.rebuilds += 1
        self.last_rebuild_seconds = time.perf_counter() - start
        log.debug(
            "dns view rebuilt services=%d slices=%d pods=%d synced=%s build=%.4fs total=%.4fs",
            len(services), len(slices), len(pods), synced, self.last_build_seconds,
            self.last_rebuild_seconds,
        )
        return True

    async def _await_sync(self) -> None:
        for informer in (self.services, self.slices, self.pods):
            await informer.has_synced.wait()
        log.info("dns cache synced services=%d slices=%d pods=%d",
                 len(self.services), len(self.slices), len(self.pods))
        self._dirty.set()

    def _build(
        self,
        services: Sequence[m.Service],
        slices: Sequence[m.EndpointSlice],
        pods: Sequence[m.Pod],
        *,
        synced: bool,
        serial: int,
    ) -> Responder:
        start = time.perf_counter()
        view = build_view(
            services, slices, pods,
            zone=self.zone, dns_ips=self.dns_ips, synced=synced, ttl=self.ttl, serial=serial,
        )
        responder = Responder(view)
        self.last_build_seconds = time.perf_counter() - start
        return responder


def _pod_dns(pod: m.Pod) -> tuple[Any, ...]:
    """The parts of a pod an answer can depend on."""
    return (
        pod.metadata.labels, pod.status.pod_ip, pod.status.pod_ips, pod.status.phase,
        pod.spec.hostname, pod.spec.subdomain,
    )
