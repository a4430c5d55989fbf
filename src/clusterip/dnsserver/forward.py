"""Forwarding: asking upstream servers for names outside the cluster zone.

The server shell hands a query's wire bytes to a `Forwarder` and gets back the upstream's reply
bytes, or None when no upstream gave a usable one (the shell then answers SERVFAIL). The
`Forwarder` protocol is the seam: the server takes any object with `ask`, so tests inject fakes,
and `UpstreamForwarder` is the real one.

How `UpstreamForwarder.ask` works:

1. The query's ID is replaced by a fresh random one (the client's ID is predictable to no one
   but the client; a random ID per upstream query is the first defence against spoofed replies)
   and put back into the reply before it is returned, so the caller sees its own ID.
2. Up to `attempts` tries, each to the next upstream in turn. The starting upstream rotates
   from one query to the next (round robin), so several upstreams share the load and a dead one
   costs at most one try per query.
3. A try sends the query over UDP from a fresh socket (a random source port per query, the
   second defence), connected to the upstream (so only its datagrams, and its ICMP errors,
   arrive), and waits at most `timeout` seconds for a datagram that is a reply to *this* query:
   QR set, the same ID, the same question (case-insensitively). Anything else is ignored, as a
   resolver must (a stray or spoofed datagram does not end the try).
4. A reply with TC set is asked again over TCP of the same upstream, within a fresh `timeout`;
   if TCP fails, the truncated UDP reply is returned (the client sees TC and can come back over
   TCP itself).
5. Any reply that passed the checks is returned as it is, whatever its rcode: an upstream's
   NXDOMAIN or SERVFAIL is its answer. A timeout, an ICMP error (connection refused) or a
   socket error moves on to the next try; after the last one, `ask` returns None. `ask` never
   raises (but cancellation propagates).

The worst case for one query is `attempts * timeout` seconds (4 s by default: below glibc's
5 s per-try timeout, so a client does not give up on us while we still wait upstream).

`upstreams_from_resolv_conf` reads the nameservers of a resolv.conf, skipping the server's own
addresses (forwarding to ourselves would be a loop: CoreDNS's `loop` plugin exists for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import socket
import struct
from collections.abc import Collection, Sequence
from typing import Protocol

__all__ = [
    "Forwarder",
    "NoForwarder",
    "UpstreamForwarder",
    "upstreams_from_resolv_conf",
]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!HHHHHH")
_QR = 0x8000
_TC = 0x0200
_MAX_MESSAGE = 65535


class Forwarder(Protocol):
    """What the server needs from a forwarder: the upstream's reply to a query, or None."""

    async def ask(self, query_wire: bytes) -> bytes | None:
        """The reply (with the query's own ID) to `query_wire`, or None if none came. Never
        raises but for cancellation."""
        ...


class NoForwarder:
    """A forwarder with no upstreams: every forwarded query fails (the server says SERVFAIL)."""

    async def ask(self, query_wire: bytes) -> bytes | None:
        return None


