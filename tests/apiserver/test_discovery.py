"""Discovery and OpenAPI over HTTP, as kubectl and the Python client read them.

kubectl asks `/api` and `/apis` for the aggregated form first and must get it under exactly its
content type; other clients get the legacy documents. Both forms say the same, and agree with
what kubectl was recorded accepting (tests/data/kubectl/). The OpenAPI index names a document
per group-version, by a URL that changes with the document; each document has, for every kind,
the PATCH operation kubectl inspects for `fieldValidation`.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from clusterip.core.kinds import KINDS
from clusterip.core.openapi import STRATEGIC_MERGE_PATCH
from clusterip.testing.api import TestApi as Api

pytestmark = pytest.mark.anyio

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
KUBECTL_ACCEPT = (f"{AGGREGATED},application/json;g=apidiscovery.k8s.io;v=v2beta1;"
                  "as=APIGroupDiscoveryList,application/json")
RECORDED = Path(__file__).resolve().parent.parent / "data" / "kubectl"
GROUP_VERSIONS = {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                  "apis/discovery.k8s.io/v1", "apis/networking.k8s.io/v1"}


async def get(api: Api, path: str, accept: str = "application/json") -> Any:
    resp = await api.http.get(path, headers={"Accept": accept})
    assert resp.status == 200, await resp.text()
    return json.loads(await resp.read())


async def test_kubectl_gets_the_aggregated_documents_under_their_exact_type(api: Api) -> None:
    groups = {}
    for path in ("/api", "/apis"):
        resp = await api.http.get(path, headers={"Accept": KUBECTL_ACCEPT})
        assert resp.headers["Content-Type"] == AGGREGATED
        assert resp.headers["Vary"] == "Accept"
        body = json.loads(await resp.read())
        assert (body["kind"], body["apiVersion"]) == ("APIGroupDiscoveryList",
                                                      "apidiscovery.k8s.io/v2")
        groups[path] = [item["metadata"]["name"] for item in body["items"]]
    assert groups == {"/api": [""],
                      "/apis": ["apps", "coordination.k8s.io", "discovery.k8s.io",
                                "networking.k8s.io"]}


@pytest.mark.parametrize("accept", [
    pytest.param("application/json", id="json"),
    pytest.param("", id="none"),
    pytest.param("*/*", id="anything"),
    pytest.param("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
                 "application/json", id="only-v2beta1-aggregated"),
])
async def test_other_clients_get_the_legacy_documents(api: Api, accept: str) -> None:
    resp = await api.http.get("/api", headers={"Accept": accept})
    assert resp.headers["Content-Type"] == "application/json"
    assert (await resp.json())["kind"] == "APIVersions"
    assert (await get(api, "/apis", accept))["kind"] == "APIGroupList"


def _from_aggregated(lists: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for body in lists:
        for group in body["items"]:
            for version in group["versions"]:
                gv = "/".join(filter(None, (group["metadata"]["name"], version["version"])))
                for r in version["resources"]:
                    found[(gv, r["resource"])] = {
                        "singularName": r["singularResource"],
                        "namespaced": r["scope"] == "Namespaced",
                        "kind": r["responseKind"]["kind"], "verbs": r["verbs"],
                        "shortNames": r.get("shortNames", []),
                        "categories": r.get("categories", []),
                    }
                    for sub in r.get("subresources", []):
                        found[(gv, f"{r['resource']}/{sub['subresource']}")] = {
                            "kind": sub["responseKind"]["kind"], "verbs": sub["verbs"]}
    return found


def _from_legacy(lists: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for body in lists:
        for r in body["resources"]:
            if "/" in r["name"]:
                found[(body["groupVersion"], r["name"])] = {"kind": r["kind"],
                                                            "verbs": r["verbs"]}
            else:
                found[(body["groupVersion"], r["name"])] = {
                    "singularName": r["singularName"], "namespaced": r["namespaced"],
                    "kind": r["kind"], "verbs": r["verbs"],
                    "shortNames": r.get("shortNames", []),
                    "categories": r.get("categories", []),
                }
    return found


async def test_both_forms_say_the_same(api: Api) -> None:
    aggregated = [await get(api, path, KUBECTL_ACCEPT) for path in ("/api", "/apis")]
    groups = (await get(api, "/apis"))["groups"]
    legacy = [await get(api, "/api/v1")] + [
        await get(api, f"/apis/{g['preferredVersion']['groupVersion']}") for g in groups]
    assert _from_aggregated(aggregated) == _from_legacy(legacy)
    assert {(k.api_version, k.resource) for k in KINDS} <= _from_legacy(legacy).keys()


async def test_the_documents_agree_with_what_kubectl_accepted(api: Api) -> None:
    legacy = _from_legacy([await get(api, "/api/v1"),
                           await get(api, "/apis/discovery.k8s.io/v1")])
    recorded = _from_legacy([json.loads((RECORDED / name).read_text())
                             for name in ("legacy_api_v1.json", "legacy_discovery_v1.json")])
    _agree(legacy, recorded)
    aggregated = _from_aggregated([await get(api, p, KUBECTL_ACCEPT) for p in ("/api", "/apis")])
    recorded = _from_aggregated([json.loads((RECORDED / name).read_text())
                                 for name in ("aggregated_api.json", "aggregated_apis.json")])
    # the recording's aggregated subresources were made up by the probe (all get/patch/update)
    _agree({k: v for k, v in aggregated.items() if "/" not in k[1]}, recorded)


def _agree(ours: dict[tuple[str, str], dict[str, Any]],
           recorded: dict[tuple[str, str], dict[str, Any]]) -> None:
    compared = ours.keys() & recorded.keys()
    assert {("v1", "services"), ("v1", "pods"), ("v1", "namespaces"), ("v1", "endpoints"),
            ("discovery.k8s.io/v1", "endpointslices")} <= compared
    for key in compared:
        mine, theirs = dict(ours[key]), dict(recorded[key])
        # the verbs served are a subset: clusterip serves no deletecollection
        assert set(mine.pop("verbs")) <= set(theirs.pop("verbs")), key
        assert mine == theirs, key


async def test_an_unserved_group_version_is_404(api: Api) -> None:
    for path in ("/apis/batch/v1", "/api/v2"):
        resp = await api.http.get(path)
        assert (resp.status, (await resp.json())["reason"]) == (404, "NotFound")


async def test_the_openapi_index_names_each_document_by_its_hash(api: Api) -> None:
    index = await get(api, "/openapi/v3")
    assert index["paths"].keys() == GROUP_VERSIONS
    for path, entry in index["paths"].items():
        url = urllib.parse.urlsplit(entry["serverRelativeURL"])
        assert url.path == f"/openapi/v3/{path}"
        resp = await api.http.get(entry["serverRelativeURL"])
        assert resp.status == 200
        digest = hashlib.sha512(await resp.read()).hexdigest().upper()
        assert urllib.parse.parse_qs(url.query) == {"hash": [digest]}


async def test_every_kind_has_the_patch_operation_kubectl_inspects(api: Api) -> None:
    for k in KINDS:
        where = f"apis/{k.group}" if k.group else "api"
        doc = await get(api, f"/openapi/v3/{where}/{k.version}")
        (operation,) = [
            item["patch"] for item in doc["paths"].values()
            if item["patch"]["x-kubernetes-group-version-kind"] == {
                "group": k.group, "version": k.version, "kind": k.kind}]
        assert ("fieldValidation", "query") in {(p["name"], p["in"])
                                                for p in operation["parameters"]}
        content = operation["requestBody"]["content"]
        assert "application/merge-patch+json" in content
        assert STRATEGIC_MERGE_PATCH not in content  # kubectl would build SMPs from the schemas


async def test_no_openapi_v2_and_no_unknown_documents(api: Api) -> None:
    for path in ("/openapi/v2", "/openapi/v3/apis/batch/v1"):
        assert (await api.http.get(path)).status == 404
