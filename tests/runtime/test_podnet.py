"""Pod networking against the real kernel: a node namespace with a bridge, pods in namespaces.

Every namespace lives under the test's `node_netns` name (the node is ``<name>``, pods are
``<name>-<pod id>``) and is deleted at the end, pass or fail; the host namespace is checked to be
unchanged (tests/runtime/conftest.py). Traffic only flows between these namespaces.

Address plan: pod CIDR 10.244.0.0/24 (the default), gateway 10.244.0.1 on cbr0, pods from .2.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import secrets
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clusterip.runtime import netlink
from clusterip.runtime.netlink import Link, Netlink, NetworkError
from clusterip.runtime.nssocket import NetnsSockets
from clusterip.runtime.podnet import ETC_NETNS_DIR, NetnsPodNetwork, PodNet

pytestmark = pytest.mark.anyio

requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: creates network namespaces, veths and a bridge"
)

RESOLV_CONF = (
    "nameserver 10.96.0.10\n"
    "search default.svc.cluster.local svc.cluster.local cluster.local\n"
    "options ndots:5\n"
)
GATEWAY = ipaddress.IPv4Interface("10.244.0.1/24")


def ip(last: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(f"10.244.0.{last}")


def new_pod_id() -> str:
    return secrets.token_hex(5)  # 10 characters of [0-9a-f], the shape the agent gives


@pytest.fixture
async def network(node_netns: str) -> AsyncIterator[NetnsPodNetwork]:
    """A NetnsPodNetwork for the test's node, its node made; torn down at the end."""
    net = NetnsPodNetwork(node_netns, prefix=node_netns)
    await net.ensure_node()
    try:
        yield net
    finally:
        await net.teardown_node()


async def exchange(server_ns: str, server_ip: ipaddress.IPv4Address, client_ns: str) -> None:
    """Listen on `server_ip` in namespace `server_ns`, connect from `client_ns`, and check that
    the client receives the fresh token the server sends."""
    token = secrets.token_hex(8).encode()
    loop = asyncio.get_running_loop()
    with NetnsSockets(server_ns) as server, NetnsSockets(client_ns) as client:
        listener = await server.socket()
        try:
            listener.bind((str(server_ip), 0))
            listener.listen()
            port = listener.getsockname()[1]

            async def serve() -> None:
                conn, _ = await loop.sock_accept(listener)
                with conn:
                    await loop.sock_sendall(conn, token)

            async with asyncio.timeout(10):
                serving = asyncio.create_task(serve())
                reader, writer = await client.open_connection(str(server_ip), port, 5)
                try:
                    got = await reader.read()
                finally:
                    writer.close()
                    await writer.wait_closed()
                await serving
        finally:
            listener.close()
    assert got == token


def link(netns: str, name: str) -> Link | None:
    with Netlink(netns) as nl:
        return nl.link(name)


def addresses(netns: str, name: str) -> list[ipaddress.IPv4Interface]:
    with Netlink(netns) as nl:
        return nl.addresses(name)


def exec_in(netns: str, *argv: str) -> str:
    done = subprocess.run(["ip", "netns", "exec", netns, *argv], capture_output=True,
                          text=True, timeout=30, check=True)
    return done.stdout


# -- the node ------------------------------------------------------------------------------


@pytest.mark.root
@requires_root
async def test_the_node_serves_its_local_addresses_on_loopback(node_netns: str) -> None:
    net = NetnsPodNetwork(node_netns, prefix=node_netns, local_addresses=["10.96.0.10/32"])
    try:
        await net.ensure_node()
        await net.ensure_node()

        def lo_addresses() -> list[ipaddress.IPv4Interface]:
            with Netlink(node_netns) as node:
                return node.addresses("lo")

        assert ipaddress.IPv4Interface("10.96.0.10/32") in await asyncio.to_thread(lo_addresses)
    finally:
        await net.teardown_node()


