"""registry.events: the EventBroadcaster over an ObjectStore, the Registry's ClusterIPAllocated
event, and the event TTL, all with the fake clock.

Covered: names (`<object>.<hex ns>`, unique at one instant), repeats counted into one Event,
the bounded queue and the spam filter dropping instead of waiting, failed writes retried then
dropped (bad input at once), a name collision renamed, a repeat of a deleted event written
anew, `record` never raising, and `expire_events` deleting exactly what the TTL says (and not
an event repeated since it was read). Writes are awaited with `eventually` on `pending`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import AlreadyExists, Forbidden, NotFound, Unavailable
from clusterip.core.ipalloc import ServiceRange
from clusterip.registry.events import DISCARD, EventBroadcaster, expire_events
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.registry.registry import Registry
from clusterip.store.memory import MemoryStore
from clusterip.testing.builders import make_pod, make_service
from clusterip.testing.clock import FakeClock
from clusterip.testing.events import FakeRecorder

pytestmark = pytest.mark.anyio

T = 1767225600.0


async def stored_pod(objects: ObjectStore, name: str = "web-1") -> m.Pod:
    return await objects.create(make_pod(name))


async def events_in(objects: ObjectStore, namespace: str | None = "default") -> list[m.Event]:
    found, _ = await objects.list(m.Event, namespace)
    return sorted(found, key=lambda e: e.metadata.name)


def drained(broadcaster: EventBroadcaster) -> Callable[[], bool]:
    return lambda: broadcaster.pending == 0


# --- writing ----------------------------------------------------------------------------------


async def test_an_event_is_written_under_the_objects_name_and_the_time(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    pod = await stored_pod(objects)
    broadcaster = EventBroadcaster(objects, clock)
    kubelet = broadcaster.recorder(ev.KUBELET, host="node-1")
    kubelet.record(pod, ev.NORMAL, ev.STARTED, "Started container main",
                   field_path="spec.containers{main}")
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    (event,) = await events_in(objects)
    assert event.metadata.name == f"web-1.{int(T * 1e9):x}"
    assert event.involved_object == m.ObjectReference(
        kind="Pod", namespace="default", name="web-1", uid=pod.metadata.uid, api_version="v1",
        resource_version=pod.metadata.resource_version, field_path="spec.containers{main}")
    assert (event.type, event.reason, event.message, event.count) == (
        "Normal", "Started", "Started container main", 1)
    assert event.source == m.EventSource(component="kubelet", host="node-1")
    assert (broadcaster.recorded, broadcaster.written, broadcaster.dropped) == (1, 1, 0)


async def test_repeats_are_counted_into_one_event(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    pod = await stored_pod(objects)
    broadcaster = EventBroadcaster(objects, clock)
    kubelet = broadcaster.recorder(ev.KUBELET, host="node-1")
    async with running(broadcaster.run):
        for _ in range(3):
            kubelet.record(pod, ev.WARNING, ev.UNHEALTHY, "Readiness probe failed: refused")
            await eventually(drained(broadcaster))
            clock.advance(10)
        kubelet.record(pod, ev.WARNING, ev.UNHEALTHY, "Readiness probe failed: HTTP 500")
        await eventually(drained(broadcaster))
    refused, status = await events_in(objects)
    assert (refused.message, refused.count) == ("Readiness probe failed: refused", 3)
    assert (refused.first_timestamp, refused.last_timestamp) == (
        "2026-01-01T00:00:00Z", "2026-01-01T00:00:20Z")
    assert (status.message, status.count) == ("Readiness probe failed: HTTP 500", 1)
    assert broadcaster.written == 4


async def test_events_at_one_instant_get_names_of_their_own(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    pod = await stored_pod(objects)
    broadcaster = EventBroadcaster(objects, clock)
    scheduler, kubelet = broadcaster.recorder(ev.SCHEDULER), broadcaster.recorder(ev.KUBELET)
    scheduler.record(pod, ev.NORMAL, ev.SCHEDULED, "Successfully assigned default/web-1 to n")
    kubelet.record(pod, ev.NORMAL, ev.CREATED, "Created container: main")
    kubelet.record(pod, ev.NORMAL, ev.STARTED, "Started container main")
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    names = [e.metadata.name for e in await events_in(objects)]
    nanos = int(T * 1e9)
    assert names == [f"web-1.{nanos:x}", f"web-1.{nanos + 1:x}", f"web-1.{nanos + 2:x}"]


async def test_an_event_about_a_cluster_object_lives_in_default(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    node = await objects.create(m.Node(metadata=m.ObjectMeta(name="node-1")))
    broadcaster = EventBroadcaster(objects, clock)
    broadcaster.recorder(ev.KUBELET, "node-1").record(node, ev.NORMAL, "Starting", "Starting.")
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    (event,) = await events_in(objects, None)
    assert (event.metadata.namespace, event.involved_object.namespace) == ("default", "")


# --- never blocking, never failing the caller -------------------------------------------------


async def test_a_full_queue_drops_instead_of_waiting(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    pod = await stored_pod(objects)
    broadcaster = EventBroadcaster(objects, clock, capacity=2)
    recorder = broadcaster.recorder(ev.KUBELET)
    for i in range(5):  # nothing drains the queue yet: record returns at once all the same
        recorder.record(pod, ev.NORMAL, ev.STARTED, f"Started container c{i}")
    assert (broadcaster.recorded, broadcaster.dropped, broadcaster.pending) == (2, 3, 2)
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    assert [e.message for e in await events_in(objects)] == [
        "Started container c0", "Started container c1"]


async def test_the_spam_filter_drops_a_flood_about_one_object(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    pod, other = await stored_pod(objects), await stored_pod(objects, "web-2")
    broadcaster = EventBroadcaster(objects, clock, spam=ev.SpamFilter(burst=3))
    recorder = broadcaster.recorder(ev.KUBELET)
    for i in range(10):
        recorder.record(pod, ev.WARNING, ev.UNHEALTHY, f"Readiness probe failed: {i}")
    recorder.record(other, ev.WARNING, ev.UNHEALTHY, "Readiness probe failed")
    assert (broadcaster.recorded, broadcaster.dropped) == (4, 7)
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    assert len(await events_in(objects)) == 4


async def test_record_never_raises(objects: ObjectStore, clock: FakeClock) -> None:
    class Unserved(m.KubeObject, frozen=True):
        pass

    broadcaster = EventBroadcaster(objects, clock)
    broadcaster.recorder("x").record(Unserved(), ev.NORMAL, "R", "m")  # no kind: not recorded
    assert (broadcaster.recorded, broadcaster.pending) == (0, 0)
    DISCARD.record(Unserved(), ev.NORMAL, "R", "m")


class Scripted(ObjectStore):
    """An ObjectStore whose next creates of Events raise the scripted errors, in order."""

    def __init__(self, clock: FakeClock, errors: list[Exception]) -> None:
        super().__init__(MemoryStore(), clock)
        self.errors = errors
        self.event_creates = 0

    async def create(self, obj: Any) -> Any:
        if isinstance(obj, m.Event):
            self.event_creates += 1
            if self.errors:
                raise self.errors.pop(0)
        return await super().create(obj)


async def test_a_failed_write_is_retried_then_dropped(
    clock: FakeClock, running: Any, eventually: Any,
) -> None:
    client = Scripted(clock, [Unavailable("store down")] * 4)
    pod = await client.create(make_pod("web-1"))
    broadcaster = EventBroadcaster(client, clock, attempts=3, retry_delay=0.0)
    recorder = broadcaster.recorder(ev.KUBELET)
    recorder.record(pod, ev.NORMAL, ev.STARTED, "Started container a")  # 3 failures: dropped
    recorder.record(pod, ev.NORMAL, ev.STARTED, "Started container b")  # 1 failure, then written
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    assert (broadcaster.failed, broadcaster.written, client.event_creates) == (1, 1, 5)
    assert [e.message for e in await events_in(client)] == ["Started container b"]


async def test_bad_input_is_dropped_at_once_and_a_name_collision_renamed(
    clock: FakeClock, running: Any, eventually: Any,
) -> None:
    client = Scripted(clock, [Forbidden("namespace default is being terminated"),
                              NotFound('namespaces "default" not found'),
                              AlreadyExists('events "web-1.x" already exists')])
    pod = await client.create(make_pod("web-1"))
    broadcaster = EventBroadcaster(client, clock, attempts=3, retry_delay=0.0)
    recorder = broadcaster.recorder(ev.KUBELET)
    for container in "abc":
        recorder.record(pod, ev.NORMAL, ev.STARTED, f"Started container {container}")
    async with running(broadcaster.run):
        await eventually(drained(broadcaster))
    assert (broadcaster.failed, broadcaster.written, client.event_creates) == (2, 1, 4)
    (event,) = await events_in(client)
    nanos = int(T * 1e9)
    assert (event.message, event.metadata.name) == ("Started container c",
                                                    f"web-1.{nanos + 3:x}")


async def test_a_repeat_of_a_deleted_event_is_written_anew(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    pod = await stored_pod(objects)
    broadcaster = EventBroadcaster(objects, clock)
    recorder = broadcaster.recorder(ev.KUBELET)
    async with running(broadcaster.run):
        recorder.record(pod, ev.WARNING, ev.BACK_OFF, "Back-off restarting")
        await eventually(drained(broadcaster))
        (first,) = await events_in(objects)
        await objects.delete(m.Event, "default", first.metadata.name)
        clock.advance(5)
        recorder.record(pod, ev.WARNING, ev.BACK_OFF, "Back-off restarting")
        await eventually(drained(broadcaster))
    (again,) = await events_in(objects)
    assert again.metadata.name != first.metadata.name
    assert (again.count, again.first_timestamp, again.last_timestamp) == (
        2, "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z")


# --- the Registry records ClusterIPAllocated --------------------------------------------------


@pytest.fixture
async def registry(objects: ObjectStore, clock: FakeClock) -> Registry:
    ranges = [ServiceRange.parse("10.96.0.0/12")]
    allocator = ClusterIPAllocator(objects, ranges, random.Random(3))
    reg = Registry(objects, allocator, service_cidrs=[r.cidr for r in ranges], clock=clock)
    await reg.bootstrap(api_port=7080)
    return reg


async def test_a_service_created_with_an_ip_gets_cluster_ip_allocated(
    registry: Registry,
) -> None:
    recorder = FakeRecorder()
    registry.events = recorder
    web = await registry.create(make_service("web"))
    requested = await registry.create(make_service("db", cluster_ip="10.96.0.50"))
    await registry.create(make_service("headless", cluster_ip="None"))
    await registry.create(make_service("ext", mutate=lambda s: msgspec.structs.replace(
        s, spec=m.ServiceSpec(type="ExternalName", external_name="example.com"))))
    await registry.create(make_service("dry"), dry_run=True)
    assert [(e.obj.metadata.name, e.type, e.reason, e.message) for e in recorder.events] == [
        ("web", "Normal", "ClusterIPAllocated", f"Cluster IP [IPv4]: {web.spec.cluster_ip}"),
        ("db", "Normal", "ClusterIPAllocated", "Cluster IP [IPv4]: 10.96.0.50"),
    ]
    assert recorder.events[0].obj == web  # the stored Service: its uid, its resourceVersion
    assert recorder.events[1].obj == requested


async def test_a_service_leaving_external_name_gets_cluster_ip_allocated(
    registry: Registry,
) -> None:
    ext = await registry.create(make_service("web", mutate=lambda s: msgspec.structs.replace(
        s, spec=m.ServiceSpec(type="ExternalName", external_name="example.com"))))
    recorder = FakeRecorder()
    registry.events = recorder
    spec = m.ServiceSpec(type="ClusterIP", ports=make_service("x").spec.ports)
    updated = await registry.update(msgspec.structs.replace(ext, spec=spec))
    assert recorder.messages() == [f"Cluster IP [IPv4]: {updated.spec.cluster_ip}"]
    await registry.update(msgspec.structs.replace(updated, metadata=msgspec.structs.replace(
        updated.metadata, labels={"a": "b"})))
    assert len(recorder.events) == 1  # the addresses it keeps are no news


async def test_events_through_the_registry_are_validated_and_listed(
    registry: Registry, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    broadcaster = EventBroadcaster(registry, clock)
    registry.events = broadcaster.recorder(ev.ALLOCATOR)
    async with running(broadcaster.run):
        web = await registry.create(make_service("web"))
        await eventually(drained(broadcaster))
    events, _ = await registry.list(m.Event, "default")
    (event,) = [e for e in events if e.involved_object.name == "web"]
    assert event.involved_object.uid == web.metadata.uid
    assert (event.reason, event.source.component) == ("ClusterIPAllocated",
                                                      "ipallocator-controller")


# --- the event TTL ----------------------------------------------------------------------------


async def write_event(objects: ObjectStore, pod: m.Pod, message: str, now: float) -> m.Event:
    e = ev.new_event(ev.reference(pod), type_=ev.NORMAL, reason="Started", message=message,
                     source=m.EventSource(component="kubelet"), now=now)
    return await objects.create(msgspec.structs.replace(e, metadata=msgspec.structs.replace(
        e.metadata, name=f"{pod.metadata.name}.{message}")))


async def test_expired_events_are_deleted(objects: ObjectStore, clock: FakeClock) -> None:
    pod = await stored_pod(objects)
    await write_event(objects, pod, "old", T)
    await write_event(objects, pod, "recent", T + 1800)
    repeated = await write_event(objects, pod, "repeated", T)
    await objects.update(msgspec.structs.replace(
        repeated, count=2, last_timestamp="2026-01-01T00:59:00Z"))
    clock.advance(3600)
    assert await expire_events(objects, clock, ttl=3600) == 0  # not more than an hour yet
    clock.advance(1)
    assert await expire_events(objects, clock, ttl=3600) == 1
    assert [e.message for e in await events_in(objects)] == ["recent", "repeated"]
    clock.advance(3600)
    assert await expire_events(objects, clock, ttl=3600) == 2
    assert await events_in(objects) == []


class RepeatedMeanwhile(ObjectStore):
    """Between the TTL's read and its delete, the event it reads is repeated (updated)."""

    async def delete(self, type_: Any, namespace: str, name: str, **kw: Any) -> Any:
        current = await self.get(type_, namespace, name)
        await self.update(msgspec.structs.replace(current, count=current.count + 1))
        return await super().delete(type_, namespace, name, **kw)


async def test_an_event_repeated_since_it_was_read_is_kept(clock: FakeClock) -> None:
    objects = RepeatedMeanwhile(MemoryStore(), clock)
    pod = await stored_pod(objects)
    await write_event(objects, pod, "old", T)
    clock.advance(7200)
    assert await expire_events(objects, clock, ttl=3600) == 0
    (kept,) = await events_in(objects)
    assert kept.count == 2
