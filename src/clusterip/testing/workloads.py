"""Workloads for the end-to-end tests of a running node: manifests as JSON-ready dicts, and
small helpers to create them, read them back and run programs inside pods.

The manifests are what a user would write; the programs the pods run are the tests' own
(``tests/e2e/data``), started with this interpreter.
"""

from __future__ import annotations

import subprocess
from typing import Any

from clusterip.testing.process import Node, eventually

__all__ = [
    "DEPLOYMENTS",
    "PODS",
    "SERVICES",
    "SLICES",
    "create",
    "deployment",
    "pod",
    "pod_exec",
    "pod_popen",
    "pods_of",
    "ready_endpoints",
    "service",
    "wait_running",
]

PODS = "/api/v1/namespaces/default/pods"
SERVICES = "/api/v1/namespaces/default/services"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str, command: list[str], *, replicas: int = 3, port: int = 8080,
               protocol: str = "TCP", http_probe: bool = True) -> dict[str, Any]:
    """A Deployment of `replicas` pods labelled ``app: <name>`` running `command`, with the
    container port ``serve`` and (for HTTP servers) a 1 s readiness probe on it."""
    container: dict[str, Any] = {
        "name": "server", "command": command,
        "ports": [{"name": "serve", "containerPort": port, "protocol": protocol}],
    }
    if http_probe:
        container["readinessProbe"] = {"httpGet": {"path": "/", "port": "serve"},
                                       "periodSeconds": 1, "failureThreshold": 1}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 5,
                                       "containers": [container]}}},
    }


def service(name: str, *, app: str | None = None, port: int = 80, target: int | str = "serve",
            protocol: str = "TCP", **spec: Any) -> dict[str, Any]:
    """A ClusterIP Service selecting ``app: <app or name>`` with one port."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": app or name},
                     "ports": [{"name": "main", "port": port, "targetPort": target,
                                "protocol": protocol}], **spec}}


def pod(name: str, command: list[str] | None = None) -> dict[str, Any]:
    """A bare Pod (default: a client that sleeps, for exec)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main",
                                     "command": command or ["sleep", "infinity"]}]}}


def create(node: Node, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body`; asserts 201 and returns the created object."""
    status, created = node.server.request("POST", path, body)
    assert status == 201, created
    return created  # type: ignore[no-any-return]


def pods_of(node: Node, app: str) -> list[dict[str, Any]]:
    """The pods labelled ``app: <app>``."""
    return node.server.get(f"{PODS}?labelSelector=app%3D{app}")["items"]  # type: ignore[no-any-return]


def ready_endpoints(node: Node, service_name: str) -> dict[str, bool]:
    """Endpoint address → ready, from the service's EndpointSlices."""
    body = node.server.get(f"{SLICES}?labelSelector=kubernetes.io/service-name%3D{service_name}")
    return {a: bool(e["conditions"].get("ready")) for sl in body["items"]
            for e in sl.get("endpoints", []) for a in e["addresses"]}


def wait_running(node: Node, name: str, timeout: float = 20) -> dict[str, Any]:
    """Wait until pod `name` is Running; returns it."""
    def running() -> dict[str, Any] | None:
        found = node.server.get(f"{PODS}/{name}")
        return found if found["status"].get("phase") == "Running" else None
    return eventually(running, timeout=timeout)  # type: ignore[no-any-return]


def _pod_argv(node: Node, name: str, argv: list[str]) -> list[str]:
    uid = node.server.get(f"{PODS}/{name}")["metadata"]["uid"]
    return ["ip", "netns", "exec", node.pod_netns(uid), *argv]


def pod_exec(node: Node, name: str, argv: list[str], timeout: float = 60
             ) -> subprocess.CompletedProcess[str]:
    """Run `argv` in pod `name`'s network namespace (with its resolv.conf), to the end."""
    return subprocess.run(_pod_argv(node, name, argv), capture_output=True, text=True,
                          timeout=timeout)


def pod_popen(node: Node, name: str, argv: list[str]) -> subprocess.Popen[str]:
    """Start `argv` in pod `name`'s network namespace; the caller waits for it."""
    return subprocess.Popen(_pod_argv(node, name, argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)

