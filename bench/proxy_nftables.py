"""The nftables proxy mode, measured on a throwaway node (as root): figures (a), (b) and (c).

(a) HTTP through a ClusterIP (DNAT by `NftablesProxier`'s rules) against straight to the pods.
(b) The same at 10, 1,000 and 10,000 services in the rules (it should stay flat).
(c) How fast an endpoint change reaches the kernel at 10,000 services, and a cold full sync of
    10,000 services × 10 endpoints, through libnftables and through the nft command.

What it does, each step bounded in time and count:

1. Makes the namespaces (`netlab.Lab`, every name ``cipb-<hex>-<role>``): a node with a bridge
   (10.244.0.1/24, br_netfilter on, the service CIDR 10.96.0.0/12 routed out of the bridge),
   three server pods ``web-1..3`` (10.244.0.11-13, nginx on :8080, one process each, each
   answering its own name) and two client pods for wrk: ``client`` (10.244.0.100) for the
   ClusterIP, ``client-direct`` (10.244.0.101) for the pod IPs. Two, because one client that
   connects both ways at thousands of new connections a second reuses its ports on the same
   pods both ways: the pods' TIME_WAIT sockets then see SYNs whose timestamps come from another
   clock (Linux offsets them per address pair, and the pair is client-ClusterIP one way and
   client-pod the other) and refuse them, and conntrack finds a direct SYN's tuple already taken
   by the reply of an earlier DNATed connection; either way the SYN is retransmitted a second
   later (measured: thousands of SYN retransmissions per run, half the rate gone). In their
   namespaces only, ``tcp_tw_reuse=1`` and ports 1024-65535 (`netlab.Lab.tune_client`). SYN
   retransmissions are counted during every run and printed.
2. Builds real Services and EndpointSlices and feeds them to a `ServiceMapTracker`: ``web``
   (10.96.0.20:80 → the three pods' :8080, on this node) and 9,999 others
   (10.97.x.y:80 → 10 endpoints each on ``node-x``: IPs in 10.245-246.x.y that nothing answers,
   as a node sees the pods of a whole cluster). Rule sets of 10, 1,000 and 10,000 services are
   ``web`` plus the first 9, 999 and 9,999 others.
3. An `NftablesProxier` with `LibNftables(NetnsSockets(node))` programs the node; 30 requests to
   10.96.0.20 must come back from all three pods.
4. ``--rounds`` rounds (default 3), the order reversed every other round so that a drift of the
   machine's load falls on every variant; each variant keep-alive and with ``Connection: close``
   (a new connection per request), ``wrk -t3 -c48 -d<seconds>s``:
   * ``direct``: from ``client-direct`` straight to the pods (each wrk thread on one pod, a Lua
     ``setup`` that sets ``thread.addr``: the same three nginx processes, evenly loaded, as the
     Service spreads them);
   * ``hand``: from ``client`` through 10.96.0.20 with our table deleted and a hand-written one
     in its place (one rule in a nat prerouting chain: ``ip daddr 10.96.0.20 tcp dport 80 dnat
     ip to numgen random mod 3 map {...}``), the floor of what DNAT and routing on the node
     cost; our table comes back with a full sync after it;
   * ``vip N``: from ``client`` through 10.96.0.20 with N services in our rules (a `sync` to
     them first).
   The figures are the medians of the rounds. The share of packets each pod received during the
   first round's runs is printed too.
5. At 10,000 services: ``--changes`` (default 200) endpoint changes, each one EndpointSlice of a
   service on ``node-x`` with one endpoint replaced by a new IP: `tracker.slice` → `take` →
   `proxier.sync`, timed from before `tracker.slice` to the end of `sync`; the nft apply alone is
   timed inside (a wrapper around the `Nft`). Checks that no sync was a full one, then asks the
   kernel (``nft get element``) for every slot of the last 5 changed services and compares with
   the service map, and that 30 requests through 10.96.0.20 still reach all three pods.
6. Cold full sync in an extra empty namespace (``cipb-<hex>-cold``): a new `NftablesProxier`'s
   first `sync` of the whole map (render + text + apply, end to end; the apply alone inside),
   ``--cold`` times (default 3) with `LibNftables` and as many with `NftCommand` (``nft -f -``
   under ``ip netns exec``), alternating; the table is deleted between them (not timed).
7. Prints the table: figure | clusterip | reference | ratio | aim, then the details.

Everything is removed at the end, pass or fail (also on Ctrl-C and SIGTERM): nginx processes by
their PIDs, wrk and curl by theirs, the namespace threads, the namespaces (bridge and veths go
with them), the temporary directory. The host's network namespace is never changed.

The 2 CPUs are shared by wrk, nginx, the kernel's forwarding and whatever else runs on the
machine: the absolute numbers move from run to run, the ratios (measured in the same rounds)
much less. Nothing is pinned.

    sudo python bench/proxy_nftables.py [--seconds 10] [--rounds 3] [--changes 200] [--cold 3]
                                        [--connections 48] [--loop auto|asyncio|uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import netlab

from clusterip.app import loop_name
from clusterip.core import model as m
from clusterip.core import nftrules
from clusterip.core.nftrules import ProxyConfig
from clusterip.core.servicemap import (
    ServiceMap,
    ServiceMapTracker,
    ServicePortName,
    Snapshot,
    choose,
)
from clusterip.proxy.nftables import (
    LibNftables,
    NetlinkConntrack,
    Nft,
    NftablesProxier,
    NftCommand,
)
from clusterip.runtime.nssocket import NetnsSockets
from clusterip.testing.builders import make_service, port

WEB_VIP = "10.96.0.20"
WEB_PORT = 80
SERVICES = 10_000
ENDPOINTS_PER_SERVICE = 10
SIZES = (10, 1_000, 10_000)
PODS = 3
CONFIG = ProxyConfig(node=netlab.NODE_NAME, service_cidrs=(netlab.SERVICE_CIDR,),
                     pod_cidrs=("10.244.0.0/14",))
VERIFY_LAST = 5  # changed services whose slots are read back from the kernel
HAND_TABLE = "cipb-ref"
HAND_DNAT = """\
table ip {table} {{
    chain prerouting {{
        type nat hook prerouting priority -100; policy accept;
        ip daddr {vip} tcp dport {port} dnat ip to numgen random mod {n} map {{ {slots} }}
    }}
}}
"""


def fake_vip(i: int) -> str:
    return f"10.97.{i // 250}.{i % 250 + 1}"


def fake_endpoint(n: int) -> str:
    return f"10.{245 + n // 65536}.{n // 256 % 256}.{n % 256}"


def replacement_ip(j: int) -> str:
    return f"10.247.{j // 256 % 256}.{j % 256}"


# --- the API objects --------------------------------------------------------------------------


def endpoint_slice(service: str, ips: list[str], node: str) -> m.EndpointSlice:
    return m.EndpointSlice(
        api_version="discovery.k8s.io/v1", kind="EndpointSlice",
        metadata=m.ObjectMeta(name=f"{service}-abcde", namespace="default",
                              labels={"kubernetes.io/service-name": service}),
        address_type="IPv4",
        endpoints=tuple(m.Endpoint(addresses=(ip,), conditions=m.EndpointConditions(ready=True),
                                   node_name=node) for ip in ips),
        ports=(m.EndpointPort(name="http", protocol="TCP", port=netlab.POD_PORT),))


def build_tracker(pod_ips: list[str]) -> tuple[ServiceMapTracker, dict[str, m.EndpointSlice]]:
    """The tracker after every Service and slice was added (not taken yet), and the slices."""
    tracker = ServiceMapTracker()
    slices: dict[str, m.EndpointSlice] = {}
    specs = [("web", WEB_VIP, pod_ips, netlab.NODE_NAME)]
    specs += [(f"svc-{i}", fake_vip(i),
               [fake_endpoint(i * ENDPOINTS_PER_SERVICE + k) for k in range(ENDPOINTS_PER_SERVICE)],
               "node-x") for i in range(SERVICES - 1)]
    for name, vip, ips, node in specs:
        tracker.service(f"default/{name}", make_service(
            name, ports=[port(WEB_PORT, netlab.POD_PORT, name="http")], cluster_ip=vip))
        sl = endpoint_slice(name, ips, node)
        slices[f"default/{sl.metadata.name}"] = sl
        tracker.slice(f"default/{sl.metadata.name}", sl)
    return tracker, slices


def web_name() -> ServicePortName:
    return ServicePortName("default", "web", "http", "TCP")


def submap(ports: ServiceMap, size: int) -> dict[ServicePortName, Any]:
    """``web`` and the first `size` - 1 others (the same `ServicePort` objects)."""
    chosen = {web_name(): ports[web_name()]}
    for i in range(size - 1):
        name = ServicePortName("default", f"svc-{i}", "http", "TCP")
        chosen[name] = ports[name]
    return chosen


# --- timing the nft part ----------------------------------------------------------------------


class TimedNft:
    """An `Nft` that records how long each apply took (seconds, as seen from the loop)."""

    def __init__(self, inner: Nft) -> None:
        self.inner = inner
        self.times: list[float] = []

    async def apply(self, text: str) -> None:
        start = time.perf_counter()
        try:
            await self.inner.apply(text)
        finally:
            self.times.append(time.perf_counter() - start)


@dataclass
class Results:
    wrk: dict[str, list[netlab.WrkResult]] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)  # first round: packets per pod
    resize_s: dict[int, list[float]] = field(default_factory=dict)  # sync to a size
    change_s: list[float] = field(default_factory=list)
    change_apply_s: list[float] = field(default_factory=list)
    change_lines: list[int] = field(default_factory=list)
    cold: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # (total, apply)
    cold_text_mib: float = 0.0
    render_s: list[float] = field(default_factory=list)  # nftrules.render of the whole map
    checks: list[str] = field(default_factory=list)
    syn_retrans: dict[str, int] = field(default_factory=dict)  # by wrk key, all rounds


# --- the steps --------------------------------------------------------------------------------


async def check_reaches_all(lab: netlab.Lab, client: netlab.Pod, pods: list[netlab.Pod],
                            what: str, results: Results) -> None:
    bodies = await lab.curl_bodies(client.netns, f"http://{WEB_VIP}:{WEB_PORT}/", 30)
    seen = {b: bodies.count(b) for b in sorted(set(bodies))}
    if len(bodies) != 30 or set(bodies) != {p.name for p in pods}:
        raise RuntimeError(f"{what}: 30 requests to {WEB_VIP} got {seen}")
    results.checks.append(f"{what}: 30/30 requests through {WEB_VIP}:{WEB_PORT} answered, "
                          f"by {seen}")


async def measure(lab: netlab.Lab, key: str, client: netlab.Pod, pods: list[netlab.Pod],
                  url: str, args: argparse.Namespace, close: bool, results: Results,
                  script: Path | None, first_round: bool) -> None:
    before = [lab.rx_packets(p.netns) for p in pods]
    syns = lab.syn_retransmits(client.netns)
    result = await netlab.wrk(lab, client.netns, url, seconds=args.seconds, threads=PODS,
                              connections=args.connections, close=close, script=script)
    if result.errors:
        print(f"  warning: {key}: {result.errors} errors", flush=True)
    results.wrk.setdefault(key, []).append(result)
    syns = lab.syn_retransmits(client.netns) - syns
    results.syn_retrans[key] = results.syn_retrans.get(key, 0) + syns
    if first_round:
        got = [lab.rx_packets(p.netns) - b for p, b in zip(pods, before, strict=True)]
        results.shares[key] = "/".join(f"{100 * g / max(1, sum(got)):.0f}" for g in got)
    print(f"  {key:<22} {result.rps:>10,.0f} req/s  p99 {result.p99_ms:6.2f} ms  "
          f"SYN retransmits {syns}", flush=True)


async def throughput_rounds(lab: netlab.Lab, proxier: NftablesProxier, nft: Nft,
                            ports: ServiceMap, clients: dict[str, netlab.Pod],
                            pods: list[netlab.Pod], args: argparse.Namespace,
                            results: Results) -> None:
    script = netlab.wrk_spread_script(lab, [(p.ip, netlab.POD_PORT) for p in pods])
    direct_url = f"http://{pods[0].ip}:{netlab.POD_PORT}/"
    vip_url = f"http://{WEB_VIP}:{WEB_PORT}/"
    maps = {size: submap(ports, size) for size in SIZES}
    slots = ", ".join(f"{i} : {p.ip} . {netlab.POD_PORT}" for i, p in enumerate(pods))
    hand = HAND_DNAT.format(table=HAND_TABLE, vip=WEB_VIP, port=WEB_PORT, n=len(pods),
                            slots=slots)
    for r in range(args.rounds):
        # "direct": straight to the pods; "hand": one hand-written DNAT rule instead of ours
        order: list[int | str] = ["direct", "hand", *SIZES]
        if r % 2:
            order.reverse()
        print(f"round {r + 1}/{args.rounds}", flush=True)
        for variant in order:
            if variant == "hand":
                await proxier.close()  # our table goes; the next sync is a full one
                await nft.apply(hand)
            elif isinstance(variant, int):
                full_syncs, start = proxier.full_syncs, time.perf_counter()
                await proxier.sync(Snapshot(maps[variant], frozenset()))
                if proxier.full_syncs == full_syncs:
                    results.resize_s.setdefault(variant, []).append(time.perf_counter() - start)
            direct = variant == "direct"
            for close in (False, True):
                key = f"{variant if isinstance(variant, str) else f'vip {variant}'} " + (
                    "close" if close else "keep-alive")
                await measure(lab, key, clients["direct" if direct else "vip"], pods,
                              direct_url if direct else vip_url, args, close, results,
                              script if direct else None, r == 0)
            if variant == "hand":
                await nft.apply(f"table ip {HAND_TABLE}\ndelete table ip {HAND_TABLE}\n")


async def endpoint_changes(proxier: NftablesProxier, nft: TimedNft, tracker: ServiceMapTracker,
                           slices: dict[str, m.EndpointSlice], lab: netlab.Lab,
                           args: argparse.Namespace, results: Results) -> None:
    full_before = proxier.full_syncs
    changed: list[str] = []
    for j in range(args.changes):
        i = (j * 7919) % (SERVICES - 1)  # spread over the services, no two alike in 9,999
        key = f"default/svc-{i}-abcde"
        old = slices[key]
        endpoints = list(old.endpoints)
        endpoints[j % len(endpoints)] = msgspec.structs.replace(
            endpoints[j % len(endpoints)], addresses=(replacement_ip(j),))
        new = msgspec.structs.replace(old, endpoints=tuple(endpoints))
        slices[key] = new
        applies = len(nft.times)
        start = time.perf_counter()
        tracker.slice(key, new)
        await proxier.sync(tracker.take())
        results.change_s.append(time.perf_counter() - start)
        if len(nft.times) != applies + 1:
            raise RuntimeError(f"change {j}: {len(nft.times) - applies} nft applies, not 1")
        results.change_apply_s.append(nft.times[-1])
        changed.append(f"svc-{i}")
    if proxier.full_syncs != full_before:
        raise RuntimeError(f"{proxier.full_syncs - full_before} of the changes were full syncs")
    results.checks.append(f"{args.changes} endpoint changes: all incremental (no full sync)")
    # What the kernel holds for the last changed services, slot by slot.
    ports = tracker.take().ports
    want: dict[str, str] = {}
    for svc in changed[-VERIFY_LAST:]:
        sp = ports[ServicePortName("default", svc, "http", "TCP")]
        for slot, e in enumerate(choose(sp, CONFIG.node, 4).endpoints):
            want[f"{sp.cluster_ips[0]} . {sp.port} . {slot}"] = f"{e.ip} . {e.port}"
    keys = ", ".join(want)
    out = netlab.run(["ip", "netns", "exec", lab.node, "nft", "get", "element", "ip",
                      CONFIG.table, nftrules.ENDPOINTS["tcp"], f"{{ {keys} }}"]).stdout
    got = dict(re.findall(r"([\d.]+ \. \d+ \. \d+) : ([\d.]+ \. \d+)", out))
    if got != want:
        missing = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
        raise RuntimeError(f"the kernel's endpoints-tcp differs from the service map: {missing}")
    results.checks.append(f"kernel endpoints-tcp map: all {len(want)} slots of the last "
                          f"{VERIFY_LAST} changed services as the service map says")
    for _ in range(5):  # what every sync starts with, whatever changed
        start = time.perf_counter()
        nftrules.render(ports, CONFIG)
        results.render_s.append(time.perf_counter() - start)


async def cold_syncs(lab: netlab.Lab, ports: ServiceMap, args: argparse.Namespace,
                     results: Results) -> None:
    cold = lab.netns("cold")
    sockets = NetnsSockets(cold)
    lib = LibNftables(sockets)
    try:
        text = nftrules.full_sync(nftrules.render(ports, CONFIG))
        results.cold_text_mib = len(text) / 2**20
        del text
        backends: dict[str, Nft] = {"libnftables": lib, "nft -f": NftCommand(cold)}
        for n in range(args.cold):
            for label, backend in backends.items():
                timed = TimedNft(backend)
                proxier = NftablesProxier(timed, NetlinkConntrack(sockets), CONFIG)
                start = time.perf_counter()
                await proxier.sync(Snapshot(ports, frozenset()))
                total = time.perf_counter() - start
                results.cold.setdefault(label, []).append((total, timed.times[-1]))
                print(f"  cold full sync {n + 1}/{args.cold} {label:<12} {total:6.2f} s "
                      f"(nft apply {timed.times[-1]:.2f} s)", flush=True)
                await proxier.close()
    finally:
        await lib.close()
        sockets.close()


async def bench(lab: netlab.Lab, pods: list[netlab.Pod], clients: dict[str, netlab.Pod],
                args: argparse.Namespace) -> Results:
    client = clients["vip"]
    results = Results()
    started = time.perf_counter()
    tracker, slices = build_tracker([p.ip for p in pods])
    ports = tracker.take().ports
    print(f"{len(ports):,} service ports, "
          f"{sum(len(p.endpoints) for p in ports.values()):,} endpoints built in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    sockets = NetnsSockets(lab.node)
    lib = LibNftables(sockets)
    nft = TimedNft(lib)
    proxier = NftablesProxier(nft, NetlinkConntrack(sockets), CONFIG)
    try:
        await proxier.sync(Snapshot(submap(ports, SIZES[0]), frozenset()))
        await check_reaches_all(lab, client, pods, "after the first sync", results)
        await throughput_rounds(lab, proxier, lib, ports, clients, pods, args, results)
        await proxier.sync(Snapshot(ports, frozenset()))
        print(f"(c) {args.changes} endpoint changes at {len(ports):,} services", flush=True)
        await endpoint_changes(proxier, nft, tracker, slices, lab, args, results)
        await check_reaches_all(lab, client, pods, "after the endpoint changes", results)
        print("(c) cold full syncs", flush=True)
        await cold_syncs(lab, tracker.take().ports, args, results)
        await proxier.close()
    finally:
        await lib.close()
        sockets.close()
    return results


# --- the report -------------------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace) -> None:
    med = {k: netlab.median([r.rps for r in v]) for k, v in results.wrk.items()}

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if b else "-"

    def paired(ours: str, ref: str) -> str:
        return netlab.paired_ratio([r.rps for r in results.wrk[ours]],
                                   [r.rps for r in results.wrk[ref]])

    rows: list[tuple[str, ...]] = []
    small = SIZES[0]
    for mode, aim in (("keep-alive", "≥ 0.95"), ("close", "≥ 0.95")):
        label = "keep-alive" if mode == "keep-alive" else "new connection per request"
        ours, ref, hand = (f"vip {small} {mode}", f"direct {mode}", f"hand {mode}")
        rows.append((f"(a) {label} req/s: ClusterIP ({small} services) | pod IPs",
                     f"{med[ours]:,.0f}", f"{med[ref]:,.0f}", paired(ours, ref), aim))
        rows.append((f"    {label} req/s: ClusterIP ({small} services) | one hand DNAT rule",
                     f"{med[ours]:,.0f}", f"{med[hand]:,.0f}", paired(ours, hand), ""))
    for mode in ("keep-alive", "close"):
        label = "keep-alive" if mode == "keep-alive" else "new conn."
        for size in SIZES[1:]:
            ours, ref = f"vip {size} {mode}", f"vip {small} {mode}"
            rows.append((f"(b) {label} req/s: {size:,} services | {small} services",
                         f"{med[ours]:,.0f}", f"{med[ref]:,.0f}", paired(ours, ref), "≈ 1.00"))
    ms = [s * 1000 for s in results.change_s]
    apply_ms = [s * 1000 for s in results.change_apply_s]
    for p in (50, 99):
        total, alone = netlab.percentile(ms, p), netlab.percentile(apply_ms, p)
        rows.append((f"(c) endpoint change → applied, p{p} ms | nft apply alone",
                     f"{total:.1f}", f"{alone:.1f}", ratio(total, alone),
                     "p99 < 50 ms" if p == 99 else ""))
    lib_total = netlab.median([t for t, _ in results.cold["libnftables"]])
    cmd_total = netlab.median([t for t, _ in results.cold["nft -f"]])
    rows.append((f"(c) cold full sync {SERVICES:,} svc × {ENDPOINTS_PER_SERVICE} ep, s: "
                 "libnftables | nft -f", f"{lib_total:.2f}", f"{cmd_total:.2f}",
                 ratio(lib_total, cmd_total), "< 2 s"))
    print()
    print(netlab.table(rows, ("figure: clusterip | reference", "clusterip", "reference",
                              "ratio", "aim")))
    print("req/s: medians of the rounds; their ratio: the median (and range) of the ratios "
          "within each round")
    print()
    print(f"wrk -t{PODS} -c{args.connections} -d{args.seconds}s, {args.rounds} rounds "
          "(median, min–max of rounds, median p99 latency; first round: % of packets per pod; "
          "errors and SYN retransmits of all rounds)")
    for key, runs in results.wrk.items():
        print(f"  {key:<26} {med[key]:>9,.0f} req/s  ({netlab.spread([r.rps for r in runs])})  "
              f"p99 {netlab.median([r.p99_ms for r in runs]):6.2f} ms  "
              f"pods {results.shares.get(key, '-')}  errors {sum(r.errors for r in runs)}  "
              f"SYN retransmits {results.syn_retrans.get(key, 0)}")
    resize = ", ".join(f"to {size:,}: {netlab.median(v) * 1000:.0f} ms"
                       for size, v in results.resize_s.items())
    print(f"sync between rule set sizes (incremental, median): {resize}")
    print(f"endpoint changes: {len(ms)} at {SERVICES:,} services; change → applied "
          f"p50 {netlab.percentile(ms, 50):.1f} ms, p99 {netlab.percentile(ms, 99):.1f} ms, "
          f"max {max(ms):.1f} ms; nft apply p50 {netlab.percentile(apply_ms, 50):.1f} ms, "
          f"p99 {netlab.percentile(apply_ms, 99):.1f} ms (libnftables, on the node's thread); "
          f"nftrules.render of the whole map (first and failed syncs; the others re-render "
          f"only the ports that changed): median "
          f"{netlab.median(results.render_s) * 1000:.0f} ms of 5")
    for label, cold in results.cold.items():
        total = netlab.median([t for t, _ in cold])
        applied = netlab.median([a for _, a in cold])
        print(f"cold full sync via {label:<12}: {total:.2f} s end to end = render + text "
              f"{total - applied:.2f} s + apply {applied:.2f} s (medians of {len(cold)}; "
              f"{results.cold_text_mib:.1f} MiB of text)")
    for check in results.checks:
        print(f"check: {check}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=48,
                        help="wrk -c (a multiple of 3: one wrk thread per pod)")
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--cold", type=int, default=3, help="cold full syncs per backend")
    parser.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto")
    args = parser.parse_args()
    if not 1 <= args.seconds <= 120 or not 1 <= args.rounds <= 20:
        parser.error("--seconds 1..120, --rounds 1..20")
    if args.changes < 2 or args.cold < 1 or args.connections < PODS:
        parser.error("--changes ≥ 2, --cold ≥ 1, --connections ≥ 3")
    missing = netlab.missing_tools(["nft"])
    if missing:
        sys.exit(f"missing: {', '.join(missing)}")
    if not LibNftables.available():
        sys.exit("libnftables cannot be loaded (apt-get install libnftables1)")
    netlab.trap_sigterm()
    print(f"loop {loop_name(args.loop)}, load average {netlab.load_average()}", flush=True)
    try:
        with netlab.Lab() as lab:
            lab.make_node()
            pods = [lab.add_pod(f"web-{i}", 10 + i) for i in range(1, PODS + 1)]
            clients = {"vip": lab.add_pod("client", 100),
                       "direct": lab.add_pod("client-direct", 101)}
            for client in clients.values():
                lab.tune_client(client)
            for pod in pods:
                lab.nginx(pod)
            print(f"namespaces cipb-{lab.id}-*: node, {', '.join(p.name for p in pods)}, "
                  "client, client-direct",
                  flush=True)
            results = netlab.run_loop(bench(lab, pods, clients, args), args.loop)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit("interrupted (every namespace, process and file of the run was removed)")
    report(results, args)
    print(f"load average at the end {netlab.load_average()}")


if __name__ == "__main__":
    main()
