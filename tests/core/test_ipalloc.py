"""Pure ClusterIP allocation logic: bands, candidate order, requests, the repair plan.

Addresses come from the shared plan: services in 10.96.0.0/12 (fd00:10:96::/112 for IPv6).
"""

from __future__ import annotations

import ipaddress
import itertools
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterip.core.errors import BadInput, Invalid
from clusterip.core.ipalloc import (
    LABEL_IP_FAMILY,
    LABEL_MANAGED_BY,
    MANAGED_BY,
    IPAddr,
    RepairPlan,
    ServiceRange,
    assign_cluster_ips,
    check_requested_ip,
    ip_address_object,
    locate,
    plan_allocation,
    plan_repair,
    range_offset,
    reserved_ip,
    service_cidr_object,
    service_cluster_ips,
    service_ref,
)
from clusterip.core.model import IPAddress, ParentReference, Service
from clusterip.core.timefmt import rfc3339
from clusterip.testing.builders import make_service

V4 = ServiceRange.parse("10.96.0.0/12")
V6 = ServiceRange.parse("fd00:10:96::/112")


def ip(text: str) -> IPAddr:
    return ipaddress.ip_address(text)


# --- bands ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidr", "offset", "static", "dynamic", "usable"),
    [
        pytest.param(
            "10.96.0.0/12",
            256,
            ("10.96.0.1", "10.96.1.0"),
            ("10.96.1.1", "10.111.255.254"),
            2**20 - 2,
            id="/12-default",
        ),
        # KEP-3070's worked examples: /16 → 256 (.0.1–.1.0), /22 → 64, /26 → 16.
        pytest.param(
            "10.96.0.0/16",
            256,
            ("10.96.0.1", "10.96.1.0"),
            ("10.96.1.1", "10.96.255.254"),
            65534,
            id="/16",
        ),
        pytest.param(
            "10.96.0.0/22",
            64,
            ("10.96.0.1", "10.96.0.64"),
            ("10.96.0.65", "10.96.3.254"),
            1022,
            id="/22",
        ),
        pytest.param(
            "10.96.0.0/26",
            16,
            ("10.96.0.1", "10.96.0.16"),
            ("10.96.0.17", "10.96.0.62"),
            62,
            id="/26",
        ),
        pytest.param(
            "10.96.0.0/27",
            16,
            ("10.96.0.1", "10.96.0.16"),
            ("10.96.0.17", "10.96.0.30"),
            30,
            id="/27-smallest-split",
        ),
        # 16 addresses or fewer: no split (kube-apiserver's calculateRangeOffset, `<= 16`).
        pytest.param("10.96.0.0/28", 0, None, ("10.96.0.1", "10.96.0.14"), 14, id="/28-no-split"),
        pytest.param("10.96.0.0/30", 0, None, ("10.96.0.1", "10.96.0.2"), 2, id="/30"),
        # IPv6: no broadcast address, so the last address is usable.
        pytest.param(
            "fd00:10:96::/112",
            256,
            ("fd00:10:96::1", "fd00:10:96::100"),
            ("fd00:10:96::101", "fd00:10:96::ffff"),
            65535,
            id="v6-/112",
        ),
        pytest.param(
            "fd00::/64",
            256,
            ("fd00::1", "fd00::100"),
            ("fd00::101", "fd00::ffff:ffff:ffff:ffff"),
            2**64 - 1,
            id="v6-/64",
        ),
    ],
)
def test_bands(
    cidr: str,
    offset: int,
    static: tuple[str, str] | None,
    dynamic: tuple[str, str],
    usable: int,
) -> None:
    r = ServiceRange.parse(cidr)
    assert r.offset == offset
    assert r.size == usable
    assert r.static_band == (None if static is None else (ip(static[0]), ip(static[1])))
    assert r.dynamic_band == (ip(dynamic[0]), ip(dynamic[1]))


