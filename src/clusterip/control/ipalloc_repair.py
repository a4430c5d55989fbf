"""The ClusterIP repair pass: make the IPAddress objects agree with the Services again.

Theory of operation
-------------------
The IPAddress objects are the allocator's only state, and they can drift from the Services:
a process dies between creating an IPAddress and writing its Service (a leak), someone deletes
an IPAddress by hand (a Service whose IP is unrecorded, so the next allocation could hand it out
twice), a store restored from a backup, a service CIDR changed under existing Services. One pass:

1. lists the IPAddresses, then the Services. In this order an allocation racing with the pass
   can only look like a leak (protected by the grace period) or an unrecorded IP whose create
   then finds the allocator's object already there; never like a released IP to recreate;
2. asks the pure core (`core.ipalloc.plan_repair`) what to do, given `clock.now()` and the grace
   period: create missing IPAddresses, re-point ones with a wrong parent, delete leaked ones
   older than the grace period (60 s, kube-apiserver's request timeout: the longest an IPAddress
   can legitimately exist before its Service), and report out-of-range and duplicate IPs;
3. applies the plan. Deletes and re-points carry the resourceVersion seen in the listing, so an
   IPAddress that changed since is left alone; a create that finds the object already there
   means someone else repaired or allocated it first. Both are counted as `skipped`, not as
   errors.

The pass runs once at start (a single-process server can pass `orphan_grace_seconds=0` there,
since nothing can be allocating yet) and then periodically; `RepairReport.recheck_after` says
when the next pass would find a pending leak old enough to delete. It returns a `RepairReport`;
findings are also logged here, one line each, since the core does not log.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from clusterip.clock import Clock
from clusterip.core.errors import AlreadyExists, Conflict, NotFound
from clusterip.core.ipalloc import RepairFinding, RepairPlan, ServiceRange, plan_repair
from clusterip.core.model import IPAddress, Service
from clusterip.registry.client import Client

__all__ = ["DEFAULT_ORPHAN_GRACE_SECONDS", "RepairReport", "repair"]

log = logging.getLogger(__name__)

DEFAULT_ORPHAN_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairReport:
    """What one repair pass found (`plan`) and did. Names are IPAddress names (the IPs)."""

    plan: RepairPlan
    created: tuple[str, ...] = ()
    reparented: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # the store had moved on since the listing

    @property
    def findings(self) -> tuple[RepairFinding, ...]:
        return self.plan.findings

    @property
    def pending(self) -> tuple[str, ...]:
        return self.plan.pending

    @property
    def recheck_after(self) -> float | None:
        return self.plan.recheck_after

    def __str__(self) -> str:
        """One log line: counts, not the objects (a listing can be large)."""
        text = (
            f"created={len(self.created)} reparented={len(self.reparented)} "
            f"deleted={len(self.deleted)} skipped={len(self.skipped)} "
            f"pending={len(self.pending)} findings={len(self.findings)}"
        )
        if self.recheck_after is not None:
            text += f" recheck_after={self.recheck_after:.0f}s"
        return text


async def repair(
    objects: Client,
    ranges: Sequence[ServiceRange],
    *,
    clock: Clock,
    orphan_grace_seconds: float = DEFAULT_ORPHAN_GRACE_SECONDS,
) -> RepairReport:
    """Run one repair pass over the store. See the module docstring.

    Raises:
        Unavailable: the store failed; the pass can simply be run again.
    """
    ipaddresses, _ = await objects.list(IPAddress)
    services, _ = await objects.list(Service)
    plan = plan_repair(services, ipaddresses, ranges, clock.now(), orphan_grace_seconds)
    for finding in plan.findings:
        log.warning(
            "reason=%s ip=%s service=%s msg=%r",
            finding.reason,
            finding.ip,
            finding.service or "-",
            finding.message,
        )

    created: list[str] = []
    reparented: list[str] = []
    deleted: list[str] = []
    skipped: list[str] = []
    for obj in plan.create:
        try:
            await objects.create(obj)
            created.append(obj.metadata.name)
        except AlreadyExists:
            skipped.append(obj.metadata.name)
    for change in plan.reparent:
        name = change.old.metadata.name
        try:
            await objects.update(change.new)  # at the listed resourceVersion
            reparented.append(name)
        except (NotFound, Conflict):
            skipped.append(name)
    for obj in plan.delete:
        name = obj.metadata.name
        try:
            await objects.delete(
                IPAddress, "", name, resource_version=obj.metadata.resource_version
            )
            deleted.append(name)
        except (NotFound, Conflict):
            skipped.append(name)

    report = RepairReport(
        plan=plan,
        created=tuple(created),
        reparented=tuple(reparented),
        deleted=tuple(deleted),
        skipped=tuple(skipped),
    )
    if plan.changes or plan.pending:
        log.info("%s msg='ClusterIP repair pass'", report)
    return report
