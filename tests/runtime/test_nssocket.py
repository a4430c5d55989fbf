"""NetnsSockets: sockets made in another network namespace, used from this event loop.

Each test makes its namespace under the `node_netns` name (deleted at the end, pass or fail).
Processes the tests start are ended by their PID. The only traffic is on the loopback of the
test's namespace (and an attempt on the host's loopback that must not reach it).

A socket's namespace is read with the SIOCGSKNS ioctl, which returns a file descriptor of the
namespace the socket belongs to: comparing its inode with ``/run/netns/<name>`` is exact.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import secrets
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from clusterip.runtime import netlink
from clusterip.runtime.netlink import Netlink, NetworkError
from clusterip.runtime.nssocket import NetnsSockets

pytestmark = pytest.mark.anyio

requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: creates network namespaces"
)

SIOCGSKNS = 0x894C  # linux/sockios.h: get a socket's network namespace as an fd

SERVER = """
import socket, sys
token = sys.argv[1].encode()
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall(token)
    c.close()
"""


def ns_id_of_socket(sock: socket.socket) -> tuple[int, int]:
    fd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
    try:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)


def ns_id(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def lo_up(netns: str) -> None:
    with Netlink(netns) as nl:
        nl.set_up("lo")


@pytest.fixture
def test_netns(node_netns: str) -> Iterator[str]:
    """A namespace with loopback up (removed by `node_netns` at the end)."""
    assert netlink.create_netns(node_netns)
    lo_up(node_netns)
    yield node_netns


@pytest.fixture
async def sockets(test_netns: str) -> AsyncIterator[NetnsSockets]:
    s = NetnsSockets(test_netns)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.root
@requires_root
async def test_a_server_in_the_namespace_is_reached_only_through_its_sockets(
    test_netns: str, sockets: NetnsSockets
) -> None:
    token = secrets.token_hex(8)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", test_netns, sys.executable, "-c", SERVER, token,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 20))

        reader, writer = await sockets.open_connection("127.0.0.1", port, 5)
        try:
            assert await asyncio.wait_for(reader.read(), 5) == token.encode()
        finally:
            writer.close()
            await writer.wait_closed()

        # The same address from this process's own namespace is another loopback: refused,
        # or (if something of the host's happens to listen there) not our server.
        with NetnsSockets(None) as here:
            try:
                reader, writer = await here.open_connection("127.0.0.1", port, 5)
            except ConnectionRefusedError:
                pass
            else:
                try:
                    got = await asyncio.wait_for(reader.read(64), 2)
                except TimeoutError:
                    got = b""
                finally:
                    writer.close()
                assert got != token.encode()
    finally:
        if proc.returncode is None:
            proc.kill()  # by PID: the python process that `ip netns exec` became
        await proc.wait()


@pytest.mark.root
@requires_root
async def test_every_socket_is_in_the_namespace_and_the_loop_thread_never_moves(
    test_netns: str, sockets: NetnsSockets
) -> None:
    mine = ns_id("/proc/thread-self/ns/net")
    target = ns_id(str(netlink.netns_path(test_netns)))
    assert mine != target
    made = [
        await sockets.socket(),
        await sockets.socket(socket.AF_INET, socket.SOCK_DGRAM),
        await sockets.socket(socket.AF_INET6, socket.SOCK_STREAM),
    ]
    try:
        for sock in made:
            assert ns_id_of_socket(sock) == target
            assert sock.getblocking() is False
        assert ns_id("/proc/thread-self/ns/net") == mine
        with NetnsSockets(None) as here:
            own = await here.socket()
            with own:
                assert ns_id_of_socket(own) == mine
                assert own.getblocking() is False
    finally:
        for sock in made:
            sock.close()


@pytest.mark.root
@requires_root
async def test_udp_sockets_made_there_talk_over_its_loopback(sockets: NetnsSockets) -> None:
    loop = asyncio.get_running_loop()
    a = await sockets.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = await sockets.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with a, b:
        a.bind(("127.0.0.1", 0))
        b.connect(a.getsockname())
        await loop.sock_sendall(b, b"ping")
        assert await asyncio.wait_for(loop.sock_recv(a, 16), 5) == b"ping"


@pytest.mark.root
@requires_root
async def test_connect_errors_are_os_errors(sockets: NetnsSockets) -> None:
    with pytest.raises(ConnectionRefusedError):
        await sockets.open_connection("127.0.0.1", 9, 5)  # nothing listens in a new namespace
    with pytest.raises(OSError) as caught:
        await sockets.open_connection("10.244.0.99", 80, 5)  # only loopback there: no route
    assert caught.value.errno == errno.ENETUNREACH
    with pytest.raises(ValueError):
        await sockets.open_connection("example.com", 80, 5)


@pytest.mark.root
@requires_root
async def test_a_missing_namespace_is_an_error_and_is_not_created(node_netns: str) -> None:
    with NetnsSockets(node_netns) as sockets:
        with pytest.raises(NetworkError) as caught:
            await sockets.socket()
        assert caught.value.errno == errno.ENOENT
        assert not netlink.netns_exists(node_netns)

        # entering is retried: once the namespace exists, sockets are made in it
        assert netlink.create_netns(node_netns)
        sock = await sockets.socket()
        with sock:
            assert ns_id_of_socket(sock) == ns_id(str(netlink.netns_path(node_netns)))


@pytest.mark.root
@requires_root
async def test_a_namespace_deleted_or_made_again_is_an_error(
    test_netns: str, sockets: NetnsSockets
) -> None:
    (await sockets.socket()).close()
    assert netlink.delete_netns(test_netns)
    with pytest.raises(NetworkError) as caught:
        await sockets.socket()
    assert caught.value.errno == errno.ENOENT

    assert netlink.create_netns(test_netns)  # same name, another namespace
    with pytest.raises(NetworkError, match="deleted or replaced"):
        await sockets.socket()


@pytest.mark.root
@requires_root
async def test_close_ends_the_thread(test_netns: str) -> None:
    sockets = NetnsSockets(test_netns)
    (await sockets.socket()).close()
    names = {t.name for t in threading.enumerate()}
    assert any(n.startswith(f"netns-{test_netns}") for n in names)
    sockets.close()
    assert not any(t.name.startswith(f"netns-{test_netns}") for t in threading.enumerate())
    with pytest.raises(RuntimeError):
        await sockets.socket()
