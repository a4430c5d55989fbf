"""The service proxy end to end, as root, in both modes: a ClusterIP reaches the ready pods
behind it, follows them as they die and come back, and nothing outside the cluster reaches it.

Every test runs twice (the `node` fixture's `--proxy-mode`: nftables, userspace). Pods run the
tests' own programs from `data/`; clients run inside a client pod's namespace, with its
resolv.conf (so names go through the cluster DNS).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterip.testing.process import Node, eventually
from clusterip.testing.workloads import (
    DEPLOYMENTS,
    PODS,
    SERVICES,
    create,
    deployment,
    pod,
    pod_exec,
    pod_popen,
    pods_of,
    ready_endpoints,
    service,
    wait_running,
)

pytestmark = [pytest.mark.root,
              pytest.mark.parametrize("node", ["nftables", "userspace"], indirect=True)]

DATA = Path(__file__).resolve().parent / "data"
SEED = "my-clusterip-service"
SEED_URL = f"http://{SEED}.default.svc.cluster.local/"
# A deleted pod keeps serving this long after SIGTERM, as a graceful server does: the kubelet
# (here the node agent) signals it while the endpoint's removal is still on its way to the
# proxy, and new connections sent to it in those milliseconds would otherwise be refused.
DRAIN_SECONDS = "1"


def program(name: str, *args: str) -> list[str]:
    return [sys.executable, str(DATA / name), *args]


def web(node: Node, name: str = "web", replicas: int = 3) -> None:
    create(node, DEPLOYMENTS, deployment(
        name, program("webserver.py", "8080", str(node.state), DRAIN_SECONDS),
        replicas=replicas))


def all_ready(node: Node, service_name: str, count: int) -> bool:
    endpoints = ready_endpoints(node, service_name)
    return len(endpoints) == count and all(endpoints.values())


def client(node: Node) -> None:
    create(node, PODS, pod("client"))
    wait_running(node, "client")


def load(node: Node, url: str, seconds: float, limit: int = 100_000) -> dict[str, object]:
    out = pod_exec(node, "client", program("loadclient.py", url, str(seconds), str(limit)),
                   timeout=seconds + 60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def test_the_seed_story_three_pods_share_the_load(node: Node) -> None:
    cluster_ip = create(node, SERVICES, service(SEED, app="web", port=80,
                                                target=8080))["spec"]["clusterIP"]
    web(node)
    client(node)
    eventually(lambda: all_ready(node, SEED, 3), timeout=30)

    result = load(node, SEED_URL, seconds=60, limit=300)

    assert result["requests"] == 300 and not result["errors"], result
    answers = result["answers"]
    assert isinstance(answers, dict)
    assert len(answers) == 3 and min(answers.values()) >= 50, answers
    assert node.server.get(f"{SERVICES}/{SEED}")["spec"]["clusterIP"] == cluster_ip


def test_killing_a_pod_under_load_loses_at_most_its_requests_in_flight(node: Node) -> None:
    cluster_ip = create(node, SERVICES, service(SEED, app="web", port=80,
                                                target=8080))["spec"]["clusterIP"]
    web(node)
    client(node)
    eventually(lambda: all_ready(node, SEED, 3), timeout=30)
    victim = pods_of(node, "web")[0]["metadata"]["name"]

    running = pod_popen(node, "client", program("loadclient.py", SEED_URL, "10"))
    time.sleep(2)  # the load runs: now the pod dies (the load's own clock keeps the pace)
    status, _ = node.server.request("DELETE", f"{PODS}/{victim}")
    assert status == 200
    eventually(lambda: all_ready(node, SEED, 3)
               and victim not in {p["metadata"]["name"] for p in pods_of(node, "web")},
               timeout=20)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    during = json.loads(out)
    assert len(during["errors"]) <= 1, during["errors"]  # one client: one request in flight

    after = load(node, SEED_URL, seconds=30, limit=150)
    assert not after["errors"], after
    replacement = {p["metadata"]["name"] for p in pods_of(node, "web")} - {victim}
    assert set(after["answers"]) == replacement, after  # the new pod takes its share
    assert node.server.get(f"{SERVICES}/{SEED}")["spec"]["clusterIP"] == cluster_ip


def test_a_udp_client_keeps_its_port_and_finds_the_replacement_pod(node: Node) -> None:
    ip = create(node, SERVICES, service("echo", port=5353, target=9000,
                                        protocol="UDP"))["spec"]["clusterIP"]
    create(node, DEPLOYMENTS, deployment("echo", program("udpecho.py", "9000"), replicas=1,
                                         port=9000, protocol="UDP", http_probe=False))
    client(node)
    eventually(lambda: all_ready(node, "echo", 1), timeout=30)
    old = pods_of(node, "echo")[0]["metadata"]["name"]
    stop = node.state / f"stop-{secrets.token_hex(3)}"
    running = pod_popen(node, "client", program("udpclient.py", ip, "5353", "60", str(stop)))
    try:
        time.sleep(1)  # the client's flow is established (and in conntrack) before the change
        status, _ = node.server.request("DELETE", f"{PODS}/{old}")
        assert status == 200
        new = eventually(lambda: _replacement_ready(node, old), timeout=30)
        ready_at = time.monotonic()
        time.sleep(2)  # the client keeps sending from its port after the change
    finally:
        stop.write_text("stop")
        out, err = running.communicate(timeout=60)
    replies = json.loads(out)["replies"]
    assert any(host == old for _, host in replies), (replies[:5], err)
    from_new = [t for t, host in replies if host == new]
    assert from_new, (replies[-5:], err)
    assert from_new[0] - ready_at < 1.0, (from_new[0] - ready_at)


def _replacement_ready(node: Node, old: str) -> str | None:
    """The replacement pod's name once it is the one ready endpoint of the echo service."""
    current = [p for p in pods_of(node, "echo") if p["metadata"]["name"] != old]
    endpoints = ready_endpoints(node, "echo")
    if current and current[0]["status"].get("podIP") in endpoints and all(endpoints.values()) \
            and len(endpoints) == 1:
        return current[0]["metadata"]["name"]  # type: ignore[no-any-return]
    return None


