"""Fixtures for the DNS server: the checklist cluster, a local upstream, a running server, dig.

Everything here talks to loopback only, on ports the fixtures bind themselves (port 0):

- `cluster` is the module `cluster_fixture.py` (the cluster-dns.md §1.4 fixture as model
  objects: `cluster.checklist_cluster()`, and constants such as `cluster.ZONE`).
- `upstream` is a tiny dnspython server on 127.0.0.1:0, UDP and TCP, standing in for the
  node's resolvers: www.example.com A 93.184.216.34, 8.8.8.8.in-addr.arpa PTR dns.google.,
  big.example.com with 60 A records (its UDP replies are cut at 512 bytes with TC set, so the
  forwarder has to retry over TCP), NXDOMAIN for other names. `.queries` lists what it was
  asked, as (transport, name, type).
- `serve(responder, forwarder, **kwargs)` runs `serve_dns` on 127.0.0.1:0 for the body of an
  `async with` and gives the port; the task is cancelled after, pass or fail.
- `dig(port, name, type, *options)` runs the real `dig` (as a subprocess, without blocking the
  loop the server runs on) with `+tries=1 +time=2` and returns a parsed `DigResult`.
- `eventually(predicate, timeout)`, `running(*runs)` and `BOTH_LOOPS` (test_server.py,
  test_forward.py run on asyncio and uvloop) come from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from clusterip.dnsserver.server import bind_sockets, serve_dns

_HERE = Path(__file__).resolve().parent


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_dnsserver_{name}", _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_CLUSTER = _load("cluster_fixture")


@pytest.fixture
def cluster() -> ModuleType:
    return _CLUSTER


# --- waiting and running -------------------------------------------------------------------------


# --- the server ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _serve(responder: Callable[[], Any], forwarder: Any, **kwargs: Any) -> AsyncIterator[int]:
    bound: asyncio.Future[list[tuple[str, int]]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve_dns(responder, forwarder, ready=bound.set_result, **kwargs)
        if "udp_sockets" in kwargs or "tcp_sockets" in kwargs
        else serve_dns(responder, forwarder, host="127.0.0.1", port=0,
                       ready=bound.set_result, **kwargs)
    )
    try:
        waiters: set[asyncio.Future[Any]] = {task, bound}
        done, _ = await asyncio.wait(waiters, timeout=5, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()  # raises what serve_dns raised
        addresses = bound.result()
        yield addresses[0][1]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def serve() -> Callable[..., contextlib.AbstractAsyncContextManager[int]]:
    return _serve


# --- the local upstream --------------------------------------------------------------------------


class LocalUpstream:
    """A minimal authoritative server for a few external names (see the module docstring)."""

    def __init__(self) -> None:
        big = [f"198.51.100.{i}" for i in range(1, _CLUSTER.BIG_UPSTREAM + 1)]
        self.records: dict[tuple[str, int], list[str]] = {
            ("www.example.com.", dns.rdatatype.A): [_CLUSTER.UPSTREAM_A],
            ("8.8.8.8.in-addr.arpa.", dns.rdatatype.PTR): ["dns.google."],
            ("big.example.com.", dns.rdatatype.A): big,
        }
        self.queries: list[tuple[str, str, str]] = []
        self.port = 0

    def answer(self, wire: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(wire)
        question = query.question[0]
        name = question.name.to_text().lower()
        self.queries.append((transport, name, dns.rdatatype.to_text(question.rdtype)))
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        values = self.records.get((name, question.rdtype))
        if values is not None:
            reply.answer.append(dns.rrset.from_text_list(
                question.name, 300, dns.rdataclass.IN, question.rdtype, values))
        elif not any(key[0] == name for key in self.records):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        if transport == "udp":
            return reply.to_wire(max_size=512, prefer_truncation=True)
        return reply.to_wire()


class _UpstreamUdp(asyncio.DatagramProtocol):
    def __init__(self, upstream: LocalUpstream) -> None:
        self.upstream = upstream
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        self.transport.sendto(self.upstream.answer(data, "udp"), addr)


@contextlib.asynccontextmanager
async def _local_upstream() -> AsyncIterator[LocalUpstream]:
    up = LocalUpstream()
    loop = asyncio.get_running_loop()
    # One free port for UDP and TCP together (a concurrent bind can take the UDP one's TCP twin).
    udp_socket, tcp_socket = bind_sockets("127.0.0.1", 0)
    transport, _ = await loop.create_datagram_endpoint(lambda: _UpstreamUdp(up), sock=udp_socket)
    up.port = udp_socket.getsockname()[1]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                reply = up.answer(await reader.readexactly(size), "tcp")
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, sock=tcp_socket)
    try:
        yield up
    finally:
        server.close()
        transport.close()


@pytest.fixture
async def upstream() -> AsyncIterator[LocalUpstream]:
    async with _local_upstream() as up:
        yield up


@pytest.fixture
def local_upstream() -> Callable[[], contextlib.AbstractAsyncContextManager[LocalUpstream]]:
    """Another upstream, for tests that need several."""
    return _local_upstream


# --- dig -----------------------------------------------------------------------------------------


@dataclass
class Record:
    name: str
    ttl: int
    type: str
    data: str


@dataclass
class DigResult:
    """dig's output, parsed: header, flags, sections, OPT presence, size."""

    text: str
    status: str = ""
    flags: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    question: list[str] = field(default_factory=list)
    answer: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)
    opt: bool = False
    edns_udp: int | None = None
    size: int = 0

    def data(self, type_: str | None = None) -> list[str]:
        return [r.data for r in self.answer if type_ is None or r.type == type_]

    def types(self, section: str = "answer") -> list[str]:
        return [r.type for r in getattr(self, section)]


