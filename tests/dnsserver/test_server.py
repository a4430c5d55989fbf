"""The server shell: binding and readiness, bad input, TCP framing and limits, the bound on
forwards in flight, and errors from the responder or the forwarder. Loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest

from clusterip.core.dnsanswer import Responder, build_view
from clusterip.dnsserver.forward import NoForwarder, UpstreamForwarder
from clusterip.dnsserver.server import Limits, Stats, bind_sockets, serve_dns

pytestmark = pytest.mark.anyio
BOTH_LOOPS = True  # asyncio, and uvloop when installed (conftest.py)

Serve = Callable[..., contextlib.AbstractAsyncContextManager[int]]
SVC1 = "svc1.testns.svc.cluster.local"


@pytest.fixture
def responder(cluster: Any) -> Responder:
    services, slices, pods = cluster.checklist_cluster()
    return Responder(build_view(services, slices, pods, zone=cluster.ZONE, dns_ips=cluster.DNS_IPS))


def query(name: str, rdtype: str = "A", *, id_: int = 1, edns: bool = False) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    q.id = id_
    return q.to_wire()


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)

    async def ask(self, wire: bytes, timeout: float = 2.0) -> bytes | None:
        self.transport.sendto(wire)
        return await self.reply(timeout)

    async def reply(self, timeout: float = 2.0) -> bytes | None:
        try:
            return await asyncio.wait_for(self.replies.get(), timeout)
        except TimeoutError:
            return None


@contextlib.asynccontextmanager
async def udp_client(port: int) -> AsyncIterator[UdpClient]:
    transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpClient, remote_addr=("127.0.0.1", port))
    try:
        yield client
    finally:
        transport.close()


def answers(wire: bytes | None) -> tuple[str, list[str]]:
    assert wire is not None, "no reply"
    message = dns.message.from_wire(wire)
    return (dns.rcode.to_text(message.rcode()),
            sorted(rr.to_text() for rrset in message.answer for rr in rrset))


async def tcp_read(reader: asyncio.StreamReader, timeout: float = 2.0) -> bytes:
    async with asyncio.timeout(timeout):
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)


def framed(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


# --- binding -------------------------------------------------------------------------------------


async def test_ready_reports_the_port_bound_for_udp_and_tcp(
    serve: Serve, responder: Responder
) -> None:
    async with serve(lambda: responder, NoForwarder()) as port:
        assert port > 0
        async with udp_client(port) as client:
            assert answers(await client.ask(query(SVC1))) == ("NOERROR", ["10.0.0.1"])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framed(query(SVC1, id_=9)))
        assert answers(await tcp_read(reader)) == ("NOERROR", ["10.0.0.1"])
        writer.close()
    # cancelled: the port is free again
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


async def test_sockets_made_by_the_caller_are_served_and_closed(
    responder: Responder,
) -> None:
    udp, tcp = bind_sockets("127.0.0.1", 0)
    seen: list[list[tuple[str, int]]] = []
    task = asyncio.create_task(serve_dns(
        lambda: responder, NoForwarder(), udp_sockets=[udp], tcp_sockets=[tcp],
        ready=seen.append))
    try:
        while not seen:
            await asyncio.sleep(0.001)
        port = udp.getsockname()[1]
        assert seen == [[("127.0.0.1", port)]]
        async with udp_client(port) as client:
            assert answers(await client.ask(query(SVC1))) == ("NOERROR", ["10.0.0.1"])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert udp.fileno() == -1 and tcp.fileno() == -1


async def test_ipv6_loopback(responder: Responder) -> None:
    try:
        udp, tcp = bind_sockets("::1", 0)
    except OSError as exc:  # pragma: no cover - a host without IPv6 loopback
        pytest.fail(f"no IPv6 loopback here: {exc}")
    seen: list[list[tuple[str, int]]] = []
    task = asyncio.create_task(serve_dns(
        lambda: responder, NoForwarder(), udp_sockets=[udp], tcp_sockets=[tcp],
        ready=seen.append))
    try:
        while not seen:
            await asyncio.sleep(0.001)
        port = seen[0][0][1]
        transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
            UdpClient, remote_addr=("::1", port))
        try:
            assert answers(await client.ask(query(SVC1))) == ("NOERROR", ["10.0.0.1"])
        finally:
            transport.close()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_nothing_to_serve_is_an_error(responder: Responder) -> None:
    with pytest.raises(ValueError):
        await serve_dns(lambda: responder, NoForwarder())


# --- bad input -----------------------------------------------------------------------------------


async def test_unreadable_packets_are_dropped_and_a_header_gets_formerr(
    serve: Serve, responder: Responder
) -> None:
    async with serve(lambda: responder, NoForwarder()) as port, udp_client(port) as client:
        for garbage in (b"", b"\x00", b"\x12\x34\x01", b"\xff" * 11):
            assert await client.ask(garbage, timeout=0.2) is None, garbage
        # a header with a question that is not there: FORMERR, with the query's ID
        header = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0)
        reply = await client.ask(header + b"\x03abc", timeout=1)
        assert reply is not None and reply[:2] == b"\xbe\xef"
        assert reply[3] & 0x0F == dns.rcode.FORMERR and reply[2] & 0x80
        # and the server still answers
        assert answers(await client.ask(query(SVC1))) == ("NOERROR", ["10.0.0.1"])


async def test_a_responder_that_raises_drops_the_query_and_the_server_goes_on(
    serve: Serve, responder: Responder, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def respond(self, wire: bytes, **kwargs: Any) -> Any:
            raise RuntimeError("a bug in the core")

    current: list[Any] = [Broken()]
    stats = Stats()
    async with (
        serve(lambda: current[0], NoForwarder(), stats=stats) as port,
        udp_client(port) as client,
    ):
        for _ in range(20):
            assert await client.ask(query(SVC1), timeout=0.02) is None
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framed(query(SVC1)))
        await writer.drain()
        while stats.errors < 21:
            await asyncio.sleep(0.001)
        current[0] = responder  # the next query uses the new responder
        assert answers(await client.ask(query(SVC1))) == ("NOERROR", ["10.0.0.1"])
        writer.write(framed(query(SVC1)))
        assert answers(await tcp_read(reader)) == ("NOERROR", ["10.0.0.1"])
        writer.close()
    assert stats.errors == 21
    logged = [r for r in caplog.records if "failed" in r.getMessage()]
    assert 1 <= len(logged) <= 3  # at most one a second, with a count of the rest


# --- TCP -----------------------------------------------------------------------------------------


async def test_tcp_several_queries_on_one_connection_in_one_write(
    serve: Serve, responder: Responder
) -> None:
    async with serve(lambda: responder, NoForwarder()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framed(query(SVC1, id_=1)) + framed(query(SVC1, "AAAA", id_=2))
                     + framed(query("kubernetes.default.svc.cluster.local", id_=3)))
        replies = {dns.message.from_wire(await tcp_read(reader)).id for _ in range(3)}
        assert replies == {1, 2, 3}
        # and byte by byte
        for byte in framed(query(SVC1, id_=4)):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0)
        assert answers(await tcp_read(reader)) == ("NOERROR", ["10.0.0.1"])
        writer.close()


@pytest.mark.parametrize(
    "data",
    [b"\x00", b"\x00\x40" + b"x" * 10, b"\x00\x00", b"\xff\xff" + b"x" * 100],
    ids=["half-a-length", "cut-message", "zero-length", "oversized-length"],
)
async def test_tcp_bad_frames_end_the_connection_not_the_server(
    serve: Serve, responder: Responder, data: bytes
) -> None:
    stats = Stats()
    async with serve(lambda: responder, NoForwarder(), stats=stats) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        if data[:2] in (b"\x00\x00", b"\xff\xff"):
            # refused at once: the server closes, without reading a 64 KiB message
            async with asyncio.timeout(2):
                assert await reader.read() == b""
            assert stats.tcp_bad_frames == 1
        else:
            writer.write_eof()  # the client gives up halfway
            async with asyncio.timeout(2):
                assert await reader.read() == b""
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framed(query(SVC1)))
        assert answers(await tcp_read(reader)) == ("NOERROR", ["10.0.0.1"])
        writer.close()


async def test_tcp_idle_connections_are_closed(serve: Serve, responder: Responder) -> None:
    limits = Limits(tcp_idle_timeout=0.2)
    async with serve(lambda: responder, NoForwarder(), limits=limits) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.monotonic()
        for _ in range(3):  # activity keeps it open
            writer.write(framed(query(SVC1)))
            await tcp_read(reader)
            await asyncio.sleep(0.1)
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        assert time.monotonic() - start >= 0.35  # the last query was at 0.2 s
        writer.close()


async def test_tcp_connections_over_the_cap_are_closed(serve: Serve, responder: Responder) -> None:
    stats = Stats()
    limits = Limits(max_tcp_connections=2)
    async with serve(lambda: responder, NoForwarder(), limits=limits, stats=stats) as port:
        kept = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        for reader, writer in kept:  # both are served (and so, accepted)
            writer.write(framed(query(SVC1)))
            await tcp_read(reader)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        async with asyncio.timeout(2):
            with contextlib.suppress(ConnectionResetError):
                assert await reader.read() == b""
        assert stats.tcp_refused == 1
        writer.close()
        kept[0][1].close()
        await asyncio.sleep(0.05)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framed(query(SVC1)))
        assert answers(await tcp_read(reader)) == ("NOERROR", ["10.0.0.1"])
        for _, w in [*kept[1:], (reader, writer)]:
            w.close()


async def test_a_tcp_client_that_does_not_read_stops_the_server_reading(
    serve: Serve, responder: Responder
) -> None:
    """Backpressure: the server buffers answers to a client that never reads only up to the
    transport's high-water mark, then stops reading that client (whose sends then stall), while
    it goes on serving everyone else."""
    async with serve(lambda: responder, NoForwarder()) as port:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        chunk = framed(query(SVC1)) * 1000
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while True:
                await loop.sock_sendall(sock, chunk)
                sent += len(chunk)

        task = asyncio.create_task(flood())
        try:
            last = -1
            while sent != last:  # until the sends stall
                last = sent
                await asyncio.sleep(0.5)
            assert not task.done() and sent < 200_000_000
            async with udp_client(port) as client:
                assert answers(await client.ask(query(SVC1))) == ("NOERROR", ["10.0.0.1"])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            sock.close()


# --- forwarding ----------------------------------------------------------------------------------


class BlockedForwarder:
    """Holds every query until `release`; answers SERVFAIL-free with a canned empty reply."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.asked = 0

    async def ask(self, wire: bytes) -> bytes | None:
        self.asked += 1
        await self.released.wait()
        reply = dns.message.make_response(dns.message.from_wire(wire))
        reply.answer.append(dns.rrset.from_text(reply.question[0].name, 60, "IN", "A", "192.0.2.7"))
        return reply.to_wire()


