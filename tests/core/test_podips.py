"""Pod addresses: never the network, gateway or broadcast address, never one twice."""

from __future__ import annotations

import ipaddress

import pytest

from clusterip.core.errors import RangeFull
from clusterip.core.podips import PodAddresses

IP = ipaddress.IPv4Address


def test_lowest_free_address_after_the_gateway() -> None:
    pool = PodAddresses(ipaddress.IPv4Network("10.244.0.0/24"))
    assert [pool.take(), pool.take()] == [IP("10.244.0.2"), IP("10.244.0.3")]


@pytest.mark.parametrize("wanted", ["10.244.0.0", "10.244.0.1", "10.244.0.255", "10.245.0.7"],
                         ids=["network", "gateway", "broadcast", "outside"])
def test_an_address_that_cannot_be_a_pods_is_not_handed_out(wanted: str) -> None:
    pool = PodAddresses(ipaddress.IPv4Network("10.244.0.0/24"))
    assert pool.take(IP(wanted)) == IP("10.244.0.2")


def test_a_wanted_address_is_kept_while_free_and_released_for_reuse() -> None:
    pool = PodAddresses(ipaddress.IPv4Network("10.244.0.0/24"))
    assert pool.take(IP("10.244.0.9")) == IP("10.244.0.9")
    assert pool.take(IP("10.244.0.9")) == IP("10.244.0.2")
    pool.release(IP("10.244.0.9"))
    assert pool.take(IP("10.244.0.9")) == IP("10.244.0.9")


def test_a_full_cidr_says_so() -> None:
    pool = PodAddresses(ipaddress.IPv4Network("10.244.0.0/29"))  # .2 to .6 for pods
    taken = {pool.take() for _ in range(5)}
    assert len(taken) == 5
    with pytest.raises(RangeFull, match=r"10\.244\.0\.0/29"):
        pool.take()


def test_a_freed_address_is_handed_out_again_only_after_the_others() -> None:
    pool = PodAddresses(ipaddress.IPv4Network("10.244.0.0/29"))  # .2 to .6 for pods
    first, second = pool.take(), pool.take()
    pool.release(first)
    pool.release(second)
    assert [pool.take() for _ in range(3)] == [IP("10.244.0.4"), IP("10.244.0.5"),
                                             IP("10.244.0.6")]
    assert pool.take() == IP("10.244.0.2")  # wrapped around to the oldest free one
