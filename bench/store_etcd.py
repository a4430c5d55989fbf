"""Store operations per second through the etcd backend, against the SQLite backend.

Starts a real etcd (clusterip.testing.etcd: loopback ports, data in a temporary directory, fsync
on, as etcd always does) and opens an SQLite store in another temporary directory (fsync on every
commit). The same client code then runs on each: N creates one at a time, N creates from C
concurrent callers, N gets from C callers and one list of the N keys. It prints each rate and the
ratio etcd / sqlite. Bounded: N keys (default 2,000) of 200 bytes, loopback only; etcd is stopped
by its PID and both directories deleted at the end.

    python bench/store_etcd.py [--count N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from clusterip.store.api import Store
from clusterip.store.etcd import EtcdStore
from clusterip.store.sqlite import SqliteStore
from clusterip.testing.etcd import fresh_prefix, running_etcd

VALUE = b"v" * 200


async def rate(count: int, concurrency: int, op: Callable[[int], Awaitable[object]]) -> float:
    """Run op(0..count-1) from `concurrency` callers; returns operations per second."""
    indexes = iter(range(count))

    async def caller() -> None:
        for i in indexes:
            await op(i)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


async def measure(store: Store, count: int, concurrency: int) -> dict[str, float]:
    figures = {
        "create, 1 caller": await rate(count, 1, lambda i: store.create(f"/seq/{i}", VALUE)),
        f"create, {concurrency} callers": await rate(
            count, concurrency, lambda i: store.create(f"/par/{i}", VALUE)),
        f"get, {concurrency} callers": await rate(
            count, concurrency, lambda i: store.get(f"/par/{i}")),
    }
    started = time.perf_counter()
    items, _ = await store.list("/par/")
    assert len(items) == count
    figures[f"list of {count} keys (lists/s)"] = 1 / (time.perf_counter() - started)
    return figures


async def bench_etcd(endpoint: str, count: int, concurrency: int) -> dict[str, float]:
    store = await EtcdStore.open([endpoint], prefix=fresh_prefix())
    try:
        return await measure(store, count, concurrency)
    finally:
        await store.close()


async def bench_sqlite(path: Path, count: int, concurrency: int) -> dict[str, float]:
    store = await SqliteStore.open(path)
    try:
        return await measure(store, count, concurrency)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with running_etcd() as etcd:
        on_etcd = asyncio.run(bench_etcd(etcd.endpoint, args.count, args.concurrency))
    with tempfile.TemporaryDirectory(prefix="clusterip-bench-") as tmp:
        on_sqlite = asyncio.run(bench_sqlite(Path(tmp) / "store.db", args.count,
                                             args.concurrency))
    print(f"{'operation':34} {'etcd /s':>10} {'sqlite /s':>10} {'etcd/sqlite':>12}")
    for name, etcd_rate in on_etcd.items():
        sqlite_rate = on_sqlite[name]
        print(f"{name:34} {etcd_rate:10.0f} {sqlite_rate:10.0f} {etcd_rate / sqlite_rate:12.2f}")


if __name__ == "__main__":
    main()
