"""Kubernetes protobuf request bodies → the object as JSON data (pure: bytes in, dict out).

kubectl's typed `create` generators (`kubectl create namespace|deployment|service ...`) send
their object as `Content-Type: application/vnd.kubernetes.protobuf`, and client-go does not
retry with JSON when the server refuses that. This module reads such a body into the same dict
the JSON form would give, so the rest of the server (`core.codec.decode`) is unchanged. It only
decodes; answers stay JSON (kubectl accepts `application/json`).

The envelope. A body is the 4 magic bytes `k8s\\x00` followed by one `runtime.Unknown` message
(k8s.io/apimachinery/pkg/runtime/generated.proto)::

    Unknown { 1: typeMeta {1: apiVersion, 2: kind}, 2: raw bytes,
              3: contentEncoding (must be empty), 4: contentType (empty, or the protobuf one) }

`raw` is the object itself, a message of the Go type that apiVersion/kind name; the result is
that message as JSON data, with "apiVersion" and "kind" set from the envelope.

The wire format (protobuf encoding, proto2 as go-to-protobuf generates it for Kubernetes). A
message is a sequence of fields; each starts with a varint key `number << 3 | wire type`:

    0 VARINT  a base-128 varint, least significant group first (int32, int64, bool); negative
              ints are 10-byte two's complement, never zigzag (Kubernetes has no sint types)
    1 I64     8 bytes, 5 I32: 4 bytes (Kubernetes uses neither: skipped when unknown)
    2 LEN     a varint length, then that many bytes: strings, bytes, nested messages, map
              entries ({1: key, 2: value}, one per entry) and packed repeated scalars

A repeated field is the same field number written again for each element. Go's generated code
writes every non-pointer field even when it is zero (`generateName: ""`, `generation: 0`,
`creationTimestamp: {}`), and pointer fields only when set.

Decoding `raw`. One table per message type, `{field number: Field}`, read from Kubernetes'
generated.proto files (k8s.io/api core/v1 and apps/v1; k8s.io/apimachinery meta/v1, runtime,
util/intstr, api/resource). A `Field` holds the JSON name, how its bytes become JSON (`Kind`),
its message table when it has one, and whether it is repeated. The policy is in the tables; the
decoder is one loop and a table of readers (`_READERS`), with no per-type code. Special shapes:

* `INLINE`: an embedded Go struct whose fields JSON puts in the parent (`Probe`'s ProbeHandler,
  `Volume`'s VolumeSource, a ConfigMapKeySelector's LocalObjectReference).
* `INT_OR_STRING` (intstr {1: type, 2: intVal, 3: strVal}) becomes an int or a string;
  `QUANTITY` (resource.Quantity {1: string}) its string ("0" when empty); `TIME` (meta/v1 Time
  {1: seconds, 2: nanos}) RFC 3339 text such as "2024-01-02T03:04:05Z", or None when the message
  is empty (Go's zero time, JSON `null`). Nanos are ignored, as Kubernetes' own Time decoding
  ignores them.
* `MAP`: string keys; string or Quantity values.

Zero values come out the way Go's JSON encoder writes the same object: a scalar whose Go field
is a plain value tagged `omitempty` is left out when it is zero; one that is a pointer, or has
no `omitempty` (`port`, `containerPort`, a container's `name`), keeps its zero (`Field.keep`).
Messages that are present stay, even empty: `status: {}`, `resources: {}`, `strategy: {}`, as
kubectl's JSON has them. So `decode` gives exactly what `kubectl ... --dry-run=client -o json`
prints for the same command (the golden tests check this). One difference is left on purpose: a
nil Go pointer without `omitempty` (a gRPC probe's `service`) is absent on the wire and so absent
here, where Go's JSON would print `null`; the two mean the same to `core.codec`.

Field numbers the tables do not know are skipped, as protobuf parsers do, and reported in
`ProtobufObject.skipped` as (message path, number) so a caller can warn. `managedFields` is known
and skipped on purpose (kubectl never sends it; the server keeps its own).

Errors are `DecodeError`, naming the problem and, for a known field, its path: bad magic, a
varint cut short ("truncated varint at offset N", N counted from the start of the body), a
length past the end, a wrong wire type (`spec.ports[0].port: wrong wire type 2 (LEN) for an
int32 field, expected 0 (VARINT)`), bytes that are not UTF-8, or a kind with no table here
(send it as JSON instead).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Any

from clusterip.core.errors import DecodeError
from clusterip.core.timefmt import rfc3339

__all__ = [
    "MAGIC", "MEDIA_TYPE", "OBJECTS", "Field", "Kind", "Message", "ProtobufObject", "decode",
    "read",
]

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


class Wire(IntEnum):
    VARINT = 0
    I64 = 1
    LEN = 2
    SGROUP = 3
    EGROUP = 4
    I32 = 5


class Kind(Enum):
    """How a field's bytes become JSON data."""

    STRING = "string"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"
    MESSAGE = "message"
    INLINE = "inline message"
    INT_OR_STRING = "IntOrString"
    QUANTITY = "Quantity"
    TIME = "Time"
    MAP = "map"
    SKIP = "skipped"


