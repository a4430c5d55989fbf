"""The store conformance suite: what every `store.api.Store` backend must do.

Each test runs once per backend of `conftest.BACKENDS`. The tests read like the spec in
`store/api.py`'s docstring: one store-wide revision, create-if-absent, compare-and-swap updates
and deletes, snapshot lists, ordered exactly-once watches with prefix filters, compaction.

Conventions: revisions are taken relative to `await store.revision()` at the start of a test, so
a backend need not start at 0. Nothing sleeps to wait for state; every wait is on a condition
(an event arriving, a task ending) under `anyio.fail_after(DEADLINE)`.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from clusterip.core.errors import AlreadyExists, Conflict, Expired, NotFound, Unavailable
from clusterip.store.api import EventType, KeyValue, Store, WatchEvent

pytestmark = pytest.mark.anyio

DEADLINE = 5.0  # seconds any single wait may take before the test fails
RACERS = 50  # concurrent callers in the race tests


# --- helpers ----------------------------------------------------------------------------------


async def take(store: Store, prefix: str, since: int, count: int) -> list[WatchEvent]:
    """The first `count` events of a watch from `since`, then close the watch."""
    events: list[WatchEvent] = []
    with anyio.fail_after(DEADLINE):
        async with aclosing(store.watch(prefix, since)) as watch:  # type: ignore[type-var]
            async for event in watch:
                events.append(event)
                if len(events) == count:
                    break
    return events


@asynccontextmanager
async def watching(
    store: Store, prefix: str, since: int
) -> AsyncIterator[MemoryObjectReceiveStream[WatchEvent]]:
    """A watch running in a task for the duration of the block; its events arrive on a stream,
    which ends (EndOfStream) when the watch ends."""
    send, receive = anyio.create_memory_object_stream[WatchEvent](math.inf)

    async def pump() -> None:
        async with send, aclosing(store.watch(prefix, since)) as watch:  # type: ignore[type-var]
            async for event in watch:
                await send.send(event)

    async with receive, anyio.create_task_group() as tasks:
        tasks.start_soon(pump)
        yield receive
        tasks.cancel_scope.cancel()


async def receive(events: MemoryObjectReceiveStream[WatchEvent], count: int) -> list[WatchEvent]:
    with anyio.fail_after(DEADLINE):
        return [await events.receive() for _ in range(count)]


def replay(events: list[WatchEvent], upto: int) -> list[KeyValue]:
    """The state that `events` up to revision `upto` leave behind, in key order."""
    state: dict[str, KeyValue] = {}
    for event in events:
        if event.revision > upto:
            break
        if event.type is EventType.PUT:
            state[event.kv.key] = event.kv
        else:
            del state[event.kv.key]
    return [state[key] for key in sorted(state)]


def outcomes(results: list[object]) -> dict[str, int]:
    """Count of results by type name: `int` for a win, the exception's name for a loss."""
    counts: dict[str, int] = {}
    for result in results:
        name = type(result).__name__
        counts[name] = counts.get(name, 0) + 1
    return counts


# --- create / get / update / delete -----------------------------------------------------------


async def test_create_then_get_returns_the_value_at_the_new_revision(store: Store) -> None:
    revision = await store.create("/k/a", b"one")

    assert await store.get("/k/a") == KeyValue("/k/a", b"one", revision, revision)


async def test_get_of_a_missing_key_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.get("/k/missing")


async def test_create_of_an_existing_key_raises_already_exists_and_changes_nothing(
    store: Store,
) -> None:
    revision = await store.create("/k/a", b"one")

    with pytest.raises(AlreadyExists):
        await store.create("/k/a", b"two")

    assert await store.get("/k/a") == KeyValue("/k/a", b"one", revision, revision)
    assert await store.revision() == revision


async def test_update_replaces_the_value_and_keeps_the_create_revision(store: Store) -> None:
    created = await store.create("/k/a", b"one")

    updated = await store.update("/k/a", b"two", expected_revision=created)

    assert updated == created + 1
    assert await store.get("/k/a") == KeyValue("/k/a", b"two", created, updated)


