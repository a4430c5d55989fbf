"""The DNS server shell: UDP and TCP sockets around the pure responder of `core.dnsanswer`.

Every decision about an answer is the core's (`Responder.respond`); this module only moves bytes:

    query bytes ──respond──▶ Answer   → send its wire back
                         ├─▶ Forward  → a task asks the forwarder, `finish` builds the reply
                         └─▶ None     → drop silently (unparsable, or a reply)

`responder` is a callable returning the *current* `Responder` (e.g. `DnsCache.current`): it is
called for every query, so a view swapped by the cache is used from the next query on, with no
lock (a swap is one attribute assignment).

UDP is an `asyncio.DatagramProtocol` whose `datagram_received` is the hot path: respond, sendto.
TCP is an `asyncio.Protocol` per connection with RFC 1035 §4.2.2 framing (a 2-byte length before
each message): several queries per connection, answered as they complete (forwarded ones may
overtake each other, as RFC 7766 §6.2.1.1 allows; clients match replies by ID).

Forwarded queries run as tasks of the server's own `TaskGroup`. At most `max_forwards` are in
flight at once; a query over that bound is answered SERVFAIL at once (`finish` with no upstream
reply) rather than queued: a queue would only add latency to a client that will retry anyway, and
memory to a server under a flood.

Args (of `serve_dns`):
    responder: returns the current `Responder`.
    forwarder: asks upstream servers (`forward.Forwarder`).
    udp_sockets, tcp_sockets: sockets made by the caller (the node agent makes them inside the
        node's network namespace, from a helper thread): UDP sockets bound, TCP sockets bound
        (listening or not). From the call on they belong to the server, which closes them.
    host, port: or bind these instead (UDP and TCP on the same port; port 0 picks a free one).
        `host` must be an IP literal. Bind a specific address, not a wildcard: a UDP reply from
        a wildcard socket may leave from another address than the one the client asked, and
        resolvers drop such replies.
    ready: called once, after every socket is bound and served, with the distinct (host, port)
        pairs served (UDP and TCP alike), so tests bind port 0 and read the real port here.
    limits: `Limits` (in-flight forwards, TCP connections, query size, idle timeout).
    stats: a `Stats` to count into (optional; counters only on the slow paths).

Returns:
    This function never returns unless cancelled.

Resource handling:
    Each TCP connection buffers at most one read from the kernel plus one incomplete message
    (a length over `max_query_size`, or of zero, closes the connection), and stops reading
    while its send buffer is over the transport's high-water mark (a client that sends but does
    not read cannot make us buffer its answers without bound). UDP replies are dropped while
    the kernel's send buffer is full (the transport would otherwise queue them without bound):
    the client retries, as it must over UDP. Connections over `max_tcp_connections` are closed
    as soon as they are accepted; a connection idle for `tcp_idle_timeout` seconds (with no
    forward pending) is closed. On cancellation every transport and connection is closed and
    the forward tasks are cancelled.

Error handling:
    Nothing a client sends ends the server. An exception from the responder or from `finish`
    is logged (at most once a second, with a count of the ones suppressed) and the query is
    dropped. An exception from the forwarder counts as no upstream reply (SERVFAIL). ICMP
    errors reported on the UDP socket (ECONNREFUSED from a client that went away) are ignored.
    Accept errors EMFILE, ENFILE, ENOBUFS and ENOMEM are logged by asyncio's server, which stops
    accepting for a second and then retries (`asyncio.selector_events`,
    `ACCEPT_RETRY_DELAY`); other accept errors are logged and the listener goes on. Errors
    while binding (`host`/`port`) propagate: the caller asked for an address it cannot have.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, cast

from clusterip.core.dnsanswer import Answer, Forward, Responder, finish
from clusterip.dnsserver.forward import Forwarder

__all__ = ["Limits", "Stats", "bind_sockets", "serve_dns"]

log = logging.getLogger(__name__)

Transport = Literal["udp", "tcp"]
Deliver = Callable[[bytes | None], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The server's bounds. See the module docstring."""

    max_forwards: int = 1000  # forwarded queries in flight (CoreDNS kubeadm: max_concurrent 1000)
    max_tcp_connections: int = 1000
    max_query_size: int = 4096  # bytes of one query over TCP (UDP is bounded by the datagram)
    tcp_idle_timeout: float = 10.0  # seconds
    tcp_backlog: int = 128


@dataclass(slots=True)
class Stats:
    """Counters of the slow paths (the UDP hot path counts nothing)."""

    forwards: int = 0
    forwards_refused: int = 0  # over `max_forwards`: answered SERVFAIL at once
    errors: int = 0  # exceptions from the responder or `finish`
    udp_dropped: int = 0  # replies dropped while the send buffer was full
    tcp_connections: int = 0
    tcp_refused: int = 0  # over `max_tcp_connections`
    tcp_bad_frames: int = 0  # a length of zero or over `max_query_size`