@pytest.mark.root
@requires_root
async def test_ensure_node_makes_bridge_with_gateway_and_is_idempotent(node_netns: str) -> None:
    net = NetnsPodNetwork(node_netns, prefix=node_netns)
    try:
        await net.ensure_node()
        await net.ensure_node()
        assert netlink.netns_exists(node_netns)

        def check() -> None:
            with Netlink(node_netns) as node:
                bridge = node.link("cbr0")
                assert bridge is not None and bridge.kind == "bridge" and bridge.up
                assert node.addresses("cbr0") == [GATEWAY]
                lo = node.link("lo")
                assert lo is not None and lo.up
                assert [link.name for link in node.links()] == ["lo", "cbr0"]

        await asyncio.to_thread(check)
    finally:
        await net.teardown_node()
    assert not netlink.netns_exists(node_netns)


@pytest.mark.root
@requires_root
async def test_teardown_node_leaves_nothing_with_the_prefix(node_netns: str) -> None:
    net = NetnsPodNetwork(node_netns, prefix=node_netns)
    await net.ensure_node()
    for last in (2, 3):
        await net.setup_pod(new_pod_id(), ip(last), RESOLV_CONF)
    await net.teardown_node()
    await net.teardown_node()  # idempotent
    assert [n for n in netlink.list_netns() if n.startswith(node_netns)] == []
    assert not ETC_NETNS_DIR.is_dir() or [
        f for f in ETC_NETNS_DIR.iterdir() if f.name.startswith(node_netns)
    ] == []


@pytest.mark.root
@requires_root
async def test_teardown_node_keeps_a_node_namespace_it_did_not_make(node_netns: str) -> None:
    assert netlink.create_netns(node_netns)
    net = NetnsPodNetwork(node_netns, prefix=node_netns)
    await net.ensure_node()
    await net.setup_pod(new_pod_id(), ip(2), RESOLV_CONF)
    await net.teardown_node()
    assert [n for n in netlink.list_netns() if n.startswith(node_netns)] == [node_netns]
    assert await asyncio.to_thread(link, node_netns, "cbr0") is None


# -- pods ----------------------------------------------------------------------------------


