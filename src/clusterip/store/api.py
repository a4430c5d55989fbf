"""The store interface: a watchable key/value store with one store-wide revision, shaped like etcd.

Keys are strings (`/registry/services/default/web`), values opaque bytes. Every write (create,
update, delete) gets the next value of one store-wide revision counter, exactly like etcd's
revision, and that revision is the object's `resourceVersion`. The operations map one-to-one onto
etcd v3 so that the etcd backend is a thin translation:

| operation                        | etcd v3                                             |
|----------------------------------|-----------------------------------------------------|
| `create(key, value)`             | txn: if create_revision(key) == 0 then put          |
| `update(key, value, expected)`   | txn: if mod_revision(key) == expected then put      |
| `delete(key, expected)`          | txn: if mod_revision(key) == expected then delete   |
| `get(key)`, `list(prefix)`       | range (list returns the header revision)            |
| `watch(prefix, since_revision)`  | watch prefix from since_revision + 1 (compacted: 410) |
| `compact(revision)`              | compact                                             |

A watch yields every change with a revision greater than `since_revision`, in revision order,
exactly once; a DELETE event carries the value the key had before. Asking for history older than
the last compaction raises `Expired`. A watch given a `progress` callback calls it, whenever it has
caught up and waits, with a revision R such that every change under its prefix up to R has been
yielded: a consumer may resume from R without loss, however quiet its prefix (etcd's progress
notifications; the API server's BOOKMARK events). Backends raise only errors of `core.errors`.

Every backend passes one conformance suite (`tests/store/test_conformance.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

__all__ = ["EventType", "KeyValue", "Store", "WatchEvent"]


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key's value and the revisions at which it was created and last modified."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(Enum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change. For PUT, `kv` is the new value (created if `kv.create_revision == revision`);
    for DELETE, `kv` is the value before the delete and `revision` the delete's own revision."""

    type: EventType
    kv: KeyValue
    revision: int

    @property
    def created(self) -> bool:
        return self.type is EventType.PUT and self.kv.create_revision == self.revision


class Store(Protocol):
    """What every backend provides. All revisions are store-wide and strictly increasing."""

    async def get(self, key: str) -> KeyValue:
        """The key's current value. Raises NotFound."""
        ...

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` in key order, and the store revision they were read at."""
        ...

    async def create(self, key: str, value: bytes) -> int:
        """Put the key only if it is absent; returns the new revision. Raises AlreadyExists."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        """Replace an existing key's value; with `expected_revision`, only if the key's
        mod_revision still equals it. Returns the new revision. Raises NotFound, Conflict."""
        ...

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        """Delete the key; returns its last value and the delete's revision.
        Raises NotFound, Conflict."""
        ...

    async def revision(self) -> int:
        """The current store revision (0 for an empty store)."""
        ...

    def watch(
        self, prefix: str, since_revision: int, progress: Callable[[int], None] | None = None
    ) -> AsyncIterator[WatchEvent]:
        """Changes under `prefix` with revision > since_revision, forever, in revision order.
        Raises Expired (on the first iteration) if since_revision < the compacted revision.
        `progress(R)` is called when the watch has caught up: nothing under `prefix` up to R
        is left to yield."""
        ...

    async def compact(self, revision: int) -> None:
        """Forget history at and below `revision`; watches from before it then raise Expired."""
        ...

    async def close(self) -> None:
        """Release the backend; open watches end."""
        ...