class _Shell:
    """What the protocols share: the responder, the forwarder, limits, counters, connections."""

    def __init__(
        self,
        responder: Callable[[], Responder],
        forwarder: Forwarder,
        tasks: asyncio.TaskGroup,
        limits: Limits,
        stats: Stats,
    ) -> None:
        self.current = responder
        self.forwarder = forwarder
        self.tasks = tasks
        self.limits = limits
        self.stats = stats
        self.inflight = 0
        self.connections: set[_TcpConnection] = set()
        self._error_next = 0.0
        self._error_suppressed = 0

    def error(self, what: str, peer: object) -> None:
        """Log the exception being handled, at most once a second. Call from an except block."""
        self.stats.errors += 1
        now = time.monotonic()
        if now < self._error_next:
            self._error_suppressed += 1
            return
        self._error_next = now + 1.0
        log.exception("dns %s failed peer=%s suppressed=%d", what, peer, self._error_suppressed)
        self._error_suppressed = 0

    def forward(self, fwd: Forward, transport: Transport, deliver: Deliver) -> None:
        """Ask upstream in a task; `deliver(reply)` when done (None if there is none to send)."""
        self.stats.forwards += 1
        if self.inflight >= self.limits.max_forwards:
            self.stats.forwards_refused += 1
            try:
                wire: bytes | None = finish(fwd, None, transport=transport)
            except Exception:
                self.error("finish", "-")
                wire = None
            deliver(wire)
            return
        coro = self._forward(fwd, transport, deliver)
        try:
            self.tasks.create_task(coro)
        except RuntimeError:  # the task group is shutting down: so is the server
            coro.close()
            deliver(None)
            return
        self.inflight += 1

    async def _forward(self, fwd: Forward, transport: Transport, deliver: Deliver) -> None:
        try:
            try:
                upstream = await self.forwarder.ask(fwd.query.to_wire())
            except Exception:
                self.error("forwarder", "-")
                upstream = None
            try:
                wire: bytes | None = finish(fwd, upstream, transport=transport)
            except Exception:
                self.error("finish", "-")
                wire = finish(fwd, None, transport=transport) if upstream is not None else None
        except Exception:
            self.error("forward", "-")
            wire = None
        finally:
            self.inflight -= 1
        try:
            deliver(wire)
        except Exception:
            self.error("forward delivery", "-")


