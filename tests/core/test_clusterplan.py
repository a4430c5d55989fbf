"""The plan of a local multi-node cluster (core.clusterplan): names, addresses, ports, command
lines.

Golden files (tests/core/golden/clusterplan/<case>.txt) hold `render_plan` of each case in
`CASES`: every namespace, address and command line; regenerate them with ``UPDATE_GOLDEN=1`` and
read the diff. The other tests pin the rules one by one and the errors.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from clusterip.core.clusterplan import (
    ClusterSpec,
    EtcdTlsFiles,
    Ports,
    node_argv,
    plan_cluster,
    plan_etcd,
    plan_network,
    ports_needed,
    render_plan,
)
from clusterip.core.errors import BadInput

GOLDEN = Path(__file__).parent / "golden" / "clusterplan"

# Ports as a shell would find them: arbitrary, distinct, never 2379/2380.
FREE = [41001, 41002, 41003, 41011, 41012, 41013, 41021, 41022, 41023]


def plan_of(spec: ClusterSpec) -> str:
    return render_plan(plan_cluster(spec, Ports.deal(spec, FREE[:ports_needed(spec)])))


CASES = {
    "one-node": ClusterSpec(name="dev", data_dir="/var/lib/clusterip/dev"),
    "three-nodes-three-members-two-apiservers": ClusterSpec(
        name="demo", data_dir="/tmp/clusterip-demo", nodes=3, etcd_members=3, apiservers=2),
    "small-subnet-python-program": ClusterSpec(
        name="ci-7f3a", data_dir="/tmp/ci", nodes=4, etcd_members=1, apiservers=1,
        link_subnet=ipaddress.IPv4Network("10.99.0.0/29"), compaction_interval=2.5,
        program=("/usr/bin/python3", "-m", "clusterip"), etcd_binary="/opt/etcd/bin/etcd"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_plan_matches_the_golden_file(case: str) -> None:
    text = plan_of(CASES[case])
    path = GOLDEN / f"{case}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_every_golden_file_is_a_case() -> None:
    assert {p.stem for p in GOLDEN.glob("*.txt")} == set(CASES)


def test_three_nodes_on_the_default_link() -> None:
    net = plan_network("demo", 3)
    assert net.link.netns == "demo-link"
    assert net.link.bridge == "br0"
    assert [(n.name, n.netns, n.interface, str(n.address), n.mac, n.link_port)
            for n in net.nodes] == [
        ("node-1", "demo-node-1", "eth0", "172.18.0.2/24", "02:c2:ac:12:00:02", "v-node-1"),
        ("node-2", "demo-node-2", "eth0", "172.18.0.3/24", "02:c2:ac:12:00:03", "v-node-2"),
        ("node-3", "demo-node-3", "eth0", "172.18.0.4/24", "02:c2:ac:12:00:04", "v-node-3"),
    ]
    assert net.namespaces == ("demo-node-1", "demo-node-2", "demo-node-3", "demo-link")


def test_the_node_argv_is_the_agent_interface() -> None:
    spec = CASES["three-nodes-three-members-two-apiservers"]
    plan = plan_cluster(spec, Ports.deal(spec, FREE[:8]))
    assert plan.servers == ("http://127.0.0.1:41021", "http://127.0.0.1:41022")
    assert plan.nodes[2].argv == (
        "clusterip", "node", "--data-dir", "/tmp/clusterip-demo/node-3",
        "--server", "http://127.0.0.1:41021,http://127.0.0.1:41022",
        "--node-name", "node-3", "--netns", "demo-node-3",
        "--node-ip", "172.18.0.4/24",
    )
    node = plan.nodes[0]
    assert node.argv == node_argv(spec.program, node.net, data_dir=node.data_dir,
                                  servers=plan.servers)


def test_apiservers_share_one_etcd() -> None:
    spec = CASES["three-nodes-three-members-two-apiservers"]
    plan = plan_cluster(spec, Ports.deal(spec, FREE[:8]))
    store = "etcd://127.0.0.1:41001,127.0.0.1:41002,127.0.0.1:41003"
    assert plan.etcd.store_url == store
    assert [s.argv for s in plan.apiservers] == [
        ("clusterip", "apiserver", "--data-dir", "/tmp/clusterip-demo/apiserver-1",
         "--listen", "127.0.0.1:41021", "--store", store, "--compaction-interval", "300"),
        ("clusterip", "apiserver", "--data-dir", "/tmp/clusterip-demo/apiserver-2",
         "--listen", "127.0.0.1:41022", "--store", store, "--compaction-interval", "300"),
    ]


def test_etcd_members_know_each_other() -> None:
    etcd = plan_etcd(token="demo", data_dir="/d", client_ports=[5001, 5002, 5003],
                     peer_ports=[6001, 6002, 6003])
    initial = ("etcd-1=http://127.0.0.1:6001,etcd-2=http://127.0.0.1:6002,"
               "etcd-3=http://127.0.0.1:6003")
    assert etcd.initial_cluster == initial
    assert etcd.endpoints == ("http://127.0.0.1:5001", "http://127.0.0.1:5002",
                              "http://127.0.0.1:5003")
    second = etcd.member("etcd-2")
    assert (second.data_dir, second.log_file) == ("/d/etcd-2", "/d/etcd-2.log")
    argv = second.argv
    assert argv[0] == "/usr/bin/etcd"
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert flags["--name"] == "etcd-2"
    assert flags["--initial-cluster"] == initial
    assert flags["--initial-cluster-token"] == "demo"
    assert flags["--listen-client-urls"] == flags["--advertise-client-urls"] == second.client_url
    assert flags["--listen-peer-urls"] == second.peer_url == "http://127.0.0.1:6002"
    assert flags["--experimental-watch-progress-notify-interval"] == "1s"
    with pytest.raises(KeyError, match="etcd-4"):
        etcd.member("etcd-4")


def test_etcd_with_tls_serves_https_and_the_store_url_carries_the_client_files() -> None:
    tls = EtcdTlsFiles(ca_file="/t/ca.crt", cert_file="/t/server.crt", key_file="/t/server.key",
                       client_cert_file="/t/client.crt", client_key_file="/t/client.key")
    etcd = plan_etcd(token="t", data_dir="/d", client_ports=[5001], peer_ports=[6001], tls=tls)
    member = etcd.members[0]
    assert member.client_url == "https://127.0.0.1:5001"
    assert member.peer_url == "http://127.0.0.1:6001"
    assert member.argv[-7:] == ("--cert-file", "/t/server.crt", "--key-file", "/t/server.key",
                                "--trusted-ca-file", "/t/ca.crt", "--client-cert-auth")
    assert etcd.store_url == ("etcd://127.0.0.1:5001?ca=/t/ca.crt&cert=/t/client.crt"
                              "&key=/t/client.key")


def test_ports_are_dealt_in_order() -> None:
    spec = ClusterSpec(name="x", data_dir="/d", etcd_members=3, apiservers=2)
    assert ports_needed(spec) == 8
    assert Ports.deal(spec, FREE[:8]) == Ports(
        etcd_client=(41001, 41002, 41003), etcd_peer=(41011, 41012, 41013),
        apiserver=(41021, 41022))
    with pytest.raises(ValueError, match="expected 8 ports"):
        Ports.deal(spec, FREE[:7])


@pytest.mark.parametrize("name", ["", "Demo", "-x", "x-", "a_b", "x" * 41, "a.b"])
def test_bad_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(BadInput, match="cluster name"):
        plan_network(name, 1)


@pytest.mark.parametrize(("spec", "message"), [
    (ClusterSpec(name="x", data_dir="/d", nodes=0), "at least one node"),
    (ClusterSpec(name="x", data_dir="/d", nodes=6,
                 link_subnet=ipaddress.IPv4Network("10.0.0.0/29")), "holds at most 5 nodes"),
    (ClusterSpec(name="x", data_dir="/d", etcd_members=2), "etcd members: 2"),
    (ClusterSpec(name="x", data_dir="/d", apiservers=0), "at least one API server"),
    (ClusterSpec(name="x", data_dir="relative/dir"), "absolute path"),
])
def test_bad_specs_are_refused(spec: ClusterSpec, message: str) -> None:
    free = list(range(50000, 50000 + ports_needed(spec)))
    with pytest.raises(BadInput, match=message):
        plan_cluster(spec, Ports.deal(spec, free))


def test_the_subnet_holds_as_many_nodes_as_it_has_addresses_after_1() -> None:
    net = plan_network("x", 5, ipaddress.IPv4Network("10.0.0.0/29"))
    assert [str(n.address) for n in net.nodes][-1] == "10.0.0.6/29"  # .7 is the broadcast


@pytest.mark.parametrize(("ports", "message"), [
    ((2379, 5001, 6000), "reserved"),
    ((5001, 5001, 6000), "not distinct"),
    ((0, 5001, 6000), "out of range"),
    ((5001, 6000, 70000), "out of range"),
])
def test_bad_ports_are_refused(ports: tuple[int, int, int], message: str) -> None:
    spec = ClusterSpec(name="x", data_dir="/d")
    with pytest.raises(ValueError, match=message):
        plan_cluster(spec, Ports.deal(spec, ports))
