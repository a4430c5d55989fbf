"""control.endpoints: the EndpointsController end to end over ObjectStore(MemoryStore()).

Covered: slices appear for a service with ready pods; readiness changes, pod deletion and
relabelling update them; a deleted service's slices are deleted (also when it vanished while
the controller was down); a slice deleted by someone else comes back; user slices of a
selector-less service are never touched; a write Conflict is retried; one pod change among 250
pods writes one slice; the trigger-time annotation; the pod→service index. The planning rules
themselves are tested in tests/core/test_endpoints_plan.py.

Conventions: services select `app=web` in "default"; pods get PLAN.pod_ip(n); new slice names
come from a counter (`web-00001`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from clusterip.control.endpoints import EndpointsController, random_suffix
from clusterip.core import model as m
from clusterip.core.endpoints import ANNOTATION_TRIGGER_TIME, LABEL_SERVICE_NAME
from clusterip.core.errors import Conflict
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import (
    PLAN,
    make_endpoint_slice,
    make_pod,
    make_service,
    port,
    with_ready,
)
from clusterip.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

WEB = {"app": "web"}


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):05d}"


@pytest.fixture
def controller(objects: ObjectStore, clock: FakeClock) -> EndpointsController:
    return EndpointsController(objects, clock=clock, new_suffix=counter())


async def slices_of(objects: ObjectStore, service: str = "web") -> list[m.EndpointSlice]:
    items, _ = await objects.list(m.EndpointSlice, "default")
    return sorted(
        (s for s in items if (s.metadata.labels or {}).get(LABEL_SERVICE_NAME) == service),
        key=lambda s: s.metadata.name,
    )


async def endpoints_of(objects: ObjectStore, service: str = "web") -> dict[str, bool | None]:
    """IP → ready, over all the service's slices."""
    return {
        e.addresses[0]: e.conditions.ready
        for sl in await slices_of(objects, service)
        for e in sl.endpoints
    }


def ip(n: int) -> str:
    return PLAN.pod_ip(n)


async def add_pods(objects: ObjectStore, *numbers: int, ready: bool = True,
                   labels: dict[str, str] | None = None) -> list[m.Pod]:
    return [
        await objects.create(make_pod(f"web-{n}", labels=labels or WEB, ip=ip(n), ready=ready))
        for n in numbers
    ]


async def test_slices_follow_pods_readiness_deletion_and_the_service(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
) -> None:
    await objects.create(make_service("web", selector=WEB, ports=[port(80, 8080)]))
    pods = await add_pods(objects, 1, 2, 3)
    async with running(controller.run):
        await eventually(controller.ready.is_set)

        expected = {ip(1): True, ip(2): True, ip(3): True}
        await eventually(lambda: endpoints_of(objects), message="slice created")
        assert await endpoints_of(objects) == expected
        (sl,) = await slices_of(objects)
        assert sl.metadata.name == "web-00001"
        assert sl.ports == (m.EndpointPort(name="", protocol="TCP", port=8080),)

        await objects.update(with_ready(pods[1], False))
        expected[ip(2)] = False
        await eventually(lambda: _equals(endpoints_of(objects), expected), message="not ready")

        await objects.delete(m.Pod, "default", "web-3")
        del expected[ip(3)]
        await eventually(lambda: _equals(endpoints_of(objects), expected), message="pod deleted")

        await objects.delete(m.Service, "default", "web")
        await eventually(lambda: _equals(slices_of(objects), []), message="slices deleted")


async def _equals(value: Any, expected: Any) -> bool:
    return bool((await value) == expected)


async def test_existing_state_is_reconciled_at_start(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
    settled: Any,
) -> None:
    # A managed slice whose service vanished while the controller was down, and a user's slice.
    orphan = make_endpoint_slice("gone-abcde", service="gone", addresses=[ip(9)], mutate=lambda s:
                                 msgspec.structs.replace(s, metadata=msgspec.structs.replace(
                                     s.metadata, labels={
                                         **(s.metadata.labels or {}),
                                         "endpointslice.kubernetes.io/managed-by":
                                             "endpointslice-controller.k8s.io"})))
    await objects.create(orphan)
    manual = await objects.create(make_endpoint_slice("ext-1", service="ext", addresses=[ip(7)]))
    await objects.create(make_service("ext", ports=[port(80)]))  # no selector
    await objects.create(make_service("web", selector=WEB))
    await add_pods(objects, 1)
    async with running(controller.run):
        await eventually(lambda: _equals(endpoints_of(objects), {ip(1): True}))
        await eventually(lambda: _equals(slices_of(objects, "gone"), []))
        await eventually(lambda: settled(objects, controller.slices, queues=[controller.queue]))
        assert await slices_of(objects, "ext") == [manual]  # untouched


async def test_relabelled_pod_moves_between_services(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
) -> None:
    await objects.create(make_service("web", selector=WEB))
    await objects.create(make_service("api", selector={"app": "api"}))
    (pod, _) = await add_pods(objects, 1, 2)
    async with running(controller.run):
        await eventually(lambda: _equals(endpoints_of(objects), {ip(1): True, ip(2): True}))
        await objects.update(msgspec.structs.replace(
            pod, metadata=msgspec.structs.replace(pod.metadata, labels={"app": "api"})))
        await eventually(lambda: _equals(endpoints_of(objects), {ip(2): True}))
        await eventually(lambda: _equals(endpoints_of(objects, "api"), {ip(1): True}))


