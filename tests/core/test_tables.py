"""Tables as kube-apiserver sends them to `kubectl get`: which request gets one, the column
definitions, the cells of each kind, and what each row carries."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.errors import BadInput
from clusterip.core.kinds import KINDS
from clusterip.core.printers import COLUMNS
from clusterip.core.tables import TableRequest, one, requested_table, table
from clusterip.core.timefmt import parse_rfc3339
from clusterip.testing.builders import (
    make_deployment,
    make_endpoint_slice,
    make_pod,
    make_service,
    port,
)

KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                  "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")
CREATED = "2026-01-01T00:00:00Z"
T0 = parse_rfc3339(CREATED)
V1 = TableRequest("meta.k8s.io/v1")


def created(obj: Any, resource_version: str = "7") -> Any:
    meta = msgspec.structs.replace(obj.metadata, creation_timestamp=CREATED, uid="u-1",
                                   resource_version=resource_version)
    return msgspec.structs.replace(obj, metadata=meta)


def as_json(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


def cells(kind: str, obj: m.KubeObject, now: float = T0 + 65) -> dict[str, str]:
    (row,) = as_json(one(V1, kind, obj, now))["rows"]
    return dict(zip([c.name for c in COLUMNS[kind]], row["cells"], strict=True))


# --- which request gets a Table ---------------------------------------------------------------


@pytest.mark.parametrize(("accept", "include", "expected"), [
    pytest.param(KUBECTL_ACCEPT, "", V1, id="kubectl-get"),
    pytest.param("application/json;as=Table;v=v1beta1;g=meta.k8s.io", "",
                 TableRequest("meta.k8s.io/v1beta1"), id="v1beta1"),
    pytest.param(KUBECTL_ACCEPT, "Object", TableRequest("meta.k8s.io/v1", "Object"),
                 id="include-object"),
    pytest.param(KUBECTL_ACCEPT, "None", TableRequest("meta.k8s.io/v1", "None"),
                 id="include-none"),
    pytest.param("application/json", "", None, id="plain-json"),
    pytest.param("", "", None, id="no-accept"),
    pytest.param("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", "", None,
                 id="plain-json-first"),
    pytest.param("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,"
                 "application/json", "", None, id="other-conversion-skipped"),
    pytest.param("application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io", "", V1,
                 id="non-json-skipped"),
])
def test_a_table_is_served_when_asked_for_before_plain_json(
        accept: str, include: str, expected: TableRequest | None) -> None:
    assert requested_table(accept, include) == expected


def test_an_unknown_include_object_is_refused_only_with_a_table() -> None:
    with pytest.raises(BadInput, match=r'includeObject: Invalid value: "Everything"'):
        requested_table(KUBECTL_ACCEPT, "Everything")
    assert requested_table("application/json", "Everything") is None


# --- the Table --------------------------------------------------------------------------------


def test_a_service_table_is_kube_apiservers() -> None:
    svc = created(make_service("web", cluster_ip="10.96.0.11", selector={"app": "web"},
                               ports=[port(80)]))
    assert as_json(one(V1, "Service", svc, T0 + 65)) == {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": "7"},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."},
            {"name": "Type", "type": "string", "format": "", "priority": 0,
             "description": "type determines how the Service is exposed."},
            {"name": "Cluster-IP", "type": "string", "format": "", "priority": 0,
             "description": "clusterIP is the IP address of the service and is usually "
                            "assigned randomly."},
            {"name": "External-IP", "type": "string", "format": "", "priority": 0,
             "description": "externalIPs is a list of IP addresses for which nodes in the "
                            "cluster will also accept traffic for this service."},
            {"name": "Port(s)", "type": "string", "format": "", "priority": 0,
             "description": "The list of ports that are exposed by this service."},
            {"name": "Age", "type": "string", "format": "", "priority": 0,
             "description": "CreationTimestamp is a timestamp representing the server time "
                            "when this object was created."},
            {"name": "Selector", "type": "string", "format": "", "priority": 1,
             "description": "Route service traffic to pods with label keys and values "
                            "matching this selector."},
        ],
        "rows": [{
            "cells": ["web", "ClusterIP", "10.96.0.11", "<none>", "80/TCP", "65s", "app=web"],
            "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                       "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                                    "resourceVersion": "7", "creationTimestamp": CREATED}},
        }],
    }


def test_pod_cells_with_the_wide_columns() -> None:
    pod = created(make_pod("a", ip="10.244.0.5", ready=True))
    assert cells("Pod", pod) == {
        "Name": "a", "Ready": "1/1", "Status": "Running", "Restarts": "0", "Age": "65s",
        "IP": "10.244.0.5", "Node": "node-1", "Nominated Node": "<none>",
        "Readiness Gates": "<none>"}
    assert [c.name for c in COLUMNS["Pod"] if c.priority] == [
        "IP", "Node", "Nominated Node", "Readiness Gates"]


def test_pod_readiness_gates_count_the_true_conditions() -> None:
    def gated(pod: m.Pod) -> m.Pod:
        gates = ({"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"})
        conditions = (*pod.status.conditions, m.Condition(type="example.com/lb", status="True"))
        return msgspec.structs.replace(
            pod, spec=msgspec.structs.replace(pod.spec, readiness_gates=gates),
            status=msgspec.structs.replace(pod.status, conditions=conditions))

    assert cells("Pod", make_pod("a", ready=True, mutate=gated))["Readiness Gates"] == "1/2"


def test_a_pending_pod_on_no_node() -> None:
    pod = created(make_pod("p", node=""))
    assert cells("Pod", pod) == {
        "Name": "p", "Ready": "0/1", "Status": "Pending", "Restarts": "0", "Age": "65s",
        "IP": "<none>", "Node": "<none>", "Nominated Node": "<none>",
        "Readiness Gates": "<none>"}


def test_deployment_cells_with_containers_images_and_selector() -> None:
    def running(d: m.Deployment) -> m.Deployment:
        selector = m.LabelSelector(match_labels={"app": "web"}, match_expressions=(
            m.LabelSelectorRequirement(key="tier", operator="In", values=("fe", "be")),))
        template = msgspec.structs.replace(d.spec.template, spec=m.PodSpec(containers=(
            m.Container(name="web", image="nginx:1.27"),
            m.Container(name="sidecar", image="busybox"))))
        return msgspec.structs.replace(
            d, spec=msgspec.structs.replace(d.spec, selector=selector, template=template),
            status=m.DeploymentStatus(ready_replicas=2, updated_replicas=3,
                                      available_replicas=2))

    dep = created(make_deployment("web", replicas=3, mutate=running))
    assert cells("Deployment", dep) == {
        "Name": "web", "Ready": "2/3", "Up-to-date": "3", "Available": "2", "Age": "65s",
        "Containers": "web,sidecar", "Images": "nginx:1.27,busybox",
        "Selector": "app=web,tier in (be,fe)"}


def test_endpoint_slice_cells_show_three_addresses_then_a_count() -> None:
    sl = created(make_endpoint_slice(
        "web-abcde", service="web", addresses=["10.244.0.5", "10.244.0.6", "10.244.0.7",
                                               "10.244.0.8"],
        ports=[m.EndpointPort(name="http", port=8080, protocol="TCP")]))
    assert cells("EndpointSlice", sl) == {
        "Name": "web-abcde", "AddressType": "IPv4", "Ports": "8080",
        "Endpoints": "10.244.0.5,10.244.0.6,10.244.0.7 + 1 more...", "Age": "65s"}


def test_node_cells_with_roles_and_addresses() -> None:
    node = created(m.Node(
        kind="Node", api_version="v1",
        metadata=m.ObjectMeta(name="node-1", labels={
            "node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "node-1"}),
        status=m.NodeStatus(
            addresses=(m.NodeAddress(type="InternalIP", address="192.168.50.2"),),
            conditions=(m.Condition(type="Ready", status="True"),),
            node_info={"kubeletVersion": "v1.32.0", "containerRuntimeVersion": "clusterip://x"},
        )))
    assert cells("Node", node) == {
        "Name": "node-1", "Status": "Ready", "Roles": "control-plane", "Age": "65s",
        "Version": "v1.32.0", "Internal-IP": "192.168.50.2", "External-IP": "<none>",
        "OS-Image": "<unknown>", "Kernel-Version": "<unknown>",
        "Container-Runtime": "clusterip://x"}


def test_every_kind_has_a_name_column_first() -> None:
    """...but Event, whose Name is its last column, shown only by -o wide (kube-apiserver's)."""
    for kind, columns in COLUMNS.items():
        named = [(i, c.name, c.priority) for i, c in enumerate(columns) if c.format == "name"]
        if kind == "Event":
            assert named == [(len(columns) - 1, "Name", 1)], kind
        else:
            assert named == [(0, "Name", 0)], kind


def test_every_kind_the_api_serves_has_columns_and_a_row_for_a_bare_object() -> None:
    for info in KINDS:
        bare = info.type(metadata=m.ObjectMeta(name="x", namespace="default"))
        assert table(V1, info.kind, [bare], T0,
                     metadata=m.ListMeta()).rows, info.kind


# --- what rows carry, lists, watches ----------------------------------------------------------


def test_include_object_puts_the_whole_object_or_nothing_in_each_row() -> None:
    svc = created(make_service("web", cluster_ip="10.96.0.11", ports=[port(80)]))
    whole = as_json(one(TableRequest("meta.k8s.io/v1", "Object"), "Service", svc, T0))
    assert whole["rows"][0]["object"] == as_json(svc)
    assert whole["rows"][0]["object"]["spec"]["clusterIP"] == "10.96.0.11"
    bare = as_json(one(TableRequest("meta.k8s.io/v1", "None"), "Service", svc, T0))
    assert bare["rows"][0]["object"] is None


def test_a_list_table_carries_the_lists_metadata_and_one_row_per_object() -> None:
    pods = [created(make_pod(name, namespace=ns)) for name, ns in [("a", "default"),
                                                                   ("b", "team")]]
    body = as_json(table(V1, "Pod", pods, T0, metadata=m.ListMeta(resource_version="42")))
    assert body["metadata"] == {"resourceVersion": "42"}
    assert [(r["cells"][0], r["object"]["metadata"]["namespace"]) for r in body["rows"]] == [
        ("a", "default"), ("b", "team")]
    empty = as_json(table(V1, "Pod", [], T0, metadata=m.ListMeta(resource_version="42")))
    assert (empty["rows"], len(empty["columnDefinitions"])) == ([], 9)


def test_a_table_without_headers_has_null_column_definitions() -> None:
    pod = created(make_pod("a"))
    assert as_json(one(V1, "Pod", pod, T0, headers=False))["columnDefinitions"] is None
