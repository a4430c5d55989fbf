"""Events: what clusterip's components report about objects, and how repeats are counted (pure).

An Event (core/v1 `events`) says that something happened to an object, its `involvedObject`: a
Service got its ClusterIP, a pod was scheduled, a container started or failed a probe, an
endpoint left a Service. Components record them through `registry.events.EventRecorder` (the
shell: a queue, a writer task, the store); everything about them that is not I/O is here.

* `REASONS` is the table of every reason clusterip records, with its type (Normal or Warning)
  and the component that records it. The words of each message are the small functions under
  the table (`cluster_ip_message`, `scheduled_message`, ...): kubelet's, the scheduler's and the
  controllers' where Kubernetes has them.
* `reference(obj)` is an object's ObjectReference, kind and apiVersion from `core.kinds` (so an
  object built in code, without `kind`, works too); `new_event(...)` is the Event of one
  occurrence: count 1, first and last timestamp now, in the object's namespace ("default" for a
  cluster-scoped object, as client-go does). `event_name(name, nanos)` names it as client-go
  does, `<object name>.<unix nanoseconds in hex>`.
* `SpamFilter` is client-go's EventSourceObjectSpamFilter: a token bucket per (source, object),
  a burst of 25 events, then one more every 5 minutes. What it refuses is dropped, so that a
  crash-looping pod or a flapping Service cannot flood the store with events.
* `Correlator` is client-go's event logger. The same event again (same source, object, type,
  reason and message: `aggregation_key`) is not a new object: it is the last one written with
  `count` + 1 and the new `lastTimestamp`. It remembers the last write of the 4096 events seen
  most recently (an LRU); a repeat of one it has forgotten is written as a new Event.
* `expired(events, now, ttl)` are the events kube-apiserver's `--event-ttl` would have dropped:
  last seen (`lastTimestamp`, else `eventTime`, `firstTimestamp`, `creationTimestamp`) more
  than `ttl` seconds ago.
* `endpoint_changes(before, plan)` are the endpoints a Service loses, or that stop being ready,
  when the endpoints controller applies a `SlicePlan` (Kubernetes records no event for this;
  clusterip records `EndpointRemoved`, `EndpointNotReady` and `EndpointTerminating` on the
  Service, one per endpoint and change).

Time is always a parameter (unix seconds): nothing here reads a clock.
"""

from __future__ import annotations

import ipaddress
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import msgspec

from clusterip.core import model as m
from clusterip.core.endpoints import SlicePlan, is_managed
from clusterip.core.kinds import for_type
from clusterip.core.timefmt import parse_rfc3339, rfc3339

__all__ = [
    "EVENT_TYPES",
    "NORMAL",
    "REASONS",
    "WARNING",
    "Correlated",
    "Correlator",
    "EndpointChange",
    "Reason",
    "SpamFilter",
    "aggregation_key",
    "endpoint_changes",
    "event_name",
    "expired",
    "last_seen",
    "new_event",
    "reference",
]

NORMAL = "Normal"
WARNING = "Warning"
EVENT_TYPES = (NORMAL, WARNING)

DEFAULT_TTL_SECONDS = 3600.0  # kube-apiserver's --event-ttl
MESSAGE_LIMIT = 1024  # the longest message recorded (Kubernetes' noteLengthLimit)

# --- the table --------------------------------------------------------------------------------

# Who records events: each recorder's `source.component`.
ALLOCATOR = "ipallocator-controller"
SCHEDULER = "default-scheduler"
KUBELET = "kubelet"
DEPLOYMENT_CONTROLLER = "deployment-controller"
ENDPOINTS_CONTROLLER = "endpointslice-controller"
NODE_IPAM_CONTROLLER = "cidrAllocator"
NODE_CONTROLLER = "node-controller"

