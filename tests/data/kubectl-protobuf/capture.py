"""Make the golden files of this folder with the real kubectl (a developer tool, not a test).

    python tests/data/kubectl-protobuf/capture.py [OUT_DIR]     # default: this folder

It starts a `clusterip apiserver` (`ServerProcess`) and, in front of it, a small recording proxy
on 127.0.0.1 (http.server in a thread) that forwards every request unchanged and keeps the
method, path, headers and body of each request that has one. kubectl is given a kubeconfig whose
server is the proxy. Two sets of files come out:

1. Requests (`COMMANDS`). The bytes a command sent with `Content-Type:
   application/vnd.kubernetes.protobuf` are saved as `<name>.pb`, exactly as they were on the
   wire; the same command run again with `--dry-run=client -o json` saves kubectl's own JSON of
   that object as `<name>.json`, which is what decoding the `.pb` must give. The printed table
   says which content type every command used (which verbs send protobuf at all).

2. Oracles (`ORACLES`), for the fields kubectl's generators never set (probes, env, volumes,
   affinity...). Here the proxy answers kubectl's protobuf POST itself, with a protobuf object
   encoded by `encode` below from `clusterip.core.protobuf`'s own tables, and kubectl (its Go
   decoder) prints what it read with `-o json`. `oracle-*.pb` is the answer, `oracle-*.json`
   kubectl's JSON of it: a field number or zero-value rule the tables get wrong shows up as a
   difference between kubectl's JSON and `decode`. The `*-zeros` oracles set every field the
   tables know to its zero value, which checks each field's `keep` (Go's omitempty) rule.

A server that cannot read protobuf answers the requests of set 1 with 400; that does not
matter (kubectl has sent the body by then).
"""

from __future__ import annotations

import http.client
import http.server
import json
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from clusterip.core import protobuf
from clusterip.core.protobuf import Field, Kind, Message
from clusterip.testing.kubectl import Kubectl
from clusterip.testing.process import ServerProcess

HERE = Path(__file__).parent
PROTOBUF = protobuf.MEDIA_TYPE

# A manifest applied (as JSON) first, so that `expose`, `scale` and `label` have a Deployment.
SOURCE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: src, labels: {app: src}}
spec:
  replicas: 1
  selector: {matchLabels: {app: src}}
  template:
    metadata: {labels: {app: src}}
    spec:
      containers:
      - {name: c, image: nginx, ports: [{containerPort: 8080}]}
