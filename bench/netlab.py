"""A throwaway node with pods, in network namespaces, for the proxy benchmarks (as root).

`Lab` is what `proxy_nftables.py` and `proxy_userspace.py` share. It makes, each with a name of
its own (``cipb-<hex>-<role>``):

* the **node** namespace: bridge ``cbr0`` with a fixed MAC (02:c1:0a:f4:00:01: a bridge without
  one takes the lowest MAC of its ports and changes it when ports come and go) and 10.244.0.1/24,
  a route for the service CIDR 10.96.0.0/12 out of the bridge, and, written from inside it
  (``ip netns exec NODE sysctl``): ``net.ipv4.ip_forward=1``, ``send_redirects=0`` (all and the
  bridge) and ``net.bridge.bridge-nf-call-iptables=1`` (a pod's reply to a pod on the same
  bridge must pass conntrack to be un-DNATed, as `clusterip.runtime.podnet` sets it);
* **pod** namespaces, each joined to the bridge by a veth (``eth0`` in the pod, 10.244.0.N/24,
  default route via 10.244.0.1);
* processes in them: nginx (`nginx`: a config of its own in the lab's temporary directory,
  ``master_process off`` so that the one PID started is the server, ``return 200 "<pod>\\n"``
  on port 8080, keep-alive without limit), and whatever else a script starts (`start`);
* a temporary directory for configs and logs.

`tune_client` makes a pod a load generator that never waits for a port (``tcp_tw_reuse=1``,
ports 1024-65535, in that pod's namespace only).

`close()` (also `with Lab() as lab:`) ends every process the lab started, by its PID (SIGTERM,
then SIGKILL after 5 s), deletes every namespace it made (which removes the veths and the
bridge) and the temporary directory, pass or fail; SIGINT and SIGTERM are ignored meanwhile.
Outside the event loop `trap_sigterm()` turns SIGTERM into KeyboardInterrupt, so that it cleans
up as Ctrl-C does; `run_loop` runs the benchmark's coroutine on the server's own loop
(`clusterip.app.run_on`: uvloop when installed, never `uvloop.install`), and there SIGTERM
cancels it, as the runner does for SIGINT.
Nothing here touches the host's network namespace: every ``ip`` command names a namespace
(``ip -n``) and every process is started under ``ip netns exec``.

`wrk` runs wrk in a namespace (on the event loop, bounded by its duration plus a margin, killed
by PID if it overruns or is cancelled) and parses its summary; `wrk_spread_script` writes the
Lua ``setup`` that gives each wrk thread a different address (to load several pods directly,
as a Service would). `iperf3` does the same for an iperf3 client. `Lab.syn_retransmits` and
`Lab.rx_packets` read a namespace's counters (a load test must see no SYN retransmitted: each
holds a connection back a second), `cpu_seconds` a process's CPU time, and `paired_ratio` sums
up rounds as the median of the ratios within each round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clusterip.app import run_on

T = TypeVar("T")

NODE_IP = "10.244.0.1"
POD_PREFIX = "10.244.0"
BRIDGE = "cbr0"
BRIDGE_MAC = "02:c1:0a:f4:00:01"
SERVICE_CIDR = "10.96.0.0/12"
POD_PORT = 8080
NODE_NAME = "node-1"

TOOLS = ("ip", "ss", "nginx", "wrk", "curl")

NGINX_CONF = """\
master_process off;
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 16384;
    multi_accept on;
}}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {port} backlog=4096;
        location / {{
            return 200 "{name}\\n";
        }}
    }}
}}
"""

# Each wrk thread loads a different address (round robin), as a Service spreads connections.
WRK_SPREAD = """\
local targets = {{{targets}}}
local addrs = {{}}
local started = 0
function setup(thread)
    if #addrs == 0 then
        for _, target in ipairs(targets) do
            table.insert(addrs, wrk.lookup(target[1], target[2])[1])
        end
    end
    started = started + 1
    thread.addr = addrs[(started - 1) % #addrs + 1]
end
"""


def run(argv: Sequence[str], *, timeout: float = 30, stdin: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    """A short command, bounded in time; its stderr in the exception if it fails."""
    result = subprocess.run(list(argv), input=stdin, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {result.returncode}: {result.stderr.strip()}")
    return result


def trap_sigterm() -> None:
    """Outside the event loop: SIGTERM raises KeyboardInterrupt, so the `finally` blocks run
    as on Ctrl-C."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def run_loop(main: Coroutine[Any, Any, T], loop: str) -> T:
    """`main` on uvloop (`uvloop.run`, never `uvloop.install`) or asyncio. Inside it, SIGTERM
    cancels `main` (as the runner does for SIGINT): an exception raised by a Python signal
    handler would land in whatever callback runs, which a loop may log and go on. After it,
    SIGTERM is `trap_sigterm`'s again."""

    async def cancellable() -> T:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await main

    try:
        return run_on(cancellable(), loop)
    finally:
        trap_sigterm()


def missing_tools(extra: Sequence[str] = ()) -> list[str]:
    return [t for t in (*TOOLS, *extra)
            if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


@dataclass
class Pod:
    name: str  # the pod's role: "web-1", "client"
    netns: str
    ip: str


class Lab:
    """Namespaces, processes and files of one benchmark run; all removed by `close()`."""

    def __init__(self) -> None:
        self.id = secrets.token_hex(4)
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.async_processes: list[asyncio.subprocess.Process] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"cipb-{self.id}-"))
        self.node = ""
        self.pods: dict[str, Pod] = {}
        self._veths = 0

    # -- namespaces ------------------------------------------------------------------------

    def netns(self, role: str) -> str:
        """A new, empty namespace ``cipb-<hex>-<role>`` (loopback up)."""
        name = f"cipb-{self.id}-{role}"
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.ip(name, "link set lo up")
        return name

    @staticmethod
    def ip(netns: str, command: str) -> None:
        run(["ip", "-n", netns, *command.split()])

    @staticmethod
    def sysctl(netns: str, *settings: str) -> None:
        run(["ip", "netns", "exec", netns, "sysctl", "-qw", *settings])

    def make_node(self) -> str:
        """The node namespace: bridge, route for the service CIDR, forwarding, br_netfilter."""
        node = self.node = self.netns("node")
        self.ip(node, f"link add {BRIDGE} type bridge")
        self.ip(node, f"link set {BRIDGE} address {BRIDGE_MAC}")
        self.ip(node, f"addr add {NODE_IP}/24 dev {BRIDGE}")
        self.ip(node, f"link set {BRIDGE} up")
        self.ip(node, f"route add {SERVICE_CIDR} dev {BRIDGE}")
        self.sysctl(node, "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
                    f"net.ipv4.conf.{BRIDGE}.send_redirects=0")
        try:
            self.sysctl(node, "net.bridge.bridge-nf-call-iptables=1")
        except RuntimeError as e:
            raise RuntimeError("net.bridge.bridge-nf-call-iptables cannot be set in the node "
                               "namespace: is br_netfilter loaded? (modprobe br_netfilter)"
                               ) from e
        return node

    def add_pod(self, name: str, host: int) -> Pod:
        """A pod namespace ``cipb-<hex>-<name>`` on the bridge, 10.244.0.<host>/24."""
        assert self.node, "make_node() first"
        netns = self.netns(name)
        self._veths += 1
        veth = f"veth{self._veths}"
        ip = f"{POD_PREFIX}.{host}"
        self.ip(self.node, f"link add {veth} type veth peer name eth0 netns {netns}")
        self.ip(self.node, f"link set {veth} master {BRIDGE} up")
        self.ip(netns, f"addr add {ip}/24 dev eth0")
        self.ip(netns, "link set eth0 up")
        self.ip(netns, f"route add default via {NODE_IP}")
        pod = self.pods[name] = Pod(name, netns, ip)
        return pod

    def tune_client(self, pod: Pod) -> None:
        """Make `pod` a load generator that does not run out of ports: wrk closes first after
        a ``Connection: close`` response whenever its FIN comes later (through a proxy it
        does), and 28,000 ports in TIME_WAIT for 60 s cap it at ~470 new connections/s. So, in
        the pod's namespace only: reuse TIME_WAIT ports for new connections
        (``tcp_tw_reuse=1``, safe with timestamps) and use ports 1024-65535."""
        self.sysctl(pod.netns, "net.ipv4.tcp_tw_reuse=1",
                    "net.ipv4.ip_local_port_range=1024 65535")

    def add_loopback_address(self, netns: str, ip: str) -> None:
        self.ip(netns, f"addr add {ip}/32 dev lo")

    # -- processes -------------------------------------------------------------------------

    def start(self, netns: str, argv: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        """`argv` under ``ip netns exec`` (which execs it: the PID is the program's), its
        output in the lab's directory."""
        with open(self.tmp / f"{log_name}.log", "wb") as log:
            proc = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def log(self, log_name: str) -> str:
        path = self.tmp / f"{log_name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def nginx(self, pod: Pod) -> subprocess.Popen[bytes]:
        """nginx in `pod` on :8080, answering ``<pod name>\\n``; returns once it answers."""
        prefix = self.tmp / f"nginx-{pod.name}"
        prefix.mkdir()
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, port=POD_PORT, name=pod.name))
        proc = self.start(pod.netns, ["nginx", "-c", str(conf), "-p", str(prefix),
                                      "-e", str(prefix / "error.log")], f"nginx-{pod.name}")
        self.wait_listening(pod.netns, POD_PORT, proc, f"nginx-{pod.name}")
        return proc

    def wait_listening(self, netns: str, port: int, proc: subprocess.Popen[bytes],
                       log_name: str, timeout: float = 10.0) -> None:
        """Until a TCP socket listens on `port` in `netns` (``ss``: nothing connects, so a
        server that counts connections sees none); `proc` must stay alive meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{log_name} exited with {proc.returncode}: "
                                   f"{self.log(log_name)[-2000:]}")
            out = run(["ip", "netns", "exec", netns, "ss", "-Hltn", f"sport = :{port}"],
                      timeout=5).stdout
            if out.strip():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{log_name}: nothing listens on :{port} in {netns}")
            time.sleep(0.05)

    async def curl_bodies(self, netns: str, url: str, count: int) -> list[str]:
        """`count` GETs of `url` from `netns`, a new connection each; the bodies (curl fails
        on any error, a 2 s bound per request)."""
        out = await self.run_async(["ip", "netns", "exec", netns, "curl", "-sS", "--fail",
                                    "--max-time", "2", "-H", "Connection: close",
                                    *([url] * count)], timeout=10 + 2 * count)
        return out.split()

    @staticmethod
    def syn_retransmits(netns: str) -> int:
        """SYNs retransmitted from `netns` so far (TcpExt TCPSynRetrans): each one held a
        connection back for a second or more, so a load test must keep them near zero."""
        lines = run(["ip", "netns", "exec", netns, "cat", "/proc/net/netstat"]).stdout.split("\n")
        for header, values in zip(lines[::2], lines[1::2], strict=False):
            if header.startswith("TcpExt:"):
                fields = dict(zip(header.split()[1:], values.split()[1:], strict=True))
                return int(fields.get("TCPSynRetrans", 0))
        return 0

    @staticmethod
    def rx_packets(netns: str) -> int:
        """Packets received on the pod's eth0 so far."""
        out = run(["ip", "-n", netns, "-s", "-j", "link", "show", "eth0"]).stdout
        return int(json.loads(out)[0]["stats64"]["rx"]["packets"])

    async def run_async(self, argv: Sequence[str], timeout: float) -> str:
        """`argv` on the event loop (the loop keeps serving); its stdout. Killed by PID if
        it overruns `timeout` or the caller is cancelled."""
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        self.async_processes.append(proc)
        try:
            async with asyncio.timeout(timeout):
                stdout, stderr = await proc.communicate()
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
            self.async_processes.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: "
                               f"{stderr.decode(errors='replace').strip()}")
        return stdout.decode(errors="replace")

    # -- cleanup ---------------------------------------------------------------------------

    def close(self) -> None:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for aproc in list(self.async_processes):  # only if the loop died under them
                if aproc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(aproc.pid, signal.SIGKILL)
            for proc in self.processes:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in self.processes:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for name in reversed(self.namespaces):
                result = run(["ip", "netns", "delete", name], check=False)
                if result.returncode != 0:
                    print(f"warning: ip netns delete {name}: {result.stderr.strip()}")
            self.namespaces.clear()
            shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- load generators ------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and non-2xx answers
    requests: int


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(out: str) -> WrkResult:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and requests and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), errors,
                     int(requests.group(1)))


