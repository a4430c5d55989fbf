"""The link between node namespaces (runtime.clusternet) against the real kernel.

The cluster is named after the test's `node_netns` (``cipt-<6 hex>``), so its namespaces
(``<name>-link``, ``<name>-node-1``, ...) are deleted at the end, pass or fail, and the host
namespace is checked to be unchanged (tests/runtime/conftest.py). Traffic flows only between
these namespaces: ICMP echo from a thread that entered a node's namespace (no ping binary needed),
retried under a deadline while ARP resolves, never a sleep.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from clusterip.core.clusterplan import NetworkPlan, plan_network
from clusterip.runtime import clusternet, netlink
from clusterip.runtime.netlink import Netlink

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces"),
]

DEADLINE = 5.0


@pytest.fixture
def network(node_netns: str) -> Iterator[NetworkPlan]:
    """Three nodes on a link, made; deleted at the end (node_netns deletes any leftovers)."""
    plan = plan_network(node_netns, 3)
    try:
        clusternet.create_network(plan)
        yield plan
    finally:
        clusternet.delete_network(plan)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo(address: ipaddress.IPv4Address, timeout: float) -> bool:
    """One ICMP echo request to `address` from the calling thread's namespace; True if the
    matching reply came back within `timeout`."""
    ident, seq = secrets.randbits(16), 1
    payload = secrets.token_bytes(16)
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.sendto(packet, (str(address), 0))
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            s.settimeout(left)
            try:
                data, (source, _) = s.recvfrom(2048)
            except TimeoutError:
                return False
            icmp = data[(data[0] & 0x0F) * 4:]
            kind, _, _, got_id, got_seq = struct.unpack("!BBHHH", icmp[:8])
            if (source == str(address) and kind == 0 and (got_id, got_seq) == (ident, seq)
                    and icmp[8:] == payload):
                return True
    return False


def ping(netns: str, address: ipaddress.IPv4Address, timeout: float = 1.0) -> bool:
    """`_echo` from a fresh thread that entered `netns` first (and ends with it)."""
    result: list[bool] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(netlink.netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                netlink.setns_thread(fd)
            finally:
                os.close(fd)
            result.append(_echo(address, timeout))
        except BaseException as e:
            failed.append(e)

    thread = threading.Thread(target=run, name=f"ping-{netns}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return result[0]


def reaches(netns: str, address: ipaddress.IPv4Address, deadline: float = DEADLINE) -> bool:
    """Whether an echo from `netns` to `address` is answered before `deadline` seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if ping(netns, address, timeout=min(1.0, max(0.05, end - time.monotonic()))):
            return True
    return False


def test_every_node_reaches_every_other_node(network: NetworkPlan) -> None:
    for source in network.nodes:
        for target in network.nodes:
            if target is not source:
                assert reaches(source.netns, target.address.ip), \
                    f"{source.name} cannot reach {target.name} at {target.address.ip}"


def test_the_link_is_a_bridge_without_an_address_and_its_ports(network: NetworkPlan) -> None:
    link = network.link
    with Netlink(link.netns) as switch:
        bridge = switch.link(link.bridge)
        assert bridge is not None and bridge.kind == "bridge" and bridge.up
        assert switch.addresses(link.bridge) == []
        ports = {x.name: x for x in switch.links() if x.name != "lo"}
    assert set(ports) == {link.bridge, "v-node-1", "v-node-2", "v-node-3"}
    for node in network.nodes:
        port = ports[node.link_port]
        assert port.kind == "veth" and port.up and port.master == bridge.index
        with Netlink(node.netns) as ns:
            end = ns.link(node.interface)
            assert end is not None and end.kind == "veth" and end.up
            assert ns.addresses(node.interface) == [node.address]
            assert end.mac == node.mac
            assert end.peer_index == port.index and port.peer_index == end.index
            lo = ns.link("lo")
            assert lo is not None and lo.up
        assert clusternet.is_attached(link, node)


def test_creating_again_changes_nothing(network: NetworkPlan) -> None:
    with Netlink(network.link.netns) as switch:
        before = switch.links()
    clusternet.create_network(network)
    with Netlink(network.link.netns) as switch:
        assert switch.links() == before
    assert all(clusternet.is_attached(network.link, node) for node in network.nodes)


def test_attach_repairs_half_a_pair_and_a_stray_address(network: NetworkPlan) -> None:
    first, second = network.nodes[0], network.nodes[1]
    stray = ipaddress.IPv4Interface("172.18.0.99/24")
    # node-1: its pair is gone and another kind of interface took the name eth0
    clusternet.detach_node(network.link, first)
    with Netlink(first.netns) as ns:
        assert ns.link(first.interface) is None
        ns.create_bridge(first.interface)  # any interface that is not a veth
    # node-2: a second address on the link subnet
    with Netlink(second.netns) as ns:
        ns.add_address(second.interface, stray)
    assert not clusternet.is_attached(network.link, first)

    clusternet.create_network(network)

    assert all(clusternet.is_attached(network.link, node) for node in network.nodes)
    with Netlink(second.netns) as ns:
        assert ns.addresses(second.interface) == [second.address]
    assert reaches(first.netns, second.address.ip)
    assert reaches(second.netns, first.address.ip)


def test_a_detached_node_is_unreachable_and_attaches_again(network: NetworkPlan) -> None:
    first, second = network.nodes[0], network.nodes[1]
    assert clusternet.detach_node(network.link, first)
    assert not clusternet.detach_node(network.link, first)
    assert netlink.netns_exists(first.netns)  # detaching keeps the namespace
    assert not ping(second.netns, first.address.ip, timeout=0.3)
    clusternet.attach_node(network.link, first)
    assert reaches(second.netns, first.address.ip)


def test_delete_removes_every_namespace_and_is_idempotent(node_netns: str) -> None:
    plan = plan_network(node_netns, 2)
    clusternet.create_network(plan)
    assert set(plan.namespaces) <= set(netlink.list_netns())
    assert sorted(clusternet.delete_network(plan)) == sorted(plan.namespaces)
    assert not set(plan.namespaces) & set(netlink.list_netns())
    assert clusternet.delete_network(plan) == []
    assert not clusternet.is_attached(plan.link, plan.nodes[0])
