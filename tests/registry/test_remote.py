"""`RemoteClient` is the `Client` seam over HTTP: the same reads, writes, errors and endless
watches as the in-process Registry, against a real API server (in this event loop, on a free
loopback port), so a node agent can run on another machine unchanged."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import aclosing

import anyio
import msgspec
import pytest

from clusterip.control.informer import Informer
from clusterip.core import errors as e
from clusterip.core import model as m
from clusterip.registry.remote import RemoteClient
from clusterip.testing.api import TestApi, open_test_api
from clusterip.testing.builders import make_pod, make_service, port

pytestmark = pytest.mark.anyio

DEADLINE = 5.0


@pytest.fixture
async def api() -> AsyncIterator[TestApi]:
    async with open_test_api(bookmark_interval=0.05) as api:
        yield api


@pytest.fixture
async def remote(api: TestApi) -> AsyncIterator[RemoteClient]:
    async with RemoteClient(str(api.http.make_url("")), watch_seconds=1) as client:
        yield client


async def test_create_get_list_update_delete(remote: RemoteClient) -> None:
    created = await remote.create(make_service("web", selector={"app": "web"}))
    assert created.spec.cluster_ip and created.metadata.uid

    assert await remote.get(m.Service, "default", "web") == created
    listed, revision = await remote.list(m.Service, "default")
    assert {s.metadata.name for s in listed} == {"kubernetes", "web"}
    assert revision >= int(created.metadata.resource_version)

    relabelled = msgspec.structs.replace(created, metadata=msgspec.structs.replace(
        created.metadata, labels={"tier": "front"}))
    updated = await remote.update(relabelled)
    assert updated.metadata.labels == {"tier": "front"}
    with pytest.raises(e.Conflict):
        await remote.update(relabelled)  # its resourceVersion is stale now

    deleted = await remote.delete(m.Service, "default", "web")
    assert deleted.metadata.name == "web"
    with pytest.raises(e.NotFound, match='"web" not found'):
        await remote.get(m.Service, "default", "web")


async def test_update_status_changes_only_the_status(remote: RemoteClient) -> None:
    created = await remote.create(make_pod("p1", node=""))
    running = msgspec.structs.replace(
        created, status=msgspec.structs.replace(created.status, phase="Running"),
        metadata=msgspec.structs.replace(created.metadata, labels={"ignored": "yes"}))
    updated = await remote.update_status(running)
    assert (updated.status.phase, updated.metadata.labels) == ("Running", None)


@pytest.mark.parametrize(("write", "error", "says"), [
    ("duplicate", e.AlreadyExists, 'services "kubernetes" already exists'),
    ("invalid", e.BadInput, "spec.ports[0].port: Invalid value: 70000"),
    ("stale-delete", e.Conflict, "the object has been modified"),
], ids=["duplicate", "invalid", "stale-delete"])
async def test_refusals_are_the_errors_of_the_tree(remote: RemoteClient, write: str,
                                                   error: type[Exception], says: str) -> None:
    with pytest.raises(error, match=says.replace("[", r"\[").replace("]", r"\]")):
        if write == "duplicate":
            await remote.create(make_service("kubernetes"))
        elif write == "invalid":
            await remote.create(make_service("bad", ports=[port(70000)]))
        else:
            await remote.delete(m.Service, "default", "kubernetes", resource_version="1")


def nobody_listens() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_server_that_is_not_there_is_unavailable() -> None:
    url = nobody_listens()
    async with RemoteClient(url) as client:
        with pytest.raises(e.Unavailable, match=f"cannot reach the API server at {url}"):
            await client.list(m.Service)


async def test_requests_and_watches_go_to_the_next_server_when_one_is_down(
        api: TestApi) -> None:
    live = str(api.http.make_url("")).rstrip("/")
    async with RemoteClient(f"{nobody_listens()},{live}", watch_seconds=1) as client:
        created = await client.create(make_service("web"))  # not sent to the dead one: moved on
        assert client.server == live
        client._current = 0  # as if the dead one had been chosen again
        with anyio.fail_after(DEADLINE):
            async for event in client.watch(m.Service, "default", 0):
                if event.obj.metadata.name == "web":
                    break
        assert event.obj == created


async def test_a_watch_goes_on_across_the_server_ending_its_streams(
        api: TestApi, remote: RemoteClient) -> None:
    _, start = await remote.list(m.Service, "default")
    names: list[str] = []
    with anyio.fail_after(DEADLINE):
        async with aclosing(remote.watch(m.Service, "default", start)) as events:
            await remote.create(make_service("a"))
            async for event in events:
                names.append(event.obj.metadata.name)
                if len(names) == 1:
                    await anyio.sleep(1.2)  # the server ends this 1 s stream meanwhile
                    await remote.create(make_service("b"))
                else:
                    break
    assert names == ["a", "b"]


async def test_a_watch_from_compacted_history_raises_expired(api: TestApi,
                                                             remote: RemoteClient) -> None:
    await remote.create(make_service("a"))
    await api.store.compact(await api.store.revision())
    with anyio.fail_after(DEADLINE), pytest.raises(e.Expired):
        async for _ in remote.watch(m.Service, "default", 1):
            pass


async def test_an_informer_over_http_follows_the_server(remote: RemoteClient) -> None:
    informer = Informer(remote, m.Pod, namespace="default")
    with anyio.fail_after(DEADLINE):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(informer.run)
            await informer.has_synced.wait()
            await remote.create(make_pod("p1", node=""))
            while "default/p1" not in informer:
                await anyio.sleep(0.01)
            await remote.delete(m.Pod, "default", "p1")
            while "default/p1" in informer:
                await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()
    assert informer.lists == 1
