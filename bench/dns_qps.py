"""Cluster DNS throughput with dnsperf: the clusterip server against unbound, on loopback.

What it does, each step bounded in time:

1. Starts the clusterip DNS server in a process of its own (this script with `--serve`), on
   127.0.0.1 at a free port, with a view of N ClusterIP services (default 10,000) and no
   upstream; on uvloop if it is installed (`uvloop.run`, never `uvloop.install`), else asyncio.
2. Runs `dnsperf -s 127.0.0.1 -p PORT -d QUERYFILE -l SECONDS -c CLIENTS` with the query file
   holding `svc-42.default.svc.cluster.local A`, then stops the server by its PID.
3. Starts unbound (a temporary unbound.conf: one thread, 127.0.0.1@PORT, no daemon, no chroot,
   a static local-zone with the same record) and runs the same dnsperf against it; stops it
   by its PID.
4. Prints both qps, the ratio, dnsperf's loss and latency.
5. In this process: N services in an ObjectStore over a MemoryStore, the informers and a
   DnsCache; times `build_view` at N services (the whole zone from scratch), then `--samples`
   times a Service create → its name resolving (the current Responder answers it) and its
   delete → NXDOMAIN, each from the store write on, polled every millisecond; prints their
   median and 99th percentile, and the DnsCache's build time per change.

The temporary directory (query file, unbound.conf, logs) is removed at the end, and every
process started is ended by its PID, pass or fail. Traffic stays on 127.0.0.1.

    python bench/dns_qps.py [--services 10000] [--seconds 10] [--clients 10] [--qps LIMIT]
                            [--loop auto|asyncio|uvloop] [--samples 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import msgspec

from clusterip.app import loop_name
from clusterip.app import run_on as run_loop
from clusterip.control.informer import InformerFactory
from clusterip.core import model as m
from clusterip.core.dnsanswer import Answer, Responder, build_view
from clusterip.core.projections import slim_pod
from clusterip.dnsserver.cache import DnsCache
from clusterip.dnsserver.forward import NoForwarder
from clusterip.dnsserver.server import serve_dns
from clusterip.registry.objects import ObjectStore
from clusterip.store.memory import MemoryStore
from clusterip.testing.builders import make_service, port
from clusterip.testing.clock import FakeClock

NAME = "svc-42.default.svc.cluster.local"
START_TIMEOUT = 60.0


def service_ip(i: int) -> str:
    return f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"


def make_svc(name: str, ip: str) -> m.Service:
    def mutate(svc: m.Service) -> m.Service:
        return msgspec.structs.replace(svc, spec=msgspec.structs.replace(
            svc.spec, cluster_ip=ip, cluster_ips=(ip,)))

    return make_service(name, ports=[port(80, name="http")], mutate=mutate)


def make_services(count: int) -> list[m.Service]:
    return [make_svc(f"svc-{i}", service_ip(i)) for i in range(count)]


# --- the server process --------------------------------------------------------------------


def serve(services: int, loop: str) -> None:
    view = build_view(make_services(services), [], [])
    responder = Responder(view)

    def ready(addresses: list[tuple[str, int]]) -> None:
        print(f"ready {addresses[0][1]}", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        run_loop(serve_dns(lambda: responder, NoForwarder(), host="127.0.0.1", port=0,
                           ready=ready), loop)


# --- helpers -------------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (for unbound, which binds it itself)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            number = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind(("127.0.0.1", number))
                except OSError:
                    continue
        return number
    raise RuntimeError("no free port")


def answer(port_: int, timeout: float = 0.5) -> list[str]:
    reply = dns.query.udp(dns.message.make_query(NAME, "A"), "127.0.0.1", port=port_,
                          timeout=timeout)
    assert reply.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(reply.rcode())
    return [rr.to_text() for rrset in reply.answer for rr in rrset]


def wait_answering(port_: int, proc: subprocess.Popen[Any], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            return answer(port_)
        except (dns.exception.Timeout, ConnectionRefusedError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def process(argv: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    with open(log, "w") as log_file:
        proc = subprocess.Popen(argv, stderr=log_file, text=True, **kwargs)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def dnsperf(port_: int, queryfile: Path, args: argparse.Namespace) -> dict[str, float]:
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port_), "-d", str(queryfile),
            "-l", str(args.seconds), "-c", str(args.clients)]
    if args.qps:
        argv += ["-Q", str(args.qps)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.seconds + 60,
                         check=True).stdout
    figures = {
        "qps": r"Queries per second:\s+([\d.]+)",
        "sent": r"Queries sent:\s+(\d+)",
        "lost": r"Queries lost:\s+(\d+)",
        "latency_ms": r"Average Latency \(s\):\s+([\d.]+)",
    }
    result: dict[str, float] = {}
    for key, pattern in figures.items():
        match = re.search(pattern, out)
        if match is None:
            raise RuntimeError(f"dnsperf output without {key}:\n{out}")
        result[key] = float(match.group(1))
    result["latency_ms"] *= 1000
    return result


UNBOUND_CONF = """\
server:
    interface: 127.0.0.1@{port}
    port: {port}
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "{dir}"
    pidfile: "{dir}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    local-zone: "cluster.local." static
    local-data: "{name}. 5 IN A {ip}"
remote-control:
    control-enable: no
