"""Fixtures for the control loops: a store, waiting on conditions, and tasks that are always ended.

- `anyio_backend` is "asyncio": tests are `@pytest.mark.anyio` (anyio's pytest plugin; the code
  under test uses asyncio directly).
- `objects` is an `ObjectStore` over a fresh `MemoryStore` with a `FakeClock` (`clock`).
Helpers are fixtures that return functions (tests ask for `eventually`, `running`, `settled`),
so no test imports this module by name.

- `eventually(predicate, timeout)` waits for a (sync or async) predicate to hold, polling with
  1 ms awaits, and fails with the last value seen after `timeout` seconds. Tests never sleep to
  let things happen: they wait for the state they expect.
- `running(*runs)` runs each `run()` coroutine function in a TaskGroup for the body of an
  `async with`, then cancels and awaits every task, pass or fail.
- `held(kind)` is an `ObjectStore` over the same store whose watches of `kind` stop delivering
  while `.hold` is set (until `.release()`), and which counts creates by kind: it makes a cache
  lag behind the writes on purpose, which a MemoryStore alone never does.
- `settled(objects, *informers, queues=...)` holds when every informer's cache equals the store and
  no queue has work waiting, held or delayed: the moment to assert that nothing more happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from clusterip.control.informer import Informer, key_of
from clusterip.control.workqueue import WorkQueue
from clusterip.core.model import KubeObject
from clusterip.registry.objects import ObjectEvent, ObjectStore
from clusterip.store.memory import MemoryStore
from clusterip.testing.clock import FakeClock


async def _settled(
    objects: ObjectStore, *informers: Informer[Any], queues: Sequence[WorkQueue] = ()
) -> bool:
    """Every cache equals the store, and no queue holds, waits for, or delays a key."""
    for queue in queues:
        if not queue.idle:
            return False
    for informer in informers:
        stored, _ = await objects.list(informer.type)
        want = {key_of(o): o.metadata.resource_version for o in stored}
        have = {key: o.metadata.resource_version for key in informer
                if (o := informer.get(key)) is not None}
        if want != have:
            return False
    return True


@pytest.fixture
def settled() -> Callable[..., Awaitable[bool]]:
    return _settled


class HeldWatch(ObjectStore):
    """An ObjectStore whose watches of one kind can be held back; counts creates by kind."""

    def __init__(self, store: MemoryStore, clock: FakeClock, kind: type[KubeObject]) -> None:
        super().__init__(store, clock)
        self.kind = kind
        self.hold = False
        self.held_events = 0
        self._released = asyncio.Event()
        self.creates: dict[str, int] = {}

    def release(self) -> None:
        self.hold = False
        self._released.set()
        self._released = asyncio.Event()

    async def watch(
        self, type_: Any, namespace: str | None, since_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        async for event in super().watch(type_, namespace, since_revision):
            if type_ is self.kind and self.hold:
                self.held_events += 1
                await self._released.wait()
            yield event

    async def create(self, obj: Any) -> Any:
        kind = type(obj).__name__
        self.creates[kind] = self.creates.get(kind, 0) + 1
        return await super().create(obj)


@pytest.fixture
def held(memory: MemoryStore, clock: FakeClock) -> Callable[[type[KubeObject]], HeldWatch]:
    return lambda kind: HeldWatch(memory, clock, kind)
