"""The userspace proxy mode against HAProxy, on a throwaway node (as root): figure (d).

`UserspaceProxier` (in this process, on uvloop if installed) and HAProxy (TCP mode, one thread)
in front of the same pods, in the same node namespace: HTTP requests per second with keep-alive
and with a new connection per request, and iperf3 throughput; as ratios clusterip/HAProxy. Also
the userspace proxier's Protocol-pump relay (``splice=False``) against its splice relay.

What it does, each step bounded in time and count:

1. Makes the namespaces (`netlab.Lab`, every name ``cipb-<hex>-<role>``): a node with a bridge
   (10.244.0.1/24, br_netfilter on, 10.96.0.0/12 routed out of the bridge), three server pods
   ``web-1..3`` (10.244.0.11-13, nginx on :8080, one process each, each answering its own
   name; ``web-1`` also runs ``iperf3 -s`` on :5201) and a client pod (10.244.0.100; in its
   namespace only, ``tcp_tw_reuse=1`` and ports 1024-65535: through a proxy, wrk closes first
   after a ``Connection: close`` answer, and without these its ports in TIME_WAIT capped it at
   a few hundred new connections a second after the first 20 s; `netlab.Lab.tune_client`).
   No nftables rules anywhere.
2. HAProxy in the node namespace (a temporary config: ``mode tcp``, ``nbthread 1``,
   ``balance random``, maxconn 8000, connect 2 s, client/server 60 s; no splice, its default),
   on 10.96.200.2 (added to the node's loopback): :80 → the three pods' :8080, :5201 → web-1's
   :5201.
3. Two `UserspaceProxier`s in this process, sockets from `NetnsSockets(node)`, their ClusterIPs
   added to the node's loopback (``ip -n NODE addr add VIP/32 dev lo``) by a `LocalAddresses`
   of this script, internal-only filtering on as the app sets it (pod and service CIDRs,
   127.0.0.0/8): the splice relay (the default) serves 10.96.0.20:80 (→ the three pods) and
   10.96.0.21:5201 (→ web-1), the pump relay (``splice=False``) 10.96.0.30:80 and
   10.96.0.31:5201. 30 requests to each HTTP front must come back from all three pods.
4. ``--rounds`` rounds (default 3), the order of the proxies reversed every other round: for each
   of clusterip (splice), HAProxy and clusterip (pump): wrk from the client,
   ``-t1 -c50 -d<seconds>s`` keep-alive, then with ``Connection: close``; then iperf3
   (``-t <iperf-seconds> -J``, one stream) through each, and straight to web-1 for reference.
   The CPU time the proxy used during each run is read (this process's `time.process_time`, or
   HAProxy's /proc/PID/stat). Figures are the medians of the rounds.
5. Checks the fronts again, prints the table (figure | clusterip | reference | ratio | aim),
   then the details (rounds, latency, proxy CPU per request, the proxiers' counters).

Everything is removed at the end, pass or fail (also on Ctrl-C and SIGTERM): the proxiers are
cancelled (their sockets closed), nginx, iperf3, HAProxy, wrk, curl ended by their PIDs, the
namespaces deleted (with the VIPs, bridge and veths), the temporary directory removed. The host's
network namespace is never changed.

The 2 CPUs are shared by wrk, nginx, the proxy and whatever else runs on the machine; the ratios
(measured in the same rounds) move much less than the absolute numbers. Nothing is pinned.

    sudo python bench/proxy_userspace.py [--seconds 10] [--iperf-seconds 5] [--rounds 3]
                                         [--connections 50] [--loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import netlab

from clusterip.app import loop_name
from clusterip.core.servicemap import Endpoint, ServicePort, ServicePortName, Snapshot
from clusterip.proxy.relay import SPLICE_AVAILABLE
from clusterip.proxy.userspace import UserspaceProxier
from clusterip.runtime.nssocket import NetnsSockets

HAPROXY_IP = "10.96.200.2"
IPERF_PORT = 5201
HTTP_PORT = 80
FRONTS = {  # name → (HTTP address, iperf3 address)
    "clusterip": ("10.96.0.20", "10.96.0.21"),
    "haproxy": (HAPROXY_IP, HAPROXY_IP),
    "clusterip pump": ("10.96.0.30", "10.96.0.31"),
}
PODS = 3

HAPROXY_CONF = """\
global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    maxconn 8000
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend web
    bind {ip}:{http_port}
    default_backend web