class _Udp(asyncio.DatagramProtocol):
    """One UDP socket. `datagram_received` is the hot path: keep it this short."""

    def __init__(self, shell: _Shell) -> None:
        self._shell = shell
        self._current = shell.current
        self._transport: asyncio.DatagramTransport | None = None
        self._sendto: Callable[[bytes, Any], None] = _unbound_sendto
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's own datagram transport is no subclass of DatagramTransport: no isinstance)
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._sendto = self._transport.sendto

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            result = self._current().respond(data, transport="udp", client_ip=addr[0])
            if isinstance(result, Answer):
                if not self._paused:
                    self._sendto(result.wire, addr)
                else:
                    self._shell.stats.udp_dropped += 1
            elif result is not None:
                self._shell.forward(result, "udp", lambda wire: self._reply(wire, addr))
        except Exception:
            self._shell.error("udp query", addr)

    def _reply(self, wire: bytes | None, addr: Any) -> None:
        transport = self._transport
        if wire is None or transport is None or transport.is_closing():
            return
        if self._paused:
            self._shell.stats.udp_dropped += 1
            return
        transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier reply, and the like: nothing to do.
        log.debug("udp socket error error=%r", exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False


def _unbound_sendto(data: bytes, addr: Any) -> None:  # pragma: no cover - before connection_made
    raise RuntimeError("no transport yet")


class _TcpConnection(asyncio.Protocol):
    """One TCP connection: length-framed queries in, framed replies out. See the module doc."""

    def __init__(self, shell: _Shell) -> None:
        self._shell = shell
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._peer: str | None = None
        self._pending = 0  # forwards not yet answered
        self._write_paused = False
        self._eof = False
        self._closed = False
        self._last_activity = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shell = self._shell
        self._transport = cast(asyncio.Transport, transport)
        if len(shell.connections) >= shell.limits.max_tcp_connections:
            shell.stats.tcp_refused += 1
            self._closed = True
            self._transport.abort()
            return
        shell.stats.tcp_connections += 1
        shell.connections.add(self)
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        self._last_activity = self._loop.time()
        self._timer = self._loop.call_later(shell.limits.tcp_idle_timeout, self._on_idle)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._buffer += data
        self._last_activity = self._loop.time()
        self._process()

    def eof_received(self) -> bool:
        self._eof = True
        # Keep the connection open for writing while forwarded answers are still to come.
        return self._pending > 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._buffer = bytearray()
        if self._timer is not None:
            self._timer.cancel()
        self._shell.connections.discard(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._transport is not None and not self._closed:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and not self._closed:
            self._transport.resume_reading()
            self._process()

    # --- framing -------------------------------------------------------------------------------

    def _process(self) -> None:
        buffer = self._buffer
        limit = self._shell.limits.max_query_size
        while not self._write_paused and not self._closed and len(buffer) >= 2:
            size = (buffer[0] << 8) | buffer[1]
            if size == 0 or size > limit:
                self._shell.stats.tcp_bad_frames += 1
                log.debug("tcp frame refused peer=%s size=%d limit=%d", self._peer, size, limit)
                self.close()
                return
            if len(buffer) < 2 + size:
                return
            wire = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            self._query(wire)

    def _query(self, wire: bytes) -> None:
        try:
            result = self._shell.current().respond(wire, transport="tcp", client_ip=self._peer)
            if isinstance(result, Answer):
                self._send(result.wire)
            elif result is not None:
                self._pending += 1
                self._shell.forward(result, "tcp", self._forwarded)
        except Exception:
            self._shell.error("tcp query", self._peer)

    def _forwarded(self, wire: bytes | None) -> None:
        self._pending -= 1
        if wire is not None:
            self._send(wire)
        if self._eof and self._pending == 0:
            self.close()

    def _send(self, wire: bytes) -> None:
        if self._closed or self._transport is None:
            return
        self._transport.write(len(wire).to_bytes(2, "big") + wire)

    # --- lifetime ------------------------------------------------------------------------------

    def _on_idle(self) -> None:
        if self._closed:
            return
        timeout = self._shell.limits.tcp_idle_timeout
        idle = self._loop.time() - self._last_activity
        if idle < timeout or self._pending:
            self._timer = self._loop.call_later(max(timeout - idle, 0.01), self._on_idle)
            return
        log.debug("tcp connection idle, closing peer=%s", self._peer)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._transport is not None:
            self._transport.close()


def _addresses(socks: Iterable[socket.socket]) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    for sock in socks:
        name = sock.getsockname()
        address = (str(name[0]), int(name[1]))
        if address not in seen:
            seen.append(address)
    return seen


def bind_sockets(
    host: str, port: int, *, reuse_port: bool = False
) -> tuple[socket.socket, socket.socket]:
    """A bound UDP socket and a bound TCP socket on `host:port` (port 0: one free port for both).

    With port 0 the UDP socket picks the port; if TCP cannot have the same one (taken), both
    are closed and the pair is tried again (a few times).
    """
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    tries = 20 if port == 0 else 1
    for attempt in range(tries):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            for sock in (udp, tcp):
                sock.setblocking(False)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            udp.bind((host, port))
            tcp.bind((host, udp.getsockname()[1]))
        except OSError as exc:
            udp.close()
            tcp.close()
            if exc.errno == errno.EADDRINUSE and attempt + 1 < tries:
                continue
            raise
        return udp, tcp
    raise AssertionError("unreachable")  # pragma: no cover


async def serve_dns(
    responder: Callable[[], Responder],
    forwarder: Forwarder,
    *,
    udp_sockets: Sequence[socket.socket] = (),
    tcp_sockets: Sequence[socket.socket] = (),
    host: str | None = None,
    port: int = 53,
    reuse_port: bool = False,
    ready: Callable[[list[tuple[str, int]]], None] | None = None,
    limits: Limits | None = None,
    stats: Stats | None = None,
) -> NoReturn:
    """Serve DNS on UDP and TCP until cancelled. See the module docstring."""
    limits = limits or Limits()
    stats = stats if stats is not None else Stats()
    udp_list = list(udp_sockets)
    tcp_list = list(tcp_sockets)
    if host is not None:
        udp, tcp = bind_sockets(host, port, reuse_port=reuse_port)
        udp_list.append(udp)
        tcp_list.append(tcp)
    if not udp_list and not tcp_list:
        raise ValueError("serve_dns needs sockets, or a host and port to bind")
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    servers: list[asyncio.Server] = []
    async with asyncio.TaskGroup() as tasks:
        shell = _Shell(responder, forwarder, tasks, limits, stats)
        try:
            for sock in udp_list:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(shell), sock=sock
                )
                transports.append(transport)
            for sock in tcp_list:
                server = await loop.create_server(
                    lambda: _TcpConnection(shell), sock=sock, backlog=limits.tcp_backlog
                )
                servers.append(server)
            addresses = _addresses([*udp_list, *tcp_list])
            log.info("dns serving addresses=%s", ",".join(f"{h}:{p}" for h, p in addresses))
            if ready is not None:
                ready(addresses)
            await loop.create_future()  # until cancelled
        finally:
            for server in servers:
                server.close()
            for udp_transport in transports:
                udp_transport.close()
            for connection in list(shell.connections):
                connection.close()
            for sock in [*udp_list, *tcp_list]:
                sock.close()
    raise AssertionError("unreachable")  # pragma: no cover - the future never completes
