"""Field ownership (`metadata.managedFields`) and server-side apply, over plain JSON data.

Every write through the API has a field manager: the request's `?fieldManager=`, else the
client's User-Agent up to its first "/" (`kubectl`, `OpenAPI-Generator`), as in Kubernetes. An
entry of `managedFields` is one manager's claim, the set of fields it set, each a path written
the way Kubernetes writes `fieldsV1`:

    f:spec / f:ports / k:{"port":80} / f:targetPort     a field of an item of a keyed list
    f:metadata / f:finalizers / v:"example.com/x"       a value in a set
    f:metadata / f:labels / f:app                       a map key

A set holds leaves (scalars, atomic lists, empty maps, nulls) and the items of keyed lists and
sets. Identity and server-written metadata (name, namespace, uid, resourceVersion, ...) and
`status` belong to no one.

`update(old, new, manager)` — create, PUT, and JSON, merge and strategic merge patches: the
fields the write added or changed become the manager's (its `Update` entry, stamped with the
time of the write) and no longer anyone else's; the fields it removed, no one's. A write that
changes nothing changes no entry.

`apply(live, config, manager, force)` — `application/apply-patch+yaml`, the live object None
when it does not exist yet:

1. the config is merged into the live object: maps key by key, lists by `core.patchmeta`'s
   merge keys, sets as sets, anything else replaced; a `null` in the config removes the field;
2. what the manager applied last time, the config no longer has, and no other manager claims
   is removed (maps it empties go too);
3. if that changes a field another manager owns, it is a 409 `ApplyConflict` naming each
   field, or, with `force`, those fields become the applier's alone;
4. the manager's `Apply` entry becomes exactly the fields of the config.

What is left out of Kubernetes' server-side apply: a list is keyed by one field (see
`core.patchmeta`), and a keyed list one of whose items lacks its key is owned as a whole;
`status` and the writes of the `/status` and `/scale` subresources are not tracked as such
(a scale is an update of `spec.replicas` by its manager); entries are never converted between
API versions (clusterip serves one version of each kind).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import msgspec

from clusterip.core import model as m
from clusterip.core.codec import struct_fields, to_dict
from clusterip.core.errors import ApplyConflict, BadInput
from clusterip.core.patchmeta import Schema, child, item, merge_key, schema_of, struct_class

__all__ = [
    "APPLY",
    "UPDATE",
    "FieldSet",
    "Path",
    "apply",
    "field_set",
    "from_fields_v1",
    "path_text",
    "to_fields_v1",
    "track_update",
    "update",
]

JSON = Any
T = TypeVar("T", bound=m.KubeObject)

Path = tuple[str, ...]
FieldSet = frozenset[Path]

APPLY = "Apply"
UPDATE = "Update"

_META = "f:metadata"
# Paths no manager owns (a path under one of these is no one's either).
_UNOWNED: FieldSet = frozenset({
    ("f:apiVersion",), ("f:kind",), ("f:status",),
    *((_META, f"f:{name}") for name in (
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
        "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields")),
})
_MISSING: Any = object()


# --- field sets ----------------------------------------------------------------------------------


def field_set(obj: dict[str, Any], schema: Schema) -> FieldSet:
    """The paths of every field an object (or an applied config) sets. Keys the model does
    not declare (unknown fields) are not fields."""
    found: set[Path] = set()
    _collect(obj, schema, (), found)
    return frozenset(p for p in found if not any(p[:i] in _UNOWNED for i in (1, 2)))


def _collect(obj: dict[str, Any], schema: Schema, path: Path, found: set[Path]) -> None:
    cls = struct_class(schema)
    for key, value in obj.items():
        if cls is not None and key not in struct_fields(cls):
            continue
        here = (*path, f"f:{key}")
        if isinstance(value, dict) and value:
            _collect(value, child(schema, key), here, found)
        elif isinstance(value, list):
            elements = _elements(value, merge_key(schema, key))
            if elements is None:
                found.add(here)
                continue
            for element, entry in zip(elements, value, strict=True):
                found.add((*here, element))
                if isinstance(entry, dict):
                    _collect(entry, item(child(schema, key)), (*here, element), found)
        else:
            found.add(here)


def _elements(items: list[Any], key: str | None) -> list[str] | None:
    """The path element of each item of a list merged by `key`; None when the list is owned
    as a whole (atomic, or an item lacks its key)."""
    if key is None:
        return None
    if key == "":
        if any(isinstance(v, dict | list) for v in items):
            return None
        return [f"v:{_json(v)}" for v in items]
    if not all(isinstance(v, dict) and key in v for v in items):
        return None
    return [f"k:{_json({key: v[key]})}" for v in items]


def _json(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _at(obj: JSON, path: Path) -> JSON:
    """The value at a path, or `_MISSING`."""
    node = obj
    for element in path:
        kind, text = element[:2], element[2:]
        if kind == "f:" and isinstance(node, dict) and text in node:
            node = node[text]
        elif kind in ("k:", "v:") and isinstance(node, list):
            node = next((v for v in node if _matches(v, kind, text)), _MISSING)
        else:
            return _MISSING
        if node is _MISSING:
            return node
    return node


def _matches(value: JSON, kind: str, text: str) -> bool:
    try:
        wanted = json.loads(text)
    except ValueError:
        return False
    if kind == "v:":
        return bool(value == wanted)
    return isinstance(value, dict) and isinstance(wanted, dict) and all(
        value.get(k, _MISSING) == v for k, v in wanted.items())


def _changes(old: dict[str, Any], new: dict[str, Any], schema: Schema
             ) -> tuple[FieldSet, FieldSet]:
    """(the fields `new` adds or changes, the fields it removes) relative to `old`. An item of
    a keyed list or set is its identity: it is added or removed, never changed."""
    before, after = field_set(old, schema), field_set(new, schema)
    changed = frozenset(
        p for p in after
        if p not in before or (p[-1].startswith("f:") and _at(old, p) != _at(new, p)))
    return changed, before - after


def path_text(path: Path) -> str:
    """A path as Kubernetes prints it in conflicts: `.spec.ports[port=80].targetPort`."""
    out = []
    for element in path:
        kind, text = element[:2], element[2:]
        if kind == "f:":
            out.append(f".{text}")
        elif kind == "k:":
            keys = json.loads(text)
            out.append("[" + ",".join(f"{k}={_json(v)}" for k, v in keys.items()) + "]")
        else:
            out.append(f"[={text}]")
    return "".join(out)


def to_fields_v1(fields: Iterable[Path]) -> dict[str, Any]:
    """A field set as the `fieldsV1` tree: `{}` is a field, `".": {}` marks one that also
    has fields below it (an item of a keyed list)."""
    tree: dict[str, Any] = {}
    members = list(fields)
    for path in members:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = tree
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return _sorted(tree)


def _sorted(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted(tree[k]) for k in sorted(tree)}


def from_fields_v1(tree: JSON) -> FieldSet:
    """The field set of a `fieldsV1` tree.

    Raises:
        BadInput: the tree is not a map of maps.
    """
    found: set[Path] = set()

    def walk(node: JSON, path: Path) -> None:
        if not isinstance(node, dict):
            raise BadInput(f"metadata.managedFields: fieldsV1 is not a tree of maps at {path}")
        if path and (not node or "." in node):
            found.add(path)
        for key, value in node.items():
            if key != ".":
                walk(value, (*path, key))

    walk(tree, ())
    return frozenset(found)


# --- managers --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""

    def describe(self) -> str:
        """The manager as a conflict names it: `"kubectl"`, `"kubectl-edit" using v1`."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return f"{text} using {self.api_version}" if self.operation == UPDATE else text


