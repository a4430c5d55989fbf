"""The REST API as Kubernetes clients use it: paths, verbs, Status errors, watches."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from clusterip.testing.api import TestApi as Api
from clusterip.testing.api import open_test_api, read_events

pytestmark = pytest.mark.anyio

SERVICES = "/api/v1/namespaces/default/services"
PODS = "/api/v1/namespaces/default/pods"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    body["spec"].update(spec)
    return body


def pod(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "command": ["sleep", "1d"]}]},
    }


async def create(api: Api, path: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    resp = await api.http.post(path, json=body, params=params)
    data = await resp.json()
    assert resp.status == 201, data
    return data  # type: ignore[no-any-return]


async def test_create_allocates_a_cluster_ip_from_the_dynamic_band(api: Api) -> None:
    created = await create(api, SERVICES, service())
    ip = ipaddress.ip_address(created["spec"]["clusterIP"])
    assert ip in ipaddress.ip_network("10.96.0.0/12")
    assert int(ip) - int(ipaddress.ip_address("10.96.0.0")) > 256  # above the static band
    assert created["spec"]["clusterIPs"] == [str(ip)]
    assert created["spec"]["ports"][0]["protocol"] == "TCP"
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    resp = await api.http.get(f"/apis/networking.k8s.io/v1/ipaddresses/{ip}")
    assert (await resp.json())["spec"]["parentRef"]["name"] == "web"


async def test_well_known_services_have_their_addresses(api: Api) -> None:
    kubernetes = await (await api.http.get(f"{SERVICES}/kubernetes")).json()
    dns = await (await api.http.get("/api/v1/namespaces/kube-system/services/kube-dns")).json()
    assert kubernetes["spec"]["clusterIP"] == "10.96.0.1"
    assert dns["spec"]["clusterIP"] == "10.96.0.10"


async def test_invalid_service_gets_422_with_every_cause(api: Api) -> None:
    body = service(ports=[{"port": 70000, "protocol": "SCTP"}])
    before = await api.store.revision()
    resp = await api.http.post(SERVICES, json=body)
    status = await resp.json()
    assert resp.status == 422
    assert status["reason"] == "Invalid" and status["code"] == 422
    fields = {c["field"] for c in status["details"]["causes"]}
    assert {"spec.ports[0].port", "spec.ports[0].protocol"} <= fields
    assert "70000" in status["message"] and "SCTP" in status["message"]
    assert await api.store.revision() == before


async def test_requested_ip_taken_or_out_of_range(api: Api) -> None:
    await create(api, SERVICES, service("a", clusterIP="10.96.0.50"))
    taken = await api.http.post(SERVICES, json=service("b", clusterIP="10.96.0.50"))
    assert taken.status == 422
    assert "already allocated" in (await taken.json())["message"]
    outside = await api.http.post(SERVICES, json=service("c", clusterIP="10.200.0.1"))
    assert outside.status == 422
    assert "10.96.0.0/12" in (await outside.json())["message"]


async def test_duplicate_name_is_409_already_exists(api: Api) -> None:
    await create(api, SERVICES, service())
    resp = await api.http.post(SERVICES, json=service())
    status = await resp.json()
    assert (resp.status, status["reason"]) == (409, "AlreadyExists")


async def test_missing_object_and_namespace_are_404(api: Api) -> None:
    assert (await api.http.get(f"{SERVICES}/nope")).status == 404
    resp = await api.http.post("/api/v1/namespaces/nope/services", json=service())
    assert resp.status == 404
    assert 'namespaces "nope" not found' in (await resp.json())["message"]


async def test_put_with_stale_resource_version_is_409_conflict(api: Api) -> None:
    created = await create(api, SERVICES, service())
    first = dict(created, metadata=dict(created["metadata"], labels={"v": "1"}))
    assert (await api.http.put(f"{SERVICES}/web", json=first)).status == 200
    stale = dict(created, metadata=dict(created["metadata"], labels={"v": "2"}))
    resp = await api.http.put(f"{SERVICES}/web", json=stale)
    status = await resp.json()
    assert (resp.status, status["reason"]) == (409, "Conflict")
    assert "the object has been modified" in status["message"]


async def test_cluster_ip_is_immutable_and_kept_when_omitted(api: Api) -> None:
    created = await create(api, SERVICES, service())
    ip = created["spec"]["clusterIP"]
    omitted = service(selector={"app": "other"})
    resp = await api.http.put(f"{SERVICES}/web", json=omitted)
    assert (await resp.json())["spec"]["clusterIP"] == ip
    changed = service(clusterIP="10.96.0.77")
    resp = await api.http.put(f"{SERVICES}/web", json=changed)
    assert resp.status == 422
    assert "immutable" in (await resp.json())["message"]


async def test_merge_patch_and_json_patch(api: Api) -> None:
    await create(api, SERVICES, service())
    resp = await api.http.patch(
        f"{SERVICES}/web", data=json.dumps({"metadata": {"labels": {"tier": "front"}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert (await resp.json())["metadata"]["labels"] == {"tier": "front"}
    ops = [{"op": "replace", "path": "/spec/ports/0/port", "value": 81}]
    resp = await api.http.patch(f"{SERVICES}/web", data=json.dumps(ops),
                                headers={"Content-Type": "application/json-patch+json"})
    assert (await resp.json())["spec"]["ports"][0]["port"] == 81


async def test_unchanged_update_keeps_the_resource_version(api: Api) -> None:
    created = await create(api, SERVICES, service())
    resp = await api.http.put(f"{SERVICES}/web", json=created)
    assert (await resp.json())["metadata"]["resourceVersion"] == created["metadata"][
        "resourceVersion"]


async def test_unknown_fields_strict_rejects_warn_drops(api: Api) -> None:
    body = service()
    body["spec"]["bogus"] = 1
    strict = await api.http.post(SERVICES, json=body, params={"fieldValidation": "Strict"})
    assert strict.status == 400
    assert 'unknown field "spec.bogus"' in (await strict.json())["message"]
    warned = await api.http.post(SERVICES, json=body)
    assert warned.status == 201
    assert 'unknown field \\"spec.bogus\\"' in warned.headers["Warning"]
    assert "bogus" not in (await warned.json())["spec"]


async def test_status_subresource_changes_only_status(api: Api) -> None:
    created = await create(api, PODS, pod("p1", {"app": "web"}))
    change = dict(created, status={"phase": "Running", "podIP": "10.244.0.5"},
                  metadata=dict(created["metadata"], labels={"changed": "yes"}))
    resp = await api.http.put(f"{PODS}/p1/status", json=change)
    stored = await resp.json()
    assert resp.status == 200, stored
    assert stored["status"]["podIP"] == "10.244.0.5"
    assert stored["metadata"]["labels"] == {"app": "web"}
    # and the main resource ignores status
    again = dict(stored, status={"phase": "Failed"})
    resp = await api.http.put(f"{PODS}/p1", json=again)
    assert (await resp.json())["status"]["phase"] == "Running"


async def test_list_all_namespaces_and_selectors(api: Api) -> None:
    await create(api, SERVICES, service("a"))
    await create(api, SERVICES, dict(service("b"), metadata={"name": "b", "labels": {"x": "1"}}))
    everything = await (await api.http.get("/api/v1/services")).json()
    names = {(i["metadata"]["namespace"], i["metadata"]["name"]) for i in everything["items"]}
    assert {("default", "a"), ("default", "b"), ("kube-system", "kube-dns")} <= names
    assert everything["kind"] == "ServiceList" and everything["metadata"]["resourceVersion"]
    labelled = await (await api.http.get(SERVICES, params={"labelSelector": "x=1"})).json()
    assert [i["metadata"]["name"] for i in labelled["items"]] == ["b"]
    by_name = await (await api.http.get(
        "/api/v1/services", params={"fieldSelector": "metadata.name=a"})).json()
    assert [i["metadata"]["name"] for i in by_name["items"]] == ["a"]
    bad = await api.http.get(SERVICES, params={"labelSelector": "x in (1"})
    assert bad.status == 400


async def test_delete_returns_the_object_and_releases_the_ip(api: Api) -> None:
    created = await create(api, SERVICES, service(clusterIP="10.96.0.60"))
    resp = await api.http.delete(f"{SERVICES}/web")
    deleted = await resp.json()
    assert resp.status == 200 and deleted["metadata"]["name"] == "web"
    assert int(deleted["metadata"]["resourceVersion"]) > int(
        created["metadata"]["resourceVersion"])
    assert (await api.http.get("/apis/networking.k8s.io/v1/ipaddresses/10.96.0.60")).status == 404
    await create(api, SERVICES, service("again", clusterIP="10.96.0.60"))


async def test_delete_of_other_kinds_answers_a_success_status(api: Api) -> None:
    created = await create(api, SLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "s1"}, "addressType": "IPv4", "endpoints": []})
    resp = await api.http.delete(f"{SLICES}/s1")
    assert (resp.status, await resp.json()) == (200, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": {"name": "s1", "group": "discovery.k8s.io", "kind": "endpointslices",
                    "uid": created["metadata"]["uid"]}})


async def test_protected_namespace_cannot_be_deleted(api: Api) -> None:
    resp = await api.http.delete("/api/v1/namespaces/default")
    assert resp.status == 403


async def test_namespace_delete_removes_its_contents(api: Api) -> None:
    await create(api, "/api/v1/namespaces",
                 {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    await create(api, "/api/v1/namespaces/team/services", service(clusterIP="10.96.0.70"))
    assert (await api.http.delete("/api/v1/namespaces/team")).status == 200
    assert (await api.http.get("/api/v1/namespaces/team/services/web")).status == 404
    assert (await api.http.get("/apis/networking.k8s.io/v1/ipaddresses/10.96.0.70")).status == 404


async def test_endpoints_are_a_read_only_view(api: Api) -> None:
    await create(api, SERVICES, service())
    await create(api, SLICES, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
                      {"addresses": ["10.244.0.6"], "conditions": {"ready": False}}],
        "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
    })
    view = await (await api.http.get("/api/v1/namespaces/default/endpoints/web")).json()
    subset = view["subsets"][0]
    assert [a["ip"] for a in subset["addresses"]] == ["10.244.0.5"]
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.244.0.6"]
    resp = await api.http.post("/api/v1/namespaces/default/endpoints", json={
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}})
    assert resp.status == 403


async def test_watch_without_version_lists_then_streams(api: Api) -> None:
    await create(api, SERVICES, service("a"))
    resp = await api.http.get(SERVICES, params={"watch": "true"})
    first = await read_events(resp, 2)  # kubernetes and a
    assert {e["type"] for e in first} == {"ADDED"}
    await create(api, SERVICES, service("b"))
    await api.http.delete(f"{SERVICES}/a")
    later = await read_events(resp, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in later] == [
        ("ADDED", "b"), ("DELETED", "a")]
    resp.close()


async def test_watch_from_version_and_initial_events_bookmark(api: Api) -> None:
    created = await create(api, SERVICES, service("a"))
    rv = created["metadata"]["resourceVersion"]
    resp = await api.http.get(SERVICES, params={"watch": "1", "resourceVersion": rv})
    await create(api, SERVICES, service("b"))
    (event,) = await read_events(resp, 1)
    assert event["object"]["metadata"]["name"] == "b"
    resp.close()
    resp = await api.http.get(SERVICES, params={"watch": "true", "sendInitialEvents": "true"})
    events = await read_events(resp, 4)
    assert events[-1]["type"] == "BOOKMARK"
    assert events[-1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    resp.close()


async def test_bookmarks_carry_progress_made_elsewhere_and_survive_compaction() -> None:
    async with open_test_api(bookmark_interval=0.05) as api:
        created = await create(api, SERVICES, service("a"))
        params = {"watch": "true", "allowWatchBookmarks": "true",
                  "resourceVersion": created["metadata"]["resourceVersion"]}
        resp = await api.http.get(SERVICES, params=params)
        pod_rv = int((await create(api, PODS, pod("p1", {"app": "a"})))["metadata"]
                     ["resourceVersion"])
        bookmark: dict[str, Any] = {}
        while int(bookmark.get("metadata", {}).get("resourceVersion", 0)) < pod_rv:
            (event,) = await read_events(resp, 1)
            assert event["type"] == "BOOKMARK"
            bookmark = event["object"]
        assert bookmark == {"kind": "Service", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(pod_rv)}}
        resp.close()

        await api.store.compact(await api.store.revision())
        resumed = await api.http.get(SERVICES, params={
            **params, "resourceVersion": bookmark["metadata"]["resourceVersion"]})
        await create(api, SERVICES, service("b"))
        (event,) = await read_events(resumed, 1)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "b")
        resumed.close()


async def test_watch_from_compacted_version_gets_410_error_event(api: Api) -> None:
    await create(api, SERVICES, service("a"))
    await create(api, SERVICES, service("b"))
    await api.store.compact(await api.store.revision())
    resp = await api.http.get(SERVICES, params={"watch": "true", "resourceVersion": "1"})
    assert resp.status == 200
    (event,) = await read_events(resp, 1)
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    resp.close()


async def test_health_version_and_discovery(api: Api) -> None:
    assert (await api.http.get("/healthz")).status == 200
    version = await (await api.http.get("/version")).json()
    assert version["minor"] == "32"
    v1 = await (await api.http.get("/api/v1")).json()
    assert "services" in {r["name"] for r in v1["resources"]}
    groups = await (await api.http.get("/apis")).json()
    assert {"apps", "discovery.k8s.io", "networking.k8s.io"} <= {
        g["name"] for g in groups["groups"]}


async def test_unfiltered_list_sends_the_same_objects_as_get(api: Api) -> None:
    await create(api, SERVICES, service("a"))
    await create(api, PODS, pod("p1", {"app": "a"}))
    for path in (SERVICES, PODS, "/api/v1/namespaces"):
        listed = await (await api.http.get(path)).json()
        assert listed["items"]
        for item in listed["items"]:
            got = await api.http.get(f"{path}/{item['metadata']['name']}")
            assert await got.json() == item



async def test_a_pod_on_a_node_is_deleted_gracefully(api: Api) -> None:
    body = pod("p1", {"app": "web"})
    body["spec"]["nodeName"] = "node-1"
    body["spec"]["terminationGracePeriodSeconds"] = 20
    await create(api, PODS, body)
    marked = await (await api.http.delete(f"{PODS}/p1")).json()
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 20
    still = await api.http.get(f"{PODS}/p1")
    assert still.status == 200
    shorter = await api.http.delete(f"{PODS}/p1", json={"gracePeriodSeconds": 5})
    assert (await shorter.json())["metadata"]["deletionGracePeriodSeconds"] == 5
    gone = await api.http.delete(f"{PODS}/p1", params={"gracePeriodSeconds": "0"})
    assert gone.status == 200
    assert (await api.http.get(f"{PODS}/p1")).status == 404


async def test_a_pod_no_node_runs_is_deleted_at_once(api: Api) -> None:
    await create(api, PODS, pod("p2", {"app": "web"}))
    assert (await api.http.delete(f"{PODS}/p2")).status == 200
    assert (await api.http.get(f"{PODS}/p2")).status == 404
