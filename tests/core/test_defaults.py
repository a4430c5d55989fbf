"""Kubernetes' defaults (`clusterip.core.defaults.apply_defaults`)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from clusterip.core import codec, model
from clusterip.core.defaults import apply_defaults

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
  - {name: dns, port: 53, protocol: UDP, targetPort: dns}
"""

POD = """
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: default}
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports:
    - {name: http, containerPort: 8080}
    readinessProbe:
      httpGet: {port: http}
    livenessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 0
      failureThreshold: 5
  initContainers:
  - name: init
    image: busybox
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.27"}
"""

SLICE = """
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: default}
addressType: IPv4
ports:
- {port: 80}
endpoints:
- addresses: ["10.244.0.5"]
"""

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n"
NODE = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1}\n"


def load(text: str) -> Any:
    (data,) = codec.parse_documents(text)
    return codec.decode(data, strict=True).obj


def defaulted(text: str) -> dict[str, Any]:
    return codec.to_dict(apply_defaults(load(text)))


# --- Service ----------------------------------------------------------------------------------


def test_service_defaults() -> None:
    spec = defaulted(SERVICE)["spec"]

    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert spec["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80},
        {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns"},
    ]
    assert "sessionAffinityConfig" not in spec


@pytest.mark.parametrize(
    ("port", "target", "expected"),
    [
        pytest.param(80, None, 80, id="absent"),
        pytest.param(80, 0, 80, id="zero-means-absent"),
        pytest.param(80, "", 80, id="empty-name-means-absent"),
        pytest.param(80, 8080, 8080, id="kept"),
        pytest.param(0, None, None, id="invalid-port-not-copied"),
        pytest.param(70000, None, None, id="out-of-range-port-not-copied"),
    ],
)
def test_service_target_port(port: int, target: int | str | None,
                             expected: int | str | None) -> None:
    svc = model.Service(spec=model.ServiceSpec(
        ports=(model.ServicePort(port=port, target_port=target),)))

    assert apply_defaults(svc).spec.ports[0].target_port == expected


def test_port_zero_stays_zero() -> None:
    svc = model.Service(spec=model.ServiceSpec(ports=(model.ServicePort(),)))

    assert apply_defaults(svc).spec.ports[0].port == 0


def test_client_ip_affinity_gets_the_default_timeout() -> None:
    svc = model.Service(spec=model.ServiceSpec(session_affinity="ClientIP"))

    config = apply_defaults(svc).spec.session_affinity_config

    assert config is not None and config.client_ip is not None
    assert config.client_ip.timeout_seconds == 10800


def test_client_ip_affinity_keeps_a_given_timeout() -> None:
    svc = model.Service(spec=model.ServiceSpec(
        session_affinity="ClientIP",
        session_affinity_config=model.SessionAffinityConfig(
            client_ip=model.ClientIPConfig(timeout_seconds=60))))

    config = apply_defaults(svc).spec.session_affinity_config

    assert config is not None and config.client_ip is not None
    assert config.client_ip.timeout_seconds == 60


def test_external_name_gets_no_internal_traffic_policy() -> None:
    svc = model.Service(spec=model.ServiceSpec(type="ExternalName", external_name="db.example"))

    assert apply_defaults(svc).spec.internal_traffic_policy is None


@pytest.mark.parametrize(
    ("cluster_ip", "cluster_ips", "expected"),
    [
        pytest.param("10.96.0.10", (), ("10.96.0.10", ("10.96.0.10",)), id="ip-to-ips"),
        pytest.param("", ("10.96.0.10", "fd00::a"), ("10.96.0.10", ("10.96.0.10", "fd00::a")),
                     id="ips-to-ip"),
        pytest.param("None", (), ("None", ("None",)), id="headless"),
        pytest.param("", (), ("", ()), id="none-requested"),
        pytest.param("10.96.0.10", ("10.96.0.11",), ("10.96.0.10", ("10.96.0.11",)),
                     id="mismatch-left-for-validation"),
    ],
)
def test_cluster_ip_and_cluster_ips_are_kept_in_step(
    cluster_ip: str, cluster_ips: tuple[str, ...], expected: tuple[str, tuple[str, ...]]
) -> None:
    svc = model.Service(spec=model.ServiceSpec(cluster_ip=cluster_ip, cluster_ips=cluster_ips))

    spec = apply_defaults(svc).spec

    assert (spec.cluster_ip, spec.cluster_ips) == expected


# --- Pod --------------------------------------------------------------------------------------


def test_pod_defaults() -> None:
    spec = defaulted(POD)["spec"]

    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["enableServiceLinks"] is True
    assert spec["schedulerName"] == "default-scheduler"
    web = spec["containers"][0]
    assert web["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert web["terminationMessagePath"] == "/dev/termination-log"
    assert web["terminationMessagePolicy"] == "File"
    assert web["imagePullPolicy"] == "IfNotPresent"
    assert web["readinessProbe"] == {
        "httpGet": {"port": "http", "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3,
    }
    # 0 is "unset" for probe numbers (as in Kubernetes, whose fields are not pointers).
    assert web["livenessProbe"]["periodSeconds"] == 10
    assert web["livenessProbe"]["failureThreshold"] == 5
    assert spec["initContainers"][0]["imagePullPolicy"] == "Always"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        pytest.param("nginx", "Always", id="untagged"),
        pytest.param("nginx:latest", "Always", id="latest"),
        pytest.param("nginx:1.27", "IfNotPresent", id="tagged"),
        pytest.param("registry:5000/team/app", "Always", id="registry-port-untagged"),
        pytest.param("registry:5000/team/app:v2", "IfNotPresent", id="registry-port-tagged"),
        pytest.param("nginx@sha256:" + "0" * 64, "IfNotPresent", id="digest"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = model.Pod(spec=model.PodSpec(containers=(model.Container(name="c", image=image),)))

    assert apply_defaults(pod).spec.containers[0].image_pull_policy == policy


def test_command_only_container_gets_no_pull_policy() -> None:
    pod = model.Pod(spec=model.PodSpec(containers=(model.Container(name="c", command=("true",)),)))

    assert apply_defaults(pod).spec.containers[0].image_pull_policy == ""


def test_given_pod_values_are_kept() -> None:
    pod = model.Pod(spec=model.PodSpec(
        restart_policy="Never", termination_grace_period_seconds=0, enable_service_links=False,
        containers=(model.Container(name="c", image="x", image_pull_policy="Never"),)))

    spec = apply_defaults(pod).spec

    assert spec.restart_policy == "Never"
    assert spec.termination_grace_period_seconds == 0
    assert spec.enable_service_links is False
    assert spec.containers[0].image_pull_policy == "Never"


# --- Deployment, EndpointSlice, Namespace -----------------------------------------------------


def test_deployment_defaults() -> None:
    spec = defaulted(DEPLOYMENT)["spec"]

    assert spec["replicas"] == 1
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["containers"][0]["terminationMessagePath"] == "/dev/termination-log"


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        pytest.param({"type": "Recreate"}, {"type": "Recreate"}, id="recreate"),
        pytest.param({"rollingUpdate": {"maxSurge": 1}},
                     {"type": "RollingUpdate",
                      "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
                     id="partial-rolling-update"),
    ],
)
def test_deployment_strategy(strategy: dict[str, Any], expected: dict[str, Any]) -> None:
    deploy = model.Deployment(spec=model.DeploymentSpec(strategy=strategy))

    assert apply_defaults(deploy).spec.strategy == expected


def test_deployment_replicas_zero_is_kept() -> None:
    deploy = model.Deployment(spec=model.DeploymentSpec(replicas=0))

    assert apply_defaults(deploy).spec.replicas == 0


def test_endpoint_slice_defaults() -> None:
    assert defaulted(SLICE)["ports"] == [{"name": "", "protocol": "TCP", "port": 80}]


def test_namespace_defaults() -> None:
    assert defaulted(NAMESPACE)["status"] == {"phase": "Active"}


def test_kinds_without_defaults_are_unchanged() -> None:
    node = load(NODE)

    assert apply_defaults(node) == node


# --- properties -------------------------------------------------------------------------------

ALL = [
    pytest.param(SERVICE, id="service"),
    pytest.param(POD, id="pod"),
    pytest.param(DEPLOYMENT, id="deployment"),
    pytest.param(SLICE, id="endpointslice"),
    pytest.param(NAMESPACE, id="namespace"),
    pytest.param(NODE, id="node"),
]


@pytest.mark.parametrize("text", ALL)
def test_idempotent(text: str) -> None:
    once = apply_defaults(load(text))

    assert apply_defaults(once) == once
    assert codec.to_dict(apply_defaults(once)) == codec.to_dict(once)


@pytest.mark.parametrize("text", ALL)
def test_input_is_not_modified(text: str) -> None:
    obj = load(text)
    before = msgspec.json.encode(obj)

    out = apply_defaults(obj)

    assert msgspec.json.encode(obj) == before
    assert type(out) is type(obj)


def test_defaulted_object_survives_the_store_round_trip() -> None:
    obj = apply_defaults(load(POD))

    assert codec.decode_stored(model.Pod, codec.encode(obj)) == obj
