"""What a Deployment's pods should be, and the pod writes and status that get them there.

Pure: the deployment controller (`control.deployments`) calls `plan_deployment(deployment,
pods, new_suffix=...)` with its caches and applies the returned `DeploymentPlan`.

Kubernetes runs a Deployment through ReplicaSets; clusterip manages the pods directly, and the
ReplicaSet's role is played by the `pod-template-hash` label: a hash of the pod template, stamped
on every pod created from it, exactly the label Kubernetes puts on pods. Pods whose label equals
the current template's hash are *new*, the others *old*.

Whose pods. A pod belongs to the Deployment if its controller ownerReference carries the
Deployment's uid and its labels match the Deployment's selector (a pod relabelled out of the
selector is released: it keeps running and is no longer counted, as Kubernetes does). Pods are not
adopted. A pod whose controller ownerReference names a Deployment that no longer exists (gone,
or deleted and re-created with another uid) is garbage: it is deleted, as Kubernetes' garbage
collector would.

Which pods count. *Active* pods are neither terminal (phase Succeeded or Failed) nor terminating
(a deletionTimestamp). Terminal pods are deleted, and replaced because they no longer count;
terminating pods are left to finish and not counted.

Rolling update (strategy RollingUpdate, the default; `maxSurge` and `maxUnavailable` are read from
`spec.strategy.rollingUpdate` as numbers or percentages, default 25% each, surge rounded up and
unavailable down, as Kubernetes does; if both come out 0, surge is 1). With N = spec.replicas:

1. Create new pods up to N, but never more than N + maxSurge active pods in all.
2. Delete old pods: every old pod that is not ready (it serves nothing), then ready old pods as
   long as the ready pods left are at least N - maxUnavailable.
3. With no rollout in progress, delete new pods above N: not-ready ones first, then the newest.

Each sync takes one step; the next pod event (a new pod turning Ready) triggers the next. With
strategy Recreate, every old pod is deleted first, and new pods are created only when no old pod
is left (terminating ones included). A paused Deployment only gets its status written.

Status: `replicas` (active pods), `updatedReplicas` (active new), `readyReplicas` (Ready),
`availableReplicas` (Ready; `minReadySeconds` is not honoured), `unavailableReplicas`
(N - available, at least 0), `observedGeneration`, and Kubernetes' two conditions:
`Available` (True when at least N - maxUnavailable pods are ready: MinimumReplicasAvailable /
MinimumReplicasUnavailable) and `Progressing` (NewReplicaSetAvailable once N new pods are all
ready and no old one is left, ReplicaSetUpdated before, DeploymentPaused when paused). A
condition is rewritten, stamped with the caller's `now`, only when its status or reason changes;
other conditions are kept. The plan carries a status only when it differs from the stored one.

New pods are named `<deployment>-<template hash>-<suffix>`; the hash is 10 characters of the
SHA-256 of the template's canonical JSON in Kubernetes' safe alphabet, the suffix comes from the
injected `new_suffix()`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import msgspec

from clusterip.core import model as m
from clusterip.core.selectors import Selector, SelectorError

__all__ = [
    "LABEL_POD_TEMPLATE_HASH",
    "DeploymentPlan",
    "controller_ref",
    "label_selector_matches",
    "new_pod",
    "plan_deployment",
    "rolling_limits",
    "template_hash",
]

LABEL_POD_TEMPLATE_HASH = "pod-template-hash"

# Kubernetes' rand.SafeEncodeString alphabet: no vowels, no confusable digits.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_HASH_LENGTH = 10
_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
_DEFAULT_SURGE = "25%"
_DEFAULT_UNAVAILABLE = "25%"


@dataclass(frozen=True, slots=True)
class DeploymentPlan:
    """Pods to create and delete, and the status to write (None: the stored one is right)."""

    create: tuple[m.Pod, ...] = ()
    delete: tuple[m.Pod, ...] = ()
    status: m.DeploymentStatus | None = None

    def __bool__(self) -> bool:
        return bool(self.create or self.delete or self.status is not None)


# --- selectors and ownership --------------------------------------------------------------------


def label_selector_matches(
    selector: m.LabelSelector | None, labels: Mapping[str, str] | None
) -> bool:
    """A Deployment's `spec.selector` matches labels. An absent or empty selector matches none
    (apps/v1 requires a non-empty selector; matching everything would be dangerous)."""
    if selector is None or (not selector.match_labels and not selector.match_expressions):
        return False
    try:
        return Selector.from_label_selector(selector).matches(labels)
    except SelectorError:  # an unknown operator selects nothing (validation rejects it first)
        return False


def controller_ref(obj: m.KubeObject) -> m.OwnerReference | None:
    """The ownerReference with `controller: true`, if any."""
    for ref in obj.metadata.owner_references:
        if ref.controller:
            return ref
    return None


def _owner_ref(deployment: m.Deployment) -> m.OwnerReference:
    return m.OwnerReference(
        api_version=m.Deployment.API_VERSION, kind=m.Deployment.KIND,
        name=deployment.metadata.name, uid=deployment.metadata.uid,
        controller=True, block_owner_deletion=True,
    )


# --- templates --------------------------------------------------------------------------------


def template_hash(template: m.PodTemplateSpec) -> str:
    """10 characters that change whenever the pod template does (its `pod-template-hash`)."""
    data = msgspec.json.encode(template, order="sorted")
    number = int.from_bytes(hashlib.sha256(data).digest()[:8], "big")
    chars = []
    for _ in range(_HASH_LENGTH):
        number, digit = divmod(number, len(_SAFE_ALPHABET))
        chars.append(_SAFE_ALPHABET[digit])
    return "".join(chars)


def new_pod(deployment: m.Deployment, hash_: str, suffix: str) -> m.Pod:
    """A pod of the deployment's template, owned by it and labelled with the template hash."""
    template = deployment.spec.template
    meta = deployment.metadata
    return m.Pod(
        api_version="v1",
        kind="Pod",
        metadata=m.ObjectMeta(
            name=f"{meta.name}-{hash_}-{suffix}",
            namespace=meta.namespace,
            labels={**(template.metadata.labels or {}), LABEL_POD_TEMPLATE_HASH: hash_},
            annotations=dict(template.metadata.annotations)
            if template.metadata.annotations else None,
            owner_references=(_owner_ref(deployment),),
        ),
        spec=template.spec,
    )


