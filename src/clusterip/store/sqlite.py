"""The embedded store: `store.api.Store` in one SQLite file, after kine's log-table design.

Theory of operation
===================

Schema (``PRAGMA user_version = 1``)::

    log(revision INTEGER PRIMARY KEY, key, deleted, create_revision, prev_revision, value)
    current(key PRIMARY KEY, create_revision, mod_revision) WITHOUT ROWID
    meta(name PRIMARY KEY, value)        -- 'revision' and 'compacted'

`log` is the history: one row per write, and its INTEGER PRIMARY KEY (the SQLite rowid) *is* the
store revision, so "every change after N" is a range scan of the primary key. A PUT row holds the
new value (`prev_revision` = the mod_revision it replaced, 0 for a create); a DELETE row holds the
value the key had before (with that value's create and mod revision), which is what a DELETE
event must carry. `current` is the index of the present: key -> the log row holding its value, so
`get` is one primary-key lookup plus one rowid lookup and `list(prefix)` a key-range scan joined
to the log (100k keys well under a second). Values live only in `log`.

Revisions. The counter lives in `meta`, not in ``MAX(log.revision)``, because compaction may
delete the newest row (a DELETE tombstone) and a revision must never be handed out twice. Every
write transaction begins with BEGIN IMMEDIATE, which takes SQLite's single write lock, reads the
counter, assigns the next revisions to its writes in order and stores the counter back before
COMMIT. Writers (threads or processes) are therefore serialized, and a transaction's revisions are
all larger than those of every transaction committed before it. Commits become visible atomically
and in that same order, so a reader that sees revision R sees every revision below R: the log has
no in-flight gaps (kine needs "fill" rows only because Postgres and MySQL allow concurrent
writers). That is why a watch can safely move its position past everything its snapshot shows.

Group commit. All writes of this process go through one writer thread with its own connection.
Callers enqueue an operation and await an asyncio future. The thread takes everything queued (up
to `_MAX_BATCH`), runs it in ONE transaction and commits once, so one fsync covers many writes.
Each operation checks its precondition (absent / exists / expected revision) with reads *before*
it writes anything, so a failing operation writes nothing and its `StateError` goes to its caller
alone, while the rest of the batch commits. A failure of SQLite itself (disk full, lock timeout)
rolls the whole batch back and fails every caller in it with `Unavailable`. After COMMIT the thread
resolves the batch's futures with one `loop.call_soon_threadsafe`, so the event loop never waits
for an fsync. A caller that is cancelled while its write is queued may still see it committed,
as with any remote store.

Reads (`get`, `list`, `revision`, watch queries) run on a small thread pool, each on a read-only
connection of its own and inside one read transaction, so `list` returns items and the revision
of one snapshot (WAL gives readers a consistent snapshot without blocking the writer).

Watch. A watcher queries ``log WHERE revision > position`` (and its key range) in one snapshot
together with the store revision and the compacted revision: below the compacted revision it
raises `Expired` ("too old resource version: N (M)"); otherwise it yields the rows in revision
order and moves its position to the snapshot's revision, which the ordering argument above makes
safe. Then it waits for the store's commit event, which is set (and replaced by a fresh one) on
the loop after every commit, so in-process watchers see a write within about a millisecond; or
at most `poll_interval` seconds, so that writes by another process on the same file are seen too.
The watcher takes the event before its query, so a commit that lands during the query is never
slept through. Each watcher runs its own (small,
primary-key range) query per commit; should hundreds of watchers ever share one process, one
reader tailing the log and fanning out by prefix (kine's broadcaster) would replace them.

Compaction. `compact(rev)` is a write like the others (`rev` is capped at the current revision,
as in the memory store): it deletes every log row at or below `rev`
that is not some key's current value (superseded values and delete tombstones) and records `rev`
as the compacted revision in `meta`, which outlives restarts. Watches from below it raise
`Expired`; current values keep their rows, so `get`/`list` are unaffected.

Durability. WAL mode with ``synchronous=FULL``: every COMMIT fsyncs the WAL before it returns, and
a write is acknowledged only after its COMMIT returned. An acknowledged write therefore survives
`kill -9` (the WAL frames were written to the kernel before COMMIT returned; NORMAL would already
do for that) and also power loss (which NORMAL does not guarantee: it may lose the last commits,
though never corrupt the file). Group commit is what makes FULL affordable.

Errors. SQLite's exceptions become `core.errors.Unavailable` in exactly one place, `_translated`.

Lifetime. A store is bound to the event loop that opened it. `close()` fails queued writes with
`Unavailable`, lets the batch in flight finish, stops the writer thread, ends open watches and
closes every connection.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from clusterip.core.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    NotFound,
    StateError,
    Unavailable,
)
from clusterip.store.api import EventType, KeyValue, Store, WatchEvent

__all__ = ["SqliteStore"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
"""

