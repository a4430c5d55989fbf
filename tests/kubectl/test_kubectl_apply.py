"""kubectl changes objects the ways its users do: `apply -f` (client-side, a strategic merge
patch with `$setElementOrder` and `$patch: delete` computed from the last-applied annotation),
`apply --server-side` (field managers, conflicts, `--force-conflicts`), `delete -f`, `scale`,
`label` and `replace -f`. A change that makes an object invalid is refused and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from clusterip.testing.kubectl import Kubectl

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: metrics, port: 9090}
"""
# the metrics port renumbered, the selector changed
CHANGED = SERVICE.replace("9090", "9091").replace("selector: {app: web}", "selector: {app: web2}")

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        command: [sleep, 1d]
        env:
        - {name: A, value: "1"}
        - {name: B, value: "2"}
"""


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def get(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(ok(kubectl("get", *args, "-o", "json")))


def ports(kubectl: Kubectl) -> list[tuple[str, int, Any]]:
    return [(p["name"], p["port"], p["targetPort"])
            for p in get(kubectl, "svc", "web")["spec"]["ports"]]


def test_apply_twice_with_a_change_then_unchanged(kubectl: Kubectl) -> None:
    assert ok(kubectl("apply", "-f", "-", input=SERVICE)) == "service/web created\n"
    assert ok(kubectl("apply", "-f", "-", input=CHANGED)) == "service/web configured\n"
    assert ports(kubectl) == [("http", 80, 8080), ("metrics", 9091, 9091)]
    assert get(kubectl, "svc", "web")["spec"]["selector"] == {"app": "web2"}
    assert ok(kubectl("apply", "-f", "-", input=CHANGED)) == "service/web unchanged\n"


def test_apply_changes_a_container_image_and_removes_an_env_var(kubectl: Kubectl) -> None:
    ok(kubectl("apply", "-f", "-", input=DEPLOYMENT))
    changed = DEPLOYMENT.replace("nginx:1.27", "nginx:1.28").replace(
        '        - {name: B, value: "2"}\n', "")
    assert ok(kubectl("apply", "-f", "-", input=changed)) == "deployment.apps/web configured\n"
    [container] = get(kubectl, "deploy", "web")["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["env"]) == ("nginx:1.28", [{"name": "A", "value": "1"}])


def test_apply_of_an_invalid_change_is_refused_and_changes_nothing(kubectl: Kubectl) -> None:
    ok(kubectl("apply", "-f", "-", input=SERVICE))
    before = get(kubectl, "svc", "web")
    result = kubectl("apply", "-f", "-", input=SERVICE.replace("8080", "70000"))
    assert result.returncode == 1
    assert ('The Service "web" is invalid: spec.ports[0].targetPort: Invalid value: 70000: '
            "must be between 1 and 65535, inclusive") in result.stderr
    assert get(kubectl, "svc", "web") == before


def test_apply_server_side_creates_then_changes(kubectl: Kubectl) -> None:
    created = kubectl("apply", "--server-side", "-f", "-", input=SERVICE)
    assert ok(created) == "service/web serverside-applied\n"
    changed = kubectl("apply", "--server-side", "-f", "-", input=CHANGED)
    assert ok(changed) == "service/web serverside-applied\n"
    assert ports(kubectl) == [("http", 80, 8080), ("metrics", 9091, 9091)]  # 9090 was dropped
    obj = get(kubectl, "svc", "web", "--show-managed-fields")
    assert [(e["manager"], e["operation"]) for e in obj["metadata"]["managedFields"]] == [
        ("kubectl", "Apply")]


def test_server_side_apply_conflicts_with_client_side_apply_unless_forced(kubectl: Kubectl
                                                                          ) -> None:
    ok(kubectl("apply", "-f", "-", input=SERVICE))
    retargeted = SERVICE.replace("8080", "8081")
    refused = kubectl("apply", "--server-side", "-f", "-", input=retargeted)
    assert refused.returncode == 1
    assert refused.stderr.startswith(
        'error: Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using '
        "v1: .spec.ports[port=80].targetPort\n")
    forced = kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", input=retargeted)
    assert (ok(forced), forced.stderr) == ("service/web serverside-applied\n", "")
    assert ports(kubectl)[0] == ("http", 80, 8081)


def test_delete_f(kubectl: Kubectl) -> None:
    ok(kubectl("apply", "-f", "-", input=SERVICE))
    assert ok(kubectl("delete", "-f", "-", input=SERVICE)) == 'service "web" deleted\n'
    assert "NotFound" in kubectl("get", "svc", "web").stderr


def test_scale_deployment(kubectl: Kubectl) -> None:
    ok(kubectl("apply", "-f", "-", input=DEPLOYMENT))
    assert ok(kubectl("scale", "deployment", "web", "--replicas=3")) == (
        "deployment.apps/web scaled\n")
    assert get(kubectl, "deploy", "web")["spec"]["replicas"] == 3


def test_label_svc(kubectl: Kubectl) -> None:
    ok(kubectl("apply", "-f", "-", input=SERVICE))
    assert ok(kubectl("label", "svc", "web", "tier=front")) == "service/web labeled\n"
    assert get(kubectl, "svc", "web")["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert ok(kubectl("label", "svc", "web", "tier-")) == "service/web unlabeled\n"
    assert get(kubectl, "svc", "web")["metadata"]["labels"] == {"app": "web"}


def test_replace_f_and_a_stale_replace(kubectl: Kubectl) -> None:
    ok(kubectl("create", "-f", "-", input=SERVICE))
    live = yaml.safe_load(ok(kubectl("get", "svc", "web", "-o", "yaml")))
    live["spec"]["selector"] = {"app": "other"}
    manifest = yaml.safe_dump(live)
    assert ok(kubectl("replace", "-f", "-", input=manifest)) == "service/web replaced\n"
    assert get(kubectl, "svc", "web")["spec"]["selector"] == {"app": "other"}
    stale = kubectl("replace", "-f", "-", input=manifest)  # its resourceVersion is the old one
    assert stale.returncode == 1
    assert stale.stderr == (
        'Error from server (Conflict): error when replacing "STDIN": Operation cannot be '
        'fulfilled on services "web": the object has been modified; please apply your changes '
        "to the latest version and try again\n")