"""

# name -> kubectl arguments; the name is the golden file's stem.
COMMANDS: dict[str, tuple[str, ...]] = {
    "namespace": ("create", "namespace", "x1"),
    "deployment-minimal": ("create", "deployment", "mini", "--image=nginx"),
    "deployment-full": ("create", "deployment", "web", "--image=nginx:1.27", "--replicas=2",
                        "--port=8080", "--", "sleep", "1d"),
    "deployment-two-images": ("create", "deployment", "two", "--image=nginx",
                              "--image=busybox"),
    "service-clusterip": ("create", "service", "clusterip", "web", "--tcp=80:8080"),
    "service-clusterip-two-ports": ("create", "service", "clusterip", "two", "--tcp=80:8080",
                                    "--tcp=443:https"),
    "service-headless": ("create", "service", "clusterip", "headless", "--clusterip=None"),
    "service-externalname": ("create", "service", "externalname", "ext",
                             "--external-name=example.com"),
    "service-nodeport": ("create", "service", "nodeport", "np", "--tcp=80:8080",
                         "--node-port=30080"),
    "apply-source": ("apply", "-f", "-"),
    "expose": ("expose", "deployment", "src", "--port=80", "--target-port=8080",
               "--name=src-svc"),
    "run": ("run", "pod1", "--image=nginx", "--port=80", "--labels=app=p1", "--env=A=1",
            "--", "sleep", "1d"),
    "create-f": ("create", "-f", "-"),
    "scale": ("scale", "deployment", "src", "--replicas=3"),
    "label": ("label", "deployment", "src", "tier=web"),
    "annotate": ("annotate", "deployment", "src", "note=hi"),
}
INPUTS = {
    "apply-source": SOURCE,
    "create-f": SOURCE.replace("name: src,", "name: fromfile,"),
}

_CREATE_DEPLOYMENT = ("create", "deployment", "oracle", "--image=x", "-o", "json")
_CREATE_SERVICE = ("create", "service", "clusterip", "oracle", "--tcp=1:1", "-o", "json")
_CREATE_NAMESPACE = ("create", "namespace", "oracle", "-o", "json")

RICH_DEPLOYMENT: dict[str, Any] = {
    "metadata": {
        "name": "rich", "namespace": "default", "uid": "0b6e2c1c-0000-4000-8000-000000000001",
        "resourceVersion": "42", "generation": 3, "creationTimestamp": "2024-01-02T03:04:05Z",
        "labels": {"app": "rich", "app.kubernetes.io/name": "rich"},
        "annotations": {"note": "a b", "empty": ""},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "default",
                             "uid": "u-1", "controller": False, "blockOwnerDeletion": True}],
        "finalizers": ["example.com/keep"],
    },
    "spec": {
        "replicas": 0, "minReadySeconds": 5, "revisionHistoryLimit": 0, "paused": True,
        "progressDeadlineSeconds": 600,
        "selector": {"matchLabels": {"app": "rich"}, "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"}]},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
        "template": {
            "metadata": {"labels": {"app": "rich"}, "annotations": {"a": "b"},
                         "creationTimestamp": None},
            "spec": {
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 0,
                "activeDeadlineSeconds": 100, "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"disk": "ssd"}, "serviceAccountName": "sa",
                "automountServiceAccountToken": False, "nodeName": "node-1",
                "hostNetwork": True, "shareProcessNamespace": True,
                "hostname": "h", "subdomain": "s", "schedulerName": "default-scheduler",
                "priorityClassName": "high", "priority": -5, "runtimeClassName": "rc",
                "enableServiceLinks": False, "preemptionPolicy": "Never",
                "setHostnameAsFQDN": False, "hostUsers": True, "os": {"name": "linux"},
                "overhead": {"cpu": "250m", "memory": "120Mi"},
                "imagePullSecrets": [{"name": "regcred"}],
                "tolerations": [{"key": "k", "operator": "Equal", "value": "v",
                                 "effect": "NoExecute", "tolerationSeconds": 30}],
                "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a", "b"]}],
                "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["x.local"],
                              "options": [{"name": "ndots", "value": "2"}]},
                "readinessGates": [{"conditionType": "example.com/ready"}],
                "schedulingGates": [{"name": "wait"}],
                "securityContext": {
                    "runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True,
                    "fsGroup": 2000, "supplementalGroups": [4000, 5000],
                    "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
                    "fsGroupChangePolicy": "OnRootMismatch",
                    "seccompProfile": {"type": "RuntimeDefault"},
                    "seLinuxOptions": {"level": "s0:c123,c456"},
                },
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "zone", "operator": "In",
                                                   "values": ["a"]}]}]},
                        "preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 1, "preference": {"matchFields": [
                                {"key": "metadata.name", "operator": "NotIn",
                                 "values": ["n2"]}]}}],
                    },
                    "podAntiAffinity": {
                        "preferredDuringSchedulingIgnoredDuringExecution": [{
                            "weight": 100, "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"app": "rich"}},
                                "topologyKey": "kubernetes.io/hostname",
                                "namespaces": ["default"]}}]},
                },
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"app": "rich"}}, "minDomains": 2,
                    "matchLabelKeys": ["pod-template-hash"]}],
                "volumes": [
                    {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                    {"name": "conf", "configMap": {"name": "cm", "defaultMode": 420,
                                                   "items": [{"key": "a", "path": "a.txt"}]}},
                    {"name": "sec", "secret": {"secretName": "s", "optional": True}},
                    {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
                    {"name": "claim", "persistentVolumeClaim": {"claimName": "pvc",
                                                                "readOnly": True}},
                    {"name": "info", "downwardAPI": {"items": [
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"name": "proj", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
                        {"configMap": {"name": "cm2"}}]}},
                ],
                "initContainers": [{"name": "init", "image": "busybox",
                                    "command": ["sh", "-c", "true"], "resources": {},
                                    "restartPolicy": "Always"}],
                "containers": [{
                    "name": "app", "image": "nginx:1.27", "command": ["nginx"],
                    "args": ["-g", "daemon off;", ""], "workingDir": "/srv",
                    "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"},
                              {"containerPort": 53, "protocol": "UDP", "hostPort": 5353,
                               "hostIP": "127.0.0.1"}],
                    "env": [{"name": "A", "value": "1"}, {"name": "EMPTY"},
                            {"name": "POD", "valueFrom": {"fieldRef": {
                                "apiVersion": "v1", "fieldPath": "metadata.name"}}},
                            {"name": "MEM", "valueFrom": {"resourceFieldRef": {
                                "resource": "limits.memory", "divisor": "1Mi"}}},
                            {"name": "CM", "valueFrom": {"configMapKeyRef": {
                                "name": "cm", "key": "k", "optional": True}}},
                            {"name": "S", "valueFrom": {"secretKeyRef": {
                                "name": "s", "key": "k"}}}],
                    "envFrom": [{"prefix": "P_", "configMapRef": {"name": "cm"}},
                                {"secretRef": {"name": "s", "optional": False}}],
                    "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                                  "requests": {"cpu": "250m", "memory": "64Mi"}},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/tmp", "readOnly": True,
                                      "subPath": "x", "mountPropagation": "None"}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http",
                                                  "scheme": "HTTP", "httpHeaders": [
                                                      {"name": "X-A", "value": ""}]},
                                      "initialDelaySeconds": 3, "periodSeconds": 10,
                                      "timeoutSeconds": 1, "successThreshold": 1,
                                      "failureThreshold": 3,
                                      "terminationGracePeriodSeconds": 5},
                    "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2},
                    "startupProbe": {"exec": {"command": ["cat", "/ready"]},
                                     "failureThreshold": 30},
                    "lifecycle": {"preStop": {"sleep": {"seconds": 5}},
                                  "postStart": {"exec": {"command": ["true"]}}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent",
                    "securityContext": {"privileged": False, "allowPrivilegeEscalation": False,
                                        "readOnlyRootFilesystem": True,
                                        "capabilities": {"add": ["NET_ADMIN"],
                                                         "drop": ["ALL"]},
                                        "runAsUser": 0},
                    "stdin": True, "stdinOnce": True, "tty": True,
                }, {
                    "name": "grpc", "image": "g", "resources": {},
                    "livenessProbe": {"grpc": {"port": 9000, "service": ""}},
                }],
            },
        },
    },
    "status": {"observedGeneration": 3, "replicas": 2, "updatedReplicas": 2,
               "readyReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 1,
               "collisionCount": 0,
               "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicas",
                               "message": "ok", "lastUpdateTime": "2024-01-02T03:04:05Z",
                               "lastTransitionTime": "2024-01-02T03:04:06Z"}]},
}
RICH_SERVICE: dict[str, Any] = {
    "metadata": {"name": "rich", "namespace": "default", "labels": {"app": "rich"},
                 "creationTimestamp": None},
    "spec": {
        "type": "ClusterIP", "selector": {"app": "rich"},
        "ports": [{"name": "http", "protocol": "TCP", "appProtocol": "http", "port": 80,
                   "targetPort": 8080},
                  {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns",
                   "nodePort": 30053}],
        "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"],
        "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack",
        "externalIPs": ["192.0.2.1"], "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "publishNotReadyAddresses": True, "internalTrafficPolicy": "Local",
        "externalTrafficPolicy": "Cluster", "externalName": "",
        "loadBalancerSourceRanges": ["10.0.0.0/8"], "healthCheckNodePort": 0,
    },
    "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ports": [
        {"port": 80, "protocol": "TCP", "error": "Pending"}]}]}},
}
RICH_NAMESPACE: dict[str, Any] = {
    "metadata": {"name": "rich", "labels": {"team": "a"}, "generateName": "r-",
                 "deletionTimestamp": "2030-05-06T07:08:09Z", "deletionGracePeriodSeconds": 0,
                 "creationTimestamp": None},
    "spec": {"finalizers": ["kubernetes"]},
    "status": {"phase": "Terminating", "conditions": [
        {"type": "NamespaceDeletionContentFailure", "status": "False",
         "lastTransitionTime": "2024-01-02T03:04:05Z", "reason": "ContentDeleted",
         "message": "done"}]},
}

ORACLES: dict[str, tuple[tuple[str, ...], str, str, dict[str, Any]]] = {
    "oracle-deployment-rich": (_CREATE_DEPLOYMENT, "apps/v1", "Deployment", RICH_DEPLOYMENT),
    "oracle-service-rich": (_CREATE_SERVICE, "v1", "Service", RICH_SERVICE),
    "oracle-namespace-rich": (_CREATE_NAMESPACE, "v1", "Namespace", RICH_NAMESPACE),
}


# Fields the tables know that kubectl 1.32's Go types do not (it would drop them).
NEWER_THAN_KUBECTL = frozenset({"stopSignal"})


def zeros(table: Message) -> dict[str, Any]:
    """Every field a table knows, at its zero value (a one-element list for a repeated one):
    kubectl's JSON of it shows which zero values Go keeps."""
    out: dict[str, Any] = {}
    for field in table.values():
        if field.name in NEWER_THAN_KUBECTL:
            continue
        if field.kind is Kind.INLINE:
            assert field.message is not None
            out.update(zeros(field.message))
        elif field.kind is not Kind.SKIP:
            value = _zero(field)
            out[field.name] = [value] if field.repeated else value
    return out