_MAX_BATCH: Final = 1000  # writes per transaction: bounds a batch's latency and memory
_WATCH_PAGE: Final = 1000  # log rows per watch query
_TAIL_EVENTS: Final = 10_000  # recent events kept in memory for every watcher to share
_BUSY_TIMEOUT: Final = 30.0  # seconds to wait for another process's write lock
_READERS: Final = 4


@contextmanager
def _translated() -> Iterator[None]:
    """The one place where sqlite3's exceptions become ours.

    Every `sqlite3.Error` that reaches here is the database failing, not the caller: locked for
    longer than the busy timeout, closed, disk full or I/O error. Preconditions are checked by
    queries, never by constraint violations, so none of them means NotFound or Conflict.
    """
    try:
        yield
    except sqlite3.Error as exc:
        raise Unavailable(f"sqlite: {exc}") from exc


def _prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix`; None when unbounded.

    SQLite compares TEXT by memcmp of UTF-8, which is code point order, so incrementing the last
    code point bounds the range (surrogates cannot occur in stored keys, so they are skipped).
    """
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]
    return None


def _key_range(column: str, prefix: str) -> tuple[str, tuple[str, ...]]:
    """A WHERE clause (and its parameters) selecting `column` values that start with `prefix`."""
    end = _prefix_end(prefix)
    if end is None:
        return "1", ()
    return f"{column} >= ? AND {column} < ?", (prefix, end)


def _connect(path: str, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (we issue BEGIN/COMMIT ourselves), usable from any thread
    (each is used by one thread at a time), WAL and fsync on every commit."""
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise Unavailable(f"sqlite: {path}: cannot use WAL mode (got {mode!r})")
        conn.execute("PRAGMA synchronous=FULL")
        if read_only:
            conn.execute("PRAGMA query_only=1")
    except BaseException:
        conn.close()
        raise
    return conn


def _init_schema(conn: sqlite3.Connection) -> None:
    """Create the tables if this is a new file; refuse a file of another schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise Unavailable(f"sqlite: unsupported schema version {version} (expected 1)")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _meta(conn: sqlite3.Connection, name: str) -> int:
    value: int = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]
    return value


def _current(conn: sqlite3.Connection, key: str) -> KeyValue | None:
    row = conn.execute(
        "SELECT l.value, c.create_revision, c.mod_revision FROM current c"
        " JOIN log l ON l.revision = c.mod_revision WHERE c.key = ?",
        (key,),
    ).fetchone()
    return None if row is None else KeyValue(key, *row)


# --- the write side: operations run by the writer thread inside a transaction -----------------


class _Txn:
    """One write transaction: hands out revisions and stores the counter back at the end."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.start = self.revision = _meta(conn, "revision")

    def append(self, key: str, deleted: bool, kv_create: int, prev: int, value: bytes) -> int:
        self.revision += 1
        self.conn.execute(
            "INSERT INTO log (revision, key, deleted, create_revision, prev_revision, value)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (self.revision, key, int(deleted), kv_create, prev, value),
        )
        return self.revision

    def finish(self) -> None:
        if self.revision != self.start:
            self.conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (self.revision,))


def _existing(txn: _Txn, key: str, expected_revision: int | None) -> KeyValue:
    """The key's current value, checked against `expected_revision` (the precondition)."""
    old = _current(txn.conn, key)
    if old is None:
        raise NotFound(key)
    if expected_revision is not None and old.mod_revision != expected_revision:
        raise Conflict(f"{key}: expected revision {expected_revision}, is {old.mod_revision}")
    return old


def _do_create(txn: _Txn, key: str, value: bytes) -> int:
    exists = txn.conn.execute("SELECT 1 FROM current WHERE key = ?", (key,)).fetchone()
    if exists is not None:
        raise AlreadyExists(key)
    revision = txn.append(key, False, txn.revision + 1, 0, value)  # created at its own revision
    txn.conn.execute(
        "INSERT INTO current (key, create_revision, mod_revision) VALUES (?, ?, ?)",
        (key, revision, revision),
    )
    return revision


def _do_update(txn: _Txn, key: str, value: bytes, expected_revision: int | None) -> int:
    old = _existing(txn, key, expected_revision)
    revision = txn.append(key, False, old.create_revision, old.mod_revision, value)
    txn.conn.execute("UPDATE current SET mod_revision = ? WHERE key = ?", (revision, key))
    return revision


def _do_delete(txn: _Txn, key: str, expected_revision: int | None) -> tuple[KeyValue, int]:
    old = _existing(txn, key, expected_revision)
    revision = txn.append(key, True, old.create_revision, old.mod_revision, old.value)
    txn.conn.execute("DELETE FROM current WHERE key = ?", (key,))
    return old, revision


def _do_compact(txn: _Txn, revision: int) -> None:
    revision = min(revision, txn.revision)
    if revision <= _meta(txn.conn, "compacted"):
        return
    txn.conn.execute(
        "DELETE FROM log WHERE revision <= ? AND NOT EXISTS (SELECT 1 FROM current c"
        " WHERE c.key = log.key AND c.mod_revision = log.revision)",
        (revision,),
    )
    txn.conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (revision,))


@dataclass(slots=True)
class _Op(Generic[T]):
    """A queued write: what to run inside the transaction, and the caller's future."""

    apply: Callable[[_Txn], T]
    future: asyncio.Future[T]


_STOP: Final = object()  # wakes the writer thread so that it notices `stopping`


@dataclass(slots=True)
class _Writer:
    """The writer thread: takes queued operations, commits them in batches, resolves futures."""

    conn: sqlite3.Connection
    loop: asyncio.AbstractEventLoop
    committed: Callable[[], None]  # called on the loop after each batch: wakes the watchers
    done: asyncio.Future[None]  # set on the loop when the thread has ended
    inbox: queue.SimpleQueue[object] = field(default_factory=queue.SimpleQueue)
    stopping: threading.Event = field(default_factory=threading.Event)

    def submit(self, op: _Op[Any]) -> None:
        self.inbox.put(op)

    def stop(self) -> None:
        self.stopping.set()
        self.inbox.put(_STOP)

    def run(self) -> None:
        try:
            while True:
                batch = self._take(_MAX_BATCH, block=True)
                if self.stopping.is_set():
                    self._call_soon(self._resolve, batch + self._take(None, block=False), None)
                    return
                if batch:
                    self._call_soon(self._resolve, batch, self._commit(batch))
        finally:
            self.conn.close()
            self._call_soon(self._finished)

    def _take(self, limit: int | None, *, block: bool) -> list[_Op[Any]]:
        """Take queued operations, up to `limit`; with `block`, wait for the first one."""
        items = [self.inbox.get()] if block else []
        while limit is None or len(items) < limit:
            try:
                items.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return [item for item in items if isinstance(item, _Op)]

    def _commit(self, batch: list[_Op[Any]]) -> list[object]:
        """Run the batch in one transaction; each result is a value or that op's StateError."""
        try:
            with _translated():
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    txn = _Txn(self.conn)
                    results = [_apply(op, txn) for op in batch]
                    txn.finish()
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
        except Unavailable as exc:  # the batch failed as a whole: every caller gets the error
            log.warning("sqlite write batch failed ops=%d error=%s", len(batch), exc)
            return [Unavailable(str(exc)) for _ in batch]
        except Exception as exc:  # a bug in an operation: it surfaces to the callers as it is
            log.exception("sqlite write batch failed ops=%d", len(batch))
            return [exc] * len(batch)
        return results

    def _resolve(self, batch: list[_Op[Any]], results: list[object] | None) -> None:
        """On the loop: give each caller its result (None: the store closed before the batch
        ran, so Unavailable), then wake the watchers."""
        for index, op in enumerate(batch):
            if op.future.done():  # the caller was cancelled
                continue
            result = Unavailable("store is closed") if results is None else results[index]
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)
        self.committed()

    def _finished(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _call_soon(self, fn: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to tell
            self.loop.call_soon_threadsafe(fn, *args)


def _apply(op: _Op[Any], txn: _Txn) -> object:
    """Run one operation; its StateError is its result (it wrote nothing before raising)."""
    try:
        return op.apply(txn)
    except StateError as exc:
        return exc


# --- the read side -----------------------------------------------------------------------------


def _in_snapshot(conn: sqlite3.Connection, read: Callable[[sqlite3.Connection], T]) -> T:
    """Run `read` in one read transaction, so that all its queries see the same snapshot."""
    conn.execute("BEGIN")
    try:
        return read(conn)
    finally:
        conn.execute("COMMIT")


def _read_get(conn: sqlite3.Connection, key: str) -> KeyValue:
    kv = _current(conn, key)
    if kv is None:
        raise NotFound(key)
    return kv


def _read_list(conn: sqlite3.Connection, prefix: str) -> tuple[list[KeyValue], int]:
    where, params = _key_range("c.key", prefix)
    revision = _meta(conn, "revision")
    rows = conn.execute(
        "SELECT c.key, l.value, c.create_revision, c.mod_revision FROM current c"
        f" JOIN log l ON l.revision = c.mod_revision WHERE {where} ORDER BY c.key",
        params,
    ).fetchall()
    return [KeyValue(*row) for row in rows], revision


def _event(row: tuple[int, str, int, int, int, bytes]) -> WatchEvent:
    revision, key, deleted, create_revision, prev_revision, value = row
    if deleted:
        return WatchEvent(
            EventType.DELETE, KeyValue(key, value, create_revision, prev_revision), revision
        )
    return WatchEvent(EventType.PUT, KeyValue(key, value, create_revision, revision), revision)


@dataclass(frozen=True, slots=True)
class _Page:
    """What one watch query found: events, where to continue, and whether to go on at once."""

    events: list[WatchEvent]
    position: int
    more: bool
    compacted: int = 0


@dataclass(slots=True)
class _Tail:
    """The store's most recent events, read once for every watcher of this process.

    Without it, every commit made each watcher run its own query (six watchers: six queries a
    commit). The tail holds every event in (`start`, `position`], at most `_TAIL_EVENTS` of them;
    it is refreshed by one query when a commit (or, for other processes' writes, the poll) says
    there may be more. A watcher whose position is inside that window filters it by prefix in
    memory; one that is behind it (a watch from an old revision) reads its own pages from the
    log until it catches up.
    """

    start: int = -1  # -1: not started yet
    position: int = -1
    compacted: int = 0
    events: list[WatchEvent] = field(default_factory=list)
    seen_commits: int = -1
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def covers(self, position: int) -> bool:
        return self.start >= 0 and position >= self.start

    def after(self, prefix: str, position: int) -> list[WatchEvent]:
        at = bisect.bisect_right(self.events, position, key=lambda e: e.revision)
        return [e for e in self.events[at:] if e.kv.key.startswith(prefix)]

    def extend(self, page: _Page) -> None:
        self.events.extend(page.events)
        self.position = max(self.position, page.position)
        self.compacted = page.compacted
        excess = len(self.events) - _TAIL_EVENTS
        if excess > 0:
            self.start = self.events[excess - 1].revision
            del self.events[:excess]


def _read_events(conn: sqlite3.Connection, prefix: str, position: int) -> _Page:
    """Events under `prefix` after `position`, read in one snapshot.

    Raises Expired if `position` is below the compacted revision. When the page is not full, the
    watcher has seen everything up to the snapshot's revision (there are no gaps: see the module
    docstring), so it continues from there even if no event under `prefix` came that far.
    """
    compacted = _meta(conn, "compacted")
    if position < compacted:
        raise Expired(position, compacted)
    head = _meta(conn, "revision")
    where, params = _key_range("key", prefix)
    rows = conn.execute(
        "SELECT revision, key, deleted, create_revision, prev_revision, value FROM log"
        f" WHERE revision > ? AND {where} ORDER BY revision LIMIT ?",
        (position, *params, _WATCH_PAGE),
    ).fetchall()
    events = [_event(row) for row in rows]
    if len(events) == _WATCH_PAGE:
        return _Page(events, events[-1].revision, more=True, compacted=compacted)
    return _Page(events, max(position, head), more=False, compacted=compacted)


@dataclass(slots=True)
class _Readers:
    """A pool of read-only connections, each used by one pool thread at a time."""

    connections: queue.SimpleQueue[sqlite3.Connection]
    executor: ThreadPoolExecutor

    def run(self, read: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.connections.get()
        try:
            with _translated():
                return _in_snapshot(conn, read)
        finally:
            self.connections.put(conn)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        while True:
            try:
                self.connections.get_nowait().close()
            except queue.Empty:
                return


# --- the store --------------------------------------------------------------------------------


class SqliteStore:
    """A `Store` in one SQLite file. Open it with `await SqliteStore.open(path)`."""

    def __init__(
        self,
        name: str,
        write_conn: sqlite3.Connection,
        read_conns: list[sqlite3.Connection],
        poll_interval: float,
    ) -> None:
        """Use `open`: this takes connections that `open` made, and starts the writer thread."""
        self._loop = asyncio.get_running_loop()
        self._poll_interval = poll_interval
        self._closed = False
        # Set (and replaced) after every commit. A watcher keeps the one it saw before its query,
        # so a commit that lands while the query runs wakes it at once.
        self._committed = asyncio.Event()
        self._commits = 0
        self._tail = _Tail()
        pool: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        for conn in read_conns:
            pool.put(conn)
        executor = ThreadPoolExecutor(len(read_conns), thread_name_prefix="sqlite-read")
        self._readers = _Readers(pool, executor)
        self._writer = _Writer(write_conn, self._loop, self._notify, self._loop.create_future())
        threading.Thread(target=self._writer.run, name=f"sqlite-write {name}", daemon=True).start()

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        poll_interval: float = 1.0,
        readers: int = _READERS,
    ) -> SqliteStore:
        """Open (creating if needed) the store in the file at `path`.

        Args:
            path: the database file; `-wal` and `-shm` files appear beside it.
            poll_interval: how often watches look for writes by other processes (seconds).
            readers: how many reads may run at once.

        Raises:
            Unavailable: the file cannot be opened, or holds another schema version.
        """
        name = os.fspath(path)
        write_conn, *read_conns = await asyncio.to_thread(_open_connections, name, readers)
        return cls(name, write_conn, read_conns, poll_interval)

    def _notify(self) -> None:
        self._commits += 1
        self._committed.set()
        self._committed = asyncio.Event()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("store is closed")

    async def _write(self, apply: Callable[[_Txn], T]) -> T:
        self._check_open()
        future: asyncio.Future[T] = self._loop.create_future()
        self._writer.submit(_Op(apply, future))
        return await future

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        self._check_open()
        try:
            return await self._loop.run_in_executor(self._readers.executor, self._readers.run, read)
        except RuntimeError as exc:
            if not self._closed:
                raise
            raise Unavailable("store is closed") from exc  # close() shut the pool down

    async def get(self, key: str) -> KeyValue:
        return await self._read(partial(_read_get, key=key))

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        return await self._read(partial(_read_list, prefix=prefix))

    async def revision(self) -> int:
        return await self._read(partial(_meta, name="revision"))

    async def create(self, key: str, value: bytes) -> int:
        return await self._write(partial(_do_create, key=key, value=value))

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        return await self._write(
            partial(_do_update, key=key, value=value, expected_revision=expected_revision)
        )

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        return await self._write(partial(_do_delete, key=key, expected_revision=expected_revision))

    async def compact(self, revision: int) -> None:
        await self._write(partial(_do_compact, revision=revision))

    async def watch(
        self, prefix: str, since_revision: int, progress: Callable[[int], None] | None = None
    ) -> AsyncIterator[WatchEvent]:
        self._check_open()
        position = since_revision
        polled = False
        while not self._closed:
            committed = self._committed
            try:
                page = await self._next_page(prefix, position, polled)
            except Unavailable:
                if self._closed:
                    return
                raise
            for event in page.events:
                yield event
            position = page.position
            if not page.more:
                if progress is not None:
                    progress(position)
                try:
                    await asyncio.wait_for(committed.wait(), self._poll_interval)
                    polled = False
                except TimeoutError:
                    polled = True

    async def _next_page(self, prefix: str, position: int, polled: bool) -> _Page:
        """The events after `position`: from the shared tail when it covers `position`, else
        from the log (a watcher catching up on history)."""
        tail = self._tail
        await self._refresh_tail(force=polled)
        if position < tail.compacted:
            raise Expired(position, tail.compacted)
        if tail.covers(position):
            return _Page(tail.after(prefix, position), max(position, tail.position), more=False)
        return await self._read(partial(_read_events, prefix=prefix, position=position))

    async def _refresh_tail(self, *, force: bool) -> None:
        """Read every event committed since the tail's position (one query for all watchers)."""
        tail = self._tail
        async with tail.lock:
            if tail.seen_commits == self._commits and not force:
                return
            seen = self._commits
            if tail.start < 0:
                head = await self._read(partial(_meta, name="revision"))
                tail.start = tail.position = head
            try:
                page = await self._read(
                    partial(_read_events, prefix="", position=tail.position))
                tail.extend(page)
                while page.more:
                    page = await self._read(
                        partial(_read_events, prefix="", position=tail.position))
                    tail.extend(page)
            except Expired as exc:  # compacted past the tail: start it afresh at the head
                tail.events.clear()
                tail.start = tail.position = -1
                tail.compacted = exc.compacted
                return
            tail.seen_commits = seen

    async def close(self) -> None:
        """Fail queued writes, stop the writer, end watches and close the file. Idempotent."""
        if not self._closed:
            self._closed = True
            self._writer.stop()
            self._notify()
        await asyncio.shield(self._writer.done)
        await asyncio.to_thread(self._readers.close)


def _open_connections(path: str, readers: int) -> list[sqlite3.Connection]:
    """The writer's connection (first) and `readers` read-only ones, schema ensured."""
    conns: list[sqlite3.Connection] = []
    try:
        with _translated():
            conns.append(_connect(path, read_only=False))
            _init_schema(conns[0])
            conns.extend(_connect(path, read_only=True) for _ in range(readers))
    except BaseException:
        for conn in conns:
            conn.close()
        raise
    return conns


if TYPE_CHECKING:
    _: type[Store] = SqliteStore  # mypy checks here that SqliteStore satisfies the Protocol