@pytest.mark.parametrize(
    ("size", "offset"),
    [(8, 0), (16, 0), (32, 16), (256, 16), (512, 32), (1024, 64), (4096, 256), (2**20, 256)],
)
def test_range_offset_formula(size: int, offset: int) -> None:
    assert range_offset(size) == offset


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("10.96.0.0/31", "no usable address"),
        ("10.96.0.1/32", "no usable address"),
        ("10.96.0.1/24", "has host bits set"),
        ("fd00::/48", "shortest allowed IPv6 prefix is /64"),
        ("ten.ninety-six", "does not appear to be an IPv4 or IPv6 network"),
    ],
)
def test_bad_cidrs(text: str, why: str) -> None:
    with pytest.raises(BadInput, match=why):
        ServiceRange.parse(text)


def test_membership() -> None:
    assert V4.contains(ip("10.96.0.0")) and not V4.usable(ip("10.96.0.0"))
    assert V4.contains(ip("10.111.255.255")) and not V4.usable(ip("10.111.255.255"))
    assert V4.usable(ip("10.96.0.1")) and V4.usable(ip("10.111.255.254"))
    assert not V4.contains(ip("10.112.0.1"))
    assert not V4.contains(ip("fd00:10:96::1"))
    assert V4.index_of(ip("10.96.0.1")) == 0
    assert V4.index_of(ip("10.96.0.10")) == 9
    assert V4.address(9) == ip("10.96.0.10")
    assert V4.in_static_band(ip("10.96.1.0")) and not V4.in_static_band(ip("10.96.1.1"))
    assert V6.usable(ip("fd00:10:96::ffff"))
    # an IPv6 range makes IPv6 addresses even for small offsets
    assert V6.address(0) == ip("fd00:10:96::1")
    with pytest.raises(IndexError):
        V4.address(V4.size)
    assert locate(ip("fd00:10:96::5"), [V4, V6]) is V6
    assert locate(ip("10.96.0.0"), [V4, V6]) is None


# --- candidate order --------------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["10.96.0.0/26", "10.96.0.0/27", "10.96.0.0/28", "fd00::/120"])
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_candidates_cover_the_range_once_upper_band_first(cidr: str, seed: int) -> None:
    r = ServiceRange.parse(cidr)
    order = list(r.candidates(random.Random(seed)))
    assert len(order) == r.size
    assert {r.index_of(a) for a in order} == set(range(r.size))
    upper = order[: r.size - r.offset]
    lower = order[r.size - r.offset :]
    assert all(not r.in_static_band(a) for a in upper)
    assert all(r.in_static_band(a) for a in lower)
    # each band is one contiguous scan with wraparound from a random start
    for band, base, width in ((upper, r.offset, r.size - r.offset), (lower, 0, r.offset)):
        indexes = [r.index_of(a) for a in band]
        assert all(
            (b - base) == ((a - base) + 1) % width
            for a, b in itertools.pairwise(indexes)
            if a is not None and b is not None
        )


def test_candidates_are_lazy_on_huge_ranges() -> None:
    """A /12 (a million addresses) or an IPv6 /64 is never materialised."""
    for r in (V4, ServiceRange.parse("fd00::/64")):
        first = list(itertools.islice(r.candidates(random.Random(3)), 1000))
        assert len(set(first)) == 1000
        assert all(r.usable(a) and not r.in_static_band(a) for a in first)


def test_candidates_draw_from_the_rng() -> None:
    r = ServiceRange.parse("10.96.0.0/16")
    starts = {next(r.candidates(random.Random(seed))) for seed in range(50)}
    assert len(starts) > 40  # random starts, not a fixed one


def test_candidates_skip() -> None:
    r = ServiceRange.parse("10.96.0.0/28")
    taken = [ip("10.96.0.3"), ip("10.96.0.9"), ip("10.200.0.1")]  # out-of-range skip is ignored
    order = list(r.candidates(random.Random(5), skip=taken))
    assert len(order) == 12
    assert ip("10.96.0.3") not in order and ip("10.96.0.9") not in order


