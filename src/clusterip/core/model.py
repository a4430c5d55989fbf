"""The Kubernetes objects clusterip serves, as frozen msgspec Structs with Kubernetes JSON names.

Every object is a `Struct` that is frozen (change one with `msgspec.structs.replace`), keyword-only,
and encodes the way the Kubernetes API does: camelCase names, with the irregular ones spelled out
(`clusterIP`, `clusterIPs`, `podIP`, `hostIP`), and fields left at their default omitted
(Go's `omitempty`). Sequences are tuples; maps (labels, selectors) are dicts that nobody mutates.

The model only holds shape. Defaults that Kubernetes fills in (a port's protocol, a Service's
type) are applied by `core.defaults`, rules by `core.validation`, and bytes are turned into these
objects by `core.codec`. Which kinds exist, their resource names and scopes, is the table in
`core.kinds`.

Fields that clusterip does not act on but that real manifests carry (container `resources`,
`volumeMounts`, a Deployment's `strategy`) are modelled loosely as `dict[str, Any]`, so the
manifests of the Kubernetes documentation load unchanged and round-trip.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

__all__ = [
    "Condition",
    "Container",
    "ContainerPort",
    "Deployment",
    "DeploymentSpec",
    "Endpoint",
    "EndpointConditions",
    "EndpointPort",
    "EndpointSlice",
    "Endpoints",
    "Event",
    "EventSeries",
    "EventSource",
    "IPAddress",
    "IntOrString",
    "KubeObject",
    "LabelSelector",
    "ListMeta",
    "Namespace",
    "Node",
    "ObjectMeta",
    "ObjectReference",
    "OwnerReference",
    "Pod",
    "PodSpec",
    "PodStatus",
    "Service",
    "ServiceCIDR",
    "ServicePort",
    "ServiceSpec",
]

IntOrString = int | str


class Base(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, rename="camel", gc=False
):
    """Shared config: frozen, keyword-only, camelCase names, defaults omitted on encode.

    `gc=False`: these objects are trees (a struct holds strings, numbers, tuples, dicts and
    other structs, never a reference back up), so they cannot be part of a reference cycle and
    need no cyclic-GC tracking: 16 bytes less each, and full collections do not walk the
    hundreds of thousands of them a controller caches."""


# --- metadata ---------------------------------------------------------------------------------


class OwnerReference(Base, frozen=True):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ManagedFieldsEntry(Base, frozen=True):
    manager: str | None = None
    operation: str | None = None
    api_version: str | None = None
    time: str | None = None
    fields_type: str | None = None
    fields_v1: dict[str, Any] | None = msgspec.field(default=None, name="fieldsV1")
    subresource: str | None = None


class ObjectMeta(Base, frozen=True):
    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: tuple[OwnerReference, ...] = ()
    finalizers: tuple[str, ...] = ()
    managed_fields: tuple[ManagedFieldsEntry, ...] = ()


class ListMeta(Base, frozen=True):
    """A list's metadata: the store revision it was read at, and where the next page starts."""

    resource_version: str = ""
    continue_: str = msgspec.field(default="", name="continue")


class ObjectReference(Base, frozen=True):
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""


class LabelSelectorRequirement(Base, frozen=True):
    key: str
    operator: str
    values: tuple[str, ...] = ()


class LabelSelector(Base, frozen=True):
    match_labels: dict[str, str] | None = None
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()


class Condition(Base, frozen=True):
    """A status condition; Pods, Nodes and Deployments share this shape."""

    type: str
    status: str
    last_probe_time: str | None = None
    last_heartbeat_time: str | None = None
    last_transition_time: str | None = None
    last_update_time: str | None = None
    observed_generation: int | None = None
    reason: str = ""
    message: str = ""


class KubeObject(Base, frozen=True):
    """Every top-level object: apiVersion, kind, metadata. Subclasses set `KIND`/`API_VERSION`."""

    KIND: ClassVar[str] = ""
    API_VERSION: ClassVar[str] = "v1"

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = ObjectMeta()


# --- Namespace --------------------------------------------------------------------------------


class NamespaceSpec(Base, frozen=True):
    finalizers: tuple[str, ...] = ()


