"""core.pods: restarts and back-off, probe counting, container transitions, pod status, and the
environment, argv and resolv.conf a container gets.

Conventions: the pod `web-1` in `default` runs on node-1 (10.244.0.1 is the node's address
here, 10.244.0.5 the pod's); wall times are T0 (2026-01-01T00:00:00Z) plus seconds, written
`at(n)`; a container named `main` runs `sleep infinity` unless a case says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core import pods
from clusterip.core.pods import ContainerRuntimeState, ProbeState
from clusterip.core.timefmt import rfc3339
from clusterip.testing.builders import container_port, make_pod, make_service, port

T0 = 1767225600.0
POD_IP = "10.244.0.5"
HOST_IP = "10.244.0.1"


def at(seconds: float) -> str:
    return rfc3339(T0 + seconds)


def probe(**kwargs: object) -> m.Probe:
    fields: dict[str, object] = {"tcp_socket": m.TCPSocketAction(port=8080)}
    fields.update(kwargs)
    return m.Probe(**fields)  # type: ignore[arg-type]


def pod_with(*, restart_policy: str = "Always", readiness: m.Probe | None = None,
             containers: Sequence[str] = ("main",), deleting: bool = False) -> m.Pod:
    def mutate(pod: m.Pod) -> m.Pod:
        spec = msgspec.structs.replace(
            pod.spec, restart_policy=restart_policy,
            containers=tuple(m.Container(name=n, command=("sleep", "infinity"),
                                         readiness_probe=readiness) for n in containers))
        meta = pod.metadata
        if deleting:
            meta = msgspec.structs.replace(meta, deletion_timestamp=at(100))
        return msgspec.structs.replace(pod, spec=spec, metadata=meta)

    return make_pod("web-1", mutate=mutate)


def status_of(pod: m.Pod, states: Sequence[ContainerRuntimeState], now: float = 50
              ) -> m.PodStatus:
    return pods.pod_status(pod, states, pod_ip=POD_IP, host_ip=HOST_IP, start_time=at(0),
                           now=at(now))


def condition(status: m.PodStatus, kind: str) -> m.Condition:
    return next(c for c in status.conditions if c.type == kind)


def running(name: str = "main", *, probe: bool = False, ready: bool = False
            ) -> ContainerRuntimeState:
    state = pods.started(ContainerRuntimeState(name=name), 100, at(1), probe)
    if ready:
        state = pods.with_readiness(state, ProbeState(result=True, successes=1))
    return state


# --- restarts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "code", "restarts"), [
    pytest.param("Always", 0, True, id="always-success"),
    pytest.param("Always", 1, True, id="always-failure"),
    pytest.param("OnFailure", 0, False, id="onfailure-success"),
    pytest.param("OnFailure", 137, True, id="onfailure-killed"),
    pytest.param("Never", 0, False, id="never-success"),
    pytest.param("Never", 1, False, id="never-failure"),
    pytest.param("", 0, True, id="unset-is-always"),
    pytest.param("Sometimes", 1, False, id="unknown-policy-never"),
])
def test_should_restart(policy: str, code: int, restarts: bool) -> None:
    assert pods.should_restart(policy, code) is restarts


def test_back_off_doubles_from_10s_to_300s() -> None:
    delays = [pods.restart_delay(n, 1.0) for n in range(8)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    assert pods.restart_delay(10_000, 0) == 300


@pytest.mark.parametrize(("ran", "delay"), [
    pytest.param(599.0, 160.0, id="just-short-of-10-minutes"),
    pytest.param(600.0, 10.0, id="10-minutes-resets"),
    pytest.param(3600.0, 10.0, id="an-hour-resets"),
])
def test_back_off_resets_after_a_long_run(ran: float, delay: float) -> None:
    assert pods.restart_delay(4, ran) == delay


def crash(state: ContainerRuntimeState, *, ran: float, code: int = 1
          ) -> tuple[ContainerRuntimeState, float]:
    state = pods.exited(state, code, at(ran))
    return pods.back_off(state, ran)


def test_back_off_sequence_through_the_transitions_and_its_reset() -> None:
    state = ContainerRuntimeState(name="main")
    delays = []
    for _ in range(7):
        state = pods.started(pods.restarting(state), 1, at(0))
        state, delay = crash(state, ran=1)
        delays.append(delay)
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    assert state.restart_count == 6
    # A run of 10 minutes starts the row again; the restart count goes on.
    state = pods.started(pods.restarting(state), 1, at(0))
    state, delay = crash(state, ran=700)
    assert delay == 10
    state = pods.started(pods.restarting(state), 1, at(0))
    state, delay = crash(state, ran=1)
    assert (delay, state.restart_count) == (20, 8)


# --- probes -----------------------------------------------------------------------------------


def run(p: m.Probe, kind: str, results: str) -> list[bool]:
    """The probe's result after each run of `results` ("+" success, "-" failure)."""
    state = ProbeState.initial(kind)
    seen = []
    for r in results:
        state = pods.record(state, p, r == "+")
        seen.append(state.result)
    return seen


