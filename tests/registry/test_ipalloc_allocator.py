"""The ClusterIP allocator over a real object store: picks, requests, errors, release, races.

Addresses: the default service CIDR 10.96.0.0/12 unless a test needs a small one (a /28 has 14
usable addresses, a /26 62). Concurrency comes from `Interleaved`, which yields to the event loop
before and after every store call, as a network round trip would, so that concurrent allocations
really do interleave between choosing an address and creating its IPAddress.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio.lowlevel
import msgspec
import pytest

from clusterip.core.errors import AlreadyExists, BadInput, Invalid, RangeFull
from clusterip.core.ipalloc import (
    LABEL_IP_FAMILY,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    ServiceRange,
    ip_address_object,
    service_ref,
)
from clusterip.core.model import IPAddress, KubeObject, Service, ServiceCIDR
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectEvent, ObjectStore
from clusterip.testing.builders import make_service

pytestmark = pytest.mark.anyio

T = TypeVar("T", bound=KubeObject)

V4 = ServiceRange.parse("10.96.0.0/12")
V6 = ServiceRange.parse("fd00:10:96::/112")
SMALL = ServiceRange.parse("10.96.0.0/28")  # 14 usable, no static band


class Interleaved:
    """A `Client` over an ObjectStore that yields around every call and counts what it did."""

    def __init__(self, inner: ObjectStore, seed: int = 0) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self._rng = random.Random(seed)

    async def _yield(self) -> None:
        for _ in range(self._rng.randrange(3)):
            await anyio.lowlevel.checkpoint()

    async def get(self, type_: type[T], namespace: str, name: str) -> T:
        self.calls["get"] += 1
        await self._yield()
        return await self.inner.get(type_, namespace, name)

    async def list(self, type_: type[T], namespace: str | None = None, *,
                   transform: Callable[[T], T] | None = None) -> tuple[list[T], int]:
        self.calls["list"] += 1
        await self._yield()
        return await self.inner.list(type_, namespace, transform=transform)

    def watch(
        self, type_: type[T], namespace: str | None, since_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        return self.inner.watch(type_, namespace, since_revision)

    async def create(self, obj: T) -> T:
        self.calls["create"] += 1
        await self._yield()
        try:
            created = await self.inner.create(obj)
        except AlreadyExists:
            self.calls["collision"] += 1
            raise
        await self._yield()
        return created

    async def update(self, obj: T) -> T:
        self.calls["update"] += 1
        await self._yield()
        return await self.inner.update(obj)

    async def update_status(self, obj: T) -> T:
        return await self.update(obj)

    async def delete(
        self, type_: type[T], namespace: str, name: str, *, resource_version: str = ""
    ) -> T:
        self.calls["delete"] += 1
        await self._yield()
        return await self.inner.delete(type_, namespace, name, resource_version=resource_version)


def allocator(objects: Any, *ranges: ServiceRange, seed: int = 1, **kw: Any) -> ClusterIPAllocator:
    return ClusterIPAllocator(objects, ranges or (V4,), random.Random(seed), **kw)


def services(count: int, prefix: str = "svc") -> list[Service]:
    return [make_service(f"{prefix}-{i}") for i in range(count)]


async def stored_ips(objects: ObjectStore) -> dict[str, IPAddress]:
    items, _ = await objects.list(IPAddress)
    return {a.metadata.name: a for a in items}


def ip_of(svc: Service) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(svc.spec.cluster_ip)


# --- dynamic picks ----------------------------------------------------------------------------


async def test_dynamic_picks_are_unique_in_the_upper_band_and_recorded(
    objects: ObjectStore,
) -> None:
    counted = Interleaved(objects)
    alloc = allocator(counted)
    out = [await alloc.allocate(s) for s in services(300)]
    ips = [ip_of(s) for s in out]
    assert len(set(ips)) == 300
    assert all(V4.usable(a) and not V4.in_static_band(a) for a in ips)
    recorded = await stored_ips(objects)
    assert set(recorded) == {str(a) for a in ips}
    for svc in out:
        obj = recorded[svc.spec.cluster_ip]
        assert obj.spec.parent_ref == service_ref("default", svc.metadata.name)
        assert obj.metadata.labels == {LABEL_IP_FAMILY: "IPv4", LABEL_MANAGED_BY: MANAGED_BY}
    # a sparse range costs one create per pick, and never a listing
    assert counted.calls["list"] == 0
    assert counted.calls["create"] == 300


async def test_allocate_fills_in_the_family_fields(objects: ObjectStore) -> None:
    svc = make_service("web")
    out = await allocator(objects).allocate(svc)
    assert out.spec.cluster_ips == (out.spec.cluster_ip,)
    assert out.spec.ip_families == ("IPv4",)
    assert out.spec.ip_family_policy == "SingleStack"
    assert out.metadata == svc.metadata and out.spec.ports == svc.spec.ports


async def test_allocator_needs_a_range(objects: ObjectStore) -> None:
    with pytest.raises(BadInput, match="no service CIDR"):
        ClusterIPAllocator(objects, [], random.Random(0))


# --- requested IPs ----------------------------------------------------------------------------


async def test_requested_ip_in_the_static_band(objects: ObjectStore) -> None:
    out = await allocator(objects).allocate(make_service("web", cluster_ip="10.96.0.50"))
    assert out.spec.cluster_ip == "10.96.0.50" and out.spec.cluster_ips == ("10.96.0.50",)
    assert V4.in_static_band(ip_of(out))
    assert (await stored_ips(objects))["10.96.0.50"].spec.parent_ref == service_ref(
        "default", "web"
    )


async def test_requested_ip_via_cluster_ips_is_canonicalised(objects: ObjectStore) -> None:
    svc = make_service("web")
    svc = msgspec.structs.replace(
        svc, spec=msgspec.structs.replace(svc.spec, cluster_ips=("fd00:10:96:0::50",))
    )
    out = await allocator(objects, V4, V6).allocate(svc)
    assert out.spec.cluster_ips == ("fd00:10:96::50",)
    assert out.spec.ip_families == ("IPv6",)
    assert "fd00:10:96::50" in await stored_ips(objects)


async def test_taken_ip_is_invalid(objects: ObjectStore) -> None:
    alloc = allocator(objects)
    await alloc.allocate(make_service("a", cluster_ip="10.96.0.50"))
    with pytest.raises(Invalid) as caught:
        await alloc.allocate(make_service("b", cluster_ip="10.96.0.50"))
    assert str(caught.value) == (
        'Service "b" is invalid: spec.clusterIPs[0]: Invalid value: "10.96.0.50": '
        "provided IP is already allocated"
    )
    # the first holder keeps it
    assert (await stored_ips(objects))["10.96.0.50"].spec.parent_ref == service_ref("default", "a")


async def test_out_of_range_is_invalid_and_records_nothing(objects: ObjectStore) -> None:
    with pytest.raises(Invalid) as caught:
        await allocator(objects).allocate(make_service("web", cluster_ip="10.112.0.1"))
    assert [str(e) for e in caught.value.errors] == [
        'spec.clusterIPs[0]: Invalid value: "10.112.0.1": provided IP is not in the valid range. '
        "The range of valid IPs is 10.96.0.0/12"
    ]
    assert await stored_ips(objects) == {}


# --- full ranges and release ------------------------------------------------------------------


async def test_small_range_fills_up_then_range_full(objects: ObjectStore) -> None:
    alloc = allocator(objects, SMALL)
    out = [await alloc.allocate(s) for s in services(14)]
    assert sorted(int(ip_of(s)) for s in out) == [int(SMALL.address(i)) for i in range(SMALL.size)]
    with pytest.raises(RangeFull, match=r"^range is full: no free address in 10\.96\.0\.0/28$"):
        await alloc.allocate(make_service("one-too-many"))
    assert len(await stored_ips(objects)) == 14


async def test_release_frees_the_ip_for_reuse(objects: ObjectStore) -> None:
    alloc = allocator(objects, SMALL)
    out = [await alloc.allocate(s) for s in services(14)]
    victim = out[5]
    await alloc.release(victim)
    assert victim.spec.cluster_ip not in await stored_ips(objects)
    again = await alloc.allocate(make_service("newcomer"))
    assert again.spec.cluster_ip == victim.spec.cluster_ip
    # releasing twice, or a Service that holds nothing, is harmless
    await alloc.release(victim)
    await alloc.release(make_service("db", cluster_ip="None"))
    await alloc.release(make_service("never-allocated"))


async def test_one_allocator_filling_a_range_alone_never_reprobes(objects: ObjectStore) -> None:
    r = ServiceRange.parse("10.96.0.0/24")  # 254 usable
    counted = Interleaved(objects)
    alloc = allocator(counted, r)
    for s in services(r.size):
        await alloc.allocate(s)
    # it remembers what it took, so every pick is one create, even the last ones
    assert counted.calls["create"] == r.size and counted.calls["list"] == 0
    with pytest.raises(RangeFull):
        await alloc.allocate(make_service("late"))
    assert counted.calls["create"] == r.size  # nothing left to probe...
    assert counted.calls["list"] == 1  # ...and "full" was checked against the store


async def test_a_release_by_another_allocator_is_seen(objects: ObjectStore) -> None:
    first, second = allocator(objects, SMALL, seed=1), allocator(objects, SMALL, seed=2)
    out = [await first.allocate(s) for s in services(14)]
    await second.release(out[9])  # the first allocator's hints still say "taken"
    again = await first.allocate(make_service("newcomer"))
    assert again.spec.cluster_ip == out[9].spec.cluster_ip


async def test_release_leaves_an_ip_recorded_for_someone_else(objects: ObjectStore) -> None:
    alloc = allocator(objects)
    await alloc.allocate(make_service("a", cluster_ip="10.96.0.50"))
    impostor = make_service("b", cluster_ip="10.96.0.50")
    await alloc.release(impostor)
    assert "10.96.0.50" in await stored_ips(objects)


async def test_crowded_range_lists_once_and_finds_the_last_free_addresses(
    objects: ObjectStore,
) -> None:
    r = ServiceRange.parse("10.96.0.0/22")  # 1022 usable
    free = {r.address(3), r.address(700)}
    for i in range(r.size):
        if r.address(i) not in free:
            await objects.create(ip_address_object(r.address(i), service_ref("default", "x")))
    counted = Interleaved(objects)
    alloc = allocator(counted, r, max_probes=64)
    got = {ip_of(await alloc.allocate(s)) for s in services(2)}
    assert got == free
    assert counted.calls["list"] <= 2  # one listing per crowded pick, not one per probe
    with pytest.raises(RangeFull):
        await alloc.allocate(make_service("late"))


# --- well-known Services, headless, ExternalName ----------------------------------------------


async def test_well_known_services_get_their_reserved_addresses(objects: ObjectStore) -> None:
    alloc = allocator(objects)
    api = await alloc.allocate(make_service("kubernetes", ports=()))
    dns = await alloc.allocate(make_service("kube-dns", namespace="kube-system"))
    assert api.spec.cluster_ip == "10.96.0.1"
    assert dns.spec.cluster_ip == "10.96.0.10"
    # the same names elsewhere are ordinary Services
    other = await alloc.allocate(make_service("kube-dns", namespace="default"))
    assert not V4.in_static_band(ip_of(other))


async def test_well_known_address_taken_falls_back_to_a_dynamic_pick(
    objects: ObjectStore,
) -> None:
    alloc = allocator(objects)
    await alloc.allocate(make_service("squatter", cluster_ip="10.96.0.10"))
    dns = await alloc.allocate(make_service("kube-dns", namespace="kube-system"))
    assert dns.spec.cluster_ip != "10.96.0.10"
    assert not V4.in_static_band(ip_of(dns))


async def test_headless_and_external_name_get_nothing(objects: ObjectStore) -> None:
    alloc = allocator(objects)
    headless = make_service("db", cluster_ip="None")
    external = make_service(
        "ext",
        mutate=lambda s: msgspec.structs.replace(
            s, spec=msgspec.structs.replace(s.spec, type="ExternalName", external_name="x.org")
        ),
    )
    assert await alloc.allocate(headless) == headless
    out = await alloc.allocate(external)
    assert out == external and out.spec.cluster_ip == ""
    assert await stored_ips(objects) == {}


# --- dual-stack -------------------------------------------------------------------------------


def dual(name: str) -> Service:
    svc = make_service(name)
    return msgspec.structs.replace(
        svc, spec=msgspec.structs.replace(svc.spec, ip_family_policy="PreferDualStack")
    )


async def test_dual_stack_allocates_one_address_per_family(objects: ObjectStore) -> None:
    out = await allocator(objects, V4, V6).allocate(dual("web"))
    v4, v6 = map(ipaddress.ip_address, out.spec.cluster_ips)
    assert V4.usable(v4) and V6.usable(v6)
    assert out.spec.ip_families == ("IPv4", "IPv6")
    assert out.spec.ip_family_policy == "PreferDualStack"
    assert set(await stored_ips(objects)) == {str(v4), str(v6)}


async def test_dual_stack_rolls_back_when_the_second_family_is_full(
    objects: ObjectStore,
) -> None:
    tiny6 = ServiceRange.parse("fd00:10:96::/126")  # 3 usable
    alloc = allocator(objects, V4, tiny6)
    for i in range(3):
        await alloc.allocate(dual(f"fill-{i}"))
    with pytest.raises(RangeFull, match="fd00:10:96::/126"):
        await alloc.allocate(dual("late"))
    assert len(await stored_ips(objects)) == 6  # the late one's IPv4 address was given back


# --- the ServiceCIDR object -------------------------------------------------------------------


async def test_ensure_service_cidr_creates_it_once(objects: ObjectStore) -> None:
    alloc = allocator(objects)
    first = await alloc.ensure_service_cidr()
    assert first.metadata.name == "kubernetes" and first.spec.cidrs == ("10.96.0.0/12",)
    again = await alloc.ensure_service_cidr()
    assert again.metadata.uid == first.metadata.uid
    # another server configured differently does not overwrite it
    other = await allocator(objects, ServiceRange.parse("10.0.0.0/16")).ensure_service_cidr()
    assert other.spec.cidrs == ("10.96.0.0/12",)
    items, _ = await objects.list(ServiceCIDR)
    assert len(items) == 1


# --- races: two allocators (two API servers) on one store -------------------------------------


async def _race(
    objects: ObjectStore, allocators: list[ClusterIPAllocator], total: int, batch: int
) -> list[Service | BaseException]:
    results: list[Service | BaseException] = []
    todo = services(total)
    for start in range(0, total, batch):
        chunk = todo[start : start + batch]
        results += await asyncio.gather(
            *(allocators[i % len(allocators)].allocate(s) for i, s in enumerate(chunk)),
            return_exceptions=True,
        )
    return results


@pytest.mark.parametrize("seeds", [(1, 2), (7, 7)], ids=["different-seeds", "same-seed"])
async def test_two_allocators_never_hand_out_an_ip_twice(
    any_objects: ObjectStore, seeds: tuple[int, int]
) -> None:
    a, b = (Interleaved(any_objects, seed=s) for s in (11, 12))
    allocators = [allocator(a, seed=seeds[0]), allocator(b, seed=seeds[1])]
    results = await _race(any_objects, allocators, total=1000, batch=100)
    got = [r for r in results if isinstance(r, Service)]
    assert len(got) == 1000, [r for r in results if not isinstance(r, Service)][:3]
    ips = [s.spec.cluster_ip for s in got]
    assert len(set(ips)) == 1000
    recorded = await stored_ips(any_objects)
    assert len(recorded) == 1000
    for svc in got:  # every IPAddress names the Service that got the IP
        parent = recorded[svc.spec.cluster_ip].spec.parent_ref
        assert parent == service_ref("default", svc.metadata.name)
    if seeds[0] == seeds[1]:
        # identical random streams: the allocators chase each other, and the store settles it
        assert a.calls["collision"] + b.calls["collision"] > 0


async def test_two_allocators_on_a_small_range_fill_it_exactly(any_objects: ObjectStore) -> None:
    r = ServiceRange.parse("10.96.0.0/26")  # 62 usable
    a, b = Interleaved(any_objects, seed=1), Interleaved(any_objects, seed=2)
    allocators = [allocator(a, r, seed=5), allocator(b, r, seed=5)]
    results = await _race(any_objects, allocators, total=100, batch=25)
    got = [x for x in results if isinstance(x, Service)]
    full = [x for x in results if isinstance(x, RangeFull)]
    assert len(got) == r.size and len(full) == 100 - r.size
    assert len({s.spec.cluster_ip for s in got}) == r.size
    assert len(await stored_ips(any_objects)) == r.size