def test_candidate_indexes_consult_a_live_skip_set() -> None:
    """Indexes added to `skip` during the scan are left out from then on."""
    r = ServiceRange.parse("10.96.0.0/26")
    taken: set[int] = set()
    seen: list[int] = []
    for index in r.candidate_indexes(random.Random(9), skip=taken):
        assert index not in taken
        seen.append(index)
        taken.add(index + 1)  # mark the next address taken while the scan is on
    assert len(seen) == len(set(seen)) < r.size
    assert all(b != a + 1 for a, b in itertools.pairwise(seen))


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    prefix=st.sampled_from(
        [
            "10.0.0.0/30",
            "10.0.0.0/28",
            "10.0.0.0/27",
            "10.0.0.0/24",
            "10.0.0.0/22",
            "fd00::/124",
            "fd00::/119",
        ]
    ),
)
def test_any_seed_yields_a_permutation(seed: int, prefix: str) -> None:
    r = ServiceRange.parse(prefix)
    order = [r.index_of(a) for a in r.candidates(random.Random(seed))]
    assert sorted(i for i in order if i is not None) == list(range(r.size))
    assert all(i is not None and i >= r.offset for i in order[: r.size - r.offset])


# --- requested IPs and well-known addresses ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.96.0.50", None),
        ("10.111.255.254", None),
        (
            "10.112.0.1",
            'spec.clusterIPs[0]: Invalid value: "10.112.0.1": provided IP is not in the valid '
            "range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "10.96.0.0",
            'spec.clusterIPs[0]: Invalid value: "10.96.0.0": provided IP is not in the valid '
            "range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "10.111.255.255",
            'spec.clusterIPs[0]: Invalid value: "10.111.255.255": provided IP is not in the valid '
            "range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "fd00::1",
            'spec.clusterIPs[0]: Invalid value: "fd00::1": provided IP is not in the valid '
            "range. The range of valid IPs is 10.96.0.0/12",
        ),
        (
            "10.96.0.300",
            'spec.clusterIPs[0]: Invalid value: "10.96.0.300": must be a valid IP address, '
            "(e.g. 10.9.8.7 or 2001:db8::ffff)",
        ),
    ],
)
def test_check_requested_ip(value: str, message: str | None) -> None:
    errors = check_requested_ip(value, [V4])
    assert [str(e) for e in errors] == ([] if message is None else [message])


def test_check_requested_ip_in_the_brief_example() -> None:
    r = ServiceRange.parse("10.96.0.0/16")
    (error,) = check_requested_ip("10.97.0.1", [r])
    assert str(error) == (
        'spec.clusterIPs[0]: Invalid value: "10.97.0.1": provided IP is not in the valid range. '
        "The range of valid IPs is 10.96.0.0/16"
    )


def test_check_requested_ip_names_the_ranges_of_its_family() -> None:
    (error,) = check_requested_ip("fd00:10:97::1", [V4, V6], field="spec.clusterIPs[1]")
    assert error.field == "spec.clusterIPs[1]"
    assert error.detail.endswith("The range of valid IPs is fd00:10:96::/112")


@pytest.mark.parametrize(
    ("namespace", "name", "cidr", "expected"),
    [
        ("default", "kubernetes", "10.96.0.0/12", "10.96.0.1"),
        ("kube-system", "kube-dns", "10.96.0.0/12", "10.96.0.10"),
        ("kube-system", "kube-dns", "fd00:10:96::/112", "fd00:10:96::a"),
        ("default", "kube-dns", "10.96.0.0/12", None),
        ("kube-system", "kubernetes", "10.96.0.0/12", None),
        ("default", "web", "10.96.0.0/12", None),
        ("kube-system", "kube-dns", "10.96.0.0/29", None),  # only 6 usable addresses
    ],
)
def test_reserved_ip(namespace: str, name: str, cidr: str, expected: str | None) -> None:
    got = reserved_ip(namespace, name, ServiceRange.parse(cidr))
    assert got == (None if expected is None else ip(expected))


# --- planning an allocation -------------------------------------------------------------------


def _spec(svc: Service, **changes: object) -> Service:
    return msgspec.structs.replace(svc, spec=msgspec.structs.replace(svc.spec, **changes))


def test_plan_nothing_for_headless_and_external_name() -> None:
    headless = make_service("db", cluster_ip="None")
    external = _spec(make_service("ext"), type="ExternalName", external_name="example.com")
    headless_list = _spec(make_service("db2"), cluster_ips=("None",))
    for svc in (headless, external, headless_list):
        assert plan_allocation(svc, [V4]) is None
        assert service_cluster_ips(svc) == ()


