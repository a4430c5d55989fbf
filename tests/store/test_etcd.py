"""What the etcd backend promises beyond the conformance suite.

Endpoints: a dead endpoint is skipped, and when the current one dies reads, later writes and
open watches move to the next without losing or repeating an event. Leases: a key created with
a lease is deleted when the lease is revoked or expires, keeps its lease through updates, and a
kept-alive lease lives on. The gateway's encoding: keys live under the store's prefix as base64,
revisions are strings, empty values are left out, and all of it reads back exactly. Lists are
one snapshot however many pages they take. Closing fails the requests in flight with
Unavailable. TLS with client certificates, and `etcd://` URLs.

Every test uses the session's etcd (conftest `etcd_server`) under a key prefix of its own; the
endpoint tests put a TCP relay of their own between the store and etcd, so that they can kill
"an endpoint" without touching etcd. Waits are on conditions under deadlines, never sleeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from clusterip.app import AppConfig, open_store
from clusterip.core.errors import BadInput, NotFound, Unavailable
from clusterip.store.api import EventType, KeyValue, WatchEvent
from clusterip.store.etcd import EtcdStore, EtcdUrl, prefix_end
from clusterip.testing.etcd import (
    EtcdProcess,
    free_ports,
    fresh_prefix,
    running_etcd,
    write_tls,
)

pytestmark = pytest.mark.anyio

DEADLINE = 5.0
LEASE_DEADLINE = 10.0  # etcd's shortest lease is about 2 s, and it checks expiry every 0.5 s


@pytest.fixture
async def store(etcd_server: EtcdProcess) -> AsyncIterator[EtcdStore]:
    opened = await EtcdStore.open([etcd_server.endpoint], prefix=fresh_prefix())
    try:
        yield opened
    finally:
        await opened.close()


def dead_endpoint() -> str:
    """A loopback endpoint where nothing listens (connections are refused)."""
    [port] = free_ports(1)
    return f"http://127.0.0.1:{port}"


class Relay:
    """A TCP relay from a loopback port to etcd: an endpoint a test can kill."""

    def __init__(self, target: str) -> None:
        self.host, port = target.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def cut(self) -> None:
        """Reset every connection through the relay (it keeps accepting new ones)."""
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def kill(self) -> None:
        """Stop accepting and reset every connection: the endpoint is dead."""
        assert self.server is not None
        self.server.close()
        self.cut()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def relay_to(etcd: EtcdProcess) -> AsyncIterator[Relay]:
    relay = Relay(etcd.endpoint)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.kill()


async def next_events(watch: AsyncIterator[WatchEvent], count: int) -> list[WatchEvent]:
    with anyio.fail_after(DEADLINE):
        return [await anext(watch) for _ in range(count)]


# --- endpoints ---------------------------------------------------------------------------------


async def test_a_dead_first_endpoint_is_skipped(etcd_server: EtcdProcess) -> None:
    store = await EtcdStore.open([dead_endpoint(), etcd_server.endpoint], prefix=fresh_prefix())
    try:
        revision = await store.create("/k/a", b"1")

        assert await store.get("/k/a") == KeyValue("/k/a", b"1", revision, revision)
    finally:
        await store.close()


async def test_opening_with_no_live_endpoint_raises_unavailable() -> None:
    with pytest.raises(Unavailable):
        await EtcdStore.open([dead_endpoint(), dead_endpoint()], prefix=fresh_prefix())


async def test_when_the_current_endpoint_dies_requests_and_watches_move_to_the_next(
    etcd_server: EtcdProcess,
) -> None:
    async with relay_to(etcd_server) as first, relay_to(etcd_server) as second:
        store = await EtcdStore.open([first.endpoint, second.endpoint], prefix=fresh_prefix())
        try:
            start = await store.revision()
            async with aclosing(store.watch("/k/", start)) as watch:
                before = await store.create("/k/before", b"1")
                [seen] = await next_events(watch, 1)
                assert seen.revision == before

                await first.kill()

                assert (await store.get("/k/before")).value == b"1"  # a read, retried
                after = await store.create("/k/after", b"2")  # then writes go there too
                assert [e.revision for e in await next_events(watch, 1)] == [after]
        finally:
            await store.close()


async def test_a_broken_watch_stream_resumes_without_losing_or_repeating_events(
    etcd_server: EtcdProcess,
) -> None:
    prefix = fresh_prefix()
    writer = await EtcdStore.open([etcd_server.endpoint], prefix=prefix)
    async with relay_to(etcd_server) as relay:
        watcher = await EtcdStore.open([relay.endpoint], prefix=prefix)
        try:
            start = await writer.revision()
            async with aclosing(watcher.watch("/k/", start)) as watch:
                first = await writer.create("/k/1", b"1")
                assert [e.revision for e in await next_events(watch, 1)] == [first]

                relay.cut()
                written = [await writer.create(f"/k/{i}", b"x") for i in range(2, 5)]

                assert [e.revision for e in await next_events(watch, 3)] == written
        finally:
            await watcher.close()
            await writer.close()


async def test_closing_the_store_fails_its_requests_in_flight_with_unavailable(
    etcd_server: EtcdProcess,
) -> None:
    store = await EtcdStore.open([etcd_server.endpoint], prefix=fresh_prefix())
    writes = [asyncio.create_task(store.create(f"/k/{i}", b"v")) for i in range(300)]
    await anyio.lowlevel.checkpoint()  # they start; most wait for a pooled connection

    await store.close()

    results = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(r, int | Unavailable) for r in results), {type(r) for r in results}


# --- leases ------------------------------------------------------------------------------------


async def test_a_key_created_with_a_lease_is_deleted_when_the_lease_is_revoked(
    store: EtcdStore,
) -> None:
    lease = await store.grant(60)
    created = await store.create("/nodes/a", b"alive", lease=lease)

    async with aclosing(store.watch("/nodes/", created)) as watch:
        await store.revoke(lease)
        [event] = await next_events(watch, 1)

    assert event.type is EventType.DELETE
    assert event.kv == KeyValue("/nodes/a", b"alive", created, created)
    with pytest.raises(NotFound):
        await store.get("/nodes/a")


async def test_a_key_created_with_a_lease_is_deleted_when_the_lease_expires(
    store: EtcdStore,
) -> None:
    lease = await store.grant(1)  # etcd raises it to its minimum, about 2 s
    created = await store.create("/nodes/a", b"alive", lease=lease)

    async with aclosing(store.watch("/nodes/", created)) as watch:
        with anyio.fail_after(LEASE_DEADLINE):
            event = await anext(watch)

    assert (event.type, event.kv.key) == (EventType.DELETE, "/nodes/a")
    with pytest.raises(NotFound):
        await store.keepalive(lease)


async def test_an_update_keeps_the_lease_of_its_key(store: EtcdStore) -> None:
    lease = await store.grant(60)
    await store.create("/nodes/a", b"1", lease=lease)
    await store.update("/nodes/a", b"2")

    await store.revoke(lease)

    with pytest.raises(NotFound):
        await store.get("/nodes/a")


async def test_keepalive_renews_a_live_lease_and_ended_leases_raise_not_found(
    store: EtcdStore,
) -> None:
    lease = await store.grant(30)

    assert 0 < await store.keepalive(lease) <= 30

    await store.revoke(lease)
    with pytest.raises(NotFound):
        await store.keepalive(lease)
    with pytest.raises(NotFound):
        await store.revoke(lease)


# --- the gateway's encoding --------------------------------------------------------------------


async def gateway(etcd: EtcdProcess, path: str, body: dict[str, Any]) -> Any:
    """One raw request to etcd's JSON gateway, as another client would send it."""
    async with aiohttp.ClientSession() as session, session.post(etcd.endpoint + path,
                                                                json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_keys_live_under_the_prefix_as_base64_and_revisions_are_strings(
    etcd_server: EtcdProcess,
) -> None:
    prefix = fresh_prefix()
    store = await EtcdStore.open([etcd_server.endpoint], prefix=prefix)
    try:
        revision = await store.create("/k/ü", b"\x00\xff")
    finally:
        await store.close()

    raw = await gateway(etcd_server, "/v3/kv/range", {"key": b64(f"{prefix}/k/ü".encode())})

    [kv] = raw["kvs"]
    assert kv["value"] == b64(b"\x00\xff")
    assert (kv["create_revision"], kv["mod_revision"]) == (str(revision), str(revision))


async def test_what_another_client_writes_reads_back_exactly(
    etcd_server: EtcdProcess,
) -> None:
    prefix = fresh_prefix()
    await gateway(etcd_server, "/v3/kv/put", {"key": b64(f"{prefix}/k/empty".encode())})
    await gateway(etcd_server, "/v3/kv/put",
                  {"key": b64(f"{prefix}/k/binary".encode()), "value": b64(b"\x00\n\xff")})
    store = await EtcdStore.open([etcd_server.endpoint], prefix=prefix)
    try:
        items, revision = await store.list("/k/")
    finally:
        await store.close()

    assert [(kv.key, kv.value) for kv in items] == [("/k/binary", b"\x00\n\xff"),
                                                    ("/k/empty", b"")]
    assert items[0].mod_revision == revision  # the last write; an int, from a JSON string


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"/a/", b"/a0"), (b"/a", b"/b"), (b"a\xff", b"b"), (b"a\xff\xff", b"b"), (b"\xff", b"\0")],
)
def test_a_prefix_range_ends_at_the_prefix_with_its_last_byte_incremented(
    prefix: bytes, end: bytes
) -> None:
    assert prefix_end(prefix) == end


