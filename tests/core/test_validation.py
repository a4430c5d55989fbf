"""Validation rules (`clusterip.core.validation`): each rule's field path and exact message.

Each table row changes one thing in a valid manifest (the bases below, from the Kubernetes
documentation with `namespace: default` filled in as the API server would) and lists every error
the pipeline decode → `apply_defaults` → `validate` must return, printed as Kubernetes prints
them. Paths in `changes` are field paths (`spec.ports[0].port`); `DELETE` removes the field.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any

import msgspec
import pytest

from clusterip.core import codec, model
from clusterip.core import errors as errors_module
from clusterip.core.defaults import apply_defaults
from clusterip.core.errors import Invalid
from clusterip.core.validation import require_valid, validate

V4 = ipaddress.ip_network("10.96.0.0/12")
V6 = ipaddress.ip_network("fd00:10:96::/112")
CIDRS = [V4]
DELETE = object()

# --- valid manifests from the Kubernetes documentation ----------------------------------------

SERVICE: dict[str, Any] = {  # concepts/services-networking/service: "my-service"
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "my-service", "namespace": "default"},
    "spec": {"selector": {"app.kubernetes.io/name": "MyApp"},
             "ports": [{"protocol": "TCP", "port": 80, "targetPort": 9376}]},
}
MULTI_PORT_SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "my-service", "namespace": "default"},
    "spec": {"selector": {"app.kubernetes.io/name": "MyApp"},
             "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 9376},
                       {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 9377}]},
}
HEADLESS_SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
    "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
             "ports": [{"name": "web", "port": 80}]},
}
EXTERNAL_NAME_SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "my-service", "namespace": "prod"},
    "spec": {"type": "ExternalName", "externalName": "my.database.example.com"},
}
DUAL_STACK_SERVICE: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "my-service", "namespace": "default",
                 "labels": {"app.kubernetes.io/name": "MyApp"}},
    "spec": {"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"],
             "clusterIPs": ["10.96.0.50", "fd00:10:96::50"],
             "selector": {"app.kubernetes.io/name": "MyApp"},
             "ports": [{"protocol": "TCP", "port": 80}]},
}
SLEEP = ["sleep", "1d"]
POD: dict[str, Any] = {  # concepts/workloads/pods: "nginx", with a probe and a named port
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
    "spec": {"containers": [{
        "name": "nginx", "image": "nginx:1.14.2", "command": ["nginx", "-g", "daemon off;"],
        "ports": [{"name": "http", "containerPort": 80}],
        "env": [{"name": "MODE", "value": "fast"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": 80}, "initialDelaySeconds": 15},
    }]},
}
DEPLOYMENT: dict[str, Any] = {  # concepts/workloads/controllers/deployment
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "nginx-deployment", "namespace": "default", "labels": {"app": "nginx"}},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
             "template": {"metadata": {"labels": {"app": "nginx"}},
                          "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2",
                                                   "command": ["sleep", "1d"],
                                                   "ports": [{"containerPort": 80}]}]}}},
}
SLICE: dict[str, Any] = {  # concepts/services-networking/endpoint-slices: "example-abc"
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "example-abc", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "example"}},
    "addressType": "IPv4",
    "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
    "endpoints": [{"addresses": ["10.1.2.3"], "conditions": {"ready": True},
                   "hostname": "pod-1", "nodeName": "node-1", "zone": "us-west2-a",
                   "targetRef": {"kind": "Pod", "namespace": "default", "name": "pod-1"}}],
}
NAMESPACE: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": "team-a"}}
NODE: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"},
                        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}}
IPADDRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress", "metadata": {"name": "10.96.0.10"},
    "spec": {"parentRef": {"group": "", "resource": "services", "namespace": "kube-system",
                           "name": "kube-dns"}},
}
SERVICE_CIDR: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR", "metadata": {"name": "kubernetes"},
    "spec": {"cidrs": ["10.96.0.0/12", "fd00:10:96::/112"]},
}

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def mutate(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for path, value in changes.items():
        steps: list[Any] = [int(i) if i else k for k, i in _STEP.findall(path)]
        node = data
        for step in steps[:-1]:
            node = node[step]
        last = steps[-1]
        if value is DELETE:
            node.pop(last, None)
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return data


def obj_of(base: dict[str, Any], changes: dict[str, Any] | None = None) -> Any:
    return apply_defaults(codec.decode(mutate(base, changes or {}), strict=True).obj)


def errors(base: dict[str, Any], changes: dict[str, Any] | None = None, *,
           old: dict[str, Any] | None = None, cidrs: Any = CIDRS) -> list[str]:
    old_obj = obj_of(old) if old is not None else None
    return [str(e) for e in validate(obj_of(base, changes), old_obj, service_cidrs=cidrs)]


@pytest.mark.parametrize(
    "base",
    [
        pytest.param(SERVICE, id="service"),
        pytest.param(MULTI_PORT_SERVICE, id="multi-port-service"),
        pytest.param(HEADLESS_SERVICE, id="headless-service"),
        pytest.param(EXTERNAL_NAME_SERVICE, id="external-name-service"),
        pytest.param(DUAL_STACK_SERVICE, id="dual-stack-service"),
        pytest.param(POD, id="pod"),
        pytest.param(DEPLOYMENT, id="deployment"),
        pytest.param(SLICE, id="endpointslice"),
        pytest.param(NAMESPACE, id="namespace"),
        pytest.param(NODE, id="node"),
        pytest.param(IPADDRESS, id="ipaddress"),
        pytest.param(SERVICE_CIDR, id="servicecidr"),
    ],
)
def test_documented_manifests_are_valid(base: dict[str, Any]) -> None:
    assert errors(base, cidrs=[V4, V6]) == []
    assert errors(base, old=base, cidrs=[V4, V6]) == []


# --- metadata ---------------------------------------------------------------------------------

DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
QNAME = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        pytest.param(SERVICE, {"metadata.name": DELETE},
                     ["metadata.name: Required value: name or generateName is required"],
                     id="name-required"),
        pytest.param(SERVICE, {"metadata.name": DELETE, "metadata.generateName": "web-"}, [],
                     id="generate-name-instead-of-name"),
        pytest.param(SERVICE, {"metadata.name": DELETE, "metadata.generateName": "Web-"},
                     [f'metadata.generateName: Invalid value: "Web-": {DNS1035}'],
                     id="generate-name-invalid"),
        pytest.param(SERVICE, {"metadata.name": "My-Service"},
                     [f'metadata.name: Invalid value: "My-Service": {DNS1035}'],
                     id="service-name-dns1035"),
        pytest.param(SERVICE, {"metadata.name": "1st"},
                     [f'metadata.name: Invalid value: "1st": {DNS1035}'],
                     id="service-name-leading-digit"),
        pytest.param(SERVICE, {"metadata.name": "a" * 64},
                     [f'metadata.name: Invalid value: "{"a" * 64}": must be no more than 63 '
                      "characters"], id="service-name-too-long"),
        pytest.param(NAMESPACE, {"metadata.name": "team.a"},
                     ['metadata.name: Invalid value: "team.a": must not contain dots'],
                     id="namespace-name-label"),
        pytest.param(POD, {"metadata.name": "nginx.v1"}, [], id="pod-name-subdomain"),
        pytest.param(POD, {"metadata.name": "Nginx"},
                     [f'metadata.name: Invalid value: "Nginx": {DNS1123_SUBDOMAIN}'],
                     id="pod-name-invalid"),
        pytest.param(SERVICE, {"metadata.namespace": DELETE},
                     ["metadata.namespace: Required value"], id="namespace-required"),
        pytest.param(SERVICE, {"metadata.namespace": "Prod"},
                     [f'metadata.namespace: Invalid value: "Prod": {DNS1123_LABEL}'],
                     id="namespace-invalid"),
        pytest.param(NODE, {"metadata.namespace": "default"},
                     ["metadata.namespace: Forbidden: not allowed on this type"],
                     id="namespace-forbidden-cluster-scoped"),
        pytest.param(SERVICE, {"metadata.labels": {"-x": "a b"}},
                     [f'metadata.labels: Invalid value: "-x": {QNAME}',
                      f'metadata.labels: Invalid value: "a b": {LABEL_VALUE}'],
                     id="labels"),
        pytest.param(SERVICE, {"metadata.annotations": {"Example.com/Owner": "x"}}, [],
                     id="annotation-key-checked-lower-cased"),
        pytest.param(SERVICE, {"metadata.annotations": {"example_com/owner": "x"}},
                     ['metadata.annotations: Invalid value: "example_com/owner": prefix part '
                      f"{DNS1123_SUBDOMAIN}"], id="annotation-key"),
        pytest.param(SERVICE, {"metadata.annotations": {"example.com/Owner": "x" * 300000}},
                     ["metadata.annotations: Too long: must have at most 262144 bytes"],
                     id="annotations-too-large"),
        pytest.param(SERVICE, {"metadata.finalizers": ["cleanup"]},
                     ['metadata.finalizers[0]: Invalid value: "cleanup": name is neither a '
                      "standard finalizer name nor is it fully qualified"], id="finalizer"),
        pytest.param(SERVICE, {"metadata.ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": ""}]},
                     ['metadata.ownerReferences[0].uid: Invalid value: "": uid must not be empty'],
                     id="owner-reference-uid"),
        pytest.param(SERVICE, {"metadata.ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "a", "uid": "1",
             "controller": True},
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "b", "uid": "2",
             "controller": True}]},
                     ['metadata.ownerReferences: Invalid value: [{"apiVersion": "apps/v1", '
                      '"controller": true, "kind": "Deployment", "name": "a", "uid": "1"}, '
                      '{"apiVersion": "apps/v1", "controller": true, "kind": "Deployment", '
                      '"name": "b", "uid": "2"}]: Only one reference can have Controller set to '
                      'true. Found "true" in references for a and b'], id="two-controllers"),
    ],
)
def test_metadata(base: dict[str, Any], changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(base, changes) == expected


def test_generate_name_does_not_replace_name_on_update() -> None:
    svc = mutate(SERVICE, {"metadata.name": DELETE, "metadata.generateName": "web-"})

    assert "metadata.name: Required value: name or generateName is required" in errors(
        svc, old=SERVICE)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"metadata.name": "other"},
                     ['metadata.name: Invalid value: "other": field is immutable'], id="name"),
        pytest.param({"metadata.namespace": "prod"},
                     ['metadata.namespace: Invalid value: "prod": field is immutable'],
                     id="namespace"),
        pytest.param({"metadata.uid": "u-2"},
                     ['metadata.uid: Invalid value: "u-2": field is immutable'], id="uid"),
        pytest.param({"metadata.uid": DELETE}, [], id="empty-uid-keeps-the-stored-one"),
        pytest.param({"metadata.labels": {"a": "b"}}, [], id="labels-may-change"),
    ],
)
def test_metadata_update(changes: dict[str, Any], expected: list[str]) -> None:
    old = mutate(SERVICE, {"metadata.uid": "u-1"})

    assert errors(old, changes, old=old) == expected


# --- Service ----------------------------------------------------------------------------------

PORT_RANGE = "must be between 1 and 65535, inclusive"


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        pytest.param(SERVICE, {"spec.type": "NodePort"},
                     ['spec.type: Unsupported value: "NodePort": clusterip serves only in-cluster '
                      '(ClusterIP and ExternalName) Services; supported values: "ClusterIP", '
                      '"ExternalName"'], id="type-nodeport"),
        pytest.param(SERVICE, {"spec.type": "Cluster"},
                     ['spec.type: Unsupported value: "Cluster": supported values: "ClusterIP", '
                      '"ExternalName"'], id="type-unknown"),
        pytest.param(SERVICE, {"spec.ports": []}, ["spec.ports: Required value"],
                     id="ports-required"),
        pytest.param(HEADLESS_SERVICE, {"spec.ports": []}, [], id="headless-needs-no-ports"),
        pytest.param(SERVICE, {"spec.ports[0].port": 70000},
                     [f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}"],
                     id="port-too-large"),
        pytest.param(SERVICE, {"spec.ports[0].port": 0},
                     [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"], id="port-zero"),
        pytest.param(SERVICE, {"spec.ports[0].port": DELETE, "spec.ports[0].targetPort": DELETE},
                     [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"], id="port-missing"),
        pytest.param(SERVICE, {"spec.ports[0].protocol": "SCTP"},
                     ['spec.ports[0].protocol: Unsupported value: "SCTP": SCTP is not supported '
                      'by clusterip; supported values: "TCP", "UDP"'], id="sctp"),
        pytest.param(SERVICE, {"spec.ports[0].protocol": "tcp"},
                     ['spec.ports[0].protocol: Unsupported value: "tcp": supported values: '
                      '"TCP", "UDP"'], id="protocol-case-sensitive"),
        pytest.param(SERVICE, {"spec.ports[0].protocol": "UDP"}, [], id="udp"),
        pytest.param(SERVICE, {"spec.ports[0].name": "HTTP"},
                     [f'spec.ports[0].name: Invalid value: "HTTP": {DNS1123_LABEL}'],
                     id="port-name-dns-label"),
        pytest.param(MULTI_PORT_SERVICE, {"spec.ports[1].name": DELETE},
                     ["spec.ports[1].name: Required value"], id="port-names-required"),
        pytest.param(MULTI_PORT_SERVICE, {"spec.ports[1].name": "http"},
                     ['spec.ports[1].name: Duplicate value: "http"'], id="port-names-unique"),
        pytest.param(MULTI_PORT_SERVICE, {"spec.ports[1].port": 80},
                     ['spec.ports[1]: Duplicate value: {"port": 80, "protocol": "TCP"}'],
                     id="port-protocol-pairs-unique"),
        pytest.param(MULTI_PORT_SERVICE, {"spec.ports[1].port": 80,
                                          "spec.ports[1].protocol": "UDP"},
                     [], id="same-port-other-protocol"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": 65536},
                     [f"spec.ports[0].targetPort: Invalid value: 65536: {PORT_RANGE}"],
                     id="target-port-number"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": "http-web"}, [],
                     id="target-port-name"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": "metrics-endpoint"},
                     ['spec.ports[0].targetPort: Invalid value: "metrics-endpoint": must be no '
                      "more than 15 characters"], id="target-port-name-too-long"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": "9376"},
                     ['spec.ports[0].targetPort: Invalid value: "9376": must contain at least '
                      "one letter (a-z)"], id="target-port-name-no-letter"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": "-http"},
                     ['spec.ports[0].targetPort: Invalid value: "-http": must not begin or end '
                      "with a hyphen"], id="target-port-name-hyphen"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": "web--http"},
                     ['spec.ports[0].targetPort: Invalid value: "web--http": must not contain '
                      "consecutive hyphens"], id="target-port-name-double-hyphen"),
        pytest.param(SERVICE, {"spec.ports[0].targetPort": "Http"},
                     ['spec.ports[0].targetPort: Invalid value: "Http": must contain only '
                      "alpha-numeric characters (a-z, 0-9), and hyphens (-)"],
                     id="target-port-name-upper-case"),
        pytest.param(SERVICE, {"spec.ports[0].appProtocol": "kubernetes.io/h2c"}, [],
                     id="app-protocol"),
        pytest.param(SERVICE, {"spec.ports[0].nodePort": 30001},
                     ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is "
                      "'ClusterIP'"], id="node-port"),
        pytest.param(SERVICE, {"spec.selector": {"app": "my app"}},
                     [f'spec.selector: Invalid value: "my app": {LABEL_VALUE}'],
                     id="selector-value"),
        pytest.param(SERVICE, {"spec.selector": {"a/b/c": "x"}},
                     ['spec.selector: Invalid value: "a/b/c": a qualified name must consist of '
                      "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                      "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
                      "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"],
                     id="selector-key"),
        pytest.param(SERVICE, {"spec.sessionAffinity": "Sticky"},
                     ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: '
                      '"ClientIP", "None"'], id="session-affinity"),
        pytest.param(SERVICE, {"spec.sessionAffinity": "ClientIP"}, [],
                     id="client-ip-default-timeout"),
        pytest.param(SERVICE, {"spec.sessionAffinity": "ClientIP",
                               "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
                     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: "
                      "must be greater than 0 and less than 86400"], id="timeout-zero"),
        pytest.param(SERVICE, {"spec.sessionAffinity": "ClientIP",
                               "spec.sessionAffinityConfig": {"clientIP":
                                                              {"timeoutSeconds": 86401}}},
                     ["spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 86401: "
                      "must be greater than 0 and less than 86400"], id="timeout-86401"),
        pytest.param(SERVICE, {"spec.sessionAffinity": "ClientIP",
                               "spec.sessionAffinityConfig": {"clientIP":
                                                              {"timeoutSeconds": 86400}}},
                     [], id="timeout-86400"),
        pytest.param(SERVICE, {"spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}},
                     ["spec.sessionAffinityConfig: Forbidden: must not be set when session "
                      "affinity is None"], id="affinity-config-without-affinity"),
        pytest.param(SERVICE, {"spec.internalTrafficPolicy": "Node"},
                     ['spec.internalTrafficPolicy: Unsupported value: "Node": supported values: '
                      '"Cluster", "Local"'], id="internal-traffic-policy"),
        pytest.param(SERVICE, {"spec.internalTrafficPolicy": "Local"}, [],
                     id="internal-traffic-policy-local"),
        pytest.param(SERVICE, {"spec.externalTrafficPolicy": "Local"},
                     ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for '
                      "externally-accessible services"], id="external-traffic-policy"),
        pytest.param(SERVICE, {"spec.trafficDistribution": "PreferClose"}, [],
                     id="traffic-distribution"),
        pytest.param(SERVICE, {"spec.trafficDistribution": "Nearest"},
                     ['spec.trafficDistribution: Unsupported value: "Nearest": supported values: '
                      '"PreferClose", "PreferSameNode", "PreferSameZone"'],
                     id="traffic-distribution-unknown"),
        pytest.param(SERVICE, {"spec.externalIPs": ["1.2.3"]},
                     ['spec.externalIPs[0]: Invalid value: "1.2.3": must be a valid IP address, '
                      "(e.g. 10.9.8.7 or 2001:db8::ffff)"], id="external-ip"),
    ],
)
def test_service(base: dict[str, Any], changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(base, changes) == expected


OUT_OF_RANGE = "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12"


@pytest.mark.parametrize(
    ("changes", "cidrs", "expected"),
    [
        pytest.param({"spec.clusterIP": "10.96.0.10"}, CIDRS, [], id="in-range"),
        pytest.param({"spec.clusterIP": "None"}, CIDRS, [], id="headless"),
        pytest.param({"spec.clusterIP": ""}, CIDRS, [], id="allocate"),
        pytest.param({"spec.clusterIP": "10.96.0.256"}, CIDRS,
                     ['spec.clusterIP: Invalid value: "10.96.0.256": must be a valid IP address, '
                      "(e.g. 10.9.8.7 or 2001:db8::ffff)"], id="not-an-ip"),
        pytest.param({"spec.clusterIP": "10.96.0.10/32"}, CIDRS,
                     ['spec.clusterIP: Invalid value: "10.96.0.10/32": must be a valid IP '
                      "address, (e.g. 10.9.8.7 or 2001:db8::ffff)"], id="cidr-not-ip"),
        pytest.param({"spec.clusterIP": "10.0.0.10"}, CIDRS,
                     [f'spec.clusterIP: Invalid value: "10.0.0.10": {OUT_OF_RANGE}'],
                     id="out-of-range"),
        pytest.param({"spec.clusterIP": "fd00:10:96::a%eth0"}, [V4, V6],
                     ['spec.clusterIP: Invalid value: "fd00:10:96::a%eth0": must be a valid IP '
                      "address, (e.g. 10.9.8.7 or 2001:db8::ffff)"], id="zone-not-allowed"),
        pytest.param({"spec.clusterIP": "10.0.0.10"}, [], [], id="no-cidrs-no-range-check"),
        pytest.param({"spec.clusterIP": "10.96.0.0"}, CIDRS,
                     ['spec.clusterIP: Invalid value: "10.96.0.0": provided IP is the network '
                      "address of 10.96.0.0/12, which cannot be allocated"], id="network"),
        pytest.param({"spec.clusterIP": "10.111.255.255"}, CIDRS,
                     ['spec.clusterIP: Invalid value: "10.111.255.255": provided IP is the '
                      "broadcast address of 10.96.0.0/12, which cannot be allocated"],
                     id="broadcast"),
        pytest.param({"spec.clusterIP": "fd00:10:96::ffff"}, [V4, V6], [],
                     id="ipv6-last-address-is-allocatable"),
        pytest.param({"spec.clusterIP": "fd00::1"}, CIDRS,
                     ['spec.clusterIP: Invalid value: "fd00::1": IPv6 is not configured on this '
                      "cluster (service CIDRs: 10.96.0.0/12)"], id="family-not-configured"),
        pytest.param({"spec.clusterIP": "10.96.0.10", "spec.clusterIPs": ["10.96.0.11"]}, CIDRS,
                     ['spec.clusterIPs: Invalid value: ["10.96.0.11"]: first value must match '
                      "`clusterIP`"], id="cluster-ips-first-must-match"),
        pytest.param({"spec.clusterIPs": ["10.96.0.10", "10.96.0.11"]}, CIDRS,
                     ['spec.clusterIPs: Invalid value: ["10.96.0.10", "10.96.0.11"]: may specify '
                      "no more than one IP for each IP family"], id="cluster-ips-same-family"),
        pytest.param({"spec.clusterIPs": ["10.96.0.10", "fd00:10:96::a", "10.96.0.12"]},
                     [V4, V6],
                     ['spec.clusterIPs: Invalid value: ["10.96.0.10", "fd00:10:96::a", '
                      '"10.96.0.12"]: may only hold up to 2 values'], id="cluster-ips-three"),
        pytest.param({"spec.clusterIPs": ["None", "fd00:10:96::a"]}, [V4, V6],
                     ['spec.clusterIPs: Invalid value: ["None", "fd00:10:96::a"]: \'None\' must '
                      "be the first and only value"], id="none-not-alone"),
        pytest.param({"spec.clusterIPs": ["10.96.0.10", "fd00::a"]}, [V4, V6],
                     ['spec.clusterIPs[1]: Invalid value: "fd00::a": provided IP is not in the '
                      "valid range. The range of valid IPs is fd00:10:96::/112"],
                     id="secondary-out-of-range"),
        pytest.param({"spec.clusterIP": "10.96.0.10", "spec.ipFamilies": ["IPv6"]}, [V4, V6],
                     ['spec.clusterIPs[0]: Invalid value: "10.96.0.10": expected an IPv6 value '
                      "as indicated by `ipFamilies[0]`"], id="family-mismatch"),
        pytest.param({"spec.ipFamilies": ["IPv4", "IPv4"]}, CIDRS,
                     ['spec.ipFamilies[1]: Duplicate value: "IPv4"'], id="families-duplicate"),
        pytest.param({"spec.ipFamilies": ["IPv5"]}, CIDRS,
                     ['spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", '
                      '"IPv6"'], id="family-unknown"),
        pytest.param({"spec.ipFamilyPolicy": "DualStack"}, CIDRS,
                     ['spec.ipFamilyPolicy: Unsupported value: "DualStack": supported values: '
                      '"PreferDualStack", "RequireDualStack", "SingleStack"'], id="family-policy"),
    ],
)
def test_service_cluster_ip(changes: dict[str, Any], cidrs: list[Any],
                            expected: list[str]) -> None:
    assert errors(SERVICE, changes, cidrs=cidrs) == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"spec.externalName": DELETE}, ["spec.externalName: Required value"],
                     id="required"),
        pytest.param({"spec.externalName": "my.database.example.com."}, [], id="trailing-dot"),
        pytest.param({"spec.externalName": "DB.example.com"},
                     [f'spec.externalName: Invalid value: "DB.example.com": {DNS1123_SUBDOMAIN}'],
                     id="invalid"),
        pytest.param({"spec.clusterIP": "10.96.0.9"},
                     ["spec.clusterIP: Forbidden: may not be set for ExternalName services"],
                     id="cluster-ip-forbidden"),
        pytest.param({"spec.ipFamilies": ["IPv4"]},
                     ["spec.ipFamilies: Forbidden: may not be set for ExternalName services"],
                     id="families-forbidden"),
        pytest.param({"spec.ports": [{"port": 5432}]}, [], id="ports-allowed"),
        pytest.param({"spec.clusterIPs": ["10.96.0.9"]},
                     ["spec.clusterIP: Forbidden: may not be set for ExternalName services"],
                     id="cluster-ips-forbidden"),
        pytest.param({"spec.ipFamilyPolicy": "SingleStack"},
                     ["spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"],
                     id="family-policy-forbidden"),
    ],
)
def test_external_name_service(changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(EXTERNAL_NAME_SERVICE, changes) == expected


@pytest.mark.parametrize(
    ("old_changes", "new_changes", "expected"),
    [
        pytest.param({"spec.clusterIP": "10.96.0.10"}, {"spec.clusterIP": "10.96.0.11"},
                     ['spec.clusterIP: Invalid value: "10.96.0.11": field is immutable'],
                     id="changed"),
        pytest.param({"spec.clusterIP": "10.96.0.10"}, {"spec.clusterIP": "None"},
                     ['spec.clusterIP: Invalid value: "None": field is immutable'],
                     id="to-headless"),
        pytest.param({"spec.clusterIP": "10.96.0.10"}, {"spec.clusterIP": "10.96.0.10"}, [],
                     id="unchanged"),
        pytest.param({}, {"spec.clusterIP": "10.96.0.11"}, [], id="old-was-empty"),
        pytest.param({"spec.clusterIP": "10.96.0.10"},
                     {"spec.clusterIP": DELETE, "spec.type": "ExternalName",
                      "spec.externalName": "db.example.com", "spec.selector": DELETE}, [],
                     id="to-external-name"),
        pytest.param({"spec.clusterIPs": ["10.96.0.10", "fd00:10:96::a"]},
                     {"spec.clusterIPs": ["10.96.0.10", "fd00:10:96::b"]},
                     ['spec.clusterIPs[1]: Invalid value: "fd00:10:96::b": field is immutable'],
                     id="secondary-changed"),
        pytest.param({"spec.clusterIPs": ["10.96.0.10"]},
                     {"spec.clusterIPs": ["10.96.0.10", "fd00:10:96::b"]}, [],
                     id="secondary-added"),
        pytest.param({"spec.clusterIPs": ["10.96.0.10", "fd00:10:96::a"]},
                     {"spec.clusterIPs": ["10.96.0.10"]}, [], id="secondary-released"),
        pytest.param({"spec.clusterIP": "10.96.0.10"},
                     {"spec.clusterIP": "10.96.0.10", "spec.ports[0].port": 8080}, [],
                     id="ports-may-change"),
    ],
)
def test_service_update(old_changes: dict[str, Any], new_changes: dict[str, Any],
                        expected: list[str]) -> None:
    old = mutate(SERVICE, old_changes)

    assert errors(SERVICE, new_changes, old=old, cidrs=[V4, V6]) == expected


def test_service_reports_every_error_at_once() -> None:
    found = errors(MULTI_PORT_SERVICE, {
        "metadata.name": "Web",
        "spec.ports[0].port": 70000,
        "spec.ports[1].protocol": "SCTP",
        "spec.ports[1].name": "http",
        "spec.clusterIP": "10.0.0.1",
        "spec.sessionAffinity": "ClientIP",
        "spec.sessionAffinityConfig": {"clientIP": {"timeoutSeconds": -5}},
    })

    assert found == [
        f'metadata.name: Invalid value: "Web": {DNS1035}',
        f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}",
        'spec.ports[1].name: Duplicate value: "http"',
        'spec.ports[1].protocol: Unsupported value: "SCTP": SCTP is not supported by clusterip; '
        'supported values: "TCP", "UDP"',
        f'spec.clusterIP: Invalid value: "10.0.0.1": {OUT_OF_RANGE}',
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: -5: must be greater "
        "than 0 and less than 86400",
    ]


def test_service_without_defaults_reports_required_fields() -> None:
    svc = model.Service(metadata=model.ObjectMeta(name="web", namespace="default"),
                        spec=model.ServiceSpec(ports=(model.ServicePort(port=80),)))

    assert [str(e) for e in validate(svc)] == [
        "spec.type: Required value",
        "spec.ports[0].protocol: Required value",
        "spec.sessionAffinity: Required value",
    ]


# --- Pod --------------------------------------------------------------------------------------

C0 = "spec.containers[0]"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"spec.containers": []}, ["spec.containers: Required value"],
                     id="containers-required"),
        pytest.param({f"{C0}.name": DELETE}, [f"{C0}.name: Required value"], id="name-required"),
        pytest.param({f"{C0}.name": "web_1"},
                     [f'{C0}.name: Invalid value: "web_1": {DNS1123_LABEL}'], id="name-label"),
        pytest.param({"spec.containers[1]": {"name": "nginx", "image": "busybox",
            "command": SLEEP}},
                     ['spec.containers[1].name: Duplicate value: "nginx"'], id="names-unique"),
        pytest.param({"spec.initContainers": [{"name": "nginx", "image": "busybox",
            "command": SLEEP}]},
                     ['spec.containers[0].name: Duplicate value: "nginx"'],
                     id="names-unique-with-init-containers"),
        pytest.param({f"{C0}.command": DELETE}, [], id="image-without-command"),
        pytest.param({f"{C0}.command": DELETE, f"{C0}.image": DELETE},
                     [f"{C0}.image: Required value: a container needs an image or a command "
                      "(clusterip runs the command on the node; images are accepted and not "
                      "run)"], id="image-or-command-required"),
        pytest.param({f"{C0}.image": DELETE}, [], id="command-without-image"),
        pytest.param({f"{C0}.image": " nginx"},
                     [f'{C0}.image: Invalid value: " nginx": must not have leading or trailing '
                      "whitespace"], id="image-whitespace"),
        pytest.param({f"{C0}.ports[0].containerPort": 0},
                     [f"{C0}.ports[0].containerPort: Required value"], id="container-port-zero"),
        pytest.param({f"{C0}.ports[0].containerPort": 65536},
                     [f"{C0}.ports[0].containerPort: Invalid value: 65536: {PORT_RANGE}"],
                     id="container-port-range"),
        pytest.param({f"{C0}.ports[0].hostPort": 70000},
                     [f"{C0}.ports[0].hostPort: Invalid value: 70000: {PORT_RANGE}"],
                     id="host-port-range"),
        pytest.param({f"{C0}.ports[0].name": "http-web-frontend",
                      f"{C0}.readinessProbe.httpGet.port": 80},
                     [f'{C0}.ports[0].name: Invalid value: "http-web-frontend": must be no more '
                      "than 15 characters"], id="port-name-iana"),
        pytest.param({f"{C0}.ports[1]": {"name": "http", "containerPort": 81}},
                     [f'{C0}.ports[1].name: Duplicate value: "http"'], id="port-names-unique"),
        pytest.param({"spec.containers[1]": {"name": "sidecar", "image": "envoy", "command": SLEEP,
                                             "ports": [{"name": "http", "containerPort": 9000}]}},
                     ['spec.containers[1].ports[0].name: Duplicate value: "http"'],
                     id="port-names-unique-in-pod"),
        pytest.param({f"{C0}.ports[0].protocol": "SCTP"},
                     [f'{C0}.ports[0].protocol: Unsupported value: "SCTP": SCTP is not supported '
                      'by clusterip; supported values: "TCP", "UDP"'], id="port-protocol"),
        pytest.param({f"{C0}.readinessProbe": {"periodSeconds": 5}},
                     [f"{C0}.readinessProbe: Required value: must specify a handler type"],
                     id="probe-no-handler"),
        pytest.param({f"{C0}.readinessProbe.exec": {"command": ["true"]}},
                     [f"{C0}.readinessProbe.httpGet: Forbidden: may not specify more than 1 "
                      "handler type"], id="probe-two-handlers"),
        pytest.param({f"{C0}.readinessProbe": {"exec": {"command": []}}},
                     [f"{C0}.readinessProbe.exec.command: Required value"],
                     id="exec-command-required"),
        pytest.param({f"{C0}.readinessProbe": {"grpc": {"port": 0}}},
                     [f"{C0}.readinessProbe.grpc.port: Invalid value: 0: {PORT_RANGE}"],
                     id="grpc-port"),
        pytest.param({f"{C0}.readinessProbe": {"grpc": {"service": "health"}}},
                     [f"{C0}.readinessProbe.grpc.port: Required value"], id="grpc-port-required"),
        pytest.param({f"{C0}.readinessProbe": {"grpc": {"port": "grpc"}}},
                     [f'{C0}.readinessProbe.grpc.port: Invalid value: "grpc": must be an integer '
                      "port number"], id="grpc-port-name"),
        pytest.param({f"{C0}.readinessProbe.httpGet.httpHeaders": [{"name": "X-Trace",
                                                                    "value": "1"}]}, [],
                     id="http-header"),
        pytest.param({f"{C0}.name": "n" * 64},
                     [f'{C0}.name: Invalid value: "{"n" * 64}": must be no more than 63 '
                      "characters"], id="name-too-long"),
        pytest.param({f"{C0}.readinessProbe.httpGet.port": 0},
                     [f"{C0}.readinessProbe.httpGet.port: Invalid value: 0: {PORT_RANGE}"],
                     id="http-get-port"),
        pytest.param({f"{C0}.readinessProbe.httpGet.scheme": "ftp"},
                     [f'{C0}.readinessProbe.httpGet.scheme: Unsupported value: "ftp": supported '
                      'values: "HTTP", "HTTPS"'], id="http-get-scheme"),
        pytest.param({f"{C0}.readinessProbe.httpGet.httpHeaders": [{"name": "X Y",
                                                                    "value": "1"}]},
                     [f'{C0}.readinessProbe.httpGet.httpHeaders: Invalid value: "X Y": a valid '
                      "HTTP header must consist of alphanumeric characters or '-' (e.g. "
                      "'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"],
                     id="http-header-name"),
        pytest.param({f"{C0}.livenessProbe.tcpSocket.port": "no_such"},
                     [f'{C0}.livenessProbe.tcpSocket.port: Invalid value: "no_such": must '
                      "contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"],
                     id="tcp-socket-port"),
        pytest.param({f"{C0}.readinessProbe.initialDelaySeconds": -1},
                     [f"{C0}.readinessProbe.initialDelaySeconds: Invalid value: -1: must be "
                      "greater than or equal to 0"], id="probe-negative"),
        pytest.param({f"{C0}.readinessProbe.failureThreshold": -3},
                     [f"{C0}.readinessProbe.failureThreshold: Invalid value: -3: must be greater "
                      "than or equal to 0"], id="probe-failure-threshold"),
        pytest.param({f"{C0}.readinessProbe.successThreshold": 3}, [],
                     id="readiness-success-threshold"),
        pytest.param({f"{C0}.livenessProbe.successThreshold": 3},
                     [f"{C0}.livenessProbe.successThreshold: Invalid value: 3: must be 1"],
                     id="liveness-success-threshold"),
        pytest.param({f"{C0}.livenessProbe.terminationGracePeriodSeconds": 0},
                     [f"{C0}.livenessProbe.terminationGracePeriodSeconds: Invalid value: 0: must "
                      "be greater than 0"], id="probe-grace-period"),
        pytest.param({"spec.initContainers": [{"name": "init", "image": "busybox", "command": SLEEP,
                                               "readinessProbe": {"exec": {"command": ["x"]}}}]},
                     ["spec.initContainers[0].readinessProbe: Forbidden: may not be set for init "
                      "containers"], id="init-container-probe"),
        pytest.param({f"{C0}.env[0].name": "A=B"},
                     [f'{C0}.env[0].name: Invalid value: "A=B": a valid environment variable name '
                      "must consist only of printable ASCII characters other than '='"],
                     id="env-name"),
        pytest.param({f"{C0}.env[0].name": "my.env-name"}, [], id="env-name-relaxed"),
        pytest.param({f"{C0}.env[0].valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                     [f'{C0}.env[0].valueFrom: Invalid value: "": may not be specified when '
                      "`value` is not empty"], id="env-value-and-value-from"),
        pytest.param({f"{C0}.env[0]": {"name": "IP", "valueFrom": {}}},
                     [f'{C0}.env[0].valueFrom: Invalid value: "": must specify one of: '
                      "`fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"],
                     id="env-value-from-empty"),
        pytest.param({"spec.restartPolicy": "Sometimes"},
                     ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
                      '"Always", "Never", "OnFailure"'], id="restart-policy"),
        pytest.param({"spec.restartPolicy": "Never"}, [], id="restart-policy-never"),
        pytest.param({"spec.dnsPolicy": "Cluster"},
                     ['spec.dnsPolicy: Unsupported value: "Cluster": supported values: '
                      '"ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"'],
                     id="dns-policy"),
        pytest.param({"spec.dnsPolicy": "None"},
                     ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` "
                      "is None"], id="dns-policy-none"),
        pytest.param({"spec.terminationGracePeriodSeconds": -1},
                     ["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater "
                      "than or equal to 0"], id="grace-period"),
        pytest.param({"spec.activeDeadlineSeconds": 0},
                     ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and "
                      "2147483647, inclusive"], id="active-deadline"),
        pytest.param({"spec.hostname": "Web"},
                     [f'spec.hostname: Invalid value: "Web": {DNS1123_LABEL}'], id="hostname"),
        pytest.param({"spec.subdomain": "web.svc"},
                     ['spec.subdomain: Invalid value: "web.svc": must not contain dots'],
                     id="subdomain"),
        pytest.param({"spec.nodeName": "Node_1"},
                     [f'spec.nodeName: Invalid value: "Node_1": {DNS1123_SUBDOMAIN}'],
                     id="node-name"),
        pytest.param({"spec.nodeSelector": {"disk": "fast ssd"}},
                     [f'spec.nodeSelector: Invalid value: "fast ssd": {LABEL_VALUE}'],
                     id="node-selector"),
    ],
)
def test_pod(changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(POD, changes) == expected


def test_env_name_required() -> None:
    pod = obj_of(POD)
    container = msgspec.structs.replace(pod.spec.containers[0], env=(model.EnvVar(name=""),))
    pod = msgspec.structs.replace(pod, spec=msgspec.structs.replace(pod.spec,
                                                                    containers=(container,)))

    assert [str(e) for e in validate(pod)] == [f"{C0}.env[0].name: Required value"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(None, "spec.sessionAffinityConfig: Required value: when session affinity "
                     "type is ClientIP", id="config"),
        pytest.param(model.SessionAffinityConfig(),
                     "spec.sessionAffinityConfig.clientIP: Required value: when session affinity "
                     "type is ClientIP", id="client-ip"),
        pytest.param(model.SessionAffinityConfig(client_ip=model.ClientIPConfig()),
                     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Required value: when "
                     "session affinity type is ClientIP", id="timeout"),
    ],
)
def test_client_ip_affinity_without_defaults(config: model.SessionAffinityConfig | None,
                                             expected: str) -> None:
    svc = model.Service(
        metadata=model.ObjectMeta(name="web", namespace="default"),
        spec=model.ServiceSpec(type="ClusterIP", cluster_ip="None", session_affinity="ClientIP",
                               session_affinity_config=config),
    )

    assert [str(e) for e in validate(svc)] == [
        expected, "spec.internalTrafficPolicy: Required value"]


def test_cluster_ips_without_cluster_ip() -> None:
    svc = obj_of(SERVICE)
    svc = msgspec.structs.replace(svc, spec=msgspec.structs.replace(
        svc.spec, cluster_ip="", cluster_ips=("10.96.0.10",)))

    assert [str(e) for e in validate(svc)] == [
        'spec.clusterIPs: Invalid value: ["10.96.0.10"]: must be empty when `clusterIP` is not '
        "specified"]


def test_pod_probe_without_defaults() -> None:
    probe = model.Probe(http_get=model.HTTPGetAction(port=80))
    pod = model.Pod(
        metadata=model.ObjectMeta(name="p", namespace="default"),
        spec=model.PodSpec(restart_policy="Always", dns_policy="ClusterFirst", containers=(
            model.Container(name="c", image="x", command=("sleep", "1d"), readiness_probe=probe),)),
    )

    assert [str(e) for e in validate(pod)] == [
        f"{C0}.readinessProbe.httpGet.path: Required value",
        f"{C0}.readinessProbe.httpGet.scheme: Required value",
    ]


POD_UPDATE = (
    "spec: Forbidden: pod updates may not change fields other than "
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations); changed: "
)


@pytest.mark.parametrize(
    ("old_changes", "new_changes", "expected"),
    [
        pytest.param({}, {}, [], id="unchanged"),
        pytest.param({}, {f"{C0}.image": "nginx:1.27"}, [], id="image"),
        pytest.param({}, {"spec.activeDeadlineSeconds": 60}, [], id="active-deadline"),
        pytest.param({}, {"status": {"phase": "Running", "podIP": "10.244.0.5"}}, [],
                     id="status-only"),
        pytest.param({}, {"spec.nodeName": "node-1"}, [], id="node-name-set-once"),
        pytest.param({"spec.nodeName": "node-1"}, {"spec.nodeName": "node-2"},
                     [POD_UPDATE + "`spec.nodeName`"], id="node-name-changed"),
        pytest.param({}, {"spec.restartPolicy": "Never"}, [POD_UPDATE + "`spec.restartPolicy`"],
                     id="restart-policy"),
        pytest.param({}, {"spec.containers[1]": {"name": "sidecar", "image": "envoy",
            "command": SLEEP}},
                     [POD_UPDATE + "`spec.containers`"], id="container-added"),
        pytest.param({}, {f"{C0}.ports[0].containerPort": 8080, "spec.hostname": "web"},
                     [POD_UPDATE + "`spec.containers`, `spec.hostname`"], id="two-fields"),
        pytest.param({"spec.tolerations": [{"key": "a", "operator": "Exists"}]},
                     {"spec.tolerations": [{"key": "a", "operator": "Exists"},
                                           {"key": "b", "operator": "Exists"}]},
                     [], id="toleration-added"),
        pytest.param({"spec.tolerations": [{"key": "a", "operator": "Exists"}]},
                     {"spec.tolerations": []},
                     ["spec.tolerations: Forbidden: existing toleration can not be modified "
                      "except its tolerationSeconds"], id="toleration-removed"),
    ],
)
def test_pod_update(old_changes: dict[str, Any], new_changes: dict[str, Any],
                    expected: list[str]) -> None:
    assert errors(POD, new_changes, old=mutate(POD, old_changes)) == expected


# --- EndpointSlice ----------------------------------------------------------------------------

E0 = "endpoints[0]"


def too_many(path: str, count: int, limit: int) -> str:
    # Printed by core.errors (Kubernetes also prints the count: "Too many: 101: must have...").
    return str(errors_module.too_many(path, count, limit))



@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"addressType": "IP"},
                     ['addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", '
                      '"IPv6"'], id="address-type"),
        pytest.param({"addressType": DELETE}, ["addressType: Required value"],
                     id="address-type-required"),
        pytest.param({f"{E0}.addresses": []},
                     [f"{E0}.addresses: Required value: must contain at least 1 address"],
                     id="no-addresses"),
        pytest.param({f"{E0}.addresses": [f"10.1.2.{i}" for i in range(1, 102)]},
                     [too_many(f"{E0}.addresses", 101, 100)],
                     id="too-many-addresses"),
        pytest.param({f"{E0}.addresses": ["127.0.0.1"]},
                     [f'{E0}.addresses[0]: Invalid value: "127.0.0.1": may not be in the loopback '
                      "range (127.0.0.0/8, ::1/128)"], id="loopback"),
        pytest.param({f"{E0}.addresses": ["169.254.0.9"]},
                     [f'{E0}.addresses[0]: Invalid value: "169.254.0.9": may not be in the '
                      "link-local range (169.254.0.0/16, fe80::/10)"], id="link-local"),
        pytest.param({f"{E0}.addresses": ["224.0.0.1"]},
                     [f'{E0}.addresses[0]: Invalid value: "224.0.0.1": may not be in the '
                      "multicast range (224.0.0.0/4, ff00::/8)"], id="multicast"),
        pytest.param({f"{E0}.addresses": ["0.0.0.0"]},
                     [f'{E0}.addresses[0]: Invalid value: "0.0.0.0": may not be unspecified '
                      "(0.0.0.0, ::)"], id="unspecified"),
        pytest.param({f"{E0}.addresses": ["10.1.2.3.4"]},
                     [f'{E0}.addresses[0]: Invalid value: "10.1.2.3.4": must be a valid IP '
                      "address, (e.g. 10.9.8.7 or 2001:db8::ffff)"], id="not-an-ip"),
        pytest.param({f"{E0}.addresses": ["fd00::1"]},
                     [f'{E0}.addresses[0]: Invalid value: "fd00::1": must be an IPv4 address'],
                     id="wrong-family"),
        pytest.param({"addressType": "IPv6", f"{E0}.addresses": ["fd00::1"]}, [], id="ipv6"),
        pytest.param({"addressType": "IPv6", f"{E0}.addresses": ["::1"]},
                     [f'{E0}.addresses[0]: Invalid value: "::1": may not be in the loopback '
                      "range (127.0.0.0/8, ::1/128)"], id="ipv6-loopback"),
        pytest.param({"addressType": "FQDN", f"{E0}.addresses": ["db.example.com"]}, [],
                     id="fqdn"),
        pytest.param({"addressType": "FQDN", f"{E0}.addresses": ["db"]},
                     [f'{E0}.addresses[0]: Invalid value: "db": should be a domain with at least '
                      "two segments separated by dots"], id="fqdn-one-segment"),
        pytest.param({f"{E0}.nodeName": "Node 1"},
                     [f'{E0}.nodeName: Invalid value: "Node 1": {DNS1123_SUBDOMAIN}'],
                     id="node-name"),
        pytest.param({f"{E0}.hostname": "pod.1"},
                     [f'{E0}.hostname: Invalid value: "pod.1": must not contain dots'],
                     id="hostname"),
        pytest.param({f"{E0}.targetRef.name": DELETE},
                     [f"{E0}.targetRef.name: Required value"], id="target-ref-name"),
        pytest.param({f"{E0}.targetRef.namespace": "Default"},
                     [f'{E0}.targetRef.namespace: Invalid value: "Default": {DNS1123_LABEL}'],
                     id="target-ref-namespace"),
        pytest.param({"ports[0].name": "HTTP"},
                     [f'ports[0].name: Invalid value: "HTTP": {DNS1123_LABEL}'], id="port-name"),
        pytest.param({"ports[0].name": "metrics-and-health"}, [], id="port-name-dns-label"),
        pytest.param({"ports[1]": {"name": "http", "port": 81}},
                     ['ports[1].name: Duplicate value: "http"'], id="port-names-unique"),
        pytest.param({"ports": [{"port": 80}, {"port": 81}]},
                     ['ports[1].name: Duplicate value: ""'], id="unnamed-ports-unique"),
        pytest.param({"ports[0].protocol": "SCTP"},
                     ['ports[0].protocol: Unsupported value: "SCTP": SCTP is not supported by '
                      'clusterip; supported values: "TCP", "UDP"'], id="protocol"),
        pytest.param({"ports[0].port": 0}, [], id="port-zero"),
        pytest.param({"ports[0].port": DELETE}, [], id="port-absent-means-all"),
        pytest.param({"ports[0].appProtocol": "h2 c"},
                     [f'ports[0].appProtocol: Invalid value: "h2 c": {QNAME}'],
                     id="app-protocol"),
        pytest.param({"addressType": "IP", f"{E0}.addresses": ["anything"]},
                     ['addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", '
                      '"IPv6"'], id="addresses-unchecked-for-unknown-type"),
        pytest.param({"ports[0].port": 65536},
                     ["ports[0].port: Invalid value: 65536: must be between 0 and 65535, "
                      "inclusive"], id="port-range"),
        pytest.param({"ports": [{"name": f"p{i}", "port": i} for i in range(101)]},
                     [too_many("ports", 101, 100)],
                     id="too-many-ports"),
    ],
)
def test_endpoint_slice(changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(SLICE, changes) == expected


def test_endpoint_slice_endpoint_limit() -> None:
    endpoint = {"addresses": ["10.1.2.3"]}

    assert errors(SLICE, {"endpoints": [endpoint] * 1000}) == []
    assert errors(SLICE, {"endpoints": [endpoint] * 1001}) == [
        too_many("endpoints", 1001, 1000)
    ]


def test_endpoint_slice_address_type_is_immutable() -> None:
    new = mutate(SLICE, {"addressType": "IPv6", f"{E0}.addresses": ["fd00::1"]})

    assert errors(new, old=SLICE) == ['addressType: Invalid value: "IPv6": field is immutable']
    assert errors(SLICE, {f"{E0}.addresses": ["10.1.2.4"]}, old=SLICE) == []


# --- Deployment -------------------------------------------------------------------------------

TS = "spec.template.spec"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param({"spec.replicas": -1},
                     ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
                     id="replicas"),
        pytest.param({"spec.replicas": 0}, [], id="replicas-zero"),
        pytest.param({"spec.selector": DELETE}, ["spec.selector: Required value"],
                     id="selector-required"),
        pytest.param({"spec.selector": {}},
                     ["spec.selector: Invalid value: {}: empty selector is invalid for "
                      "deployment"], id="selector-empty"),
        pytest.param({"spec.selector.matchLabels": {"app": "web"}},
                     ['spec.template.metadata.labels: Invalid value: {"app": "nginx"}: '
                      "`selector` does not match template `labels`"], id="selector-mismatch"),
        pytest.param({"spec.selector.matchExpressions": [
            {"key": "tier", "operator": "DoesNotExist"}]}, [], id="selector-expression"),
        pytest.param({"spec.selector.matchExpressions": [{"key": "tier", "operator": "In"}]},
                     ["spec.selector.matchExpressions[0].values: Required value: must be "
                      "specified when `operator` is 'In' or 'NotIn'"], id="in-without-values"),
        pytest.param({"spec.selector.matchExpressions": [
            {"key": "tier", "operator": "Exists", "values": ["a"]}]},
                     ["spec.selector.matchExpressions[0].values: Forbidden: may not be specified "
                      "when `operator` is 'Exists' or 'DoesNotExist'"], id="exists-with-values"),
        pytest.param({"spec.selector.matchExpressions": [
            {"key": "tier", "operator": "Like", "values": ["a"]}]},
                     ['spec.selector.matchExpressions[0].operator: Invalid value: "Like": not a '
                      "valid selector operator"], id="operator"),
        pytest.param({"spec.selector.matchLabels": {"app": "nginx", "-x": "y"}},
                     [f'spec.selector.matchLabels: Invalid value: "-x": {QNAME}'],
                     id="match-labels-syntax"),
        pytest.param({"spec.template.metadata.labels": {"app": "nginx", "v": "1 0"}},
                     [f'spec.template.metadata.labels: Invalid value: "1 0": {LABEL_VALUE}'],
                     id="template-labels-syntax"),
        pytest.param({f"{TS}.containers[0].ports[0].containerPort": 70000},
                     [f"{TS}.containers[0].ports[0].containerPort: Invalid value: 70000: "
                      f"{PORT_RANGE}"], id="template-spec"),
        pytest.param({f"{TS}.containers": []}, [f"{TS}.containers: Required value"],
                     id="template-containers"),
        pytest.param({f"{TS}.restartPolicy": "OnFailure"},
                     [f'{TS}.restartPolicy: Unsupported value: "OnFailure": supported values: '
                      '"Always"'], id="template-restart-policy"),
        pytest.param({f"{TS}.activeDeadlineSeconds": 30},
                     [f"{TS}.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in "
                      "ReplicaSet is not Supported"], id="template-active-deadline"),
        pytest.param({"spec.strategy": {"type": "Recreate"}}, [], id="strategy-recreate"),
        pytest.param({"spec.strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
                     ["spec.strategy.rollingUpdate: Forbidden: may not be specified when "
                      "strategy `type` is 'Recreate'"], id="strategy-recreate-rolling"),
        pytest.param({"spec.strategy": {"type": 3}},
                     ["spec.strategy.type: Invalid value: 3: must be a string"],
                     id="strategy-type-not-a-string"),
        pytest.param({"spec.strategy": {"type": "RollingUpdate", "rollingUpdate": "fast"}},
                     ['spec.strategy.rollingUpdate: Invalid value: "fast": must be an object'],
                     id="rolling-update-not-an-object"),
        pytest.param({"spec.strategy": {"rollingUpdate": {"maxSurge": True}}},
                     ["spec.strategy.rollingUpdate.maxSurge: Invalid value: true: must be an "
                      "integer or percentage (e.g '5%')"], id="max-surge-bool"),
        pytest.param({"spec.strategy": {"rollingUpdate": {"maxSurge": 2,
                                                          "maxUnavailable": 0}}}, [],
                     id="surge-only"),
        pytest.param({"spec.strategy": {"type": "Canary"}},
                     ['spec.strategy.type: Unsupported value: "Canary": supported values: '
                      '"Recreate", "RollingUpdate"'], id="strategy-type"),
        pytest.param({"spec.strategy": {"rollingUpdate": {"maxSurge": 0,
                                                          "maxUnavailable": "0%"}}},
                     ['spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not '
                      "be 0 when `maxSurge` is 0"], id="both-zero"),
        pytest.param({"spec.strategy": {"rollingUpdate": {"maxUnavailable": "110%"}}},
                     ['spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "110%": must '
                      "not be greater than 100%"], id="max-unavailable-over-100"),
        pytest.param({"spec.strategy": {"rollingUpdate": {"maxSurge": "5"}}},
                     ['spec.strategy.rollingUpdate.maxSurge: Invalid value: "5": must be an '
                      "integer or percentage (e.g '5%')"], id="max-surge-string"),
        pytest.param({"spec.strategy": {"rollingUpdate": {"maxSurge": -1}}},
                     ["spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater "
                      "than or equal to 0"], id="max-surge-negative"),
        pytest.param({"spec.minReadySeconds": -1},
                     ["spec.minReadySeconds: Invalid value: -1: must be greater than or equal to "
                      "0"], id="min-ready"),
        pytest.param({"spec.revisionHistoryLimit": -1},
                     ["spec.revisionHistoryLimit: Invalid value: -1: must be greater than or "
                      "equal to 0"], id="revision-history"),
        pytest.param({"spec.progressDeadlineSeconds": 0},
                     ["spec.progressDeadlineSeconds: Invalid value: 0: must be greater than zero"],
                     id="progress-deadline"),
        pytest.param({"spec.progressDeadlineSeconds": 30, "spec.minReadySeconds": 30},
                     ["spec.progressDeadlineSeconds: Invalid value: 30: must be greater than "
                      "minReadySeconds"], id="progress-deadline-vs-min-ready"),
    ],
)
def test_deployment(changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(DEPLOYMENT, changes) == expected


def test_deployment_selector_is_immutable() -> None:
    new = mutate(DEPLOYMENT, {"spec.selector.matchLabels": {"app": "nginx", "tier": "web"},
                              "spec.template.metadata.labels": {"app": "nginx", "tier": "web"}})

    assert errors(new, old=DEPLOYMENT) == [
        'spec.selector: Invalid value: {"matchLabels": {"app": "nginx", "tier": "web"}}: field '
        "is immutable"
    ]
    assert errors(DEPLOYMENT, {"spec.replicas": 5, f"{TS}.containers[0].image": "nginx:1.27"},
                  old=DEPLOYMENT) == []


# --- Namespace, Node, IPAddress, ServiceCIDR --------------------------------------------------


@pytest.mark.parametrize(
    ("base", "changes", "expected"),
    [
        pytest.param(NAMESPACE, {"status": {"phase": "Gone"}},
                     ['status.phase: Unsupported value: "Gone": supported values: "Active", '
                      '"Terminating"'], id="namespace-phase"),
        pytest.param(NAMESPACE, {"spec": {"finalizers": ["kubernetes"]}}, [],
                     id="namespace-finalizer"),
        pytest.param(NODE, {"spec.podCIDR": "10.244.1.0/33", "spec.podCIDRs": DELETE},
                     ['spec.podCIDR: Invalid value: "10.244.1.0/33": must be a valid CIDR value, '
                      "(e.g. 10.9.8.0/24 or 2001:db8::/64)"], id="node-pod-cidr"),
        pytest.param(NODE, {"spec.podCIDR": "10.244.1.7/24", "spec.podCIDRs": DELETE},
                     ['spec.podCIDR: Invalid value: "10.244.1.7/24": must be in canonical form '
                      '("10.244.1.0/24")'], id="node-pod-cidr-host-bits"),
        pytest.param(NODE, {"spec.podCIDRs": ["10.244.2.0/24"]},
                     ['spec.podCIDRs: Invalid value: ["10.244.2.0/24"]: first value must match '
                      "`podCIDR`"], id="node-pod-cidrs-first"),
        pytest.param(NODE, {"spec.podCIDRs": ["10.244.1.0/24", "10.245.1.0/24"]},
                     ['spec.podCIDRs: Invalid value: ["10.244.1.0/24", "10.245.1.0/24"]: may '
                      "specify no more than one CIDR for each IP family"],
                     id="node-pod-cidrs-family"),
        pytest.param(NODE, {"spec.podCIDRs": ["10.244.1.0/24", "fd00:244:1::/64"]}, [],
                     id="node-dual-stack"),
        pytest.param(IPADDRESS, {"metadata.name": "10.96.0.256"},
                     ['metadata.name: Invalid value: "10.96.0.256": must be a valid IP address, '
                      "(e.g. 10.9.8.7 or 2001:db8::ffff)"], id="ipaddress-name"),
        pytest.param(IPADDRESS, {"metadata.name": "fd00:10:96:0::a"},
                     ['metadata.name: Invalid value: "fd00:10:96:0::a": must be a canonical '
                      "format IP address"], id="ipaddress-name-canonical"),
        pytest.param(IPADDRESS, {"metadata.name": "fd00:10:96::a"}, [], id="ipaddress-ipv6"),
        pytest.param(IPADDRESS, {"spec.parentRef": DELETE}, ["spec.parentRef: Required value"],
                     id="ipaddress-parent-required"),
        pytest.param(IPADDRESS, {"spec.parentRef": {"group": ""}},
                     ["spec.parentRef.resource: Required value",
                      "spec.parentRef.name: Required value"], id="ipaddress-parent-fields"),
        pytest.param(IPADDRESS, {"spec.parentRef.name": "a/b"},
                     ['spec.parentRef.name: Invalid value: "a/b": may not contain \'/\''],
                     id="ipaddress-parent-name"),
        pytest.param(IPADDRESS, {"spec.parentRef.group": "Networking"},
                     [f'spec.parentRef.group: Invalid value: "Networking": {DNS1123_SUBDOMAIN}'],
                     id="ipaddress-parent-group"),
        pytest.param(SERVICE_CIDR, {"spec.cidrs": []},
                     ["spec.cidrs: Required value: at least one CIDR required"],
                     id="servicecidr-required"),
        pytest.param(SERVICE_CIDR, {"spec.cidrs": ["10.96.0.0/12", "fd00::/112", "10.0.0.0/8"]},
                     ['spec.cidrs: Invalid value: ["10.96.0.0/12", "fd00::/112", "10.0.0.0/8"]: '
                      "may only hold up to 2 values"], id="servicecidr-three"),
        pytest.param(SERVICE_CIDR, {"spec.cidrs": ["10.96.0.0/12", "fd00::1/112"]},
                     ['spec.cidrs[1]: Invalid value: "fd00::1/112": must be in canonical form '
                      '("fd00::/112")'], id="servicecidr-host-bits"),
        pytest.param(SERVICE_CIDR, {"spec.cidrs": ["10.96.0.0"]},
                     ['spec.cidrs[0]: Invalid value: "10.96.0.0": must be a valid CIDR value, '
                      "(e.g. 10.9.8.0/24 or 2001:db8::/64)"], id="servicecidr-not-cidr"),
    ],
)
def test_cluster_scoped_kinds(base: dict[str, Any], changes: dict[str, Any],
                              expected: list[str]) -> None:
    assert errors(base, changes) == expected


@pytest.mark.parametrize(
    ("base", "old_changes", "new_changes", "expected"),
    [
        pytest.param(NODE, {}, {"spec.podCIDR": "10.244.2.0/24", "spec.podCIDRs": DELETE},
                     ['spec.podCIDR: Invalid value: "10.244.2.0/24": field is immutable'],
                     id="node-pod-cidr"),
        pytest.param(NODE, {"spec": {}}, {}, [], id="node-pod-cidr-assigned"),
        pytest.param(IPADDRESS, {}, {"spec.parentRef.name": "other"},
                     ['spec.parentRef: Invalid value: {"name": "other", "namespace": '
                      '"kube-system", "resource": "services"}: field is immutable'],
                     id="ipaddress-parent"),
        pytest.param(SERVICE_CIDR, {}, {"spec.cidrs": ["10.96.0.0/16", "fd00:10:96::/112"]},
                     ['spec.cidrs[0]: Invalid value: "10.96.0.0/16": field is immutable'],
                     id="servicecidr-changed"),
        pytest.param(SERVICE_CIDR, {"spec.cidrs": ["10.96.0.0/12"]}, {}, [],
                     id="servicecidr-second-family-added"),
        pytest.param(SERVICE_CIDR, {}, {"spec.cidrs": ["10.96.0.0/12"]},
                     ['spec.cidrs: Invalid value: ["10.96.0.0/12"]: field is immutable'],
                     id="servicecidr-family-removed"),
    ],
)
def test_cluster_scoped_updates(base: dict[str, Any], old_changes: dict[str, Any],
                                new_changes: dict[str, Any], expected: list[str]) -> None:
    assert errors(base, new_changes, old=mutate(base, old_changes)) == expected


# --- the entry points -------------------------------------------------------------------------


def test_require_valid_raises_every_error_as_one_invalid() -> None:
    svc = obj_of(SERVICE, {"spec.ports[0].port": 0, "spec.type": "NodePort"})

    with pytest.raises(Invalid) as info:
        require_valid(svc, service_cidrs=CIDRS)

    assert info.value.kind == "Service"
    assert info.value.name == "my-service"
    assert len(info.value.errors) == 2
    assert str(info.value).startswith('Service "my-service" is invalid: [spec.type: Unsupported')


def test_require_valid_passes_a_valid_object() -> None:
    require_valid(obj_of(SERVICE), service_cidrs=CIDRS)


def test_field_errors_carry_kubernetes_reasons() -> None:
    (error,) = validate(obj_of(SERVICE, {"spec.ports[0].port": 70000}))

    assert error.field == "spec.ports[0].port"
    assert error.value == 70000
    assert error.type.reason == "FieldValueInvalid"


def test_unknown_type_and_kind_change_are_bugs() -> None:
    with pytest.raises(TypeError):
        validate(model.KubeObject())
    with pytest.raises(TypeError):
        validate(obj_of(SERVICE), obj_of(POD))


def test_validate_does_not_modify_its_input() -> None:
    svc = obj_of(SERVICE, {"spec.ports[0].port": 0})
    before = msgspec.json.encode(svc)

    validate(svc, svc, service_cidrs=CIDRS)

    assert msgspec.json.encode(svc) == before
