"""Fixtures for the userspace proxy: fakes of its seams, small servers, a running proxier.

Conventions: everything runs on loopback, where all of 127.0.0.0/8 is local, so no network
namespace is needed. The address plan:

- 127.0.1.0/24: ClusterIPs ("VIPs"); the fake `LocalAddresses` only records them.
- 127.0.2.0/24: endpoints (the test's own servers, on ports they bind themselves).
- 127.0.3.0/24: client source addresses (for session affinity, which keys on the client IP).

Fakes:

- `FakeSockets` is the `SocketFactory`: plain non-blocking sockets of this namespace, each kept
  in `.made`.
- `FakeAddresses` is `LocalAddresses`: `.calls` lists ("add"|"remove", ip); it rejects what the
  kernel would (adding an address twice: EEXIST; removing one it does not have: EADDRNOTAVAIL).

Servers (async context managers, returned by fixtures so tests need not import this module):

- `tcp_backend(ip, mode)`, a TCP server on ip:0 named after its address (``127.0.2.1``), that
  counts its connections. Modes: "hello" reads a line and answers its name and a newline, then
  closes (a request and a response: HTTP/1.0's shape); "drain" reads to end of stream, then
  answers ``<name> <bytes read>`` and closes (for half-close); "echo" sends back whatever comes,
  ending its side after the client's end; "reset" sends ``partial`` and resets the connection.
- `udp_backend(ip)`, a UDP server on ip:0 that answers each datagram with
  ``<name> <datagram>``.
- `proxy(**kwargs)` runs a `UserspaceProxier` over the fakes (keyword arguments go to it) for
  the body of an ``async with``, and gives a `RunningProxy`: `.serve(*ports)` syncs a map
  made of those `ServicePort`s (`changed` computed against the previous one, as the tracker
  would), and `.resync()` syncs it again in full. The proxier is cancelled after the block,
  pass or fail, and awaited.

Helpers: `fd_count()` and `pipe_count()` count this process's open descriptors.
`eventually`, `running` and `BOTH_LOOPS` (asyncio and uvloop) come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from clusterip.core.servicemap import Endpoint, ServicePort, ServicePortName, Snapshot
from clusterip.proxy.userspace import UserspaceProxier

# --- waiting and counting -------------------------------------------------------------------


def _links() -> list[str]:
    links = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone already
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
    return links


@pytest.fixture
def fd_count() -> Callable[[], int]:
    return lambda: len(_links())


@pytest.fixture
def pipe_count() -> Callable[[], int]:
    return lambda: sum(link.startswith("pipe:") for link in _links())


# --- fakes of the proxier's seams -------------------------------------------------------------


class FakeSockets:
    """`SocketFactory` in this namespace: plain non-blocking sockets, kept in `made`. While
    `held` is set, a UDP socket is not handed out until it is cleared (a slow namespace thread,
    to let a sync come in between)."""

    def __init__(self) -> None:
        self.made: list[socket.socket] = []
        self.held: asyncio.Event | None = None
        self.waiting = asyncio.Event()  # a UDP socket is being held

    async def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> socket.socket:
        if self.held is not None and type == socket.SOCK_DGRAM:
            self.waiting.set()
            await self.held.wait()
        sock = socket.socket(family, type, proto)
        sock.setblocking(False)
        self.made.append(sock)
        return sock


class FakeAddresses:
    """`LocalAddresses` that records; rejects a double add or a remove of an absent address."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.present: set[str] = set()

    async def add(self, ip: str) -> None:
        if ip in self.present:
            raise FileExistsError(errno.EEXIST, f"{ip} is already on lo")
        self.present.add(ip)
        self.calls.append(("add", ip))

    async def remove(self, ip: str) -> None:
        if ip not in self.present:
            raise OSError(errno.EADDRNOTAVAIL, f"{ip} is not on lo")
        self.present.remove(ip)
        self.calls.append(("remove", ip))


# --- servers --------------------------------------------------------------------------------


@dataclass
class Backend:
    """A test server: its name is its address; `connections` counts what it accepted."""

    ip: str
    port: int = 0
    connections: int = 0

    @property
    def name(self) -> str:
        return self.ip

    def endpoint(self, **conditions: Any) -> Endpoint:
        return Endpoint(self.ip, self.port, **conditions)


async def _hello(backend: Backend, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    await reader.readline()
    writer.write(f"{backend.name}\n".encode())


async def _drain(backend: Backend, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    data = await reader.read()
    writer.write(f"{backend.name} {len(data)}\n".encode())


async def _echo(backend: Backend, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1 << 18):
        writer.write(data)
        await writer.drain()
    writer.write_eof()


async def _reset(backend: Backend, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    writer.write(b"partial")
    await writer.drain()
    writer.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


_MODES = {"hello": _hello, "drain": _drain, "echo": _echo, "reset": _reset}


@contextlib.asynccontextmanager
async def _tcp_backend(ip: str, mode: str = "hello") -> AsyncIterator[Backend]:
    backend = Backend(ip)
    serve = _MODES[mode]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend.connections += 1
        try:
            await serve(backend, reader, writer)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, ip, 0)
    backend.port = server.sockets[0].getsockname()[1]
    try:
        yield backend
    finally:
        server.close()


@pytest.fixture
def tcp_backend() -> Callable[..., contextlib.AbstractAsyncContextManager[Backend]]:
    return _tcp_backend


class _UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(self.backend.name.encode() + b" " + data, addr)


@contextlib.asynccontextmanager
async def _udp_backend(ip: str) -> AsyncIterator[Backend]:
    backend = Backend(ip)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _UdpEcho(backend), local_addr=(ip, 0))
    backend.port = transport.get_extra_info("sockname")[1]
    try:
        yield backend
    finally:
        transport.close()


@pytest.fixture
def udp_backend() -> Callable[..., contextlib.AbstractAsyncContextManager[Backend]]:
    return _udp_backend


# --- the proxier, running ---------------------------------------------------------------------


@dataclass
class RunningProxy:
    proxier: UserspaceProxier
    sockets: FakeSockets
    addresses: FakeAddresses
    ports: dict[ServicePortName, ServicePort] = field(default_factory=dict)

    async def serve(self, *ports: ServicePort) -> None:
        """Sync a map of exactly `ports`."""
        new = {p.name: p for p in ports}
        changed = {n for n in new.keys() | self.ports.keys() if new.get(n) != self.ports.get(n)}
        self.ports = new
        await self.proxier.sync(Snapshot(dict(new), frozenset(changed)))

    async def resync(self) -> None:
        """Sync the same map again, every port counted as changed (the controller's retry)."""
        await self.proxier.sync(Snapshot(dict(self.ports), frozenset(self.ports)))


@contextlib.asynccontextmanager
async def _proxy(**kwargs: Any) -> AsyncIterator[RunningProxy]:
    sockets, addresses = FakeSockets(), FakeAddresses()
    kwargs.setdefault("node", "node-1")
    running = RunningProxy(UserspaceProxier(sockets, addresses, **kwargs), sockets, addresses)
    task = asyncio.create_task(running.proxier.run())
    try:
        yield running
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def proxy() -> Callable[..., contextlib.AbstractAsyncContextManager[RunningProxy]]:
    return _proxy
