"""The write path every object takes: defaults, validation, ClusterIP allocation, then the store.

`Registry` is what the API server calls for each request and what controllers write through, so
an object written by a controller is checked exactly like one a user applies. For each verb:

    create  namespace exists? → generateName → reset status → defaults → managers → validate
            → allocate → store
    update  read old → carry server-set fields → keep old status → defaults → managers →
            validate → store
    apply   read live (or none) → merge the applied config, prune, managers → update or create
    status  read old → take only the new status → validate → store
    delete  finalizers? mark terminating : store delete → release IP / delete namespace contents

A write that names a field manager (the API's writes do) records which fields it set in
`metadata.managedFields`; `apply` is server-side apply. Both are `core.fieldmanager`'s; internal
writers (controllers, bootstrap) name none and are not tracked.

What differs between kinds is in the tables below (`_CREATE_STATUS`, `_HAS_STATUS`,
`_PROTECTED_NAMESPACES`) and in the pure `core.defaults` and `core.validation` tables.

An update without `metadata.resourceVersion` is unconditional (Kubernetes allows that for these
kinds): it is retried on a lost race a bounded number of times against the freshly read object.
With a resourceVersion, a stale one is a `Conflict` (409) and nothing is written.

The Endpoints kind is a view: `get` and `list` derive it from EndpointSlices; writes are refused.

A Service that gets its ClusterIP(s) (a create, or an update out of ExternalName) has a
`ClusterIPAllocated` event recorded on it through `events` (an `EventRecorder`, set by whoever
wires the registry; the recorder writes back through this registry, after the Service write).
"""

from __future__ import annotations

import builtins
import ipaddress
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import msgspec

from clusterip.clock import Clock
from clusterip.core import codec, defaults, fieldmanager, validation
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.endpointsview import endpoints_for
from clusterip.core.errors import (
    AlreadyExists,
    BadInput,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    required,
)
from clusterip.core.kinds import KINDS, for_type
from clusterip.core.patchmeta import schema_of
from clusterip.core.timefmt import rfc3339
from clusterip.registry.events import DISCARD, EventRecorder
from clusterip.registry.objects import ObjectEvent, ObjectStore, conflict_message

__all__ = ["Allocator", "Registry"]

log = logging.getLogger(__name__)

T = TypeVar("T", bound=m.KubeObject)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# The status an object starts with, whatever the request said (Kubernetes' PrepareForCreate).
_CREATE_STATUS: dict[type[m.KubeObject], Any] = {
    m.Pod: m.PodStatus(phase="Pending"),
    m.Service: m.ServiceStatus(load_balancer=m.LoadBalancerStatus()),
    m.Deployment: m.DeploymentStatus(),
    m.Namespace: m.NamespaceStatus(phase="Active"),
    m.ServiceCIDR: m.ServiceCIDRStatus(),
}

# Kinds whose status is written only through the status subresource.
_HAS_STATUS = frozenset(_CREATE_STATUS) | {m.Node}

_PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})

_UNCONDITIONAL_RETRIES = 5

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Allocator(Protocol):
    """ClusterIP allocation as the registry needs it (`registry.ipalloc.ClusterIPAllocator`)."""

    async def allocate(self, service: m.Service) -> m.Service: ...

    async def release(self, service: m.Service) -> None: ...


