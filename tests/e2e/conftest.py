"""The `server` fixture: a real `clusterip apiserver` process on a free loopback port, on a
data directory of the test's own, stopped by its PID at the end, pass or fail."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterip.testing.process import Node, ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


# --- a node: `clusterip up --netns NAME`, as root -------------------------------------------------



def _free_udp_port() -> int:
    """A port free for UDP and TCP on loopback, below the kernel's ephemeral range, so that the
    API's own port 0 (an ephemeral port) can never take it before the DNS binds it."""
    for port in random.sample(range(20000, 30000), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                udp.bind(("127.0.0.1", port))
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port for the cluster DNS")


def _host_network() -> tuple[str, str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout \
        if shutil.which("nft") else ""
    return "\n".join(sorted(line.split(":", 2)[1] for line in links.splitlines())), nft


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def _remove_namespaces(names: list[str]) -> None:
    for name in names:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                              text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        shutil.rmtree(f"/etc/netns/{name}", ignore_errors=True)


@pytest.fixture
def node(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Node]:
    """A running `clusterip up --netns cipt-<random>`; parametrize it indirectly with a proxy
    mode ("nftables", "userspace") to choose `--proxy-mode` (default: auto)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces")
    netns = f"cipt-{secrets.token_hex(3)}"
    host_before = _host_network()
    state = tmp_path / "state"
    state.mkdir()
    dns_port = _free_udp_port()
    server = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "up.log",
                           command=("up", "--netns", netns,
                                    # never the host's resolver: a closed loopback port
                                    "--dns-upstream", "127.0.0.1:1",
                                    "--dns-listen", f"127.0.0.1:{dns_port}",
                                    "--proxy-mode", getattr(request, "param", "auto")))
    try:
        server.start()
        yield Node(server, netns, state, dns=("127.0.0.1", dns_port))
    finally:
        server.stop()
        leftovers = _namespaces(netns)
        _remove_namespaces(leftovers)
        assert not leftovers, f"namespaces left after the server stopped: {leftovers}"
        assert _host_network() == host_before, "the host network namespace was changed"