@pytest.mark.parametrize(("kind", "p", "results", "expected"), [
    pytest.param("readiness", probe(), "+", [True], id="readiness-one-success-ready"),
    pytest.param("readiness", probe(success_threshold=3), "++-+++",
                 [False, False, False, False, False, True], id="readiness-needs-3-in-a-row"),
    pytest.param("readiness", probe(), "+--+", [True, True, True, True],
                 id="two-failures-are-below-the-default-3"),
    pytest.param("readiness", probe(), "+---", [True, True, True, False],
                 id="not-ready-after-failure-threshold"),
    pytest.param("readiness", probe(failure_threshold=1, success_threshold=2), "+-++",
                 [False, False, False, True], id="back-after-success-threshold"),
    pytest.param("readiness", probe(), "--", [False, False], id="readiness-starts-false"),
    pytest.param("liveness", probe(), "--", [True, True], id="liveness-starts-alive"),
    pytest.param("liveness", probe(), "---", [True, True, False], id="liveness-dies-at-3"),
    pytest.param("liveness", probe(failure_threshold=0), "---", [True, True, False],
                 id="zero-threshold-is-the-default"),
])
def test_probe_thresholds(kind: str, p: m.Probe, results: str, expected: list[bool]) -> None:
    assert run(p, kind, results) == expected


def test_probe_state_is_steady_once_settled() -> None:
    p = probe(success_threshold=2)
    state = ProbeState.initial("readiness")
    for _ in range(5):
        state = pods.record(state, p, True)
    assert state == pods.record(state, p, True)


@pytest.mark.parametrize(("p", "started", "last", "now", "is_due"), [
    pytest.param(probe(), 0.0, None, 0.0, True, id="no-delay-first-run-at-once"),
    pytest.param(probe(initial_delay_seconds=5), 0.0, None, 4.9, False, id="in-initial-delay"),
    pytest.param(probe(initial_delay_seconds=5), 0.0, None, 5.0, True, id="after-initial-delay"),
    pytest.param(probe(), 0.0, 1.0, 10.9, False, id="within-default-period"),
    pytest.param(probe(), 0.0, 1.0, 11.0, True, id="default-period-10s"),
    pytest.param(probe(period_seconds=2), 0.0, 1.0, 3.0, True, id="period-2s"),
    pytest.param(probe(initial_delay_seconds=30), 100.0, 50.0, 120.0, False,
                 id="delay-counts-from-this-run"),
])
def test_due(p: m.Probe, started: float, last: float | None, now: float, is_due: bool) -> None:
    assert pods.due(p, started, last, now) is is_due


def test_probe_timings_defaults() -> None:
    t = pods.ProbeTimings.of(probe())
    assert (t.initial_delay, t.timeout, t.period, t.success_threshold, t.failure_threshold) == \
        (0, 1, 10, 1, 3)


# --- pod status: phases, conditions, container statuses -----------------------------------------


def never_started() -> list[ContainerRuntimeState]:
    return [ContainerRuntimeState(name="main")]


def crashed_always() -> list[ContainerRuntimeState]:
    state, _ = crash(running(), ran=5)
    return [state]


def crashed_twice() -> list[ContainerRuntimeState]:
    state, _ = crash(running(), ran=5)
    state = pods.started(pods.restarting(state), 101, at(20))
    state, _ = crash(state, ran=25)
    return [state]


def exited_for_good(code: int) -> Callable[[], list[ContainerRuntimeState]]:
    return lambda: [pods.exited(running(), code, at(9))]


def start_error(restart: bool) -> Callable[[], list[ContainerRuntimeState]]:
    def states() -> list[ContainerRuntimeState]:
        state = pods.start_failed(ContainerRuntimeState(name="main"),
                                  'exec: "nosuch": No such file or directory', at(1))
        if restart:
            state, _ = pods.back_off(state, 0)
        return [state]
    return states


