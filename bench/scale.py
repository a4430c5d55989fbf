"""The control plane at 10,000 Services with 100,000 endpoints: list latency, memory, and the time
from a pod's readiness change to its EndpointSlice update.

1. Preload (not measured against anything): S Services (each with a selector and one port, an IP
   allocated by the real allocator) and P ready pods with IPs, P/S per Service, written into a
   SQLite store in a fresh data directory through the Registry in this process.
2. Start a real `clusterip apiserver` on that directory; its endpoints controller writes the
   slices (S of them, P endpoints in all). Time from start to all slices present.
3. List latency: GET every Service, every EndpointSlice and every Pod through the API (median of
   5), each against a reference run in this script: reading the same rows straight out of the
   SQLite file (the floor for an embedded store).
4. Memory: the server process's RSS (VmRSS) after the sync.
5. Readiness → slice: flip one pod's Ready condition through `/status` and time, from the moment
   the request is sent, until a watch on EndpointSlices shows the change (p50, p99 over N flips).
   Reference: the same flips timed until a watch on Pods shows the pod itself changed — what
   delivery through the store and a watch costs without the controller.

Bounded: S, P and N are fixed by the flags (defaults 10,000 / 100,000 / 200); loopback only.

    python bench/scale.py [--services S] [--pods P] [--flips N]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from clusterip.clock import SystemClock
from clusterip.core.defaults import apply_defaults
from clusterip.core.ipalloc import ServiceRange
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.registry.registry import Registry
from clusterip.store.sqlite import SqliteStore
from clusterip.testing.builders import make_pod, make_service, port
from clusterip.testing.process import ServerProcess

NAMESPACE = "default"
BATCH = 1000
POD_NETWORK = ipaddress.ip_network("10.244.0.0/14")


async def preload(data_dir: Path, services: int, pods: int) -> None:
    data_dir.mkdir(parents=True)
    store = await SqliteStore.open(str(data_dir / "store.db"))
    clock = SystemClock()
    objects = ObjectStore(store, clock)
    ranges = [ServiceRange.parse("10.96.0.0/12")]
    allocator = ClusterIPAllocator(objects, ranges, random.Random(1))
    registry = Registry(objects, allocator, service_cidrs=[r.cidr for r in ranges], clock=clock)
    await allocator.ensure_service_cidr()
    await registry.bootstrap(api_port=0)
    per_service = pods // services
    try:
        for start in range(0, services, BATCH):
            await asyncio.gather(*(
                registry.create(make_service(f"svc-{i}", selector={"app": f"app-{i}"},
                                             ports=[port(80, 8080, name="http")]))
                for i in range(start, min(start + BATCH, services))
            ))
        for start in range(0, pods, BATCH):
            await asyncio.gather(*(
                objects.create(apply_defaults(make_pod(
                    f"pod-{i}", labels={"app": f"app-{i // per_service}"},
                    ip=str(POD_NETWORK[i + 2]), ready=True)))
                for i in range(start, min(start + BATCH, pods))
            ))
    finally:
        await store.close()


def sqlite_reference(db: Path, prefix: str) -> float:
    """Seconds to read every current value under `prefix` straight out of the SQLite file."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        started = time.perf_counter()
        rows = conn.execute(
            "SELECT l.value FROM current c JOIN log l ON l.revision = c.mod_revision "
            "WHERE c.key >= ? AND c.key < ?",
            (prefix, prefix + "\xff"),
        ).fetchall()
        for (raw,) in rows:
            json.loads(raw)
        return time.perf_counter() - started
    finally:
        conn.close()


async def timed_get(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url) as resp:
        body = await resp.read()
    elapsed = time.perf_counter() - started
    return elapsed, len(json.loads(body)["items"])


async def wait_for_endpoints(base: str, total: int) -> None:
    """Return once the EndpointSlices hold `total` endpoints, following a watch (a full list
    every so often would compete with the server for the CPU it is measured on)."""
    counts: dict[str, int] = {}
    held = 0
    async with aiohttp.ClientSession() as session, session.get(
        f"{base}/apis/discovery.k8s.io/v1/endpointslices?watch=true",
        timeout=aiohttp.ClientTimeout(total=600),
    ) as resp:
        async for line in resp.content:
            event = json.loads(line)
            name = event["object"]["metadata"]["name"]
            held -= counts.pop(name, 0)
            if event["type"] != "DELETED":
                counts[name] = len(event["object"].get("endpoints", []))
                held += counts[name]
            if held >= total:
                return
    raise SystemExit("the watch ended before every endpoint was in a slice")


class Watch:
    """A streaming watch whose events are handed to `on_event` as they arrive."""

    def __init__(self, session: aiohttp.ClientSession, url: str,
                 on_event: Callable[[dict[str, Any]], None]) -> None:
        self._session, self._url, self._on_event = session, url, on_event
        self.started = asyncio.Event()

    async def run(self) -> None:
        async with self._session.get(self._url, timeout=aiohttp.ClientTimeout(total=None)) as r:
            self.started.set()
            async for line in r.content:
                if line.strip():
                    self._on_event(json.loads(line))


