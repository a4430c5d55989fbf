"""The service map: Services and EndpointSlices in, what the proxy serves out (pure)."""

from __future__ import annotations

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.servicemap import (
    DEFAULT_AFFINITY_TIMEOUT,
    Choice,
    Endpoint,
    ServiceMap,
    ServiceMapTracker,
    ServicePort,
    ServicePortName,
    StaleUdp,
    build_service_map,
    choose,
    stale_udp,
)
from clusterip.testing.builders import make_endpoint_slice, make_service, port

WEB_HTTP = ServicePortName("default", "web", "http", "TCP")


def web(**spec: object) -> m.Service:
    svc = make_service("web", cluster_ip="10.96.0.20", ports=[port(80, 8080, name="http")])
    return msgspec.structs.replace(svc, spec=msgspec.structs.replace(svc.spec, **spec))


def endpoint(ip: str, *, ready: bool | None = True, serving: bool | None = None,
             terminating: bool | None = None, node: str | None = "node-1") -> m.Endpoint:
    return m.Endpoint(addresses=(ip,), node_name=node, conditions=m.EndpointConditions(
        ready=ready, serving=serving, terminating=terminating))


def slice_of(*endpoints: m.Endpoint, name: str = "web-abc", service: str = "web",
             port_name: str = "http", protocol: str = "TCP", number: int = 8080
             ) -> m.EndpointSlice:
    return make_endpoint_slice(name, service=service, mutate=lambda s: msgspec.structs.replace(
        s, endpoints=endpoints, ports=(m.EndpointPort(name=port_name, protocol=protocol,
                                                      port=number),)))


def test_a_service_port_gets_its_endpoints_with_their_conditions() -> None:
    ports = build_service_map([web()], [slice_of(endpoint("10.244.0.3"),
                                                 endpoint("10.244.0.2", ready=False))])
    assert ports == {WEB_HTTP: ServicePort(
        WEB_HTTP, ("10.96.0.20",), 80, "TCP", None, False,
        (Endpoint("10.244.0.2", 8080, ready=False, serving=False, node_name="node-1"),
         Endpoint("10.244.0.3", 8080, node_name="node-1")))}


@pytest.mark.parametrize("spec", [
    {"cluster_ip": "None"},
    {"cluster_ip": ""},
    {"type": "ExternalName", "external_name": "example.com"},
], ids=["headless", "not-allocated-yet", "external-name"])
def test_services_without_a_cluster_ip_are_not_proxied(spec: dict[str, object]) -> None:
    assert build_service_map([web(**spec)], [slice_of(endpoint("10.244.0.2"))]) == {}


def test_a_locally_served_ip_is_left_out() -> None:
    dns = make_service("kube-dns", namespace="kube-system", cluster_ip="10.96.0.10",
                       ports=[port(53, name="dns", protocol="UDP")])
    assert build_service_map([dns], [], local_ips=frozenset({"10.96.0.10"})) == {}


def test_affinity_and_local_policy_are_carried() -> None:
    sticky = web(session_affinity="ClientIP", internal_traffic_policy="Local")
    [sp] = build_service_map([sticky], []).values()
    assert sp.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT and sp.local_only
    timed = web(session_affinity="ClientIP", session_affinity_config=m.SessionAffinityConfig(
        client_ip=m.ClientIPConfig(timeout_seconds=60)))
    assert next(iter(build_service_map([timed], []).values())).affinity_timeout == 60


def test_endpoints_match_the_port_by_name_and_protocol_and_are_deduplicated() -> None:
    svc = make_service("dns", cluster_ip="10.96.0.53", ports=[
        port(53, name="dns", protocol="UDP"), port(53, name="dns-tcp", protocol="TCP")])
    slices = [slice_of(endpoint("10.244.0.5"), service="dns", port_name="dns", protocol="UDP",
                       number=5353),
              slice_of(endpoint("10.244.0.5"), name="dns-2", service="dns", port_name="dns",
                       protocol="UDP", number=5353),
              slice_of(endpoint("10.244.0.6"), name="dns-3", service="dns",
                       port_name="dns-tcp", protocol="TCP", number=5353)]
    ports = build_service_map([svc], slices)
    udp = ports[ServicePortName("default", "dns", "dns", "UDP")]
    tcp = ports[ServicePortName("default", "dns", "dns-tcp", "TCP")]
    assert [(e.ip, e.port) for e in udp.endpoints] == [("10.244.0.5", 5353)]
    assert [(e.ip, e.port) for e in tcp.endpoints] == [("10.244.0.6", 5353)]


