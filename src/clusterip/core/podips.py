"""Which addresses of a node's pod CIDR are taken, so that no two live pods share one (pure).

The first usable address is the gateway (on the node's bridge); the network and broadcast
addresses are never handed out. A pod that had an address asks for it again (`take(wanted)`,
after an agent restart or a container restart) and gets it while it is free; otherwise the
lowest free address is handed out. `release` returns an address when its pod is gone.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from clusterip.core.errors import RangeFull

__all__ = ["PodAddresses"]


@dataclass
class PodAddresses:
    cidr: ipaddress.IPv4Network
    taken: set[ipaddress.IPv4Address] = field(default_factory=set)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.cidr.network_address + 1

    def _free(self, ip: ipaddress.IPv4Address) -> bool:
        return ip in self.cidr and ip not in self.taken and ip not in (
            self.cidr.network_address, self.gateway, self.cidr.broadcast_address)

    def take(self, wanted: ipaddress.IPv4Address | None = None) -> ipaddress.IPv4Address:
        """`wanted` if it is free, else the lowest free address. Raises RangeFull."""
        if wanted is not None and self._free(wanted):
            self.taken.add(wanted)
            return wanted
        for ip in self.cidr.hosts():
            if self._free(ip):
                self.taken.add(ip)
                return ip
        raise RangeFull(f"the pod CIDR {self.cidr} of this node is full")

    def release(self, ip: ipaddress.IPv4Address) -> None:
        self.taken.discard(ip)
