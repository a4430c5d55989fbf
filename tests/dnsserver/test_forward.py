"""The forwarder against upstreams of the test's own on loopback: replies, TC → TCP, failover,
spoofed datagrams, and resolv.conf parsing."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest

from clusterip.dnsserver.forward import (
    NoForwarder,
    UpstreamForwarder,
    upstreams_from_resolv_conf,
)

pytestmark = pytest.mark.anyio
BOTH_LOOPS = True  # asyncio, and uvloop when installed (conftest.py)


def query(name: str, rdtype: str = "A", id_: int = 4242) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=False)
    q.id = id_
    return q.to_wire()


def addresses(reply: bytes | None) -> list[str]:
    assert reply is not None
    message = dns.message.from_wire(reply)
    return sorted(rr.to_text() for rrset in message.answer for rr in rrset)


async def test_a_reply_comes_back_with_the_query_id(upstream: Any) -> None:
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)], timeout=1)
    reply = await forwarder.ask(query("www.example.com", id_=4242))
    assert reply is not None and dns.message.from_wire(reply).id == 4242
    assert addresses(reply) == ["93.184.216.34"]
    assert upstream.queries == [("udp", "www.example.com.", "A")]


async def test_the_upstream_sees_a_random_id_not_the_clients() -> None:
    seen: list[int] = []
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            seen.append(int.from_bytes(data[:2], "big"))
            self.transport.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], addr)

    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    try:
        forwarder = UpstreamForwarder([("127.0.0.1", transport.get_extra_info("sockname")[1])])
        for _ in range(8):
            reply = await forwarder.ask(query("a.example", id_=7))
            assert reply is not None and reply[:2] == (7).to_bytes(2, "big")
    finally:
        transport.close()
    assert len(set(seen)) > 1 and seen != [7] * 8


async def test_a_truncated_udp_reply_is_asked_again_over_tcp(upstream: Any) -> None:
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)], timeout=1)
    reply = await forwarder.ask(query("big.example.com"))
    assert len(addresses(reply)) == 60
    assert [t for t, _, _ in upstream.queries] == ["udp", "tcp"]
    assert forwarder.tcp_retries == 1


async def test_an_upstream_rcode_is_passed_through(upstream: Any) -> None:
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)])
    reply = await forwarder.ask(query("nosuch.example.com"))
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.NXDOMAIN


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_refusing_upstream_fails_over_at_once(upstream: Any) -> None:
    forwarder = UpstreamForwarder(
        [("127.0.0.1", _closed_port()), ("127.0.0.1", upstream.port)], timeout=2)
    start = time.monotonic()
    assert addresses(await forwarder.ask(query("www.example.com"))) == ["93.184.216.34"]
    assert time.monotonic() - start < 1.0  # the ICMP error ended the first try, not the timeout


async def test_a_silent_upstream_costs_one_timeout(upstream: Any) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        forwarder = UpstreamForwarder(
            [("127.0.0.1", silent.getsockname()[1]), ("127.0.0.1", upstream.port)], timeout=0.2)
        start = time.monotonic()
        assert addresses(await forwarder.ask(query("www.example.com"))) == ["93.184.216.34"]
        assert 0.2 <= time.monotonic() - start < 1.5
        # the next query starts at the next upstream (round robin): no timeout this time
        start = time.monotonic()
        assert addresses(await forwarder.ask(query("www.example.com"))) == ["93.184.216.34"]
        assert time.monotonic() - start < 0.2
    finally:
        silent.close()


async def test_all_upstreams_failing_gives_none() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        forwarder = UpstreamForwarder([("127.0.0.1", silent.getsockname()[1])],
                                      timeout=0.05, attempts=3)
        assert await forwarder.ask(query("www.example.com")) is None
        assert forwarder.tries == 3 and forwarder.failures == 1
    finally:
        silent.close()


async def test_stray_and_spoofed_datagrams_do_not_end_a_try() -> None:
    loop = asyncio.get_running_loop()

    class Spoofer(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            good = dns.message.make_response(dns.message.from_wire(data))
            good.answer.append(dns.rrset.from_text("a.example.", 5, "IN", "A", "192.0.2.1"))
            wrong_id = dns.message.from_wire(good.to_wire())
            wrong_id.id ^= 1
            other = dns.message.make_response(dns.message.make_query("b.example", "A"))
            other.id = good.id
            not_reply = data  # QR clear
            for wire in (b"\x00", wrong_id.to_wire(), other.to_wire(), not_reply,
                         good.to_wire()):
                self.transport.sendto(wire, addr)

    transport, _ = await loop.create_datagram_endpoint(Spoofer, local_addr=("127.0.0.1", 0))
    try:
        forwarder = UpstreamForwarder([("127.0.0.1", transport.get_extra_info("sockname")[1])])
        assert addresses(await forwarder.ask(query("A.Example"))) == ["192.0.2.1"]
    finally:
        transport.close()


@pytest.mark.parametrize("wire", [b"", b"\x00" * 11, b"\x00" * 12, query("x")[:15]],
                         ids=["empty", "short", "no-question", "cut-question"])
async def test_a_query_without_one_readable_question_is_not_forwarded(wire: bytes) -> None:
    forwarder = UpstreamForwarder([("127.0.0.1", 9)])
    assert await forwarder.ask(wire) is None
    assert forwarder.tries == 0


async def test_cancelling_a_query_propagates_and_closes_its_socket() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        forwarder = UpstreamForwarder([("127.0.0.1", silent.getsockname()[1])], timeout=5)
        task = asyncio.create_task(forwarder.ask(query("www.example.com")))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        silent.close()


async def test_no_forwarder_never_answers() -> None:
    assert await NoForwarder().ask(query("www.example.com")) is None


def test_the_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError):
        UpstreamForwarder([("127.0.0.1", 53)], attempts=0)
    with pytest.raises(ValueError):
        UpstreamForwarder([("127.0.0.1", 53)], timeout=0)
    with pytest.raises(ValueError):
        UpstreamForwarder([("not-an-ip", 53)])


RESOLV_CONF = """\
# generated by the node
search default.svc.cluster.local svc.cluster.local
nameserver 10.96.0.10
nameserver 192.0.2.53   # the site resolver
nameserver 192.0.2.53
; comment
nameserver   2001:DB8::35
nameserver not-an-address
nameserver
options ndots:5
nameserver 0:0::1
"""


@pytest.mark.parametrize(
    ("exclude", "expected"),
    [
        ((), [("10.96.0.10", 53), ("192.0.2.53", 53), ("2001:db8::35", 53), ("::1", 53)]),
        ({"10.96.0.10", "::1"}, [("192.0.2.53", 53), ("2001:db8::35", 53)]),
        ({"2001:db8:0::35"}, [("10.96.0.10", 53), ("192.0.2.53", 53), ("::1", 53)]),
    ],
    ids=["all", "without-self", "normalised"],
)
def test_upstreams_from_resolv_conf(exclude: set[str], expected: list[tuple[str, int]]) -> None:
    assert upstreams_from_resolv_conf(RESOLV_CONF, exclude=exclude) == expected


def test_upstreams_from_an_empty_resolv_conf() -> None:
    assert upstreams_from_resolv_conf("") == []
    assert upstreams_from_resolv_conf("nameserver 192.0.2.1", port=5353) == [("192.0.2.1", 5353)]