async def flips(base: str, pods: int, count: int) -> tuple[list[float], list[float]]:
    """Per flip: seconds until the slice watch shows it, and until the pod watch shows it."""
    rng = random.Random(2)
    slice_seen: dict[str, tuple[bool, float]] = {}
    pod_seen: dict[str, tuple[bool, float]] = {}

    def on_slice(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        for endpoint in event["object"].get("endpoints", []):
            slice_seen[endpoint["addresses"][0]] = (endpoint["conditions"].get("ready"), now)

    def on_pod(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        obj = event["object"]
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in obj["status"].get("conditions", []))
        pod_seen[obj["status"]["podIP"]] = (ready, now)

    slice_latency: list[float] = []
    pod_latency: list[float] = []
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/api/v1/pods?limit=1") as resp:
            revision = json.loads(await resp.read())["metadata"]["resourceVersion"]
        watches = [
            Watch(session, f"{base}/apis/discovery.k8s.io/v1/endpointslices?watch=true"
                           f"&resourceVersion={revision}", on_slice),
            Watch(session, f"{base}/api/v1/pods?watch=true&resourceVersion={revision}", on_pod),
        ]
        async with asyncio.TaskGroup() as tasks:
            runners = [tasks.create_task(w.run()) for w in watches]
            for w in watches:
                await w.started.wait()
            for _ in range(count):
                i = rng.randrange(pods)
                ip = str(POD_NETWORK[i + 2])
                ready = not slice_seen.get(ip, (True, 0.0))[0]
                patch = {"status": {"conditions": [
                    {"type": "Ready", "status": "True" if ready else "False"}]}}
                sent = time.perf_counter()
                async with session.patch(
                    f"{base}/api/v1/namespaces/{NAMESPACE}/pods/pod-{i}/status",
                    data=json.dumps(patch),
                    headers={"Content-Type": "application/merge-patch+json"},
                ) as resp:
                    assert resp.status == 200, await resp.text()
                async with asyncio.timeout(10):
                    while slice_seen.get(ip, (None, 0.0))[0] is not ready or \
                            pod_seen.get(ip, (None, 0.0))[0] is not ready:
                        await asyncio.sleep(0.0005)
                slice_latency.append(slice_seen[ip][1] - sent)
                pod_latency.append(pod_seen[ip][1] - sent)
            for r in runners:
                r.cancel()
    return slice_latency, pod_latency


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def measure_lists(base: str, db: Path) -> list[tuple[str, float, int, float]]:
    targets = [
        ("services", "/api/v1/services", "/registry/services/"),
        ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices",
         "/registry/endpointslices/"),
        ("pods", "/api/v1/pods", "/registry/pods/"),
    ]
    out = []
    async with aiohttp.ClientSession() as session:
        for name, path, prefix in targets:
            runs = [await timed_get(session, base + path) for _ in range(5)]
            reference = statistics.median(sqlite_reference(db, prefix) for _ in range(5))
            out.append((name, statistics.median(r[0] for r in runs), runs[0][1], reference))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--flips", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clusterip-scale-") as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        asyncio.run(preload(data_dir, args.services, args.pods))
        print(f"preload: {args.services} services + {args.pods} pods "
              f"in {time.perf_counter() - started:.1f} s (through the Registry, in process)")
        server = ServerProcess(data_dir=data_dir, log_path=Path(tmp) / "api.log")
        started = time.perf_counter()
        server.start()
        try:
            assert server.proc is not None
            base = server.url

            asyncio.run(wait_for_endpoints(base, args.pods))
            print(f"start to all {args.pods} endpoints in slices: "
                  f"{time.perf_counter() - started:.1f} s")
            rss = rss_mib(server.proc.pid)
            for name, api, items, reference in asyncio.run(
                    measure_lists(base, data_dir / "store.db")):
                print(f"list {name:15} {items:7} items: {api * 1000:7.0f} ms   "
                      f"raw SQLite read+json.loads {reference * 1000:6.0f} ms   "
                      f"ratio {api / reference:5.2f}")
            print(f"server RSS after sync: {rss:.0f} MiB "
                  f"({args.services} services, {args.pods} pods and endpoints)")
            slice_lat, pod_lat = asyncio.run(flips(base, args.pods, args.flips))
            print(f"readiness -> EndpointSlice ({args.flips} flips): "
                  f"p50 {percentile(slice_lat, .5) * 1000:6.2f} ms  "
                  f"p99 {percentile(slice_lat, .99) * 1000:6.2f} ms")
            print(f"reference: readiness -> Pod watch event: "
                  f"p50 {percentile(pod_lat, .5) * 1000:6.2f} ms  "
                  f"p99 {percentile(pod_lat, .99) * 1000:6.2f} ms")
            print(f"ratio slice / pod event: p50 "
                  f"{percentile(slice_lat, .5) / percentile(pod_lat, .5):.2f}  p99 "
                  f"{percentile(slice_lat, .99) / percentile(pod_lat, .99):.2f}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
