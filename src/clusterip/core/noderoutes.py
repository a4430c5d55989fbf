"""Routes between nodes: every node reaches every other node's pods through that node.

A node's pods live in its pod CIDR behind its bridge; other nodes reach them by routing the
CIDR via the node's InternalIP, on the link the nodes share (what kubenet and flannel's host-gw
do). `desired_routes(me, nodes)` is the table a node must have: for each *other* node that has
both a pod CIDR and an InternalIP, its pod CIDR via that IP. A node that has not got either yet
(just registered, no CIDR assigned) gets no route until it has. `route_changes` compares that
table with the routes the node has (only its own, marked ones: see `runtime.netlink`) and says
what to replace and what to delete, in a stable order.

No address translation is involved: a packet from a pod on node A to a pod on node C leaves A
with its own source address and arrives at C with it, so pod-to-pod traffic keeps the source
pod IP, as Kubernetes' network model requires.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from clusterip.core import model as m

__all__ = ["desired_routes", "internal_ip", "route_changes"]

Routes = dict[ipaddress.IPv4Network, ipaddress.IPv4Address]


def internal_ip(node: m.Node) -> ipaddress.IPv4Address | None:
    for address in node.status.addresses:
        if address.type == "InternalIP":
            try:
                return ipaddress.IPv4Address(address.address)
            except ValueError:
                return None
    return None


def desired_routes(me: str, nodes: Iterable[m.Node]) -> Routes:
    """Every other node's pod CIDR via its InternalIP."""
    routes: Routes = {}
    for node in nodes:
        via = internal_ip(node)
        if node.metadata.name == me or via is None or not node.spec.pod_cidr:
            continue
        try:
            routes[ipaddress.IPv4Network(node.spec.pod_cidr)] = via
        except ValueError:
            continue
    return routes


def route_changes(desired: Mapping[ipaddress.IPv4Network, ipaddress.IPv4Address],
                  present: Mapping[ipaddress.IPv4Network, ipaddress.IPv4Address]
                  ) -> tuple[list[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address]],
                             list[ipaddress.IPv4Network]]:
    """(routes to add or replace, destinations to delete), each sorted."""
    replace = sorted((net, via) for net, via in desired.items() if present.get(net) != via)
    delete = sorted(net for net in present if net not in desired)
    return replace, delete
