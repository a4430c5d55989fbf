"""Events, as kubectl users see them, from a real `clusterip apiserver` process: creating a
Service records its ClusterIPAllocated event, which `kubectl get events` lists with kubectl's
columns (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE; `-o wide` adds the rest) and
`kubectl describe svc` shows under `Events:` (describe finds it with the field selector
involvedObject.name/namespace/kind/uid). The Python client lists the same event, and
`clusterip describe` prints it as kubectl does. With `--event-ttl 1`, events are gone a
second or two after they happened, as kube-apiserver's `--event-ttl` does it.

The server here is `clusterip apiserver` alone: no node, so only the control plane's events.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from clusterip.testing.kubectl import KUBECTL, Kubectl, columns
from clusterip.testing.process import ServerProcess, eventually

AGE = re.compile(r"^\d+s$")
CALL_TIMEOUT = 10


def create_service(server: ServerProcess, name: str) -> Any:
    status, created = server.request("POST", "/api/v1/namespaces/default/services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}})
    assert status == 201, created
    return created


def listed(kubectl: Kubectl, *args: str) -> dict[str, dict[str, str]] | None:
    """`kubectl get events` by OBJECT, once service/web's event is there."""
    result = kubectl("get", "events", *args)
    assert result.returncode == 0, result.stderr
    if "service/web" not in result.stdout:
        return None
    return columns(result.stdout, key="OBJECT")


def test_get_events_lists_the_cluster_ip_allocated_event(kubectl: Kubectl) -> None:
    web = create_service(kubectl.server, "web")
    rows = eventually(lambda: listed(kubectl), timeout=20)
    row = rows["service/web"]
    assert list(row) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert AGE.match(row["LAST SEEN"]), row
    assert {k: v for k, v in row.items() if k != "LAST SEEN"} == {
        "TYPE": "Normal", "REASON": "ClusterIPAllocated", "OBJECT": "service/web",
        "MESSAGE": f"Cluster IP [IPv4]: {web['spec']['clusterIP']}"}

    wide = eventually(lambda: listed(kubectl, "-o", "wide"))["service/web"]
    assert list(wide) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                          "MESSAGE", "FIRST SEEN", "COUNT", "NAME"]
    assert (wide["SOURCE"], wide["COUNT"], wide["SUBOBJECT"]) == (
        "ipallocator-controller", "1", "")
    assert wide["NAME"].startswith("web.")

    everywhere = kubectl("get", "ev", "-A")  # the short name, every namespace
    assert everywhere.returncode == 0, everywhere.stderr
    by_object = columns(everywhere.stdout, key="OBJECT")
    assert by_object["service/kube-dns"]["NAMESPACE"] == "kube-system"
    assert by_object["service/kube-dns"]["MESSAGE"] == "Cluster IP [IPv4]: 10.96.0.10"


def events_block(text: str) -> list[list[str]]:
    """The rows of describe's `Events:` table, each cut at its runs of 2+ spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Events:"))
    return [re.split(r"\s{2,}", line.strip()) for line in lines[start + 1:] if line.strip()]


def test_describe_service_shows_its_events(kubectl: Kubectl) -> None:
    web = create_service(kubectl.server, "web")
    eventually(lambda: listed(kubectl), timeout=20)
    result = kubectl("describe", "svc", "web", "-v=6")
    assert result.returncode == 0, result.stderr
    # describe asked for the events of this Service, by the selector kube-apiserver serves
    # (its terms in any order: kubectl builds it from a Go map)
    (url,) = re.findall(r"GET (\S+/api/v1/namespaces/default/events\S*) 200", result.stderr)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert set(query["fieldSelector"][0].split(",")) == {
        "involvedObject.name=web", "involvedObject.namespace=default",
        "involvedObject.kind=Service", f"involvedObject.uid={web['metadata']['uid']}"}
    header, rule, *rows = events_block(result.stdout)
    assert header == ["Type", "Reason", "Age", "From", "Message"]
    assert rule == ["----", "------", "----", "----", "-------"]
    (row,) = rows
    assert row[:2] == ["Normal", "ClusterIPAllocated"] and AGE.match(row[2]), row
    assert row[3:] == ["ipallocator-controller",
                       f"Cluster IP [IPv4]: {web['spec']['clusterIP']}"]


def test_the_python_client_lists_the_event(kubectl: Kubectl) -> None:
    web = create_service(kubectl.server, "web")
    eventually(lambda: listed(kubectl), timeout=20)
    selector = (f"involvedObject.name=web,involvedObject.namespace=default,"
                f"involvedObject.kind=Service,involvedObject.uid={web['metadata']['uid']}")
    with config.new_client_from_config(config_file=str(kubectl.server.kubeconfig)) as api:
        found = client.CoreV1Api(api).list_namespaced_event(
            "default", field_selector=selector, _request_timeout=CALL_TIMEOUT)
    (event,) = found.items
    assert (event.reason, event.type, event.count) == ("ClusterIPAllocated", "Normal", 1)
    assert event.involved_object.uid == web["metadata"]["uid"]
    assert event.source.component == "ipallocator-controller"


def test_clusterip_describe_prints_the_events_too(kubectl: Kubectl) -> None:
    web = create_service(kubectl.server, "web")
    eventually(lambda: listed(kubectl), timeout=20)
    result = kubectl.server.cli("describe", "svc", "web")
    assert result.returncode == 0, result.stderr
    header, _, row = events_block(result.stdout)
    assert header == ["Type", "Reason", "Age", "From", "Message"]
    assert row[:2] + row[3:] == ["Normal", "ClusterIPAllocated", "ipallocator-controller",
                                 f"Cluster IP [IPv4]: {web['spec']['clusterIP']}"]


def test_events_expire_after_the_event_ttl(tmp_path: Path) -> None:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: these tests drive the real kubectl")
    server = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log",
                           command=("apiserver", "--event-ttl", "1"))
    server.start()
    try:
        kubectl = Kubectl(server, tmp_path / "kubectl-cache")
        create_service(server, "web")
        eventually(lambda: listed(kubectl), timeout=20)

        def gone() -> bool:
            result = kubectl("get", "events")
            assert result.returncode == 0, result.stderr
            return "No resources found in default namespace." in result.stderr

        eventually(gone, timeout=20)  # swept every second (at least): gone within ~2 s
    finally:
        server.stop()
