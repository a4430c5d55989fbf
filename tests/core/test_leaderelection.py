"""Leader election's decisions (core.leaderelection): the table of its module docstring, row by
row, then two candidates and a leader played against one lease on a fake clock."""

from __future__ import annotations

import pytest

from clusterip.core.leaderelection import (
    LeaseRecord,
    Observation,
    Step,
    Timing,
    next_step,
    released,
)

TIMING = Timing(duration=6, renew_deadline=4, retry=1)
T0 = "2026-11-26T10:00:00.000000Z"
T1 = "2026-11-26T10:00:01.000000Z"


def held_by(holder: str, renewed: str = T0, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, 6, T0, renewed, transitions)


def step(current: LeaseRecord | None, seen: Observation, me: str, at: float
         ) -> tuple[Step, LeaseRecord | None, Observation]:
    return next_step(current, seen, me, monotonic=at, wall=T1, timing=TIMING)


def test_an_absent_lease_is_created() -> None:
    assert step(None, Observation(), "a", 10.0) == (
        Step.CREATE, LeaseRecord("a", 6, T1, T1, 0), Observation(LeaseRecord("a", 6, T1, T1), 10))


def test_the_holder_renews() -> None:
    what, record, _ = step(held_by("a"), Observation(), "a", 10.0)
    assert (what, record) == (Step.RENEW, LeaseRecord("a", 6, T0, T1, 0))


def test_a_lease_seen_changing_is_alive() -> None:
    what, record, seen = step(held_by("a"), Observation(held_by("a", renewed="older"), 1.0),
                              "b", 10.0)
    assert (what, record, seen) == (Step.WAIT, None, Observation(held_by("a"), 10.0))


@pytest.mark.parametrize(("since", "expected"), [(5.9, Step.WAIT), (6.0, Step.TAKE)])
def test_a_lease_unchanged_for_its_duration_is_taken(since: float, expected: Step) -> None:
    what, record, _ = step(held_by("a", transitions=3), Observation(held_by("a", transitions=3),
                                                                    100.0), "b", 100.0 + since)
    assert what is expected
    if expected is Step.TAKE:
        assert record == LeaseRecord("b", 6, T1, T1, 4)


def test_a_released_lease_is_taken_at_once() -> None:
    what, record, _ = step(released(held_by("a"), T1), Observation(), "b", 0.0)
    assert (what, record) == (Step.TAKE, LeaseRecord("b", 6, T1, T1, 1))


def test_expiry_is_judged_on_the_candidate_s_clock_not_the_record_s_times() -> None:
    far_future = held_by("a", renewed="2099-01-01T00:00:00.000000Z")
    _, _, seen = step(far_future, Observation(), "b", 50.0)
    assert step(far_future, seen, "b", 56.0)[0] is Step.TAKE


def test_timing_must_let_a_leader_stop_before_its_lease_expires() -> None:
    with pytest.raises(ValueError, match="retry < renew_deadline < duration"):
        Timing(duration=4, renew_deadline=4, retry=1)


def test_a_dead_leader_is_replaced_within_duration_plus_retry() -> None:
    """Two candidates look every second; `a` leads, then dies at t=10 (stops renewing)."""
    lease: LeaseRecord | None = None
    seen = {"a": Observation(), "b": Observation()}
    leaders: dict[float, str] = {}
    for tick in range(30):
        now = float(tick)
        for me in ("a", "b"):
            if me == "a" and now >= 10:
                continue  # dead
            _, record, seen[me] = next_step(lease, seen[me], me, monotonic=now,
                                               wall=f"t{tick}", timing=TIMING)
            if record is not None:
                lease = record
        assert lease is not None
        leaders[now] = lease.holder
    assert {leaders[t] for t in range(0, 10)} == {"a"}
    taken_at = min(t for t, holder in leaders.items() if holder == "b")
    assert 10 < taken_at <= 10 + TIMING.duration + TIMING.retry
    assert lease.transitions == 1
