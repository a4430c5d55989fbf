"""Leader election for the controllers of several API servers: the shell around
`core.leaderelection`.

Every API server runs a `LeaderElector` on the Lease `kube-system/clusterip-controllers`. A
candidate looks at the lease every `timing.retry` seconds and does what `next_step` says:
create it, take it (released, or unchanged for its duration on this candidate's clock), or wait.
The write is conditional (create-if-absent, or an update at the resourceVersion read), so of two
candidates that try at once exactly one wins; the other sees a conflict and waits.

Once it holds the lease, the elector runs `lead()` (the controllers, in a TaskGroup it owns)
and renews every `timing.retry` seconds. If it has not renewed for `timing.renew_deadline`
(the store unreachable, a partition), it cancels `lead()` and becomes a candidate again, before
its lease can expire for the others (`renew_deadline < duration`): two leaders never run the
controllers at once. When it is cancelled (the process stops) while leading, it releases the
lease (no holder), so the next candidate takes over at its next look rather than after the
lease's duration.

`lead()` is called afresh each time leadership is won: controllers and their informers are made
inside it, so a second term starts from a fresh list, not from a cache that stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from clusterip.clock import Clock
from clusterip.core import model as m
from clusterip.core.errors import AlreadyExists, ClusterIPError, Conflict, NotFound
from clusterip.core.leaderelection import (
    LeaseRecord,
    Observation,
    Step,
    Timing,
    next_step,
    released,
)
from clusterip.core.timefmt import rfc3339_micro
from clusterip.registry.client import Client

__all__ = ["LEASE_NAME", "LEASE_NAMESPACE", "LeaderElector"]

log = logging.getLogger(__name__)

LEASE_NAME = "clusterip-controllers"
LEASE_NAMESPACE = "kube-system"


class _LostLease(Exception):
    """Renewing failed for the renew deadline: stop leading."""


class LeaderElector:
    """Runs `lead()` while this process (`identity`) holds the lease. See the module docstring."""

    def __init__(self, client: Client, identity: str, *, clock: Clock,
                 timing: Timing | None = None, name: str = LEASE_NAME,
                 namespace: str = LEASE_NAMESPACE) -> None:
        self._client = client
        self.identity = identity
        self._clock = clock
        self.timing = timing or Timing()
        self.name = name
        self.namespace = namespace
        self._seen = Observation()
        self._held: m.Lease | None = None  # the lease as last written by this elector
        self.leading = asyncio.Event()
        self.following = asyncio.Event()  # another candidate holds a live lease
        self.terms = 0  # how many times leadership was won

    async def run(self, lead: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign, lead, and campaign again when leadership is lost. Never returns."""
        try:
            while True:
                while not await self._try():
                    await asyncio.sleep(self.timing.retry)
                self.terms += 1
                self.leading.set()
                log.info("leader election: %s leads (term %d)", self.identity, self.terms)
                try:
                    async with asyncio.TaskGroup() as tasks:
                        tasks.create_task(lead())
                        await self._renew_until_lost()
                except* _LostLease:
                    log.warning("leader election: %s lost the lease; controllers stopped",
                                self.identity)
                finally:
                    self.leading.clear()
        finally:
            await self._release()

    async def _renew_until_lost(self) -> None:
        renewed = self._clock.monotonic()
        while True:
            await asyncio.sleep(self.timing.retry)
            if await self._try():
                renewed = self._clock.monotonic()
            elif self._clock.monotonic() - renewed >= self.timing.renew_deadline:
                raise _LostLease

    async def _try(self) -> bool:
        """Look at the lease once and do what `next_step` says; True if this elector holds it
        after (created, renewed or taken)."""
        try:
            lease: m.Lease | None = await self._client.get(m.Lease, self.namespace, self.name)
        except NotFound:
            lease = None
        except ClusterIPError as exc:
            log.warning("leader election: cannot read the lease: %s", exc)
            return False
        current = _record(lease) if lease is not None else None
        step, record, self._seen = next_step(
            current, self._seen, self.identity, monotonic=self._clock.monotonic(),
            wall=rfc3339_micro(self._clock.now()), timing=self.timing)
        if record is None:
            self.following.set()  # WAIT: the lease is another's, and alive
            return False
        self.following.clear()
        try:
            if step is Step.CREATE:
                self._held = await self._client.create(self._lease(record, None))
            else:
                self._held = await self._client.update(self._lease(record, lease))
        except (AlreadyExists, Conflict):
            return False  # another candidate wrote first
        except ClusterIPError as exc:
            log.warning("leader election: cannot write the lease: %s", exc)
            return False
        return True

    async def _release(self) -> None:
        """Give the lease up if this elector holds it (best effort, briefly)."""
        held, self._held = self._held, None
        if held is None or not self.terms:
            return
        record = released(_record(held), rfc3339_micro(self._clock.now()))
        with contextlib.suppress(ClusterIPError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._client.update(self._lease(record, held))
                log.info("leader election: %s released the lease", self.identity)

    def _lease(self, record: LeaseRecord, base: m.Lease | None) -> m.Lease:
        spec = m.LeaseSpec(
            holder_identity=record.holder, lease_duration_seconds=record.duration_seconds,
            acquire_time=record.acquire_time, renew_time=record.renew_time,
            lease_transitions=record.transitions)
        if base is None:
            return m.Lease(metadata=m.ObjectMeta(name=self.name, namespace=self.namespace),
                           spec=spec)
        return msgspec.structs.replace(base, spec=spec)


def _record(lease: m.Lease) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(spec.holder_identity or "", spec.lease_duration_seconds or 0,
                       spec.acquire_time or "", spec.renew_time or "",
                       spec.lease_transitions or 0)
