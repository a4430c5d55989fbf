"""Kubernetes REST paths → what they address (pure).

    /api/v1/namespaces                          collection of namespaces
    /api/v1/namespaces/{ns}                     one namespace  (+ /status)
    /api/v1/{resource}                          a cluster-scoped collection, or every namespace
    /api/v1/namespaces/{ns}/{resource}[/{name}[/{subresource}]]
    /apis/{group}/{version}/...                 the same under a named group
"""

from __future__ import annotations

from dataclasses import dataclass

from clusterip.core.errors import UnknownResource
from clusterip.core.kinds import KindInfo, by_resource

__all__ = ["Target", "parse_path"]


@dataclass(frozen=True, slots=True)
class Target:
    info: KindInfo
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str = ""
    subresource: str = ""


def parse_path(path: str) -> Target:
    """Raises UnknownResource (404) for paths that address nothing clusterip serves."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise UnknownResource(f"the server could not find the requested resource ({path})")
    if not rest:
        raise UnknownResource(f"the server could not find the requested resource ({path})")
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise UnknownResource(f"the server could not find the requested resource ({path})")
    info = by_resource(group, rest[0])
    if info.version != version:
        raise UnknownResource(f"the server could not find the requested resource ({path})")
    if namespace is not None and not info.namespaced:
        raise UnknownResource(f"the server could not find the requested resource ({path})")
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if info.kind == "Namespace" and name:
        namespace = None
    return Target(info, namespace, name, subresource)
