"""The API on etcd against the API on SQLite: Service creates per second through HTTP, and the
watch latency a node agent sees (a write through the API → its event at a RemoteClient watch).

For each store, an API server runs in this process (the registry, validation and ClusterIP
allocation of `clusterip apiserver`, served by aiohttp on a free loopback port): etcd is a real
one-member etcd 3.4 started on loopback ports of its own (fsync on, as etcd always does), SQLite
a file in a temporary directory (fsync on every commit). Then, through `RemoteClient`:

- N Service creates from C concurrent callers (each allocates a ClusterIP: two store writes);
- W pod status writes, one at a time, each timed from the request until a watch on pods (another
  RemoteClient, as an agent watches) delivers its event: p50 and p99.

It prints each figure and the ratio etcd / sqlite. Bounded: N (default 1,000) creates, W
(default 300) writes, loopback only; etcd is stopped by its PID and the directories deleted.

    python bench/cluster_api.py [--creates N] [--concurrency C] [--writes W]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
from aiohttp.test_utils import TestServer

from clusterip.apiserver.server import ApiServer
from clusterip.clock import SystemClock
from clusterip.core import model as m
from clusterip.core.ipalloc import ServiceRange
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.registry.registry import Registry
from clusterip.registry.remote import RemoteClient
from clusterip.store.api import Store
from clusterip.store.etcd import EtcdStore
from clusterip.store.sqlite import SqliteStore
from clusterip.testing.builders import make_pod, make_service
from clusterip.testing.etcd import fresh_prefix, running_etcd


@asynccontextmanager
async def api_on(store: Store) -> AsyncIterator[str]:
    """An API server over `store`; yields its URL."""
    clock = SystemClock()
    objects = ObjectStore(store, clock)
    ranges = [ServiceRange.parse("10.96.0.0/12")]
    allocator = ClusterIPAllocator(objects, ranges, random.Random(1))
    registry = Registry(objects, allocator, service_cidrs=[r.cidr for r in ranges], clock=clock,
                        rng=random.Random(1))
    await allocator.ensure_service_cidr()
    await registry.bootstrap(api_port=7080)
    server = TestServer(ApiServer(registry, clock=clock).app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()
        await store.close()


async def creates_per_second(url: str, count: int, concurrency: int) -> float:
    async with RemoteClient(url) as api:
        names = iter(range(count))

        async def caller() -> None:
            for i in names:
                await api.create(make_service(f"s{i}"))

        began = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return count / (time.perf_counter() - began)


async def watch_latencies(url: str, writes: int) -> list[float]:
    """Seconds from a pod status write's request to its event at another client's watch."""
    async with RemoteClient(url) as writer, RemoteClient(url) as agent:
        pod = await writer.create(make_pod("p", node="node-1"))
        _, start = await agent.list(m.Pod, "default")
        seen: dict[str, float] = {}
        arrived = asyncio.Event()

        async def watch() -> None:
            async for event in agent.watch(m.Pod, "default", start):
                assert isinstance(event.obj, m.Pod)
                seen[event.obj.status.message] = time.perf_counter()
                arrived.set()

        watcher = asyncio.create_task(watch())
        latencies = []
        try:
            for i in range(writes):
                mark = f"w{i}"
                status = msgspec.structs.replace(pod.status, message=mark)
                arrived.clear()
                began = time.perf_counter()
                pod = await writer.update_status(msgspec.structs.replace(pod, status=status))
                while mark not in seen:
                    await asyncio.wait_for(arrived.wait(), 5)
                    arrived.clear()
                latencies.append(seen[mark] - began)
        finally:
            watcher.cancel()
        return latencies


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def measure(url: str, args: argparse.Namespace) -> dict[str, float]:
    rate = await creates_per_second(url, args.creates, args.concurrency)
    latencies = await watch_latencies(url, args.writes)
    return {"creates/s": rate, "watch p50 ms": p(latencies, 50), "watch p99 ms": p(latencies, 99)}


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with api_on(await SqliteStore.open(Path(tmp) / "store.db")) as url:
            sqlite = await measure(url, args)
    with running_etcd() as etcd:
        store = await EtcdStore.open([etcd.endpoint], prefix=fresh_prefix())
        async with api_on(store) as url:
            on_etcd = await measure(url, args)
    print(f"{'figure':<16}{'etcd':>10}{'sqlite':>10}{'etcd/sqlite':>13}")
    for key in sqlite:
        print(f"{key:<16}{on_etcd[key]:>10.1f}{sqlite[key]:>10.1f}"
              f"{on_etcd[key] / sqlite[key]:>13.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--writes", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
