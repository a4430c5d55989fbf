"""core.endpoints: which endpoints a Service has, and the fewest slice writes that publish them.

Covered: selection (selector, IP, phase, namespace), conditions (ready/serving/terminating,
publishNotReadyAddresses), hostname, named target ports resolved per pod, address families,
slicing at max_per_slice, and the planner's write-minimising rules (no-op on unchanged input,
one update per changed slice, fill before create, delete+create → update, foreign slices left
alone). Not covered here: the controller that applies plans (tests/control).

Conventions: pods are on node-1 with addresses PLAN.pod_ip(n) (10.244.0.x); services select
`app=web` in namespace "default"; new slice names come from a counter (`web-00001`, ...).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.endpoints import (
    ANNOTATION_TRIGGER_TIME,
    CONTROLLER_NAME,
    LABEL_MANAGED_BY,
    LABEL_SERVICE_NAME,
    SlicePlan,
    desired_endpoints,
    plan_slices,
)
from clusterip.testing.builders import (
    PLAN,
    container_port,
    make_endpoint_slice,
    make_pod,
    make_service,
    port,
    with_ready,
)

WEB = {"app": "web"}


def counter() -> Callable[[], str]:
    numbers = itertools.count(1)
    return lambda: f"{next(numbers):05d}"


def web_service(**kwargs: object) -> m.Service:
    svc = make_service("web", selector=WEB, ports=[port(80, 8080, name="http")])
    svc = msgspec.structs.replace(svc, metadata=msgspec.structs.replace(svc.metadata, uid="svc-1"))
    for key, value in kwargs.items():
        svc = msgspec.structs.replace(svc, spec=msgspec.structs.replace(svc.spec, **{key: value}))
    return svc


def web_pod(n: int, *, ready: bool = True, **kwargs: object) -> m.Pod:
    pod = make_pod(f"web-{n}", labels=WEB, ip=PLAN.pod_ip(n), ready=ready, **kwargs)  # type: ignore[arg-type]
    return msgspec.structs.replace(
        pod, metadata=msgspec.structs.replace(pod.metadata, uid=f"uid-{n}")
    )


def terminating(pod: m.Pod) -> m.Pod:
    meta = msgspec.structs.replace(pod.metadata, deletion_timestamp="2026-01-01T00:00:00Z")
    return msgspec.structs.replace(pod, metadata=meta)


def plan(
    service: m.Service | None,
    pods: Iterable[m.Pod],
    slices: Sequence[m.EndpointSlice] = (),
    *,
    max_per_slice: int = 100,
    suffix: Callable[[], str] | None = None,
) -> SlicePlan:
    return plan_slices(
        service, pods, slices, new_suffix=suffix or counter(), max_per_slice=max_per_slice
    )


class FakeSliceStore:
    """Applies plans the way the store would: assigns resourceVersions, keeps names."""

    def __init__(self) -> None:
        self.slices: dict[str, m.EndpointSlice] = {}
        self.revision = 0
        self.suffix = counter()  # one sequence for the store's life: names never collide

    def apply(self, p: SlicePlan) -> None:
        for sl in (*p.create, *p.update):
            if sl in p.create:
                assert sl.metadata.name not in self.slices
            else:
                stored = self.slices[sl.metadata.name]
                assert sl.metadata.resource_version == stored.metadata.resource_version
            self.revision += 1
            meta = msgspec.structs.replace(sl.metadata, resource_version=str(self.revision))
            self.slices[sl.metadata.name] = msgspec.structs.replace(sl, metadata=meta)
        for sl in p.delete:
            del self.slices[sl.metadata.name]

    def list(self) -> list[m.EndpointSlice]:
        return list(self.slices.values())


def reconcile(
    store: FakeSliceStore, service: m.Service | None, pods: Sequence[m.Pod], **kw: object
) -> SlicePlan:
    p = plan(service, pods, store.list(), suffix=store.suffix, **kw)  # type: ignore[arg-type]
    store.apply(p)
    return p


def addresses(sl: m.EndpointSlice) -> list[str]:
    return [e.addresses[0] for e in sl.endpoints]


def ip(n: int) -> str:
    return PLAN.pod_ip(n)


# --- the first plan -----------------------------------------------------------------------------


def test_three_ready_pods_make_one_slice() -> None:
    svc = web_service()
    p = plan(svc, [web_pod(3), web_pod(1), web_pod(2)])
    assert (len(p.create), p.update, p.delete) == (1, (), ())
    sl = p.create[0]
    assert sl.metadata.name == "web-00001"
    assert sl.metadata.namespace == "default"
    assert sl.metadata.labels == {
        LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME,
    }
    assert sl.metadata.owner_references == (
        m.OwnerReference(api_version="v1", kind="Service", name="web", uid="svc-1",
                         controller=True, block_owner_deletion=True),
    )
    assert sl.address_type == "IPv4"
    assert sl.ports == (m.EndpointPort(name="http", protocol="TCP", port=8080),)
    assert addresses(sl) == [ip(1), ip(2), ip(3)]  # sorted by IP, not by input order
    first = sl.endpoints[0]
    assert first.conditions == m.EndpointConditions(ready=True, serving=True, terminating=False)
    assert first.target_ref == m.ObjectReference(
        kind="Pod", namespace="default", name="web-1", uid="uid-1"
    )
    assert first.node_name == "node-1"
    assert first.hostname is None


def test_ips_sort_numerically_not_as_text() -> None:
    pods = [
        make_pod("a", labels=WEB, ip="10.244.0.10", ready=True),
        make_pod("b", labels=WEB, ip="10.244.0.9", ready=True),
    ]
    (sl,) = plan(web_service(), pods).create
    assert addresses(sl) == ["10.244.0.9", "10.244.0.10"]


@pytest.mark.parametrize(
    ("pod", "included"),
    [
        pytest.param(web_pod(1), True, id="ready-with-ip"),
        pytest.param(web_pod(1, ready=False), True, id="not-ready-still-listed"),
        pytest.param(make_pod("web-1", labels=WEB), False, id="no-ip"),
        pytest.param(make_pod("web-1", labels={"app": "db"}, ip=ip(1), ready=True), False,
                     id="other-labels"),
        pytest.param(make_pod("web-1", labels=None, ip=ip(1), ready=True), False,
                     id="no-labels"),
        pytest.param(make_pod("web-1", namespace="other", labels=WEB, ip=ip(1), ready=True),
                     False, id="other-namespace"),
        pytest.param(make_pod("web-1", labels={**WEB, "extra": "x"}, ip=ip(1), ready=True),
                     True, id="superset-of-selector"),
        pytest.param(web_pod(1, mutate=lambda p: msgspec.structs.replace(
            p, status=msgspec.structs.replace(p.status, phase="Succeeded"))), False,
            id="succeeded"),
        pytest.param(web_pod(1, mutate=lambda p: msgspec.structs.replace(
            p, status=msgspec.structs.replace(p.status, phase="Failed"))), False, id="failed"),
        pytest.param(make_pod("web-1", labels=WEB, ip="not-an-ip", ready=True), False,
                     id="garbage-ip"),
    ],
)
def test_which_pods_are_endpoints(pod: m.Pod, included: bool) -> None:
    groups = desired_endpoints(web_service(), [pod])
    found = [e for endpoints in groups.values() for e in endpoints]
    assert bool(found) == included


@pytest.mark.parametrize(
    ("ready", "deleting", "publish", "expected"),
    [
        pytest.param(True, False, False, (True, True, False), id="ready"),
        pytest.param(False, False, False, (False, False, False), id="not-ready"),
        pytest.param(True, True, False, (False, True, True), id="terminating-ready"),
        pytest.param(False, True, False, (False, False, True), id="terminating-not-ready"),
        pytest.param(False, False, True, (True, False, False), id="publish-not-ready"),
        pytest.param(True, True, True, (True, True, True), id="publish-terminating"),
    ],
)
def test_endpoint_conditions(
    ready: bool, deleting: bool, publish: bool, expected: tuple[bool, bool, bool]
) -> None:
    pod = web_pod(1, ready=ready)
    if deleting:
        pod = terminating(pod)
    svc = web_service(publish_not_ready_addresses=publish)
    ((endpoint,),) = desired_endpoints(svc, [pod]).values()
    c = endpoint.conditions
    assert (c.ready, c.serving, c.terminating) == expected


@pytest.mark.parametrize(
    ("hostname", "subdomain", "expected"),
    [
        pytest.param("web-0", "web", "web-0", id="subdomain-is-service"),
        pytest.param("web-0", "other", None, id="other-subdomain"),
        pytest.param("web-0", "", None, id="no-subdomain"),
        pytest.param("", "web", None, id="no-hostname"),
    ],
)
def test_hostname_only_when_subdomain_is_the_service(
    hostname: str, subdomain: str, expected: str | None
) -> None:
    pod = web_pod(1, mutate=lambda p: msgspec.structs.replace(
        p, spec=msgspec.structs.replace(p.spec, hostname=hostname, subdomain=subdomain)))
    ((endpoint,),) = desired_endpoints(web_service(), [pod]).values()
    assert endpoint.hostname == expected


# --- ports -------------------------------------------------------------------------------------


def test_named_target_port_is_resolved_per_pod() -> None:
    svc = make_service("web", selector=WEB, ports=[port(80, "http", name="http")])
    pods = [
        make_pod("a", labels=WEB, ip=ip(1), ready=True, ports=[container_port(8080, name="http")]),
        make_pod("b", labels=WEB, ip=ip(2), ready=True, ports=[container_port(8080, name="http")]),
        make_pod("c", labels=WEB, ip=ip(3), ready=True, ports=[container_port(9090, name="http")]),
        # the name exists only for UDP: it does not resolve for a TCP service port
        make_pod("d", labels=WEB, ip=ip(4), ready=True,
                 ports=[container_port(8080, name="http", protocol="UDP")]),
    ]
    p = plan(svc, pods)
    by_port = {sl.ports: addresses(sl) for sl in p.create}
    assert by_port == {
        (m.EndpointPort(name="http", protocol="TCP", port=8080),): [ip(1), ip(2)],
        (m.EndpointPort(name="http", protocol="TCP", port=9090),): [ip(3)],
        (): [ip(4)],  # left out of the "http" group, as Kubernetes does
    }


def test_a_pod_missing_one_named_port_is_grouped_without_it() -> None:
    svc = make_service("web", selector=WEB, ports=[
        port(80, 8080, name="http"), port(9000, "metrics", name="metrics"),
    ])
    pods = [
        make_pod("a", labels=WEB, ip=ip(1), ready=True,
                 ports=[container_port(9100, name="metrics")]),
        make_pod("b", labels=WEB, ip=ip(2), ready=True),
    ]
    by_port = {sl.ports: addresses(sl) for sl in plan(svc, pods).create}
    assert by_port == {
        (m.EndpointPort(name="http", protocol="TCP", port=8080),
         m.EndpointPort(name="metrics", protocol="TCP", port=9100)): [ip(1)],
        (m.EndpointPort(name="http", protocol="TCP", port=8080),): [ip(2)],
    }


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(None, 80, id="none-means-port"),
        pytest.param(8080, 8080, id="number"),
        pytest.param("8081", 8081, id="numeric-string"),
    ],
)
def test_numeric_target_ports(target: int | str | None, expected: int) -> None:
    svc = make_service("web", selector=WEB, ports=[
        m.ServicePort(name="", protocol="UDP", port=80, target_port=target)
    ])
    (sl,) = plan(svc, [web_pod(1)]).create
    assert sl.ports == (m.EndpointPort(name="", protocol="UDP", port=expected),)


def test_service_without_ports_gets_portless_slices() -> None:
    svc = msgspec.structs.replace(web_service(), spec=msgspec.structs.replace(
        web_service().spec, ports=()))
    (sl,) = plan(svc, [web_pod(1)]).create
    assert sl.ports == ()
    assert addresses(sl) == [ip(1)]


# --- address families --------------------------------------------------------------------------


def dual_stack(n: int) -> m.Pod:
    pod = web_pod(n)
    status = msgspec.structs.replace(
        pod.status, pod_ips=(m.PodIP(ip=ip(n)), m.PodIP(ip=f"fd00:10:244::{n:x}"))
    )
    return msgspec.structs.replace(pod, status=status)


def test_ipv6_pods_go_to_ipv6_slices() -> None:
    p = plan(web_service(), [dual_stack(1), web_pod(2)])
    by_type = {sl.address_type: addresses(sl) for sl in p.create}
    assert by_type == {"IPv4": [ip(1), ip(2)], "IPv6": ["fd00:10:244::1"]}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({"ip_families": ("IPv4",)}, {"IPv4"}, id="ipFamilies-v4"),
        pytest.param({"ip_families": ("IPv6",)}, {"IPv6"}, id="ipFamilies-v6"),
        pytest.param({"cluster_ip": "10.96.0.20"}, {"IPv4"}, id="clusterIP-v4"),
        pytest.param({"cluster_ips": ("10.96.0.20", "fd00:10:96::20")}, {"IPv4", "IPv6"},
                     id="clusterIPs-dual"),
        pytest.param({"cluster_ip": "None"}, {"IPv4", "IPv6"}, id="headless-any"),
    ],
)
def test_service_families_limit_address_types(spec: dict[str, object], expected: set[str]) -> None:
    svc = web_service(**spec)
    assert {sl.address_type for sl in plan(svc, [dual_stack(1)]).create} == expected


# --- slicing -----------------------------------------------------------------------------------


def test_250_pods_make_three_slices() -> None:
    pods = [web_pod(n) for n in range(250)]
    p = plan(web_service(), pods)
    assert [len(sl.endpoints) for sl in p.create] == [100, 100, 50]
    assert [sl.metadata.name for sl in p.create] == ["web-00001", "web-00002", "web-00003"]
    everything = [a for sl in p.create for a in addresses(sl)]
    assert everything == [ip(n) for n in range(250)]  # each IP once, in order


def test_max_per_slice_is_a_parameter() -> None:
    p = plan(web_service(), [web_pod(n) for n in range(7)], max_per_slice=3)
    assert [len(sl.endpoints) for sl in p.create] == [3, 3, 1]


def test_max_per_slice_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan(web_service(), [], max_per_slice=0)


# --- minimal writes ----------------------------------------------------------------------------


def test_unchanged_input_plans_nothing() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(250)]
    reconcile(store, web_service(), pods)
    assert not plan(web_service(), pods, store.list())
    assert not plan(web_service(), list(reversed(pods)), store.list())


def test_one_pod_turning_not_ready_updates_exactly_one_slice() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(250)]
    reconcile(store, web_service(), pods)
    pods[130] = with_ready(pods[130], False)
    p = reconcile(store, web_service(), pods)
    assert (p.create, p.delete) == ((), ())
    (updated,) = p.update
    (endpoint,) = [e for e in updated.endpoints if e.addresses == (ip(130),)]
    assert endpoint.conditions == m.EndpointConditions(ready=False, serving=False,
                                                       terminating=False)
    assert not plan(web_service(), pods, store.list())


def test_pod_relabelled_out_of_the_selector_leaves_its_slice() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(3)]
    reconcile(store, web_service(), pods)
    pods[1] = msgspec.structs.replace(
        pods[1], metadata=msgspec.structs.replace(pods[1].metadata, labels={"app": "other"})
    )
    p = reconcile(store, web_service(), pods)
    (updated,) = p.update
    assert addresses(updated) == [ip(0), ip(2)]


def test_last_endpoint_gone_deletes_the_slice() -> None:
    store = FakeSliceStore()
    reconcile(store, web_service(), [web_pod(1)])
    p = reconcile(store, web_service(), [])
    assert (p.create, p.update) == ((), ())
    assert [sl.metadata.name for sl in p.delete] == ["web-00001"]
    assert store.list() == []


def test_endpoint_order_in_a_stored_slice_does_not_cause_a_write() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(3)]
    reconcile(store, web_service(), pods)
    (sl,) = store.list()
    shuffled = msgspec.structs.replace(sl, endpoints=tuple(reversed(sl.endpoints)))
    assert not plan(web_service(), pods, [shuffled])


def test_annotations_are_kept_and_never_compared() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(3)]
    reconcile(store, web_service(), pods)
    (sl,) = store.list()
    stamped = msgspec.structs.replace(sl, metadata=msgspec.structs.replace(
        sl.metadata, annotations={ANNOTATION_TRIGGER_TIME: "2026-01-01T00:00:00.000000Z"}))
    assert not plan(web_service(), pods, [stamped])
    (updated,) = plan(web_service(), pods[:2], [stamped]).update
    assert updated.metadata.annotations == stamped.metadata.annotations


def test_removed_endpoint_makes_room_for_a_new_one_in_the_same_write() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(200)]
    reconcile(store, web_service(), pods)
    pods = [*pods[:50], *pods[51:], web_pod(200)]  # one pod replaced by another
    p = reconcile(store, web_service(), pods)
    assert (len(p.create), len(p.update), len(p.delete)) == (0, 1, 0)
    assert ip(200) in addresses(p.update[0])


def test_a_few_new_endpoints_fill_the_fullest_unchanged_slice_that_fits() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(17)]
    reconcile(store, web_service(), pods, max_per_slice=10)  # slices of 10 and 7
    p = reconcile(store, web_service(), [*pods, web_pod(50), web_pod(51)], max_per_slice=10)
    assert (len(p.create), len(p.update), len(p.delete)) == (0, 1, 0)
    assert len(p.update[0].endpoints) == 9


def test_more_new_endpoints_than_any_slice_has_room_for_make_a_new_slice() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(16)]
    reconcile(store, web_service(), pods, max_per_slice=10)  # slices of 10 and 6
    new = [web_pod(n) for n in range(50, 55)]  # 5 new: only 4 fit in the 6-slice
    p = reconcile(store, web_service(), [*pods, *new], max_per_slice=10)
    assert (len(p.create), len(p.update), len(p.delete)) == (1, 0, 0)
    assert addresses(p.create[0]) == [ip(n) for n in range(50, 55)]


def test_port_change_updates_slices_in_place() -> None:
    store = FakeSliceStore()
    pods = [web_pod(n) for n in range(3)]
    reconcile(store, web_service(), pods)
    (before,) = store.list()
    svc = web_service(ports=(port(80, 9090, name="http"),))
    p = reconcile(store, svc, pods)
    assert (len(p.create), len(p.update), len(p.delete)) == (0, 1, 0)
    (after,) = store.list()
    assert after.metadata.name == before.metadata.name
    assert after.ports == (m.EndpointPort(name="http", protocol="TCP", port=9090),)


def test_duplicate_endpoint_across_slices_is_removed_once() -> None:
    svc = web_service()
    managed = {LABEL_SERVICE_NAME: "web", LABEL_MANAGED_BY: CONTROLLER_NAME}
    owner = plan(svc, [web_pod(1)]).create[0].metadata.owner_references
    ports = (m.EndpointPort(name="http", protocol="TCP", port=8080),)
    want = desired_endpoints(svc, [web_pod(1), web_pod(2)])
    (endpoints,) = want.values()

    def stored(name: str, eps: tuple[m.Endpoint, ...]) -> m.EndpointSlice:
        return m.EndpointSlice(
            metadata=m.ObjectMeta(name=name, namespace="default", labels=managed,
                                  owner_references=owner, resource_version="7"),
            address_type="IPv4", endpoints=eps, ports=ports,
        )

    a = stored("web-a", (endpoints[0], endpoints[1]))
    b = stored("web-b", (endpoints[1],))
    p = plan(svc, [web_pod(1), web_pod(2)], [a, b])
    assert (p.create, p.update) == ((), ())
    assert [sl.metadata.name for sl in p.delete] == ["web-b"]


# --- which slices are ours ---------------------------------------------------------------------


def user_slice(name: str = "web-manual") -> m.EndpointSlice:
    return make_endpoint_slice(name, service="web", addresses=[ip(99)])


def test_selectorless_service_never_touches_its_slices() -> None:
    svc = make_service("web", ports=[port(80)])
    assert not plan(svc, [web_pod(1)], [user_slice()])


def test_empty_selector_counts_as_none() -> None:
    svc = make_service("web", selector={}, ports=[port(80)])
    assert not plan(svc, [web_pod(1)], [user_slice()])


def test_unmanaged_slices_are_ignored() -> None:
    p = plan(web_service(), [web_pod(1)], [user_slice()])
    assert (len(p.create), p.update, p.delete) == (1, (), ())


def test_gone_service_deletes_only_managed_slices() -> None:
    store = FakeSliceStore()
    reconcile(store, web_service(), [web_pod(n) for n in range(150)])
    p = plan(None, [], [*store.list(), user_slice()])
    assert sorted(sl.metadata.name for sl in p.delete) == ["web-00001", "web-00002"]
    assert (p.create, p.update) == ((), ())


def test_externalname_service_has_no_managed_slices() -> None:
    store = FakeSliceStore()
    reconcile(store, web_service(), [web_pod(1)])
    svc = web_service(type="ExternalName", external_name="example.com")
    p = plan(svc, [web_pod(1)], [*store.list(), user_slice()])
    assert [sl.metadata.name for sl in p.delete] == ["web-00001"]
    assert (p.create, p.update) == ((), ())


def test_slices_of_an_earlier_service_with_the_same_name_are_replaced() -> None:
    store = FakeSliceStore()
    reconcile(store, web_service(), [web_pod(1)])
    reborn = msgspec.structs.replace(
        web_service(), metadata=msgspec.structs.replace(web_service().metadata, uid="svc-2")
    )
    p = plan(reborn, [web_pod(1)], store.list())
    assert [sl.metadata.name for sl in p.delete] == ["web-00001"]
    (created,) = p.create
    assert created.metadata.owner_references[0].uid == "svc-2"


def test_managed_slice_without_owner_is_adopted_and_fixed() -> None:
    store = FakeSliceStore()
    reconcile(store, web_service(), [web_pod(1)])
    (sl,) = store.list()
    orphan = msgspec.structs.replace(
        sl, metadata=msgspec.structs.replace(sl.metadata, owner_references=())
    )
    (fixed,) = plan(web_service(), [web_pod(1)], [orphan]).update
    assert fixed.metadata.owner_references == sl.metadata.owner_references
    assert fixed.metadata.name == sl.metadata.name


def test_plan_is_falsy_only_when_empty() -> None:
    assert not SlicePlan()
    assert SlicePlan(delete=(user_slice(),)).writes == 1
