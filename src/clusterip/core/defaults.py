"""The defaults Kubernetes fills into an object before it is validated and stored.

`apply_defaults(obj)` returns a new object with every unset field that Kubernetes defaults filled
in; it is pure and idempotent (`apply_defaults(apply_defaults(x)) == apply_defaults(x)`). The
pipeline of a write is: decode → `apply_defaults` → `core.validation.validate` → store.

How it works: `_DEFAULTERS` maps each kind to one function, and every function is built from the
same step, `_fill(struct, table)`, which sets the fields named in a table that are still *unset*
(None or an empty string). The tables below are therefore the whole policy, readable at a glance;
the functions only walk into nested structs (ports, containers, probes) and handle the few
defaults that depend on another field:

* a Service port's `targetPort` defaults to its `port`, but only when that port is a valid port
  number, so an invalid port is reported once (at `port`), not twice;
* a Service's `clusterIP` and `clusterIPs` are kept in step (the API server's
  `NormalizeClusterIPs`): one set and the other empty copies it over;
* `sessionAffinityConfig.clientIP.timeoutSeconds` is 10800 only when the affinity is ClientIP;
* `internalTrafficPolicy` is `Cluster` only for ClusterIP-like types (not ExternalName);
* a container's `imagePullPolicy` is `Always` for `:latest` or untagged images, otherwise
  `IfNotPresent`, as in Kubernetes; a container without an image (clusterip runs its
  `command`) gets none.

Defaults never fill a *required* field, so they cannot hide a "Required value" error: a port of 0
stays 0, a container without a name stays nameless. As in Kubernetes' v1 defaulting, a probe's
numeric fields treat 0 as unset (the Go fields are not pointers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from clusterip.core import model

__all__ = ["apply_defaults", "pod_spec_defaults"]

S = TypeVar("S", bound=msgspec.Struct)
K = TypeVar("K", bound=model.KubeObject)


def _fill(struct: S, table: Mapping[str, Any], *, zero_is_unset: bool = False) -> S:
    """`struct` with each field named in `table` that is still unset given its table value."""
    changes = {
        name: value
        for name, value in table.items()
        if _is_unset(getattr(struct, name), zero_is_unset)
    }
    return msgspec.structs.replace(struct, **changes) if changes else struct


def _is_unset(value: Any, zero_is_unset: bool) -> bool:
    if value is None or (isinstance(value, str) and not value):
        return True
    # `type(...) is int`: a bool is never unset, although `False == 0`.
    return zero_is_unset and type(value) is int and value == 0


# --- the tables -------------------------------------------------------------------------------

SERVICE_SPEC = {"type": "ClusterIP", "session_affinity": "None"}
SERVICE_PORT = {"protocol": "TCP"}
CLIENT_IP_TIMEOUT_SECONDS = 10800
# internalTrafficPolicy is defaulted only for these types (Kubernetes' SetDefaults_Service).
INTERNAL_TRAFFIC_POLICY_TYPES = frozenset({"ClusterIP", "NodePort", "LoadBalancer"})
INTERNAL_TRAFFIC_POLICY = {"internal_traffic_policy": "Cluster"}

POD_SPEC = {
    "restart_policy": "Always",
    "termination_grace_period_seconds": 30,
    "dns_policy": "ClusterFirst",
    "enable_service_links": True,
    "scheduler_name": "default-scheduler",
}
CONTAINER = {
    "termination_message_path": "/dev/termination-log",
    "termination_message_policy": "File",
}
CONTAINER_PORT = {"protocol": "TCP"}
PROBE = {"timeout_seconds": 1, "period_seconds": 10, "success_threshold": 1, "failure_threshold": 3}
HTTP_GET = {"path": "/", "scheme": "HTTP"}

DEPLOYMENT_SPEC = {"replicas": 1, "revision_history_limit": 10, "progress_deadline_seconds": 600}
ROLLING_UPDATE = {"maxUnavailable": "25%", "maxSurge": "25%"}

ENDPOINT_PORT = {"name": "", "protocol": "TCP"}
NAMESPACE_STATUS = {"phase": "Active"}


# --- Service ----------------------------------------------------------------------------------


def _service_port(port: model.ServicePort) -> model.ServicePort:
    port = _fill(port, SERVICE_PORT)
    if port.target_port in (None, 0, "") and 1 <= port.port <= 65535:
        port = msgspec.structs.replace(port, target_port=port.port)
    return port


def _service(svc: model.Service) -> model.Service:
    spec = _fill(svc.spec, SERVICE_SPEC)
    spec = msgspec.structs.replace(spec, ports=tuple(_service_port(p) for p in spec.ports))
    if spec.cluster_ip and not spec.cluster_ips:
        spec = msgspec.structs.replace(spec, cluster_ips=(spec.cluster_ip,))
    elif spec.cluster_ips and not spec.cluster_ip:
        spec = msgspec.structs.replace(spec, cluster_ip=spec.cluster_ips[0])
    if spec.session_affinity == "ClientIP":
        config = spec.session_affinity_config or model.SessionAffinityConfig()
        client_ip = config.client_ip or model.ClientIPConfig()
        client_ip = _fill(client_ip, {"timeout_seconds": CLIENT_IP_TIMEOUT_SECONDS})
        spec = msgspec.structs.replace(
            spec, session_affinity_config=msgspec.structs.replace(config, client_ip=client_ip)
        )
    if spec.type in INTERNAL_TRAFFIC_POLICY_TYPES:
        spec = _fill(spec, INTERNAL_TRAFFIC_POLICY)
    return msgspec.structs.replace(svc, spec=spec)


# --- Pod (and pod templates) ------------------------------------------------------------------


def _image_pull_policy(image: str) -> str:
    """Kubernetes' rule: `Always` for `:latest` or untagged images, otherwise `IfNotPresent`."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.rsplit(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _probe(probe: model.Probe | None) -> model.Probe | None:
    if probe is None:
        return None
    probe = _fill(probe, PROBE, zero_is_unset=True)
    if probe.http_get is not None:
        probe = msgspec.structs.replace(probe, http_get=_fill(probe.http_get, HTTP_GET))
    return probe


