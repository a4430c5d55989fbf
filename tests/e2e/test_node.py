"""The node agent end to end, as root: `clusterip up --netns NAME` runs real pods.

Each test gets its own node namespace (the `node` fixture), which is gone afterwards with
everything in it; the host namespace is checked to be untouched. Pods run `data/webserver.py`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clusterip.core.naming import pod_id
from clusterip.testing.process import Node, eventually

pytestmark = pytest.mark.root

WEBSERVER = Path(__file__).resolve().parent / "data" / "webserver.py"
POD_CIDR = ipaddress.ip_network("10.244.0.0/24")
PODS = "/api/v1/namespaces/default/pods"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def deployment(node: Node, name: str = "web", replicas: int = 3) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "server",
                        "command": [sys.executable, str(WEBSERVER), "8080", str(node.state)],
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                           "periodSeconds": 1, "failureThreshold": 1},
                    }],
                },
            },
        },
    }


def service(name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}


def client_pod() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"containers": [{"name": "main", "command": ["sleep", "infinity"]}]}}


def create(node: Node, path: str, body: dict[str, Any]) -> dict[str, Any]:
    status, created = node.server.request("POST", path, body)
    assert status == 201, created
    return created  # type: ignore[no-any-return]


def ready_endpoints(node: Node, service_name: str = "web") -> dict[str, bool]:
    body = node.server.get(f"{SLICES}?labelSelector=kubernetes.io/service-name%3D{service_name}")
    return {a: bool(e["conditions"].get("ready")) for sl in body["items"]
            for e in sl.get("endpoints", []) for a in e["addresses"]}


def pods(node: Node, app: str = "web") -> list[dict[str, Any]]:
    return node.server.get(f"{PODS}?labelSelector=app%3D{app}")["items"]  # type: ignore[no-any-return]


def start_web(node: Node, replicas: int = 3) -> dict[str, str]:
    """Deploy `web` behind a Service; return pod name → IP once every replica is ready."""
    create(node, "/api/v1/namespaces/default/services", service())
    create(node, "/apis/apps/v1/namespaces/default/deployments",
           deployment(node, replicas=replicas))

    def all_ready() -> dict[str, str] | None:
        current = {p["metadata"]["name"]: p["status"].get("podIP", "") for p in pods(node)}
        endpoints = ready_endpoints(node)
        if len(current) == replicas and all(endpoints.get(ip) for ip in current.values()):
            return current
        return None

    return eventually(all_ready, timeout=30, interval=0.1)  # type: ignore[no-any-return]


def test_three_replicas_get_their_own_ips_answer_and_are_ready(node: Node) -> None:
    ips = start_web(node)
    assert len(set(ips.values())) == 3
    assert all(ipaddress.ip_address(ip) in POD_CIDR for ip in ips.values())
    create(node, PODS, client_pod())
    eventually(lambda: node.server.get(f"{PODS}/client")["status"].get("phase") == "Running",
               timeout=20)
    for name, ip in ips.items():
        reply = node.server.cli("exec", "client", "--", "curl", "-s", "--max-time", "5",
                                f"http://{ip}:8080/")
        assert reply.stdout == f"ok {name}\n", reply.stderr
    resolv = node.server.cli("exec", "client", "--", "cat", "/etc/resolv.conf").stdout
    assert "nameserver 10.96.0.10" in resolv and "options ndots:5" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv


def test_a_killed_process_is_not_ready_then_restarted_at_the_same_ip(node: Node) -> None:
    ips = start_web(node, replicas=1)
    (name, ip), = ips.items()
    pod = node.server.get(f"{PODS}/{name}")
    netns = node.pod_netns(pod["metadata"]["uid"])
    pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True,
                          text=True).stdout.split()
    assert pids
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    eventually(lambda: ready_endpoints(node).get(ip) is False, timeout=5, interval=0.005)

    def restarted() -> bool:
        status = node.server.get(f"{PODS}/{name}")["status"]
        counts = [c.get("restartCount", 0) for c in status.get("containerStatuses", [])]
        return counts == [1] and status.get("podIP") == ip and ready_endpoints(node).get(ip)

    eventually(restarted, timeout=30, interval=0.1)


def test_a_deleted_pod_is_replaced_and_its_process_told_to_stop(node: Node) -> None:
    ips = start_web(node)
    victim = sorted(ips)[0]
    uid = node.server.get(f"{PODS}/{victim}")["metadata"]["uid"]
    deleted = node.server.cli("delete", "pod", victim)
    assert deleted.returncode == 0, deleted.stderr
    started = time.monotonic()

    def replaced() -> dict[str, str] | None:
        current = {p["metadata"]["name"]: p["status"].get("podIP", "") for p in pods(node)
                   if not p["metadata"].get("deletionTimestamp")}
        new = {n: ip for n, ip in current.items() if n not in ips}
        endpoints = ready_endpoints(node)
        if len(current) == 3 and new and all(endpoints.get(ip) for ip in new.values()):
            return new
        return None

    new = eventually(replaced, timeout=10, interval=0.02)
    assert time.monotonic() - started < 2.0, "the replacement was not ready within 2 s"
    assert set(new.values()).isdisjoint(ips.values())
    eventually(lambda: (node.state / f"sigterm-{victim}").exists(), timeout=10)
    eventually(lambda: node.server.request("GET", f"{PODS}/{victim}")[0] == 404, timeout=10)
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert node.pod_netns(uid) not in namespaces
    links = subprocess.run(["ip", "-n", node.netns, "-o", "link"], capture_output=True,
                           text=True).stdout
    assert f"veth{pod_id(uid)[:8]}" not in links


def test_a_failing_readiness_probe_takes_the_pod_out_and_back(node: Node) -> None:
    ips = start_web(node, replicas=2)
    name, ip = sorted(ips.items())[0]
    flag = node.state / f"fail-{name}"
    flag.write_text("")
    eventually(lambda: ready_endpoints(node).get(ip) is False, timeout=10, interval=0.05)
    assert all(ready for other, ready in ready_endpoints(node).items() if other != ip)
    flag.unlink()
    eventually(lambda: ready_endpoints(node).get(ip) is True, timeout=10, interval=0.05)


@pytest.mark.parametrize(("change", "field"), [
    pytest.param(lambda c: c.pop("command"), "spec.containers[0].image",
                 id="neither-command-nor-image"),
    pytest.param(lambda c: c.update(readinessProbe={"tcpSocket": {"port": "nope"}}),
                 "spec.containers[0].readinessProbe.tcpSocket.port", id="unknown-named-port"),
    pytest.param(lambda c: c.update(readinessProbe={"tcpSocket": {"port": 80},
                                                    "periodSeconds": -1}),
                 "spec.containers[0].readinessProbe.periodSeconds", id="negative-period"),
], )
def test_bad_pod_specs_are_refused_with_field_paths(node: Node, change: Any, field: str) -> None:
    body = client_pod()
    change(body["spec"]["containers"][0])
    status, reply = node.server.request("POST", PODS, body)
    assert status == 422, reply
    assert field in json.dumps(reply)


def test_duplicate_container_names_are_refused(node: Node) -> None:
    body = client_pod()
    body["spec"]["containers"].append(dict(body["spec"]["containers"][0]))
    status, reply = node.server.request("POST", PODS, body)
    assert status == 422 and "spec.containers[1].name" in json.dumps(reply)


def test_a_command_that_cannot_start_fails_the_pod_and_the_node_goes_on(node: Node) -> None:
    broken = client_pod()
    broken["metadata"]["name"] = "broken"
    broken["spec"]["restartPolicy"] = "Never"
    broken["spec"]["containers"][0]["command"] = ["/nonexistent/program"]
    create(node, PODS, broken)

    def failed() -> str:
        status = node.server.get(f"{PODS}/broken")["status"]
        return json.dumps(status) if status.get("phase") == "Failed" else ""

    assert "No such file" in eventually(failed, timeout=20)
    create(node, PODS, client_pod())
    eventually(lambda: node.server.get(f"{PODS}/client")["status"].get("phase") == "Running",
               timeout=20)


def test_an_image_without_a_command_waits_and_says_why(node: Node) -> None:
    imaged = client_pod()
    imaged["spec"]["restartPolicy"] = "Never"
    imaged["spec"]["containers"][0] = {"name": "web", "image": "nginx:1.27"}  # as in the docs
    create(node, PODS, imaged)

    def failed() -> str:
        status = node.server.get(f"{PODS}/client")["status"]
        return json.dumps(status) if status.get("phase") == "Failed" else ""

    assert "clusterip runs a container's command on the node, not its image" in eventually(
        failed, timeout=20)


def test_the_node_is_registered_with_its_pod_cidr(node: Node) -> None:
    got = node.server.get("/api/v1/nodes/node-1")
    assert got["spec"]["podCIDR"] == "10.244.0.0/24"
    ready = {c["type"]: c["status"] for c in got["status"]["conditions"]}
    assert ready["Ready"] == "True"


def test_logs_of_a_pod(node: Node) -> None:
    body = client_pod()
    body["spec"]["containers"][0]["command"] = ["sh", "-c", "echo hello from $HOSTNAME; sleep 1d"]
    create(node, PODS, body)
    eventually(lambda: "hello from client" in node.server.cli("logs", "client").stdout,
               timeout=20)


def test_pods_get_the_service_environment_of_their_namespace(node: Node) -> None:
    create(node, "/api/v1/namespaces/default/services", service())
    body = client_pod()
    body["spec"]["containers"][0]["command"] = [
        "sh", "-c", "echo host=$WEB_SERVICE_HOST port=$WEB_SERVICE_PORT_HTTP; sleep 1d"]
    create(node, PODS, body)
    ip = node.server.get("/api/v1/namespaces/default/services/web")["spec"]["clusterIP"]
    eventually(lambda: f"host={ip} port=80" in node.server.cli("logs", "client").stdout,
               timeout=20)


def test_scale_and_apply_change_the_number_of_pods(node: Node, tmp_path: Path) -> None:
    start_web(node, replicas=1)
    scaled = node.server.cli("scale", "deployment", "web", "--replicas", "3")
    assert scaled.returncode == 0, scaled.stderr
    eventually(lambda: len(ready_endpoints(node)) == 3 and all(ready_endpoints(node).values()),
               timeout=30, interval=0.1)
    manifest = tmp_path / "web.json"
    manifest.write_text(json.dumps(deployment(node, replicas=2)))
    applied = node.server.cli("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    eventually(lambda: len([p for p in pods(node)
                            if not p["metadata"].get("deletionTimestamp")]) == 2, timeout=30)


def test_an_agent_killed_and_restarted_finds_its_pods_and_leaks_nothing(node: Node) -> None:
    ips = start_web(node, replicas=2)
    uids = {p["metadata"]["uid"] for p in pods(node)}
    started = {p["metadata"]["uid"]: p["status"]["startTime"] for p in pods(node)}
    time.sleep(1.0)  # startTime has one-second precision: a restart must show a later one
    node.server.restart(kill=True)

    def restarted_and_ready() -> bool:
        current = pods(node)
        return all(p["status"].get("startTime") != started[p["metadata"]["uid"]]
                   for p in current) and len(ready_endpoints(node)) == 2 \
            and all(ready_endpoints(node).values())

    eventually(restarted_and_ready, timeout=30, interval=0.1)
    assert {p["metadata"]["uid"] for p in pods(node)} == uids
    assert {p["status"]["podIP"] for p in pods(node)} == set(ips.values())
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    pod_namespaces = [n for n in namespaces.split() if n.startswith(f"{node.netns}-pod-")]
    assert sorted(pod_namespaces) == sorted(node.pod_netns(uid) for uid in uids)
    servers = subprocess.run(["pgrep", "-f", str(node.state)], capture_output=True,
                             text=True).stdout.split()
    assert len(servers) == 2, f"expected one server process a pod, found {servers}"


def test_a_failing_liveness_probe_restarts_the_container_at_the_same_ip(node: Node) -> None:
    body = client_pod()
    body["spec"]["terminationGracePeriodSeconds"] = 1
    body["spec"]["containers"][0]["livenessProbe"] = {
        "tcpSocket": {"port": 9999}, "periodSeconds": 1, "failureThreshold": 1}
    create(node, PODS, body)

    def restarted() -> dict[str, Any] | None:
        status = node.server.get(f"{PODS}/client")["status"]
        counts = [c.get("restartCount", 0) for c in status.get("containerStatuses", [])]
        return status if counts and counts[0] >= 1 else None

    first_ip = eventually(lambda: node.server.get(f"{PODS}/client")["status"].get("podIP"),
                          timeout=20)
    status = eventually(restarted, timeout=30, interval=0.2)
    assert status["podIP"] == first_ip