async def test_update_without_expected_revision_is_unconditional(store: Store) -> None:
    created = await store.create("/k/a", b"one")
    await store.update("/k/a", b"two")

    updated = await store.update("/k/a", b"three")

    assert await store.get("/k/a") == KeyValue("/k/a", b"three", created, updated)


@pytest.mark.parametrize("expected", [None, 1], ids=["unconditional", "with-revision"])
async def test_update_of_a_missing_key_raises_not_found(store: Store, expected: int | None) -> None:
    with pytest.raises(NotFound):
        await store.update("/k/missing", b"x", expected_revision=expected)


async def test_update_with_a_stale_revision_raises_conflict_and_changes_nothing(
    store: Store,
) -> None:
    created = await store.create("/k/a", b"one")
    updated = await store.update("/k/a", b"two")

    with pytest.raises(Conflict):
        await store.update("/k/a", b"three", expected_revision=created)

    assert await store.get("/k/a") == KeyValue("/k/a", b"two", created, updated)
    assert await store.revision() == updated


async def test_delete_returns_the_last_value_and_the_delete_revision(store: Store) -> None:
    created = await store.create("/k/a", b"one")
    updated = await store.update("/k/a", b"two")

    last, deleted = await store.delete("/k/a", expected_revision=updated)

    assert last == KeyValue("/k/a", b"two", created, updated)
    assert deleted == updated + 1
    with pytest.raises(NotFound):
        await store.get("/k/a")
    assert await store.list("/k/") == ([], deleted)


async def test_delete_of_a_missing_key_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.delete("/k/missing")


async def test_delete_with_a_stale_revision_raises_conflict_and_keeps_the_key(
    store: Store,
) -> None:
    created = await store.create("/k/a", b"one")
    updated = await store.update("/k/a", b"two")

    with pytest.raises(Conflict):
        await store.delete("/k/a", expected_revision=created)

    assert await store.get("/k/a") == KeyValue("/k/a", b"two", created, updated)


async def test_a_key_created_again_after_delete_has_a_new_create_revision(store: Store) -> None:
    await store.create("/k/a", b"one")
    _, deleted = await store.delete("/k/a")

    again = await store.create("/k/a", b"two")

    assert again == deleted + 1
    assert await store.get("/k/a") == KeyValue("/k/a", b"two", again, again)


@pytest.mark.parametrize(
    "value",
    [b"", b"\x00\xff\x00binary", b"x" * (1 << 20)],
    ids=["empty", "binary", "one-megabyte"],
)
async def test_values_are_opaque_bytes(store: Store, value: bytes) -> None:
    await store.create("/k/a", value)

    assert (await store.get("/k/a")).value == value


# --- revisions --------------------------------------------------------------------------------


async def test_every_write_takes_the_next_store_wide_revision(store: Store) -> None:
    start = await store.revision()

    revisions = [
        await store.create("/k/a", b"1"),
        await store.create("/other/b", b"2"),
        await store.update("/k/a", b"3"),
        (await store.delete("/other/b"))[1],
    ]

    assert revisions == [start + 1, start + 2, start + 3, start + 4]
    assert await store.revision() == start + 4


async def test_failed_writes_take_no_revision(store: Store) -> None:
    start = await store.create("/k/a", b"1")

    for failing in (
        store.create("/k/a", b"again"),
        store.update("/k/missing", b"x"),
        store.update("/k/a", b"x", expected_revision=start - 1),
        store.delete("/k/missing"),
        store.delete("/k/a", expected_revision=start - 1),
    ):
        with pytest.raises((AlreadyExists, NotFound, Conflict)):
            await failing

    assert await store.revision() == start
    assert await store.create("/k/b", b"2") == start + 1


async def test_concurrent_writes_get_distinct_consecutive_revisions(store: Store) -> None:
    start = await store.revision()

    revisions = await asyncio.gather(*(store.create(f"/k/{i}", b"v") for i in range(100)))

    assert sorted(revisions) == list(range(start + 1, start + 101))


