"""The OpenAPI v3 documents generated from the model.

They must be self-contained (kubectl resolves every `$ref` inside the one document it fetched),
name things the Kubernetes way, describe exactly the fields the decoder accepts (so what
`kubectl explain` shows and what `fieldValidation=Strict` refuses agree), and never offer the
strategic merge patch (kubectl would then compute its patches from these schemas).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from clusterip.core import model
from clusterip.core.kinds import KINDS
from clusterip.core.openapi import STRATEGIC_MERGE_PATCH, documents, index, schema_name

MERGE_PATCH = "application/merge-patch+json"
DOCUMENTS = documents([MERGE_PATCH, STRATEGIC_MERGE_PATCH, "application/json-patch+json"])
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"


def nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every mapping inside a document, depth first."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from nodes(child)


def test_one_document_per_group_version() -> None:
    assert DOCUMENTS.keys() == {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                                "apis/discovery.k8s.io/v1", "apis/networking.k8s.io/v1"}


@pytest.mark.parametrize("path", sorted(DOCUMENTS))
def test_every_reference_resolves_inside_its_document(path: str) -> None:
    doc = DOCUMENTS[path]
    refs = {n["$ref"] for n in nodes(doc) if "$ref" in n}
    assert refs
    assert {r.removeprefix("#/components/schemas/") for r in refs} <= doc["components"][
        "schemas"].keys()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_each_kind_is_named_and_tagged_the_kubernetes_way(kind: Any) -> None:
    path = f"apis/{kind.group}/{kind.version}" if kind.group else f"api/{kind.version}"
    schemas = DOCUMENTS[path]["components"]["schemas"]
    package = (kind.group.split(".")[0] or "core")
    name = f"io.k8s.api.{package}.{kind.version}.{kind.kind}"
    assert schema_name(kind.type) == name
    assert schemas[name]["x-kubernetes-group-version-kind"] == [
        {"group": kind.group, "version": kind.version, "kind": kind.kind}]
    assert schemas[name]["properties"]["metadata"] == {
        "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}


def test_the_schemas_describe_exactly_the_fields_the_decoder_accepts() -> None:
    checked = set()
    for doc in DOCUMENTS.values():
        for name, schema in doc["components"]["schemas"].items():
            if name == INT_OR_STRING:
                continue
            struct = getattr(model, name.rsplit(".", 1)[1])
            fields = msgspec.structs.fields(struct)
            assert set(schema["properties"]) == {f.encode_name for f in fields}, name
            required = [f.encode_name for f in fields if f.required]
            assert schema.get("required", []) == required, name
            checked.add(struct)
    assert {model.Service, model.ServicePort, model.PodSpec, model.ObjectMeta} <= checked


def test_kubernetes_conventions_instead_of_json_schema_ones() -> None:
    for doc in DOCUMENTS.values():
        for node in nodes(doc["components"]):
            assert node.get("type") != "null"
            assert "anyOf" not in node and "title" not in node and "default" not in node
    spec = DOCUMENTS["api/v1"]["components"]["schemas"]
    port = spec["io.k8s.api.core.v1.ServicePort"]["properties"]
    assert port["targetPort"] == {"$ref": f"#/components/schemas/{INT_OR_STRING}"}
    assert spec[INT_OR_STRING] == {"type": "string", "format": "int-or-string"}
    assert port["appProtocol"] == {"type": "string"}  # optional, not "string or null"
    container = spec["io.k8s.api.core.v1.Container"]["properties"]
    assert container["resources"] == {"type": "object",
                                      "x-kubernetes-preserve-unknown-fields": True}


def test_patch_operations_never_offer_the_strategic_merge_patch() -> None:
    for doc in DOCUMENTS.values():
        for item in doc["paths"].values():
            assert list(item["patch"]["requestBody"]["content"]) == [
                MERGE_PATCH, "application/json-patch+json"]


def test_the_index_url_changes_with_the_document() -> None:
    first = index({"api/v1": b"one"})["paths"]["api/v1"]["serverRelativeURL"]
    again = index({"api/v1": b"one"})["paths"]["api/v1"]["serverRelativeURL"]
    changed = index({"api/v1": b"two"})["paths"]["api/v1"]["serverRelativeURL"]
    assert first == again != changed
    assert first.startswith("/openapi/v3/api/v1?hash=")
