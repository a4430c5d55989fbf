"""The nftables proxy mode: the service map programmed into the kernel, as one table per family.

How it works (the rules themselves and their hooks are in ``README.md`` beside this file, and
are rendered purely by `clusterip.core.nftrules`):

1. `NftablesProxier.sync(snapshot)` renders the desired `Ruleset` from the service map,
   incrementally from the last applied one (only the ports whose `ServicePort` changed are
   rendered again: a few ms at 10,000 services instead of 200-350 ms), and sends the
   difference from the last applied one as one ``nft`` transaction: the first sync, and any
   sync after a failure, is a full one (the table is deleted and made again in the
   same transaction, so it is atomic too); every other is `nftrules.update`: only the map and
   set elements and the chains that changed. A failed transaction changes nothing in the kernel
   (nft's batches are atomic) and marks the next sync full.
2. After a successful sync, for every UDP ClusterIP:port whose serving endpoints changed, the
   conntrack entries whose reply does not come from a serving endpoint are deleted
   (`servicemap.stale_udp`, kube-proxy's rule), so a UDP client that keeps its source port is
   not blackholed toward a pod that is gone: kube-proxy's most reported bug.
3. `close()` deletes the table (on a clean stop of the node).

Side effects sit behind two small Protocols, each with a real implementation here and a fake
in the tests:

* `Nft` runs a transaction text. `LibNftables` calls libnftables in-process through ctypes
  (0.1-0.6 ms for a small update, measured); its context must be created in the node's network
  namespace, so every call runs on the namespace's own thread (`InNetns`, which
  `clusterip.runtime.nssocket.NetnsSockets` provides). `NftCommand` pipes the text to ``nft -f -``
  (under ``ip netns exec``), 8-10 ms a call, where libnftables cannot be loaded.
* `Conntrack` deletes UDP flows. `NetlinkConntrack` uses pyroute2's conntrack socket on the
  namespace's thread (pyroute2's sync API drives a private loop: never on the event loop).

Errors: `NftError` (a `ClusterIPError`) is raised for a transaction nft refused, with nft's
message and the first lines of the text; it is made in one place per backend. Conntrack
failures are logged, never raised: the rules are already right, and stale flows expire.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from clusterip.core import nftrules
from clusterip.core.errors import ClusterIPError
from clusterip.core.servicemap import ServiceMap, Snapshot, StaleUdp, stale_udp

__all__ = [
    "Conntrack",
    "InNetns",
    "LibNftables",
    "NetlinkConntrack",
    "Nft",
    "NftCommand",
    "NftError",
    "NftablesProxier",
    "probe",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_NFT_CTX_DEFAULT = 0
_ERROR_CONTEXT_LINES = 5


class NftError(ClusterIPError):
    """nft refused a transaction (nothing of it was applied)."""

    def __init__(self, detail: str, text: str) -> None:
        head = "\n".join(text.splitlines()[:_ERROR_CONTEXT_LINES])
        super().__init__(f"nft: {detail.strip()}\n--- transaction starts with ---\n{head}")
        self.detail = detail


class InNetns(Protocol):
    """Runs a function on a thread that lives in the node's network namespace."""

    async def run(self, fn: Callable[[], _T]) -> _T: ...


class Nft(Protocol):
    """Applies one nft transaction (atomic: all of it or nothing)."""

    async def apply(self, text: str) -> None: ...


class Conntrack(Protocol):
    """Deletes conntrack entries of UDP flows."""

    async def delete_udp(self, stale: Sequence[StaleUdp]) -> int:
        """Delete the UDP entries whose original destination is a (ClusterIP, port) of `stale`
        and whose reply does not come from one of its serving endpoints; returns how many
        went."""
        ...


class LibNftables:
    """`Nft` through libnftables in-process (ctypes), on the namespace's thread."""

    def __init__(self, netns: InNetns, library: str | None = None) -> None:
        self._netns = netns
        self._library = library or ctypes.util.find_library("nftables") or "libnftables.so.1"
        self._lib: Any = None
        self._ctx: int | None = None

    @staticmethod
    def available() -> bool:
        """Whether libnftables can be loaded here."""
        name = ctypes.util.find_library("nftables")
        if name is None:
            return False
        try:
            ctypes.CDLL(name)
        except OSError:
            return False
        return True

    def _open(self) -> tuple[Any, int]:
        """The library and a context, made the first time on the namespace's thread: a
        context talks to the namespace of the thread that created it, for its whole life."""
        if self._ctx is None:
            lib = ctypes.CDLL(self._library)
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            ctx = lib.nft_ctx_new(_NFT_CTX_DEFAULT)
            if not ctx:
                raise NftError("nft_ctx_new failed", "")
            lib.nft_ctx_buffer_error(ctx)
            lib.nft_ctx_buffer_output(ctx)
            self._lib, self._ctx = lib, ctx
        return self._lib, self._ctx

    def _apply(self, text: str) -> None:
        lib, ctx = self._open()
        if lib.nft_run_cmd_from_buffer(ctx, text.encode()) != 0:
            detail = lib.nft_ctx_get_error_buffer(ctx) or b"unknown error"
            raise NftError(detail.decode(errors="replace"), text)

    async def apply(self, text: str) -> None:
        await self._netns.run(lambda: self._apply(text))

    async def close(self) -> None:
        """Free the context (on its thread)."""
        if self._ctx is not None:
            lib, ctx = self._lib, self._ctx
            self._ctx = None
            await self._netns.run(lambda: lib.nft_ctx_free(ctx))