# The wire type each kind is written with (SKIP takes any).
_WIRE = {
    Kind.STRING: Wire.LEN, Kind.INT32: Wire.VARINT, Kind.INT64: Wire.VARINT,
    Kind.BOOL: Wire.VARINT, Kind.MESSAGE: Wire.LEN, Kind.INLINE: Wire.LEN,
    Kind.INT_OR_STRING: Wire.LEN, Kind.QUANTITY: Wire.LEN, Kind.TIME: Wire.LEN, Kind.MAP: Wire.LEN,
}
_SCALARS = frozenset({Kind.STRING, Kind.INT32, Kind.INT64, Kind.BOOL})
_PACKABLE = frozenset({Kind.INT32, Kind.INT64, Kind.BOOL})

Message = Mapping[int, "Field"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message table: its JSON name and how to read it.

    `keep`: a zero value stays in the JSON (the Go field is a pointer, or has no `omitempty`).
    `message`: the table of a MESSAGE or INLINE field. `values`: a MAP's value kind."""

    name: str
    kind: Kind
    message: Message | None = None
    repeated: bool = False
    keep: bool = False
    values: Kind = Kind.STRING


@dataclass(frozen=True, slots=True)
class ProtobufObject:
    """A decoded body: the object as JSON data, and the unknown fields that were skipped, as
    (path of the message that held them, field number)."""

    data: Mapping[str, Any]
    skipped: tuple[tuple[str, int], ...] = ()


# --- the tables -------------------------------------------------------------------------------
# Field numbers are those of Kubernetes' generated.proto files; the JSON names and `keep` follow
# the Go types' json tags. Small constructors keep the tables one line per field.


def _table(fields: dict[int, Field]) -> Message:
    return MappingProxyType(fields)


def _str(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.STRING, keep=keep)


def _i32(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.INT32, keep=keep)


def _i64(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.INT64, keep=keep)


def _bool(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.BOOL, keep=keep)


def _strs(name: str) -> Field:
    return Field(name, Kind.STRING, repeated=True)


def _msg(name: str, message: Message) -> Field:
    return Field(name, Kind.MESSAGE, message)


def _list(name: str, message: Message) -> Field:
    return Field(name, Kind.MESSAGE, message, repeated=True)


def _inline(message: Message) -> Field:
    return Field("", Kind.INLINE, message)


def _map(name: str, values: Kind = Kind.STRING) -> Field:
    return Field(name, Kind.MAP, values=values)


def _ios(name: str) -> Field:
    return Field(name, Kind.INT_OR_STRING)


def _qty(name: str) -> Field:
    return Field(name, Kind.QUANTITY)


def _time(name: str) -> Field:
    return Field(name, Kind.TIME)


# k8s.io/apimachinery/pkg/apis/meta/v1

OWNER_REFERENCE = _table({
    5: _str("apiVersion", keep=True), 1: _str("kind", keep=True), 3: _str("name", keep=True),
    4: _str("uid", keep=True), 6: _bool("controller", keep=True),
    7: _bool("blockOwnerDeletion", keep=True),
})
OBJECT_META = _table({
    1: _str("name"), 2: _str("generateName"), 3: _str("namespace"), 4: _str("selfLink"),
    5: _str("uid"), 6: _str("resourceVersion"), 7: _i64("generation"),
    8: _time("creationTimestamp"), 9: _time("deletionTimestamp"),
    10: _i64("deletionGracePeriodSeconds", keep=True), 11: _map("labels"),
    12: _map("annotations"), 13: _list("ownerReferences", OWNER_REFERENCE),
    14: _strs("finalizers"), 17: Field("managedFields", Kind.SKIP),
})
LABEL_SELECTOR_REQUIREMENT = _table({
    1: _str("key", keep=True), 2: _str("operator", keep=True), 3: _strs("values"),
})
LABEL_SELECTOR = _table({
    1: _map("matchLabels"), 2: _list("matchExpressions", LABEL_SELECTOR_REQUIREMENT),
})

# k8s.io/api/core/v1: Namespace

NAMESPACE_CONDITION = _table({
    1: _str("type", keep=True), 2: _str("status", keep=True), 4: _time("lastTransitionTime"),
    5: _str("reason"), 6: _str("message"),
})
NAMESPACE = _table({
    1: _msg("metadata", OBJECT_META),
    2: _msg("spec", _table({1: _strs("finalizers")})),
    3: _msg("status", _table({
        1: _str("phase"), 2: _list("conditions", NAMESPACE_CONDITION),
    })),
})

# k8s.io/api/core/v1: Service

SERVICE_PORT = _table({
    1: _str("name"), 2: _str("protocol"), 6: _str("appProtocol", keep=True),
    3: _i32("port", keep=True), 4: _ios("targetPort"), 5: _i32("nodePort"),
})
SESSION_AFFINITY_CONFIG = _table({
    1: _msg("clientIP", _table({1: _i32("timeoutSeconds", keep=True)})),
})
SERVICE_SPEC = _table({
    1: _list("ports", SERVICE_PORT), 2: _map("selector"), 3: _str("clusterIP"),
    18: _strs("clusterIPs"), 4: _str("type"), 5: _strs("externalIPs"),
    7: _str("sessionAffinity"), 8: _str("loadBalancerIP"), 9: _strs("loadBalancerSourceRanges"),
    10: _str("externalName"), 11: _str("externalTrafficPolicy"),
    12: _i32("healthCheckNodePort"), 13: _bool("publishNotReadyAddresses"),
    14: _msg("sessionAffinityConfig", SESSION_AFFINITY_CONFIG), 19: _strs("ipFamilies"),
    17: _str("ipFamilyPolicy", keep=True),
    20: _bool("allocateLoadBalancerNodePorts", keep=True),
    21: _str("loadBalancerClass", keep=True), 22: _str("internalTrafficPolicy", keep=True),
    23: _str("trafficDistribution", keep=True),
})
PORT_STATUS = _table({
    1: _i32("port", keep=True), 2: _str("protocol", keep=True), 3: _str("error", keep=True),
})
LOAD_BALANCER_INGRESS = _table({
    1: _str("ip"), 2: _str("hostname"), 3: _str("ipMode", keep=True),
    4: _list("ports", PORT_STATUS),
})
SERVICE = _table({
    1: _msg("metadata", OBJECT_META),
    2: _msg("spec", SERVICE_SPEC),
    3: _msg("status", _table({
        1: _msg("loadBalancer", _table({1: _list("ingress", LOAD_BALANCER_INGRESS)})),
    })),
})

# k8s.io/api/core/v1: containers

LOCAL_OBJECT_REFERENCE = _table({1: _str("name")})
OBJECT_FIELD_SELECTOR = _table({1: _str("apiVersion"), 2: _str("fieldPath", keep=True)})
RESOURCE_FIELD_SELECTOR = _table({
    1: _str("containerName"), 2: _str("resource", keep=True), 3: _qty("divisor"),
})
KEY_SELECTOR = _table({  # ConfigMapKeySelector and SecretKeySelector
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _str("key", keep=True),
    3: _bool("optional", keep=True),
})
ENV_VAR_SOURCE = _table({
    1: _msg("fieldRef", OBJECT_FIELD_SELECTOR),
    2: _msg("resourceFieldRef", RESOURCE_FIELD_SELECTOR),
    3: _msg("configMapKeyRef", KEY_SELECTOR), 4: _msg("secretKeyRef", KEY_SELECTOR),
})
ENV_VAR = _table({
    1: _str("name", keep=True), 2: _str("value"), 3: _msg("valueFrom", ENV_VAR_SOURCE),
})
ENV_SOURCE = _table({  # ConfigMapEnvSource and SecretEnvSource
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _bool("optional", keep=True),
})
ENV_FROM_SOURCE = _table({
    1: _str("prefix"), 2: _msg("configMapRef", ENV_SOURCE), 3: _msg("secretRef", ENV_SOURCE),
})
CONTAINER_PORT = _table({
    1: _str("name"), 2: _i32("hostPort"), 3: _i32("containerPort", keep=True),
    4: _str("protocol"), 5: _str("hostIP"),
})
RESOURCE_REQUIREMENTS = _table({
    1: _map("limits", Kind.QUANTITY), 2: _map("requests", Kind.QUANTITY),
    3: _list("claims", _table({1: _str("name", keep=True), 2: _str("request")})),
})
CONTAINER_RESIZE_POLICY = _table({
    1: _str("resourceName", keep=True), 2: _str("restartPolicy", keep=True),
})
VOLUME_MOUNT = _table({
    1: _str("name", keep=True), 2: _bool("readOnly"), 7: _str("recursiveReadOnly", keep=True),
    3: _str("mountPath", keep=True), 4: _str("subPath"), 5: _str("mountPropagation", keep=True),
    6: _str("subPathExpr"),
})
VOLUME_DEVICE = _table({1: _str("name", keep=True), 2: _str("devicePath", keep=True)})
EXEC_ACTION = _table({1: _strs("command")})
HTTP_GET_ACTION = _table({
    1: _str("path"), 2: _ios("port"), 3: _str("host"), 4: _str("scheme"),
    5: _list("httpHeaders", _table({1: _str("name", keep=True), 2: _str("value", keep=True)})),
})
TCP_SOCKET_ACTION = _table({1: _ios("port"), 2: _str("host")})
GRPC_ACTION = _table({1: _i32("port", keep=True), 2: _str("service", keep=True)})
PROBE_HANDLER = _table({
    1: _msg("exec", EXEC_ACTION), 2: _msg("httpGet", HTTP_GET_ACTION),
    3: _msg("tcpSocket", TCP_SOCKET_ACTION), 4: _msg("grpc", GRPC_ACTION),
})
PROBE = _table({
    1: _inline(PROBE_HANDLER), 2: _i32("initialDelaySeconds"), 3: _i32("timeoutSeconds"),
    4: _i32("periodSeconds"), 5: _i32("successThreshold"), 6: _i32("failureThreshold"),
    7: _i64("terminationGracePeriodSeconds", keep=True),
})
LIFECYCLE_HANDLER = _table({
    1: _msg("exec", EXEC_ACTION), 2: _msg("httpGet", HTTP_GET_ACTION),
    3: _msg("tcpSocket", TCP_SOCKET_ACTION),
    4: _msg("sleep", _table({1: _i64("seconds", keep=True)})),
})
LIFECYCLE = _table({
    1: _msg("postStart", LIFECYCLE_HANDLER), 2: _msg("preStop", LIFECYCLE_HANDLER),
    3: _str("stopSignal", keep=True),
})
SE_LINUX_OPTIONS = _table({1: _str("user"), 2: _str("role"), 3: _str("type"), 4: _str("level")})
PROFILE = _table({  # SeccompProfile and AppArmorProfile
    1: _str("type", keep=True), 2: _str("localhostProfile", keep=True),
})
SECURITY_CONTEXT = _table({
    1: _msg("capabilities", _table({1: _strs("add"), 2: _strs("drop")})),
    2: _bool("privileged", keep=True), 3: _msg("seLinuxOptions", SE_LINUX_OPTIONS),
    4: _i64("runAsUser", keep=True), 8: _i64("runAsGroup", keep=True),
    5: _bool("runAsNonRoot", keep=True), 6: _bool("readOnlyRootFilesystem", keep=True),
    7: _bool("allowPrivilegeEscalation", keep=True), 9: _str("procMount", keep=True),
    11: _msg("seccompProfile", PROFILE), 12: _msg("appArmorProfile", PROFILE),
})
CONTAINER = _table({
    1: _str("name", keep=True), 2: _str("image"), 3: _strs("command"), 4: _strs("args"),
    5: _str("workingDir"), 6: _list("ports", CONTAINER_PORT),
    19: _list("envFrom", ENV_FROM_SOURCE), 7: _list("env", ENV_VAR),
    8: _msg("resources", RESOURCE_REQUIREMENTS),
    23: _list("resizePolicy", CONTAINER_RESIZE_POLICY), 24: _str("restartPolicy", keep=True),
    9: _list("volumeMounts", VOLUME_MOUNT), 21: _list("volumeDevices", VOLUME_DEVICE),
    10: _msg("livenessProbe", PROBE), 11: _msg("readinessProbe", PROBE),
    22: _msg("startupProbe", PROBE), 12: _msg("lifecycle", LIFECYCLE),
    13: _str("terminationMessagePath"), 20: _str("terminationMessagePolicy"),
    14: _str("imagePullPolicy"), 15: _msg("securityContext", SECURITY_CONTEXT),
    16: _bool("stdin"), 17: _bool("stdinOnce"), 18: _bool("tty"),
})

# k8s.io/api/core/v1: volumes (the common sources)

KEY_TO_PATH = _table({
    1: _str("key", keep=True), 2: _str("path", keep=True), 3: _i32("mode", keep=True),
})
DOWNWARD_API_FILE = _table({
    1: _str("path", keep=True), 2: _msg("fieldRef", OBJECT_FIELD_SELECTOR),
    3: _msg("resourceFieldRef", RESOURCE_FIELD_SELECTOR), 4: _i32("mode", keep=True),
})
PROJECTION = _table({  # SecretProjection and ConfigMapProjection
    1: _inline(LOCAL_OBJECT_REFERENCE), 2: _list("items", KEY_TO_PATH),
    4: _bool("optional", keep=True),
})
VOLUME_PROJECTION = _table({
    1: _msg("secret", PROJECTION),
    2: _msg("downwardAPI", _table({1: _list("items", DOWNWARD_API_FILE)})),
    3: _msg("configMap", PROJECTION),
    4: _msg("serviceAccountToken", _table({
        1: _str("audience"), 2: _i64("expirationSeconds", keep=True), 3: _str("path", keep=True),
    })),
})
VOLUME_SOURCE = _table({
    1: _msg("hostPath", _table({1: _str("path", keep=True), 2: _str("type", keep=True)})),
    2: _msg("emptyDir", _table({1: _str("medium"), 2: _qty("sizeLimit")})),
    6: _msg("secret", _table({
        1: _str("secretName"), 2: _list("items", KEY_TO_PATH),
        3: _i32("defaultMode", keep=True), 4: _bool("optional", keep=True),
    })),
    7: _msg("nfs", _table({
        1: _str("server", keep=True), 2: _str("path", keep=True), 3: _bool("readOnly"),
    })),
    10: _msg("persistentVolumeClaim", _table({
        1: _str("claimName", keep=True), 2: _bool("readOnly"),
    })),
    16: _msg("downwardAPI", _table({
        1: _list("items", DOWNWARD_API_FILE), 2: _i32("defaultMode", keep=True),
    })),
    19: _msg("configMap", _table({
        1: _inline(LOCAL_OBJECT_REFERENCE), 2: _list("items", KEY_TO_PATH),
        3: _i32("defaultMode", keep=True), 4: _bool("optional", keep=True),
    })),
    26: _msg("projected", _table({
        1: _list("sources", VOLUME_PROJECTION), 2: _i32("defaultMode", keep=True),
    })),
})
VOLUME = _table({1: _str("name", keep=True), 2: _inline(VOLUME_SOURCE)})

# k8s.io/api/core/v1: scheduling

NODE_SELECTOR_REQUIREMENT = _table({
    1: _str("key", keep=True), 2: _str("operator", keep=True), 3: _strs("values"),
})
NODE_SELECTOR_TERM = _table({
    1: _list("matchExpressions", NODE_SELECTOR_REQUIREMENT),
    2: _list("matchFields", NODE_SELECTOR_REQUIREMENT),
})
POD_AFFINITY_TERM = _table({
    1: _msg("labelSelector", LABEL_SELECTOR), 2: _strs("namespaces"),
    3: _str("topologyKey", keep=True), 4: _msg("namespaceSelector", LABEL_SELECTOR),
    5: _strs("matchLabelKeys"), 6: _strs("mismatchLabelKeys"),
})
POD_AFFINITY = _table({  # PodAffinity and PodAntiAffinity
    1: _list("requiredDuringSchedulingIgnoredDuringExecution", POD_AFFINITY_TERM),
    2: _list("preferredDuringSchedulingIgnoredDuringExecution", _table({
        1: _i32("weight", keep=True), 2: _msg("podAffinityTerm", POD_AFFINITY_TERM),
    })),
})
AFFINITY = _table({
    1: _msg("nodeAffinity", _table({
        1: _msg("requiredDuringSchedulingIgnoredDuringExecution", _table({
            1: _list("nodeSelectorTerms", NODE_SELECTOR_TERM),
        })),
        2: _list("preferredDuringSchedulingIgnoredDuringExecution", _table({
            1: _i32("weight", keep=True), 2: _msg("preference", NODE_SELECTOR_TERM),
        })),
    })),
    2: _msg("podAffinity", POD_AFFINITY),
    3: _msg("podAntiAffinity", POD_AFFINITY),
})
TOLERATION = _table({
    1: _str("key"), 2: _str("operator"), 3: _str("value"), 4: _str("effect"),
    5: _i64("tolerationSeconds", keep=True),
})
TOPOLOGY_SPREAD_CONSTRAINT = _table({
    1: _i32("maxSkew", keep=True), 2: _str("topologyKey", keep=True),
    3: _str("whenUnsatisfiable", keep=True), 4: _msg("labelSelector", LABEL_SELECTOR),
    5: _i32("minDomains", keep=True), 6: _str("nodeAffinityPolicy", keep=True),
    7: _str("nodeTaintsPolicy", keep=True), 8: _strs("matchLabelKeys"),
})
POD_SECURITY_CONTEXT = _table({
    1: _msg("seLinuxOptions", SE_LINUX_OPTIONS), 2: _i64("runAsUser", keep=True),
    6: _i64("runAsGroup", keep=True), 3: _bool("runAsNonRoot", keep=True),
    4: Field("supplementalGroups", Kind.INT64, repeated=True),
    12: _str("supplementalGroupsPolicy", keep=True), 5: _i64("fsGroup", keep=True),
    7: _list("sysctls", _table({1: _str("name", keep=True), 2: _str("value", keep=True)})),
    9: _str("fsGroupChangePolicy", keep=True), 10: _msg("seccompProfile", PROFILE),
    11: _msg("appArmorProfile", PROFILE), 13: _str("seLinuxChangePolicy", keep=True),
})

# k8s.io/api/core/v1: Pod

POD_SPEC = _table({
    1: _list("volumes", VOLUME), 20: _list("initContainers", CONTAINER),
    2: _list("containers", CONTAINER), 3: _str("restartPolicy"),
    4: _i64("terminationGracePeriodSeconds", keep=True),
    5: _i64("activeDeadlineSeconds", keep=True), 6: _str("dnsPolicy"), 7: _map("nodeSelector"),
    8: _str("serviceAccountName"), 9: _str("serviceAccount"),
    21: _bool("automountServiceAccountToken", keep=True), 10: _str("nodeName"),
    11: _bool("hostNetwork"), 12: _bool("hostPID"), 13: _bool("hostIPC"),
    27: _bool("shareProcessNamespace", keep=True),
    14: _msg("securityContext", POD_SECURITY_CONTEXT),
    15: _list("imagePullSecrets", LOCAL_OBJECT_REFERENCE), 16: _str("hostname"),
    17: _str("subdomain"), 18: _msg("affinity", AFFINITY), 19: _str("schedulerName"),
    22: _list("tolerations", TOLERATION),
    23: _list("hostAliases", _table({1: _str("ip", keep=True), 2: _strs("hostnames")})),
    24: _str("priorityClassName"), 25: _i32("priority", keep=True),
    26: _msg("dnsConfig", _table({
        1: _strs("nameservers"), 2: _strs("searches"),
        3: _list("options", _table({1: _str("name"), 2: _str("value", keep=True)})),
    })),
    28: _list("readinessGates", _table({1: _str("conditionType", keep=True)})),
    29: _str("runtimeClassName", keep=True), 30: _bool("enableServiceLinks", keep=True),
    31: _str("preemptionPolicy", keep=True), 32: _map("overhead", Kind.QUANTITY),
    33: _list("topologySpreadConstraints", TOPOLOGY_SPREAD_CONSTRAINT),
    35: _bool("setHostnameAsFQDN", keep=True),
    36: _msg("os", _table({1: _str("name", keep=True)})),
    37: _bool("hostUsers", keep=True),
    38: _list("schedulingGates", _table({1: _str("name", keep=True)})),
    39: _list("resourceClaims", _table({
        1: _str("name", keep=True), 3: _str("resourceClaimName", keep=True),
        4: _str("resourceClaimTemplateName", keep=True),
    })),
    40: _msg("resources", RESOURCE_REQUIREMENTS),
})
CONTAINER_STATE = _table({
    1: _msg("waiting", _table({1: _str("reason"), 2: _str("message")})),
    2: _msg("running", _table({1: _time("startedAt")})),
    3: _msg("terminated", _table({
        1: _i32("exitCode", keep=True), 2: _i32("signal"), 3: _str("reason"), 4: _str("message"),
        5: _time("startedAt"), 6: _time("finishedAt"), 7: _str("containerID"),
    })),
})
CONTAINER_STATUS = _table({
    1: _str("name", keep=True), 2: _msg("state", CONTAINER_STATE),
    3: _msg("lastState", CONTAINER_STATE), 4: _bool("ready", keep=True),
    5: _i32("restartCount", keep=True), 6: _str("image", keep=True),
    7: _str("imageID", keep=True), 8: _str("containerID"), 9: _bool("started", keep=True),
})
POD_STATUS = _table({
    1: _str("phase"),
    2: _list("conditions", _table({
        1: _str("type", keep=True), 7: _i64("observedGeneration"), 2: _str("status", keep=True),
        3: _time("lastProbeTime"), 4: _time("lastTransitionTime"), 5: _str("reason"),
        6: _str("message"),
    })),
    3: _str("message"), 4: _str("reason"), 11: _str("nominatedNodeName"), 5: _str("hostIP"),
    16: _list("hostIPs", _table({1: _str("ip", keep=True)})), 6: _str("podIP"),
    12: _list("podIPs", _table({1: _str("ip", keep=True)})), 7: _time("startTime"),
    10: _list("initContainerStatuses", CONTAINER_STATUS),
    8: _list("containerStatuses", CONTAINER_STATUS), 9: _str("qosClass"),
})
POD_TEMPLATE_SPEC = _table({1: _msg("metadata", OBJECT_META), 2: _msg("spec", POD_SPEC)})
POD = _table({
    1: _msg("metadata", OBJECT_META), 2: _msg("spec", POD_SPEC), 3: _msg("status", POD_STATUS),
})

# k8s.io/api/apps/v1: Deployment

DEPLOYMENT_SPEC = _table({
    1: _i32("replicas", keep=True), 2: _msg("selector", LABEL_SELECTOR),
    3: _msg("template", POD_TEMPLATE_SPEC),
    4: _msg("strategy", _table({
        1: _str("type"),
        2: _msg("rollingUpdate", _table({1: _ios("maxUnavailable"), 2: _ios("maxSurge")})),
    })),
    5: _i32("minReadySeconds"), 6: _i32("revisionHistoryLimit", keep=True), 7: _bool("paused"),
    9: _i32("progressDeadlineSeconds", keep=True),
})
DEPLOYMENT_STATUS = _table({
    1: _i64("observedGeneration"), 2: _i32("replicas"), 3: _i32("updatedReplicas"),
    7: _i32("readyReplicas"), 4: _i32("availableReplicas"), 5: _i32("unavailableReplicas"),
    6: _list("conditions", _table({
        1: _str("type", keep=True), 2: _str("status", keep=True), 6: _time("lastUpdateTime"),
        7: _time("lastTransitionTime"), 4: _str("reason"), 5: _str("message"),
    })),
    8: _i32("collisionCount", keep=True),
})
DEPLOYMENT = _table({
    1: _msg("metadata", OBJECT_META), 2: _msg("spec", DEPLOYMENT_SPEC),
    3: _msg("status", DEPLOYMENT_STATUS),
})

# The kinds a protobuf body may carry: (apiVersion, kind) -> the table of its message.
OBJECTS: Mapping[tuple[str, str], Message] = MappingProxyType({
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "Service"): SERVICE,
    ("v1", "Pod"): POD,
    ("apps/v1", "Deployment"): DEPLOYMENT,
})

