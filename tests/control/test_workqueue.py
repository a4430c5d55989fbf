"""control.workqueue: the Fair/Stingy rules, delays, rate-limited retries, shutdown, the worker.

Covered: FIFO order, de-duplication before processing, re-queue of a key added while held,
exclusion under many concurrent workers, add_after (earliest deadline wins), the backoff table,
drop after max_retries (logged), forget, shutdown waking getters, a cancelled getter not
stranding a key, and run_worker's success/failure handling. Delays are a few milliseconds of
real loop time; tests wait for keys with `get()` under a timeout, never with sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from clusterip.control.workqueue import ShutDown, WorkQueue, backoff_delay, run_worker

pytestmark = pytest.mark.anyio


async def get_soon(queue: WorkQueue, timeout: float = 1.0) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def nothing_ready(queue: WorkQueue) -> bool:
    """True if `get()` would block now (checked by letting the loop run once)."""
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    if getter.done():
        queue.done(getter.result())
        return False
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    return True


async def test_keys_come_out_in_the_order_they_went_in() -> None:
    queue = WorkQueue()
    for key in ("c", "a", "b"):
        queue.add(key)
    assert [await get_soon(queue) for _ in range(3)] == ["c", "a", "b"]


async def test_a_key_added_twice_before_processing_is_processed_once() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert await get_soon(queue) == "a"
    queue.done("a")
    assert await get_soon(queue) == "b"
    queue.done("b")
    assert await nothing_ready(queue)
    assert queue.idle


async def test_a_key_added_while_processing_is_requeued_after_done() -> None:
    queue = WorkQueue()
    queue.add("a")
    key = await get_soon(queue)
    queue.add("a")  # a change arrived mid-sync
    queue.add("a")
    assert await nothing_ready(queue)  # not handed to a second worker
    queue.done(key)
    assert await get_soon(queue) == "a"
    queue.done("a")
    assert await nothing_ready(queue)  # and only once


async def test_done_without_readd_does_not_requeue() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.done(await get_soon(queue))
    assert queue.idle


async def test_a_key_is_never_processed_by_two_workers_at_once(eventually: Any) -> None:
    queue = WorkQueue()
    holding: set[str] = set()
    processed: list[str] = []

    async def sync(key: str) -> None:
        assert key not in holding, f"{key} processed twice at once"
        holding.add(key)
        await asyncio.sleep(0)
        if len(processed) < 200:
            queue.add(key)  # re-added while held
            queue.add(f"k{len(processed) % 3}")
        await asyncio.sleep(0)
        holding.discard(key)
        processed.append(key)

    for n in range(3):
        queue.add(f"k{n}")
    async with asyncio.TaskGroup() as tg:
        for _ in range(8):
            tg.create_task(run_worker(queue, sync))
        await eventually(lambda: queue.idle)
        queue.shutdown()
    assert queue.retries == 0
    assert len(processed) >= 200


async def test_getters_are_woken_one_key_each() -> None:
    queue = WorkQueue()
    getters = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.add("a")
    queue.add("b")
    await asyncio.wait(getters, timeout=1.0, return_when="FIRST_COMPLETED")
    await asyncio.sleep(0)
    results = sorted(g.result() for g in getters if g.done())
    assert results == ["a", "b"]
    for getter in getters:
        if not getter.done():
            getter.cancel()
    await asyncio.gather(*getters, return_exceptions=True)


async def test_a_cancelled_getter_does_not_strand_a_key() -> None:
    queue = WorkQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.add("a")  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1.0) == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


# --- delays ---------------------------------------------------------------------------------


async def test_add_after_adds_later() -> None:
    queue = WorkQueue()
    queue.add_after("a", 0.005)
    assert len(queue) == 0
    assert queue.pending_delayed() == 1
    assert not queue.idle
    assert await get_soon(queue) == "a"
    assert queue.pending_delayed() == 0


async def test_add_after_keeps_the_earlier_deadline() -> None:
    queue = WorkQueue()
    queue.add_after("a", 60)
    queue.add_after("a", 0.002)  # earlier: replaces
    queue.add_after("a", 30)  # later: ignored
    assert await get_soon(queue) == "a"
    queue.done("a")
    assert queue.pending_delayed() == 0


async def test_add_after_zero_is_add() -> None:
    queue = WorkQueue()
    queue.add_after("a", 0)
    assert len(queue) == 1


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(0, 0.0, id="none"),
        pytest.param(1, 0.005, id="first"),
        pytest.param(2, 0.010, id="second"),
        pytest.param(5, 0.080, id="fifth"),
        pytest.param(8, 0.640, id="eighth"),
        pytest.param(9, 1.0, id="capped"),
        pytest.param(10_000, 1.0, id="no-overflow"),
    ],
)
def test_backoff_doubles_from_5ms_to_1s(failures: int, expected: float) -> None:
    assert backoff_delay(failures, 0.005, 1.0) == pytest.approx(expected)


async def test_retry_backs_off_and_drops_after_max_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = WorkQueue("test", base_delay=0.001, max_delay=0.002, max_retries=3)
    queue.add("a")
    for attempt in range(1, 4):
        key = await get_soon(queue)
        assert queue.retry(key, "boom") is True
        assert queue.failures(key) == attempt
        queue.done(key)
    key = await get_soon(queue)
    with caplog.at_level(logging.WARNING, logger="clusterip.control.workqueue"):
        assert queue.retry(key, "boom") is False
    queue.done(key)
    assert queue.failures("a") == 0
    assert (queue.retries, queue.drops) == (3, 1)
    assert "dropping key" in caplog.text and "key=a" in caplog.text
    assert queue.idle


async def test_forget_resets_the_backoff() -> None:
    queue = WorkQueue(base_delay=0.001)
    queue.add("a")
    key = await get_soon(queue)
    queue.retry(key)
    queue.retry(key)
    assert queue.failures(key) == 2
    queue.forget(key)
    assert queue.failures(key) == 0
    queue.done(key)


# --- shutdown ---------------------------------------------------------------------------------


async def test_shutdown_wakes_getters_and_ignores_new_keys() -> None:
    queue = WorkQueue()
    getter = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.add_after("later", 60)
    queue.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(getter, 1.0)
    queue.add("a")
    queue.add_after("b", 0.001)
    assert len(queue) == 0
    assert queue.pending_delayed() == 0
    assert queue.shutting_down
    with pytest.raises(ShutDown):
        await queue.get()


# --- the worker loop --------------------------------------------------------------------------


async def test_run_worker_retries_failures_and_forgets_successes() -> None:
    queue = WorkQueue(base_delay=0.001, max_delay=0.002)
    attempts: dict[str, int] = {}
    finished = asyncio.Event()

    async def sync(key: str) -> None:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 3:
            raise RuntimeError("not yet")
        finished.set()

    queue.add("a")
    async with asyncio.TaskGroup() as tg:
        worker = tg.create_task(run_worker(queue, sync))
        await asyncio.wait_for(finished.wait(), 1.0)
        queue.shutdown()
        await worker
    assert attempts == {"a": 3}
    assert queue.failures("a") == 0
    assert queue.retries == 2


async def test_run_worker_returns_at_shutdown() -> None:
    queue = WorkQueue()
    calls: list[str] = []

    async def sync(key: str) -> None:
        calls.append(key)

    worker = asyncio.ensure_future(run_worker(queue, sync))
    queue.add("a")
    await asyncio.sleep(0)
    queue.shutdown()
    await asyncio.wait_for(worker, 1.0)
    assert calls == ["a"]
