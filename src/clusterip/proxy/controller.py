"""The proxy's control loop: Services and EndpointSlices in, `Proxier.sync(snapshot)` out.

Level-triggered, like every controller here:

1. Handlers on the shared Service and EndpointSlice informers feed the pure change tracker
   (`core.servicemap.ServiceMapTracker`) and set a dirty flag; they never block.
2. `run()` waits for both informers' first full list (the first sync must not program a
   partial map: a Service listed before its slices would reject its clients), then loops: wait
   until dirty, take a snapshot (a burst of events becomes one snapshot), and hand it to the
   proxier given to `run` (nftables or userspace mode: both have `sync(snapshot)`).
3. A sync that raises is retried with a doubling back-off (0.1 s up to `MAX_BACKOFF`), with a
   full snapshot (every port counts as changed) — the proxier itself knows to resync in full.
   Retries never stop while the failure lasts: the desired state is level, not an event.

`latencies` keeps the last `LATENCY_SAMPLES` times from the first change of a sync to its end
(kube-proxy's network programming latency), for logs and benchmarks.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import NoReturn, Protocol

from clusterip.control.informer import InformerFactory
from clusterip.core import model as m
from clusterip.core.servicemap import ServiceMapTracker, Snapshot

__all__ = ["LATENCY_SAMPLES", "MAX_BACKOFF", "Proxier", "ProxyController"]

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
LATENCY_SAMPLES = 1000
_FIRST_BACKOFF = 0.1


class Proxier(Protocol):
    """A proxy mode: makes the data path serve the snapshot's service map."""

    async def sync(self, snapshot: Snapshot) -> None: ...


class ProxyController:
    """Feeds a `Proxier` from the informers. See the module docstring."""

    def __init__(
        self,
        informers: InformerFactory,
        *,
        local_ips: frozenset[str] = frozenset(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracker = ServiceMapTracker(local_ips)
        self.services = informers.informer(m.Service)
        self.slices = informers.informer(m.EndpointSlice)
        self.services.add_handler(self._service_changed)
        self.slices.add_handler(self._slice_changed)
        self._clock = clock
        self._dirty = asyncio.Event()
        self._pending_since: float | None = None
        self.synced = asyncio.Event()  # set after the first successful sync
        self.syncs = 0
        self.failures = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=LATENCY_SAMPLES)

    def _mark(self) -> None:
        if self._pending_since is None:
            self._pending_since = self._clock()
        self._dirty.set()

    def _service_changed(self, key: str, old: m.Service | None, new: m.Service | None) -> None:
        self.tracker.service(key, new)
        if self.tracker.pending:
            self._mark()

    def _slice_changed(
        self, key: str, old: m.EndpointSlice | None, new: m.EndpointSlice | None
    ) -> None:
        self.tracker.slice(key, new)
        if self.tracker.pending:
            self._mark()

    async def run(self, proxier: Proxier) -> NoReturn:
        """Sync `proxier` whenever something changed. Never returns: run it in a TaskGroup.

        The controller is made before the informers start (its handlers must see every event);
        the proxier is given here, because choosing one may need the node's namespace."""
        await self.services.has_synced.wait()
        await self.slices.has_synced.wait()
        log.info("proxy: informers synced; first sync of %d services",
                 len(self.services))
        self._mark()
        backoff = _FIRST_BACKOFF
        full = True  # the first sync, and every one after a failure
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            began = self._pending_since
            self._pending_since = None
            snapshot = self.tracker.take()
            if full:
                snapshot = Snapshot(snapshot.ports, frozenset(snapshot.ports))
            elif not snapshot.changed:
                continue  # events that changed nothing the proxy serves
            try:
                await proxier.sync(snapshot)
            except Exception:
                self.failures += 1
                log.exception("proxy sync failed; retrying in %.1f s with a full sync", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                full = True
                self._pending_since = began
                self._dirty.set()
                continue
            full = False
            backoff = _FIRST_BACKOFF
            self.syncs += 1
            if began is not None:
                self.latencies.append(self._clock() - began)
            self.synced.set()
