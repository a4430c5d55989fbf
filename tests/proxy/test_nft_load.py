"""core.nftrules against a real kernel (nft 1.0.6), in throwaway network namespaces.

* Every golden ruleset (tests/core/golden/nftrules/*.nft) loads, loads again over itself (a full
  sync replaces the tables whether or not they exist), and lists.
* A walk through service maps: each `update(old, new)` applied to a namespace that holds `old`
  leaves it exactly as a `full_sync(new)` leaves a fresh one (compared as ``nft -j list
  ruleset`` without handles, elements sorted). The walk grows and shrinks pick-N chains, makes,
  changes and removes affinity chains and sets, and touches both families.
  The same for random pairs of service maps (hypothesis).
* A transaction whose last command fails changes nothing.
* Packets: a node namespace with a bridge, a server pod, a client pod and a host outside the
  cluster; connections to ClusterIPs reach the endpoint, are refused or are dropped as the rules
  say, and the locally served DNS address answers from pods and from the node.
* (slow) 10,000 services × 10 endpoints: the full sync and a one-endpoint update load; the
  times are printed (``-s``), not asserted.

Every namespace is named ``cipt-<random hex>`` and deleted at the end, pass or fail; nothing
touches the host's own namespace.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterip.core.nftrules import ProxyConfig, full_sync, render, update
from clusterip.core.servicemap import Endpoint, ServicePort, ServicePortName

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None,
                       reason="needs root and nft: creates network namespaces and tables"),
]

GOLDEN = sorted((Path(__file__).parents[1] / "core" / "golden" / "nftrules").glob("*.nft"))
NODE = "node-1"
DNS_IP = "10.96.0.10"
CONFIG = ProxyConfig(
    node=NODE,
    service_cidrs=("10.96.0.0/12", "fd00:10:96::/112"),
    pod_cidrs=("10.244.0.0/16", "fd00:10:244::/56"),
    local_ips=frozenset({DNS_IP}),
)


def run(*argv: str, stdin: str | None = None, check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=check,
                          timeout=timeout)


def nft(ns: str, text: str) -> subprocess.CompletedProcess[str]:
    return run("ip", "netns", "exec", ns, "nft", "-f", "-", stdin=text, check=False)


def load(ns: str, text: str) -> None:
    result = nft(ns, text)
    assert result.returncode == 0, result.stderr


def state(ns: str) -> list[str]:
    """The namespace's ruleset, comparable: handles dropped, elements sorted, rules in order
    per chain."""
    listing = json.loads(run("ip", "netns", "exec", ns, "nft", "-j", "list", "ruleset").stdout)
    objects: list[str] = []
    rules: dict[tuple[str, str, str], list[str]] = {}
    for item in listing["nftables"]:
        ((kind, body),) = item.items()
        if kind == "metainfo":
            continue
        body = {k: v for k, v in body.items() if k != "handle"}
        if kind == "rule":
            chain = (body["family"], body["table"], body["chain"])
            rules.setdefault(chain, []).append(json.dumps(body["expr"], sort_keys=True))
            continue
        if "elem" in body:
            body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body["elem"])
        objects.append(json.dumps({kind: body}, sort_keys=True))
    return sorted(objects) + [f"{c}: {r}" for c, rs in sorted(rules.items()) for r in rs]


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    """Makes namespaces ``cipt-<hex>``; all of them are deleted at the end."""
    made: list[str] = []

    def make() -> str:
        name = f"cipt-{secrets.token_hex(4)}"
        run("ip", "netns", "add", name)
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            run("ip", "netns", "delete", name, check=False)


# --- rulesets ----------------------------------------------------------------------------------


def ep(ip: str, port: int = 9376, *, node: str | None = NODE) -> Endpoint:
    return Endpoint(ip, port, node_name=node)


def svc(name: str, vip: str | tuple[str, ...], port: int, *endpoints: Endpoint,
        protocol: str = "TCP", affinity: int | None = None,
        local: bool = False) -> ServicePort:
    vips = (vip,) if isinstance(vip, str) else vip
    return ServicePort(ServicePortName("default", name, "", protocol), vips, port, protocol,
                       affinity, local, tuple(sorted(endpoints)))


def service_map(*ports: ServicePort) -> dict[ServicePortName, ServicePort]:
    return {p.name: p for p in ports}


WEB = svc("web", "10.96.0.20", 80, ep("10.244.0.3"))
WEB3 = svc("web", "10.96.0.20", 80, ep("10.244.0.3"), ep("10.244.0.4"), ep("10.244.1.5", node="n2"))
WEB3_MOVED = svc("web", "10.96.0.20", 80, ep("10.244.0.3"), ep("10.244.0.4"), ep("10.244.0.6"))
EMPTY = svc("empty", "10.96.0.21", 80)
EMPTY_FILLED = svc("empty", "10.96.0.21", 80, ep("10.244.0.7"))
SYSLOG = svc("syslog", "10.96.0.24", 514, ep("10.244.0.3", 5514), protocol="UDP")
SYSLOG_GONE = svc("syslog", "10.96.0.24", 514, protocol="UDP")
LOCAL = svc("local", "10.96.0.22", 80, ep("10.244.1.5", node="n2"), local=True)
STICKY = svc("sticky", "10.96.0.23", 80, ep("10.244.0.3"), ep("10.244.1.5", node="n2"),
             affinity=10800)
STICKY_SHORT = svc("sticky", "10.96.0.23", 80, ep("10.244.0.3"), ep("10.244.1.5", node="n2"),
                   affinity=60)
STICKY_ONE = svc("sticky", "10.96.0.23", 80, ep("10.244.0.3"), affinity=60)
DUAL = svc("dual", ("10.96.0.26", "fd00:10:96::26"), 80, ep("10.244.0.3"), ep("fd00:10:244::3"))
DUAL_MORE = svc("dual", ("10.96.0.26", "fd00:10:96::26"), 80, ep("10.244.0.3"),
                ep("fd00:10:244::3"), ep("fd00:10:244::4"))

WALK = [
    service_map(WEB, EMPTY, SYSLOG, DUAL),
    service_map(WEB3, EMPTY, SYSLOG, DUAL_MORE),  # pick-3 appears, ip6 pick-2
    service_map(WEB3_MOVED, EMPTY, SYSLOG, DUAL_MORE),  # one slot changes
    service_map(WEB3_MOVED, EMPTY, SYSLOG, DUAL_MORE, STICKY),  # affinity chains and sets
    service_map(WEB3_MOVED, EMPTY, SYSLOG, DUAL_MORE, STICKY_SHORT),  # sets made again
    service_map(WEB3_MOVED, EMPTY, SYSLOG, DUAL_MORE, STICKY_ONE),  # an endpoint chain goes
    service_map(WEB, EMPTY_FILLED, SYSLOG_GONE, LOCAL, DUAL),  # affinity gone, pick-3 gone
    service_map(),
    service_map(WEB, EMPTY, SYSLOG, DUAL),
]


@pytest.mark.parametrize("golden", GOLDEN, ids=[p.stem for p in GOLDEN])
def test_a_golden_ruleset_loads_reloads_and_lists(golden: Path,
                                                  netns: Callable[[], str]) -> None:
    ns = netns()
    text = golden.read_text()
    load(ns, text)
    load(ns, text)
    for family in ("ip", "ip6"):
        if f"\nadd chain {family} clusterip services\n" in text:
            listed = run("ip", "netns", "exec", ns, "nft", "list", "table", family, "clusterip")
            assert "chain services {" in listed.stdout


def test_each_update_leaves_the_kernel_as_a_full_sync_would(netns: Callable[[], str]) -> None:
    updated = netns()
    old = render(WALK[0], CONFIG)
    load(updated, full_sync(old))
    for step, ports in enumerate(WALK[1:], 1):
        new = render(ports, CONFIG, old)  # incremental, as the proxier renders
        assert new == render(ports, CONFIG), f"step {step}"
        text = update(old, new)
        assert text, f"step {step} changes something"
        load(updated, text)
        fresh = netns()
        load(fresh, full_sync(new))
        assert state(updated) == state(fresh), f"step {step}"
        old = new


_ENDPOINT = st.builds(
    Endpoint,
    ip=st.sampled_from(["10.244.0.3", "10.244.0.4", "10.244.1.5", "fd00:10:244::3"]),
    port=st.sampled_from([8080, 9376]),
    ready=st.booleans(),
    node_name=st.sampled_from([NODE, "n2"]),
)


@st.composite
def service_maps(draw: st.DrawFn) -> dict[ServicePortName, ServicePort]:
    ports = []
    for vip in draw(st.lists(st.integers(20, 24), unique=True, max_size=4)):
        affinity = draw(st.sampled_from([None, 60, 120]))
        for protocol in draw(st.lists(st.sampled_from(["TCP", "UDP"]), unique=True,
                                      min_size=1)):
            endpoints = draw(st.lists(_ENDPOINT, unique_by=lambda e: (e.ip, e.port),
                                      max_size=4))
            ports.append(svc(f"s{vip}", (f"10.96.0.{vip}", f"fd00:10:96::{vip}"), 80,
                             *endpoints, protocol=protocol, affinity=affinity,
                             local=draw(st.booleans())))
    return service_map(*ports)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(service_maps(), service_maps())
def test_any_update_leaves_the_kernel_as_a_full_sync_would(
    netns: Callable[[], str], before: dict[ServicePortName, ServicePort],
    after: dict[ServicePortName, ServicePort],
) -> None:
    updated, fresh = netns(), netns()
    old, new = render(before, CONFIG), render(after, CONFIG)
    load(updated, full_sync(old))
    load(updated, update(old, new))
    load(fresh, full_sync(new))
    assert state(updated) == state(fresh)


def test_a_failing_transaction_changes_nothing(netns: Callable[[], str]) -> None:
    ns = netns()
    old = render(WALK[0], CONFIG)
    load(ns, full_sync(old))
    before = state(ns)
    text = update(old, render(WALK[3], CONFIG)) + "delete chain ip clusterip no-such-chain\n"
    assert nft(ns, text).returncode != 0
    assert state(ns) == before


# --- packets -----------------------------------------------------------------------------------

SERVER = """
import socket, sys, threading
def tcp(host, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port)); s.listen(16)
    def serve():
        while True:
            conn, peer = s.accept()
            conn.sendall(peer[0].encode()); conn.close()
    threading.Thread(target=serve, daemon=True).start()
