"""What the controllers' caches keep of an object: the fields they read, stored once.

A controller caches every Pod of the cluster; at 100,000 pods the full objects (commands,
environment, probes, annotations such as kubectl's last-applied configuration) would cost far
more memory than the few fields the endpoints and deployment controllers read. `slim_pod` keeps
exactly those — identity, labels, owners, timestamps, placement, container ports, phase,
conditions and IPs — the way client-go's informer transforms strip managedFields.

`PodSlimmer` does the same and also shares what pods have in common: the pods of one Deployment
have equal slim specs (containers with their ports, the node), equal condition lists and equal
strings (namespace, phase, node name, label keys); each distinct value is kept once and every
pod points at it. The table of distinct values is the slimmer's own state, a pure function of
what it was given; it holds one entry per distinct value, so it grows with the number of pod
templates and nodes, not with the number of pods.
"""

from __future__ import annotations

from typing import TypeVar

import msgspec

from clusterip.core import model as m

__all__ = ["PodSlimmer", "slim_pod"]

V = TypeVar("V")


def slim_pod(pod: m.Pod) -> m.Pod:
    """The pod with only the fields the controllers read."""
    meta = pod.metadata
    spec = pod.spec
    status = pod.status
    return m.Pod(
        api_version=pod.api_version,
        kind=pod.kind,
        metadata=msgspec.structs.replace(meta, annotations=None, managed_fields=()),
        spec=m.PodSpec(
            containers=tuple(m.Container(name=c.name, ports=c.ports) for c in spec.containers),
            node_name=spec.node_name,
            hostname=spec.hostname,
            subdomain=spec.subdomain,
        ),
        status=m.PodStatus(
            phase=status.phase,
            conditions=tuple(m.Condition(type=c.type, status=c.status)
                             for c in status.conditions),
            pod_ip=status.pod_ip,
            pod_ips=status.pod_ips,
        ),
    )


class PodSlimmer:
    """`slim_pod`, with equal parts of different pods stored once (see the module docstring)."""

    def __init__(self) -> None:
        self._values: dict[object, object] = {}

    def _one(self, value: V) -> V:
        return self._values.setdefault(value, value)  # type: ignore[return-value]

    def __call__(self, pod: m.Pod) -> m.Pod:
        slim = slim_pod(pod)
        meta, status = slim.metadata, slim.status
        one = self._one
        labels = {one(k): v for k, v in meta.labels.items()} if meta.labels else None
        return msgspec.structs.replace(
            slim,
            api_version=one(slim.api_version),
            kind=one(slim.kind),
            metadata=msgspec.structs.replace(
                meta, namespace=one(meta.namespace), labels=labels,
                owner_references=one(meta.owner_references),
            ),
            spec=one(slim.spec),
            status=msgspec.structs.replace(
                status, phase=one(status.phase), conditions=one(status.conditions),
            ),
        )