class UpstreamForwarder:
    """Asks upstream DNS servers over UDP, and over TCP when a UDP reply is truncated.

    See the module docstring for the algorithm.

    Args:
        upstreams: (address, port) pairs; addresses are IPv4 or IPv6 literals.
        timeout: seconds to wait for one try (one upstream, one transport).
        attempts: tries per query, each to the next upstream in turn.
    """

    def __init__(
        self, upstreams: Sequence[tuple[str, int]], *, timeout: float = 2.0, attempts: int = 2
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1 (got {attempts})")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive (got {timeout})")
        self.upstreams: tuple[tuple[str, int], ...] = tuple(
            (str(ipaddress.ip_address(host)), port) for host, port in upstreams
        )
        self.timeout = timeout
        self.attempts = attempts
        self._next = 0
        # Counters, for logs and tests.
        self.tries = 0
        self.failures = 0
        self.tcp_retries = 0

    async def ask(self, query_wire: bytes) -> bytes | None:
        question = _question(query_wire)
        if question is None or not self.upstreams:
            return None
        client_id = query_wire[:2]
        our_id = secrets.randbits(16).to_bytes(2, "big")
        wire = our_id + query_wire[2:]
        start = self._next
        self._next = (start + 1) % len(self.upstreams)
        for attempt in range(self.attempts):
            upstream = self.upstreams[(start + attempt) % len(self.upstreams)]
            self.tries += 1
            reply = await self._try(wire, question, upstream)
            if reply is not None:
                return client_id + reply[2:]
        self.failures += 1
        return None

    async def _try(
        self, wire: bytes, question: bytes, upstream: tuple[str, int]
    ) -> bytes | None:
        try:
            reply = await _ask_udp(wire, question, upstream, self.timeout)
        except (OSError, TimeoutError) as exc:
            log.debug("upstream try failed upstream=%s:%d transport=udp error=%r",
                      upstream[0], upstream[1], exc)
            return None
        if not _HEADER.unpack_from(reply)[1] & _TC:
            return reply
        self.tcp_retries += 1
        try:
            return await _ask_tcp(wire, question, upstream, self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("upstream try failed upstream=%s:%d transport=tcp error=%r",
                      upstream[0], upstream[1], exc)
            return reply


def _question(wire: bytes) -> bytes | None:
    """The question section of a one-question query (name, type, class), or None."""
    if len(wire) < 12 or _HEADER.unpack_from(wire)[2] != 1:
        return None
    pos = 12
    while True:
        if pos >= len(wire):
            return None
        length = wire[pos]
        if length == 0:
            break
        if length & 0xC0:  # a compression pointer has no place in a query's question
            return None
        pos += 1 + length
    end = pos + 1 + 4
    if end > len(wire):
        return None
    return wire[12:end].lower()


def _is_reply(data: bytes, wire: bytes, question: bytes) -> bool:
    """Whether `data` is a reply to the query `wire`: QR set, same ID, same question."""
    return (
        len(data) >= 12 + len(question)
        and data[:2] == wire[:2]
        and bool(data[2] & 0x80)
        and _HEADER.unpack_from(data)[2] == 1
        and data[12:12 + len(question)].lower() == question
    )


class _OneReply(asyncio.DatagramProtocol):
    def __init__(self, wire: bytes, question: bytes, reply: asyncio.Future[bytes]) -> None:
        self._wire = wire
        self._question = question
        self._reply = reply

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self._reply.done() and _is_reply(data, self._wire, self._question):
            self._reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self._reply.done():
            self._reply.set_exception(exc)


async def _ask_udp(
    wire: bytes, question: bytes, upstream: tuple[str, int], timeout: float
) -> bytes:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in upstream[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(upstream)
    except OSError:
        sock.close()
        raise
    reply: asyncio.Future[bytes] = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _OneReply(wire, question, reply), sock=sock
    )
    try:
        transport.sendto(wire)
        async with asyncio.timeout(timeout):
            return await reply
    finally:
        transport.close()
        if not reply.done():
            reply.cancel()


async def _ask_tcp(
    wire: bytes, question: bytes, upstream: tuple[str, int], timeout: float
) -> bytes:
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(upstream[0], upstream[1])
        try:
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                if _is_reply(data, wire, question):
                    return data
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def upstreams_from_resolv_conf(
    text: str, *, exclude: Collection[str] = (), port: int = 53
) -> list[tuple[str, int]]:
    """The `nameserver` addresses of a resolv.conf, in order, without duplicates.

    Args:
        text: the file's contents.
        exclude: addresses of the server itself (never forward to ourselves: a loop).
        port: the port of every upstream (resolv.conf has no port).

    Returns:
        (address, port) pairs. Lines that are not `nameserver <IP literal>` are ignored, and so
        are comments (`#` or `;` to the end of the line).
    """
    skip = {_normal(a) for a in exclude}
    found: list[tuple[str, int]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].split()
        if len(line) < 2 or line[0] != "nameserver":
            continue
        address = _normal(line[1])
        if address is None or address in skip or (address, port) in found:
            continue
        found.append((address, port))
    return found


def _normal(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
