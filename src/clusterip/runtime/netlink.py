"""The few netlink operations the node agent needs, typed, over pyroute2.

Theory of operation
===================

pyroute2 (0.9.7) speaks rtnetlink through verb strings and keyword soup
(``ipr.link("add", ifname=..., kind=...)``) that mypy cannot see and that *silently ignores*
keywords it does not know. This module is the only place in clusterip that imports it. It offers:

- namespace bookkeeping as functions: `create_netns`, `delete_netns`, `list_netns`,
  `netns_exists`. A named network namespace is a bind mount of an nsfs inode on
  ``/run/netns/<name>`` (what ``ip netns add`` makes); `create_netns` and `delete_netns` are
  idempotent and say whether they changed anything;
- `Netlink`, one open rtnetlink socket *in one namespace* (None is the caller's own), with one
  typed method per operation: `create_bridge`, `create_veth` (peer created directly inside another
  namespace), `set_master`, `set_hairpin`, `set_alias`, `set_up`, `add_address`,
  `delete_address`, `set_default_route`, `delete_link`, and the readers `link`, `links`,
  `addresses`, `hairpin`, `default_route` that restart recovery uses.
  Values in and out are our own (`Link`, `ipaddress` objects), never pyroute2 messages.

Every setter reads back what it set and raises `NetworkError` if the kernel does not show it:
pyroute2 drops unknown keywords without a word (``brport("set", hairpin=1)`` is a no-op; the
real knob is ``mode=1``, IFLA_BRPORT_MODE), so "it did not raise" proves nothing. Creators are
idempotent where the caller's intent is clear (a bridge that exists is a success, an address that
is already there is a success, a link that is already gone is a success); anything else is an error.

Errors. `_translated` is the one place where pyroute2's `NetlinkError` and `OSError` (namespace
files, the helper process pyroute2 forks) become `NetworkError`, which keeps the errno, the
operation and the namespace. Everything else pyroute2 raises (TypeError for a verb it does not
have, say) is a bug in this module and is left alone.

Threads and processes. These calls are synchronous and take about a millisecond each; asyncio
callers run them with `asyncio.to_thread`. A `Netlink` is used only by the thread that made it
(pyroute2's sync `IPRoute` drives a private event loop, and refuses a socket it was given from
any other thread), so open one inside the function that runs in the worker thread. It cannot be
made in a thread that runs an event loop (pyroute2 would try to drive that one; we raise
RuntimeError instead).

How a `Netlink` gets into a named namespace. A socket belongs for life to the network namespace
of the thread that created it, and namespaces are per thread. So a short-lived thread opens
``/run/netns/<name>``, enters it with setns(2) (`setns_thread`), creates the rtnetlink socket and
ends; the socket goes to ``IPRoute(use_socket=...)``. That costs about 1 ms. pyroute2's own
``IPRoute(netns=name)`` forks a helper process to do the same (10-15 ms, and a fork of a
multi-threaded process), and by default (``flags=O_CREAT``) *creates* a namespace that is missing,
which would turn a typo or a teardown race into a leaked namespace: ours only opens what exists.
`create_netns` still uses pyroute2's ``netns.create`` (a forked child unshares and bind-mounts,
as ``ip netns add`` does). We never use ``netns.pushns``/``popns``: they restore the thread-group
leader's namespace, not the calling thread's.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import ipaddress
import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from pyroute2 import IPRoute, NetlinkError  # type: ignore[import-untyped]
from pyroute2 import netns as _pr2_netns

from clusterip.core.errors import ClusterIPError

T = TypeVar("T")

__all__ = [
    "NETNS_RUN_DIR",
    "Link",
    "Netlink",
    "NetworkError",
    "create_netns",
    "delete_netns",
    "list_netns",
    "netns_exists",
    "netns_path",
    "setns_thread",
]

NETNS_RUN_DIR = Path("/run/netns")

_IFF_UP = 0x1
_CLONE_NEWNET = 0x40000000
_NETLINK_ROUTE = 0
_NETLINK_BUFFER = 1 << 20  # what pyroute2 asks for on the sockets it makes itself
_SCOPE_LINK = 253
_DEFAULT_ROUTE_TABLE = 254  # RT_TABLE_MAIN
_BRPORT_MODE_HAIRPIN = 1

_libc: ctypes.CDLL | None = None  # loaded on first setns


# The rtm_protocol that marks clusterip's routes (as bird or zebra mark theirs, rtnetlink's
# RTPROT_* above 4 are free for routing daemons): a route listing finds exactly ours.
ROUTE_PROTOCOL = 193


class NetworkError(ClusterIPError):
    """A netlink or network-namespace operation failed (an environment failure, like EPERM).

    Attributes:
        op: what was being done, e.g. ``"add veth veth0a1b2c3d"``.
        netns: the namespace it was done in (None: the process's own).
        errno: the kernel's errno when there was one (17 EEXIST, 19 ENODEV, 1 EPERM, ...).
    """

    def __init__(self, op: str, netns: str | None, err: int | None, detail: str) -> None:
        where = f" in netns {netns}" if netns else ""
        code = f" [errno {err}]" if err is not None else ""
        super().__init__(f"{op}{where}: {detail}{code}")
        self.op = op
        self.netns = netns
        self.errno = err


@contextmanager
def _translated(op: str, netns: str | None) -> Iterator[None]:
    """The one place where pyroute2 and OS errors become `NetworkError`."""
    try:
        yield
    except NetlinkError as e:
        code = int(e.code) if e.code is not None else None
        detail = os.strerror(code) if code else str(e)
        raise NetworkError(op, netns, code, detail) from e
    except OSError as e:
        raise NetworkError(op, netns, e.errno, e.strerror or str(e)) from e


def _check_name(name: str) -> str:
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"bad network namespace name {name!r}")
    return name


def netns_path(name: str) -> Path:
    """``/run/netns/<name>``: the bind mount that keeps a named namespace alive."""
    return NETNS_RUN_DIR / _check_name(name)


def _nsfs_dev() -> int:
    # Every namespace inode lives on the one nsfs pseudo filesystem; our own tells us its st_dev.
    return os.stat("/proc/self/ns/net").st_dev


def netns_exists(name: str) -> bool:
    """True if ``/run/netns/<name>`` is a mounted network namespace (not a stale empty file)."""
    try:
        return netns_path(name).stat().st_dev == _nsfs_dev()
    except FileNotFoundError:
        return False


def list_netns() -> list[str]:
    """Names of the named network namespaces (``ip netns list``), sorted."""
    with _translated("list netns", None):
        return sorted(_pr2_netns.listnetns())


def create_netns(name: str) -> bool:
    """Create the named namespace if missing. Returns True if it was created by this call.

    A leftover mount point that holds no namespace (a crash between ``open`` and ``mount``) is
    removed and the namespace created.
    """
    path = netns_path(name)
    if netns_exists(name):
        return False
    with _translated(f"create netns {name}", None):
        if path.exists():
            _pr2_netns.remove(name)  # stale file: umount (a no-op) and unlink
        try:
            _pr2_netns.create(name)
        except FileExistsError:
            return False  # created concurrently by someone else
    return True


def delete_netns(name: str) -> bool:
    """Remove the named namespace (its mount point). Returns False if it did not exist.

    The kernel destroys the namespace, and every interface in it (a veth's peer included), once
    no process and no open file holds it any more.
    """
    path = netns_path(name)
    if not path.exists():
        return False
    with _translated(f"delete netns {name}", None):
        try:
            _pr2_netns.remove(name)
        except FileNotFoundError:
            return False
    return True


def setns_thread(fd: int) -> None:
    """Move the calling thread (only it: namespaces are per thread) into the network namespace
    of `fd` (an open ``/run/netns/<name>``). Python 3.11 has no ``os.setns``.

    Raises:
        OSError: setns(2) failed (EINVAL: `fd` is not a network namespace; EPERM: not root).
    """
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _in_netns_thread(netns: str, fn: Callable[[], T]) -> T:
    """`fn()` on a thread of its own that entered `netns` first (and ends with it)."""
    path = netns_path(netns)
    results: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                setns_thread(fd)
            finally:
                os.close(fd)
            results.append(fn())
        except BaseException as e:  # handed to the calling thread
            failed.append(e)

    thread = threading.Thread(target=run, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return results[0]


def _rtnetlink_socket_in(netns: str) -> socket.socket:
    """An rtnetlink socket that belongs to `netns`, made without forking.

    A socket belongs for life to the namespace of the thread that created it, so a thread of its
    own enters the namespace, creates the socket and ends (taking its membership with it).
    pyroute2's ``IPRoute(netns=...)`` does the same in a forked child instead: 10-15 ms a call,
    and a fork of a multi-threaded process.
    """

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_ROUTE)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _NETLINK_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _NETLINK_BUFFER)
        except BaseException:
            sock.close()
            raise
        return sock

    return _in_netns_thread(netns, make)


def write_sysctl(netns: str | None, key: str, value: str) -> bool:
    """Set the network sysctl `key` (``net/ipv4/ip_forward``) as `netns` sees it (None: this
    process's namespace). /proc/sys/net resolves to the namespace of the thread that opens it.
    False if the key does not exist there (e.g. ``net/bridge/...`` without br_netfilter).

    Raises:
        NetworkError: the namespace cannot be entered, or the write failed.
    """
    if not re.fullmatch(r"net/[a-z0-9_/.-]+", key) or ".." in key:
        raise ValueError(f"not a network sysctl: {key!r}")
    path = f"/proc/sys/{key}"

    def write() -> bool:
        try:
            with open(path, "w", encoding="ascii") as f:
                f.write(value)
        except FileNotFoundError:
            return False
        return True

    with _translated(f"set sysctl {key}={value}", netns):
        return write() if netns is None else _in_netns_thread(netns, write)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A network interface as the kernel reports it, in the namespace it was read from.

    Attributes:
        index: ifindex, unique within its namespace only.
        name: the interface name (at most 15 bytes).
        kind: IFLA_INFO_KIND ("bridge", "veth", ...), None for loopback and physical devices.
        up: the administrative state (IFF_UP), not the carrier.
        master: ifindex of the bridge it is attached to, if any.
        peer_index: IFLA_LINK; for a veth, the peer's ifindex *in the peer's namespace*.
        alias: IFLA_IFALIAS, a free-text label (we record the pod namespace on host veths).
        mac: IFLA_ADDRESS, lower-case ``aa:bb:cc:dd:ee:ff`` (None for devices without one).
    """

    index: int
    name: str
    kind: str | None
    up: bool
    master: int | None
    peer_index: int | None
    alias: str | None
    mac: str | None = None


def _opt_int(value: Any) -> int | None:
    return int(value) if value is not None else None


def _to_link(msg: Any) -> Link:
    kind = msg.get(("linkinfo", "kind"))
    alias = msg.get("ifalias")
    return Link(
        index=int(msg["index"]),
        name=str(msg.get("ifname")),
        kind=str(kind) if kind is not None else None,
        up=bool(int(msg["flags"]) & _IFF_UP),
        master=_opt_int(msg.get("master")),
        peer_index=_opt_int(msg.get("link")),
        alias=str(alias) if alias else None,
        mac=str(msg.get("address")).lower() if msg.get("address") else None,
    )


class Netlink:
    """An rtnetlink connection to one network namespace. Use as a context manager.

    Args:
        netns: the named namespace to work in; None for this thread's own namespace. A named
            namespace must exist (it is never created implicitly).

    Raises:
        NetworkError: the namespace does not exist (errno 2) or cannot be entered.
        RuntimeError: called from a thread that runs an event loop.
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = _check_name(netns) if netns is not None else None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:  # pyroute2 would try to drive the running loop, and fail obscurely
            raise RuntimeError("Netlink is synchronous: call it through asyncio.to_thread")
        with _translated("open rtnetlink", self.netns):
            if self.netns is None:
                self._ipr: Any = IPRoute()
            else:
                sock = _rtnetlink_socket_in(self.netns)
                try:
                    self._ipr = IPRoute(use_socket=sock)
                except BaseException:
                    sock.close()
                    raise

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _t(self, op: str) -> AbstractContextManager[None]:
        return _translated(op, self.netns)

    # -- readers ---------------------------------------------------------------------------

    def link(self, name: str) -> Link | None:
        """The interface called `name`, or None."""
        with self._t(f"get link {name}"):
            try:
                msgs = self._ipr.link("get", ifname=name)
            except NetlinkError as e:
                if e.code == errno.ENODEV:
                    return None
                raise
        return _to_link(msgs[0])

    def links(self) -> list[Link]:
        """Every interface of the namespace, by index."""
        with self._t("dump links"):
            return sorted((_to_link(m) for m in self._ipr.link("dump")), key=lambda x: x.index)

    def _require(self, name: str, op: str) -> Link:
        found = self.link(name)
        if found is None:
            raise NetworkError(op, self.netns, errno.ENODEV, f"no such interface {name}")
        return found

    def addresses(self, name: str) -> list[ipaddress.IPv4Interface]:
        """The IPv4 addresses of interface `name` (empty if it has none or does not exist)."""
        found = self.link(name)
        if found is None:
            return []
        with self._t(f"dump addresses of {name}"):
            msgs = self._ipr.addr("dump", index=found.index, family=socket.AF_INET)
            return [
                ipaddress.IPv4Interface(f"{m.get('address')}/{int(m['prefixlen'])}")
                for m in msgs
                if int(m["index"]) == found.index
            ]

    def hairpin(self, name: str) -> bool:
        """Whether bridge port `name` has hairpin (reflective relay, IFLA_BRPORT_MODE) on."""
        found = self._require(name, f"read hairpin of {name}")
        with self._t(f"read hairpin of {name}"):
            for msg in self._ipr.brport("show", index=found.index):
                if int(msg["index"]) == found.index:
                    mode = msg.get(("protinfo", "mode"))
                    return mode is not None and int(mode) == _BRPORT_MODE_HAIRPIN
        return False  # not a bridge port: no protinfo

    def default_route(self) -> ipaddress.IPv4Address | None:
        """The gateway of the IPv4 default route of the main table, if there is one."""
        with self._t("dump routes"):
            for msg in self._ipr.route("dump", family=socket.AF_INET, table=_DEFAULT_ROUTE_TABLE):
                gateway = msg.get("gateway")
                if int(msg["dst_len"]) == 0 and gateway:
                    return ipaddress.IPv4Address(gateway)
        return None

    # -- writers: each reads back what it set ----------------------------------------------

    def create_bridge(self, name: str) -> Link:
        """Create bridge `name` (down, no addresses); an existing bridge of that name is fine."""
        op = f"add bridge {name}"
        with self._t(op):
            try:
                self._ipr.link("add", ifname=name, kind="bridge")
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
        found = self._require(name, op)
        if found.kind != "bridge":
            raise NetworkError(op, self.netns, errno.EEXIST, f"{name} exists and is a {found.kind}")
        return found

    def set_mac(self, name: str, mac: str) -> None:
        """Give interface `name` the MAC address `mac` (``02:..``); already so is fine."""
        op = f"set address {mac} on {name}"
        mac = mac.lower()
        link = self._require(name, op)
        if link.mac == mac:
            return
        with self._t(op):
            self._ipr.link("set", index=link.index, address=mac)
        if self._require(name, op).mac != mac:
            raise NetworkError(op, self.netns, None, "the kernel does not show the address")

    def create_veth(self, name: str, *, peer: str, peer_netns: str) -> Link:
        """Create veth pair `name` (here) <-> `peer` (created directly inside `peer_netns`).

        Both ends start down. Fails with EEXIST if `name` exists here, or `peer` in `peer_netns`.
        """
        op = f"add veth {name} peer {peer} in {peer_netns}"
        with self._t(op):
            self._ipr.link(
                "add", ifname=name, kind="veth",
                peer={"ifname": peer, "net_ns_fd": _check_name(peer_netns)},
            )
        found = self._require(name, op)
        if found.kind != "veth":
            raise NetworkError(op, self.netns, None, f"{name} was created as {found.kind}")
        return found

    def set_master(self, name: str, master: str) -> None:
        """Attach interface `name` to bridge `master`."""
        op = f"set {name} master {master}"
        bridge = self._require(master, op)
        link = self._require(name, op)
        if link.master == bridge.index:
            return
        with self._t(op):
            self._ipr.link("set", index=link.index, master=bridge.index)
        if self._require(name, op).master != bridge.index:
            raise NetworkError(op, self.netns, None, "the kernel does not show the new master")

    def set_hairpin(self, name: str, on: bool = True) -> None:
        """Set hairpin mode on bridge port `name`, so a frame may leave by the port it came in
        (a pod reaching itself through its Service's address)."""
        op = f"set hairpin {'on' if on else 'off'} on {name}"
        link = self._require(name, op)
        with self._t(op):
            self._ipr.brport("set", index=link.index, mode=_BRPORT_MODE_HAIRPIN if on else 0)
        if self.hairpin(name) != on:
            raise NetworkError(op, self.netns, None, "the kernel does not show the new mode")

    def set_alias(self, name: str, alias: str) -> None:
        """Label interface `name` with `alias` (IFLA_IFALIAS, shown by ``ip link``)."""
        op = f"set alias of {name}"
        link = self._require(name, op)
        if link.alias == alias:
            return
        with self._t(op):
            self._ipr.link("set", index=link.index, ifalias=alias)
        if self._require(name, op).alias != alias:
            raise NetworkError(op, self.netns, None, "the kernel does not show the new alias")

    def set_up(self, name: str) -> None:
        """Bring interface `name` administratively up."""
        op = f"set {name} up"
        link = self._require(name, op)
        if link.up:
            return
        with self._t(op):
            self._ipr.link("set", index=link.index, state="up")
        if not self._require(name, op).up:
            raise NetworkError(op, self.netns, None, "the kernel does not show the link up")

    def add_address(self, name: str, address: ipaddress.IPv4Interface) -> None:
        """Add `address` (with its prefix length) to interface `name`; present already is fine."""
        op = f"add address {address} to {name}"
        link = self._require(name, op)
        if address in self.addresses(name):
            return
        with self._t(op):
            try:
                self._ipr.addr(
                    "add", index=link.index, address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                )
            except NetlinkError as e:
                if e.code != errno.EEXIST:
                    raise
        if address not in self.addresses(name):
            raise NetworkError(op, self.netns, None, "the kernel does not show the address")

    def delete_address(self, name: str, address: ipaddress.IPv4Interface) -> None:
        """Remove `address` from interface `name`; absent is fine."""
        op = f"delete address {address} from {name}"
        link = self.link(name)
        if link is None or address not in self.addresses(name):
            return
        with self._t(op):
            try:
                self._ipr.addr(
                    "del", index=link.index, address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                )
            except NetlinkError as e:
                if e.code != errno.EADDRNOTAVAIL:
                    raise

    def set_default_route(self, gateway: ipaddress.IPv4Address) -> None:
        """Make `gateway` the IPv4 default route of the main table (replacing any other)."""
        op = f"set default route via {gateway}"
        if self.default_route() == gateway:
            return
        with self._t(op):
            self._ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway))
        if self.default_route() != gateway:
            raise NetworkError(op, self.netns, None, "the kernel does not show the route")

    def routes_via(self, name: str) -> list[ipaddress.IPv4Network]:
        """The destinations of the main table's IPv4 routes out of interface `name` with no
        gateway (link-scope routes)."""
        link = self._require(name, f"dump routes via {name}")
        found: list[ipaddress.IPv4Network] = []
        with self._t("dump routes"):
            for msg in self._ipr.route("dump", family=socket.AF_INET, table=_DEFAULT_ROUTE_TABLE):
                if msg.get("oif") == link.index and not msg.get("gateway") and msg.get("dst"):
                    found.append(ipaddress.IPv4Network(f"{msg.get('dst')}/{msg['dst_len']}"))
        return found

    def add_route(self, network: ipaddress.IPv4Network, name: str) -> None:
        """Route `network` out of interface `name` (link scope, no gateway); present is fine."""
        op = f"add route {network} dev {name}"
        link = self._require(name, op)
        with self._t(op):
            self._ipr.route("replace", dst=str(network), oif=link.index, scope=_SCOPE_LINK)
        if network not in self.routes_via(name):
            raise NetworkError(op, self.netns, None, "the kernel does not show the route")

    def gateway_routes(self) -> dict[ipaddress.IPv4Network, ipaddress.IPv4Address]:
        """The main table's IPv4 routes that clusterip made (`ROUTE_PROTOCOL`) via a gateway:
        destination → gateway. Routes others made are never listed, so never touched."""
        found: dict[ipaddress.IPv4Network, ipaddress.IPv4Address] = {}
        with self._t("dump routes"):
            for msg in self._ipr.route("dump", family=socket.AF_INET, table=_DEFAULT_ROUTE_TABLE,
                                       proto=ROUTE_PROTOCOL):
                if msg.get("proto") == ROUTE_PROTOCOL and msg.get("gateway") and msg.get("dst"):
                    network = ipaddress.IPv4Network(f"{msg.get('dst')}/{msg['dst_len']}")
                    found[network] = ipaddress.IPv4Address(msg.get("gateway"))
        return found

    def replace_gateway_route(self, network: ipaddress.IPv4Network,
                              gateway: ipaddress.IPv4Address) -> None:
        """Route `network` via `gateway` (marked as clusterip's), replacing any route to it."""
        op = f"route {network} via {gateway}"
        with self._t(op):
            self._ipr.route("replace", dst=str(network), gateway=str(gateway),
                            proto=ROUTE_PROTOCOL)
        if self.gateway_routes().get(network) != gateway:
            raise NetworkError(op, self.netns, None, "the kernel does not show the route")

    def delete_gateway_route(self, network: ipaddress.IPv4Network) -> bool:
        """Delete clusterip's route to `network`. False if there was none."""
        op = f"delete route {network}"
        gateway = self.gateway_routes().get(network)
        if gateway is None:
            return False
        with self._t(op):
            try:
                self._ipr.route("del", dst=str(network), gateway=str(gateway),
                                proto=ROUTE_PROTOCOL)
            except NetlinkError as e:
                if e.code == errno.ESRCH:
                    return False
                raise
        return True

    def delete_link(self, name: str) -> bool:
        """Delete interface `name` (a veth takes its peer with it). False if it did not exist."""
        op = f"delete link {name}"
        link = self.link(name)
        if link is None:
            return False
        with self._t(op):
            try:
                self._ipr.link("del", index=link.index)
            except NetlinkError as e:
                if e.code == errno.ENODEV:
                    return False
                raise
        return True