def _container(c: model.Container) -> model.Container:
    c = _fill(c, CONTAINER)
    if c.image:  # a command-only container (clusterip runs commands) pulls nothing
        c = _fill(c, {"image_pull_policy": _image_pull_policy(c.image)})
    return msgspec.structs.replace(
        c,
        ports=tuple(_fill(p, CONTAINER_PORT) for p in c.ports),
        liveness_probe=_probe(c.liveness_probe),
        readiness_probe=_probe(c.readiness_probe),
        startup_probe=_probe(c.startup_probe),
    )


def pod_spec_defaults(spec: model.PodSpec) -> model.PodSpec:
    """A PodSpec with Kubernetes' defaults (also used for Deployment templates)."""
    spec = _fill(spec, POD_SPEC)
    return msgspec.structs.replace(
        spec,
        containers=tuple(_container(c) for c in spec.containers),
        init_containers=tuple(_container(c) for c in spec.init_containers),
    )


def _pod(pod: model.Pod) -> model.Pod:
    return msgspec.structs.replace(pod, spec=pod_spec_defaults(pod.spec))


# --- Deployment -------------------------------------------------------------------------------


def _strategy(strategy: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(strategy or {})
    if not out.get("type"):
        out["type"] = "RollingUpdate"
    if out["type"] == "RollingUpdate":
        rolling = out.get("rollingUpdate")
        if rolling is None or isinstance(rolling, dict):
            out["rollingUpdate"] = {**ROLLING_UPDATE, **(rolling or {})}
    return out


def _deployment(deploy: model.Deployment) -> model.Deployment:
    spec = _fill(deploy.spec, DEPLOYMENT_SPEC)
    template = msgspec.structs.replace(spec.template, spec=pod_spec_defaults(spec.template.spec))
    spec = msgspec.structs.replace(spec, template=template, strategy=_strategy(spec.strategy))
    return msgspec.structs.replace(deploy, spec=spec)


# --- the rest ---------------------------------------------------------------------------------


def _endpoint_slice(eps: model.EndpointSlice) -> model.EndpointSlice:
    return msgspec.structs.replace(eps, ports=tuple(_fill(p, ENDPOINT_PORT) for p in eps.ports))


def _namespace(ns: model.Namespace) -> model.Namespace:
    return msgspec.structs.replace(ns, status=_fill(ns.status, NAMESPACE_STATUS))


_DEFAULTERS: dict[type[model.KubeObject], Callable[[Any], model.KubeObject]] = {
    model.Service: _service,
    model.Pod: _pod,
    model.Deployment: _deployment,
    model.EndpointSlice: _endpoint_slice,
    model.Namespace: _namespace,
}


def apply_defaults(obj: K) -> K:
    """`obj` with Kubernetes' defaults filled in; kinds without defaults come back unchanged.

    Args:
        obj: a decoded object (any kind).

    Returns:
        A new object of the same type; applying it again changes nothing.
    """
    defaulter = _DEFAULTERS.get(type(obj))
    if defaulter is None:
        return obj
    out = defaulter(obj)
    assert isinstance(out, type(obj))
    return out
