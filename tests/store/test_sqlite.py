"""What the SQLite backend promises beyond the conformance suite: its file outlives the process.

Reopening shows every key, value, revision, the revision counter and the compacted revision as
they were; two stores on one file (as two processes would have) see each other's writes and never
hand out one revision twice; and an acknowledged write survives `kill -9` of the writing process.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sqlite3
import sys
import threading
from contextlib import aclosing
from pathlib import Path

import anyio
import pytest

from clusterip.core.errors import AlreadyExists, Expired, NotFound, Unavailable
from clusterip.store.api import EventType, KeyValue, WatchEvent
from clusterip.store.sqlite import SqliteStore

pytestmark = pytest.mark.anyio

DEADLINE = 5.0
KILL_WRITER = Path(__file__).with_name("_kill_writer.py")
KILL_AFTER_ACKS = 300  # acknowledged creates before the child is killed
KILL_LIMIT = 100_000  # creates the child would make if nobody killed it
KILL_CONCURRENCY = 16  # concurrent writers in the child, so that the kill lands mid-batch
KILL_DEADLINE = 60.0  # seconds for the child to start and reach KILL_AFTER_ACKS


async def history(store: SqliteStore, prefix: str, since: int) -> list[WatchEvent]:
    """Every event after `since` up to the store's current revision."""
    head = await store.revision()
    events: list[WatchEvent] = []
    if head == since:
        return events
    with anyio.fail_after(DEADLINE):
        async with aclosing(store.watch(prefix, since)) as watch:  # type: ignore[type-var]
            async for event in watch:
                events.append(event)
                if event.revision >= head:
                    break
    return events