CLUSTER_IP_ALLOCATED = "ClusterIPAllocated"
SCHEDULED = "Scheduled"
CREATED = "Created"
STARTED = "Started"
FAILED = "Failed"
KILLING = "Killing"
UNHEALTHY = "Unhealthy"
BACK_OFF = "BackOff"
SUCCESSFUL_CREATE = "SuccessfulCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_CREATE = "FailedCreate"
ENDPOINT_REMOVED = "EndpointRemoved"
ENDPOINT_NOT_READY = "EndpointNotReady"
ENDPOINT_TERMINATING = "EndpointTerminating"
CIDR_NOT_AVAILABLE = "CIDRNotAvailable"
CIDR_ASSIGNMENT_FAILED = "CIDRAssignmentFailed"
NODE_NOT_READY = "NodeNotReady"
EVICTION = "TaintManagerEviction"


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason clusterip records: its event type, who records it, and on which kind."""

    type: str
    component: str
    kind: str
    when: str


REASONS: dict[str, Reason] = {
    CLUSTER_IP_ALLOCATED: Reason(NORMAL, ALLOCATOR, "Service",
                                 "a Service got its ClusterIP(s) (create, or a type change)"),
    SCHEDULED: Reason(NORMAL, SCHEDULER, "Pod", "a pod was bound to a node"),
    CREATED: Reason(NORMAL, KUBELET, "Pod", "a container's process was created"),
    STARTED: Reason(NORMAL, KUBELET, "Pod", "a container's process started"),
    FAILED: Reason(WARNING, KUBELET, "Pod", "a container's program could not be run"),
    KILLING: Reason(NORMAL, KUBELET, "Pod",
                    "a container is stopped: its pod is deleted, or it failed its liveness probe"),
    UNHEALTHY: Reason(WARNING, KUBELET, "Pod", "a readiness or liveness probe failed"),
    BACK_OFF: Reason(WARNING, KUBELET, "Pod", "a container waits to be restarted"),
    SUCCESSFUL_CREATE: Reason(NORMAL, DEPLOYMENT_CONTROLLER, "Deployment", "a pod was created"),
    SUCCESSFUL_DELETE: Reason(NORMAL, DEPLOYMENT_CONTROLLER, "Deployment", "a pod was deleted"),
    FAILED_CREATE: Reason(WARNING, DEPLOYMENT_CONTROLLER, "Deployment",
                          "a pod could not be created"),
    ENDPOINT_REMOVED: Reason(NORMAL, ENDPOINTS_CONTROLLER, "Service",
                             "an endpoint left the Service's EndpointSlices"),
    ENDPOINT_NOT_READY: Reason(WARNING, ENDPOINTS_CONTROLLER, "Service",
                               "a ready endpoint became not ready (its pod is not Ready)"),
    ENDPOINT_TERMINATING: Reason(NORMAL, ENDPOINTS_CONTROLLER, "Service",
                                 "a ready endpoint is terminating (its pod is being deleted)"),
    CIDR_NOT_AVAILABLE: Reason(WARNING, NODE_IPAM_CONTROLLER, "Node",
                               "the pod CIDR a node names is outside the cluster CIDR or "
                               "another node's"),
    CIDR_ASSIGNMENT_FAILED: Reason(WARNING, NODE_IPAM_CONTROLLER, "Node",
                                   "no pod CIDR is left for a node"),
    NODE_NOT_READY: Reason(NORMAL, NODE_CONTROLLER, "Node",
                           "a node stopped posting its status (Ready=Unknown)"),
    EVICTION: Reason(NORMAL, NODE_CONTROLLER, "Pod",
                     "a pod of a node not ready for the eviction time is deleted"),
}

# --- the messages -----------------------------------------------------------------------------


def cluster_ip_message(service: m.Service) -> str:
    """`Cluster IP [IPv4]: 10.96.0.15` (two addresses: `Cluster IPs [IPv4, IPv6]: a, b`)."""
    ips = service.spec.cluster_ips or ((service.spec.cluster_ip,) if service.spec.cluster_ip
                                       else ())
    families = [_family(ip) for ip in ips]
    if len(ips) == 1:
        return f"Cluster IP [{families[0]}]: {ips[0]}"
    return f"Cluster IPs [{', '.join(families)}]: {', '.join(ips)}"


def _family(ip: str) -> str:
    try:
        return f"IPv{ipaddress.ip_address(ip).version}"
    except ValueError:
        return "unknown"


def scheduled_message(pod: m.Pod, node: str) -> str:
    return f"Successfully assigned {pod.metadata.namespace}/{pod.metadata.name} to {node}"


def created_message(container: str) -> str:
    return f"Created container: {container}"


def started_message(container: str) -> str:
    return f"Started container {container}"


def failed_message(error: str) -> str:
    return f"Error: {error}"


def killing_message(container: str) -> str:
    return f"Stopping container {container}"


def liveness_killing_message(container: str) -> str:
    return f"Container {container} failed liveness probe, will be restarted"


def unhealthy_message(probe_kind: str, output: str) -> str:
    """`Readiness probe failed: HTTP probe failed with statuscode: 500`."""
    return f"{probe_kind.capitalize()} probe failed: {output}"


def back_off_message(container: str, pod: m.Pod) -> str:
    """kubelet's wording, the pod as its `format.Pod` prints it: `name_namespace(uid)`."""
    meta = pod.metadata
    return (f"Back-off restarting failed container {container} in pod "
            f"{meta.name}_{meta.namespace}({meta.uid})")