"""


# --- the parts of the benchmark ------------------------------------------------------------


def bench_clusterip(args: argparse.Namespace, tmp: Path, queryfile: Path) -> dict[str, float]:
    argv = [sys.executable, os.path.abspath(__file__), "--serve", "--services",
            str(args.services), "--loop", args.loop]
    with process(argv, tmp / "clusterip.log", stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"clusterip server did not start: {line!r} "
                               f"{(tmp / 'clusterip.log').read_text()}")
        port_ = int(line.split()[1])
        print(f"clusterip: {args.services} services, {loop_name(args.loop)}, port {port_}, "
              f"{NAME} → {wait_answering(port_, proc, START_TIMEOUT)}", flush=True)
        return dnsperf(port_, queryfile, args)


def bench_unbound(args: argparse.Namespace, tmp: Path, queryfile: Path) -> dict[str, float]:
    port_ = free_port()
    conf = tmp / "unbound.conf"
    conf.write_text(UNBOUND_CONF.format(port=port_, dir=tmp, name=NAME, ip=service_ip(42)))
    unbound = shutil.which("unbound") or "/usr/sbin/unbound"
    with process([unbound, "-d", "-c", str(conf)], tmp / "unbound.log",
                 stdout=subprocess.DEVNULL) as proc:
        print(f"unbound: 1 thread, port {port_}, {NAME} → "
              f"{wait_answering(port_, proc, START_TIMEOUT)}", flush=True)
        return dnsperf(port_, queryfile, args)


def percentile(values: list[float], p: int) -> float:
    """The `p`-th percentile (interpolated between the samples, within their range)."""
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


async def programming_latency(count: int, samples: int) -> dict[str, float]:
    """build_view at `count` services; create → resolvable and delete → NXDOMAIN via DnsCache
    (milliseconds: the build's median, and the median and 99th percentile of the others)."""
    services = make_services(count)
    build = []
    for _ in range(3):
        start = time.perf_counter()
        Responder(build_view(services, [], []))
        build.append(time.perf_counter() - start)
    objects = ObjectStore(MemoryStore(), FakeClock())
    for svc in services:
        await objects.create(svc)
    factory = InformerFactory(objects, transforms={m.Pod: slim_pod})
    cache = DnsCache(factory)

    def has_status(wire: bytes, rcode: int) -> bool:
        """Whether the current view answers the query `wire` with `rcode` (read from the
        header: the poll must stay cheap, or it would slow down the build it waits for)."""
        result = cache.current().respond(wire, transport="udp")
        assert isinstance(result, Answer)
        return result.wire[3] & 0x0F == rcode

    async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> float:
        start = time.perf_counter()
        while not predicate():
            if time.perf_counter() - start > timeout:
                raise TimeoutError("not resolvable in time")
            await asyncio.sleep(0.001)
        return time.perf_counter() - start

    created: list[float] = []
    deleted: list[float] = []
    builds: list[float] = []
    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(factory.run()), tasks.create_task(cache.run())]
        await until(lambda: bool(cache.synced), 60)
        for i in range(samples):
            name = f"new-{i}"
            wire = dns.message.make_query(f"{name}.default.svc.cluster.local", "A").to_wire()
            start = time.perf_counter()
            await objects.create(make_svc(name, f"10.99.{(i + 1) // 256}.{(i + 1) % 256}"))
            await until(functools.partial(has_status, wire, dns.rcode.NOERROR))
            created.append(time.perf_counter() - start)
            builds.append(cache.last_build_seconds)
            start = time.perf_counter()
            await objects.delete(m.Service, "default", name)
            await until(functools.partial(has_status, wire, dns.rcode.NXDOMAIN))
            deleted.append(time.perf_counter() - start)
        for task in runs:
            task.cancel()
    return {
        "build_ms": statistics.median(build) * 1000,
        "rebuild_ms": statistics.median(builds) * 1000,
        "rebuild_p99_ms": percentile(builds, 99) * 1000,
        "create_ms": statistics.median(created) * 1000,
        "create_p99_ms": percentile(created, 99) * 1000,
        "delete_ms": statistics.median(deleted) * 1000,
        "delete_p99_ms": percentile(deleted, 99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--qps", type=int, default=0, help="dnsperf -Q (0: no limit)")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    parser.add_argument("--samples", type=int, default=50,
                        help="Service creates and deletes timed in step 5 (at least 2)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.services, args.loop)
        return
    for tool in ("dnsperf", "unbound"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            sys.exit(f"{tool} is not installed (apt-get install dnsperf unbound)")
    with tempfile.TemporaryDirectory(prefix="dns-qps-") as name:
        tmp = Path(name)
        queryfile = tmp / "queries.txt"
        queryfile.write_text(f"{NAME} A\n")
        ours = bench_clusterip(args, tmp, queryfile)
        theirs = bench_unbound(args, tmp, queryfile)
    latency = run_loop(programming_latency(args.services, args.samples), args.loop)
    print()
    print(f"dnsperf -l {args.seconds} -c {args.clients}{f' -Q {args.qps}' if args.qps else ''}, "
          f"query {NAME} A, {args.services} services")
    for label, r in (("clusterip", ours), ("unbound", theirs)):
        print(f"  {label:<10} {r['qps']:>10,.0f} qps  lost {r['lost']:.0f}/{r['sent']:.0f}  "
              f"avg latency {r['latency_ms']:.3f} ms")
    print(f"  ratio clusterip/unbound: {ours['qps'] / theirs['qps']:.2f}")
    print(f"view at {args.services} services: build_view + Responder {latency['build_ms']:.1f} ms "
          f"(the whole zone, median of 3); DnsCache build after a create "
          f"p50 {latency['rebuild_ms']:.1f} ms, p99 {latency['rebuild_p99_ms']:.1f} ms "
          "(the change alone, on the loop)")
    print(f"Service create → resolvable: p50 {latency['create_ms']:.1f} ms, "
          f"p99 {latency['create_p99_ms']:.1f} ms; delete → NXDOMAIN: p50 "
          f"{latency['delete_ms']:.1f} ms, p99 {latency['delete_p99_ms']:.1f} ms; "
          f"{args.samples} of each, {loop_name(args.loop)}")


if __name__ == "__main__":
    main()
