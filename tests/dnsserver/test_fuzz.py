"""Fuzz: 100,000+ random and mutated packets over UDP, and thousands of frames over TCP, at a
server in a process of its own; afterwards it still answers correctly and its memory is flat.

The server is `cluster_fixture.py` run as a script (the checklist view, a fake forwarder that
fails every other query and echoes the rest). Packets come from a seeded `random.Random`, so a
failure can be replayed: valid queries of the checklist and of outside names (with and without
EDNS, cookies, DO, odd bufsizes, mixed case), then mutated (bit flips, byte overwrites, cuts,
appended junk, random header counts and flags, label lengths turned into compression pointers,
pointer loops, two messages spliced), plus one in ten of pure random bytes.

Invariants checked on every reply: at least a header, QR set, and at most 1232 bytes over UDP
(our EDNS ceiling; 512 without EDNS is the core's business and checked by the checklist).
Memory: the server's RSS after the whole run is within 20 MB of its RSS after a warm-up.
"""

from __future__ import annotations

import random
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

SERVER = Path(__file__).resolve().parent / "cluster_fixture.py"
UDP_PACKETS = 110_000
TCP_FRAMES = 4_000
WARMUP = 10_000
MAX_RSS_GROWTH = 20 * 1024 * 1024
SEED = 20240601

NAMES = [
    "kubernetes.default.svc.cluster.local", "svc1.testns.svc.cluster.local",
    "_http._tcp.svc1.testns.svc.cluster.local", "hdls.testns.svc.cluster.local",
    "big.testns.svc.cluster.local", "my-pet.hdls.testns.svc.cluster.local",
    "ext.testns.svc.cluster.local", "nosuch.testns.svc.cluster.local", "cluster.local",
    "dns-version.cluster.local", "10-244-1-5.testns.pod.cluster.local", "1.0.0.10.in-addr.arpa",
    "8.8.8.8.in-addr.arpa", "www.example.com", "a.b.c.d.e.f.example.org",
    "testns.svc.cluster.local",
]
TYPES = ["A", "AAAA", "SRV", "PTR", "TXT", "SOA", "NS", "CNAME", "MX", "ANY", "AXFR", "IXFR",
         "OPT", "TYPE65535"]


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    proc = subprocess.Popen([sys.executable, str(SERVER)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("ready "), f"server did not start: {line!r}"
        yield proc, int(line.split()[1])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def valid_query(rng: random.Random) -> bytes:
    name = "".join(c.upper() if rng.random() < 0.3 else c for c in rng.choice(NAMES))
    edns = rng.random() < 0.6
    options: list[dns.edns.Option] = []
    if edns and rng.random() < 0.3:
        options.append(dns.edns.GenericOption(dns.edns.OptionType.COOKIE, rng.randbytes(8)))
    query = dns.message.make_query(
        name, rng.choice(TYPES), use_edns=0 if edns else False,
        payload=rng.choice([0, 1, 511, 512, 1232, 4096, 65535]), options=options,
        want_dnssec=edns and rng.random() < 0.2)
    query.id = rng.getrandbits(16)
    if rng.random() < 0.2:
        query.flags &= ~0x0100  # RD off
    return query.to_wire()


def mutate(rng: random.Random, wire: bytes, corpus: list[bytes]) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(9)
        if kind == 0 and data:  # flip bits
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1 and data:  # overwrite bytes
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
        elif kind == 2:  # cut
            del data[rng.randrange(len(data) + 1):]
        elif kind == 3:  # append junk
            data += rng.randbytes(rng.randint(1, 64))
        elif kind == 4 and len(data) >= 12:  # header counts
            struct.pack_into("!HHHH", data, 4, *(rng.choice([0, 1, 2, 255, 65535])
                                                 for _ in range(4)))
        elif kind == 5 and len(data) >= 4:  # flags: QR, opcode, TC, rcode, Z...
            data[2], data[3] = rng.getrandbits(8), rng.getrandbits(8)
        elif kind == 6 and len(data) > 13:  # a label length becomes a compression pointer
            pos = rng.randrange(12, len(data) - 1)
            data[pos] = 0xC0 | rng.getrandbits(6)
            data[pos + 1] = rng.choice([12, pos & 0xFF, rng.getrandbits(8)])
        elif kind == 7 and len(data) > 14:  # a pointer to itself
            data[12:14] = b"\xc0\x0c"
        elif kind == 8:  # splice with another message
            other = rng.choice(corpus)
            data = data[:rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1):]
    return bytes(data)


def packet(rng: random.Random, corpus: list[bytes]) -> bytes:
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randint(0, 700))
    if roll < 0.2:
        return rng.choice(corpus)
    return mutate(rng, rng.choice(corpus), corpus)


