"""Node health from heartbeats, the way kube-controller-manager's node lifecycle controller
judges it: pure decisions.

A node agent posts its Node's `Ready` condition with a fresh `lastHeartbeatTime` every few
seconds. The controller remembers, per node, the heartbeat it last saw change and when it saw
it *on its own monotonic clock* (`Seen`): agents' clocks may disagree with the controller's, so
a heartbeat's value only tells whether it changed, never how old it is.

`judge(node, seen, now, timing)` then says what the node is and what to do:

| what the controller sees                   | health    | actions                          |
|--------------------------------------------|-----------|----------------------------------|
| Ready=True, a new heartbeat within `grace` | READY     | none                             |
| Ready=False, posted by the agent itself    | NOT_READY | mark its pods not ready          |
| no new heartbeat for `grace`               | UNKNOWN   | Ready=Unknown; pods not ready    |
| not ready (either way) for `eviction`      | + evict   | delete its pods                  |

Marking a pod not ready sets its `Ready` condition to False, so the endpoints controller moves
it to the EndpointSlice's not-ready endpoints at once and every proxy stops sending to it, long
before its pods are deleted. Deleting them (gracefully: the agent, if it comes back, stops them)
lets their Deployments create replacements, which the scheduler puts on ready nodes.

kube's defaults are a 40 s grace (`--node-monitor-grace-period`) and a 300 s eviction (the
not-ready taint's toleration); clusterip's `Timing` defaults are the same, and a cluster made for
tests or demos sets them shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import msgspec

from clusterip.core import model as m

__all__ = ["Health", "Seen", "Timing", "Verdict", "judge", "not_ready_pod", "unknown_node"]

NODE_STATUS_UNKNOWN = "NodeStatusUnknown"
STOPPED_POSTING = "Kubelet stopped posting node status."


@dataclass(frozen=True, slots=True)
class Timing:
    grace: float = 40.0  # seconds without a new heartbeat before a node is Unknown
    eviction: float = 300.0  # seconds not ready before its pods are deleted
    period: float = 5.0  # how often every node is judged (`--node-monitor-period`)


class Health(Enum):
    READY = "True"
    NOT_READY = "False"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class Seen:
    """The heartbeat last seen change and when (controller's monotonic clock), and since when
    the node has been not ready (None: it is ready)."""

    heartbeat: str
    at: float
    unready_since: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    health: Health
    seen: Seen
    evict: bool  # its pods are to be deleted


def _ready(node: m.Node) -> m.Condition | None:
    return next((c for c in node.status.conditions if c.type == "Ready"), None)


def judge(node: m.Node, seen: Seen | None, now: float, timing: Timing) -> Verdict:
    """The node's health as of `now` (the controller's monotonic clock), given what was seen."""
    ready = _ready(node)
    heartbeat = (ready.last_heartbeat_time if ready else None) or ""
    if seen is None or heartbeat != seen.heartbeat:
        seen = Seen(heartbeat, now, seen.unready_since if seen else None)
    if now - seen.at >= timing.grace:
        health = Health.UNKNOWN
    elif ready is not None and ready.status == "True":
        health = Health.READY
    elif ready is not None and ready.status == "False":
        health = Health.NOT_READY
    else:  # no condition yet, or Unknown written before and no heartbeat since
        health = Health.UNKNOWN if ready is not None else Health.NOT_READY
    if health is Health.READY:
        seen = Seen(seen.heartbeat, seen.at, None)
    elif seen.unready_since is None:
        seen = Seen(seen.heartbeat, seen.at, now)
    evict = (seen.unready_since is not None
             and now - seen.unready_since >= timing.eviction)
    return Verdict(health, seen, evict)


def unknown_node(node: m.Node, now_rfc3339: str) -> m.Node | None:
    """The node with its Ready condition set to Unknown (the heartbeat kept), or None if it
    already says Unknown."""
    ready = _ready(node)
    if ready is not None and ready.status == Health.UNKNOWN.value:
        return None
    unknown = m.Condition(
        type="Ready", status=Health.UNKNOWN.value, reason=NODE_STATUS_UNKNOWN,
        message=STOPPED_POSTING, last_transition_time=now_rfc3339,
        last_heartbeat_time=ready.last_heartbeat_time if ready else None)
    others = tuple(c for c in node.status.conditions if c.type != "Ready")
    status = msgspec.structs.replace(node.status, conditions=(unknown, *others))
    return msgspec.structs.replace(node, status=status)


def not_ready_pod(pod: m.Pod, now_rfc3339: str) -> m.Pod | None:
    """The pod with its Ready (and ContainersReady) conditions False, as kube's MarkPodsNotReady
    writes them, or None if it is not ready already."""
    conditions = pod.status.conditions
    if not any(c.type == "Ready" and c.status == "True" for c in conditions):
        return None
    marked = tuple(
        msgspec.structs.replace(c, status="False", reason="NodeNotReady",
                                message="the node is not ready", last_transition_time=now_rfc3339)
        if c.type in ("Ready", "ContainersReady") else c
        for c in conditions)
    return msgspec.structs.replace(pod, status=msgspec.structs.replace(pod.status,
                                                                       conditions=marked))