async def test_forwards_over_the_bound_get_servfail_at_once(
    serve: Serve, responder: Responder
) -> None:
    forwarder = BlockedForwarder()
    stats = Stats()
    limits = Limits(max_forwards=3)
    async with (
        serve(lambda: responder, forwarder, limits=limits, stats=stats) as port,
        udp_client(port) as client,
    ):
        for i in range(5):
            client.transport.sendto(query("www.example.com", id_=100 + i))
        early = [await client.reply(1) for _ in range(2)]
        assert all(answers(r)[0] == "SERVFAIL" for r in early)
        assert {dns.message.from_wire(r).id for r in early if r} == {103, 104}
        assert stats.forwards_refused == 2 and forwarder.asked == 3
        forwarder.released.set()
        late = [await client.reply(1) for _ in range(3)]
        assert all(answers(r) == ("NOERROR", ["192.0.2.7"]) for r in late)
        # the slots are free again
        assert answers(await client.ask(query("www.example.com"))) == ("NOERROR", ["192.0.2.7"])


async def test_a_forwarder_that_raises_gives_servfail(serve: Serve, responder: Responder) -> None:
    class Raising:
        async def ask(self, wire: bytes) -> bytes | None:
            raise OSError("no route")

    async with serve(lambda: responder, Raising()) as port, udp_client(port) as client:
        assert answers(await client.ask(query("www.example.com")))[0] == "SERVFAIL"


async def test_forwarded_tcp_answers_arrive_after_a_half_close(
    serve: Serve, responder: Responder, upstream: Any
) -> None:
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)], timeout=1)
    async with serve(lambda: responder, forwarder) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(framed(query("www.example.com", id_=1)) + framed(query(SVC1, id_=2)))
        writer.write_eof()
        got = {}
        for _ in range(2):
            message = dns.message.from_wire(await tcp_read(reader))
            got[message.id] = answers(message.to_wire())
        assert got == {1: ("NOERROR", ["93.184.216.34"]), 2: ("NOERROR", ["10.0.0.1"])}
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        writer.close()


async def test_cancelling_the_server_cancels_forwards_in_flight(
    serve: Serve, responder: Responder
) -> None:
    forwarder = BlockedForwarder()
    async with serve(lambda: responder, forwarder) as port, udp_client(port) as client:
        client.transport.sendto(query("www.example.com"))
        while not forwarder.asked:
            await asyncio.sleep(0.001)
    # leaving `serve` cancelled the server; its forward task was cancelled with it
    assert not forwarder.released.is_set()