# k8s.io/apimachinery/pkg/runtime Unknown (the envelope), TypeMeta, and the small value types.
_TYPE_META = _table({1: _str("apiVersion"), 2: _str("kind")})
_INT_OR_STRING = _table({1: _i64("type", keep=True), 2: _i32("intVal"), 3: _str("strVal")})
_QUANTITY = _table({1: _str("string")})
_TIME = _table({1: _i64("seconds"), 2: _i32("nanos")})
_MAP_ENTRY = {  # map<string, V> is repeated {1: key, 2: value}
    Kind.STRING: _table({1: _str("key"), 2: _str("value")}),
    Kind.QUANTITY: _table({1: _str("key"), 2: _qty("value")}),
}


# --- the decoder ------------------------------------------------------------------------------


def decode(body: bytes) -> dict[str, Any]:
    """The object a protobuf body carries, as JSON data with "apiVersion" and "kind".

    Raises:
        DecodeError: not a Kubernetes protobuf body, malformed, or a kind with no table here.
    """
    return dict(read(body).data)


def read(body: bytes) -> ProtobufObject:
    """`decode`, also returning the unknown fields that were skipped (path, field number)."""
    if body[:4] != MAGIC:
        raise DecodeError(
            f"not a Kubernetes protobuf body: it must start with the magic bytes "
            f"{MAGIC!r}, not {bytes(body[:4])!r}"
        )
    reader = _Reader(bytes(body))
    api_version, kind, start, end = reader.envelope(len(MAGIC))
    table = OBJECTS.get((api_version, kind))
    if table is None:
        served = ", ".join(f"{k} ({v})" for v, k in OBJECTS)
        raise DecodeError(
            f'unknown kind "{kind}" (apiVersion "{api_version}") for protobuf: clusterip reads '
            f"protobuf only for {served}; send other kinds as JSON"
        )
    data = {"kind": kind, "apiVersion": api_version, **reader.message(start, end, table, "")}
    return ProtobufObject(data, tuple(reader.skipped))


