"""core.dnsanswer: the cluster DNS, query bytes in, reply bytes (or a Forward) out.

Covered: every item of the checklist in cluster-dns.md section 1.4 (ids ``c01-…`` to ``c44-…``)
on the checklist's own fixture, through `Responder.respond(wire)` with queries built by
dnspython, over UDP and TCP, each asked twice (the second answer comes from the fast path);
the fast path against the slow path, byte for byte; 0x20 case echo; EDNS sizes, OPT echo and
TC; FORMERR, REFUSED, NOTIMP, BADVERS and silent drops; SERVFAIL before sync; forwarding and
`finish` (CNAME prefix, TC passed on, SERVFAIL, the client's limits); autopath; and a
hypothesis property: no mutated or truncated query makes `respond` raise. Not covered here:
sockets, the forwarder and timing (tests/dnsserver), the view's own rules (test_dnsview.py).

Conventions: zone ``cluster.local``, DNS service IP 10.96.0.10, TTL 5, SOA serial 1. The pod
10.244.1.5 lives in ``testns``, 10.244.2.7 in ``default``; 203.0.113.7 is a client that is no
pod. Upstream replies are built by hand with dnspython (``upstream_reply``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterip.core import model as m
from clusterip.core.dnsanswer import (
    Answer,
    DnsView,
    Forward,
    Responder,
    Transport,
    build_view,
    finish,
)
from clusterip.testing.builders import make_endpoint_slice, make_pod, make_service, port

ZONE = "cluster.local"
POD_TESTNS = "10.244.1.5"
POD_DEFAULT = "10.244.2.7"
NOT_A_POD = "203.0.113.7"
SOA_LINE = ("cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. "
            "1 7200 1800 86400 5")


# --- the checklist fixture (cluster-dns.md 1.4) ---------------------------------------------------


def _spec(**changes: object) -> Callable[[m.Service], m.Service]:
    return lambda s: msgspec.structs.replace(s, spec=msgspec.structs.replace(s.spec, **changes))


def endpoint(ip: str, *, ready: bool | None = True, hostname: str | None = None) -> m.Endpoint:
    return m.Endpoint(addresses=(ip,), conditions=m.EndpointConditions(ready=ready),
                      hostname=hostname)


HTTP = m.EndpointPort(name="http", protocol="TCP", port=80)


def endpoint_slice(name: str, service: str, endpoints: Sequence[m.Endpoint], *,
                   family: str = "IPv4", namespace: str = "testns") -> m.EndpointSlice:
    return make_endpoint_slice(
        name, service=service, namespace=namespace,
        mutate=lambda s: msgspec.structs.replace(
            s, address_type=family, endpoints=tuple(endpoints), ports=(HTTP,)))


def checklist_objects() -> tuple[list[m.Service], list[m.EndpointSlice], list[m.Pod]]:
    http = port(80, name="http")
    services = [
        make_service("kubernetes", ports=[port(443, name="https")], cluster_ip="10.96.0.1"),
        make_service("svc1", namespace="testns", cluster_ip="10.0.0.1",
                     ports=[http, port(53, name="dns", protocol="UDP"), port(8080)]),
        make_service("svc6", namespace="testns", ports=[http],
                     mutate=_spec(cluster_ip="fd00::1", cluster_ips=("fd00::1",))),
        make_service("dual", namespace="testns", ports=[http],
                     mutate=_spec(cluster_ip="10.0.0.3", cluster_ips=("10.0.0.3", "fd00::3"))),
        make_service("hdls", namespace="testns", cluster_ip="None", ports=[http]),
        make_service("hdls-empty", namespace="testns", cluster_ip="None", ports=[http]),
        make_service("hdls-pnra", namespace="testns", cluster_ip="None", ports=[http],
                     mutate=_spec(publish_not_ready_addresses=True)),
        make_service("ext", namespace="testns",
                     mutate=_spec(type="ExternalName", external_name="www.example.com",
                                  ports=())),
        make_service("empty", namespace="testns", cluster_ip="10.0.0.9"),
    ]
    slices = [
        endpoint_slice("hdls-v4", "hdls", [endpoint("10.3.0.100", hostname="my-pet"),
                                           endpoint("10.3.0.2"),
                                           endpoint("10.3.0.9", ready=False)]),
        endpoint_slice("hdls-v6", "hdls", [endpoint("fd00::5")], family="IPv6"),
        endpoint_slice("hdls-empty-1", "hdls-empty", [endpoint("10.3.0.8", ready=False)]),
        endpoint_slice("hdls-pnra-1", "hdls-pnra", [endpoint("10.3.0.7", ready=False)]),
    ]
    pods = [
        make_pod("client", namespace="testns", ip=POD_TESTNS, ready=True),
        make_pod("other", namespace="default", ip=POD_DEFAULT, ready=True),
    ]
    return services, slices, pods


def checklist_view(*, synced: bool = True) -> DnsView:
    services, slices, pods = checklist_objects()
    return build_view(services, slices, pods, zone=ZONE, dns_ips=("10.96.0.10",),
                      synced=synced)


@pytest.fixture
def responder() -> Responder:
    return Responder(checklist_view())


# --- helpers --------------------------------------------------------------------------------------


def query(name: str, qtype: str = "A", *, payload: int | None = None, do: bool = False,
          qid: int = 4242, rd: bool = True) -> bytes:
    """A query's wire; `payload` adds an OPT (no options) with that size."""
    q = dns.message.make_query(name, qtype, use_edns=0 if payload is not None else None,
                               payload=payload, want_dnssec=do, id=qid)
    if not rd:
        q.flags &= ~dns.flags.RD
    return q.to_wire()


