"""Rows and columns of `get`, the way kubectl prints them, and `describe` text (pure).

`COLUMNS[kind]` is the one column table of a kind, shared by the CLI and by the API's Table
responses (`core.tables`). A `Column` is kube-apiserver's `TableColumnDefinition`: the name as the
API spells it (`Cluster-IP`, `Port(s)`; kubectl upper-cases it for the header), a description,
priority 1 for the columns only `-o wide` shows, and the cell function that formats one object's
value as text. The column sets are kube-apiserver's (its `pkg/printers/internalversion`), and so
are the cells' conventions: `<none>` for an empty value, `+ N more...` past three endpoints,
ages in kubectl's `HumanDuration` (`45s`, `3m20s`, `5h`, `12d`) counted from the caller's `now`.

`rows(kind, objects, now, wide=...)` returns the header and one row per object and
`render_table` pads them into kubectl's layout, for `clusterip get`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clusterip.core import model as m
from clusterip.core.selectors import Selector
from clusterip.core.timefmt import parse_rfc3339

__all__ = ["COLUMNS", "Column", "describe", "human_duration", "render_table", "rows"]

Cell = Callable[[Any, float], str]


@dataclass(frozen=True, slots=True)
class Column:
    """One column: `name` as the API spells it, `cell(obj, now)` its text for one object."""

    name: str
    cell: Cell
    description: str
    priority: int = 0  # 1: shown only by `-o wide`
    format: str = ""  # "name" for the column that names the object

    @property
    def header(self) -> str:
        """The header kubectl prints: the name upper-cased."""
        return self.name.upper()


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


_NAME = Column("Name", _name, "Name must be unique within a namespace.", format="name")
_AGE = Column("Age", _age, "CreationTimestamp is a timestamp representing the server time when "
              "this object was created.")


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


def _pod_readiness_gates(pod: m.Pod, now: float) -> str:
    """How many of the pod's readiness gates have their condition True: `1/2`."""
    gates = [g.get("conditionType", "") for g in pod.spec.readiness_gates]
    if not gates:
        return "<none>"
    true = {c.type for c in pod.status.conditions if c.status == "True"}
    return f"{sum(1 for g in gates if g in true)}/{len(gates)}"


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


def _deploy_containers(d: m.Deployment, now: float) -> str:
    return ",".join(c.name for c in d.spec.template.spec.containers)


def _deploy_images(d: m.Deployment, now: float) -> str:
    return ",".join(c.image for c in d.spec.template.spec.containers)


def _deploy_selector(d: m.Deployment, now: float) -> str:
    """Kubernetes' FormatLabelSelector: matchLabels and matchExpressions, sorted by key."""
    return str(Selector.from_label_selector(d.spec.selector)) or "<none>"


def _node_status(node: m.Node, now: float) -> str:
    ready = next((c for c in node.status.conditions if c.type == "Ready"), None)
    text = "Unknown" if ready is None else "Ready" if ready.status == "True" else "NotReady"
    return text + (",SchedulingDisabled" if node.spec.unschedulable else "")


_ROLE_PREFIX = "node-role.kubernetes.io/"


def _node_roles(node: m.Node, now: float) -> str:
    """The roles in the node's labels: `node-role.kubernetes.io/<role>` and `kubernetes.io/role`."""
    labels = node.metadata.labels or {}
    roles = {k.removeprefix(_ROLE_PREFIX) for k in labels if k.startswith(_ROLE_PREFIX)}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return ",".join(sorted(r for r in roles if r)) or "<none>"


def _node_address(kind: str) -> Cell:
    def cell(node: m.Node, now: float) -> str:
        return next((a.address for a in node.status.addresses if a.type == kind), "<none>")
    return cell


def _node_info(key: str, missing: str = "<unknown>") -> Cell:
    return lambda node, now: (node.status.node_info or {}).get(key) or missing


def _since(text: str | None, now: float) -> str:
    """kubectl's translateTimestampSince: the age of a time, `<unknown>` without one."""
    if not text:
        return "<unknown>"
    try:
        return human_duration(now - parse_rfc3339(text))
    except ValueError:
        return "<unknown>"


def _event_first_seen(ev: m.Event, now: float) -> str:
    return _since(ev.first_timestamp or ev.event_time, now)


def _event_last_seen(ev: m.Event, now: float) -> str:
    if ev.series is not None:
        return _since(ev.series.last_observed_time, now)
    if ev.last_timestamp:
        return _since(ev.last_timestamp, now)
    return _event_first_seen(ev, now)


