"""control.deployments: the DeploymentController end to end over ObjectStore(MemoryStore()).

Covered: scale up (exactly `replicas` pods, never more, even with the cache racing the writes),
status as pods turn Ready, scale down, replacement of a deleted and of a failed pod, a rolling
update driven by readiness, and deletion of the pods of a deleted Deployment. The rollout rules
themselves are tested in tests/core/test_deployments_plan.py.

There is no node agent here: the test plays it, marking pods Running and Ready.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from clusterip.control.deployments import DeploymentController
from clusterip.core import model as m
from clusterip.core.deployments import LABEL_POD_TEMPLATE_HASH, template_hash
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_deployment, with_ready
from clusterip.testing.clock import FakeClock

pytestmark = pytest.mark.anyio


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):05d}"


@pytest.fixture
def controller(objects: ObjectStore, clock: FakeClock) -> DeploymentController:
    return DeploymentController(objects, clock=clock, new_suffix=counter())


async def pods_of(objects: ObjectStore) -> list[m.Pod]:
    pods, _ = await objects.list(m.Pod, "default")
    return sorted(pods, key=lambda p: p.metadata.name)


async def count(objects: ObjectStore, n: int) -> bool:
    return len(await pods_of(objects)) == n


async def make_ready(objects: ObjectStore, *, only_hash: str | None = None) -> None:
    """Play the node agent: every pod (of `only_hash`, if given) becomes Running and Ready."""
    for pod in await pods_of(objects):
        if only_hash and (pod.metadata.labels or {}).get(LABEL_POD_TEMPLATE_HASH) != only_hash:
            continue
        if not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions):
            await objects.update(with_ready(pod, True, ip="10.244.0.50"))


async def status_of(objects: ObjectStore, name: str = "web") -> m.DeploymentStatus:
    return (await objects.get(m.Deployment, "default", name)).status


async def test_scale_up_status_scale_down_and_replacement(
    objects: ObjectStore, controller: DeploymentController, running: Any, eventually: Any,
    settled: Any,
) -> None:
    dep = await objects.create(make_deployment("web", replicas=3))
    idle = lambda: settled(objects, controller.pods, controller.deployments,  # noqa: E731
                           queues=[controller.queue])
    async with running(controller.run):
        await eventually(lambda: count(objects, 3), message="scaled up")
        await eventually(idle)
        pods = await pods_of(objects)
        assert len(pods) == 3  # and no more, once everything has settled
        h = template_hash(dep.spec.template)
        for pod in pods:
            assert pod.metadata.name.startswith(f"web-{h}-")
            assert pod.metadata.owner_references[0].uid == dep.metadata.uid
            assert pod.metadata.labels == {"app": "web", LABEL_POD_TEMPLATE_HASH: h}

        await make_ready(objects)

        async def all_ready() -> bool:
            s = await status_of(objects)
            return (s.replicas, s.ready_replicas, s.available_replicas, s.updated_replicas,
                    s.observed_generation) == (3, 3, 3, 3, 1)

        await eventually(all_ready, message="status")
        conditions = {c.type: (c.status, c.reason) for c in (await status_of(objects)).conditions}
        assert conditions == {
            "Available": ("True", "MinimumReplicasAvailable"),
            "Progressing": ("True", "NewReplicaSetAvailable"),
        }
        await asyncio.wait_for(controller.synced(), 1.0)

        dep = await objects.get(m.Deployment, "default", "web")
        dep = await objects.update(msgspec.structs.replace(
            dep, spec=msgspec.structs.replace(dep.spec, replicas=1)))
        await eventually(lambda: count(objects, 1), message="scaled down")

        (survivor,) = await pods_of(objects)
        await objects.delete(m.Pod, "default", survivor.metadata.name)
        await eventually(lambda: _names_differ(objects, {survivor.metadata.name}),
                         message="deleted pod replaced")
        await eventually(idle)
        assert len(await pods_of(objects)) == 1


async def _names_differ(objects: ObjectStore, old: set[str]) -> bool:
    names = {p.metadata.name for p in await pods_of(objects)}
    return len(names) == 1 and not names & old


async def test_failed_pod_is_replaced(
    objects: ObjectStore, controller: DeploymentController, running: Any, eventually: Any,
) -> None:
    await objects.create(make_deployment("web", replicas=1))
    async with running(controller.run):
        (pod,) = await eventually(lambda: pods_of(objects))
        await objects.update(msgspec.structs.replace(
            pod, status=msgspec.structs.replace(pod.status, phase="Failed")))
        await eventually(lambda: _names_differ(objects, {pod.metadata.name}))


async def test_rolling_update_replaces_pods_as_new_ones_become_ready(
    objects: ObjectStore, controller: DeploymentController, running: Any, eventually: Any,
) -> None:
    v1 = await objects.create(make_deployment("web", replicas=2))
    async with running(controller.run):
        await eventually(lambda: count(objects, 2))
        await make_ready(objects)
        v1 = await objects.get(m.Deployment, "default", "web")
        template = v1.spec.template
        container = msgspec.structs.replace(template.spec.containers[0], command=("sleep", "2d"))
        template = msgspec.structs.replace(
            template, spec=msgspec.structs.replace(template.spec, containers=(container,)))
        await objects.update(msgspec.structs.replace(
            v1, spec=msgspec.structs.replace(v1.spec, template=template)))
        new_hash = template_hash(template)

        async def rolled_out() -> bool:
            pods = await pods_of(objects)
            hashes = [(p.metadata.labels or {}).get(LABEL_POD_TEMPLATE_HASH) for p in pods]
            if hashes == [new_hash, new_hash]:
                return True
            await make_ready(objects, only_hash=new_hash)  # the node agent starts new pods
            return False

        await eventually(rolled_out, timeout=5.0, message="rollout")
        await eventually(lambda: _updated(objects, 2))


async def _updated(objects: ObjectStore, n: int) -> bool:
    s = await status_of(objects)
    return s.updated_replicas == n and s.replicas == n


async def test_pods_of_a_deleted_deployment_are_deleted(
    objects: ObjectStore, controller: DeploymentController, running: Any, eventually: Any,
) -> None:
    await objects.create(make_deployment("web", replicas=2))
    async with running(controller.run):
        await eventually(lambda: count(objects, 2))
        await objects.delete(m.Deployment, "default", "web")
        await eventually(lambda: count(objects, 0))


async def test_no_extra_pods_while_the_pod_cache_lags_behind(
    objects: ObjectStore, clock: FakeClock, held: Any, running: Any, eventually: Any,
    settled: Any,
) -> None:
    client = held(m.Pod)
    controller = DeploymentController(client, clock=clock, new_suffix=counter())
    idle = lambda: settled(objects, controller.pods, controller.deployments,  # noqa: E731
                           queues=[controller.queue])
    await objects.create(make_deployment("web", replicas=1))
    async with running(controller.run):
        await eventually(lambda: count(objects, 1))
        await eventually(idle)

        client.hold = True  # the controller's pod cache stops here
        dep = await objects.get(m.Deployment, "default", "web")
        dep = await objects.update(msgspec.structs.replace(
            dep, spec=msgspec.structs.replace(dep.spec, replicas=3)))
        await eventually(lambda: count(objects, 3))
        await eventually(lambda: client.held_events > 0)
        syncs = controller.syncs
        dep = await objects.get(m.Deployment, "default", "web")  # its status was written
        await objects.update(msgspec.structs.replace(  # another sync, on the lagging cache
            dep, spec=msgspec.structs.replace(dep.spec, min_ready_seconds=1)))
        await eventually(lambda: controller.syncs > syncs)
        client.release()

        await eventually(idle)
        assert await count(objects, 3)
        assert client.creates == {"Pod": 3}
