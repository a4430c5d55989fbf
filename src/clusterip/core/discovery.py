"""What a client learns before it calls the API: the version and the discovery documents.

Built from the kinds table (`core.kinds`) as plain data; `apiserver.discovery` serves them.
Kubernetes has two forms of discovery, and clients use both:

* aggregated (`apidiscovery.k8s.io/v2`): `/api` answers with one APIGroupDiscoveryList for the
  core group, `/apis` with one for the named groups, each resource with its verbs, short names,
  categories and subresources. kubectl asks for this form first (by its Accept header) and then
  needs nothing else: two requests.
* legacy: `/api` (APIVersions), `/apis` (APIGroupList), then one APIResourceList per
  group-version (`/api/v1`, `/apis/apps/v1`...), where a subresource is a resource of its own
  named `services/status`. The Python client's DynamicClient and older tools read these.

Both say the same: every kind, its verbs (only those the API serves: no `deletecollection`),
its subresources, and its categories (`kubectl get all`). Empty lists are left out, as
kube-apiserver leaves them out.

`/version` reports Kubernetes 1.32: the kubectl on these machines is a dispatcher that runs the
kubectl binary matching the server's minor version, so the minor decides which kubectl runs.
"""

from __future__ import annotations

from typing import Any

from clusterip import __version__
from clusterip.core.kinds import KINDS, KindInfo

__all__ = [
    "AGGREGATED_CONTENT_TYPE",
    "KUBERNETES_VERSION",
    "VERSION_INFO",
    "aggregated_discovery",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "group_versions",
]

KUBERNETES_VERSION = "v1.32.0"

VERSION_INFO: dict[str, str] = {
    "major": "1",
    "minor": "32",
    "gitVersion": f"{KUBERNETES_VERSION}-clusterip.{__version__}",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

# kubectl parses an aggregated body only under exactly this type; under plain application/json it
# reads it as a legacy document and finds no resources at all.
AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def group_versions() -> tuple[tuple[str, str], ...]:
    """Every (group, version) served, the core group ("") first, then by name."""
    return tuple(sorted({(k.group, k.version) for k in KINDS}))


def _kinds_of(group: str, version: str) -> list[KindInfo]:
    return [k for k in KINDS if k.group == group and k.version == version]


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _lists(**lists: tuple[str, ...]) -> dict[str, list[str]]:
    return {name: list(values) for name, values in lists.items() if values}


# --- legacy -----------------------------------------------------------------------------------


def api_versions(server_address: str) -> dict[str, Any]:
    """`/api`: the core group's versions, and the address clients reached the server at."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address},
        ],
    }


def api_group_list() -> dict[str, Any]:
    """`/apis`: the named groups and their versions."""
    groups = []
    for group, version in group_versions():
        if group:
            gv = {"groupVersion": _group_version(group, version), "version": version}
            groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    """`/api/v1`, `/apis/{group}/{version}`: the resources of one group-version; None for a
    group-version that is not served."""
    kinds = _kinds_of(group, version)
    if not kinds:
        return None
    resources: list[dict[str, Any]] = []
    for k in kinds:
        resources.append({
            "name": k.resource, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": list(k.verbs),
            **_lists(shortNames=k.short_names, categories=k.categories),
        })
        resources += [
            {"name": f"{k.resource}/{sub.name}", "singularName": "", "namespaced": k.namespaced,
             **({"group": sub.group, "version": sub.version} if sub.kind else {}),
             "kind": sub.kind or k.kind, "verbs": list(sub.verbs)}
            for sub in k.subresources
        ]
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": _group_version(group, version), "resources": resources}


# --- aggregated -------------------------------------------------------------------------------


def aggregated_discovery(*, core: bool) -> dict[str, Any]:
    """`/api` (core=True: the core group) or `/apis` (the named groups) in the aggregated form."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for group, version in group_versions():
        if (group == "") != core:
            continue
        resources = [_resource_discovery(k) for k in _kinds_of(group, version)]
        by_group.setdefault(group, []).append(
            {"version": version, "resources": resources, "freshness": "Current"})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": [{"metadata": {"name": group}, "versions": versions}
                  for group, versions in by_group.items()],
    }


def _resource_discovery(k: KindInfo) -> dict[str, Any]:
    response_kind = {"group": k.group, "version": k.version, "kind": k.kind}
    doc: dict[str, Any] = {
        "resource": k.resource,
        "responseKind": response_kind,
        "scope": "Namespaced" if k.namespaced else "Cluster",
        "singularResource": k.singular,
        "verbs": list(k.verbs),
        **_lists(shortNames=k.short_names, categories=k.categories),
    }
    if k.subresources:
        doc["subresources"] = [
            {"subresource": sub.name,
             "responseKind": ({"group": sub.group, "version": sub.version, "kind": sub.kind}
                              if sub.kind else response_kind),
             "verbs": list(sub.verbs)}
            for sub in k.subresources
        ]
    return doc
