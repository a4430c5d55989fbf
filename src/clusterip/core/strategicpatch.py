"""Strategic merge patch (`application/strategic-merge-patch+json`), over plain JSON data.

What `kubectl apply` (client-side) and the Python client's `patch_*` send. Like a JSON merge
patch, maps merge key by key and `null` deletes a key; unlike it, a list merges item by item
when the model says how (`core.patchmeta`: Service ports by `port`, containers and env by
`name`, finalizers as a set), and is replaced whole otherwise. Directives in the patch:

    {"$patch": "replace", ...}         in a map: the map becomes the rest of this one
    {"$patch": "delete"}               in a map: it becomes empty
    {"$patch": "merge"}                in a map: the default, merge
    [{"$patch": "delete", "port": 80}] in a merging list: remove the item with that key
    [{"$patch": "replace"}, ...]       in a merging list: the list becomes the other items
    "$setElementOrder/ports": [...]    the order of the list after the merge: the patch's items
                                       in this order, the others where they were
    "$retainKeys": ["type"]            drop the map's keys not named (Deployment spec.strategy)
    "$deleteFromPrimitiveList/finalizers": ["a"]   remove these values from a set of scalars

Merged lists are ordered as Kubernetes orders them: the items the patch names in the patch's
order (or `$setElementOrder`'s), interleaved with the items only the original has in their
original order; an original item goes first only when it came before the patch item in the
original, so a new item with no `$setElementOrder` lands at the front (kubectl always sends the
order). A value the original does not have is the patch's with its directives applied to
nothing, so no directive is ever stored.

`strategic_merge_patch` is pure: it copies its arguments and returns a new value. A patch it
cannot apply (an unknown directive, a list item without its merge key) is a `BadInput`, a 400,
and nothing is written; the merged object is then decoded and validated like any update.
"""

from __future__ import annotations

import copy
from typing import Any

from clusterip.core.errors import BadInput
from clusterip.core.patchmeta import Schema, child, item, merge_key

__all__ = ["strategic_merge_patch"]

JSON = Any

DIRECTIVE = "$patch"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
RETAIN_KEYS = "$retainKeys"


def strategic_merge_patch(original: JSON, patch: JSON, schema: Schema) -> JSON:
    """`original` with `patch` merged in; `schema` is where `original` sits in the model
    (`patchmeta.schema_of(model.Service)`, or None for an object the model does not describe).

    Raises:
        BadInput: the patch is not an object, or a directive in it cannot be applied.
    """
    if not isinstance(patch, dict):
        raise BadInput("strategic merge patch: the body must be a JSON object")
    base = copy.deepcopy(original) if isinstance(original, dict) else {}
    return _merge_map(base, copy.deepcopy(patch), schema)


def _fail(message: str) -> BadInput:
    return BadInput(f"strategic merge patch: {message}")


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: Schema
               ) -> dict[str, Any]:
    """Merge `patch` into `original` (both private copies, changed in place)."""
    directive = patch.pop(DIRECTIVE, "merge")
    if directive == "replace":
        return _merge_map({}, patch, schema)
    if directive == "delete":
        return {}
    if directive != "merge":
        raise _fail(f"unknown directive {DIRECTIVE}: {directive!r}")
    if RETAIN_KEYS in patch:
        retain = patch.pop(RETAIN_KEYS)
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise _fail(f"{RETAIN_KEYS} must be a list of strings")
        original = {k: v for k, v in original.items() if k in retain}
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        _set_element_order(original, patch, key, schema)
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            field = key[len(DELETE_FROM_PRIMITIVE_LIST):]
            if not isinstance(value, list):
                raise _fail(f"{key} must be a list")
            if isinstance(original.get(field), list):
                original[field] = [v for v in original[field] if v not in value]
        elif value is None:
            original.pop(key, None)
        else:
            original[key] = _merged(original.get(key), value, schema, key)
    return original


