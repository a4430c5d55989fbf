"""PATCH in every content type, server-side apply, field managers, dry runs, and the
Deployment `/scale` subresource, over HTTP. A patch or apply that would make the object invalid
gets the Status Kubernetes gives, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import ClientResponse

from clusterip.testing.api import TestApi as Api

pytestmark = pytest.mark.anyio

SERVICES = "/api/v1/namespaces/default/services"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def service(*ports: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": list(ports)}}


def deployment(replicas: int = 1) -> dict[str, Any]:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                         {"name": "web", "image": "nginx", "command": ["sleep", "1d"]}]}}}}


HTTP = {"name": "http", "port": 80, "targetPort": 8080}
METRICS = {"name": "metrics", "port": 9090}


async def send(api: Api, method: str, path: str, body: Any, content_type: str = MERGE,
               **params: str) -> tuple[ClientResponse, Any]:
    data = body if isinstance(body, str) else json.dumps(body)
    resp = await api.http.request(method, path, data=data, params=params,
                                  headers={"Content-Type": content_type})
    return resp, await resp.json()


async def created(api: Api, path: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    resp, obj = await send(api, "POST", path, body, "application/json", **params)
    assert resp.status == 201, obj
    return obj  # type: ignore[no-any-return]


async def stored(api: Api, path: str) -> Any:
    resp = await api.http.get(path)
    return await resp.json()


async def test_an_unknown_patch_type_is_415(api: Api) -> None:
    await created(api, SERVICES, service(HTTP))
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", {}, "application/xml")
    assert (resp.status, status["kind"]) == (415, "Status")
    assert "application/xml" in status["message"]


async def test_strategic_merge_patch_merges_ports_by_port(api: Api) -> None:
    await created(api, SERVICES, service(HTTP, METRICS))
    resp, patched = await send(api, "PATCH", f"{SERVICES}/web",
                               {"spec": {"ports": [{"port": 80, "targetPort": 9000}]}}, STRATEGIC)
    assert resp.status == 200, patched
    assert [(p["port"], p["targetPort"]) for p in patched["spec"]["ports"]] == [
        (80, 9000), (9090, 9090)]


INVALID_PATCHES = [
    pytest.param(MERGE, {"spec": {"ports": [{"port": 70000}]}}, "spec.ports[0].port",
                 id="merge"),
    pytest.param(STRATEGIC, {"spec": {"ports": [{"port": 80, "targetPort": "-bad-"}]}},
                 "spec.ports[0].targetPort", id="strategic"),
    pytest.param(JSON_PATCH, [{"op": "replace", "path": "/spec/type", "value": "Bogus"}],
                 "spec.type", id="json-patch"),
    pytest.param(APPLY, {**service({**HTTP, "protocol": "SCTP"}), "metadata": {"name": "web"}},
                 "spec.ports[0].protocol", id="apply"),
]


@pytest.mark.parametrize(("content_type", "patch", "field"), INVALID_PATCHES)
async def test_a_patch_that_makes_the_object_invalid_is_422_and_changes_nothing(
        api: Api, content_type: str, patch: Any, field: str) -> None:
    before = await created(api, SERVICES, service(HTTP))
    revision = await api.store.revision()
    force = {"force": "true"} if content_type == APPLY else {}  # the fields are "Python"'s
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", patch, content_type,
                              fieldManager="test", **force)
    assert (resp.status, status["reason"]) == (422, "Invalid"), status
    assert status["message"].startswith('Service "web" is invalid: ')
    assert field in {c["field"] for c in status["details"]["causes"]}
    assert await stored(api, f"{SERVICES}/web") == before
    assert await api.store.revision() == revision


@pytest.mark.parametrize(("content_type", "patch", "message"), [
    (STRATEGIC, {"spec": {"ports": [{"name": "no-port"}]}}, 'has no "port"'),
    (STRATEGIC, '{"spec": ', "error decoding JSON body"),
    (JSON_PATCH, [{"op": "remove", "path": "/spec/nothing"}], "json patch operation 0"),
])
async def test_a_patch_that_cannot_be_applied_is_400_and_changes_nothing(
        api: Api, content_type: str, patch: Any, message: str) -> None:
    before = await created(api, SERVICES, service(HTTP))
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", patch, content_type)
    assert (resp.status, status["reason"]) == (400, "BadRequest"), status
    assert message in status["message"]
    assert await stored(api, f"{SERVICES}/web") == before


async def test_a_patch_naming_a_stale_resource_version_is_409(api: Api) -> None:
    before = await created(api, SERVICES, service(HTTP))
    await send(api, "PATCH", f"{SERVICES}/web", {"metadata": {"labels": {"a": "1"}}})
    stale = {"metadata": {"resourceVersion": before["metadata"]["resourceVersion"],
                          "labels": {"a": "2"}}}
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", stale, STRATEGIC)
    assert (resp.status, status["reason"]) == (409, "Conflict")
    assert (await stored(api, f"{SERVICES}/web"))["metadata"]["labels"] == {"a": "1"}


@pytest.mark.parametrize(("content_type", "patch"), [
    (MERGE, {"metadata": {"labels": {"dry": "run"}}}),
    (STRATEGIC, {"metadata": {"labels": {"dry": "run"}}}),
    (JSON_PATCH, [{"op": "add", "path": "/metadata/labels", "value": {"dry": "run"}}]),
    (APPLY, {**service(HTTP), "metadata": {"name": "web", "labels": {"dry": "run"}}}),
])
async def test_a_dry_run_patch_returns_the_would_be_object_and_stores_nothing(
        api: Api, content_type: str, patch: Any) -> None:
    before = await created(api, SERVICES, service(HTTP))
    revision = await api.store.revision()
    resp, would_be = await send(api, "PATCH", f"{SERVICES}/web", patch, content_type,
                                dryRun="All", fieldManager="test")
    assert resp.status == 200, would_be
    assert would_be["metadata"]["labels"] == {"dry": "run"}
    assert await stored(api, f"{SERVICES}/web") == before
    assert await api.store.revision() == revision


# --- server-side apply ------------------------------------------------------------------------


async def test_apply_creates_then_updates_and_drops_what_the_manager_no_longer_sets(
        api: Api) -> None:
    resp, first = await send(api, "PATCH", f"{SERVICES}/web", service(HTTP, METRICS), APPLY,
                             fieldManager="kubectl")
    assert resp.status == 201, first
    assert first["spec"]["clusterIP"]
    yaml_body = ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
                 "  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8081}]\n")
    resp, second = await send(api, "PATCH", f"{SERVICES}/web", yaml_body, APPLY,
                              fieldManager="kubectl")
    assert resp.status == 200, second
    assert [(p["port"], p["targetPort"]) for p in second["spec"]["ports"]] == [(80, 8081)]
    assert second["spec"]["clusterIP"] == first["spec"]["clusterIP"]
    [entry] = second["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl", "Apply")


async def test_apply_needs_a_field_manager(api: Api) -> None:
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", service(HTTP), APPLY)
    assert (resp.status, status["reason"]) == (400, "BadRequest")
    assert status["message"] == "fieldManager is required for apply requests"
    assert (await api.http.get(f"{SERVICES}/web")).status == 404


@pytest.mark.parametrize(("body", "message"), [
    ({**deployment(), "metadata": {"name": "web"}}, "the body is a Deployment"),
    (service(HTTP, name="other"), "does not match the name on the URL"),
    ({**service(HTTP), "spec": {"ports": [{"port": "eighty"}]}}, "spec.ports[0].port"),
])
async def test_apply_refuses_a_body_that_is_not_this_object(api: Api, body: dict[str, Any],
                                                           message: str) -> None:
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", body, APPLY, fieldManager="me")
    assert resp.status == 400
    assert message in status["message"]


async def test_applying_another_manager_s_field_is_409_unless_forced(api: Api) -> None:
    await created(api, SERVICES, service(HTTP), fieldManager="kubectl-create")
    change = service({**HTTP, "targetPort": 8081})
    resp, status = await send(api, "PATCH", f"{SERVICES}/web", change, APPLY,
                              fieldManager="kubectl")
    assert (resp.status, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-create" using v1: '
        ".spec.ports[port=80].targetPort")
    assert status["details"]["causes"] == [{
        "reason": "FieldManagerConflict", "message": 'conflict with "kubectl-create" using v1',
        "field": ".spec.ports[port=80].targetPort"}]
    resp, forced = await send(api, "PATCH", f"{SERVICES}/web", change, APPLY,
                              fieldManager="kubectl", force="true")
    assert resp.status == 200, forced
    assert forced["spec"]["ports"][0]["targetPort"] == 8081


async def test_a_dry_run_apply_creates_nothing(api: Api) -> None:
    resp, would_be = await send(api, "PATCH", f"{SERVICES}/web", service(HTTP), APPLY,
                                fieldManager="kubectl", dryRun="All")
    assert resp.status == 201 and would_be["metadata"]["name"] == "web"
    assert (await api.http.get(f"{SERVICES}/web")).status == 404


async def test_every_write_records_its_manager(api: Api) -> None:
    await created(api, SERVICES, service(HTTP), fieldManager="kubectl-create")
    await send(api, "PATCH", f"{SERVICES}/web", {"metadata": {"labels": {"tier": "a"}}},
               fieldManager="kubectl-label")
    await send(api, "PATCH", f"{SERVICES}/web",  # no fieldManager: the User-Agent's
               {"metadata": {"annotations": {"note": "x"}}})
    entries = (await stored(api, f"{SERVICES}/web"))["metadata"]["managedFields"]
    assert [(e["manager"], e["operation"]) for e in entries] == [
        ("kubectl-create", "Update"), ("kubectl-label", "Update"), ("Python", "Update")]
    assert entries[1]["fieldsV1"] == {"f:metadata": {"f:labels": {"f:tier": {}}}}


# --- /scale --------------------------------------------------------------------------------------


async def test_scale_reads_and_writes_the_replicas(api: Api) -> None:
    await created(api, DEPLOYMENTS, deployment(replicas=1))
    scale = await stored(api, f"{DEPLOYMENTS}/web/scale")
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert (scale["spec"], scale["status"]["selector"]) == ({"replicas": 1}, "app=web")
    resp, patched = await send(api, "PATCH", f"{DEPLOYMENTS}/web/scale",
                               {"spec": {"replicas": 3}})
    assert (resp.status, patched["kind"], patched["spec"]) == (200, "Scale", {"replicas": 3})
    put = dict(patched, spec={"replicas": 5})
    resp, replaced = await send(api, "PUT", f"{DEPLOYMENTS}/web/scale", put, "application/json")
    assert (resp.status, replaced["spec"]) == (200, {"replicas": 5})
    assert (await stored(api, f"{DEPLOYMENTS}/web"))["spec"]["replicas"] == 5
    resp, status = await send(api, "PUT", f"{DEPLOYMENTS}/web/scale", put, "application/json")
    assert (resp.status, status["reason"]) == (409, "Conflict")  # put's resourceVersion is stale


async def test_a_negative_scale_is_422(api: Api) -> None:
    await created(api, DEPLOYMENTS, deployment())
    resp, status = await send(api, "PATCH", f"{DEPLOYMENTS}/web/scale",
                              {"spec": {"replicas": -1}})
    assert (resp.status, status["reason"]) == (422, "Invalid")
    assert (await stored(api, f"{DEPLOYMENTS}/web"))["spec"]["replicas"] == 1


async def test_only_deployments_scale(api: Api) -> None:
    await created(api, SERVICES, service(HTTP))
    assert (await api.http.get(f"{SERVICES}/web/scale")).status == 404


async def test_discovery_names_the_scale_kind(api: Api) -> None:
    apps = await stored(api, "/apis/apps/v1")
    [scale] = [r for r in apps["resources"] if r["name"] == "deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")


async def test_managed_fields_a_client_writes_must_be_field_trees(api: Api) -> None:
    before = await created(api, SERVICES, service(HTTP))
    bad = {**before, "metadata": {**before["metadata"], "managedFields": [
        {"manager": "me", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": 1}}]}}
    resp, status = await send(api, "PUT", f"{SERVICES}/web", bad, "application/json")
    assert (resp.status, status["reason"]) == (400, "BadRequest")
    assert "fieldsV1 is not a tree of maps" in status["message"]
    assert await stored(api, f"{SERVICES}/web") == before
