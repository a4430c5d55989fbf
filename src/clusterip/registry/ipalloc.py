"""The ClusterIP allocator: one IPAddress object per allocated address, created only if absent.

Theory of operation
-------------------
There is no bitmap: the truth is the set of IPAddress objects. An address is allocated when its
IPAddress object (named by the canonical IP, `spec.parentRef` naming the Service) is created, and
the store's create-if-absent is the only lock (KEP-1880): two allocators (two API servers on one
etcd) that race for one address both call `create`, one wins, and the other gets `AlreadyExists`.

`allocate(service)` asks the pure core (`core.ipalloc.plan_allocation`) what the Service needs,
then for each address:

- a requested address (the user's `spec.clusterIP`): create its IPAddress; `AlreadyExists` is the
  user's error, `Invalid` with `spec.clusterIPs[0]: ... provided IP is already allocated`;
- a well-known Service (`kubernetes`, `kube-dns`) asking for none: its reserved address if free,
  else a dynamic pick;
- a dynamic pick: walk `ServiceRange.candidate_indexes(rng)` (random start in the upper band,
  scan with wraparound, then the lower band) calling `create` on each until one succeeds. In a
  sparse range the first probe almost always wins, so a pick costs one store write and never
  lists the IPAddresses. The walk skips addresses this allocator already knows are taken (its
  own creates and collisions: hints, like kube-apiserver's informer cache, never trusted for a
  "full" verdict), so one allocator filling a range alone does not re-probe its own addresses.
  After `max_probes` collisions in a row, or when the walk runs out, the hints are replaced by
  one listing of the IPAddresses and the walk runs once more (a create can still collide with a
  concurrent allocator; it just moves on). Only when that walk runs out too is the range full:
  `RangeFull` is exact, not a guess, and costs one listing. With several ranges of one family
  (several ServiceCIDRs) they are tried in order.

If a later address of a dual-stack Service fails, the ones already created are deleted again.
An allocation interrupted between the IPAddress create and the Service write leaves an IPAddress
no Service holds: the repair pass (`control.ipalloc_repair`) deletes it after its grace period.

`release(service)` deletes the IPAddresses of the Service's ClusterIPs whose parentRef is that
Service, at the resourceVersion it read (an IPAddress that moved on to someone else stays).
`ensure_service_cidr()` creates the default ServiceCIDR object `kubernetes` if it is absent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from clusterip.core.errors import (
    AlreadyExists,
    BadInput,
    Conflict,
    Invalid,
    NotFound,
    RangeFull,
    invalid,
)
from clusterip.core.ipalloc import (
    AllocationRequest,
    IPAddr,
    Rng,
    ServiceRange,
    assign_cluster_ips,
    ip_address_object,
    parse_ip,
    plan_allocation,
    service_cidr_object,
    service_cluster_ips,
    service_ref,
)
from clusterip.core.model import IPAddress, ParentReference, Service, ServiceCIDR
from clusterip.registry.client import Client

__all__ = ["DEFAULT_MAX_PROBES", "ClusterIPAllocator"]

log = logging.getLogger(__name__)

# Collisions in a row after which a dynamic pick stops probing blindly and lists the taken
# addresses. At 50% occupancy 64 collisions in a row are rare; below that, all but impossible.
DEFAULT_MAX_PROBES = 64

_RELEASE_ATTEMPTS = 3


class ClusterIPAllocator:
    """Allocates ClusterIPs as IPAddress objects in a store. See the module docstring.

    Args:
        objects: the object store (anything with `Client`'s get/list/create/delete).
        ranges: the service CIDRs, primary family first.
        rng: where random starting points come from (`random.Random`).
        max_probes: collisions in a row before a dynamic pick lists the taken addresses.
    """

    def __init__(
        self,
        objects: Client,
        ranges: Sequence[ServiceRange],
        rng: Rng,
        *,
        max_probes: int = DEFAULT_MAX_PROBES,
    ) -> None:
        if not ranges:
            raise BadInput("no service CIDR configured")
        self._objects = objects
        self._ranges = tuple(ranges)
        self._rng = rng
        self._max_probes = max(1, max_probes)
        # Per range, indexes known to be taken: hints, never the truth. They are learnt from our
        # own creates and collisions and replaced by each listing, and only ever make a scan skip
        # a probe; before reporting a range full the allocator always lists the store.
        self._taken: dict[ServiceRange, set[int]] = {}

    @property
    def ranges(self) -> tuple[ServiceRange, ...]:
        return self._ranges

    async def ensure_service_cidr(self) -> ServiceCIDR:
        """Create the ServiceCIDR `kubernetes` for the configured ranges unless it exists.

        Returns the stored object; an existing one is left as it is (it is never updated, as in
        kube-apiserver), so its `spec.cidrs` may differ from this allocator's ranges.
        """
        wanted = service_cidr_object(self._ranges)
        try:
            return await self._objects.create(wanted)
        except AlreadyExists:
            existing = await self._objects.get(ServiceCIDR, "", wanted.metadata.name)
            if existing.spec.cidrs != wanted.spec.cidrs:
                log.warning(
                    "servicecidr=%s stored_cidrs=%s configured_cidrs=%s "
                    "msg='existing ServiceCIDR differs from the configured ranges'",
                    wanted.metadata.name,
                    ",".join(existing.spec.cidrs),
                    ",".join(wanted.spec.cidrs),
                )
            return existing

    async def allocate(self, service: Service) -> Service:
        """The Service with its ClusterIP(s) allocated and `clusterIP`, `clusterIPs`,
        `ipFamilies`, `ipFamilyPolicy` filled in. Headless and ExternalName Services are
        returned unchanged.

        Raises:
            Invalid: a requested IP is malformed, outside every range or already allocated, or
                the family fields ask for what this cluster does not serve.
            RangeFull: no free address is left for a dynamic pick.
        """
        plan = plan_allocation(service, self._ranges)
        if plan is None:
            return service
        parent = service_ref(service.metadata.namespace, service.metadata.name)
        allocated: list[IPAddr] = []
        try:
            for request in plan.requests:
                allocated.append(await self._allocate_one(service, request, parent))
        except BaseException:
            await self._delete_all(allocated, parent)
            raise
        return assign_cluster_ips(service, allocated, plan)

    async def release(self, service: Service) -> None:
        """Delete the IPAddresses of the Service's ClusterIPs that name it as their parent."""
        parent = service_ref(service.metadata.namespace, service.metadata.name)
        for value in service_cluster_ips(service):
            ip = parse_ip(value)
            if ip is not None:
                await self._release_one(ip, parent)

    # --- internals ---------------------------------------------------------------------------

    async def _allocate_one(
        self, service: Service, request: AllocationRequest, parent: ParentReference
    ) -> IPAddr:
        if request.requested is not None:
            if await self._try_create(request.requested, parent):
                return request.requested
            if not request.well_known:
                raise Invalid(
                    "Service",
                    service.metadata.name,
                    [
                        invalid(
                            request.field,
                            str(request.requested),
                            "provided IP is already allocated",
                        )
                    ],
                )
            log.warning(
                "service=%s/%s ip=%s msg='well-known address taken; picking another'",
                parent.namespace,
                parent.name,
                request.requested,
            )
        for service_range in request.ranges:
            ip = await self._pick(service_range, parent)
            if ip is not None:
                return ip
        cidrs = ", ".join(str(r) for r in request.ranges)
        raise RangeFull(f"range is full: no free address in {cidrs}")

    async def _pick(self, service_range: ServiceRange, parent: ParentReference) -> IPAddr | None:
        """A free address of the range, created for `parent`; None when the range is full."""
        taken = self._taken.setdefault(service_range, set())
        misses = 0
        for index in service_range.candidate_indexes(self._rng, skip=taken):
            ip = service_range.address(index)
            if await self._try_create(ip, parent):
                return ip
            misses += 1
            if misses >= self._max_probes:
                break
        # Crowded (many collisions in a row), or every candidate is known or found taken. The
        # hints may be stale (another allocator released addresses since we learned of them),
        # so look at the store before concluding anything, then scan once more.
        stored, _ = await self._objects.list(IPAddress)
        taken.clear()
        for obj in stored:
            address = parse_ip(obj.metadata.name)
            at = service_range.index_of(address) if address is not None else None
            if at is not None:
                taken.add(at)
        log.debug(
            "cidr=%s collisions=%d taken=%d msg='crowded range: scanning for a free address'",
            service_range,
            misses,
            len(taken),
        )
        for index in service_range.candidate_indexes(self._rng, skip=taken):
            ip = service_range.address(index)
            if await self._try_create(ip, parent):
                return ip
        return None  # every address was taken at the listing or refused since: full

    async def _try_create(self, ip: IPAddr, parent: ParentReference) -> bool:
        """Create the IPAddress; whether we got it. Either way the address is now taken."""
        try:
            await self._objects.create(ip_address_object(ip, parent))
        except AlreadyExists:
            self._hint(ip, taken=True)
            return False
        self._hint(ip, taken=True)
        return True

    def _hint(self, ip: IPAddr, *, taken: bool) -> None:
        for service_range, indexes in self._taken.items():
            index = service_range.index_of(ip)
            if index is not None:
                if taken:
                    indexes.add(index)
                else:
                    indexes.discard(index)

    async def _release_one(self, ip: IPAddr, parent: ParentReference) -> None:
        for _ in range(_RELEASE_ATTEMPTS):
            try:
                stored = await self._objects.get(IPAddress, "", str(ip))
            except NotFound:
                return
            if stored.spec.parent_ref != parent:
                return  # someone else's now: not ours to release
            try:
                await self._objects.delete(
                    IPAddress, "", str(ip), resource_version=stored.metadata.resource_version
                )
            except NotFound:
                return
            except Conflict:
                continue  # changed since the read: look again
            self._hint(ip, taken=False)
            return
        log.warning("ip=%s msg='IPAddress kept changing; left for the repair pass'", ip)

    async def _delete_all(self, ips: Sequence[IPAddr], parent: ParentReference) -> None:
        for ip in ips:
            try:
                await self._release_one(ip, parent)
            except Exception:  # best effort: repair collects what is left
                log.exception("ip=%s msg='could not roll back an allocation'", ip)
