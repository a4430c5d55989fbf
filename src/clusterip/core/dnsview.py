"""The cluster DNS zone as data: every name the zone holds, built purely from the objects.

`build_view(services, slices, pods)` turns the cache of Services, EndpointSlices and Pods into a
`DnsView`: a frozen map from lower-cased, absolute owner names
(``"svc1.testns.svc.cluster.local."``) to their records, plus the empty non-terminals and the
pod IP → namespace map that autopath needs.
`core.dnsanswer` answers queries from it; this module knows nothing of messages or wire bytes.

Rules (the Kubernetes DNS-Based Service Discovery spec 1.1.0 where it speaks, CoreDNS where it
is silent; numbers are items of the checklist in cluster-dns.md section 1.4):

* ``dns-version.<zone>`` TXT ``"1.1.0"`` (TTL 28800, as CoreDNS) (#1); the apex holds SOA and
  NS ``ns.dns.<zone>``, whose A/AAAA records are the DNS service IPs (`dns_ips`, the NS glue)
  (#34, #35).
* A ClusterIP Service: ``<svc>.<ns>.svc.<zone>`` A/AAAA for every ClusterIP (``clusterIPs``,
  else ``clusterIP``), also with no endpoints (#2-#7, #27); for each *named* port
  ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV ``0 100 <port> <svc>.<ns>.svc.<zone>.`` (#8, #9);
  on the bare service name one SRV per port, named or not (CoreDNS's extension, #12); and a PTR
  for every ClusterIP (#13, #14). Unnamed ports have no ``_port._proto`` name (#11).
* A headless Service (``clusterIP: None``): its endpoints come from the EndpointSlices labelled
  ``kubernetes.io/service-name: <svc>`` in its namespace (FQDN slices are ignored). An endpoint is
  published when its ``ready`` condition is not false (``nil`` counts as ready; ``serving`` and
  ``terminating`` are ignored, as CoreDNS), or always when the Service sets
  ``publishNotReadyAddresses`` (#15, #22). Each published address gives: A/AAAA on the
  service name; A/AAAA on ``<name>.<svc>.<ns>.svc.<zone>`` where ``<name>`` is the endpoint's
  ``hostname``, else the dashed IP (``10-3-0-2``; IPv6 ``fd00::5`` → ``fd00--5``, a trailing
  ``-`` gets a ``0``) (#17, #18); a PTR to that name (#20); and for every port of its slice an
  SRV ``0 <w> <port> <name>...`` under ``_<port>._<proto>`` (named ports) and on the bare name
  (all ports), where ``w = floor(100/N)`` for the N records of that owner (#19). A headless
  Service with no published endpoint has no name at all: NXDOMAIN (#21).
* An ExternalName Service: ``<svc>.<ns>.svc.<zone>`` CNAME ``<externalName>.`` (#24); nothing
  below it exists (#26).
* A Pod that is not finished (phase neither Succeeded nor Failed): ``<dashed-ip>.<ns>.pod.<zone>``
  A/AAAA for each of its IPs (#32). This is CoreDNS's ``pods insecure`` name, restricted to pods
  that exist (``pods verified``); `DnsView.pod_key` also accepts the other spellings CoreDNS
  parses (``fd00-0-0-0-0-0-0-5``).
* Names that exist without records (empty non-terminals, NODATA rather than NXDOMAIN, #30):
  ``svc.<zone>``, ``pod.<zone>``, ``dns.<zone>``, and ``<ns>.svc.<zone>`` and ``<ns>.pod.<zone>``
  for every namespace that has a Service or a Pod. Nothing else is an empty non-terminal: CoreDNS
  answers NXDOMAIN for ``_tcp.<svc>.<ns>.svc.<zone>`` (#10), and so do we.
* Reverse names (``in-addr.arpa.``/``ip6.arpa.``) exist only for the IPs above; the answerer
  forwards every other reverse name upstream (kubeadm's ``fallthrough in-addr.arpa ip6.arpa``).

`pod_namespaces` maps each pod IP to its pod's namespace, for autopath. Host-network pods share
their node's IP and are left out, as is any IP that two live pods in different namespaces claim
(a reused IP before the old pod's deletion arrives): a wrong namespace would answer with another
namespace's service, so an ambiguous client simply gets no autopath.

Names that cannot be DNS names (a label over 63 bytes or with characters outside
``[a-z0-9_-]``, a name over 253 characters, an unparsable IP) are skipped, never raised: the view
is built from whatever the API holds, and one bad object must not take the zone down.

Records are kept as plain values (address strings, target names, `Srv`/`Soa` tuples), not
dnspython objects: building the view for 10,000 services must be cheap (the shell rebuilds it on
every change), and the answerer turns the few names that are asked into RRsets lazily.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from clusterip.core import model as m

__all__ = [
    "AAAA",
    "CNAME",
    "DNS_VERSION_TTL",
    "NS",
    "PTR",
    "REVERSE_ZONES",
    "SCHEMA_VERSION",
    "SOA",
    "SRV",
    "TXT",
    "A",
    "DnsView",
    "Node",
    "Soa",
    "Srv",
    "Value",
    "build_view",
    "canonical_ip",
    "dashed",
    "reverse_name",
]

# Record types by number (dnspython's values; spelled out so the view needs no dnspython).
A = 1
NS = 2
CNAME = 5
SOA = 6
PTR = 12
TXT = 16
AAAA = 28
SRV = 33

SCHEMA_VERSION = "1.1.0"
DNS_VERSION_TTL = 28800  # CoreDNS hard-codes it; the spec's example uses it too
REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")
LABEL_SERVICE_NAME = "kubernetes.io/service-name"

# SOA timers, as CoreDNS (plugin/backend_lookup.go): refresh 7200, retry 1800, expire 86400.
_REFRESH, _RETRY, _EXPIRE = 7200, 1800, 86400
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})
_LABEL = re.compile(r"[a-z0-9_-]{1,63}\Z")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}\Z")
_MAX_NAME = 254  # text of an absolute name, trailing dot included (253 + 1)


class Srv(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str  # absolute, lower-cased


class Soa(NamedTuple):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


# NamedTuple's generated __new__ is Python code; tuple's own is not (the view makes 10,000s).
_new_srv = tuple.__new__

Value = str | Srv | Soa
"""One record's data: an address (A/AAAA), an absolute name (CNAME/PTR/NS), a text (TXT), or a
`Srv`/`Soa`."""

Node = Mapping[int, Sequence[Value]]
"""The records of one owner name, by record type; every sequence is non-empty and holds each
value once."""

@dataclass(frozen=True, slots=True, eq=False)
class DnsView:
    """Everything the cluster zone answers, at one moment. Built by `build_view`; see the module
    docstring for the rules. The mappings are never mutated after construction. Views compare
    (and hash) by identity: comparing two zones record by record is never what a caller wants.

    Attributes:
        zone: the cluster domain, lower-cased and absolute (``"cluster.local."``).
        dns_ips: the DNS service's own addresses (the glue of ``ns.dns.<zone>``).
        synced: False until the informers have listed everything once; the answerer then
            answers SERVFAIL for every name the zone might hold.
        ttl: the TTL of every record (except ``dns-version``), and the negative-caching TTL
            (the SOA's minimum).
        serial: the SOA serial.
        records: owner name → its records.
        empty_nonterminals: names that exist but hold no records.
        pod_namespaces: pod IP (canonical text) → the pod's namespace, for autopath.
    """

    zone: str
    dns_ips: tuple[str, ...]
    synced: bool
    ttl: int
    serial: int
    records: Mapping[str, Node]
    empty_nonterminals: frozenset[str]
    pod_namespaces: Mapping[str, str]

    def exists(self, key: str) -> bool:
        """Whether the (lower-cased, absolute) name exists: it has records or is an empty
        non-terminal."""
        return key in self.records or key in self.empty_nonterminals

    def soa(self, zone: str) -> Soa:
        """The SOA of `zone` (the cluster zone, or one of `REVERSE_ZONES`), as CoreDNS builds it:
        ``ns.dns.<zone>. hostmaster.<zone>. <serial> 7200 1800 86400 <ttl>``."""
        return Soa(f"ns.dns.{zone}", f"hostmaster.{zone}", self.serial,
                   _REFRESH, _RETRY, _EXPIRE, self.ttl)

    def ttl_of(self, key: str, rdtype: int) -> int:
        """The TTL of the `rdtype` records of `key`."""
        if rdtype == TXT and key == f"dns-version.{self.zone}":
            return DNS_VERSION_TTL
        if rdtype == SOA:
            return min(self.ttl, 300)
        return self.ttl

    def pod_key(self, label: str, namespace: str) -> str | None:
        """The record key of the pod name ``<label>.<namespace>.pod.<zone>``, for any spelling of
        the IP CoreDNS accepts (a label with ``--`` or without exactly three dashes is read as
        IPv6), or None when the label is no IP."""
        text = label.replace("-", ":") if "--" in label or label.count("-") != 3 else (
            label.replace("-", "."))
        ip = canonical_ip(text)
        if ip is None:
            return None
        return f"{dashed(ip)}.{namespace}.pod.{self.zone}"

    def pod_namespace(self, client_ip: str) -> str | None:
        """The namespace of the pod whose IP is `client_ip`, or None if it is no (unambiguous)
        pod. An IPv4-mapped IPv6 address (``::ffff:10.244.1.5``, as a dual-stack socket reports
        it) counts as the IPv4 address."""
        ns = self.pod_namespaces.get(client_ip)
        if ns is None and client_ip[:7].lower() == "::ffff:":
            ns = self.pod_namespaces.get(client_ip[7:])
        return ns


def canonical_ip(text: str) -> str | None:
    """The canonical text of an IP address (IPv4 dotted quad without leading zeros; IPv6
    compressed and lower-cased), or None if `text` is none."""
    if _V4.match(text):
        return text
    if ":" not in text or "%" in text:
        return None
    try:
        return str(ipaddress.IPv6Address(text))
    except ValueError:
        return None


def dashed(ip: str) -> str:
    """The dashed form of a canonical IP, as CoreDNS names endpoints and pods: ``10.3.0.2`` →
    ``10-3-0-2``; IPv6 with ``:`` → ``-`` and a ``0`` after a trailing dash (``fd00::5`` →
    ``fd00--5``, ``fd00::`` → ``fd00--0``)."""
    if ":" not in ip:
        return ip.replace(".", "-")
    text = ip.replace(":", "-")
    return text + "0" if text.endswith("-") else text


def reverse_name(ip: str) -> str:
    """The PTR owner of a canonical IP: ``1.0.0.10.in-addr.arpa.``, or the 32 reversed nibbles
    under ``ip6.arpa.``."""
    if ":" not in ip:
        a, b, c, d = ip.split(".")
        return f"{d}.{c}.{b}.{a}.in-addr.arpa."
    return ".".join(reversed(ipaddress.IPv6Address(ip).exploded.replace(":", ""))) + ".ip6.arpa."


def _label(text: str) -> str | None:
    """`text` lower-cased if it is a usable DNS label, else None."""
    text = text.lower()
    return text if _LABEL.match(text) else None


def _normalize_zone(zone: str) -> str:
    zone = zone.strip().lower().rstrip(".")
    if not zone or not all(_LABEL.match(label) for label in zone.split(".")):
        raise ValueError(f"zone: not a DNS name: {zone!r}")
    return zone + "."


def _external_target(name: str) -> str | None:
    """An ExternalName as an absolute, lower-cased name, or None if it is none."""
    name = name.strip().lower().rstrip(".")
    if not name or len(name) > 253:
        return None
    if not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name + "."


class _Builder:
    """Collects records. Values are appended as they come; the callers keep them unique (a
    set per headless service, per pod name), so adding stays O(1)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[int, list[Value]]] = {}
        self.ents: set[str] = set()
        self._labels: dict[str, str | None] = {}

    def label(self, text: str) -> str | None:
        """`_label`, remembered: protocols, port names and namespaces repeat."""
        try:
            return self._labels[text]
        except KeyError:
            result = self._labels[text] = _label(text)
            return result

    def add(self, key: str, rdtype: int, value: Value) -> None:
        if len(key) > _MAX_NAME:
            return
        node = self.records.get(key)
        if node is None:
            self.records[key] = {rdtype: [value]}
            return
        values = node.get(rdtype)
        if values is None:
            node[rdtype] = [value]
        else:
            values.append(value)

    def add_address(self, key: str, ip: str) -> None:
        self.add(key, AAAA if ":" in ip else A, ip)

    def add_srvs(self, key: str, targets: Iterable[tuple[int, str]]) -> None:
        """SRV records at `key` for (port, target) pairs, each once, weight floor(100/N)."""
        unique = [pair for pair in dict.fromkeys(targets) if len(pair[1]) <= _MAX_NAME]
        if unique and len(key) <= _MAX_NAME:
            weight = 100 // len(unique)
            self.records.setdefault(key, {})[SRV] = [
                _new_srv(Srv, (0, weight, port, target)) for port, target in unique]


