"""The userspace proxy mode: ClusterIP services served by sockets of this process.

How it works
============

kube-proxy's old userspace mode, without its iptables redirect: every ClusterIP is added to the
node's loopback (`LocalAddresses`), so the node's kernel delivers what is sent to VIP:port to a
socket this process binds there; the proxy then opens its own connection to an endpoint and
relays. Sockets come from a `SocketFactory`, which makes them in the node's network namespace
(binding, listening and connecting happen here, in the event loop's thread)::

    Snapshot ─sync─▶ plan_listeners (core) ─diff─▶ close / bind listeners, add / remove VIPs
                └──▶ the service map, swapped whole: what the next connection or session sees

    TCP listener ─accept─▶ task: choose ▶ attempt_order (affinity, random) ▶ connect ▶ relay
    UDP listener ─recvfrom─▶ session of the client (ip, port) ─send─▶ endpoint
                 ◀─sendto── the session's connected socket ◀─recv── its replies

`sync(snapshot)` compares the listeners wanted (one per ClusterIP, port and protocol of the map
that has endpoints to go to) with the ones bound, so it also repairs a sync that failed half
way. Order: listeners not wanted are closed, VIPs are added (`add` once per IP of the map), new
listeners are bound, VIPs no port uses are removed. A port without endpoints has its VIP on the
loopback but no listener, so the node's kernel refuses its clients at once (a TCP reset, an
ICMP port unreachable for UDP): the kernel mode's REJECT, and for Local policy's DROP too (a
userspace proxy cannot make a SYN go unanswered). Other endpoint changes never touch a
listener: a connection looks its service port up in the current map when it is accepted.

Internal only: with `clients` given (the app gives the pod and service CIDRs and loopback: a
node's own connection to a VIP on its loopback comes from the VIP), every IPv4 listener carries
a classic BPF socket filter (`source_filter`) that the kernel runs on each packet, the SYN
included: a client from anywhere else gets no answer at all, as from the kernel mode's DROP in
prerouting. Behind it (and for IPv6 listeners, which have no filter), an accepted client from
elsewhere is reset and its datagrams dropped.

The choice of endpoint is the kernel mode's (`core.servicemap.choose`: ready endpoints, else
serving and terminating ones, else "reject", or "drop" for Local policy with none here), then
uniform random among the chosen, or the client's pinned endpoint under ClientIP affinity (pinned
for the port's timeout, refreshed on use; `Affinity`).

TCP: a connect that is refused or times out (`connect_timeout`) is retried on another endpoint
of the chosen set, each tried at most once; this is what kube-proxy's userspace mode could do
and its kernel modes cannot. When none connects (or the endpoints went between the accept and
the choice), the client is closed with a reset at once (its connection was already accepted:
it sees "connection reset", not a timeout); verdict "drop" met there closes it without one
(though the kernel resets a connection closed with bytes unread). A connection, once relayed
(`relay.relay`: splice, or Protocol pumps), lives until its ends close it, even if its service
or endpoint goes away (kube-proxy lets TCP flows drain too).

UDP: a session per client address, holding a socket connected to the endpoint chosen for the
client's first datagram (datagrams that arrive while it is being made wait, a few). Replies go
back from the VIP socket, so their source is VIP:port. A session ends after `udp_idle_timeout`
seconds with no datagram either way, when its endpoint's port answers with ICMP "port
unreachable", when its listener closes, or when a sync shows its endpoint no longer serving
(kube-proxy deletes such conntrack entries): the client's next datagram picks again. At most
`max_udp_sessions` sessions exist at once (new clients' datagrams are dropped beyond, as a full
conntrack table drops). "reject" cannot send an ICMP error from userspace: the datagram is
dropped.

Ownership: `run()` owns a TaskGroup with one task per TCP connection being connected or relayed
and per UDP session being opened; listeners and sessions are callbacks on the loop
(``add_reader``), not tasks. Cancelling `run()` closes every listener and session, then the
TaskGroup cancels the connection tasks, which close their sockets and pipes: when `run()` has
ended, nothing the proxier opened is open, except the VIPs on the loopback (netlink calls do not
belong in a cancellation; the node's teardown removes them). Listeners bound by `sync()` before
`run()` starts accept from the moment `run()` does.

Errors: `sync()` makes every change it can and then raises the first error (a VIP that could
not be added, a listener that could not be bound); the next sync tries again what is missing.
Nothing a client or an endpoint does ends the proxier: an unexpected error while serving one
connection or session is counted in `Stats.errors`, logged (at most once a second) and ends that
connection only. Accept errors for lack of descriptors or memory pause that listener for a
second.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import ipaddress
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, NoReturn, Protocol

from clusterip.core.proxyplan import Address, Affinity, Listen, attempt_order, plan_listeners
from clusterip.core.servicemap import (
    Choice,
    Endpoint,
    ServiceMap,
    ServicePort,
    ServicePortName,
    Snapshot,
    choose,
)
from clusterip.proxy.relay import SPLICE_AVAILABLE, relay, reset

__all__ = [
    "LocalAddresses",
    "SocketFactory",
    "Stats",
    "UserspaceProxier",
]

log = logging.getLogger(__name__)

_ACCEPT_BATCH: Final = 64  # connections accepted per wake-up of a listener
_UDP_BATCH: Final = 64  # datagrams read per wake-up of a socket
_MAX_DATAGRAM: Final = 65535
_OPENING_QUEUE: Final = 16  # datagrams kept for a session being opened
_REOPEN_ATTEMPTS: Final = 3  # choices made again when a sync drops the endpoint being opened
_ACCEPT_PAUSE: Final = 1.0  # seconds a listener stops accepting after EMFILE and the like
_ACCEPT_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS,
                                            errno.ENOMEM})
_ERROR_LOG_INTERVAL: Final = 1.0  # seconds between two logs of unexpected errors
_AF: Final = {4: socket.AF_INET, 6: socket.AF_INET6}
_NO_SERVICE: Final = Choice("reject")  # the service port went away since the listener took it



class SocketFactory(Protocol):
    """Makes sockets where the node's traffic is: the real one is
    `clusterip.runtime.nssocket.NetnsSockets` (in the node's network namespace)."""

    async def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> socket.socket:
        """A new, non-blocking, unbound socket."""
        ...


class LocalAddresses(Protocol):
    """The node's loopback addresses (the real one adds and removes them with netlink)."""

    async def add(self, ip: str) -> None:
        """Add `ip` to the loopback; the proxier adds an IP once, until it removes it."""
        ...

    async def remove(self, ip: str) -> None:
        """Remove `ip`, added before, from the loopback."""
        ...


@dataclass(slots=True)
class Stats:
    """Counters, for logs and tests."""

    accepted: int = 0  # TCP connections accepted
    relayed: int = 0  # TCP connections connected to an endpoint and relayed
    refused: int = 0  # TCP connections reset: verdict reject, or no endpoint took the connect
    dropped: int = 0  # TCP connections closed without a reset: verdict drop
    retries: int = 0  # connects tried again on another endpoint after one failed
    errors: int = 0  # unexpected errors while serving a connection or session
    udp_sessions: int = 0  # UDP sessions opened
    udp_expired: int = 0  # UDP sessions closed after udp_idle_timeout without traffic
    udp_dropped: int = 0  # datagrams dropped: no endpoint, session bound, full buffers
    outsiders: int = 0  # connections reset and datagrams dropped: not from `clients`


# --- helpers of the shell -------------------------------------------------------------------------


def _allowed(client: str, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
             ) -> bool:
    address = ipaddress.ip_address(client)
    return any(address in network for network in networks)


# --- the shell: listeners and sessions ------------------------------------------------------------


class _TcpListener:
    """A listening socket on a ClusterIP:port; from `start()` on, hands each connection it
    accepts to `accepted`."""

    def __init__(
        self,
        key: Listen,
        name: ServicePortName,
        sock: socket.socket,
        accepted: Callable[[_TcpListener, socket.socket, str], None],
    ) -> None:
        self.key = key
        self.name = name
        self.sock = sock
        self._accepted = accepted
        self._loop = asyncio.get_running_loop()
        self._started = False
        self._paused: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._started = True
        self._loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        elif self._started:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, client = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno not in _ACCEPT_RESOURCE_ERRNOS:
                    continue  # the connection is gone already (ECONNABORTED, EPROTO, ...)
                log.warning("userspace accept paused listen=%s:%d error=%s",
                            self.key.ip, self.key.port, e)
                self._loop.remove_reader(self.sock.fileno())
                self._paused = self._loop.call_later(_ACCEPT_PAUSE, self._resume)
                return
            conn.setblocking(False)
            self._accepted(self, conn, client[0])

    def _resume(self) -> None:
        self._paused = None
        self._loop.add_reader(self.sock.fileno(), self._accept)


class _UdpListener:
    """A UDP socket on a ClusterIP:port; from `start()` on, hands each datagram to
    `received`."""

    def __init__(
        self,
        key: Listen,
        name: ServicePortName,
        sock: socket.socket,
        received: Callable[[_UdpListener, bytes, Address], None],
    ) -> None:
        self.key = key
        self.name = name
        self.sock = sock
        self.closed = False
        self._received = received
        self._loop = asyncio.get_running_loop()
        self._started = False

    def start(self) -> None:
        self._started = True
        self._loop.add_reader(self.sock.fileno(), self._read)

    def close(self) -> None:
        self.closed = True
        if self._started:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _read(self) -> None:
        for _ in range(_UDP_BATCH):
            try:
                data, client = self.sock.recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                continue  # an error queued on the socket; the next datagram is fine
            self._received(self, data, client[:2])


class _UdpSession:
    """One client of a UDP listener: a socket connected to its endpoint, and its idle timer."""

    def __init__(
        self,
        proxier: UserspaceProxier,
        listener: _UdpListener,
        client: Address,
        sock: socket.socket,
        endpoint: Endpoint,
    ) -> None:
        self.proxier = proxier
        self.listener = listener
        self.client = client
        self.sock = sock
        self.endpoint = endpoint
        self.last_used = proxier.clock()
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(proxier.udp_idle_timeout, self._check_idle)
        self._loop.add_reader(sock.fileno(), self._replies)
        self._closed = False

    def send(self, data: bytes) -> None:
        """Forward a datagram from the client to the endpoint."""
        self.last_used = self.proxier.clock()
        try:
            self.sock.send(data)
        except BlockingIOError:
            self.proxier.stats.udp_dropped += 1
        except OSError:  # ICMP port unreachable from an earlier datagram: pick again next time
            self.proxier.stats.udp_dropped += 1
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        log.debug("userspace udp session %s:%d closed", self.client[0], self.client[1])
        self._closed = True
        self._timer.cancel()
        self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self.proxier._session_closed(self)

    def _replies(self) -> None:
        for _ in range(_UDP_BATCH):
            try:
                data = self.sock.recv(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:  # ICMP port unreachable: the endpoint's port is closed
                self.close()
                return
            self.last_used = self.proxier.clock()
            try:
                self.listener.sock.sendto(data, self.client)
            except OSError:
                self.proxier.stats.udp_dropped += 1

    def _check_idle(self) -> None:
        timeout = self.proxier.udp_idle_timeout
        idle = self.proxier.clock() - self.last_used
        if idle >= timeout:
            self.proxier.stats.udp_expired += 1
            self.close()
        else:
            self._timer = self._loop.call_later(timeout - idle, self._check_idle)


_Listener = _TcpListener | _UdpListener
_SessionKey = tuple[Listen, Address]


# --- internal only: a socket filter on the listeners ---------------------------------------------

_SO_ATTACH_FILTER = 26
_SKF_NET_OFF = -0x100000  # classic BPF: offsets from the network header
_BPF_LD_W_ABS, _BPF_AND_K, _BPF_JEQ_K, _BPF_RET_K = 0x20, 0x54, 0x15, 0x06


def source_filter(networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
                  ) -> list[tuple[int, int, int, int]]:
    """A classic BPF program (code, jt, jf, k) that passes IPv4 packets whose source address is
    in one of the IPv4 `networks` and drops every other. On a listener, the kernel runs it on
    the SYN itself: a client from outside gets no answer at all (the kernel mode's DROP), not
    an accepted connection that is then reset."""
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    program: list[tuple[int, int, int, int]] = []
    source = (_SKF_NET_OFF + 12) & 0xFFFFFFFF
    for i, network in enumerate(v4):
        remaining = len(v4) - i - 1  # networks after this one: 3 instructions each
        program += [(_BPF_LD_W_ABS, 0, 0, source),
                    (_BPF_AND_K, 0, 0, int(network.netmask)),
                    (_BPF_JEQ_K, 3 * remaining + 1, 0, int(network.network_address))]
    return [*program, (_BPF_RET_K, 0, 0, 0), (_BPF_RET_K, 0, 0, 0xFFFFFFFF)]


def _attach_source_filter(sock: socket.socket,
                          networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
                          ) -> None:
    program = source_filter(networks)
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER,
                    struct.pack("HL", len(program), ctypes.addressof(code)))


# --- the proxier ----------------------------------------------------------------------------------


class UserspaceProxier:
    """Serves a service map with sockets of this process. See the module docstring.

    Args:
        sockets: makes every socket (listeners and connections to endpoints).
        addresses: adds ClusterIPs to the node's loopback and removes them.
        node: this node's name (for internalTrafficPolicy: Local).
        udp_idle_timeout: seconds without a datagram after which a UDP session ends.
        connect_timeout: seconds for one connect to an endpoint.
        max_udp_sessions: UDP sessions at most, all listeners together.
        clients: the networks clients may come from (the pods, the node's own addresses); a
            TCP client from elsewhere is reset, a datagram dropped. None: any client.
        splice: relay TCP with ``os.splice`` (where it exists), else with Protocol pumps.
        rng: picks endpoints (tests seed it).
        clock: monotonic seconds, for affinity and UDP idleness.
    """

    def __init__(
        self,
        sockets: SocketFactory,
        addresses: LocalAddresses,
        *,
        node: str | None,
        udp_idle_timeout: float = 30.0,
        connect_timeout: float = 2.0,
        max_udp_sessions: int = 10_000,
        clients: Sequence[str] | None = None,
        splice: bool = SPLICE_AVAILABLE,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.udp_idle_timeout = udp_idle_timeout
        self.clock = clock
        self.stats = Stats()
        self._sockets = sockets
        self._addresses = addresses
        self._node = node
        self._connect_timeout = connect_timeout
        self._max_udp_sessions = max_udp_sessions
        self._clients = (None if clients is None
                         else [ipaddress.ip_network(c) for c in clients])
        self._splice = splice
        self._rng = rng or random.Random()
        self._ports: ServiceMap = {}
        self._listeners: dict[Listen, _Listener] = {}
        self._ips: set[str] = set()  # VIPs added to the loopback
        self._affinity = Affinity()
        self._sessions: dict[_SessionKey, _UdpSession] = {}
        self._opening: dict[_SessionKey, list[bytes]] = {}  # sessions being opened: datagrams
        self._tasks: asyncio.TaskGroup | None = None
        self._stopped = False
        self._error_logged = -_ERROR_LOG_INTERVAL

    @property
    def listening(self) -> frozenset[Listen]:
        """What is bound now."""
        return frozenset(self._listeners)

    async def sync(self, snapshot: Snapshot) -> None:
        """Serve `snapshot.ports` from now on. See the module docstring.

        Not to be called concurrently with itself.

        Raises:
            Exception: the first error of `addresses` or of binding a listener (OSError), after
                every other change was made.
            RuntimeError: `run()` has ended.
        """
        if self._stopped:
            raise RuntimeError("the userspace proxier has stopped")
        self._ports = snapshot.ports
        wanted = plan_listeners(snapshot.ports, self._node)
        for key, listener in list(self._listeners.items()):
            if wanted.get(key) != listener.name:
                self._close_listener(listener)
        self._drop_stale_sessions(snapshot)
        self._affinity.prune(snapshot.ports, self.clock())
        errors: list[Exception] = []
        ips = {ip for port in snapshot.ports.values() for ip in port.cluster_ips}
        for ip in sorted(ips - self._ips):
            try:
                await self._addresses.add(ip)
            except Exception as e:
                log.warning("userspace add address ip=%s error=%s", ip, e)
                errors.append(e)
            else:
                self._ips.add(ip)
        for key in sorted(wanted.keys() - self._listeners.keys()):
            if key.ip in self._ips:
                try:
                    await self._listen(key, wanted[key])
                except OSError as e:
                    log.warning("userspace listen %s:%d/%s error=%s",
                                key.ip, key.port, key.protocol, e)
                    errors.append(e)
        for ip in sorted(self._ips - ips):
            try:
                await self._addresses.remove(ip)
            except Exception as e:
                log.warning("userspace remove address ip=%s error=%s", ip, e)
                errors.append(e)
            else:
                self._ips.discard(ip)
        log.info("userspace sync ports=%d changed=%d listeners=%d vips=%d errors=%d",
                 len(snapshot.ports), len(snapshot.changed), len(self._listeners),
                 len(self._ips), len(errors))
        if errors:
            raise errors[0]

    async def run(self) -> NoReturn:
        """Serve until cancelled; then close everything opened (see the module docstring)."""
        if self._tasks is not None or self._stopped:
            raise RuntimeError("UserspaceProxier.run() runs once")
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            try:
                for listener in self._listeners.values():
                    listener.start()
                await asyncio.get_running_loop().create_future()  # until cancelled
            finally:
                self._stopped = True
                for listener in list(self._listeners.values()):
                    self._close_listener(listener)
        raise AssertionError("unreachable")  # pragma: no cover - the future never completes

    # -- listeners --------------------------------------------------------------------------------

    async def _listen(self, key: Listen, name: ServicePortName) -> None:
        tcp = key.protocol == "TCP"
        sock = await self._sockets.socket(_AF[key.family],
                                          socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        try:
            if self._stopped:
                raise RuntimeError("the userspace proxier has stopped")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._clients is not None and key.family == 4:
                _attach_source_filter(sock, self._clients)
            sock.bind((key.ip, key.port))
            if tcp:
                sock.listen(socket.SOMAXCONN)
        except BaseException:
            sock.close()
            raise
        listener: _Listener = (_TcpListener(key, name, sock, self._accepted) if tcp
                               else _UdpListener(key, name, sock, self._received))
        self._listeners[key] = listener
        log.debug("userspace listen %s:%d/%s service=%s", key.ip, key.port, key.protocol, name)
        if self._tasks is not None:
            listener.start()

    def _close_listener(self, listener: _Listener) -> None:
        del self._listeners[listener.key]
        listener.close()
        if isinstance(listener, _UdpListener):
            for session in [s for s in self._sessions.values() if s.listener is listener]:
                session.close()
        key = listener.key
        log.debug("userspace close %s:%d/%s", key.ip, key.port, key.protocol)

    # -- TCP --------------------------------------------------------------------------------------

    def _accepted(self, listener: _TcpListener, conn: socket.socket, client: str) -> None:
        assert self._tasks is not None
        self.stats.accepted += 1
        if self._clients is not None and not _allowed(client, self._clients):
            self.stats.outsiders += 1
            reset(conn)
            return
        self._tasks.create_task(self._serve_tcp(conn, client, listener.name, listener.key))

    async def _serve_tcp(
        self, conn: socket.socket, client: str, name: ServicePortName, key: Listen
    ) -> None:
        relaying = False
        try:
            port = self._ports.get(name)
            choice = choose(port, self._node, key.family) if port is not None else _NO_SERVICE
            upstream = await self._connect(port, choice, client)
            if upstream is None:
                if choice.verdict == "drop":
                    self.stats.dropped += 1
                    conn.close()
                else:
                    self.stats.refused += 1
                    reset(conn)
                return
            self.stats.relayed += 1
            relaying = True
            await relay(conn, upstream, splice=self._splice)
        except Exception as e:
            self._error("tcp", name, e)
        finally:
            if not relaying and conn.fileno() != -1:
                reset(conn)  # failed or cancelled before the relay took it

    async def _connect(
        self, port: ServicePort | None, choice: Choice, client: str
    ) -> socket.socket | None:
        """A socket connected to an endpoint of `choice`, or None: none connects."""
        if port is None or not choice.endpoints:
            return None
        affinity = port.affinity_timeout
        pinned = self._affinity.get(port.name, client, self.clock()) if affinity else None
        for attempt, endpoint in enumerate(attempt_order(choice.endpoints, pinned, self._rng)):
            if attempt:
                self.stats.retries += 1
            sock = await self._try_connect(endpoint)
            if sock is not None:
                if affinity:
                    self._affinity.pin(port.name, client, (endpoint.ip, endpoint.port),
                                       self.clock(), affinity)
                return sock
        return None

    async def _try_connect(self, endpoint: Endpoint) -> socket.socket | None:
        sock = await self._sockets.socket(_AF[endpoint.family], socket.SOCK_STREAM)
        try:
            async with asyncio.timeout(self._connect_timeout):
                await asyncio.get_running_loop().sock_connect(sock, (endpoint.ip, endpoint.port))
        except OSError as e:  # refused, unreachable, or TimeoutError
            sock.close()
            log.debug("userspace connect endpoint=%s:%d error=%r", endpoint.ip, endpoint.port, e)
            return None
        except BaseException:
            sock.close()
            raise
        return sock

    # -- UDP --------------------------------------------------------------------------------------

    def _received(self, listener: _UdpListener, data: bytes, client: Address) -> None:
        if self._clients is not None and not _allowed(client[0], self._clients):
            self.stats.outsiders += 1
            return
        key = (listener.key, client)
        session = self._sessions.get(key)
        if session is not None:
            session.send(data)
            return
        waiting = self._opening.get(key)
        if waiting is not None:
            if len(waiting) < _OPENING_QUEUE:
                waiting.append(data)
            else:
                self.stats.udp_dropped += 1
            return
        if len(self._sessions) + len(self._opening) >= self._max_udp_sessions:
            self.stats.udp_dropped += 1
            return
        assert self._tasks is not None
        self._opening[key] = [data]
        self._tasks.create_task(self._open_session(listener, client))

    async def _open_session(self, listener: _UdpListener, client: Address) -> None:
        key = (listener.key, client)
        try:
            opened = await self._udp_upstream(listener, client[0])
            # A sync while the socket was made may have dropped the endpoint chosen before it
            # (`_drop_stale_sessions` cannot see a session not yet made): choose again.
            for _ in range(_REOPEN_ATTEMPTS):
                if opened is None or self._serves(listener.name, opened[1]):
                    break
                opened[0].close()
                opened = await self._udp_upstream(listener, client[0])
        except BaseException as e:
            self.stats.udp_dropped += len(self._opening.pop(key, ()))
            if not isinstance(e, Exception):
                raise
            self._error("udp open", listener.name, e)
            return
        waiting = self._opening.pop(key, [])
        if opened is None or listener.closed:
            if opened is not None:
                opened[0].close()
            self.stats.udp_dropped += len(waiting)
            return
        self.stats.udp_sessions += 1
        session = _UdpSession(self, listener, client, *opened)
        log.debug("userspace udp session %s:%d -> %s:%d", client[0], client[1],
                  session.endpoint.ip, session.endpoint.port)
        self._sessions[key] = session
        for data in waiting:
            session.send(data)

    async def _udp_upstream(
        self, listener: _UdpListener, client: str
    ) -> tuple[socket.socket, Endpoint] | None:
        """A UDP socket connected to the endpoint for `client`, or None: no endpoint."""
        port = self._ports.get(listener.name)
        if port is None:
            return None
        choice = choose(port, self._node, listener.key.family)
        if not choice.endpoints:
            return None
        affinity = port.affinity_timeout
        pinned = self._affinity.get(port.name, client, self.clock()) if affinity else None
        endpoint = next(attempt_order(choice.endpoints, pinned, self._rng))
        sock = await self._sockets.socket(_AF[endpoint.family], socket.SOCK_DGRAM)
        try:
            sock.connect((endpoint.ip, endpoint.port))  # UDP: only sets the peer, never blocks
        except BaseException:
            sock.close()
            raise
        if affinity:
            self._affinity.pin(port.name, client, (endpoint.ip, endpoint.port), self.clock(),
                               affinity)
        return sock, endpoint

    def _serves(self, name: ServicePortName, endpoint: Endpoint) -> bool:
        """Whether `endpoint` still serves port `name` in the map of the last sync."""
        port = self._ports.get(name)
        return port is not None and any(
            e.serving and (e.ip, e.port) == (endpoint.ip, endpoint.port) for e in port.endpoints)

    def _session_closed(self, session: _UdpSession) -> None:
        """A session closed itself (`_UdpSession.close`)."""
        key = (session.listener.key, session.client)
        if self._sessions.get(key) is session:
            del self._sessions[key]

    def _drop_stale_sessions(self, snapshot: Snapshot) -> None:
        serving: dict[ServicePortName, set[Address]] = {}
        for name in snapshot.changed:
            port = snapshot.ports.get(name)
            if name.protocol == "UDP":
                serving[name] = ({(e.ip, e.port) for e in port.endpoints if e.serving}
                                 if port is not None else set())
        if not serving:
            return
        for session in list(self._sessions.values()):
            alive = serving.get(session.listener.name)
            if alive is not None and (session.endpoint.ip, session.endpoint.port) not in alive:
                session.close()

    # -- errors -----------------------------------------------------------------------------------

    def _error(self, what: str, name: ServicePortName, error: Exception) -> None:
        self.stats.errors += 1
        now = self.clock()
        if now - self._error_logged >= _ERROR_LOG_INTERVAL:
            self._error_logged = now
            log.warning("userspace %s failed service=%s error=%r (errors so far: %d)",
                        what, name, error, self.stats.errors)
