"""Relaying one TCP connection: bytes both ways between two connected sockets, until both ends
are done.

How it works
============

`relay(a, b)` takes two connected, non-blocking stream sockets (a client's, accepted on a
ClusterIP, and an endpoint's) and owns them from the call on: whatever happens, both are closed,
with everything the relay made, by the time it returns or raises (cancellation included).

Each direction is one flow, source → destination. The two flows end independently: end of
stream from a source becomes ``shutdown(SHUT_WR)`` on its destination once everything before it
was delivered, so a client that half-closes still gets its reply. The relay ends when

- both flows reached the end of their stream: both sockets are closed (their FINs already went
  out), or
- either socket fails (a reset, a broken pipe) or the relay is cancelled: both sockets are
  closed with a reset (``SO_LINGER`` 0), so the peer of a reset sees a reset too rather than an
  orderly end that would pass for a complete response.

splice (Linux; the default where ``os.splice`` exists)
------------------------------------------------------
A flow moves bytes through a pipe of its own (1 MiB, ``F_SETPIPE_SZ``) with ``splice(2)``:
the kernel moves the pages and Python never sees the data::

    source ──splice──▶ pipe ──splice──▶ destination

It is driven by the event loop's ``add_reader``/``add_writer`` on raw descriptors and is in one
of three states:

=========  =============================================================================
reading    the source is watched; when readable: splice into the (empty) pipe, then at
           once out of it into the destination
writing    the destination would block with bytes left in the pipe: the destination is
           watched and the source is not (the pipe is the only buffer: backpressure)
done       end of stream with the pipe empty (``shutdown(SHUT_WR)`` sent), or an error
=========  =============================================================================

Descriptor discipline: a watch is always removed before its descriptor is closed, and every
descriptor is closed exactly once, by the relay. (A relay that left sockets and pipes open
crashed uvloop with "double free or corruption" within seconds of one-connection-per-request
load; and a descriptor closed while still watched leaves the loop watching a number that the
next socket or pipe may reuse.) Both sockets get ``TCP_NODELAY``: a relayed request or reply
goes out as it comes in, not after a Nagle delay.

Protocol pumps (the fallback without ``os.splice``)
---------------------------------------------------
Each socket becomes an asyncio transport whose `asyncio.Protocol` writes what it receives to
the other transport. Flow control is the transports' own: when one transport's write buffer
goes over its high-water mark, the other pauses reading until it drains. End of stream is
``write_eof()`` on the other transport. (Never asyncio streams in the data path: about twice
the CPU per byte.)
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import struct
from collections.abc import Callable
from typing import ClassVar, Final, Literal, cast

__all__ = ["PIPE_SIZE", "SPLICE_AVAILABLE", "relay", "reset"]

SPLICE_AVAILABLE: Final = hasattr(os, "splice")
PIPE_SIZE: Final = 1 << 20  # bytes in flight per direction

_LINGER_RESET: Final = struct.pack("ii", 1, 0)  # l_onoff=1, l_linger=0: close() sends RST

_End = Callable[[OSError | None], None]  # a flow reports its end: None, or the error


def reset(sock: socket.socket) -> None:
    """Close `sock` with a reset: its peer sees "connection reset", at once."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
    sock.close()


async def relay(a: socket.socket, b: socket.socket, *, splice: bool = SPLICE_AVAILABLE) -> None:
    """Move bytes between the connected sockets `a` and `b` until both directions end or either
    fails; close both, always. See the module docstring.

    Args:
        a, b: connected, non-blocking stream sockets; they belong to the relay from the call on.
        splice: use ``os.splice`` (the default where it exists) or asyncio Protocol pumps.

    Raises:
        OSError: the relay could not be set up (no descriptor left for a pipe). A failure of
            either connection during the relay is the relay's normal end, not an error.
    """
    if splice:
        await _relay_splice(a, b)
    else:
        await _relay_pump(a, b)


def _no_delay(*socks: socket.socket) -> None:
    """Bytes go out as they come in: no Nagle delay on a relayed request or reply."""
    for sock in socks:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --- splice -----------------------------------------------------------------------------------


