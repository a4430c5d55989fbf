"""Recording events: the `EventRecorder` seam, and the broadcaster that writes what it records.

This is client-go's EventBroadcaster and EventRecorder, cut down. A component records through
a recorder bound to its source; the broadcaster owns one bounded queue and one writer task for
every recorder of the process:

    recorder = broadcaster.recorder("kubelet", host="node-1")
    recorder.record(pod, NORMAL, STARTED, "Started container main",
                    field_path="spec.containers{main}")

How a recorded event reaches the store:

1. `record` is synchronous, never waits and never raises. It builds the Event with the core
   (`core.events.new_event`, timestamped by the injected clock), asks the spam filter (a burst
   of 25 per source and object, then one each 5 minutes), and puts it in a bounded queue (1000
   events). An event the filter refuses, or that finds the queue full, is dropped and counted
   (`dropped`); a full queue is logged once per 100 drops.
2. The writer task (`run()`, owned by the caller's TaskGroup) takes the events in order and
   asks the correlator (`core.events.Correlator`) whether each is new or a repeat. A new one is
   created under a fresh name, `<object name>.<hex unix nanoseconds>`, strictly increasing per
   broadcaster, so two events of one object at the same instant (a fake clock) never collide.
   A repeat is written over the earlier Event, its count and lastTimestamp moved on; if that
   Event is gone (the TTL took it, a user deleted it), it is created anew, count kept.
3. A failed write is retried, `attempts` times in all, after `retry_delay` seconds doubling;
   a name collision (AlreadyExists) is retried at once under a new name. Bad input (Invalid;
   Forbidden: a namespace being deleted) and a namespace that is gone (NotFound) are not
   retried. An event that cannot be written is
   logged and dropped (`failed`): nothing ever reaches the caller of `record`, and the
   controllers' own writes never wait for events.

`expire_events(client, clock, ttl)` is kube-apiserver's `--event-ttl`: it deletes the events
last seen more than `ttl` seconds ago (`core.events.expired`), each at the resourceVersion it
was read at, so an event repeated in the meantime stays. The app runs it periodically.

`DISCARD` records nothing: the default of every component that takes a recorder, so that
nothing has to be wired to build one (tests, benchmarks). Unit tests use
`clusterip.testing.events.FakeRecorder`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn, Protocol

import msgspec

from clusterip.clock import Clock
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import AlreadyExists, BadInput, Conflict, NotFound
from clusterip.registry.client import Client

__all__ = ["DISCARD", "DiscardEvents", "EventBroadcaster", "EventRecorder", "expire_events"]

log = logging.getLogger(__name__)

QUEUE_CAPACITY = 1000
WRITE_ATTEMPTS = 3
RETRY_DELAY = 0.5
_RENAMES = 3


class EventRecorder(Protocol):
    """Records events about objects. Never waits and never raises (see the module docstring)."""

    def record(self, obj: m.KubeObject, type_: str, reason: str, message: str, *,
               field_path: str = "") -> None:
        """Record that `reason` happened to `obj` (to the part `field_path` names, such as
        `spec.containers{main}`); `type_` is Normal or Warning."""
        ...


class DiscardEvents:
    """An `EventRecorder` that records nothing."""

    def record(self, obj: m.KubeObject, type_: str, reason: str, message: str, *,
               field_path: str = "") -> None:
        return None


DISCARD = DiscardEvents()


class _SourceRecorder:
    """A broadcaster's recorder for one source (component and host)."""

    def __init__(self, broadcaster: EventBroadcaster, source: m.EventSource) -> None:
        self._broadcaster = broadcaster
        self.source = source

    def record(self, obj: m.KubeObject, type_: str, reason: str, message: str, *,
               field_path: str = "") -> None:
        self._broadcaster.submit(self.source, obj, type_, reason, message, field_path)


