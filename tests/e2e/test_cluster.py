"""A cluster of three nodes on this machine (`clusterip cluster create`'s LocalCluster): a
three-member etcd, an API server on it, one node agent per node namespace, the nodes joined by a
link namespace.

Address plan: the link 172.18.0.0/24 (node-1 .2, node-2 .3, node-3 .4); each node's pods in
a /24 of 10.244.0.0/16 that the node IPAM controller gives it; Services in 10.96.0.0/12.
Traffic flows only between the cluster's namespaces; the API servers and etcd listen on
loopback. Every namespace has the cluster's random name as its prefix and is deleted at the
end, pass or fail, with every process the cluster started (by PID).

Shown here:
- a pod on each node reaches a Service whose six pods are spread over the three nodes, by its
  name, and 600 requests from each reach all six pods;
- pod-to-pod traffic across nodes keeps the source pod IP;
- a node whose agent stops: its pods leave the endpoints within the node-failure timeout and
  are replaced on the other nodes; its agent restarted: nothing is duplicated.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from clusterip.cluster import LocalCluster
from clusterip.core import codec
from clusterip.core import model as m
from clusterip.core.naming import pod_id
from clusterip.registry.remote import RemoteClient
from clusterip.testing.cluster import running_cluster

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: creates network namespaces"),
]

DATA = Path(__file__).resolve().parent / "data"
GRACE = 4.0  # --node-monitor-grace-period: a silent node's pods are not ready after this
EVICTION = 6.0  # --pod-eviction-timeout: ...and deleted after this
NODES = ("node-1", "node-2", "node-3")
DEADLINE = 60.0


def program(name: str, *args: str) -> list[str]:
    return [sys.executable, str(DATA / name), *args]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    async with running_cluster(
            tmp_path, nodes=3, etcd_members=3, node_args=("--heartbeat", "0.5"),
            apiserver_args=("--node-monitor-grace-period", str(GRACE),
                            "--pod-eviction-timeout", str(EVICTION))) as local:
        yield local


@pytest.fixture
async def api(cluster: LocalCluster) -> AsyncIterator[RemoteClient]:
    async with RemoteClient(",".join(cluster.servers)) as client:
        yield client


def manifest(data: dict[str, Any]) -> Any:
    """The typed object of `data`, in namespace `default`."""
    data["metadata"].setdefault("namespace", "default")
    return codec.decode(data).obj


def client_pod(name: str, node: str) -> Any:
    return manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                     "spec": {"nodeName": node, "containers": [
                         {"name": "main", "command": ["sleep", "infinity"]}]}})


def web(name: str, replicas: int, command: list[str], port: int) -> list[Any]:
    container = {"name": "server", "command": command,
                 "ports": [{"name": "serve", "containerPort": port}],
                 "readinessProbe": {"httpGet": {"path": "/", "port": "serve"},
                                    "periodSeconds": 1, "failureThreshold": 1}}
    return [
        manifest({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                  "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                           "template": {"metadata": {"labels": {"app": name}},
                                        "spec": {"terminationGracePeriodSeconds": 2,
                                                 "containers": [container]}}}}),
        manifest({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                  "spec": {"selector": {"app": name},
                           "ports": [{"port": 80, "targetPort": "serve"}]}}),
    ]


async def until(check: Any, timeout: float = DEADLINE) -> Any:
    """Poll the async `check` until it returns something truthy (returned), under a deadline."""
    with anyio.fail_after(timeout):
        while not (found := await check()):
            await anyio.sleep(0.1)
    return found


async def ready_pods(api: RemoteClient, app: str) -> dict[str, str]:
    """Ready pods of `app` (not terminating): name → node."""
    pods, _ = await api.list(m.Pod, "default")
    return {p.metadata.name: p.spec.node_name for p in pods
            if (p.metadata.labels or {}).get("app") == app and not p.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)}


async def endpoints(api: RemoteClient, service: str) -> dict[str, bool]:
    slices, _ = await api.list(m.EndpointSlice, "default")
    return {address: bool(e.conditions.ready) for s in slices
            if (s.metadata.labels or {}).get("kubernetes.io/service-name") == service
            for e in s.endpoints for address in e.addresses}


async def in_pod(cluster: LocalCluster, api: RemoteClient, pod: str, argv: list[str],
                 timeout: float = 120) -> str:
    """Run `argv` in pod `pod`'s network namespace (on its node); its stdout."""
    found = await api.get(m.Pod, "default", pod)
    node_netns = f"{cluster.spec.name}-{found.spec.node_name}"
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", f"{node_netns}-pod-{pod_id(found.metadata.uid)}", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    with anyio.fail_after(timeout):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def start_clients(api: RemoteClient) -> None:
    for node in NODES:
        await api.create(client_pod(f"client-{node}", node))
    for node in NODES:
        await until(lambda n=node: _running(api, f"client-{n}"))