READY = ProbeState(result=True, successes=1)

# (pod, container states) → phase, Ready, ContainersReady, main's state kind and reason.
STATUS_CASES = [
    pytest.param(pod_with(), never_started, "Pending", "False", "False",
                 "waiting", "ContainerCreating", 0, id="not-started"),
    pytest.param(pod_with(), lambda: [running()], "Running", "True", "True",
                 "running", "", 0, id="running-no-probe-is-ready"),
    pytest.param(pod_with(readiness=probe()), lambda: [running(probe=True)], "Running",
                 "False", "False", "running", "", 0, id="running-probe-not-yet-passed"),
    pytest.param(pod_with(readiness=probe()), lambda: [running(probe=True, ready=True)],
                 "Running", "True", "True", "running", "", 0, id="running-probe-passed"),
    pytest.param(pod_with(readiness=probe()), lambda: [running(probe=False, ready=False)],
                 "Running", "False", "False", "running", "", 0,
                 id="the-spec-says-it-has-a-probe"),
    pytest.param(pod_with(), crashed_always, "Running", "False", "False",
                 "waiting", "CrashLoopBackOff", 0, id="crashed-always-backing-off"),
    pytest.param(pod_with(), crashed_twice, "Running", "False", "False",
                 "waiting", "CrashLoopBackOff", 1, id="crashed-twice-restart-count-1"),
    pytest.param(pod_with(restart_policy="Never"), exited_for_good(0), "Succeeded", "False",
                 "False", "terminated", "Completed", 0, id="never-exit-0-succeeded"),
    pytest.param(pod_with(restart_policy="Never"), exited_for_good(1), "Failed", "False",
                 "False", "terminated", "Error", 0, id="never-exit-1-failed"),
    pytest.param(pod_with(restart_policy="OnFailure"), exited_for_good(0), "Succeeded",
                 "False", "False", "terminated", "Completed", 0, id="onfailure-exit-0"),
    pytest.param(pod_with(restart_policy="OnFailure"), crashed_always, "Running", "False",
                 "False", "waiting", "CrashLoopBackOff", 0, id="onfailure-restarting"),
    pytest.param(pod_with(restart_policy="Never"), start_error(False), "Failed", "False",
                 "False", "terminated", "StartError", 0, id="start-error-never-failed"),
    pytest.param(pod_with(), start_error(True), "Running", "False", "False",
                 "waiting", "RunContainerError", 0, id="start-error-always-waiting"),
    pytest.param(pod_with(deleting=True), lambda: [running()], "Running", "True", "True",
                 "running", "", 0, id="terminating-pod-stays-ready-while-probes-pass"),
    pytest.param(pod_with(deleting=True), exited_for_good(143), "Failed", "False", "False",
                 "terminated", "Error", 0, id="deleted-and-stopped-is-terminal"),
    pytest.param(pod_with(containers=("a", "b")), lambda: [running("a")], "Pending", "False",
                 "False", "running", "", 0, id="one-of-two-not-started"),
    pytest.param(pod_with(containers=("a", "b")),
                 lambda: [running("a"), crash(running("b"), ran=3)[0]],
                 "Running", "False", "False", "running", "", 0, id="one-of-two-crashed"),
]


@pytest.mark.parametrize(("pod", "states", "phase", "ready", "containers_ready", "kind",
                          "reason", "restarts"), STATUS_CASES)
def test_pod_status(pod: m.Pod, states: Callable[[], list[ContainerRuntimeState]], phase: str,
                    ready: str, containers_ready: str, kind: str, reason: str,
                    restarts: int) -> None:
    status = status_of(pod, states())
    assert status.phase == phase
    assert condition(status, "Ready").status == ready
    assert condition(status, "ContainersReady").status == containers_ready
    assert condition(status, "PodScheduled").status == "True"
    assert condition(status, "Initialized").status == "True"
    first = status.container_statuses[0]
    assert first.state is not None
    current = getattr(first.state, kind)
    assert current is not None
    assert getattr(current, "reason", "") == reason
    assert first.restart_count == restarts


def test_status_addresses_and_start_time() -> None:
    status = status_of(pod_with(), [running()])
    assert (status.pod_ip, status.pod_ips) == (POD_IP, (m.PodIP(ip=POD_IP),))
    assert (status.host_ip, status.host_ips) == (HOST_IP, (m.PodIP(ip=HOST_IP),))
    assert status.start_time == at(0)
    no_ip = pods.pod_status(pod_with(), never_started(), pod_ip="", host_ip=HOST_IP,
                            start_time=None, now=at(1))
    assert (no_ip.pod_ip, no_ip.pod_ips) == ("", ())


