"""Shared informers: two controllers on one factory list and cache each kind once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from clusterip.control.deployments import DeploymentController
from clusterip.control.endpoints import EndpointsController
from clusterip.control.informer import InformerFactory
from clusterip.core import model as m
from clusterip.core.defaults import apply_defaults
from clusterip.core.projections import slim_pod
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_deployment, make_pod, make_service
from clusterip.testing.clock import FakeClock

pytestmark = pytest.mark.anyio


async def test_controllers_share_one_pod_cache_of_slim_pods(
    objects: ObjectStore, clock: FakeClock, running: Callable[..., Any],
    eventually: Callable[..., Awaitable[Any]],
) -> None:
    await objects.create(make_service("web", selector={"app": "web"}))
    await objects.create(apply_defaults(make_deployment("web", replicas=2)))
    await objects.create(make_pod("loose", labels={"app": "web"}, ip="10.244.0.9", ready=True))
    factory = InformerFactory(objects, transforms={m.Pod: slim_pod})
    endpoints = EndpointsController(objects, clock=clock, informers=factory)
    deployments = DeploymentController(objects, clock=clock, informers=factory)
    assert endpoints.pods is deployments.pods
    async with running(factory.run, endpoints.run, deployments.run):
        await endpoints.synced()
        await deployments.synced()
        # the deployment controller's pods reach the shared cache, and the loose pod a slice
        await eventually(lambda: len(endpoints.pods) == 3)
        await eventually(lambda: len(endpoints.slices) == 1)
    assert endpoints.pods.lists == 1
    assert all(p.metadata.annotations is None for p in map(endpoints.pods.get, endpoints.pods))


async def test_an_informer_cannot_be_added_after_the_factory_runs(
    objects: ObjectStore, running: Callable[..., Any],
    eventually: Callable[..., Awaitable[Any]],
) -> None:
    factory = InformerFactory(objects)
    services = factory.informer(m.Service)
    async with running(factory.run):
        await eventually(services.has_synced.is_set)
        with pytest.raises(RuntimeError):
            factory.informer(m.Pod)
