"""The table of kinds clusterip serves: Go-style names, REST resource names, scope, storage.

One row per kind. Everything that differs between kinds and is not behaviour lives here: the
API group and version, the plural resource name used in REST paths and store keys, short names
for the CLI (`svc`, `ep`, `ev`...), whether the kind is namespaced, whether it is stored or derived
(Endpoints is a read-only view computed from EndpointSlices), the verbs and subresources the API
serves for it, and its categories (`kubectl get all` lists the kinds in "all"). The API server's
discovery and OpenAPI documents, the CLI's `get KIND`, and the store's key layout are all read
from this table.
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterip.core import model
from clusterip.core.errors import UnknownKind, UnknownResource

__all__ = ["KINDS", "KindInfo", "Subresource", "by_api_kind", "by_resource", "for_type", "lookup"]


@dataclass(frozen=True, slots=True)
class Subresource:
    """A subresource served under an object's path (`.../services/web/status`). Discovery
    names the parent's kind as its kind, as kube-apiserver does for `status` and `log`, unless
    it has a kind of its own (`scale` answers with an autoscaling/v1 Scale: `kubectl scale`
    looks that kind up in discovery)."""

    name: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""
    kind: str = ""


STATUS = Subresource("status", ("get", "patch", "update"))
LOG = Subresource("log", ("get",))
SCALE = Subresource("scale", ("get", "patch", "update"), "autoscaling", "v1", "Scale")


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: str
    group: str
    version: str
    resource: str
    singular: str
    short_names: tuple[str, ...]
    namespaced: bool
    type: type[model.KubeObject]
    stored: bool = True
    verbs: tuple[str, ...] = (
        "create", "delete", "get", "list", "patch", "update", "watch",
    )
    subresources: tuple[Subresource, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def key(self, namespace: str, name: str) -> str:
        """The store key, laid out like kube-apiserver's `/registry/<resource>/<ns>/<name>`."""
        if self.namespaced:
            return f"/registry/{self.resource}/{namespace}/{name}"
        return f"/registry/{self.resource}/{name}"

    def prefix(self, namespace: str | None = None) -> str:
        if self.namespaced and namespace:
            return f"/registry/{self.resource}/{namespace}/"
        return f"/registry/{self.resource}/"


KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "", "v1", "namespaces", "namespace", ("ns",), False, model.Namespace,
             subresources=(STATUS,)),
    KindInfo("Service", "", "v1", "services", "service", ("svc",), True, model.Service,
             subresources=(STATUS,), categories=("all",)),
    KindInfo("Pod", "", "v1", "pods", "pod", ("po",), True, model.Pod,
             subresources=(STATUS, LOG), categories=("all",)),
    KindInfo("Endpoints", "", "v1", "endpoints", "endpoints", ("ep",), True, model.Endpoints,
             stored=False, verbs=("get", "list")),
    KindInfo("Node", "", "v1", "nodes", "node", ("no",), False, model.Node,
             subresources=(STATUS,)),
    KindInfo("Event", "", "v1", "events", "event", ("ev",), True, model.Event),
    KindInfo("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", "endpointslice", (),
             True, model.EndpointSlice),
    KindInfo("Deployment", "apps", "v1", "deployments", "deployment", ("deploy",), True,
             model.Deployment, subresources=(STATUS, SCALE), categories=("all",)),
    KindInfo("IPAddress", "networking.k8s.io", "v1", "ipaddresses", "ipaddress", ("ip",), False,
             model.IPAddress),
    KindInfo("ServiceCIDR", "networking.k8s.io", "v1", "servicecidrs", "servicecidr", (), False,
             model.ServiceCIDR, subresources=(STATUS,)),
    KindInfo("Lease", "coordination.k8s.io", "v1", "leases", "lease", (), True, model.Lease),
)

_BY_API_KIND = {(k.api_version, k.kind): k for k in KINDS}
_BY_RESOURCE = {(k.group, k.resource): k for k in KINDS}
_BY_TYPE: dict[type[model.KubeObject], KindInfo] = {k.type: k for k in KINDS}
_BY_NAME: dict[str, KindInfo] = {}
for _k in KINDS:
    for _name in (_k.kind.lower(), _k.resource, _k.singular, *_k.short_names):
        _BY_NAME[_name] = _k
    _BY_NAME[f"{_k.resource}.{_k.group}"] = _k
    _BY_NAME[f"{_k.kind.lower()}.{_k.group}"] = _k


def by_api_kind(api_version: str, kind: str) -> KindInfo:
    """The row for a manifest's `apiVersion` and `kind`."""
    try:
        return _BY_API_KIND[(api_version, kind)]
    except KeyError:
        known = sorted({k.kind for k in KINDS})
        if any(k.kind == kind for k in KINDS):
            want = next(k.api_version for k in KINDS if k.kind == kind)
            raise UnknownKind(
                f'no kind "{kind}" is registered for version "{api_version}": use "{want}"'
            ) from None
        raise UnknownKind(
            f'no kind "{kind}" is registered for version "{api_version}"; '
            f"clusterip serves {', '.join(known)}"
        ) from None


def by_resource(group: str, resource: str) -> KindInfo:
    """The row for a REST path's group and plural resource name."""
    try:
        return _BY_RESOURCE[(group, resource)]
    except KeyError:
        raise UnknownResource(
            f'the server could not find the requested resource "{resource}"'
        ) from None


def lookup(name: str) -> KindInfo:
    """The row for what a user types: `svc`, `services`, `Service`,
    `endpointslices.discovery.k8s.io`."""
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        raise UnknownKind(f'the server doesn\'t have a resource type "{name}"') from None


def for_type(type_: type[model.KubeObject]) -> KindInfo:
    """The row for a model class (`model.Service` → services)."""
    return _BY_TYPE[type_]
