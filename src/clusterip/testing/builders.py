"""Builders for test objects, and the address plan tests share.

Address plan (`PLAN`): services come from the default service CIDR 10.96.0.0/12, pods from
10.244.0.0/16 (node-1 has 10.244.0.0/24), and "outside" hosts from 203.0.113.0/24 (TEST-NET-3).

Each builder makes a valid object with the fewest fields and takes keyword overrides for the
common ones; `mutate` gets the object and returns a changed copy for anything else::

    make_service("web", ports=[port(80, 8080)], selector={"app": "web"})
    make_pod("web-1", labels={"app": "web"}, ip="10.244.0.5", ready=True)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import msgspec

from clusterip.core import model as m

__all__ = [
    "PLAN",
    "container_port",
    "make_deployment",
    "make_endpoint_slice",
    "make_namespace",
    "make_pod",
    "make_service",
    "port",
    "with_ready",
]

T = TypeVar("T")


@dataclass(frozen=True)
class AddressPlan:
    service_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.96.0.0/12")
    pod_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.244.0.0/16")
    node_pod_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.244.0.0/24")
    outside: ipaddress.IPv4Network = ipaddress.IPv4Network("203.0.113.0/24")

    def pod_ip(self, n: int) -> str:
        """The n-th pod address of node-1 (n from 1)."""
        return str(self.node_pod_cidr.network_address + 1 + n)


PLAN = AddressPlan()


def _apply(obj: T, mutate: Callable[[T], T] | None) -> T:
    return mutate(obj) if mutate else obj


def port(
    number: int, target: int | str | None = None, *, name: str = "", protocol: str = "TCP"
) -> m.ServicePort:
    return m.ServicePort(
        name=name, protocol=protocol, port=number, target_port=number if target is None else target
    )


def container_port(number: int, *, name: str = "", protocol: str = "TCP") -> m.ContainerPort:
    return m.ContainerPort(name=name, container_port=number, protocol=protocol)


def make_namespace(name: str) -> m.Namespace:
    return m.Namespace(api_version="v1", kind="Namespace", metadata=m.ObjectMeta(name=name))


def make_service(
    name: str,
    *,
    namespace: str = "default",
    ports: Sequence[m.ServicePort] = (),
    selector: Mapping[str, str] | None = None,
    cluster_ip: str = "",
    mutate: Callable[[m.Service], m.Service] | None = None,
) -> m.Service:
    svc = m.Service(
        api_version="v1",
        kind="Service",
        metadata=m.ObjectMeta(name=name, namespace=namespace),
        spec=m.ServiceSpec(
            type="ClusterIP",
            selector=dict(selector) if selector is not None else None,
            ports=tuple(ports) or (port(80),),
            cluster_ip=cluster_ip,
        ),
    )
    return _apply(svc, mutate)


def with_ready(pod: m.Pod, ready: bool, *, ip: str | None = None) -> m.Pod:
    """The pod with status Running, the Ready condition set to `ready`, and (if given) its IP."""
    status = msgspec.structs.replace(
        pod.status,
        phase="Running",
        pod_ip=ip if ip is not None else pod.status.pod_ip,
        pod_ips=(m.PodIP(ip=ip),) if ip else pod.status.pod_ips,
        conditions=(m.Condition(type="Ready", status="True" if ready else "False"),),
    )
    return msgspec.structs.replace(pod, status=status)


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    labels: Mapping[str, str] | None = None,
    ports: Sequence[m.ContainerPort] = (),
    ip: str = "",
    ready: bool | None = None,
    node: str = "node-1",
    command: Sequence[str] = ("sleep", "infinity"),
    mutate: Callable[[m.Pod], m.Pod] | None = None,
) -> m.Pod:
    pod = m.Pod(
        api_version="v1",
        kind="Pod",
        metadata=m.ObjectMeta(
            name=name, namespace=namespace, labels=dict(labels) if labels else None
        ),
        spec=m.PodSpec(
            node_name=node,
            containers=(m.Container(name="main", command=tuple(command), ports=tuple(ports)),),
        ),
    )
    if ip or ready is not None:
        pod = with_ready(pod, bool(ready), ip=ip or None)
    return _apply(pod, mutate)


def make_deployment(
    name: str,
    *,
    namespace: str = "default",
    replicas: int = 1,
    labels: Mapping[str, str] | None = None,
    mutate: Callable[[m.Deployment], m.Deployment] | None = None,
) -> m.Deployment:
    labels = dict(labels or {"app": name})
    dep = m.Deployment(
        api_version="apps/v1",
        kind="Deployment",
        metadata=m.ObjectMeta(name=name, namespace=namespace),
        spec=m.DeploymentSpec(
            replicas=replicas,
            selector=m.LabelSelector(match_labels=labels),
            template=m.PodTemplateSpec(
                metadata=m.ObjectMeta(labels=labels),
                spec=m.PodSpec(containers=(m.Container(name="main", command=("sleep", "1d")),)),
            ),
        ),
    )
    return _apply(dep, mutate)


def make_endpoint_slice(
    name: str,
    *,
    service: str,
    namespace: str = "default",
    addresses: Sequence[str] = (),
    ports: Sequence[m.EndpointPort] = (),
    mutate: Callable[[m.EndpointSlice], m.EndpointSlice] | None = None,
) -> m.EndpointSlice:
    sl = m.EndpointSlice(
        api_version="discovery.k8s.io/v1",
        kind="EndpointSlice",
        metadata=m.ObjectMeta(
            name=name, namespace=namespace, labels={"kubernetes.io/service-name": service}
        ),
        address_type="IPv4",
        endpoints=tuple(
            m.Endpoint(addresses=(a,), conditions=m.EndpointConditions(ready=True))
            for a in addresses
        ),
        ports=tuple(ports),
    )
    return _apply(sl, mutate)
