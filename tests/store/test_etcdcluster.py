"""A three-member etcd cluster (clusterip.etcdcluster) under the etcd store, and its faults.

Each test starts a cluster of its own on free loopback ports, with data and logs in a directory
of its own (``cipt-etcd-<hex>``), and stops it (SIGTERM, then SIGKILL, by PID) and deletes the
directory at the end, pass or fail. Waits are on conditions under deadlines, never sleeps.

What it shows: with one member of three dead the store keeps accepting writes (at once when it
was a follower, the store's current endpoint: the store moves to the next; after the election,
about a second, when it was the leader); with two dead a write fails with Unavailable within
10 s (etcd's own request timeout is 7 s: 5 s + 2 election timeouts); when they come back
everything written before is there, and writes succeed again. A write that failed for want of a
quorum has an unknown outcome (etcd may have appended it to the surviving leader's log, and
commits it once a quorum returns), so it may or may not be there afterwards.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from clusterip.core.clusterplan import RESERVED_PORTS, plan_etcd
from clusterip.core.errors import Unavailable
from clusterip.etcdcluster import (
    EtcdCluster,
    EtcdError,
    EtcdPortInUse,
    find_etcd,
    free_ports,
    start_etcd_cluster,
)
from clusterip.store.etcd import EtcdStore
from clusterip.testing.etcd import fresh_prefix

pytestmark = pytest.mark.anyio

NO_QUORUM_DEADLINE = 10.0  # seconds a write may take to fail without a quorum
WRITE_DEADLINE = 10.0  # seconds a write may take while a new leader is elected


@pytest.fixture
def etcd_binary() -> str:
    binary = find_etcd()
    if binary is None:
        reason = "etcd is not installed (apt-get install etcd-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs etcd: {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory of the test's own, deleted at the end."""
    path = Path(tempfile.mkdtemp(prefix=f"cipt-etcd-{secrets.token_hex(3)}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def cluster(etcd_binary: str, workdir: Path) -> Iterator[EtcdCluster]:
    """Three healthy members, stopped at the end however the test ends."""
    started = start_etcd_cluster(workdir, members=3, token=f"cipt-{secrets.token_hex(4)}",
                                 binary=etcd_binary)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def prefix() -> str:
    return fresh_prefix()


@pytest.fixture
async def store(cluster: EtcdCluster, prefix: str) -> AsyncIterator[EtcdStore]:
    """A store on all three members, a follower's endpoint first, the leader's last."""
    leader = await asyncio.to_thread(wait_for_leader, cluster)
    order = [name for name in cluster.names if name != leader] + [leader]
    opened = await EtcdStore.open([cluster.member(name).client_url for name in order],
                                  prefix=prefix)
    try:
        yield opened
    finally:
        await opened.close()


def wait_for_leader(cluster: EtcdCluster, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while (leader := cluster.leader()) is None:
        assert time.monotonic() < deadline, "no etcd leader within the deadline"
    return leader


async def write(store: EtcdStore, key: str, deadline: float = WRITE_DEADLINE) -> None:
    async with asyncio.timeout(deadline):
        await store.create(key, key.encode())


async def keys(store: EtcdStore) -> set[str]:
    found, _ = await store.list("/")
    assert all(kv.value == kv.key.encode() for kv in found)
    return {kv.key for kv in found}


def test_three_members_start_healthy_on_ports_and_directories_of_their_own(
    cluster: EtcdCluster, workdir: Path
) -> None:
    assert cluster.names == ["etcd-1", "etcd-2", "etcd-3"]
    assert all(cluster.healthy(name) for name in cluster.names)
    members = cluster.plan.members
    ports = [p for m in members for p in (m.client_port, m.peer_port)]
    assert len(set(ports)) == 6 and not set(ports) & RESERVED_PORTS
    assert {m.data_dir for m in members} == {str(workdir / n) for n in cluster.names}
    assert all(Path(m.data_dir, "member").is_dir() for m in members)
    pids = [cluster.pid(name) for name in cluster.names]
    assert None not in pids and len(set(pids)) == 3
    assert wait_for_leader(cluster) in cluster.names
    assert cluster.store_url == "etcd://" + ",".join(
        f"127.0.0.1:{m.client_port}" for m in members)


async def test_one_member_down_writes_go_on_two_down_they_fail_and_all_comes_back(
    cluster: EtcdCluster, store: EtcdStore
) -> None:
    before = {f"/before/{i}" for i in range(20)}
    for key in before:
        await write(store, key)

    leader = await asyncio.to_thread(wait_for_leader, cluster)
    first = next(name for name in cluster.names if name != leader)  # the store's endpoint
    await asyncio.to_thread(cluster.kill, first)
    await write(store, "/one-down")
    await asyncio.to_thread(cluster.kill, leader)

    started = time.monotonic()
    with pytest.raises(Unavailable) as failed:
        await write(store, "/two-down", deadline=NO_QUORUM_DEADLINE + 5)
    elapsed = time.monotonic() - started
    assert elapsed < NO_QUORUM_DEADLINE, f"the write took {elapsed:.1f}s to fail"
    assert str(failed.value).startswith("etcd: "), str(failed.value)

    await asyncio.to_thread(cluster.restart, first, wait=False)
    await asyncio.to_thread(cluster.restart, leader, wait=False)
    await asyncio.to_thread(cluster.wait_healthy)
    found = await keys(store)
    assert before | {"/one-down"} <= found
    assert found - before - {"/one-down"} <= {"/two-down"}  # an unknown outcome, either way
    await write(store, "/after")
    assert "/after" in await keys(store)


async def test_a_new_leader_takes_writes_after_the_leader_dies(
    cluster: EtcdCluster, store: EtcdStore
) -> None:
    await write(store, "/before")
    leader = await asyncio.to_thread(wait_for_leader, cluster)
    await asyncio.to_thread(cluster.kill, leader)
    # A write sent before the followers notice (one election timeout, 1 s) is forwarded to the
    # dead leader and times out after 7 s, its outcome unknown: etcd's behaviour. So wait for
    # the election, then write.
    started = time.monotonic()
    successor = await asyncio.to_thread(wait_for_leader, cluster)
    assert successor != leader
    assert time.monotonic() - started < WRITE_DEADLINE
    await write(store, "/after-election")
    await asyncio.to_thread(cluster.restart, leader)  # rejoins as a follower
    assert await keys(store) == {"/before", "/after-election"}


async def test_a_restarted_member_keeps_its_ports_and_data(
    cluster: EtcdCluster, store: EtcdStore, prefix: str
) -> None:
    await write(store, "/kept")
    name = cluster.names[1]
    member, pid = cluster.member(name), cluster.pid(name)
    await asyncio.to_thread(cluster.kill, name)
    assert cluster.pid(name) is None and not cluster.healthy(name)
    await asyncio.to_thread(cluster.restart, name)
    assert cluster.healthy(name)
    assert cluster.member(name) == member and cluster.pid(name) not in (None, pid)
    only_it = await EtcdStore.open([member.client_url], prefix=prefix)
    try:
        assert (await only_it.get("/kept")).value == b"/kept"
    finally:
        await only_it.close()


def test_stop_ends_every_member_and_start_brings_the_cluster_back(cluster: EtcdCluster) -> None:
    pids = [cluster.pid(name) for name in cluster.names]
    started = time.monotonic()
    cluster.stop()
    assert time.monotonic() - started < 5.0  # followers first: no leader hand-over timeout
    assert all(cluster.pid(name) is None for name in cluster.names)
    for pid in pids:
        assert pid is not None and not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    cluster.stop()  # idempotent
    cluster.start()  # the same data directories: the same cluster
    assert all(cluster.healthy(name) for name in cluster.names)


def test_a_taken_port_fails_the_start_at_once_and_leaves_nothing_running(
    etcd_binary: str, workdir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        [peer] = free_ports(1)
        plan = plan_etcd(token="cipt-taken", data_dir=str(workdir),
                         client_ports=[taken.getsockname()[1]], peer_ports=[peer],
                         binary=etcd_binary)
        cluster = EtcdCluster(plan, start_timeout=20.0)
        with pytest.raises(EtcdPortInUse, match="address already in use"):
            cluster.start()
    assert cluster.pid("etcd-1") is None


def test_a_new_cluster_refuses_a_directory_with_members_in_it(
    cluster: EtcdCluster, workdir: Path, etcd_binary: str
) -> None:
    with pytest.raises(EtcdError, match="already hold etcd data"):
        start_etcd_cluster(workdir, members=3, binary=etcd_binary)
