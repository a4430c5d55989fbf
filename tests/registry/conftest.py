"""Fixtures for the registry tests: an object store over a fresh store, with a fake clock.

`STORES` names every store backend that exists in this checkout (the SQLite one is looked up with
`importlib.util.find_spec`, so these tests run before and after it lands); tests that must hold
on every backend take the `any_objects` fixture, the rest take `objects` (in memory).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from clusterip.registry.objects import ObjectStore
from clusterip.store.api import Store
from clusterip.store.memory import MemoryStore
from clusterip.testing.clock import FakeClock


async def _open_memory(tmp_path: Path) -> Store:
    return MemoryStore()


async def _open_sqlite(tmp_path: Path) -> Store:
    from clusterip.store.sqlite import SqliteStore

    store: Store = await SqliteStore.open(tmp_path / "store.db")
    return store


STORES: dict[str, Callable[[Path], Awaitable[Store]]] = {"memory": _open_memory}
if importlib.util.find_spec("clusterip.store.sqlite") is not None:
    STORES["sqlite"] = _open_sqlite


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def objects(clock: FakeClock) -> ObjectStore:
    """Objects over a fresh in-memory store."""
    return ObjectStore(MemoryStore(), clock)


@pytest.fixture(params=list(STORES))
async def any_objects(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, anyio_backend: str
) -> AsyncIterator[ObjectStore]:
    """Objects over a fresh store of each backend in `STORES`, closed after the test."""
    store = await STORES[request.param](tmp_path)
    try:
        yield ObjectStore(store, clock)
    finally:
        await store.close()
