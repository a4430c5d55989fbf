"""The shared link between the node namespaces of a local cluster: a switch in a namespace.

Theory of operation
===================

A local multi-node cluster puts each node in a network namespace (``<cluster>-node-1``, ...),
the way kind puts each node in a container on one docker network. The nodes meet on a link of
their own: a namespace ``<cluster>-link`` that holds nothing but a bridge ``br0`` with no address
(a plain layer-2 switch), and one veth per node from it into the node's namespace::

    "<cluster>-link"                          "<cluster>-node-1"
    ┌────────────────────────────┐            ┌──────────────────────────┐
    │ br0 (no address, up)       │            │ eth0 172.18.0.2/24 (up)  │
    │                            │            │  MAC 02:c2:ac:12:00:02   │
    │  ├─ v-node-1 (up) ─────────┼── veth ────┼─┘ lo up                  │
    │  ├─ v-node-2 (up) ── ...   │            └──────────────────────────┘
    │  └─ v-node-3 (up) ── ...   │
    └────────────────────────────┘

The names and addresses come from `core.clusterplan.plan_network`; this module only makes them
real, through `clusterip.runtime.netlink` (every setter reads back what it set). Everything is
made inside namespaces this module creates: the veth is created in the link namespace with its
peer created directly inside the node's namespace, so nothing ever appears in, or is changed in,
the host's namespace (no interface, address, route, bridge or rule). The host reaches no node
through the link, and needs not: the node agents run in the host namespace and talk to the API
servers on 127.0.0.1; only their nodes (bridges, pods, proxies) live in the node namespaces.

In the link namespace ``net/bridge/bridge-nf-call-iptables`` (and ip6tables, arptables) is turned
off where the kernel has it (br_netfilter loaded): the link is a switch, and frames crossing it
should not meet the link namespace's (empty) netfilter hooks.

Operations, all idempotent and synchronous (a few milliseconds of netlink each; asyncio callers
use `asyncio.to_thread`; a `Netlink` cannot be opened on a thread that runs an event loop):

- `create_link(link)`: the link namespace and its bridge, up.
- `attach_node(link, node)`: the node namespace if missing (lo up), the veth pair, eth0's address
  (other addresses of the link subnet on eth0 are removed) and MAC (made of the address, so a
  pair made again does not leave stale entries in the other nodes' ARP caches), both ends up,
  the link end enslaved to the bridge. A pair that is there and paired (each end's IFLA_LINK
  is the other's index) is kept; a half of one, or a stray interface of either name, is deleted
  and the pair made again.
- `detach_node(link, node)`: delete the pair (one end takes the other with it); keeps the node's
  namespace.
- `create_network(plan)` / `delete_network(plan)`: all of it; deleting removes the node
  namespaces and the link namespace (the veths go with them). A namespace that a process still
  holds (a node agent, a pod) lives on, unnamed, until that process ends: stop the node agents
  first.

Errors: `NetworkError` (from netlink) for what the kernel refuses.
"""

from __future__ import annotations

import shutil

from clusterip.core.clusterplan import LinkPlan, NetworkPlan, NodeNet
from clusterip.runtime import netlink
from clusterip.runtime.netlink import Link, Netlink
from clusterip.runtime.podnet import ETC_NETNS_DIR

__all__ = [
    "attach_node",
    "create_link",
    "create_network",
    "delete_network",
    "detach_node",
    "is_attached",
]

_LINK_SYSCTLS = (
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
)


def create_link(link: LinkPlan) -> None:
    """Make the link namespace with its bridge (no address), up. Idempotent."""
    netlink.create_netns(link.netns)
    with Netlink(link.netns) as ns:
        ns.create_bridge(link.bridge)
        ns.set_up(link.bridge)
    for key in _LINK_SYSCTLS:
        netlink.write_sysctl(link.netns, key, "0")  # False (absent) without br_netfilter


def _paired(port: Link | None, end: Link | None) -> bool:
    return (port is not None and end is not None and port.kind == "veth"
            and end.kind == "veth" and port.peer_index == end.index
            and end.peer_index == port.index)


def is_attached(link: LinkPlan, node: NodeNet) -> bool:
    """Whether node `node` is plugged into the link: its veth pair exists and is paired, the
    link end is a port of the bridge, both ends are up and eth0 has the node's address."""
    if not (netlink.netns_exists(link.netns) and netlink.netns_exists(node.netns)):
        return False
    with Netlink(link.netns) as switch, Netlink(node.netns) as ns:
        port, end = switch.link(node.link_port), ns.link(node.interface)
        bridge = switch.link(link.bridge)
        if port is None or end is None or bridge is None or not _paired(port, end):
            return False
        return (port.master == bridge.index and port.up and end.up and end.mac == node.mac
                and node.address in ns.addresses(node.interface))


def attach_node(link: LinkPlan, node: NodeNet) -> None:
    """Plug node `node` into the link (see the module docstring). Idempotent; the link must
    exist (`create_link`)."""
    netlink.create_netns(node.netns)
    with Netlink(link.netns) as switch, Netlink(node.netns) as ns:
        ns.set_up("lo")
        port, end = switch.link(node.link_port), ns.link(node.interface)
        if not _paired(port, end):
            if port is not None:
                switch.delete_link(node.link_port)
            if ns.link(node.interface) is not None:  # gone already if it was port's peer
                ns.delete_link(node.interface)
            switch.create_veth(node.link_port, peer=node.interface, peer_netns=node.netns)
        switch.set_master(node.link_port, link.bridge)
        switch.set_up(node.link_port)
        for address in ns.addresses(node.interface):
            if address != node.address and address.ip in link.subnet:
                ns.delete_address(node.interface, address)
        ns.add_address(node.interface, node.address)
        ns.set_mac(node.interface, node.mac)
        ns.set_up(node.interface)


def detach_node(link: LinkPlan, node: NodeNet) -> bool:
    """Unplug node `node`: delete its veth pair. False if there was none. Keeps the node's
    namespace and the link."""
    if netlink.netns_exists(link.netns):
        with Netlink(link.netns) as switch:
            if switch.delete_link(node.link_port):
                return True
    if netlink.netns_exists(node.netns):
        with Netlink(node.netns) as ns:
            found = ns.link(node.interface)
            if found is not None and found.kind == "veth":
                return ns.delete_link(node.interface)
    return False


def create_network(plan: NetworkPlan) -> None:
    """The link and every node plugged into it. Idempotent."""
    create_link(plan.link)
    for node in plan.nodes:
        attach_node(plan.link, node)


def delete_network(plan: NetworkPlan) -> list[str]:
    """Delete every node namespace and the link namespace of `plan` (the veths go with them),
    and the pod namespaces a node agent killed with SIGKILL left behind (``<node ns>-pod-*``,
    with their /etc/netns folders). Returns the namespaces that were there. Idempotent."""
    pods = [name for name in netlink.list_netns()
            if any(name.startswith(f"{node.netns}-pod-") for node in plan.nodes)]
    deleted = [name for name in (*pods, *plan.namespaces) if netlink.delete_netns(name)]
    for name in pods:
        shutil.rmtree(ETC_NETNS_DIR / name, ignore_errors=True)
    return deleted