# --- races ------------------------------------------------------------------------------------


async def test_concurrent_creates_of_one_key_exactly_one_wins(store: Store) -> None:
    results = await asyncio.gather(
        *(store.create("/k/race", str(i).encode()) for i in range(RACERS)),
        return_exceptions=True,
    )

    assert outcomes(results) == {"int": 1, "AlreadyExists": RACERS - 1}
    [winner] = [i for i, result in enumerate(results) if isinstance(result, int)]
    assert (await store.get("/k/race")).value == str(winner).encode()


async def test_concurrent_updates_with_the_same_expected_revision_exactly_one_wins(
    store: Store,
) -> None:
    created = await store.create("/k/race", b"initial")

    results = await asyncio.gather(
        *(store.update("/k/race", str(i).encode(), created) for i in range(RACERS)),
        return_exceptions=True,
    )

    assert outcomes(results) == {"int": 1, "Conflict": RACERS - 1}
    [(winner, revision)] = [(i, r) for i, r in enumerate(results) if isinstance(r, int)]
    assert await store.get("/k/race") == KeyValue(
        "/k/race", str(winner).encode(), created, revision
    )


async def test_concurrent_deletes_with_the_same_expected_revision_exactly_one_wins(
    store: Store,
) -> None:
    created = await store.create("/k/race", b"v")

    results = await asyncio.gather(
        *(store.delete("/k/race", created) for _ in range(RACERS)), return_exceptions=True
    )

    wins = [r for r in results if isinstance(r, tuple)]
    assert len(wins) == 1
    assert all(isinstance(r, NotFound | Conflict) for r in results if not isinstance(r, tuple))


# --- list -------------------------------------------------------------------------------------


async def test_list_returns_the_keys_under_a_prefix_in_key_order(store: Store) -> None:
    keys = ["/a/x", "/a/", "/ab", "/a0", "/b/a", "/a/ü", "/a/\U0001f600", "/a/b/c", "/", "/a"]
    for key in keys:
        await store.create(key, key.encode())
    revision = await store.revision()

    items, at = await store.list("/a/")

    assert [kv.key for kv in items] == sorted(k for k in keys if k.startswith("/a/"))
    assert all(kv.value == kv.key.encode() for kv in items)
    assert at == revision
    everything, _ = await store.list("")
    assert [kv.key for kv in everything] == sorted(keys)


async def test_list_of_an_empty_prefix_range_returns_the_store_revision(store: Store) -> None:
    revision = await store.create("/k/a", b"1")

    assert await store.list("/nothing/") == ([], revision)


async def test_a_list_during_writes_is_the_state_at_its_revision(store: Store) -> None:
    start = await store.revision()
    snapshots: list[tuple[list[KeyValue], int]] = []

    async def writer(w: int) -> int:
        writes = 0
        for j in range(10):
            key = f"/c/{w}/{j}"
            await store.create(key, b"created")
            await store.update(key, b"updated")
            writes += 2
            if j % 3 == 0:
                await store.delete(key)
                writes += 1
        return writes

    async def lister() -> int:
        for _ in range(30):
            snapshots.append(await store.list("/c/"))
            await anyio.lowlevel.checkpoint()  # let the writers run between lists
        return 0

    counts = await asyncio.gather(*(writer(w) for w in range(5)), lister())
    history = await take(store, "/c/", start, sum(counts))

    assert [e.revision for e in history] == list(range(start + 1, start + sum(counts) + 1))
    for items, revision in snapshots:
        assert items == replay(history, revision)


# --- watch ------------------------------------------------------------------------------------


async def test_watch_from_the_start_replays_every_change_in_order(store: Store) -> None:
    start = await store.revision()
    created = await store.create("/k/a", b"one")
    updated = await store.update("/k/a", b"two")
    _, deleted = await store.delete("/k/a")

    events = await take(store, "/k/", start, 3)

    assert events == [
        WatchEvent(EventType.PUT, KeyValue("/k/a", b"one", created, created), created),
        WatchEvent(EventType.PUT, KeyValue("/k/a", b"two", created, updated), updated),
        WatchEvent(EventType.DELETE, KeyValue("/k/a", b"two", created, updated), deleted),
    ]
    assert [e.created for e in events] == [True, False, False]