backend web
    balance random
{servers}
frontend iperf
    bind {ip}:{iperf_port}
    default_backend iperf
backend iperf
    server web-1 {iperf_server}:{iperf_port}
"""


class NodeLoopback:
    """`LocalAddresses` on the node namespace's ``lo`` (``ip -n NODE addr add|del IP/32``)."""

    def __init__(self, lab: netlab.Lab) -> None:
        self.lab = lab

    async def add(self, ip: str) -> None:
        await self.lab.run_async(["ip", "-n", self.lab.node, "addr", "add", f"{ip}/32", "dev",
                                  "lo"], timeout=10)

    async def remove(self, ip: str) -> None:
        await self.lab.run_async(["ip", "-n", self.lab.node, "addr", "del", f"{ip}/32", "dev",
                                  "lo"], timeout=10)


def service_port(name: str, vip: str, port: int, endpoints: list[tuple[str, int]]
                 ) -> ServicePort:
    return ServicePort(ServicePortName("default", name, "", "TCP"), (vip,), port, "TCP",
                       endpoints=tuple(sorted(Endpoint(ip, p, node_name=netlab.NODE_NAME)
                                              for ip, p in endpoints)))


def snapshot(ports: list[ServicePort]) -> Snapshot:
    by_name = {p.name: p for p in ports}
    return Snapshot(by_name, frozenset(by_name))


@dataclass
class Run:
    value: float  # req/s or Gbit/s
    cpu_s: float  # the proxy's CPU seconds during the run
    wall_s: float
    wrk: netlab.WrkResult | None = None
    syn_retransmits: int = 0  # by the client, during the run


@dataclass
class Results:
    runs: dict[tuple[str, str], list[Run]] = field(default_factory=dict)  # (front, test)
    checks: list[str] = field(default_factory=list)
    stats: dict[str, str] = field(default_factory=dict)


async def check_front(lab: netlab.Lab, client: netlab.Pod, pods: list[netlab.Pod], front: str,
                      what: str, results: Results) -> None:
    ip = FRONTS[front][0]
    bodies = await lab.curl_bodies(client.netns, f"http://{ip}:{HTTP_PORT}/", 30)
    seen = {b: bodies.count(b) for b in sorted(set(bodies))}
    if len(bodies) != 30 or set(bodies) != {p.name for p in pods}:
        raise RuntimeError(f"{what}: 30 requests to {front} {ip} got {seen}")
    results.checks.append(f"{what}: {front} {ip}:{HTTP_PORT}: 30/30 answered, by {seen}")


async def measured(cpu: Callable[[], float], work: Coroutine[Any, Any, Any]
                   ) -> tuple[Any, float, float]:
    """`work`'s result, the CPU seconds `cpu` counted meanwhile, and the wall seconds."""
    cpu0, wall0 = cpu(), time.perf_counter()
    result = await work
    return result, cpu() - cpu0, time.perf_counter() - wall0


async def rounds(lab: netlab.Lab, client: netlab.Pod, pods: list[netlab.Pod], haproxy_pid: int,
                 args: argparse.Namespace, results: Results) -> None:
    cpu: dict[str, Callable[[], float]] = {
        "clusterip": time.process_time,
        "clusterip pump": time.process_time,
        "haproxy": lambda: netlab.cpu_seconds(haproxy_pid),
    }
    fronts = list(FRONTS)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        order = fronts if r % 2 == 0 else fronts[::-1]
        for close in (False, True):
            test = "close" if close else "keep-alive"
            for front in order:
                url = f"http://{FRONTS[front][0]}:{HTTP_PORT}/"
                syns = lab.syn_retransmits(client.netns)
                result, cpu_s, wall_s = await measured(cpu[front], netlab.wrk(
                    lab, client.netns, url, seconds=args.seconds, threads=args.threads,
                    connections=args.connections, close=close))
                results.runs.setdefault((front, test), []).append(Run(
                    result.rps, cpu_s, wall_s, result, lab.syn_retransmits(client.netns) - syns))
                if result.errors:
                    print(f"  warning: {front} {test}: {result.errors} errors", flush=True)
                print(f"  {front:<15} {test:<11} {result.rps:>10,.0f} req/s  p99 "
                      f"{result.p99_ms:6.2f} ms  proxy CPU {100 * cpu_s / wall_s:3.0f}%",
                      flush=True)
        for front in [*order, "direct"]:
            host = pods[0].ip if front == "direct" else FRONTS[front][1]
            gbps, cpu_s, wall_s = await measured(
                cpu.get(front, time.process_time),
                netlab.iperf3(lab, client.netns, host, IPERF_PORT, args.iperf_seconds))
            results.runs.setdefault((front, "iperf3"), []).append(Run(gbps, cpu_s, wall_s))
            print(f"  {front:<15} iperf3      {gbps:>10.2f} Gbit/s"
                  + (f"  proxy CPU {100 * cpu_s / wall_s:3.0f}%" if front != "direct" else ""),
                  flush=True)


