"""The in-memory store: the executable specification of `store.api.Store`, used by tests.

State is a dict of current values plus an append-only log of events (the watch history). A write
appends to the log and wakes every watcher through `_Wakeup`, a one-shot event that is replaced
after each write; a watcher reads the log past its last revision, then waits for the next wakeup.
`compact(rev)` drops log entries at or below `rev`; watching from before that raises `Expired`.
Single-threaded asyncio: no locks are needed because no method awaits between check and write.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Callable

from clusterip.core.errors import AlreadyExists, Conflict, Expired, NotFound, Unavailable
from clusterip.store.api import EventType, KeyValue, WatchEvent

__all__ = ["MemoryStore", "Wakeup"]


class Wakeup:
    """Wakes every waiter once per `notify()`; a waiter that arrives later waits for the next."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float | None = None) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            pass


class MemoryStore:
    """A `Store` held in process memory; lost when the process ends."""

    def __init__(self) -> None:
        self._data: dict[str, KeyValue] = {}
        self._log: list[WatchEvent] = []
        self._revision = 0
        self._compacted = 0
        self._closed = False
        self._wakeup = Wakeup()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("store is closed")

    def _append(self, event: WatchEvent) -> int:
        self._log.append(event)
        self._wakeup.notify()
        return event.revision

    async def get(self, key: str) -> KeyValue:
        self._check_open()
        try:
            return self._data[key]
        except KeyError:
            raise NotFound(key) from None

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        items = [kv for k, kv in sorted(self._data.items()) if k.startswith(prefix)]
        return items, self._revision

    async def create(self, key: str, value: bytes) -> int:
        self._check_open()
        if key in self._data:
            raise AlreadyExists(key)
        self._revision += 1
        kv = KeyValue(key, value, self._revision, self._revision)
        self._data[key] = kv
        return self._append(WatchEvent(EventType.PUT, kv, self._revision))

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        self._check_open()
        old = self._data.get(key)
        if old is None:
            raise NotFound(key)
        if expected_revision is not None and old.mod_revision != expected_revision:
            raise Conflict(f"{key}: expected revision {expected_revision}, is {old.mod_revision}")
        self._revision += 1
        kv = KeyValue(key, value, old.create_revision, self._revision)
        self._data[key] = kv
        return self._append(WatchEvent(EventType.PUT, kv, self._revision))

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        self._check_open()
        old = self._data.get(key)
        if old is None:
            raise NotFound(key)
        if expected_revision is not None and old.mod_revision != expected_revision:
            raise Conflict(f"{key}: expected revision {expected_revision}, is {old.mod_revision}")
        self._revision += 1
        del self._data[key]
        return old, self._append(WatchEvent(EventType.DELETE, old, self._revision))

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    async def watch(
        self, prefix: str, since_revision: int, progress: Callable[[int], None] | None = None
    ) -> AsyncIterator[WatchEvent]:
        self._check_open()
        position = since_revision
        while not self._closed:
            if position < self._compacted:
                raise Expired(position, self._compacted)
            start = bisect.bisect_right(self._log, position, key=lambda e: e.revision)
            pending = self._log[start:]
            wakeup = self._wakeup
            for event in pending:
                position = event.revision
                if event.kv.key.startswith(prefix):
                    yield event
            if not pending:
                if progress is not None:
                    progress(self._revision)  # the log holds every revision after `position`
                await wakeup.wait()

    async def compact(self, revision: int) -> None:
        self._check_open()
        revision = min(revision, self._revision)
        if revision <= self._compacted:
            return
        start = bisect.bisect_right(self._log, revision, key=lambda e: e.revision)
        del self._log[:start]
        self._compacted = revision

    async def close(self) -> None:
        self._closed = True
        self._wakeup.notify()
