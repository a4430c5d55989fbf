"""The slim Pod the controllers cache plans exactly what the full Pod plans."""

from __future__ import annotations

import msgspec

from clusterip.core import model as m
from clusterip.core.endpoints import plan_slices
from clusterip.core.projections import PodSlimmer, slim_pod
from clusterip.testing.builders import container_port, make_pod, make_service, port


def full_pod(name: str, ip: str, ready: bool) -> m.Pod:
    pod = make_pod(name, labels={"app": "web"}, ip=ip, ready=ready,
                   ports=[container_port(8080, name="http")])
    container = msgspec.structs.replace(
        pod.spec.containers[0], env=(m.EnvVar(name="A", value="1"),),
        readiness_probe=m.Probe(tcp_socket=m.TCPSocketAction(port=8080)),
    )
    meta = msgspec.structs.replace(pod.metadata, uid=f"uid-{name}",
                                   annotations={"big": "x" * 10_000})
    return msgspec.structs.replace(
        pod, metadata=meta,
        spec=msgspec.structs.replace(pod.spec, containers=(container,), hostname=name,
                                     subdomain="web"),
    )


def test_slim_pod_drops_what_no_controller_reads() -> None:
    slim = slim_pod(full_pod("a", "10.244.0.5", True))
    assert slim.metadata.annotations is None
    assert slim.spec.containers[0].env == () and slim.spec.containers[0].readiness_probe is None
    assert slim.spec.containers[0].ports[0].name == "http"
    assert len(msgspec.json.encode(slim)) < 600


def test_endpoint_plans_are_the_same_for_slim_and_full_pods() -> None:
    service = make_service("web", selector={"app": "web"},
                           ports=[port(80, "http", name="http")])
    pods = [full_pod(f"p{i}", f"10.244.0.{i + 2}", ready=i % 2 == 0) for i in range(5)]

    def plan(ps: list[m.Pod]) -> object:
        return plan_slices(service, ps, [], new_suffix=lambda: "abcde", max_per_slice=100)

    assert plan([slim_pod(p) for p in pods]) == plan(pods)


def test_the_slimmer_equals_slim_pod_and_stores_equal_parts_once() -> None:
    slimmer = PodSlimmer()
    a, b = full_pod("a", "10.244.0.5", True), full_pod("b", "10.244.0.6", True)
    slim_a, slim_b = slimmer(a), slimmer(b)
    assert slim_a == slim_pod(a) and slim_b == slim_pod(b)
    c = full_pod("c", "10.244.0.7", True)
    c = msgspec.structs.replace(c, spec=msgspec.structs.replace(c.spec, hostname="a",
                                                                subdomain="web"))
    assert slimmer(c).spec is slim_a.spec  # the same slim spec as pod a: stored once
    assert slim_a.status.conditions is slim_b.status.conditions
    assert slim_a.metadata.namespace is slim_b.metadata.namespace
