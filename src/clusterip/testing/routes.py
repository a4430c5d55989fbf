"""A route table in a dict, for tests of `runtime.routes` (the kernel's is tested against a test
namespace in tests/runtime/test_podnet.py)."""

from __future__ import annotations

import ipaddress

__all__ = ["FakeRouteTable"]

Routes = dict[ipaddress.IPv4Network, ipaddress.IPv4Address]


class FakeRouteTable:
    """Routes in a dict, validated like the kernel's: a gateway must be a unicast address."""

    def __init__(self) -> None:
        self.routes: Routes = {}

    async def read(self) -> Routes:
        return dict(self.routes)

    async def replace(self, network: ipaddress.IPv4Network, via: ipaddress.IPv4Address) -> None:
        if via.is_multicast or via.is_unspecified or via in network:
            raise ValueError(f"route {network} via {via}: not a usable gateway")
        self.routes[network] = via

    async def delete(self, network: ipaddress.IPv4Network) -> None:
        self.routes.pop(network, None)