async def test_watchers_behind_the_shared_tail_catch_up_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tail keeps only the most recent events; a watch from before them reads the log, then
    joins the tail, and every watcher sees every event once, in order."""
    monkeypatch.setattr("clusterip.store.sqlite._TAIL_EVENTS", 5)
    store = await SqliteStore.open(tmp_path / "store.db")
    try:
        start = await store.revision()
        live: list[str] = []

        async def follow() -> None:
            async for event in store.watch("/a/", start):
                live.append(event.kv.key)

        with anyio.fail_after(DEADLINE):
            follower = asyncio.create_task(follow())
            await store.create("/c/first", b"v")  # the follower's first query starts the tail
            for i in range(20):
                await store.create(f"/b/{i:02d}", b"v")
                await store.create(f"/a/{i:02d}", b"v")
            expected = [f"/a/{i:02d}" for i in range(20)]
            while live != expected:
                assert len(live) <= 20, live
                await asyncio.sleep(0.001)
            follower.cancel()
        from_start = await history(store, "/a/", start)
        from_middle = await history(store, "/a/", start + 21)
        assert [e.kv.key for e in from_start] == expected
        assert [e.kv.key for e in from_middle] == expected[10:]
        await store.compact(start + 10)
        with pytest.raises(Expired):
            await history(store, "/a/", start + 2)
    finally:
        await store.close()


async def test_reopening_shows_everything_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await SqliteStore.open(path)
    for i in range(20):
        await store.create(f"/p/{i:02d}", f"v{i}".encode())
    for i in range(0, 20, 2):
        await store.update(f"/p/{i:02d}", b"updated")
    for i in range(0, 20, 5):
        await store.delete(f"/p/{i:02d}")
    compacted = await store.revision()
    await store.compact(compacted)
    await store.update("/p/01", b"after compaction")
    await store.delete("/p/03")
    before = await store.list("")
    events_before = await history(store, "", compacted)
    await store.close()

    store = await SqliteStore.open(path)
    try:
        assert await store.list("") == before
        for kv in before[0]:
            assert await store.get(kv.key) == kv
        assert await store.revision() == before[1]
        assert await history(store, "", compacted) == events_before
        message = f"too old resource version: {compacted - 1} ({compacted})"
        with pytest.raises(Expired, match=re.escape(message)):
            await history(store, "", compacted - 1)
        assert await store.create("/p/new", b"x") == before[1] + 1
    finally:
        await store.close()


async def test_a_write_through_one_store_is_seen_by_a_watch_on_another(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    writer = await SqliteStore.open(path)
    watcher = await SqliteStore.open(path, poll_interval=0.05)
    try:
        start = await watcher.revision()
        async with aclosing(watcher.watch("/k/", start)) as events:  # type: ignore[type-var]
            revision = await writer.create("/k/a", b"from the other store")
            with anyio.fail_after(DEADLINE):
                event = await anext(events)
        assert event == WatchEvent(
            EventType.PUT, KeyValue("/k/a", b"from the other store", revision, revision), revision
        )
    finally:
        await watcher.close()
        await writer.close()


async def test_two_stores_on_one_file_never_share_a_revision(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    first = await SqliteStore.open(path)
    second = await SqliteStore.open(path)
    stores = (first, second)
    try:
        results = await asyncio.gather(
            *(s.create(f"/k/{n}/{i}", b"v") for i in range(50) for n, s in enumerate(stores)),
            *(s.create("/k/race", b"v") for s in stores),
            return_exceptions=True,
        )
        revisions = [r for r in results if isinstance(r, int)]
        assert sorted(revisions) == list(range(1, 102))
        assert sum(isinstance(r, AlreadyExists) for r in results) == 1
    finally:
        await first.close()
        await second.close()


async def test_a_failing_write_does_not_fail_the_others_of_its_batch(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "store.db")
    try:
        await store.create("/k/taken", b"v")
        results = await asyncio.gather(
            store.create("/k/a", b"1"),
            store.create("/k/taken", b"again"),
            store.update("/k/missing", b"x"),
            store.create("/k/b", b"2"),
            return_exceptions=True,
        )
        assert [type(r) for r in results] == [int, AlreadyExists, NotFound, int]
        assert [results[0], results[3]] == [2, 3]
        assert [kv.key for kv in (await store.list("/k/"))[0]] == ["/k/a", "/k/b", "/k/taken"]
    finally:
        await store.close()


async def test_close_fails_queued_writes_and_keeps_acknowledged_ones(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = await SqliteStore.open(path)
    # Five batches' worth: the writer cannot commit them all before close() stops it.
    writes = [asyncio.ensure_future(store.create(f"/k/{i:04d}", b"v")) for i in range(5000)]
    await anyio.lowlevel.checkpoint()  # one loop iteration: every write is now queued
    await store.close()
    with anyio.fail_after(DEADLINE):
        results = await asyncio.gather(*writes, return_exceptions=True)

    assert all(isinstance(r, int | Unavailable) for r in results)
    assert any(isinstance(r, Unavailable) for r in results)
    assert not [t for t in threading.enumerate() if t.name.startswith(f"sqlite-write {path}")]
    store = await SqliteStore.open(path)
    try:
        items, _ = await store.list("/k/")
        acknowledged = {f"/k/{i:04d}": r for i, r in enumerate(results) if isinstance(r, int)}
        assert {kv.key: kv.mod_revision for kv in items} == acknowledged
    finally:
        await store.close()


async def test_opening_a_file_of_another_schema_version_raises_unavailable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()

    with pytest.raises(Unavailable, match="schema version 99"):
        await SqliteStore.open(path)


async def test_opening_an_unreachable_path_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        await SqliteStore.open(tmp_path / "no such directory" / "store.db")


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    argv = [str(KILL_WRITER), str(path), str(KILL_LIMIT), str(KILL_CONCURRENCY)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE
    )
    acknowledged: dict[str, int] = {}
    try:
        assert child.stdout is not None
        with anyio.fail_after(KILL_DEADLINE):
            while len(acknowledged) < KILL_AFTER_ACKS:
                line = await child.stdout.readline()
                assert line, "the writer ended before it was killed"
                key, revision = line.decode().split()
                acknowledged[key] = int(revision)
    finally:
        # By its PID (Popen.send_signal), whether the acks came or the test failed waiting.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    store = await SqliteStore.open(path)
    try:
        for key, revision in acknowledged.items():
            assert await store.get(key) == KeyValue(key, key.encode(), revision, revision)
        items, head = await store.list("/kill/")
        assert head >= max(acknowledged.values())
        assert [e.kv for e in await history(store, "/kill/", 0)] == sorted(
            items, key=lambda kv: kv.mod_revision
        )
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
