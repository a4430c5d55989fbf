"""DnsCache over an ObjectStore on a MemoryStore: the view follows Services, EndpointSlices and
Pods; SERVFAIL before the sync; bursts coalesce; changes that cannot matter are ignored.

Times from a write to the answer that shows it are printed (run with -s to see them)."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import dns.message
import dns.rcode
import msgspec
import pytest

from clusterip.control.informer import InformerFactory
from clusterip.core import dnsanswer
from clusterip.core import model as m
from clusterip.core.dnsanswer import Answer, Responder
from clusterip.core.projections import slim_pod
from clusterip.dnsserver import cache as cache_module
from clusterip.dnsserver.cache import DnsCache
from clusterip.registry.objects import ObjectStore
from clusterip.testing.builders import make_pod, make_service

pytestmark = pytest.mark.anyio

Eventually = Callable[..., Awaitable[Any]]


def ask(responder: Responder, name: str, rdtype: str = "A") -> tuple[str, list[str]]:
    result = responder.respond(dns.message.make_query(name, rdtype).to_wire(), transport="udp")
    assert isinstance(result, Answer)
    reply = dns.message.from_wire(result.wire)
    return (dns.rcode.to_text(reply.rcode()),
            sorted(rr.to_text() for rrset in reply.answer for rr in rrset))


def has_rcode(cache: DnsCache, name: str, rcode: str) -> bool:
    return ask(cache.current(), name)[0] == rcode


def newer_than(cache: DnsCache, generation: int) -> bool:
    return cache.generation > generation


def answers_with(cache: DnsCache, name: str, address: str) -> bool:
    return ask(cache.current(), name) == ("NOERROR", [address])


def service(name: str, ip: str, namespace: str = "default") -> m.Service:
    return make_service(name, namespace=namespace, cluster_ip=ip,
                        mutate=lambda s: msgspec.structs.replace(
                            s, spec=msgspec.structs.replace(s.spec, cluster_ips=(ip,))))


def new_cache(objects: ObjectStore) -> tuple[InformerFactory, DnsCache]:
    factory = InformerFactory(objects, transforms={m.Pod: slim_pod})
    return factory, DnsCache(factory)


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> float:
    """Seconds until `predicate()` holds (polled every 0.2 ms); fails after `timeout`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout:
            raise AssertionError(f"not within {timeout}s")
        await asyncio.sleep(0.0002)
    return loop.time() - start


async def test_servfail_until_synced_then_answers(
    objects: ObjectStore, running: Any, eventually: Eventually
) -> None:
    await objects.create(service("web", "10.96.0.20"))
    factory, cache = new_cache(objects)
    assert not cache.synced
    assert ask(cache.current(), "web.default.svc.cluster.local")[0] == "SERVFAIL"
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.synced)
        assert ask(cache.current(), "web.default.svc.cluster.local") == ("NOERROR",
                                                                         ["10.96.0.20"])
        assert ask(cache.current(), "nosuch.default.svc.cluster.local")[0] == "NXDOMAIN"


async def test_an_empty_cluster_syncs_too(
    objects: ObjectStore, running: Any, eventually: Eventually
) -> None:
    factory, cache = new_cache(objects)
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.synced)
        assert ask(cache.current(), "web.default.svc.cluster.local")[0] == "NXDOMAIN"


async def test_create_and_delete_show_in_answers_quickly(
    objects: ObjectStore, running: Any, eventually: Eventually
) -> None:
    factory, cache = new_cache(objects)
    name = "svc-{}.default.svc.cluster.local"
    created: list[float] = []
    deleted: list[float] = []
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.synced)
        for i in range(20):
            await objects.create(service(f"svc-{i}", f"10.96.1.{i}"))
            created.append(await until(
                partial(answers_with, cache, name.format(i), f"10.96.1.{i}")))
        for i in range(20):
            await objects.delete(m.Service, "default", f"svc-{i}")
            deleted.append(await until(
                partial(has_rcode, cache, name.format(i), "NXDOMAIN")))
    print(f"\ncreate → resolvable: median {statistics.median(created) * 1000:.2f} ms, "
          f"max {max(created) * 1000:.2f} ms; delete → NXDOMAIN: median "
          f"{statistics.median(deleted) * 1000:.2f} ms, max {max(deleted) * 1000:.2f} ms")
    assert statistics.median(created) < 0.1 and statistics.median(deleted) < 0.1


async def test_a_burst_of_changes_coalesces_into_few_rebuilds(
    objects: ObjectStore, running: Any, eventually: Eventually
) -> None:
    factory, cache = new_cache(objects)
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.synced)
        before = cache.rebuilds
        await asyncio.gather(*(objects.create(service(f"b-{i}", f"10.96.2.{i}"))
                               for i in range(200)))
        await eventually(
            lambda: ask(cache.current(), "b-199.default.svc.cluster.local")[0] == "NOERROR")
        await eventually(lambda: all(
            ask(cache.current(), f"b-{i}.default.svc.cluster.local")[0] == "NOERROR"
            for i in range(200)))
    print(f"\n200 creates at once: {cache.rebuilds - before} rebuilds")
    assert cache.rebuilds - before < 50, cache.rebuilds - before


