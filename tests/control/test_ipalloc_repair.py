"""The ClusterIP repair pass over a real object store, with time moved by hand.

Services are written straight to the store (as a crash, a restore or an operator would leave
them), IPAddresses either by the allocator or by hand; then one `repair` pass runs.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TypeVar

import msgspec
import pytest

from clusterip.control.ipalloc_repair import repair
from clusterip.core.errors import Invalid
from clusterip.core.ipalloc import ServiceRange, ip_address_object, parse_ip, service_ref
from clusterip.core.model import IPAddress, KubeObject, Service
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_service
from clusterip.testing.clock import FakeClock

pytestmark = pytest.mark.anyio

T = TypeVar("T", bound=KubeObject)

V4 = ServiceRange.parse("10.96.0.0/12")
RANGES = (V4,)


def holding(name: str, ip: str, namespace: str = "default") -> Service:
    svc = make_service(name, namespace=namespace, cluster_ip=ip)
    return msgspec.structs.replace(svc, spec=msgspec.structs.replace(svc.spec, cluster_ips=(ip,)))


async def record(objects: ObjectStore, ip: str, parent: str) -> IPAddress:
    addr = parse_ip(ip)
    assert addr is not None
    return await objects.create(ip_address_object(addr, service_ref("default", parent)))


async def stored(objects: ObjectStore) -> dict[str, IPAddress]:
    items, _ = await objects.list(IPAddress)
    return {a.metadata.name: a for a in items}


async def test_consistent_store_needs_nothing(objects: ObjectStore, clock: FakeClock) -> None:
    alloc = ClusterIPAllocator(objects, RANGES, random.Random(1))
    for name in ("web", "api"):
        await objects.create(await alloc.allocate(make_service(name)))
    await objects.create(make_service("db", cluster_ip="None"))
    report = await repair(objects, RANGES, clock=clock)
    assert report.findings == () and report.plan.changes == 0
    assert (report.created, report.deleted, report.reparented) == ((), (), ())


async def test_missing_ipaddress_is_recreated(objects: ObjectStore, clock: FakeClock) -> None:
    alloc = ClusterIPAllocator(objects, RANGES, random.Random(1))
    web = await objects.create(await alloc.allocate(make_service("web")))
    await objects.delete(IPAddress, "", web.spec.cluster_ip)  # force-deleted by hand
    report = await repair(objects, RANGES, clock=clock)
    assert report.created == (web.spec.cluster_ip,)
    assert [f.reason for f in report.findings] == ["ClusterIPNotAllocated"]
    obj = (await stored(objects))[web.spec.cluster_ip]
    assert obj.spec.parent_ref == service_ref("default", "web")
    # and the allocator now sees the address as taken again
    with pytest.raises(Invalid, match="already allocated"):
        await alloc.allocate(make_service("late", cluster_ip=web.spec.cluster_ip))
    # a second pass finds nothing left to do
    assert (await repair(objects, RANGES, clock=clock)).findings == ()


async def test_orphan_is_deleted_only_after_the_grace(
    objects: ObjectStore, clock: FakeClock
) -> None:
    # an allocation whose Service was never written (a crash, or a create still in flight)
    alloc = ClusterIPAllocator(objects, RANGES, random.Random(1))
    lost = await alloc.allocate(make_service("lost"))
    ip = lost.spec.cluster_ip

    report = await repair(objects, RANGES, clock=clock, orphan_grace_seconds=60)
    assert report.deleted == () and report.pending == (ip,)
    assert report.recheck_after == pytest.approx(60.0)

    clock.advance(59)
    report = await repair(objects, RANGES, clock=clock, orphan_grace_seconds=60)
    assert report.deleted == () and report.recheck_after == pytest.approx(1.0)
    assert ip in await stored(objects)

    assert str(report) == (
        "created=0 reparented=0 deleted=0 skipped=0 pending=1 findings=0 recheck_after=1s"
    )

    clock.advance(1)
    report = await repair(objects, RANGES, clock=clock, orphan_grace_seconds=60)
    assert report.deleted == (ip,) and report.pending == ()
    assert [f.reason for f in report.findings] == ["IPAddressNotAllocated"]
    assert ip not in await stored(objects)


async def test_grace_zero_at_start_deletes_at_once(objects: ObjectStore, clock: FakeClock) -> None:
    await record(objects, "10.96.5.5", "gone")
    report = await repair(objects, RANGES, clock=clock, orphan_grace_seconds=0)
    assert report.deleted == ("10.96.5.5",)


async def test_duplicates_and_out_of_range_are_reported_not_changed(
    objects: ObjectStore, clock: FakeClock
) -> None:
    await objects.create(holding("first", "10.96.0.50"))
    clock.advance(5)
    await objects.create(holding("second", "10.96.0.50"))
    await objects.create(holding("old-cidr", "10.0.0.7"))
    await record(objects, "10.96.0.50", "first")
    before = await stored(objects)

    report = await repair(objects, RANGES, clock=clock, orphan_grace_seconds=0)
    assert sorted((f.reason, f.ip, f.service) for f in report.findings) == [
        ("ClusterIPAlreadyAllocated", "10.96.0.50", "default/second"),
        ("ClusterIPOutOfRange", "10.0.0.7", "default/old-cidr"),
    ]
    assert report.plan.changes == 0
    assert await stored(objects) == before


async def test_duplicate_with_nothing_recorded_goes_to_the_older(
    objects: ObjectStore, clock: FakeClock
) -> None:
    await objects.create(holding("older", "10.96.0.50"))
    clock.advance(5)
    await objects.create(holding("newer", "10.96.0.50"))
    report = await repair(objects, RANGES, clock=clock)
    assert report.created == ("10.96.0.50",)
    assert (await stored(objects))["10.96.0.50"].spec.parent_ref == service_ref("default", "older")
    assert ("ClusterIPAlreadyAllocated", "default/newer") in {
        (f.reason, f.service) for f in report.findings
    }


async def test_wrong_reference_is_repointed_in_place(
    objects: ObjectStore, clock: FakeClock
) -> None:
    old = await record(objects, "10.96.0.77", "deleted-long-ago")
    await objects.create(holding("web", "10.96.0.77"))
    report = await repair(objects, RANGES, clock=clock)
    assert report.reparented == ("10.96.0.77",)
    now = (await stored(objects))["10.96.0.77"]
    assert now.spec.parent_ref == service_ref("default", "web")
    assert now.metadata.uid == old.metadata.uid  # updated, never deleted: no window to race in


class _MovesOnAfterListing:
    """An ObjectStore whose IPAddress listing is immediately stale: right after it, the IP is
    released and allocated again to a Service that is still being created."""

    def __init__(self, inner: ObjectStore, ip: str) -> None:
        self.inner, self.ip = inner, ip

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def list(self, type_: type[T], namespace: str | None = None, *,
                   transform: Callable[[T], T] | None = None) -> tuple[list[T], int]:
        result = await self.inner.list(type_, namespace, transform=transform)
        if type_ is IPAddress:
            await self.inner.delete(IPAddress, "", self.ip)
            await record(self.inner, self.ip, "being-created")
        return result


async def test_changed_since_the_listing_is_skipped(objects: ObjectStore, clock: FakeClock) -> None:
    await record(objects, "10.96.0.9", "gone")
    clock.advance(120)
    racy = _MovesOnAfterListing(objects, "10.96.0.9")
    report = await repair(racy, RANGES, clock=clock)  # type: ignore[arg-type]
    assert report.deleted == () and report.skipped == ("10.96.0.9",)
    assert (await stored(objects))["10.96.0.9"].spec.parent_ref == service_ref(
        "default", "being-created"
    )