def _zero(field: Field) -> Any:
    if field.kind is Kind.MESSAGE:
        assert field.message is not None
        return zeros(field.message)
    if field.kind is Kind.MAP:
        return {"": "0" if field.values is Kind.QUANTITY else ""}
    return {Kind.STRING: "", Kind.INT32: 0, Kind.INT64: 0, Kind.BOOL: False,
            Kind.INT_OR_STRING: 0, Kind.QUANTITY: "0", Kind.TIME: None}[field.kind]


for _api, _kind, _command in (("apps/v1", "Deployment", _CREATE_DEPLOYMENT),
                              ("v1", "Service", _CREATE_SERVICE),
                              ("v1", "Namespace", _CREATE_NAMESPACE)):
    ORACLES[f"oracle-{_kind.lower()}-zeros"] = (
        _command, _api, _kind, zeros(protobuf.OBJECTS[(_api, _kind)]))


# --- a protobuf encoder over the decoder's tables (the inverse of `protobuf.read`) ------------


def encode(api_version: str, kind: str, data: dict[str, Any]) -> bytes:
    """A Kubernetes protobuf body for `data`. Like Go's generated code, it writes a plain-value
    scalar even when it is zero, and a pointer-like one (`keep`) only when it is set."""
    type_meta = _len(1, api_version.encode()) + _len(2, kind.encode())
    raw = _message(data, protobuf.OBJECTS[(api_version, kind)])
    unknown = _len(1, type_meta) + _len(2, raw) + _len(3, b"") + _len(4, b"")
    return protobuf.MAGIC + unknown


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _message(data: dict[str, Any], table: Message) -> bytes:
    out = b""
    for number, field in sorted(table.items()):
        if field.kind is Kind.INLINE:
            assert field.message is not None
            out += _len(number, _message(data, field.message))
        elif field.kind is Kind.SKIP:
            continue
        elif field.name in data:
            value = data[field.name]
            if field.kind is Kind.MAP:
                for key, item in value.items():
                    entry = _len(1, key.encode()) + _value(2, Field("", field.values), item)
                    out += _len(number, entry)
            elif field.repeated:
                for item in value:
                    out += _value(number, field, item)
            else:
                out += _value(number, field, value)
        elif not field.keep and not field.repeated and field.kind in (
                Kind.STRING, Kind.INT32, Kind.INT64, Kind.BOOL):
            out += _value(number, field, _zero(field))  # Go writes plain values always
    return out