def test_plan_default_is_single_stack_primary_family_dynamic() -> None:
    plan = plan_allocation(make_service("web"), [V4, V6])
    assert plan is not None
    assert plan.families == ("IPv4",) and plan.policy == "SingleStack"
    (req,) = plan.requests
    assert req.family == "IPv4" and req.ranges == (V4,) and req.requested is None


def test_plan_requested_ip_and_well_known() -> None:
    plan = plan_allocation(make_service("web", cluster_ip="10.96.0.50"), [V4])
    assert plan is not None and plan.requests[0].requested == ip("10.96.0.50")
    assert not plan.requests[0].well_known
    dns = plan_allocation(make_service("kube-dns", namespace="kube-system"), [V4])
    assert dns is not None and dns.requests[0].requested == ip("10.96.0.10")
    assert dns.requests[0].well_known


def test_plan_dual_stack() -> None:
    prefer = _spec(make_service("web"), ip_family_policy="PreferDualStack")
    plan = plan_allocation(prefer, [V4, V6])
    assert plan is not None and plan.families == ("IPv4", "IPv6")
    assert [r.ranges for r in plan.requests] == [(V4,), (V6,)]
    # PreferDualStack on a single-stack cluster quietly gets one family
    plan = plan_allocation(prefer, [V4])
    assert plan is not None and plan.families == ("IPv4",)
    v6_first = _spec(make_service("web"), ip_families=("IPv6",))
    plan = plan_allocation(v6_first, [V4, V6])
    assert plan is not None and plan.families == ("IPv6",)
    by_ip = make_service("web", cluster_ip="fd00:10:96::50")
    plan = plan_allocation(by_ip, [V4, V6])
    assert plan is not None and plan.families == ("IPv6",)


@pytest.mark.parametrize(
    ("changes", "messages"),
    [
        pytest.param(
            {"ip_families": ("IPv6",)},
            ['spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster'],
            id="family-not-configured",
        ),
        pytest.param(
            {"ip_family_policy": "RequireDualStack"},
            [
                'spec.ipFamilyPolicy: Invalid value: "RequireDualStack": this cluster is not '
                "configured for dual-stack services"
            ],
            id="require-dual-stack",
        ),
        pytest.param(
            {"ip_family_policy": "Sometimes"},
            [
                'spec.ipFamilyPolicy: Unsupported value: "Sometimes": supported values: '
                '"SingleStack", "PreferDualStack", "RequireDualStack"'
            ],
            id="bad-policy",
        ),
        pytest.param(
            {"cluster_ip": "10.96.0.5", "cluster_ips": ("10.96.0.6",)},
            ['spec.clusterIPs[0]: Invalid value: "10.96.0.6": must match clusterIP'],
            id="clusterIP-mismatch",
        ),
        pytest.param(
            {"cluster_ips": ("10.96.0.5", "10.96.0.6"), "ip_family_policy": "PreferDualStack"},
            [
                'spec.clusterIPs[1]: Invalid value: "10.96.0.6": may specify no more than one '
                "IP for each IP family"
            ],
            id="two-ips-one-family",
        ),
        pytest.param(
            {"cluster_ip": "10.112.0.1", "ip_families": ("IPv6",)},
            [
                'spec.ipFamilies[0]: Invalid value: "IPv6": not configured on this cluster',
                'spec.clusterIPs[0]: Invalid value: "10.112.0.1": expected an IPv6 value as '
                "indicated by `ipFamilies[0]`",
            ],
            id="every-error-at-once",
        ),
    ],
)
def test_plan_errors(changes: dict[str, object], messages: list[str]) -> None:
    with pytest.raises(Invalid) as caught:
        plan_allocation(_spec(make_service("web"), **changes), [V4])
    assert [str(e) for e in caught.value.errors] == messages
    assert caught.value.kind == "Service" and caught.value.name == "web"


