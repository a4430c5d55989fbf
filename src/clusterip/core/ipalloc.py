"""ClusterIP allocation, the pure part: ranges, candidate order, requests, and the repair plan.

Theory of operation
-------------------
A `ServiceRange` is one service CIDR. Its *usable* addresses are every address of the CIDR but
the network address, and for IPv4 also the broadcast address: 10.96.0.0/12 has 2^20 - 2 of them,
10.96.0.1 to 10.111.255.254. Usable addresses are numbered from 0 (`address(i)`, `index_of(ip)`).

KEP-3070 splits the usable addresses in two bands at `offset = min(max(16, size/16), 256)`, where
`size` is the number of addresses of the CIDR. The lower (*static*) band is the `offset`
addresses right after the network address and is meant for users who pick their own IP; the
upper (*dynamic*) band is where automatic picks go first. A CIDR of 16 addresses or fewer (a /28
and smaller) is not split (`offset == 0`), as in kube-apiserver's `calculateRangeOffset`.

    /12  offset 256   static 10.96.0.1-10.96.1.0    dynamic 10.96.1.1-10.111.255.254
    /16  offset 256   static 10.96.0.1-10.96.1.0    dynamic 10.96.1.1-10.96.255.254
    /22  offset 64    static 10.96.0.1-10.96.0.64   dynamic 10.96.0.65-10.96.3.254
    /26  offset 16    static 10.96.0.1-10.96.0.16   dynamic 10.96.0.17-10.96.0.62
    /28  no split                                   dynamic 10.96.0.1-10.96.0.14

`ServiceRange.candidates(rng)` is the order in which a dynamic pick tries addresses: a random
start inside the upper band, a scan upwards with wraparound over the upper band, then the same
over the lower band from a random start of its own (kube-apiserver's `allocateNextService`). It
is lazy (chained `range` objects), so a /12 or an IPv6 /64 is never materialised; every usable
address comes out exactly once. `candidate_indexes(rng, skip=...)` is the same order as indexes,
leaving out a (live) set of indexes known to be taken. Randomness is injected: anything with
`randrange(n)` will do, normally a `random.Random` owned by the shell.

The allocator itself (`registry.ipalloc`) is a loop around this module: `plan_allocation` decides
what a new Service needs (which families, a requested or well-known address, or nothing at all),
raising `Invalid` with Kubernetes' field errors; the shell then creates one `IPAddress` object per
address, create-if-absent (KEP-1880), walking `candidates` on collisions; `assign_cluster_ips`
writes the result back into the Service.

`plan_repair` is the decision of one repair pass (kube-apiserver's `repairip.go`), from a listing
of Services and IPAddresses: which IPAddresses to create (a Service holds an IP nobody recorded),
to re-point (the recorded parent is wrong), to delete (no Service holds it and it is older than
the grace period that covers an allocation whose Service is still being written), and what to
report without changing (an IP outside every range, one IP held by two Services). The report
reasons are the Kubernetes event reasons, with their messages, in `_FINDINGS`.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Collection, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import msgspec

from clusterip.core.errors import (
    BadInput,
    FieldError,
    Invalid,
    duplicate,
    invalid,
    not_supported,
    too_many,
)
from clusterip.core.model import (
    IPAddress,
    IPAddressSpec,
    ObjectMeta,
    ParentReference,
    Service,
    ServiceCIDR,
    ServiceCIDRSpec,
    ServiceSpec,
)
from clusterip.core.timefmt import parse_rfc3339

__all__ = [
    "DEFAULT_SERVICE_CIDR",
    "IPV4",
    "IPV6",
    "LABEL_IP_FAMILY",
    "LABEL_MANAGED_BY",
    "MANAGED_BY",
    "SERVICE_CIDR_NAME",
    "AllocationPlan",
    "AllocationRequest",
    "IPAddr",
    "RepairFinding",
    "RepairPlan",
    "Reparent",
    "Rng",
    "ServiceRange",
    "assign_cluster_ips",
    "check_requested_ip",
    "ip_address_object",
    "locate",
    "parse_ip",
    "plan_allocation",
    "plan_repair",
    "range_offset",
    "reserved_ip",
    "service_cidr_object",
    "service_cluster_ips",
    "service_ref",
]

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

IPV4: Final = "IPv4"
IPV6: Final = "IPv6"
_FAMILY_OF_VERSION: Final = {4: IPV4, 6: IPV6}

DEFAULT_SERVICE_CIDR: Final = "10.96.0.0/12"
SERVICE_CIDR_NAME: Final = "kubernetes"  # the default ServiceCIDR object (KEP-1880)

# Labels kube-apiserver's allocator puts on every IPAddress it creates; repair only garbage-
# collects IPAddresses that carry MANAGED_BY (others belong to someone else).
LABEL_MANAGED_BY: Final = "ipaddress.kubernetes.io/managed-by"
LABEL_IP_FAMILY: Final = "ipaddress.kubernetes.io/ip-family"
MANAGED_BY: Final = "ipallocator.k8s.io"

# KEP-3070: offset = min(max(_MIN, size / _STEP), _MAX); no split at or below _MIN addresses.
_BAND_MIN: Final = 16
_BAND_MAX: Final = 256
_BAND_STEP: Final = 16

# Well-known Services and the usable address they get when they ask for none (0 = the first).
_WELL_KNOWN: Final[Mapping[tuple[str, str], int]] = {
    ("default", "kubernetes"): 0,  # the API server: 10.96.0.1
    ("kube-system", "kube-dns"): 9,  # cluster DNS, kubelet's --cluster-dns: 10.96.0.10
}

_POLICIES: Final = ("SingleStack", "PreferDualStack", "RequireDualStack")
_FAMILIES: Final = (IPV4, IPV6)
_INVALID_IP: Final = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


class Rng(Protocol):
    """The randomness the candidate order needs; `random.Random` provides it."""

    def randrange(self, stop: int, /) -> int: ...


def range_offset(cidr_size: int) -> int:
    """KEP-3070's static band size for a CIDR of `cidr_size` addresses (0: no split)."""
    if cidr_size <= _BAND_MIN:
        return 0
    return min(max(_BAND_MIN, cidr_size // _BAND_STEP), _BAND_MAX)


def parse_ip(value: str) -> IPAddr | None:
    """The address `value` spells, or None if it is not an IP address."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRange:
    """One service CIDR: its usable addresses, its static and dynamic bands, its candidate order.

    Build one with `ServiceRange.parse("10.96.0.0/12")`. See the module docstring.
    """

    cidr: IPNet
    family: str = field(init=False)
    first: int = field(init=False)  # the first usable address, as an int
    size: int = field(init=False)  # the number of usable addresses
    offset: int = field(init=False)  # the number of addresses in the static (lower) band
    _make: type[ipaddress.IPv4Address] | type[ipaddress.IPv6Address] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        cidr = self.cidr
        if cidr.version == 6 and cidr.prefixlen < 64:
            raise BadInput(f"invalid service CIDR {cidr}: the shortest allowed IPv6 prefix is /64")
        # Never the network address; for IPv4 never the broadcast address either.
        usable = cidr.num_addresses - (2 if cidr.version == 4 else 1)
        if usable < 1:
            raise BadInput(f"invalid service CIDR {cidr}: it has no usable address")
        object.__setattr__(self, "family", _FAMILY_OF_VERSION[cidr.version])
        object.__setattr__(self, "first", int(cidr.network_address) + 1)
        object.__setattr__(self, "size", usable)
        object.__setattr__(self, "offset", range_offset(cidr.num_addresses))
        object.__setattr__(self, "_make", type(cidr.network_address))

    @classmethod
    def parse(cls, text: str) -> ServiceRange:
        """The range for a CIDR written as text. Raises `BadInput` if it is not a usable CIDR."""
        try:
            cidr = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            raise BadInput(f"invalid service CIDR {text!r}: {exc}") from None
        return cls(cidr=cidr)

    def __str__(self) -> str:
        return str(self.cidr)

    def address(self, index: int) -> IPAddr:
        """The `index`-th usable address (0 is the one after the network address)."""
        if not 0 <= index < self.size:
            raise IndexError(f"{index} is outside the {self.size} usable addresses of {self}")
        return self._make(self.first + index)

    def index_of(self, ip: IPAddr) -> int | None:
        """The number of a usable address of this range, or None if `ip` is not one."""
        if ip.version != self.cidr.version:
            return None
        index = int(ip) - self.first
        return index if 0 <= index < self.size else None

    def contains(self, ip: IPAddr) -> bool:
        """Whether `ip` is in the CIDR at all (network and broadcast addresses included)."""
        return ip.version == self.cidr.version and ip in self.cidr

    def usable(self, ip: IPAddr) -> bool:
        """Whether `ip` can be allocated from this range."""
        return self.index_of(ip) is not None

    def in_static_band(self, ip: IPAddr) -> bool:
        index = self.index_of(ip)
        return index is not None and index < self.offset

    @property
    def static_band(self) -> tuple[IPAddr, IPAddr] | None:
        """First and last address of the lower band, or None when the range is not split."""
        if not self.offset:
            return None
        return self.address(0), self.address(self.offset - 1)

    @property
    def dynamic_band(self) -> tuple[IPAddr, IPAddr]:
        """First and last address of the upper band (the whole range when not split)."""
        return self.address(self.offset), self.address(self.size - 1)

    def _scans(self, rng: Rng) -> Iterator[range]:
        # `offset < size` always holds (a split range has at least 32 addresses), so the upper
        # band is never empty. The lower band's start is drawn only if the scan gets there.
        start = self.offset + rng.randrange(self.size - self.offset)
        yield range(start, self.size)
        yield range(self.offset, start)
        if self.offset:
            start = rng.randrange(self.offset)
            yield range(start, self.offset)
            yield range(0, start)

    def candidate_indexes(self, rng: Rng, *, skip: Container[int] = frozenset()) -> Iterator[int]:
        """Every usable index once, upper band first, leaving out those in `skip`.

        Each band is scanned upwards with wraparound from a random start. `skip` is consulted as
        the scan goes (a caller may add to a set it passed, mid-scan); the filtering runs in C
        (`itertools.filterfalse`), so skipping a long run of taken indexes is cheap.
        """
        return itertools.filterfalse(
            skip.__contains__, itertools.chain.from_iterable(self._scans(rng))
        )

    def candidates(self, rng: Rng, *, skip: Collection[IPAddr] = ()) -> Iterator[IPAddr]:
        """The addresses of `candidate_indexes`, leaving out those in `skip`."""
        skipped = {i for i in (self.index_of(ip) for ip in skip) if i is not None}
        make, first = self._make, self.first
        return (make(first + i) for i in self.candidate_indexes(rng, skip=skipped))


def locate(ip: IPAddr, ranges: Sequence[ServiceRange]) -> ServiceRange | None:
    """The first range that can allocate `ip`, or None."""
    return next((r for r in ranges if r.usable(ip)), None)


def check_requested_ip(
    value: str, ranges: Sequence[ServiceRange], field: str = "spec.clusterIPs[0]"
) -> list[FieldError]:
    """Why `value` cannot be requested as a ClusterIP from `ranges` (empty when it can).

    The network and broadcast addresses count as outside the range, as in kube-apiserver.
    """
    ip = parse_ip(value)
    if ip is None:
        return [invalid(field, value, _INVALID_IP)]
    if locate(ip, ranges) is not None:
        return []
    same_family = [r for r in ranges if r.cidr.version == ip.version] or list(ranges)
    valid = ", ".join(str(r) for r in same_family)
    return [
        invalid(
            field,
            value,
            f"provided IP is not in the valid range. The range of valid IPs is {valid}",
        )
    ]


def reserved_ip(namespace: str, name: str, service_range: ServiceRange) -> IPAddr | None:
    """The address a well-known Service gets when it asks for none, or None for other Services.

    `kubernetes` in `default` gets the first usable address (10.96.0.1), `kube-dns` in
    `kube-system` the tenth (10.96.0.10).
    """
    index = _WELL_KNOWN.get((namespace, name))
    if index is None or index >= service_range.size:
        return None
    return service_range.address(index)


# --- objects ----------------------------------------------------------------------------------


def service_cluster_ips(service: Service) -> tuple[str, ...]:
    """The ClusterIPs a Service holds: none for ExternalName and headless Services."""
    spec = service.spec
    if spec.type == "ExternalName":
        return ()
    ips = spec.cluster_ips or ((spec.cluster_ip,) if spec.cluster_ip else ())
    if not ips or ips[0] == "None":
        return ()
    return ips


def service_ref(namespace: str, name: str) -> ParentReference:
    return ParentReference(group="", resource="services", namespace=namespace, name=name)


def ip_address_object(ip: IPAddr, parent: ParentReference) -> IPAddress:
    """The IPAddress object that records `ip` as held by `parent` (named by the canonical IP)."""
    return IPAddress(
        api_version=IPAddress.API_VERSION,
        kind=IPAddress.KIND,
        metadata=ObjectMeta(
            name=str(ip),
            labels={
                LABEL_IP_FAMILY: _FAMILY_OF_VERSION[ip.version],
                LABEL_MANAGED_BY: MANAGED_BY,
            },
        ),
        spec=IPAddressSpec(parent_ref=parent),
    )


def service_cidr_object(
    ranges: Sequence[ServiceRange], name: str = SERVICE_CIDR_NAME
) -> ServiceCIDR:
    """The ServiceCIDR object for the configured ranges (at most one per family, as in K8s)."""
    return ServiceCIDR(
        api_version=ServiceCIDR.API_VERSION,
        kind=ServiceCIDR.KIND,
        metadata=ObjectMeta(name=name),
        spec=ServiceCIDRSpec(cidrs=tuple(str(r) for r in ranges)),
    )


# --- what a new Service needs -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationRequest:
    """One address to allocate for a Service: of `family`, from `ranges` (in order).

    `requested` is a specific address: the user's (an error if it is taken) or, when
    `well_known`, the reserved one of a well-known Service (a dynamic pick if it is taken).
    """

    family: str
    ranges: tuple[ServiceRange, ...]
    field: str
    requested: IPAddr | None = None
    well_known: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationPlan:
    """The addresses a new Service needs, in `spec.clusterIPs` order, and its family fields."""

    requests: tuple[AllocationRequest, ...]
    families: tuple[str, ...]
    policy: str


def plan_allocation(service: Service, ranges: Sequence[ServiceRange]) -> AllocationPlan | None:
    """Decide what a Service being created needs; None if it needs no ClusterIP at all.

    ExternalName and headless (`clusterIP: None`) Services need none. Otherwise the families
    follow KEP-563: `spec.ipFamilies` if given, else the families of the requested IPs, else the
    cluster's primary family (the first range's), plus the other configured family for
    `PreferDualStack`/`RequireDualStack`. `spec.ipFamilyPolicy` defaults to `SingleStack`.

    Raises:
        Invalid: with every field error found (bad policy or family, a family this cluster
            does not serve, a requested IP that is malformed or outside every range).
    """
    spec = service.spec
    if spec.type == "ExternalName":
        return None
    if spec.cluster_ip == "None" or spec.cluster_ips[:1] == ("None",):
        return None
    configured = list(dict.fromkeys(r.family for r in ranges))  # in order, primary first
    errors: list[FieldError] = []
    policy = spec.ip_family_policy or "SingleStack"
    if policy not in _POLICIES:
        errors.append(not_supported("spec.ipFamilyPolicy", policy, list(_POLICIES)))
    families = _declared_families(spec.ip_families, configured, errors)
    addresses = _requested_addresses(spec, ranges, families, errors)
    if not families and configured:
        families.append(configured[0])
    if policy != "SingleStack" and len(families) < 2:
        families.extend(f for f in configured if f not in families)
    if policy == "RequireDualStack" and len(configured) < 2:
        detail = "this cluster is not configured for dual-stack services"
        errors.append(invalid("spec.ipFamilyPolicy", policy, detail))
    if policy == "SingleStack" and len(families) > 1:
        detail = (
            "must be 'PreferDualStack' or 'RequireDualStack' when multiple IP families are "
            "specified"
        )
        errors.append(invalid("spec.ipFamilyPolicy", policy, detail))
    if errors:
        raise Invalid("Service", service.metadata.name, errors)

    plans: list[AllocationRequest] = []
    for i, family in enumerate(families[:2]):
        family_ranges = tuple(r for r in ranges if r.family == family)
        wanted = addresses[i] if i < len(addresses) else None
        well_known = False
        if wanted is None and i == 0:
            wanted = reserved_ip(
                service.metadata.namespace, service.metadata.name, family_ranges[0]
            )
            well_known = wanted is not None
        plans.append(
            AllocationRequest(
                family=family,
                ranges=family_ranges,
                field=f"spec.clusterIPs[{i}]",
                requested=wanted,
                well_known=well_known,
            )
        )
    return AllocationPlan(requests=tuple(plans), families=tuple(families[:2]), policy=policy)


def _declared_families(
    declared: Sequence[str], configured: Sequence[str], errors: list[FieldError]
) -> list[str]:
    """`spec.ipFamilies`, checked against what the cluster serves."""
    if len(declared) > 2:
        errors.append(too_many("spec.ipFamilies", len(declared), 2))
    families: list[str] = []
    for i, family in enumerate(declared[:2]):
        path = f"spec.ipFamilies[{i}]"
        if family not in _FAMILIES:
            errors.append(not_supported(path, family, list(_FAMILIES)))
        elif family in families:
            errors.append(duplicate(path, family))
        elif family not in configured:
            errors.append(invalid(path, family, "not configured on this cluster"))
        families.append(family)
    return families


def _requested_addresses(
    spec: ServiceSpec,
    ranges: Sequence[ServiceRange],
    families: list[str],
    errors: list[FieldError],
) -> list[IPAddr | None]:
    """The IPs `spec.clusterIP(s)` ask for (None where malformed), checked against the ranges
    and the declared families; the family of each IP beyond the declared ones is appended."""
    requested = list(spec.cluster_ips) or ([spec.cluster_ip] if spec.cluster_ip else [])
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        errors.append(invalid("spec.clusterIPs[0]", spec.cluster_ips[0], "must match clusterIP"))
    if len(requested) > 2:
        errors.append(too_many("spec.clusterIPs", len(requested), 2))
    addresses: list[IPAddr | None] = []
    for i, value in enumerate(requested[:2]):
        path = f"spec.clusterIPs[{i}]"
        ip = parse_ip(value)
        addresses.append(ip)
        if ip is None:
            errors.append(invalid(path, value, _INVALID_IP))
            continue
        family = _FAMILY_OF_VERSION[ip.version]
        if i >= len(families):
            families.append(family)
        elif families[i] != family:
            detail = f"expected an {families[i]} value as indicated by `ipFamilies[{i}]`"
            errors.append(invalid(path, value, detail))
            continue
        errors.extend(check_requested_ip(value, ranges, path))
    versions = [ip.version for ip in addresses if ip is not None]
    if len(versions) == 2 and versions[0] == versions[1]:
        detail = "may specify no more than one IP for each IP family"
        errors.append(invalid("spec.clusterIPs[1]", requested[1], detail))
    return addresses


def assign_cluster_ips(service: Service, ips: Sequence[IPAddr], plan: AllocationPlan) -> Service:
    """The Service with `clusterIP`, `clusterIPs`, `ipFamilies` and `ipFamilyPolicy` filled in."""
    texts = tuple(str(ip) for ip in ips)
    spec = msgspec.structs.replace(
        service.spec,
        cluster_ip=texts[0],
        cluster_ips=texts,
        ip_families=plan.families,
        ip_family_policy=plan.policy,
    )
    return msgspec.structs.replace(service, spec=spec)


# --- repair -----------------------------------------------------------------------------------

# What a repair pass can find: (the Kubernetes event reason, its message). The reasons are those
# of kube-apiserver's repair controller (`repairip.go`), which also reports a wrong reference
# as ClusterIPNotAllocated.
_FINDINGS: Final[Mapping[str, tuple[str, str]]] = {
    "not-valid": (
        "ClusterIPNotValid",
        "Cluster IP {ip} is not a valid IP; please recreate Service",
    ),
    "out-of-range": (
        "ClusterIPOutOfRange",
        "Cluster IP [{family}]: {ip} is not within any configured Service CIDR; "
        "please recreate service",
    ),
    "missing": ("ClusterIPNotAllocated", "Cluster IP [{family}]: {ip} is not allocated; repairing"),
    "wrong-reference": (
        "ClusterIPNotAllocated",
        "Cluster IP [{family}]: {ip} has a wrong reference ({other}); repairing",
    ),
    "duplicate": (
        "ClusterIPAlreadyAllocated",
        "Cluster IP [{family}]: {ip} was assigned to multiple services ({other}); "
        "please recreate service",
    ),
    "leaked": (
        "IPAddressNotAllocated",
        "IPAddress {ip} for {other} appears to have leaked: cleaning up",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairFinding:
    """One thing a repair pass noticed. `service` is `namespace/name` ("" for a leaked IP)."""

    reason: str
    ip: str
    service: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reparent:
    """Point a stored IPAddress at the Service that holds its IP: `new` is `old` with the new
    parentRef and our labels, to be written as an update at `old`'s resourceVersion (one atomic
    step: unlike delete-then-create, no other allocator can take the IP in between)."""

    old: IPAddress
    new: IPAddress


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairPlan:
    """What one repair pass should do, and what it found.

    `delete` holds the stored objects, so the shell can delete each at its resourceVersion (and
    leave it if it changed since the listing). `pending` are leaked IPAddresses still inside the
    grace period; `recheck_after` is the number of seconds until the first of them leaves it.
    """

    create: tuple[IPAddress, ...] = ()
    reparent: tuple[Reparent, ...] = ()
    delete: tuple[IPAddress, ...] = ()
    pending: tuple[str, ...] = ()
    recheck_after: float | None = None
    findings: tuple[RepairFinding, ...] = ()

    @property
    def changes(self) -> int:
        return len(self.create) + len(self.reparent) + len(self.delete)


def _finding(what: str, ip: str, service: str = "", other: str = "") -> RepairFinding:
    parsed = parse_ip(ip)
    family = _FAMILY_OF_VERSION[parsed.version] if parsed is not None else "?"
    reason, template = _FINDINGS[what]
    text = template.format(ip=ip, family=family, other=other)
    return RepairFinding(reason=reason, ip=ip, service=service, message=text)


def _key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def _age(obj: IPAddress, now: float) -> float:
    """Seconds since the object was created; unknown counts as infinitely old."""
    stamp = obj.metadata.creation_timestamp
    if not stamp:
        return float("inf")
    try:
        return now - parse_rfc3339(stamp)
    except ValueError:
        return float("inf")


def plan_repair(
    services: Sequence[Service],
    ipaddresses: Sequence[IPAddress],
    ranges: Sequence[ServiceRange],
    now: float,
    grace: float,
) -> RepairPlan:
    """Compare what Services hold with the IPAddress objects; decide the repairs.

    Rules, in order, for each ClusterIP of each Service (oldest Service first, so the older of
    two Services holding one IP is the one that keeps it when nothing records either):

    1. not an IP → ClusterIPNotValid, reported; outside every range → ClusterIPOutOfRange,
       reported. Neither is changed: only the user can fix them by recreating the Service.
    2. already claimed in this pass by another Service → ClusterIPAlreadyAllocated, reported.
    3. no IPAddress → create one for the Service (ClusterIPNotAllocated).
    4. the IPAddress names this Service → fine.
    5. it names another Service that exists and holds the IP → that one keeps it;
       ClusterIPAlreadyAllocated is reported for this one.
    6. it names something else (a missing Service, one that no longer holds the IP, not a
       Service) → point it at this Service (ClusterIPNotAllocated, "wrong reference").

    Then each IPAddress that our allocator manages, whose parent does not hold its IP and that
    no Service claimed above, is leaked: deleted when at least `grace` seconds old
    (IPAddressNotAllocated), else left `pending`. IPAddresses other controllers manage are left
    alone.
    """
    stored = {a.metadata.name: a for a in ipaddresses}
    holders: dict[tuple[str, str], set[str]] = {}
    for svc in services:
        held = {str(ip) for ip in map(parse_ip, service_cluster_ips(svc)) if ip is not None}
        holders[(svc.metadata.namespace, svc.metadata.name)] = held

    owner: dict[str, tuple[str, str]] = {}  # IP name -> the Service it stays with
    create: list[IPAddress] = []
    reparent: list[Reparent] = []
    findings: list[RepairFinding] = []

    ordered = sorted(
        services,
        key=lambda s: (s.metadata.creation_timestamp or "", s.metadata.namespace, s.metadata.name),
    )
    for svc in ordered:
        me = (svc.metadata.namespace, svc.metadata.name)
        who = _key(*me)
        for value in service_cluster_ips(svc):
            ip = parse_ip(value)
            if ip is None:
                findings.append(_finding("not-valid", value, who))
                continue
            name = str(ip)
            if locate(ip, ranges) is None:
                findings.append(_finding("out-of-range", name, who))
                continue
            if name in owner and owner[name] != me:
                findings.append(_finding("duplicate", name, who, _key(*owner[name])))
                continue
            if name in owner:
                continue  # listed twice in one Service; validation rejects that
            existing = stored.get(name)
            if existing is None:
                create.append(ip_address_object(ip, service_ref(*me)))
                owner[name] = me
                findings.append(_finding("missing", name, who))
                continue
            ref = existing.spec.parent_ref
            parent = _service_parent(ref)
            if parent is not None:
                if parent == me:
                    owner[name] = me
                    continue
                if name in holders.get(parent, ()):
                    owner[name] = parent
                    findings.append(_finding("duplicate", name, who, _key(*parent)))
                    continue
            reparent.append(Reparent(old=existing, new=_reparented(existing, service_ref(*me))))
            owner[name] = me
            findings.append(_finding("wrong-reference", name, who, _describe(ref)))

    delete: list[IPAddress] = []
    pending: list[str] = []
    recheck: float | None = None
    for obj in sorted(ipaddresses, key=lambda a: a.metadata.name):
        name = obj.metadata.name
        if name in owner or (obj.metadata.labels or {}).get(LABEL_MANAGED_BY) != MANAGED_BY:
            continue
        parent = _service_parent(obj.spec.parent_ref)
        if parent is not None and name in holders.get(parent, ()):
            continue  # held by its parent, e.g. an out-of-range IP: only reported above
        age = _age(obj, now)
        if age >= grace:
            delete.append(obj)
            findings.append(_finding("leaked", name, other=_describe(obj.spec.parent_ref)))
        else:
            pending.append(name)
            left = grace - age
            recheck = left if recheck is None else min(recheck, left)
    return RepairPlan(
        create=tuple(create),
        reparent=tuple(reparent),
        delete=tuple(delete),
        pending=tuple(pending),
        recheck_after=recheck,
        findings=tuple(findings),
    )


def _service_parent(ref: ParentReference | None) -> tuple[str, str] | None:
    """(namespace, name) of the Service a parentRef names; None if it names no Service."""
    if ref is None or ref.group != "" or ref.resource != "services":
        return None
    return ref.namespace, ref.name


def _reparented(obj: IPAddress, parent: ParentReference) -> IPAddress:
    ip = ipaddress.ip_address(obj.metadata.name)
    labels = {
        **(obj.metadata.labels or {}),
        LABEL_IP_FAMILY: _FAMILY_OF_VERSION[ip.version],
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    meta = msgspec.structs.replace(obj.metadata, labels=labels)
    return msgspec.structs.replace(obj, metadata=meta, spec=IPAddressSpec(parent_ref=parent))


def _describe(ref: ParentReference | None) -> str:
    if ref is None:
        return "no parent"
    if ref.group == "" and ref.resource == "services":
        return f"Service {ref.namespace}/{ref.name}"
    kind = f"{ref.resource}.{ref.group}" if ref.group else ref.resource
    where = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
    return f"{kind} {where}"