CHOICES = [
    ("ready ones", [endpoint("10.244.0.2"), endpoint("10.244.0.3", ready=False)], False,
     Choice("endpoints", (Endpoint("10.244.0.2", 8080, node_name="node-1"),))),
    ("terminating but serving when none is ready",
     [endpoint("10.244.0.2", ready=False, serving=True, terminating=True),
      endpoint("10.244.0.3", ready=False, serving=False, terminating=True)], False,
     Choice("endpoints", (Endpoint("10.244.0.2", 8080, False, True, True, "node-1"),))),
    ("reject when none", [], False, Choice("reject")),
    ("reject when none serves", [endpoint("10.244.0.2", ready=False)], False, Choice("reject")),
    ("local: only this node's", [endpoint("10.244.0.2"), endpoint("10.244.1.2", node="node-2")],
     True, Choice("endpoints", (Endpoint("10.244.0.2", 8080, node_name="node-1"),))),
    ("local: drop when none here", [endpoint("10.244.1.2", node="node-2")], True,
     Choice("drop")),
]


@pytest.mark.parametrize(("endpoints", "local", "expected"),
                         [c[1:] for c in CHOICES], ids=[c[0] for c in CHOICES])
def test_endpoint_choice_follows_kube_proxy(
    endpoints: list[m.Endpoint], local: bool, expected: Choice
) -> None:
    svc = web(internal_traffic_policy="Local" if local else None)
    [sp] = build_service_map([svc], [slice_of(*endpoints)]).values()
    assert choose(sp, "node-1") == expected


def test_the_tracker_reports_only_what_changed_and_coalesces_bursts() -> None:
    tracker = ServiceMapTracker()
    tracker.service("default/web", web())
    tracker.slice("default/web-abc", slice_of(endpoint("10.244.0.2")))
    first = tracker.take()
    assert first.changed == {WEB_HTTP}

    assert tracker.take().changed == frozenset()  # nothing new
    tracker.service("default/web", msgspec.structs.replace(
        web(), status=m.ServiceStatus(conditions=())))  # status only: not a change
    assert not tracker.pending

    for ip in ("10.244.0.3", "10.244.0.4", "10.244.0.5"):  # a burst
        tracker.slice("default/web-abc", slice_of(endpoint(ip)))
    burst = tracker.take()
    assert burst.changed == {WEB_HTTP}
    assert [e.ip for e in burst.ports[WEB_HTTP].endpoints] == ["10.244.0.5"]
    assert first.ports[WEB_HTTP].endpoints[0].ip == "10.244.0.2"  # snapshots stay as they were

    tracker.service("default/web", None)
    gone = tracker.take()
    assert gone.changed == {WEB_HTTP} and gone.ports == {}


def test_a_slice_moving_to_another_service_updates_both() -> None:
    tracker = ServiceMapTracker()
    tracker.service("default/web", web())
    api = make_service("api", cluster_ip="10.96.0.21", ports=[port(80, 8080, name="http")])
    tracker.service("default/api", api)
    tracker.slice("default/s1", slice_of(endpoint("10.244.0.2"), name="s1"))
    tracker.take()
    tracker.slice("default/s1", slice_of(endpoint("10.244.0.2"), name="s1", service="api"))
    snapshot = tracker.take()
    api_http = ServicePortName("default", "api", "http", "TCP")
    assert snapshot.changed == {WEB_HTTP, api_http}
    assert snapshot.ports[WEB_HTTP].endpoints == ()
    assert [e.ip for e in snapshot.ports[api_http].endpoints] == ["10.244.0.2"]


def test_stale_udp_flows_are_those_not_answered_by_an_endpoint_serving_now() -> None:
    dns = make_service("dns", cluster_ip="10.96.0.53", ports=[port(53, name="dns",
                                                                   protocol="UDP")])

    def serving(*ips: str) -> ServiceMap:
        return build_service_map([dns], [slice_of(*(endpoint(ip) for ip in ips),
                                                  service="dns", port_name="dns",
                                                  protocol="UDP", number=53)])

    before, after = serving("10.244.0.5", "10.244.0.6"), serving("10.244.0.6", "10.244.0.7")
    assert stale_udp(before, after) == [
        StaleUdp("10.96.0.53", 53, frozenset({"10.244.0.6", "10.244.0.7"}))]
    assert stale_udp(before, {}) == [StaleUdp("10.96.0.53", 53, frozenset())]
    assert stale_udp(before, before) == []  # nothing changed: no conntrack dump
    assert stale_udp({}, before) == [  # a new service: flows to its address from before it
        StaleUdp("10.96.0.53", 53, frozenset({"10.244.0.5", "10.244.0.6"}))]
    tcp = build_service_map([web()], [slice_of(endpoint("10.244.0.2"))])
    assert stale_udp(tcp, {}) == []  # TCP flows drain on their own
