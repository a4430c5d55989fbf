"""The userspace proxy mode, end to end on loopback (conventions in conftest.py): listeners
follow services, endpoints are chosen like the kernel mode's (plus retry), TCP relays keep the
bytes and the half-closes, UDP sessions re-pick, and stopping closes everything. The pure
helpers (`plan_listeners`, `attempt_order`, `Affinity`) first."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import os
import random
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from clusterip.core.proxyplan import Affinity, Listen, attempt_order, plan_listeners
from clusterip.core.servicemap import Endpoint, ServicePort, ServicePortName

pytestmark = pytest.mark.anyio
BOTH_LOOPS = True  # asyncio, and uvloop when installed (conftest.py)

RELAYS = [pytest.param(True, id="splice"), pytest.param(False, id="pump")]


# --- builders and clients -------------------------------------------------------------------


def free_port(ip: str, type: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, type) as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


SOMEWHERE = (Endpoint("127.0.2.250", 80),)  # an endpoint nothing listens on


def service(
    name: str,
    vip: str,
    endpoints: tuple[Endpoint, ...] | list[Endpoint] = SOMEWHERE,
    *,
    port: int | None = None,
    protocol: str = "TCP",
    affinity: int | None = None,
    local_only: bool = False,
) -> ServicePort:
    """A service port `default/<name>:http/<protocol>` on `vip` (a free port unless given), with
    `endpoints` (by default one that nothing listens on: enough for the proxy to listen)."""
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    return ServicePort(
        ServicePortName("default", name, "http", protocol), (vip,),
        port if port is not None else free_port(vip, kind), protocol, affinity, local_only,
        tuple(sorted(endpoints)))


async def request(sp: ServicePort, line: bytes = b"GET /\n", *, source: str | None = None,
                  timeout: float = 5.0) -> bytes:
    """One connection: send `line`, read to the end."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            sp.cluster_ips[0], sp.port, local_addr=(source, 0) if source else None)
        try:
            writer.write(line)
            return await reader.read()
        finally:
            writer.close()


async def names(sp: ServicePort, count: int, **kwargs: Any) -> collections.Counter[str]:
    """Which backends answered `count` sequential requests."""
    answers: collections.Counter[str] = collections.Counter()
    for _ in range(count):
        answers[(await request(sp, **kwargs)).decode().strip()] += 1
    return answers


@contextlib.asynccontextmanager
async def backends(make: Callable[..., Any], *ips: str, **kwargs: Any) -> AsyncIterator[list[Any]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(make(ip, **kwargs)) for ip in ips]


def refusing(ip: str) -> Endpoint:
    """An endpoint whose port has no listener: connects to it are refused."""
    return Endpoint(ip, free_port(ip))


