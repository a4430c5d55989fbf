"""Which node a pod runs on: the Ready, schedulable node with the fewest pods (pure).

Kubernetes' scheduler filters nodes (ready, schedulable, resources, affinity...) and scores the
rest. clusterip keeps the two rules that matter for spreading pods over nodes: only a node whose
Ready condition is True and that is not cordoned takes pods, and among those the least loaded
wins (ties go to the first name, so the choice is deterministic).

The load counts the pods a node has, and also the pods the scheduler has bound to it but its
cache has not shown yet (`assumed`, the scheduler's "assume" step): six pods scheduled in one
burst spread 2-2-2 over three nodes instead of piling onto the node the cache still shows empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from clusterip.core import model as m

__all__ = ["choose_node", "node_is_ready"]


def node_is_ready(node: m.Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def choose_node(nodes: Iterable[m.Node], pods: Iterable[m.Pod],
                assumed: Mapping[str, str] | None = None) -> str | None:
    """The node for a new pod, or None when no node can take one. `assumed` maps the keys
    ("namespace/name") of pods bound but not yet seen bound in `pods` to their nodes."""
    candidates = sorted(n.metadata.name for n in nodes
                        if node_is_ready(n) and not n.spec.unschedulable)
    if not candidates:
        return None
    assumed = assumed or {}
    load = Counter(p.spec.node_name for p in pods
                   if p.spec.node_name and p.status.phase not in ("Succeeded", "Failed")
                   and f"{p.metadata.namespace}/{p.metadata.name}" not in assumed)
    load.update(assumed.values())
    return min(candidates, key=lambda name: (load[name], name))
