"""Fixtures for the store tests.

`store` is one fresh, empty store of each backend in `BACKENDS`; every test that takes it runs
once per backend. To add a backend, add an opener here: it gets the test's `request` (to ask for
fixtures it needs) and `tmp_path`, and returns an open store. The conformance tests do not assume
that a store starts at revision 0, only that nothing else writes to it while they run.

etcd: one real etcd (`clusterip.testing.etcd`) serves the whole session, started the first time
a test asks for it, and each test gets a store under a key prefix of its own, so no test sees
another's keys. Revisions and compaction are store-wide in etcd, which the suite allows: tests run
one at a time and only ever watch from revisions of their own. Without an etcd binary the etcd
tests skip, except under CI=true, where that fails them (CI installs etcd-server).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from clusterip.store.api import Store
from clusterip.store.etcd import EtcdStore
from clusterip.store.memory import MemoryStore
from clusterip.store.sqlite import SqliteStore
from clusterip.testing.etcd import EtcdProcess, find_etcd, fresh_prefix


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdProcess]:
    """A real etcd for the test session, on free loopback ports, stopped and deleted after."""
    binary = find_etcd()
    if binary is None:
        reason = "etcd is not installed (apt-get install etcd-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs etcd: {reason}")
        pytest.skip(f"{reason}: etcd store tests skipped")
    etcd = EtcdProcess(binary=binary)
    etcd.start()
    try:
        yield etcd
    finally:
        etcd.stop()


async def _open_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore()


async def _open_sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return await SqliteStore.open(tmp_path / "store.db")


async def _open_etcd(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    etcd: EtcdProcess = request.getfixturevalue("etcd_server")
    return await EtcdStore.open([etcd.endpoint], prefix=fresh_prefix())


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Awaitable[Store]]] = {
    "memory": _open_memory,
    "sqlite": _open_sqlite,
    "etcd": _open_etcd,
}


@pytest.fixture(params=list(BACKENDS))
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Store]:
    """A fresh store of each backend, closed after the test (closing twice is allowed)."""
    opened = await BACKENDS[request.param](request, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()
