"""core.dnsview: which names and records the cluster zone holds, from the objects alone.

Covered: the name helpers (canonical_ip, dashed, reverse_name); ClusterIP services (dual-stack,
no IP yet, SRV per named port); headless services (ready rules, nil ready, serving and
terminating ignored, publishNotReadyAddresses, hostnames, duplicates across slices, dual-stack
hostnames, FQDN slices, per-slice ports); ExternalName targets; pods (finished, host network,
ambiguous IPs, IPv6 spellings); a name several services give records; empty non-terminals; bad
names skipped; argument checks. Views kept up to date change by change: test_dnsview_incremental.py.
Answers built from the view are tested in test_dnsanswer.py.

Conventions: zone ``cluster.local``; services in namespace ``ns``; endpoint IPs 10.3.0.0/16.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.dnsview import (
    AAAA,
    CNAME,
    PTR,
    SRV,
    A,
    Srv,
    Value,
    build_view,
    canonical_ip,
    dashed,
    reverse_name,
)
from clusterip.testing.builders import make_endpoint_slice, make_pod, make_service, port

Z = "cluster.local."


def srvs(values: Sequence[Value]) -> list[Srv]:
    assert all(isinstance(v, Srv) for v in values)
    return [v for v in values if isinstance(v, Srv)]


def headless(name: str = "h", *, pnra: bool = False) -> m.Service:
    svc = make_service(name, namespace="ns", cluster_ip="None", ports=[port(80, name="http")])
    spec = msgspec.structs.replace(svc.spec, publish_not_ready_addresses=pnra)
    return msgspec.structs.replace(svc, spec=spec)


def ep(ip: str, *, ready: bool | None = True, serving: bool | None = None,
       terminating: bool | None = None, hostname: str | None = None) -> m.Endpoint:
    return m.Endpoint(addresses=(ip,), hostname=hostname, conditions=m.EndpointConditions(
        ready=ready, serving=serving, terminating=terminating))


def slice_of(name: str, endpoints: Sequence[m.Endpoint], *, service: str = "h",
             family: str = "IPv4", ports: Sequence[m.EndpointPort] | None = None
             ) -> m.EndpointSlice:
    ports = (m.EndpointPort(name="http", protocol="TCP", port=80),) if ports is None else ports
    return make_endpoint_slice(name, service=service, namespace="ns", mutate=lambda s: (
        msgspec.structs.replace(s, address_type=family, endpoints=tuple(endpoints),
                                ports=tuple(ports))))


@pytest.mark.parametrize(("text", "canonical"), [
    ("10.0.0.1", "10.0.0.1"), ("FD00:0:0::5", "fd00::5"), ("010.0.0.1", None),
    ("256.0.0.1", None), ("", None), ("None", None), ("fe80::1%eth0", None), ("1.2.3", None),
    ("١.٢.٣.٤", None),
])
def test_canonical_ip(text: str, canonical: str | None) -> None:
    assert canonical_ip(text) == canonical


@pytest.mark.parametrize(("ip", "name"), [
    ("10.3.0.2", "10-3-0-2"), ("fd00::5", "fd00--5"), ("fd00::", "fd00--0"), ("::1", "--1"),
    ("2001:db8:1:2:3:4:5:6", "2001-db8-1-2-3-4-5-6"),
])
def test_dashed(ip: str, name: str) -> None:
    assert dashed(ip) == name


def test_reverse_name() -> None:
    assert reverse_name("10.0.0.1") == "1.0.0.10.in-addr.arpa."
    assert reverse_name("fd00::1") == "1." + "0." * 29 + "d.f.ip6.arpa."


def test_clusterip_service_records() -> None:
    svc = make_service("web", namespace="ns", ports=[port(80, name="http"), port(9090)],
                       mutate=lambda s: msgspec.structs.replace(s, spec=msgspec.structs.replace(
                           s.spec, cluster_ip="10.0.0.5", cluster_ips=("10.0.0.5", "fd00::5"))))
    view = build_view([svc], [], [])
    node = view.records[f"web.ns.svc.{Z}"]
    assert node[A] == ["10.0.0.5"] and node[AAAA] == ["fd00::5"]
    assert node[SRV] == [Srv(0, 50, 80, f"web.ns.svc.{Z}"), Srv(0, 50, 9090, f"web.ns.svc.{Z}")]
    assert view.records[f"_http._tcp.web.ns.svc.{Z}"][SRV] == [Srv(0, 100, 80, f"web.ns.svc.{Z}")]
    assert view.records["5.0.0.10.in-addr.arpa."][PTR] == [f"web.ns.svc.{Z}"]
    assert f"_9090._tcp.web.ns.svc.{Z}" not in view.records


def test_service_without_a_cluster_ip_yet_has_no_name() -> None:
    view = build_view([make_service("web", namespace="ns")], [], [])
    assert not view.exists(f"web.ns.svc.{Z}")
    assert view.exists(f"ns.svc.{Z}")  # its namespace exists all the same


def test_headless_ready_rules() -> None:
    endpoints = [
        ep("10.3.0.1"),  # ready
        ep("10.3.0.2", ready=None),  # nil: ready
        ep("10.3.0.3", ready=False, serving=True, terminating=True),  # serving: not published
        ep("10.3.0.4", ready=True, terminating=True),  # ready wins, as CoreDNS
        ep("10.3.0.5", ready=False),
    ]
    view = build_view([headless()], [slice_of("h-1", endpoints)], [])
    assert view.records[f"h.ns.svc.{Z}"][A] == ["10.3.0.1", "10.3.0.2", "10.3.0.4"]
    published = build_view([headless(pnra=True)], [slice_of("h-1", endpoints)], [])
    assert len(published.records[f"h.ns.svc.{Z}"][A]) == 5


def test_headless_names_across_slices() -> None:
    slices = [
        slice_of("h-a", [ep("10.3.0.1", hostname="db-0"), ep("10.3.0.2")]),
        slice_of("h-b", [ep("10.3.0.2")]),  # the same endpoint in two slices (a move)
        slice_of("h-c", [ep("fd00::9", hostname="db-0")], family="IPv6"),
        slice_of("h-d", [ep("10.3.0.50")], family="FQDN"),
    ]
    view = build_view([headless()], slices, [])
    records = view.records
    assert records[f"h.ns.svc.{Z}"][A] == ["10.3.0.1", "10.3.0.2"]
    assert records[f"db-0.h.ns.svc.{Z}"] == {A: ["10.3.0.1"], AAAA: ["fd00::9"]}
    assert records[f"10-3-0-2.h.ns.svc.{Z}"] == {A: ["10.3.0.2"]}
    srv = srvs(records[f"_http._tcp.h.ns.svc.{Z}"][SRV])
    assert [s.target for s in srv] == [f"db-0.h.ns.svc.{Z}", f"10-3-0-2.h.ns.svc.{Z}"]
    assert {s.weight for s in srv} == {50}
    assert records["9." + "0." * 27 + "0.0.d.f.ip6.arpa."][PTR] == [f"db-0.h.ns.svc.{Z}"]
    assert "50.0.3.10.in-addr.arpa." not in records


def test_headless_ports_come_from_each_slice() -> None:
    slices = [
        slice_of("h-a", [ep("10.3.0.1")], ports=[m.EndpointPort(name="http", port=8080)]),
        slice_of("h-b", [ep("10.3.0.2")], ports=[m.EndpointPort(name="http", port=9090),
                                                 m.EndpointPort(port=7000)]),
    ]
    view = build_view([headless()], slices, [])
    named = srvs(view.records[f"_http._tcp.h.ns.svc.{Z}"][SRV])
    assert [(s.port, s.weight) for s in named] == [(8080, 50), (9090, 50)]
    bare = srvs(view.records[f"h.ns.svc.{Z}"][SRV])
    assert sorted(s.port for s in bare) == [7000, 8080, 9090]
    assert {s.weight for s in bare} == {33}


def test_headless_without_published_endpoints_does_not_exist() -> None:
    view = build_view([headless()], [slice_of("h-1", [ep("10.3.0.1", ready=False)])], [])
    assert not view.exists(f"h.ns.svc.{Z}")
    assert not view.exists(f"_http._tcp.h.ns.svc.{Z}")
    assert not view.exists(f"10-3-0-1.h.ns.svc.{Z}")


def test_slices_of_other_namespaces_do_not_count() -> None:
    other = make_endpoint_slice("h-x", service="h", namespace="elsewhere", addresses=["10.3.0.1"])
    assert not build_view([headless()], [other], []).exists(f"h.ns.svc.{Z}")


@pytest.mark.parametrize(("target", "expected"), [
    ("www.example.com", "www.example.com."), ("WWW.Example.COM.", "www.example.com."),
    ("not a name", None), ("", None), ("a..b", None), ("x" * 64 + ".com", None),
])
def test_externalname_targets(target: str, expected: str | None) -> None:
    svc = make_service("ext", namespace="ns", mutate=lambda s: msgspec.structs.replace(
        s, spec=m.ServiceSpec(type="ExternalName", external_name=target)))
    records = build_view([svc], [], []).records
    if expected is None:
        assert f"ext.ns.svc.{Z}" not in records
    else:
        assert records[f"ext.ns.svc.{Z}"] == {CNAME: [expected]}


def pod(name: str, ns: str, ip: str, *, phase: str = "Running", host_network: bool = False,
        extra: Sequence[str] = ()) -> m.Pod:
    p = make_pod(name, namespace=ns)
    return msgspec.structs.replace(
        p, spec=msgspec.structs.replace(p.spec, host_network=host_network),
        status=m.PodStatus(phase=phase, pod_ip=ip,
                           pod_ips=tuple(m.PodIP(ip=i) for i in (ip, *extra))))


def test_pods() -> None:
    pods = [
        pod("a", "ns", "10.244.0.5", extra=["fd00::5"]),
        pod("done", "ns", "10.244.0.6", phase="Succeeded"),
        pod("host", "kube-system", "192.168.1.10", host_network=True),
        pod("x", "one", "10.244.0.9"),
        pod("y", "two", "10.244.0.9"),  # a reused IP: ambiguous
    ]
    view = build_view([], [], pods)
    assert view.records[f"10-244-0-5.ns.pod.{Z}"] == {A: ["10.244.0.5"]}
    assert view.records[f"fd00--5.ns.pod.{Z}"] == {AAAA: ["fd00::5"]}
    assert f"10-244-0-6.ns.pod.{Z}" not in view.records
    assert view.records[f"192-168-1-10.kube-system.pod.{Z}"] == {A: ["192.168.1.10"]}
    assert view.pod_namespaces == {"10.244.0.5": "ns", "fd00::5": "ns"}
    assert view.pod_namespace("::ffff:10.244.0.5") == "ns"
    assert view.pod_namespace("10.244.0.9") is None
    assert view.pod_key("fd00-0-0-0-0-0-0-5", "ns") == f"fd00--5.ns.pod.{Z}"
    assert view.pod_key("10-244-0-5", "ns") == f"10-244-0-5.ns.pod.{Z}"
    assert view.pod_key("blah", "ns") is None
    for ns in ("ns", "kube-system", "one", "two"):
        assert view.exists(f"{ns}.svc.{Z}") and view.exists(f"{ns}.pod.{Z}")


def test_a_name_two_services_give_records_lists_both_in_key_order() -> None:
    a = make_service("a", namespace="ns", cluster_ip="10.0.0.9")
    b = make_service("b", namespace="ns", cluster_ip="10.0.0.9")  # an IP reused at once
    for services in ([a, b], [b, a]):
        records = build_view(services, [], []).records
        assert records["9.0.0.10.in-addr.arpa."][PTR] == [f"a.ns.svc.{Z}", f"b.ns.svc.{Z}"]


def test_fixed_names() -> None:
    view = build_view([], [], [], zone="Example.Test.", dns_ips=("10.96.0.10", "fd00::a"),
                      ttl=30, serial=7)
    zone = "example.test."
    assert view.zone == zone
    assert view.records[f"ns.dns.{zone}"] == {A: ["10.96.0.10"], AAAA: ["fd00::a"]}
    assert view.soa(zone).serial == 7 and view.soa(zone).minimum == 30
    assert view.ttl_of(zone, 6) == 30 and view.ttl_of(f"dns-version.{zone}", 16) == 28800
    assert view.empty_nonterminals == {f"svc.{zone}", f"pod.{zone}", f"dns.{zone}"}
    assert not view.exists(f"foo.{zone}")


def test_bad_names_are_skipped() -> None:
    services = [
        make_service("Bad_Name!", namespace="ns", cluster_ip="10.0.0.1"),
        make_service("ok", namespace="ns", cluster_ip="10.0.0.2",
                     ports=[port(80, name="x" * 70)]),
        make_service("x" * 64, namespace="ns", cluster_ip="10.0.0.3"),
        make_service("bad-ip", namespace="ns", cluster_ip="10.0.0.300"),
    ]
    view = build_view(services, [], [])
    assert view.records[f"ok.ns.svc.{Z}"][A] == ["10.0.0.2"]
    assert [k for k in view.records if k.endswith(f".ns.svc.{Z}")] == [f"ok.ns.svc.{Z}"]


@pytest.mark.parametrize("kwargs", [
    {"zone": ""}, {"zone": "bad zone"}, {"ttl": -1}, {"ttl": 2**31}, {"serial": -1},
    {"dns_ips": ("not-an-ip",)},
])
def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build_view([], [], [], **kwargs)  # type: ignore[arg-type]
