"""Rows and columns of `get`, the way kubectl prints them, and `describe` text (pure).

`COLUMNS[kind]` is a table of (header, cell function, wide-only); `rows(objects, now, wide=...)`
returns the header and one row per object, and `render_table` pads them into kubectl's layout.
The same columns serve the API's `as=Table` responses later. Ages follow kubectl's
`HumanDuration` (`45s`, `3m20s`, `5h`, `12d`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clusterip.core import model as m
from clusterip.core.timefmt import parse_rfc3339

__all__ = ["COLUMNS", "Column", "describe", "human_duration", "render_table", "rows"]

Cell = Callable[[Any, float], str]


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    cell: Cell
    wide_only: bool = False


def human_duration(seconds: float) -> str:
    """kubectl's duration.HumanDuration."""
    s = int(max(seconds, 0))
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    years, days = hours // (24 * 365), (hours // 24) % 365
    return f"{years}y{days}d" if years < 8 and days else f"{years}y"


def _age(obj: m.KubeObject, now: float) -> str:
    created = obj.metadata.creation_timestamp
    return human_duration(now - parse_rfc3339(created)) if created else "<unknown>"


def _name(obj: m.KubeObject, now: float) -> str:
    return obj.metadata.name


def _selector(selector: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items())) or "<none>"


# --- services ---------------------------------------------------------------------------------


def _svc_cluster_ip(svc: m.Service, now: float) -> str:
    if svc.spec.type == "ExternalName":
        return "<none>"
    return svc.spec.cluster_ip or "<none>"


def _svc_external_ip(svc: m.Service, now: float) -> str:
    if svc.spec.type == "ExternalName":
        return svc.spec.external_name
    return ",".join(svc.spec.external_ips) or "<none>"


def _svc_ports(svc: m.Service, now: float) -> str:
    parts = []
    for p in svc.spec.ports:
        node = f":{p.node_port}" if p.node_port else ""
        parts.append(f"{p.port}{node}/{p.protocol or 'TCP'}")
    return ",".join(parts) or "<none>"


# --- pods -------------------------------------------------------------------------------------


