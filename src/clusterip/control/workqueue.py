"""A keyed, de-duplicating asyncio work queue with bounded, rate-limited retries (client-go's).

Controllers are level-triggered: an event handler only puts the *key* of the object that needs
attention ("default/web") in the queue, and a worker later calls `sync(key)`, which reads the
current state and reconciles. The queue therefore holds keys, not events, and follows the rules
of client-go's `util/workqueue` (`doc.go`):

Rule 1 (Fair): keys are handed out in the order they were first added (FIFO).

Rule 2 (Stingy, de-duplication): a key added several times before a worker takes it is handed
out once. Ten pod events for one service in a burst cost one sync.

Rule 3 (Stingy, exclusion): a key is never handed to two workers at once. A key added while a
worker holds it is marked *dirty* and goes back in the queue when that worker calls `done(key)`,
so the change that arrived mid-sync is never lost and never raced.

The three rules come from three pieces of state, exactly as in client-go::

    queue       keys waiting, in order            (deque)
    dirty       keys that need processing          (set)  -- in the queue, or held and re-added
    processing  keys a worker holds right now      (set)

    add(k):   k in dirty → nothing. Else dirty += k; unless k in processing, append to queue.
    get():    pop the head k; processing += k; dirty -= k.
    done(k):  processing -= k; if k in dirty (re-added meanwhile), append k to the queue.

Delays and retries. `add_after(key, delay)` adds the key later; a key already waiting keeps the
earlier of its two deadlines. `retry(key)` is the rate-limited re-add of a failed sync: the n-th
consecutive failure of a key waits `min(base_delay * 2**(n-1), max_delay)` (5 ms, 10 ms, 20 ms...
up to 1 s by default), and after `max_retries` failures the key is dropped with a log line (the
next event for it starts afresh). `forget(key)` resets its failure count after a success.

Time. Delays run on the event loop's own timer (`loop.call_later`), the only thing that can wake
a sleeping task; the injected `Clock` of the project has no way to sleep, so the queue takes none.
The backoff itself is the pure function `backoff_delay`, tested without any time passing.

`run_worker(queue, sync)` is the loop every controller runs N times: get, sync, forget or retry,
done. `shutdown()` wakes every waiting `get()` with `ShutDown` and cancels pending delays.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["ShutDown", "WorkQueue", "backoff_delay", "run_worker"]

log = logging.getLogger(__name__)

DEFAULT_BASE_DELAY = 0.005
DEFAULT_MAX_DELAY = 1.0
DEFAULT_MAX_RETRIES = 15


class ShutDown(Exception):
    """`get()` on a queue that was shut down (and is empty)."""


def backoff_delay(failures: int, base_delay: float, max_delay: float) -> float:
    """The wait before retry number `failures` (from 1): exponential from `base_delay`, capped."""
    if failures <= 0:
        return 0.0
    # Cap the exponent so that 2**n cannot overflow a float for a key that fails for ever.
    exponent = min(failures - 1, 62)
    return min(base_delay * float(2**exponent), max_delay)


class WorkQueue:
    """Keys to process, de-duplicated and never processed twice at once. See the module docstring.

    Args:
        name: for log lines.
        base_delay: the wait before the first retry of a failed key, in seconds.
        max_delay: the longest wait between two retries.
        max_retries: failures of one key after which it is dropped (logged, not retried).
    """

    def __init__(
        self,
        name: str = "",
        *,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retries = max_retries
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._waiting: dict[str, asyncio.TimerHandle] = {}
        self._failures: dict[str, int] = {}
        self._shutting_down = False
        # Counters for tests and metrics.
        self.adds = 0
        self.retries = 0
        self.drops = 0

    # --- the three rules ---------------------------------------------------------------------

    def add(self, key: str) -> None:
        """Mark `key` as needing processing (a no-op if it already is, or after shutdown)."""
        if self._shutting_down or key in self._dirty:
            return
        self.adds += 1
        self._dirty.add(key)
        if key in self._processing:
            return  # Rule 3: goes back in the queue at done(key).
        self._queue.append(key)
        self._wake_one()

    async def get(self) -> str:
        """The next key; the caller must call `done(key)` when finished with it.

        Raises:
            ShutDown: the queue was shut down and no key is left.
        """
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            getter = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except asyncio.CancelledError:
                # As asyncio.Queue does: if we were woken for a key and then cancelled, pass the
                # wakeup on so the key is not stranded.
                if getter.done() and not getter.cancelled():
                    self._wake_one()
                else:
                    self._discard_getter(getter)
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        """The worker holding `key` has finished; re-queue it if it was added meanwhile."""
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake_one()

    # --- delays and retries ------------------------------------------------------------------

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` after `delay` seconds; a key already waiting keeps the earlier deadline."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._waiting[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def retry(self, key: str, reason: object = None) -> bool:
        """Re-add a key whose sync failed, after its backoff; False if it was dropped instead."""
        failures = self._failures.get(key, 0) + 1
        if failures > self.max_retries:
            self._failures.pop(key, None)
            self.drops += 1
            log.warning(
                "dropping key after retries queue=%s key=%s retries=%d error=%s",
                self.name, key, self.max_retries, reason,
            )
            return False
        self._failures[key] = failures
        self.retries += 1
        delay = backoff_delay(failures, self.base_delay, self.max_delay)
        log.debug(
            "retrying key queue=%s key=%s attempt=%d delay=%.3f error=%s",
            self.name, key, failures, delay, reason,
        )
        self.add_after(key, delay)
        return True

    def forget(self, key: str) -> None:
        """Reset the failure count of `key` (after a successful sync)."""
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        """How many consecutive failures `key` has had."""
        return self._failures.get(key, 0)

    # --- lifecycle ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop accepting keys, cancel delayed adds, and wake every `get()` (which raises)."""
        self._shutting_down = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those held by workers or delayed)."""
        return len(self._queue)

    def pending_delayed(self) -> int:
        """Keys waiting for a delay or a retry backoff to pass."""
        return len(self._waiting)

    def is_processing(self, key: str) -> bool:
        return key in self._processing

    @property
    def idle(self) -> bool:
        """No key is waiting, held by a worker, or delayed."""
        return not (self._queue or self._processing or self._waiting)

    # --- internals ---------------------------------------------------------------------------

    def _wake_one(self) -> None:
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(None)
                return

    def _discard_getter(self, getter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._getters.remove(getter)


async def run_worker(queue: WorkQueue, sync: Callable[[str], Awaitable[None]]) -> None:
    """Process keys until the queue shuts down: sync, then forget (success) or retry (failure).

    Any exception from `sync` is a failure to retry with backoff (client-go's `handleErr`); the
    key is dropped with a log line after `queue.max_retries` consecutive failures.
    """
    while True:
        try:
            key = await queue.get()
        except ShutDown:
            return
        try:
            await sync(key)
        except Exception as exc:
            queue.retry(key, f"{type(exc).__name__}: {exc}")
        else:
            queue.forget(key)
        finally:
            queue.done(key)