def _merged(old: JSON, value: JSON, schema: Schema, key: str) -> JSON:
    """The new value of `key` in the object at `schema` that had `old` there."""
    if isinstance(value, dict):
        return _merge_map(old if isinstance(old, dict) else {}, value, child(schema, key))
    mk = merge_key(schema, key)
    if isinstance(value, list) and mk is not None:
        return _merge_list(old if isinstance(old, list) else [], value, mk,
                           item(child(schema, key)))
    return value


def _merge_list(original: list[Any], patch: list[Any], key: str, schema: Schema) -> list[Any]:
    """Merge a list merged by `key` (a set of scalars when `key` is "")."""
    if key == "":
        if any(isinstance(v, dict | list) for v in patch):
            raise _fail("a list merged as a set holds scalars only")
        merged: list[Any] = []
        for value in original + patch:
            if value not in merged:
                merged.append(value)
        return _ordered(merged, patch, original, key)
    items: list[dict[str, Any]] = []
    for entry in patch:
        if not isinstance(entry, dict):
            raise _fail(f'the items of a list merged by "{key}" must be objects')
        directive = entry.get(DIRECTIVE)
        if directive is None:
            if key not in entry:
                raise _fail(f'an item of a list merged by "{key}" has no "{key}": {entry}')
            items.append(entry)
        elif directive == "delete":
            if key not in entry:
                raise _fail(f'a {DIRECTIVE}: delete item needs "{key}": {entry}')
            original = [o for o in original if _id(o, key) != entry[key]]
        elif directive == "replace":
            original = []
        else:
            raise _fail(f"unknown directive in a list {DIRECTIVE}: {directive!r}")
    merged = list(original)
    for entry in items:
        at = next((i for i, o in enumerate(merged) if _id(o, key) == entry[key]), None)
        if at is None:
            merged.append(_merge_map({}, entry, schema))
        else:
            merged[at] = _merge_map(merged[at], entry, schema)
    return _ordered(merged, items, original, key)


def _set_element_order(original: dict[str, Any], patch: dict[str, Any], directive: str,
                       schema: Schema) -> None:
    """Merge the list a `$setElementOrder/<field>` names, then put it in that order."""
    order = patch.pop(directive)
    field = directive[len(SET_ELEMENT_ORDER):]
    if not isinstance(order, list):
        raise _fail(f"{directive} must be a list")
    if field in patch:
        merged = _merged(original.get(field), patch.pop(field), schema, field)
    elif field in original:
        merged = original[field]
    else:
        return
    mk = merge_key(schema, field)
    if merged is None:
        original.pop(field, None)
        return
    if isinstance(merged, list) and mk is not None:
        previous = original.get(field)
        merged = _ordered(merged, order, previous if isinstance(previous, list) else [], mk)
    original[field] = merged


def _id(value: JSON, key: str) -> JSON:
    """What identifies a list item: its merge key's value (the value itself in a set)."""
    if key == "":
        return value
    return value.get(key) if isinstance(value, dict) else None


def _ordered(merged: list[Any], patch_order: list[Any], server_order: list[Any], key: str
             ) -> list[Any]:
    """Kubernetes' order of a merged list: the items `patch_order` names sorted by it,
    interleaved with the others sorted by `server_order` (an item of the original goes before
    a patch item that comes later in the original)."""
    wanted = [_id(v, key) for v in patch_order]
    known = [_id(v, key) for v in server_order]

    def place(ids: list[Any], value: JSON) -> int:
        ident = _id(value, key)
        return ids.index(ident) if ident in ids else -1

    named = sorted((v for v in merged if _id(v, key) in wanted), key=lambda v: place(wanted, v))
    others = sorted((v for v in merged if _id(v, key) not in wanted),
                    key=lambda v: place(known, v))
    out: list[Any] = []
    while named or others:
        if not named:
            out.append(others.pop(0))
        elif not others:
            out.append(named.pop(0))
        else:
            mine, theirs = place(known, others[0]), place(known, named[0])
            out.append(others.pop(0) if 0 <= mine < theirs else named.pop(0))
    return out
