"""Which endpoints a Service has, and the fewest EndpointSlice writes that publish them.

Pure: values in, values out. The endpoints controller (`control.endpoints`) calls
`plan_slices(service, pods, slices)` with what its caches hold and applies the returned
`SlicePlan`; the rules below are those of Kubernetes' EndpointSlice controller
(`pkg/controller/endpointslice`, KEP-752, KEP-1672).

Which services. Only a Service with a selector gets slices from us. A Service without one (or
with an empty one) owns no managed slices: its slices are written by the user and are never
touched. An ExternalName Service has no endpoints, so its managed slices (left from a time it was
ClusterIP) are deleted, as are the managed slices of a Service that is gone (`service=None`).
Slices not labelled `endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io` are
never touched; managed slices owned by another incarnation of the service (a different uid) are
deleted.

Which pods. A pod is an endpoint of the service if its labels match the selector, it has an IP
(`status.podIPs`, else `status.podIP`), and it is not terminal (phase Succeeded or Failed).
Terminating pods (with a `deletionTimestamp`) stay, with these conditions (KEP-1672)::

    serving     = pod Ready
    terminating = pod has a deletionTimestamp
    ready       = serving and not terminating      (publishNotReadyAddresses: always true)

Each endpoint carries `targetRef` (the Pod), `nodeName`, and `hostname` when the pod sets
`spec.hostname` and its `spec.subdomain` is the service's name.

Ports and address types. Each service port becomes an `EndpointPort` whose number is resolved
per pod: a numeric `targetPort` as is (none: the service port), a named one by looking the name
and protocol up in the pod's container ports. Ports apply to a whole slice, so pods are grouped
by the list of ports they resolve (a pod that cannot resolve a name is in a group without that
port, as in Kubernetes) and by address family: IPv4 addresses go to `IPv4` slices, IPv6 to
`IPv6` (only the families of the service's `ipFamilies`, or its clusterIPs, when it has any).

Planning (the fewest writes: each slice write fans out to every node's proxy). For each group:

1. Existing slices of the group keep the endpoints still desired (updated in place if their
   conditions changed) and drop the others. A slice with no change is left alone, even if its
   endpoints are in another order; one that loses every endpoint is deleted.
2. Endpoints not yet placed fill the slices already being updated, fullest first.
3. What remains goes into new slices of `max_per_slice`; a remainder smaller than one slice goes
   into the unchanged slice it fills closest to full, if one has room, otherwise a new slice.
   (Kubernetes prefers one new slice to many slice updates; it never rebalances.)
4. A slice to delete and a slice to create of the same address type become one update of the
   old slice (one write instead of two).

Written slices list their endpoints sorted by IP and their ports sorted, so the same input
always gives the same slices and an unchanged set compares equal. Annotations (the shell's
`endpoints.kubernetes.io/last-change-trigger-time`) are kept and never compared.
New slices are named `<service>-<suffix>`, the suffix from the injected `new_suffix()`.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import msgspec

from clusterip.core import model as m

__all__ = [
    "ANNOTATION_TRIGGER_TIME",
    "CONTROLLER_NAME",
    "LABEL_MANAGED_BY",
    "LABEL_SERVICE_NAME",
    "MAX_ENDPOINTS_PER_SLICE",
    "GroupKey",
    "SlicePlan",
    "desired_endpoints",
    "is_managed",
    "plan_slices",
    "pod_is_ready",
    "selector_matches",
    "service_has_selector",
]

LABEL_SERVICE_NAME = "kubernetes.io/service-name"
LABEL_MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ANNOTATION_TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
MAX_ENDPOINTS_PER_SLICE = 100

_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
_FAMILY_ADDRESS_TYPE = {4: "IPv4", 6: "IPv6"}
_IP_FAMILY_ADDRESS_TYPE = {"IPv4": "IPv4", "IPv6": "IPv6"}

# A group of endpoints that can share slices: (addressType, the ports, sorted).
GroupKey = tuple[str, tuple[m.EndpointPort, ...]]


@dataclass(frozen=True, slots=True)
class SlicePlan:
    """The writes that take the stored slices to the desired ones.

    `update` slices keep the stored `resourceVersion`, so a write over a concurrent change fails
    with Conflict instead of losing it; `delete` holds the stored slices to delete.
    """

    create: tuple[m.EndpointSlice, ...] = ()
    update: tuple[m.EndpointSlice, ...] = ()
    delete: tuple[m.EndpointSlice, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)

    @property
    def writes(self) -> int:
        return len(self.create) + len(self.update) + len(self.delete)


# --- selection --------------------------------------------------------------------------------


def selector_matches(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service selector (equality only) matches labels; an empty or absent one matches none."""
    if not selector:
        return False
    if not labels:
        return False
    return all(labels.get(key) == value for key, value in selector.items())