def limit_of(wire: bytes, transport: Transport) -> int:
    if transport == "tcp":
        return 65535
    try:
        q = dns.message.from_wire(wire)
    except Exception:
        return 512  # an error reply: header and at most the question
    return 512 if q.edns < 0 else min(max(q.payload, 512), 1232)


def raw(responder: Responder, wire: bytes, transport: Transport = "udp",
        client_ip: str | None = None) -> bytes:
    """The Answer's bytes for `wire`; checks it fits the transport's limit."""
    result = responder.respond(wire, transport=transport, client_ip=client_ip)
    assert isinstance(result, Answer), result
    assert len(result.wire) <= limit_of(wire, transport)
    return result.wire


def reply(responder: Responder, wire: bytes, transport: Transport = "udp",
          client_ip: str | None = None) -> dns.message.Message:
    """The Answer to `wire`, parsed; checks it fits the transport's limit."""
    return dns.message.from_wire(raw(responder, wire, transport, client_ip))


def forward(responder: Responder, wire: bytes, transport: Transport = "udp",
            client_ip: str | None = None) -> Forward:
    result = responder.respond(wire, transport=transport, client_ip=client_ip)
    assert isinstance(result, Forward), result
    return result


def lines(rrsets: Sequence[dns.rrset.RRset]) -> set[str]:
    return {line for rrset in rrsets for line in rrset.to_text().splitlines()}


def upstream_reply(fwd: Forward, *records: str, rcode: int = dns.rcode.NOERROR,
                   tc: bool = False, qid: int | None = None) -> bytes:
    """What an upstream answers to `fwd.query`: `records` are zone-file lines."""
    r = dns.message.make_response(fwd.query)
    r.set_rcode(dns.rcode.Rcode(rcode))
    for text in records:
        name, ttl, rdclass, rdtype, *data = text.split()
        r.answer.append(dns.rrset.from_text(name, int(ttl), rdclass, rdtype, " ".join(data)))
    if tc:
        r.flags |= dns.flags.TC
    if qid is not None:
        r.id = qid
    return r.to_wire()


# --- the checklist --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Q:
    """One query of a checklist item and what its answer must be."""

    name: str
    qtype: str = "A"
    rcode: int = dns.rcode.NOERROR
    answer: tuple[str, ...] = ()  # exact answer lines (owner TTL IN TYPE RDATA)
    negative: bool = False  # NXDOMAIN or NODATA: SOA in Authority, empty answer
    additional: tuple[str, ...] | None = None  # exact Additional lines, if checked


def nodata(name: str, qtype: str = "A") -> Q:
    return Q(name, qtype, negative=True)


def nx(name: str, qtype: str = "A") -> Q:
    return Q(name, qtype, dns.rcode.NXDOMAIN, negative=True)


SVC1 = "svc1.testns.svc.cluster.local."
HDLS = "hdls.testns.svc.cluster.local."

