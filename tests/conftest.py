"""Suite-wide rules and fixtures.

A test marked `root` that is skipped fails the run when CI=true: CI runs as root, so a skipped
root test there means the environment is broken, not that the test does not apply.

Fixtures every suite shares: `anyio_backend` (asyncio), `clock` (a FakeClock), `memory` (a fresh
MemoryStore) and `objects` (an ObjectStore over it).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from clusterip.registry.objects import ObjectStore
from clusterip.store.memory import MemoryStore
from clusterip.testing.clock import FakeClock


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and item.get_closest_marker("root") and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"root test skipped under CI: {report.longrepr}"
    return report


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (anyio's pytest plugin; the code under test uses asyncio)."""
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def memory() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def objects(memory: MemoryStore, clock: FakeClock) -> ObjectStore:
    """Objects over a fresh in-memory store, with the fake clock."""
    return ObjectStore(memory, clock)