async def _running(api: RemoteClient, name: str) -> bool:
    return (await api.get(m.Pod, "default", name)).status.phase == "Running"


async def test_a_pod_on_every_node_reaches_all_six_pods_by_the_service_name(
        cluster: LocalCluster, api: RemoteClient) -> None:
    await start_clients(api)
    for obj in web("web", 6, program("webserver.py", "8080", str(cluster.spec.data_dir)), 8080):
        await api.create(obj)
    placed = await until(lambda: _six_ready(api))
    assert collections.Counter(placed.values()) == {"node-1": 2, "node-2": 2, "node-3": 2}

    for node in NODES:
        out = await in_pod(cluster, api, f"client-{node}",
                           program("loadclient.py", "http://web/", "60", "600"))
        load = json.loads(out)
        assert (load["requests"], load["errors"]) == (600, []), node
        assert set(load["answers"]) == set(placed), node


async def _six_ready(api: RemoteClient) -> dict[str, str] | None:
    ready = await ready_pods(api, "web")
    return ready if len(ready) == 6 and len(await endpoints(api, "web")) == 6 else None


async def test_pod_to_pod_across_nodes_keeps_the_source_pod_ip(
        cluster: LocalCluster, api: RemoteClient) -> None:
    await start_clients(api)
    for obj in web("whoami", 1, program("whoami.py", "8080"), 8080):
        await api.create(obj)
    (server, node), = (await until(lambda: ready_pods(api, "whoami"))).items()
    server_ip = (await api.get(m.Pod, "default", server)).status.pod_ip
    for client_node in NODES:
        if client_node == node:
            continue
        client = await api.get(m.Pod, "default", f"client-{client_node}")
        seen = await in_pod(cluster, api, client.metadata.name, [
            sys.executable, "-c",
            f"import urllib.request; print(urllib.request.urlopen("
            f"'http://{server_ip}:8080/', timeout=5).read().decode().strip())"])
        assert seen.strip() == client.status.pod_ip


async def test_a_stopped_node_s_pods_leave_the_endpoints_and_are_replaced_elsewhere(
        cluster: LocalCluster, api: RemoteClient) -> None:
    for obj in web("web", 6, program("webserver.py", "8080", str(cluster.spec.data_dir)), 8080):
        await api.create(obj)
    placed = await until(lambda: _six_ready(api))
    lost = {name for name, node in placed.items() if node == "node-3"}
    lost_ips = {(await api.get(m.Pod, "default", name)).status.pod_ip for name in lost}
    assert len(lost) == 2

    await cluster.stop_node("node-3", kill=True)  # its agent dies; its pods' processes too
    began = asyncio.get_running_loop().time()
    await until(lambda: _not_ready(api, lost_ips))
    left_endpoints = asyncio.get_running_loop().time() - began
    assert left_endpoints < GRACE + 5, f"endpoints went not ready after {left_endpoints:.1f} s"

    replaced = await until(lambda: _six_ready_without(api, "node-3"))
    assert not lost & set(replaced)

    await cluster.restart_node("node-3")
    await until(lambda: _node_ready(api, "node-3"))
    pods, _ = await api.list(m.Pod, "default")
    web_pods = [p for p in pods if (p.metadata.labels or {}).get("app") == "web"
                and not p.metadata.deletion_timestamp]
    assert len(web_pods) == 6, [p.metadata.name for p in web_pods]
    await until(lambda: _gone(api, lost))  # the back node finishes the evicted pods' deletion


async def _not_ready(api: RemoteClient, ips: set[str]) -> bool:
    shown = await endpoints(api, "web")
    return all(not shown.get(ip, False) for ip in ips)


async def _six_ready_without(api: RemoteClient, node: str) -> dict[str, str] | None:
    ready = await ready_pods(api, "web")
    return ready if len(ready) == 6 and node not in ready.values() else None


async def _node_ready(api: RemoteClient, name: str) -> bool:
    node = await api.get(m.Node, "", name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def _gone(api: RemoteClient, names: set[str]) -> bool:
    pods, _ = await api.list(m.Pod, "default")
    return not names & {p.metadata.name for p in pods}
