"""The events of a pod's life on a real node, as root: `clusterip up --netns NAME` (the `node`
fixture: a namespace of the test's own, gone afterwards; the host namespace untouched).

A pod whose readiness probe finds nothing listening is scheduled (Scheduled, by the
scheduler), its container created and started (Created, Started, by the kubelet on node-1),
and probed in vain (Unhealthy, a Warning, counted up as it repeats); deleting it stops its
container (Killing). Each is an Event on the pod, found with the field selector
`kubectl describe pod` sends.
"""

from __future__ import annotations

from typing import Any

import pytest

from clusterip.testing.process import Node, eventually

pytestmark = pytest.mark.root

PODS = "/api/v1/namespaces/default/pods"
EVENTS = "/api/v1/namespaces/default/events"


def unready_pod() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unready"},
            "spec": {"terminationGracePeriodSeconds": 2, "containers": [{
                "name": "main", "command": ["sleep", "infinity"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}


def events_of(node: Node, pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    meta = pod["metadata"]
    selector = (f"involvedObject.name={meta['name']},involvedObject.namespace=default,"
                f"involvedObject.kind=Pod,involvedObject.uid={meta['uid']}")
    body = node.server.get(f"{EVENTS}?fieldSelector={selector}")
    return {e["reason"]: e for e in body["items"]}


def test_a_pods_life_is_told_in_events(node: Node) -> None:
    status, pod = node.server.request("POST", PODS, unready_pod())
    assert status == 201, pod

    def repeated_unhealthy() -> dict[str, dict[str, Any]] | None:
        found = events_of(node, pod)
        unhealthy = found.get("Unhealthy")
        return found if unhealthy is not None and unhealthy["count"] >= 2 else None

    found = eventually(repeated_unhealthy, timeout=30)
    assert found["Scheduled"]["message"] == "Successfully assigned default/unready to node-1"
    assert found["Scheduled"]["source"] == {"component": "default-scheduler"}
    for reason, message in (("Created", "Created container: main"),
                            ("Started", "Started container main")):
        event = found[reason]
        assert (event["type"], event["message"]) == ("Normal", message)
        assert event["involvedObject"]["fieldPath"] == "spec.containers{main}"
        assert event["source"] == {"component": "kubelet", "host": "node-1"}
    unhealthy = found["Unhealthy"]
    assert unhealthy["type"] == "Warning"
    assert unhealthy["message"].startswith("Readiness probe failed: ")
    assert unhealthy["lastTimestamp"] >= unhealthy["firstTimestamp"]

    status, _ = node.server.request("DELETE", f"{PODS}/unready")
    assert status == 200
    killing = eventually(lambda: events_of(node, pod).get("Killing"), timeout=30)
    assert (killing["type"], killing["message"]) == ("Normal", "Stopping container main")
