"""Network programming latency across nodes: a pod's readiness changes on node A; how long until
the service proxy's rules on node C follow (kube's SLI; kube-proxy syncs at most once a second).

A local cluster of three nodes (`clusterip cluster create`'s LocalCluster: etcd, one API server,
one agent per node namespace) runs a Service `web` with two pods on node-1 that answer HTTP and
fail their 1 s readiness probe while a flag file exists. The bench flips one pod's flag R times.
For each flip:

- t0: the pod's Ready condition changes, as a watch on pods (through the API) sees it;
- t1: the EndpointSlice change, as a watch on slices sees it (the reference);
- t2: node-3's nftables table (read in its namespace through libnftables, every millisecond)
  gains or loses the pod's address.

It prints p50 and p99 of t2 - t0 (network programming latency) and of t1 - t0, and their
ratio. Watch delivery adds the same few milliseconds to t0 and t1. Bounded: R flips (default
20, about 1.5 s each); the cluster is deleted at the end, pass or fail.

    sudo python bench/cluster_netprog.py [--flips R]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import ctypes.util
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from clusterip.cluster import LocalCluster, clusterip_program
from clusterip.core import codec
from clusterip.core import model as m
from clusterip.core.clusterplan import ClusterSpec
from clusterip.registry.remote import RemoteClient
from clusterip.runtime.nssocket import NetnsSockets

WEBSERVER = Path(__file__).resolve().parent.parent / "tests" / "e2e" / "data" / "webserver.py"


class TableReader:
    """`nft list table ip clusterip` through libnftables, on a thread in the node's namespace."""

    def __init__(self, netns: str) -> None:
        self._sockets = NetnsSockets(netns)
        self._lib: Any = None
        self._ctx: int | None = None

    def _read(self) -> str:
        if self._ctx is None:
            lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            self._lib, self._ctx = lib, lib.nft_ctx_new(0)
            lib.nft_ctx_buffer_output(self._ctx)
        self._lib.nft_run_cmd_from_buffer(self._ctx, b"list table ip clusterip")
        return (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()

    async def read(self) -> str:
        return await self._sockets.run(self._read)

    def close(self) -> None:
        self._sockets.close()


def manifest(data: dict[str, Any]) -> Any:
    data["metadata"].setdefault("namespace", "default")
    return codec.decode(data).obj


def web_pod(name: str, state: Path) -> Any:
    return manifest({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": name, "labels": {"app": "web"}},
                     "spec": {"nodeName": "node-1", "containers": [{
                         "name": "server",
                         "command": [sys.executable, str(WEBSERVER), "8080", str(state)],
                         "ports": [{"name": "serve", "containerPort": 8080}],
                         "readinessProbe": {"httpGet": {"path": "/", "port": "serve"},
                                            "periodSeconds": 1, "failureThreshold": 1}}]}})


def ready(pod: m.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def flips(api: RemoteClient, table: TableReader, state: Path, count: int
                ) -> tuple[list[float], list[float]]:
    pod = await api.get(m.Pod, "default", "web-0")
    ip = pod.status.pod_ip
    _, start = await api.list(m.Pod, "default")
    seen_pod: dict[bool, float] = {}
    seen_slice: dict[bool, float] = {}

    async def watch_pods() -> None:
        async for event in api.watch(m.Pod, "default", start):
            if event.obj.metadata.name == "web-0" and isinstance(event.obj, m.Pod):
                seen_pod.setdefault(ready(event.obj), time.perf_counter())

    async def watch_slices() -> None:
        async for event in api.watch(m.EndpointSlice, "default", start):
            assert isinstance(event.obj, m.EndpointSlice)
            for endpoint in event.obj.endpoints:
                if ip in endpoint.addresses:
                    seen_slice.setdefault(bool(endpoint.conditions.ready), time.perf_counter())

    programming, endpoints = [], []
    tasks = [asyncio.create_task(watch_pods()), asyncio.create_task(watch_slices())]
    try:
        for flip in range(count):
            to_ready = flip % 2 == 1
            seen_pod.pop(to_ready, None)
            seen_slice.pop(to_ready, None)
            flag = state / "fail-web-0"
            flag.unlink() if to_ready else flag.write_text("")
            async with asyncio.timeout(20):
                while True:
                    rules = await table.read()
                    if (f"{ip} " in rules or f"{ip}:" in rules) == to_ready:
                        programmed = time.perf_counter()
                        break
                    await asyncio.sleep(0.001)
                while to_ready not in seen_pod or to_ready not in seen_slice:
                    await asyncio.sleep(0.01)
            programming.append(programmed - seen_pod[to_ready])
            endpoints.append(seen_slice[to_ready] - seen_pod[to_ready])
            await asyncio.sleep(0.3)
    finally:
        for task in tasks:
            task.cancel()
    return programming, endpoints


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        state.mkdir()
        spec = ClusterSpec(name=f"np{secrets.token_hex(3)}", data_dir=f"{tmp}/cluster",
                           nodes=3, program=clusterip_program(),
                           node_args=("--heartbeat", "2", "--dns-upstream", "127.0.0.1:9"))
        cluster = LocalCluster(spec)
        await cluster.start()
        table = TableReader(f"{spec.name}-node-3")
        try:
            async with RemoteClient(",".join(cluster.servers)) as api:
                await api.create(manifest({
                    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                    "spec": {"selector": {"app": "web"},
                             "ports": [{"port": 80, "targetPort": "serve"}]}}))
                for name in ("web-0", "web-1"):
                    await api.create(web_pod(name, state))
                async with asyncio.timeout(60):
                    while not all([ready(await api.get(m.Pod, "default", n))
                                   for n in ("web-0", "web-1")]):
                        await asyncio.sleep(0.1)
                programming, endpoints = await flips(api, table, state, args.flips)
        finally:
            table.close()
            await cluster.stop()
    print(f"{len(programming)} readiness flips of a pod on node-1, rules read on node-3")
    print(f"{'':<36}{'p50 ms':>8}{'p99 ms':>8}")
    print(f"{'readiness -> node-3 rules':<36}{p(programming, 50):>8.1f}{p(programming, 99):>8.1f}")
    print(f"{'readiness -> EndpointSlice (ref.)':<36}{p(endpoints, 50):>8.1f}"
          f"{p(endpoints, 99):>8.1f}")
    print(f"ratio rules / slice: p50 {p(programming, 50) / p(endpoints, 50):.2f}, "
          f"p99 {p(programming, 99) / p(endpoints, 99):.2f}; kube-proxy's minimum sync period: "
          "1000 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
