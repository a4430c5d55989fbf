"""The Python `kubernetes` client, configured by nothing but the kubeconfig the server wrote:
create, patch (its default is a strategic merge patch), replace with optimistic concurrency,
server-side apply, the scale subresource, delete, watches, and an informer-style list+watch loop
that survives 410 Expired; each call bounded in time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from clusterip.testing.process import ServerProcess, eventually

CALL_TIMEOUT = 10  # seconds, for every request the client makes

SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "dns", "port": 53, "protocol": "UDP"}]},
}


COMPACTION_INTERVAL = "0.3"  # seconds: a watcher away for two of them must list again


@pytest.fixture
def api(tmp_path: Path) -> Iterator[client.ApiClient]:
    server = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log",
                           command=("apiserver", "--compaction-interval", COMPACTION_INTERVAL))
    server.start()
    try:
        with config.new_client_from_config(config_file=str(server.kubeconfig)) as api_client:
            yield api_client
    finally:
        server.stop()


def ports(service: Any) -> list[tuple[int, Any]]:
    return [(p.port, p.target_port) for p in service.spec.ports]


def test_create_patch_replace_delete_a_service(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_service("default", SERVICE, _request_timeout=CALL_TIMEOUT)
    assert created.spec.cluster_ip and ports(created) == [(80, 8080), (53, 53)]
    patched = v1.patch_namespaced_service(  # a strategic merge patch: ports merge by port
        "web", "default", {"metadata": {"labels": {"tier": "front"}},
                           "spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
        _request_timeout=CALL_TIMEOUT)
    assert ports(patched) == [(80, 9090), (53, 53)]
    assert patched.metadata.labels == {"tier": "front"}
    patched.spec.selector = {"app": "web2"}
    replaced = v1.replace_namespaced_service("web", "default", patched,
                                             _request_timeout=CALL_TIMEOUT)
    assert replaced.spec.selector == {"app": "web2"}
    with pytest.raises(client.ApiException) as stale:  # patched's resourceVersion is old now
        v1.replace_namespaced_service("web", "default", patched, _request_timeout=CALL_TIMEOUT)
    assert (stale.value.status, stale.value.reason) == (409, "Conflict")
    deleted = v1.delete_namespaced_service("web", "default", _request_timeout=CALL_TIMEOUT)
    assert deleted.metadata.name == "web"
    with pytest.raises(client.ApiException) as gone:
        v1.read_namespaced_service("web", "default", _request_timeout=CALL_TIMEOUT)
    assert gone.value.status == 404


def test_a_patch_that_makes_the_service_invalid_changes_nothing(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    created = v1.create_namespaced_service("default", SERVICE, _request_timeout=CALL_TIMEOUT)
    with pytest.raises(client.ApiException) as refused:
        v1.patch_namespaced_service("web", "default",
                                    {"spec": {"ports": [{"port": 80, "targetPort": 70000}]}},
                                    _request_timeout=CALL_TIMEOUT)
    assert refused.value.status == 422
    assert "spec.ports[0].targetPort: Invalid value: 70000" in refused.value.body
    now = v1.read_namespaced_service("web", "default", _request_timeout=CALL_TIMEOUT)
    assert now.metadata.resource_version == created.metadata.resource_version


def test_server_side_apply_and_scale(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                                     "command": ["sleep", "1d"]}]}}},
    }
    applied = apps.patch_namespaced_deployment(
        "web", "default", deployment, field_manager="python-test",
        _content_type="application/apply-patch+yaml", _request_timeout=CALL_TIMEOUT)
    assert [(e.manager, e.operation) for e in applied.metadata.managed_fields] == [
        ("python-test", "Apply")]
    scale = apps.patch_namespaced_deployment_scale(
        "web", "default", {"spec": {"replicas": 2}}, _request_timeout=CALL_TIMEOUT)
    assert (scale.kind, scale.spec.replicas, scale.status.selector) == ("Scale", 2, "app=web")
    assert apps.read_namespaced_deployment(
        "web", "default", _request_timeout=CALL_TIMEOUT).spec.replicas == 2


POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]},
}


def test_pods_create_list_patch_replace_watch_delete(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    start = v1.list_namespaced_pod("default", _request_timeout=CALL_TIMEOUT)
    created = v1.create_namespaced_pod("default", POD, _request_timeout=CALL_TIMEOUT)
    assert created.metadata.uid and created.status.phase == "Pending"
    patched = v1.patch_namespaced_pod("p1", "default", {"metadata": {"labels": {"tier": "a"}}},
                                      _request_timeout=CALL_TIMEOUT)
    assert patched.metadata.labels == {"app": "web", "tier": "a"}
    patched.metadata.labels = {"app": "web"}
    replaced = v1.replace_namespaced_pod("p1", "default", patched, _request_timeout=CALL_TIMEOUT)
    assert replaced.metadata.labels == {"app": "web"}
    selected = v1.list_namespaced_pod("default", label_selector="app=web,tier!=a",
                                      _request_timeout=CALL_TIMEOUT)
    assert [p.metadata.name for p in selected.items] == ["p1"]
    deleted = v1.delete_namespaced_pod("p1", "default", grace_period_seconds=0,
                                       _request_timeout=CALL_TIMEOUT)
    assert (deleted.kind, deleted.metadata.name) == ("Pod", "p1")

    seen = [(e["type"], e["object"].metadata.labels) for e in watch.Watch().stream(
        v1.list_namespaced_pod, "default", resource_version=start.metadata.resource_version,
        timeout_seconds=1, _request_timeout=CALL_TIMEOUT)]
    assert seen == [("ADDED", {"app": "web"}), ("MODIFIED", {"app": "web", "tier": "a"}),
                    ("MODIFIED", {"app": "web"}), ("DELETED", {"app": "web"})]


class Informer:
    """A reflector in miniature, as client-go's works: list, then watch from the list's
    resourceVersion (with bookmarks), moving the resourceVersion along; on 410 Expired, list
    again. `known` is its cache of services, by name."""

    def __init__(self, v1: client.CoreV1Api) -> None:
        self.v1 = v1
        self.known: dict[str, Any] = {}
        self.resource_version = ""
        self.lists = 0

    def relist(self) -> None:
        listed = self.v1.list_namespaced_service("default", _request_timeout=CALL_TIMEOUT)
        self.known = {s.metadata.name: s for s in listed.items}
        self.resource_version = listed.metadata.resource_version
        self.lists += 1

    def watch_for(self, seconds: int) -> None:
        """One watch session of `seconds`; on 410 Expired, the cache is listed afresh."""
        try:
            for event in watch.Watch().stream(
                    self.v1.list_namespaced_service, "default",
                    resource_version=self.resource_version, allow_watch_bookmarks=True,
                    timeout_seconds=seconds, _request_timeout=seconds + CALL_TIMEOUT):
                self.resource_version = event["raw_object"]["metadata"]["resourceVersion"]
                if event["type"] == "DELETED":
                    self.known.pop(event["object"].metadata.name, None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self.known[event["object"].metadata.name] = event["object"]
        except client.ApiException as exc:
            if exc.status != 410:
                raise
            self.relist()


def expired(v1: client.CoreV1Api, resource_version: str) -> bool:
    """Whether a watch from `resource_version` is told 410 Expired (its history compacted)."""
    try:
        for _ in watch.Watch().stream(v1.list_namespaced_service, "default",
                                      resource_version=resource_version, timeout_seconds=1,
                                      _request_timeout=CALL_TIMEOUT):
            pass
    except client.ApiException as exc:
        return exc.status == 410
    return False


def test_an_informer_loop_lists_again_after_410_and_converges(api: client.ApiClient) -> None:
    v1 = client.CoreV1Api(api)
    informer = Informer(v1)
    informer.relist()
    v1.create_namespaced_service("default", {**SERVICE, "metadata": {"name": "a"}},
                                 _request_timeout=CALL_TIMEOUT)
    informer.watch_for(1)
    assert set(informer.known) == {"kubernetes", "a"}

    # While the informer is away, services change and the history it knows is compacted.
    v1.create_namespaced_service("default", {**SERVICE, "metadata": {"name": "b"}},
                                 _request_timeout=CALL_TIMEOUT)
    v1.delete_namespaced_service("a", "default", _request_timeout=CALL_TIMEOUT)
    eventually(lambda: expired(v1, informer.resource_version), timeout=15)

    informer.watch_for(1)
    assert informer.lists == 2
    assert set(informer.known) == {"kubernetes", "b"}
    v1.create_namespaced_service("default", {**SERVICE, "metadata": {"name": "c"}},
                                 _request_timeout=CALL_TIMEOUT)
    informer.watch_for(1)
    assert (informer.lists, set(informer.known)) == (2, {"kubernetes", "b", "c"})