CHECKLIST = [
    pytest.param([Q("dns-version.cluster.local", "TXT",
                    answer=('dns-version.cluster.local. 28800 IN TXT "1.1.0"',))],
                 id="c01-dns-version"),
    pytest.param([Q("kubernetes.default.svc.cluster.local",
                    answer=("kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1",))],
                 id="c02-kubernetes-a"),
    pytest.param([Q(SVC1, answer=(f"{SVC1} 5 IN A 10.0.0.1",))], id="c04-clusterip-a"),
    pytest.param([nodata(SVC1, "AAAA")], id="c05-clusterip-aaaa-nodata"),
    pytest.param([Q("svc6.testns.svc.cluster.local", "AAAA",
                    answer=("svc6.testns.svc.cluster.local. 5 IN AAAA fd00::1",)),
                  nodata("svc6.testns.svc.cluster.local", "A")], id="c06-ipv6-service"),
    pytest.param([Q("dual.testns.svc.cluster.local", "A",
                    answer=("dual.testns.svc.cluster.local. 5 IN A 10.0.0.3",)),
                  Q("dual.testns.svc.cluster.local", "AAAA",
                    answer=("dual.testns.svc.cluster.local. 5 IN AAAA fd00::3",))],
                 id="c07-dual-stack"),
    pytest.param([Q(f"_http._tcp.{SVC1}", "SRV",
                    answer=(f"_http._tcp.{SVC1} 5 IN SRV 0 100 80 {SVC1}",),
                    additional=(f"{SVC1} 5 IN A 10.0.0.1",))], id="c08-srv-http"),
    pytest.param([Q(f"_dns._udp.{SVC1}", "SRV",
                    answer=(f"_dns._udp.{SVC1} 5 IN SRV 0 100 53 {SVC1}",),
                    additional=(f"{SVC1} 5 IN A 10.0.0.1",))], id="c09-srv-dns-udp"),
    pytest.param([nx(f"_dns._tcp.{SVC1}", "SRV"), nx(f"_nope._tcp.{SVC1}", "SRV")],
                 id="c10-srv-mismatch-nxdomain"),
    pytest.param([nx(f"_8080._tcp.{SVC1}", "SRV"), nx(f"_tcp.{SVC1}", "SRV"),
                  nx(f"_tcp.{SVC1}", "A")], id="c11-unnamed-port-nxdomain"),
    pytest.param([Q(SVC1, "SRV", answer=(f"{SVC1} 5 IN SRV 0 33 80 {SVC1}",
                                         f"{SVC1} 5 IN SRV 0 33 53 {SVC1}",
                                         f"{SVC1} 5 IN SRV 0 33 8080 {SVC1}"),
                    additional=(f"{SVC1} 5 IN A 10.0.0.1",))], id="c12-bare-srv"),
    pytest.param([Q("1.0.0.10.in-addr.arpa", "PTR",
                    answer=(f"1.0.0.10.in-addr.arpa. 5 IN PTR {SVC1}",))], id="c13-ptr-v4"),
    pytest.param([Q("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
                    "PTR", answer=("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
                                   ".d.f.ip6.arpa. 5 IN PTR svc6.testns.svc.cluster.local.",))],
                 id="c14-ptr-v6"),
    pytest.param([Q(HDLS, answer=(f"{HDLS} 5 IN A 10.3.0.100", f"{HDLS} 5 IN A 10.3.0.2"))],
                 id="c15-headless-ready-only"),
    pytest.param([Q(HDLS, "AAAA", answer=(f"{HDLS} 5 IN AAAA fd00::5",))],
                 id="c16-headless-aaaa"),
    pytest.param([Q(f"my-pet.{HDLS}", answer=(f"my-pet.{HDLS} 5 IN A 10.3.0.100",))],
                 id="c17-hostname"),
    pytest.param([Q(f"10-3-0-2.{HDLS}", answer=(f"10-3-0-2.{HDLS} 5 IN A 10.3.0.2",)),
                  Q(f"fd00--5.{HDLS}", "AAAA", answer=(f"fd00--5.{HDLS} 5 IN AAAA fd00::5",)),
                  nx(f"10-3-0-9.{HDLS}")], id="c18-dashed-ip-names"),
    pytest.param([Q(f"_http._tcp.{HDLS}", "SRV",
                    answer=(f"_http._tcp.{HDLS} 5 IN SRV 0 33 80 my-pet.{HDLS}",
                            f"_http._tcp.{HDLS} 5 IN SRV 0 33 80 10-3-0-2.{HDLS}",
                            f"_http._tcp.{HDLS} 5 IN SRV 0 33 80 fd00--5.{HDLS}"),
                    additional=(f"my-pet.{HDLS} 5 IN A 10.3.0.100",
                                f"10-3-0-2.{HDLS} 5 IN A 10.3.0.2",
                                f"fd00--5.{HDLS} 5 IN AAAA fd00::5"))],
                 id="c19-headless-srv"),
    pytest.param([Q("100.0.3.10.in-addr.arpa", "PTR",
                    answer=(f"100.0.3.10.in-addr.arpa. 5 IN PTR my-pet.{HDLS}",)),
                  Q("2.0.3.10.in-addr.arpa", "PTR",
                    answer=(f"2.0.3.10.in-addr.arpa. 5 IN PTR 10-3-0-2.{HDLS}",))],
                 id="c20-ptr-headless"),
    pytest.param([nx("hdls-empty.testns.svc.cluster.local"),
                  nx("hdls-empty.testns.svc.cluster.local", "AAAA"),
                  nx("_http._tcp.hdls-empty.testns.svc.cluster.local", "SRV")],
                 id="c21-headless-no-ready-nxdomain"),
    pytest.param([Q("hdls-pnra.testns.svc.cluster.local",
                    answer=("hdls-pnra.testns.svc.cluster.local. 5 IN A 10.3.0.7",))],
                 id="c22-publish-not-ready"),
    pytest.param([nx(f"bogus.{HDLS}"), nx(f"bogus.{HDLS}", "AAAA")], id="c23-bogus-hostname"),
    pytest.param([Q("ext.testns.svc.cluster.local", "CNAME",
                    answer=("ext.testns.svc.cluster.local. 5 IN CNAME www.example.com.",))],
                 id="c24-externalname-cname"),
    pytest.param([nx("x.ext.testns.svc.cluster.local"),
                  nx("x.ext.testns.svc.cluster.local", "CNAME")],
                 id="c26-externalname-subdomain"),
    pytest.param([Q("empty.testns.svc.cluster.local",
                    answer=("empty.testns.svc.cluster.local. 5 IN A 10.0.0.9",))],
                 id="c27-clusterip-without-endpoints"),
    pytest.param([nx("nosuch.testns.svc.cluster.local", t) for t in ("A", "AAAA", "TXT", "MX")],
                 id="c28-unknown-service-every-type"),
    pytest.param([nx("svc1.nosuchns.svc.cluster.local"),
                  nx("svc1.nosuchns.svc.cluster.local", "AAAA")], id="c29-unknown-namespace"),
    pytest.param([nodata("testns.svc.cluster.local"), nodata("svc.cluster.local"),
                  nodata("pod.cluster.local"), nodata("cluster.local"),
                  nodata("testns.pod.cluster.local"), nodata("testns.svc.cluster.local", "AAAA")],
                 id="c30-empty-non-terminals-nodata"),
    pytest.param([nx("foo.cluster.local"), nx("a.b.c.d.e.testns.svc.cluster.local"),
                  nx("svc1.testns.xyz.cluster.local"), nx("foo.cluster.local", "AAAA")],
                 id="c31-nxdomain-shapes"),
    pytest.param([Q("10-244-1-5.testns.pod.cluster.local",
                    answer=("10-244-1-5.testns.pod.cluster.local. 5 IN A 10.244.1.5",)),
                  nodata("10-244-1-5.testns.pod.cluster.local", "AAAA"),
                  nx("10-244-1-5.default.pod.cluster.local"),
                  nx("10-244-1-6.testns.pod.cluster.local")], id="c32-pod-a"),
    pytest.param([nx("blah.testns.pod.cluster.local")], id="c33-pod-bogus"),
    pytest.param([Q("cluster.local", "SOA", answer=(SOA_LINE,))], id="c34-apex-soa"),
    pytest.param([Q("cluster.local", "NS", answer=("cluster.local. 5 IN NS ns.dns.cluster.local.",),
                    additional=("ns.dns.cluster.local. 5 IN A 10.96.0.10",))],
                 id="c35-apex-ns-glue"),
    pytest.param([nodata(SVC1, "SOA"), nodata(SVC1, "NS"), nodata(SVC1, "TXT")],
                 id="c36-soa-on-service-nodata"),
]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("queries", CHECKLIST)
def test_checklist(responder: Responder, queries: list[Q], transport: Transport) -> None:
    for q in queries:
        wire = query(q.name, q.qtype)
        first_wire = raw(responder, wire, transport)
        assert raw(responder, wire, transport) == first_wire  # the fast path
        first = dns.message.from_wire(first_wire)
        assert first.rcode() == q.rcode, (q, first)
        assert first.flags & dns.flags.AA and first.flags & dns.flags.RA
        assert not first.flags & dns.flags.TC
        assert lines(first.answer) == set(q.answer), q
        assert lines(first.authority) == ({SOA_LINE} if q.negative else set()), q
        if q.additional is not None:
            assert lines(first.additional) == set(q.additional), q
        assert first.question[0].to_text() == dns.rrset.RRset(
            dns.name.from_text(q.name), dns.rdataclass.IN,
            dns.rdatatype.from_text(q.qtype)).to_text()