def check_reply(reply: bytes, limit: int) -> None:
    assert 12 <= len(reply) <= limit, len(reply)
    assert reply[2] & 0x80, reply[:12].hex()


def drain_udp(sock: socket.socket, quiet: float) -> int:
    """Read replies until none came for `quiet` seconds; return how many."""
    count = 0
    while select.select([sock], [], [], quiet)[0]:
        try:
            reply = sock.recv(65535)
        except ConnectionRefusedError:  # pragma: no cover - the server died
            raise AssertionError("server port closed") from None
        check_reply(reply, 1232)
        count += 1
    return count


def ask(port: int, name: str, *, tcp: bool = False) -> tuple[str, list[str]]:
    query = dns.message.make_query(name, "A")
    if tcp:
        reply = dns.query.tcp(query, "127.0.0.1", port=port, timeout=2)
    else:
        reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
    return (dns.rcode.to_text(reply.rcode()),
            sorted(rr.to_text() for rrset in reply.answer for rr in rrset))


def tcp_session(port: int, rng: random.Random, corpus: list[bytes], frames: int) -> int:
    """One connection: `frames` frames (a few with broken lengths); returns frames sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(2)
        data = bytearray()
        for _ in range(frames):
            body = packet(rng, corpus)
            roll = rng.random()
            if roll < 0.02:  # a lying length: the server must not wait for or buffer it
                data += struct.pack("!H", rng.choice([0, 65535, len(body) + 5])) + body
            else:
                data += struct.pack("!H", len(body) & 0xFFFF) + body[:65535]
            sent += 1
        if rng.random() < 0.1:
            data = data[:rng.randrange(len(data) + 1)]  # cut mid-frame
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            buffered = b""
            while chunk := sock.recv(65535):
                buffered += chunk
                while len(buffered) >= 2:
                    size = struct.unpack("!H", buffered[:2])[0]
                    if len(buffered) < 2 + size:
                        break
                    check_reply(buffered[2:2 + size], 65535)
                    buffered = buffered[2 + size:]
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            pass  # the server hung up on a bad frame: allowed
    return sent


def test_fuzz(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    rng = random.Random(SEED)
    corpus = [valid_query(rng) for _ in range(2000)]
    start = time.monotonic()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sent = replies = 0
    rss_warm = 0
    try:
        while sent < UDP_PACKETS:
            for _ in range(100):
                sock.send(packet(rng, corpus))
                sent += 1
            replies += drain_udp(sock, 0.002)
            if sent == WARMUP:
                drain_udp(sock, 0.05)
                rss_warm = rss(proc.pid)
        replies += drain_udp(sock, 0.2)
    finally:
        sock.close()
    udp_seconds = time.monotonic() - start
    frames = 0
    while frames < TCP_FRAMES:
        frames += tcp_session(port, rng, corpus, rng.randint(1, 40))
    assert proc.poll() is None, "the server died"
    # it still answers correctly, both ways
    assert ask(port, "svc1.testns.svc.cluster.local") == ("NOERROR", ["10.0.0.1"])
    assert ask(port, "svc1.testns.svc.cluster.local", tcp=True) == ("NOERROR", ["10.0.0.1"])
    rss_end = rss(proc.pid)
    elapsed = time.monotonic() - start
    print(f"\nfuzz: {sent} UDP packets ({replies} replies) in {udp_seconds:.1f} s, "
          f"{frames} TCP frames; total {elapsed:.1f} s; RSS {rss_warm / 2**20:.1f} → "
          f"{rss_end / 2**20:.1f} MiB")
    assert sent >= 100_000 and frames >= 3_000
    assert rss_end - rss_warm < MAX_RSS_GROWTH
    assert elapsed < 120

