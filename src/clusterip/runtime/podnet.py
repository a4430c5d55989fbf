"""Pod networking: a network namespace per pod, a veth to the node's bridge, an IP, a route.

Theory of operation
===================

The node is a network namespace (``node_netns``; None is the host's own, which only a real
deployment uses: tests and demos always name one). `ensure_node` gives it loopback up and a bridge
(``cbr0``) carrying the gateway address, the first address of the pod CIDR (10.244.0.1/24)::

    node netns                                   pod netns "<prefix>-<pod_id>"
    ┌──────────────────────────────────┐          ┌──────────────────────────────┐
    │ cbr0 10.244.0.1/24 ── veth<id8> ─┼──veth────┼─ eth0 10.244.0.7/24          │
    │            (hairpin on,          │          │  default via 10.244.0.1      │
    │             alias = pod netns)   │          │ lo up                        │
    └──────────────────────────────────┘          └──────────────────────────────┘

`setup_pod(pod_id, ip, resolv_conf)` makes the right-hand side and writes
``/etc/netns/<pod netns>/resolv.conf``; ``ip netns exec`` bind-mounts the files of that folder over
``/etc`` for the processes it starts, so a pod's processes resolve through the cluster DNS while the
node's ``/etc/resolv.conf`` stays as it is.

Names are derived, never stored: the pod namespace is ``f"{prefix}-{pod_id}"`` (pod_id is the
caller's 10-character [a-z0-9] hash), the host end is ``veth`` + the first 8 characters of pod_id
(interface names have 15 bytes at most). Because of that, the kernel is the only record: after a
restart `list_pods` finds the namespaces by name and reads each one's eth0 address, and the agent
adopts or removes them. The host veth carries the pod namespace's name as its alias
(IFLA_IFALIAS), so two pod ids that share their first 8 characters cannot take each other's veth:
setup refuses with EEXIST and teardown leaves a veth labelled for another pod alone.

Every operation is idempotent and converges from any partial state a crash can leave: setup_pod
reuses a veth pair only if the kernel shows it paired (the host end's IFLA_LINK is eth0's
index and the other way round) and otherwise deletes the remnants and creates it again; addresses
other than the pod's are removed from eth0; the route is replaced. Every setter reads back what it
set (see `clusterip.runtime.netlink`). A setup_pod that fails removes the namespace if it was the
one to create it (so a failed pod leaves nothing behind), and leaves an older namespace for a
retry or a teardown_pod.

Concurrency. The netlink work is synchronous (a few dozen netlink round trips of about a
millisecond each, plus a forked child to create a namespace: setup_pod takes about 55 ms,
teardown_pod about 25 ms) and runs in `asyncio.to_thread`. Operations on one pod are serialized
by a lock taken *in the worker thread* (one of 64 striped locks, chosen by the namespace name), so
a caller that is cancelled while its setup runs cannot start a second one on the same pod before
the first ends. Different pods may proceed in parallel (though the GIL serializes most of it).

Errors: `NetworkError` (from netlink) for what the kernel refuses; ValueError for arguments that
are wrong whatever the kernel's state (a pod id of the wrong shape, an IP outside the pod CIDR,
a namespace name without our prefix).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import re
import shutil
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec, Protocol, TypeVar

from clusterip.runtime import netlink
from clusterip.runtime.netlink import Netlink, NetworkError

__all__ = ["ETC_NETNS_DIR", "NetnsPodNetwork", "PodNet", "PodNetwork"]

ETC_NETNS_DIR = Path("/etc/netns")
"""Where ``ip netns exec NAME`` looks for files to bind-mount over /etc (iproute2's fixed path)."""

POD_IFNAME = "eth0"
_POD_ID = re.compile(r"[a-z0-9]{10}")
_LOCK_STRIPES = 64

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class PodNet:
    """A pod's network as it exists in the kernel.

    Attributes:
        netns: the pod's network namespace (``ip netns exec <netns> ...`` runs a process in it).
        pod_id: the id the namespace name was made from.
        ip: eth0's address. Always set by `setup_pod`; None only from `list_pods`, for a
            namespace whose setup never got as far as the address (the agent removes those).
        host_veth: the node-side end of the pod's veth pair, in the node namespace.
    """

    netns: str
    pod_id: str
    ip: ipaddress.IPv4Address | None
    host_veth: str


class PodNetwork(Protocol):
    """What the node agent needs of pod networking (`NetnsPodNetwork` is the kernel's)."""

    async def ensure_node(self) -> None:
        """Make the node's namespace and bridge exist and be up. Idempotent."""
        ...

    async def setup_pod(
        self, pod_id: str, ip: ipaddress.IPv4Address, resolv_conf: str
    ) -> PodNet:
        """Give pod `pod_id` a namespace with `ip` on eth0 and `resolv_conf`. Idempotent."""
        ...

    async def teardown_pod(self, netns: str) -> None:
        """Remove a pod's namespace, veth and resolv.conf. Idempotent."""
        ...

    async def list_pods(self) -> list[PodNet]:
        """The pod namespaces of this node that exist now (restart recovery)."""
        ...

    async def teardown_node(self, *, remove_namespace: bool = False) -> None:
        """Remove every pod namespace, the bridge, and the node namespace if this object made
        it or `remove_namespace` says so (`clusterip up --netns` owns the one it names)."""
        ...


# The kernel settings of a node namespace (a host node is the administrator's to configure).
_NODE_SYSCTLS = (
    # the node routes between its pods and through the service proxy's DNAT
    ("net/ipv4/ip_forward", "1"),
    # a pod's reply to a pod on the same bridge must pass conntrack to be un-NATed
    ("net/bridge/bridge-nf-call-iptables", "1"),
    # pod -> ClusterIP -> pod goes back out of the bridge it came in on: an ICMP redirect would
    # send the pod straight to the other pod's MAC for the ClusterIP (which that pod drops), and
    # spends the per-destination ICMP rate limit that REJECT's port-unreachable needs
    ("net/ipv4/conf/all/send_redirects", "0"),
    ("net/ipv4/conf/{bridge}/send_redirects", "0"),
)


class NetnsPodNetwork:
    """Pods in network namespaces attached to a bridge in the node's namespace.

    Args:
        node_netns: the node's named namespace, created by `ensure_node` if missing; None is the
            host's own namespace (a real deployment only, never tests).
        bridge: the node bridge's name.
        pod_cidr: this node's pod CIDR; its first address is the gateway, on the bridge.
        prefix: pod namespaces are named ``f"{prefix}-{pod_id}"``; everything with this prefix
            is this node's to adopt or delete, so it must be unique to the node.
        local_addresses: addresses the node itself serves (the cluster DNS 10.96.0.10/32), put
            on its loopback so that pods reach them through their default route.
        service_cidr: in a node namespace (not the host's), routed out of the bridge, so that
            the node's own connections to a ClusterIP find a route before the proxy's DNAT (the
            route lookup comes first; a real host has its default route for that).
    """

    def __init__(
        self,
        node_netns: str | None,
        *,
        bridge: str = "cbr0",
        pod_cidr: str = "10.244.0.0/24",
        prefix: str,
        local_addresses: Sequence[str] = (),
        service_cidr: str | None = None,
    ) -> None:
        self.service_cidr = ipaddress.IPv4Network(service_cidr) if service_cidr else None
        self.local_addresses = tuple(ipaddress.IPv4Interface(a) for a in local_addresses)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
            raise ValueError(f"bad pod namespace prefix {prefix!r}")
        self.node_netns = node_netns
        self.bridge = bridge
        self.pod_cidr = ipaddress.IPv4Network(pod_cidr)
        self.gateway = ipaddress.IPv4Interface(
            f"{self.pod_cidr.network_address + 1}/{self.pod_cidr.prefixlen}"
        )
        self.prefix = prefix
        self._pod_name = re.compile(re.escape(prefix) + r"-([a-z0-9]{10})")
        self._created_node = False
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._node_lock = threading.Lock()

    # -- names -------------------------------------------------------------------------------

    def pod_netns(self, pod_id: str) -> str:
        """The namespace name of pod `pod_id`."""
        if not _POD_ID.fullmatch(pod_id):
            raise ValueError(f"pod id must be 10 characters of [a-z0-9], got {pod_id!r}")
        return f"{self.prefix}-{pod_id}"

    def pod_id_of(self, netns: str) -> str:
        """The pod id in a pod namespace name; ValueError if the name is not one of ours."""
        match = self._pod_name.fullmatch(netns)
        if match is None:
            raise ValueError(f"{netns!r} is not a pod namespace of prefix {self.prefix!r}")
        return match.group(1)

    @staticmethod
    def host_veth(pod_id: str) -> str:
        """The node-side veth name of pod `pod_id` (15-byte limit: 'veth' + 8 characters)."""
        return f"veth{pod_id[:8]}"

    # -- the Protocol ------------------------------------------------------------------------

    async def ensure_node(self) -> None:
        await asyncio.to_thread(self._ensure_node)

    async def setup_pod(
        self, pod_id: str, ip: ipaddress.IPv4Address, resolv_conf: str
    ) -> PodNet:
        netns = self.pod_netns(pod_id)
        if ip not in self.pod_cidr or ip in (
            self.pod_cidr.network_address, self.pod_cidr.broadcast_address, self.gateway.ip
        ):
            raise ValueError(f"pod IP {ip} is not a pod address of {self.pod_cidr}")
        return await asyncio.to_thread(self._locked, netns, self._setup_pod, pod_id, ip,
                                       resolv_conf)

    async def teardown_pod(self, netns: str) -> None:
        self.pod_id_of(netns)  # refuse anything that is not ours, before touching the kernel
        await asyncio.to_thread(self._locked, netns, self._teardown_pod, netns)

    async def list_pods(self) -> list[PodNet]:
        return await asyncio.to_thread(self._list_pods)

    async def teardown_node(self, *, remove_namespace: bool = False) -> None:
        await asyncio.to_thread(self._teardown_node, remove_namespace)

    async def add_local_address(self, ip: str) -> None:
        """Put `ip`/32 on the node's loopback (a ClusterIP the userspace proxy listens on)."""
        await asyncio.to_thread(self._on_loopback, "add", ip)

    async def remove_local_address(self, ip: str) -> None:
        """Take `ip`/32 off the node's loopback; absent is fine."""
        await asyncio.to_thread(self._on_loopback, "remove", ip)

    # -- the work, in a worker thread --------------------------------------------------------

    def _locked(self, netns: str, fn: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T:
        with self._locks[zlib.crc32(netns.encode()) % _LOCK_STRIPES]:
            return fn(*args, **kw)

    def _ensure_node(self) -> None:
        with self._node_lock:
            if self.node_netns is not None and netlink.create_netns(self.node_netns):
                self._created_node = True
            with Netlink(self.node_netns) as node:
                node.set_up("lo")
                for address in self.local_addresses:
                    node.add_address("lo", address)
                node.create_bridge(self.bridge)
                # A bridge without a MAC of its own takes the lowest of its ports' and changes
                # it when that pod goes: every other pod's ARP entry for the gateway would then
                # point at a MAC the bridge forwards instead of receiving, for ~30 s. A fixed,
                # locally administered MAC from the gateway's IP (unique per node) prevents it.
                node.set_mac(self.bridge, _gateway_mac(self.gateway.ip))
                node.add_address(self.bridge, self.gateway)
                node.set_up(self.bridge)
                if self.node_netns is not None and self.service_cidr is not None:
                    node.add_route(self.service_cidr, self.bridge)
            if self.node_netns is not None:
                for key, value in _NODE_SYSCTLS:
                    netlink.write_sysctl(self.node_netns, key.format(bridge=self.bridge), value)

    def _on_loopback(self, action: str, ip: str) -> None:
        address = ipaddress.IPv4Interface(f"{ip}/32")
        with self._node_lock, Netlink(self.node_netns) as node:
            if action == "add":
                node.add_address("lo", address)
            else:
                node.delete_address("lo", address)

    def _setup_pod(self, pod_id: str, ip: ipaddress.IPv4Address, resolv_conf: str) -> PodNet:
        netns = self.pod_netns(pod_id)
        veth = self.host_veth(pod_id)
        address = ipaddress.IPv4Interface(f"{ip}/{self.pod_cidr.prefixlen}")
        created = netlink.create_netns(netns)
        try:
            with Netlink(self.node_netns) as node, Netlink(netns) as pod:
                self._ensure_veth(node, pod, veth, netns)
                node.set_master(veth, self.bridge)
                node.set_hairpin(veth, True)
                node.set_up(veth)
                pod.set_up("lo")
                for other in pod.addresses(POD_IFNAME):
                    if other != address:
                        pod.delete_address(POD_IFNAME, other)
                pod.add_address(POD_IFNAME, address)
                pod.set_up(POD_IFNAME)
                pod.set_default_route(self.gateway.ip)
            _write_resolv_conf(netns, resolv_conf)
        except BaseException:
            if created:  # what this call made, it removes; an older namespace is left to retry
                try:
                    self._teardown_pod(netns)
                except (NetworkError, OSError):
                    log.warning("cleanup after a failed pod setup failed netns=%s", netns,
                                exc_info=True)
            raise
        return PodNet(netns=netns, pod_id=pod_id, ip=ip, host_veth=veth)

    def _ensure_veth(self, node: Netlink, pod: Netlink, veth: str, netns: str) -> None:
        """Make `veth` (node) <-> eth0 (pod) exist as one pair, labelled with `netns`."""
        host = node.link(veth)
        eth0 = pod.link(POD_IFNAME)
        if host is not None and host.alias not in (None, netns):
            raise NetworkError(
                f"add veth {veth}", self.node_netns, errno.EEXIST,
                f"{veth} belongs to pod namespace {host.alias} (pod ids share 8 characters)",
            )
        paired = (
            host is not None and eth0 is not None
            and host.peer_index == eth0.index and eth0.peer_index == host.index
        )
        if not paired:
            # Remnants of an interrupted setup (or of a namespace made again): start over.
            if host is not None:
                node.delete_link(veth)
            if eth0 is not None:
                pod.delete_link(POD_IFNAME)
            node.create_veth(veth, peer=POD_IFNAME, peer_netns=netns)
        node.set_alias(veth, netns)

    def _teardown_pod(self, netns: str) -> None:
        veth = self.host_veth(self.pod_id_of(netns))
        if self.node_netns is None or netlink.netns_exists(self.node_netns):
            with Netlink(self.node_netns) as node:
                host = node.link(veth)
                # Deleting one end deletes both. A veth labelled for another pod is not ours.
                if host is not None and host.alias in (None, netns):
                    node.delete_link(veth)
        netlink.delete_netns(netns)
        shutil.rmtree(ETC_NETNS_DIR / netns, ignore_errors=True)

    def _pod_namespaces(self) -> list[str]:
        return [n for n in netlink.list_netns() if self._pod_name.fullmatch(n)]

    def _list_pods(self) -> list[PodNet]:
        found: list[PodNet] = []
        for netns in self._pod_namespaces():
            pod_id = self.pod_id_of(netns)
            try:
                with Netlink(netns) as pod:
                    addresses = pod.addresses(POD_IFNAME)
            except NetworkError as e:
                if e.errno == errno.ENOENT:
                    continue  # removed while we were listing
                raise
            ip = next((a.ip for a in addresses if a.ip in self.pod_cidr), None)
            found.append(PodNet(netns=netns, pod_id=pod_id, ip=ip,
                                host_veth=self.host_veth(pod_id)))
        return found

    def _teardown_node(self, remove_namespace: bool) -> None:
        for netns in self._pod_namespaces():
            self._locked(netns, self._teardown_pod, netns)
        with self._node_lock:
            if self.node_netns is not None and not netlink.netns_exists(self.node_netns):
                return
            with Netlink(self.node_netns) as node:
                node.delete_link(self.bridge)
            if self.node_netns is not None and (self._created_node or remove_namespace):
                netlink.delete_netns(self.node_netns)
                self._created_node = False


def _gateway_mac(gateway: ipaddress.IPv4Address) -> str:
    """``02:c1:`` (locally administered, unicast) and the gateway's four bytes."""
    return ":".join(f"{b:02x}" for b in (0x02, 0xC1, *gateway.packed))


def _write_resolv_conf(netns: str, text: str) -> None:
    """Write /etc/netns/<netns>/resolv.conf atomically (a reader never sees half a file)."""
    folder = ETC_NETNS_DIR / netns
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "resolv.conf"
    if target.is_file() and target.read_text(encoding="utf-8") == text:
        return
    tmp = folder / f".resolv.conf.{os.getpid()}.{threading.get_ident()}"
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
