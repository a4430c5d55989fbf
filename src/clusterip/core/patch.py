"""Patches over plain JSON data: RFC 7386 merge patch, RFC 6902 JSON patch, and the
three-way merge patch that client-side `apply` sends.

The strategic merge patch, which merges lists by key, is `core.strategicpatch`'s.

All functions are pure and never modify their arguments. Errors are `BadInput` naming the
operation and path, so a bad patch is a 400/422 and the stored object stays as it was.

`apply_patch_for(live, last_applied, desired)` is the client-side apply rule: every field of the
desired manifest is set, and a field that the previous apply set (it is in `last_applied`) but
the new manifest no longer has is removed (`null` in the merge patch). Fields that other writers
set (a controller, `label`) and that no manifest ever mentioned are left alone.
"""

from __future__ import annotations

import copy
from typing import Any

from clusterip.core.errors import BadInput

__all__ = ["apply_patch_for", "json_patch", "merge_patch"]

JSON = Any


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch_for(live: JSON, last_applied: JSON, desired: JSON) -> JSON:
    """The merge patch that takes `live` to `desired`, removing what `last_applied` set."""
    del live  # the live object matters only through what the patch leaves alone
    return _three_way(last_applied if isinstance(last_applied, dict) else {}, desired)


def _three_way(last: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in last:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        previous = last.get(key)
        if isinstance(value, dict) and isinstance(previous, dict):
            patch[key] = _three_way(previous, value)
        else:
            patch[key] = copy.deepcopy(value)
    return patch


def json_patch(target: JSON, operations: JSON) -> JSON:
    """RFC 6902: add, remove, replace, move, copy, test — all or nothing."""
    if not isinstance(operations, list):
        raise BadInput("json patch: the body must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for index, op in enumerate(operations):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadInput(f"json patch operation {index}: needs 'op' and 'path'")
        handler = _OPS.get(op["op"])
        if handler is None:
            raise BadInput(f"json patch operation {index}: unknown op {op['op']!r}")
        try:
            doc = handler(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise BadInput(
                f"json patch operation {index} ({op['op']} {op['path']}): {exc}"
            ) from None
    return doc


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: JSON, path: str) -> tuple[Any, str]:
    parts = _pointer(path)
    if not parts:
        raise ValueError("the whole document cannot be the target here")
    node = doc
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, parts[-1]


def _get(doc: JSON, path: str) -> JSON:
    node = doc
    for part in _pointer(path):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _add(doc: JSON, op: dict[str, Any]) -> JSON:
    value = copy.deepcopy(op["value"])
    if op["path"] == "":
        return value
    parent, last = _parent(doc, op["path"])
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            index = int(last)
            if not 0 <= index <= len(parent):
                raise IndexError(f"index {index} out of range")
            parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError("target parent is not an object or array")
    return doc


def _remove(doc: JSON, op: dict[str, Any]) -> JSON:
    parent, last = _parent(doc, op["path"])
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


def _replace(doc: JSON, op: dict[str, Any]) -> JSON:
    if op["path"] == "":
        return copy.deepcopy(op["value"])
    parent, last = _parent(doc, op["path"])
    if isinstance(parent, list):
        parent[int(last)] = copy.deepcopy(op["value"])
    else:
        if last not in parent:
            raise KeyError(last)
        parent[last] = copy.deepcopy(op["value"])
    return doc


def _move(doc: JSON, op: dict[str, Any]) -> JSON:
    value = _get(doc, op["from"])
    doc = _remove(doc, {"path": op["from"]})
    return _add(doc, {"path": op["path"], "value": value})


def _copy(doc: JSON, op: dict[str, Any]) -> JSON:
    return _add(doc, {"path": op["path"], "value": _get(doc, op["from"])})


def _test(doc: JSON, op: dict[str, Any]) -> JSON:
    if _get(doc, op["path"]) != op["value"]:
        raise ValueError(f"test failed: value at {op['path']} is not {op['value']!r}")
    return doc


_OPS = {
    "add": _add,
    "remove": _remove,
    "replace": _replace,
    "move": _move,
    "copy": _copy,
    "test": _test,
}