def service_has_selector(service: m.Service) -> bool:
    """Whether the endpoints controller manages the service's slices."""
    return bool(service.spec.selector) and service.spec.type != "ExternalName"


def is_managed(sl: m.EndpointSlice) -> bool:
    """The slice is written by the endpoints controller (not by a user or another controller)."""
    labels = sl.metadata.labels or {}
    return labels.get(LABEL_MANAGED_BY) == CONTROLLER_NAME


def pod_is_ready(pod: m.Pod) -> bool:
    """The pod's Ready condition is True."""
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


# --- desired endpoints ------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 18)
def _parse_ip(text: str) -> tuple[int, int] | None:
    """(IP version, value) of an address text, None if it is not one. Memoised: the same pod
    IPs are parsed on every sync of their service, and `ipaddress` is slow."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return ip.version, int(ip)


def _pod_ips(pod: m.Pod) -> list[tuple[str, tuple[int, int]]]:
    """The pod's addresses: (text, (version, value)); texts that are not addresses are skipped."""
    texts = [p.ip for p in pod.status.pod_ips] or ([pod.status.pod_ip] if pod.status.pod_ip else [])
    ips = []
    for text in texts:
        parsed = _parse_ip(text)
        if parsed is not None:
            ips.append((text, parsed))
    return ips


def _address_types(service: m.Service) -> frozenset[str] | None:
    """The address types the service publishes; None: whatever the pods have."""
    families = {_IP_FAMILY_ADDRESS_TYPE[f] for f in service.spec.ip_families
                if f in _IP_FAMILY_ADDRESS_TYPE}
    if families:
        return frozenset(families)
    for text in service.spec.cluster_ips or ((service.spec.cluster_ip,) if
                                             service.spec.cluster_ip else ()):
        parsed = _parse_ip(text)
        if parsed is not None:  # not "None" (headless), nor unallocated
            families.add(_FAMILY_ADDRESS_TYPE[parsed[0]])
    return frozenset(families) or None


def _resolve_port(pod: m.Pod, port: m.ServicePort) -> int | None:
    target = port.target_port
    if target is None or target == 0 or target == "":
        return port.port
    if isinstance(target, int):
        return target
    if target.isdigit():
        return int(target)
    protocol = port.protocol or "TCP"
    for container in pod.spec.containers:
        for cport in container.ports:
            if cport.name == target and (cport.protocol or "TCP") == protocol:
                return cport.container_port
    return None


def _port_sort_key(port: m.EndpointPort) -> tuple[str, str, int]:
    return (port.name or "", port.protocol or "", port.port or 0)


def _endpoint_ports(service: m.Service, pod: m.Pod) -> tuple[m.EndpointPort, ...]:
    ports = []
    for sp in service.spec.ports:
        number = _resolve_port(pod, sp)
        if number is None:
            continue  # the pod cannot serve this port: it goes to a group without it
        ports.append(
            m.EndpointPort(
                name=sp.name, protocol=sp.protocol or "TCP", port=number,
                app_protocol=sp.app_protocol,
            )
        )
    return tuple(sorted(ports, key=_port_sort_key))


def _has_named_ports(service: m.Service) -> bool:
    return any(
        isinstance(p.target_port, str) and p.target_port and not p.target_port.isdigit()
        for p in service.spec.ports
    )


