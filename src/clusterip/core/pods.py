"""The life of a pod on its node, as Kubernetes' kubelet lives it: pure rules, no processes.

The node agent (`runtime.agent`) runs the processes; this module decides everything about them
that is policy: whether an exited container restarts and after how long, when a probe is due and
what its results add up to, what the pod's `status` says, and what environment, argv and
resolv.conf a container gets. Values in, values out: no clocks (times are passed in, wall times
as RFC 3339 text, intervals as monotonic seconds), no processes, no sockets, no files.

Rule 1: every rule the agent applies to a container's life lives in this file, in the tables
below. Rule 2: this file does not know how a process is run; it is told what happened.

A container's life (one `ContainerRuntimeState` per container, changed only by the transition
functions below, each returning a new value)::

    state \\ event   started()     exited()       start_failed()     back_off()       restarting()
    ─────────────────────────────────────────────────────────────────────────────────────────────
    creating        running       ·              terminated         ·                ·
    running         ·             terminated     terminated (1)     ·                ·
    terminated      ·             ·              ·                  backing-off      ·
    backing-off     running       ·              terminated         ·                creating

    creating     waiting "ContainerCreating"; never ran (or a restart is being created)
    running      running since `started_at`; ready per its readiness probe
    terminated   the latest run ended (`last_termination`) and, so far, is not restarting
    backing-off  waiting "CrashLoopBackOff" after an exit, or "RunContainerError" after a
                 command that could not start, until the back-off delay has passed

    (1) under `ip netns exec` a missing program shows only when `ip` exits: the run that was
        recorded as started is that failed run (it is not counted twice).

The agent's loop per container is: start → `started` (or `start_failed`) → the process exits →
`exited` → if `should_restart(policy, exit_code)`: `back_off` → wait the delay → `restarting` →
start again; otherwise the container stays terminated. A command that cannot start is recorded
the way containerd records it: a terminated run with reason `StartError` and exit code 128.
`restartCount` counts the runs after the first (a new run after any earlier one, started or not).
The functions are total (an unexpected order still gives a well-defined value), because a status
must always be computable; the table is the order the agent uses.

Restarts (Kubernetes' restart policy and back-off; `pkg/kubelet/kuberuntime`)::

    restartPolicy   restart after exit code 0   after exit code ≠ 0
    Always          yes                          yes
    OnFailure       no                           yes
    Never           no                           no

    back-off delay = 10 s · 2^n, at most 300 s, where n = restarts in a row so far
    (`ContainerRuntimeState.backoff_step`); a run of ≥ 600 s starts the row again at 10 s.

Probes (`ProbeState`, `record`, `due`): a result flips only after `successThreshold` successes
in a row (to success) or `failureThreshold` failures in a row (to failure). Readiness (and
startup) start as failure, liveness as success, and each new run of the container starts afresh.
A probe is due `initialDelaySeconds` after the run started and then every `periodSeconds` after
the previous run (Kubernetes waits for its next ticker tick after the initial delay; clusterip
probes at once, so a pod is ready as soon as it can be). Unset or 0 fields take the API's
defaults (`core.defaults.PROBE`).

Pod status (`pod_status`): the phase is Kubernetes' `getPhase` (`pkg/kubelet/kubelet_pods.go`).
Each container counts as one of::

    container state                              counts as
    running                                      running
    creating (waiting, never ran)                waiting
    backing-off (waiting after a run)            stopped
    terminated                                   stopped, and succeeded if its exit code is 0

    counts                                       phase
    any waiting                                  Pending
    any running                                  Running
    all stopped, pod deleting (terminal)         Succeeded if all succeeded, else Failed
    all stopped, restartPolicy Always            Running   (they are restarting)
    all stopped, all succeeded                   Succeeded
    all stopped, restartPolicy Never             Failed
    all stopped, restartPolicy OnFailure         Running   (the failed ones are restarting)

So a command that cannot start fails the pod under `Never`, and shows as a waiting
`RunContainerError` (with the OS error) in a Running pod under `Always`/`OnFailure`.

Conditions: PodScheduled is True (the agent only sees pods bound to it); Initialized is True
(clusterip runs no init containers); ContainersReady is True when every container is ready; Ready
is ContainersReady, further held False by unmet readiness gates. As a kubelet does, a terminating
pod (one with a `deletionTimestamp`) stays Ready while its probes pass: the endpoints controller
marks its endpoint `ready: false, serving: true, terminating: true`, so no new traffic is sent
to it while kube-proxy-like proxies may still use serving terminating endpoints as a last resort,
and connections drain until its processes stop. A container
is ready when it is running and either has no readiness probe or its probe passes. In a
Succeeded or Failed pod both are False with reason PodCompleted or PodFailed. A condition whose
status did not change keeps its `lastTransitionTime`; conditions of other types (a readiness
gate's, set by someone else) are kept as they were.

Service environment (`service_env`, Kubernetes' `pkg/kubelet/envvars`): for each service with a
cluster IP (not headless, not ExternalName) in the pod's namespace, when `enableServiceLinks`,
and for `kubernetes` in `default` always::

    REDIS_MASTER_SERVICE_HOST=10.0.0.11          REDIS_MASTER_PORT=tcp://10.0.0.11:6379
    REDIS_MASTER_SERVICE_PORT=6379               REDIS_MASTER_PORT_6379_TCP=tcp://10.0.0.11:6379
    REDIS_MASTER_SERVICE_PORT_<NAME>=6379        REDIS_MASTER_PORT_6379_TCP_PROTO=tcp
    (one per named port)                         REDIS_MASTER_PORT_6379_TCP_PORT=6379
                                                 REDIS_MASTER_PORT_6379_TCP_ADDR=10.0.0.11

The container's own `env` wins over these, and its values may refer to earlier variables and
to the service variables as `$(NAME)` (`$$` escapes a `$`), as may `command` and `args`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from clusterip.core import defaults, model

__all__ = [
    "BACKOFF_INITIAL_SECONDS",
    "BACKOFF_MAX_SECONDS",
    "BACKOFF_RESET_SECONDS",
    "BASE_PATH",
    "START_ERROR_EXIT_CODE",
    "ContainerRuntimeState",
    "ProbeState",
    "ProbeTimings",
    "Termination",
    "back_off",
    "container_argv",
    "container_env",
    "container_is_ready",
    "due",
    "exited",
    "expand",
    "pod_fields",
    "pod_status",
    "record",
    "resolv_conf",
    "resolve_port",
    "restart_delay",
    "restarting",
    "service_env",
    "should_restart",
    "start_failed",
    "started",
    "with_readiness",
]

# --- restarts ---------------------------------------------------------------------------------

# restartPolicy → does a container that exited with this code restart?
_RESTARTS: dict[str, Callable[[int], bool]] = {
    "Always": lambda code: True,
    "OnFailure": lambda code: code != 0,
    "Never": lambda code: False,
}

BACKOFF_INITIAL_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
BACKOFF_RESET_SECONDS = 600.0
START_ERROR_EXIT_CODE = 128
"""The exit code of a run whose command could not start (containerd's `StartError`)."""

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH a container starts with unless its `env` sets one."""


def should_restart(restart_policy: str, exit_code: int) -> bool:
    """Does a container that exited with `exit_code` restart under `restart_policy`?

    An empty policy is the API default, Always. An unknown one (validation refuses it) restarts
    nothing.
    """
    rule = _RESTARTS.get(restart_policy or "Always")
    return rule(exit_code) if rule is not None else False


def restart_delay(restart_count: int, ran_seconds: float) -> float:
    """Kubernetes' back-off before restarting a container.

    Args:
        restart_count: restarts in a row so far (`ContainerRuntimeState.backoff_step`: it starts
            again from 0 after a long run, where the pod's `restartCount` never does).
        ran_seconds: how long the run that just ended lasted.

    Returns:
        10 s doubled per restart in a row, at most 300 s; 10 s after a run of ≥ 600 s.
    """
    if ran_seconds >= BACKOFF_RESET_SECONDS or restart_count <= 0:
        return BACKOFF_INITIAL_SECONDS
    # Past 16 doublings the cap has long won; stopping there keeps the number small.
    doublings = min(restart_count, 16)
    return min(BACKOFF_INITIAL_SECONDS * (1 << doublings), BACKOFF_MAX_SECONDS)


def _go_duration(seconds: float) -> str:
    """A delay the way Go prints a `time.Duration` (`10s`, `1m20s`, `5m0s`), as in the
    kubelet's back-off message."""
    if seconds != int(seconds) or seconds < 0:
        return f"{seconds:g}s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# --- probes -----------------------------------------------------------------------------------

# A probe kind → the result it has before its first thresholds are met.
_INITIAL_RESULT = {"readiness": False, "liveness": True, "startup": False}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeTimings:
    """A probe's numbers with the API's defaults for unset (or 0) fields."""

    initial_delay: float
    timeout: float
    period: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: model.Probe) -> ProbeTimings:
        def number(value: int | None, name: str) -> int:
            return value if value else int(defaults.PROBE[name])

        return cls(
            initial_delay=float(max(probe.initial_delay_seconds or 0, 0)),
            timeout=float(number(probe.timeout_seconds, "timeout_seconds")),
            period=float(number(probe.period_seconds, "period_seconds")),
            success_threshold=number(probe.success_threshold, "success_threshold"),
            failure_threshold=number(probe.failure_threshold, "failure_threshold"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeState:
    """What a probe says now, and the runs in a row behind it.

    `successes` and `failures` are consecutive counts, capped at their threshold so that a
    steady probe gives equal states (and the agent writes no status for them).
    """

    result: bool
    successes: int = 0
    failures: int = 0

    @classmethod
    def initial(cls, kind: str) -> ProbeState:
        """The state of a `kind` probe ("readiness", "liveness", "startup") before any run."""
        return cls(result=_INITIAL_RESULT[kind])


def record(state: ProbeState, probe: model.Probe, ok: bool) -> ProbeState:
    """The probe state after one more run that succeeded (`ok`) or failed."""
    timings = ProbeTimings.of(probe)
    if ok:
        successes = min(state.successes + 1, timings.success_threshold)
        result = True if successes >= timings.success_threshold else state.result
        return ProbeState(result=result, successes=successes, failures=0)
    failures = min(state.failures + 1, timings.failure_threshold)
    result = False if failures >= timings.failure_threshold else state.result
    return ProbeState(result=result, successes=0, failures=failures)


def due(
    probe: model.Probe, started_at_mono: float, last_run_mono: float | None, now_mono: float
) -> bool:
    """Should the probe run now?

    Args:
        probe: the probe.
        started_at_mono: when the container's current run started (monotonic seconds).
        last_run_mono: when the probe last ran in this run, None if it has not.
        now_mono: now (monotonic seconds).
    """
    timings = ProbeTimings.of(probe)
    if now_mono < started_at_mono + timings.initial_delay:
        return False
    return last_run_mono is None or now_mono - last_run_mono >= timings.period


# --- one container's life -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Termination:
    """How a run of a container ended (the API's `ContainerStateTerminated`)."""

    exit_code: int
    reason: str
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None


_CREATING = "ContainerCreating"
_CRASH_LOOP = "CrashLoopBackOff"
_RUN_ERROR = "RunContainerError"
_START_ERROR = "StartError"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerRuntimeState:
    """What the agent knows of one container; see the module docstring for its transitions.

    Attributes:
        name: the container's name.
        running: a process of it runs now.
        pid: that process, when running.
        started_at: when the current (or latest) run started, RFC 3339.
        restart_count: runs after the first one (the status' `restartCount`).
        backoff_step: restarts in a row without a long run: `restart_delay`'s first argument.
        last_termination: how the latest run ended (None: none has).
        previous_termination: how the run before it ended (a terminated container's
            `lastState`).
        waiting_reason: when not running and not terminated for good, why
            ("ContainerCreating", "CrashLoopBackOff", "RunContainerError"); "" otherwise.
        waiting_message: the message to go with it.
        readiness: the readiness probe's state in the current run.
        has_readiness_probe: the container has a readiness probe (so is not ready until it
            passes).
        container_id: what the status shows as `containerID` ("" for none).
    """

    name: str
    running: bool = False
    pid: int | None = None
    started_at: str | None = None
    restart_count: int = 0
    backoff_step: int = 0
    last_termination: Termination | None = None
    previous_termination: Termination | None = None
    waiting_reason: str = _CREATING
    waiting_message: str = ""
    readiness: ProbeState = field(default_factory=lambda: ProbeState.initial("readiness"))
    has_readiness_probe: bool = False
    container_id: str = ""


def _next_run_count(state: ContainerRuntimeState) -> int:
    """The restartCount of a new run: one more than the last, if any run came before."""
    had_run = state.running or state.last_termination is not None
    return state.restart_count + 1 if had_run else state.restart_count


def started(
    state: ContainerRuntimeState,
    pid: int,
    at: str,
    has_readiness_probe: bool | None = None,
    *,
    container_id: str = "",
) -> ContainerRuntimeState:
    """A new run has started (process `pid`, at wall time `at`); its probes start afresh."""
    return replace(
        state,
        running=True,
        pid=pid,
        started_at=at,
        restart_count=_next_run_count(state),
        waiting_reason="",
        waiting_message="",
        readiness=ProbeState.initial("readiness"),
        has_readiness_probe=(
            state.has_readiness_probe if has_readiness_probe is None else has_readiness_probe
        ),
        container_id=container_id,
    )


def _ended(state: ContainerRuntimeState, termination: Termination) -> ContainerRuntimeState:
    return replace(
        state,
        running=False,
        pid=None,
        waiting_reason="",
        waiting_message="",
        readiness=ProbeState.initial("readiness"),
        last_termination=termination,
        previous_termination=state.last_termination,
    )


def exited(
    state: ContainerRuntimeState, exit_code: int, at: str, *, reason: str = "", message: str = ""
) -> ContainerRuntimeState:
    """The running process ended with `exit_code` at `at`: the container is terminated (until
    `back_off`, if it restarts).

    `reason` defaults to Kubernetes' "Completed" (exit code 0) or "Error".
    """
    termination = Termination(
        exit_code=exit_code,
        reason=reason or ("Completed" if exit_code == 0 else "Error"),
        message=message,
        started_at=state.started_at,
        finished_at=at,
    )
    return _ended(state, termination)


def start_failed(
    state: ContainerRuntimeState, message: str, at: str | None = None
) -> ContainerRuntimeState:
    """The command could not start (`message`: the OS error): a run that ended at once, with
    reason StartError and exit code 128; it counts as a run for `restartCount`.

    Also valid on a running container: a run recorded as `started` whose program then turned
    out not to exist (`ip netns exec` reports that only when it exits) is that same run.
    """
    count = state.restart_count if state.running else _next_run_count(state)
    state = replace(state, restart_count=count, started_at=at)
    termination = Termination(
        exit_code=START_ERROR_EXIT_CODE,
        reason=_START_ERROR,
        message=message,
        started_at=at,
        finished_at=at,
    )
    return _ended(state, termination)


def back_off(
    state: ContainerRuntimeState, ran_seconds: float
) -> tuple[ContainerRuntimeState, float]:
    """The container will restart: how long to wait first, and its waiting state meanwhile.

    Args:
        state: a terminated container (after `exited` or `start_failed`).
        ran_seconds: how long its last run lasted (0 for a start failure).

    Returns:
        (the state, waiting "CrashLoopBackOff" with Kubernetes' message, or
        "RunContainerError" with the OS error after a start failure; the delay in seconds).
    """
    step = 0 if ran_seconds >= BACKOFF_RESET_SECONDS else state.backoff_step
    delay = restart_delay(step, ran_seconds)
    last = state.last_termination
    if last is not None and last.reason == _START_ERROR:
        reason, message = _RUN_ERROR, last.message
    else:
        reason = _CRASH_LOOP
        message = f"back-off {_go_duration(delay)} restarting failed container={state.name}"
    new = replace(
        state, waiting_reason=reason, waiting_message=message, backoff_step=step + 1
    )
    return new, delay


def restarting(state: ContainerRuntimeState) -> ContainerRuntimeState:
    """The back-off is over and a new run is being created."""
    return replace(state, running=False, pid=None, waiting_reason=_CREATING, waiting_message="")


def with_readiness(state: ContainerRuntimeState, probe_state: ProbeState) -> ContainerRuntimeState:
    """The container with its readiness probe's new state (ignored unless it runs: a result
    that arrives after the process ended says nothing about the next run)."""
    if not state.running or state.readiness == probe_state:
        return state
    return replace(state, readiness=probe_state)


def container_is_ready(state: ContainerRuntimeState, container: model.Container | None = None
                       ) -> bool:
    """Running, and either without a readiness probe or with one that passes."""
    probed = state.has_readiness_probe or (
        container is not None and container.readiness_probe is not None
    )
    return state.running and (not probed or state.readiness.result)


# --- pod status -------------------------------------------------------------------------------

_TERMINAL = frozenset({"Succeeded", "Failed"})

# How each container state counts for the phase (see the module docstring).
_RUNNING, _WAITING, _STOPPED = "running", "waiting", "stopped"

# (restartPolicy, every stopped container succeeded) → phase, when every container stopped.
_ALL_STOPPED_PHASE = {
    ("Always", True): "Running",
    ("Always", False): "Running",
    ("OnFailure", True): "Succeeded",
    ("OnFailure", False): "Running",
    ("Never", True): "Succeeded",
    ("Never", False): "Failed",
}
# A deleted pod whose containers all stopped will not restart them, whatever the policy.
_TERMINAL_PHASE = {True: "Succeeded", False: "Failed"}
_TERMINAL_REASON = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}

_OWN_CONDITIONS = ("Initialized", "Ready", "ContainersReady", "PodScheduled")


def _counts_as(state: ContainerRuntimeState) -> str:
    if state.running:
        return _RUNNING
    # Never ran: waiting to be created. Ran before: backing off, or terminated for good.
    return _WAITING if state.last_termination is None else _STOPPED


def _succeeded(state: ContainerRuntimeState) -> bool:
    """Terminated for good with exit code 0 (a container backing off has not succeeded)."""
    last = state.last_termination
    return (not state.running and not state.waiting_reason and last is not None
            and last.exit_code == 0)


def _phase(pod: model.Pod, states: Sequence[ContainerRuntimeState]) -> str:
    counts = [_counts_as(s) for s in states]
    if not counts or _WAITING in counts:
        return "Pending"
    if _RUNNING in counts:
        return "Running"
    all_succeeded = all(_succeeded(s) for s in states)
    if pod.metadata.deletion_timestamp:
        return _TERMINAL_PHASE[all_succeeded]
    policy = pod.spec.restart_policy or "Always"
    return _ALL_STOPPED_PHASE.get((policy, all_succeeded), "Running")


def _terminated(t: Termination) -> model.ContainerState:
    return model.ContainerState(terminated=model.ContainerStateTerminated(
        exit_code=t.exit_code, reason=t.reason, message=t.message,
        started_at=t.started_at, finished_at=t.finished_at,
    ))


def _container_status(container: model.Container, state: ContainerRuntimeState
                      ) -> model.ContainerStatus:
    empty = model.ContainerState()
    last = state.last_termination
    if state.running:
        current = model.ContainerState(
            running=model.ContainerStateRunning(started_at=state.started_at))
        previous = _terminated(last) if last is not None else empty
    elif state.waiting_reason or last is None:
        current = model.ContainerState(waiting=model.ContainerStateWaiting(
            reason=state.waiting_reason or _CREATING, message=state.waiting_message))
        previous = _terminated(last) if last is not None else empty
    else:
        current = _terminated(last)
        prior = state.previous_termination
        previous = _terminated(prior) if prior is not None else empty
    return model.ContainerStatus(
        name=container.name,
        ready=container_is_ready(state, container),
        restart_count=state.restart_count,
        started=state.running,
        state=current,
        last_state=previous,
        image=container.image,
        container_id=state.container_id,
    )


def _names(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def _containers_ready(phase: str, statuses: Sequence[model.ContainerStatus]
                      ) -> tuple[str, str, str]:
    """(status, reason, message) of ContainersReady, as Kubernetes' generate.go words it."""
    if phase in _TERMINAL:
        return "False", _TERMINAL_REASON[phase], ""
    unready = [s.name for s in statuses if not s.ready]
    if unready:
        return "False", "ContainersNotReady", f"containers with unready status: {_names(unready)}"
    return "True", "", ""


def _readiness_gates(pod: model.Pod) -> str:
    """Why the pod's readiness gates hold it not ready ("" when they don't)."""
    conditions = {c.type: c.status for c in pod.status.conditions}
    problems = []
    for gate in pod.spec.readiness_gates:
        kind = str(gate.get("conditionType", ""))
        if kind not in conditions:
            problems.append(f'corresponding condition of pod readiness gate "{kind}" does '
                            "not exist.")
        elif conditions[kind] != "True":
            problems.append(f'the status of pod readiness gate "{kind}" is not "True", '
                            f"but {conditions[kind]}")
    return ", ".join(problems)


def _ready(pod: model.Pod, containers_ready: tuple[str, str, str]) -> tuple[str, str, str]:
    """Ready: ContainersReady, held False by readiness gates. A terminating pod stays Ready while
    its probes pass (the endpoints controller takes care of `ready: false, serving: true`)."""
    if containers_ready[0] != "True":
        return containers_ready
    gates = _readiness_gates(pod)
    if gates:
        return "False", "ReadinessGatesNotReady", gates
    return containers_ready


def _condition(previous: Mapping[str, model.Condition], kind: str,
               value: tuple[str, str, str], now: str) -> model.Condition:
    status, reason, message = value
    before = previous.get(kind)
    kept = before.last_transition_time if before is not None and before.status == status else None
    return model.Condition(
        type=kind, status=status, reason=reason, message=message,
        last_transition_time=kept or now,
    )


def pod_status(
    pod: model.Pod,
    containers: Sequence[ContainerRuntimeState],
    *,
    pod_ip: str,
    host_ip: str,
    start_time: str | None,
    now: str,
) -> model.PodStatus:
    """The pod's status from what its containers are doing (see the module docstring).

    Args:
        pod: the pod, with the status last written (for lastTransitionTimes and the
            conditions that others own).
        containers: the runtime state of its containers, by name; a container of the spec
            with no state here is waiting "ContainerCreating".
        pod_ip: the pod's IP ("" before it has one).
        host_ip: the node's address.
        start_time: when the agent accepted the pod (RFC 3339).
        now: the time of this status (RFC 3339), for conditions that change.

    Returns:
        The complete `PodStatus` to write.
    """
    by_name = {s.name: s for s in containers}
    states = [by_name.get(c.name) or ContainerRuntimeState(name=c.name)
              for c in pod.spec.containers]
    statuses = tuple(_container_status(c, s) for c, s in zip(pod.spec.containers, states,
                                                               strict=True))
    phase = _phase(pod, states)
    containers_ready = _containers_ready(phase, statuses)
    values = {
        "Initialized": ("True", "", ""),
        "Ready": _ready(pod, containers_ready),
        "ContainersReady": containers_ready,
        "PodScheduled": ("True", "", ""),
    }
    previous = {c.type: c for c in pod.status.conditions}
    conditions = [_condition(previous, kind, values[kind], now) for kind in _OWN_CONDITIONS]
    conditions += [c for c in pod.status.conditions if c.type not in values]
    return model.PodStatus(
        phase=phase,
        conditions=tuple(conditions),
        host_ip=host_ip,
        host_ips=(model.PodIP(ip=host_ip),) if host_ip else (),
        pod_ip=pod_ip,
        pod_ips=(model.PodIP(ip=pod_ip),) if pod_ip else (),
        start_time=start_time,
        container_statuses=statuses,
    )


# --- environment, argv, DNS -------------------------------------------------------------------

# The services whose variables every pod gets, from `default`, whatever enableServiceLinks says.
_MASTER_SERVICES = frozenset({"kubernetes"})
_NO_CLUSTER_IP = frozenset({"", "None"})
_ENV_NAME_SUB = str.maketrans({"-": "_", ".": "_"})


def _env_name(name: str) -> str:
    """`redis-master` → `REDIS_MASTER`; a leading digit gets a `_` (a name can't start with
    one)."""
    out = name.upper().translate(_ENV_NAME_SUB)
    return f"_{out}" if out[:1].isdigit() else out


def _host_port(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _service_vars(svc: model.Service) -> dict[str, str]:
    """One service's variables, in Kubernetes' order (envvars.FromServices)."""
    prefix = _env_name(svc.metadata.name)
    ip = svc.spec.cluster_ip
    ports = svc.spec.ports
    out = {f"{prefix}_SERVICE_HOST": ip}
    if not ports:
        return out
    out[f"{prefix}_SERVICE_PORT"] = str(ports[0].port)
    for p in ports:
        if p.name:
            out[f"{prefix}_SERVICE_PORT_{_env_name(p.name)}"] = str(p.port)
    for i, p in enumerate(ports):
        proto = (p.protocol or "TCP").upper()
        url = f"{proto.lower()}://{_host_port(ip, p.port)}"
        if i == 0:
            out[f"{prefix}_PORT"] = url
        base = f"{prefix}_PORT_{p.port}_{proto}"
        out[base] = url
        out[f"{base}_PROTO"] = proto.lower()
        out[f"{base}_PORT"] = str(p.port)
        out[f"{base}_ADDR"] = ip
    return out


def service_env(
    services: Sequence[model.Service], namespace: str, enable_service_links: bool
) -> dict[str, str]:
    """The service environment variables of a pod in `namespace`.

    Args:
        services: every service the agent knows (the function picks): those of `namespace`
            count when `enable_service_links`, and `kubernetes` of `default` always.
        namespace: the pod's namespace.
        enable_service_links: the pod's `enableServiceLinks` (None in the spec means True).

    Returns:
        The variables, services in name order (a service of the pod's own namespace named
        `kubernetes` wins over the one in `default`, as in the kubelet).
    """
    chosen: dict[str, model.Service] = {}
    for svc in services:
        meta, spec = svc.metadata, svc.spec
        if spec.cluster_ip in _NO_CLUSTER_IP or spec.type == "ExternalName":
            continue
        if meta.namespace == "default" and meta.name in _MASTER_SERVICES:
            chosen.setdefault(meta.name, svc)
        elif meta.namespace == namespace and enable_service_links:
            chosen[meta.name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(_service_vars(chosen[name]))
    return env


_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion: a known VAR is replaced, an unknown one left as is,
    `$$` is a literal `$`, and any other `$` stays."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        value = lookup(match.group(1))
        return match.group(0) if value is None else value

    return _REFERENCE.sub(one, text) if "$" in text else text


def pod_fields(pod: model.Pod, *, pod_ip: str, host_ip: str) -> dict[str, str]:
    """The downward API's `fieldRef` paths for a pod, for `container_env(fields=...)`."""
    meta = pod.metadata
    out = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    for key, value in (meta.labels or {}).items():
        out[f"metadata.labels['{key}']"] = value
    for key, value in (meta.annotations or {}).items():
        out[f"metadata.annotations['{key}']"] = value
    return out


def _field_value(value_from: Mapping[str, object], fields: Mapping[str, str]) -> str | None:
    ref = value_from.get("fieldRef")
    if isinstance(ref, Mapping):
        return fields.get(str(ref.get("fieldPath", "")))
    return None  # secrets, config maps and resources: clusterip has none


def container_env(
    container: model.Container,
    service_env: Mapping[str, str],
    *,
    fields: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A container's environment: the service variables, then its own `env` over them.

    Values expand `$(NAME)` from the variables declared before them and from the service
    variables. A `valueFrom` is resolved only for a `fieldRef` found in `fields` (see
    `pod_fields`); any other (`secretKeyRef`, `configMapKeyRef`, ...) is skipped, leaving the
    variable unset.
    """
    declared: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return declared[name] if name in declared else service_env.get(name)

    for var in container.env:
        if var.value_from is not None:
            value = _field_value(var.value_from, fields or {})
            if value is None:
                continue
        else:
            value = expand(var.value or "", lookup)
        declared[var.name] = value
    return {**service_env, **declared}


def container_argv(container: model.Container, env: Mapping[str, str]) -> tuple[str, ...]:
    """`command` + `args` with `$(NAME)` expanded from the container's environment."""
    return tuple(expand(part, env.get) for part in (*container.command, *container.args))


def resolv_conf(
    namespace: str, *, nameserver: str = "10.96.0.10", domain: str = "cluster.local"
) -> str:
    """A pod's /etc/resolv.conf under `dnsPolicy: ClusterFirst` (what a kubelet writes)."""
    search = f"{namespace}.svc.{domain} svc.{domain} {domain}"
    return f"search {search}\nnameserver {nameserver}\noptions ndots:5\n"


def resolve_port(
    containers: model.Container | Sequence[model.Container], port: int | str
) -> int | None:
    """A probe's port as a number: a number as is, a name looked up in the containers' ports
    (in order: pass the probe's own container first), and, as the kubelet's last resort, a
    name that is a number. None when it names no port or is out of range."""
    if isinstance(port, bool):
        return None
    if isinstance(port, int):
        return port if 1 <= port <= 65535 else None
    pool = (containers,) if isinstance(containers, model.Container) else containers
    for container in pool:
        for p in container.ports:
            if p.name and p.name == port:
                return p.container_port
    if port.isdigit():
        return resolve_port(pool, int(port))
    return None