async def test_service_created_after_its_pods_and_selector_changes(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
) -> None:
    await add_pods(objects, 1)
    await add_pods(objects, 2, labels={"app": "web", "track": "canary"})
    async with running(controller.run):
        await eventually(controller.ready.is_set)
        svc = await objects.create(make_service("web", selector=WEB))
        await eventually(lambda: _equals(endpoints_of(objects), {ip(1): True, ip(2): True}))
        await objects.update(msgspec.structs.replace(svc, spec=msgspec.structs.replace(
            svc.spec, selector={"app": "web", "track": "canary"})))
        await eventually(lambda: _equals(endpoints_of(objects), {ip(2): True}))


async def test_a_slice_deleted_by_someone_else_comes_back(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
) -> None:
    await objects.create(make_service("web", selector=WEB))
    await add_pods(objects, 1)
    async with running(controller.run):
        (sl,) = await eventually(lambda: slices_of(objects))
        await objects.delete(m.EndpointSlice, "default", sl.metadata.name)
        (again,) = await eventually(lambda: slices_of(objects))
        assert again.metadata.name != sl.metadata.name
        assert again.endpoints == sl.endpoints


async def test_one_pod_change_among_250_writes_one_slice(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
    settled: Any, memory: Any,
) -> None:
    await objects.create(make_service("web", selector=WEB))
    pods = await add_pods(objects, *range(250))
    async with running(controller.run):
        await eventually(lambda: _equals(_lengths(objects), [100, 100, 50]))
        await eventually(lambda: settled(objects, controller.slices, controller.pods,
                                         queues=[controller.queue]))
        writes = controller.writes
        await objects.update(with_ready(pods[120], False))
        await eventually(lambda: _equals(_ready_of(objects, ip(120)), False))
        await eventually(lambda: settled(objects, controller.slices, controller.pods,
                                         queues=[controller.queue]))
        assert controller.writes == writes + 1


async def _lengths(objects: ObjectStore) -> list[int]:
    return sorted((len(s.endpoints) for s in await slices_of(objects)), reverse=True)


async def _ready_of(objects: ObjectStore, address: str) -> bool | None:
    return (await endpoints_of(objects)).get(address)


async def test_conflicting_write_is_retried(
    objects: ObjectStore, clock: FakeClock, running: Any, eventually: Any,
) -> None:
    class ConflictOnce(ObjectStore):
        conflicts = 1

        async def update(self, obj: Any, *, old: Any = None) -> Any:
            if isinstance(obj, m.EndpointSlice) and self.conflicts:
                self.conflicts -= 1
                raise Conflict("someone else wrote it")
            return await super().update(obj, old=old)

    client = ConflictOnce(objects.store, clock)
    controller = EndpointsController(client, clock=clock, new_suffix=counter())
    await objects.create(make_service("web", selector=WEB))
    (pod,) = await add_pods(objects, 1)
    async with running(controller.run):
        await eventually(lambda: _equals(endpoints_of(objects), {ip(1): True}))
        await objects.update(with_ready(pod, False))
        await eventually(lambda: _equals(endpoints_of(objects), {ip(1): False}))
    assert client.conflicts == 0
    assert controller.queue.retries >= 1


async def test_written_slices_carry_the_trigger_time(
    objects: ObjectStore, controller: EndpointsController, clock: FakeClock, running: Any,
    eventually: Any,
) -> None:
    await objects.create(make_service("web", selector=WEB))
    async with running(controller.run):
        await eventually(controller.ready.is_set)
        clock.advance(1.25)
        await add_pods(objects, 1)
        (sl,) = await eventually(lambda: slices_of(objects))
    assert (sl.metadata.annotations or {})[ANNOTATION_TRIGGER_TIME] == \
        "2026-01-01T00:00:01.250000Z"


async def test_pod_to_service_lookup_uses_the_index(
    objects: ObjectStore, controller: EndpointsController, running: Any, eventually: Any,
) -> None:
    await objects.create(make_service("web", selector={"app": "web", "tier": "front"}))
    await objects.create(make_service("all-web", selector={"app": "web"}))
    await objects.create(make_service("other", namespace="prod", selector={"app": "web"}))
    await objects.create(make_service("bare"))
    async with running(controller.run):
        await eventually(controller.ready.is_set)
        found = sorted(controller.services_for("default", {"app": "web", "tier": "front"}))
        assert found == ["default/all-web", "default/web"]
        assert list(controller.services_for("default", {"tier": "front"})) == []
        assert list(controller.services_for("default", None)) == []


def test_random_suffix() -> None:
    suffix = random_suffix()
    assert len(suffix) == 5
    assert set(suffix) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_no_duplicate_slice_while_the_slice_cache_lags_behind(
    objects: ObjectStore, clock: FakeClock, held: Any, running: Any, eventually: Any,
    settled: Any,
) -> None:
    client = held(m.EndpointSlice)
    controller = EndpointsController(client, clock=clock, new_suffix=counter())
    await objects.create(make_service("web", selector=WEB))
    async with running(controller.run):
        await eventually(controller.ready.is_set)
        client.hold = True  # the controller's slice cache stops here
        await add_pods(objects, 1)
        await eventually(lambda: client.creates.get("EndpointSlice") == 1)
        syncs = controller.syncs
        await add_pods(objects, 2)  # a sync on the lagging cache would create a second slice
        await eventually(lambda: controller.syncs > syncs)
        client.release()

        await eventually(lambda: _equals(endpoints_of(objects), {ip(1): True, ip(2): True}))
        await eventually(lambda: settled(objects, controller.slices, queues=[controller.queue]))
        assert len(await slices_of(objects)) == 1
        assert client.creates == {"EndpointSlice": 1}
