"""kill -9 of a pod's process → the pod not ready in its EndpointSlice: p50 and p99 (as root).

Starts `clusterip up --netns <unique>` (the node in a network namespace of its own, removed at
the end), a Service and a Deployment of N replicas of a small HTTP server with a readiness probe,
and waits until all are ready. Then, one pod after another, it SIGKILLs every process in the
pod's network namespace and times, from the kill, until a watch on EndpointSlices shows that
pod's endpoint with ready=false. Reference, in the same run: the time until a watch on Pods
shows the pod's own Ready condition False — the agent's part (it learns of the exit from the
process itself, not from a poll), before the endpoints controller's.

Each pod is killed once (a second kill would wait out the restart back-off). Bounded: N pods
(default 20), one kill each, loopback and the test namespace only.

    sudo python bench/pod_kill.py [--pods N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from clusterip.core.naming import pod_id
from clusterip.testing.process import ServerProcess

SERVER = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H).serve_forever()
"""


def manifests(replicas: int) -> list[tuple[str, dict[str, Any]]]:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                     "name": "server", "command": [sys.executable, "-c", SERVER],
                     "ports": [{"containerPort": 8080}],
                     "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                 }]}}},
    }
    return [("/api/v1/namespaces/default/services", service),
            ("/apis/apps/v1/namespaces/default/deployments", deployment)]


async def follow(session: aiohttp.ClientSession, url: str,
                 on_event: Callable[[dict[str, Any]], None], started: asyncio.Event) -> None:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=None)) as resp:
        started.set()
        async for line in resp.content:
            if line.strip():
                on_event(json.loads(line))


async def measure(base: str, netns: str, replicas: int) -> tuple[list[float], list[float]]:
    slice_ready: dict[str, tuple[bool, float]] = {}
    pod_ready: dict[str, tuple[bool, float]] = {}

    def on_slice(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        for e in event["object"].get("endpoints", []):
            slice_ready[e["addresses"][0]] = (bool(e["conditions"].get("ready")), now)

    def on_pod(event: dict[str, Any]) -> None:
        now = time.perf_counter()
        status = event["object"].get("status", {})
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in status.get("conditions", []))
        if status.get("podIP"):
            pod_ready[status["podIP"]] = (ready, now)

    async with aiohttp.ClientSession() as session:
        for path, body in manifests(replicas):
            async with session.post(base + path, json=body) as resp:
                assert resp.status == 201, await resp.text()
        async with asyncio.TaskGroup() as tasks:
            watches = []
            for path, handler in (("/apis/discovery.k8s.io/v1/endpointslices", on_slice),
                                  ("/api/v1/pods", on_pod)):
                started = asyncio.Event()
                watches.append(tasks.create_task(
                    follow(session, f"{base}{path}?watch=true", handler, started)))
                await started.wait()
            async with asyncio.timeout(120):
                while sum(1 for ready, _ in slice_ready.values() if ready) < replicas:
                    await asyncio.sleep(0.05)
            async with session.get(f"{base}/api/v1/namespaces/default/pods") as resp:
                pods = [(p["metadata"]["uid"], p["status"]["podIP"])
                        for p in json.loads(await resp.read())["items"]]
            slice_times, pod_times = [], []
            for uid, ip in pods:
                pids = subprocess.run(["ip", "netns", "pids", f"{netns}-pod-{pod_id(uid)}"],
                                      capture_output=True, text=True).stdout.split()
                killed = time.perf_counter()
                for pid in pids:
                    os.kill(int(pid), signal.SIGKILL)
                async with asyncio.timeout(10):
                    while slice_ready[ip][0] or pod_ready[ip][0]:
                        await asyncio.sleep(0.0005)
                slice_times.append(slice_ready[ip][1] - killed)
                pod_times.append(pod_ready[ip][1] - killed)
            for w in watches:
                w.cancel()
    return slice_times, pod_times


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the node lives in a network namespace")
    netns = f"cipbench-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="clusterip-podkill-") as tmp:
        server = ServerProcess(data_dir=Path(tmp) / "data", log_path=Path(tmp) / "up.log",
                               command=("up", "--netns", netns))
        server.start()
        try:
            slice_times, pod_times = asyncio.run(measure(server.url, netns, args.pods))
        finally:
            server.stop()
    print(f"kill -9 -> not ready in the EndpointSlice ({len(slice_times)} pods): "
          f"p50 {pct(slice_times, .5):6.2f} ms  p99 {pct(slice_times, .99):6.2f} ms")
    print(f"reference: kill -9 -> Pod Ready=False event:        "
          f"p50 {pct(pod_times, .5):6.2f} ms  p99 {pct(pod_times, .99):6.2f} ms")


if __name__ == "__main__":
    main()