def test_container_status_fields() -> None:
    [state] = crashed_twice()
    state = pods.started(pods.restarting(state), 102, at(40), container_id="pid://102")
    s = status_of(pod_with(), [state]).container_statuses[0]
    assert (s.name, s.ready, s.started, s.restart_count, s.container_id) == \
        ("main", True, True, 2, "pid://102")
    assert s.state == m.ContainerState(running=m.ContainerStateRunning(started_at=at(40)))
    assert s.last_state is not None and s.last_state.terminated == m.ContainerStateTerminated(
        exit_code=1, reason="Error", started_at=at(20), finished_at=at(25))


def test_crash_loop_message_and_last_state() -> None:
    [state] = crashed_always()
    s = status_of(pod_with(), [state]).container_statuses[0]
    assert s.state == m.ContainerState(waiting=m.ContainerStateWaiting(
        reason="CrashLoopBackOff", message="back-off 10s restarting failed container=main"))
    assert s.last_state is not None and s.last_state.terminated is not None
    assert s.last_state.terminated.exit_code == 1


def test_start_error_carries_the_os_error() -> None:
    s = status_of(pod_with(), start_error(True)()).container_statuses[0]
    assert s.state is not None and s.state.waiting == m.ContainerStateWaiting(
        reason="RunContainerError", message='exec: "nosuch": No such file or directory')
    assert s.last_state is not None and s.last_state.terminated is not None
    assert (s.last_state.terminated.exit_code, s.last_state.terminated.reason) == \
        (128, "StartError")
    never = status_of(pod_with(restart_policy="Never"), start_error(False)())
    term = never.container_statuses[0].state
    assert term is not None and term.terminated is not None
    assert term.terminated.message == 'exec: "nosuch": No such file or directory'


def test_start_failure_found_after_start_is_the_same_run() -> None:
    state = pods.start_failed(running(), 'exec: "x": Exec format error', at(2))
    assert (state.running, state.restart_count) == (False, 0)
    assert state.last_termination is not None
    assert state.last_termination.reason == "StartError"
    again = pods.start_failed(pods.restarting(pods.back_off(state, 0)[0]), "same", at(20))
    assert again.restart_count == 1


def test_terminated_for_good_shows_the_run_before_as_last_state() -> None:
    [state] = crashed_always()
    state = pods.exited(pods.started(pods.restarting(state), 5, at(30)), 0, at(31))
    s = status_of(pod_with(restart_policy="OnFailure"), [state]).container_statuses[0]
    assert s.state is not None and s.state.terminated is not None
    assert s.state.terminated.exit_code == 0
    assert s.last_state is not None and s.last_state.terminated is not None
    assert s.last_state.terminated.exit_code == 1


def test_not_ready_conditions_name_the_containers() -> None:
    pod = pod_with(containers=("a", "b"))
    status = status_of(pod, [running("a"), ContainerRuntimeState(name="b")])
    c = condition(status, "ContainersReady")
    assert (c.reason, c.message) == ("ContainersNotReady", "containers with unready status: [b]")
    assert condition(status, "Ready").message == c.message


def test_terminal_phase_reasons() -> None:
    done = status_of(pod_with(restart_policy="Never"), exited_for_good(0)())
    assert condition(done, "Ready").reason == "PodCompleted"
    failed = status_of(pod_with(restart_policy="Never"), exited_for_good(2)())
    assert condition(failed, "ContainersReady").reason == "PodFailed"


def test_last_transition_time_kept_while_unchanged() -> None:
    pod = pod_with()
    first = status_of(pod, [running()], now=10)
    pod = msgspec.structs.replace(pod, status=first)
    same = status_of(pod, [running()], now=20)
    assert condition(same, "Ready").last_transition_time == at(10)
    pod = msgspec.structs.replace(pod, status=same)
    [crashed] = crashed_always()
    changed = status_of(pod, [crashed], now=30)
    assert condition(changed, "Ready").last_transition_time == at(30)
    assert condition(changed, "PodScheduled").last_transition_time == at(10)


