"""Which addresses of a node's pod CIDR are taken, so that no two live pods share one (pure).

The first usable address is the gateway (on the node's bridge); the network and broadcast
addresses are never handed out. A pod that had an address asks for it again (`take(wanted)`,
after an agent restart or a container restart) and gets it while it is free; otherwise the
next free address after the last one handed out is, wrapping around at the end (the CNI
host-local IPAM's rotation). `release` returns an address when its pod is gone.

Rotating rather than taking the lowest free address keeps a just-freed address unused for a
while: a replacement pod started as its predecessor goes does not inherit its address, so the
node's neighbour entry (the old pod's MAC) and UDP conntrack entries toward the old pod cannot
send the new pod's traffic nowhere. The end-to-end UDP test found that: with the lowest free
address, a replacement took its predecessor's address about one time in ten and its client got
no reply for seconds.
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
    last: ipaddress.IPv4Address | None = None  # the address handed out last

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self.cidr.network_address + 1

    def _free(self, ip: ipaddress.IPv4Address) -> bool:
        return ip in self.cidr and ip not in self.taken and ip not in (
            self.cidr.network_address, self.gateway, self.cidr.broadcast_address)

    def take(self, wanted: ipaddress.IPv4Address | None = None) -> ipaddress.IPv4Address:
        """`wanted` if it is free, else the next free address after the last one handed out
        (wrapping around). Raises RangeFull."""
        if wanted is not None and self._free(wanted):
            self.taken.add(wanted)
            return wanted
        hosts = list(self.cidr.hosts())
        start = hosts.index(self.last) + 1 if self.last in hosts else 0
        for ip in hosts[start:] + hosts[:start]:
            if self._free(ip):
                self.taken.add(ip)
                self.last = ip
                return ip
        raise RangeFull(f"the pod CIDR {self.cidr} of this node is full")

    def release(self, ip: ipaddress.IPv4Address) -> None:
        self.taken.discard(ip)