def container_field_path(container: str) -> str:
    """The `involvedObject.fieldPath` of an event about one container of a pod."""
    return f"spec.containers{{{container}}}"


def created_pod_message(pod: str) -> str:
    return f"Created pod: {pod}"


def deleted_pod_message(pod: str) -> str:
    return f"Deleted pod: {pod}"


def failed_create_message(error: str) -> str:
    return f"Error creating: {error}"


# --- one event --------------------------------------------------------------------------------


def reference(obj: m.KubeObject, field_path: str = "") -> m.ObjectReference:
    """The ObjectReference of `obj` (a part of it, with `field_path`)."""
    info = for_type(type(obj))
    meta = obj.metadata
    return m.ObjectReference(
        kind=info.kind, namespace=meta.namespace if info.namespaced else "", name=meta.name,
        uid=meta.uid, api_version=info.api_version, resource_version=meta.resource_version,
        field_path=field_path)


def new_event(ref: m.ObjectReference, *, type_: str, reason: str, message: str,
              source: m.EventSource, now: float) -> m.Event:
    """The Event of one occurrence, not named yet (see `event_name`). A message longer than
    `MESSAGE_LIMIT` is cut, ending in "..."."""
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT - 3] + "..."
    at = rfc3339(now)
    return m.Event(
        api_version="v1", kind="Event",
        metadata=m.ObjectMeta(namespace=ref.namespace or "default"),
        involved_object=ref, reason=reason, message=message, source=source,
        first_timestamp=at, last_timestamp=at, count=1, type=type_,
        reporting_component=source.component, reporting_instance=source.host)


_NAME_LIMIT = 253
_NOT_NAME = re.compile(r"[^a-z0-9.-]+")


def event_name(object_name: str, nanos: int) -> str:
    """`<object name>.<nanos in hex>`; characters a name may not hold become "-", and a long
    object name is cut so that the whole stays a DNS subdomain of at most 253 characters."""
    suffix = f".{nanos:x}"
    base = _NOT_NAME.sub("-", object_name.lower())[:_NAME_LIMIT - len(suffix)].strip(".-")
    return (base or "event") + suffix


def aggregation_key(event: m.Event) -> tuple[str, ...]:
    """What makes two events "the same" for counting (client-go's getEventKey)."""
    ref, source = event.involved_object, event.source
    return (source.component, source.host, ref.kind, ref.namespace, ref.name, ref.field_path,
            ref.uid, ref.api_version, event.type, event.reason, event.message)


def _spam_key(event: m.Event) -> tuple[str, ...]:
    ref, source = event.involved_object, event.source
    return (source.component, source.host, ref.kind, ref.namespace, ref.name, ref.uid,
            ref.api_version)


# --- flood control and counting ---------------------------------------------------------------


class SpamFilter:
    """A token bucket per (source, involved object): `burst` events at once, then one more
    each `refill_seconds`. Remembers the `size` buckets used most recently.

    `allow(event, now)` takes a token and says whether the event may be recorded."""

    def __init__(self, *, burst: int = 25, refill_seconds: float = 300.0,
                 size: int = 4096) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.size = size
        self._buckets: OrderedDict[tuple[str, ...], tuple[float, float]] = OrderedDict()

    def allow(self, event: m.Event, now: float) -> bool:
        key = _spam_key(event)
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) / self.refill_seconds)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.size:
            self._buckets.popitem(last=False)
        return allowed