def wrk_spread_script(lab: Lab, targets: Sequence[tuple[str, int]]) -> Path:
    """A wrk Lua script whose threads load `targets` round robin (thread i → target i)."""
    path = lab.tmp / f"spread-{len(targets)}-{secrets.token_hex(2)}.lua"
    path.write_text(WRK_SPREAD.format(
        targets=", ".join(f'{{"{ip}", "{port}"}}' for ip, port in targets)))
    return path


async def wrk(lab: Lab, netns: str, url: str, *, seconds: int, threads: int, connections: int,
              close: bool, script: Path | None = None) -> WrkResult:
    """wrk in `netns` against `url`: keep-alive, or a new connection per request (`close`)."""
    argv = ["ip", "netns", "exec", netns, "wrk", f"-t{threads}", f"-c{connections}",
            f"-d{seconds}s", "--timeout", "2s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    if script is not None:
        argv += ["-s", str(script)]
    out = await lab.run_async([*argv, url], timeout=seconds + 30)
    return parse_wrk(out)


async def iperf3(lab: Lab, netns: str, host: str, port: int, seconds: int) -> float:
    """iperf3 from `netns` to `host`:`port` for `seconds`; Gbit/s received."""
    out = await lab.run_async(["ip", "netns", "exec", netns, "iperf3", "-c", host, "-p",
                               str(port), "-t", str(seconds), "-J"], timeout=seconds + 30)
    result = json.loads(out)
    if "error" in result:
        raise RuntimeError(f"iperf3 to {host}:{port}: {result['error']}")
    return float(result["end"]["sum_received"]["bits_per_second"]) / 1e9


# --- numbers --------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: int) -> float:
    """The `p`-th percentile, interpolated between samples (within their range)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def paired_ratio(ours: Sequence[float], reference: Sequence[float]) -> str:
    """The median of the per-round ratios (each round measures both, close in time, so a
    change in the machine's load cancels out), and their range: ``0.94 (0.81–1.06)``."""
    ratios = [a / b for a, b in zip(ours, reference, strict=True) if b]
    if not ratios:
        return "-"
    if len(ratios) == 1:
        return f"{ratios[0]:.2f}"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"


def spread(values: Sequence[float]) -> str:
    """``min–max`` of the rounds, as a hint of the noise."""
    return f"{min(values):,.0f}–{max(values):,.0f}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A plain text table, columns left-aligned except the numbers."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = []
    for n, row in enumerate((header, *rows)):
        cells = [cell.ljust(widths[i]) if i == 0 or n == 0 else cell.rjust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the seconds it took."""
    result: list[float] = []
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.append(time.perf_counter() - start)