async def _relay_splice(a: socket.socket, b: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[OSError | None] = loop.create_future()
    running = 2

    def end(error: OSError | None) -> None:
        nonlocal running
        running -= 1
        if not ended.done() and (error is not None or running == 0):
            ended.set_result(error)

    flows: list[_SpliceFlow] = []
    clean = False
    try:
        _no_delay(a, b)
        flows.append(_SpliceFlow(loop, a, b, end))
        flows.append(_SpliceFlow(loop, b, a, end))
        for flow in flows:
            flow.start()
        clean = await ended is None
    finally:
        for flow in flows:
            flow.close()
        for sock in (a, b):
            if clean:
                sock.close()
            else:
                reset(sock)


_SPLICE_FLAGS: Final = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if SPLICE_AVAILABLE else 0


class _SpliceFlow:
    """One direction: source → pipe → destination. See the module docstring."""

    __slots__ = ("_dst", "_dst_fd", "_end", "_loop", "_pending", "_r", "_size", "_src", "_w",
                 "_watching")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src: socket.socket,
        dst: socket.socket,
        end: _End,
    ) -> None:
        self._loop = loop
        self._src = src.fileno()
        self._dst = dst
        self._dst_fd = dst.fileno()
        self._end = end
        self._r, self._w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self._w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # over /proc/sys/fs/pipe-max-size without CAP_SYS_RESOURCE: keep the default
        self._size = fcntl.fcntl(self._w, fcntl.F_GETPIPE_SZ)
        self._pending = 0  # bytes in the pipe
        self._watching: Literal["src", "dst"] | None = None

    def start(self) -> None:
        self._watch("src")

    def close(self) -> None:
        """Stop watching and close the pipe (the sockets are the relay's to close)."""
        self._watch(None)
        os.close(self._r)
        os.close(self._w)

    def _watch(self, which: Literal["src", "dst"] | None) -> None:
        if self._watching == "src":
            self._loop.remove_reader(self._src)
        elif self._watching == "dst":
            self._loop.remove_writer(self._dst_fd)
        if which == "src":
            self._loop.add_reader(self._src, self._readable)
        elif which == "dst":
            self._loop.add_writer(self._dst_fd, self._writable)
        self._watching = which

    def _fail(self, error: OSError) -> None:
        self._watch(None)
        self._end(error)

    def _readable(self) -> None:
        try:
            n = os.splice(self._src, self._w, self._size, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            return  # woken with nothing to read after all
        except OSError as e:
            self._fail(e)
            return
        if n == 0:  # end of stream, and the pipe is empty (the source is read only then)
            self._watch(None)
            try:
                self._dst.shutdown(socket.SHUT_WR)
            except OSError as e:
                self._end(e)
                return
            self._end(None)
            return
        self._pending = n
        self._writable()

    def _writable(self) -> None:
        try:
            while self._pending:
                self._pending -= os.splice(self._r, self._dst_fd, self._pending,
                                           flags=_SPLICE_FLAGS)
        except BlockingIOError:
            if self._watching != "dst":
                self._watch("dst")
            return
        except OSError as e:
            self._fail(e)
            return
        if self._watching != "src":
            self._watch("src")


# --- Protocol pumps ---------------------------------------------------------------------------


async def _relay_pump(a: socket.socket, b: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[OSError | None] = loop.create_future()
    sides = (_PumpSide(ended), _PumpSide(ended))
    sides[0].peer, sides[1].peer = sides[1], sides[0]
    clean = False
    try:
        _no_delay(a, b)
        await loop.connect_accepted_socket(lambda: sides[0], a)
        await loop.connect_accepted_socket(lambda: sides[1], b)
        for side in sides:
            side.start()
        clean = await ended is None
    finally:
        for side, sock in zip(sides, (a, b), strict=True):
            if side.made:
                side.finish(clean)  # the transport closes the socket
            else:
                reset(sock)  # the setup failed or was cancelled before a transport took it
        for side in sides:
            if side.made:
                await asyncio.shield(side.lost)  # closed by now: nothing outlives the relay


class _PumpSide(asyncio.Protocol):
    """One socket's transport in a pump relay: what it receives goes to the peer's transport.

    Until `start()` (both transports made) what arrives is kept and reading paused: a loop may
    deliver data and even the end of stream before the peer's transport exists (uvloop starts
    reading a new transport even when `connection_made` paused it).
    """

    peer: _PumpSide
    transport: asyncio.Transport
    # Writes and ends of stream not passed on because the peer's transport was already closing
    # (it was reset or lost meanwhile): uvloop raises "Fatal error on transport" for them.
    dropped: ClassVar[int] = 0

    def __init__(self, ended: asyncio.Future[OSError | None]) -> None:
        self.ended = ended
        self.lost: asyncio.Future[None] = ended.get_loop().create_future()
        self.made = False
        self.started = False
        self.early: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.made = True

    def start(self) -> None:
        self.started = True
        for data in self.early:
            self._send(data)
        self.early.clear()
        if self.eof:
            self._pass_eof()
        else:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.started:
            self._send(data)
        else:
            self.early.append(data)
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.started:
            self._pass_eof()
        return True  # keep the transport: the other direction may still be running

    def _send(self, data: bytes) -> None:
        if self.peer.transport.is_closing():
            _PumpSide.dropped += 1
        else:
            self.peer.transport.write(data)

    def _pass_eof(self) -> None:
        if self.peer.transport.is_closing():
            _PumpSide.dropped += 1
        else:
            self.peer.transport.write_eof()  # sent once the peer's buffer is written
        if self.peer.eof and self.peer.started and not self.ended.done():
            self.ended.set_result(None)

    def pause_writing(self) -> None:
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(None)
        if not self.ended.done():
            error = exc if isinstance(exc, OSError) else ConnectionAbortedError()
            self.ended.set_result(error)

    def finish(self, clean: bool) -> None:
        """Close (flushing what is buffered) after a clean end; reset otherwise."""
        if self.transport.is_closing():
            return
        if clean:
            self.transport.close()
            return
        sock = self.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self.transport.abort()