def test_assign_cluster_ips() -> None:
    svc = make_service("web")
    plan = plan_allocation(svc, [V4])
    assert plan is not None
    out = assign_cluster_ips(svc, [ip("10.96.7.7")], plan)
    assert out.spec.cluster_ip == "10.96.7.7"
    assert out.spec.cluster_ips == ("10.96.7.7",)
    assert out.spec.ip_families == ("IPv4",)
    assert out.spec.ip_family_policy == "SingleStack"
    assert out.spec.ports == svc.spec.ports


def test_objects() -> None:
    obj = ip_address_object(ip("fd00:10:96::a"), service_ref("kube-system", "kube-dns"))
    assert obj.metadata.name == "fd00:10:96::a"
    assert obj.metadata.labels == {LABEL_IP_FAMILY: "IPv6", LABEL_MANAGED_BY: MANAGED_BY}
    assert obj.spec.parent_ref == ParentReference(
        group="", resource="services", namespace="kube-system", name="kube-dns"
    )
    cidr = service_cidr_object([V4, V6])
    assert cidr.metadata.name == "kubernetes"
    assert cidr.spec.cidrs == ("10.96.0.0/12", "fd00:10:96::/112")


# --- the repair plan --------------------------------------------------------------------------

NOW = 1767225600.0  # FakeClock's start


def svc(name: str, cluster_ip: str, *, namespace: str = "default", age: float = 100.0) -> Service:
    s = make_service(name, namespace=namespace, cluster_ip=cluster_ip)
    s = _spec(s, cluster_ips=(cluster_ip,))
    meta = msgspec.structs.replace(s.metadata, creation_timestamp=rfc3339(NOW - age))
    return msgspec.structs.replace(s, metadata=meta)


def addr(
    text: str,
    parent: tuple[str, str] | None,
    *,
    age: float = 100.0,
    managed: bool = True,
    ref: ParentReference | None = None,
) -> IPAddress:
    obj = ip_address_object(ip(text), service_ref(*parent) if parent else ParentReference())
    labels = obj.metadata.labels if managed else {"owner": "someone-else"}
    meta = msgspec.structs.replace(
        obj.metadata,
        labels=labels,
        creation_timestamp=rfc3339(NOW - age),
        resource_version="7",
    )
    spec = obj.spec if ref is None else msgspec.structs.replace(obj.spec, parent_ref=ref)
    return msgspec.structs.replace(obj, metadata=meta, spec=spec)


def reasons(plan: RepairPlan) -> list[tuple[str, str, str]]:
    return [(f.reason, f.ip, f.service) for f in plan.findings]


def test_repair_nothing_to_do() -> None:
    plan = plan_repair(
        [svc("web", "10.96.0.5"), make_service("db", cluster_ip="None")],
        [addr("10.96.0.5", ("default", "web"))],
        [V4],
        NOW,
        60.0,
    )
    assert plan.changes == 0 and plan.findings == () and plan.pending == ()


def test_repair_recreates_a_missing_ipaddress() -> None:
    plan = plan_repair([svc("web", "10.96.0.5")], [], [V4], NOW, 60.0)
    (created,) = plan.create
    assert created.metadata.name == "10.96.0.5"
    assert created.spec.parent_ref == service_ref("default", "web")
    assert reasons(plan) == [("ClusterIPNotAllocated", "10.96.0.5", "default/web")]
    assert plan.findings[0].message == "Cluster IP [IPv4]: 10.96.0.5 is not allocated; repairing"


@pytest.mark.parametrize(("age", "deleted"), [(59.0, False), (60.0, True), (3600.0, True)])
def test_repair_deletes_orphans_only_after_the_grace(age: float, deleted: bool) -> None:
    orphan = addr("10.96.0.9", ("default", "gone"), age=age)
    plan = plan_repair([], [orphan], [V4], NOW, 60.0)
    if deleted:
        assert plan.delete == (orphan,) and plan.pending == ()
        assert reasons(plan) == [("IPAddressNotAllocated", "10.96.0.9", "")]
        assert "default/gone" in plan.findings[0].message
    else:
        assert plan.delete == () and plan.pending == ("10.96.0.9",)
        assert plan.recheck_after == pytest.approx(1.0)
        assert plan.findings == ()


