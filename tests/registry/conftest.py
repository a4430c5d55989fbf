"""Fixtures for the registry tests: tests that must hold on every store backend (memory and
SQLite, from `STORES`) take `any_objects`; the rest take the suite-wide `objects` (in memory).
"""

from __future__ import annotations

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


STORES: dict[str, Callable[[Path], Awaitable[Store]]] = {
    "memory": _open_memory, "sqlite": _open_sqlite,
}


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
