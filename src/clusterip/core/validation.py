"""Validation: every error an object has, each with its Kubernetes field path and message.

`validate(obj, old=None, *, service_cidrs=())` is called on a decoded, defaulted object (see
`core.defaults`) before it is stored. It returns a list of `FieldError`s, empty when the object is
valid, and never stops at the first finding; `require_valid` raises them as one `Invalid`. Passing
`old` makes it an update: the rules for changes (immutable names, a Service's clusterIP, a Pod's
spec, a Deployment's selector) run as well.

How it is organised:

* `_RULES` is the table: one row a kind, naming the function that checks `metadata.name`, the
  function that checks the rest of a new object, and the one that checks an update against the
  old object. Whether a kind is namespaced comes from `core.kinds`. `validate` itself only walks
  the row; nothing dispatches with `if kind == ...`.
* The sets of supported values (`SERVICE_TYPES`, `PROTOCOLS`, `RESTART_POLICIES`...) are
  constants, and `UNSUPPORTED` holds the values that Kubernetes accepts but clusterip does not
  (NodePort, LoadBalancer, SCTP) with the sentence that explains it.
* Syntax checks (`dns1123_label_errors`, `port_name_errors`, `ip_errors`, ...) return Kubernetes'
  messages as strings; label keys and values come from `core.selectors`. The per-kind functions
  turn messages into `FieldError`s at a field path.

Messages follow Kubernetes (`pkg/apis/core/validation`, `apimachinery/pkg/util/validation`)
word for word where they are known, so that users, `kubectl` and search engines recognise them::

    spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive

A Service's requested address is checked where the user wrote it, at `spec.clusterIP` (the
secondary one at `spec.clusterIPs[1]`): a valid IP, inside a service CIDR of its family when
`service_cidrs` is given, and not that CIDR's network address (nor, for IPv4, its broadcast
address), which the allocator never hands out. Whether the address is free is the allocator's
business, not validation's.

Where clusterip is stricter than Kubernetes it says why: port names are unique across a whole
Pod (named targetPorts resolve unambiguously), and NodePort/LoadBalancer/SCTP are unsupported.
Where it is looser: a container needs a `command` or an `image`, not necessarily an image
(clusterip runs commands; images are accepted and ignored, so manifests written for Kubernetes
apply unchanged, and a container with an image but no command waits with the reason in its
status), a Pod update may set
`spec.nodeName` once (what Kubernetes' binding subresource does), and an update with an empty
`metadata.uid` is not an error (the registry keeps the stored uid, as the API server does).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from clusterip.core import model
from clusterip.core.errors import (
    FieldError,
    Invalid,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)
from clusterip.core.kinds import KINDS
from clusterip.core.selectors import (
    DNS1123_LABEL_FMT,
    Selector,
    SelectorError,
    dns1123_subdomain_errors,
    label_value_errors,
    max_len_error,
    qualified_name_errors,
    regex_error,
)
from clusterip.core.timefmt import parse_rfc3339

__all__ = [
    "ServiceCIDRs",
    "cidr_errors",
    "dns1035_label_errors",
    "dns1123_label_errors",
    "ip_errors",
    "port_name_errors",
    "port_number_errors",
    "require_valid",
    "validate",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
ServiceCIDRs = Sequence[IPNetwork]

# --- the policy tables ------------------------------------------------------------------------

SERVICE_TYPES = ("ClusterIP", "ExternalName")
PROTOCOLS = ("TCP", "UDP")
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
TRAFFIC_DISTRIBUTIONS = ("PreferClose", "PreferSameNode", "PreferSameZone")
IP_FAMILIES = ("IPv4", "IPv6")
IP_FAMILY_POLICIES = ("PreferDualStack", "RequireDualStack", "SingleStack")
RESTART_POLICIES = ("Always", "Never", "OnFailure")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
HTTP_SCHEMES = ("HTTP", "HTTPS")
ADDRESS_TYPES = ("FQDN", "IPv4", "IPv6")
NAMESPACE_PHASES = ("Active", "Terminating")
DEPLOYMENT_STRATEGIES = ("Recreate", "RollingUpdate")
STANDARD_FINALIZERS = frozenset({"kubernetes", "orphan", "foregroundDeletion"})
ENV_SOURCES = ("configMapKeyRef", "fieldRef", "resourceFieldRef", "secretKeyRef")
EVENT_TYPES = ("Normal", "Warning")

# Values Kubernetes accepts that clusterip does not serve, with the reason it gives.
UNSUPPORTED = {
    "NodePort": "clusterip serves only in-cluster (ClusterIP and ExternalName) Services",
    "LoadBalancer": "clusterip serves only in-cluster (ClusterIP and ExternalName) Services",
    "SCTP": "SCTP is not supported by clusterip",
}

CLIENT_IP_TIMEOUT_MAX = 86400
ANNOTATIONS_MAX_BYTES = 256 * 1024
SLICE_MAX_ENDPOINTS = 1000
SLICE_MAX_PORTS = 100
ENDPOINT_MAX_ADDRESSES = 100
MAX_INT32 = 2**31 - 1
EVENT_REASON_MAX = 128  # Kubernetes' ReasonLengthLimit
EVENT_FIELD_MAX = 128  # reportingInstance and action (Kubernetes' ...LengthLimit)

# --- syntax checks: value → Kubernetes' messages (empty list = valid) -------------------------

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_RE = re.compile(f"^{DNS1123_LABEL_FMT}$")
_DNS1035_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character"
)
_DNS1035_RE = re.compile(f"^{_DNS1035_FMT}$")
_PORT_NAME_CHARSET = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")
_HTTP_HEADER_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_RE = re.compile(f"^{_HTTP_HEADER_FMT}$")
_PERCENT = re.compile(r"^[0-9]+%$")
LABEL_MAX = 63
PORT_NAME_MAX = 15

IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
IMMUTABLE = "field is immutable"


def dns1123_label_errors(value: str) -> list[str]:
    """Why `value` is not an RFC 1123 label (`my-name`, `123-abc`)."""
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _DNS1123_LABEL_RE.match(value):
        if not dns1123_subdomain_errors(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    """Why `value` is not an RFC 1035 label (Service names: start with a letter)."""
    errs = []
    if len(value) > LABEL_MAX:
        errs.append(max_len_error(LABEL_MAX))
    if not _DNS1035_RE.match(value):
        errs.append(regex_error(_DNS1035_MSG, _DNS1035_FMT, "my-name", "abc-123"))
    return errs


def port_name_errors(value: str) -> list[str]:
    """Why `value` is not an IANA_SVC_NAME (a container port name, a named targetPort)."""
    errs = []
    if len(value) > PORT_NAME_MAX:
        errs.append(max_len_error(PORT_NAME_MAX))
    if not _PORT_NAME_CHARSET.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number_errors(value: int, low: int = 1) -> list[str]:
    """Why `value` is not a port number (1..65535, or `low`..65535)."""
    return [] if low <= value <= 65535 else [f"must be between {low} and 65535, inclusive"]


def parse_ip(value: str) -> IPAddr | None:
    """The address, or None unless `value` is a plain IPv4/IPv6 address (no zone, no prefix)."""
    if "%" in value:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def ip_errors(value: str) -> list[str]:
    return [] if parse_ip(value) is not None else [IP_MESSAGE]


def parse_cidr(value: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(value, strict=False) if "/" in value else None
    except ValueError:
        return None


def cidr_errors(value: str) -> list[str]:
    """Why `value` is not a CIDR in canonical form (`10.244.1.0/24`, no host bits set)."""
    net = parse_cidr(value)
    if net is None:
        return [CIDR_MESSAGE]
    if str(net) != value:
        return [f'must be in canonical form ("{net}")']
    return []


def _path_segment_errors(value: str) -> list[str]:
    """Kubernetes' `IsValidPathSegmentName`: usable as one segment of a REST path."""
    errs = [f"may not be '{value}'" for bad in (".", "..") if value == bad]
    errs += [f"may not contain '{bad}'" for bad in ("/", "%") if bad in value]
    return errs


