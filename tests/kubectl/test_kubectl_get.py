"""`kubectl get` prints the columns kubectl users know, because the server answers its
`as=Table` requests with kube-apiserver's Tables: in lists across namespaces, for one object
(`-o wide` adds the priority-1 columns), and in watches (`get -w`). `-o yaml` still gets the
plain object.

The server here is `clusterip apiserver` alone: no node, so pods stay Pending, unscheduled.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from clusterip.testing.kubectl import Kubectl, columns
from clusterip.testing.process import ServerProcess, eventually

AGE = re.compile(r"^\d+s$")


def post(server: ServerProcess, path: str, body: dict[str, Any]) -> Any:
    status, created = server.request("POST", path, body)
    assert status == 201, created
    return created


def service(name: str, selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ports": [{"port": 80, "targetPort": 8080}]}
    if selector:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                                     "command": ["sleep", "1d"]}]}}


DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                   "command": ["sleep", "1d"]}]}}},
}
# A Service without a selector, and the EndpointSlice its user writes for it.
DB_SLICE = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
    "addressType": "IPv4",
    "ports": [{"name": "", "port": 5432, "protocol": "TCP"}],
    "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 5)],
}


def tables(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """The tables of a `get` of several kinds, by the kind in front of their names."""
    found = {}
    for block in text.strip().split("\n\n"):
        rows = columns(block)
        kind = next(iter(rows)).split("/")[0]
        found[kind] = rows
    return found


def without_age(row: dict[str, str]) -> dict[str, str]:
    assert AGE.match(row["AGE"]), row
    return {k: v for k, v in row.items() if k != "AGE"}


def test_get_several_kinds_in_every_namespace(kubectl: Kubectl) -> None:
    server = kubectl.server
    web = post(server, "/api/v1/namespaces/default/services", service("web", {"app": "web"}))
    post(server, "/api/v1/namespaces/default/services", service("db"))
    post(server, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", DB_SLICE)
    post(server, "/apis/apps/v1/namespaces/default/deployments", DEPLOYMENT)
    post(server, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                        "metadata": {"name": "team"}})
    post(server, "/api/v1/namespaces/team/pods", pod("solo"))

    def listed() -> dict[str, dict[str, dict[str, str]]] | None:
        result = kubectl("get", "svc,pods,endpointslices,deploy", "-A")
        assert result.returncode == 0, result.stderr
        found = tables(result.stdout)
        deployed = found.get("deployment.apps", {}).get("deployment.apps/web", {})
        pods = found.get("pod", {})
        return found if deployed.get("UP-TO-DATE") == "2" and len(pods) == 3 else None

    found = eventually(listed, timeout=20)
    services, pods = found["service"], found["pod"]
    slices, deployments = found["endpointslice.discovery.k8s.io"], found["deployment.apps"]
    assert list(next(iter(services.values()))) == [
        "NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert without_age(services["service/web"]) == {
        "NAMESPACE": "default", "NAME": "service/web", "TYPE": "ClusterIP",
        "CLUSTER-IP": web["spec"]["clusterIP"], "EXTERNAL-IP": "<none>", "PORT(S)": "80/TCP"}
    assert without_age(services["service/kube-dns"]) == {
        "NAMESPACE": "kube-system", "NAME": "service/kube-dns", "TYPE": "ClusterIP",
        "CLUSTER-IP": "10.96.0.10", "EXTERNAL-IP": "<none>", "PORT(S)": "53/UDP,53/TCP"}
    assert list(next(iter(pods.values()))) == [
        "NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert without_age(pods["pod/solo"]) == {
        "NAMESPACE": "team", "NAME": "pod/solo", "READY": "0/1", "STATUS": "Pending",
        "RESTARTS": "0"}
    assert sorted(p["NAMESPACE"] for p in pods.values()) == ["default", "default", "team"]
    assert without_age(slices["endpointslice.discovery.k8s.io/db-1"]) == {
        "NAMESPACE": "default", "NAME": "endpointslice.discovery.k8s.io/db-1",
        "ADDRESSTYPE": "IPv4", "PORTS": "5432",
        "ENDPOINTS": "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."}
    assert without_age(deployments["deployment.apps/web"]) == {
        "NAMESPACE": "default", "NAME": "deployment.apps/web", "READY": "0/2",
        "UP-TO-DATE": "2", "AVAILABLE": "0"}


def test_get_one_service_wide_shows_its_selector(kubectl: Kubectl) -> None:
    web = post(kubectl.server, "/api/v1/namespaces/default/services",
               service("web", {"app": "web", "tier": "fe"}))
    result = kubectl("get", "svc", "web", "-o", "wide")
    assert result.returncode == 0, result.stderr
    assert without_age(columns(result.stdout)["web"]) == {
        "NAME": "web", "TYPE": "ClusterIP", "CLUSTER-IP": web["spec"]["clusterIP"],
        "EXTERNAL-IP": "<none>", "PORT(S)": "80/TCP", "SELECTOR": "app=web,tier=fe"}
    narrow = kubectl("get", "svc", "web")
    assert "SELECTOR" not in narrow.stdout


def test_get_pods_wide_shows_node_columns_and_labels(kubectl: Kubectl) -> None:
    post(kubectl.server, "/api/v1/namespaces/default/pods", pod("p1"))
    result = kubectl("get", "pods", "-o", "wide", "--show-labels")
    assert result.returncode == 0, result.stderr
    assert without_age(columns(result.stdout)["p1"]) == {
        "NAME": "p1", "READY": "0/1", "STATUS": "Pending", "RESTARTS": "0", "IP": "<none>",
        "NODE": "<none>", "NOMINATED NODE": "<none>", "READINESS GATES": "<none>",
        "LABELS": "<none>"}


def test_get_yaml_is_the_plain_object(kubectl: Kubectl) -> None:
    web = post(kubectl.server, "/api/v1/namespaces/default/services",
               service("web", {"app": "web"}))
    result = kubectl("get", "svc", "web", "-o", "yaml")
    assert result.returncode == 0, result.stderr
    printed = yaml.safe_load(result.stdout)
    assert (printed["apiVersion"], printed["kind"]) == ("v1", "Service")
    assert printed["metadata"]["resourceVersion"] == web["metadata"]["resourceVersion"]
    assert printed["spec"]["clusterIP"] == web["spec"]["clusterIP"]
    assert printed["spec"]["selector"] == {"app": "web"}


def test_get_pods_watch_shows_a_pod_added_then_deleted(kubectl: Kubectl) -> None:
    server = kubectl.server
    post(server, "/api/v1/namespaces/default/pods", pod("before"))
    with kubectl.background("get", "pods", "-w", "--output-watch-events",
                            "--request-timeout=60s") as watch:
        # the list is printed: the watch goes on from the list's resourceVersion
        watch.wait_for(r"^ADDED\s+before\s")
        post(server, "/api/v1/namespaces/default/pods", pod("p1"))
        watch.wait_for(r"^ADDED\s+p1\s")
        status, _ = server.request("DELETE", "/api/v1/namespaces/default/pods/p1")
        assert status == 200
        output = watch.wait_for(r"^DELETED\s+p1\s")
    header, *lines = output.splitlines()
    assert header.split() == ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:5] for line in lines] == [
        ["ADDED", "before", "0/1", "Pending", "0"],
        ["ADDED", "p1", "0/1", "Pending", "0"],
        ["DELETED", "p1", "0/1", "Pending", "0"],
    ]
