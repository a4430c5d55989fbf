"""Bad requests get the Status a Kubernetes client expects (code, reason, and a message naming
what is wrong) and change nothing: the store's revision is the same after each.

Every case is a row of `CASES`: the request, then what it must be told. The objects the cases
aim at (`web`, a Service) exist before each case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from clusterip.testing.api import TestApi as Api

pytestmark = pytest.mark.anyio

SERVICES = "/api/v1/namespaces/default/services"
WEB = f"{SERVICES}/web"
JSON = "application/json"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80}], **spec}}


def encoded(body: Any) -> bytes:
    return json.dumps(body).encode()


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    body: bytes = b""
    content_type: str = JSON
    params: dict[str, str] = field(default_factory=dict)
    # what the client is told
    code: int = 400
    reason: str = "BadRequest"
    says: str = ""  # a part of the message


CASES = {
    # bodies that are not an object of the path's kind
    "malformed-json": Case("POST", SERVICES, b'{"kind": "Service", ', says="error decoding JSON"),
    "malformed-yaml": Case("POST", SERVICES, b"kind: [Service", "application/yaml",
                           says="error parsing YAML"),
    "not-an-object": Case("POST", SERVICES, b"[1, 2]", says="must be a JSON object"),
    "empty-body": Case("POST", SERVICES, b"", says="the request body is empty"),
    "binary-garbage": Case("POST", SERVICES, bytes(range(256)), says="error decoding JSON"),
    "wrong-kind-for-path": Case(
        "POST", SERVICES,
        encoded({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                 "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        says="the body is a Pod (v1) but the URL is for services"),
    "wrong-api-version": Case(
        "POST", SERVICES, encoded({**service("x"), "apiVersion": "apps/v1"}),
        says="apps/v1"),
    "other-namespace": Case(
        "POST", SERVICES, encoded({**service("x"), "metadata": {"name": "x", "namespace": "b"}}),
        says="does not match the namespace"),
    "unknown-field-strict": Case(
        "POST", SERVICES, encoded(service("x", bogus=1)), params={"fieldValidation": "Strict"},
        says='unknown field "spec.bogus"'),
    "wrong-type": Case("POST", SERVICES, encoded(service("x", ports=[{"port": "eighty"}])),
                       says="spec.ports[0].port"),
    "invalid-object": Case("POST", SERVICES, encoded(service("x", ports=[{"port": 70000}])),
                           code=422, reason="Invalid",
                           says="spec.ports[0].port: Invalid value: 70000"),
    # replace
    "replace-other-name": Case("PUT", WEB, encoded(service("other")),
                               says="does not match the name on the URL"),
    "replace-stale": Case("PUT", WEB, encoded({**service(), "metadata": {
        "name": "web", "resourceVersion": "1"}}), code=409, reason="Conflict"),
    "replace-missing": Case("PUT", f"{SERVICES}/nothing", encoded(service("nothing")),
                            code=404, reason="NotFound", says='"nothing" not found'),
    # patches
    "patch-malformed": Case("PATCH", WEB, b'{"spec": ', MERGE, says="error decoding JSON"),
    "patch-makes-invalid": Case("PATCH", WEB, encoded({"spec": {"ports": [{"port": 0}]}}), MERGE,
                                code=422, reason="Invalid", says="spec.ports[0].port"),
    "patch-changes-kind": Case("PATCH", WEB, encoded({"kind": "Pod"}), MERGE,
                               says="Pod"),
    "strategic-makes-invalid": Case(
        "PATCH", WEB, encoded({"spec": {"sessionAffinity": "Sometimes"}}), STRATEGIC,
        code=422, reason="Invalid", says="spec.sessionAffinity"),
    "strategic-unknown-directive": Case(
        "PATCH", WEB, encoded({"spec": {"$patch": "explode"}}), STRATEGIC, says="explode"),
    "json-patch-not-a-list": Case("PATCH", WEB, encoded({"op": "add"}), JSON_PATCH,
                                  says="json patch"),
    "json-patch-bad-path": Case(
        "PATCH", WEB, encoded([{"op": "replace", "path": "/spec/nothing/here", "value": 1}]),
        JSON_PATCH, says="/spec/nothing/here"),
    "json-patch-failed-test": Case(
        "PATCH", WEB, encoded([{"op": "test", "path": "/spec/type", "value": "NodePort"}]),
        JSON_PATCH, says="test"),
    "json-patch-unknown-field-strict": Case(
        "PATCH", WEB, encoded([{"op": "add", "path": "/spec/bogus", "value": 1}]), JSON_PATCH,
        params={"fieldValidation": "Strict"}, says='unknown field "spec.bogus"'),
    "patch-unsupported-type": Case("PATCH", WEB, b"{}", "text/plain", code=415,
                                   reason="UnsupportedMediaType", says="not text/plain"),
    "apply-without-manager": Case("PATCH", WEB, encoded(service()), APPLY,
                                  says="fieldManager is required"),
    "apply-other-name": Case("PATCH", WEB, encoded(service("other")), APPLY,
                             params={"fieldManager": "t"}, says="does not match the name"),
    # reads, watches and deletes with bad parameters
    "bad-label-selector": Case("GET", SERVICES, params={"labelSelector": "app in (a"},
                               says="app in (a"),
    "unsupported-field-selector": Case("GET", SERVICES, params={"fieldSelector": "spec.x=1"},
                                       says="spec.x"),
    "watch-bad-resource-version": Case("GET", SERVICES,
                                       params={"watch": "true", "resourceVersion": "abc"},
                                       says='resourceVersion: Invalid value: "abc"'),
    "delete-bad-grace": Case("DELETE", WEB, params={"gracePeriodSeconds": "soon"},
                             says='gracePeriodSeconds: Invalid value: "soon"'),
    "delete-malformed-options": Case("DELETE", WEB, b"{nope", says="error decoding JSON"),
    "delete-stale-precondition": Case(
        "DELETE", WEB, encoded({"preconditions": {"resourceVersion": "1"}}),
        code=409, reason="Conflict"),
    # paths and methods
    "unknown-resource": Case("GET", "/api/v1/namespaces/default/widgets", code=404,
                             reason="NotFound", says="widgets"),
    "post-to-an-item": Case("POST", WEB, encoded(service()), code=405,
                            reason="MethodNotAllowed"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_a_bad_request_is_told_why_and_changes_nothing(api: Api, case: Case) -> None:
    created = await api.http.post(SERVICES, json=service())
    assert created.status == 201
    before = await api.store.revision()
    live = await (await api.http.get(WEB)).json()

    resp = await api.http.request(case.method, case.path, data=case.body, params=case.params,
                                  headers={"Content-Type": case.content_type})

    status = await resp.json()
    assert (resp.status, status["kind"], status["code"], status["reason"]) == (
        case.code, "Status", case.code, case.reason), status
    assert case.says in status["message"]
    assert await api.store.revision() == before
    assert await (await api.http.get(WEB)).json() == live
