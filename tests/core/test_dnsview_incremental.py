"""core.dnsview.ZoneBuilder: a zone kept up to date change by change equals the zone built from
scratch, and every view it hands out stays as it was.

Covered: the property (random creates, updates and deletes of Services of every type,
EndpointSlices and Pods, a view taken now and then: each equals `build_view` of the objects at
that moment, values in the same order, and no earlier view changed; with the changes kept on
top of a base mapping, and folded into a new one); names several objects
share (a PTR of an IP two services publish, a pod name two pods share, autopath of a reused IP);
what a view shares with the one before; the serial.

Conventions: zone ``cluster.local``; keys ``namespace/name`` as the informers make them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, NamedTuple
from unittest import mock

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterip.core import dnsview
from clusterip.core import model as m
from clusterip.core.dnsview import PTR, SOA, A, DnsView, Node, ZoneBuilder, build_view
from clusterip.testing.builders import make_endpoint_slice, make_pod, make_service, port

Z = "cluster.local."
NAMESPACES = ("a", "b")
SERVICE_NAMES = ("s1", "s2", "S2")  # S2 and s2 have one DNS name: their records merge
SERVICE_IPS = ("10.96.0.1", "10.96.0.2", "fd00::1", "")
ENDPOINT_IPS = ("10.3.0.1", "10.3.0.2", "fd00::5", "10.96.0.1")
POD_IPS = ("10.244.0.1", "10.244.0.2", "fd00::9")


def key(obj: m.KubeObject) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


# --- strategies ----------------------------------------------------------------------------------

service_ports = st.lists(st.builds(
    lambda name, number, proto: port(number, name=name, protocol=proto),
    st.sampled_from(["", "http", "dns"]), st.sampled_from([80, 53, 0]),
    st.sampled_from(["TCP", "UDP"])), min_size=1, max_size=3)


@st.composite
def services(draw: st.DrawFn) -> m.Service:
    name, ns = draw(st.sampled_from(SERVICE_NAMES)), draw(st.sampled_from(NAMESPACES))
    kind = draw(st.sampled_from(["ClusterIP", "Headless", "Headless", "ExternalName"]))
    ports = draw(service_ports)
    svc = make_service(name, namespace=ns, ports=ports)
    if kind == "ExternalName":
        spec = m.ServiceSpec(type="ExternalName",
                             external_name=draw(st.sampled_from(["www.example.com", "bad name"])))
    elif kind == "Headless":
        spec = msgspec.structs.replace(svc.spec, cluster_ip="None",
                                       publish_not_ready_addresses=draw(st.booleans()))
    else:
        ips = tuple(draw(st.lists(st.sampled_from(SERVICE_IPS), max_size=2, unique=True)))
        spec = msgspec.structs.replace(svc.spec, cluster_ip=ips[0] if ips else "",
                                       cluster_ips=tuple(ip for ip in ips if ip))
    return msgspec.structs.replace(svc, spec=spec)


endpoints = st.builds(
    lambda ips, ready, hostname: m.Endpoint(
        addresses=tuple(ips), hostname=hostname, conditions=m.EndpointConditions(ready=ready)),
    st.lists(st.sampled_from(ENDPOINT_IPS), min_size=1, max_size=2, unique=True),
    st.sampled_from([True, True, False, None]), st.sampled_from([None, "h0", "h1"]))


@st.composite
def slices(draw: st.DrawFn) -> m.EndpointSlice:
    service = draw(st.sampled_from(["s1", "s2", "nosuch"]))
    ports = draw(st.lists(st.builds(
        m.EndpointPort, name=st.sampled_from([None, "http", "dns"]),
        protocol=st.sampled_from([None, "UDP"]), port=st.sampled_from([None, 80, 53])),
        max_size=2))
    sl = make_endpoint_slice(draw(st.sampled_from(["x1", "x2"])), service=service,
                             namespace=draw(st.sampled_from(NAMESPACES)))
    labels = None if draw(st.sampled_from([False, False, True])) else sl.metadata.labels
    return msgspec.structs.replace(
        sl, metadata=msgspec.structs.replace(sl.metadata, labels=labels),
        address_type=draw(st.sampled_from(["IPv4", "IPv6", "FQDN"])),
        endpoints=tuple(draw(st.lists(endpoints, max_size=3))), ports=tuple(ports))


@st.composite
def pods(draw: st.DrawFn) -> m.Pod:
    pod = make_pod(draw(st.sampled_from(["p1", "p2"])),
                   namespace=draw(st.sampled_from(NAMESPACES)))
    ips = draw(st.lists(st.sampled_from(POD_IPS), max_size=2, unique=True))
    status = m.PodStatus(phase=draw(st.sampled_from(["Running", "Running", "Succeeded"])),
                         pod_ip=ips[0] if ips else "",
                         pod_ips=tuple(m.PodIP(ip=ip) for ip in ips[:draw(st.integers(0, 2))]))
    host_network = draw(st.sampled_from([False, False, False, True]))
    spec = msgspec.structs.replace(pod.spec, host_network=host_network)
    return msgspec.structs.replace(pod, spec=spec, status=status)


class Step(NamedTuple):
    """One change: `obj` written under its own key ("put"), or under the existing key `pick`
    chooses ("update"), or the existing key `pick` chooses deleted ("delete"); or a view taken
    ("view"). An update or delete with nothing of its kind yet writes `obj` instead."""

    action: str
    kind: str
    pick: int
    obj: Any


def changes_of(kind: str, objects: st.SearchStrategy[Any]) -> st.SearchStrategy[Step]:
    return st.builds(Step, st.sampled_from(["put", "update", "delete"]), st.just(kind),
                     st.integers(0, 5), objects)


VIEW = Step("view", "", 0, None)
steps = st.lists(st.one_of(
    changes_of("service", services()), changes_of("slice", slices()), changes_of("pod", pods()),
    st.just(VIEW),
), min_size=8, max_size=40)


def renamed(obj: Any, key: str) -> Any:
    namespace, name = key.split("/")
    return msgspec.structs.replace(obj, metadata=msgspec.structs.replace(
        obj.metadata, namespace=namespace, name=name))


# --- helpers -------------------------------------------------------------------------------------


def exact(records: Mapping[str, Node]) -> dict[str, list[tuple[int, list[Any]]]]:
    """Records in a form where the order of record types and of values counts too."""
    return {owner: [(rdtype, list(values)) for rdtype, values in node.items()]
            for owner, node in records.items()}


def assert_same_zone(view: DnsView, expected: DnsView) -> None:
    assert exact(view.records) == exact(expected.records)
    assert view.empty_nonterminals == expected.empty_nonterminals
    assert view.pod_namespaces == expected.pod_namespaces
    assert view.empty_nonterminals.isdisjoint(view.records)


# --- the property --------------------------------------------------------------------------------


@pytest.mark.parametrize("fold_min", [2, dnsview._FOLD_MIN])
@settings(max_examples=200, deadline=None)
@given(changes=steps)
def test_a_zone_kept_up_to_date_equals_the_zone_built_from_scratch(
    fold_min: int, changes: list[Step]
) -> None:
    """With `fold_min` 2, the changes of most views are folded into a new base mapping; with
    the default, they stay on top of the first."""
    with mock.patch.object(dnsview, "_FOLD_MIN", fold_min):
        check_against_scratch(changes)


def check_against_scratch(changes: list[Step]) -> None:
    builder = ZoneBuilder()
    objects: dict[str, dict[str, Any]] = {"service": {}, "slice": {}, "pod": {}}
    setters = {"service": builder.set_service, "slice": builder.set_slice,
               "pod": builder.set_pod}
    handed_out: list[tuple[DnsView, Any]] = []
    for action, kind, pick, obj in [*changes, VIEW]:
        if action == "view":
            serial = len(handed_out) + 1
            view = builder.view(serial=serial)
            expected = build_view(objects["service"].values(), objects["slice"].values(),
                                  objects["pod"].values(), serial=serial)
            assert_same_zone(view, expected)
            handed_out.append((view, copy.deepcopy(
                (exact(view.records), view.empty_nonterminals, dict(view.pod_namespaces)))))
            continue
        existing = sorted(objects[kind])
        if action == "put" or not existing:
            k = key(obj)
        else:
            k = existing[pick % len(existing)]
            obj = None if action == "delete" else renamed(obj, k)
        setters[kind](k, obj)
        if obj is None:
            del objects[kind][k]
        else:
            objects[kind][k] = obj
    for view, (records, ents, pod_namespaces) in handed_out:
        assert exact(view.records) == records
        assert view.empty_nonterminals == ents and view.pod_namespaces == pod_namespaces


# --- names several objects share -----------------------------------------------------------------


def headless(name: str) -> m.Service:
    return make_service(name, namespace="ns", cluster_ip="None", ports=[port(80, name="http")])


def slice_of(name: str, service: str, ip: str) -> m.EndpointSlice:
    return make_endpoint_slice(name, service=service, namespace="ns", addresses=[ip])


def running_pod(name: str, ns: str, ip: str) -> m.Pod:
    return make_pod(name, namespace=ns, ip=ip, ready=True)


def test_a_ptr_two_services_share_lists_both_in_key_order_until_one_goes() -> None:
    builder = ZoneBuilder()
    for name in ("zeta", "alpha"):
        builder.set_service(f"ns/{name}", headless(name))
        builder.set_slice(f"ns/{name}-1", slice_of(f"{name}-1", name, "10.3.0.7"))
    ptr = "7.0.3.10.in-addr.arpa."
    both = builder.view()
    assert both.records[ptr][PTR] == [f"10-3-0-7.alpha.ns.svc.{Z}", f"10-3-0-7.zeta.ns.svc.{Z}"]
    builder.set_slice("ns/alpha-1", None)
    one = builder.view()
    assert one.records[ptr][PTR] == [f"10-3-0-7.zeta.ns.svc.{Z}"]
    assert not one.exists(f"alpha.ns.svc.{Z}")
    builder.set_service("ns/zeta", None)
    assert ptr not in builder.view().records


def test_a_slice_that_moves_to_another_service_or_goes_takes_its_endpoints_along() -> None:
    builder = ZoneBuilder()
    builder.set_service("ns/one", headless("one"))
    builder.set_service("ns/two", headless("two"))
    builder.set_slice("ns/x", slice_of("x", "one", "10.3.0.7"))
    view = builder.view()
    assert view.exists(f"one.ns.svc.{Z}") and not view.exists(f"two.ns.svc.{Z}")
    builder.set_slice("ns/x", slice_of("x", "two", "10.3.0.7"))
    view = builder.view()
    assert not view.exists(f"one.ns.svc.{Z}") and view.exists(f"two.ns.svc.{Z}")
    assert view.records["7.0.3.10.in-addr.arpa."][PTR] == [f"10-3-0-7.two.ns.svc.{Z}"]
    builder.set_slice("ns/x", None)
    assert not builder.view().exists(f"two.ns.svc.{Z}")


def test_a_pod_name_and_autopath_follow_the_pods_that_claim_an_ip() -> None:
    builder = ZoneBuilder()
    builder.set_pod("one/old", running_pod("old", "one", "10.244.0.9"))
    builder.set_pod("one/new", running_pod("new", "one", "10.244.0.9"))
    builder.set_pod("two/other", running_pod("other", "two", "10.244.0.9"))
    view = builder.view()
    assert view.records[f"10-244-0-9.one.pod.{Z}"] == {A: ["10.244.0.9"]}
    assert view.pod_namespace("10.244.0.9") is None  # one and two claim it
    builder.set_pod("two/other", None)
    builder.set_pod("one/old", None)
    view = builder.view()
    assert view.pod_namespace("10.244.0.9") == "one"
    assert view.records[f"10-244-0-9.one.pod.{Z}"] == {A: ["10.244.0.9"]}
    assert not view.exists(f"two.pod.{Z}")  # its last pod went
    builder.set_pod("one/new", None)
    view = builder.view()
    assert view.pod_namespace("10.244.0.9") is None
    assert not view.exists(f"10-244-0-9.one.pod.{Z}") and not view.exists(f"one.pod.{Z}")


# --- what a view shares --------------------------------------------------------------------------


def test_a_view_shares_all_it_can_with_the_one_before_and_never_changes() -> None:
    builder = ZoneBuilder()
    builder.set_service("ns/web", make_service("web", namespace="ns", cluster_ip="10.96.0.5"))
    builder.set_pod("ns/p", running_pod("p", "ns", "10.244.0.5"))
    first = builder.view()
    web = first.records[f"web.ns.svc.{Z}"]

    same = builder.view()  # nothing changed
    assert same.records is first.records and same.pod_namespaces is first.pod_namespaces
    assert same.empty_nonterminals is first.empty_nonterminals

    builder.set_service("ns/db", make_service("db", namespace="ns", cluster_ip="10.96.0.6"))
    second = builder.view()
    assert second.records[f"web.ns.svc.{Z}"] is web
    assert second.pod_namespaces is first.pod_namespaces  # no pod changed
    assert f"db.ns.svc.{Z}" in second.records and f"db.ns.svc.{Z}" not in first.records


def test_each_view_has_its_serial_in_the_soa() -> None:
    builder = ZoneBuilder(zone="example.test", ttl=30)
    first, second = builder.view(serial=1), builder.view(serial=2)
    assert first.records["example.test."][SOA] == [first.soa("example.test.")]
    assert second.records["example.test."][SOA] == [second.soa("example.test.")]
    assert (first.serial, second.serial, second.soa("example.test.").minimum) == (1, 2, 30)
