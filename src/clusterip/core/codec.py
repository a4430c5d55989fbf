"""Manifest text ⇄ plain data ⇄ typed objects, and the store's byte encoding.

Three steps, each pure:

1. `parse_documents(text)` reads YAML (any number of `---` documents) or JSON into plain dicts;
   a `kind: List` document is expanded into its items. PyYAML's C loader is used where present.
2. `decode(data, strict=...)` looks the kind up in `core.kinds`, converts the dict into the kind's
   Struct (msgspec checks every type), and walks the input against the Struct's schema to find
   *every* field the model does not know, each with its path. Under `strict` they are an error
   (Kubernetes' `fieldValidation=Strict`); otherwise they are dropped and returned as warnings.
3. `encode(obj)` / `decode_stored(info, data)` are the compact JSON used in the store.

msgspec and yaml exceptions are translated into `DecodeError` here and nowhere else. A type error
names the field and the value: `spec.ports[0].port: Invalid value: "eighty": expected int`.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
import yaml

from clusterip.core.errors import DecodeError
from clusterip.core.kinds import KindInfo, by_api_kind
from clusterip.core.model import KubeObject

__all__ = [
    "Decoded",
    "convert",
    "decode",
    "decode_stored",
    "encode",
    "kind_of",
    "parse_documents",
    "struct_fields",
    "to_dict",
    "type_info",
    "unknown_fields",
]

T = TypeVar("T", bound=KubeObject)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_documents(text: str | bytes) -> list[dict[str, Any]]:
    """Every object in a YAML or JSON text, in order; empty documents are skipped.

    Raises:
        DecodeError: the text is not YAML/JSON, or a document is not a mapping.
    """
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise DecodeError(f"error parsing YAML: {exc}".replace("\n", " ")) from None
    out: list[dict[str, Any]] = []
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise DecodeError(
                f"document {index}: expected an object (a mapping), got {type(doc).__name__}"
            )
        kind = str(doc.get("kind", ""))
        if kind.endswith("List") and "items" in doc:
            items = doc.get("items") or []
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise DecodeError(f"document {index}: items: expected a list of objects")
            out.extend(items)
        else:
            out.append(doc)
    return out


@dataclass(frozen=True, slots=True)
class Decoded:
    """A typed object and the unknown fields that were dropped from it (as warnings)."""

    obj: KubeObject
    info: KindInfo
    warnings: tuple[str, ...] = ()


def decode(data: dict[str, Any], *, strict: bool = False) -> Decoded:
    """Turn one manifest dict into its typed object.

    Args:
        data: one document from `parse_documents` or a JSON request body.
        strict: unknown fields are an error (as `fieldValidation=Strict`), not a warning.

    Raises:
        UnknownKind: apiVersion/kind is not served.
        DecodeError: a field has the wrong type, or (strict) unknown fields are present.
    """
    info = kind_of(data)
    api_version, kind = info.api_version, info.kind
    obj = convert(data, info.type)
    unknown = unknown_fields(data, info.type)
    if unknown and strict:
        listed = ", ".join(f'unknown field "{u}"' for u in unknown)
        raise DecodeError(
            f'{kind} in version "{api_version}" cannot be handled as a {kind}: '
            f"strict decoding error: {listed}"
        )
    return Decoded(obj, info, tuple(f'unknown field "{u}"' for u in unknown))


def kind_of(data: dict[str, Any]) -> KindInfo:
    """The kinds-table row a manifest's `apiVersion` and `kind` name.

    Raises:
        DecodeError: either is missing; UnknownKind: the pair is not served.
    """
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise DecodeError("Object 'apiVersion' is missing", field="apiVersion")
    if not isinstance(kind, str) or not kind:
        raise DecodeError("Object 'Kind' is missing", field="kind")
    return by_api_kind(api_version, kind)


_PATH_IN_MESSAGE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def convert(data: Any, type_: type[T]) -> T:
    """msgspec's conversion with its errors turned into `DecodeError` that name field and value."""
    try:
        return msgspec.convert(data, type_, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH_IN_MESSAGE.search(text)
        path = match.group("path").lstrip(".") if match else ""
        reason = text[: match.start()] if match else text
        reason = reason.replace("`", "")
        if path.endswith("[...]"):
            path = _wrong_value_key(data, path[: -len("[...]")])
        if path:
            value = _value_at(data, path)
            shown = json.dumps(value, default=str)
            raise DecodeError(f"Invalid value: {shown}: {reason[0].lower()}{reason[1:]}",
                              field=path) from None
        raise DecodeError(reason) from None


def _wrong_value_key(data: Any, map_path: str) -> str:
    """msgspec names a bad map value `labels[...]`; name the first key whose value is not a
    string instead (the maps of the model — labels, annotations, selectors — are all str→str)."""
    mapping = _value_at(data, map_path)
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            if not isinstance(value, str):
                return f"{map_path}.{key}"
    return map_path


_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _value_at(data: Any, path: str) -> Any:
    node = data
    for name, index in _STEP.findall(path):
        try:
            node = node[int(index)] if index else node[name]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def unknown_fields(data: Any, type_: type[msgspec.Struct]) -> list[str]:
    """Paths of every key in `data` that the Struct `type_` does not declare, at any depth."""
    found: list[str] = []
    _walk(data, type_info(type_), "", found)
    return found


@functools.cache
def type_info(type_: type[msgspec.Struct]) -> msgspec.inspect.Type:
    """msgspec's schema of a model class; built once (it evaluates every annotation)."""
    return msgspec.inspect.type_info(type_)


def _walk(data: Any, info: msgspec.inspect.Type, path: str, found: list[str]) -> None:
    if isinstance(info, msgspec.inspect.UnionType):
        for option in info.types:
            if not isinstance(option, msgspec.inspect.NoneType):
                _walk(data, option, path, found)
                return
        return
    if isinstance(info, msgspec.inspect.StructType) and isinstance(data, dict):
        fields = struct_fields(info.cls)
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            if key not in fields:
                found.append(child)
            else:
                _walk(value, fields[key], child, found)
    elif isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType) and isinstance(
        data, list
    ):
        for i, item in enumerate(data):
            _walk(item, info.item_type, f"{path}[{i}]", found)


@functools.cache
def struct_fields(cls: type[msgspec.Struct]) -> dict[str, msgspec.inspect.Type]:
    """A model Struct's fields by their JSON names, with their types (built once)."""
    info = type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return {f.encode_name: f.type for f in info.fields}


def encode(obj: msgspec.Struct) -> bytes:
    """Compact JSON of an object (the store's and the API's wire form)."""
    return msgspec.json.encode(obj)


@functools.cache
def _decoder(type_: type[T]) -> msgspec.json.Decoder[T]:
    return msgspec.json.Decoder(type_)


def decode_stored(type_: type[T], data: bytes) -> T:
    """Decode bytes that clusterip itself encoded (trusted, already validated)."""
    obj: T = _decoder(type_).decode(data)
    return obj


def to_dict(obj: msgspec.Struct) -> dict[str, Any]:
    """Plain JSON data (dicts, lists, str, int, bool) for patches and printing.

    Through JSON rather than `msgspec.to_builtins`, which keeps tuples as tuples."""
    out = msgspec.json.decode(msgspec.json.encode(obj))
    assert isinstance(out, dict)
    return out
