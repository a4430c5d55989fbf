"""What autopath saves a glibc client: queries and time per lookup, with and without it (as root).

A pod's resolv.conf (`core.pods.resolv_conf`) has ``ndots:5`` and the search list
``default.svc.cluster.local svc.cluster.local cluster.local``, so glibc tries
``www.example.com.default.svc.cluster.local`` first and, without autopath, walks the whole list
(NXDOMAIN three times) before it asks ``www.example.com.`` itself. With autopath the cluster
DNS answers the first query with ``CNAME www.example.com.`` and the upstream's records. This
script counts what a real glibc sends, and times it.

What it does, each step bounded in time:

1. Makes two network namespaces with unique names (``cipb-<hex>-node``, ``cipb-<hex>-pod``)
   joined by a veth pair made inside them (``ip -n``: the host's namespace is never touched).
   Node: 10.244.0.1/24 on its veth end, 10.96.0.10/32 on lo. Pod: 10.244.0.5/24, a default
   route via 10.244.0.1. No link leads out of the two. It waits until the pod's eth0 has its
   IPv6 link-local address (as every pod soon has): glibc's AI_ADDRCONFIG counts it, so
   ``getent ahosts`` asks A only before it appears and A+AAAA after.
2. The upstream: a tiny dnspython server in a process of its own (this script with
   ``--upstream``, under ``ip netns exec <node>``) on 127.0.0.1:<free port>, UDP and TCP,
   authoritative for ``example.com.`` (``www.example.com`` A 93.184.216.34, AAAA 2606:2800::1),
   NXDOMAIN for everything else. It writes a line per query it gets before it replies.
3. The cluster DNS (`serve_dns`, `UpstreamForwarder` to that upstream), in this process, on an
   asyncio loop in a thread that entered the node namespace first (`setns_thread`), so every
   socket the loop makes, the forwarder's included, lives there; bound to 10.96.0.10:53, UDP
   and TCP. It serves one of two views of the same Services (``web`` in ``default``,
   10.96.0.20; ``kube-dns`` in ``kube-system``): **on** also holds a Pod whose IP is 10.244.0.5
   in ``default`` (the client is a known pod: autopath applies), **off** does not (an unknown
   client: no autopath). A `Responder` subclass logs every query and the time `respond` took.
4. Writes ``/etc/netns/<pod>/`` with the pod's resolv.conf (``nameserver 10.96.0.10``), an
   ``nsswitch.conf`` of ``hosts: files dns`` and a ``hosts`` of localhost only, which
   ``ip netns exec`` bind-mounts over /etc: the host's resolver, hosts file and NSS modules are
   never used (it checks what the pod sees, and that no nscd is running, before measuring).
5. Starts one ``ip netns exec <pod> python3`` (the pod agent) that runs one lookup per line it
   reads and times it itself: a ``getent ahosts|hosts NAME`` process, or
   ``socket.getaddrinfo(NAME, 80)`` in its own process. For each client, N lookups (default
   20) with each view, one at a time, the views alternating (on off, off on, ...: a change in
   the machine's load falls on both). The queries the cluster DNS and the upstream logged
   during a lookup are that lookup's. Every lookup must return the address expected or the
   script fails (``getent hosts`` calls gethostbyname2(AF_INET6) first: AAAA only, so it
   shows the IPv6 address).
6. Then one more lookup per client and view, not counted, with an AF_PACKET capture on the
   node's veth end (kernel timestamps, both directions): what glibc really sends, from which
   port, when, and when each reply leaves (its times only illustrate: the capture thread
   shares this process's GIL with the cluster DNS).
7. Prints, per client and view: cluster DNS queries per lookup, upstream queries per lookup,
   time in `respond` per lookup, median wall time of a lookup (getent: fork and exec
   included, which the ``getent hosts localhost`` row, with no DNS, shows), the ratios on/off;
   then the traces of step 6.

Everything is removed at the end, pass or fail: the two namespaces (and so the veth pair),
``/etc/netns/<pod>`` (and ``/etc/netns`` if this run made it and it is empty), the pod agent
and the upstream (by PID), the server and capture threads. Traffic stays inside the two
namespaces.

    sudo python bench/dns_autopath.py [--lookups 20] [--timeout 10] [--deadline 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from clusterip.core import model as m
from clusterip.core.dnsanswer import Answer, Forward, Responder, Transport
from clusterip.core.dnsview import build_view
from clusterip.core.pods import resolv_conf
from clusterip.dnsserver.forward import UpstreamForwarder
from clusterip.dnsserver.server import serve_dns
from clusterip.runtime.netlink import netns_path, setns_thread
from clusterip.testing.builders import make_pod, make_service, port

DNS_IP = "10.96.0.10"
NODE_IP = "10.244.0.1"
POD_IP = "10.244.0.5"
WEB_IP = "10.96.0.20"
WWW_V4 = "93.184.216.34"
WWW_V6 = "2606:2800::1"
EXTERNAL = "www.example.com"
START_TIMEOUT = 15.0

NSSWITCH = "hosts: files dns\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n"

POD_AGENT = """
import json, socket, subprocess, sys, time
for line in sys.stdin:
    job = json.loads(line)
    start = time.perf_counter()
    if job["argv"]:
        done = subprocess.run(job["argv"], capture_output=True, text=True, timeout=job["timeout"])
        seconds = time.perf_counter() - start
        output = done.stdout + (f" (exit {done.returncode}) {done.stderr}"
                                if done.returncode else "")
    else:
        try:
            infos = socket.getaddrinfo(job["name"], 80, type=socket.SOCK_STREAM)
            seconds = time.perf_counter() - start
            output = " ".join(sorted({i[4][0] for i in infos}))
        except OSError as e:
            seconds, output = time.perf_counter() - start, str(e)
    print(json.dumps({"seconds": seconds, "output": output}), flush=True)