async def test_changes_that_cannot_change_an_answer_do_not_rebuild(
    objects: ObjectStore, running: Any, eventually: Eventually
) -> None:
    factory, cache = new_cache(objects)
    svc = await objects.create(service("web", "10.96.0.20"))
    pod = await objects.create(make_pod("p", ip="10.244.0.7", ready=False))
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.synced)
        generation = cache.generation
        # a Service status update and a Pod condition flip
        status = m.ServiceStatus(conditions=(m.Condition(type="Ready", status="True"),))
        svc = await objects.update_status(msgspec.structs.replace(svc, status=status))
        ready = msgspec.structs.replace(pod.status.conditions[0], status="True")
        pod = await objects.update_status(msgspec.structs.replace(
            pod, status=msgspec.structs.replace(pod.status, conditions=(ready,))))
        await cache.pods.wait_for_revision(int(pod.metadata.resource_version), 2)
        await asyncio.sleep(0.01)
        assert cache.generation == generation
        # a Pod IP change does
        await objects.update_status(msgspec.structs.replace(pod, status=msgspec.structs.replace(
            pod.status, pod_ip="10.244.0.8", pod_ips=(m.PodIP(ip="10.244.0.8"),))))
        await eventually(lambda: ask(cache.current(), "10-244-0-8.default.pod.cluster.local")
                         == ("NOERROR", ["10.244.0.8"]))
        assert cache.generation > generation


async def test_a_failing_rebuild_keeps_the_old_view_and_is_tried_again(
    objects: ObjectStore, running: Any, eventually: Eventually, monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory, cache = new_cache(objects)
    real = dnsanswer.build_view
    failing = [True]

    def build_view(*args: Any, **kwargs: Any) -> Any:
        if failing[0]:
            raise RuntimeError("a bug in build_view")
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_module, "build_view", build_view)
    monkeypatch.setattr(cache_module, "_RETRY_AFTER_FAILURE", 0.01)
    await objects.create(service("web", "10.96.0.20"))
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.failures >= 2)
        assert not cache.synced  # still the first view
        assert ask(cache.current(), "web.default.svc.cluster.local")[0] == "SERVFAIL"
        failing[0] = False
        await eventually(lambda: cache.synced)
        assert ask(cache.current(), "web.default.svc.cluster.local")[1] == ["10.96.0.20"]


async def test_rebuild_at_10000_services(
    objects: ObjectStore, running: Any, eventually: Eventually, cluster: Any
) -> None:
    services = cluster.many_services(10_000)
    start = time.perf_counter()
    for svc in services:
        await objects.create(svc)
    stored = time.perf_counter() - start
    factory, cache = new_cache(objects)
    async with running(factory.run, cache.run):
        await eventually(lambda: cache.synced, 30)
        first = cache.last_build_seconds
        times = []
        # The longest the loop went without running us while views were built: the build runs
        # in a thread, so the loop goes on. (With the cyclic GC off: a full collection over a
        # heap of 10,000 services stops every thread for ~100 ms here, thread or not.)
        lag = 0.0
        loop = asyncio.get_running_loop()
        gc.disable()
        try:
            for i in range(5):
                generation = cache.generation
                await objects.create(service(f"extra-{i}", f"10.96.3.{i}"))
                deadline = loop.time() + 5
                while cache.generation == generation and loop.time() < deadline:
                    before = loop.time()
                    await asyncio.sleep(0.001)
                    lag = max(lag, loop.time() - before)
                times.append(cache.last_build_seconds)
        finally:
            gc.enable()
        latency = []
        for i in range(5, 10):
            await objects.create(service(f"extra-{i}", f"10.96.3.{i}"))
            latency.append(await until(partial(
                has_rcode, cache, f"extra-{i}.default.svc.cluster.local", "NOERROR"), 5))
        assert ask(cache.current(), "svc-42.default.svc.cluster.local")[0] == "NOERROR"
    print(f"\n10,000 services: stored in {stored:.1f} s; first view {first * 1000:.1f} ms; "
          f"loop lag during rebuilds (GC off) {lag * 1000:.1f} ms; "
          f"rebuild median {statistics.median(times) * 1000:.1f} ms "
          f"(max {max(times) * 1000:.1f}); create → resolvable median "
          f"{statistics.median(latency) * 1000:.1f} ms (max {max(latency) * 1000:.1f})")
    # The target is far below 0.1 s; build_view (core) takes ~0.5 s at 10,000 services on
    # these VMs for now. This bound only catches a regression by an order of magnitude.
    assert statistics.median(times) < 3.0
    assert lag < statistics.median(times) / 2  # the build ran off the loop
