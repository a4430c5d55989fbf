"""`meta.k8s.io/v1` Tables: the rows `kubectl get` prints, formatted by the server (pure).

kubectl's `get` sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json;
as=Table;v=v1beta1;g=meta.k8s.io,application/json`. `requested_table` reads that header and the
`includeObject` query parameter: None when the plain object is wanted (no Table range comes
before plain JSON), else a `TableRequest`. The server then answers with a Table:

    {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "105"},
     "columnDefinitions": [{"name": "Name", "type": "string", "format": "name",
                            "description": "...", "priority": 0}, ...],
     "rows": [{"cells": ["web", "ClusterIP", "10.96.0.11", "<none>", "80/TCP", "5s", "app=web"],
               "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": {"name": "web", "namespace": "default", ...}}}]}

* The columns are `core.printers.COLUMNS`, the ones `clusterip get` prints. Every column is sent,
  the priority-1 ones too (kubectl shows those only with `-o wide`); every cell is text, ages
  included, counted from the `now` the caller passes.
* Each row's `object` is what `includeObject` asks for: `Metadata` (the default) the object's
  metadata as a PartialObjectMetadata, which kubectl needs for the NAMESPACE column of `-A` and
  for `--show-labels`; `Object` the whole object; `None` nothing (null). Another value is a 400.
* `metadata` is the list's (its resourceVersion) for a list; for one object, the object's
  resourceVersion (`one`).
* In a watch, each event's object is the Table of that one object, with the column definitions
  on the first event only (`headers=False` after it: null), as kube-apiserver sends them; kubectl
  takes its header from the list it read before the watch, or from that first event. ERROR
  events (a Status) and BOOKMARK events (a resourceVersion, no row) keep their plain objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from clusterip.core import model as m
from clusterip.core.errors import BadInput
from clusterip.core.mediatypes import parse_accept
from clusterip.core.printers import COLUMNS

__all__ = ["ColumnDefinition", "PartialObjectMetadata", "Table", "TableRequest", "TableRow", "one",
           "requested_table", "table"]

_GROUP = "meta.k8s.io"
_VERSIONS = frozenset({"v1", "v1beta1"})
_INCLUDE = frozenset({"Metadata", "Object", "None"})


@dataclass(frozen=True, slots=True)
class TableRequest:
    """A Table was asked for: its apiVersion (`meta.k8s.io/v1` or `/v1beta1`, as asked) and
    what each row carries (`Metadata`, `Object` or `None`)."""

    api_version: str
    include_object: str = "Metadata"


class _Struct(msgspec.Struct, frozen=True, rename="camel"):
    """Every field is written, empty ones too, as Kubernetes writes a Table."""


class ColumnDefinition(_Struct, frozen=True, kw_only=True):
    name: str
    type: str
    format: str
    description: str
    priority: int


class PartialObjectMetadata(_Struct, frozen=True, kw_only=True):
    kind: str = "PartialObjectMetadata"
    api_version: str
    metadata: m.ObjectMeta


class TableRow(_Struct, frozen=True, kw_only=True):
    cells: tuple[str, ...]
    object: m.KubeObject | PartialObjectMetadata | None


class Table(_Struct, frozen=True, kw_only=True):
    kind: str = "Table"
    api_version: str
    metadata: m.ListMeta
    column_definitions: tuple[ColumnDefinition, ...] | None
    rows: tuple[TableRow, ...]


def requested_table(accept: str, include_object: str = "") -> TableRequest | None:
    """The Table the Accept header asks for before plain JSON, or None for the plain object.

    Raises:
        BadInput: a Table is asked for with an `includeObject` other than Metadata, Object, None.
    """
    for media_range in parse_accept(accept):
        if not media_range.json:
            continue
        if not media_range.converted:
            return None
        as_, group, version = (media_range.params.get(k, "") for k in ("as", "g", "v"))
        if (as_, group) == ("Table", _GROUP) and version in _VERSIONS:
            if include_object and include_object not in _INCLUDE:
                raise BadInput(
                    f'Unable to convert to Table as requested: includeObject: Invalid value: '
                    f'"{include_object}": must be \'Metadata\', \'Object\', \'None\', or empty')
            return TableRequest(f"{_GROUP}/{version}", include_object or "Metadata")
    return None


def table(request: TableRequest, kind: str, objects: Sequence[m.KubeObject], now: float, *,
          metadata: m.ListMeta, headers: bool = True) -> Table:
    """The Table of `objects` (of `kind`), one row each; `headers=False` leaves out the column
    definitions (null), as in a watch's events after the first."""
    columns = COLUMNS[kind]
    definitions = tuple(
        ColumnDefinition(name=c.name, type="string", format=c.format,
                         description=c.description, priority=c.priority)
        for c in columns
    )
    rows = tuple(
        TableRow(cells=tuple(c.cell(obj, now) for c in columns),
                 object=_row_object(request, obj))
        for obj in objects
    )
    return Table(api_version=request.api_version, metadata=metadata,
                 column_definitions=definitions if headers else None, rows=rows)


def one(request: TableRequest, kind: str, obj: m.KubeObject, now: float, *,
        headers: bool = True) -> Table:
    """The one-row Table of one object (a GET, a watch event), at the object's resourceVersion."""
    return table(request, kind, [obj], now, headers=headers,
                 metadata=m.ListMeta(resource_version=obj.metadata.resource_version))


def _row_object(request: TableRequest, obj: m.KubeObject
                ) -> m.KubeObject | PartialObjectMetadata | None:
    if request.include_object == "Object":
        return obj
    if request.include_object == "None":
        return None
    return PartialObjectMetadata(api_version=request.api_version, metadata=obj.metadata)