def _event_count(ev: m.Event) -> int:
    """Singleton events of the new API carry no count: they happened once."""
    if ev.series is not None:
        return ev.series.count
    return ev.count or 1


def _event_object(ev: m.Event, now: float) -> str:
    """`service/web`: the involved object's kind, lower-cased, and its name."""
    ref = ev.involved_object
    return f"{ref.kind.lower()}/{ref.name}" if ref.name else ref.kind.lower()


def _event_source(ev: m.Event, now: float) -> str:
    """`kubelet, node-1`: the component, and the host or instance when there is one."""
    component = ev.source.component or ev.reporting_component
    host = ev.source.host or ev.reporting_instance
    return f"{component}, {host}" if host else component


def _parent_ref(ip: m.IPAddress, now: float) -> str:
    ref = ip.spec.parent_ref
    if ref is None:
        return "<none>"
    return "/".join(p for p in (ref.resource, ref.namespace, ref.name) if p)


_NODE_ADDRESSES = "List of addresses reachable to the node."

COLUMNS: dict[str, tuple[Column, ...]] = {
    "Service": (
        _NAME,
        Column("Type", lambda s, now: s.spec.type or "ClusterIP",
               "type determines how the Service is exposed."),
        Column("Cluster-IP", _svc_cluster_ip,
               "clusterIP is the IP address of the service and is usually assigned randomly."),
        Column("External-IP", _svc_external_ip,
               "externalIPs is a list of IP addresses for which nodes in the cluster will also "
               "accept traffic for this service."),
        Column("Port(s)", _svc_ports, "The list of ports that are exposed by this service."),
        _AGE,
        Column("Selector", lambda s, now: _selector(s.spec.selector),
               "Route service traffic to pods with label keys and values matching this "
               "selector.", priority=1),
    ),
    "Pod": (
        _NAME,
        Column("Ready", _pod_ready_count,
               "The aggregate readiness state of this pod for accepting traffic."),
        Column("Status", _pod_status, "The aggregate status of the containers in this pod."),
        Column("Restarts", _pod_restarts,
               "The number of times the containers in this pod have been restarted."),
        _AGE,
        Column("IP", lambda p, now: p.status.pod_ip or "<none>",
               "podIP address allocated to the pod.", priority=1),
        Column("Node", lambda p, now: p.spec.node_name or "<none>",
               "NodeName indicates in which node this pod is scheduled.", priority=1),
        # clusterip's scheduler never preempts, so no pod is ever nominated to a node
        Column("Nominated Node", lambda p, now: "<none>",
               "nominatedNodeName is set only when this pod preempts other pods on the node.",
               priority=1),
        Column("Readiness Gates", _pod_readiness_gates,
               "If specified, all readiness gates will be evaluated for pod readiness.",
               priority=1),
    ),
    "EndpointSlice": (
        _NAME,
        Column("AddressType", lambda s, now: s.address_type,
               "addressType specifies the type of address carried by this EndpointSlice."),
        Column("Ports", _slice_ports,
               "ports specifies the list of network ports exposed by each endpoint in this "
               "slice."),
        Column("Endpoints", _slice_endpoints,
               "endpoints is a list of unique endpoints in this slice."),
        _AGE,
    ),
    "Endpoints": (
        _NAME,
        Column("Endpoints", _endpoints_endpoints,
               "The set of all endpoints is the union of all subsets."),
        _AGE,
    ),
    "Deployment": (
        _NAME,
        Column("Ready", _deploy_ready, "Number of the pod with ready state"),
        Column("Up-to-date", lambda d, now: str(d.status.updated_replicas or 0),
               "Total number of non-terminating pods targeted by this deployment that have the "
               "desired template spec."),
        Column("Available", lambda d, now: str(d.status.available_replicas or 0),
               "Total number of available non-terminating pods (ready for at least "
               "minReadySeconds) targeted by this deployment."),
        _AGE,
        Column("Containers", _deploy_containers, "Names of each container in the template.",
               priority=1),
        Column("Images", _deploy_images, "Images referenced by each container in the template.",
               priority=1),
        Column("Selector", _deploy_selector, "Label selector for pods.", priority=1),
    ),
    "Namespace": (
        _NAME,
        Column("Status", lambda n, now: "Terminating" if n.metadata.deletion_timestamp
               else (n.status.phase or "Active"), "The status of the namespace"),
        _AGE,
    ),
    "Node": (
        _NAME,
        Column("Status", _node_status, "The status of the node"),
        Column("Roles", _node_roles, "The roles of the node"),
        _AGE,
        Column("Version", _node_info("kubeletVersion", ""),
               "Kubelet Version reported by the node."),
        Column("Internal-IP", _node_address("InternalIP"), _NODE_ADDRESSES, priority=1),
        Column("External-IP", _node_address("ExternalIP"), _NODE_ADDRESSES, priority=1),
        Column("OS-Image", _node_info("osImage"),
               "OS Image reported by the node from /etc/os-release.", priority=1),
        Column("Kernel-Version", _node_info("kernelVersion"),
               "Kernel Version reported by the node from 'uname -r'.", priority=1),
        Column("Container-Runtime", _node_info("containerRuntimeVersion"),
               "ContainerRuntime Version reported by the node through runtime remote API.",
               priority=1),
    ),
    "Event": (
        Column("Last Seen", _event_last_seen,
               "The time at which the most recent occurrence of this event was recorded."),
        Column("Type", lambda e, now: e.type,
               "Type of this event (Normal, Warning), new types could be added in the future"),
        Column("Reason", lambda e, now: e.reason,
               "This should be a short, machine understandable string that gives the reason for "
               "the transition into the object's current status."),
        Column("Object", _event_object, "The object that this event is about."),
        Column("Subobject", lambda e, now: e.involved_object.field_path,
               "If referring to a piece of an object instead of an entire object, this string "
               "should contain a valid JSON/Go field access statement, such as "
               "desiredState.manifest.containers[2].", priority=1),
        Column("Source", _event_source,
               "The component reporting this event. Should be a short machine understandable "
               "string.", priority=1),
        Column("Message", lambda e, now: e.message.strip(),
               "A human-readable description of the status of this operation."),
        Column("First Seen", _event_first_seen,
               "The time at which the event was first recorded. (Time of server receipt is in "
               "TypeMeta.)", priority=1),
        Column("Count", lambda e, now: str(_event_count(e)),
               "The number of times this event has occurred.", priority=1),
        Column("Name", _name, _NAME.description, priority=1, format="name"),
    ),
    "IPAddress": (
        _NAME,
        Column("ParentRef", _parent_ref,
               "ParentRef references the resource that an IPAddress is attached to."),
    ),
    "ServiceCIDR": (
        _NAME,
        Column("CIDRs", lambda c, now: ",".join(c.spec.cidrs),
               "CIDRs defines the IP blocks in CIDR notation from which to assign service "
               "cluster IPs."),
        _AGE,
    ),
    "Lease": (
        _NAME,
        Column("Holder", lambda lease, now: lease.spec.holder_identity or "",
               "The holder of the lease."),
        _AGE,
    ),
}