class NamespaceStatus(Base, frozen=True):
    phase: str = ""


class Namespace(KubeObject, frozen=True):
    KIND: ClassVar[str] = "Namespace"
    spec: NamespaceSpec = NamespaceSpec()
    status: NamespaceStatus = NamespaceStatus()


# --- Service ----------------------------------------------------------------------------------


class ServicePort(Base, frozen=True):
    name: str = ""
    protocol: str = ""
    app_protocol: str | None = None
    port: int = 0
    target_port: IntOrString | None = None
    node_port: int | None = None


class ClientIPConfig(Base, frozen=True):
    timeout_seconds: int | None = None


class SessionAffinityConfig(Base, frozen=True):
    client_ip: ClientIPConfig | None = msgspec.field(default=None, name="clientIP")


class ServiceSpec(Base, frozen=True):
    type: str = ""
    selector: dict[str, str] | None = None
    ports: tuple[ServicePort, ...] = ()
    cluster_ip: str = msgspec.field(default="", name="clusterIP")
    cluster_ips: tuple[str, ...] = msgspec.field(default=(), name="clusterIPs")
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str | None = None
    external_name: str = ""
    external_ips: tuple[str, ...] = msgspec.field(default=(), name="externalIPs")
    session_affinity: str = ""
    session_affinity_config: SessionAffinityConfig | None = None
    publish_not_ready_addresses: bool = False
    internal_traffic_policy: str | None = None
    external_traffic_policy: str | None = None
    traffic_distribution: str | None = None


class LoadBalancerStatus(Base, frozen=True):
    ingress: tuple[dict[str, Any], ...] = ()


class ServiceStatus(Base, frozen=True):
    load_balancer: LoadBalancerStatus | None = None
    conditions: tuple[Condition, ...] = ()


class Service(KubeObject, frozen=True):
    KIND: ClassVar[str] = "Service"
    spec: ServiceSpec = ServiceSpec()
    status: ServiceStatus = ServiceStatus()


# --- Pod --------------------------------------------------------------------------------------


class ContainerPort(Base, frozen=True):
    name: str = ""
    container_port: int = 0
    protocol: str = ""
    host_port: int | None = None
    host_ip: str | None = msgspec.field(default=None, name="hostIP")


class EnvVar(Base, frozen=True):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ExecAction(Base, frozen=True):
    command: tuple[str, ...] = ()


class HTTPHeader(Base, frozen=True):
    name: str
    value: str


class HTTPGetAction(Base, frozen=True):
    port: IntOrString
    path: str = ""
    host: str = ""
    scheme: str = ""
    http_headers: tuple[HTTPHeader, ...] = ()


class TCPSocketAction(Base, frozen=True):
    port: IntOrString
    host: str = ""


class Probe(Base, frozen=True):
    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: dict[str, Any] | None = None
    initial_delay_seconds: int | None = None
    timeout_seconds: int | None = None
    period_seconds: int | None = None
    success_threshold: int | None = None
    failure_threshold: int | None = None
    termination_grace_period_seconds: int | None = None


class Container(Base, frozen=True):
    name: str = ""
    image: str = ""
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    ports: tuple[ContainerPort, ...] = ()
    env: tuple[EnvVar, ...] = ()
    env_from: tuple[dict[str, Any], ...] = ()
    resources: dict[str, Any] | None = None
    volume_mounts: tuple[dict[str, Any], ...] = ()
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    startup_probe: Probe | None = None
    lifecycle: dict[str, Any] | None = None
    termination_message_path: str = ""
    termination_message_policy: str = ""
    image_pull_policy: str = ""
    security_context: dict[str, Any] | None = None
    stdin: bool = False
    tty: bool = False


class PodSpec(Base, frozen=True):
    containers: tuple[Container, ...] = ()
    init_containers: tuple[Container, ...] = ()
    restart_policy: str = ""
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    dns_policy: str = ""
    node_selector: dict[str, str] | None = None
    service_account_name: str = ""
    service_account: str = ""
    node_name: str = ""
    host_network: bool = False
    hostname: str = ""
    subdomain: str = ""
    enable_service_links: bool | None = None
    scheduler_name: str = ""
    priority: int | None = None
    volumes: tuple[dict[str, Any], ...] = ()
    security_context: dict[str, Any] | None = None
    affinity: dict[str, Any] | None = None
    tolerations: tuple[dict[str, Any], ...] = ()
    dns_config: dict[str, Any] | None = None
    readiness_gates: tuple[dict[str, Any], ...] = ()


