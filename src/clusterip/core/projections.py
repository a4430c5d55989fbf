"""What the controllers' caches keep of an object: the fields they read, nothing else.

A controller caches every Pod of the cluster; at 100,000 pods the full objects (commands,
environment, probes, annotations such as kubectl's last-applied configuration) would cost far
more memory than the few fields the endpoints and deployment controllers read. `slim_pod` keeps
exactly those — identity, labels, owners, timestamps, placement, container ports, phase,
conditions and IPs — the way client-go's informer transforms strip managedFields.
"""

from __future__ import annotations

import msgspec

from clusterip.core import model as m

__all__ = ["slim_pod"]


def slim_pod(pod: m.Pod) -> m.Pod:
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
