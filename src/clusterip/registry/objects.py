"""Typed objects over the key/value store: keys, encoding, resourceVersion and object metadata.

`ObjectStore` turns the byte-level `Store` into one of Kubernetes objects, the way kube-apiserver's
storage layer does over etcd:

- the key of an object is `/registry/<resource>/<namespace>/<name>` (`KindInfo.key`);
- the value is the object's compact JSON *without* `metadata.resourceVersion`; on every read the
  resourceVersion is set from the key's mod_revision, so it is always the store revision of the
  last write (and a DELETED event carries the revision of the delete itself);
- `create` fills in `uid`, `creationTimestamp` and `generation`; `update` bumps `generation` when
  the spec changes and takes the object's own resourceVersion as the expected revision
  (optimistic concurrency: a stale one raises `Conflict`).

It knows nothing of validation, defaults or allocation: that is `registry.Registry`. Watches yield
`ObjectEvent`s typed ADDED/MODIFIED/DELETED as the Kubernetes watch API names them.
"""

from __future__ import annotations

import builtins
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import msgspec

from clusterip.clock import Clock
from clusterip.core import codec
from clusterip.core.errors import AlreadyExists, Conflict, NotFound
from clusterip.core.kinds import KindInfo, for_type
from clusterip.core.model import KubeObject, ObjectMeta
from clusterip.core.timefmt import rfc3339
from clusterip.store.api import EventType, KeyValue, Store, WatchEvent

__all__ = ["EventKind", "ObjectEvent", "ObjectStore", "conflict_message"]

T = TypeVar("T", bound=KubeObject)

EventKind = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """One change of one object, as a Kubernetes watch reports it."""

    type: EventKind
    obj: KubeObject
    revision: int


# UIDs must be unique, not secret: a generator seeded once from the OS gives version-4 UUIDs
# without a getrandom(2) call per object (0.2 ms each on these VMs).
_UID_SOURCE = random.Random(uuid.uuid4().int)


def _new_uid() -> str:
    return str(uuid.UUID(int=_UID_SOURCE.getrandbits(128), version=4))


