"""The read-only v1 Endpoints view of a Service, derived from its EndpointSlices.

Old clients read `Endpoints`; clusterip never stores them. `endpoints_for(service, slices)` folds
the service's slices into subsets the way Kubernetes' mirroring does in reverse: one subset per
distinct port list, ready endpoints under `addresses`, the rest under `notReadyAddresses`, each
address once, sorted by IP. At most 1000 addresses are shown, with the `over-capacity` annotation
Kubernetes sets when it truncates.
"""

from __future__ import annotations

from collections.abc import Iterable

from clusterip.core import model as m

__all__ = ["MAX_ADDRESSES", "endpoints_for"]

MAX_ADDRESSES = 1000


def _address(endpoint: m.Endpoint, ip: str) -> m.EndpointAddress:
    return m.EndpointAddress(
        ip=ip,
        hostname=endpoint.hostname or "",
        node_name=endpoint.node_name,
        target_ref=endpoint.target_ref,
    )


def endpoints_for(service: m.Service, slices: Iterable[m.EndpointSlice]) -> m.Endpoints:
    groups: dict[tuple[m.EndpointsPort, ...], tuple[dict[str, m.EndpointAddress], ...]] = {}
    total = 0
    for sl in sorted(slices, key=lambda s: s.metadata.name):
        ports = tuple(
            m.EndpointsPort(name=p.name or "", port=p.port or 0, protocol=p.protocol or "TCP",
                            app_protocol=p.app_protocol)
            for p in sl.ports
        )
        ready, not_ready = groups.setdefault(ports, ({}, {}))
        for endpoint in sl.endpoints:
            is_ready = endpoint.conditions.ready is not False
            for ip in endpoint.addresses:
                if total >= MAX_ADDRESSES:
                    break
                (ready if is_ready else not_ready)[ip] = _address(endpoint, ip)
                total += 1
    subsets = tuple(
        m.EndpointSubset(
            addresses=tuple(ready[ip] for ip in sorted(ready)),
            not_ready_addresses=tuple(not_ready[ip] for ip in sorted(not_ready)),
            ports=ports,
        )
        for ports, (ready, not_ready) in groups.items()
        if ready or not_ready
    )
    annotations = (
        {"endpoints.kubernetes.io/over-capacity": "truncated"} if total >= MAX_ADDRESSES else None
    )
    meta = service.metadata
    return m.Endpoints(
        api_version="v1",
        kind="Endpoints",
        metadata=m.ObjectMeta(
            name=meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
            resource_version=meta.resource_version,
            creation_timestamp=meta.creation_timestamp,
            labels=meta.labels,
            annotations=annotations,
        ),
        subsets=subsets,
    )