@pytest.mark.root
@requires_root
async def test_pods_get_namespaces_addresses_and_reach_each_other_and_the_gateway(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    pods = [await network.setup_pod(new_pod_id(), ip(2 + i), RESOLV_CONF) for i in range(3)]

    assert len({p.netns for p in pods}) == 3
    assert {n for n in netlink.list_netns() if n.startswith(f"{node_netns}-")} == {
        p.netns for p in pods
    }

    def check() -> None:
        with Netlink(node_netns) as node:
            bridge = node.link("cbr0")
            assert bridge is not None
            for pod in pods:
                host = node.link(pod.host_veth)
                assert host is not None and host.kind == "veth" and host.up
                assert host.master == bridge.index
                assert host.alias == pod.netns
                assert node.hairpin(pod.host_veth) is True
        for pod in pods:
            with Netlink(pod.netns) as inside:
                eth0, lo = inside.link("eth0"), inside.link("lo")
                assert eth0 is not None and eth0.up and eth0.kind == "veth"
                assert lo is not None and lo.up
                assert inside.addresses("eth0") == [ipaddress.IPv4Interface(f"{pod.ip}/24")]
                assert inside.default_route() == GATEWAY.ip

    await asyncio.to_thread(check)

    a, b, c = pods
    assert a.ip and b.ip and c.ip
    await exchange(b.netns, b.ip, a.netns)  # a -> b across the bridge
    await exchange(a.netns, a.ip, c.netns)  # c -> a
    await exchange(c.netns, c.ip, b.netns)  # b -> c
    await exchange(node_netns, GATEWAY.ip, a.netns)  # a pod -> the gateway
    await exchange(a.netns, a.ip, node_netns)  # the node -> a pod


@pytest.mark.root
@requires_root
async def test_the_bridge_keeps_its_mac_when_pods_come_and_go(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    # A bridge without a MAC of its own takes its lowest port's, and changes it when that pod
    # goes: the other pods' ARP entries for the gateway would then point nowhere.
    def bridge_mac() -> str | None:
        found = link(node_netns, "cbr0")
        return found.mac if found else None

    before = await asyncio.to_thread(bridge_mac)
    assert before == "02:c1:0a:f4:00:01"  # locally administered, from the gateway's IP
    pods = [await network.setup_pod(new_pod_id(), ip(2 + i), RESOLV_CONF) for i in range(3)]
    for pod in pods:
        await network.teardown_pod(pod.netns)
        assert await asyncio.to_thread(bridge_mac) == before


@pytest.mark.root
@requires_root
async def test_the_node_routes_and_sends_no_redirects(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    settings = {key: exec_in(node_netns, "sysctl", "-n", key.replace("/", ".")).strip()
                for key in ("net/ipv4/ip_forward", "net/ipv4/conf/all/send_redirects",
                            "net/ipv4/conf/cbr0/send_redirects")}
    assert settings == {"net/ipv4/ip_forward": "1", "net/ipv4/conf/all/send_redirects": "0",
                        "net/ipv4/conf/cbr0/send_redirects": "0"}


@pytest.mark.root
@requires_root
async def test_resolv_conf_is_what_processes_in_the_pod_see(network: NetnsPodNetwork) -> None:
    pod = await network.setup_pod(new_pod_id(), ip(2), RESOLV_CONF)
    assert await asyncio.to_thread(exec_in, pod.netns, "cat", "/etc/resolv.conf") == RESOLV_CONF
    # the node's own file is untouched
    host_file = Path("/etc/resolv.conf")
    assert not host_file.is_file() or host_file.read_text(encoding="utf-8") != RESOLV_CONF


@pytest.mark.root
@requires_root
async def test_setup_pod_is_idempotent_and_repairs_what_is_missing(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    pod_id = new_pod_id()
    first = await network.setup_pod(pod_id, ip(2), RESOLV_CONF)
    again = await network.setup_pod(pod_id, ip(2), RESOLV_CONF)
    assert again == first == PodNet(netns=f"{node_netns}-{pod_id}", pod_id=pod_id, ip=ip(2),
                                    host_veth=f"veth{pod_id[:8]}")

    # a crash between "netns created" and "veth created": the namespace is there, nothing else

    def delete_host_veth() -> bool:
        with Netlink(node_netns) as node:
            return node.delete_link(first.host_veth)

    assert await asyncio.to_thread(delete_host_veth)
    await network.setup_pod(pod_id, ip(2), RESOLV_CONF)
    other = await network.setup_pod(new_pod_id(), ip(3), RESOLV_CONF)
    await exchange(first.netns, ip(2), other.netns)

    # the same pod asked for with another address ends with that address only
    moved = await network.setup_pod(pod_id, ip(9), RESOLV_CONF)
    assert moved.ip == ip(9)
    assert await asyncio.to_thread(addresses, first.netns, "eth0") == [
        ipaddress.IPv4Interface("10.244.0.9/24")
    ]


@pytest.mark.root
@requires_root
async def test_teardown_pod_removes_namespace_veth_and_resolv_conf(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    pod = await network.setup_pod(new_pod_id(), ip(2), RESOLV_CONF)
    keep = await network.setup_pod(new_pod_id(), ip(3), RESOLV_CONF)
    assert (ETC_NETNS_DIR / pod.netns / "resolv.conf").is_file()

    await network.teardown_pod(pod.netns)
    await network.teardown_pod(pod.netns)  # idempotent

    assert not netlink.netns_exists(pod.netns)
    assert pod.netns not in netlink.list_netns()
    assert not (ETC_NETNS_DIR / pod.netns).exists()
    assert await asyncio.to_thread(link, node_netns, pod.host_veth) is None
    assert await asyncio.to_thread(link, node_netns, keep.host_veth) is not None
    assert [p.netns for p in await network.list_pods()] == [keep.netns]


@pytest.mark.root
@requires_root
async def test_list_pods_finds_the_pods_again_after_a_restart(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    made = sorted(
        [await network.setup_pod(new_pod_id(), ip(10 + i), RESOLV_CONF) for i in range(3)],
        key=lambda p: p.netns,
    )
    half = f"{node_netns}-{new_pod_id()}"  # a setup that stopped right after the namespace
    assert netlink.create_netns(half)
    assert netlink.create_netns(f"{node_netns}-notapod")  # not our shape: never listed

    restarted = NetnsPodNetwork(node_netns, prefix=node_netns)
    found = await restarted.list_pods()

    broken = PodNet(netns=half, pod_id=half.rsplit("-", 1)[1], ip=None,
                    host_veth=f"veth{half.rsplit('-', 1)[1][:8]}")
    assert sorted(found, key=lambda p: p.netns) == sorted([*made, broken], key=lambda p: p.netns)

    # the restarted agent removes what it does not adopt; the rest keeps working
    await restarted.teardown_pod(half)
    await restarted.teardown_pod(made[0].netns)
    assert sorted(await restarted.list_pods(), key=lambda p: p.netns) == made[1:]
    assert made[1].ip and made[2].ip
    await exchange(made[1].netns, made[1].ip, made[2].netns)
    assert netlink.delete_netns(f"{node_netns}-notapod")


@pytest.mark.root
@requires_root
async def test_pod_ids_sharing_a_veth_name_do_not_take_each_others_veth(
    network: NetnsPodNetwork, node_netns: str
) -> None:
    first = await network.setup_pod("abcdefgh00", ip(2), RESOLV_CONF)
    with pytest.raises(NetworkError) as caught:
        await network.setup_pod("abcdefgh11", ip(3), RESOLV_CONF)
    assert caught.value.errno == errno.EEXIST
    # the failed setup removed the namespace it made; the first pod is intact
    assert not netlink.netns_exists(f"{node_netns}-abcdefgh11")
    await network.teardown_pod(f"{node_netns}-abcdefgh11")
    host = await asyncio.to_thread(link, node_netns, first.host_veth)
    assert host is not None and host.alias == first.netns
    other = await network.setup_pod(new_pod_id(), ip(4), RESOLV_CONF)
    assert first.ip
    await exchange(first.netns, first.ip, other.netns)


@pytest.mark.root
@requires_root
async def test_a_failed_setup_leaves_no_namespace(node_netns: str) -> None:
    net = NetnsPodNetwork(node_netns, prefix=node_netns)
    netlink.create_netns(node_netns)  # a node namespace without the bridge: setup must fail
    pod_id = new_pod_id()
    with pytest.raises(NetworkError) as caught:
        await net.setup_pod(pod_id, ip(2), RESOLV_CONF)
    assert caught.value.errno == errno.ENODEV
    assert "cbr0" in str(caught.value)
    assert [n for n in netlink.list_netns() if n.startswith(f"{node_netns}-")] == []
    assert not (ETC_NETNS_DIR / f"{node_netns}-{pod_id}").exists()


# -- netlink details the above rely on -------------------------------------------------------


@pytest.mark.root
@requires_root
def test_netlink_never_creates_a_missing_namespace(node_netns: str) -> None:
    with pytest.raises(NetworkError) as caught:
        Netlink(node_netns)
    assert caught.value.errno == errno.ENOENT
    assert not netlink.netns_exists(node_netns)
    assert node_netns not in netlink.list_netns()
    assert netlink.delete_netns(node_netns) is False


@pytest.mark.root
@requires_root
def test_netns_create_and_delete_are_idempotent(node_netns: str) -> None:
    assert netlink.create_netns(node_netns) is True
    assert netlink.create_netns(node_netns) is False
    assert node_netns in netlink.list_netns()
    assert netlink.delete_netns(node_netns) is True
    assert netlink.delete_netns(node_netns) is False
    # a mount point left empty by a crash is not a namespace; create replaces it
    netlink.NETNS_RUN_DIR.mkdir(exist_ok=True)
    netlink.netns_path(node_netns).touch()
    assert not netlink.netns_exists(node_netns)
    assert netlink.create_netns(node_netns) is True
    assert netlink.netns_exists(node_netns)


@pytest.mark.root
@requires_root
def test_hairpin_reads_back_both_ways(node_netns: str) -> None:
    assert netlink.create_netns(node_netns)
    with Netlink(node_netns) as node:
        node.create_bridge("br-t")
        node.create_veth("vt-a", peer="vt-b", peer_netns=node_netns)
        node.set_master("vt-a", "br-t")
        assert node.hairpin("vt-a") is False
        node.set_hairpin("vt-a", True)
        assert node.hairpin("vt-a") is True
        node.set_hairpin("vt-a", False)
        assert node.hairpin("vt-a") is False
        assert node.hairpin("vt-b") is False  # not a bridge port
        with pytest.raises(NetworkError) as caught:
            node.create_bridge("vt-b")  # exists, and is not a bridge
        assert caught.value.errno == errno.EEXIST
        assert node.delete_link("vt-a") is True
        assert node.link("vt-b") is None  # went with its peer
        assert node.delete_link("vt-a") is False


# -- arguments that are wrong whatever the kernel says (no root needed) ---------------------


@pytest.mark.parametrize("pod_id", ["short", "ABCDEFGHIJ", "abcdefghijk", "abc-efghij", ""])
async def test_setup_pod_refuses_a_pod_id_of_the_wrong_shape(pod_id: str) -> None:
    net = NetnsPodNetwork("cipt-never", prefix="cipt-never")
    with pytest.raises(ValueError, match="pod id"):
        await net.setup_pod(pod_id, ip(2), RESOLV_CONF)


@pytest.mark.parametrize("last", ["10.244.1.5", "10.244.0.0", "10.244.0.1", "10.244.0.255"])
async def test_setup_pod_refuses_an_address_that_is_not_a_pod_address(last: str) -> None:
    net = NetnsPodNetwork("cipt-never", prefix="cipt-never")
    with pytest.raises(ValueError, match="not a pod address"):
        await net.setup_pod(new_pod_id(), ipaddress.IPv4Address(last), RESOLV_CONF)


@pytest.mark.parametrize("name", ["cipt-never", "other-abcdefghij", "cipt-never-abc", "/etc"])
async def test_teardown_pod_refuses_a_namespace_that_is_not_ours(name: str) -> None:
    net = NetnsPodNetwork("cipt-never", prefix="cipt-never")
    with pytest.raises(ValueError, match="not a pod namespace"):
        await net.teardown_pod(name)


@requires_root
def test_gateway_routes_are_marked_listed_replaced_and_deleted(node_netns: str) -> None:
    netlink.create_netns(node_netns)
    other_nodes = ipaddress.IPv4Network("10.244.1.0/24"), ipaddress.IPv4Network("10.244.2.0/24")
    with Netlink(node_netns) as nl:
        nl.create_bridge("link0")
        nl.add_address("link0", ipaddress.IPv4Interface("172.18.0.1/24"))
        nl.set_up("link0")
        nl.add_route(ipaddress.IPv4Network("192.0.2.0/24"), "link0")  # not ours: never listed
        for last, network in enumerate(other_nodes, start=2):
            nl.replace_gateway_route(network, ipaddress.IPv4Address(f"172.18.0.{last}"))
        assert nl.gateway_routes() == {
            other_nodes[0]: ipaddress.IPv4Address("172.18.0.2"),
            other_nodes[1]: ipaddress.IPv4Address("172.18.0.3")}
        nl.replace_gateway_route(other_nodes[0], ipaddress.IPv4Address("172.18.0.9"))
        assert nl.gateway_routes()[other_nodes[0]] == ipaddress.IPv4Address("172.18.0.9")
        assert nl.delete_gateway_route(other_nodes[1]) is True
        assert nl.delete_gateway_route(other_nodes[1]) is False
        assert list(nl.gateway_routes()) == [other_nodes[0]]
        assert nl.routes_via("link0") == [ipaddress.IPv4Network("172.18.0.0/24"),
                                          ipaddress.IPv4Network("192.0.2.0/24")]
