"""Strategic merge patch: what `kubectl apply` and the Python client send, merged the way
kube-apiserver merges it (lists by their merge keys, directives applied, never stored)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.errors import BadInput
from clusterip.core.patchmeta import MERGE_KEYS, child, item, schema_of, struct_class
from clusterip.core.strategicpatch import strategic_merge_patch

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def port(number: int, name: str, target: int | None = None) -> dict[str, Any]:
    return {"name": name, "port": number, "protocol": "TCP", "targetPort": target or number}


def service(*ports: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"selector": {"app": "web"}, "ports": list(ports), **spec}}


def deployment(*env: dict[str, str], image: str = "nginx:1.27", **spec: Any) -> dict[str, Any]:
    container = {"name": "web", "image": image, "env": list(env)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [container]}}, **spec}}


def with_spec(obj: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {**obj, "spec": {**obj["spec"], **spec}}


SERVICE = schema_of(m.Service)
DEPLOYMENT = schema_of(m.Deployment)
POD = schema_of(m.Pod)
HTTP, METRICS = port(80, "http", 8080), port(9090, "metrics")

CASES = [
    # --- kubectl apply's real payloads (recorded from kubectl 1.32, annotation shortened) ---
    pytest.param(
        SERVICE, service(HTTP),
        {"metadata": {"annotations": {LAST_APPLIED: "{...}"}},
         "spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 9090}],
                  "ports": [{"name": "metrics", "port": 9090}]}},
        {**service(HTTP, {"name": "metrics", "port": 9090}),
         "metadata": {"name": "web", "labels": {"app": "web"},
                      "annotations": {LAST_APPLIED: "{...}"}}},
        id="kubectl-apply-adds-a-port"),
    pytest.param(
        SERVICE, service(HTTP, METRICS),
        {"spec": {"$setElementOrder/ports": [{"port": 9090}],
                  "ports": [{"$patch": "delete", "port": 80}]}},
        service(METRICS),
        id="kubectl-apply-removes-a-port"),
    pytest.param(
        SERVICE, service(HTTP, port(9090, "metrics")),
        {"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 9091}],
                  "ports": [{"name": "metrics", "port": 9091}, {"$patch": "delete", "port": 9090}],
                  "selector": {"app": "web2"}}},
        service(HTTP, {"name": "metrics", "port": 9091}, selector={"app": "web2"}),
        id="kubectl-apply-renumbers-a-port"),
    pytest.param(
        DEPLOYMENT, deployment({"name": "A", "value": "1"}, {"name": "B", "value": "2"}),
        {"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}],
                            "env": [{"$patch": "delete", "name": "B"}],
                            "image": "nginx:1.28", "name": "web"}]}}}},
        deployment({"name": "A", "value": "1"}, image="nginx:1.28"),
        id="kubectl-apply-changes-a-container-image-and-env"),
    # --- maps -----------------------------------------------------------------------------
    pytest.param(
        SERVICE, service(HTTP),
        {"metadata": {"labels": {"tier": "front", "app": None}}},
        {**service(HTTP), "metadata": {"name": "web", "labels": {"tier": "front"}}},
        id="maps-merge-and-null-deletes"),
    pytest.param(
        SERVICE, service(HTTP, selector={"app": "web", "tier": "front"}),
        {"spec": {"selector": {"$patch": "replace", "app": "other"}}},
        service(HTTP, selector={"app": "other"}),
        id="patch-replace-replaces-a-map"),
    pytest.param(
        SERVICE, service(HTTP),
        {"spec": {"selector": {"$patch": "delete"}}},
        service(HTTP, selector={}),
        id="patch-delete-empties-a-map"),
    pytest.param(
        DEPLOYMENT,
        deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}),
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        deployment(strategy={"type": "Recreate"}),
        id="retain-keys-drops-the-others"),
    # --- lists with a merge key ------------------------------------------------------------
    pytest.param(
        SERVICE, service(HTTP, METRICS),
        {"spec": {"ports": [{"port": 80, "targetPort": 9000}]}},
        service(port(80, "http", 9000), METRICS),
        id="python-client-patch-of-one-port-keeps-the-others"),
    pytest.param(
        SERVICE, service(HTTP),
        {"spec": {"ports": [{"port": 53, "name": "dns", "protocol": "UDP"}]}},
        service({"port": 53, "name": "dns", "protocol": "UDP"}, HTTP),
        id="a-new-item-with-no-order-comes-first-as-in-kubernetes"),
    pytest.param(
        SERVICE, service(HTTP, METRICS),
        {"spec": {"ports": [{"$patch": "replace"}, {"port": 443, "name": "https"}]}},
        service({"port": 443, "name": "https"}),
        id="patch-replace-in-a-list-replaces-it"),
    pytest.param(
        SERVICE, service(port(1, "a"), port(2, "b"), port(3, "c")),
        {"spec": {"$setElementOrder/ports": [{"port": 3}, {"port": 2}, {"port": 1}]}},
        service(port(3, "c"), port(2, "b"), port(1, "a")),
        id="set-element-order-sorts-the-named-items"),
    pytest.param(
        SERVICE, service(port(1, "a"), port(2, "x"), port(3, "b")),
        {"spec": {"$setElementOrder/ports": [{"port": 1}, {"port": 3}, {"port": 4}],
                  "ports": [{"port": 4, "name": "c"}]}},
        service(port(1, "a"), port(2, "x"), port(3, "b"), {"port": 4, "name": "c"}),
        id="items-only-the-server-has-keep-their-place"),
    pytest.param(
        POD,
        {"spec": {"containers": [{"name": "a", "image": "x"}]}},
        {"spec": {"containers": [{"name": "b", "image": "y",
                                  "env": [{"$patch": "delete", "name": "GONE"}],
                                  "$setElementOrder/env": [{"name": "K"}]}]}},
        {"spec": {"containers": [{"name": "b", "image": "y", "env": []},
                                 {"name": "a", "image": "x"}]}},
        id="directives-in-a-new-item-are-applied-to-nothing"),
    pytest.param(
        POD,
        {"spec": {"volumes": [{"name": "v", "emptyDir": {"medium": "Memory"}},
                              {"name": "w", "emptyDir": {}}]}},
        {"spec": {"volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}}]}},
        {"spec": {"volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                              {"name": "w", "emptyDir": {}}]}},
        id="free-form-items-merge-by-their-key"),
    # --- sets of scalars and atomic lists ---------------------------------------------------
    pytest.param(
        SERVICE, {"metadata": {"name": "web", "finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["c", "a"]}},
        {"metadata": {"name": "web", "finalizers": ["c", "a", "b"]}},
        id="finalizers-merge-as-a-set"),
    pytest.param(
        SERVICE, {"metadata": {"name": "web", "finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"name": "web", "finalizers": ["a", "c"]}},
        id="delete-from-primitive-list"),
    pytest.param(
        SERVICE, service(HTTP, externalIPs=["192.0.2.1", "192.0.2.2"]),
        {"spec": {"externalIPs": ["192.0.2.3"]}},
        service(HTTP, externalIPs=["192.0.2.3"]),
        id="a-list-without-merge-key-is-replaced"),
    pytest.param(
        schema_of(m.EndpointSlice),
        {"endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]},
        {"endpoints": [{"addresses": ["10.0.0.3"]}]},
        {"endpoints": [{"addresses": ["10.0.0.3"]}]},
        id="endpointslice-endpoints-are-atomic"),
    pytest.param(
        None, {"spec": {"replicas": 1, "list": [{"port": 1}]}},
        {"spec": {"replicas": 3, "list": [{"port": 2}]}},
        {"spec": {"replicas": 3, "list": [{"port": 2}]}},
        id="without-a-schema-lists-are-replaced"),
]


@pytest.mark.parametrize(("schema", "original", "patch", "expected"), CASES)
def test_strategic_merge_patch(schema: Any, original: dict[str, Any], patch: dict[str, Any],
                               expected: dict[str, Any]) -> None:
    before = (copy.deepcopy(original), copy.deepcopy(patch))
    assert strategic_merge_patch(original, patch, schema) == expected
    assert (original, patch) == before  # the arguments are left as they were


BAD_PATCHES = [
    pytest.param([{"op": "add"}], "must be a JSON object", id="not-an-object"),
    pytest.param({"spec": {"$patch": "explode"}}, "unknown directive", id="unknown-directive"),
    pytest.param({"spec": {"ports": [{"name": "no-port"}]}}, 'has no "port"',
                 id="item-without-its-merge-key"),
    pytest.param({"spec": {"ports": [{"$patch": "delete", "name": "x"}]}}, 'needs "port"',
                 id="delete-without-the-merge-key"),
    pytest.param({"spec": {"ports": [{"$patch": "merge", "port": 80}]}}, "unknown directive",
                 id="merge-directive-in-a-list"),
    pytest.param({"spec": {"$retainKeys": "type"}}, "must be a list", id="retain-keys-not-a-list"),
    pytest.param({"metadata": {"finalizers": [{"a": 1}]}}, "scalars only",
                 id="object-in-a-set"),
]


@pytest.mark.parametrize(("patch", "message"), BAD_PATCHES)
def test_a_patch_that_cannot_be_applied_is_bad_input(patch: Any, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        strategic_merge_patch(service(HTTP), patch, SERVICE)


@pytest.mark.parametrize(("owner", "field"), sorted(MERGE_KEYS, key=str))
def test_every_merge_key_names_a_list_of_the_model(owner: type[msgspec.Struct], field: str
                                                   ) -> None:
    schema = child(schema_of(owner), field)
    assert schema is not None, f"{owner.__name__} has no field {field}"
    key = MERGE_KEYS[(owner, field)]
    items = item(schema)
    assert items is not None, f"{owner.__name__}.{field} is not a list"
    items_class = struct_class(items)
    if key and items_class is not None:
        assert child(items, key) is not None, f"{items_class.__name__} has no {key}"