_Value = tuple[Any, int]  # a decoded value and the offset after it


class _Reader:
    """One pass over a body: `buf` and the unknown fields met so far. Offsets are absolute."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.skipped: list[tuple[str, int]] = []

    # envelope

    def envelope(self, start: int) -> tuple[str, str, int, int]:
        """apiVersion, kind and the byte range of `raw`, from the runtime.Unknown at `start`."""
        api_version = kind = encoding = content_type = ""
        raw: tuple[int, int] | None = None
        pos, end = start, len(self.buf)
        while pos < end:
            number, wire, pos = self.key(pos, end)
            if wire is not Wire.LEN or number not in (1, 2, 3, 4):
                pos = self.skip(pos, end, wire, number, "<envelope>")
                continue
            first, pos = self.length(pos, end, _ENVELOPE_FIELDS[number])
            if number == 1:
                meta = self.message(first, pos, _TYPE_META, "typeMeta")
                api_version, kind = meta.get("apiVersion", ""), meta.get("kind", "")
            elif number == 2:
                raw = (first, pos)
            elif number == 3:
                encoding = self.text(first, pos, "contentEncoding")
            else:
                content_type = self.text(first, pos, "contentType")
        if encoding:
            raise DecodeError(f'content encoding "{encoding}" is not supported')
        if content_type not in ("", MEDIA_TYPE):
            raise DecodeError(f'the envelope says its object is "{content_type}", not protobuf')
        if not kind or not api_version:
            raise DecodeError("the protobuf envelope names no apiVersion and kind (typeMeta)")
        if raw is None:
            raise DecodeError("the protobuf envelope carries no object (runtime.Unknown.raw)")
        return api_version, kind, raw[0], raw[1]

    # messages

    def message(self, start: int, end: int, table: Message, path: str) -> dict[str, Any]:
        """The message in buf[start:end], read with `table`, as JSON data."""
        out: dict[str, Any] = {}
        pos = start
        while pos < end:
            number, wire, pos = self.key(pos, end)
            field = table.get(number)
            if field is None or field.kind is Kind.SKIP:
                pos = self.skip(pos, end, wire, number, path, record=field is None)
                continue
            where = _join(path, field.name)
            if field.repeated and wire is Wire.LEN and field.kind in _PACKABLE:
                first, pos = self.length(pos, end, where)
                while first < pos:
                    value, first = _READERS[field.kind](self, field, first, pos, where)
                    out.setdefault(field.name, []).append(value)
                continue
            if wire is not _WIRE[field.kind]:
                expected = _WIRE[field.kind]
                raise DecodeError(
                    f"wrong wire type {wire} ({_wire_name(wire)}) for {_article(field.kind)} "
                    f"field, expected {expected.value} ({expected.name})", field=where)
            if field.repeated:
                items = out.setdefault(field.name, [])
                value, pos = _READERS[field.kind](self, field, pos, end,
                                                  f"{where}[{len(items)}]")
                items.append(value)
            elif field.kind is Kind.MAP:
                (key, value), pos = _READERS[field.kind](self, field, pos, end, where)
                out.setdefault(field.name, {})[key] = value
            elif field.kind is Kind.INLINE:
                value, pos = _READERS[field.kind](self, field, pos, end, path)
                out.update(value)
            else:
                value, pos = _READERS[field.kind](self, field, pos, end, where)
                if field.kind in _SCALARS and not value and not field.keep:
                    out.pop(field.name, None)  # Go's omitempty: a zero value is left out
                elif field.kind is Kind.MESSAGE and isinstance(out.get(field.name), dict):
                    out[field.name].update(value)  # a message written twice merges
                else:
                    out[field.name] = value
        return out

    def key(self, pos: int, end: int) -> tuple[int, Wire, int]:
        at = pos
        key, pos = self.varint(pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError(f"field number 0 at offset {at}")
        if wire not in _WIRE_TYPES:
            raise DecodeError(f"invalid wire type {wire} at offset {at}")
        return number, Wire(wire), pos

    def skip(self, pos: int, end: int, wire: Wire, number: int, path: str, *,
             record: bool = True) -> int:
        """Past a field's value; an unknown field is recorded in `skipped`."""
        if wire is Wire.VARINT:
            _, pos = self.varint(pos, end)
        elif wire is Wire.LEN:
            _, pos = self.length(pos, end, f"{path or '<object>'} field {number}")
        elif wire in (Wire.I64, Wire.I32):
            size = 8 if wire is Wire.I64 else 4
            if pos + size > end:
                raise DecodeError(f"truncated fixed{size * 8} at offset {pos}")
            pos += size
        else:
            raise DecodeError(f"field {number} at {path or '<object>'}: groups (wire type "
                              f"{wire.value}) are not used by Kubernetes")
        if record:
            self.skipped.append((path, number))
        return pos

    # values

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        start, value, shift = pos, 0, 0
        while True:
            if pos >= end:
                raise DecodeError(f"truncated varint at offset {start}")
            if shift >= 70:
                raise DecodeError(f"varint longer than 10 bytes at offset {start}")
            byte = self.buf[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value & 0xFFFF_FFFF_FFFF_FFFF, pos
            shift += 7

    def length(self, pos: int, end: int, where: str) -> tuple[int, int]:
        """The range (first, after) of a length-delimited value whose length is at `pos`."""
        size, first = self.varint(pos, end)
        if size > end - first:
            raise DecodeError(f"truncated: {size} bytes declared at offset {pos}, only "
                              f"{end - first} left", field=where)
        return first, first + size

    def text(self, first: int, after: int, where: str) -> str:
        try:
            return self.buf[first:after].decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"not UTF-8 text at offset {first}", field=where) from None


