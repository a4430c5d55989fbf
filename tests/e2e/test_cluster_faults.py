"""Faults in a cluster on etcd: members of the store die and return, the leading API server
dies, and two API servers race to allocate ClusterIPs.

Each test makes a cluster of its own (see test_cluster.py for the address plan and the
cleanup); the API is reached over loopback only.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from clusterip.app import controller_identity
from clusterip.cluster import LocalCluster
from clusterip.control.leader import LEASE_NAME, LEASE_NAMESPACE
from clusterip.core import model as m
from clusterip.core.errors import Unavailable
from clusterip.registry.remote import RemoteClient
from clusterip.testing.builders import make_pod, make_service
from clusterip.testing.cluster import running_cluster

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces"),
]

DEADLINE = 60.0
RACING_CREATES = 1000
CONCURRENCY = 25  # creates in flight on each API server


@pytest.fixture
async def three_members(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with running_cluster(tmp_path, prefix="cf", nodes=1, etcd_members=3) as local:
        yield local


@pytest.fixture
async def two_apiservers(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with running_cluster(tmp_path, prefix="cf", nodes=1, apiservers=2) as local:
        yield local


async def services(api: RemoteClient) -> dict[str, str]:
    found, _ = await api.list(m.Service)
    return {f"{s.metadata.namespace}/{s.metadata.name}": s.spec.cluster_ip for s in found}


async def test_the_api_writes_with_one_member_down_refuses_with_two_and_loses_nothing(
        three_members: LocalCluster) -> None:
    etcd = three_members.etcd
    assert etcd is not None
    async with RemoteClient(",".join(three_members.servers)) as api:
        for i in range(20):
            await api.create(make_service(f"before-{i}"))
        second = await asyncio.to_thread(etcd.leader) or etcd.names[0]
        first = next(name for name in etcd.names if name != second)  # a follower goes first
        await asyncio.to_thread(etcd.kill, first)
        await api.create(make_service("one-down"))

        await asyncio.to_thread(etcd.kill, second)
        began = asyncio.get_running_loop().time()
        with anyio.fail_after(30), pytest.raises(Unavailable, match="etcd"):
            while True:  # until the last member has seen the quorum go
                await api.create(make_service(f"two-down-{secrets.token_hex(2)}"))
        refused_after = asyncio.get_running_loop().time() - began
        assert refused_after < 15, f"the refusal took {refused_after:.1f} s"

        await asyncio.to_thread(etcd.restart, first, wait=False)
        await asyncio.to_thread(etcd.restart, second, wait=False)
        await asyncio.to_thread(etcd.wait_healthy)
        with anyio.fail_after(DEADLINE):
            while True:
                try:
                    await api.create(make_service("after"))
                    break
                except Unavailable:
                    await anyio.sleep(0.2)
        stored = await services(api)
        ips, _ = await api.list(m.IPAddress)
    assert {f"default/before-{i}" for i in range(20)} | {"default/one-down", "default/after"} \
        <= set(stored)
    # nothing half-written: every allocated address belongs to a Service, and back
    assert {ip.metadata.name for ip in ips} == {ip for ip in stored.values() if ip}


async def test_another_api_server_takes_the_controllers_over_within_10_s(
        two_apiservers: LocalCluster) -> None:
    plan = two_apiservers.plan
    assert plan is not None
    names = {controller_identity(a.data_dir): a.name for a in plan.apiservers}
    async with RemoteClient(",".join(two_apiservers.servers)) as api:
        leader = names[await _holder(api)]
        await two_apiservers.kill_apiserver(leader)
        began = asyncio.get_running_loop().time()
        with anyio.fail_after(30):
            while names.get(await _holder(api)) in (leader, None):
                await anyio.sleep(0.1)
        took = asyncio.get_running_loop().time() - began
        assert took < 10, f"the controllers were taken over after {took:.1f} s"

        # the new leader's controllers work: the scheduler binds a new pod to the node
        await api.create(make_pod("after-failover", node=""))
        with anyio.fail_after(DEADLINE):
            while not (await api.get(m.Pod, "default", "after-failover")).spec.node_name:
                await anyio.sleep(0.1)


async def _holder(api: RemoteClient) -> str:
    lease = await api.get(m.Lease, LEASE_NAMESPACE, LEASE_NAME)
    return lease.spec.holder_identity or ""


async def test_no_cluster_ip_is_allocated_twice_by_two_api_servers_racing(
        two_apiservers: LocalCluster) -> None:
    one, other = two_apiservers.servers
    async with RemoteClient(one) as first, RemoteClient(other) as second:

        async def create_many(api: RemoteClient, prefix: str, count: int) -> None:
            limit = asyncio.Semaphore(CONCURRENCY)

            async def create(i: int) -> None:
                async with limit:
                    await api.create(make_service(f"{prefix}-{i}"))
            await asyncio.gather(*(create(i) for i in range(count)))

        with anyio.fail_after(120):
            await asyncio.gather(create_many(first, "a", RACING_CREATES // 2),
                                 create_many(second, "b", RACING_CREATES // 2))
        stored = await services(first)
        ips, _ = await first.list(m.IPAddress)
    allocated = [ip for ip in stored.values() if ip]
    assert len(stored) >= RACING_CREATES
    assert len(allocated) == len(set(allocated)), "a ClusterIP was given to two Services"
    assert {ip.metadata.name for ip in ips} == set(allocated)
