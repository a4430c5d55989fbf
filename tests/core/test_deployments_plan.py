"""core.deployments: the pods a Deployment should have, and the writes and status to get there.

Covered: label selectors (matchLabels, matchExpressions), the template hash, pod naming and
ownership, scale up/down (which pods go first), replacing terminal and deleted pods, the rolling
update step by step (surge, unavailability, readiness gating), Recreate, paused, status and its
Available/Progressing conditions, and the clean-up of pods whose Deployment is gone. The
controller that applies plans is tested in tests/control.

Conventions: deployment "web" in "default" with uid "dep-1", template labels app=web; pods are
"created" by `FakePodStore.apply`, which stamps increasing creation timestamps; new pod
suffixes come from a counter (00001, 00002...).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.deployments import (
    LABEL_POD_TEMPLATE_HASH,
    DeploymentPlan,
    label_selector_matches,
    plan_deployment,
    rolling_limits,
    template_hash,
)
from clusterip.testing.builders import make_deployment, make_pod, with_ready


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):05d}"


def deployment(replicas: int = 3, *, uid: str = "dep-1", generation: int = 1,
               **spec: object) -> m.Deployment:
    dep = make_deployment("web", replicas=replicas)
    meta = msgspec.structs.replace(dep.metadata, uid=uid, generation=generation)
    return msgspec.structs.replace(
        dep, metadata=meta, spec=msgspec.structs.replace(dep.spec, **spec)
    )


def with_command(dep: m.Deployment, *command: str) -> m.Deployment:
    """The deployment with another container command: a new template (and hash)."""
    template = dep.spec.template
    container = msgspec.structs.replace(template.spec.containers[0], command=command)
    spec = msgspec.structs.replace(template.spec, containers=(container,))
    return msgspec.structs.replace(dep, spec=msgspec.structs.replace(
        dep.spec, template=msgspec.structs.replace(template, spec=spec)))


class FakePodStore:
    """Applies plans: pods get creation timestamps in order, deleted pods vanish."""

    def __init__(self) -> None:
        self.pods: dict[str, m.Pod] = {}
        self.clock = itertools.count(0)
        self.suffix = counter()

    def apply(self, plan: DeploymentPlan) -> None:
        for pod in plan.create:
            assert pod.metadata.name not in self.pods
            stamp = f"2026-01-01T00:{next(self.clock):02d}:00Z"
            meta = msgspec.structs.replace(pod.metadata, creation_timestamp=stamp)
            self.pods[pod.metadata.name] = msgspec.structs.replace(pod, metadata=meta)
        for pod in plan.delete:
            del self.pods[pod.metadata.name]

    def set_ready(self, name: str, ready: bool = True) -> None:
        self.pods[name] = with_ready(self.pods[name], ready, ip="10.244.0.9")

    def ready_all(self) -> None:
        for name in list(self.pods):
            self.set_ready(name)

    def reconcile(self, dep: m.Deployment) -> DeploymentPlan:
        plan = plan_deployment(dep, self.pods.values(), new_suffix=self.suffix)
        self.apply(plan)
        return plan

    def hashes(self) -> list[str]:
        return sorted(
            (p.metadata.labels or {})[LABEL_POD_TEMPLATE_HASH] for p in self.pods.values()
        )


# --- selectors ---------------------------------------------------------------------------------


def req(key: str, op: str, *values: str) -> m.LabelSelectorRequirement:
    return m.LabelSelectorRequirement(key=key, operator=op, values=values)


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        pytest.param(m.LabelSelector(match_labels={"app": "web"}), {"app": "web", "x": "y"}, True,
                     id="matchLabels"),
        pytest.param(m.LabelSelector(match_labels={"app": "web"}), {"app": "db"}, False,
                     id="matchLabels-other"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "In", "a", "b"),)),
                     {"tier": "b"}, True, id="in"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "In", "a"),)), {}, False,
                     id="in-absent"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "NotIn", "a"),)), {}, True,
                     id="notin-absent"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "NotIn", "a"),)),
                     {"tier": "a"}, False, id="notin-present"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "Exists"),)), {"tier": ""},
                     True, id="exists"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "DoesNotExist"),)),
                     {"tier": "a"}, False, id="doesnotexist"),
        pytest.param(m.LabelSelector(match_expressions=(req("tier", "Gt", "1"),)), {"tier": "2"},
                     False, id="unknown-operator"),
        pytest.param(m.LabelSelector(), {"app": "web"}, False, id="empty-selects-none"),
        pytest.param(None, {"app": "web"}, False, id="absent-selects-none"),
        pytest.param(m.LabelSelector(match_labels={"app": "web"},
                                     match_expressions=(req("tier", "Exists"),)),
                     {"app": "web"}, False, id="both-must-hold"),
    ],
)
def test_label_selector(
    selector: m.LabelSelector | None, labels: dict[str, str], expected: bool
) -> None:
    assert label_selector_matches(selector, labels) is expected


# --- templates and names -----------------------------------------------------------------------


def test_template_hash_is_stable_short_and_changes_with_the_template() -> None:
    dep = deployment()
    h = template_hash(dep.spec.template)
    assert len(h) == 10
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert template_hash(deployment(replicas=7).spec.template) == h  # replicas are not template
    assert template_hash(with_command(dep, "sleep", "2d").spec.template) != h


def test_template_hash_ignores_label_insertion_order() -> None:
    a = make_deployment("web", labels={"app": "web", "tier": "x"})
    b = make_deployment("web", labels={"tier": "x", "app": "web"})
    assert template_hash(a.spec.template) == template_hash(b.spec.template)


def test_new_pods_are_named_owned_and_labelled() -> None:
    dep = deployment(replicas=2)
    plan = plan_deployment(dep, [], new_suffix=counter())
    h = template_hash(dep.spec.template)
    assert [p.metadata.name for p in plan.create] == [f"web-{h}-00001", f"web-{h}-00002"]
    pod = plan.create[0]
    assert pod.metadata.namespace == "default"
    assert pod.metadata.labels == {"app": "web", LABEL_POD_TEMPLATE_HASH: h}
    assert pod.metadata.owner_references == (
        m.OwnerReference(api_version="apps/v1", kind="Deployment", name="web", uid="dep-1",
                         controller=True, block_owner_deletion=True),
    )
    assert pod.spec == dep.spec.template.spec


# --- scaling and replacement ---------------------------------------------------------------------


def test_scale_up_from_nothing_then_nothing_more() -> None:
    store = FakePodStore()
    assert len(store.reconcile(deployment(3)).create) == 3
    again = store.reconcile(deployment(3))
    assert (again.create, again.delete) == ((), ())


def test_scale_down_deletes_not_ready_first_then_newest() -> None:
    store = FakePodStore()
    store.reconcile(deployment(4))
    names = sorted(store.pods, key=lambda n: store.pods[n].metadata.creation_timestamp or "")
    for name in names:
        store.set_ready(name)
    store.set_ready(names[0], False)  # the oldest is not ready
    plan = store.reconcile(deployment(2))
    assert [p.metadata.name for p in plan.delete] == [names[0], names[3]]
    assert plan.create == ()


def test_terminal_pods_are_deleted_and_replaced() -> None:
    store = FakePodStore()
    store.reconcile(deployment(2))
    store.ready_all()
    name = sorted(store.pods)[0]
    pod = store.pods[name]
    store.pods[name] = msgspec.structs.replace(
        pod, status=msgspec.structs.replace(pod.status, phase="Failed")
    )
    plan = store.reconcile(deployment(2))
    assert [p.metadata.name for p in plan.delete] == [name]
    assert len(plan.create) == 1


def test_deleted_pod_is_replaced() -> None:
    store = FakePodStore()
    store.reconcile(deployment(2))
    del store.pods[sorted(store.pods)[0]]
    assert len(store.reconcile(deployment(2)).create) == 1
    assert len(store.pods) == 2


def test_terminating_pods_are_not_counted_nor_deleted_again() -> None:
    store = FakePodStore()
    store.reconcile(deployment(2))
    name = sorted(store.pods)[0]
    pod = store.pods[name]
    store.pods[name] = msgspec.structs.replace(pod, metadata=msgspec.structs.replace(
        pod.metadata, deletion_timestamp="2026-01-01T01:00:00Z"))
    plan = store.reconcile(deployment(2))
    assert len(plan.create) == 1
    assert plan.delete == ()


def test_foreign_and_released_pods_are_left_alone() -> None:
    dep = deployment(1)
    stranger = make_pod("stranger", labels={"app": "web"})  # matches, but not owned: no adoption
    store = FakePodStore()
    store.reconcile(dep)
    (name,) = store.pods
    released = store.pods[name]
    store.pods[name] = msgspec.structs.replace(released, metadata=msgspec.structs.replace(
        released.metadata, labels={"app": "debugging"}))
    plan = plan_deployment(dep, [*store.pods.values(), stranger], new_suffix=counter())
    assert plan.delete == ()
    assert len(plan.create) == 1  # the released pod no longer counts


def test_replicas_default_to_one() -> None:
    plan = plan_deployment(deployment(replicas=None), [], new_suffix=counter())  # type: ignore[arg-type]
    assert len(plan.create) == 1


# --- garbage -------------------------------------------------------------------------------------


def test_pods_of_a_gone_deployment_are_deleted() -> None:
    store = FakePodStore()
    store.reconcile(deployment(2))
    other = make_pod("other", labels={"app": "web"})
    plan = plan_deployment(None, [*store.pods.values(), other], new_suffix=counter(), name="web")
    assert sorted(p.metadata.name for p in plan.delete) == sorted(store.pods)
    assert (plan.create, plan.status) == ((), None)


def test_pods_of_an_earlier_deployment_of_the_same_name_are_deleted() -> None:
    store = FakePodStore()
    store.reconcile(deployment(2, uid="dep-old"))
    plan = store.reconcile(deployment(2, uid="dep-new"))
    assert len(plan.delete) == 2
    assert len(plan.create) == 2


# --- rolling update -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "strategy", "expected"),
    [
        pytest.param(1, None, (1, 0), id="default-1"),
        pytest.param(4, None, (1, 1), id="default-4"),
        pytest.param(10, None, (3, 2), id="default-10"),
        pytest.param(10, {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "50%"}}, (0, 5),
                     id="percent"),
        pytest.param(3, {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, (1, 0),
                     id="both-zero-surges-one"),
        pytest.param(3, {"rollingUpdate": {"maxSurge": "2", "maxUnavailable": "x%"}}, (2, 0),
                     id="string-number-and-junk"),
    ],
)
def test_rolling_limits(replicas: int, strategy: dict[str, object] | None,
                        expected: tuple[int, int]) -> None:
    assert rolling_limits(deployment(replicas, strategy=strategy)) == expected


def test_rolling_update_of_one_replica_waits_for_the_new_pod() -> None:
    store = FakePodStore()
    v1 = deployment(1)
    store.reconcile(v1)
    store.ready_all()
    (old,) = store.pods
    v2 = with_command(v1, "sleep", "2d")
    step = store.reconcile(v2)
    assert (len(step.create), step.delete) == (1, ())  # surge one, keep the old one serving
    assert not store.reconcile(v2).create  # no second surge pod
    assert old in store.pods
    new = next(n for n in store.pods if n != old)
    store.set_ready(new)
    step = store.reconcile(v2)
    assert [p.metadata.name for p in step.delete] == [old]
    assert store.hashes() == [template_hash(v2.spec.template)]


def test_rolling_update_of_four_replicas_completes_step_by_step() -> None:
    store = FakePodStore()
    v1 = deployment(4)
    store.reconcile(v1)
    store.ready_all()
    v2 = with_command(v1, "sleep", "2d")
    new_hash = template_hash(v2.spec.template)
    for _ in range(20):
        store.reconcile(v2)
        ready = sum(
            1 for p in store.pods.values()
            if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)
        )
        assert len(store.pods) <= 4 + 1  # maxSurge
        assert ready >= 4 - 1  # maxUnavailable
        store.ready_all()
        if store.hashes() == [new_hash] * 4:
            break
    else:
        pytest.fail(f"rollout did not finish: {store.hashes()}")


def test_not_ready_old_pods_go_first() -> None:
    store = FakePodStore()
    v1 = deployment(2)
    store.reconcile(v1)
    a, b = sorted(store.pods)
    store.set_ready(a)
    step = store.reconcile(with_command(v1, "sleep", "2d"))
    assert [p.metadata.name for p in step.delete] == [b]


def test_recreate_deletes_old_pods_before_creating_new_ones() -> None:
    store = FakePodStore()
    v1 = deployment(2, strategy={"type": "Recreate"})
    store.reconcile(v1)
    store.ready_all()
    v2 = with_command(v1, "sleep", "2d")
    step = store.reconcile(v2)
    assert (step.create, len(step.delete)) == ((), 2)
    step = store.reconcile(v2)
    assert len(step.create) == 2


def test_recreate_waits_for_terminating_old_pods() -> None:
    store = FakePodStore()
    v1 = deployment(1, strategy={"type": "Recreate"})
    store.reconcile(v1)
    (name,) = store.pods
    pod = store.pods[name]
    store.pods[name] = msgspec.structs.replace(pod, metadata=msgspec.structs.replace(
        pod.metadata, deletion_timestamp="2026-01-01T01:00:00Z"))
    assert not store.reconcile(with_command(v1, "sleep", "2d")).create


def test_paused_deployment_only_writes_status() -> None:
    store = FakePodStore()
    plan = store.reconcile(deployment(3, paused=True))
    assert (plan.create, plan.delete) == ((), ())
    assert plan.status is not None


# --- status ---------------------------------------------------------------------------------------


def test_status_counts_and_is_omitted_when_unchanged() -> None:
    store = FakePodStore()
    dep = deployment(3, generation=4)
    store.reconcile(dep)
    store.set_ready(sorted(store.pods)[0])
    plan = plan_deployment(dep, store.pods.values(), new_suffix=store.suffix, now=T0)
    assert plan.status is not None
    assert msgspec.structs.replace(plan.status, conditions=()) == m.DeploymentStatus(
        observed_generation=4, replicas=3, updated_replicas=3, ready_replicas=1,
        available_replicas=1, unavailable_replicas=2,
    )
    written = msgspec.structs.replace(dep, status=plan.status)
    again = plan_deployment(written, store.pods.values(), new_suffix=store.suffix, now=T1)
    assert not again
    assert again.status is None


T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"


def conditions(plan: DeploymentPlan) -> dict[str, tuple[str, str, str | None, str | None]]:
    assert plan.status is not None
    return {c.type: (c.status, c.reason, c.last_transition_time, c.last_update_time)
            for c in plan.status.conditions}


def test_conditions_through_a_rollout() -> None:
    store = FakePodStore()
    dep = deployment(2)
    plan = plan_deployment(dep, [], new_suffix=store.suffix, now=T0)
    assert conditions(plan) == {
        "Available": ("False", "MinimumReplicasUnavailable", T0, T0),
        "Progressing": ("True", "ReplicaSetUpdated", T0, T0),
    }
    store.apply(plan)
    dep = msgspec.structs.replace(dep, status=plan.status)
    store.ready_all()
    plan = plan_deployment(dep, store.pods.values(), new_suffix=store.suffix, now=T1)
    assert conditions(plan) == {
        "Available": ("True", "MinimumReplicasAvailable", T1, T1),
        # same status, new reason: rewritten, but the transition time is kept
        "Progressing": ("True", "NewReplicaSetAvailable", T0, T1),
    }


def test_paused_progressing_is_unknown() -> None:
    plan = plan_deployment(deployment(1, paused=True), [], new_suffix=counter(), now=T0)
    assert conditions(plan)["Progressing"][:2] == ("Unknown", "DeploymentPaused")


def test_status_keeps_other_conditions() -> None:
    other = m.Condition(type="ReplicaFailure", status="True", reason="FailedCreate")
    dep = msgspec.structs.replace(deployment(0), status=m.DeploymentStatus(conditions=(other,)))
    plan = plan_deployment(dep, [], new_suffix=counter())
    assert plan.status is not None
    types = [c.type for c in plan.status.conditions]
    assert types == ["Available", "Progressing", "ReplicaFailure"]
    assert plan.status.conditions[-1] == other
