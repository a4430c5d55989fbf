"""Pod CIDRs for nodes: each node gets its own block of the cluster CIDR, as kube-controller-
manager's range allocator hands them out (`--cluster-cidr`, `--node-cidr-mask-size`).

The cluster CIDR (10.244.0.0/16) is cut into blocks of one size (/24: 256 addresses, 253 pods
once the network, gateway and broadcast addresses are set aside). `NodeCidrs` is the set of
blocks in use; `assign(used)` returns the lowest free block, so a cluster that lost a node and
gained another reuses the lost one's block, and the first node of a cluster gets 10.244.0.0/24,
the block the one-node cluster has always used. A node that already names a block keeps it
(`claim` checks that it lies in the cluster CIDR, has the block size and is not another node's).

Pure: the controller (`control.nodeipam`) builds `used` from its cache of Nodes and the blocks it
has handed out and not yet seen written, so two nodes registering at once never get one block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from clusterip.core.errors import RangeFull

__all__ = ["NodeCidrs", "claim_errors"]


@dataclass(frozen=True, slots=True)
class NodeCidrs:
    """The cluster CIDR and the size of one node's block."""

    cluster: ipaddress.IPv4Network = ipaddress.IPv4Network("10.244.0.0/16")
    mask: int = 24

    def __post_init__(self) -> None:
        if not self.cluster.prefixlen <= self.mask <= 30:
            raise ValueError(f"a node's block (/{self.mask}) must lie inside the cluster CIDR "
                             f"{self.cluster} and hold at least one pod (/30 at most)")

    @classmethod
    def parse(cls, cluster: str, mask: int = 24) -> NodeCidrs:
        return cls(ipaddress.IPv4Network(cluster), mask)

    @property
    def capacity(self) -> int:
        """How many nodes the cluster CIDR has blocks for."""
        return 1 << (self.mask - self.cluster.prefixlen)

    def assign(self, used: Iterable[str]) -> str:
        """The lowest block not in `used`. Raises RangeFull when every block is taken."""
        taken = {ipaddress.IPv4Network(cidr, strict=False) for cidr in used}
        for block in self.cluster.subnets(new_prefix=self.mask):
            if block not in taken:
                return str(block)
        raise RangeFull(f"no pod CIDR left for a new node: all {self.capacity} /{self.mask} "
                        f"blocks of the cluster CIDR {self.cluster} are taken")


def claim_errors(cidrs: NodeCidrs, node: str, cidr: str, owners: Mapping[str, str]) -> list[str]:
    """Why node `node` may not have `cidr` (empty: it may). `owners` maps each block in use to
    the node that has it."""
    try:
        block = ipaddress.IPv4Network(cidr)
    except ValueError as exc:
        return [f"{cidr!r} is not a network: {exc}"]
    errors = []
    if not block.subnet_of(cidrs.cluster) or block.prefixlen != cidrs.mask:
        errors.append(f"{cidr} is not a /{cidrs.mask} block of the cluster CIDR {cidrs.cluster}")
    owner = owners.get(str(block))
    if owner not in (None, node):
        errors.append(f"{cidr} is node {owner}'s pod CIDR")
    return errors
