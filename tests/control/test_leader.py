"""Leader election over a Lease in the store: one leader at a time, a clean stop hands over at
once, a leader cut off from the store stops leading before another takes over. Real time, short
periods (a lease of 0.6 s)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clusterip.clock import SystemClock
from clusterip.control.leader import LEASE_NAME, LEASE_NAMESPACE, LeaderElector
from clusterip.core import model as m
from clusterip.core.errors import Unavailable
from clusterip.core.leaderelection import Timing
from clusterip.registry.objects import ObjectStore

pytestmark = pytest.mark.anyio

TIMING = Timing(duration=0.6, renew_deadline=0.4, retry=0.05)


class Controllers:
    """What `lead()` runs: counts who is leading now and the most that ever led at once."""

    def __init__(self) -> None:
        self.now: set[str] = set()
        self.most_at_once = 0

    def lead(self, who: str) -> Callable[[], Any]:
        async def controllers() -> None:
            self.now.add(who)
            self.most_at_once = max(self.most_at_once, len(self.now))
            try:
                await asyncio.Event().wait()
            finally:
                self.now.discard(who)
        return controllers


class CutOff:
    """A client that reaches the store until `cut` is set (a partitioned API server)."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._objects, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.cut:
                raise Unavailable("the store cannot be reached")
            return await method(*args, **kwargs)
        return call


async def test_one_leads_and_a_clean_stop_hands_over_at_once(
        objects: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    controllers = Controllers()
    a = LeaderElector(objects, "a", clock=SystemClock(), timing=TIMING)
    b = LeaderElector(objects, "b", clock=SystemClock(), timing=TIMING)
    async with running(lambda: a.run(controllers.lead("a"))) as (a_task,):
        await eventually(lambda: _leads(controllers, "a"))
        async with running(lambda: b.run(controllers.lead("b"))):
            await asyncio.sleep(2 * TIMING.duration)  # a keeps renewing: b only waits
            assert controllers.now == {"a"}
            a_task.cancel()  # a stops cleanly: it releases the lease
            began = asyncio.get_running_loop().time()
            await eventually(lambda: _leads(controllers, "b"))
            took = asyncio.get_running_loop().time() - began
    assert took < TIMING.duration, "a released lease is taken at the next look, not on expiry"
    assert controllers.most_at_once == 1
    lease = await objects.get(m.Lease, LEASE_NAMESPACE, LEASE_NAME)
    assert lease.spec.lease_transitions == 1


async def test_a_leader_cut_off_from_the_store_stops_before_another_starts(
        objects: ObjectStore, running: Callable[..., Any],
        eventually: Callable[..., Awaitable[Any]]) -> None:
    controllers = Controllers()
    link = CutOff(objects)
    a = LeaderElector(link, "a", clock=SystemClock(), timing=TIMING)  # type: ignore[arg-type]
    async with running(lambda: a.run(controllers.lead("a"))):
        await eventually(lambda: _leads(controllers, "a"))
        b = LeaderElector(objects, "b", clock=SystemClock(), timing=TIMING)
        async with running(lambda: b.run(controllers.lead("b"))):
            link.cut = True
            await eventually(lambda: _leads(controllers, "b"), 5)
    assert controllers.most_at_once == 1
    assert (a.terms, b.terms) == (1, 1)


async def _leads(controllers: Controllers, who: str) -> bool:
    return controllers.now == {who}