def test_conditions_of_others_are_kept_and_readiness_gates_hold_ready() -> None:
    def gated(status: str | None) -> m.Pod:
        pod = pod_with()
        spec = msgspec.structs.replace(pod.spec, readiness_gates=({"conditionType": "x/lb"},))
        conditions = (m.Condition(type="x/lb", status=status),) if status else ()
        return msgspec.structs.replace(pod, spec=spec,
                                       status=m.PodStatus(conditions=conditions))

    missing = status_of(gated(None), [running()])
    assert condition(missing, "Ready").reason == "ReadinessGatesNotReady"
    assert condition(missing, "ContainersReady").status == "True"
    met = status_of(gated("True"), [running()])
    assert condition(met, "Ready").status == "True"
    assert condition(met, "x/lb").status == "True"


def test_readiness_results_after_exit_are_ignored() -> None:
    state = pods.exited(running(probe=True), 1, at(5))
    assert pods.with_readiness(state, READY) == state
    restarted = pods.started(running(probe=True, ready=True), 200, at(9))
    assert restarted.readiness == ProbeState.initial("readiness")


def test_status_encodes_like_kubernetes() -> None:
    status = status_of(pod_with(), [running()])
    doc = msgspec.json.decode(msgspec.json.encode(status))
    assert doc["containerStatuses"][0]["state"] == {"running": {"startedAt": at(1)}}
    assert doc["containerStatuses"][0]["lastState"] == {}
    assert doc["podIPs"] == [{"ip": POD_IP}]
    assert [c["type"] for c in doc["conditions"]] == \
        ["Initialized", "Ready", "ContainersReady", "PodScheduled"]


# --- service environment ----------------------------------------------------------------------

KUBERNETES = make_service("kubernetes", cluster_ip="10.96.0.1", ports=[port(443, 6443,
                                                                                name="https")])
REDIS = make_service("redis-master", cluster_ip="10.0.0.11", ports=[port(6379)])
REDIS_NAMED = make_service("redis-master", cluster_ip="10.0.0.11",
                           ports=[port(6379, name="redis"), port(9121, name="metrics")])


def test_redis_master_env_kubernetes_example() -> None:
    env = pods.service_env([REDIS], "default", True)
    assert env == {
        "REDIS_MASTER_SERVICE_HOST": "10.0.0.11",
        "REDIS_MASTER_SERVICE_PORT": "6379",
        "REDIS_MASTER_PORT": "tcp://10.0.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP": "tcp://10.0.0.11:6379",
        "REDIS_MASTER_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_MASTER_PORT_6379_TCP_PORT": "6379",
        "REDIS_MASTER_PORT_6379_TCP_ADDR": "10.0.0.11",
    }


def test_named_ports_get_service_port_names() -> None:
    env = pods.service_env([REDIS_NAMED], "default", True)
    assert env["REDIS_MASTER_SERVICE_PORT"] == "6379"
    assert env["REDIS_MASTER_SERVICE_PORT_REDIS"] == "6379"
    assert env["REDIS_MASTER_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_MASTER_PORT"] == "tcp://10.0.0.11:6379"
    assert env["REDIS_MASTER_PORT_9121_TCP_ADDR"] == "10.0.0.11"
    assert "REDIS_MASTER_PORT_9121" not in env


def test_udp_ipv6_and_odd_names() -> None:
    dns = make_service("kube-dns.v2", cluster_ip="fd00:10:96::a",
                       ports=[port(53, name="dns", protocol="UDP")])
    digit = make_service("3d", cluster_ip="10.96.0.30", ports=[port(80)])
    env = pods.service_env([dns, digit], "default", True)
    assert env["KUBE_DNS_V2_PORT"] == "udp://[fd00:10:96::a]:53"
    assert env["KUBE_DNS_V2_PORT_53_UDP_PROTO"] == "udp"
    assert env["_3D_SERVICE_HOST"] == "10.96.0.30"


@pytest.mark.parametrize(("links", "namespace", "expected"), [
    pytest.param(True, "default", {"KUBERNETES", "REDIS_MASTER"}, id="links-on"),
    pytest.param(False, "default", {"KUBERNETES"}, id="links-off-keeps-kubernetes"),
    pytest.param(True, "other", {"KUBERNETES", "LOCAL"}, id="only-the-pod-namespace"),
    pytest.param(False, "other", {"KUBERNETES"}, id="other-namespace-links-off"),
])
def test_which_services(links: bool, namespace: str, expected: set[str]) -> None:
    local = make_service("local", namespace="other", cluster_ip="10.96.0.50")
    headless = make_service("headless", cluster_ip="None")
    external = make_service("ext", mutate=lambda s: msgspec.structs.replace(
        s, spec=msgspec.structs.replace(s.spec, type="ExternalName", external_name="a.b")))
    unallocated = make_service("pending")
    env = pods.service_env([KUBERNETES, REDIS, local, headless, external, unallocated],
                           namespace, links)
    hosts = {k.removesuffix("_SERVICE_HOST") for k in env if k.endswith("_SERVICE_HOST")}
    assert hosts == expected
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    if expected == {"KUBERNETES"}:
        assert all(k.startswith("KUBERNETES_") for k in env)