@dataclass(frozen=True, slots=True)
class Correlated:
    """What to write for a recorded event: a new Event, or (`repeat`) the earlier one again
    with its count and lastTimestamp moved on (written over it, unconditionally)."""

    event: m.Event
    repeat: bool


class Correlator:
    """Counts repeats instead of writing them as new objects. See the module docstring.

    `correlate(event)` says what to write; `observe(written)` remembers what was written (call
    it only after the write succeeded); `forget(event)` drops the memory of an event that is
    gone from the store, so its next occurrence is created anew."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._written: OrderedDict[tuple[str, ...], m.Event] = OrderedDict()

    def __len__(self) -> int:
        return len(self._written)

    def correlate(self, event: m.Event) -> Correlated:
        key = aggregation_key(event)
        last = self._written.get(key)
        if last is None:
            return Correlated(event, repeat=False)
        self._written.move_to_end(key)
        again = msgspec.structs.replace(
            last, count=max(last.count, 1) + 1, last_timestamp=event.last_timestamp,
            metadata=msgspec.structs.replace(last.metadata, resource_version=""))
        return Correlated(again, repeat=True)

    def observe(self, written: m.Event) -> None:
        key = aggregation_key(written)
        self._written[key] = written
        self._written.move_to_end(key)
        while len(self._written) > self.size:
            self._written.popitem(last=False)

    def forget(self, event: m.Event) -> None:
        self._written.pop(aggregation_key(event), None)


# --- time to live -----------------------------------------------------------------------------


def last_seen(event: m.Event) -> float | None:
    """When the event last happened (unix seconds); None when it carries no readable time."""
    for text in (event.last_timestamp, event.event_time, event.first_timestamp,
                 event.metadata.creation_timestamp):
        if text:
            try:
                return parse_rfc3339(text)
            except ValueError:
                continue
    return None


def expired(events: Iterable[m.Event], now: float, ttl: float) -> list[m.Event]:
    """The events last seen more than `ttl` seconds before `now`."""
    return [e for e in events if (seen := last_seen(e)) is not None and now - seen > ttl]


# --- endpoints a Service loses ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointChange:
    """One endpoint that left a Service (`reason` EndpointRemoved) or stopped being ready
    (EndpointNotReady, or EndpointTerminating when its pod is being deleted)."""

    reason: str
    address: str
    pod: str  # the targetRef's name; "" for an endpoint without one

    @property
    def type(self) -> str:
        return REASONS[self.reason].type

    @property
    def message(self) -> str:
        of = f" (pod {self.pod})" if self.pod else ""
        if self.reason == ENDPOINT_REMOVED:
            return f"Removed endpoint {self.address}{of}"
        if self.reason == ENDPOINT_TERMINATING:
            return f"Endpoint {self.address}{of} is terminating"
        return f"Endpoint {self.address}{of} is not ready"


def _endpoints(slices: Iterable[m.EndpointSlice]) -> dict[str, m.Endpoint]:
    return {address: ep for sl in slices for ep in sl.endpoints for address in ep.addresses}


def endpoint_changes(before: Sequence[m.EndpointSlice], plan: SlicePlan) -> list[EndpointChange]:
    """What applying `plan` to the managed slices `before` takes from the Service: each address
    that is gone, or that was ready and is not any more; sorted by address."""
    managed = {sl.metadata.name: sl for sl in before if is_managed(sl)}
    after = dict(managed)
    for sl in plan.delete:
        after.pop(sl.metadata.name, None)
    for sl in (*plan.update, *plan.create):
        after[sl.metadata.name] = sl
    was, now = _endpoints(managed.values()), _endpoints(after.values())
    changes: list[EndpointChange] = []
    for address in sorted(was):
        old, new = was[address], now.get(address)
        pod = old.target_ref.name if old.target_ref is not None else ""
        if new is None:
            changes.append(EndpointChange(ENDPOINT_REMOVED, address, pod))
        elif old.conditions.ready is not False and new.conditions.ready is False:
            reason = ENDPOINT_TERMINATING if new.conditions.terminating else ENDPOINT_NOT_READY
            changes.append(EndpointChange(reason, address, pod))
    return changes