async def bench(lab: netlab.Lab, pods: list[netlab.Pod], client: netlab.Pod, haproxy_pid: int,
                args: argparse.Namespace) -> Results:
    results = Results()
    sockets = NetnsSockets(lab.node)
    clients = ["10.244.0.0/16", netlab.SERVICE_CIDR, "127.0.0.0/8"]  # as the app sets them
    web = [(p.ip, netlab.POD_PORT) for p in pods]
    iperf = [(pods[0].ip, IPERF_PORT)]
    proxiers = {
        "clusterip": UserspaceProxier(sockets, NodeLoopback(lab), node=netlab.NODE_NAME,
                                      clients=clients),
        "clusterip pump": UserspaceProxier(sockets, NodeLoopback(lab), node=netlab.NODE_NAME,
                                           clients=clients, splice=False),
    }
    for front, proxier in proxiers.items():
        http_ip, iperf_ip = FRONTS[front]
        tag = front.replace(" ", "-")
        await proxier.sync(snapshot([service_port(f"web-{tag}", http_ip, HTTP_PORT, web),
                                     service_port(f"iperf-{tag}", iperf_ip, IPERF_PORT, iperf)]))
    tasks = [asyncio.create_task(p.run()) for p in proxiers.values()]
    try:
        await asyncio.sleep(0)  # the listeners start accepting
        for front in FRONTS:
            await check_front(lab, client, pods, front, "before", results)
        await rounds(lab, client, pods, haproxy_pid, args, results)
        for front in FRONTS:
            await check_front(lab, client, pods, front, "after", results)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sockets.close()
    for front, proxier in proxiers.items():
        s = proxier.stats
        results.stats[front] = (f"accepted {s.accepted:,}, relayed {s.relayed:,}, refused "
                                f"{s.refused}, retries {s.retries}, errors {s.errors}, "
                                f"outsiders {s.outsiders}")
    return results


