"""List+watch of one kind into a read-only cache, with indexes and change handlers.

An `Informer` is what client-go calls a shared informer, cut down to what our controllers need:

1. **List** every object of its kind (optionally in one namespace) through the `Client`, and
   remember the store revision of that read.
2. Replace the cache with the list, calling the handlers with the difference between the old
   cache and the list (adds, updates, deletes). The first time, set `has_synced`: from then on
   the cache is a complete view and a controller may act on it (never before, or it would delete
   what it simply has not seen yet).
3. **Watch** from the list's revision, so that no change between the list and the watch is lost,
   applying each event to the cache and calling the handlers.
4. If the watch raises `Expired` (HTTP 410: its revision was compacted away), or ends, go back to
   1. Any other error is logged and retried after a backoff (100 ms doubling to 5 s). The loop
   `run()` never returns: its owner runs it in an `asyncio.TaskGroup` and cancels it.

Handlers are called synchronously as `handler(key, old, new)`, with `old` None for an add and
`new` None for a delete. They must be quick and must not await: they only compute keys and put
them in a work queue (the level-triggered rule). A handler that raises is logged and skipped.

The cache maps the key "namespace/name" (just "name" for cluster-scoped kinds) to the object.
It is read-only for everyone but the informer: the objects are frozen Structs, and the mappings
returned by `index()` must not be changed by callers.

Indexes are optional. An index function maps an object to the index values it is filed under
(`by_namespace` files it under its namespace; a controller may file pods under each
"namespace/label=value" pair, or slices under their service's key); `index(name, value)` is then
the set of keys filed under `value`, kept up to date on every change in O(values of the object).

`revision` is the store revision the cache reflects: the list's revision, then each event's. A
controller that wrote an object at revision R knows its cache shows that write (or something
newer) once `revision >= R`; `Expectations` keeps that bookkeeping per key, so a controller can
tell a stale cache from the truth and does not, for example, create a second copy of an object
it has just created but not yet seen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from typing import Any, Generic, TypeVar

from clusterip.core.errors import Expired
from clusterip.core.kinds import for_type
from clusterip.core.model import KubeObject
from clusterip.registry.client import Client

__all__ = [
    "Expectations",
    "Handler",
    "IndexFunc",
    "Informer",
    "InformerFactory",
    "by_namespace",
    "key_of",
    "split_key",
]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=KubeObject)

Handler = Callable[[str, T | None, T | None], None]
IndexFunc = Callable[[T], Iterable[str]]

_EMPTY: frozenset[str] = frozenset()


def key_of(obj: KubeObject) -> str:
    """The cache key of an object: "namespace/name", or "name" when it has no namespace."""
    meta = obj.metadata
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def split_key(key: str) -> tuple[str, str]:
    """ "ns/name" → ("ns", "name"); "name" → ("", "name")."""
    namespace, _, name = key.rpartition("/")
    return namespace, name


def by_namespace(obj: KubeObject) -> tuple[str]:
    """Index function: file an object under its namespace."""
    return (obj.metadata.namespace,)


class Informer(Generic[T]):
    """A list+watch cache of one kind. See the module docstring.

    Args:
        client: where to list and watch.
        type_: the model class, e.g. `model.Pod`.
        namespace: watch only this namespace (None: all).
        indexers: index name → index function.
        transform: applied to every object before it is cached (to keep only what the
            controllers read; see `core.projections`).
        min_backoff, max_backoff: the wait after a failed list or watch, doubling from min to max.
    """

    def __init__(
        self,
        client: Client,
        type_: type[T],
        *,
        namespace: str | None = None,
        indexers: Mapping[str, IndexFunc[T]] | None = None,
        transform: Callable[[T], T] | None = None,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self._client = client
        self._transform = transform
        self.type = type_
        self.kind = for_type(type_).kind
        self.namespace = namespace
        self._indexers: dict[str, IndexFunc[T]] = dict(indexers or {})
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}
        # key → index name → values the object is filed under (to unfile it on change).
        self._filed: dict[str, dict[str, tuple[str, ...]]] = {}
        self._cache: dict[str, T] = {}
        self._handlers: list[Handler[T]] = []
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self.has_synced = asyncio.Event()
        self.revision = 0
        self._revision_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.lists = 0  # how many full lists were done (the first one plus relists)

    # --- reading the cache -------------------------------------------------------------------

    def get(self, key: str) -> T | None:
        return self._cache.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._cache

    def __len__(self) -> int:
        return len(self._cache)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cache)

    def values(self) -> list[T]:
        return list(self._cache.values())

    def index(self, name: str, value: str) -> Set[str]:
        """The keys filed under `value` in index `name` (a live view: do not change it)."""
        return self._indices[name].get(value, _EMPTY)

    def by_index(self, name: str, value: str) -> list[T]:
        """The objects filed under `value` in index `name`."""
        cache = self._cache
        return [cache[key] for key in self.index(name, value)]

    async def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Wait until the cache reflects store revision `revision`; False on timeout."""
        if self.revision >= revision:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (revision, waiter)
        self._revision_waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            return self.revision >= revision
        finally:
            if entry in self._revision_waiters:
                self._revision_waiters.remove(entry)
        return True

    def add_indexer(self, name: str, func: IndexFunc[T]) -> None:
        """Add an index (a shared informer gets one from each controller that needs it)."""
        if name in self._indexers:
            if self._indexers[name] is not func:
                raise ValueError(f"index {name!r} of {self.kind} is already defined")
            return
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._cache.items():
            self._put(key, obj)

    def add_handler(self, handler: Handler[T]) -> None:
        """Call `handler(key, old, new)` on every change (add: old None; delete: new None)."""
        self._handlers.append(handler)

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """List, then watch; re-list on `Expired` or when the watch ends. Never returns."""
        backoff = self._min_backoff
        while True:
            try:
                await self._list()
                events = await self._watch()
            except Expired as exc:
                log.info("watch expired, relisting kind=%s error=%s", self.kind, exc)
                continue
            except Exception as exc:
                log.warning(
                    "list/watch failed kind=%s error=%s: %s retry_in=%.2f",
                    self.kind, type(exc).__name__, exc, backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            log.info("watch ended, relisting kind=%s events=%d", self.kind, events)
            if events:
                backoff = self._min_backoff
            else:
                # A watch that ends at once, again and again, must not become a busy loop.
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _list(self) -> None:
        objects, revision = await self._client.list(
            self.type, self.namespace, transform=self._transform
        )
        self.lists += 1
        fresh = {key_of(obj): obj for obj in objects}
        for key in [k for k in self._cache if k not in fresh]:
            gone = self._cache.pop(key)
            self._unfile(key)
            self._notify(key, gone, None)
        for key, obj in fresh.items():
            old = self._cache.get(key)
            if old is not None and old.metadata.resource_version == obj.metadata.resource_version:
                continue
            self._put(key, obj)
            self._notify(key, old, obj)
        self._advance(revision)
        if not self.has_synced.is_set():
            log.debug("synced kind=%s objects=%d revision=%d", self.kind, len(fresh), revision)
            self.has_synced.set()

    async def _watch(self) -> int:
        """Apply watch events until the watch ends; returns how many events it delivered."""
        count = 0
        watch = self._client.watch(self.type, self.namespace, self.revision)
        try:
            async for event in watch:
                count += 1
                obj = event.obj
                if not isinstance(obj, self.type):  # pragma: no cover - a client bug
                    log.error("watch gave kind=%s a %s", self.kind, type(obj).__name__)
                    continue
                if self._transform is not None:
                    obj = self._transform(obj)
                key = key_of(obj)
                old = self._cache.get(key)
                if event.type == "DELETED":
                    if old is not None:
                        del self._cache[key]
                        self._unfile(key)
                    self._notify(key, old if old is not None else obj, None)
                else:
                    self._put(key, obj)
                    self._notify(key, old, obj)
                self._advance(event.revision)
        finally:
            aclose = getattr(watch, "aclose", None)
            if aclose is not None:
                await aclose()
        return count

    # --- internals ---------------------------------------------------------------------------

    def _advance(self, revision: int) -> None:
        if revision <= self.revision:
            return
        self.revision = revision
        if self._revision_waiters:
            for entry in [e for e in self._revision_waiters if e[0] <= revision]:
                self._revision_waiters.remove(entry)
                if not entry[1].done():
                    entry[1].set_result(None)

    def _put(self, key: str, obj: T) -> None:
        self._cache[key] = obj
        if self._indexers:
            self._unfile(key)
            filed: dict[str, tuple[str, ...]] = {}
            for name, func in self._indexers.items():
                values = tuple(func(obj))
                index = self._indices[name]
                for value in values:
                    index.setdefault(value, set()).add(key)
                filed[name] = values
            self._filed[key] = filed

    def _unfile(self, key: str) -> None:
        filed = self._filed.pop(key, None)
        if not filed:
            return
        for name, values in filed.items():
            index = self._indices[name]
            for value in values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _notify(self, key: str, old: T | None, new: T | None) -> None:
        for handler in self._handlers:
            try:
                handler(key, old, new)
            except Exception:
                log.exception("informer handler failed kind=%s key=%s", self.kind, key)


class Expectations:
    """The store revision of each key's last write, to tell a stale cache from the truth.

    After a controller writes objects for `key` it calls `expect(key, revision)` with the highest
    revision its writes returned. Before it plans for `key` again it asks `pending(key,
    informer.revision)`: a non-zero answer is the revision the cache has not reached yet, and
    planning now would act on a cache without those writes (and, for instance, create a second
    copy of an object it has just created). The controller then waits for the informer
    (`Informer.wait_for_revision`), which is usually a matter of microseconds.
    """

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}

    def expect(self, key: str, revision: int) -> None:
        if revision > self._revisions.get(key, 0):
            self._revisions[key] = revision

    def pending(self, key: str, seen_revision: int) -> int:
        """The revision `key` still waits for (0: none; the cache is fresh for it)."""
        wanted = self._revisions.get(key)
        if wanted is None:
            return 0
        if seen_revision >= wanted:
            del self._revisions[key]
            return 0
        return wanted

    def forget(self, key: str) -> None:
        self._revisions.pop(key, None)

    def __len__(self) -> int:
        return len(self._revisions)


class InformerFactory:
    """One shared informer per kind, as client-go's SharedInformerFactory.

    Controllers ask for `informer(kind)` and add their handlers and indexes to it; the owner of
    the factory runs them all with `run()`. Every kind is then listed, watched and cached once,
    however many controllers read it.

    Args:
        client: where every informer lists and watches.
        transforms: kind → function applied to each object before caching it.
    """

    def __init__(
        self,
        client: Client,
        *,
        transforms: Mapping[type[KubeObject], Callable[[Any], Any]] | None = None,
    ) -> None:
        self._client = client
        self._transforms = dict(transforms or {})
        self._informers: dict[type[KubeObject], Informer[Any]] = {}
        self._running = False

    def informer(self, type_: type[T]) -> Informer[T]:
        informer = self._informers.get(type_)
        if informer is None:
            if self._running:
                raise RuntimeError(f"informer for {type_.__name__} asked for after run()")
            informer = Informer(self._client, type_, transform=self._transforms.get(type_))
            self._informers[type_] = informer
        return informer

    async def run(self) -> None:
        """Run every informer asked for so far. Never returns."""
        self._running = True
        async with asyncio.TaskGroup() as tasks:
            for informer in self._informers.values():
                tasks.create_task(informer.run())