class ObjectStore:
    """Kubernetes objects in a `Store`. See the module docstring."""

    def __init__(self, store: Store, clock: Clock, new_uid: Callable[[], str] = _new_uid) -> None:
        self.store = store
        self._clock = clock
        self._new_uid = new_uid

    # --- reads -------------------------------------------------------------------------------

    async def get(self, type_: type[T], namespace: str, name: str) -> T:
        info = for_type(type_)
        try:
            kv = await self.store.get(info.key(namespace, name))
        except NotFound:
            raise NotFound(_not_found(info, name)) from None
        return _load(type_, kv)

    async def list(
        self,
        type_: type[T],
        namespace: str | None = None,
        *,
        transform: Callable[[T], T] | None = None,
    ) -> tuple[builtins.list[T], int]:
        """Every object of the kind (in one namespace, or all) and the revision of the read;
        with `transform`, each object is transformed as soon as it is decoded."""
        info = for_type(type_)
        kvs, revision = await self.store.list(info.prefix(namespace))
        if transform is None:
            return [_load(type_, kv) for kv in kvs], revision
        return [transform(_load(type_, kv)) for kv in kvs], revision

    async def list_encoded(
        self, type_: type[KubeObject], namespace: str | None = None
    ) -> tuple[builtins.list[bytes], int]:
        """Like `list`, but each object as its JSON bytes, never decoded: the stored bytes with
        the resourceVersion spliced into `metadata`. What an unfiltered list over HTTP sends."""
        info = for_type(type_)
        kvs, revision = await self.store.list(info.prefix(namespace))
        return [with_revision_bytes(kv.value, kv.mod_revision) for kv in kvs], revision

    async def watch(
        self, type_: type[T], namespace: str | None, since_revision: int,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[ObjectEvent]:
        """Changes after `since_revision`; raises `Expired` if that history was compacted.
        `progress` is the store's (see `store.api`)."""
        info = for_type(type_)
        async for event in self.store.watch(info.prefix(namespace), since_revision, progress):
            yield _to_object_event(type_, event)

    async def revision(self) -> int:
        return await self.store.revision()

    # --- writes ------------------------------------------------------------------------------

    async def create(self, obj: T) -> T:
        """Store a new object; raises `AlreadyExists` if the name is taken."""
        info = for_type(type(obj))
        meta = msgspec.structs.replace(
            obj.metadata,
            uid=obj.metadata.uid or self._new_uid(),
            creation_timestamp=obj.metadata.creation_timestamp or rfc3339(self._clock.now()),
            generation=1,
            resource_version="",
        )
        obj = msgspec.structs.replace(
            obj, api_version=info.api_version, kind=info.kind, metadata=meta
        )
        key = info.key(meta.namespace, meta.name)
        try:
            revision = await self.store.create(key, codec.encode(obj))
        except AlreadyExists:
            raise AlreadyExists(f'{info.resource} "{meta.name}" already exists') from None
        return _with_revision(obj, revision)

    async def update(self, obj: T, *, old: T | None = None) -> T:
        """Replace a stored object. Its `metadata.resourceVersion`, when set, must be current.

        Args:
            obj: the new state; uid and creationTimestamp are kept from the stored object.
            old: the stored object if the caller already read it (saves a read).

        Raises:
            NotFound, Conflict.
        """
        info = for_type(type(obj))
        meta = obj.metadata
        if old is None:
            old = await self.get(type(obj), meta.namespace, meta.name)
        expected = int(meta.resource_version) if meta.resource_version else None
        if expected is not None and expected != int(old.metadata.resource_version):
            raise Conflict(conflict_message(info, meta.name))
        generation = old.metadata.generation or 1
        if getattr(obj, "spec", None) != getattr(old, "spec", None):
            generation += 1
        new_meta = msgspec.structs.replace(
            meta,
            uid=old.metadata.uid,
            creation_timestamp=old.metadata.creation_timestamp,
            generation=generation,
            resource_version="",
        )
        obj = msgspec.structs.replace(
            obj, api_version=info.api_version, kind=info.kind, metadata=new_meta
        )
        key = info.key(meta.namespace, meta.name)
        try:
            revision = await self.store.update(
                key, codec.encode(obj), int(old.metadata.resource_version)
            )
        except Conflict:
            raise Conflict(conflict_message(info, meta.name)) from None
        except NotFound:
            raise NotFound(_not_found(info, meta.name)) from None
        return _with_revision(obj, revision)

    async def update_status(self, obj: T) -> T:
        """The same as `update` here: the Registry is the one that keeps spec and status apart."""
        return await self.update(obj)

    async def delete(
        self,
        type_: type[T],
        namespace: str,
        name: str,
        *,
        resource_version: str = "",
        grace_period_seconds: int | None = None,
    ) -> T:
        """Remove an object at once (there is no graceful deletion at this level); returns it
        with the delete's revision as its resourceVersion."""
        del grace_period_seconds
        info = for_type(type_)
        expected = int(resource_version) if resource_version else None
        try:
            kv, revision = await self.store.delete(info.key(namespace, name), expected)
        except NotFound:
            raise NotFound(_not_found(info, name)) from None
        except Conflict:
            raise Conflict(conflict_message(info, name)) from None
        return _with_revision(codec.decode_stored(type_, kv.value), revision)


_METADATA = b'"metadata":{'


def with_revision_bytes(value: bytes, revision: int) -> bytes:
    """Stored JSON (`codec.encode` of an object whose resourceVersion is empty) with
    `"resourceVersion":"N"` as the first field of `metadata`.

    The encoder writes `apiVersion`, `kind`, then `metadata`, so the first `"metadata":{` is
    the object's own; it is never empty (an object has a name), hence the comma.
    """
    at = value.find(_METADATA)
    if at < 0:  # pragma: no cover - every stored object has metadata
        raise ValueError("stored object without metadata")
    at += len(_METADATA)
    return b"%s\"resourceVersion\":\"%d\",%s" % (value[:at], revision, value[at:])


def _load(type_: type[T], kv: KeyValue) -> T:
    return _with_revision(codec.decode_stored(type_, kv.value), kv.mod_revision)


def _with_revision(obj: T, revision: int) -> T:
    meta: ObjectMeta = msgspec.structs.replace(obj.metadata, resource_version=str(revision))
    return msgspec.structs.replace(obj, metadata=meta)


_EVENT_KIND: dict[tuple[EventType, bool], EventKind] = {
    (EventType.PUT, True): "ADDED",
    (EventType.PUT, False): "MODIFIED",
    (EventType.DELETE, False): "DELETED",
}


def _to_object_event(type_: type[T], event: WatchEvent) -> ObjectEvent:
    obj = _with_revision(codec.decode_stored(type_, event.kv.value), event.revision)
    return ObjectEvent(_EVENT_KIND[(event.type, event.created)], obj, event.revision)


def _not_found(info: KindInfo, name: str) -> str:
    return f'{info.resource} "{name}" not found'


def conflict_message(info: KindInfo, name: str) -> str:
    return (
        f'Operation cannot be fulfilled on {info.resource} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
