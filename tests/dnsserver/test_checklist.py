"""Every item of the cluster-dns.md §1.4 checklist, asked with the real `dig`, over UDP and TCP.

The server runs on 127.0.0.1:0 over the checklist fixture (`cluster_fixture.py`), forwarding to
the tests' own upstream on loopback. Each case is `cNN` (the checklist number) with a suffix when
an item has several queries; every case runs twice, `+notcp` and `+tcp`. Cases that need more
than one query or another server (#3, #25's truncation, #37, #41-#44) are tests of their own.

Every reply from the zone is checked for what all of them share: AA and RA set, the question
echoed; a negative one (NXDOMAIN or NODATA) for the zone's SOA in the authority section.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from clusterip.control.informer import InformerFactory
from clusterip.core import model as m
from clusterip.core.dnsanswer import Responder, build_view
from clusterip.core.projections import slim_pod
from clusterip.dnsserver.cache import DnsCache
from clusterip.dnsserver.forward import UpstreamForwarder
from clusterip.registry.objects import ObjectStore

pytestmark = pytest.mark.anyio

Dig = Callable[..., Awaitable[Any]]
Z = "cluster.local."
T = "testns.svc.cluster.local."
HDLS = f"hdls.{T}"


@dataclass(frozen=True)
class Case:
    id: str
    name: str
    type: str
    rcode: str = "NOERROR"
    answer: tuple[str, ...] | None = None  # expected answer data (type + data), any order
    zone: bool = True  # an answer from the cluster zone (AA; SOA when negative)
    options: tuple[str, ...] = ()
    check: Callable[[Any], None] | None = field(default=None, compare=False)


def srv_targets(result: Any) -> list[tuple[int, str]]:
    return sorted((int(d.split()[2]), d.split()[3]) for d in result.data("SRV"))


def check_c01(result: Any) -> None:
    assert [r.ttl for r in result.answer] == [28800]


def check_c25(result: Any) -> None:
    assert result.types()[0] == "CNAME", result.text


def check_c12(result: Any) -> None:
    # CoreDNS's extension (optional): one SRV per port, target the service name
    for port, target in srv_targets(result):
        assert port in (80, 53, 8080) and target == f"svc1.{T}"


def check_c34(result: Any) -> None:
    assert result.types() == ["SOA"] and result.answer[0].data.split()[0] == f"ns.dns.{Z}"


def check_c35(result: Any) -> None:
    assert result.data("NS") == [f"ns.dns.{Z}"]
    glue = [(r.name, r.data) for r in result.additional if r.type == "A"]
    assert glue == [(f"ns.dns.{Z}", "10.96.0.10")]


def check_c38(result: Any) -> None:
    assert [r.name for r in result.answer] == ["SvC1.TeStNs.SvC.cLuStEr.LoCaL."]
    assert result.question == ["SvC1.TeStNs.SvC.cLuStEr.LoCaL."]


def check_c39(result: Any) -> None:
    assert "ra" in result.flags and "aa" not in result.flags


CASES = [
    Case("c01", f"dns-version.{Z}", "TXT", answer=('TXT "1.1.0"',), check=check_c01),
    Case("c02", f"kubernetes.default.svc.{Z}", "A", answer=("A 10.96.0.1",)),
    Case("c04", f"svc1.{T}", "A", answer=("A 10.0.0.1",)),
    Case("c05", f"svc1.{T}", "AAAA", answer=()),
    Case("c06-aaaa", f"svc6.{T}", "AAAA", answer=("AAAA fd00::1",)),
    Case("c06-a", f"svc6.{T}", "A", answer=()),
    Case("c07-a", f"dual.{T}", "A", answer=("A 10.0.0.3",)),
    Case("c07-aaaa", f"dual.{T}", "AAAA", answer=("AAAA fd00::3",)),
    Case("c08", f"_http._tcp.svc1.{T}", "SRV", answer=(f"SRV 0 100 80 svc1.{T}",)),
    Case("c09", f"_dns._udp.svc1.{T}", "SRV", answer=(f"SRV 0 100 53 svc1.{T}",)),
    Case("c10-proto", f"_dns._tcp.svc1.{T}", "SRV", "NXDOMAIN"),
    Case("c10-name", f"_nope._tcp.svc1.{T}", "SRV", "NXDOMAIN"),
    Case("c11", f"_8080._tcp.svc1.{T}", "SRV", "NXDOMAIN"),
    Case("c12", f"svc1.{T}", "SRV", check=check_c12),
    Case("c13", "1.0.0.10.in-addr.arpa.", "PTR", answer=(f"PTR svc1.{T}",)),
    Case("c14", ipaddress.ip_address("fd00::1").reverse_pointer + ".", "PTR",
         answer=(f"PTR svc6.{T}",)),
    Case("c15", HDLS, "A", answer=("A 10.3.0.100", "A 10.3.0.2")),
    Case("c16", HDLS, "AAAA", answer=("AAAA fd00::5",)),
    Case("c17", f"my-pet.{HDLS}", "A", answer=("A 10.3.0.100",)),
    Case("c18", f"10-3-0-2.{HDLS}", "A", answer=("A 10.3.0.2",)),
    Case("c18-v6", f"fd00--5.{HDLS}", "AAAA", answer=("AAAA fd00::5",)),
    Case("c19", f"_http._tcp.{HDLS}", "SRV", answer=(
        f"SRV 0 33 80 my-pet.{HDLS}", f"SRV 0 33 80 10-3-0-2.{HDLS}",
        f"SRV 0 33 80 fd00--5.{HDLS}")),
    Case("c20", "100.0.3.10.in-addr.arpa.", "PTR", answer=(f"PTR my-pet.{HDLS}",)),
    Case("c21", f"hdls-empty.{T}", "A", "NXDOMAIN"),
    Case("c22", f"hdls-pnra.{T}", "A", answer=("A 10.3.0.7",)),
    Case("c23", f"bogus.{HDLS}", "A", "NXDOMAIN"),
    Case("c24", f"ext.{T}", "CNAME", answer=("CNAME www.example.com.",)),
    # half of #25's answer comes from upstream: no AA (as CoreDNS)
    Case("c25", f"ext.{T}", "A", answer=("CNAME www.example.com.", "A 93.184.216.34"),
         zone=False, check=check_c25),
    Case("c26", f"x.ext.{T}", "A", "NXDOMAIN"),
    Case("c27", f"empty.{T}", "A", answer=("A 10.0.0.9",)),
    *(Case(f"c28-{t.lower()}", f"nosuch.{T}", t, "NXDOMAIN") for t in ("A", "AAAA", "TXT", "MX")),
    Case("c29", f"svc1.nosuchns.svc.{Z}", "A", "NXDOMAIN"),
    *(Case(f"c30-{i}", name, "A", answer=())
      for i, name in enumerate((T, f"svc.{Z}", f"pod.{Z}", Z))),
    *(Case(f"c31-{i}", name, "A", "NXDOMAIN")
      for i, name in enumerate((f"foo.{Z}", f"a.b.c.d.e.{T}", f"svc1.testns.xyz.{Z}"))),
    Case("c32", f"10-244-1-5.testns.pod.{Z}", "A", answer=("A 10.244.1.5",)),
    Case("c33", f"blah.testns.pod.{Z}", "A", "NXDOMAIN"),
    Case("c34", Z, "SOA", check=check_c34),
    Case("c35", Z, "NS", check=check_c35),
    Case("c36", f"svc1.{T}", "SOA", answer=()),
    Case("c38", "SvC1.TeStNs.SvC.cLuStEr.LoCaL.", "A", answer=("A 10.0.0.1",), check=check_c38),
    Case("c39", "www.example.com.", "A", answer=("A 93.184.216.34",), zone=False,
         check=check_c39),
    Case("c40", "8.8.8.8.in-addr.arpa.", "PTR", answer=("PTR dns.google.",), zone=False),
]


@pytest.fixture
async def server(serve: Any, cluster: Any, upstream: Any) -> AsyncIterator[int]:
    services, slices, pods = cluster.checklist_cluster()
    responder = Responder(build_view(services, slices, pods, zone=cluster.ZONE,
                                     dns_ips=cluster.DNS_IPS))
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)], timeout=1)
    async with serve(lambda: responder, forwarder) as port:
        yield port


def check_common(result: Any, case: Case) -> None:
    assert result.status == case.rcode, result.text
    assert result.question and result.counts.get("QUERY") == 1, result.text
    assert "ra" in result.flags, result.text
    if case.zone:
        assert "aa" in result.flags, result.text
        negative = case.rcode == "NXDOMAIN" or (case.rcode == "NOERROR" and not result.answer)
        if negative:
            soa = [r for r in result.authority if r.type == "SOA"]
            assert [r.name for r in soa] == [Z], result.text
            assert soa[0].data.split()[0] == f"ns.dns.{Z}", result.text


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_checklist(server: int, dig: Dig, case: Case, transport: str) -> None:
    result = await dig(server, case.name, case.type, transport, *case.options)
    check_common(result, case)
    if case.answer is not None:
        got = sorted(f"{r.type} {r.data}" for r in result.answer)
        assert got == sorted(case.answer), result.text
    if case.check is not None:
        case.check(result)


async def test_c03_tcp_gives_the_same_answer_as_udp(server: int, dig: Dig) -> None:
    udp = await dig(server, f"kubernetes.default.svc.{Z}", "A", "+notcp")
    tcp = await dig(server, f"kubernetes.default.svc.{Z}", "A", "+tcp")
    assert (udp.status, udp.flags, udp.answer) == (tcp.status, tcp.flags, tcp.answer)
    assert [r.data for r in tcp.answer] == ["10.96.0.1"]


async def test_c11_an_unnamed_port_has_no_srv(server: int, dig: Dig) -> None:
    result = await dig(server, f"_http._tcp.svc1.{T}", "SRV")
    assert all(int(d.split()[2]) != 8080 for d in result.data("SRV"))


async def test_c25_a_truncated_upstream_answer_is_truncated_to_the_client(
    server: int, dig: Dig, upstream: Any
) -> None:
    # big.example.com has 60 A records: more than 512 bytes; the upstream cuts its UDP reply
    # (TC), the forwarder asks again over TCP, and the answer to a client without EDNS is cut
    # to 512 bytes with TC set; over TCP the client gets all of it.
    udp = await dig(server, f"ext-big.{T}", "A", "+noedns", "+ignore")
    assert udp.status == "NOERROR" and "tc" in udp.flags and udp.size <= 512, udp.text
    assert udp.question == [f"ext-big.{T}"]
    tcp = await dig(server, f"ext-big.{T}", "A", "+tcp")
    assert tcp.types()[0] == "CNAME" and len(tcp.data("A")) == 60 and "tc" not in tcp.flags
    assert ("tcp", "big.example.com.", "A") in upstream.queries


async def test_c37_zone_transfers_are_refused(server: int, dig: Dig) -> None:
    result = await dig(server, Z, "AXFR", reply=False)
    assert "Transfer failed" in result.text or result.status == "REFUSED", result.text
    query = dns.message.make_query(Z, "AXFR")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=server, timeout=2)
    assert reply.rcode() == dns.rcode.REFUSED
    query = dns.message.make_query(Z, "IXFR")
    reply = await dns.asyncquery.tcp(query, "127.0.0.1", port=server, timeout=2)
    assert reply.rcode() == dns.rcode.REFUSED


async def test_c41_before_the_caches_synced_the_zone_answers_servfail(
    serve: Any, cluster: Any, dig: Dig, upstream: Any
) -> None:
    services, slices, pods = cluster.checklist_cluster()
    responder = Responder(build_view(services, slices, pods, zone=cluster.ZONE,
                                     dns_ips=cluster.DNS_IPS, synced=False))
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)], timeout=1)
    async with serve(lambda: responder, forwarder) as port:
        for name, type_ in ((f"svc1.{T}", "A"), (f"nosuch.{T}", "A"), (Z, "SOA")):
            for transport in ("+notcp", "+tcp"):
                result = await dig(port, name, type_, transport)
                assert result.status == "SERVFAIL", result.text
        # names outside the zone are still forwarded
        result = await dig(port, "www.example.com", "A")
        assert result.status == "NOERROR" and result.data("A") == ["93.184.216.34"]


async def test_c42_a_deleted_service_and_an_unready_endpoint_leave_the_answers(
    serve: Any, cluster: Any, dig: Dig, objects: ObjectStore, running: Any,
    eventually: Callable[..., Awaitable[Any]], upstream: Any,
) -> None:
    services, slices, pods = cluster.checklist_cluster()
    for obj in (*services, *slices, *pods):
        await objects.create(obj)
    factory = InformerFactory(objects, transforms={m.Pod: slim_pod})
    cache = DnsCache(factory, zone=cluster.ZONE, dns_ips=cluster.DNS_IPS)
    forwarder = UpstreamForwarder([("127.0.0.1", upstream.port)], timeout=1)
    async with running(factory.run, cache.run), serve(cache.current, forwarder) as port:
        await eventually(lambda: cache.synced, 5)
        for transport in ("+notcp", "+tcp"):
            assert (await dig(port, f"svc1.{T}", "A", transport)).data() == ["10.0.0.1"]
        svc1 = await objects.get(m.Service, "testns", "svc1")
        await objects.delete(m.Service, "testns", "svc1")
        loop = asyncio.get_running_loop()
        start = loop.time()
        await eventually(lambda: _is_nxdomain(port, f"svc1.{T}"), 2)
        gone = loop.time() - start
        for transport in ("+notcp", "+tcp"):
            assert (await dig(port, f"svc1.{T}", "A", transport)).status == "NXDOMAIN"
        # my-pet becomes not ready: it leaves hdls's A records and its own name
        hdls = await objects.get(m.EndpointSlice, "testns", "hdls-v4")
        endpoints = tuple(
            e if e.hostname != "my-pet" else _with_ready(e, False) for e in hdls.endpoints)
        await objects.update(_with_endpoints(hdls, endpoints))
        await eventually(lambda: _is_nxdomain(port, f"my-pet.{HDLS}"), 2)
        result = await dig(port, HDLS, "A")
        assert result.data() == ["10.3.0.2"], result.text
        assert svc1.spec.cluster_ip == "10.0.0.1"
    print(f"delete → NXDOMAIN seen through the server: {gone * 1000:.1f} ms")
    assert gone < 0.5


async def _is_nxdomain(port: int, name: str) -> bool:
    query = dns.message.make_query(name, "A")
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)
    return reply.rcode() == dns.rcode.NXDOMAIN


def _with_ready(endpoint: m.Endpoint, ready: bool) -> m.Endpoint:
    import msgspec

    return msgspec.structs.replace(
        endpoint, conditions=m.EndpointConditions(ready=ready, serving=ready, terminating=False))


def _with_endpoints(slice_: m.EndpointSlice, endpoints: tuple[m.Endpoint, ...]) -> m.EndpointSlice:
    import msgspec

    return msgspec.structs.replace(slice_, endpoints=endpoints)


async def test_c43_a_large_answer_over_udp_without_edns_is_truncated_keeping_the_question(
    server: int, dig: Dig, cluster: Any
) -> None:
    udp = await dig(server, f"big.{T}", "A", "+noedns", "+ignore")
    assert udp.status == "NOERROR" and "tc" in udp.flags, udp.text
    assert udp.size <= 512 and udp.question == [f"big.{T}"] and not udp.opt
    tcp = await dig(server, f"big.{T}", "A", "+tcp")
    assert len(tcp.data("A")) == cluster.BIG_ENDPOINTS and "tc" not in tcp.flags
    # dig's own fallback: UDP, TC, then TCP
    auto = await dig(server, f"big.{T}", "A", "+noedns")
    assert len(auto.data("A")) == cluster.BIG_ENDPOINTS


@pytest.mark.parametrize("bufsize", [512, 1232, 4096])
async def test_c44_edns_bufsize_caps_the_reply_and_opt_is_echoed(
    server: int, dig: Dig, bufsize: int
) -> None:
    result = await dig(server, f"big.{T}", "A", f"+bufsize={bufsize}", "+ignore")
    assert result.opt, result.text  # the query had OPT, so the reply has one
    assert result.size <= min(bufsize, 1232), result.text  # our ceiling is 1232
    assert "tc" in result.flags and result.question == [f"big.{T}"], result.text
    small = await dig(server, f"svc1.{T}", "A", f"+bufsize={bufsize}")
    assert small.opt and "tc" not in small.flags and small.data() == ["10.0.0.1"]
    plain = await dig(server, f"svc1.{T}", "A", "+noedns")
    assert not plain.opt and plain.data() == ["10.0.0.1"]


async def test_norec_queries_are_answered_from_the_zone(server: int, dig: Dig) -> None:
    result = await dig(server, f"svc1.{T}", "A", "+norec")
    assert result.status == "NOERROR" and result.data() == ["10.0.0.1"]
    assert "rd" not in result.flags and "aa" in result.flags

