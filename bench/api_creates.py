"""Creates per second through the API, against the HTTP floor measured in the same script.

Starts a real `clusterip apiserver` process (SQLite store, fsync on every commit) on a fresh data
directory, and a reference: a bare aiohttp server in another process that answers the same POST
with a canned 201 (what HTTP and JSON cost with no store, validation or allocation). The same
client (aiohttp, C concurrent connections) sends N Service creates to each, and the script prints
both rates and their ratio. Bounded: N requests (default 3,000) on loopback only.

    python bench/api_creates.py [--count N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from clusterip.testing.process import ServerProcess

REFERENCE_SERVER = """
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def create(request):
    await request.read()
    return web.Response(body=body, status=201, content_type="application/json")
app = web.Application()
app.router.add_post("/api/v1/namespaces/default/services", create)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def service(i: int) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"bench-{i}"},
        "spec": {"selector": {"app": f"bench-{i}"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


async def drive(url: str, count: int, concurrency: int) -> float:
    """Send `count` creates with `concurrency` workers; returns creates per second."""
    path = f"{url}/api/v1/namespaces/default/services"
    next_index = iter(range(count))
    failures = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        for i in next_index:
            async with session.post(path, json=service(i)) as resp:
                await resp.read()
                failures += resp.status != 201

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} creates failed")
    return count / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("reference server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clusterip-bench-") as tmp:
        server = ServerProcess(data_dir=Path(tmp) / "data", log_path=Path(tmp) / "api.log")
        server.start()
        try:
            rate = asyncio.run(drive(server.url, args.count, args.concurrency))
        finally:
            server.stop()
        canned = Path(tmp) / "canned.json"
        canned.write_bytes(b'{"kind":"Service","apiVersion":"v1","metadata":{"name":"x"}}')
        port = free_port()
        ref = subprocess.Popen([sys.executable, "-c", REFERENCE_SERVER, str(port), str(canned)])
        try:
            wait_port(port)
            reference = asyncio.run(drive(f"http://127.0.0.1:{port}", args.count,
                                          args.concurrency))
        finally:
            ref.terminate()
            ref.wait(timeout=10)
    print(f"creates through the API (SQLite, fsync): {rate:8.0f} /s   "
          f"({args.count} Services, {args.concurrency} connections)")
    print(f"reference: bare aiohttp POST -> 201   : {reference:8.0f} /s")
    print(f"ratio clusterip / reference            : {rate / reference:8.2f}")


if __name__ == "__main__":
    main()