def _env_name_errors(value: str) -> list[str]:
    # Kubernetes' relaxed rule (the default since 1.32): printable ASCII other than '='.
    if all(32 <= ord(ch) <= 126 and ch != "=" for ch in value):
        return []
    return [
        "a valid environment variable name must consist only of printable ASCII characters "
        "other than '='"
    ]


def _http_header_errors(value: str) -> list[str]:
    if _HTTP_HEADER_RE.match(value):
        return []
    return [
        regex_error(
            "a valid HTTP header must consist of alphanumeric characters or '-'",
            _HTTP_HEADER_FMT,
            "X-Header-Name",
        )
    ]


def _fqdn_errors(value: str) -> list[str]:
    name = value.removesuffix(".")
    errs = dns1123_subdomain_errors(name)
    if not errs and "." not in name:
        errs.append("should be a domain with at least two segments separated by dots")
    return errs


# --- small builders: messages → field errors --------------------------------------------------


def _each(path: str, value: Any, messages: Iterable[str]) -> list[FieldError]:
    return [invalid(path, value, msg) for msg in messages]


def _one_of(path: str, value: str | None, supported: Sequence[str], *,
            required_: bool = True) -> list[FieldError]:
    """Required (if asked) and one of `supported`; `UNSUPPORTED` values say why."""
    if value is None or value == "":
        return [required(path)] if required_ else []
    if value in supported:
        return []
    return [not_supported(path, value, list(supported), UNSUPPORTED.get(value, ""))]


# Kubernetes' wording for a lower bound of 0 (non-negative) and of 1 (positive).
_LOWER_BOUND_MESSAGES = {0: "must be greater than or equal to 0", 1: "must be greater than zero"}


def _at_least(path: str, value: int | None, low: int, message: str = "") -> list[FieldError]:
    if value is None or value >= low:
        return []
    return [invalid(path, value, message or _LOWER_BOUND_MESSAGES[low])]


def _port_number_or_name(path: str, value: int | str) -> list[FieldError]:
    if isinstance(value, int):
        return _each(path, value, port_number_errors(value))
    return _each(path, value, port_name_errors(value))