@contextlib.contextmanager
def unanswered(ip: str) -> Iterator[Endpoint]:
    """An endpoint whose connects time out: a listener with a full accept queue drops SYNs."""
    listener = socket.socket()
    listener.bind((ip, 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    try:
        while True:
            filler = socket.socket()
            fillers.append(filler)
            filler.settimeout(0.2)
            try:
                filler.connect(listener.getsockname())
            except TimeoutError:
                break
            assert len(fillers) < 8, "the accept queue never filled"
        yield Endpoint(ip, listener.getsockname()[1])
    finally:
        for s in fillers:
            s.close()
        listener.close()


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.replies: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.replies.put_nowait(data)

    async def ask(self, data: bytes, timeout: float = 2.0) -> bytes:
        self.transport.sendto(data)
        async with asyncio.timeout(timeout):
            return await self.replies.get()


@contextlib.asynccontextmanager
async def udp_client(sp: ServicePort, *, port: int = 0) -> AsyncIterator[UdpClient]:
    transport, client = await asyncio.get_running_loop().create_datagram_endpoint(
        UdpClient, local_addr=("127.0.0.1", port), remote_addr=(sp.cluster_ips[0], sp.port))
    try:
        yield client
    finally:
        transport.close()


# --- the pure helpers -----------------------------------------------------------------------


def test_plan_listeners_is_one_per_clusterip_port_and_protocol() -> None:
    dns_tcp = service("dns", "127.0.1.1", port=53)
    dns_udp = service("dns", "127.0.1.1", port=53, protocol="UDP")
    dual = ServicePort(ServicePortName("default", "dual", "", "TCP"),
                       ("127.0.1.2", "fd00::2"), 80, "TCP",
                       endpoints=(Endpoint("127.0.2.1", 80), Endpoint("fd00::9", 80)))
    nobody = service("nobody", "127.0.1.3", [], port=80)
    plan = plan_listeners({p.name: p for p in (dns_tcp, dns_udp, dual, nobody)}, None)
    assert plan == {
        Listen("127.0.1.1", 53, "TCP"): dns_tcp.name,
        Listen("127.0.1.1", 53, "UDP"): dns_udp.name,
        Listen("127.0.1.2", 80, "TCP"): dual.name,
        Listen("fd00::2", 80, "TCP"): dual.name,
    }


def test_attempt_order_tries_the_pinned_endpoint_first_then_each_other_once() -> None:
    endpoints = [Endpoint(f"10.0.0.{i}", 80) for i in range(1, 6)]
    rng = random.Random(7)
    for _ in range(50):
        order = list(attempt_order(endpoints, ("10.0.0.3", 80), rng))
        assert order[0] == endpoints[2]
        assert sorted(order) == endpoints
    assert next(attempt_order(endpoints, ("10.0.0.9", 80), rng)) in endpoints  # gone: ignored


def test_attempt_order_first_pick_is_uniform() -> None:
    endpoints = [Endpoint(f"10.0.0.{i}", 80) for i in range(1, 4)]
    rng = random.Random(1)
    firsts = collections.Counter(next(attempt_order(endpoints, None, rng)).ip for _ in range(3000))
    assert set(firsts) == {e.ip for e in endpoints}
    assert all(900 < n < 1100 for n in firsts.values()), firsts


def test_affinity_expires_unless_used_and_prune_forgets_ports_without_it() -> None:
    web = service("web", "127.0.1.1", port=80, affinity=10)
    affinity = Affinity()
    affinity.pin(web.name, "10.1.0.1", ("10.0.0.1", 80), now=0.0, timeout=10)
    assert affinity.get(web.name, "10.1.0.1", now=9.0) == ("10.0.0.1", 80)
    affinity.pin(web.name, "10.1.0.1", ("10.0.0.1", 80), now=9.0, timeout=10)  # refreshed
    assert affinity.get(web.name, "10.1.0.1", now=18.0) == ("10.0.0.1", 80)
    assert affinity.get(web.name, "10.1.0.1", now=19.0) is None
    affinity.pin(web.name, "10.1.0.2", ("10.0.0.1", 80), now=0.0, timeout=10)
    affinity.prune({web.name: web}, now=1.0)
    assert affinity.get(web.name, "10.1.0.2", now=1.0) == ("10.0.0.1", 80)
    affinity.prune({}, now=1.0)
    assert affinity.get(web.name, "10.1.0.2", now=1.0) is None


# --- listeners ------------------------------------------------------------------------------


async def test_listeners_and_vips_follow_services_and_ports(proxy: Any) -> None:
    async with proxy() as px:
        web = service("web", "127.0.1.1")
        dns = service("dns", "127.0.1.1", protocol="UDP")
        await px.serve(web, dns)
        assert px.proxier.listening == {Listen("127.0.1.1", web.port, "TCP"),
                                        Listen("127.0.1.1", dns.port, "UDP")}
        moved = service("web", "127.0.1.1")
        await px.serve(moved, dns)
        assert px.proxier.listening == {Listen("127.0.1.1", moved.port, "TCP"),
                                        Listen("127.0.1.1", dns.port, "UDP")}
        with pytest.raises(ConnectionRefusedError):
            await request(web)
        await px.serve()
        assert px.proxier.listening == frozenset()
        assert px.addresses.calls == [("add", "127.0.1.1"), ("remove", "127.0.1.1")]
        with pytest.raises(ConnectionRefusedError):
            await request(moved)


async def test_endpoint_changes_leave_listeners_alone_and_open_connections_drain(
    proxy: Any, tcp_backend: Any
) -> None:
    async with proxy() as px, backends(tcp_backend, "127.0.2.1", "127.0.2.2",
                                       mode="echo") as (a, b):
        web = service("web", "127.0.1.2", [a.endpoint()])
        await px.serve(web)
        reader, writer = await asyncio.open_connection(web.cluster_ips[0], web.port)
        writer.write(b"before\n")
        assert await reader.readline() == b"before\n"
        made = len(px.sockets.made)
        await px.serve(service("web", "127.0.1.2", [b.endpoint()], port=web.port))
        assert len(px.sockets.made) == made  # no listener was made again
        writer.write(b"after\n")
        assert await reader.readline() == b"after\n"  # still relayed to a, which went away
        writer.close()
        reader, writer = await asyncio.open_connection(web.cluster_ips[0], web.port)
        writer.write(b"new\n")
        assert await reader.readline() == b"new\n"
        writer.close()
        assert (a.connections, b.connections) == (1, 1)


async def test_a_bind_failure_is_raised_after_the_rest_and_retried_by_the_next_sync(
    proxy: Any
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.1.3", 0))
    taken.listen()
    try:
        async with proxy() as px:
            blocked = service("blocked", "127.0.1.3", port=taken.getsockname()[1])
            web = service("web", "127.0.1.4")
            with pytest.raises(OSError):
                await px.serve(blocked, web)
            assert px.proxier.listening == {Listen("127.0.1.4", web.port, "TCP")}
            taken.close()
            await px.resync()
            assert Listen("127.0.1.3", blocked.port, "TCP") in px.proxier.listening
    finally:
        taken.close()


# --- choosing endpoints ---------------------------------------------------------------------


async def test_connections_spread_over_the_endpoints(proxy: Any, tcp_backend: Any) -> None:
    async with proxy(rng=random.Random(3)) as px, backends(
            tcp_backend, "127.0.2.1", "127.0.2.2", "127.0.2.3") as bs:
        web = service("web", "127.0.1.5", [b.endpoint() for b in bs])
        await px.serve(web)
        answers = await names(web, 300)
        assert set(answers) == {b.name for b in bs}
        assert all(n >= 70 for n in answers.values()), answers  # 100 expected, sd 8
        stats = px.proxier.stats
        assert (stats.accepted, stats.relayed, stats.retries, stats.refused) == (300, 300, 0, 0)


async def test_client_ip_affinity_pins_a_client_until_its_timeout_passes_unused(
    proxy: Any, tcp_backend: Any
) -> None:
    now = [0.0]
    async with proxy(clock=lambda: now[0], rng=random.Random(5)) as px, backends(
            tcp_backend, "127.0.2.1", "127.0.2.2", "127.0.2.3") as bs:
        web = service("web", "127.0.1.6", [b.endpoint() for b in bs], affinity=60)
        await px.serve(web)
        pinned = await names(web, 100, source="127.0.3.1")
        assert len(pinned) == 1, pinned
        for _ in range(5):  # each use refreshes the pin
            now[0] += 50
            assert (await names(web, 1, source="127.0.3.1")).keys() == pinned.keys()
        others = collections.Counter[str]()
        for _ in range(30):
            now[0] += 61
            others += await names(web, 1, source="127.0.3.1")
        assert len(others) == 3, others


async def test_a_refused_endpoint_is_skipped_transparently(proxy: Any, tcp_backend: Any) -> None:
    async with proxy(rng=random.Random(1)) as px, backends(
            tcp_backend, "127.0.2.1", "127.0.2.2") as bs:
        web = service("web", "127.0.1.7", [refusing("127.0.2.9"), *(b.endpoint() for b in bs)])
        await px.serve(web)
        answers = await names(web, 50)
        assert set(answers) == {b.name for b in bs}
        stats = px.proxier.stats
        assert stats.retries > 5 and stats.refused == 0 and stats.relayed == 50


async def test_a_timed_out_endpoint_is_skipped(proxy: Any, tcp_backend: Any) -> None:
    with unanswered("127.0.2.8") as blackhole:
        async with proxy(connect_timeout=0.2, rng=random.Random(2)) as px, backends(
                tcp_backend, "127.0.2.1") as (b,):
            web = service("web", "127.0.1.8", [blackhole, b.endpoint()])
            await px.serve(web)
            assert await names(web, 6) == {b.name: 6}
            assert px.proxier.stats.retries >= 1


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no ::1")
async def test_each_clusterip_family_goes_to_endpoints_of_its_family(
    proxy: Any, tcp_backend: Any
) -> None:
    async with proxy() as px, backends(tcp_backend, "127.0.2.1", "::1") as (v4, v6):
        port = free_port("::1")
        dual = ServicePort(ServicePortName("default", "dual", "http", "TCP"),
                           ("127.0.1.20", "::1"), port, "TCP",
                           endpoints=(v4.endpoint(), v6.endpoint()))
        await px.serve(dual)
        v6_only = service("dual", "::1", port=port)
        assert await names(dual, 10) == {"127.0.2.1": 10}
        assert await names(v6_only, 10) == {"::1": 10}


@pytest.mark.parametrize(("endpoints", "reset_by_proxy"), [
    pytest.param(lambda: [], 0, id="no-endpoints"),  # no listener: the kernel refuses
    pytest.param(lambda: [refusing("127.0.2.9"), refusing("127.0.2.10")], 3, id="all-refuse"),
    pytest.param(lambda: [Endpoint("127.0.2.1", 80, ready=False, serving=False)], 0,
                 id="none-serving"),
])
async def test_without_a_usable_endpoint_the_client_is_reset_at_once(
    proxy: Any, endpoints: Callable[[], list[Endpoint]], reset_by_proxy: int
) -> None:
    async with proxy(connect_timeout=5.0) as px:
        web = service("web", "127.0.1.9", endpoints())
        await px.serve(web)
        loop = asyncio.get_running_loop()
        for _ in range(3):
            start = loop.time()
            with pytest.raises((ConnectionResetError, ConnectionRefusedError)):
                await request(web)
            assert loop.time() - start < 0.5
        assert px.proxier.stats.refused == reset_by_proxy


async def test_local_policy_without_a_local_endpoint_has_no_listener(proxy: Any) -> None:
    async with proxy(node="node-1") as px:
        elsewhere = Endpoint("127.0.2.1", 80, node_name="node-2")
        web = service("web", "127.0.1.10", [elsewhere], local_only=True)
        await px.serve(web)
        assert px.proxier.listening == frozenset()
        with pytest.raises(ConnectionRefusedError):  # a userspace proxy cannot drop a SYN
            await request(web, b"")


async def test_clients_from_outside_the_allowed_networks_get_no_answer(
    proxy: Any, tcp_backend: Any
) -> None:
    async with proxy(clients=["127.0.3.0/24", "127.0.4.0/24"]) as px, \
            tcp_backend("127.0.2.1") as a:
        web = service("web", "127.0.1.11", [a.endpoint()])
        await px.serve(web)
        with pytest.raises(TimeoutError):  # the SYN itself is filtered: no accept, no reset
            await request(web, timeout=0.5)  # from 127.0.0.1: not a pod
        assert px.proxier.stats.accepted == 0 and a.connections == 0
        assert await request(web, source="127.0.4.1")  # from a pod of the second network
        assert await request(web, source="127.0.3.1")  # from a pod of the first
        assert a.connections == 2


# --- relaying -------------------------------------------------------------------------------


@pytest.mark.parametrize("splice", RELAYS)
async def test_a_client_that_half_closes_still_gets_its_reply(
    proxy: Any, tcp_backend: Any, splice: bool
) -> None:
    async with proxy(splice=splice) as px, backends(tcp_backend, "127.0.2.1",
                                                   mode="drain") as (b,):
        web = service("web", "127.0.1.11", [b.endpoint()])
        await px.serve(web)
        reader, writer = await asyncio.open_connection(web.cluster_ips[0], web.port)
        writer.write(b"x" * 100_000)
        writer.write_eof()
        async with asyncio.timeout(5):
            assert await reader.read() == b"127.0.2.1 100000\n"
        writer.close()


@pytest.mark.parametrize("splice", RELAYS)
async def test_64_mib_both_ways_arrive_intact(
    proxy: Any, tcp_backend: Any, splice: bool
) -> None:
    size = 64 << 20
    block = os.urandom(1 << 20)
    async with proxy(splice=splice) as px, backends(tcp_backend, "127.0.2.1",
                                                   mode="echo") as (b,):
        web = service("web", "127.0.1.12", [b.endpoint()])
        await px.serve(web)
        reader, writer = await asyncio.open_connection(web.cluster_ips[0], web.port)
        sent, received = hashlib.sha256(), hashlib.sha256()

        async def send() -> None:
            for i in range(size // len(block)):
                chunk = block[i:] + block[:i]
                sent.update(chunk)
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()

        async def receive() -> int:
            total = 0
            while data := await reader.read(1 << 20):
                received.update(data)
                total += len(data)
            return total

        async with asyncio.timeout(60):
            _, total = await asyncio.gather(send(), receive())
        writer.close()
        assert total == size
        assert received.hexdigest() == sent.hexdigest()


@pytest.mark.parametrize("splice", RELAYS)
async def test_a_reset_from_the_endpoint_resets_the_client(
    proxy: Any, tcp_backend: Any, splice: bool
) -> None:
    async with proxy(splice=splice) as px, backends(tcp_backend, "127.0.2.1",
                                                   mode="reset") as (b,):
        web = service("web", "127.0.1.13", [b.endpoint()])
        await px.serve(web)
        reader, writer = await asyncio.open_connection(web.cluster_ips[0], web.port)
        try:
            with pytest.raises(ConnectionResetError):
                async with asyncio.timeout(5):
                    while await reader.read(1024):
                        pass
        finally:
            writer.close()


# --- UDP ------------------------------------------------------------------------------------


async def test_udp_is_relayed_and_a_client_picks_again_when_its_endpoint_goes(
    proxy: Any, udp_backend: Any
) -> None:
    async with proxy() as px, udp_backend("127.0.2.1") as a, udp_backend("127.0.2.2") as b:
        dns = service("dns", "127.0.1.14", [a.endpoint()], protocol="UDP")
        await px.serve(dns)
        async with udp_client(dns) as client:
            assert await client.ask(b"one") == b"127.0.2.1 one"
            assert await client.ask(b"two") == b"127.0.2.1 two"
            # the pod is replaced: same client address, new endpoint
            await px.serve(service("dns", "127.0.1.14", [b.endpoint()], port=dns.port,
                                   protocol="UDP"))
            assert await client.ask(b"three", timeout=1.0) == b"127.0.2.2 three"
        assert px.proxier.stats.udp_sessions == 2


async def test_a_udp_session_opened_across_a_sync_takes_an_endpoint_serving_after_it(
    proxy: Any, udp_backend: Any
) -> None:
    async with proxy() as px, udp_backend("127.0.2.1") as a, udp_backend("127.0.2.2") as b:
        dns = service("dns", "127.0.1.15", [a.endpoint()], protocol="UDP")
        await px.serve(dns)
        async with udp_client(dns) as client:
            px.sockets.held = asyncio.Event()  # the session's socket waits...
            asking = asyncio.create_task(client.ask(b"one", timeout=2.0))
            await px.sockets.waiting.wait()
            # ...while a sync replaces the endpoint the session had chosen
            await px.serve(service("dns", "127.0.1.15", [b.endpoint()], port=dns.port,
                                   protocol="UDP"))
            px.sockets.held.set()
            assert await asking == b"127.0.2.2 one"


async def test_udp_sessions_end_when_idle(proxy: Any, udp_backend: Any, eventually: Any) -> None:
    async with proxy(udp_idle_timeout=0.05) as px, udp_backend("127.0.2.1") as a:
        dns = service("dns", "127.0.1.15", [a.endpoint()], protocol="UDP")
        await px.serve(dns)
        async with udp_client(dns) as client:
            assert await client.ask(b"one") == b"127.0.2.1 one"
            await eventually(lambda: px.proxier.stats.udp_expired == 1)
            assert await client.ask(b"two") == b"127.0.2.1 two"
        assert px.proxier.stats.udp_sessions == 2


async def test_udp_sessions_are_bounded(proxy: Any, udp_backend: Any, eventually: Any) -> None:
    async with proxy(max_udp_sessions=2) as px, udp_backend("127.0.2.1") as a:
        dns = service("dns", "127.0.1.16", [a.endpoint()], protocol="UDP")
        await px.serve(dns)
        async with udp_client(dns) as c1, udp_client(dns) as c2, udp_client(dns) as c3:
            assert await c1.ask(b"1") == b"127.0.2.1 1"
            assert await c2.ask(b"2") == b"127.0.2.1 2"
            c3.transport.sendto(b"3")
            await eventually(lambda: px.proxier.stats.udp_dropped == 1)
            assert c3.replies.empty()


async def test_udp_without_endpoints_has_no_listener(proxy: Any) -> None:
    async with proxy() as px:
        dns = service("dns", "127.0.1.17", [], protocol="UDP")
        await px.serve(dns)
        assert px.proxier.listening == frozenset()  # the kernel answers port unreachable
        assert px.addresses.calls == [("add", "127.0.1.17")]


# --- load and lifetime ----------------------------------------------------------------------


@pytest.mark.parametrize("splice", RELAYS)
async def test_one_connection_per_request_load(
    proxy: Any, tcp_backend: Any, splice: bool, fd_count: Callable[[], int], eventually: Any
) -> None:
    """The load that crashed uvloop when a relay left its sockets open: 2,000 sequential
    connections, each a request and a response."""
    async with backends(tcp_backend, "127.0.2.1", "127.0.2.2") as bs:
        async with proxy(splice=splice) as px:
            web = service("web", "127.0.1.18", [b.endpoint() for b in bs])
            await px.serve(web)
            before = fd_count()
            for i in range(2000):
                assert (await request(web, b"%d\n" % i)).startswith(b"127.0.2.")
            stats = px.proxier.stats
            assert (stats.accepted, stats.relayed, stats.errors) == (2000, 2000, 0)
            await eventually(lambda: fd_count() <= before)
        assert sum(b.connections for b in bs) == 2000


async def test_stopping_closes_every_listener_connection_session_and_pipe(
    proxy: Any, tcp_backend: Any, udp_backend: Any, fd_count: Callable[[], int],
    pipe_count: Callable[[], int], eventually: Any
) -> None:
    async with backends(tcp_backend, "127.0.2.1", mode="echo") as (b,), \
            udp_backend("127.0.2.2") as u:
        fds, pipes = fd_count(), pipe_count()
        async with proxy() as px:
            web = service("web", "127.0.1.19", [b.endpoint()])
            dns = service("dns", "127.0.1.19", [u.endpoint()], protocol="UDP")
            await px.serve(web, dns)
            clients = [await asyncio.open_connection(web.cluster_ips[0], web.port)
                       for _ in range(5)]
            for reader, writer in clients:
                writer.write(b"ping\n")
                assert await reader.readline() == b"ping\n"
            async with udp_client(dns) as udp:
                assert await udp.ask(b"ping") == b"127.0.2.2 ping"
            assert pipe_count() == pipes + 5 * 4
        assert pipe_count() == pipes  # closed by the time run() has ended
        assert all(s.fileno() == -1 for s in px.sockets.made)
        assert not [t for t in asyncio.all_tasks()
                    if "clusterip/proxy" in t.get_coro().cr_code.co_filename]
        for reader, writer in clients:  # each was reset
            with pytest.raises(ConnectionResetError):
                while await reader.read(1024):
                    pass
            writer.close()
        await eventually(lambda: fd_count() == fds)


class _ClosedTransport:
    """A transport that is already closing: writing to it is an error."""

    def is_closing(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        raise AssertionError("written after close")

    def write_eof(self) -> None:
        raise AssertionError("write_eof after close")


async def test_a_pump_passes_nothing_to_a_peer_transport_already_closing() -> None:
    from clusterip.proxy.relay import _PumpSide

    ended: asyncio.Future[OSError | None] = asyncio.get_running_loop().create_future()
    side, peer = _PumpSide(ended), _PumpSide(ended)
    side.peer, peer.peer = peer, side
    peer.transport = _ClosedTransport()  # type: ignore[assignment]
    side.started = True
    before = _PumpSide.dropped
    side.data_received(b"late")
    assert side.eof_received() is True
    assert _PumpSide.dropped == before + 2