class PodIP(Base, frozen=True):
    ip: str


class ContainerStateRunning(Base, frozen=True):
    started_at: str | None = None


class ContainerStateWaiting(Base, frozen=True):
    reason: str = ""
    message: str = ""


class ContainerStateTerminated(Base, frozen=True):
    exit_code: int = 0
    signal: int | None = None
    reason: str = ""
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    container_id: str = msgspec.field(default="", name="containerID")


class ContainerState(Base, frozen=True):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(Base, frozen=True):
    name: str
    ready: bool = False
    restart_count: int = 0
    started: bool | None = None
    state: ContainerState | None = None
    last_state: ContainerState | None = None
    image: str = ""
    image_id: str = msgspec.field(default="", name="imageID")
    container_id: str = msgspec.field(default="", name="containerID")


class PodStatus(Base, frozen=True):
    phase: str = ""
    conditions: tuple[Condition, ...] = ()
    message: str = ""
    reason: str = ""
    host_ip: str = msgspec.field(default="", name="hostIP")
    host_ips: tuple[PodIP, ...] = msgspec.field(default=(), name="hostIPs")
    pod_ip: str = msgspec.field(default="", name="podIP")
    pod_ips: tuple[PodIP, ...] = msgspec.field(default=(), name="podIPs")
    start_time: str | None = None
    container_statuses: tuple[ContainerStatus, ...] = ()
    init_container_statuses: tuple[ContainerStatus, ...] = ()
    qos_class: str = ""


class Pod(KubeObject, frozen=True):
    KIND: ClassVar[str] = "Pod"
    spec: PodSpec = PodSpec()
    status: PodStatus = PodStatus()


# --- EndpointSlice and Endpoints ---------------------------------------------------------------


class EndpointConditions(Base, frozen=True):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class Endpoint(Base, frozen=True):
    addresses: tuple[str, ...] = ()
    conditions: EndpointConditions = EndpointConditions()
    hostname: str | None = None
    target_ref: ObjectReference | None = None
    node_name: str | None = None
    zone: str | None = None
    hints: dict[str, Any] | None = None


class EndpointPort(Base, frozen=True):
    name: str | None = None
    protocol: str | None = None
    port: int | None = None
    app_protocol: str | None = None


class EndpointSlice(KubeObject, frozen=True):
    KIND: ClassVar[str] = "EndpointSlice"
    API_VERSION: ClassVar[str] = "discovery.k8s.io/v1"
    address_type: str = ""
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()


class EndpointAddress(Base, frozen=True):
    ip: str
    hostname: str = ""
    node_name: str | None = None
    target_ref: ObjectReference | None = None


class EndpointsPort(Base, frozen=True):
    name: str = ""
    port: int = 0
    protocol: str = ""
    app_protocol: str | None = None


class EndpointSubset(Base, frozen=True):
    addresses: tuple[EndpointAddress, ...] = ()
    not_ready_addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[EndpointsPort, ...] = ()


class Endpoints(KubeObject, frozen=True):
    """The v1 Endpoints view, derived from EndpointSlices for old clients; never stored."""

    KIND: ClassVar[str] = "Endpoints"
    subsets: tuple[EndpointSubset, ...] = ()


# --- Deployment -------------------------------------------------------------------------------


class PodTemplateSpec(Base, frozen=True):
    metadata: ObjectMeta = ObjectMeta()
    spec: PodSpec = PodSpec()


class DeploymentSpec(Base, frozen=True):
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = PodTemplateSpec()
    strategy: dict[str, Any] | None = None
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    progress_deadline_seconds: int | None = None
    paused: bool = False


class DeploymentStatus(Base, frozen=True):
    observed_generation: int | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    unavailable_replicas: int | None = None
    conditions: tuple[Condition, ...] = ()