# The eight possible conditions, built once (a sync of a big service builds thousands).
_CONDITIONS = {
    (ready, serving, terminating): m.EndpointConditions(
        ready=ready, serving=serving, terminating=terminating
    )
    for ready in (False, True) for serving in (False, True) for terminating in (False, True)
}


def _endpoint(service: m.Service, pod: m.Pod, ip: str) -> m.Endpoint:
    serving = pod_is_ready(pod)
    terminating = pod.metadata.deletion_timestamp is not None
    ready = service.spec.publish_not_ready_addresses or (serving and not terminating)
    meta = pod.metadata
    hostname = (
        pod.spec.hostname
        if pod.spec.hostname and pod.spec.subdomain == service.metadata.name
        else None
    )
    return m.Endpoint(
        addresses=(ip,),
        conditions=_CONDITIONS[(ready, serving, terminating)],
        hostname=hostname,
        target_ref=m.ObjectReference(
            kind="Pod", namespace=meta.namespace, name=meta.name, uid=meta.uid
        ),
        node_name=pod.spec.node_name or None,
    )


def _pod_order(pod: m.Pod) -> tuple[bool, str]:
    # When two pods claim one IP (an old pod still terminating, its successor running), the
    # running one wins; then the name decides, so the choice does not depend on input order.
    return (pod.metadata.deletion_timestamp is not None, pod.metadata.name)


def desired_endpoints(
    service: m.Service, pods: Iterable[m.Pod]
) -> dict[GroupKey, list[m.Endpoint]]:
    """The service's endpoints, grouped by (addressType, ports), each group sorted by IP.

    `pods` may be every pod of the namespace or any superset of the selected ones: the selector,
    the namespace, the phase and the IP are all checked here. A service the controller does not
    manage (no selector, ExternalName) has none.
    """
    if not service_has_selector(service):
        return {}
    selector = service.spec.selector
    namespace = service.metadata.namespace
    wanted_types = _address_types(service)
    # Without named target ports every pod resolves the same ports: work them out once.
    shared_ports = None if _has_named_ports(service) else _endpoint_ports(service, m.Pod())
    chosen: dict[GroupKey, dict[str, tuple[int, m.Endpoint]]] = {}
    selected = [
        pod for pod in pods
        if pod.metadata.namespace == namespace
        and pod.status.phase not in _TERMINAL_PHASES
        and selector_matches(selector, pod.metadata.labels)
    ]
    for pod in sorted(selected, key=_pod_order):
        ips = _pod_ips(pod)
        if not ips:
            continue
        ports = shared_ports if shared_ports is not None else _endpoint_ports(service, pod)
        for text, (version, value) in ips:
            address_type = _FAMILY_ADDRESS_TYPE[version]
            if wanted_types is not None and address_type not in wanted_types:
                continue
            group = chosen.setdefault((address_type, ports), {})
            if text not in group:
                group[text] = (value, _endpoint(service, pod, text))
    return {
        key: [endpoint for _, endpoint in sorted(group.values(), key=_first)]
        for key, group in sorted(chosen.items(), key=lambda kv: _group_sort_key(kv[0]))
    }


def _first(item: tuple[int, m.Endpoint]) -> int:
    return item[0]


def _group_sort_key(key: GroupKey) -> tuple[str, tuple[tuple[str, str, int], ...]]:
    return key[0], tuple(_port_sort_key(p) for p in key[1])


# --- planning ---------------------------------------------------------------------------------


def _ip_sort_key(endpoint: m.Endpoint) -> tuple[int, int, str]:
    text = endpoint.addresses[0] if endpoint.addresses else ""
    parsed = _parse_ip(text)
    if parsed is None:
        return (0, 0, text)
    return (parsed[0], parsed[1], "")


def _owner_ref(service: m.Service) -> m.OwnerReference:
    return m.OwnerReference(
        api_version="v1", kind="Service", name=service.metadata.name, uid=service.metadata.uid,
        controller=True, block_owner_deletion=True,
    )