def _entries(obj: dict[str, Any]) -> list[_Entry]:
    raw = (obj.get("metadata") or {}).get("managedFields") or []
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise BadInput("metadata.managedFields: must be a list of entries")
    return [
        _Entry(manager=str(e.get("manager") or ""), operation=str(e.get("operation") or UPDATE),
               api_version=str(e.get("apiVersion") or ""), time=e.get("time"),
               fields=from_fields_v1(e.get("fieldsV1") or {}),
               subresource=str(e.get("subresource") or ""))
        for e in raw
    ]


def _encoded(entries: list[_Entry]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        if not e.fields:
            continue
        entry: dict[str, Any] = {"manager": e.manager, "operation": e.operation,
                                 "apiVersion": e.api_version}
        if e.time:
            entry["time"] = e.time
        entry |= {"fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(e.fields)}
        if e.subresource:
            entry["subresource"] = e.subresource
        out.append(entry)
    return out


def _find(entries: list[_Entry], manager: str, operation: str) -> _Entry | None:
    return next((e for e in entries
                 if (e.manager, e.operation, e.subresource) == (manager, operation, "")), None)


def _put(entries: list[_Entry], old: _Entry | None, new: _Entry) -> list[_Entry]:
    """The entries with `old` replaced by `new` in its place (or `new` appended)."""
    if old is None:
        return [*entries, new]
    return [new if e is old else e for e in entries]


# --- update ----------------------------------------------------------------------------------


def update(old: dict[str, Any] | None, new: dict[str, Any], manager: str, *, schema: Schema,
           now: str) -> list[dict[str, Any]]:
    """The managedFields of `new` after `manager` wrote it over `old` (None: created it).
    The entries are `new`'s own when it carries some (a client may edit them), else `old`'s."""
    base = old or {}
    entries = _entries(new) or _entries(base)
    changed, removed = _changes(base, new, schema)
    entries = [replace(e, fields=e.fields - changed - removed) for e in entries]
    if changed:
        mine = _find(entries, manager, UPDATE)
        owned = changed | (mine.fields if mine else frozenset())
        entries = _put(entries, mine, _Entry(manager, UPDATE, str(new.get("apiVersion", "")),
                                              now, owned))
    return _encoded(entries)


def track_update(old: m.KubeObject | None, new: T, manager: str, now: str) -> T:
    """`new` with the managedFields of `update` (for the typed objects the registry writes)."""
    entries = update(to_dict(old) if old is not None else None, to_dict(new), manager,
                     schema=schema_of(type(new)), now=now)
    managed = msgspec.convert(entries, tuple[m.ManagedFieldsEntry, ...])
    return msgspec.structs.replace(
        new, metadata=msgspec.structs.replace(new.metadata, managed_fields=managed))


# --- apply -----------------------------------------------------------------------------------


def apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str, *, force: bool,
          schema: Schema, now: str) -> dict[str, Any]:
    """The object after `manager` applies `config` to `live` (None: to nothing), with its
    managedFields. See the module docstring.

    Raises:
        ApplyConflict: the apply changes fields other managers own, and `force` is False.
    """
    config = {k: v for k, v in config.items() if k != "status"}
    base = live or {}
    entries = _entries(base)
    applied = field_set(config, schema)
    mine = _find(entries, manager, APPLY)
    others = [e for e in entries if e is not mine]
    claimed = frozenset().union(*(e.fields for e in others)) | applied
    result = _merge_map(copy.deepcopy(base), copy.deepcopy(config), schema)
    for path in sorted((mine.fields if mine else frozenset()) - claimed, key=len):
        if not any(c[:len(path)] == path for c in claimed) and not _is_key(path):
            _remove(result, path)
    changed, removed = _changes(base, result, schema)
    conflicts = [(e.describe(), path_text(p)) for e in others for p in sorted(e.fields & changed)]
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    entries = [replace(e, fields=e.fields - changed - removed) for e in entries]
    mine = _find(entries, manager, APPLY)
    fields = applied - removed
    still = mine is not None and not changed and not removed and mine.fields == fields
    entry = _Entry(manager, APPLY, str(result.get("apiVersion", "")),
                   mine.time if still and mine else now, fields)
    managed = _encoded(_put(entries, mine, entry))
    result.setdefault("metadata", {})["managedFields"] = managed
    return result


def _merge_map(live: dict[str, Any], config: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """Merge an applied config into the live object (both private copies, changed in place)."""
    for key, value in config.items():
        old = live.get(key)
        if value is None:
            live.pop(key, None)
        elif isinstance(value, dict):
            live[key] = _merge_map(old if isinstance(old, dict) else {}, value, child(schema, key))
        elif isinstance(value, list) and isinstance(old, list):
            live[key] = _merge_list(old, value, merge_key(schema, key), item(child(schema, key)))
        else:
            live[key] = value
    return live


def _merge_list(live: list[Any], config: list[Any], key: str | None, schema: Schema
                ) -> list[Any]:
    """Live items keep their places, the config's merge into them or come after them."""
    if key is None or _elements(live, key) is None or _elements(config, key) is None:
        return config
    if key == "":
        return live + [v for i, v in enumerate(config) if v not in live and v not in config[:i]]
    for entry in config:
        at = next((i for i, v in enumerate(live) if v[key] == entry[key]), None)
        if at is None:
            live.append(entry)
        else:
            live[at] = _merge_map(live[at], entry, schema)
    return live


def _is_key(path: Path) -> bool:
    """Whether the path is the key field of a keyed item (which goes only with its item)."""
    if len(path) < 2 or not path[-2].startswith("k:"):
        return False
    try:
        keys = json.loads(path[-2][2:])
    except ValueError:
        return False
    return isinstance(keys, dict) and path[-1][2:] in keys


def _remove(obj: dict[str, Any], path: Path) -> None:
    """Remove the field or item at `path`, and the maps that removal leaves empty."""
    trail: list[tuple[Any, Any]] = []  # (container, the key or item within it)
    node: Any = obj
    for element in path:
        target = _at(node, (element,))
        if target is _MISSING:
            return
        trail.append((node, element[2:] if isinstance(node, dict) else target))
        node = target
    while trail:
        container, key = trail.pop()
        if isinstance(container, dict):
            del container[key]
        else:
            del container[next(i for i, v in enumerate(container) if v is key)]
        if container or not trail or not isinstance(trail[-1][0], dict):
            return