def test_c03_tcp_answer_is_identical(responder: Responder) -> None:
    wire = query("kubernetes.default.svc.cluster.local", "A")
    udp = responder.respond(wire, transport="udp")
    tcp = responder.respond(wire, transport="tcp")
    assert isinstance(udp, Answer) and isinstance(tcp, Answer)
    assert udp.wire == tcp.wire


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_c25_externalname_a_chases_upstream(responder: Responder, transport: Transport) -> None:
    fwd = forward(responder, query("ext.testns.svc.cluster.local", "A", qid=7), transport)
    assert fwd.query.question[0].name == dns.name.from_text("www.example.com")
    assert fwd.query.question[0].rdtype == dns.rdatatype.A
    assert fwd.query.flags & dns.flags.RD
    up = upstream_reply(fwd, "www.example.com. 300 IN A 93.184.216.34")
    out = dns.message.from_wire(finish(fwd, up, transport=transport))
    assert out.id == 7 and out.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for r in out.answer] == [
        "ext.testns.svc.cluster.local. 5 IN CNAME www.example.com.",
        "www.example.com. 300 IN A 93.184.216.34",
    ]
    assert out.flags & dns.flags.RA and not out.flags & dns.flags.TC
    truncated = upstream_reply(fwd, tc=True)
    out = dns.message.from_wire(finish(fwd, truncated, transport=transport))
    assert out.flags & dns.flags.TC  # CoreDNS "CNAME External Truncated Lookup"
    assert lines(out.answer) == {"ext.testns.svc.cluster.local. 5 IN CNAME www.example.com."}


def test_c25_externalname_to_a_zone_name_is_answered_here() -> None:
    services, slices, pods = checklist_objects()
    services.append(make_service("alias", namespace="testns", mutate=_spec(
        type="ExternalName", external_name="svc1.testns.svc.cluster.local", ports=())))
    out = reply(Responder(build_view(services, slices, pods)),
                query("alias.testns.svc.cluster.local", "A"))
    assert [r.to_text() for r in out.answer] == [
        "alias.testns.svc.cluster.local. 5 IN CNAME svc1.testns.svc.cluster.local.",
        "svc1.testns.svc.cluster.local. 5 IN A 10.0.0.1",
    ]
    assert out.flags & dns.flags.AA


def test_externalname_loop_is_servfail() -> None:
    services = [
        make_service("a", namespace="ns", mutate=_spec(
            type="ExternalName", external_name="b.ns.svc.cluster.local", ports=())),
        make_service("b", namespace="ns", mutate=_spec(
            type="ExternalName", external_name="a.ns.svc.cluster.local", ports=())),
    ]
    out = reply(Responder(build_view(services, [], [])), query("a.ns.svc.cluster.local"))
    assert out.rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_c37_zone_transfer_refused(responder: Responder, transport: Transport) -> None:
    for qtype in ("AXFR", "IXFR"):
        out = reply(responder, query("cluster.local", qtype), transport)
        assert out.rcode() == dns.rcode.REFUSED
        assert not out.answer