def _owned_by(sl: m.EndpointSlice, service: m.Service) -> bool:
    refs = sl.metadata.owner_references
    if not refs:
        return True  # adopt: a managed slice with no owner is ours to fix
    return any(
        r.kind == "Service" and r.name == service.metadata.name and r.uid == service.metadata.uid
        for r in refs
    )


def _labels(service: m.Service) -> dict[str, str]:
    return {LABEL_SERVICE_NAME: service.metadata.name, LABEL_MANAGED_BY: CONTROLLER_NAME}


def _metadata_ok(sl: m.EndpointSlice, service: m.Service) -> bool:
    labels = sl.metadata.labels or {}
    return (
        all(labels.get(k) == v for k, v in _labels(service).items())
        and sl.metadata.owner_references == (_owner_ref(service),)
    )


def _fixed_metadata(sl: m.EndpointSlice, service: m.Service) -> m.ObjectMeta:
    return msgspec.structs.replace(
        sl.metadata,
        labels={**(sl.metadata.labels or {}), **_labels(service)},
        owner_references=(_owner_ref(service),),
    )


@dataclass(slots=True)
class _Draft:
    """A slice being planned: the stored one (None for a new slice) and its endpoints by IP."""

    stored: m.EndpointSlice | None
    address_type: str
    ports: tuple[m.EndpointPort, ...]
    endpoints: dict[str, m.Endpoint]
    changed: bool = False

    @property
    def name(self) -> str:
        return self.stored.metadata.name if self.stored else ""


def _slice_key(sl: m.EndpointSlice) -> GroupKey:
    return sl.address_type, tuple(sorted(sl.ports, key=_port_sort_key))


def _slot(endpoint: m.Endpoint) -> str:
    return endpoint.addresses[0] if endpoint.addresses else ""


def plan_slices(
    service: m.Service | None,
    pods: Iterable[m.Pod],
    slices: Sequence[m.EndpointSlice],
    *,
    new_suffix: Callable[[], str],
    max_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
) -> SlicePlan:
    """The writes that make `slices` publish the endpoints of `service`. See the module docstring.

    Args:
        service: the Service, or None if it is gone (its managed slices are then deleted).
        pods: the pods of the service's namespace (or any superset of those it selects).
        slices: the stored slices labelled with the service's name; unmanaged ones are ignored.
        new_suffix: returns the random part of a new slice's name.
        max_per_slice: the most endpoints one slice may hold (Kubernetes' default: 100).

    Returns:
        The slices to create, update and delete; empty when the stored slices are right.
    """
    if max_per_slice < 1:
        raise ValueError(f"max_per_slice must be at least 1 (got {max_per_slice})")
    managed = sorted((sl for sl in slices if is_managed(sl)), key=lambda sl: sl.metadata.name)
    if service is None or not service.spec.selector:
        if service is None:
            return SlicePlan(delete=tuple(managed))
        return SlicePlan()  # selector-less: the slices are the user's
    if service.spec.type == "ExternalName":
        return SlicePlan(delete=tuple(managed))

    desired = desired_endpoints(service, pods)
    to_delete: list[m.EndpointSlice] = []
    by_group: dict[GroupKey, list[m.EndpointSlice]] = {}
    for sl in managed:
        if not _owned_by(sl, service):
            to_delete.append(sl)
            continue
        by_group.setdefault(_slice_key(sl), []).append(sl)

    drafts: list[_Draft] = []
    for group in sorted(set(by_group) | set(desired), key=_group_sort_key):
        group_drafts, group_deletes = _plan_group(
            group, by_group.get(group, []), desired.get(group, []), service, max_per_slice
        )
        drafts.extend(group_drafts)
        to_delete.extend(group_deletes)

    # Step 4: turn a delete plus a create of the same address type into one update.
    updates: list[m.EndpointSlice] = []
    creates: list[m.EndpointSlice] = []
    reusable = sorted(to_delete, key=lambda sl: sl.metadata.name)
    for draft in drafts:
        if draft.stored is None:
            reuse = next(
                (sl for sl in reusable
                 if sl.address_type == draft.address_type and _owned_by(sl, service)),
                None,
            )
            if reuse is not None:
                reusable.remove(reuse)
                draft.stored = reuse
                draft.changed = True
        if not draft.changed:
            continue
        sl = _render(draft, service, new_suffix)
        (updates if draft.stored is not None else creates).append(sl)
    return SlicePlan(create=tuple(creates), update=tuple(updates), delete=tuple(reusable))


