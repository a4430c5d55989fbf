"""Routes between nodes (core.noderoutes): every other node's pod CIDR via its InternalIP, and
the changes that bring a node's routes there."""

from __future__ import annotations

from ipaddress import IPv4Address as A
from ipaddress import IPv4Network as N

from clusterip.core import model as m
from clusterip.core.noderoutes import desired_routes, route_changes


def node(name: str, cidr: str = "", ip: str = "") -> m.Node:
    addresses = (m.NodeAddress(type="InternalIP", address=ip),) if ip else ()
    return m.Node(metadata=m.ObjectMeta(name=name), spec=m.NodeSpec(pod_cidr=cidr),
                  status=m.NodeStatus(addresses=(
                      m.NodeAddress(type="Hostname", address=name), *addresses)))


NODES = [node("n1", "10.244.0.0/24", "172.18.0.2"), node("n2", "10.244.1.0/24", "172.18.0.3"),
         node("n3", "10.244.2.0/24", "172.18.0.4")]


def test_a_node_routes_every_other_node_s_pods_via_that_node() -> None:
    assert desired_routes("n1", NODES) == {N("10.244.1.0/24"): A("172.18.0.3"),
                                           N("10.244.2.0/24"): A("172.18.0.4")}


def test_a_node_without_a_cidr_or_an_address_yet_gets_no_route() -> None:
    assert desired_routes("n1", [*NODES[:1], node("n4", ip="172.18.0.5"),
                                 node("n5", "10.244.4.0/24")]) == {}


def test_changes_replace_what_differs_and_delete_what_is_gone() -> None:
    present = {N("10.244.1.0/24"): A("172.18.0.9"), N("10.244.7.0/24"): A("172.18.0.7"),
               N("10.244.2.0/24"): A("172.18.0.4")}
    assert route_changes(desired_routes("n1", NODES), present) == (
        [(N("10.244.1.0/24"), A("172.18.0.3"))], [N("10.244.7.0/24")])
