"""kubectl's `create` generators: `kubectl create namespace|deployment|service ...`.

These send their object as Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), not
JSON, and client-go does not fall back to JSON when the server refuses it; the server reads it
with `core.protobuf` (golden bytes of each command are in tests/data/kubectl-protobuf). Each
test creates with the generator and checks the stored object with `kubectl get -o json`.
"""

from __future__ import annotations

import json
from typing import Any

from clusterip.testing.kubectl import Kubectl


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def get(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(ok(kubectl("get", *args, "-o", "json")))


def test_create_namespace(kubectl: Kubectl) -> None:
    assert ok(kubectl("create", "namespace", "x1")) == "namespace/x1 created\n"
    ns = get(kubectl, "namespace", "x1")
    assert ns["metadata"]["name"] == "x1"
    assert ns["metadata"]["creationTimestamp"]
    assert ok(kubectl("create", "deployment", "web", "--image=nginx", "-n", "x1")) == (
        "deployment.apps/web created\n")


def test_create_deployment_with_replicas_and_a_command(kubectl: Kubectl) -> None:
    created = kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2",
                      "--", "sleep", "1d")
    assert ok(created) == "deployment.apps/web created\n"
    deployment = get(kubectl, "deployment", "web")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "web"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"], container["command"]) == (
        "nginx", "nginx", ["sleep", "1d"])


def test_create_service_clusterip(kubectl: Kubectl) -> None:
    created = kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    assert ok(created) == "service/web created\n"
    service = get(kubectl, "service", "web")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"app": "web"}
    assert [(p["name"], p["protocol"], p["port"], p["targetPort"])
            for p in service["spec"]["ports"]] == [("80-8080", "TCP", 80, 8080)]
    assert service["spec"]["clusterIP"] not in ("", "None")


def test_create_service_clusterip_headless(kubectl: Kubectl) -> None:
    created = kubectl("create", "service", "clusterip", "headless", "--clusterip=None")
    assert ok(created) == "service/headless created\n"
    service = get(kubectl, "service", "headless")
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"].get("ports", []) == []


def test_create_service_externalname(kubectl: Kubectl) -> None:
    created = kubectl("create", "service", "externalname", "ext",
                      "--external-name=example.com")
    assert ok(created) == "service/ext created\n"
    service = get(kubectl, "service", "ext")
    assert (service["spec"]["type"], service["spec"]["externalName"]) == (
        "ExternalName", "example.com")


def test_create_twice_is_already_exists(kubectl: Kubectl) -> None:
    ok(kubectl("create", "namespace", "x1"))
    again = kubectl("create", "namespace", "x1")
    assert again.returncode == 1
    assert 'namespaces "x1" already exists' in again.stderr


def test_create_dry_run_server_stores_nothing(kubectl: Kubectl) -> None:
    created = kubectl("create", "service", "clusterip", "web", "--tcp=80:8080",
                      "--dry-run=server")
    assert ok(created) == "service/web created (server dry run)\n"
    assert "NotFound" in kubectl("get", "service", "web").stderr
