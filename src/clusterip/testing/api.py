"""An API server in the caller's event loop, over a MemoryStore, with a fake clock.

    async with open_test_api() as api:
        resp = await api.http.get("/api/v1/services")

`api.http` is an aiohttp TestClient bound to a free loopback port, `api.registry` the Registry
behind it (for checks that bypass HTTP) and `api.store` the store (to compact it, say). With a
`token`, the server requires it of every request (plain HTTP: TLS is the process's business).

With `events=True` the registry records its events (ClusterIPAllocated) through
`api.events`, an EventBroadcaster whose writer task runs for the duration of the block, as in
the app; without it nothing is recorded, so tests that count writes see only their own.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from clusterip.apiserver.server import ApiServer
from clusterip.core import events as ev
from clusterip.core.ipalloc import ServiceRange
from clusterip.registry.events import EventBroadcaster
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.registry.registry import Registry
from clusterip.store.api import Store
from clusterip.store.memory import MemoryStore
from clusterip.testing.clock import FakeClock

__all__ = ["TestApi", "open_test_api", "read_events"]


@dataclass
class TestApi:
    __test__ = False  # not a pytest test class

    http: TestClient[web.Request, web.Application]
    registry: Registry
    store: Store
    clock: FakeClock
    events: EventBroadcaster | None = None


@asynccontextmanager
async def open_test_api(
    store: Store | None = None, *, service_cidr: str = "10.96.0.0/12", seed: int = 7,
    token: str = "", bookmark_interval: float = 60.0, events: bool = False,
) -> AsyncIterator[TestApi]:
    clock = FakeClock()
    store = store or MemoryStore()
    objects = ObjectStore(store, clock)
    ranges = [ServiceRange.parse(service_cidr)]
    allocator = ClusterIPAllocator(objects, ranges, random.Random(seed))
    registry = Registry(objects, allocator, service_cidrs=[r.cidr for r in ranges], clock=clock,
                        rng=random.Random(seed))
    broadcaster = EventBroadcaster(registry, clock, retry_delay=0.0) if events else None
    await allocator.ensure_service_cidr()
    await registry.bootstrap(api_port=7080)
    client = TestClient(TestServer(ApiServer(registry, token=token, clock=clock,
                                             bookmark_interval=bookmark_interval).app(),
                                   host="127.0.0.1", port=0))
    await client.start_server()
    try:
        async with asyncio.TaskGroup() as tasks:
            writer = None
            if broadcaster is not None:
                registry.events = broadcaster.recorder(ev.ALLOCATOR)
                writer = tasks.create_task(broadcaster.run())
            try:
                yield TestApi(client, registry, store, clock, broadcaster)
            finally:
                if writer is not None:
                    writer.cancel()
    finally:
        await client.close()
        await store.close()


async def read_events(resp: ClientResponse, count: int, timeout: float = 5.0
                      ) -> list[dict[str, Any]]:
    """The next `count` events of a watch response (newline-delimited JSON), under a deadline."""
    events: list[dict[str, Any]] = []
    with anyio.fail_after(timeout):
        while len(events) < count:
            line = await resp.content.readline()
            assert line, "watch ended early"
            events.append(json.loads(line))
    return events