def test_c38_case_is_echoed(responder: Responder) -> None:
    name = "SvC1.TeStNs.SvC.cLuStEr.LoCaL."
    wire = query(name, "A")
    for _ in range(2):  # slow path, then fast path
        result = responder.respond(wire, transport="udp")
        assert isinstance(result, Answer)
        assert result.wire[12:12 + len(wire) - 12] == wire[12:]  # the question's own bytes
        out = dns.message.from_wire(result.wire)
        assert out.answer[0].name.to_text() == name
        assert out.answer[0].to_text() == f"{name} 5 IN A 10.0.0.1"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_c39_external_name_is_forwarded(responder: Responder, transport: Transport) -> None:
    fwd = forward(responder, query("www.example.com", "A", qid=99), transport)
    assert fwd.prefix == () and fwd.fallback is None
    assert fwd.query.question[0].name == dns.name.from_text("www.example.com")
    up = upstream_reply(fwd, "www.example.com. 300 IN A 93.184.216.34", qid=31337)
    out = dns.message.from_wire(finish(fwd, up, transport=transport))
    assert out.id == 99  # the client's ID, whatever ID the upstream used
    assert out.flags & dns.flags.RA and not out.flags & dns.flags.AA
    assert lines(out.answer) == {"www.example.com. 300 IN A 93.184.216.34"}


def test_c39_forwarded_rcode_and_failures(responder: Responder) -> None:
    fwd = forward(responder, query("nope.example.com", "A"))
    out = dns.message.from_wire(finish(fwd, upstream_reply(fwd, rcode=dns.rcode.NXDOMAIN),
                                       transport="udp"))
    assert out.rcode() == dns.rcode.NXDOMAIN
    for bad in (None, b"", b"\x00" * 11, b"garbage" * 3, fwd.query.to_wire()):  # last: QR=0
        out = dns.message.from_wire(finish(fwd, bad, transport="udp"))
        assert out.rcode() == dns.rcode.SERVFAIL and out.id == fwd.original.id
    other = forward(responder, query("other.example.com", "A"))
    out = dns.message.from_wire(finish(fwd, upstream_reply(other), transport="udp"))
    assert out.rcode() == dns.rcode.SERVFAIL  # a reply to another question


def test_c40_foreign_reverse_name_is_forwarded(responder: Responder) -> None:
    fwd = forward(responder, query("8.8.8.8.in-addr.arpa", "PTR"))
    assert fwd.query.question[0].name == dns.name.from_text("8.8.8.8.in-addr.arpa")
    fwd6 = forward(responder, query("8.8.8.8.ip6.arpa", "PTR"))
    assert fwd6.query.question[0].rdtype == dns.rdatatype.PTR
    # A cluster IP's reverse name with another type is ours: NODATA with the reverse SOA.
    out = reply(responder, query("1.0.0.10.in-addr.arpa", "A"))
    assert out.rcode() == dns.rcode.NOERROR and not out.answer
    assert out.authority[0].name == dns.name.from_text("in-addr.arpa")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_c41_servfail_before_sync(transport: Transport) -> None:
    responder = Responder(checklist_view(synced=False))
    for name, qtype in [(SVC1, "A"), ("nosuch.testns.svc.cluster.local", "A"),
                        ("cluster.local", "SOA"), ("1.0.0.10.in-addr.arpa", "PTR"),
                        ("8.8.8.8.in-addr.arpa", "PTR")]:
        for _ in range(2):
            out = reply(responder, query(name, qtype), transport)
            assert out.rcode() == dns.rcode.SERVFAIL, name
            assert not out.flags & dns.flags.AA and out.flags & dns.flags.RA
    forward(responder, query("www.example.com", "A"), transport)  # outside: still forwarded


def test_c42_changes_show_in_the_next_view() -> None:
    services, slices, pods = checklist_objects()
    old = Responder(build_view(services, slices, pods))
    assert reply(old, query(SVC1)).rcode() == dns.rcode.NOERROR
    assert len(reply(old, query(HDLS)).answer[0]) == 2
    # svc1 deleted; my-pet becomes not ready.
    services = [s for s in services if s.metadata.name != "svc1"]
    slices[0] = endpoint_slice("hdls-v4", "hdls", [endpoint("10.3.0.100", hostname="my-pet",
                                                            ready=False),
                                                   endpoint("10.3.0.2")])
    new = Responder(build_view(services, slices, pods))
    assert reply(new, query(SVC1)).rcode() == dns.rcode.NXDOMAIN
    assert lines(reply(new, query(HDLS)).answer) == {f"{HDLS} 5 IN A 10.3.0.2"}
    assert reply(new, query(f"my-pet.{HDLS}")).rcode() == dns.rcode.NXDOMAIN
    assert isinstance(new.respond(query("1.0.0.10.in-addr.arpa", "PTR"), transport="udp"),
                      Forward)


def big_objects(n: int) -> tuple[m.Service, m.EndpointSlice]:
    """A headless service with `n` ready endpoints: 100 A records need 1.7 KB."""
    service = make_service("big", namespace="testns", cluster_ip="None",
                           ports=[port(80, name="http")])
    sl = endpoint_slice("big-1", "big", [endpoint(f"10.5.{i // 250}.{i % 250 + 1}")
                                         for i in range(n)])
    return service, sl


def big_headless(n: int = 100) -> Responder:
    service, sl = big_objects(n)
    return Responder(build_view([service], [sl], []))


BIG = "big.testns.svc.cluster.local."


def test_c43_large_answer_truncated_over_udp_whole_over_tcp() -> None:
    responder = big_headless(100)
    for _ in range(2):
        udp = reply(responder, query(BIG, "A"), "udp")
        assert udp.flags & dns.flags.TC
        assert udp.question[0].name == dns.name.from_text(BIG)  # glibc needs the question
        assert udp.edns < 0
        tcp = reply(responder, query(BIG, "A"), "tcp")
        assert not tcp.flags & dns.flags.TC
        assert len(tcp.answer[0]) == 100


