"""Content negotiation for `kubectl get`: a Table when the Accept header asks for one first,
the plain object or list otherwise; what rows carry (`includeObject`); Tables in watches."""

from __future__ import annotations

from typing import Any

import pytest

from clusterip.testing.api import TestApi as Api
from clusterip.testing.api import read_events

pytestmark = pytest.mark.anyio

SERVICES = "/api/v1/namespaces/default/services"
PODS = "/api/v1/namespaces/default/pods"
KUBECTL_GET = {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,"
                         "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"}


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "command": ["sleep", "1d"]}]}}


async def get(api: Api, path: str, status: int = 200, headers: dict[str, str] | None = None,
              **params: str) -> Any:
    resp = await api.http.get(path, headers=headers, params=params)
    body = await resp.json()
    assert resp.status == status, body
    return body


async def create(api: Api, path: str, body: dict[str, Any]) -> Any:
    resp = await api.http.post(path, json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


async def test_kubectls_accept_gets_a_table_of_the_list(api: Api) -> None:
    web = await create(api, SERVICES, service("web"))
    api.clock.advance(65)
    table = await get(api, SERVICES, headers=KUBECTL_GET)
    plain = await get(api, SERVICES)
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    assert table["metadata"] == plain["metadata"]  # the list's resourceVersion
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]
    rows = {r["cells"][0]: r for r in table["rows"]}
    assert rows["web"]["cells"] == [
        "web", "ClusterIP", web["spec"]["clusterIP"], "<none>", "80/TCP", "65s", "app=web"]
    assert rows["web"]["object"] == {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": web["metadata"]}
    assert rows.keys() == {i["metadata"]["name"] for i in plain["items"]}


async def test_plain_json_gets_the_list_and_the_object(api: Api) -> None:
    await create(api, SERVICES, service("web"))
    listed = await get(api, SERVICES, headers={"Accept": "application/json"})
    assert listed["kind"] == "ServiceList"
    one = await get(api, f"{SERVICES}/web", headers={"Accept": "application/json"})
    assert (one["kind"], one["spec"]["ports"][0]["port"]) == ("Service", 80)


async def test_one_object_is_a_one_row_table_at_its_resource_version(api: Api) -> None:
    web = await create(api, SERVICES, service("web"))
    table = await get(api, f"{SERVICES}/web", headers=KUBECTL_GET)
    assert table["metadata"] == {"resourceVersion": web["metadata"]["resourceVersion"]}
    (row,) = table["rows"]
    assert row["cells"][:2] == ["web", "ClusterIP"]
    await get(api, f"{SERVICES}/nope", status=404, headers=KUBECTL_GET)


async def test_filters_apply_to_table_lists(api: Api) -> None:
    await create(api, SERVICES, service("web"))
    await create(api, SERVICES, service("db"))
    table = await get(api, SERVICES, headers=KUBECTL_GET, labelSelector="",
                      fieldSelector="metadata.name=db")
    assert [r["cells"][0] for r in table["rows"]] == ["db"]


async def test_include_object_chooses_what_rows_carry(api: Api) -> None:
    web = await create(api, SERVICES, service("web"))
    whole = await get(api, f"{SERVICES}/web", headers=KUBECTL_GET, includeObject="Object")
    assert whole["rows"][0]["object"] == web
    bare = await get(api, SERVICES, headers=KUBECTL_GET, includeObject="None")
    assert {r["object"] for r in bare["rows"]} == {None}
    status = await get(api, SERVICES, status=400, headers=KUBECTL_GET, includeObject="All")
    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        'Unable to convert to Table as requested: includeObject: Invalid value: "All": '
        "must be 'Metadata', 'Object', 'None', or empty")


async def test_v1beta1_tables_for_older_clients(api: Api) -> None:
    table = await get(api, SERVICES, headers={
        "Accept": "application/json;as=Table;v=v1beta1;g=meta.k8s.io"})
    assert table["apiVersion"] == "meta.k8s.io/v1beta1"
    assert {r["object"]["apiVersion"] for r in table["rows"]} == {"meta.k8s.io/v1beta1"}


async def test_a_table_watch_sends_one_row_tables_headers_first_only(api: Api) -> None:
    listed = await get(api, PODS, headers=KUBECTL_GET)
    resp = await api.http.get(PODS, headers=KUBECTL_GET, params={
        "watch": "true", "resourceVersion": listed["metadata"]["resourceVersion"]})
    created = await create(api, PODS, pod("p1"))
    await api.http.delete(f"{PODS}/p1")
    added, deleted = await read_events(resp, 2)
    resp.close()
    assert (added["type"], deleted["type"]) == ("ADDED", "DELETED")
    for event in (added, deleted):
        assert event["object"]["kind"] == "Table"
        (row,) = event["object"]["rows"]
        assert row["cells"][0] == "p1"
        assert row["object"]["kind"] == "PartialObjectMetadata"
    assert [c["name"] for c in added["object"]["columnDefinitions"]][:5] == [
        "Name", "Ready", "Status", "Restarts", "Age"]
    assert added["object"]["rows"][0]["cells"][1:3] == ["0/1", "Pending"]
    assert added["object"]["metadata"] == {
        "resourceVersion": created["metadata"]["resourceVersion"]}
    assert deleted["object"]["columnDefinitions"] is None


async def test_a_table_watch_without_version_starts_with_every_object(api: Api) -> None:
    await create(api, SERVICES, service("web"))
    resp = await api.http.get(SERVICES, headers=KUBECTL_GET, params={"watch": "true"})
    first, second = await read_events(resp, 2)
    resp.close()
    assert [(e["type"], e["object"]["rows"][0]["cells"][0]) for e in (first, second)] == [
        ("ADDED", "kubernetes"), ("ADDED", "web")]
    assert first["object"]["columnDefinitions"] is not None
    assert second["object"]["columnDefinitions"] is None
