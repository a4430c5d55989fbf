"""The Python `kubernetes` client, configured by nothing but the kubeconfig the server wrote:
create, patch (its default is a strategic merge patch), replace with optimistic concurrency,
server-side apply, the scale subresource, and delete, each call bounded in time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from clusterip.testing.process import ServerProcess

CALL_TIMEOUT = 10  # seconds, for every request the client makes

SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    "spec": {"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": 8080},
        {"name": "dns", "port": 53, "protocol": "UDP"}]},
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[client.ApiClient]:
    server = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log")
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
