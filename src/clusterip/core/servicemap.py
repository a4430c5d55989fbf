"""The service map: what the proxy serves, built purely from Services and EndpointSlices.

Both proxy modes (nftables and userspace) start from the same values::

    tracker = ServiceMapTracker()
    tracker.service(key, service_or_None)       # informer handlers feed it
    tracker.slice(key, slice_or_None)
    snapshot = tracker.take()                   # ServiceMap + which ports changed since last take
    choice = choose(snapshot.ports[name], node="node-1")  # → Choice(verdict, endpoints)

A `ServicePort` is one port of one Service, keyed by `ServicePortName` (namespace, service,
port name, protocol), as kube-proxy keys it. It holds the ClusterIPs, the port, the session
affinity timeout (None: no affinity), whether internalTrafficPolicy is Local, and every
endpoint of the EndpointSlices labelled ``kubernetes.io/service-name: <service>`` whose port of
that name and protocol exists, with its conditions (ready defaults to true, serving to ready,
terminating to false, as the EndpointSlice API says), deduplicated by (address, port) and
sorted. Only Services that have a ClusterIP are in the map: headless and ExternalName Services
and Services whose IP is not allocated yet have nothing to proxy. A ClusterIP in `local_ips`
(the cluster DNS address, answered by the node itself) is left out too.

Which endpoints take new connections (`choose`, kube-proxy's ``CategorizeEndpoints``) is the
table `_POLICY`: the ready endpoints; if none, the serving and terminating ones; if none, the
verdict of the traffic policy: REJECT for Cluster (the client gets a TCP reset or an ICMP port
unreachable at once), DROP for Local (only this node's endpoints count; none here).

`ServiceMapTracker` is the change tracker: it keeps the Services and the slices by service,
marks a service dirty when either changes, and `take()` recomputes only the dirty services,
returning the new map and the `ServicePortName`s that changed (added, removed or different), so
a burst of events becomes one update. `stale_udp(old, new)` says which conntrack entries the
kernel mode must delete after an update, as kube-proxy's ``CleanStaleEntries`` does: for every
UDP (ClusterIP, port) whose serving endpoints changed, the entries whose reply does not come
from one of the endpoints serving now. That takes the flows of an endpoint that went, and also
one that slipped in toward it while it went (a packet NATed by the old rules whose entry was
confirmed just after the previous cleanup): the next change of the port removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from clusterip.core import model as m

__all__ = [
    "DEFAULT_AFFINITY_TIMEOUT",
    "Choice",
    "Endpoint",
    "ServiceMap",
    "ServiceMapTracker",
    "ServicePort",
    "ServicePortName",
    "Snapshot",
    "StaleUdp",
    "Verdict",
    "build_service_map",
    "choose",
    "service_ports",
    "stale_udp",
]

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, the Kubernetes default for ClientIP affinity
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
_PROTOCOLS = frozenset({"TCP", "UDP"})

Verdict = Literal["endpoints", "reject", "drop"]


@dataclass(frozen=True, slots=True, order=True)
class ServicePortName:
    """The key of a service port, as kube-proxy's: ``default/web:http/TCP``."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "TCP" or "UDP"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name}/{self.protocol}"