def pod_ready(pod: m.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _pod_ready_count(pod: m.Pod, now: float) -> str:
    total = len(pod.spec.containers)
    statuses = pod.status.container_statuses
    ready = sum(1 for c in statuses if c.ready) if statuses else (total if pod_ready(pod) else 0)
    return f"{ready}/{total}"


def _pod_status(pod: m.Pod, now: float) -> str:
    if pod.metadata.deletion_timestamp:
        return "Terminating"
    for c in pod.status.container_statuses:
        if c.state and c.state.waiting and c.state.waiting.reason:
            return c.state.waiting.reason
        if c.state and c.state.terminated and c.state.terminated.reason:
            return c.state.terminated.reason
    return pod.status.reason or pod.status.phase or "Pending"


def _pod_restarts(pod: m.Pod, now: float) -> str:
    return str(sum(c.restart_count for c in pod.status.container_statuses))


# --- slices, endpoints, deployments, the rest -------------------------------------------------


def _slice_ports(sl: m.EndpointSlice, now: float) -> str:
    return ",".join(str(p.port) for p in sl.ports if p.port is not None) or "<unset>"


def _truncated(items: Sequence[str], limit: int = 3) -> str:
    if not items:
        return "<none>"
    shown = ",".join(items[:limit])
    return f"{shown} + {len(items) - limit} more..." if len(items) > limit else shown


def _slice_endpoints(sl: m.EndpointSlice, now: float) -> str:
    return _truncated([a for e in sl.endpoints for a in e.addresses])


def _endpoints_endpoints(ep: m.Endpoints, now: float) -> str:
    pairs = [f"{a.ip}:{p.port}" for s in ep.subsets for a in s.addresses for p in s.ports]
    return _truncated(pairs)


def _deploy_ready(d: m.Deployment, now: float) -> str:
    return f"{d.status.ready_replicas or 0}/{d.spec.replicas if d.spec.replicas is not None else 1}"


def _node_status(node: m.Node, now: float) -> str:
    ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
    text = "Ready" if ready and ready.status == "True" else "NotReady"
    return text + (",SchedulingDisabled" if node.spec.unschedulable else "")


def _parent_ref(ip: m.IPAddress, now: float) -> str:
    ref = ip.spec.parent_ref
    if ref is None:
        return "<none>"
    return "/".join(p for p in (ref.resource, ref.namespace, ref.name) if p)


COLUMNS: dict[str, tuple[Column, ...]] = {
    "Service": (
        Column("NAME", _name),
        Column("TYPE", lambda s, now: s.spec.type or "ClusterIP"),
        Column("CLUSTER-IP", _svc_cluster_ip),
        Column("EXTERNAL-IP", _svc_external_ip),
        Column("PORT(S)", _svc_ports),
        Column("AGE", _age),
        Column("SELECTOR", lambda s, now: _selector(s.spec.selector), wide_only=True),
    ),
    "Pod": (
        Column("NAME", _name),
        Column("READY", _pod_ready_count),
        Column("STATUS", _pod_status),
        Column("RESTARTS", _pod_restarts),
        Column("AGE", _age),
        Column("IP", lambda p, now: p.status.pod_ip or "<none>", wide_only=True),
        Column("NODE", lambda p, now: p.spec.node_name or "<none>", wide_only=True),
    ),
    "EndpointSlice": (
        Column("NAME", _name),
        Column("ADDRESSTYPE", lambda s, now: s.address_type),
        Column("PORTS", _slice_ports),
        Column("ENDPOINTS", _slice_endpoints),
        Column("AGE", _age),
    ),
    "Endpoints": (
        Column("NAME", _name),
        Column("ENDPOINTS", _endpoints_endpoints),
        Column("AGE", _age),
    ),
    "Deployment": (
        Column("NAME", _name),
        Column("READY", _deploy_ready),
        Column("UP-TO-DATE", lambda d, now: str(d.status.updated_replicas or 0)),
        Column("AVAILABLE", lambda d, now: str(d.status.available_replicas or 0)),
        Column("AGE", _age),
        Column("SELECTOR", lambda d, now: _selector(
            d.spec.selector.match_labels if d.spec.selector else None), wide_only=True),
    ),
    "Namespace": (
        Column("NAME", _name),
        Column("STATUS", lambda n, now: "Terminating" if n.metadata.deletion_timestamp
               else (n.status.phase or "Active")),
        Column("AGE", _age),
    ),
    "Node": (
        Column("NAME", _name),
        Column("STATUS", _node_status),
        Column("ROLES", lambda n, now: "<none>"),
        Column("AGE", _age),
        Column("VERSION", lambda n, now: (n.status.node_info or {}).get("kubeletVersion", "")),
        Column("POD-CIDR", lambda n, now: n.spec.pod_cidr or "<none>", wide_only=True),
    ),
    "IPAddress": (
        Column("NAME", _name),
        Column("PARENTREF", _parent_ref),
    ),
    "ServiceCIDR": (
        Column("NAME", _name),
        Column("CIDRS", lambda c, now: ",".join(c.spec.cidrs)),
        Column("AGE", _age),
    ),
}


def rows(
    kind: str, objects: Sequence[m.KubeObject], now: float, *, wide: bool = False,
    with_namespace: bool = False,
) -> list[list[str]]:
    """The header row and one row per object."""
    columns = [c for c in COLUMNS[kind] if wide or not c.wide_only]
    table = [[c.header for c in columns]]
    table += [[c.cell(obj, now) for c in columns] for obj in objects]
    if with_namespace:
        table = [["NAMESPACE", *table[0]]] + [
            [obj.metadata.namespace, *row] for obj, row in zip(objects, table[1:], strict=True)
        ]
    return table


def render_table(table: list[list[str]]) -> str:
    """kubectl's layout: columns left-aligned, three spaces apart."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    return "\n".join(lines) + "\n"


# --- describe ---------------------------------------------------------------------------------


def _map_text(values: dict[str, str] | None) -> list[str]:
    items = sorted((values or {}).items())
    return [f"{k}={v}" for k, v in items] or ["<none>"]


_LABEL_WIDTH = 19


def _field(lines: list[str], label: str, values: list[str] | str) -> None:
    """One `Label:  value` line (and continuation lines), values in one column as kubectl
    aligns them; a label longer than the column gets two spaces before its value."""
    values = [values] if isinstance(values, str) else values
    width = max(_LABEL_WIDTH, len(label) + 3)
    lines.append(f"{label + ':':<{width}}{values[0]}")
    lines.extend(f"{'':<{width}}{v}" for v in values[1:])


def describe(obj: m.KubeObject, *, endpoints: m.Endpoints | None = None,
             now: float = 0.0) -> str:
    """`kubectl describe`-like text: metadata, then what matters for the kind."""
    meta = obj.metadata
    lines: list[str] = []
    _field(lines, "Name", meta.name)
    if meta.namespace:
        _field(lines, "Namespace", meta.namespace)
    _field(lines, "Labels", _map_text(meta.labels))
    annotations = {k: v for k, v in (meta.annotations or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    _field(lines, "Annotations", _map_text(annotations))
    describer = _DESCRIBERS.get(type(obj))
    if describer:
        describer(obj, lines, endpoints)
    return "\n".join(lines) + "\n"


def _describe_service(svc: m.Service, lines: list[str], endpoints: m.Endpoints | None) -> None:
    spec = svc.spec
    _field(lines, "Selector", _selector(spec.selector))
    _field(lines, "Type", spec.type or "ClusterIP")
    if spec.type == "ExternalName":
        _field(lines, "External Name", spec.external_name)
    else:
        _field(lines, "IP Family Policy", spec.ip_family_policy or "SingleStack")
        _field(lines, "IP Families", ",".join(spec.ip_families) or "<none>")
        _field(lines, "IP", spec.cluster_ip or "<none>")
        _field(lines, "IPs", ",".join(spec.cluster_ips) or "<none>")
    for p in spec.ports:
        name = p.name or "<unset>"
        _field(lines, "Port", f"{name}  {p.port}/{p.protocol or 'TCP'}")
        target = p.target_port if p.target_port is not None else p.port
        _field(lines, "TargetPort", f"{target}/{p.protocol or 'TCP'}")
        if endpoints is not None:
            addrs = [f"{a.ip}:{ep.port}" for s in endpoints.subsets for a in s.addresses
                     for ep in s.ports if (ep.name or "") == (p.name or "")]
            _field(lines, "Endpoints", ",".join(addrs) or "<none>")
    _field(lines, "Session Affinity", spec.session_affinity or "None")
    if spec.internal_traffic_policy:
        _field(lines, "Internal Traffic Policy", spec.internal_traffic_policy)
    _field(lines, "Events", "<none>")


def _describe_pod(pod: m.Pod, lines: list[str], endpoints: m.Endpoints | None) -> None:
    _field(lines, "Node", pod.spec.node_name or "<none>")
    _field(lines, "Status", _pod_status(pod, 0.0))
    _field(lines, "IP", pod.status.pod_ip or "<none>")
    for c in pod.spec.containers:
        lines.append(f"Container {c.name}:")
        _field(lines, "  Image", (c.image or "<none>") + "  (ignored: containers run from "
               "command/args on the node's filesystem)")
        _field(lines, "  Command", " ".join(c.command) or "<none>")
        _field(lines, "  Args", " ".join(c.args) or "<none>")
    _field(lines, "Conditions", [f"{c.type}={c.status}" for c in pod.status.conditions]
           or ["<none>"])


def _describe_slice(sl: m.EndpointSlice, lines: list[str], endpoints: m.Endpoints | None) -> None:
    _field(lines, "AddressType", sl.address_type)
    _field(lines, "Ports", [f"{p.name or '<unset>'}  {p.port}/{p.protocol or 'TCP'}"
                            for p in sl.ports] or ["<unset>"])
    eps = []
    for e in sl.endpoints:
        c = e.conditions
        ref = f"  {e.target_ref.kind}/{e.target_ref.name}" if e.target_ref else ""
        eps.append(f"{','.join(e.addresses)}  ready={c.ready} serving={c.serving} "
                   f"terminating={c.terminating}{ref}")
    _field(lines, "Endpoints", eps or ["<none>"])


_DESCRIBERS: dict[type[m.KubeObject], Callable[[Any, list[str], m.Endpoints | None], None]] = {
    m.Service: _describe_service,
    m.Pod: _describe_pod,
    m.EndpointSlice: _describe_slice,
}
