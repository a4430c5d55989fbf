"""Version and discovery documents, built from the kinds table.

`/version` reports Kubernetes 1.32 (the kubectl dispatcher on these machines runs the kubectl
binary matching the server's minor version). The legacy discovery documents (`/api`, `/apis`,
`/api/v1`, `/apis/{group}/{version}`) list every kind of `core.kinds` with its verbs and short
names; the Python client's DynamicClient and older tools read these.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from clusterip import __version__
from clusterip.core.kinds import KINDS

__all__ = ["api_groups", "api_versions", "resource_list", "version"]

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": f"v1.32.0-clusterip.{__version__}",
    "gitCommit": "",
    "gitTreeState": "clean",
    "buildDate": "2026-11-26T00:00:00Z",
    "goVersion": "python",
    "compiler": "cpython",
    "platform": "linux/amd64",
}

_SUBRESOURCES = {"services": ("status",), "pods": ("status",), "deployments": ("status",),
                 "nodes": ("status",), "namespaces": ("status",)}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status,
                        content_type="application/json")


async def version(request: web.Request) -> web.Response:
    return _json(VERSION_INFO)


async def api_versions(request: web.Request) -> web.Response:
    return _json({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": request.host},
        ],
    })


def _groups() -> dict[str, str]:
    return {k.group: k.version for k in KINDS if k.group}


async def api_groups(request: web.Request) -> web.Response:
    groups = []
    for group, ver in sorted(_groups().items()):
        gv = {"groupVersion": f"{group}/{ver}", "version": ver}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})


async def resource_list(request: web.Request) -> web.Response:
    group = request.match_info.get("group", "")
    ver = request.match_info.get("version", "v1")
    kinds = [k for k in KINDS if k.group == group and k.version == ver]
    if not kinds:
        return _json({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                      "message": "the server could not find the requested resource",
                      "reason": "NotFound", "code": 404}, status=404)
    resources: list[dict[str, Any]] = []
    for k in kinds:
        resources.append({
            "name": k.resource, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": list(k.verbs), "shortNames": list(k.short_names),
        })
        for sub in _SUBRESOURCES.get(k.resource, ()):
            resources.append({"name": f"{k.resource}/{sub}", "singularName": "",
                              "namespaced": k.namespaced, "kind": k.kind,
                              "verbs": ["get", "patch", "update"]})
    gv = f"{group}/{ver}" if group else ver
    return _json({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                  "resources": resources})