def test_a_local_kubernetes_service_wins_in_its_namespace() -> None:
    local = make_service("kubernetes", namespace="other", cluster_ip="10.96.0.77")
    assert pods.service_env([local, KUBERNETES], "other", True)[
        "KUBERNETES_SERVICE_HOST"] == "10.96.0.77"
    assert pods.service_env([KUBERNETES, local], "other", True)[
        "KUBERNETES_SERVICE_HOST"] == "10.96.0.77"


def test_container_env_wins_expands_and_skips_value_from() -> None:
    container = m.Container(name="main", command=("sh",), env=(
        m.EnvVar(name="REDIS_MASTER_SERVICE_HOST", value="override"),
        m.EnvVar(name="URL",
                 value="redis://$(REDIS_MASTER_SERVICE_HOST):$(REDIS_MASTER_PORT_6379_TCP_PORT)"),
        m.EnvVar(name="LITERAL", value="$$(URL) $(MISSING) $ x"),
        m.EnvVar(name="SECRET", value_from={"secretKeyRef": {"name": "s", "key": "k"}}),
        m.EnvVar(name="POD_IP", value_from={"fieldRef": {"fieldPath": "status.podIP"}}),
        m.EnvVar(name="EMPTY"),
    ))
    services = pods.service_env([REDIS], "default", True)
    env = pods.container_env(container, services)
    assert env["REDIS_MASTER_SERVICE_HOST"] == "override"
    assert env["URL"] == "redis://override:6379"
    assert env["LITERAL"] == "$(URL) $(MISSING) $ x"
    assert env["EMPTY"] == ""
    assert "SECRET" not in env and "POD_IP" not in env
    assert env["REDIS_MASTER_PORT"] == "tcp://10.0.0.11:6379"
    fields = pods.pod_fields(make_pod("web-1", labels={"app": "web"}), pod_ip=POD_IP,
                             host_ip=HOST_IP)
    with_fields = pods.container_env(container, services, fields=fields)
    assert with_fields["POD_IP"] == POD_IP
    assert fields["metadata.labels['app']"] == "web"


def test_container_argv_expands_variables() -> None:
    container = m.Container(name="main", command=("sh", "-c"),
                            args=("echo $(GREETING) $$(GREETING) $HOME",))
    assert pods.container_argv(container, {"GREETING": "hi"}) == \
        ("sh", "-c", "echo hi $(GREETING) $HOME")


# --- resolv.conf and ports --------------------------------------------------------------------


def test_resolv_conf() -> None:
    assert pods.resolv_conf("shop") == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n"
    )
    assert pods.resolv_conf("a", nameserver="10.0.0.10", domain="corp").splitlines()[:2] == \
        ["search a.svc.corp svc.corp corp", "nameserver 10.0.0.10"]


MAIN = m.Container(name="main", ports=(container_port(8080, name="http"),))
SIDE = m.Container(name="side", ports=(container_port(9090, name="metrics"),
                                       container_port(9999, name="http")))


@pytest.mark.parametrize(("containers", "p", "expected"), [
    pytest.param(MAIN, 80, 80, id="number"),
    pytest.param(MAIN, "http", 8080, id="name"),
    pytest.param([MAIN, SIDE], "metrics", 9090, id="name-in-another-container"),
    pytest.param([MAIN, SIDE], "http", 8080, id="own-container-first"),
    pytest.param(MAIN, "nope", None, id="unknown-name"),
    pytest.param(MAIN, "8081", 8081, id="number-as-text"),
    pytest.param(MAIN, 0, None, id="zero"),
    pytest.param(MAIN, 70000, None, id="too-big"),
])
def test_resolve_port(containers: m.Container | list[m.Container], p: int | str,
                      expected: int | None) -> None:
    assert pods.resolve_port(containers, p) == expected
