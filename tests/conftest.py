"""Suite-wide rules and fixtures.

A test marked `root` that is skipped fails the run when CI=true: CI runs as root, so a skipped
root test there means the environment is broken, not that the test does not apply.

Fixtures every suite shares: `anyio_backend` (asyncio), `clock` (a FakeClock), `memory` (a fresh
MemoryStore) and `objects` (an ObjectStore over it); `eventually(predicate, timeout)` waits for
a condition with a deadline (never a sleep for state), and `running(*runs)` runs `run()`
coroutines for the body of an `async with`, cancelled after.

`LOOPS` are the event loops a module can run on: asyncio, and uvloop too when it is installed
(through anyio's loop factory, never `uvloop.install()`). A module that sets `BOTH_LOOPS = True`
gets `anyio_backend` parametrized by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

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


LOOPS: list[Any] = [pytest.param("asyncio", id="asyncio")]
if importlib.util.find_spec("uvloop") is not None:
    LOOPS.append(pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules with `BOTH_LOOPS = True` run each async test on every loop of `LOOPS`."""
    if getattr(metafunc.module, "BOTH_LOOPS", False) and "anyio_backend" in metafunc.fixturenames:
        metafunc.parametrize("anyio_backend", LOOPS)


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


async def _eventually(
    predicate: Callable[[], Any], timeout: float = 2.0, *, interval: float = 0.001,
    message: str = "",
) -> Any:
    """Wait until `predicate()` (awaited if it returns an awaitable) is truthy; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(
                f"condition not met within {timeout}s{': ' + message if message else ''} "
                f"(last value: {value!r})"
            )
        await asyncio.sleep(interval)


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    return _eventually


@contextlib.asynccontextmanager
async def _running(*runs: Callable[[], Awaitable[Any]]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run `run()` coroutines for the duration of the block; cancel and await them after."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(_await(run)) for run in runs]
        try:
            yield tasks
        finally:
            for task in tasks:
                task.cancel()


async def _await(run: Callable[[], Awaitable[Any]]) -> None:
    await run()


@pytest.fixture
def running() -> Callable[..., contextlib.AbstractAsyncContextManager[list[asyncio.Task[None]]]]:
    return _running