# --- list --------------------------------------------------------------------------------------


async def test_a_list_of_many_pages_is_one_snapshot(etcd_server: EtcdProcess) -> None:
    store = await EtcdStore.open([etcd_server.endpoint], prefix=fresh_prefix(), list_page=2)
    try:
        for i in range(20):
            await store.create(f"/k/{i:02d}", b"old")

        async def writer() -> None:
            for i in range(20, 40):
                await store.create(f"/k/{i:02d}", b"new")
                await store.update(f"/k/{i - 20:02d}", b"new")

        lists = await asyncio.gather(store.list("/k/"), writer(), store.list("/k/"))
        everything, _ = await store.list("/k/")
    finally:
        await store.close()

    for items, revision in (lists[0], lists[2]):
        assert items == [
            KeyValue(kv.key, b"old", kv.create_revision, kv.create_revision)
            if kv.mod_revision > revision else kv
            for kv in everything if kv.create_revision <= revision
        ]


# --- TLS and URLs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_etcd(etcd_server: EtcdProcess, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[EtcdProcess]:
    """An etcd that serves https and requires client certificates (etcd_server first: it skips
    when there is no etcd)."""
    tls = write_tls(tmp_path_factory.mktemp("pki"))
    with running_etcd(tls=tls) as etcd:
        yield etcd