def test_repair_grace_zero_deletes_at_once() -> None:
    orphan = addr("10.96.0.9", ("default", "gone"), age=0.0)
    assert plan_repair([], [orphan], [V4], NOW, 0.0).delete == (orphan,)


def test_repair_ip_no_longer_held_by_its_parent_is_an_orphan() -> None:
    stale = addr("10.96.0.9", ("default", "web"))  # web now holds .5
    plan = plan_repair(
        [svc("web", "10.96.0.5")], [stale, addr("10.96.0.5", ("default", "web"))], [V4], NOW, 60
    )
    assert plan.delete == (stale,)


def test_repair_leaves_ipaddresses_of_other_managers_alone() -> None:
    foreign = addr("10.96.0.9", ("default", "gone"), managed=False)
    assert plan_repair([], [foreign], [V4], NOW, 0.0).changes == 0


def test_repair_timestamp_missing_counts_as_old() -> None:
    orphan = addr("10.96.0.9", ("default", "gone"))
    orphan = msgspec.structs.replace(
        orphan, metadata=msgspec.structs.replace(orphan.metadata, creation_timestamp=None)
    )
    assert plan_repair([], [orphan], [V4], NOW, 60.0).delete == (orphan,)


def test_repair_reports_duplicates_without_changing_them() -> None:
    older = svc("a", "10.96.0.5", age=500)
    newer = svc("b", "10.96.0.5", age=10)
    # nothing recorded: the older Service gets the IPAddress, the newer is reported
    plan = plan_repair([newer, older], [], [V4], NOW, 60.0)
    assert [o.spec.parent_ref for o in plan.create] == [service_ref("default", "a")]
    assert ("ClusterIPAlreadyAllocated", "10.96.0.5", "default/b") in reasons(plan)
    # recorded for the newer: it keeps it, the older is reported, nothing changes
    plan = plan_repair([newer, older], [addr("10.96.0.5", ("default", "b"))], [V4], NOW, 60.0)
    assert plan.changes == 0
    assert reasons(plan) == [("ClusterIPAlreadyAllocated", "10.96.0.5", "default/a")]
    assert "default/b" in plan.findings[0].message


def test_repair_reports_out_of_range_and_invalid() -> None:
    plan = plan_repair(
        [svc("old", "10.0.0.5"), svc("bad", "not-an-ip")],
        [addr("10.0.0.5", ("default", "old"))],
        [V4],
        NOW,
        60.0,
    )
    assert sorted(reasons(plan)) == [
        ("ClusterIPNotValid", "not-an-ip", "default/bad"),
        ("ClusterIPOutOfRange", "10.0.0.5", "default/old"),
    ]
    # reported, not changed: its IPAddress stays, since its parent still holds the IP
    assert plan.changes == 0


def test_repair_repoints_a_wrong_reference() -> None:
    wrong = addr("10.96.0.5", ("default", "gone"))
    not_a_service = addr(
        "10.96.0.6",
        None,
        ref=ParentReference(
            group="gateway.networking.k8s.io", resource="gateways", namespace="x", name="gw"
        ),
    )
    plan = plan_repair(
        [svc("web", "10.96.0.5"), svc("api", "10.96.0.6")],
        [wrong, not_a_service],
        [V4],
        NOW,
        60.0,
    )
    assert plan.create == () and plan.delete == ()
    by_name = {r.old.metadata.name: r for r in plan.reparent}
    assert by_name["10.96.0.5"].new.spec.parent_ref == service_ref("default", "web")
    assert by_name["10.96.0.6"].new.spec.parent_ref == service_ref("default", "api")
    # re-pointing keeps the stored identity, so the update is conditional on the listing
    assert by_name["10.96.0.5"].new.metadata.resource_version == "7"
    assert by_name["10.96.0.5"].new.metadata.name == "10.96.0.5"
    assert sorted(f.reason for f in plan.findings) == ["ClusterIPNotAllocated"] * 2


def test_repair_canonicalises_ip_names() -> None:
    plan = plan_repair(
        [svc("web", "fd00:10:96:0::a")],
        [addr("fd00:10:96::a", ("default", "web"))],
        [V6],
        NOW,
        60.0,
    )
    assert plan.changes == 0 and plan.findings == ()
