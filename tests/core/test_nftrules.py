"""core.nftrules: the nftables rules for a service map, their text, updates, and the tracer.

Golden files (tests/core/golden/nftrules/<case>.nft) hold the `full_sync` text of each case in
`CASES`; regenerate them with ``UPDATE_GOLDEN=1`` and read the diff. tests/proxy/test_nft_load.py
loads every golden file into a real kernel. The tracer tests check behaviour: where the first
packet of a new connection ends.

Conventions: this node is ``node-1``; service CIDR 10.96.0.0/12 (fd00:10:96::/112); pod CIDR
10.244.0.0/16 (fd00:10:244::/56), node-1's pods in 10.244.0.0/24, node-2's in 10.244.1.0/24;
the client pod is 10.244.0.2; the node's own address is 192.168.0.10; outside the cluster is
203.0.113.0/24; the cluster DNS 10.96.0.10 is served by the node itself.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterip.core.nftrules import (
    Origin,
    ProxyConfig,
    Ruleset,
    TraceResult,
    full_sync,
    render,
    trace,
    update,
)
from clusterip.core.servicemap import Endpoint, ServicePort, ServicePortName, choose

GOLDEN = Path(__file__).parent / "golden" / "nftrules"
NODE = "node-1"
CLIENT = "10.244.0.2"
NODE_IP = "192.168.0.10"
OUTSIDE = "203.0.113.7"
DNS_IP = "10.96.0.10"
CONFIG = ProxyConfig(node=NODE, local_ips=frozenset({DNS_IP}))
DUAL_STACK = ProxyConfig(
    node=NODE,
    service_cidrs=("10.96.0.0/12", "fd00:10:96::/112"),
    pod_cidrs=("10.244.0.0/16", "fd00:10:244::/56"),
    local_ips=frozenset({DNS_IP}),
)


def ep(ip: str, port: int = 9376, *, node: str | None = NODE, ready: bool = True,
       serving: bool | None = None, terminating: bool = False) -> Endpoint:
    return Endpoint(ip, port, ready, ready if serving is None else serving, terminating, node)


def svc(name: str, vip: str | tuple[str, ...], port: int, *endpoints: Endpoint,
        protocol: str = "TCP", port_name: str = "", affinity: int | None = None,
        local: bool = False, namespace: str = "default") -> ServicePort:
    vips = (vip,) if isinstance(vip, str) else vip
    return ServicePort(ServicePortName(namespace, name, port_name, protocol), vips, port,
                       protocol, affinity, local, tuple(sorted(endpoints)))


def service_map(*ports: ServicePort) -> dict[ServicePortName, ServicePort]:
    return {p.name: p for p in ports}


WEB = svc("web", "10.96.0.20", 80, ep("10.244.0.3"))
WEB3 = svc("web", "10.96.0.20", 80, ep("10.244.0.3"), ep("10.244.0.4"),
           ep("10.244.1.5", node="node-2"))
EMPTY = svc("empty", "10.96.0.21", 80)
LOCAL_ELSEWHERE = svc("local", "10.96.0.22", 80, ep("10.244.1.5", node="node-2"), local=True)
STICKY = svc("sticky", "10.96.0.23", 80, ep("10.244.0.3"), ep("10.244.1.5", node="node-2"),
             affinity=10800)
SYSLOG = svc("syslog", "10.96.0.24", 514, ep("10.244.0.6", 5514), protocol="UDP")
DNS_TCP = svc("resolver", "10.96.0.25", 53, ep("10.244.0.7", 5353), protocol="TCP",
              port_name="dns-tcp")
DNS_UDP = svc("resolver", "10.96.0.25", 53, ep("10.244.0.8", 5353), protocol="UDP",
              port_name="dns")
DUAL = svc("dual", ("10.96.0.26", "fd00:10:96::26"), 80,
           ep("10.244.0.3"), ep("fd00:10:244::3"), ep("fd00:10:244:1::5", node="node-2"))
KUBE_DNS = svc("kube-dns", DNS_IP, 53, ep("10.244.0.9", 53), protocol="UDP", port_name="dns",
               namespace="kube-system")
DRAINING = svc("draining", "10.96.0.27", 80,
               ep("10.244.0.3", ready=False, serving=True, terminating=True),
               ep("10.244.0.4", ready=False, serving=False, terminating=True))

CASES = [
    pytest.param(service_map(WEB), CONFIG, id="one-endpoint"),
    pytest.param(service_map(WEB3), CONFIG, id="three-endpoints"),
    pytest.param(service_map(EMPTY), CONFIG, id="no-endpoints-reject"),
    pytest.param(service_map(LOCAL_ELSEWHERE), CONFIG, id="local-policy-no-local-endpoint-drop"),
    pytest.param(service_map(STICKY), CONFIG, id="affinity"),
    pytest.param(service_map(SYSLOG), CONFIG, id="udp"),
    pytest.param(service_map(DNS_TCP, DNS_UDP), CONFIG, id="tcp-and-udp-same-port"),
    pytest.param(service_map(DUAL), DUAL_STACK, id="ipv6-dual-stack"),
    pytest.param(service_map(KUBE_DNS, WEB), CONFIG, id="dns-local-ip-excluded"),
    pytest.param(service_map(DRAINING), CONFIG, id="terminating-fallback"),
]


# --- golden rulesets ---------------------------------------------------------------------------


@pytest.mark.parametrize(("ports", "config"), CASES)
def test_full_sync_matches_the_golden_file(
    ports: dict[ServicePortName, ServicePort], config: ProxyConfig,
    request: pytest.FixtureRequest,
) -> None:
    text = full_sync(render(ports, config))
    path = GOLDEN / f"{request.node.callspec.id}.nft"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_every_golden_file_is_a_case() -> None:
    ids = {p.id for p in CASES}
    assert {p.stem for p in GOLDEN.glob("*.nft")} == ids


def test_full_sync_replaces_the_table_whether_or_not_it_exists() -> None:
    lines = full_sync(render(service_map(WEB), CONFIG)).splitlines()
    assert lines[:5] == [
        "add table ip6 clusterip",  # no IPv6 service CIDR: a table left from before goes
        "delete table ip6 clusterip",
        "add table ip clusterip",
        "delete table ip clusterip",
        "add table ip clusterip",
    ]


def test_the_dns_local_ip_is_never_dnated_rejected_or_dropped() -> None:
    text = full_sync(render(service_map(KUBE_DNS), CONFIG))
    assert f"{DNS_IP} . udp" not in text  # not in service-ips, endpoints, no-endpoint-services
    assert "add element ip clusterip local-ips {\n\t10.96.0.10\n}" in text
    assert "add element ip clusterip cluster-ips" not in text


def test_a_ruleset_has_only_the_families_of_the_service_cidrs() -> None:
    assert [t.family.name for t in render(service_map(DUAL), CONFIG).tables] == ["ip"]
    assert [t.family.name for t in render(service_map(DUAL), DUAL_STACK).tables] == ["ip", "ip6"]


def test_ports_with_the_same_endpoint_count_share_one_pick_chain() -> None:
    ports = service_map(*(svc(f"s{i}", f"10.96.1.{i}", 80, ep("10.244.0.3"), ep("10.244.0.4"))
                          for i in range(50)))
    table = render(ports, CONFIG).tables[0]
    assert sorted(n for n in table.chains if n.startswith("pick-")) == ["pick-2"]


def hash8(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def test_affinity_names_are_stable_short_hashes_with_a_readable_suffix() -> None:
    table = render(service_map(STICKY), CONFIG).tables[0]
    (rules,) = table.ports.values()
    names = [c.name for c in rules.chains] + [s.name for s in rules.sets]
    port = hash8("default/sticky:/TCP")  # base32(sha256(str(ServicePortName)))[:8]
    first = hash8("default/sticky:/TCP__10.244.0.3/9376")
    second = hash8("default/sticky:/TCP__10.244.1.5/9376")
    assert names == [
        f"service-{port}-default-sticky-tcp",
        f"endpoint-{first}-default-sticky-tcp__10.244.0.3-9376",
        f"endpoint-{second}-default-sticky-tcp__10.244.1.5-9376",
        f"affinity-{first}-default-sticky-tcp__10.244.0.3-9376",
        f"affinity-{second}-default-sticky-tcp__10.244.1.5-9376",
    ]
    assert all(len(n) < 256 for n in names)


# --- the tracer --------------------------------------------------------------------------------

ALL = render(service_map(WEB3, EMPTY, LOCAL_ELSEWHERE, STICKY, SYSLOG, DNS_TCP, DNS_UDP,
                         KUBE_DNS, DRAINING), CONFIG)


def endpoint(ip: str, port: int = 9376, *, masquerade: bool = False) -> TraceResult:
    return TraceResult("endpoint", (ip, port), masquerade)


REJECT, DROP, ACCEPT = TraceResult("reject"), TraceResult("drop"), TraceResult("accept")


@pytest.mark.parametrize(
    ("src", "protocol", "dst", "dport", "origin", "expected"),
    [
        pytest.param(CLIENT, "tcp", "10.96.0.20", 80, "pod", endpoint("10.244.0.3"),
                     id="pod-to-service"),
        pytest.param(CLIENT, "tcp", "10.96.0.21", 80, "pod", REJECT, id="no-endpoints-reject"),
        pytest.param(CLIENT, "tcp", "10.96.0.22", 80, "pod", DROP,
                     id="local-policy-no-local-endpoint-drop"),
        pytest.param(OUTSIDE, "tcp", "10.96.0.20", 80, "outside", DROP, id="outside-drop"),
        pytest.param(OUTSIDE, "udp", DNS_IP, 53, "outside", DROP, id="outside-to-dns-drop"),
        pytest.param(CLIENT, "tcp", "10.96.0.99", 80, "pod", DROP, id="unallocated-ip-drop"),
        pytest.param(NODE_IP, "tcp", "10.96.0.99", 80, "node", DROP,
                     id="unallocated-ip-from-node-drop"),
        pytest.param(CLIENT, "tcp", "10.96.0.20", 81, "pod", REJECT, id="unserved-port-reject"),
        pytest.param(NODE_IP, "tcp", "10.96.0.20", 81, "node", REJECT,
                     id="unserved-port-from-node-reject"),
        pytest.param(CLIENT, "udp", "10.96.0.20", 80, "pod", REJECT,
                     id="unserved-protocol-reject"),
        pytest.param(NODE_IP, "tcp", "10.96.0.20", 80, "node",
                     endpoint("10.244.0.3", masquerade=True), id="node-origin-masquerade"),
        pytest.param("10.244.0.1", "tcp", "10.96.0.20", 80, "node", endpoint("10.244.0.3"),
                     id="node-from-its-bridge-address-no-masquerade"),
        pytest.param(NODE_IP, "tcp", "10.96.0.21", 80, "node", REJECT,
                     id="node-origin-no-endpoints-reject"),
        pytest.param("10.244.0.3", "tcp", "10.96.0.20", 80, "pod",
                     endpoint("10.244.0.3", masquerade=True), id="hairpin-masquerade"),
        pytest.param("10.244.0.4", "tcp", "10.96.0.20", 80, "pod", endpoint("10.244.0.3"),
                     id="other-local-pod-no-masquerade"),
        pytest.param(CLIENT, "udp", DNS_IP, 53, "pod", ACCEPT, id="dns-local-ip-accept"),
        pytest.param(CLIENT, "tcp", DNS_IP, 53, "pod", ACCEPT, id="dns-local-ip-tcp-accept"),
        pytest.param(NODE_IP, "udp", DNS_IP, 53, "node", ACCEPT,
                     id="dns-local-ip-from-node-accept"),
        pytest.param(CLIENT, "tcp", "10.244.0.4", 9376, "pod", ACCEPT, id="pod-to-pod-accept"),
        pytest.param(OUTSIDE, "tcp", "10.244.0.4", 9376, "outside", ACCEPT,
                     id="outside-to-pod-accept"),
        pytest.param(CLIENT, "udp", "10.96.0.24", 514, "pod", endpoint("10.244.0.6", 5514),
                     id="udp"),
        pytest.param(CLIENT, "tcp", "10.96.0.25", 53, "pod", endpoint("10.244.0.7", 5353),
                     id="same-port-tcp"),
        pytest.param(CLIENT, "udp", "10.96.0.25", 53, "pod", endpoint("10.244.0.8", 5353),
                     id="same-port-udp"),
        pytest.param(CLIENT, "tcp", "10.96.0.27", 80, "pod", endpoint("10.244.0.3"),
                     id="terminating-serving-fallback"),
        pytest.param(CLIENT, "TCP", "10.96.0.23", 80, "pod", endpoint("10.244.0.3"),
                     id="affinity-first-connection"),
    ],
)
def test_trace(src: str, protocol: str, dst: str, dport: int, origin: Origin,
               expected: TraceResult) -> None:
    assert trace(ALL, src, protocol, dst, dport, origin=origin) == expected


def test_every_slot_of_a_three_endpoint_service_lands_on_a_distinct_endpoint() -> None:
    landed = [trace(ALL, CLIENT, "tcp", "10.96.0.20", 80, choice=i).endpoint for i in range(3)]
    assert landed == [("10.244.0.3", 9376), ("10.244.0.4", 9376), ("10.244.1.5", 9376)]


def test_affinity_spreads_first_connections_over_every_endpoint() -> None:
    landed = {trace(ALL, CLIENT, "tcp", "10.96.0.23", 80, choice=i).endpoint for i in range(2)}
    assert landed == {("10.244.0.3", 9376), ("10.244.1.5", 9376)}


def test_ipv6_service() -> None:
    rules = render(service_map(DUAL), DUAL_STACK)
    v6 = {trace(rules, "fd00:10:244::2", "tcp", "fd00:10:96::26", 80, choice=i).endpoint
          for i in range(2)}
    assert v6 == {("fd00:10:244::3", 9376), ("fd00:10:244:1::5", 9376)}
    assert trace(rules, CLIENT, "tcp", "10.96.0.26", 80) == endpoint("10.244.0.3")
    assert trace(rules, "2001:db8::7", "tcp", "fd00:10:96::26", 80, origin="outside") == DROP
    assert trace(rules, "fd00:10:244::2", "tcp", "fd00:10:96::99", 80) == DROP


def test_an_address_of_a_family_without_a_table_is_not_a_service() -> None:
    assert trace(ALL, "fd00:10:244::2", "tcp", "fd00:10:96::26", 80) == ACCEPT


# --- updates -----------------------------------------------------------------------------------


def test_update_of_an_unchanged_ruleset_is_empty() -> None:
    ports = service_map(WEB3, EMPTY, STICKY, SYSLOG)
    old = render(ports, CONFIG)
    assert update(old, old) == ""
    assert update(old, render(dict(ports), CONFIG)) == ""


def test_an_endpoint_change_updates_only_its_elements() -> None:
    moved = svc("web", "10.96.0.20", 80, ep("10.244.0.3"), ep("10.244.0.4"),
                ep("10.244.0.5"))
    old = render(service_map(WEB3, SYSLOG), CONFIG)
    new = render(service_map(moved, SYSLOG), CONFIG)
    assert update(old, new) == (
        "delete element ip clusterip endpoints-tcp {\n"
        "\t10.96.0.20 . 80 . 2\n"
        "}\n"
        "add element ip clusterip endpoints-tcp {\n"
        "\t10.96.0.20 . 80 . 2 : 10.244.0.5 . 9376\n"
        "}\n"
        "add element ip clusterip hairpin {\n"
        "\t10.244.0.5 . 10.244.0.5\n"
        "}\n"
    )


def test_a_new_endpoint_count_adds_its_pick_chain_and_removes_the_unused_one() -> None:
    old = render(service_map(WEB), CONFIG)
    new = render(service_map(svc("web", "10.96.0.20", 80, ep("10.244.0.3"),
                                 ep("10.244.0.4"))), CONFIG)
    assert update(old, new).splitlines() == [
        "add chain ip clusterip pick-2",
        "flush chain ip clusterip pick-1",
        "delete element ip clusterip service-ips {",
        "\t10.96.0.20 . tcp . 80",
        "}",
        "delete chain ip clusterip pick-1",
        "add rule ip clusterip pick-2 meta l4proto tcp dnat ip to ip daddr . tcp dport . "
        "numgen random mod 2 map @endpoints-tcp",
        "add rule ip clusterip pick-2 meta l4proto udp dnat ip to ip daddr . udp dport . "
        "numgen random mod 2 map @endpoints-udp",
        "add element ip clusterip endpoints-tcp {",
        "\t10.96.0.20 . 80 . 1 : 10.244.0.4 . 9376",
        "}",
        "add element ip clusterip hairpin {",
        "\t10.244.0.4 . 10.244.0.4",
        "}",
        "add element ip clusterip service-ips {",
        "\t10.96.0.20 . tcp . 80 : goto pick-2",
        "}",
    ]


def test_a_set_element_shared_by_another_port_stays() -> None:
    both = render(service_map(DNS_TCP, DNS_UDP, WEB), CONFIG)  # one ClusterIP, two ports
    one = render(service_map(DNS_UDP, WEB), CONFIG)
    text = update(both, one)
    assert "cluster-ips" not in text
    assert "delete element ip clusterip hairpin {\n\t10.244.0.7 . 10.244.0.7\n}" in text
    # 10.244.0.3 is behind both; STICKY's other endpoint is on node-2.
    assert "hairpin" not in update(render(service_map(WEB, STICKY), CONFIG),
                                   render(service_map(WEB), CONFIG))


def test_removing_an_affinity_port_flushes_then_deletes_its_chains_and_sets() -> None:
    text = update(render(service_map(STICKY, WEB), CONFIG), render(service_map(WEB), CONFIG))
    lines = text.splitlines()
    flushed = [n for n in lines if n.startswith("flush chain")]
    deleted_chains = [n for n in lines if n.startswith("delete chain")]
    deleted_sets = [n for n in lines if n.startswith("delete set")]
    assert len(flushed) == len(deleted_chains) == 3 and len(deleted_sets) == 2
    first_delete = lines.index(deleted_chains[0])
    assert lines.index(flushed[-1]) < lines.index("delete element ip clusterip service-ips {")
    assert lines.index("delete element ip clusterip service-ips {") < first_delete
    assert not any(n.startswith("add") for n in lines)


def test_a_changed_affinity_timeout_makes_its_sets_again() -> None:
    shorter = svc("sticky", "10.96.0.23", 80, ep("10.244.0.3"),
                  ep("10.244.1.5", node="node-2"), affinity=60)
    lines = update(render(service_map(STICKY), CONFIG),
                   render(service_map(shorter), CONFIG)).splitlines()
    assert [n.split()[0:2] for n in lines] == (
        [["flush", "chain"]] * 3 + [["delete", "set"]] * 2 + [["add", "set"]] * 2
        + [["add", "rule"]] * 5)
    assert all("timeout 60s" in n for n in lines if n.startswith("add set"))


def test_a_config_change_is_a_full_sync() -> None:
    ports = service_map(WEB)
    moved = ProxyConfig(node="node-2", local_ips=CONFIG.local_ips)
    assert update(render(ports, CONFIG), render(ports, moved)) == full_sync(render(ports, moved))


# --- properties --------------------------------------------------------------------------------

_ENDPOINT = st.builds(
    Endpoint,
    ip=st.sampled_from([f"10.244.{n}.{h}" for n in (0, 1) for h in range(3, 9)]),
    port=st.sampled_from([8080, 9376]),
    ready=st.booleans(),
    serving=st.booleans(),
    terminating=st.booleans(),
    node_name=st.sampled_from([NODE, "node-2", None]),
)


@st.composite
def service_maps(draw: st.DrawFn) -> dict[ServicePortName, ServicePort]:
    vips = draw(st.lists(st.integers(11, 250), unique=True, max_size=6))
    ports: dict[ServicePortName, ServicePort] = {}
    for vip in vips:
        specs = draw(st.lists(st.tuples(st.sampled_from([53, 80]), st.sampled_from(["TCP", "UDP"])),
                              unique=True, min_size=1, max_size=3))
        affinity = draw(st.sampled_from([None, 60]))
        local = draw(st.booleans())
        for number, protocol in specs:
            endpoints = draw(st.lists(_ENDPOINT, unique_by=lambda e: (e.ip, e.port), max_size=5))
            p = svc(f"s{vip}", f"10.96.0.{vip}", number, *endpoints, protocol=protocol,
                    port_name=f"p{number}-{protocol.lower()}", affinity=affinity, local=local)
            ports[p.name] = p
    return ports


_VERDICTS = {"reject": REJECT, "drop": DROP}


@settings(max_examples=200, deadline=None)
@given(service_maps())
def test_tracing_every_slot_yields_exactly_the_chosen_endpoints(
    ports: dict[ServicePortName, ServicePort],
) -> None:
    rules = render(ports, CONFIG)
    for port in ports.values():
        choice = choose(port, NODE, 4)
        (vip,) = port.cluster_ips
        traced = [trace(rules, "10.244.9.9", port.protocol, vip, port.port, choice=i)
                  for i in range(max(1, len(choice.endpoints)))]
        if choice.verdict == "endpoints":
            assert [t.endpoint for t in traced] == [(e.ip, e.port) for e in choice.endpoints]
        else:
            assert traced == [_VERDICTS[choice.verdict]]


@settings(max_examples=100, deadline=None)
@given(service_maps(), service_maps())
def test_update_is_empty_exactly_when_the_rules_are_the_same(
    before: dict[ServicePortName, ServicePort], after: dict[ServicePortName, ServicePort],
) -> None:
    old, new = render(before, CONFIG), render(after, CONFIG)
    same = sorted(full_sync(old).splitlines()) == sorted(full_sync(new).splitlines())
    assert (update(old, new) == "") == same


def test_a_ruleset_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ALL.config = CONFIG  # type: ignore[misc]


# --- incremental render ------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return sorted(line.rstrip(",") for line in text.splitlines())


def _same_text(a: Ruleset, b: Ruleset) -> bool:
    """Whether two rulesets' full syncs hold the same lines (the order of the ports' elements,
    chains and sets aside: a port added incrementally comes last)."""
    return _lines(full_sync(a)) == _lines(full_sync(b))


@st.composite
def snapshot_sequences(draw: st.DrawFn) -> list[dict[ServicePortName, ServicePort]]:
    """Service maps one after the other, each keeping some of the previous one's port objects
    (as the tracker keeps unchanged ports), dropping and adding others."""
    sequence = [draw(service_maps())]
    for _ in range(draw(st.integers(1, 6))):
        fresh, previous = draw(service_maps()), sequence[-1]
        ports = {name: previous[name] if name in previous and draw(st.booleans()) else port
                 for name, port in fresh.items()}
        for name, port in previous.items():  # some kept although fresh has no such port
            if name not in ports and draw(st.booleans()):
                ports[name] = port
        sequence.append(ports)
    return sequence


@settings(max_examples=150, deadline=None)
@given(snapshot_sequences(), st.sampled_from([CONFIG, DUAL_STACK]))
def test_an_incremental_render_is_a_render_from_scratch(
    sequence: list[dict[ServicePortName, ServicePort]], config: ProxyConfig,
) -> None:
    previous = render(sequence[0], config)
    for ports in sequence[1:]:
        kept = render(previous.ports, config)
        incremental = render(ports, config, previous)
        scratch = render(ports, config)
        assert incremental == scratch
        assert _same_text(incremental, scratch)
        assert update(incremental, scratch) == update(scratch, incremental) == ""
        assert _lines(update(previous, incremental)) == _lines(update(previous, scratch))
        assert previous == kept and _same_text(previous, kept)  # `previous` is left as it was
        previous = incremental


def test_an_incremental_render_renders_only_the_changed_ports() -> None:
    ports = service_map(WEB, SYSLOG, STICKY)
    old = render(ports, CONFIG)
    moved = svc("web", "10.96.0.20", 80, ep("10.244.0.4"))
    new = render({**ports, WEB.name: moved}, CONFIG, old)
    table, before = new.tables[0], old.tables[0]
    assert table.ports[str(SYSLOG.name)] is before.ports[str(SYSLOG.name)]
    assert table.ports[str(STICKY.name)] is before.ports[str(STICKY.name)]
    assert table.ports[str(WEB.name)].source is moved
    assert render(ports, CONFIG, old).tables == old.tables  # nothing changed: the same tables
    # `changed` names ports to render again even if they are the same objects.
    forced = render(ports, CONFIG, old, changed={SYSLOG.name})
    assert forced.tables[0].ports[str(SYSLOG.name)] is not before.ports[str(SYSLOG.name)]
    assert forced == old


def test_a_shared_set_element_goes_with_the_last_port_that_holds_it() -> None:
    old = render(service_map(DNS_TCP, DNS_UDP, WEB), CONFIG)  # one ClusterIP, two ports
    one = render(service_map(DNS_UDP, WEB), CONFIG, old)
    assert ("10.96.0.25",) in one.tables[0].set_elements["cluster-ips"]
    none = render(service_map(WEB), CONFIG, one)
    assert ("10.96.0.25",) not in none.tables[0].set_elements["cluster-ips"]
    assert none == render(service_map(WEB), CONFIG)


def test_a_config_change_renders_from_scratch() -> None:
    old = render(service_map(DUAL), CONFIG)
    new = render(service_map(DUAL), DUAL_STACK, old)
    assert new == render(service_map(DUAL), DUAL_STACK)
    assert [t.family.name for t in new.tables] == ["ip", "ip6"]


def test_a_map_changed_in_place_is_rendered_right() -> None:
    ports = service_map(WEB, SYSLOG)
    old = render(ports, CONFIG)
    ports[WEB.name] = WEB3
    del ports[SYSLOG.name]
    assert render(ports, CONFIG, old) == render(ports, CONFIG)
