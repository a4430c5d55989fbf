"""Leader election on a Lease, the way client-go's leaderelection package does it: pure decisions.

Several API servers may run on one store; only one of them (the leader) runs the controllers.
They agree through one Lease object (`coordination.k8s.io/v1`, `kube-system/clusterip-controllers`):
its holder is the leader for as long as it renews the lease. Each candidate, every retry period,
reads the lease and asks `next_step` what to do:

| the lease                                | step   | the write                                 |
|------------------------------------------|--------|-------------------------------------------|
| absent                                   | CREATE | holder me, acquired and renewed now       |
| held by me                               | RENEW  | renewed now                               |
| released (no holder)                     | TAKE   | holder me, acquired now, transitions + 1  |
| held by another, changed since last seen | WAIT   | none: it is alive; remember when I saw it |
| held by another, unchanged for duration  | TAKE   | as above: its holder stopped renewing     |
| held by another, unchanged for less      | WAIT   | none                                      |

Expiry is judged on the candidate's own monotonic clock, from when it *observed* the record
last change, never from the holder's timestamps: clocks of different machines may disagree, so
a record's times are for people (`kubectl get lease -o yaml`), not for the decision. Every write
is conditional on the resourceVersion read, so of two candidates that decide to take an expired
lease at once, one write wins and the other gets a conflict and waits.

The leader must stop leading before anyone else may start: it gives up when it has not renewed
for `renew_deadline` (shorter than the lease's duration), so a partitioned leader stops its
controllers before another candidate sees the lease expire. `Timing` holds the three periods;
the defaults hand over within `duration + retry` = 7 s of a leader's death (client-go's are
15 s, 10 s and 2 s), and at once when a leader stops cleanly and releases the lease.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

__all__ = ["LeaseRecord", "Observation", "Step", "Timing", "next_step", "released"]


@dataclass(frozen=True, slots=True)
class Timing:
    """How long a lease lasts unrenewed, how long a leader tries to renew before it gives up,
    and how often candidates and the leader look at the lease (seconds)."""

    duration: float = 6.0
    renew_deadline: float = 4.0
    retry: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.retry < self.renew_deadline < self.duration:
            raise ValueError("leader election needs 0 < retry < renew_deadline < duration, got "
                             f"{self.retry}, {self.renew_deadline}, {self.duration}")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The lease's spec: who holds it, for how long unrenewed, and its times (RFC 3339 with
    microseconds, a MicroTime)."""

    holder: str
    duration_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """The record a candidate last saw change, and when (on its own monotonic clock)."""

    record: LeaseRecord | None = None
    at: float = 0.0


class Step(Enum):
    CREATE = "create"
    RENEW = "renew"
    TAKE = "take"
    WAIT = "wait"


def next_step(current: LeaseRecord | None, seen: Observation, me: str, *, monotonic: float,
              wall: str, timing: Timing) -> tuple[Step, LeaseRecord | None, Observation]:
    """What candidate `me` does with the lease as read (`current`, None if absent): the step,
    the record to write (None for WAIT) and what it has now observed. `monotonic` is its clock
    now, `wall` the time now as a MicroTime string for the record."""
    duration = max(1, round(timing.duration))
    if current is None:
        mine = LeaseRecord(me, duration, wall, wall)
        return Step.CREATE, mine, Observation(mine, monotonic)
    if current.holder == me:
        renewed = replace(current, renew_time=wall, duration_seconds=duration)
        return Step.RENEW, renewed, Observation(renewed, monotonic)
    if current != seen.record:
        seen = Observation(current, monotonic)
    expired = monotonic >= seen.at + current.duration_seconds
    if current.holder and not expired:
        return Step.WAIT, None, seen
    taken = LeaseRecord(me, duration, wall, wall, current.transitions + 1)
    return Step.TAKE, taken, Observation(taken, monotonic)


def released(record: LeaseRecord, wall: str) -> LeaseRecord:
    """The record a leader writes when it stops cleanly: no holder, so a candidate takes the
    lease at its next look instead of waiting for it to expire."""
    return replace(record, holder="", renew_time=wall, duration_seconds=1)
