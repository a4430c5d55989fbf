"""The events the controllers record, through a FakeRecorder (which checks that the API would
accept each): the endpoints controller on the Service when an endpoint leaves or stops being
ready, the deployment controller on the Deployment for each pod it creates and deletes, the
scheduler on the pod it binds. Each test also checks that the controller did its job as it
does without a recorder: recording is a side effect, never a change of plan.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest

from clusterip.control.deployments import DeploymentController
from clusterip.control.endpoints import EndpointsController
from clusterip.control.scheduler import Scheduler
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import Forbidden
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import (
    PLAN,
    make_deployment,
    make_pod,
    make_service,
    port,
    with_ready,
)
from clusterip.testing.clock import FakeClock
from clusterip.testing.events import FakeRecorder, RecordedEvent

pytestmark = pytest.mark.anyio

WEB = {"app": "web"}
Eventually = Callable[..., Awaitable[Any]]


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):05d}"


def summary(events: list[RecordedEvent]) -> list[tuple[str, str, str, str]]:
    return [(e.obj.kind or type(e.obj).KIND, e.type, e.reason, e.message) for e in events]


def typed_as_the_table_says(events: list[RecordedEvent]) -> bool:
    return all(ev.REASONS[e.reason].type == e.type for e in events)


# --- endpoints --------------------------------------------------------------------------------


async def addresses(objects: ObjectStore) -> dict[str, bool | None]:
    slices, _ = await objects.list(m.EndpointSlice, "default")
    return {a: e.conditions.ready for sl in slices for e in sl.endpoints for a in e.addresses}


async def test_the_service_hears_of_each_endpoint_it_loses(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Eventually,
) -> None:
    recorder = FakeRecorder()
    controller = EndpointsController(objects, clock=clock, new_suffix=counter(),
                                     events=recorder)
    service = await objects.create(make_service("web", selector=WEB, ports=[port(80)]))
    pods = [await objects.create(make_pod(f"web-{n}", labels=WEB, ip=PLAN.pod_ip(n),
                                          ready=True)) for n in (1, 2, 3)]
    async with running(controller.run):
        await eventually(lambda: addresses(objects), message="slices written")
        await eventually(lambda: len(controller.queue) == 0 and controller.queue.idle)
        assert recorder.events == []  # endpoints that arrive are no news

        await objects.update(with_ready(pods[1], False))
        await eventually(lambda: recorder.events)
        await objects.update(msgspec.structs.replace(pods[2], metadata=msgspec.structs.replace(
            pods[2].metadata, deletion_timestamp="2026-01-01T00:00:00Z")))
        await eventually(lambda: len(recorder.events) == 2)
        await objects.delete(m.Pod, "default", "web-1")
        await eventually(lambda: len(recorder.events) == 3)
        await eventually(lambda: addresses(objects))
        assert await addresses(objects) == {PLAN.pod_ip(2): False, PLAN.pod_ip(3): False}
    assert summary(recorder.events) == [
        ("Service", "Warning", "EndpointNotReady",
         f"Endpoint {PLAN.pod_ip(2)} (pod web-2) is not ready"),
        ("Service", "Normal", "EndpointTerminating",
         f"Endpoint {PLAN.pod_ip(3)} (pod web-3) is terminating"),
        ("Service", "Normal", "EndpointRemoved", f"Removed endpoint {PLAN.pod_ip(1)} (pod web-1)"),
    ]
    assert all(e.obj.metadata.uid == service.metadata.uid for e in recorder.events)
    assert typed_as_the_table_says(recorder.events)


async def test_a_deleted_service_gets_no_events_for_its_slices(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Eventually,
) -> None:
    recorder = FakeRecorder()
    controller = EndpointsController(objects, clock=clock, new_suffix=counter(),
                                     events=recorder)
    await objects.create(make_service("web", selector=WEB, ports=[port(80)]))
    await objects.create(make_pod("web-1", labels=WEB, ip=PLAN.pod_ip(1), ready=True))
    async with running(controller.run):
        await eventually(lambda: addresses(objects))
        await objects.delete(m.Service, "default", "web")
        await eventually(lambda: _no_slices(objects), message="slices deleted")
    assert recorder.events == []


async def _no_slices(objects: ObjectStore) -> bool:
    slices, _ = await objects.list(m.EndpointSlice, "default")
    return not slices


# --- deployments ------------------------------------------------------------------------------


async def test_each_pod_created_and_deleted_is_recorded_on_the_deployment(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Eventually,
) -> None:
    recorder = FakeRecorder()
    controller = DeploymentController(objects, clock=clock, new_suffix=counter(),
                                      events=recorder)
    dep = await objects.create(make_deployment("web", replicas=2))

    async def pod_names() -> list[str]:
        pods, _ = await objects.list(m.Pod, "default")
        return sorted(p.metadata.name for p in pods)

    async with running(controller.run):
        await eventually(lambda: _count(pod_names, 2))
        created = await pod_names()
        live = await objects.get(m.Deployment, "default", "web")
        await objects.update(msgspec.structs.replace(
            live, spec=msgspec.structs.replace(live.spec, replicas=1)))
        await eventually(lambda: _count(pod_names, 1))
        await eventually(lambda: len(recorder.events) == 3)
    (deleted,) = set(created) - set(await pod_names())
    assert summary(recorder.events) == [
        ("Deployment", "Normal", "SuccessfulCreate", f"Created pod: {created[0]}"),
        ("Deployment", "Normal", "SuccessfulCreate", f"Created pod: {created[1]}"),
        ("Deployment", "Normal", "SuccessfulDelete", f"Deleted pod: {deleted}"),
    ]
    assert all(e.obj.metadata.uid == dep.metadata.uid for e in recorder.events)
    assert typed_as_the_table_says(recorder.events)


async def _count(names: Callable[[], Awaitable[list[str]]], n: int) -> bool:
    return len(await names()) == n


class RefusesPods(ObjectStore):
    """Pod creates fail, as when a name is taken or a namespace is being deleted."""

    async def create(self, obj: Any) -> Any:
        if isinstance(obj, m.Pod):
            raise Forbidden("unable to create new content in namespace default because it is "
                            "being terminated")
        return await super().create(obj)


async def test_a_failed_create_is_recorded(
    clock: FakeClock, memory: Any, running: Any, eventually: Eventually,
) -> None:
    objects = RefusesPods(memory, clock)
    recorder = FakeRecorder()
    controller = DeploymentController(objects, clock=clock, new_suffix=counter(),
                                      events=recorder)
    await objects.create(make_deployment("web", replicas=1))
    async with running(controller.run):
        await eventually(lambda: recorder.events)
    first = recorder.events[0]
    assert (first.type, first.reason) == ("Warning", "FailedCreate")
    assert first.message == ("Error creating: unable to create new content in namespace "
                             "default because it is being terminated")


# --- scheduler --------------------------------------------------------------------------------


def ready_node(name: str) -> m.Node:
    return m.Node(metadata=m.ObjectMeta(name=name), status=m.NodeStatus(
        conditions=(m.Condition(type="Ready", status="True"),)))


async def test_the_pod_hears_where_it_was_scheduled(
    objects: ObjectStore, running: Any, eventually: Eventually,
) -> None:
    recorder = FakeRecorder()
    scheduler = Scheduler(objects, events=recorder)
    pod = await objects.create(make_pod("p1", node=""))
    async with running(scheduler.run):
        await scheduler.synced()
        await eventually(lambda: scheduler.queue.idle)
        assert recorder.events == []  # waiting for a node is no event (see control.scheduler)
        await objects.create(ready_node("node-1"))
        await eventually(lambda: recorder.of("Scheduled"))
    (scheduled,) = recorder.events
    assert (scheduled.type, scheduled.message) == (
        "Normal", "Successfully assigned default/p1 to node-1")
    assert scheduled.obj.spec.node_name == "node-1"  # the bound pod, as written
    assert scheduled.obj.metadata.uid == pod.metadata.uid
    assert (await objects.get(m.Pod, "default", "p1")).spec.node_name == "node-1"