async def test_watch_replays_a_long_history_in_order(store: Store) -> None:
    start = await store.revision()
    count = 2500  # more than a backend is likely to fetch in one page

    await asyncio.gather(*(store.create(f"/k/{i:04d}", b"v") for i in range(count)))
    events = await take(store, "/k/", start, count)

    assert [e.revision for e in events] == list(range(start + 1, start + count + 1))


async def test_watch_from_a_middle_revision_yields_only_later_changes(store: Store) -> None:
    revisions = [await store.create(f"/k/{i}", b"v") for i in range(5)]

    events = await take(store, "/k/", revisions[1], 3)

    assert [e.revision for e in events] == revisions[2:]


async def test_watch_from_the_current_revision_yields_only_new_changes(store: Store) -> None:
    for i in range(3):
        await store.create(f"/k/{i}", b"old")
    now = await store.revision()

    async with watching(store, "/k/", now) as events:
        revision = await store.create("/k/new", b"new")
        [event] = await receive(events, 1)

    assert (event.kv.key, event.revision) == ("/k/new", revision)


async def test_watch_from_a_future_revision_yields_only_changes_after_it(store: Store) -> None:
    future = await store.revision() + 2

    async with watching(store, "/k/", future) as events:
        for i in range(3):
            await store.create(f"/k/{i}", b"v")
        [event] = await receive(events, 1)

    assert event.revision == future + 1


async def test_watch_yields_only_keys_under_its_prefix(store: Store) -> None:
    start = await store.revision()
    await store.create("/b/1", b"other")
    a1 = await store.create("/a/1", b"mine")
    await store.create("/ab/1", b"other")
    await store.create("/a", b"other")
    a2 = await store.create("/a/2", b"mine")

    events = await take(store, "/a/", start, 2)

    assert [(e.kv.key, e.revision) for e in events] == [("/a/1", a1), ("/a/2", a2)]


async def test_delete_event_carries_the_previous_value_and_its_own_revision(
    store: Store,
) -> None:
    created = await store.create("/k/a", b"one")
    updated = await store.update("/k/a", b"two")
    last, deleted = await store.delete("/k/a")

    [event] = await take(store, "/k/", updated, 1)

    assert event.type is EventType.DELETE
    assert event.revision == deleted
    assert event.kv == last == KeyValue("/k/a", b"two", created, updated)
    assert not event.created


async def test_watch_sees_writes_made_after_it_started_promptly(store: Store) -> None:
    start = await store.revision()

    async with watching(store, "/k/", start) as events:
        await store.create("/k/first", b"1")
        await receive(events, 1)  # the watch is running and has caught up
        began = time.monotonic()
        revision = await store.create("/k/second", b"2")
        [event] = await receive(events, 1)
        latency = time.monotonic() - began

    assert event.revision == revision
    assert latency < 0.5, "a watcher must be woken by a write, not by a poll"


async def test_two_watchers_see_identical_sequences(store: Store) -> None:
    start = await store.revision()

    async def churn(w: int) -> int:
        key = f"/k/{w}"
        await store.create(key, b"0")
        for i in range(5):
            await store.update(key, str(i).encode())
        await store.delete(key)
        return 7

    async with watching(store, "/k/", start) as first, watching(store, "/k/", start) as second:
        total = sum(await asyncio.gather(*(churn(w) for w in range(10))))
        seen_first = await receive(first, total)
        seen_second = await receive(second, total)

    assert seen_first == seen_second
    assert [e.revision for e in seen_first] == list(range(start + 1, start + total + 1))