_HEADER = re.compile(r";; ->>HEADER<<- opcode: (\w+), status: (\w+), id: (\d+)")
_FLAGS = re.compile(r";; flags:([^;]*);(.*)")
_SIZE = re.compile(r";; MSG SIZE\s+rcvd: (\d+)")
_EDNS = re.compile(r"; EDNS: version: \d+, flags:[^;]*; udp: (\d+)")


def parse_dig(text: str) -> DigResult:
    result = DigResult(text=text)
    section = ""
    for line in text.splitlines():
        if match := _HEADER.match(line):
            result.status = match.group(2)
        elif match := _FLAGS.match(line):
            result.flags = set(match.group(1).split())
            for part in match.group(2).split(","):
                key, _, value = part.strip().partition(":")
                if value.strip().isdigit():
                    result.counts[key.strip()] = int(value)
        elif line.startswith(";; OPT PSEUDOSECTION"):
            result.opt = True
        elif match := _EDNS.match(line):
            result.edns_udp = int(match.group(1))
        elif match := _SIZE.match(line):
            result.size = int(match.group(1))
        elif line.startswith(";; ") and line.endswith(" SECTION:"):
            section = line[3:-len(" SECTION:")].lower()
        elif not line.strip():
            section = ""
        elif section == "question" and line.startswith(";"):
            result.question.append(line[1:].split()[0])
        elif section in ("answer", "authority", "additional") and not line.startswith(";"):
            parts = line.split(None, 4)
            record = Record(parts[0], int(parts[1]), parts[3], parts[4] if len(parts) > 4 else "")
            getattr(result, section).append(record)
    return result


async def _dig(
    port: int, name: str, type_: str = "A", *options: str, reply: bool = True
) -> DigResult:
    argv = ["dig", "@127.0.0.1", "-p", str(port), "+tries=1", "+time=2", *options, name, type_]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    result = parse_dig(text)
    if reply:
        assert result.status, f"dig gave no reply: {argv}\n{text}"
    return result


@pytest.fixture
def dig() -> Callable[..., Awaitable[DigResult]]:
    return _dig
