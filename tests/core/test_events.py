"""Events in the pure core: the model and its validation, references, names, counting repeats,
the flood filter, the TTL, the endpoints a Service loses, field selectors, the `get` row and
the `describe` block, and what discovery and OpenAPI say of the kind.

Times are unix seconds; T is 2026-01-01T00:00:00Z (the FakeClock's start).
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from clusterip.core import codec, kinds, openapi, validation
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.discovery import api_resource_list
from clusterip.core.endpoints import SlicePlan, plan_slices
from clusterip.core.printers import COLUMNS, describe, rows
from clusterip.core.selectors import SelectorError, parse_field_selector
from clusterip.testing.builders import make_deployment, make_pod, make_service, port

T = 1767225600.0
AT = "2026-01-01T00:00:00Z"
KUBELET = m.EventSource(component="kubelet", host="node-1")


def created(obj: Any, uid: str = "uid-1", rv: str = "7") -> Any:
    meta = msgspec.structs.replace(obj.metadata, uid=uid, resource_version=rv)
    return msgspec.structs.replace(obj, metadata=meta)


SERVICE = created(make_service("web", cluster_ip="10.96.0.15"))
POD = created(make_pod("web-1"), uid="pod-uid")


def event(**changes: Any) -> m.Event:
    """A valid event about SERVICE, with `changes`."""
    base = ev.new_event(ev.reference(SERVICE), type_=ev.NORMAL, reason="ClusterIPAllocated",
                        message="Cluster IP [IPv4]: 10.96.0.15",
                        source=m.EventSource(component="ipallocator-controller"), now=T)
    base = msgspec.structs.replace(base, metadata=msgspec.structs.replace(
        base.metadata, name="web.1"))
    return msgspec.structs.replace(base, **changes)


# --- the model --------------------------------------------------------------------------------


def test_an_event_encodes_with_kubernetes_names() -> None:
    data = codec.to_dict(event())
    assert data == {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Service", "namespace": "default", "name": "web",
                           "uid": "uid-1", "apiVersion": "v1", "resourceVersion": "7"},
        "reason": "ClusterIPAllocated", "message": "Cluster IP [IPv4]: 10.96.0.15",
        "source": {"component": "ipallocator-controller"},
        "firstTimestamp": AT, "lastTimestamp": AT, "count": 1, "type": "Normal",
        "reportingComponent": "ipallocator-controller"}


def test_involved_object_is_never_left_out_even_when_empty() -> None:
    # the Python client refuses an Event whose involvedObject is null
    bare = m.Event(metadata=m.ObjectMeta(name="x", namespace="default"))
    assert msgspec.json.decode(msgspec.json.encode(bare))["involvedObject"] == {}


def test_a_manifest_decodes_to_an_event() -> None:
    decoded = codec.decode({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "team"},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "team",
                           "fieldPath": "spec.containers{main}"},
        "reason": "Started", "message": "Started container main", "type": "Normal",
        "eventTime": None, "count": 2, "source": {"component": "kubelet", "host": "node-1"}})
    obj = decoded.obj
    assert isinstance(obj, m.Event) and decoded.warnings == ()
    assert obj.involved_object.field_path == "spec.containers{main}"
    assert (obj.count, obj.source.host, obj.event_time) == (2, "node-1", None)
    assert validation.validate(obj) == []


# --- validation -------------------------------------------------------------------------------


def errors(obj: m.Event) -> list[str]:
    return [str(e) for e in validation.validate(obj)]


def test_a_recorded_event_is_valid() -> None:
    assert errors(event()) == []


def test_every_error_is_reported_with_its_field_path() -> None:
    bad = event(
        metadata=m.ObjectMeta(name="Web_1", namespace="default"),
        involved_object=m.ObjectReference(kind="Service", namespace="team", name="web"),
        type="Info", reason="", message="", count=-1, first_timestamp="yesterday",
        last_timestamp="2026-13-01T00:00:00Z")
    assert errors(bad) == [
        'metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 subdomain must consist of '
        "lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        'involvedObject.namespace: Invalid value: "team": does not match event.namespace',
        'type: Unsupported value: "Info": supported values: "Normal", "Warning"',
        "reason: Required value",
        "message: Required value",
        "count: Invalid value: -1: must be greater than or equal to 0",
        'firstTimestamp: Invalid value: "yesterday": must be an RFC 3339 time '
        "(e.g. 2026-01-01T00:00:00Z)",
        'lastTimestamp: Invalid value: "2026-13-01T00:00:00Z": must be an RFC 3339 time '
        "(e.g. 2026-01-01T00:00:00Z)",
    ]


def test_type_and_namespace_are_required() -> None:
    bare = event(type="", metadata=m.ObjectMeta(name="web.1"))
    assert errors(bare) == [
        "metadata.namespace: Required value",
        'involvedObject.namespace: Invalid value: "default": does not match event.namespace',
        "type: Required value",
    ]


@pytest.mark.parametrize(("namespace", "involved", "ok"), [
    pytest.param("default", "", True, id="cluster-object-in-default"),
    pytest.param("team", "", False, id="cluster-object-elsewhere"),
    pytest.param("team", "team", True, id="same-namespace"),
    pytest.param("default", "team", False, id="other-namespace"),
])
def test_the_event_lives_in_its_objects_namespace(namespace: str, involved: str,
                                                  ok: bool) -> None:
    ref = m.ObjectReference(kind="Node" if not involved else "Pod", name="x",
                            namespace=involved)
    found = errors(event(involved_object=ref, metadata=m.ObjectMeta(name="x.1",
                                                                    namespace=namespace)))
    expected = [] if ok else [f'involvedObject.namespace: Invalid value: "{involved}": '
                              "does not match event.namespace"]
    assert found == expected


def test_a_new_style_event_names_its_reporter_and_action() -> None:
    new_style = event(event_time="2026-01-01T00:00:00.000001Z", reporting_component="",
                      reason="x" * 129)
    assert errors(new_style) == [
        f'reason: Invalid value: "{"x" * 129}": can have at most 128 characters',
        "reportingComponent: Required value",
        "reportingInstance: Required value",
        "action: Required value",
    ]
    complete = event(event_time="2026-01-01T00:00:00.000001Z", reporting_instance="node-1",
                     action="Binding")
    assert errors(complete) == []
    # a new-style event about a cluster-scoped object may also live in kube-system
    node = m.ObjectReference(kind="Node", name="node-1")
    assert errors(msgspec.structs.replace(
        complete, involved_object=node,
        metadata=m.ObjectMeta(name="n.1", namespace="kube-system"))) == []


# --- references, new events, names ------------------------------------------------------------


def test_the_reference_comes_from_the_kinds_table() -> None:
    pod = msgspec.structs.replace(POD, kind="", api_version="")  # built in code: no kind
    assert ev.reference(pod, "spec.containers{main}") == m.ObjectReference(
        kind="Pod", namespace="default", name="web-1", uid="pod-uid", api_version="v1",
        resource_version="7", field_path="spec.containers{main}")
    deploy = ev.reference(created(make_deployment("web")))
    assert (deploy.kind, deploy.api_version) == ("Deployment", "apps/v1")
    node = ev.reference(m.Node(metadata=m.ObjectMeta(name="node-1", uid="n")))
    assert (node.kind, node.namespace, node.name) == ("Node", "", "node-1")


def test_a_new_event_happened_once_now() -> None:
    e = ev.new_event(ev.reference(POD), type_=ev.WARNING, reason="Unhealthy",
                     message="Readiness probe failed: refused", source=KUBELET, now=T + 5)
    assert (e.count, e.first_timestamp, e.last_timestamp) == (1, "2026-01-01T00:00:05Z",
                                                             "2026-01-01T00:00:05Z")
    assert (e.metadata.namespace, e.metadata.name) == ("default", "")
    assert (e.reporting_component, e.reporting_instance) == ("kubelet", "node-1")
    node = ev.new_event(ev.reference(m.Node(metadata=m.ObjectMeta(name="node-1"))),
                        type_=ev.NORMAL, reason="x", message="y", source=KUBELET, now=T)
    assert node.metadata.namespace == "default"  # events of cluster objects go to default


def test_a_long_message_is_cut() -> None:
    e = ev.new_event(ev.reference(POD), type_=ev.NORMAL, reason="x", message="m" * 5000,
                     source=KUBELET, now=T)
    assert len(e.message) == ev.MESSAGE_LIMIT and e.message.endswith("...")


@pytest.mark.parametrize(("name", "expected"), [
    ("web", "web.17f3a2b4c5d6e7f8"),
    ("fd00::1", "fd00-1.17f3a2b4c5d6e7f8"),
    ("a" * 253, "a" * 236 + ".17f3a2b4c5d6e7f8"),
    ("", "event.17f3a2b4c5d6e7f8"),
])
def test_event_names_are_the_object_and_hex_nanoseconds(name: str, expected: str) -> None:
    made = ev.event_name(name, 0x17F3A2B4C5D6E7F8)
    assert made == expected
    assert validation.dns1123_label_errors(made.split(".")[-1]) == []
    assert len(made) <= 253


# --- counting repeats, and floods -------------------------------------------------------------


def occurrence(message: str = "Readiness probe failed: refused", now: float = T,
               obj: m.KubeObject = POD) -> m.Event:
    return ev.new_event(ev.reference(obj, "spec.containers{main}"), type_=ev.WARNING,
                        reason="Unhealthy", message=message, source=KUBELET, now=now)


def stored(e: m.Event, name: str = "web-1.1", rv: str = "10") -> m.Event:
    return msgspec.structs.replace(e, metadata=msgspec.structs.replace(
        e.metadata, name=name, resource_version=rv, uid="ev-uid"))


def test_a_repeat_is_the_earlier_event_counted_again() -> None:
    correlator = ev.Correlator()
    first = correlator.correlate(occurrence())
    assert not first.repeat
    correlator.observe(stored(first.event))
    again = correlator.correlate(occurrence(now=T + 30))
    assert again.repeat
    assert (again.event.metadata.name, again.event.metadata.resource_version) == ("web-1.1", "")
    assert (again.event.count, again.event.first_timestamp, again.event.last_timestamp) == (
        2, AT, "2026-01-01T00:00:30Z")
    correlator.observe(stored(again.event, rv="11"))
    assert correlator.correlate(occurrence(now=T + 60)).event.count == 3


def test_another_message_object_or_source_is_another_event() -> None:
    correlator = ev.Correlator()
    correlator.observe(stored(occurrence()))
    assert not correlator.correlate(occurrence(message="Readiness probe failed: 500")).repeat
    other_pod = created(make_pod("web-2"), uid="other")
    assert not correlator.correlate(occurrence(obj=other_pod)).repeat
    scheduler = msgspec.structs.replace(occurrence(), source=m.EventSource(component="x"))
    assert not correlator.correlate(scheduler).repeat
    assert correlator.correlate(occurrence()).repeat


def test_the_correlator_forgets_the_least_recent_and_what_it_is_told() -> None:
    correlator = ev.Correlator(size=2)
    for text in ("a", "b", "c"):
        correlator.observe(stored(occurrence(message=text)))
    assert len(correlator) == 2
    assert not correlator.correlate(occurrence(message="a")).repeat
    assert correlator.correlate(occurrence(message="c")).repeat
    correlator.forget(occurrence(message="c"))
    assert not correlator.correlate(occurrence(message="c")).repeat


def test_the_spam_filter_allows_a_burst_then_one_per_refill() -> None:
    spam = ev.SpamFilter(burst=3, refill_seconds=300)
    allowed = [spam.allow(occurrence(message=str(i)), T) for i in range(5)]
    assert allowed == [True, True, True, False, False]
    other = occurrence(obj=created(make_pod("web-2"), uid="other"))
    assert spam.allow(other, T)  # buckets are per object
    assert not spam.allow(occurrence(), T + 299)
    assert spam.allow(occurrence(), T + 300)  # one token back after refill_seconds
    assert not spam.allow(occurrence(), T + 301)


# --- time to live -----------------------------------------------------------------------------


def test_expired_are_those_last_seen_more_than_the_ttl_ago() -> None:
    old = stored(occurrence(now=T), name="old")
    repeated = msgspec.structs.replace(stored(occurrence(now=T), name="repeated"),
                                       last_timestamp="2026-01-01T00:50:00Z")
    new_style = m.Event(metadata=m.ObjectMeta(name="n"),
                        event_time="2026-01-01T00:10:00.123456Z")
    timeless = m.Event(metadata=m.ObjectMeta(name="t"), first_timestamp="garbage")
    created_only = m.Event(metadata=m.ObjectMeta(name="c", creation_timestamp=AT))
    found = ev.expired([old, repeated, new_style, timeless, created_only], T + 3601, 3600)
    assert [e.metadata.name for e in found] == ["old", "c"]
    later = ev.expired([old, repeated, new_style, timeless], T + 3600 + 601, 3600)
    assert [e.metadata.name for e in later] == ["old", "n"]
    assert ev.last_seen(timeless) is None


# --- endpoints a Service loses ----------------------------------------------------------------


def _ready_pod(name: str, ip: str, ready: bool = True, **kw: Any) -> m.Pod:
    return created(make_pod(name, labels={"app": "web"}, ip=ip, ready=ready, **kw),
                   uid=f"uid-{name}")


SELECTED = created(make_service("web", selector={"app": "web"}, ports=[port(80)]), uid="svc")


def _slices(pods: list[m.Pod], before: tuple[m.EndpointSlice, ...] = ()
            ) -> tuple[SlicePlan, tuple[m.EndpointSlice, ...]]:
    plan = plan_slices(SELECTED, pods, before, new_suffix=lambda: "abcde")
    named = {sl.metadata.name: sl for sl in before}
    for sl in plan.delete:
        named.pop(sl.metadata.name)
    for sl in (*plan.update, *plan.create):
        named[sl.metadata.name] = created(sl, uid="slice", rv="1")
    return plan, tuple(named.values())


def test_endpoint_changes_name_each_lost_or_unready_endpoint() -> None:
    a, b, c = (_ready_pod("a", "10.244.0.2"), _ready_pod("b", "10.244.0.3"),
               _ready_pod("c", "10.244.0.4"))
    _, before = _slices([a, b, c])
    unready_b = _ready_pod("b", "10.244.0.3", ready=False)
    terminating_c = msgspec.structs.replace(c, metadata=msgspec.structs.replace(
        c.metadata, deletion_timestamp=AT))
    plan, _ = _slices([unready_b, terminating_c], before)
    changes = ev.endpoint_changes(before, plan)
    assert changes == [
        ev.EndpointChange("EndpointRemoved", "10.244.0.2", "a"),
        ev.EndpointChange("EndpointNotReady", "10.244.0.3", "b"),
        ev.EndpointChange("EndpointTerminating", "10.244.0.4", "c"),
    ]
    assert [(x.type, x.message) for x in changes] == [
        ("Normal", "Removed endpoint 10.244.0.2 (pod a)"),
        ("Warning", "Endpoint 10.244.0.3 (pod b) is not ready"),
        ("Normal", "Endpoint 10.244.0.4 (pod c) is terminating"),
    ]


def test_endpoints_that_stay_or_come_back_are_no_change() -> None:
    a = _ready_pod("a", "10.244.0.2", ready=False)
    _, before = _slices([a])
    plan, after = _slices([_ready_pod("a", "10.244.0.2"), _ready_pod("b", "10.244.0.3")],
                          before)
    assert plan and ev.endpoint_changes(before, plan) == []  # ready again, and a new one
    user_slice = msgspec.structs.replace(after[0], metadata=msgspec.structs.replace(
        after[0].metadata, name="users", labels={"kubernetes.io/service-name": "web"}))
    assert ev.endpoint_changes((user_slice,), SlicePlan(delete=(user_slice,))) == []


# --- the messages, and the table of reasons ---------------------------------------------------


def test_cluster_ip_messages() -> None:
    assert ev.cluster_ip_message(SERVICE) == "Cluster IP [IPv4]: 10.96.0.15"
    dual = msgspec.structs.replace(SERVICE, spec=msgspec.structs.replace(
        SERVICE.spec, cluster_ips=("10.96.0.15", "fd00:10:96::5")))
    assert ev.cluster_ip_message(dual) == "Cluster IPs [IPv4, IPv6]: 10.96.0.15, fd00:10:96::5"


def test_kubelet_messages() -> None:
    assert ev.unhealthy_message("readiness", "HTTP probe failed with statuscode: 500") == (
        "Readiness probe failed: HTTP probe failed with statuscode: 500")
    assert ev.back_off_message("main", POD) == (
        "Back-off restarting failed container main in pod web-1_default(pod-uid)")
    assert ev.container_field_path("main") == "spec.containers{main}"


def test_every_reason_has_a_valid_type_and_a_kind_clusterip_serves() -> None:
    for reason, row in ev.REASONS.items():
        assert row.type in ev.EVENT_TYPES, reason
        assert kinds.lookup(row.kind).kind == row.kind, reason


# --- field selectors --------------------------------------------------------------------------


DESCRIBE = ("involvedObject.name=web,involvedObject.namespace=default,"
            "involvedObject.kind=Service,involvedObject.uid=uid-1")


def test_the_describe_field_selector_finds_the_objects_events() -> None:
    selector = parse_field_selector(DESCRIBE)
    selector.check("Event")
    assert selector.matches_object(event())
    other_incarnation = event(involved_object=msgspec.structs.replace(
        ev.reference(SERVICE), uid="uid-2"))
    assert not selector.matches_object(other_incarnation)
    a_pod = ev.new_event(ev.reference(created(make_pod("web"))), type_=ev.NORMAL,
                         reason="Scheduled", message="x", source=KUBELET, now=T)
    assert not selector.matches_object(a_pod)


@pytest.mark.parametrize(("text", "matches"), [
    ("type=Normal", True), ("type!=Normal", False), ("reason=ClusterIPAllocated", True),
    ("source=ipallocator-controller", True), ("reportingComponent=kubelet", False),
    ("involvedObject.apiVersion=v1", True), ("involvedObject.resourceVersion=7", True),
    ("involvedObject.fieldPath=", True), ("metadata.name=web.1", True),
    ("metadata.namespace=default", True),
])
def test_event_field_selectors(text: str, matches: bool) -> None:
    selector = parse_field_selector(text)
    selector.check("Event")
    assert selector.matches_object(event()) is matches


def test_event_fields_are_only_for_events() -> None:
    with pytest.raises(SelectorError, match=r"field label not supported: involvedObject\.name"):
        parse_field_selector("involvedObject.name=web").check("Service")
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.nodeName"):
        parse_field_selector("spec.nodeName=n").check("Event")


# --- the `get` row and `describe` -------------------------------------------------------------


def test_the_get_row_is_kubectls() -> None:
    repeated = event(count=3, last_timestamp="2026-01-01T00:04:00Z")
    table = rows("Event", [repeated], T + 300)
    assert table == [["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
                     ["60s", "Normal", "ClusterIPAllocated", "service/web",
                      "Cluster IP [IPv4]: 10.96.0.15"]]
    wide = rows("Event", [repeated], T + 300, wide=True)
    assert wide[0] == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                       "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]
    assert wide[1][4:] == ["", "ipallocator-controller", "Cluster IP [IPv4]: 10.96.0.15",
                           "5m", "3", "web.1"]


def test_the_row_of_a_container_event_names_the_subobject_and_the_host() -> None:
    e = stored(occurrence(now=T))
    cells = {c.name: c.cell(e, T + 2) for c in COLUMNS["Event"]}
    assert cells["Object"] == "pod/web-1"
    assert cells["Subobject"] == "spec.containers{main}"
    assert cells["Source"] == "kubelet, node-1"
    assert cells["Count"] == "1"
    new_style = m.Event(metadata=m.ObjectMeta(name="n"), reporting_component="sched",
                        series=m.EventSeries(count=4, last_observed_time="2026-01-01T00:00:01Z"),
                        event_time="2026-01-01T00:00:00.5Z",
                        involved_object=m.ObjectReference(kind="Node"))
    cells = {c.name: c.cell(new_style, T + 10) for c in COLUMNS["Event"]}
    assert (cells["Last Seen"], cells["First Seen"], cells["Count"], cells["Object"],
            cells["Source"]) == ("9s", "9s", "4", "node", "sched")
    assert {c.name: c.cell(m.Event(), T) for c in COLUMNS["Event"]}["Last Seen"] == "<unknown>"


def test_describe_lists_the_events_oldest_first() -> None:
    older = event(reason="EndpointRemoved", message="Removed endpoint 10.244.0.2 (pod a)",
                  first_timestamp="2025-12-31T23:50:00Z", count=2,
                  last_timestamp="2025-12-31T23:55:00Z")
    text = describe(SERVICE, events=[event(), older], now=T + 5)
    block = text[text.index("Events:"):].splitlines()
    assert block == [
        "Events:",
        "  Type    Reason              Age                 From                    Message",
        "  ----    ------              ----                ----                    -------",
        "  Normal  EndpointRemoved     5m5s (x2 over 10m)  ipallocator-controller  "
        "Removed endpoint 10.244.0.2 (pod a)",
        "  Normal  ClusterIPAllocated  5s                  ipallocator-controller  "
        "Cluster IP [IPv4]: 10.96.0.15",
    ]
    assert "Events:            <none>" in describe(SERVICE, now=T)


# --- discovery and OpenAPI --------------------------------------------------------------------


def test_events_are_served_like_kube_apiservers() -> None:
    info = kinds.lookup("ev")
    assert (info.kind, info.resource, info.namespaced, info.api_version) == (
        "Event", "events", True, "v1")
    listed = api_resource_list("", "v1")
    assert listed is not None
    (resource,) = [r for r in listed["resources"] if r["name"] == "events"]
    assert resource == {"name": "events", "singularName": "event", "namespaced": True,
                        "kind": "Event", "shortNames": ["ev"],
                        "verbs": ["create", "delete", "get", "list", "patch", "update",
                                  "watch"]}


def test_the_openapi_schema_of_an_event() -> None:
    doc = openapi.documents(["application/merge-patch+json"])["api/v1"]
    schema = doc["components"]["schemas"]["io.k8s.api.core.v1.Event"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "", "version": "v1", "kind": "Event"}]
    props = schema["properties"]
    assert props["involvedObject"] == {"$ref": "#/components/schemas/"
                                       "io.k8s.api.core.v1.ObjectReference"}
    assert props["source"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.EventSource"}
    assert props["count"] == {"type": "integer"}
    assert {"reason", "message", "type", "firstTimestamp", "lastTimestamp", "eventTime",
            "reportingComponent", "reportingInstance", "action", "series",
            "related"} <= props.keys()
    assert "/api/v1/namespaces/{namespace}/events/{name}" in doc["paths"]
