"""The OpenAPI v3 documents: one per group-version, the schemas generated from the model.

kubectl reads them before `create`, `apply` and `replace` (its default `--validate=strict`):

1. `GET /openapi/v3`, the index: one `serverRelativeURL` per group-version, with a `?hash=` of
   the document, because clients cache documents by URL (`index`).
2. `GET /openapi/v3/api/v1` (say): the group-version's document (`documents`). kubectl looks
   for the PATCH operation of the manifest's kind (found by `x-kubernetes-group-version-kind`)
   and for a `fieldValidation` query parameter on it. Found: the server checks fields, so kubectl
   sends `?fieldValidation=Strict` and validates nothing itself; an unknown field is then the
   server's 400 `strict decoding error: unknown field "spec.foo"`. Not found (or no document):
   kubectl falls back to validating with OpenAPI v2 (`/openapi/v2`, which is a 404 here) and
   fails with "failed to download openapi".

So each document has one path per kind, its item path, with one operation, PATCH: every kind,
also the read-only Endpoints (kubectl asks this operation whether fields are checked; without
it, creating Endpoints would fail on the OpenAPI download instead of getting the server's 403).
The PATCH content types are those the server accepts, except the strategic merge patch: when a
document lists it, kubectl computes its apply patches from the document's schemas, which carry
no list merge keys; without it kubectl uses the merge keys compiled into its own types.

`components.schemas` come from the model's Structs through msgspec's JSON schema, adapted to
Kubernetes' conventions (`_clean`): names like `io.k8s.api.core.v1.Service` (a type is named
after the group of the first kind in `core.kinds` that uses it; metadata types after
`io.k8s.apimachinery.pkg.apis.meta.v1`), no `null` alternatives (an absent field is omitted),
int-or-string fields a reference to Kubernetes' `IntOrString`, the loosely modelled free-form
maps marked `x-kubernetes-preserve-unknown-fields`, and each kind's schema carrying its
`x-kubernetes-group-version-kind`. `kubectl explain` reads these.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from clusterip.core import model
from clusterip.core.discovery import KUBERNETES_VERSION, group_versions
from clusterip.core.kinds import KINDS, KindInfo

__all__ = ["STRATEGIC_MERGE_PATCH", "documents", "index", "schema_name"]

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_META_PACKAGE = "io.k8s.apimachinery.pkg.apis.meta.v1"
_META_TYPES = (model.ObjectMeta, model.OwnerReference, model.ManagedFieldsEntry,
               model.LabelSelector, model.LabelSelectorRequirement, model.Condition)
_REF = "#/components/schemas/"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"

# The query parameters of a PATCH that the server honours (kubectl looks for fieldValidation).
_PATCH_PARAMETERS = (
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
)


def _package(group: str, version: str) -> str:
    """`io.k8s.api.core.v1`, `io.k8s.api.apps.v1`, `io.k8s.api.discovery.v1`..."""
    return f"io.k8s.api.{group.split('.')[0] or 'core'}.{version}"


def _url_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


@functools.cache
def _homes() -> dict[str, str]:
    """The package each Struct of the model is named in, by its class name."""
    homes = {t.__name__: _META_PACKAGE for t in _META_TYPES}
    for k in KINDS:
        _, components = msgspec.json.schema_components([k.type])
        for name in components:
            homes.setdefault(name, _package(k.group, k.version))
    return homes


def schema_name(type_: type[msgspec.Struct]) -> str:
    """The Kubernetes name of a model Struct's schema: `io.k8s.api.core.v1.Service`."""
    return _named(type_.__name__)


def _named(name: str) -> str:
    return f"{_homes()[name]}.{name}"


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """One msgspec schema node in Kubernetes' form (see the module docstring)."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("title", "default") or (key == "required" and not value):
            continue
        if key == "properties":
            out[key] = {name: _clean(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and value:
            out[key] = _clean(value)
        elif key == "$ref":
            out[key] = _REF + _named(value.removeprefix(_REF))
        elif key == "anyOf":
            options = [_clean(o) for o in value if o != {"type": "null"}]
            if options == [{"type": "integer"}, {"type": "string"}]:
                out["$ref"] = _REF + _INT_OR_STRING
            elif len(options) == 1:
                out.update(options[0])
            else:
                out[key] = options
        else:
            out[key] = value
    if out == {"type": "object"}:  # a `dict[str, Any]` of the model: anything goes there
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _gvk(k: KindInfo) -> dict[str, str]:
    return {"group": k.group, "version": k.version, "kind": k.kind}


def _schemas(kinds: list[KindInfo]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [k.type for k in kinds], ref_template=_REF + "{name}")
    schemas = {_named(name): _clean(c) for name, c in components.items()}
    for k in kinds:
        schemas[schema_name(k.type)]["x-kubernetes-group-version-kind"] = [_gvk(k)]
    if _REF + _INT_OR_STRING in msgspec.json.encode(schemas).decode():
        schemas[_INT_OR_STRING] = {"type": "string", "format": "int-or-string"}
    return schemas


def _patch_path(k: KindInfo, patch_types: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    base = f"/{_url_path(k.group, k.version)}"
    scope = "/namespaces/{namespace}" if k.namespaced else ""
    in_path = ["name", "namespace"] if k.namespaced else ["name"]
    group = k.group.split(".")[0].capitalize() or "Core"
    operation = {
        "operationId": f"patch{group}{k.version.capitalize()}"
                       f"{'Namespaced' if k.namespaced else ''}{k.kind}",
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": _gvk(k),
        "parameters": list(_PATCH_PARAMETERS),
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "object"}} for t in patch_types},
        },
        "responses": {"200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": _REF + schema_name(k.type)}}},
        }},
    }
    item = {
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                       for p in in_path],
        "patch": operation,
    }
    return f"{base}{scope}/{k.resource}/{{name}}", item


def documents(patch_types: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Every group-version's document, by its path under /openapi/v3 (`api/v1`, `apis/apps/v1`).

    Args:
        patch_types: the PATCH content types the server accepts (the strategic merge patch is
            left out of the documents, see the module docstring).
    """
    accepted = tuple(t for t in patch_types if t != STRATEGIC_MERGE_PATCH)
    docs: dict[str, dict[str, Any]] = {}
    for group, version in group_versions():
        kinds = [k for k in KINDS if (k.group, k.version) == (group, version)]
        docs[_url_path(group, version)] = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
            "paths": dict(_patch_path(k, accepted) for k in kinds),
            "components": {"schemas": _schemas(kinds)},
        }
    return docs


def index(encoded: Mapping[str, bytes]) -> dict[str, Any]:
    """`/openapi/v3`: each document's URL, with the hash of its bytes (a changed document gets a
    new URL, so no client keeps a stale copy)."""
    return {"paths": {
        path: {"serverRelativeURL":
               f"/openapi/v3/{path}?hash={hashlib.sha512(body).hexdigest().upper()}"}
        for path, body in encoded.items()
    }}