def test_c43_srv_additional_dropped_without_tc() -> None:
    responder = big_headless(20)  # 20 SRV fit in 1232 bytes, their 20 A records do not
    out = reply(responder, query(f"_http._tcp.{BIG}", "SRV", payload=1232), "udp")
    assert not out.flags & dns.flags.TC
    assert len(out.answer[0]) == 20
    assert len(lines(out.additional)) < 20
    full = reply(responder, query(f"_http._tcp.{BIG}", "SRV", payload=1232), "tcp")
    assert len(lines(full.additional)) == 20


def test_c44_edns_limits_and_opt_echo() -> None:
    responder = big_headless(60)  # ~1000 bytes: over 512, under 1232
    plain = responder.respond(query(BIG, "A"), transport="udp")
    edns = responder.respond(query(BIG, "A", payload=1232), transport="udp")
    big = responder.respond(query(BIG, "A", payload=4096), transport="udp")
    small = responder.respond(query(BIG, "A", payload=100), transport="udp")
    assert isinstance(plain, Answer) and isinstance(edns, Answer)
    assert isinstance(big, Answer) and isinstance(small, Answer)
    plain_m, edns_m = dns.message.from_wire(plain.wire), dns.message.from_wire(edns.wire)
    assert len(plain.wire) <= 512 and plain_m.flags & dns.flags.TC and plain_m.edns < 0
    assert len(edns.wire) <= 1232 and not edns_m.flags & dns.flags.TC
    assert edns_m.edns == 0 and edns_m.payload == 1232 and len(edns_m.answer[0]) == 60
    assert dns.message.from_wire(big.wire).payload == 1232  # our ceiling, not the client's
    assert len(small.wire) <= 512 and dns.message.from_wire(small.wire).flags & dns.flags.TC
    huge = big_headless(100)
    out = dns.message.from_wire(reply(huge, query(BIG, "A", payload=4096)).to_wire())
    assert out.flags & dns.flags.TC  # 4096 is capped at 1232


# --- the fast path against the slow path ----------------------------------------------------------

TABLE = [
    (SVC1, "A"), (SVC1, "AAAA"), (SVC1, "SRV"), (SVC1, "ANY"), (f"_http._tcp.{SVC1}", "SRV"),
    (HDLS, "A"), (HDLS, "AAAA"), (f"_http._tcp.{HDLS}", "SRV"),
    ("nosuch.testns.svc.cluster.local", "A"), ("testns.svc.cluster.local", "A"),
    ("cluster.local", "SOA"), ("cluster.local", "NS"), ("cluster.local", "ANY"),
    ("dns-version.cluster.local", "TXT"), ("1.0.0.10.in-addr.arpa", "PTR"),
    ("ext.testns.svc.cluster.local", "CNAME"), ("10-244-1-5.testns.pod.cluster.local", "A"),
    ("cluster.local", "AXFR"), ("hdls-empty.testns.svc.cluster.local", "A"),
    ("ns.dns.cluster.local", "A"), (BIG, "A"),
]


def mixed_case(name: str) -> str:
    return "".join(c.upper() if i % 2 else c for i, c in enumerate(name))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("payload", [None, 512, 1232, 4096])
@pytest.mark.parametrize("do", [False, True])
def test_fast_path_is_byte_identical_to_slow_path(
    transport: Transport, payload: int | None, do: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    services, slices, pods = checklist_objects()
    service, sl = big_objects(100)  # a name whose answer needs truncating over UDP
    view = build_view([*services, service], [*slices, sl], pods)
    fast, slow = Responder(view), Responder(view, cache_size=0)
    if payload is None and do:
        return  # DO needs EDNS
    for name, qtype in TABLE:
        fill = query(name, qtype, payload=payload, do=do, qid=1)
        assert isinstance(fast.respond(fill, transport=transport), Answer)
    assert fast.cached == len(TABLE)

    def no_slow_path(*_: object) -> None:
        raise AssertionError("fast path expected")

    for name, qtype in TABLE:
        for rd in (True, False):
            wire = query(mixed_case(name), qtype, payload=payload, do=do, qid=0xBEEF, rd=rd)
            expected = slow.respond(wire, transport=transport)
            with monkeypatch.context() as patch:
                patch.setattr(fast, "_slow", no_slow_path)
                got = fast.respond(wire, transport=transport)
            assert isinstance(got, Answer) and isinstance(expected, Answer)
            assert got.wire == expected.wire, (name, qtype, rd)


@pytest.mark.parametrize(("qname", "qtype", "payload", "n"), [
    (BIG, "A", None, 100), (BIG, "A", 1232, 100), (BIG, "ANY", 1232, 100),
    (f"_http._tcp.{BIG}", "SRV", 1232, 20), (f"_http._tcp.{BIG}", "SRV", None, 20),
    (f"_http._tcp.{BIG}", "SRV", 1232, 40), (BIG, "A", 1232, 60),
])
def test_left_out_rrsets_match_dnspython_truncation(
    qname: str, qtype: str, payload: int | None, n: int
) -> None:
    """RRsets the responder does not even build (too big to fit) give the very bytes
    dnspython renders when it is given everything and truncates by itself."""
    responder = big_headless(n)
    wire = query(qname, qtype, payload=payload)
    got = responder.respond(wire, transport="udp")
    assert isinstance(got, Answer)
    full = reply(responder, wire, "tcp")  # everything, built and rendered by dnspython
    q = dns.message.from_wire(wire)
    expected = dns.message.make_response(q, recursion_available=True, our_payload=1232, pad=0)
    expected.flags |= dns.flags.AA
    expected.answer, expected.additional = full.answer, full.additional
    assert got.wire == expected.to_wire(max_size=limit_of(wire, "udp"), prefer_truncation=True,
                                        want_shuffle=False)


def test_queries_that_are_not_plain_take_the_slow_path(responder: Responder) -> None:
    q = dns.message.make_query(SVC1, "A", use_edns=0,
                               options=[dns.edns.GenericOption(dns.edns.COOKIE, b"12345678")])
    for _ in range(2):
        out = reply(responder, q.to_wire())
        assert lines(out.answer) == {f"{SVC1} 5 IN A 10.0.0.1"}
    https = query(SVC1, "HTTPS")  # type 65 is 0x0041, "A": never stored
    for _ in range(2):
        out = reply(responder, https)
        assert out.rcode() == dns.rcode.NOERROR and not out.answer
    assert responder.cached == 0  # an option, a letter in the type: nothing was stored
    reply(responder, query(SVC1, "A"))
    assert responder.cached == 1


def test_cache_is_bounded() -> None:
    responder = Responder(checklist_view(), cache_size=10)
    for i in range(25):
        reply(responder, query(f"n{i}.testns.svc.cluster.local"))
        assert responder.cached <= 10


# --- headers: errors, drops, flags ----------------------------------------------------------------


def header(qid: int = 0x1234, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0,
           ar: int = 0) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in (qid, flags, qd, an, ns, ar))


