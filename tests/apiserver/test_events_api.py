"""Events over the in-process API (`open_test_api(events=True)`: the registry records, and the
broadcaster writes, as in the app): a created Service's ClusterIPAllocated event, found with the
field selector `kubectl describe` sends; the `kubectl get events` Table; events written by
clients (created, listed, patched, refused with every error at its field path, deleted);
and the Python client's shape (involvedObject never null)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from clusterip.testing.api import TestApi as Api
from clusterip.testing.api import open_test_api

pytestmark = pytest.mark.anyio

SERVICES = "/api/v1/namespaces/default/services"
EVENTS = "/api/v1/namespaces/default/events"
KUBECTL_GET = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,"
                         "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"}


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with open_test_api(events=True) as test_api:
        yield test_api


def describe_selector(svc: dict[str, Any]) -> str:
    meta = svc["metadata"]
    return (f"involvedObject.name={meta['name']},involvedObject.namespace={meta['namespace']},"
            f"involvedObject.kind=Service,involvedObject.uid={meta['uid']}")


async def get(api: Api, path: str, status: int = 200, headers: dict[str, str] | None = None,
              **params: str) -> Any:
    resp = await api.http.get(path, headers=headers, params=params)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def create_service(api: Api, name: str) -> Any:
    resp = await api.http.post(SERVICES, json={
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"ports": [{"port": 80}]}})
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def events_of(api: Api, svc: dict[str, Any], eventually: Any) -> list[dict[str, Any]]:
    async def found() -> list[dict[str, Any]]:
        body = await get(api, EVENTS, fieldSelector=describe_selector(svc), limit="500")
        assert (body["kind"], body["apiVersion"]) == ("EventList", "v1")
        items: list[dict[str, Any]] = body["items"]
        return items
    items: list[dict[str, Any]] = await eventually(found)
    return items


async def test_a_created_service_has_its_cluster_ip_allocated_event(
    api: Api, eventually: Any,
) -> None:
    web = await create_service(api, "web")
    await create_service(api, "db")
    (event,) = await events_of(api, web, eventually)
    ip = web["spec"]["clusterIP"]
    assert event["involvedObject"] == {
        "kind": "Service", "namespace": "default", "name": "web", "uid": web["metadata"]["uid"],
        "apiVersion": "v1", "resourceVersion": web["metadata"]["resourceVersion"]}
    assert (event["type"], event["reason"], event["message"], event["count"]) == (
        "Normal", "ClusterIPAllocated", f"Cluster IP [IPv4]: {ip}", 1)
    assert event["source"] == {"component": "ipallocator-controller"}
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-01-01T00:00:00Z"
    assert event["metadata"]["name"].startswith("web.")
    # another incarnation of "web" (another uid) does not see this one's events
    other = {**web, "metadata": {**web["metadata"], "uid": "another"}}
    assert (await get(api, EVENTS, fieldSelector=describe_selector(other)))["items"] == []


async def test_kubectl_get_events_gets_its_table(api: Api, eventually: Any) -> None:
    web = await create_service(api, "web")
    await events_of(api, web, eventually)
    api.clock.advance(42)
    table = await get(api, EVENTS, headers=KUBECTL_GET)
    assert [(c["name"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("Last Seen", 0), ("Type", 0), ("Reason", 0), ("Object", 0), ("Subobject", 1),
        ("Source", 1), ("Message", 0), ("First Seen", 1), ("Count", 1), ("Name", 1)]
    (row,) = [r for r in table["rows"] if r["cells"][3] == "service/web"]
    assert row["cells"][:4] + row["cells"][6:9] == [
        "42s", "Normal", "ClusterIPAllocated", "service/web",
        f"Cluster IP [IPv4]: {web['spec']['clusterIP']}", "42s", "1"]
    assert row["object"]["metadata"]["namespace"] == "default"


async def test_field_selectors_on_events_are_checked(api: Api) -> None:
    body = await get(api, EVENTS, 400, fieldSelector="spec.clusterIP=10.96.0.1")
    assert body["message"] == "field label not supported: spec.clusterIP"
    assert (await get(api, EVENTS, fieldSelector="type=Warning"))["items"] == []


EVENT = {
    "apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.manual"},
    "involvedObject": {"kind": "Service", "namespace": "default", "name": "web"},
    "reason": "Checked", "message": "checked by hand", "type": "Normal",
    "source": {"component": "me"}, "count": 1,
    "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
}


async def test_clients_write_events_like_any_object(api: Api) -> None:
    resp = await api.http.post(EVENTS, json=EVENT)
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["metadata"]["uid"] and created["involvedObject"]["name"] == "web"
    listed = await get(api, EVENTS, fieldSelector="reason=Checked,source=me")
    assert [e["metadata"]["name"] for e in listed["items"]] == ["web.manual"]
    resp = await api.http.patch(f"{EVENTS}/web.manual", data=json.dumps({"count": 2}),
                                headers={"Content-Type": "application/merge-patch+json"})
    assert resp.status == 200 and (await resp.json())["count"] == 2
    resp = await api.http.delete(f"{EVENTS}/web.manual")
    assert resp.status == 200
    assert (await get(api, f"{EVENTS}/web.manual", 404))["reason"] == "NotFound"


async def test_an_invalid_event_is_refused_with_every_error(api: Api) -> None:
    bad = {**EVENT, "involvedObject": {"kind": "Pod", "namespace": "team", "name": "p"},
           "type": "Info", "reason": "", "message": ""}
    resp = await api.http.post(EVENTS, json=bad)
    body = await resp.json()
    assert (resp.status, body["reason"]) == (422, "Invalid"), body
    assert [(c["field"], c["reason"]) for c in body["details"]["causes"]] == [
        ("involvedObject.namespace", "FieldValueInvalid"),
        ("type", "FieldValueNotSupported"),
        ("reason", "FieldValueRequired"),
        ("message", "FieldValueRequired"),
    ]
    assert body["message"].startswith('Event "web.manual" is invalid: [involvedObject.namespace:'
                                      ' Invalid value: "team": does not match event.namespace, ')


async def test_involved_object_is_never_null_for_the_python_client(api: Api) -> None:
    resp = await api.http.post(EVENTS, json={**EVENT, "involvedObject": {}})
    assert resp.status == 201, await resp.text()
    got = await get(api, f"{EVENTS}/web.manual")
    assert got["involvedObject"] == {}