def report(results: Results, args: argparse.Namespace, loop: str) -> None:
    def med(front: str, test: str) -> float:
        return netlab.median([r.value for r in results.runs[(front, test)]])

    def paired(ours: str, ref: str, test: str) -> str:
        return netlab.paired_ratio([r.value for r in results.runs[(ours, test)]],
                                   [r.value for r in results.runs[(ref, test)]])

    rows: list[tuple[str, ...]] = []
    for test, label, aim, unit in (
        ("keep-alive", "keep-alive req/s", "≥ 1.0", "{:,.0f}"),
        ("close", "new connection per request req/s", "≥ 0.8", "{:,.0f}"),
        ("iperf3", "iperf3 Gbit/s", "≥ 1.2", "{:.2f}"),
    ):
        rows.append((f"(d) {label}: userspace | HAProxy", unit.format(med("clusterip", test)),
                     unit.format(med("haproxy", test)), paired("clusterip", "haproxy", test),
                     aim))
    for test, label, unit in (("keep-alive", "keep-alive req/s", "{:,.0f}"),
                              ("close", "new conn. req/s", "{:,.0f}"),
                              ("iperf3", "iperf3 Gbit/s", "{:.2f}")):
        rows.append((f"(d) {label}: splice relay | pump relay",
                     unit.format(med("clusterip", test)), unit.format(med("clusterip pump", test)),
                     paired("clusterip", "clusterip pump", test), ""))
    rows.append(("(d) iperf3 Gbit/s: userspace | straight to the pod",
                 f"{med('clusterip', 'iperf3'):.2f}", f"{med('direct', 'iperf3'):.2f}",
                 paired("clusterip", "direct", "iperf3"), ""))
    print()
    print(netlab.table(rows, ("figure: clusterip | reference", "clusterip", "reference",
                              "ratio", "aim")))
    print("figures: medians of the rounds; their ratio: the median (and range) of the ratios "
          "within each round")
    print()
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s; iperf3 -t "
          f"{args.iperf_seconds}; {args.rounds} rounds; clusterip on {loop} "
          f"(splice available: {SPLICE_AVAILABLE}); median, min–max of the rounds, median p99, "
          "proxy CPU: % of one CPU and µs per request")
    for (front, test), runs in results.runs.items():
        values = [r.value for r in runs]
        cpu = sum(r.cpu_s for r in runs) / sum(r.wall_s for r in runs)
        if test == "iperf3":
            print(f"  {front:<15} {test:<11} {netlab.median(values):>8.2f} Gbit/s  "
                  f"({min(values):.2f}–{max(values):.2f})"
                  + (f"  proxy CPU {100 * cpu:3.0f}%" if front != "direct" else ""))
            continue
        p99 = netlab.median([r.wrk.p99_ms for r in runs if r.wrk])
        requests = sum(r.wrk.requests for r in runs if r.wrk)
        errors = sum(r.wrk.errors for r in runs if r.wrk)
        syns = sum(r.syn_retransmits for r in runs)
        per_request = 1e6 * sum(r.cpu_s for r in runs) / max(1, requests)
        print(f"  {front:<15} {test:<11} {netlab.median(values):>8,.0f} req/s  "
              f"({netlab.spread(values)})  p99 {p99:6.2f} ms  proxy CPU {100 * cpu:3.0f}% "
              f"{per_request:5.1f} µs/req  errors {errors}  SYN retransmits {syns}")
    for front, stats in results.stats.items():
        print(f"{front}: {stats}")
    for check in results.checks:
        print(f"check: {check}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--iperf-seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=50, help="wrk -c")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args()
    if not (1 <= args.seconds <= 120 and 1 <= args.iperf_seconds <= 60
            and 1 <= args.rounds <= 20 and 1 <= args.threads <= args.connections <= 10_000):
        parser.error("--seconds 1..120, --iperf-seconds 1..60, --rounds 1..20, "
                     "1 ≤ --threads ≤ --connections ≤ 10000")
    missing = netlab.missing_tools(["haproxy", "iperf3"])
    if missing:
        sys.exit(f"missing: {', '.join(missing)}")
    netlab.trap_sigterm()
    loop = loop_name(args.loop)
    print(f"loop {loop}, load average {netlab.load_average()}", flush=True)
    try:
        with netlab.Lab() as lab:
            lab.make_node()
            pods = [lab.add_pod(f"web-{i}", 10 + i) for i in range(1, PODS + 1)]
            client = lab.add_pod("client", 100)
            lab.tune_client(client)
            for pod in pods:
                lab.nginx(pod)
            iperf_server = lab.start(pods[0].netns, ["iperf3", "-s", "-p", str(IPERF_PORT)],
                                     "iperf3")
            lab.wait_listening(pods[0].netns, IPERF_PORT, iperf_server, "iperf3")
            lab.add_loopback_address(lab.node, HAPROXY_IP)
            conf = lab.tmp / "haproxy.cfg"
            conf.write_text(HAPROXY_CONF.format(
                ip=HAPROXY_IP, http_port=HTTP_PORT, iperf_port=IPERF_PORT, iperf_server=pods[0].ip,
                servers="\n".join(f"    server {p.name} {p.ip}:{netlab.POD_PORT}" for p in pods)))
            haproxy = lab.start(lab.node, ["haproxy", "-f", str(conf), "-db"], "haproxy")
            lab.wait_listening(lab.node, HTTP_PORT, haproxy, "haproxy")
            print(f"namespaces cipb-{lab.id}-*: node (HAProxy pid {haproxy.pid}), "
                  f"{', '.join(p.name for p in pods)}, client; this process pid {os.getpid()}",
                  flush=True)
            results = netlab.run_loop(bench(lab, pods, client, haproxy.pid, args), args.loop)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted (every namespace, process and file of the run was removed)")
    report(results, args, loop)
    print(f"load average at the end {netlab.load_average()}")


if __name__ == "__main__":
    main()