class Deployment(KubeObject, frozen=True):
    KIND: ClassVar[str] = "Deployment"
    API_VERSION: ClassVar[str] = "apps/v1"
    spec: DeploymentSpec = DeploymentSpec()
    status: DeploymentStatus = DeploymentStatus()


# --- IPAddress and ServiceCIDR (networking.k8s.io/v1, KEP-1880) --------------------------------


class ParentReference(Base, frozen=True):
    group: str = ""
    resource: str = ""
    namespace: str = ""
    name: str = ""


class IPAddressSpec(Base, frozen=True):
    parent_ref: ParentReference | None = None


class IPAddress(KubeObject, frozen=True):
    """One allocated ClusterIP; the name is the address in canonical form."""

    KIND: ClassVar[str] = "IPAddress"
    API_VERSION: ClassVar[str] = "networking.k8s.io/v1"
    spec: IPAddressSpec = IPAddressSpec()


class ServiceCIDRSpec(Base, frozen=True):
    cidrs: tuple[str, ...] = ()


class ServiceCIDRStatus(Base, frozen=True):
    conditions: tuple[Condition, ...] = ()


class ServiceCIDR(KubeObject, frozen=True):
    KIND: ClassVar[str] = "ServiceCIDR"
    API_VERSION: ClassVar[str] = "networking.k8s.io/v1"
    spec: ServiceCIDRSpec = ServiceCIDRSpec()
    status: ServiceCIDRStatus = ServiceCIDRStatus()


# --- Event ------------------------------------------------------------------------------------


class EventSource(Base, frozen=True):
    """Who reported an event: the component (`kubelet`, `default-scheduler`) and its host."""

    component: str = ""
    host: str = ""


class EventSeries(Base, frozen=True):
    """How often a new-style (events.k8s.io) event has recurred; clusterip's recorder counts
    repeats in `Event.count` instead, as client-go's legacy recorder does."""

    count: int = 0
    last_observed_time: str | None = None


class Event(KubeObject, frozen=True):
    """A core/v1 Event: something that happened to `involvedObject`, reported by `source`.

    `involvedObject` is always encoded (a default_factory is never omitted): the Python
    `kubernetes` client refuses an Event whose involvedObject is null. Repeats of one event are
    one object whose `count` and `lastTimestamp` grow (see `core.events`)."""

    KIND: ClassVar[str] = "Event"
    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str = ""
    message: str = ""
    source: EventSource = EventSource()
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    count: int = 0
    type: str = ""
    event_time: str | None = None
    series: EventSeries | None = None
    action: str = ""
    related: ObjectReference | None = None
    reporting_component: str = ""
    reporting_instance: str = ""


# --- Lease (coordination.k8s.io/v1) -----------------------------------------------------------


class LeaseSpec(Base, frozen=True):
    """Who holds the lease and until when it must be renewed (see `core.leaderelection`)."""

    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    acquire_time: str | None = None  # MicroTime: RFC 3339 with microseconds
    renew_time: str | None = None
    lease_transitions: int | None = None


class Lease(KubeObject, frozen=True):
    """A lease that API servers elect their controllers' leader with."""

    KIND: ClassVar[str] = "Lease"
    spec: LeaseSpec = LeaseSpec()


# --- Node -------------------------------------------------------------------------------------


class NodeSpec(Base, frozen=True):
    pod_cidr: str = msgspec.field(default="", name="podCIDR")
    pod_cidrs: tuple[str, ...] = msgspec.field(default=(), name="podCIDRs")
    unschedulable: bool = False
    taints: tuple[dict[str, Any], ...] = ()
    provider_id: str = msgspec.field(default="", name="providerID")


class NodeAddress(Base, frozen=True):
    type: str
    address: str


class NodeStatus(Base, frozen=True):
    addresses: tuple[NodeAddress, ...] = ()
    conditions: tuple[Condition, ...] = ()
    capacity: dict[str, str] | None = None
    allocatable: dict[str, str] | None = None
    node_info: dict[str, str] | None = None
    phase: str = ""


class Node(KubeObject, frozen=True):
    KIND: ClassVar[str] = "Node"
    spec: NodeSpec = NodeSpec()
    status: NodeStatus = NodeStatus()