class Registry:
    """Validated reads and writes of every kind. See the module docstring."""

    def __init__(
        self,
        objects: ObjectStore,
        allocator: Allocator,
        *,
        service_cidrs: Sequence[Network],
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self.objects = objects
        self._allocator = allocator
        self._service_cidrs = tuple(service_cidrs)
        self._clock = clock
        self._rng = rng or random.Random()
        self.events: EventRecorder = DISCARD

    # --- reads -------------------------------------------------------------------------------

    async def get(self, type_: type[T], namespace: str, name: str) -> T:
        if type_ is m.Endpoints:
            service = await self.objects.get(m.Service, namespace, name)
            view = await self._endpoints_view(service)
            return view  # type: ignore[return-value]
        return await self.objects.get(type_, namespace, name)

    async def list(
        self,
        type_: type[T],
        namespace: str | None = None,
        *,
        transform: Callable[[T], T] | None = None,
    ) -> tuple[builtins.list[T], int]:
        if type_ is m.Endpoints:
            services, revision = await self.objects.list(m.Service, namespace)
            slices, _ = await self.objects.list(m.EndpointSlice, namespace)
            by_service: dict[tuple[str, str], list[m.EndpointSlice]] = {}
            for sl in slices:
                owner = (sl.metadata.labels or {}).get(SERVICE_NAME_LABEL, "")
                by_service.setdefault((sl.metadata.namespace, owner), []).append(sl)
            views = [
                endpoints_for(s, by_service.get((s.metadata.namespace, s.metadata.name), []))
                for s in services
                if s.spec.type != "ExternalName"
            ]
            return views, revision  # type: ignore[return-value]
        return await self.objects.list(type_, namespace, transform=transform)

    async def list_encoded(
        self, type_: type[m.KubeObject], namespace: str | None = None
    ) -> tuple[builtins.list[bytes], int]:
        """Every object as JSON bytes, for unfiltered lists (no decode for stored kinds)."""
        if not for_type(type_).stored:
            items, revision = await self.list(type_, namespace)
            return [msgspec.json.encode(i) for i in items], revision
        return await self.objects.list_encoded(type_, namespace)

    def watch(
        self, type_: type[T], namespace: str | None, since_revision: int,
        progress: Callable[[int], None] | None = None,
    ) -> AsyncIterator[ObjectEvent]:
        if not for_type(type_).stored:
            raise BadInput(f"watch is not supported for {for_type(type_).resource}: it is a view")
        return self.objects.watch(type_, namespace, since_revision, progress)

    async def _endpoints_view(self, service: m.Service) -> m.Endpoints:
        slices, _ = await self.objects.list(m.EndpointSlice, service.metadata.namespace)
        own = [
            s for s in slices
            if (s.metadata.labels or {}).get(SERVICE_NAME_LABEL) == service.metadata.name
        ]
        return endpoints_for(service, own)

    # --- create ------------------------------------------------------------------------------

    async def create(self, obj: T, *, dry_run: bool = False, field_manager: str = "") -> T:
        """Validate, allocate and store a new object (its fields `field_manager`'s, if named).

        Raises:
            Invalid, Forbidden, NotFound (namespace), AlreadyExists, RangeFull.
        """
        info = for_type(type(obj))
        self._check_writable(type(obj))
        meta = obj.metadata
        if not meta.name and meta.generate_name:
            meta = msgspec.structs.replace(meta, name=meta.generate_name + self._suffix())
        meta = msgspec.structs.replace(meta, deletion_timestamp=None, resource_version="")
        obj = msgspec.structs.replace(obj, metadata=meta)
        if type(obj) in _CREATE_STATUS:
            obj = msgspec.structs.replace(obj, status=_CREATE_STATUS[type(obj)])
        obj = defaults.apply_defaults(obj)
        if field_manager:
            obj = fieldmanager.track_update(None, obj, field_manager, self._now())
        errors = validation.validate(obj, None, service_cidrs=self._service_cidrs)
        if errors:
            raise Invalid(info.kind, meta.name, errors)
        if info.namespaced:
            await self._check_namespace(meta.namespace)
        if dry_run:
            return obj
        if isinstance(obj, m.Service):
            allocated = await self._allocator.allocate(obj)
            try:
                created = await self.objects.create(allocated)
            except BaseException:
                await self._allocator.release(allocated)
                raise
            self._allocated(created)
            return cast(T, created)
        return await self.objects.create(obj)

    def _now(self) -> str:
        return rfc3339(self._clock.now())

    def _allocated(self, service: m.Service) -> None:
        """Record ClusterIPAllocated for a Service just stored with the addresses the allocator
        gave it (or checked free and took for it, when it asked for some). Headless and
        ExternalName Services get none, and no event."""
        if service.spec.cluster_ip in ("", "None"):
            return
        self.events.record(service, ev.NORMAL, ev.CLUSTER_IP_ALLOCATED,
                           ev.cluster_ip_message(service))

    def _suffix(self) -> str:
        return "".join(self._rng.choice(_SUFFIX_ALPHABET) for _ in range(5))

    async def _check_namespace(self, namespace: str) -> None:
        if not namespace:
            raise Invalid("", "", [required("metadata.namespace")])
        try:
            ns = await self.objects.get(m.Namespace, "", namespace)
        except NotFound:
            raise NotFound(f'namespaces "{namespace}" not found') from None
        if ns.metadata.deletion_timestamp:
            raise Forbidden(
                f'unable to create new content in namespace {namespace} because it is being '
                "terminated"
            )

    @staticmethod
    def _check_writable(type_: type[m.KubeObject]) -> None:
        info = for_type(type_)
        if not info.stored:
            raise Forbidden(
                f"{info.resource} are read-only in clusterip: they are derived from EndpointSlices"
            )

    # --- update ------------------------------------------------------------------------------

    async def update(self, obj: T, *, dry_run: bool = False, field_manager: str = "") -> T:
        """Replace the spec and metadata of a stored object (its status is kept); the fields
        the write changes become `field_manager`'s, if it is named.

        Raises:
            NotFound, Conflict, Invalid.
        """
        self._check_writable(type(obj))
        conditional = bool(obj.metadata.resource_version)
        for _ in range(_UNCONDITIONAL_RETRIES):
            old = await self.objects.get(type(obj), obj.metadata.namespace, obj.metadata.name)
            try:
                return await self._update_once(obj, old, dry_run=dry_run,
                                               field_manager=field_manager)
            except Conflict:
                if conditional:
                    raise
        raise Conflict(f'{for_type(type(obj)).resource} "{obj.metadata.name}": too many conflicts')

    async def _update_once(self, obj: T, old: T, *, dry_run: bool, field_manager: str) -> T:
        info = for_type(type(obj))
        if obj.metadata.resource_version and (
            obj.metadata.resource_version != old.metadata.resource_version
        ):
            raise Conflict(conflict_message(info, obj.metadata.name))
        obj = _carry_server_fields(obj, old)
        obj = defaults.apply_defaults(obj)
        if field_manager:
            obj = fieldmanager.track_update(old, obj, field_manager, self._now())
        errors = validation.validate(obj, old, service_cidrs=self._service_cidrs)
        if errors:
            raise Invalid(info.kind, obj.metadata.name, errors)
        if old.metadata.deletion_timestamp and not obj.metadata.finalizers:
            return await self._finish_delete(old, dry_run=dry_run)
        if _unchanged(obj, old):
            return old
        if dry_run:
            return obj
        obj = msgspec.structs.replace(
            obj, metadata=msgspec.structs.replace(
                obj.metadata, resource_version=old.metadata.resource_version
            )
        )
        if isinstance(obj, m.Service) and isinstance(old, m.Service):
            return await self._update_service(obj, old)  # type: ignore[return-value]
        return await self.objects.update(obj, old=old)

    async def _update_service(self, new: m.Service, old: m.Service) -> m.Service:
        """An update may turn a Service into or out of ExternalName: allocate or release then."""
        if new.spec.type != "ExternalName" and not new.spec.cluster_ip:
            allocated = await self._allocator.allocate(new)
            try:
                updated = await self.objects.update(allocated, old=old)
            except BaseException:
                await self._allocator.release(allocated)
                raise
            self._allocated(updated)
            return updated
        updated = await self.objects.update(new, old=old)
        if old.spec.cluster_ip and not new.spec.cluster_ip:
            await self._allocator.release(old)
        return updated

    async def apply(self, type_: type[T], namespace: str, name: str, config: dict[str, Any], *,
                    field_manager: str, force: bool = False, dry_run: bool = False
                    ) -> tuple[T, bool]:
        """Server-side apply of `config` (a manifest as the client sent it) by `field_manager`:
        creates the object when it does not exist. Returns the object and whether it was
        created.

        Raises:
            ApplyConflict (the config changes fields other managers own, without `force`),
            DecodeError, Invalid, and what create and update raise.
        """
        self._check_writable(type_)
        for _ in range(_UNCONDITIONAL_RETRIES):
            try:
                live: T | None = await self.objects.get(type_, namespace, name)
            except NotFound:
                live = None
            applied = fieldmanager.apply(
                codec.to_dict(live) if live is not None else None, config, field_manager,
                force=force, schema=schema_of(type_), now=self._now())
            obj = codec.convert(applied, type_)
            meta = msgspec.structs.replace(
                obj.metadata, name=name, namespace=namespace,
                resource_version=live.metadata.resource_version if live is not None else "")
            obj = msgspec.structs.replace(obj, metadata=meta)
            try:
                if live is None:
                    return await self.create(obj, dry_run=dry_run), True
                return await self.update(obj, dry_run=dry_run), False
            except (AlreadyExists, Conflict):
                pass  # another writer came first: apply to what it wrote
        raise Conflict(f'{for_type(type_).resource} "{name}": too many conflicting writers')

    async def update_status(self, obj: T, *, dry_run: bool = False) -> T:
        """Write only `status` (the `/status` subresource); everything else stays as stored."""
        info = for_type(type(obj))
        self._check_writable(type(obj))
        if type(obj) not in _HAS_STATUS:
            raise NotFound(f"{info.resource} have no status subresource")
        for _ in range(_UNCONDITIONAL_RETRIES):
            old = await self.objects.get(type(obj), obj.metadata.namespace, obj.metadata.name)
            if obj.metadata.resource_version and (
                obj.metadata.resource_version != old.metadata.resource_version
            ):
                raise Conflict(conflict_message(info, obj.metadata.name))
            new = msgspec.structs.replace(old, status=obj.status)  # type: ignore[attr-defined]
            if new == old:
                return old
            errors = validation.validate(new, old, service_cidrs=self._service_cidrs)
            if errors:
                raise Invalid(info.kind, obj.metadata.name, errors)
            if dry_run:
                return new
            try:
                return await self.objects.update(new, old=old)
            except Conflict:
                if obj.metadata.resource_version:
                    raise
        raise Conflict(f'{info.resource} "{obj.metadata.name}": too many conflicts')

    # --- delete ------------------------------------------------------------------------------

    async def delete(
        self,
        type_: type[T],
        namespace: str,
        name: str,
        *,
        resource_version: str = "",
        dry_run: bool = False,
        grace_period_seconds: int | None = None,
    ) -> T:
        """Delete an object; with finalizers, or a pod on a node, it is only marked terminating.

        A pod bound to a node is deleted gracefully, as Kubernetes does: the first delete sets
        `deletionTimestamp` and `deletionGracePeriodSeconds` (the request's grace period, or the
        pod's `terminationGracePeriodSeconds`); the node agent stops its processes within that
        time and then deletes it with grace period 0, which removes it. A grace period of 0 from
        the start removes it at once.

        Returns the deleted (or marked) object, its resourceVersion the revision of the write.
        """
        self._check_writable(type_)
        if type_ is m.Namespace and name in _PROTECTED_NAMESPACES:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted')
        obj = await self.objects.get(type_, namespace, name)
        if resource_version and resource_version != obj.metadata.resource_version:
            raise Conflict(conflict_message(for_type(type_), name))
        if dry_run:
            return obj
        if isinstance(obj, m.Pod):
            grace = _pod_grace(obj, grace_period_seconds)
            if grace > 0:
                return await self._mark_terminating(obj, grace)  # type: ignore[return-value]
        if obj.metadata.finalizers or isinstance(obj, m.Namespace):
            if not obj.metadata.deletion_timestamp:
                marked = msgspec.structs.replace(
                    obj.metadata, deletion_timestamp=rfc3339(self._clock.now())
                )
                obj = await self.objects.update(
                    msgspec.structs.replace(obj, metadata=marked), old=obj
                )
            if obj.metadata.finalizers:
                return obj
        return await self._finish_delete(obj, dry_run=False)

    async def _mark_terminating(self, pod: m.Pod, grace: int) -> m.Pod:
        """Set the pod's deletionTimestamp (once; a later delete may only shorten the grace)."""
        meta = pod.metadata
        if meta.deletion_timestamp and (meta.deletion_grace_period_seconds or 0) <= grace:
            return pod
        marked = msgspec.structs.replace(
            meta,
            deletion_timestamp=meta.deletion_timestamp or rfc3339(self._clock.now()),
            deletion_grace_period_seconds=grace,
        )
        return await self.objects.update(msgspec.structs.replace(pod, metadata=marked), old=pod)

    async def _finish_delete(self, obj: T, *, dry_run: bool) -> T:
        if dry_run:
            return obj
        if isinstance(obj, m.Namespace):
            await self._delete_contents(obj.metadata.name)
        deleted = await self.objects.delete(
            type(obj), obj.metadata.namespace, obj.metadata.name,
            resource_version=obj.metadata.resource_version,
        )
        if isinstance(deleted, m.Service):
            await self._allocator.release(deleted)
        return deleted

    async def _delete_contents(self, namespace: str) -> None:
        for info in KINDS:
            if not (info.namespaced and info.stored):
                continue
            items, _ = await self.objects.list(info.type, namespace)
            for item in items:
                try:
                    await self._finish_delete(item, dry_run=False)
                except NotFound:
                    pass

    # --- bootstrap ---------------------------------------------------------------------------

    async def bootstrap(self, *, api_port: int) -> None:
        """Create what always exists: the system namespaces and the `kubernetes` and `kube-dns`
        Services (which get the first and the tenth address of the service CIDR)."""
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            await self._ensure(m.Namespace(metadata=m.ObjectMeta(name=name)))
        await self._ensure(_kubernetes_service(api_port))
        await self._ensure(_kube_dns_service())

    async def _ensure(self, obj: m.KubeObject) -> None:
        """Create unless it exists; reading first keeps a restart from writing anything."""
        try:
            await self.objects.get(type(obj), obj.metadata.namespace, obj.metadata.name)
        except NotFound:
            try:
                await self.create(obj)
            except AlreadyExists:
                pass


def _pod_grace(pod: m.Pod, requested: int | None) -> int:
    """The grace period of a pod's deletion: none for a pod no node runs, else the request's,
    else the pod's own (Kubernetes' default is 30 s)."""
    if not pod.spec.node_name:
        return 0
    if requested is not None:
        return max(0, requested)
    spec_grace = pod.spec.termination_grace_period_seconds
    return 30 if spec_grace is None else max(0, spec_grace)


def _unchanged(obj: T, old: T) -> bool:
    """Whether writing `obj` over `old` would change nothing (then nothing is written, and the
    resourceVersion stays: a no-op apply is reported as unchanged)."""
    meta = msgspec.structs.replace(
        obj.metadata,
        resource_version=old.metadata.resource_version,
        generation=old.metadata.generation,
        uid=old.metadata.uid,
        creation_timestamp=old.metadata.creation_timestamp,
    )
    candidate = msgspec.structs.replace(
        obj, metadata=meta, api_version=old.api_version, kind=old.kind
    )
    return bool(candidate == old)


def _carry_server_fields(obj: T, old: T) -> T:
    """Fields the server owns survive an update that does not mention them (as kube does)."""
    meta = msgspec.structs.replace(
        obj.metadata,
        deletion_timestamp=old.metadata.deletion_timestamp,
        managed_fields=obj.metadata.managed_fields or old.metadata.managed_fields,
    )
    obj = msgspec.structs.replace(obj, metadata=meta)
    if type(obj) in _HAS_STATUS:
        obj = msgspec.structs.replace(obj, status=old.status)  # type: ignore[attr-defined]
    carry = _CARRY.get(type(obj))
    return carry(obj, old) if carry else obj


def _carry_service(new: m.Service, old: m.Service) -> m.Service:
    spec = new.spec
    if not spec.cluster_ip and old.spec.cluster_ip and spec.type != "ExternalName":
        spec = msgspec.structs.replace(
            spec,
            cluster_ip=old.spec.cluster_ip,
            cluster_ips=spec.cluster_ips or old.spec.cluster_ips,
            ip_families=spec.ip_families or old.spec.ip_families,
            ip_family_policy=spec.ip_family_policy or old.spec.ip_family_policy,
        )
    return msgspec.structs.replace(new, spec=spec)


def _carry_pod(new: m.Pod, old: m.Pod) -> m.Pod:
    if not new.spec.node_name and old.spec.node_name:
        return msgspec.structs.replace(
            new, spec=msgspec.structs.replace(new.spec, node_name=old.spec.node_name)
        )
    return new


_CARRY: dict[type[m.KubeObject], Callable[[Any, Any], Any]] = {
    m.Service: _carry_service,
    m.Pod: _carry_pod,
}


def _kubernetes_service(api_port: int) -> m.Service:
    return m.Service(
        metadata=m.ObjectMeta(
            name="kubernetes",
            namespace="default",
            labels={"component": "apiserver", "provider": "kubernetes"},
        ),
        spec=m.ServiceSpec(
            type="ClusterIP",
            ports=(m.ServicePort(name="https", protocol="TCP", port=443, target_port=api_port),),
        ),
    )


def _kube_dns_service() -> m.Service:
    return m.Service(
        metadata=m.ObjectMeta(
            name="kube-dns",
            namespace="kube-system",
            labels={"k8s-app": "kube-dns", "kubernetes.io/name": "clusterip-dns"},
        ),
        spec=m.ServiceSpec(
            type="ClusterIP",
            ports=(
                m.ServicePort(name="dns", protocol="UDP", port=53, target_port=53),
                m.ServicePort(name="dns-tcp", protocol="TCP", port=53, target_port=53),
            ),
        ),
    )
