"""One run of a container's probe: tcpSocket, httpGet or exec, as the kubelet's prober does it.

`run_probe(...)` returns True (success) or False; `probe_once(...)` also says why, for logs and
events. What the results add up to (thresholds, initial delay, period) is `core.pods`' business;
this module only runs a probe once, within its `timeoutSeconds`.

    tcpSocket  open a TCP connection to host:port           success: it connects
    httpGet    GET http://host:port/path, HTTP/1.1           success: status 200..399
    exec       run the command (through `exec_runner`)       success: exit code 0

The host is the probe's `host`, else the pod's IP. A port given by name is looked up in the
container's ports (then in the pod's other containers). Where the sockets are opened is the
caller's: `connect(host, port, timeout)` is injected, so the agent can open them inside the
node's network namespace, and `exec_runner(argv, timeout)` runs the command inside the pod's
(see `make_exec_runner`). Nothing is retried: a refused connection, a timeout, an https probe
(clusterip speaks plain HTTP) or a grpc probe is a failure.

The HTTP client is deliberately tiny, because it runs every period for every pod: it writes one
request (`Host`, `User-Agent: clusterip-probe/1.0`, `Accept: */*`, `Connection: close`, then the
probe's `httpHeaders`, which replace a default of the same name), reads the status line and
nothing else, and closes. A redirect counts as success, as in the kubelet (which follows it
only to the same host; either way it is below 400).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from clusterip.core import model
from clusterip.core.pods import ProbeTimings, resolve_port

__all__ = [
    "Connect",
    "ExecRunner",
    "ProbeResult",
    "make_exec_runner",
    "probe_once",
    "run_probe",
]

log = logging.getLogger(__name__)

Connect = Callable[[str, int, float], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
ExecRunner = Callable[[list[str], float], Awaitable[int]]

USER_AGENT = "clusterip-probe/1.0"
_STATUS_LINE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    message: str = ""


async def run_probe(
    probe: model.Probe,
    *,
    pod_ip: str,
    container: model.Container,
    all_containers: Sequence[model.Container] = (),
    connect: Connect,
    exec_runner: ExecRunner,
) -> bool:
    """Run `probe` once; True when it succeeds (see the module docstring).

    Args:
        probe: the container's probe.
        pod_ip: the pod's IP, the host unless the probe names one.
        container: the container the probe belongs to (its named ports come first).
        all_containers: the pod's containers, for named ports of the others.
        connect: opens a TCP connection `(host, port, timeout) -> (reader, writer)`.
        exec_runner: runs a command `(argv, timeout) -> exit code`.
    """
    result = await probe_once(probe, pod_ip=pod_ip, container=container,
                              all_containers=all_containers, connect=connect,
                              exec_runner=exec_runner)
    return result.ok


async def probe_once(
    probe: model.Probe,
    *,
    pod_ip: str,
    container: model.Container,
    all_containers: Sequence[model.Container] = (),
    connect: Connect,
    exec_runner: ExecRunner,
) -> ProbeResult:
    """`run_probe`, with the reason of a failure (the kubelet's wording where it has one)."""
    timeout = ProbeTimings.of(probe).timeout
    containers = (container, *(c for c in all_containers if c.name != container.name))
    try:
        async with asyncio.timeout(timeout):
            if probe.exec is not None:
                return await _exec(probe.exec, timeout, exec_runner)
            if probe.http_get is not None:
                return await _http_get(probe.http_get, pod_ip, containers, timeout, connect)
            if probe.tcp_socket is not None:
                return await _tcp_socket(probe.tcp_socket, pod_ip, containers, timeout,
                                         connect)
            return _failed("the probe has no handler clusterip runs (exec, httpGet, tcpSocket)")
    except TimeoutError:
        return _failed(f"timeout: no answer within {timeout:g}s")
    except OSError as exc:
        return _failed(str(exc) or type(exc).__name__)


def _failed(message: str) -> ProbeResult:
    log.debug("probe failed reason=%s", message)
    return ProbeResult(False, message)


def _host(host: str, pod_ip: str) -> str:
    return host or pod_ip


async def _tcp_socket(action: model.TCPSocketAction, pod_ip: str,
                      containers: Sequence[model.Container], timeout: float,
                      connect: Connect) -> ProbeResult:
    port = resolve_port(containers, action.port)
    if port is None:
        return _failed(f"unknown port {action.port!r}")
    host = _host(action.host, pod_ip)
    _, writer = await connect(host, port, timeout)
    await _close(writer)
    return ProbeResult(True)


def _request(action: model.HTTPGetAction, host: str, port: int) -> bytes:
    path = action.path or "/"
    if not path.startswith("/"):
        path = "/" + path
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = {"host": ("Host", authority), "user-agent": ("User-Agent", USER_AGENT),
               "accept": ("Accept", "*/*")}
    for h in action.http_headers:
        headers[h.name.lower()] = (h.name, h.value)
    headers["connection"] = ("Connection", "close")
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.values()), "", ""]
    return "\r\n".join(lines).encode("latin-1", errors="replace")


async def _http_get(action: model.HTTPGetAction, pod_ip: str,
                    containers: Sequence[model.Container], timeout: float,
                    connect: Connect) -> ProbeResult:
    scheme = (action.scheme or "HTTP").upper()
    if scheme != "HTTP":
        return _failed(f"scheme {scheme} is not supported (clusterip probes plain HTTP)")
    port = resolve_port(containers, action.port)
    if port is None:
        return _failed(f"unknown port {action.port!r}")
    host = _host(action.host, pod_ip)
    reader, writer = await connect(host, port, timeout)
    try:
        writer.write(_request(action, host, port))
        await writer.drain()
        line = await reader.readline()
    except ValueError:  # a first line longer than the stream's limit: not HTTP
        return _failed("not an HTTP response: status line too long")
    finally:
        await _close(writer)
    status = _status_code(line[:_STATUS_LINE_LIMIT])
    if status is None:
        return _failed(f"not an HTTP response: {line[:80]!r}")
    if 200 <= status < 400:
        return ProbeResult(True, f"HTTP {status}")
    return _failed(f"HTTP probe failed with statuscode: {status}")


def _status_code(line: bytes) -> int | None:
    """The code of a status line (`HTTP/1.1 200 OK`), None if it is not one."""
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return None
    return int(parts[1])


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _exec(action: model.ExecAction, timeout: float, exec_runner: ExecRunner
                ) -> ProbeResult:
    if not action.command:
        return _failed("exec probe without a command")
    try:
        code = await exec_runner(list(action.command), timeout)
    except TimeoutError:
        raise
    except Exception as exc:  # the command could not run: a failure, not an agent error
        return _failed(f"exec probe could not run: {exc}")
    if code == 0:
        return ProbeResult(True)
    return _failed(f"command exited with code {code}")


def make_exec_runner(netns: str | None = None, *, env: Mapping[str, str] | None = None,
                     ip: str = "ip") -> ExecRunner:
    """An `exec_runner` running commands in `netns` (`ip netns exec`) or here, output
    discarded; a command still running at its timeout is killed (its whole process group)
    and the probe fails.

    Args:
        netns: the pod's network namespace (None: the caller's).
        env: the command's environment (None: the agent's own).
        ip: the `ip` program.
    """

    async def run(argv: list[str], timeout: float) -> int:
        command = [ip, "netns", "exec", netns, *argv] if netns else argv
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL, env=dict(env) if env is not None else None,
            start_new_session=True)
        try:
            async with asyncio.timeout(timeout):
                return await proc.wait()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.shield(proc.wait())

    return run
