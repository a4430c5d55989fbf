"""How the lists of each kind merge: the merge-key table, and where a value sits in the model.

Kubernetes tags each list field of its Go types with how a strategic merge patch treats it
(`patchStrategy:"merge" patchMergeKey:"name"` on `PodSpec.containers`), and server-side apply
reads similar markers (`+listType=map`, `+listMapKey=...`). `MERGE_KEYS` is that table for the
model's Structs, keyed by (Struct, JSON field name):

* a key name: a list of objects merged item by item, items matched by that field
  (`ServiceSpec.ports` by `port`, containers and env by `name`, container ports by
  `containerPort`);
* `""`: a list of scalars merged as a set (`metadata.finalizers`, `NodeSpec.podCIDRs`);
* not in the table: atomic, a patch or an apply replaces the list as a whole (EndpointSlice
  endpoints and ports, `clusterIPs`, `tolerations`...).

Server-side apply uses the same table, with one simplification: Kubernetes keys a few list maps
by two fields (Service ports by port and protocol), clusterip by the first alone.

A `Schema` is where a value sits: msgspec's description of the model type at that point
(`schema_of(model.Service)` at the top, `child(schema, "spec")` below it), or None where the
model says nothing (the free-form `dict[str, Any]` fields such as `resources`): there maps merge
and lists are atomic.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from clusterip.core import model as m
from clusterip.core.codec import struct_fields, type_info

__all__ = ["MERGE_KEYS", "Schema", "child", "item", "merge_key", "schema_of", "struct_class"]

Schema: TypeAlias = msgspec.inspect.Type | None

# (Struct, JSON field) → merge key of that list field; "" for a set of scalars. See the module
# docstring. From the patchMergeKey/patchStrategy tags of Kubernetes' types.
MERGE_KEYS: dict[tuple[type[msgspec.Struct], str], str] = {
    (m.ObjectMeta, "finalizers"): "",
    (m.ObjectMeta, "ownerReferences"): "uid",
    (m.ServiceSpec, "ports"): "port",
    (m.ServiceStatus, "conditions"): "type",
    (m.PodSpec, "containers"): "name",
    (m.PodSpec, "initContainers"): "name",
    (m.PodSpec, "volumes"): "name",
    (m.Container, "ports"): "containerPort",
    (m.Container, "env"): "name",
    (m.Container, "volumeMounts"): "mountPath",
    (m.PodStatus, "conditions"): "type",
    (m.PodStatus, "podIPs"): "ip",
    (m.PodStatus, "hostIPs"): "ip",
    (m.DeploymentStatus, "conditions"): "type",
    (m.NodeSpec, "podCIDRs"): "",
    (m.NodeStatus, "addresses"): "type",
    (m.NodeStatus, "conditions"): "type",
    (m.ServiceCIDRStatus, "conditions"): "type",
}

_CONTAINERS = (msgspec.inspect.StructType, msgspec.inspect.DictType,
               msgspec.inspect.VarTupleType, msgspec.inspect.ListType)


def schema_of(type_: type[msgspec.Struct]) -> Schema:
    """The schema at the top of an object of this model type."""
    return type_info(type_)


def _shape(schema: Schema) -> Schema:
    """The object, map or list type of a field (`X | None` is X); None for anything else."""
    if isinstance(schema, msgspec.inspect.UnionType):
        return next((t for t in schema.types if isinstance(t, _CONTAINERS)), None)
    return schema if isinstance(schema, _CONTAINERS) else None


def struct_class(schema: Schema) -> type[msgspec.Struct] | None:
    """The model Struct at this point, if it is one (its undeclared keys are unknown fields)."""
    shape = _shape(schema)
    return shape.cls if isinstance(shape, msgspec.inspect.StructType) else None


def child(schema: Schema, key: str) -> Schema:
    """The schema of a map's or object's value under `key` (None: undeclared or free-form)."""
    shape = _shape(schema)
    if isinstance(shape, msgspec.inspect.StructType):
        return struct_fields(shape.cls).get(key)
    if isinstance(shape, msgspec.inspect.DictType):
        return shape.value_type
    return None


def item(schema: Schema) -> Schema:
    """The schema of a list's items."""
    shape = _shape(schema)
    if isinstance(shape, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
        return shape.item_type
    return None


def merge_key(schema: Schema, key: str) -> str | None:
    """How the list under `key` of the object at `schema` merges: its merge key, "" for a set
    of scalars, None when it is atomic."""
    cls = struct_class(schema)
    return MERGE_KEYS.get((cls, key)) if cls is not None else None