def _cluster_ip_service(b: _Builder, spec: m.ServiceSpec, svc_key: str) -> None:
    ips = [ip for ip in dict.fromkeys(
        canonical_ip(text) for text in spec.cluster_ips or (spec.cluster_ip,)) if ip]
    if not ips:
        return  # no ClusterIP allocated yet (or "None"): the name does not exist until it is
    for ip in ips:
        b.add_address(svc_key, ip)
        b.add(reverse_name(ip), PTR, svc_key)
    records = b.records
    numbers: list[int] = []
    for p in spec.ports:
        number = p.port
        if not 0 < number < 65536:
            continue
        numbers.append(number)
        if p.name:
            name, proto = b.label(p.name), b.label(p.protocol or "TCP")
            owner = f"_{name}._{proto}.{svc_key}"
            if name is not None and proto is not None and len(owner) <= _MAX_NAME:
                records[owner] = {SRV: [_new_srv(Srv, (0, 100, number, svc_key))]}
    if numbers:
        numbers = list(dict.fromkeys(numbers))
        weight = 100 // len(numbers)
        records[svc_key][SRV] = [_new_srv(Srv, (0, weight, n, svc_key)) for n in numbers]


def _headless_service(
    b: _Builder, service: m.Service, svc_key: str, slices: Sequence[m.EndpointSlice]
) -> None:
    publish_all = service.spec.publish_not_ready_addresses
    named: dict[str, list[tuple[int, str]]] = {}
    bare: list[tuple[int, str]] = []
    seen: set[tuple[str, str]] = set()
    for sl in sorted(slices, key=lambda s: s.metadata.name):
        if sl.address_type not in ("IPv4", "IPv6"):
            continue
        ports: list[tuple[int, str | None]] = []
        for p in sl.ports:
            if p.port is None or not 0 < p.port < 65536:
                continue
            name = b.label(p.name) if p.name else None
            proto = b.label(p.protocol or "TCP")
            ports.append((p.port, f"_{name}._{proto}.{svc_key}" if name and proto else None))
        for endpoint in sl.endpoints:
            if not publish_all and endpoint.conditions.ready is False:
                continue
            host = b.label(endpoint.hostname) if endpoint.hostname else None
            for text in endpoint.addresses:
                ip = canonical_ip(text)
                if ip is None:
                    continue
                target = f"{host or dashed(ip)}.{svc_key}"
                if (ip, target) in seen:
                    continue
                seen.add((ip, target))
                b.add_address(svc_key, ip)
                b.add_address(target, ip)
                b.add(reverse_name(ip), PTR, target)
                for port, owner in ports:
                    bare.append((port, target))
                    if owner is not None:
                        named.setdefault(owner, []).append((port, target))
    if svc_key not in b.records:
        return  # nothing published: the name does not exist (spec 2.4.1), nor its SRV names
    node = b.records[svc_key]
    for rdtype in (A, AAAA):  # one IP with two names (a hostname and ...) is one address record
        if rdtype in node:
            node[rdtype] = list(dict.fromkeys(node[rdtype]))
    for owner, targets in named.items():
        b.add_srvs(owner, targets)
    b.add_srvs(svc_key, bare)


