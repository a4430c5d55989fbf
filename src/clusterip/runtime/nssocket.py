"""Sockets that live in another network namespace, used from this process's event loop.

Theory of operation
===================

The all-in-one process keeps its API server on the host's loopback while the node (bridge, pods,
the DNS server's sockets, probe connections) lives in a named network namespace. Linux ties
network-namespace membership to the *thread*, and a socket to the namespace of the thread that
created it, for the socket's whole life. So `NetnsSockets(netns)` owns one dedicated thread (a
single-worker ThreadPoolExecutor) that enters the namespace with ``setns(fd, CLONE_NEWNET)`` the
first time it runs, and never goes back. `socket()` creates a non-blocking socket in that thread
and hands it to the caller, who uses it from the event loop as any other socket
(``loop.sock_connect``, ``asyncio.open_connection(sock=...)``,
``create_datagram_endpoint(sock=...)``, ``loop.create_server(sock=...)``). The event loop's own
thread never changes namespace.

Why not the alternatives: ``os.setns`` exists only from Python 3.12; pyroute2's
``netns.pushns``/``popns`` restores the thread-group leader's namespace rather than the thread's
(wrong in any thread but the main one); ``netns.create_socket`` forks a helper per socket (ms each).
Entering once per thread costs one syscall, and a socket then costs a thread hop (tens of µs).

Guard against a stale namespace: before each socket, the thread compares its own namespace
(``/proc/thread-self/ns/net``) with what ``/run/netns/<name>`` is now. If the name was deleted, or
deleted and made again, the sockets would land in a namespace nobody can see; `NetworkError` is
raised instead (make a new `NetnsSockets`). If entering fails (the namespace does not exist yet),
the thread stays where it was, `NetworkError` is raised, and the next call tries again.

``netns=None`` means the caller's own namespace: sockets are made directly, with no thread.

Errors: `NetworkError` for a namespace that cannot be entered or is gone; socket and connect
errors are the usual OSError subclasses (ConnectionRefusedError, ...) and `TimeoutError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TypeVar

from clusterip.runtime.netlink import NetworkError, netns_path, setns_thread

__all__ = ["NetnsSockets"]

_T = TypeVar("_T")


def _ns_id(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class NetnsSockets:
    """Makes sockets in network namespace `netns` (None: this thread's own) for the event loop.

    Args:
        netns: the named namespace (``/run/netns/<netns>``); it is entered on first use, so it
            may be created after this object.
    """

    def __init__(self, netns: str | None) -> None:
        self.netns = netns
        self._path = str(netns_path(netns)) if netns is not None else None
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"netns-{netns}")
            if netns is not None else None
        )
        self._entered: tuple[int, int] | None = None  # touched only by the executor's thread

    # -- in the namespace thread ---------------------------------------------------------------

    def _in_netns(self, fn: Callable[[], _T]) -> _T:
        assert self._path is not None
        op = "make a socket"
        try:
            if self._entered is None:
                fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    st = os.fstat(fd)
                    target = (st.st_dev, st.st_ino)
                    setns_thread(fd)
                finally:
                    os.close(fd)
                self._entered = target
            now = _ns_id(self._path)
            mine = _ns_id("/proc/thread-self/ns/net")
        except OSError as e:
            raise NetworkError(op, self.netns, e.errno, e.strerror or str(e)) from e
        if mine != self._entered or now != self._entered:
            raise NetworkError(op, self.netns, None, "the namespace was deleted or replaced since "
                               f"this thread entered it (thread {threading.get_ident()})")
        return fn()

    # -- the event loop's side -----------------------------------------------------------------

    async def run(self, fn: Callable[[], _T]) -> _T:
        """`fn()` on the namespace thread (on the caller's loop for `netns=None`)."""
        if self._executor is None:
            return fn()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_netns, fn)

    async def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
    ) -> socket.socket:
        """A new non-blocking socket in the namespace.

        Raises:
            NetworkError: the namespace cannot be entered, or is not the one entered before.
            RuntimeError: after `close()`.
        """

        def make() -> socket.socket:
            sock = socket.socket(family, type, proto)
            sock.setblocking(False)
            return sock

        return await self.run(make)

    async def open_connection(
        self, host: str, port: int, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP connection from the namespace to `host`:`port`, as asyncio streams.

        Args:
            host: an IPv4 or IPv6 address, or "localhost" (127.0.0.1). Names are not resolved:
                the namespace's resolver is not this process's.
            port: the TCP port.
            timeout: seconds for the whole connect.

        Raises:
            ValueError: `host` is not an address.
            TimeoutError: no connection within `timeout`.
            OSError: the connect failed (ConnectionRefusedError, ENETUNREACH, ...).
            NetworkError: the namespace cannot be entered.
        """
        address = ipaddress.ip_address("127.0.0.1" if host == "localhost" else host)
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        async with asyncio.timeout(timeout):
            sock = await self.socket(family, socket.SOCK_STREAM)
            try:
                await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
                return await asyncio.open_connection(sock=sock)
            except BaseException:
                sock.close()
                raise

    def close(self) -> None:
        """End the namespace thread (sockets already made stay valid)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> NetnsSockets:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