"""


# --- what the servers log ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Seen:
    """One query as a server got it (the wire is parsed only when printed)."""

    at: float  # time.time() when it arrived (the clock of the packet capture's timestamps)
    wire: bytes
    took: float = 0.0  # seconds in `Responder.respond` (the cluster DNS only)


def describe(wire: bytes) -> str:
    try:
        q = dns.message.from_wire(wire)
        question = q.question[0]
        return f"{dns.rdatatype.to_text(question.rdtype)} {question.name}"
    except Exception as exc:  # a bench shows what it got, whatever it is
        return f"<unparsable: {exc!r}>"


def answer_outcome(wire: bytes) -> str:
    if len(wire) < 12:
        return "<short>"
    rcode = wire[3] & 0x0F
    count = int.from_bytes(wire[6:8], "big")
    if rcode == dns.rcode.NOERROR:
        return f"NOERROR {count} rr" if count else "NODATA"
    return dns.rcode.to_text(dns.rcode.Rcode(rcode))


class LoggingResponder(Responder):
    """A `Responder` that appends every query it answers to `log` (list.append: thread-safe)."""

    def __init__(self, view: Any, log: list[Seen]) -> None:
        super().__init__(view)
        self.log = log

    def respond(
        self, wire: bytes, *, transport: Transport, client_ip: str | None = None
    ) -> Answer | Forward | None:
        at = time.time()
        start = time.perf_counter()
        result = super().respond(wire, transport=transport, client_ip=client_ip)
        self.log.append(Seen(at, bytes(wire), time.perf_counter() - start))
        return result


# --- the upstream (a process of its own: `--upstream`) -------------------------------------

ORIGIN = dns.name.from_text("example.com.")
WWW = dns.name.from_text(f"{EXTERNAL}.")


def upstream_reply(wire: bytes) -> bytes | None:
    """What a tiny authoritative-like server for example.com. answers (NXDOMAIN elsewhere)."""
    try:
        query = dns.message.from_wire(wire)
    except Exception:
        return None
    if query.flags & dns.flags.QR or len(query.question) != 1:
        return None
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.RA
    question = query.question[0]
    name, rdtype = question.name, question.rdtype
    if name.is_subdomain(ORIGIN):
        reply.flags |= dns.flags.AA
        soa_owner, soa = ORIGIN, "ns.example.com. hostmaster.example.com. 1 7200 1800 86400 60"
    else:
        soa_owner, soa = dns.name.root, ("a.root-servers.net. nstld.verisign-grs.com. "
                                         "1 1800 900 604800 86400")
    records = {dns.rdatatype.A: WWW_V4, dns.rdatatype.AAAA: WWW_V6}
    if name == WWW and rdtype in records:
        reply.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, records[rdtype]))
    else:
        if name not in (WWW, ORIGIN):
            reply.set_rcode(dns.rcode.NXDOMAIN)
        reply.authority.append(dns.rrset.from_text(soa_owner, 60, "IN", "SOA", soa))
    return reply.to_wire()


def note_query(wire: bytes, transport: str) -> None:
    """One line per query on stdout, written (and flushed) before the reply is sent."""
    sys.stdout.write(f"{time.time():.6f} {transport} {wire.hex()}\n")
    sys.stdout.flush()


class UpstreamUdp(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        note_query(data, "udp")
        reply = upstream_reply(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def upstream_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(10):
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                note_query(data, "tcp")
                reply = upstream_reply(data)
                if reply is not None:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, OSError):
        pass
    finally:
        writer.close()


async def serve_upstream() -> None:
    loop = asyncio.get_running_loop()
    udp, _ = await loop.create_datagram_endpoint(UpstreamUdp, local_addr=("127.0.0.1", 0))
    number = int(udp.get_extra_info("sockname")[1])
    tcp = await asyncio.start_server(upstream_tcp, "127.0.0.1", number)
    print(f"ready {number}", flush=True)
    try:
        await loop.create_future()  # until the parent ends this process
    finally:
        udp.close()
        tcp.close()


class UpstreamProcess:
    """The upstream, started under ``ip netns exec <node>``; `drain` reads what it logged."""

    def __init__(self, netns: str) -> None:
        self.log: list[Seen] = []
        self.port = 0
        self._buffer = b""
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, os.path.abspath(__file__),
             "--upstream"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)

    def start(self) -> None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
        line = self.proc.stdout.readline().decode() if ready else ""
        if not line.startswith("ready "):
            raise RuntimeError(f"the upstream did not start: {line!r}")
        self.port = int(line.split()[1])
        fd = self.proc.stdout.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)

    def drain(self) -> None:
        """Everything it logged so far (a query is logged before its reply is sent, so once a
        lookup has its answer, its upstream queries are in the pipe)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            at, _transport, wire = line.decode().split()
            self.log.append(Seen(float(at), bytes.fromhex(wire)))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the cluster DNS: a loop in a thread inside the node namespace -------------------------