def build_view(
    services: Iterable[m.Service],
    slices: Iterable[m.EndpointSlice],
    pods: Iterable[m.Pod],
    *,
    zone: str = "cluster.local",
    dns_ips: Sequence[str] = ("10.96.0.10",),
    synced: bool = True,
    ttl: int = 5,
    serial: int = 1,
) -> DnsView:
    """Build the zone's view from the current Services, EndpointSlices and Pods.

    Args:
        services, slices, pods: everything the informers hold (all namespaces).
        zone: the cluster domain.
        dns_ips: the DNS service's addresses: the glue of the apex NS ``ns.dns.<zone>``.
        synced: False until the informers have synced; the answerer then answers SERVFAIL.
        ttl: the TTL of the records and of negative answers (0-2147483647; CoreDNS's default 5).
        serial: the SOA serial.

    Returns:
        The frozen view. See the module docstring for what it holds.

    Raises:
        ValueError: `zone` is no DNS name, a `dns_ips` entry is no IP, or `ttl`/`serial` is out
            of range. The objects themselves never make it raise.
    """
    zone = _normalize_zone(zone)
    if not 0 <= ttl <= 0x7FFFFFFF:
        raise ValueError(f"ttl: must be between 0 and 2147483647 (got {ttl})")
    if not 0 <= serial <= 0xFFFFFFFF:
        raise ValueError(f"serial: must be between 0 and 4294967295 (got {serial})")
    ns_ips: list[str] = []
    for text in dns_ips:
        ip = canonical_ip(text)
        if ip is None:
            raise ValueError(f"dns_ips: not an IP address: {text!r}")
        ns_ips.append(ip)
    b = _Builder()

    # The apex and the fixed names.
    b.add(zone, SOA, Soa(f"ns.dns.{zone}", f"hostmaster.{zone}", serial,
                         _REFRESH, _RETRY, _EXPIRE, ttl))
    b.add(zone, NS, f"ns.dns.{zone}")
    for ip in dict.fromkeys(ns_ips):
        b.add_address(f"ns.dns.{zone}", ip)
    b.add(f"dns-version.{zone}", TXT, SCHEMA_VERSION)
    b.ents.update((f"svc.{zone}", f"pod.{zone}", f"dns.{zone}"))
    namespaces: set[str] = set()

    by_service: dict[tuple[str, str], list[m.EndpointSlice]] = {}
    for sl in slices:
        labels = sl.metadata.labels
        name = labels.get(LABEL_SERVICE_NAME) if labels else None
        if name:
            by_service.setdefault((sl.metadata.namespace, name), []).append(sl)

    label = b.label
    for service in services:
        meta, spec = service.metadata, service.spec
        name, ns = _label(meta.name), label(meta.namespace)
        if name is None or ns is None:
            continue
        namespaces.add(ns)
        svc_key = f"{name}.{ns}.svc.{zone}"
        if spec.type == "ExternalName":
            target = _external_target(spec.external_name)
            if target is not None:
                b.add(svc_key, CNAME, target)
        elif spec.cluster_ip == "None":
            found = by_service.get((meta.namespace, meta.name), [])
            _headless_service(b, service, svc_key, found)
        else:
            _cluster_ip_service(b, spec, svc_key)

    pod_namespaces: dict[str, str] = {}
    ambiguous: set[str] = set()
    pod_names: set[str] = set()
    for pod in pods:
        ns = label(pod.metadata.namespace)
        if ns is None or pod.status.phase in _FINISHED_PHASES:
            continue
        namespaces.add(ns)
        texts = [p.ip for p in pod.status.pod_ips] or [pod.status.pod_ip]
        for text in texts:
            ip = canonical_ip(text) if text else None
            if ip is None:
                continue
            key = f"{dashed(ip)}.{ns}.pod.{zone}"
            if key not in pod_names:
                pod_names.add(key)
                b.add_address(key, ip)
            if pod.spec.host_network:
                continue
            if pod_namespaces.setdefault(ip, ns) != ns:
                ambiguous.add(ip)
    for ip in ambiguous:
        del pod_namespaces[ip]

    for ns in namespaces:
        b.ents.add(f"{ns}.svc.{zone}")
        b.ents.add(f"{ns}.pod.{zone}")
    records = b.records
    return DnsView(
        zone=zone,
        dns_ips=tuple(ns_ips),
        synced=synced,
        ttl=ttl,
        serial=serial,
        records=records,
        empty_nonterminals=frozenset(key for key in b.ents if key not in records),
        pod_namespaces=pod_namespaces,
    )