_WIRE_TYPES = frozenset(int(w) for w in Wire)
_ENVELOPE_FIELDS = {1: "typeMeta", 2: "raw", 3: "contentEncoding", 4: "contentType"}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path and name else path or name


def _wire_name(wire: int) -> str:
    return Wire(wire).name if wire in _WIRE_TYPES else "?"


def _article(kind: Kind) -> str:
    return f"an {kind.value}" if kind.value[0] in "aeiouI" else f"a {kind.value}"


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _read_string(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    first, after = r.length(pos, end, path)
    return r.text(first, after, path), after


def _read_int64(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    value, pos = r.varint(pos, end)
    return _signed(value), pos


def _read_int32(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    value, pos = r.varint(pos, end)
    return ((value + (1 << 31)) & 0xFFFF_FFFF) - (1 << 31), pos  # Go's int32(v)


def _read_bool(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    value, pos = r.varint(pos, end)
    return value != 0, pos


def _read_message(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    assert f.message is not None
    first, after = r.length(pos, end, path)
    return r.message(first, after, f.message, path), after


def _read_int_or_string(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    first, after = r.length(pos, end, path)
    value = r.message(first, after, _INT_OR_STRING, path)
    kind = value.get("type", 0)
    if kind == 0:
        return value.get("intVal", 0), after
    if kind == 1:
        return value.get("strVal", ""), after
    raise DecodeError(f"IntOrString type {kind} is neither 0 (int) nor 1 (string)", field=path)


def _read_quantity(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    first, after = r.length(pos, end, path)
    return r.message(first, after, _QUANTITY, path).get("string") or "0", after


def _read_time(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    first, after = r.length(pos, end, path)
    if first == after:
        return None, after  # Go's zero time: JSON null
    seconds = r.message(first, after, _TIME, path).get("seconds", 0)
    try:
        return rfc3339(seconds), after
    except (OverflowError, OSError, ValueError):
        raise DecodeError(f"time {seconds} s is out of range", field=path) from None


def _read_map_entry(r: _Reader, f: Field, pos: int, end: int, path: str) -> _Value:
    first, after = r.length(pos, end, path)
    entry = r.message(first, after, _MAP_ENTRY[f.values], path)
    key = entry.get("key", "")
    default = "0" if f.values is Kind.QUANTITY else ""
    return (key, entry.get("value", default)), after


_READERS: Mapping[Kind, Callable[[_Reader, Field, int, int, str], _Value]] = MappingProxyType({
    Kind.STRING: _read_string,
    Kind.INT32: _read_int32,
    Kind.INT64: _read_int64,
    Kind.BOOL: _read_bool,
    Kind.MESSAGE: _read_message,
    Kind.INLINE: _read_message,
    Kind.INT_OR_STRING: _read_int_or_string,
    Kind.QUANTITY: _read_quantity,
    Kind.TIME: _read_time,
    Kind.MAP: _read_map_entry,
})
