"""Fixtures for the store tests.

`store` is one fresh, empty store of each backend in `BACKENDS`; every test that takes it runs
once per backend. To add a backend (etcd), add an opener here: it gets the test's `tmp_path`
and returns an open store (an etcd opener would skip when no etcd is reachable, and give each
test a fresh server or a key namespace of its own). The conformance tests do not assume that a
store starts at revision 0, only that nothing else writes to it while they run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from clusterip.store.api import Store
from clusterip.store.memory import MemoryStore
from clusterip.store.sqlite import SqliteStore


async def _open_memory(tmp_path: Path) -> Store:
    return MemoryStore()


async def _open_sqlite(tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / "store.db")


BACKENDS: dict[str, Callable[[Path], Awaitable[Store]]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
}


@pytest.fixture(params=list(BACKENDS))
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Store]:
    """A fresh store of each backend, closed after the test (closing twice is allowed)."""
    opened = await BACKENDS[request.param](tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
