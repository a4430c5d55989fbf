"""Pod CIDRs for nodes (core.nodeipam): lowest free block first, reuse of freed blocks, a full
cluster CIDR, and the checks on a block a node names itself."""

from __future__ import annotations

import re

import pytest

from clusterip.core.errors import RangeFull
from clusterip.core.nodeipam import NodeCidrs, claim_errors

CIDRS = NodeCidrs.parse("10.244.0.0/16", 24)


def test_the_first_node_gets_the_first_block_and_the_next_the_next() -> None:
    assert CIDRS.assign([]) == "10.244.0.0/24"
    assert CIDRS.assign(["10.244.0.0/24"]) == "10.244.1.0/24"


def test_a_freed_block_is_reused_first() -> None:
    assert CIDRS.assign(["10.244.0.0/24", "10.244.2.0/24"]) == "10.244.1.0/24"


def test_a_full_cluster_cidr_says_so() -> None:
    small = NodeCidrs.parse("10.244.0.0/23", 24)
    full = re.escape("all 2 /24 blocks of the cluster CIDR 10.244.0.0/23")
    with pytest.raises(RangeFull, match=full):
        small.assign(["10.244.0.0/24", "10.244.1.0/24"])


def test_the_block_must_fit_the_cluster_cidr() -> None:
    with pytest.raises(ValueError, match="must lie inside the cluster CIDR"):
        NodeCidrs.parse("10.244.0.0/16", 12)


@pytest.mark.parametrize(("cidr", "errors"), [
    ("10.244.3.0/24", []),
    ("10.244.1.0/24", ["10.244.1.0/24 is node b's pod CIDR"]),
    ("10.245.0.0/24", ["10.245.0.0/24 is not a /24 block of the cluster CIDR 10.244.0.0/16"]),
    ("10.244.0.0/25", ["10.244.0.0/25 is not a /24 block of the cluster CIDR 10.244.0.0/16"]),
    ("10.244.0.1/24", ["'10.244.0.1/24' is not a network: 10.244.0.1/24 has host bits set"]),
], ids=["free", "another-node-s", "outside", "wrong-size", "host-bits"])
def test_a_named_block_is_checked(cidr: str, errors: list[str]) -> None:
    assert claim_errors(CIDRS, "a", cidr, {"10.244.1.0/24": "b", "10.244.0.0/24": "a"}) == errors