def enter_netns(netns: str) -> None:
    """Move the calling thread (only it) into `netns`."""
    fd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns_thread(fd)
    finally:
        os.close(fd)


class LoopThread:
    """An asyncio loop in a thread of its own that entered `netns` first, so that every socket
    made on the loop lives there. `main(ready)` runs until `stop`."""

    def __init__(self, name: str, netns: str,
                 main: Callable[[Callable[[], None]], Coroutine[Any, Any, Any]]) -> None:
        self.name = name
        self._netns = netns
        self._main = main
        self._ready = threading.Event()
        self._failed: list[BaseException] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._thread: threading.Thread | None = None

    async def _wrapped(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        await self._main(self._ready.set)

    def _run(self) -> None:
        try:
            enter_netns(self._netns)
            asyncio.run(self._wrapped())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed to the main thread
            self._failed.append(exc)
        finally:
            self._ready.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"{self.name} did not start in time")
        if self._failed:
            raise RuntimeError(f"{self.name} failed: {self._failed[0]!r}") from self._failed[0]

    def stop(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(10)
            if self._thread.is_alive():
                print(f"warning: {self.name} did not end", file=sys.stderr)


class Node:
    """The cluster DNS (this process) and the upstream (a process), both in the node netns."""

    def __init__(self, netns: str) -> None:
        self.netns = netns
        self.cluster_log: list[Seen] = []
        services = [
            make_service("web", ports=[port(80, name="http")], cluster_ip=WEB_IP),
            make_service("kube-dns", namespace="kube-system", cluster_ip=DNS_IP,
                         ports=[port(53, name="dns", protocol="UDP")]),
        ]
        client: m.Pod = make_pod("client", ip=POD_IP, ready=True)
        other: m.Pod = make_pod("web-1", labels={"app": "web"}, ip="10.244.0.7", ready=True)
        self.views: dict[str, Responder] = {
            "on": LoggingResponder(build_view(services, [], [client, other]), self.cluster_log),
            "off": LoggingResponder(build_view(services, [], [other]), self.cluster_log),
        }
        self.current = "on"
        self.upstream: UpstreamProcess | None = None
        self.dns: LoopThread | None = None

    def responder(self) -> Responder:
        return self.views[self.current]

    async def _serve(self, ready: Callable[[], None]) -> None:
        assert self.upstream is not None
        forwarder = UpstreamForwarder([("127.0.0.1", self.upstream.port)])
        await serve_dns(self.responder, forwarder, host=DNS_IP, port=53,
                        ready=lambda _addresses: ready())

    def start(self) -> None:
        self.upstream = UpstreamProcess(self.netns)
        self.upstream.start()
        self.dns = LoopThread("cluster-dns", self.netns, self._serve)
        self.dns.start()

    def stop(self) -> None:
        if self.dns is not None:
            self.dns.stop()
        if self.upstream is not None:
            self.upstream.stop()


# --- a packet capture on the node's veth end -----------------------------------------------

_SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD = SCM_TIMESTAMPNS (asm-generic/socket.h)
_ETH_P_IP = 0x0800
_ETH_P_ALL = 0x0003  # a socket bound to ETH_P_IP alone would not see outgoing packets


@dataclass(frozen=True, slots=True)
class Packet:
    at: float  # the kernel's timestamp, time.time() clock
    src: tuple[str, int]
    dst: tuple[str, int]
    payload: bytes


def parse_udp(at: float, data: bytes) -> Packet | None:
    if len(data) < 20 or data[0] >> 4 != 4 or data[9] != socket.IPPROTO_UDP:
        return None
    ihl = (data[0] & 0x0F) * 4
    if len(data) < ihl + 8:
        return None
    sport, dport = struct.unpack_from("!HH", data, ihl)
    if 53 not in (sport, dport):
        return None
    src, dst = socket.inet_ntoa(data[12:16]), socket.inet_ntoa(data[16:20])
    return Packet(at, (src, sport), (dst, dport), data[ihl + 8:])


class Capture:
    """Every IPv4 UDP packet to or from port 53 on an interface of `netns`, both ways, with the
    kernel's timestamp: what the client really sent, from which port, and when. Read-only."""

    def __init__(self, netns: str, ifname: str) -> None:
        self.packets: list[Packet] = []
        self.untimed = 0  # packets without a kernel timestamp (timed when read instead)
        self._netns = netns
        self._ifname = ifname
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._failed: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def _run(self) -> None:
        try:
            enter_netns(self._netns)
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(_ETH_P_ALL))
        except BaseException as exc:
            self._failed.append(exc)
            self._ready.set()
            return
        with sock:
            try:
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                sock.bind((self._ifname, _ETH_P_ALL))
                sock.settimeout(0.1)
            except BaseException as exc:
                self._failed.append(exc)
                return
            finally:
                self._ready.set()
            while not self._stop.is_set():
                try:
                    data, ancdata, _, address = sock.recvmsg(65535, 64)
                except TimeoutError:
                    continue
                if address[1] != _ETH_P_IP:
                    continue
                at = None
                for level, kind, value in ancdata:
                    if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        at = sec + nsec / 1e9
                if at is None:
                    self.untimed += 1
                    at = time.time()
                packet = parse_udp(at, data)
                if packet is not None:
                    self.packets.append(packet)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(START_TIMEOUT)
        if self._failed:
            raise RuntimeError(f"packet capture failed: {self._failed[0]!r}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


# --- namespaces and files ------------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=10, capture_output=True, text=True)


def make_network(node: str, pod: str) -> None:
    # The pair is made inside the node namespace, its peer directly inside the pod's.
    ip("-n", node, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", pod)
    ip("-n", node, "link", "set", "lo", "up")
    ip("-n", node, "addr", "add", f"{DNS_IP}/32", "dev", "lo")
    ip("-n", node, "addr", "add", f"{NODE_IP}/24", "dev", "veth0")
    ip("-n", node, "link", "set", "veth0", "up")
    ip("-n", pod, "link", "set", "lo", "up")
    ip("-n", pod, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
    ip("-n", pod, "link", "set", "eth0", "up")
    ip("-n", pod, "route", "add", "default", "via", NODE_IP)


def wait_link_local(pod: str, timeout: float = 10.0) -> str:
    """Wait until the pod's eth0 has its IPv6 link-local address past duplicate address
    detection. Returns it, or a note when none came (IPv6 off)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["ip", "-n", pod, "-6", "-o", "addr", "show", "dev", "eth0",
                              "scope", "link"], capture_output=True, text=True, timeout=10).stdout
        settled = [line.split()[3] for line in out.splitlines() if "tentative" not in line]
        if settled:
            return settled[0]
        if time.monotonic() > deadline:
            return f"none after {timeout:.0f} s ({out.strip() or 'IPv6 off?'})"
        time.sleep(0.1)


def write_etc(folder: Path) -> None:
    (folder / "resolv.conf").write_text(resolv_conf("default", nameserver=DNS_IP))
    (folder / "nsswitch.conf").write_text(NSSWITCH)
    (folder / "hosts").write_text(HOSTS)


def check_pod_view(pod: str) -> None:
    """The pod must see our resolv.conf, nsswitch.conf and hosts, not the host's."""
    for name, want in (("resolv.conf", resolv_conf("default", nameserver=DNS_IP)),
                       ("nsswitch.conf", NSSWITCH), ("hosts", HOSTS)):
        got = subprocess.run(["ip", "netns", "exec", pod, "cat", f"/etc/{name}"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        if got != want:
            raise RuntimeError(f"the pod sees another /etc/{name}:\n{got}")
    if Path("/var/run/nscd/socket").exists():
        raise RuntimeError("nscd is running: glibc would ask it (the host's resolver)")


# --- clients -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    label: str
    argv: tuple[str, ...]  # getent's arguments; empty: Python's getaddrinfo
    name: str
    expect: str  # an address that must be in the output


CLIENTS = (
    Client(f"getent ahosts {EXTERNAL}", ("ahosts", EXTERNAL), EXTERNAL, WWW_V4),
    Client(f"getent hosts {EXTERNAL}", ("hosts", EXTERNAL), EXTERNAL, WWW_V6),
    Client(f"python getaddrinfo {EXTERNAL}", (), EXTERNAL, WWW_V4),
    Client("getent ahosts web", ("ahosts", "web"), "web", WEB_IP),
    Client("getent hosts web", ("hosts", "web"), "web", WEB_IP),
    Client("getent hosts localhost", ("hosts", "localhost"), "localhost", "::1"),
)


class PodAgent:
    """One `python3` in the pod namespace (started by `ip netns exec`, so it and its children
    see the pod's /etc files) that runs one lookup per JSON line it reads and times it itself:
    a getent process, or a getaddrinfo call in its own process."""

    def __init__(self, pod: str, timeout: float) -> None:
        self.timeout = timeout
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", pod, sys.executable, "-I", "-c", POD_AGENT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def lookup(self, client: Client) -> tuple[float, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        argv = ["getent", *client.argv] if client.argv else []
        job = {"argv": argv, "name": client.name, "timeout": self.timeout}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        # One line out per line in: nothing waits in the reader's buffer when select() looks.
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout + 5)
        if not ready:
            raise RuntimeError(f"{client.label}: no answer in {self.timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the pod agent exited with {self.proc.wait()}")
        got = json.loads(line)
        return float(got["seconds"]), str(got["output"])

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Result:
    seconds: list[float] = field(default_factory=list)
    cluster: list[int] = field(default_factory=list)
    upstream: list[int] = field(default_factory=list)
    respond: list[float] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # time.time() around the traced lookup

    @staticmethod
    def mean(values: list[int] | list[float]) -> float:
        return sum(values) / len(values)


def lookup(node: Node, agent: PodAgent, client: Client, view: str, result: Result,
           what: str) -> None:
    """One lookup with `view`, checked, its figures added to `result`."""
    assert node.upstream is not None
    node.current = view
    node.upstream.drain()
    c0, u0 = len(node.cluster_log), len(node.upstream.log)
    t0 = time.time()
    seconds, output = agent.lookup(client)
    t1 = time.time()
    node.upstream.drain()
    c1, u1 = len(node.cluster_log), len(node.upstream.log)
    if client.expect not in output.split():
        raise RuntimeError(f"{client.label} (autopath {view}, {what}) did not return "
                           f"{client.expect}: {output!r}")
    result.seconds.append(seconds)
    result.cluster.append(c1 - c0)
    result.upstream.append(u1 - u0)
    result.respond.append(sum(s.took for s in node.cluster_log[c0:c1]))
    result.window = (t0, t1)


def measure(node: Node, agent: PodAgent, client: Client, args: argparse.Namespace,
            deadline: float) -> dict[str, Result]:
    """`args.lookups` lookups with each view, alternating (on off, off on, ...) so that a
    change in the machine's load falls on both alike."""
    results = {"on": Result(), "off": Result()}
    for i in range(args.lookups):
        for view in ("on", "off") if i % 2 == 0 else ("off", "on"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"over --deadline {args.deadline} s")
            lookup(node, agent, client, view, results[view], f"lookup {i + 1}")
    return results


# --- report --------------------------------------------------------------------------------


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def table(results: dict[tuple[str, str], Result], lookups: int) -> None:
    print(f"{lookups} lookups per row, one at a time, on and off alternating; client {POD_IP} "
          "(autopath on: a known pod of 'default'; off: unknown)")
    head = (f"{'client':<36} {'autopath':<8} {'dns q':>6} {'upstream q':>10} "
            f"{'respond ms':>10} {'median ms':>10}")
    print(head)
    print("-" * len(head))
    for client in CLIENTS:
        rows = []
        for view in ("on", "off"):
            r = results[(client.label, view)]
            rows.append((view, r.mean(r.cluster), r.mean(r.upstream), r.mean(r.respond) * 1000,
                         statistics.median(r.seconds) * 1000))
        for i, (view, q, u, cpu, ms) in enumerate(rows):
            label = client.label if i == 0 else ""
            print(f"{label:<36} {view:<8} {q:>6.2f} {u:>10.2f} {cpu:>10.3f} {ms:>10.2f}")
        (_, q_on, u_on, cpu_on, ms_on), (_, q_off, u_off, cpu_off, ms_off) = rows
        print(f"{'':<36} {'on/off':<8} {ratio(q_on, q_off):>6} {ratio(u_on, u_off):>10} "
              f"{ratio(cpu_on, cpu_off):>10} {ratio(ms_on, ms_off):>10}")
        for view in ("on", "off"):
            r = results[(client.label, view)]
            if min(r.cluster) != max(r.cluster) or min(r.upstream) != max(r.upstream):
                print(f"{'':<36} {view}: dns q {min(r.cluster)}-{max(r.cluster)}, upstream q "
                      f"{min(r.upstream)}-{max(r.upstream)} per lookup (min-max)")
    print()
    print("Per lookup: dns q = queries the cluster DNS got; upstream q = queries the upstream "
          "got;\nrespond ms = mean time in Responder.respond, summed over the lookup's queries "
          "(not `finish`,\nnor the forwarder); median ms = the lookup's wall time in the pod "
          "(getent: its fork+exec too,\nwhich the localhost row, with no DNS at all, shows).")


def traces(windows: dict[tuple[str, str], tuple[float, float]], node: Node,
           capture: Capture) -> None:
    """The packets of the traced lookup of each row, from the capture (the client's side) and
    the upstream's log; each query's time in `respond` from the cluster DNS's log."""
    assert node.upstream is not None
    print()
    print("One more lookup per row, with a capture on the node's veth end (ms from the first "
          "packet, kernel\ntimestamps; the client's port; respond ms of each query; "
          "'upstream' lines: when the upstream read it):")
    took: dict[bytes, list[float]] = {}
    for seen in node.cluster_log:
        took.setdefault(seen.wire, []).append(seen.took)
    for client in CLIENTS:
        for view in ("on", "off"):
            t0, t1 = windows[(client.label, view)]
            lines: list[tuple[float, str]] = []
            for p in capture.packets:
                if not t0 <= p.at <= t1:
                    continue
                if p.dst[1] == 53:
                    spent = took.get(p.payload, [])
                    ms = f"{spent.pop(0) * 1000:6.3f}" if spent else ""
                    lines.append((p.at, f"{ms:>6} :{p.src[1]:<5} > {describe(p.payload)}"))
                else:
                    lines.append((p.at, f"{'':>6} :{p.dst[1]:<5} < "
                                        f"{answer_outcome(p.payload):<12} "
                                        f"{describe(p.payload)}"))
            for seen in node.upstream.log:
                if t0 <= seen.at <= t1:
                    lines.append((seen.at, f"{'':>6} upstream {describe(seen.wire)}"))
            lines.sort()
            print(f"  {client.label}, autopath {view}:" + ("" if lines else " no DNS packet"))
            for at, text in lines:
                print(f"    +{(at - lines[0][0]) * 1000:7.3f} {text}")
    if capture.untimed:
        print(f"note: {capture.untimed} captured packets had no kernel timestamp")


# --- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, node_ns: str, pod_ns: str, node: Node) -> None:
    make_network(node_ns, pod_ns)
    write_etc(Path("/etc/netns") / pod_ns)
    check_pod_view(pod_ns)
    link_local = wait_link_local(pod_ns)
    node.start()
    assert node.upstream is not None
    print(f"namespaces {node_ns} (cluster DNS {DNS_IP}:53, upstream "
          f"127.0.0.1:{node.upstream.port}) and {pod_ns} (client {POD_IP}, eth0 IPv6 "
          f"link-local {link_local}); {os.confstr('CS_GNU_LIBC_VERSION')}", flush=True)
    agent = PodAgent(pod_ns, args.timeout)
    try:
        deadline = time.monotonic() + args.deadline
        results: dict[tuple[str, str], Result] = {}
        for client in CLIENTS:
            for view, result in measure(node, agent, client, args, deadline).items():
                results[(client.label, view)] = result
        capture = Capture(node_ns, "veth0")
        capture.start()
        try:
            windows: dict[tuple[str, str], tuple[float, float]] = {}
            for client in CLIENTS:
                for view in ("on", "off"):
                    traced = Result()
                    lookup(node, agent, client, view, traced, "traced lookup")
                    windows[(client.label, view)] = traced.window
            time.sleep(0.2)  # the capture's last packets
        finally:
            capture.stop()
    finally:
        agent.close()
    print()
    table(results, args.lookups)
    traces(windows, node, capture)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=20, help="lookups per client and view")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per lookup")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds for all lookups")
    parser.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.upstream:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_upstream())
        return
    if args.lookups < 1:
        parser.error("--lookups must be at least 1")
    if os.geteuid() != 0:
        raise SystemExit("run as root: the node and the pod live in network namespaces")
    for tool in ("ip", "getent"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed")
    suffix = secrets.token_hex(4)
    node_ns, pod_ns = f"cipb-{suffix}-node", f"cipb-{suffix}-pod"
    etc_netns_made = not Path("/etc/netns").exists()
    etc = Path("/etc/netns") / pod_ns
    etc_made = False
    node = Node(node_ns)
    made: list[str] = []
    try:
        for name in (node_ns, pod_ns):
            ip("netns", "add", name)
            made.append(name)
        etc.mkdir(parents=True)
        etc_made = True
        run(args, node_ns, pod_ns, node)
    finally:
        node.stop()
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        if etc_made:
            shutil.rmtree(etc, ignore_errors=True)
        if etc_netns_made:
            with contextlib.suppress(OSError):
                Path("/etc/netns").rmdir()  # only if empty: another run may use it now
        left = [n for n in made if netns_path(n).exists()]
        if left:
            print(f"warning: namespaces left behind: {left}", file=sys.stderr)


if __name__ == "__main__":
    main()
