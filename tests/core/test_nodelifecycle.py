"""Node health from heartbeats (core.nodelifecycle): the rows of its table on a fake monotonic
clock, and the conditions it writes on the node and its pods."""

from __future__ import annotations

from clusterip.core import model as m
from clusterip.core.nodelifecycle import (
    Health,
    Seen,
    Timing,
    judge,
    not_ready_pod,
    unknown_node,
)
from clusterip.testing.builders import make_pod

TIMING = Timing(grace=10, eviction=30)
NOW = "2026-11-26T12:00:00Z"


def node(status: str = "True", heartbeat: str = "h1") -> m.Node:
    return m.Node(metadata=m.ObjectMeta(name="n1"), status=m.NodeStatus(conditions=(
        m.Condition(type="Ready", status=status, last_heartbeat_time=heartbeat),)))


def test_a_node_posting_heartbeats_is_ready() -> None:
    first = judge(node(heartbeat="h1"), None, 0.0, TIMING)
    later = judge(node(heartbeat="h2"), first.seen, 9.0, TIMING)
    still = judge(node(heartbeat="h3"), later.seen, 18.0, TIMING)
    assert [v.health for v in (first, later, still)] == [Health.READY] * 3
    assert not still.evict and still.seen == Seen("h3", 18.0, None)


def test_no_new_heartbeat_for_the_grace_period_is_unknown() -> None:
    seen = judge(node(), None, 0.0, TIMING).seen
    assert judge(node(), seen, 9.9, TIMING).health is Health.READY
    verdict = judge(node(), seen, 10.0, TIMING)
    assert (verdict.health, verdict.seen.unready_since, verdict.evict) == (
        Health.UNKNOWN, 10.0, False)


def test_pods_are_evicted_after_the_eviction_time_not_ready() -> None:
    seen = judge(node(), None, 0.0, TIMING).seen
    unknown = judge(node(), seen, 10.0, TIMING)
    assert not judge(node(), unknown.seen, 39.9, TIMING).evict
    assert judge(node(), unknown.seen, 40.0, TIMING).evict


def test_an_agent_reporting_not_ready_is_not_ready_at_once() -> None:
    verdict = judge(node(status="False"), None, 0.0, TIMING)
    assert (verdict.health, verdict.seen.unready_since) == (Health.NOT_READY, 0.0)


def test_a_node_that_comes_back_is_ready_and_its_clock_starts_again() -> None:
    seen = judge(node(heartbeat="h1"), None, 0.0, TIMING).seen
    unknown = judge(node(heartbeat="h1"), seen, 20.0, TIMING)
    back = judge(node(heartbeat="h2"), unknown.seen, 25.0, TIMING)
    assert (back.health, back.seen.unready_since, back.evict) == (Health.READY, None, False)


def test_the_heartbeat_s_value_never_its_time_decides() -> None:
    seen = judge(node(heartbeat="1999-01-01T00:00:00Z"), None, 0.0, TIMING).seen
    assert judge(node(heartbeat="1999-01-01T00:00:00Z"), seen, 5.0, TIMING).health \
        is Health.READY


def test_unknown_keeps_the_last_heartbeat_and_is_written_once() -> None:
    marked = unknown_node(node(heartbeat="h7"), NOW)
    assert marked is not None
    (ready,) = marked.status.conditions
    assert (ready.status, ready.reason, ready.last_heartbeat_time, ready.last_transition_time) \
        == ("Unknown", "NodeStatusUnknown", "h7", NOW)
    assert unknown_node(marked, NOW) is None


def test_a_ready_pod_is_marked_not_ready_once() -> None:
    pod = make_pod("p1", ip="10.244.1.5", ready=True)
    marked = not_ready_pod(pod, NOW)
    assert marked is not None
    assert [(c.type, c.status, c.reason) for c in marked.status.conditions] == [
        ("Ready", "False", "NodeNotReady")]
    assert not_ready_pod(marked, NOW) is None