def test_too_short_or_response_is_dropped(responder: Responder) -> None:
    for wire in (b"", b"\x12", b"\x00" * 11):
        assert responder.respond(wire, transport="udp") is None
    response = header(flags=0x8100) + query(SVC1)[12:]
    assert responder.respond(response, transport="udp") is None


def test_unparsable_message_is_formerr_with_its_id(responder: Responder) -> None:
    for wire in (header(), header() + b"\x05abc", query(SVC1, qid=0x1234) + b"junk",
                 header(qd=2) + query(SVC1)[12:] * 2, header(qd=0)):
        out = reply(responder, wire)
        assert out.id == 0x1234 and out.rcode() == dns.rcode.FORMERR
        assert out.flags & dns.flags.RD and out.flags & dns.flags.QR
    out = reply(responder, query(SVC1, qid=0x1234) + b"junk")
    assert out.question[0].name == dns.name.from_text(SVC1)  # the question alone parsed


def test_other_opcodes_are_notimp(responder: Responder) -> None:
    for opcode in (dns.opcode.NOTIFY, dns.opcode.UPDATE, dns.opcode.IQUERY, dns.opcode.STATUS, 3):
        wire = header(flags=0x0100 | (opcode << 11)) + query(SVC1)[12:]
        out = reply(responder, wire)
        assert out.rcode() == dns.rcode.NOTIMP and out.opcode() == opcode


def test_class_version_and_meta_types(responder: Responder) -> None:
    chaos = dns.message.make_query("version.bind", "TXT", "CH")
    assert reply(responder, chaos.to_wire()).rcode() == dns.rcode.REFUSED
    v1 = dns.message.make_query(SVC1, "A", use_edns=1)
    out = reply(responder, v1.to_wire())
    assert out.rcode() == dns.rcode.BADVERS and out.edns == 0
    for qtype in ("MAILA", "MAILB", "TKEY"):
        assert reply(responder, query(SVC1, qtype)).rcode() == dns.rcode.NOTIMP


def test_flags_rd_do_and_opt(responder: Responder) -> None:
    out = reply(responder, query(SVC1, rd=False))
    assert not out.flags & dns.flags.RD and out.flags & dns.flags.RA
    out = reply(responder, query(SVC1, payload=1232, do=True))
    assert out.ednsflags & dns.flags.DO and out.payload == 1232
    out = reply(responder, query(SVC1, payload=1232))
    assert not out.ednsflags & dns.flags.DO
    assert reply(responder, query(SVC1)).edns < 0


def test_alternative_pod_spelling_and_ipv6_pod() -> None:
    services, slices, pods = checklist_objects()
    status = m.PodStatus(phase="Running", pod_ip="fd00::7", pod_ips=(m.PodIP(ip="fd00::7"),))
    pods.append(make_pod("six", namespace="testns",
                         mutate=lambda p: msgspec.structs.replace(p, status=status)))
    responder = Responder(build_view(services, slices, pods))
    for name in ("fd00--7.testns.pod.cluster.local",
                 "fd00-0-0-0-0-0-0-7.testns.pod.cluster.local"):
        out = reply(responder, query(name, "AAAA"))
        assert lines(out.answer) == {f"{name}. 5 IN AAAA fd00::7"}


# --- autopath -------------------------------------------------------------------------------------


def test_autopath_short_name_in_the_zone(responder: Responder) -> None:
    name = "kubernetes.default.testns.svc.cluster.local."  # `kubernetes.default` from testns
    for _ in range(2):
        out = reply(responder, query(name), client_ip=POD_TESTNS)
        assert out.rcode() == dns.rcode.NOERROR
        assert [r.to_text() for r in out.answer] == [
            f"{name} 5 IN CNAME kubernetes.default.svc.cluster.local.",
            "kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1",
        ]


def test_autopath_zone_suffix(responder: Responder) -> None:
    name = "dns-version.testns.svc.cluster.local."
    out = reply(responder, query(name, "TXT"), client_ip=POD_TESTNS)
    assert [r.to_text() for r in out.answer] == [
        f"{name} 5 IN CNAME dns-version.cluster.local.",
        'dns-version.cluster.local. 28800 IN TXT "1.1.0"',
    ]