def _plan_group(
    group: GroupKey,
    stored: list[m.EndpointSlice],
    wanted: list[m.Endpoint],
    service: m.Service,
    max_per_slice: int,
) -> tuple[list[_Draft], list[m.EndpointSlice]]:
    """Steps 1-3 for one (addressType, ports) group: drafts to write, stored slices to delete."""
    address_type, ports = group
    remaining: dict[str, m.Endpoint] = {_slot(e): e for e in wanted}
    placed: set[str] = set()
    drafts: list[_Draft] = []
    deletes: list[m.EndpointSlice] = []

    # 1. Keep what is still wanted (updated), drop the rest.
    for sl in stored:
        kept: dict[str, m.Endpoint] = {}
        changed = not _metadata_ok(sl, service)
        for endpoint in sl.endpoints:
            slot = _slot(endpoint)
            want = remaining.get(slot)
            if want is None or slot in placed:
                changed = True  # no longer an endpoint, or a duplicate of one placed already
                continue
            if want != endpoint:
                changed = True
            kept[slot] = want
            placed.add(slot)
        if not kept:
            deletes.append(sl)
            continue
        drafts.append(_Draft(sl, address_type, ports, kept, changed))
    left = deque(e for slot, e in remaining.items() if slot not in placed)

    # 2. Fill the slices that are being written anyway, fullest first.
    changed_drafts = sorted(
        (d for d in drafts if d.changed), key=lambda d: (-len(d.endpoints), d.name)
    )
    for draft in changed_drafts:
        while left and len(draft.endpoints) < max_per_slice:
            endpoint = left.popleft()
            draft.endpoints[_slot(endpoint)] = endpoint

    # 3. New slices for the rest; a last partial one may go into an unchanged slice with room.
    while left:
        target: _Draft | None = None
        if len(left) < max_per_slice:
            target = _slice_to_fill(
                [d for d in drafts if not d.changed], len(left), max_per_slice
            )
        if target is None:
            target = _Draft(None, address_type, ports, {})
            drafts.append(target)
        target.changed = True
        while left and len(target.endpoints) < max_per_slice:
            endpoint = left.popleft()
            target.endpoints[_slot(endpoint)] = endpoint
    return drafts, deletes


def _slice_to_fill(candidates: list[_Draft], count: int, max_per_slice: int) -> _Draft | None:
    """The unchanged slice that `count` more endpoints bring closest to full, if any fits."""
    best: _Draft | None = None
    for draft in sorted(candidates, key=lambda d: d.name):
        room = max_per_slice - len(draft.endpoints)
        if room >= count and (best is None or len(draft.endpoints) > len(best.endpoints)):
            best = draft
    return best


def _render(draft: _Draft, service: m.Service, new_suffix: Callable[[], str]) -> m.EndpointSlice:
    endpoints = tuple(sorted(draft.endpoints.values(), key=_ip_sort_key))
    if draft.stored is not None:
        return msgspec.structs.replace(
            draft.stored,
            metadata=_fixed_metadata(draft.stored, service),
            address_type=draft.address_type,
            endpoints=endpoints,
            ports=draft.ports,
        )
    meta = service.metadata
    return m.EndpointSlice(
        api_version=m.EndpointSlice.API_VERSION,
        kind=m.EndpointSlice.KIND,
        metadata=m.ObjectMeta(
            name=f"{meta.name}-{new_suffix()}",
            namespace=meta.namespace,
            labels=_labels(service),
            owner_references=(_owner_ref(service),),
        ),
        address_type=draft.address_type,
        endpoints=endpoints,
        ports=draft.ports,
    )