def _value(number: int, field: Field, value: Any) -> bytes:
    kind = field.kind
    if kind is Kind.STRING:
        return _len(number, value.encode())
    if kind in (Kind.INT32, Kind.INT64, Kind.BOOL):
        return _int(number, int(value))
    if kind is Kind.MESSAGE:
        assert field.message is not None
        return _len(number, _message(value, field.message))
    if kind is Kind.INT_OR_STRING:
        inner = (_int(1, 1) + _int(2, 0) + _len(3, value.encode()) if isinstance(value, str)
                 else _int(1, 0) + _int(2, value) + _len(3, b""))
        return _len(number, inner)
    if kind is Kind.QUANTITY:
        return _len(number, _len(1, value.encode()))
    if kind is Kind.TIME:
        if value is None:
            return _len(number, b"")
        when = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return _len(number, _int(1, int(when.timestamp())))
    raise AssertionError(f"cannot encode {kind}")


# --- the recording proxy ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    content_type: str
    user_agent: str
    accept: str
    body: bytes


class _Proxy(http.server.BaseHTTPRequestHandler):
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    recorded: list[Recorded] = []  # noqa: RUF012 - shared on purpose, set per command
    reply: bytes = b""  # when set, a protobuf POST is answered 201 with these bytes

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if body:
            self.recorded.append(Recorded(self.command, self.path,
                                          self.headers.get("Content-Type", ""),
                                          self.headers.get("User-Agent", ""),
                                          self.headers.get("Accept", ""), body))
        if self.reply and self.command == "POST" and PROTOBUF in self.headers.get("Accept", ""):
            self._send(201, [("Content-Type", PROTOBUF)], self.reply)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        self._send(resp.status, resp.getheaders(), resp.read())
        conn.close()

    def _send(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in ("transfer-encoding", "content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def capture(out: Path = HERE) -> list[tuple[str, Recorded]]:
    found: list[tuple[str, Recorded]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = ServerProcess(data_dir=root / "data", log_path=root / "apiserver.log")
        server.start()
        try:
            split = urlsplit(server.url)
            _Proxy.upstream = (split.hostname or "127.0.0.1", split.port or 80)
            proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
            thread = threading.Thread(target=proxy.serve_forever, daemon=True)
            thread.start()
            config = yaml.safe_load(server.kubeconfig.read_text())
            config["clusters"][0]["cluster"]["server"] = f"http://127.0.0.1:{proxy.server_port}"
            proxied = root / "kubeconfig"
            proxied.write_text(yaml.safe_dump(config))
            kubectl = Kubectl(server, root / "cache")
            try:
                found += _requests(kubectl, proxied, out)
                _oracles(kubectl, proxied, out)
            finally:
                proxy.shutdown()
                proxy.server_close()
        finally:
            server.stop()
    return found


def _requests(kubectl: Kubectl, kubeconfig: Path, out: Path) -> list[tuple[str, Recorded]]:
    found = []
    for name, args in COMMANDS.items():
        _Proxy.recorded = []
        result = kubectl("--kubeconfig", str(kubeconfig), *args, input=INPUTS.get(name))
        status = "ok" if result.returncode == 0 else result.stderr.strip()[:40]
        for rec in _Proxy.recorded:
            found.append((name, rec))
            if rec.content_type.startswith(PROTOBUF):
                (out / f"{name}.pb").write_bytes(rec.body)
                _save_dry_run(kubectl, kubeconfig, name, args, out)
        kinds = {r.content_type for r in _Proxy.recorded} or {"(no body)"}
        agents = {r.user_agent.split(" ")[0] for r in _Proxy.recorded}
        print(f"{name:28} {' '.join(args[:3]):32} {', '.join(sorted(kinds))}"
              f" {', '.join(sorted(agents))} [{status}]")
    return found


def _save_dry_run(kubectl: Kubectl, kubeconfig: Path, name: str, args: tuple[str, ...],
                  out: Path) -> None:
    """The same command with `--dry-run=client -o json`: kubectl's own JSON of the object it
    encoded as protobuf, the expected result of decoding `<name>.pb`."""
    cut = args.index("--") if "--" in args else len(args)
    dry = (*args[:cut], "--dry-run=client", "-o", "json", *args[cut:])
    result = kubectl("--kubeconfig", str(kubeconfig), *dry)
    assert result.returncode == 0, result.stderr
    _write_json(out / f"{name}.json", json.loads(result.stdout))


def _oracles(kubectl: Kubectl, kubeconfig: Path, out: Path) -> None:
    for name, (args, api_version, kind, data) in ORACLES.items():
        body = encode(api_version, kind, data)
        _Proxy.reply = body
        try:
            result = kubectl("--kubeconfig", str(kubeconfig), *args)
        finally:
            _Proxy.reply = b""
        assert result.returncode == 0, f"{name}: {result.stderr}"
        (out / f"{name}.pb").write_bytes(body)
        _write_json(out / f"{name}.json", json.loads(result.stdout))
        print(f"{name:28} kubectl decoded {len(body)} bytes")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    capture(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
