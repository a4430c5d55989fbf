"""runtime.probes: one run of an httpGet, tcpSocket or exec probe, against a local asyncio
server on 127.0.0.1:0 and real `true`/`false` commands (no root, no namespaces).

Conventions: `connect` is `asyncio.open_connection` on loopback with the probe's timeout; the
"pod" is 127.0.0.1; the container `main` names the server's port `http`. A server that must not
answer waits on an event the test never sets (the probe's 1 s timeout ends the wait).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from clusterip.core import model as m
from clusterip.runtime.probes import make_exec_runner, probe_once, run_probe
from clusterip.testing.builders import container_port

pytestmark = pytest.mark.anyio

POD_IP = "127.0.0.1"
DEADLINE = 10.0


async def connect(host: str, port: int, timeout: float
                  ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(host, port), timeout)


async def no_exec(argv: list[str], timeout: float) -> int:
    raise AssertionError("this probe runs no command")


class Server:
    """A tiny HTTP server: answers `status` (None: never answers), records the requests."""

    def __init__(self) -> None:
        self.status: int | None = 200
        self.requests: list[list[str]] = []
        self.port = 0
        self._never = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = []
        while (line := await reader.readline()) not in (b"\r\n", b""):
            lines.append(line.decode().rstrip("\r\n"))
        self.requests.append(lines)
        if self.status is None:
            await self._never.wait()
        writer.write(f"HTTP/1.1 {self.status} Whatever\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    listener = await asyncio.start_server(srv.handle, POD_IP, 0)
    srv.port = listener.sockets[0].getsockname()[1]
    try:
        yield srv
    finally:
        listener.close()


def container(port: int) -> m.Container:
    return m.Container(name="main", command=("server",), ports=(container_port(port, name="http"),))


async def probe_ok(p: m.Probe, c: m.Container, exec_runner: object = no_exec) -> bool:
    with anyio.fail_after(DEADLINE):
        return await run_probe(p, pod_ip=POD_IP, container=c, all_containers=(c,),
                               connect=connect, exec_runner=exec_runner)  # type: ignore[arg-type]


def http(port: int | str, **kwargs: object) -> m.Probe:
    return m.Probe(http_get=m.HTTPGetAction(port=port, **kwargs))  # type: ignore[arg-type]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((POD_IP, 0))
        port: int = s.getsockname()[1]
    return port


# --- httpGet ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "ok"), [
    pytest.param(200, True, id="200-ok"),
    pytest.param(204, True, id="204-ok"),
    pytest.param(302, True, id="redirect-ok"),
    pytest.param(404, False, id="404-fails"),
    pytest.param(500, False, id="500-fails"),
])
async def test_http_status(server: Server, status: int, ok: bool) -> None:
    server.status = status
    assert await probe_ok(http(server.port, path="/healthz"), container(server.port)) is ok


async def test_http_request_sent(server: Server) -> None:
    p = http("http", path="/ready?x=1", http_headers=(
        m.HTTPHeader(name="X-Probe", value="yes"), m.HTTPHeader(name="user-agent", value="mine")))
    assert await probe_ok(p, container(server.port))
    [request] = server.requests
    assert request[0] == "GET /ready?x=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in request[1:])
    assert headers == {
        "Host": f"{POD_IP}:{server.port}",
        "user-agent": "mine",
        "Accept": "*/*",
        "X-Probe": "yes",
        "Connection": "close",
    }


async def test_http_defaults_path_and_user_agent(server: Server) -> None:
    assert await probe_ok(http(server.port), container(server.port))
    [request] = server.requests
    assert request[0] == "GET / HTTP/1.1"
    assert "User-Agent: clusterip-probe/1.0" in request


async def test_http_timeout_fails(server: Server) -> None:
    server.status = None
    p = http(server.port, path="/")
    c = container(server.port)
    with anyio.fail_after(DEADLINE):
        result = await probe_once(p, pod_ip=POD_IP, container=c, connect=connect,
                                  exec_runner=no_exec)
    assert not result.ok
    assert "timeout" in result.message


async def test_http_refused_fails() -> None:
    port = free_port()
    assert not await probe_ok(http(port), container(port))


async def test_https_fails_with_a_reason(server: Server) -> None:
    p = http(server.port, scheme="HTTPS")
    result = await probe_once(p, pod_ip=POD_IP, container=container(server.port),
                              connect=connect, exec_runner=no_exec)
    assert not result.ok and "HTTPS" in result.message
    assert server.requests == []


async def test_unknown_named_port_fails(server: Server) -> None:
    assert not await probe_ok(http("metrics"), container(server.port))


async def test_named_port_of_another_container(server: Server) -> None:
    main = m.Container(name="main", command=("x",))
    side = m.Container(name="side", command=("y",),
                       ports=(container_port(server.port, name="admin"),))
    with anyio.fail_after(DEADLINE):
        assert await run_probe(http("admin"), pod_ip=POD_IP, container=main,
                               all_containers=(main, side), connect=connect,
                               exec_runner=no_exec)


async def test_probe_host_overrides_the_pod_ip(server: Server) -> None:
    p = http(server.port, host=POD_IP)
    with anyio.fail_after(DEADLINE):
        assert await run_probe(p, pod_ip="192.0.2.1", container=container(server.port),
                               connect=connect, exec_runner=no_exec)


async def test_not_http_fails() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(garbage, POD_IP, 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        assert not await probe_ok(http(port), container(port))
    finally:
        listener.close()


# --- tcpSocket ----------------------------------------------------------------------------------


async def test_tcp_socket(server: Server) -> None:
    assert await probe_ok(m.Probe(tcp_socket=m.TCPSocketAction(port="http")),
                          container(server.port))
    port = free_port()
    assert not await probe_ok(m.Probe(tcp_socket=m.TCPSocketAction(port=port)), container(port))


# --- exec and the rest --------------------------------------------------------------------------


@pytest.mark.parametrize(("command", "ok"), [
    pytest.param(("true",), True, id="true"),
    pytest.param(("false",), False, id="false"),
    pytest.param(("sh", "-c", "exit 3"), False, id="exit-3"),
    pytest.param(("no-such-program-cipt",), False, id="cannot-run"),
])
async def test_exec(command: tuple[str, ...], ok: bool) -> None:
    p = m.Probe(exec=m.ExecAction(command=command))
    assert await probe_ok(p, container(80), make_exec_runner()) is ok


async def test_exec_timeout_fails_and_kills_the_command() -> None:
    p = m.Probe(exec=m.ExecAction(command=("sleep", "30")), timeout_seconds=1)
    with anyio.fail_after(DEADLINE):
        result = await probe_once(p, pod_ip=POD_IP, container=container(80), connect=connect,
                                  exec_runner=make_exec_runner())
    assert not result.ok and "timeout" in result.message


async def test_exec_command_goes_to_the_runner_unchanged() -> None:
    seen: list[tuple[list[str], float]] = []

    async def runner(argv: list[str], timeout: float) -> int:
        seen.append((argv, timeout))
        return 0

    p = m.Probe(exec=m.ExecAction(command=("cat", "/tmp/healthy")), timeout_seconds=2)
    assert await probe_ok(p, container(80), runner)
    assert seen == [(["cat", "/tmp/healthy"], 2.0)]


async def test_exec_runner_in_a_netns_uses_ip_netns_exec(tmp_path: Path) -> None:
    """With a stand-in `ip` that succeeds only for `netns exec cipt-pod true`."""
    ip = tmp_path / "ip"
    ip.write_text('#!/bin/sh\n[ "$*" = "netns exec cipt-pod true" ]\n')
    ip.chmod(0o755)
    run = make_exec_runner("cipt-pod", ip=str(ip))
    with anyio.fail_after(DEADLINE):
        assert await run(["true"], 5) == 0
        assert await run(["false"], 5) == 1


async def test_grpc_and_empty_probes_fail() -> None:
    assert not await probe_ok(m.Probe(grpc={"port": 9000}), container(80))
    assert not await probe_ok(m.Probe(), container(80))