def rows(
    kind: str, objects: Sequence[m.KubeObject], now: float, *, wide: bool = False,
    with_namespace: bool = False,
) -> list[list[str]]:
    """The header row and one row per object; `wide` adds the priority-1 columns."""
    columns = [c for c in COLUMNS[kind] if wide or not c.priority]
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
             events: Sequence[m.Event] = (), now: float = 0.0) -> str:
    """`kubectl describe`-like text: metadata, then what matters for the kind, then the
    object's `events` (oldest last seen first), as kubectl prints them."""
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
    _describe_events(lines, events, now)
    return "\n".join(lines) + "\n"


def _describe_events(lines: list[str], events: Sequence[m.Event], now: float) -> None:
    """kubectl's DescribeEvents: Type, Reason, Age (`5m (x3 over 10m)` for repeats), From,
    Message, in columns two spaces apart."""
    if not events:
        _field(lines, "Events", "<none>")
        return
    table = [["Type", "Reason", "Age", "From", "Message"],
             ["----", "------", "----", "----", "-------"]]
    for ev in sorted(events, key=_event_order):
        first = _since(ev.event_time or ev.first_timestamp, now)
        count = _event_count(ev)
        age = f"{_event_last_seen(ev, now)} (x{count} over {first})" if count > 1 else first
        source = ev.source.component or ev.reporting_component
        table.append([ev.type, ev.reason, age, source, ev.message.strip()])
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines.append("Events:")
    lines += ["  " + "".join(cell.ljust(w + 2) for cell, w in zip(row, widths, strict=False))
              + row[4] for row in table]


def _event_order(ev: m.Event) -> float:
    """When the event was last seen, for kubectl's SortableEvents (oldest first)."""
    text = (ev.series.last_observed_time if ev.series is not None else None) \
        or ev.last_timestamp or ev.event_time
    try:
        return parse_rfc3339(text) if text else 0.0
    except ValueError:
        return 0.0


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