def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((host, port))
    def serve():
        while True:
            _, peer = s.recvfrom(100)
            s.sendto(peer[0].encode(), peer)
    threading.Thread(target=serve, daemon=True).start()
for spec in sys.argv[1:]:
    proto, host, port = spec.split(":")
    {"tcp": tcp, "udp": udp}[proto](host, int(port))
print("ready", flush=True)
sys.stdin.read()
"""

CLIENT = """
import socket, sys
proto, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind); s.settimeout(1.0)
try:
    s.connect((host, port))
    if proto == "udp":
        s.send(b"hello")
    print(s.recv(100).decode())
except ConnectionRefusedError:
    print("refused")
except (TimeoutError, socket.timeout):
    print("timeout")
"""

PACKETS = service_map(
    svc("web", "10.96.0.20", 80, ep("10.244.0.3")),
    svc("empty", "10.96.0.21", 80),
    svc("syslog", "10.96.0.24", 514, ep("10.244.0.3", 5514), protocol="UDP"),
)


class Node:
    """A node namespace with bridge cbr0 (10.244.0.1/24) and the pod ``server`` (10.244.0.3) on
    it, the pod ``client`` (10.244.1.2) routed through a veth of its own, a host ``outside``
    (203.0.113.7, through the node), the cluster DNS address 10.96.0.10 on the node's loopback,
    and a route for the service CIDR out of the bridge (the node's own connections to
    ClusterIPs need one before DNAT).

    The client is routed rather than bridged so that the server's replies pass the node's IP
    layer (and conntrack's un-DNAT) whether or not br_netfilter is loaded on the host. The
    server's bridge port is in hairpin mode, as kubelet's ``hairpin-veth`` sets it: with
    br_netfilter, a packet DNATed back to the pod it came from is bridged out of the port it
    came in by."""

    def __init__(self, make: Callable[[], str]) -> None:
        self.node, self.server, self.client, self.outside = make(), make(), make(), make()
        self.processes: list[subprocess.Popen[str]] = []
        ip = self.ip
        ip(self.node, "link set lo up")
        ip(self.node, "addr add 10.96.0.10/32 dev lo")
        ip(self.node, "link add cbr0 type bridge")
        ip(self.node, "addr add 10.244.0.1/24 dev cbr0")
        ip(self.node, "link set cbr0 up")
        ip(self.node, "route add 10.96.0.0/12 dev cbr0")
        run("ip", "netns", "exec", self.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ip(self.node, f"link add veth0 type veth peer name eth0 netns {self.server}")
        ip(self.node, "link set veth0 master cbr0 up")
        ip(self.node, "link set veth0 type bridge_slave hairpin on")
        self.attach(self.server, "10.244.0.3/24", "10.244.0.1")
        for peer, ns, (gateway, address) in (
            ("veth1", self.client, ("10.244.1.1/24", "10.244.1.2/24")),
            ("out0", self.outside, ("203.0.113.1/24", "203.0.113.7/24")),
        ):
            ip(self.node, f"link add {peer} type veth peer name eth0 netns {ns}")
            ip(self.node, f"addr add {gateway} dev {peer}")
            ip(self.node, f"link set {peer} up")
            self.attach(ns, address, gateway.split("/")[0])

    @staticmethod
    def ip(ns: str, command: str) -> None:
        run("ip", "-n", ns, *command.split())

    def attach(self, ns: str, address: str, gateway: str) -> None:
        self.ip(ns, "link set lo up")
        self.ip(ns, f"addr add {address} dev eth0")
        self.ip(ns, "link set eth0 up")
        self.ip(ns, f"route add default via {gateway}")

    def serve(self, ns: str, *specs: str) -> None:
        process = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, *specs],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.processes.append(process)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"

    def connect(self, ns: str, protocol: str, host: str, port: int) -> str:
        result = run("ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, protocol, host,
                     str(port), timeout=10)
        return result.stdout.strip()

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


@pytest.fixture
def node(netns: Callable[[], str]) -> Iterator[Node]:
    made = Node(netns)
    try:
        made.serve(made.server, "tcp:0.0.0.0:9376", "udp:0.0.0.0:5514")
        made.serve(made.node, f"tcp:{DNS_IP}:53")
        load(made.node, full_sync(render(PACKETS, CONFIG)))
        yield made
    finally:
        made.stop()


@pytest.mark.parametrize(
    ("origin", "protocol", "address", "port", "answer"),
    [
        pytest.param("client", "tcp", "10.96.0.20", 80, "10.244.1.2", id="pod-to-service"),
        pytest.param("node", "tcp", "10.96.0.20", 80, "10.244.0.1", id="node-to-service"),
        pytest.param("server", "tcp", "10.96.0.20", 80, "10.244.0.1",
                     id="hairpin-masqueraded"),
        pytest.param("client", "udp", "10.96.0.24", 514, "10.244.1.2", id="udp"),
        pytest.param("client", "tcp", "10.96.0.21", 80, "refused", id="no-endpoints-refused"),
        pytest.param("node", "tcp", "10.96.0.21", 80, "refused",
                     id="no-endpoints-from-node-refused"),
        pytest.param("client", "tcp", "10.96.0.20", 81, "refused", id="unserved-port-refused"),
        pytest.param("client", "tcp", "10.96.0.99", 80, "timeout", id="unallocated-dropped"),
        pytest.param("outside", "tcp", "10.96.0.20", 80, "timeout", id="outside-dropped"),
        pytest.param("outside", "tcp", "10.244.0.3", 9376, "203.0.113.7",
                     id="outside-to-pod-routed"),
        pytest.param("client", "tcp", DNS_IP, 53, "10.244.1.2", id="dns-address-from-pod"),
        pytest.param("node", "tcp", DNS_IP, 53, DNS_IP, id="dns-address-from-node"),
    ],
)
def test_a_connection_goes_where_the_rules_say(node: Node, origin: str, protocol: str,
                                               address: str, port: int, answer: str) -> None:
    assert node.connect(getattr(node, origin), protocol, address, port) == answer


# --- scale -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_ten_thousand_services_of_ten_endpoints_load(netns: Callable[[], str]) -> None:
    ports: dict[ServicePortName, ServicePort] = {}
    for i in range(10_000):
        endpoints = [ep(f"10.{244 + n // 65536}.{n // 256 % 256}.{n % 256}", 8080)
                     for n in range(i * 10, i * 10 + 10)]
        port = svc(f"svc-{i}", f"10.97.{i // 250}.{i % 250 + 1}", 80, *endpoints)
        ports[port.name] = port
    config = ProxyConfig(node=NODE, pod_cidrs=("10.244.0.0/14",))
    ns = netns()
    started = time.process_time()
    old = render(ports, config)
    text = full_sync(old)
    rendered = time.process_time() - started
    started = time.perf_counter()
    load(ns, text)
    loaded = time.perf_counter() - started
    first = next(iter(ports.values()))
    changed = dict(ports)
    changed[first.name] = svc(first.name.name, first.cluster_ips, 80,
                              *first.endpoints[:-1], ep("10.250.0.1", 8080))
    new = render(changed, config)
    started = time.process_time()
    delta = update(old, new)
    diffed = time.process_time() - started
    started = time.perf_counter()
    load(ns, delta)
    applied = time.perf_counter() - started
    assert len(delta.splitlines()) == 12
    print(f"\n10,000 × 10: render + full_sync {rendered:.2f} s CPU ({len(text) >> 20} MiB), "
          f"nft load {loaded:.2f} s; one-endpoint update {diffed * 1000:.1f} ms CPU, "
          f"nft {applied * 1000:.0f} ms")