async def test_tls_with_a_client_certificate(tls_etcd: EtcdProcess) -> None:
    assert tls_etcd.tls is not None
    host = tls_etcd.endpoint.removeprefix("https://")
    files = tls_etcd.tls
    url = f"etcd://{host}/tls-test?ca={files.ca}&cert={files.client_cert}&key={files.client_key}"

    store = await EtcdStore.from_url(url)
    try:
        revision = await store.create("/k/a", b"1")
        assert await store.get("/k/a") == KeyValue("/k/a", b"1", revision, revision)
    finally:
        await store.close()

    with pytest.raises(Unavailable):  # no client certificate: etcd refuses the handshake
        await EtcdStore.from_url(f"etcd://{host}?ca={files.ca}")


def test_etcd_urls_name_endpoints_a_prefix_and_tls_files(tmp_path: Path) -> None:
    parsed = EtcdUrl.parse("etcd://h1:2379,[::1]:2379/my/prefix/")
    assert (parsed.endpoints, parsed.prefix, parsed.ssl) == (("h1:2379", "[::1]:2379"),
                                                           "/my/prefix", None)
    assert EtcdUrl.parse("etcd://h1:2379").prefix == "/clusterip"

    tls = write_tls(tmp_path)
    assert EtcdUrl.parse(f"etcd://h:1?ca={tls.ca}").ssl is not None

    for bad in ("etcd://", "http://h:2379", "etcd://h:1?bogus=1", "etcd://h:1?ca=/no/such/file"):
        with pytest.raises(BadInput):
            EtcdUrl.parse(bad)


async def test_the_store_flag_opens_etcd(etcd_server: EtcdProcess, tmp_path: Path) -> None:
    host = etcd_server.endpoint.removeprefix("http://")
    prefix = fresh_prefix()
    config = AppConfig(data_dir=str(tmp_path), store_url=f"etcd://{host}{prefix}")

    store = await open_store(config)
    try:
        assert isinstance(store, EtcdStore)
        await store.create("/k/a", b"1")
    finally:
        await store.close()
    raw = await gateway(etcd_server, "/v3/kv/range", {"key": b64(f"{prefix}/k/a".encode())})
    assert raw["count"] == "1"