@dataclass(frozen=True, slots=True, order=True)
class Endpoint:
    """One address and port behind a service port, with its EndpointSlice conditions."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str | None = None

    @property
    def family(self) -> int:
        """4 or 6."""
        return 6 if ":" in self.ip else 4


@dataclass(frozen=True, slots=True)
class ServicePort:
    """What one port of one Service serves. See the module docstring."""

    name: ServicePortName
    cluster_ips: tuple[str, ...]
    port: int
    protocol: str
    affinity_timeout: int | None = None  # seconds; None: no session affinity
    local_only: bool = False  # internalTrafficPolicy: Local
    endpoints: tuple[Endpoint, ...] = ()


ServiceMap = Mapping[ServicePortName, ServicePort]


@dataclass(frozen=True, slots=True)
class Choice:
    """Where new connections to a service port go: `endpoints` (non-empty), or the verdict for
    a port with none: "reject" or "drop"."""

    verdict: Verdict
    endpoints: tuple[Endpoint, ...] = ()


def _ready(e: Endpoint) -> bool:
    return e.ready


def _serving_terminating(e: Endpoint) -> bool:
    return e.serving and e.terminating


# The endpoint choice, in order: the first class with members wins. kube-proxy's
# CategorizeEndpoints without topology hints.
_CLASSES: tuple[Callable[[Endpoint], bool], ...] = (_ready, _serving_terminating)
# What a port whose classes are all empty does, by traffic policy.
_POLICY: Mapping[bool, Verdict] = {False: "reject", True: "drop"}  # key: local_only


def choose(port: ServicePort, node: str | None, family: int | None = None) -> Choice:
    """The endpoints new connections to `port` go to, on node `node` (for Local policy), for
    IP `family` (4, 6, or None: both)."""
    candidates = [
        e for e in port.endpoints
        if (family is None or e.family == family)
        and (not port.local_only or e.node_name == node)
    ]
    for wanted in _CLASSES:
        chosen = tuple(e for e in candidates if wanted(e))
        if chosen:
            return Choice("endpoints", chosen)
    return Choice(_POLICY[port.local_only])


def _has_cluster_ip(spec: m.ServiceSpec) -> bool:
    return spec.type != "ExternalName" and spec.cluster_ip not in ("", "None")


def service_ports(
    service: m.Service,
    slices: Iterable[m.EndpointSlice],
    local_ips: frozenset[str] = frozenset(),
) -> dict[ServicePortName, ServicePort]:
    """The ports of one Service with their endpoints from its `slices` (already selected by
    the service-name label)."""
    spec, meta = service.spec, service.metadata
    if not _has_cluster_ip(spec):
        return {}
    cluster_ips = tuple(ip for ip in (spec.cluster_ips or (spec.cluster_ip,))
                        if ip and ip not in local_ips)
    if not cluster_ips:
        return {}
    affinity = None
    if spec.session_affinity == "ClientIP":
        config = spec.session_affinity_config
        timeout = config.client_ip.timeout_seconds if config and config.client_ip else None
        affinity = timeout or DEFAULT_AFFINITY_TIMEOUT
    local_only = spec.internal_traffic_policy == "Local"
    by_port: dict[tuple[str, str], dict[tuple[str, int], Endpoint]] = {}
    for sl in sorted(slices, key=lambda s: s.metadata.name):
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        for p in sl.ports:
            if p.port is None or not 0 < p.port < 65536:
                continue
            found = by_port.setdefault((p.name or "", p.protocol or "TCP"), {})
            for e in sl.endpoints:
                ready = e.conditions.ready is not False
                serving = ready if e.conditions.serving is None else e.conditions.serving
                terminating = e.conditions.terminating is True
                for address in e.addresses:
                    found.setdefault((address, p.port), Endpoint(
                        address, p.port, ready, serving, terminating, e.node_name))
    ports: dict[ServicePortName, ServicePort] = {}
    for sp in spec.ports:
        protocol = sp.protocol or "TCP"
        if protocol not in _PROTOCOLS:
            continue
        name = ServicePortName(meta.namespace, meta.name, sp.name, protocol)
        endpoints = by_port.get((sp.name, protocol), {})
        ports[name] = ServicePort(
            name, cluster_ips, sp.port, protocol, affinity, local_only,
            tuple(sorted(endpoints.values())))
    return ports


def build_service_map(
    services: Iterable[m.Service],
    slices: Iterable[m.EndpointSlice],
    local_ips: frozenset[str] = frozenset(),
) -> dict[ServicePortName, ServicePort]:
    """The whole service map at once (the tracker's result after it saw every object)."""
    tracker = ServiceMapTracker(local_ips)
    for service in services:
        tracker.service(_key(service), service)
    for sl in slices:
        tracker.slice(_key(sl), sl)
    return dict(tracker.take().ports)


def _key(obj: m.Service | m.EndpointSlice) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The service map after a `take()`, and the ports that changed since the one before."""

    ports: ServiceMap
    changed: frozenset[ServicePortName]


@dataclass
class ServiceMapTracker:
    """Services and EndpointSlices in, service map snapshots out. See the module docstring.

    Keys are the informers' ``namespace/name``.
    """

    local_ips: frozenset[str] = frozenset()
    _services: dict[tuple[str, str], m.Service] = field(default_factory=dict)
    _slices: dict[tuple[str, str], dict[str, m.EndpointSlice]] = field(default_factory=dict)
    _slice_owner: dict[str, tuple[str, str]] = field(default_factory=dict)  # slice key → service
    _ports: dict[tuple[str, str], dict[ServicePortName, ServicePort]] = field(
        default_factory=dict)
    _map: dict[ServicePortName, ServicePort] = field(default_factory=dict)
    _dirty: set[tuple[str, str]] = field(default_factory=set)

    @property
    def pending(self) -> bool:
        """Whether a change waits for `take()`."""
        return bool(self._dirty)

    def service(self, key: str, service: m.Service | None) -> None:
        """A Service was added or changed (`service`), or deleted (None)."""
        ns, _, name = key.partition("/")
        old = self._services.get((ns, name))
        if service is None:
            if old is None:
                return
            del self._services[(ns, name)]
        else:
            if old is not None and old.spec == service.spec:
                return  # a status or metadata change: nothing to proxy differently
            self._services[(ns, name)] = service
        self._dirty.add((ns, name))

    def slice(self, key: str, sl: m.EndpointSlice | None) -> None:
        """An EndpointSlice was added or changed (`sl`), or deleted (None)."""
        ns, _, name = key.partition("/")
        owner = self._slice_owner.pop(key, None)
        if owner is not None:
            group = self._slices.get(owner, {})
            group.pop(name, None)
            if not group:
                self._slices.pop(owner, None)
            self._dirty.add(owner)
        labels = sl.metadata.labels if sl is not None else None
        service_name = labels.get(LABEL_SERVICE_NAME) if labels else None
        if sl is not None and service_name:
            owner = (ns, service_name)
            self._slices.setdefault(owner, {})[name] = sl
            self._slice_owner[key] = owner
            self._dirty.add(owner)

    def take(self) -> Snapshot:
        """The service map now, and which ports changed since the last `take()`."""
        changed: set[ServicePortName] = set()
        if self._dirty:
            updated = dict(self._map)
            for owner in self._dirty:
                old = self._ports.pop(owner, {})
                service = self._services.get(owner)
                new = (service_ports(service, self._slices.get(owner, {}).values(),
                                     self.local_ips)
                       if service is not None else {})
                for name in old.keys() - new.keys():
                    del updated[name]
                    changed.add(name)
                for name, port in new.items():
                    if old.get(name) != port:
                        changed.add(name)
                    updated[name] = port
                if new:
                    self._ports[owner] = new
            self._dirty.clear()
            self._map = updated
        return Snapshot(self._map, frozenset(changed))


@dataclass(frozen=True, slots=True, order=True)
class StaleUdp:
    """Conntrack entries to delete: UDP to `cluster_ip`:`port` whose reply comes from an
    address not in `serving`."""

    cluster_ip: str
    port: int
    serving: frozenset[str]


def stale_udp(old: ServiceMap, new: ServiceMap) -> list[StaleUdp]:
    """The UDP (ClusterIP, port)s whose serving endpoints changed from `old` to `new` (or that
    went), with the endpoint IPs that serve them now."""
    stale: set[StaleUdp] = set()
    for name in old.keys() | new.keys():
        before, after = old.get(name), new.get(name)
        ports = [p for p in (before, after) if p is not None]
        if ports[0].protocol != "UDP":
            continue
        now = _serving(after)
        if before is not None and after is not None and _serving(before) == now \
                and before.cluster_ips == after.cluster_ips:
            continue
        stale.update(StaleUdp(vip, p.port, now) for p in ports for vip in p.cluster_ips)
    return sorted(stale)


def _serving(port: ServicePort | None) -> frozenset[str]:
    return frozenset(e.ip for e in port.endpoints if e.serving) if port is not None \
        else frozenset()