def test_client_ip_affinity_keeps_one_client_on_one_pod(node: Node) -> None:
    create(node, SERVICES, service("sticky", app="web", port=80, target=8080,
                                   sessionAffinity="ClientIP"))
    web(node)
    client(node)
    eventually(lambda: all_ready(node, "sticky", 3), timeout=30)

    result = load(node, "http://sticky.default.svc.cluster.local/", seconds=60, limit=100)

    assert result["requests"] == 100 and not result["errors"], result
    assert len(result["answers"]) == 1, result["answers"]  # type: ignore[arg-type]


def test_a_service_without_endpoints_refuses_at_once(node: Node) -> None:
    ip = create(node, SERVICES, service("nobody", port=80, target=8080))["spec"]["clusterIP"]
    client(node)
    probe = ("import socket, sys, time\n"
             "s = socket.socket(); s.settimeout(5); t = time.monotonic()\n"
             "try:\n    s.connect((sys.argv[1], 80)); print('connected')\n"
             "except OSError as e:\n    print(type(e).__name__, round(time.monotonic() - t, 3))\n")

    def refused() -> str | None:
        out = pod_exec(node, "client", [sys.executable, "-c", probe, ip]).stdout.split()
        return out if out and out[0] == "ConnectionRefusedError" else None  # type: ignore[return-value]

    answer = eventually(refused, timeout=10, interval=0.2)
    assert float(answer[1]) < 0.5, answer


def test_nothing_outside_the_cluster_reaches_a_cluster_ip(node: Node, outside: str) -> None:
    ip = create(node, SERVICES, service(SEED, app="web", port=80, target=8080))["spec"][
        "clusterIP"]
    web(node, replicas=1)
    client(node)
    eventually(lambda: all_ready(node, SEED, 1), timeout=30)
    assert not load(node, f"http://{ip}/", seconds=10, limit=3)["errors"]  # inside: it works
    probe = ("import socket, sys\n"
             "s = socket.socket(); s.settimeout(1)\n"
             "try:\n    s.connect((sys.argv[1], int(sys.argv[2]))); print('connected')\n"
             "except OSError as e:\n    print(type(e).__name__)\n")

    from_outside = subprocess.run(["ip", "netns", "exec", outside, sys.executable, "-c", probe,
                                   ip, "80"], capture_output=True, text=True, timeout=20)
    assert from_outside.stdout.strip() in ("TimeoutError", "ConnectionRefusedError",
                                           "OSError"), from_outside
    assert from_outside.stdout.strip() != "connected"
    # inside, a port the service does not expose is refused or dropped, never served
    other_port = pod_exec(node, "client", [sys.executable, "-c", probe, ip, "8080"])
    assert other_port.stdout.strip() in ("TimeoutError", "ConnectionRefusedError"), other_port


@pytest.fixture
def outside(node: Node) -> Iterator[str]:
    """A host outside the cluster: a namespace on the node's uplink (a veth into the node's
    namespace, 192.0.2.0/24), with a route to the service CIDR through the node."""
    name = f"{node.netns}-out"
    uplink = f"up{secrets.token_hex(3)}"
    commands = [
        ["ip", "netns", "add", name],
        ["ip", "-n", node.netns, "link", "add", uplink, "type", "veth", "peer", "name", "eth0",
         "netns", name],
        ["ip", "-n", node.netns, "addr", "add", "192.0.2.1/24", "dev", uplink],
        ["ip", "-n", node.netns, "link", "set", uplink, "up"],
        ["ip", "-n", name, "addr", "add", "192.0.2.2/24", "dev", "eth0"],
        ["ip", "-n", name, "link", "set", "eth0", "up"],
        ["ip", "-n", name, "link", "set", "lo", "up"],
        ["ip", "-n", name, "route", "add", "10.96.0.0/12", "via", "192.0.2.1"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)

