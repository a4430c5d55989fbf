"""The proxy's control loop over real informers on an in-memory store, with a recording fake
proxier: first sync after the full list, bursts coalesce, failures retry in full."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from clusterip.control.informer import InformerFactory
from clusterip.core import model as m
from clusterip.core.servicemap import ServicePortName, Snapshot
from clusterip.proxy.controller import ProxyController
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_endpoint_slice, make_service, port

pytestmark = pytest.mark.anyio

WEB = ServicePortName("default", "web", "http", "TCP")
Eventually = Callable[..., Awaitable[Any]]


class RecordingProxier:
    """A fake `Proxier`: keeps every snapshot; fails the next `failures` syncs."""

    def __init__(self) -> None:
        self.snapshots: list[Snapshot] = []
        self.failures = 0

    async def sync(self, snapshot: Snapshot) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the kernel said no")
        self.snapshots.append(snapshot)


def web() -> m.Service:
    return make_service("web", cluster_ip="10.96.0.20", ports=[port(80, 8080, name="http")])


def web_slice(*ips: str) -> m.EndpointSlice:
    return make_endpoint_slice("web-abc", service="web", addresses=ips,
                               ports=[m.EndpointPort(name="http", protocol="TCP", port=8080)])


@contextlib.asynccontextmanager
async def controller_running(objects: ObjectStore, proxier: RecordingProxier
                             ) -> AsyncIterator[ProxyController]:
    informers = InformerFactory(objects)
    controller = ProxyController(informers)
    async with asyncio.TaskGroup() as tasks:
        runs = [tasks.create_task(informers.run()), tasks.create_task(controller.run(proxier))]
        try:
            yield controller
        finally:
            for task in runs:
                task.cancel()


async def test_the_first_sync_holds_everything_listed(
    objects: ObjectStore, eventually: Eventually
) -> None:
    await objects.create(web())
    await objects.create(web_slice("10.244.0.2", "10.244.0.3"))
    proxier = RecordingProxier()
    async with controller_running(objects, proxier) as controller:
        await eventually(lambda: bool(proxier.snapshots))
        first = proxier.snapshots[0]
        assert first.changed == {WEB}
        assert [e.ip for e in first.ports[WEB].endpoints] == ["10.244.0.2", "10.244.0.3"]
        assert controller.synced.is_set()


async def test_an_empty_cluster_still_gets_a_first_sync(
    objects: ObjectStore, eventually: Eventually
) -> None:
    proxier = RecordingProxier()
    async with controller_running(objects, proxier):
        await eventually(lambda: bool(proxier.snapshots))
        assert proxier.snapshots[0].ports == {}


async def test_endpoint_changes_reach_the_proxier_and_status_writes_do_not(
    objects: ObjectStore, eventually: Eventually
) -> None:
    created = await objects.create(web())
    await objects.create(web_slice("10.244.0.2"))
    proxier = RecordingProxier()
    async with controller_running(objects, proxier) as controller:
        await eventually(lambda: bool(proxier.snapshots))
        current = await objects.get(m.EndpointSlice, "default", "web-abc")
        await objects.update(msgspec.structs.replace(current, endpoints=web_slice(
            "10.244.0.9").endpoints))
        await eventually(lambda: len(proxier.snapshots) == 2)
        assert proxier.snapshots[1].changed == {WEB}
        assert [e.ip for e in proxier.snapshots[1].ports[WEB].endpoints] == ["10.244.0.9"]
        assert len(controller.latencies) == 2

        await objects.update(msgspec.structs.replace(created, status=m.ServiceStatus()))
        await objects.create(make_service("other", cluster_ip="10.96.0.21"))  # a marker
        await eventually(lambda: len(proxier.snapshots) == 3)
        assert {n.name for n in proxier.snapshots[2].changed} == {"other"}


async def test_a_failed_sync_is_retried_in_full(
    objects: ObjectStore, eventually: Eventually
) -> None:
    await objects.create(web())
    proxier = RecordingProxier()
    proxier.failures = 2
    async with controller_running(objects, proxier) as controller:
        await eventually(lambda: bool(proxier.snapshots), timeout=5)
        assert controller.failures == 2
        assert proxier.snapshots[0].changed == {WEB}  # the retry is a full one
