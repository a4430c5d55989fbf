"""Node choice: ready and schedulable nodes only, least loaded first, ties by name."""

from __future__ import annotations

import msgspec

from clusterip.core import model as m
from clusterip.core.scheduling import choose_node
from clusterip.testing.builders import make_pod


def node(name: str, *, ready: bool = True, cordoned: bool = False) -> m.Node:
    return m.Node(
        metadata=m.ObjectMeta(name=name),
        spec=m.NodeSpec(unschedulable=cordoned),
        status=m.NodeStatus(conditions=(
            m.Condition(type="Ready", status="True" if ready else "False"),)),
    )


def test_least_loaded_ready_node_wins() -> None:
    nodes = [node("a"), node("b"), node("c", ready=False), node("d", cordoned=True)]
    pods = [make_pod("p1", node="a"), make_pod("p2", node="a"), make_pod("p3", node="b")]
    assert choose_node(nodes, pods) == "b"


def test_finished_pods_do_not_count_and_ties_go_to_the_first_name() -> None:
    done = make_pod("old", node="a")
    done = msgspec.structs.replace(done, status=m.PodStatus(phase="Succeeded"))
    assert choose_node([node("b"), node("a")], [done]) == "a"


def test_no_ready_node_means_no_choice() -> None:
    assert choose_node([node("a", ready=False)], []) is None


def test_bindings_the_cache_does_not_show_yet_count_as_load() -> None:
    nodes = [node("a"), node("b"), node("c")]
    unbound = [make_pod(f"p{i}", node="") for i in range(2)]
    assert choose_node(nodes, unbound, {"default/p0": "a"}) == "b"
    assert choose_node(nodes, unbound, {"default/p0": "a", "default/p1": "b"}) == "c"
    shown = make_pod("p0", node="a")  # once the cache shows p0 on a, it is counted once
    assert choose_node(nodes, [shown], {"default/p0": "a", "default/p1": "b"}) == "c"