def test_autopath_external_name(responder: Responder) -> None:
    name = "www.example.com.testns.svc.cluster.local."
    fwd = forward(responder, query(name, qid=5), client_ip=POD_TESTNS)
    assert fwd.query.question[0].name == dns.name.from_text("www.example.com")
    out = dns.message.from_wire(finish(
        fwd, upstream_reply(fwd, "www.example.com. 60 IN A 93.184.216.34"), transport="udp"))
    assert out.id == 5 and out.rcode() == dns.rcode.NOERROR
    assert [r.to_text() for r in out.answer] == [
        f"{name} 5 IN CNAME www.example.com.",
        "www.example.com. 60 IN A 93.184.216.34",
    ]
    # Upstream NXDOMAIN, or no upstream: the plain NXDOMAIN, so the client walks its search list.
    for up in (upstream_reply(fwd, rcode=dns.rcode.NXDOMAIN), None):
        out = dns.message.from_wire(finish(fwd, up, transport="udp"))
        assert out.rcode() == dns.rcode.NXDOMAIN and not out.answer
        assert lines(out.authority) == {SOA_LINE} and out.flags & dns.flags.AA


def test_no_autopath_for_other_clients(responder: Responder) -> None:
    name = "kubernetes.default.testns.svc.cluster.local."
    for client in (None, NOT_A_POD, POD_DEFAULT):  # no pod, or a pod of another namespace
        out = reply(responder, query(name), client_ip=client)
        assert out.rcode() == dns.rcode.NXDOMAIN and not out.answer
    # The NXDOMAIN is cached now; a pod of testns still gets autopath from the fast path.
    out = reply(responder, query(name), client_ip=POD_TESTNS)
    assert out.rcode() == dns.rcode.NOERROR and len(out.answer) == 2
    out = reply(responder, query(name), client_ip="::ffff:" + POD_TESTNS)
    assert out.rcode() == dns.rcode.NOERROR and len(out.answer) == 2
    # A name that exists is answered as it is.
    out = reply(responder, query(SVC1), client_ip=POD_TESTNS)
    assert lines(out.answer) == {f"{SVC1} 5 IN A 10.0.0.1"}


def test_autopath_answers_come_from_the_fast_path(
    responder: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "kubernetes.default.testns.svc.cluster.local."
    wire = query(name)
    pod_first = raw(responder, wire, client_ip=POD_TESTNS)  # autopath, stored for testns pods
    other_first = raw(responder, wire, client_ip=NOT_A_POD)  # NXDOMAIN, stored for the rest

    def no_slow_path(*_: object) -> None:
        raise AssertionError("fast path expected")

    monkeypatch.setattr(responder, "_slow", no_slow_path)
    for _ in range(2):
        assert raw(responder, wire, client_ip=POD_TESTNS) == pod_first
        assert raw(responder, wire, client_ip=NOT_A_POD) == other_first
        assert raw(responder, wire, client_ip=POD_DEFAULT) == other_first
        assert raw(responder, wire) == other_first
    assert dns.message.from_wire(pod_first).rcode() == dns.rcode.NOERROR
    assert dns.message.from_wire(other_first).rcode() == dns.rcode.NXDOMAIN


def test_autopath_all_nxdomain_in_zone_returns_the_original(responder: Responder) -> None:
    name = "nope.cluster.local.testns.svc.cluster.local."  # X. is itself in the zone: NX
    out = reply(responder, query(name), client_ip=POD_TESTNS)
    assert out.rcode() == dns.rcode.NXDOMAIN and not out.answer


# --- never a crash --------------------------------------------------------------------------------

SEEDS = [
    query(SVC1), query(SVC1, "SRV", payload=1232), query(f"_http._tcp.{HDLS}", "SRV"),
    query("www.example.com", "AAAA", payload=4096, do=True), query("cluster.local", "AXFR"),
    query("1.0.0.10.in-addr.arpa", "PTR"), query("kubernetes.default.testns.svc.cluster.local"),
    dns.message.make_query(SVC1, "A", use_edns=0, options=[
        dns.edns.GenericOption(dns.edns.COOKIE, b"12345678")]).to_wire(),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    wire = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(wire) - 1, 0)))
        if action == "flip" and wire:
            wire[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "set" and wire:
            wire[at] = draw(st.integers(0, 255))
        elif action == "insert":
            wire[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and wire:
            del wire[at:at + draw(st.integers(1, 8))]
        elif action == "truncate":
            del wire[at:]
    return bytes(wire)


SHARED = Responder(checklist_view())


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wire=mutated(), transport=st.sampled_from(["udp", "tcp"]),
       client=st.sampled_from([None, POD_TESTNS, NOT_A_POD]))
def test_mutated_queries_never_raise(wire: bytes, transport: Transport,
                                     client: str | None) -> None:
    result = SHARED.respond(wire, transport=transport, client_ip=client)
    assert result is None or isinstance(result, Answer | Forward)
    if isinstance(result, Answer):
        out = dns.message.from_wire(result.wire)  # always a well-formed message
        assert out.flags & dns.flags.QR and out.id == int.from_bytes(wire[:2], "big")
        if transport == "udp":
            assert len(result.wire) <= 1232
    if isinstance(result, Forward):
        for up in (None, b"\x00" * 12, wire):
            finish(result, up, transport=transport)