def _labels(labels: Mapping[str, str] | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in (labels or {}).items():
        errs += _each(path, key, qualified_name_errors(key))
        errs += _each(path, value, label_value_errors(value))
    return errs


def _annotations(annotations: Mapping[str, str] | None, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    size = 0
    for key, value in (annotations or {}).items():
        errs += _each(path, key, qualified_name_errors(key.lower()))
        size += len(key.encode()) + len(value.encode())
    if size > ANNOTATIONS_MAX_BYTES:
        errs.append(too_long(path, ANNOTATIONS_MAX_BYTES))
    return errs


def _builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


def _label_selector(selector: model.LabelSelector, path: str) -> list[FieldError]:
    errs = _labels(selector.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(selector.match_expressions):
        p = f"{path}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                errs.append(required(
                    f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                errs.append(forbidden(
                    f"{p}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", expr.operator, "not a valid selector operator"))
        errs += _each(f"{p}.key", expr.key, qualified_name_errors(expr.key))
        for j, value in enumerate(expr.values):
            errs += _each(f"{p}.values[{j}]", value, label_value_errors(value))
    return errs


# --- metadata ---------------------------------------------------------------------------------

NameFn = Callable[[str], list[str]]


def _ip_address_name_errors(value: str) -> list[str]:
    ip = parse_ip(value)
    if ip is None:
        return [IP_MESSAGE]
    return [] if str(ip) == value else ["must be a canonical format IP address"]


def _generate_name_errors(name_fn: NameFn, prefix: str) -> list[str]:
    # A generateName may end in '-' (a suffix follows); mask it as Kubernetes' maskTrailingDash.
    masked = prefix[:-1] + "a" if len(prefix) > 1 and prefix.endswith("-") else prefix
    return name_fn(masked)


def _owner_references(refs: Sequence[model.OwnerReference], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    controllers = []
    for i, ref in enumerate(refs):
        p = f"{path}[{i}]"
        for field, value in (("apiVersion", ref.api_version), ("kind", ref.kind),
                             ("name", ref.name), ("uid", ref.uid)):
            if not value:
                errs.append(invalid(f"{p}.{field}", value, f"{field} must not be empty"))
        if ref.controller:
            controllers.append(ref.name)
    if len(controllers) > 1:
        errs.append(invalid(
            path, _builtins(refs),
            "Only one reference can have Controller set to true. Found \"true\" in references "
            f"for {' and '.join(controllers)}"))
    return errs


def _finalizers(finalizers: Sequence[str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, name in enumerate(finalizers):
        p = f"{path}[{i}]"
        msgs = qualified_name_errors(name)
        errs += _each(p, name, msgs)
        if not msgs and "/" not in name and name not in STANDARD_FINALIZERS:
            errs.append(invalid(
                p, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def _metadata(meta: model.ObjectMeta, name_fn: NameFn, namespaced: bool,
              creating: bool) -> list[FieldError]:
    path = "metadata"
    errs: list[FieldError] = []
    if meta.generate_name:
        errs += _each(f"{path}.generateName", meta.generate_name,
                      _generate_name_errors(name_fn, meta.generate_name))
    if not meta.name:
        if not (creating and meta.generate_name):
            errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += _each(f"{path}.name", meta.name, name_fn(meta.name))
    if namespaced:
        if not meta.namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs += _each(f"{path}.namespace", meta.namespace,
                          dns1123_label_errors(meta.namespace))
    elif meta.namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs += _at_least(f"{path}.generation", meta.generation, 0)
    errs += _labels(meta.labels, f"{path}.labels")
    errs += _annotations(meta.annotations, f"{path}.annotations")
    errs += _owner_references(meta.owner_references, f"{path}.ownerReferences")
    errs += _finalizers(meta.finalizers, f"{path}.finalizers")
    return errs


def _metadata_update(new: model.ObjectMeta, old: model.ObjectMeta) -> list[FieldError]:
    errs: list[FieldError] = []
    for field, now, before in (("name", new.name, old.name),
                               ("namespace", new.namespace, old.namespace),
                               ("uid", new.uid or old.uid, old.uid)):
        if now != before:
            errs.append(invalid(f"metadata.{field}", now, IMMUTABLE))
    return errs


# --- Service ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """What a validator may consult besides the object (updates get `old` separately)."""

    service_cidrs: tuple[IPNetwork, ...]


def _is_headless(spec: model.ServiceSpec) -> bool:
    return spec.type == "ClusterIP" and spec.cluster_ip == "None"


def _service_port(port: model.ServicePort, path: str, spec: model.ServiceSpec,
                  names: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    if len(spec.ports) > 1 and not port.name:
        errs.append(required(f"{path}.name"))
    elif port.name:
        errs += _each(f"{path}.name", port.name, dns1123_label_errors(port.name))
        if port.name in names:
            errs.append(duplicate(f"{path}.name", port.name))
        names.add(port.name)
    errs += _each(f"{path}.port", port.port, port_number_errors(port.port))
    errs += _one_of(f"{path}.protocol", port.protocol, PROTOCOLS)
    if port.target_port is not None:
        errs += _port_number_or_name(f"{path}.targetPort", port.target_port)
    if port.app_protocol is not None:
        errs += _each(f"{path}.appProtocol", port.app_protocol,
                      qualified_name_errors(port.app_protocol))
    if port.node_port and spec.type == "ClusterIP":
        errs.append(forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'"))
    return errs


def _in_service_range(path: str, text: str, ip: IPAddr,
                      cidrs: tuple[IPNetwork, ...]) -> list[FieldError]:
    """The address must be allocatable from one of the service CIDRs of its family."""
    if not cidrs:
        return []
    family = [n for n in cidrs if n.version == ip.version]
    if not family:
        shown = ", ".join(str(n) for n in cidrs)
        return [invalid(path, text, f"IPv{ip.version} is not configured on this cluster "
                                    f"(service CIDRs: {shown})")]
    net = next((n for n in family if ip in n), None)
    if net is None:
        shown = ", ".join(str(n) for n in family)
        return [invalid(path, text, "provided IP is not in the valid range. "
                                    f"The range of valid IPs is {shown}")]
    if ip == net.network_address and net.num_addresses > 2:
        return [invalid(path, text, f"provided IP is the network address of {net}, "
                                    "which cannot be allocated")]
    if ip.version == 4 and ip == net.broadcast_address and net.num_addresses > 2:
        return [invalid(path, text, f"provided IP is the broadcast address of {net}, "
                                    "which cannot be allocated")]
    return []


def _cluster_ips(spec: model.ServiceSpec, ctx: _Context) -> list[FieldError]:
    errs: list[FieldError] = []
    ips_path = "spec.clusterIPs"
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        errs.append(invalid(ips_path, list(spec.cluster_ips), "first value must match `clusterIP`"))
    elif not spec.cluster_ip and spec.cluster_ips:
        errs.append(invalid(ips_path, list(spec.cluster_ips),
                            "must be empty when `clusterIP` is not specified"))
    if len(spec.cluster_ips) > 2:
        errs.append(invalid(ips_path, list(spec.cluster_ips), "may only hold up to 2 values"))
    # The primary address is checked at `clusterIP` (what users write); the secondary here.
    checks = [("spec.clusterIP", spec.cluster_ip)] if spec.cluster_ip else []
    checks += [(f"{ips_path}[{i}]", ip) for i, ip in enumerate(spec.cluster_ips) if i > 0]
    parsed: list[IPAddr] = []
    for path, text in checks:
        if text == "None":
            if path != "spec.clusterIP" or len(spec.cluster_ips) > 1:
                errs.append(invalid(ips_path, list(spec.cluster_ips),
                                    "'None' must be the first and only value"))
            continue
        ip = parse_ip(text)
        if ip is None:
            errs.append(invalid(path, text, IP_MESSAGE))
            continue
        parsed.append(ip)
        errs += _in_service_range(path, text, ip, ctx.service_cidrs)
    if len(parsed) == 2 and parsed[0].version == parsed[1].version:
        errs.append(invalid(ips_path, list(spec.cluster_ips),
                            "may specify no more than one IP for each IP family"))
    seen: set[str] = set()
    for i, family in enumerate(spec.ip_families):
        errs += _one_of(f"spec.ipFamilies[{i}]", family, IP_FAMILIES)
        if family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        seen.add(family)
    if spec.ip_family_policy is not None:
        errs += _one_of("spec.ipFamilyPolicy", spec.ip_family_policy, IP_FAMILY_POLICIES)
    if not _is_headless(spec):
        pairs = zip(spec.ip_families, spec.cluster_ips, strict=False)
        for i, (family, text) in enumerate(pairs):
            addr = parse_ip(text)
            if addr is not None and family in IP_FAMILIES and f"IPv{addr.version}" != family:
                errs.append(invalid(f"{ips_path}[{i}]", text, f"expected an {family} value as "
                                                              f"indicated by `ipFamilies[{i}]`"))
    return errs


def _external_name(spec: model.ServiceSpec) -> list[FieldError]:
    errs: list[FieldError] = []
    why = "may not be set for ExternalName services"
    if spec.cluster_ip:
        errs.append(forbidden("spec.clusterIP", why))
    elif spec.cluster_ips:
        errs.append(forbidden("spec.clusterIPs", why))
    if spec.ip_families:
        errs.append(forbidden("spec.ipFamilies", why))
    if spec.ip_family_policy is not None:
        errs.append(forbidden("spec.ipFamilyPolicy", why))
    cname = spec.external_name.removesuffix(".")
    if not cname:
        errs.append(required("spec.externalName"))
    else:
        errs += _each("spec.externalName", cname, dns1123_subdomain_errors(cname))
    return errs


def _session_affinity(spec: model.ServiceSpec) -> list[FieldError]:
    errs = _one_of("spec.sessionAffinity", spec.session_affinity, SESSION_AFFINITIES)
    path = "spec.sessionAffinityConfig"
    if spec.session_affinity == "ClientIP":
        why = "when session affinity type is ClientIP"
        config = spec.session_affinity_config
        if config is None:
            return [*errs, required(path, why)]
        if config.client_ip is None:
            return [*errs, required(f"{path}.clientIP", why)]
        timeout = config.client_ip.timeout_seconds
        if timeout is None:
            return [*errs, required(f"{path}.clientIP.timeoutSeconds", why)]
        if not 0 < timeout <= CLIENT_IP_TIMEOUT_MAX:
            errs.append(invalid(f"{path}.clientIP.timeoutSeconds", timeout,
                                f"must be greater than 0 and less than {CLIENT_IP_TIMEOUT_MAX}"))
    elif spec.session_affinity == "None" and spec.session_affinity_config is not None:
        errs.append(forbidden(path, "must not be set when session affinity is None"))
    return errs


def _service(svc: model.Service, ctx: _Context) -> list[FieldError]:
    spec = svc.spec
    errs = _one_of("spec.type", spec.type, SERVICE_TYPES)
    if not spec.ports and not _is_headless(spec) and spec.type != "ExternalName":
        errs.append(required("spec.ports"))
    names: set[str] = set()
    pairs: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        errs += _service_port(port, f"spec.ports[{i}]", spec, names)
        if (port.port, port.protocol) in pairs:
            errs.append(duplicate(f"spec.ports[{i}]",
                                  {"port": port.port, "protocol": port.protocol}))
        pairs.add((port.port, port.protocol))
    if spec.type == "ExternalName":
        errs += _external_name(spec)
    else:
        errs += _cluster_ips(spec, ctx)
    errs += _labels(spec.selector, "spec.selector")
    errs += _session_affinity(spec)
    for i, ip in enumerate(spec.external_ips):
        errs += _each(f"spec.externalIPs[{i}]", ip, ip_errors(ip))
    if spec.internal_traffic_policy is None:
        if spec.type == "ClusterIP":
            errs.append(required("spec.internalTrafficPolicy"))
    else:
        errs += _one_of("spec.internalTrafficPolicy", spec.internal_traffic_policy,
                        TRAFFIC_POLICIES)
    if spec.external_traffic_policy:
        errs.append(invalid("spec.externalTrafficPolicy", spec.external_traffic_policy,
                            "may only be set for externally-accessible services"))
    if spec.traffic_distribution is not None:
        errs += _one_of("spec.trafficDistribution", spec.traffic_distribution,
                        TRAFFIC_DISTRIBUTIONS)
    return errs


def _service_update(new: model.Service, old: model.Service) -> list[FieldError]:
    if "ExternalName" in (new.spec.type, old.spec.type) or not old.spec.cluster_ip:
        return []
    errs: list[FieldError] = []
    if new.spec.cluster_ip != old.spec.cluster_ip:
        errs.append(invalid("spec.clusterIP", new.spec.cluster_ip, IMMUTABLE))
    # A secondary address may be added or released, but not changed.
    before, now = old.spec.cluster_ips[1:2], new.spec.cluster_ips[1:2]
    if before and now and now != before:
        errs.append(invalid("spec.clusterIPs[1]", now[0], IMMUTABLE))
    return errs


# --- Pod --------------------------------------------------------------------------------------


def _exec_handler(action: model.ExecAction, path: str) -> list[FieldError]:
    return [] if action.command else [required(f"{path}.command")]


def _http_get_handler(action: model.HTTPGetAction, path: str) -> list[FieldError]:
    errs = [] if action.path else [required(f"{path}.path")]
    errs += _port_number_or_name(f"{path}.port", action.port)
    errs += _one_of(f"{path}.scheme", action.scheme, HTTP_SCHEMES)
    for header in action.http_headers:
        errs += _each(f"{path}.httpHeaders", header.name, _http_header_errors(header.name))
    return errs


def _tcp_socket_handler(action: model.TCPSocketAction, path: str) -> list[FieldError]:
    return _port_number_or_name(f"{path}.port", action.port)


def _grpc_handler(action: dict[str, Any], path: str) -> list[FieldError]:
    port = action.get("port")
    if port is None:
        return [required(f"{path}.port")]
    if not isinstance(port, int) or isinstance(port, bool):
        return [invalid(f"{path}.port", port, "must be an integer port number")]
    return _each(f"{path}.port", port, port_number_errors(port))


# A probe's handlers: (JSON name, attribute, validator). Exactly one must be set.
_HANDLERS: tuple[tuple[str, str, Callable[[Any, str], list[FieldError]]], ...] = (
    ("exec", "exec", _exec_handler),
    ("httpGet", "http_get", _http_get_handler),
    ("tcpSocket", "tcp_socket", _tcp_socket_handler),
    ("grpc", "grpc", _grpc_handler),
)

# A probe's numeric fields: (attribute, JSON name, minimum, message or "" for the usual one).
_PROBE_NUMBERS = (
    ("initial_delay_seconds", "initialDelaySeconds", 0, ""),
    ("timeout_seconds", "timeoutSeconds", 0, ""),
    ("period_seconds", "periodSeconds", 0, ""),
    ("success_threshold", "successThreshold", 0, ""),
    ("failure_threshold", "failureThreshold", 0, ""),
    ("termination_grace_period_seconds", "terminationGracePeriodSeconds", 1,
     "must be greater than 0"),
)

# Probes whose successThreshold must be 1 (a container is alive or started after one success).
_SINGLE_SUCCESS_PROBES = frozenset({"livenessProbe", "startupProbe"})


def _probe(probe: model.Probe, path: str, kind: str) -> list[FieldError]:
    errs: list[FieldError] = []
    present = [(name, attr, check) for name, attr, check in _HANDLERS
               if getattr(probe, attr) is not None]
    if not present:
        errs.append(required(path, "must specify a handler type"))
    for n, (name, attr, check) in enumerate(present):
        if n == 0:
            errs += check(getattr(probe, attr), f"{path}.{name}")
        else:
            errs.append(forbidden(f"{path}.{name}", "may not specify more than 1 handler type"))
    for attr, name, low, message in _PROBE_NUMBERS:
        errs += _at_least(f"{path}.{name}", getattr(probe, attr), low, message)
    if kind in _SINGLE_SUCCESS_PROBES and probe.success_threshold not in (None, 1):
        errs.append(invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    return errs


def _env(env: Sequence[model.EnvVar], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        p = f"{path}[{i}]"
        if not var.name:
            errs.append(required(f"{p}.name"))
        else:
            errs += _each(f"{p}.name", var.name, _env_name_errors(var.name))
        if var.value_from is not None:
            sources = [k for k in ENV_SOURCES if var.value_from.get(k) is not None]
            if len(sources) != 1:
                errs.append(invalid(f"{p}.valueFrom", "", "must specify one of: `fieldRef`, "
                                    "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
            if var.value:
                errs.append(invalid(f"{p}.valueFrom", "",
                                    "may not be specified when `value` is not empty"))
    return errs


# clusterip runs a container's `command` on the node and accepts (and ignores) its image, so a
# container needs a command or an image, where Kubernetes requires the image.
_NOTHING_TO_RUN = ("a container needs an image or a command (clusterip runs the command on the "
                   "node; images are accepted and not run)")


def _container(c: model.Container, path: str, *, init: bool,
               port_names: set[str]) -> list[FieldError]:
    errs: list[FieldError] = []
    if not c.command and not c.image:
        errs.append(required(f"{path}.image", _NOTHING_TO_RUN))
    if c.image != c.image.strip():
        errs.append(invalid(f"{path}.image", c.image,
                            "must not have leading or trailing whitespace"))
    for i, port in enumerate(c.ports):
        p = f"{path}.ports[{i}]"
        if port.name:
            msgs = port_name_errors(port.name)
            errs += _each(f"{p}.name", port.name, msgs)
            if not msgs and port.name in port_names:
                errs.append(duplicate(f"{p}.name", port.name))
            port_names.add(port.name)
        if port.container_port == 0:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += _each(f"{p}.containerPort", port.container_port,
                          port_number_errors(port.container_port))
        if port.host_port:
            errs += _each(f"{p}.hostPort", port.host_port, port_number_errors(port.host_port))
        errs += _one_of(f"{p}.protocol", port.protocol, PROTOCOLS)
    errs += _env(c.env, f"{path}.env")
    for name, probe in (("livenessProbe", c.liveness_probe),
                        ("readinessProbe", c.readiness_probe),
                        ("startupProbe", c.startup_probe)):
        if probe is None:
            continue
        if init:
            errs.append(forbidden(f"{path}.{name}", "may not be set for init containers"))
        else:
            errs += _probe(probe, f"{path}.{name}", name)
            errs += _probe_port_name(probe, f"{path}.{name}", c)
    return errs


def _probe_port_name(probe: model.Probe, path: str, c: model.Container) -> list[FieldError]:
    """A probe's port given by name must be the name of one of its container's ports."""
    own = {port.name for port in c.ports if port.name}
    for handler, action in (("httpGet", probe.http_get), ("tcpSocket", probe.tcp_socket)):
        if action is not None and isinstance(action.port, str) and action.port not in own \
                and not port_name_errors(action.port):
            return [invalid(f"{path}.{handler}.port", action.port,
                            "must be the name of a port of this container")]
    return []


def _pod_spec(spec: model.PodSpec, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not spec.containers:
        errs.append(required(f"{path}.containers"))
    names: set[str] = set()
    port_names: set[str] = set()
    groups = (("initContainers", spec.init_containers, True),
              ("containers", spec.containers, False))
    for group, containers, init in groups:
        for i, c in enumerate(containers):
            p = f"{path}.{group}[{i}]"
            if not c.name:
                errs.append(required(f"{p}.name"))
            else:
                errs += _each(f"{p}.name", c.name, dns1123_label_errors(c.name))
                if c.name in names:
                    errs.append(duplicate(f"{p}.name", c.name))
                names.add(c.name)
            errs += _container(c, p, init=init, port_names=port_names)
    errs += _one_of(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES)
    errs += _one_of(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES)
    if spec.dns_policy == "None" and not spec.dns_config:
        errs.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` "
                                                  "is None"))
    errs += _at_least(f"{path}.terminationGracePeriodSeconds",
                      spec.termination_grace_period_seconds, 0)
    ads = spec.active_deadline_seconds
    if ads is not None and not 1 <= ads <= MAX_INT32:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", ads,
                            f"must be between 1 and {MAX_INT32}, inclusive"))
    for field, value in (("hostname", spec.hostname), ("subdomain", spec.subdomain)):
        if value:
            errs += _each(f"{path}.{field}", value, dns1123_label_errors(value))
    if spec.node_name:
        errs += _each(f"{path}.nodeName", spec.node_name, dns1123_subdomain_errors(spec.node_name))
    errs += _labels(spec.node_selector, f"{path}.nodeSelector")
    return errs


def _pod(pod: model.Pod, ctx: _Context) -> list[FieldError]:
    return _pod_spec(pod.spec, "spec")


# What a Pod update may change, as Kubernetes words it.
_POD_MUTABLE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations)"
)


def _with_images_of(new: Sequence[model.Container],
                    old: Sequence[model.Container]) -> tuple[model.Container, ...]:
    if len(new) != len(old):
        return tuple(new)
    return tuple(msgspec.structs.replace(n, image=o.image) for n, o in zip(new, old, strict=True))


def _pod_update(new: model.Pod, old: model.Pod) -> list[FieldError]:
    if new.spec == old.spec:
        return []
    errs: list[FieldError] = []
    if not all(t in new.spec.tolerations for t in old.spec.tolerations):
        errs.append(forbidden("spec.tolerations", "existing toleration can not be modified "
                                                  "except its tolerationSeconds"))
    # Copy what may change from old into new; whatever still differs was not allowed to.
    munged = msgspec.structs.replace(
        new.spec,
        containers=_with_images_of(new.spec.containers, old.spec.containers),
        init_containers=_with_images_of(new.spec.init_containers, old.spec.init_containers),
        active_deadline_seconds=old.spec.active_deadline_seconds,
        tolerations=old.spec.tolerations,
        # Setting nodeName once is what Kubernetes' binding subresource does.
        node_name=new.spec.node_name if old.spec.node_name else old.spec.node_name,
    )
    changed = [
        f"`spec.{f.encode_name}`"
        for f in msgspec.structs.fields(model.PodSpec)
        if getattr(munged, f.name) != getattr(old.spec, f.name)
    ]
    if changed:
        errs.append(forbidden("spec", f"{_POD_MUTABLE}; changed: {', '.join(changed)}"))
    return errs


# --- EndpointSlice ----------------------------------------------------------------------------

# Endpoint addresses that are never valid targets: (test, Kubernetes' message).
_ENDPOINT_IP_RULES: tuple[tuple[Callable[[IPAddr], bool], str], ...] = (
    (lambda ip: ip.is_unspecified, "may not be unspecified (0.0.0.0, ::)"),
    (lambda ip: ip.is_loopback, "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
    (lambda ip: ip.is_link_local,
     "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
    (lambda ip: ip.is_multicast, "may not be in the multicast range (224.0.0.0/4, ff00::/8)"),
)

_ADDRESS_VERSION = {"IPv4": 4, "IPv6": 6}


def _endpoint_address(address: str, path: str, address_type: str) -> list[FieldError]:
    if address_type == "FQDN":
        return _each(path, address, _fqdn_errors(address))
    version = _ADDRESS_VERSION.get(address_type)
    if version is None:
        return []  # the unsupported addressType is already reported
    ip = parse_ip(address)
    if ip is None:
        return [invalid(path, address, IP_MESSAGE)]
    if ip.version != version:
        return [invalid(path, address, f"must be an {address_type} address")]
    return [invalid(path, address, msg) for test, msg in _ENDPOINT_IP_RULES if test(ip)]


def _endpoint(ep: model.Endpoint, path: str, address_type: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not ep.addresses:
        errs.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(ep.addresses) > ENDPOINT_MAX_ADDRESSES:
        errs.append(too_many(f"{path}.addresses", len(ep.addresses), ENDPOINT_MAX_ADDRESSES))
    for i, address in enumerate(ep.addresses):
        errs += _endpoint_address(address, f"{path}.addresses[{i}]", address_type)
    if ep.node_name is not None:
        errs += _each(f"{path}.nodeName", ep.node_name, dns1123_subdomain_errors(ep.node_name))
    if ep.hostname is not None:
        errs += _each(f"{path}.hostname", ep.hostname, dns1123_label_errors(ep.hostname))
    if ep.target_ref is not None:
        ref, p = ep.target_ref, f"{path}.targetRef"
        if not ref.name:
            errs.append(required(f"{p}.name"))
        else:
            errs += _each(f"{p}.name", ref.name, dns1123_subdomain_errors(ref.name))
        if ref.namespace:
            errs += _each(f"{p}.namespace", ref.namespace, dns1123_label_errors(ref.namespace))
    return errs


def _endpoint_slice(eps: model.EndpointSlice, ctx: _Context) -> list[FieldError]:
    errs = _one_of("addressType", eps.address_type, ADDRESS_TYPES)
    if len(eps.endpoints) > SLICE_MAX_ENDPOINTS:
        errs.append(too_many("endpoints", len(eps.endpoints), SLICE_MAX_ENDPOINTS))
    else:
        for i, ep in enumerate(eps.endpoints):
            errs += _endpoint(ep, f"endpoints[{i}]", eps.address_type)
    if len(eps.ports) > SLICE_MAX_PORTS:
        return [*errs, too_many("ports", len(eps.ports), SLICE_MAX_PORTS)]
    names: set[str] = set()
    for i, port in enumerate(eps.ports):
        p = f"ports[{i}]"
        name = port.name or ""
        if name:
            errs += _each(f"{p}.name", name, dns1123_label_errors(name))
        if name in names:
            errs.append(duplicate(f"{p}.name", name))
        names.add(name)
        errs += _one_of(f"{p}.protocol", port.protocol, PROTOCOLS)
        if port.port is not None:
            errs += _each(f"{p}.port", port.port, port_number_errors(port.port, low=0))
        if port.app_protocol is not None:
            errs += _each(f"{p}.appProtocol", port.app_protocol,
                          qualified_name_errors(port.app_protocol))
    return errs


def _endpoint_slice_update(new: model.EndpointSlice,
                           old: model.EndpointSlice) -> list[FieldError]:
    if new.address_type != old.address_type:
        return [invalid("addressType", new.address_type, IMMUTABLE)]
    return []


# --- Deployment -------------------------------------------------------------------------------


def _int_or_percent(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]
        return []
    if isinstance(value, int) and not isinstance(value, bool):
        return _at_least(path, value, 0)
    return [invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def _amount(value: Any) -> int | None:
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _strategy(strategy: dict[str, Any] | None, path: str) -> list[FieldError]:
    if strategy is None:
        return []
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden(f"{path}.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        if not isinstance(kind, str):
            return [invalid(f"{path}.type", kind, "must be a string")]
        return _one_of(f"{path}.type", kind, DEPLOYMENT_STRATEGIES)
    if not isinstance(rolling, dict):
        return [invalid(f"{path}.rollingUpdate", rolling, "must be an object")]
    p = f"{path}.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _int_or_percent(unavailable, f"{p}.maxUnavailable")
    errs += _int_or_percent(surge, f"{p}.maxSurge")
    if _amount(unavailable) == 0 and _amount(surge) == 0:
        errs.append(invalid(f"{p}.maxUnavailable", unavailable,
                            "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and (_amount(unavailable) or 0) > 100:
        errs.append(invalid(f"{p}.maxUnavailable", unavailable, "must not be greater than 100%"))
    return errs


def _deployment(deploy: model.Deployment, ctx: _Context) -> list[FieldError]:
    spec = deploy.spec
    errs = _at_least("spec.replicas", spec.replicas, 0)
    template = spec.template
    labels_path = "spec.template.metadata.labels"
    if spec.selector is None:
        errs.append(required("spec.selector"))
    else:
        selector_errs = _label_selector(spec.selector, "spec.selector")
        if not spec.selector.match_labels and not spec.selector.match_expressions:
            selector_errs.append(invalid("spec.selector", _builtins(spec.selector),
                                         "empty selector is invalid for deployment"))
        errs += selector_errs
        if not selector_errs:
            try:
                selector = Selector.from_label_selector(spec.selector)
            except SelectorError as exc:  # pragma: no cover - the checks above catch these
                errs.append(invalid("spec.selector", _builtins(spec.selector), str(exc)))
            else:
                if not selector.matches(template.metadata.labels):
                    errs.append(invalid(labels_path, template.metadata.labels or {},
                                        "`selector` does not match template `labels`"))
    errs += _labels(template.metadata.labels, labels_path)
    errs += _annotations(template.metadata.annotations, "spec.template.metadata.annotations")
    errs += _pod_spec(template.spec, "spec.template.spec")
    if template.spec.restart_policy not in ("", "Always"):
        errs.append(not_supported("spec.template.spec.restartPolicy",
                                  template.spec.restart_policy, ["Always"]))
    if template.spec.active_deadline_seconds is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in ReplicaSet is not Supported"))
    errs += _strategy(spec.strategy, "spec.strategy")
    errs += _at_least("spec.minReadySeconds", spec.min_ready_seconds, 0)
    errs += _at_least("spec.revisionHistoryLimit", spec.revision_history_limit, 0)
    deadline = spec.progress_deadline_seconds
    if deadline is not None:
        errs += _at_least("spec.progressDeadlineSeconds", deadline, 1)
        if deadline > 0 and deadline <= (spec.min_ready_seconds or 0):
            errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    return errs


def _deployment_update(new: model.Deployment, old: model.Deployment) -> list[FieldError]:
    if new.spec.selector != old.spec.selector:
        return [invalid("spec.selector", _builtins(new.spec.selector), IMMUTABLE)]
    return []


# --- Namespace, Node, IPAddress, ServiceCIDR, Endpoints ---------------------------------------


def _namespace(ns: model.Namespace, ctx: _Context) -> list[FieldError]:
    errs = _one_of("status.phase", ns.status.phase, NAMESPACE_PHASES, required_=False)
    errs += _finalizers(ns.spec.finalizers, "spec.finalizers")
    return errs


def _cidr_pair(path: str, values: Sequence[str]) -> list[FieldError]:
    """Each a canonical CIDR, at most two, at most one of each family."""
    errs: list[FieldError] = []
    for i, value in enumerate(values):
        errs += _each(f"{path}[{i}]", value, cidr_errors(value))
    if len(values) > 2:
        errs.append(invalid(path, list(values), "may only hold up to 2 values"))
    elif not errs and len(values) == 2:
        nets = [parse_cidr(v) for v in values]
        if nets[0] is not None and nets[1] is not None and nets[0].version == nets[1].version:
            errs.append(invalid(path, list(values),
                                "may specify no more than one CIDR for each IP family"))
    return errs


def _node(node: model.Node, ctx: _Context) -> list[FieldError]:
    spec = node.spec
    errs: list[FieldError] = []
    if spec.pod_cidr:
        errs += _each("spec.podCIDR", spec.pod_cidr, cidr_errors(spec.pod_cidr))
    errs += _cidr_pair("spec.podCIDRs", spec.pod_cidrs)
    if spec.pod_cidr and spec.pod_cidrs and spec.pod_cidrs[0] != spec.pod_cidr:
        errs.append(invalid("spec.podCIDRs", list(spec.pod_cidrs),
                            "first value must match `podCIDR`"))
    return errs


def _node_update(new: model.Node, old: model.Node) -> list[FieldError]:
    # A node's pod CIDR may be assigned once and never changed (Kubernetes: "node updates may
    # only change ... podCIDR from empty").
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        return [invalid("spec.podCIDR", new.spec.pod_cidr, IMMUTABLE)]
    return []


def _ip_address(ip: model.IPAddress, ctx: _Context) -> list[FieldError]:
    ref = ip.spec.parent_ref
    if ref is None:
        return [required("spec.parentRef")]
    p = "spec.parentRef"
    errs: list[FieldError] = []
    if ref.group:
        errs += _each(f"{p}.group", ref.group, dns1123_subdomain_errors(ref.group))
    for field, value in (("resource", ref.resource), ("name", ref.name)):
        if not value:
            errs.append(required(f"{p}.{field}"))
        else:
            errs += _each(f"{p}.{field}", value, _path_segment_errors(value))
    if ref.namespace:
        errs += _each(f"{p}.namespace", ref.namespace, dns1123_label_errors(ref.namespace))
    return errs


def _ip_address_update(new: model.IPAddress, old: model.IPAddress) -> list[FieldError]:
    if new.spec.parent_ref != old.spec.parent_ref:
        return [invalid("spec.parentRef", _builtins(new.spec.parent_ref), IMMUTABLE)]
    return []


def _service_cidr(cidr: model.ServiceCIDR, ctx: _Context) -> list[FieldError]:
    if not cidr.spec.cidrs:
        return [required("spec.cidrs", "at least one CIDR required")]
    return _cidr_pair("spec.cidrs", cidr.spec.cidrs)


def _service_cidr_update(new: model.ServiceCIDR, old: model.ServiceCIDR) -> list[FieldError]:
    before, now = old.spec.cidrs, new.spec.cidrs
    # Kubernetes allows one change: a single-stack ServiceCIDR gains its second family.
    if len(before) == 1 and len(now) == 2 and now[0] == before[0]:
        return []
    if len(before) != len(now):
        return [invalid("spec.cidrs", list(now), IMMUTABLE)]
    return [invalid(f"spec.cidrs[{i}]", n, IMMUTABLE)
            for i, (n, o) in enumerate(zip(now, before, strict=True)) if n != o]


# --- Event ------------------------------------------------------------------------------------

_EVENT_NAMESPACE = "does not match event.namespace"


def _time(path: str, value: str | None) -> list[FieldError]:
    if not value:
        return []
    try:
        parse_rfc3339(value)
    except ValueError:
        return [invalid(path, value, "must be an RFC 3339 time (e.g. 2026-01-01T00:00:00Z)")]
    return []


def _at_most(path: str, value: str, limit: int) -> list[FieldError]:
    if len(value) <= limit:
        return []
    return [invalid(path, value, f"can have at most {limit} characters")]


def _lease(lease: model.Lease, ctx: _Context) -> list[FieldError]:
    """Kubernetes' rules for coordination.k8s.io Leases: a positive duration, transitions not
    negative, times that parse."""
    spec = lease.spec
    errs: list[FieldError] = []
    if spec.lease_duration_seconds is not None:
        errs += _at_least("spec.leaseDurationSeconds", spec.lease_duration_seconds, 1)
    if spec.lease_transitions is not None:
        errs += _at_least("spec.leaseTransitions", spec.lease_transitions, 0)
    errs += _time("spec.acquireTime", spec.acquire_time)
    errs += _time("spec.renewTime", spec.renew_time)
    return errs


def _event(event: model.Event, ctx: _Context) -> list[FieldError]:
    """Kubernetes' rules for core/v1 Events (`legacyValidateEvent`), plus a type, a reason and
    a message, which every event clusterip records has. An event about a namespaced object
    lives in that object's namespace; one about a cluster-scoped object in `default` (or, for a
    new-style event with an `eventTime`, `kube-system`). A new-style event also names who
    reported it (`reportingComponent`, `reportingInstance`) and what it did (`action`)."""
    ref, namespace = event.involved_object, event.metadata.namespace
    errs: list[FieldError] = []
    new_style = bool(event.event_time)
    homes = ("", "default", "kube-system") if new_style else ("", "default")
    if (ref.namespace and ref.namespace != namespace) or (
            not ref.namespace and namespace not in homes):
        errs.append(invalid("involvedObject.namespace", ref.namespace, _EVENT_NAMESPACE))
    errs += _one_of("type", event.type, EVENT_TYPES)
    if not event.reason:
        errs.append(required("reason"))
    errs += _at_most("reason", event.reason, EVENT_REASON_MAX)
    if not event.message:
        errs.append(required("message"))
    errs += _at_least("count", event.count, 0)
    errs += _time("firstTimestamp", event.first_timestamp)
    errs += _time("lastTimestamp", event.last_timestamp)
    errs += _time("eventTime", event.event_time)
    if event.series is not None:
        errs += _at_least("series.count", event.series.count, 0)
        errs += _time("series.lastObservedTime", event.series.last_observed_time)
    if new_style:
        if not event.reporting_component:
            errs.append(required("reportingComponent"))
        else:
            errs += _each("reportingComponent", event.reporting_component,
                          qualified_name_errors(event.reporting_component))
        if not event.reporting_instance:
            errs.append(required("reportingInstance"))
        errs += _at_most("reportingInstance", event.reporting_instance, EVENT_FIELD_MAX)
        if not event.action:
            errs.append(required("action"))
        errs += _at_most("action", event.action, EVENT_FIELD_MAX)
    return errs


def _nothing(obj: Any, ctx: _Context) -> list[FieldError]:
    return []


def _no_update_rules(new: Any, old: Any) -> list[FieldError]:
    return []


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rules:
    """How one kind is validated: its name syntax, its rules, its rules for changes."""

    name: NameFn
    check: Callable[[Any, _Context], list[FieldError]]
    update: Callable[[Any, Any], list[FieldError]] = _no_update_rules


_RULES: dict[type[model.KubeObject], _Rules] = {
    model.Namespace: _Rules(dns1123_label_errors, _namespace),
    model.Service: _Rules(dns1035_label_errors, _service, _service_update),
    model.Pod: _Rules(dns1123_subdomain_errors, _pod, _pod_update),
    model.EndpointSlice: _Rules(dns1123_subdomain_errors, _endpoint_slice,
                                _endpoint_slice_update),
    model.Endpoints: _Rules(dns1123_subdomain_errors, _nothing),
    model.Deployment: _Rules(dns1123_subdomain_errors, _deployment, _deployment_update),
    model.Node: _Rules(dns1123_subdomain_errors, _node, _node_update),
    model.IPAddress: _Rules(_ip_address_name_errors, _ip_address, _ip_address_update),
    model.ServiceCIDR: _Rules(dns1123_subdomain_errors, _service_cidr, _service_cidr_update),
    model.Event: _Rules(dns1123_subdomain_errors, _event),
    model.Lease: _Rules(dns1123_subdomain_errors, _lease),
}

_NAMESPACED = {k.type: k.namespaced for k in KINDS}


def validate(obj: model.KubeObject, old: model.KubeObject | None = None, *,
             service_cidrs: ServiceCIDRs = ()) -> list[FieldError]:
    """Every validation error of `obj`, each with its Kubernetes field path.

    Args:
        obj: the decoded object, after `core.defaults.apply_defaults`. Its namespace must be
            filled in already (the API server takes it from the URL, the CLI from its context).
        old: the stored object when this is an update; None for a create.
        service_cidrs: when given, a requested `clusterIP` must lie in one of them.

    Returns:
        All errors found, in field order; empty when the object is valid.

    Raises:
        TypeError: `obj` is not a kind clusterip serves, or `old` is of another kind.
    """
    rules = _RULES.get(type(obj))
    if rules is None:
        raise TypeError(f"no validation rules for {type(obj).__name__}")
    if old is not None and type(old) is not type(obj):
        raise TypeError(f"cannot update a {type(old).__name__} to a {type(obj).__name__}")
    ctx = _Context(tuple(service_cidrs))
    errs = _metadata(obj.metadata, rules.name, _NAMESPACED[type(obj)], creating=old is None)
    errs += rules.check(obj, ctx)
    if old is not None:
        errs += _metadata_update(obj.metadata, old.metadata)
        errs += rules.update(obj, old)
    return errs


def require_valid(obj: model.KubeObject, old: model.KubeObject | None = None, *,
                  service_cidrs: ServiceCIDRs = ()) -> None:
    """`validate`, raising the errors as one `Invalid` (HTTP 422, CLI exit 2).

    Raises:
        Invalid: `Service "web" is invalid: spec.ports[0].port: Invalid value: ...`.
    """
    errs = validate(obj, old, service_cidrs=service_cidrs)
    if errs:
        name = obj.metadata.name or obj.metadata.generate_name
        raise Invalid(type(obj).KIND, name, errs)