class EventBroadcaster:
    """Writes the events its recorders record, through `client`. See the module docstring.

    Args:
        client: where events are written (the Registry in the app: events are validated).
        clock: the time of each event, and of its name.
        capacity: how many events may wait to be written; more are dropped.
        attempts: writes of one event before it is dropped.
        retry_delay: seconds before the second attempt, doubling after.
        spam: the flood filter (default: client-go's, 25 at once, then one per 5 minutes).
        correlator: counts repeats (default: remembers the 4096 latest events).
    """

    def __init__(self, client: Client, clock: Clock, *, capacity: int = QUEUE_CAPACITY,
                 attempts: int = WRITE_ATTEMPTS, retry_delay: float = RETRY_DELAY,
                 spam: ev.SpamFilter | None = None,
                 correlator: ev.Correlator | None = None) -> None:
        self._client = client
        self._clock = clock
        self._queue: asyncio.Queue[m.Event] = asyncio.Queue(maxsize=max(1, capacity))
        self._attempts = max(1, attempts)
        self._retry_delay = retry_delay
        self._spam = spam or ev.SpamFilter()
        self._correlator = correlator or ev.Correlator()
        self._last_nanos = 0
        self._writing = 0
        self.recorded = 0  # accepted into the queue
        self.written = 0  # creates and repeats that reached the store
        self.dropped = 0  # refused by the spam filter or a full queue
        self.failed = 0  # given up after their attempts

    def recorder(self, component: str, host: str = "") -> EventRecorder:
        """A recorder whose events come from `component` (on `host`, for a node's)."""
        return _SourceRecorder(self, m.EventSource(component=component, host=host))

    @property
    def pending(self) -> int:
        """Events recorded and not yet written (or given up)."""
        return self._queue.qsize() + self._writing

    def submit(self, source: m.EventSource, obj: m.KubeObject, type_: str, reason: str,
               message: str, field_path: str = "") -> None:
        """Queue one event (what recorders call); never raises, never waits."""
        try:
            now = self._clock.now()
            event = ev.new_event(ev.reference(obj, field_path), type_=type_, reason=reason,
                                 message=message, source=source, now=now)
            if not self._spam.allow(event, now):
                self.dropped += 1
                log.debug("event dropped by the spam filter reason=%s object=%s/%s", reason,
                          obj.metadata.namespace, obj.metadata.name)
                return
            self._queue.put_nowait(event)
            self.recorded += 1
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 100 == 1:
                log.warning("event queue full (%d): events are being dropped (%d so far)",
                            self._queue.maxsize, self.dropped)
        except Exception:
            log.exception("event not recorded reason=%s", reason)

    async def run(self) -> NoReturn:
        """Write the queued events, one at a time, until cancelled."""
        while True:
            event = await self._queue.get()
            self._writing += 1
            try:
                await self._deliver(event)
            finally:
                self._writing -= 1

    async def _deliver(self, event: m.Event) -> None:
        correlated = self._correlator.correlate(event)
        delay = self._retry_delay
        attempt = renames = 0
        while True:
            attempt += 1
            try:
                written = await self._write(correlated)
            except AlreadyExists:
                renames += 1
                if renames <= _RENAMES:
                    attempt -= 1  # a collision costs no attempt: the next name is fresh
                    continue
                error: Exception = AlreadyExists("no free event name")
            except (BadInput, NotFound) as exc:  # NotFound here: the namespace is gone
                self.failed += 1
                log.warning("event not written reason=%s object=%s: %s", event.reason,
                            _shown(event), exc)
                return
            except Exception as exc:
                error = exc
            else:
                self._correlator.observe(written)
                self.written += 1
                return
            if attempt >= self._attempts:
                self.failed += 1
                log.warning("event dropped after %d attempts reason=%s object=%s: %s",
                            attempt, event.reason, _shown(event), error)
                return
            log.debug("event write failed, retrying in %.2fs reason=%s: %s", delay,
                      event.reason, error)
            await asyncio.sleep(delay)
            delay *= 2

    async def _write(self, correlated: ev.Correlated) -> m.Event:
        event = correlated.event
        if correlated.repeat:
            try:
                return await self._client.update(event)
            except NotFound:
                self._correlator.forget(event)  # gone: written anew below, its count kept
        return await self._client.create(self._named(event))

    def _named(self, event: m.Event) -> m.Event:
        nanos = max(int(self._clock.now() * 1e9), self._last_nanos + 1)
        self._last_nanos = nanos
        name = ev.event_name(event.involved_object.name or event.involved_object.kind, nanos)
        meta = m.ObjectMeta(name=name, namespace=event.metadata.namespace)
        return msgspec.structs.replace(event, metadata=meta)


def _shown(event: m.Event) -> str:
    ref = event.involved_object
    return f"{ref.kind.lower()}/{ref.namespace + '/' if ref.namespace else ''}{ref.name}"


async def expire_events(client: Client, clock: Clock,
                        ttl: float = ev.DEFAULT_TTL_SECONDS) -> int:
    """Delete the events last seen more than `ttl` seconds ago; how many were deleted."""
    events, _ = await client.list(m.Event)
    deleted = 0
    for event in ev.expired(events, clock.now(), ttl):
        meta = event.metadata
        try:
            await client.delete(m.Event, meta.namespace, meta.name,
                                resource_version=meta.resource_version)
        except (NotFound, Conflict):
            continue  # gone already, or repeated since it was read
        deleted += 1
    if deleted:
        log.info("deleted %d events older than the event TTL (%.0f s)", deleted, ttl)
    return deleted
