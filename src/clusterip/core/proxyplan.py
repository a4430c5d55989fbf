"""What the userspace proxy decides, purely: which sockets to listen on, which endpoints to try
in which order, and ClientIP session affinity.

`proxy.userspace` is the shell around these: it binds the listeners `plan_listeners` asks for
(one per ClusterIP, port and protocol that has endpoints to go to), tries the endpoints of
`core.servicemap.choose` in `attempt_order` (the pinned one first, then uniformly random, each
once), and keeps an `Affinity` table of pins with their expiry. Time and randomness come in as
values (`now`, an `rng`): nothing here reads a clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from clusterip.core.servicemap import Endpoint, ServiceMap, ServicePortName, choose

__all__ = ["Address", "Affinity", "Listen", "attempt_order", "plan_listeners"]

Address = tuple[str, int]


@dataclass(frozen=True, slots=True, order=True)
class Listen:
    """A socket the proxier binds: ClusterIP, port and protocol ("TCP" or "UDP")."""

    ip: str
    port: int
    protocol: str

    @property
    def family(self) -> int:
        """4 or 6 (as `Endpoint.family`)."""
        return 6 if ":" in self.ip else 4


def plan_listeners(ports: ServiceMap, node: str | None) -> dict[Listen, ServicePortName]:
    """The listeners `ports` need, each with the service port it serves: one per ClusterIP,
    port and protocol whose `choose` (for the IP's family, on `node`) has endpoints. A port
    without any has no listener, so the node's kernel refuses its clients at once (TCP reset,
    ICMP port unreachable), as the kernel mode's REJECT does. Two service ports on one address
    (which the API server does not allow) resolve to the first by name."""
    wanted: dict[Listen, ServicePortName] = {}
    for name in sorted(ports):
        port = ports[name]
        for ip in port.cluster_ips:
            key = Listen(ip, port.port, port.protocol)
            if choose(port, node, key.family).verdict == "endpoints":
                wanted.setdefault(key, name)
    return wanted


def attempt_order(
    endpoints: Sequence[Endpoint], pinned: Address | None, rng: random.Random
) -> Iterator[Endpoint]:
    """The endpoints to try, in order: the `pinned` one first if it is among them, then the
    others in uniformly random order (drawn lazily: the usual first success draws once)."""
    rest = list(endpoints)
    if pinned is not None:
        for i, e in enumerate(rest):
            if (e.ip, e.port) == pinned:
                yield rest.pop(i)
                break
    while rest:
        i = rng.randrange(len(rest))
        rest[i], rest[-1] = rest[-1], rest[i]
        yield rest.pop()


class Affinity:
    """ClientIP session affinity: the endpoint a client IP sticks to on a service port, until it
    has not been used for the port's timeout.

    Expired pins are forgotten when looked up, at `prune` (every sync), and whenever the table
    has doubled since the last sweep, so it holds about the clients of one timeout.
    """

    def __init__(self) -> None:
        self._pins: dict[tuple[ServicePortName, str], tuple[Address, float]] = {}
        self._sweep_at = 1024

    def get(self, name: ServicePortName, client: str, now: float) -> Address | None:
        """The endpoint `client` is pinned to on `name`, if the pin has not expired."""
        pin = self._pins.get((name, client))
        if pin is None:
            return None
        if pin[1] <= now:
            del self._pins[(name, client)]
            return None
        return pin[0]

    def pin(
        self, name: ServicePortName, client: str, endpoint: Address, now: float, timeout: float
    ) -> None:
        """Pin (or refresh the pin of) `client` to `endpoint` on `name` for `timeout` seconds."""
        self._pins[(name, client)] = (endpoint, now + timeout)
        if len(self._pins) >= self._sweep_at:
            self._sweep(lambda key, expires: expires > now)

    def prune(self, ports: ServiceMap, now: float) -> None:
        """Forget expired pins, and pins of ports that are gone or have no affinity now."""
        self._sweep(lambda key, expires: expires > now
                    and (port := ports.get(key[0])) is not None
                    and port.affinity_timeout is not None)

    def _sweep(self, keep: Callable[[tuple[ServicePortName, str], float], bool]) -> None:
        self._pins = {k: v for k, v in self._pins.items() if keep(k, v[1])}
        self._sweep_at = max(1024, 2 * len(self._pins))