# --- the rollout --------------------------------------------------------------------------------


def _scaled(value: int | str | None, default: str, replicas: int, round_up: bool) -> int:
    if value is None:
        value = default
    if isinstance(value, int):
        return max(value, 0)
    text = value.strip()
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError:
            percent = int(default[:-1])
        exact = percent * replicas / 100
        return max(math.ceil(exact) if round_up else math.floor(exact), 0)
    try:
        return max(int(text), 0)
    except ValueError:
        return _scaled(default, default, replicas, round_up)


def rolling_limits(deployment: m.Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts for the deployment's replicas."""
    replicas = _replicas(deployment)
    rolling = (deployment.spec.strategy or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge"), _DEFAULT_SURGE, replicas, round_up=True)
    unavailable = _scaled(
        rolling.get("maxUnavailable"), _DEFAULT_UNAVAILABLE, replicas, round_up=False
    )
    if surge == 0 and unavailable == 0:
        surge = 1
    return surge, unavailable


def _replicas(deployment: m.Deployment) -> int:
    replicas = deployment.spec.replicas
    return 1 if replicas is None else max(replicas, 0)


def _is_ready(pod: m.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _active(pod: m.Pod) -> bool:
    return pod.status.phase not in _TERMINAL_PHASES and pod.metadata.deletion_timestamp is None


def _deletion_order(pods: Iterable[m.Pod]) -> list[m.Pod]:
    """Pods in the order to delete them: not ready first, then the newest."""
    by_age = sorted(
        pods, key=lambda p: (p.metadata.creation_timestamp or "", p.metadata.name), reverse=True
    )
    return sorted(by_age, key=_is_ready)  # stable: newest first within each readiness


def plan_deployment(
    deployment: m.Deployment | None,
    pods: Iterable[m.Pod],
    *,
    new_suffix: Callable[[], str],
    name: str = "",
    now: str | None = None,
) -> DeploymentPlan:
    """The pod writes and status that bring a Deployment's pods to its spec.

    Args:
        deployment: the Deployment, or None if it is gone (its pods are then deleted).
        pods: the pods of the namespace whose controller reference names the deployment (any
            superset is fine: ownership is checked here).
        new_suffix: the random part of a new pod's name.
        name: the deployment's name, needed only when `deployment` is None.
        now: the time (RFC 3339) to stamp on conditions that change.

    Returns:
        The pods to create and delete and the new status (see the module docstring).
    """
    pods = list(pods)
    if deployment is None:
        garbage = [
            p for p in pods
            if _controlled_by_name(p, name) and p.metadata.deletion_timestamp is None
        ]
        return DeploymentPlan(delete=tuple(sorted(garbage, key=lambda p: p.metadata.name)))

    meta = deployment.metadata
    owned: list[m.Pod] = []
    delete: list[m.Pod] = []
    for pod in pods:
        if pod.metadata.namespace != meta.namespace:
            continue
        ref = controller_ref(pod)
        if ref is None or ref.kind != m.Deployment.KIND or ref.name != meta.name:
            continue
        if ref.uid != meta.uid:
            if pod.metadata.deletion_timestamp is None:
                delete.append(pod)  # left by an earlier Deployment of the same name
            continue
        if not label_selector_matches(deployment.spec.selector, pod.metadata.labels):
            continue  # released
        owned.append(pod)

    for pod in owned:
        if pod.status.phase in _TERMINAL_PHASES and pod.metadata.deletion_timestamp is None:
            delete.append(pod)
    active = [p for p in owned if _active(p)]
    hash_ = template_hash(deployment.spec.template)
    new = [p for p in active if (p.metadata.labels or {}).get(LABEL_POD_TEMPLATE_HASH) == hash_]
    old = [p for p in active if p not in new]
    replicas = _replicas(deployment)

    create_count = 0
    if not deployment.spec.paused:
        strategy = (deployment.spec.strategy or {}).get("type") or "RollingUpdate"
        if strategy == "Recreate":
            create_count, doomed = _recreate(owned, new, old, replicas, hash_)
        else:
            create_count, doomed = _rolling(deployment, new, old, replicas)
        delete.extend(doomed)

    create = tuple(new_pod(deployment, hash_, new_suffix()) for _ in range(create_count))
    status = _status(deployment, active, new, now)
    return DeploymentPlan(
        create=create,
        delete=tuple(delete),
        status=None if status == deployment.status else status,
    )


def _controlled_by_name(pod: m.Pod, name: str) -> bool:
    ref = controller_ref(pod)
    return ref is not None and ref.kind == m.Deployment.KIND and ref.name == name


def _rolling(
    deployment: m.Deployment, new: list[m.Pod], old: list[m.Pod], replicas: int
) -> tuple[int, list[m.Pod]]:
    surge, unavailable = rolling_limits(deployment)
    if not old:
        if len(new) > replicas:
            return 0, _deletion_order(new)[: len(new) - replicas]
        return replicas - len(new), []
    # 1. New pods up to N, within N + maxSurge active pods in all.
    create = max(0, min(replicas - len(new), replicas + surge - len(new) - len(old)))
    # 2. Old pods: the unready ones at once, ready ones while enough ready pods remain.
    doomed = [p for p in old if not _is_ready(p)]
    ready_old = _deletion_order(p for p in old if _is_ready(p))
    ready_total = sum(1 for p in new if _is_ready(p)) + len(ready_old)
    spare = max(0, ready_total - max(replicas - unavailable, 0))
    doomed.extend(ready_old[:spare])
    # New pods above N during a rollout (N was lowered): trim them too.
    if len(new) > replicas:
        doomed.extend(_deletion_order(new)[: len(new) - replicas])
    return create, doomed


def _recreate(
    owned: list[m.Pod], new: list[m.Pod], old: list[m.Pod], replicas: int, hash_: str
) -> tuple[int, list[m.Pod]]:
    if old:
        return 0, list(old)
    terminating_old = [
        p for p in owned
        if p.metadata.deletion_timestamp is not None
        and (p.metadata.labels or {}).get(LABEL_POD_TEMPLATE_HASH) != hash_
    ]
    if terminating_old and not new:
        return 0, []  # wait for the old pods to be gone before starting new ones
    if len(new) > replicas:
        return 0, _deletion_order(new)[: len(new) - replicas]
    return replicas - len(new), []


def _status(
    deployment: m.Deployment, active: list[m.Pod], new: list[m.Pod], now: str | None
) -> m.DeploymentStatus:
    replicas = _replicas(deployment)
    ready = sum(1 for p in active if _is_ready(p))
    ready_new = sum(1 for p in new if _is_ready(p))
    _, unavailable = rolling_limits(deployment)
    name = deployment.metadata.name
    if ready >= replicas - unavailable:
        available = ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        available = (
            "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
        )
    if deployment.spec.paused:
        progressing = ("Unknown", "DeploymentPaused", "Deployment is paused")
    elif len(new) == replicas == len(active) == ready_new:
        progressing = ("True", "NewReplicaSetAvailable",
                       f'Deployment "{name}" has successfully progressed.')
    else:
        progressing = ("True", "ReplicaSetUpdated", f'Deployment "{name}" is progressing.')
    conditions = _conditions(
        deployment.status.conditions, {"Available": available, "Progressing": progressing}, now
    )
    return msgspec.structs.replace(
        deployment.status,
        observed_generation=deployment.metadata.generation or None,
        replicas=len(active),
        updated_replicas=len(new),
        ready_replicas=ready,
        available_replicas=ready,
        unavailable_replicas=max(replicas - ready, 0),
        conditions=conditions,
    )


def _conditions(
    current: tuple[m.Condition, ...],
    wanted: Mapping[str, tuple[str, str, str]],
    now: str | None,
) -> tuple[m.Condition, ...]:
    """`wanted` (type → status, reason, message) merged into `current`.

    A condition whose status and reason are unchanged is kept as it is, timestamps included, so
    that an unchanged Deployment plans no status write; other condition types are kept.
    """
    by_type = {c.type: c for c in current}
    merged: list[m.Condition] = []
    for type_, (status, reason, message) in wanted.items():
        old = by_type.get(type_)
        if old is not None and old.status == status and old.reason == reason:
            merged.append(old)
            continue
        transition = old.last_transition_time if old is not None and old.status == status else now
        merged.append(m.Condition(
            type=type_, status=status, reason=reason, message=message,
            last_update_time=now, last_transition_time=transition,
        ))
    merged.extend(c for c in current if c.type not in wanted)
    return tuple(merged)