async def test_watch_progress_reaches_writes_under_other_prefixes(store: Store) -> None:
    start = await store.revision()
    reported: list[int] = []

    async def pump() -> None:
        async for event in store.watch("/a/", start, reported.append):
            raise AssertionError(f"no write under /a/: {event}")

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(pump)
        elsewhere = [await store.create(f"/b/{i}", b"other") for i in range(3)]
        with anyio.fail_after(DEADLINE):
            while not reported or reported[-1] < elsewhere[-1]:
                await anyio.sleep(0.01)  # the callback has no event to wait on
        tasks.cancel_scope.cancel()


async def test_watch_progress_never_passes_an_event_not_yet_yielded(store: Store) -> None:
    start = await store.revision()
    seen: list[tuple[str, int]] = []

    async def pump() -> None:
        watch = store.watch("/a/", start, lambda revision: seen.append(("progress", revision)))
        async for event in watch:
            seen.append(("event", event.revision))

    async def churn(w: int) -> list[int]:
        mine = [await store.create(f"/a/{w}/{i}", b"x") for i in range(5)]
        await store.create(f"/b/{w}", b"y")
        return mine

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(pump)
        written = sorted(r for rs in await asyncio.gather(*(churn(w) for w in range(10)))
                         for r in rs)
        with anyio.fail_after(DEADLINE):
            while not any(kind == "event" and rev == written[-1] for kind, rev in seen):
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()

    yielded: set[int] = set()
    for kind, revision in seen:
        if kind == "event":
            yielded.add(revision)
        else:
            assert all(r in yielded for r in written if r <= revision), (revision, seen)


async def test_watch_ends_when_the_store_closes(store: Store) -> None:
    start = await store.revision()

    async with watching(store, "/k/", start) as events:
        await store.create("/k/a", b"1")
        await receive(events, 1)
        await store.close()
        with anyio.fail_after(DEADLINE), pytest.raises(anyio.EndOfStream):
            await events.receive()


async def test_a_closed_store_raises_unavailable_and_closes_again_quietly(store: Store) -> None:
    await store.create("/k/a", b"1")
    await store.close()

    for call in (
        store.get("/k/a"),
        store.list("/k/"),
        store.revision(),
        store.create("/k/b", b"2"),
        store.update("/k/a", b"2"),
        store.delete("/k/a"),
        store.compact(1),
        anext(aiter(store.watch("/k/", 0))),
    ):
        with pytest.raises(Unavailable):
            await call
    await store.close()


# --- compaction -------------------------------------------------------------------------------


async def test_watch_from_before_the_compacted_revision_raises_expired(store: Store) -> None:
    await store.create("/x/a", b"1")
    old = await store.update("/x/a", b"2")
    compacted = await store.create("/x/b", b"3")
    await store.compact(compacted)

    with pytest.raises(Expired, match=re.escape(f"too old resource version: {old} ({compacted})")):
        await take(store, "/x/", old, 1)


async def test_watch_from_the_compacted_revision_yields_the_later_changes(store: Store) -> None:
    await store.create("/x/a", b"1")
    compacted = await store.create("/x/b", b"2")
    _, deleted = await store.delete("/x/b")
    latest = await store.create("/x/c", b"3")
    await store.compact(compacted)

    events = await take(store, "/x/", compacted, 2)

    assert [(e.type, e.kv.key, e.revision) for e in events] == [
        (EventType.DELETE, "/x/b", deleted),
        (EventType.PUT, "/x/c", latest),
    ]


async def test_compaction_keeps_current_values_and_the_revision_counter(store: Store) -> None:
    created = await store.create("/x/a", b"1")
    updated = await store.update("/x/a", b"2")
    await store.create("/x/b", b"3")
    _, head = await store.delete("/x/b")  # the newest write is a tombstone
    before = await store.list("/x/")

    await store.compact(head)

    assert await store.list("/x/") == before
    assert await store.get("/x/a") == KeyValue("/x/a", b"2", created, updated)
    assert await store.revision() == head
    assert await store.create("/x/c", b"4") == head + 1
    [event] = await take(store, "/x/", head, 1)
    assert event.revision == head + 1