class NftCommand:
    """`Nft` through the ``nft -f -`` command (under ``ip netns exec NETNS`` for a namespace)."""

    def __init__(self, netns: str | None) -> None:
        self._argv = (["ip", "netns", "exec", netns] if netns else []) + ["nft", "-f", "-"]

    async def apply(self, text: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._argv, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, stderr = await proc.communicate(text.encode())
        if proc.returncode != 0:
            raise NftError(stderr.decode(errors="replace") or f"exit {proc.returncode}", text)


class NetlinkConntrack:
    """`Conntrack` through pyroute2's conntrack netlink socket, on the namespace's thread."""

    def __init__(self, netns: InNetns) -> None:
        self._netns = netns

    async def delete_udp(self, stale: Sequence[StaleUdp]) -> int:
        if not stale:
            return 0
        return await self._netns.run(lambda: _delete_udp_flows(stale))


def _delete_udp_flows(stale: Sequence[StaleUdp]) -> int:
    from pyroute2 import Conntrack as Pyroute2Conntrack  # type: ignore[import-untyped]
    from pyroute2.netlink.nfnetlink.nfctsocket import (  # type: ignore[import-untyped]
        NFCTAttrTuple,
    )

    deleted = 0
    ct = Pyroute2Conntrack()
    try:
        for flows in stale:
            family = socket.AF_INET6 if ":" in flows.cluster_ip else socket.AF_INET
            wanted = NFCTAttrTuple(family=family, daddr=flows.cluster_ip,
                                   proto=socket.IPPROTO_UDP, dport=flows.port)
            for entry in list(ct.dump_entries(tuple_orig=wanted)):
                if entry.tuple_reply.saddr in flows.serving:
                    continue
                try:
                    ct.delete(entry)
                    deleted += 1
                except OSError:  # gone meanwhile
                    continue
    finally:
        ct.close()
    return deleted


class NftablesProxier:
    """The service map, kept programmed into nftables. See the module docstring.

    Args:
        nft: where transactions go.
        conntrack: where stale UDP flows are deleted.
        config: the rendering's settings (node name, CIDRs, locally served IPs, table name).
    """

    def __init__(self, nft: Nft, conntrack: Conntrack, config: nftrules.ProxyConfig) -> None:
        self.nft = nft
        self.conntrack = conntrack
        self.config = config
        self._applied: nftrules.Ruleset | None = None
        self._ports: ServiceMap = {}
        self.syncs = 0
        self.full_syncs = 0
        self.failures = 0
        self.flows_deleted = 0

    async def sync(self, snapshot: Snapshot) -> None:
        """Make the kernel serve `snapshot`. Raises NftError (and the next sync is full)."""
        applied = self._applied
        # Incremental: only the ports that changed since the applied ruleset are rendered
        # again (all of them on the first sync and after a failure, when `applied` is None).
        desired = nftrules.render(snapshot.ports, self.config, applied, snapshot.changed)
        full = applied is None
        text = nftrules.full_sync(desired) if applied is None else nftrules.update(applied, desired)
        if text:
            try:
                await self.nft.apply(text)
            except NftError:
                self.failures += 1
                self._applied = None
                raise
        self._applied = desired
        self.syncs += 1
        self.full_syncs += full
        stale = stale_udp(self._ports, snapshot.ports)
        self._ports = snapshot.ports
        if stale:
            try:
                self.flows_deleted += await self.conntrack.delete_udp(stale)
            except Exception:
                log.exception("deleting %d stale UDP conntrack flows failed", len(stale))

    async def close(self) -> None:
        """Delete the proxy's tables (both families); nothing if they are not there."""
        text = "".join(f"table {family} {self.config.table}\ndelete table {family} "
                       f"{self.config.table}\n" for family in ("ip", "ip6"))
        try:
            await self.nft.apply(text)
        except NftError:
            log.exception("deleting the proxy's nftables tables failed")
        self._applied = None


async def probe(nft: Nft, table: str) -> str | None:
    """None if `nft` can program this namespace (a throwaway table is made and deleted), else
    why not."""
    probe_table = f"{table}-probe-{os.getpid()}"
    try:
        await nft.apply(f"table ip {probe_table}\ndelete table ip {probe_table}\n")
    except (NftError, OSError) as exc:
        return str(exc).splitlines()[0]
    return None
