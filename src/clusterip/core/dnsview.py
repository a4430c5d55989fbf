"""The cluster DNS zone as data: every name the zone holds, built purely from the objects.

A `DnsView` is a frozen map from lower-cased, absolute owner names
(``"svc1.testns.svc.cluster.local."``) to their records, plus the empty non-terminals and the
pod IP → namespace map that autopath needs. A `ZoneBuilder` is told every change of the
Services, EndpointSlices and Pods and makes the view of the moment, at a cost proportional to
the changes (see "How views are made" below); `build_view(services, slices, pods)` is a new
builder given everything at once. `core.dnsanswer` answers queries from a view; this module
knows nothing of messages or wire bytes.

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
* A name that several objects give records (the PTR of an IP two services publish, the name of
  an IP two pods of one namespace share) holds the records of all of them, each value once, in
  the order of the objects' keys (``namespace/name``), whatever the order
  they were seen in. Should two SRV sets meet (two Services whose names differ only in case),
  the weights are ``floor(100/N)`` for the N records of the merged set.

`pod_namespaces` maps each pod IP to its pod's namespace, for autopath. Host-network pods share
their node's IP and are left out, as is any IP that two live pods in different namespaces claim
(a reused IP before the old pod's deletion arrives): a wrong namespace would answer with another
namespace's service, so an ambiguous client simply gets no autopath.

Names that cannot be DNS names (a label over 63 bytes or with characters outside
``[a-z0-9_-]``, a name over 253 characters, an unparsable IP) are skipped, never raised: the view
is built from whatever the API holds, and one bad object must not take the zone down.

Records are kept as plain values (address strings, target names, `Srv`/`Soa` tuples), not
dnspython objects: building the view for 10,000 services must be cheap, and the answerer turns
the few names that are asked into RRsets lazily.

How views are made. The builder keeps, per object, the *fragment* it contributes: its records
(for a Service computed from the Service and, when headless, its EndpointSlices; for a Pod its
pod names), the namespace it makes exist, and the pod IPs it claims for autopath. Beside them:
which owners give records to each name (a sorted tuple, nearly always of one), a count per
namespace, and the namespaces claiming each pod IP. A `set_*` call only stores the object and
marks its owner (for a slice: the Service it labels, before and after) stale. `view()`
recomputes the stale fragments, compares each with its previous one, and so learns the few names,
namespaces and IPs whose contributions changed; a name with one owner takes that owner's node as
it is, a name with several gets them merged (`_merge`). The changed names are applied to the last
view's mapping without touching it: each mapping is a shared base dict plus a small top dict of
changes (`_Layered`), folded into a new base (one copy of the whole) only when the top outgrows
1/32 of the base. A change at 10,000 services (or 100,000 pods) thus costs a fraction of a
millisecond plus the work of its own records, and every view handed out stays as it was, so
the server may answer from one while the next is made. The SOA serial is the fragment of the
fixed names (`_FIXED`), which is renewed when the serial changes.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

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
    "ZoneBuilder",
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
    """Everything the cluster zone answers, at one moment. Made by `ZoneBuilder.view` (or
    `build_view`); see the module docstring for the rules. The mappings are never mutated
    after construction. Views compare (and hash) by identity: comparing two zones record by
    record is never what a caller wants.

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


class _Records:
    """Collects the records of one fragment. Values are appended as they come; the callers keep
    them unique (a set per headless service), so adding stays O(1)."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: dict[str, dict[int, list[Value]]] = {}

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


# `_label`, remembered: protocols, port names, namespaces and hostnames repeat (object names
# do not, and use `_label` itself). Bounded: the builder lives as long as the server.
_cached_label = functools.lru_cache(maxsize=4096)(_label)


def _cluster_ip_service(b: _Records, spec: m.ServiceSpec, svc_key: str) -> None:
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
            name, proto = _cached_label(p.name), _cached_label(p.protocol or "TCP")
            owner = f"_{name}._{proto}.{svc_key}"
            if name is not None and proto is not None and len(owner) <= _MAX_NAME:
                records[owner] = {SRV: [_new_srv(Srv, (0, 100, number, svc_key))]}
    if numbers:
        numbers = list(dict.fromkeys(numbers))
        weight = 100 // len(numbers)
        records[svc_key][SRV] = [_new_srv(Srv, (0, weight, n, svc_key)) for n in numbers]


def _headless_service(
    b: _Records, service: m.Service, svc_key: str, slices: Iterable[m.EndpointSlice]
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
            name = _cached_label(p.name) if p.name else None
            proto = _cached_label(p.protocol or "TCP")
            ports.append((p.port, f"_{name}._{proto}.{svc_key}" if name and proto else None))
        for endpoint in sl.endpoints:
            if not publish_all and endpoint.conditions.ready is False:
                continue
            host = _cached_label(endpoint.hostname) if endpoint.hostname else None
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


V = TypeVar("V")
_ABSENT = object()


class _Layered(Mapping[str, V]):
    """An immutable mapping held as a base dict and the changes on top of it (key → the new
    value, or None: removed). Views share the base; each gets its own (small) top, so making
    the next costs the changes, not the size (`_patched`)."""

    __slots__ = ("_base", "_len", "_top")

    def __init__(self, base: dict[str, V], top: dict[str, V | None], length: int) -> None:
        self._base, self._top, self._len = base, top, length

    def get(self, key: str, default: Any = None) -> Any:
        value = self._top.get(key, _ABSENT)
        if value is _ABSENT:
            return self._base.get(key, default)
        return default if value is None else value

    def __getitem__(self, key: str) -> V:
        value: V | None = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        top = self._top
        yield from (key for key in self._base if key not in top)
        yield from (key for key, value in top.items() if value is not None)

    def __len__(self) -> int:
        return self._len


_EMPTY: _Layered[Any] = _Layered({}, {}, 0)
# A top bigger than this (or than 1/_FOLD_RATIO of the base) is folded into a new base: one
# copy of the whole mapping every few thousand changes, instead of one per view.
_FOLD_MIN, _FOLD_RATIO = 1024, 32


def _patched(previous: _Layered[V], changes: Mapping[str, V | None]) -> _Layered[V]:
    """`previous` with `changes` applied (None: remove the key), as a new mapping; `previous`
    stays as it was."""
    if not changes:
        return previous
    base = previous._base
    if len(previous._top) + len(changes) > max(_FOLD_MIN, len(base) // _FOLD_RATIO):
        base = base.copy()  # not dict(base): that is slow once the base lost keys
        for layer in (previous._top, changes):
            for key, value in layer.items():
                if value is None:
                    base.pop(key, None)
                else:
                    base[key] = value
        return _Layered(base, {}, len(base))
    top = previous._top.copy()
    for key, value in changes.items():
        if value is None and key not in base:
            top.pop(key, None)
        else:
            top[key] = value  # None: removed from the base
    length = len(base) + sum((value is not None) - (key in base) for key, value in top.items())
    return _Layered(base, top, length)


class _Fragment(NamedTuple):
    """What one object (or the fixed names) puts into the zone."""

    records: Mapping[str, Node]
    namespace: str | None  # makes <ns>.svc.<zone> and <ns>.pod.<zone> exist
    claims: tuple[tuple[str, str], ...] = ()  # (pod IP, namespace) pairs, for autopath


Owner = str
"""Who contributes a fragment: `_POD` or `_SERVICE` followed by the object's key, or `_FIXED`.
Owners sort as strings, which is the order of the values of a name several of them share."""

_FIXED: Owner = ""
_NOTHING = _Fragment({}, None)  # the fragment of an owner that has none
_new_fragment = tuple.__new__  # as `_new_srv`
_POD = "pod:"
_SERVICE = "svc:"


def _merge(nodes: Iterable[Node]) -> Node:
    """The records of a name that several owners give records (in owner order): each value
    once, in the order they come; SRV weights recomputed as floor(100/N) for the N merged."""
    merged: dict[int, list[Value]] = {}
    for node in nodes:
        for rdtype, values in node.items():
            merged.setdefault(rdtype, []).extend(values)
    for rdtype, values in merged.items():
        if rdtype == SRV:
            pairs = dict.fromkeys((v.port, v.target) for v in values if isinstance(v, Srv))
            merged[rdtype] = [_new_srv(Srv, (0, 100 // len(pairs), port, target))
                              for port, target in pairs]
        else:
            merged[rdtype] = list(dict.fromkeys(values))
    return merged


class ZoneBuilder:
    """The zone of a changing set of objects: tell it each change, ask it for views.

    `set_service`, `set_slice` and `set_pod` record an object under its key (``namespace/name``,
    as the informers key them; None deletes it); `view()` returns the `DnsView` of everything
    recorded so far. A view is never changed afterwards, so it may be in use (answering) while
    the next one is made. The work of `view()` is proportional to the changes since the last
    one (see the module docstring). A builder is not thread-safe; after a call raised, its
    state is undefined: use a new one.

    Args:
        zone: the cluster domain.
        dns_ips: the DNS service's addresses: the glue of the apex NS ``ns.dns.<zone>``.
        ttl: the TTL of the records and of negative answers (0-2147483647; CoreDNS's default 5).

    Raises:
        ValueError: `zone` is no DNS name, a `dns_ips` entry is no IP, or `ttl` is out of range.
    """

    def __init__(
        self,
        *,
        zone: str = "cluster.local",
        dns_ips: Sequence[str] = ("10.96.0.10",),
        ttl: int = 5,
    ) -> None:
        self.zone = _normalize_zone(zone)
        if not 0 <= ttl <= 0x7FFFFFFF:
            raise ValueError(f"ttl: must be between 0 and 2147483647 (got {ttl})")
        self.ttl = ttl
        ns_ips: list[str] = []
        for text in dns_ips:
            ip = canonical_ip(text)
            if ip is None:
                raise ValueError(f"dns_ips: not an IP address: {text!r}")
            ns_ips.append(ip)
        self.dns_ips = tuple(ns_ips)
        # The objects, and the slices by the key of the service they label.
        self._services: dict[str, m.Service] = {}
        self._slices: dict[str, m.EndpointSlice] = {}
        self._slices_of: dict[str, dict[str, m.EndpointSlice]] = {}
        self._pods: dict[str, m.Pod] = {}
        # Who contributes what: owner → fragment; record key → its owners (sorted); namespace →
        # how many fragments name it; pod IP → the namespaces of the pods that claim it.
        self._fragments: dict[Owner, _Fragment] = {}
        self._owners: dict[str, tuple[Owner, ...]] = {}
        self._namespaces: dict[str, int] = {}
        self._claims: dict[str, list[str]] = {}
        # The keys of the objects to recompute, and what changed since the last view (dicts
        # rather than sets: they keep the order things came in, so memory is read in order).
        self._stale_services: dict[str, None] = {}
        self._stale_pods: dict[str, None] = {}
        self._patch: dict[str, Node | None] = {}  # record key → its new node (one owner)
        self._unresolved: dict[str, None] = {}  # record keys to work out from all their owners
        self._changed_ips: dict[str, None] = {}
        self._namespaces_changed = True
        # The last view's mappings (immutable: the next view is patched on top of them).
        self._serial: int | None = None
        self._records: _Layered[Node] = _EMPTY
        self._ents: frozenset[str] = frozenset()
        self._pod_namespaces: _Layered[str] = _EMPTY

    def set_service(self, key: str, service: m.Service | None) -> None:
        """Record the Service at `key` (``namespace/name``), or its deletion (None)."""
        if service is None:
            self._services.pop(key, None)
        else:
            self._services[key] = service
        self._stale_services[key] = None

    def set_slice(self, key: str, endpoint_slice: m.EndpointSlice | None) -> None:
        """Record the EndpointSlice at `key`, or its deletion (None)."""
        old = self._slices.pop(key, None)
        if old is not None:
            service = _service_of(old)
            if service is not None:
                slices = self._slices_of[service]
                del slices[key]
                if not slices:
                    del self._slices_of[service]
                self._stale_services[service] = None
        if endpoint_slice is not None:
            self._slices[key] = endpoint_slice
            service = _service_of(endpoint_slice)
            if service is not None:
                self._slices_of.setdefault(service, {})[key] = endpoint_slice
                self._stale_services[service] = None

    def set_pod(self, key: str, pod: m.Pod | None) -> None:
        """Record the Pod at `key`, or its deletion (None)."""
        if pod is None:
            self._pods.pop(key, None)
        else:
            self._pods[key] = pod
        self._stale_pods[key] = None

    def view(self, *, synced: bool = True, serial: int = 1) -> DnsView:
        """The view of the objects recorded so far.

        Args:
            synced: False until the informers have synced; the answerer then answers SERVFAIL.
            serial: the SOA serial.

        Raises:
            ValueError: `serial` is out of range.
        """
        if not 0 <= serial <= 0xFFFFFFFF:
            raise ValueError(f"serial: must be between 0 and 4294967295 (got {serial})")
        if serial != self._serial:
            self._put(_FIXED, self._fixed(serial))
            self._serial = serial
        for key in self._stale_services:
            service = self._services.get(key)
            self._put(_SERVICE + key, None if service is None else self._service(service, key))
        for key in self._stale_pods:
            pod = self._pods.get(key)
            self._put(_POD + key, None if pod is None else self._pod(pod))
        self._stale_services, self._stale_pods = {}, {}
        changes: dict[str, Node | None] = self._patch
        owners_of, fragments = self._owners, self._fragments
        for key in self._unresolved:
            owners = owners_of.get(key)
            if owners is None:
                changes[key] = None
            elif len(owners) == 1:
                changes[key] = fragments[owners[0]].records[key]
            else:
                changes[key] = _merge(fragments[owner].records[key] for owner in owners)
        self._records = _patched(self._records, changes)
        self._patch, self._unresolved = {}, {}
        if self._namespaces_changed:
            zone = self.zone
            self._ents = frozenset((
                f"svc.{zone}", f"pod.{zone}", f"dns.{zone}",
                *(f"{ns}.svc.{zone}" for ns in self._namespaces),
                *(f"{ns}.pod.{zone}" for ns in self._namespaces),
            ))
            self._namespaces_changed = False
        if self._changed_ips:
            namespaces: dict[str, str | None] = {}
            for ip in self._changed_ips:
                claims = set(self._claims.get(ip, ()))
                namespaces[ip] = claims.pop() if len(claims) == 1 else None  # 0, or ambiguous
            self._pod_namespaces = _patched(self._pod_namespaces, namespaces)
            self._changed_ips = {}
        return DnsView(
            zone=self.zone,
            dns_ips=self.dns_ips,
            synced=synced,
            ttl=self.ttl,
            serial=serial,
            records=self._records,
            empty_nonterminals=self._ents,
            pod_namespaces=self._pod_namespaces,
        )

    # --- fragments ---------------------------------------------------------------------------

    def _fixed(self, serial: int) -> _Fragment:
        """The apex (SOA, NS), the NS glue and ``dns-version``."""
        zone = self.zone
        b = _Records()
        b.add(zone, SOA, Soa(f"ns.dns.{zone}", f"hostmaster.{zone}", serial,
                             _REFRESH, _RETRY, _EXPIRE, self.ttl))
        b.add(zone, NS, f"ns.dns.{zone}")
        for ip in dict.fromkeys(self.dns_ips):
            b.add_address(f"ns.dns.{zone}", ip)
        b.add(f"dns-version.{zone}", TXT, SCHEMA_VERSION)
        return _Fragment(b.records, None)

    def _service(self, service: m.Service, key: str) -> _Fragment | None:
        meta, spec = service.metadata, service.spec
        name, ns = _label(meta.name), _cached_label(meta.namespace)
        if name is None or ns is None:
            return None
        svc_key = f"{name}.{ns}.svc.{self.zone}"
        b = _Records()
        if len(svc_key) > _MAX_NAME:  # too long for DNS (only under a very long zone)
            return _new_fragment(_Fragment, (b.records, ns, ()))
        if spec.type == "ExternalName":
            target = _external_target(spec.external_name)
            if target is not None:
                b.add(svc_key, CNAME, target)
        elif spec.cluster_ip == "None":
            _headless_service(b, service, svc_key, self._slices_of.get(key, {}).values())
        else:
            _cluster_ip_service(b, spec, svc_key)
        return _new_fragment(_Fragment, (b.records, ns, ()))

    def _pod(self, pod: m.Pod) -> _Fragment | None:
        ns = _cached_label(pod.metadata.namespace)
        status = pod.status
        if ns is None or status.phase in _FINISHED_PHASES:
            return None
        records: dict[str, Node] = {}
        ips: list[str] = []
        for text in [p.ip for p in status.pod_ips] or [status.pod_ip]:
            ip = canonical_ip(text) if text else None
            if ip is None or ip in ips:
                continue
            ips.append(ip)
            key = f"{dashed(ip)}.{ns}.pod.{self.zone}"
            if len(key) <= _MAX_NAME:
                records[key] = {AAAA if ":" in ip else A: [ip]}
        claims = () if pod.spec.host_network else tuple([(ip, ns) for ip in ips])
        return _new_fragment(_Fragment, (records, ns, claims))

    # --- bookkeeping -------------------------------------------------------------------------

    def _put(self, owner: Owner, fragment: _Fragment | None) -> None:
        """Replace the fragment of `owner`, noting the record keys, namespaces and pod IPs
        whose contributions changed."""
        old = self._fragments.pop(owner, _NOTHING)
        new = _NOTHING if fragment is None else fragment
        if fragment is not None:
            self._fragments[owner] = fragment
        owners_of, patch, unresolved = self._owners, self._patch, self._unresolved
        for key in old.records.keys() - new.records.keys() if old.records else ():
            remaining = tuple(o for o in owners_of[key] if o != owner)
            if remaining:
                owners_of[key] = remaining
            else:
                del owners_of[key]
            unresolved[key] = None
        for key, node in new.records.items():
            owners = owners_of.get(key)
            if owners is None:  # a new name
                owners_of[key] = (owner,)
                patch[key] = node
                continue
            if owner not in owners:  # a name others give records too
                owners = tuple(sorted((*owners, owner)))
                owners_of[key] = owners
            elif node == old.records[key]:
                continue
            if len(owners) == 1:
                patch[key] = node
            else:
                unresolved[key] = None
        if old.namespace != new.namespace:
            if old.namespace is not None and _count(self._namespaces, old.namespace, -1):
                self._namespaces_changed = True
            if new.namespace is not None and _count(self._namespaces, new.namespace, +1):
                self._namespaces_changed = True
        if old.claims != new.claims:
            claims_of, changed_ips = self._claims, self._changed_ips
            for ip, ns in old.claims:
                claims = claims_of[ip]
                claims.remove(ns)
                if not claims:
                    del claims_of[ip]
                changed_ips[ip] = None
            for ip, ns in new.claims:
                claims_of.setdefault(ip, []).append(ns)
                changed_ips[ip] = None


def _count(counts: dict[str, int], key: str, delta: int) -> bool:
    """Add `delta` to the count of `key` (dropped at 0); whether `key` came or went."""
    count = counts.get(key, 0) + delta
    if count:
        counts[key] = count
    else:
        del counts[key]
    return count in (0, delta)  # 0: the last one went; delta: the first one came


def _service_of(endpoint_slice: m.EndpointSlice) -> str | None:
    """The key of the Service an EndpointSlice belongs to (its ``kubernetes.io/service-name``
    label, in its namespace), or None."""
    labels = endpoint_slice.metadata.labels
    name = labels.get(LABEL_SERVICE_NAME) if labels else None
    return f"{endpoint_slice.metadata.namespace}/{name}" if name else None


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
    """Build the zone's view from the current Services, EndpointSlices and Pods, at once: a new
    `ZoneBuilder` given every object.

    Args:
        services, slices, pods: everything the informers hold (all namespaces); an object is
            known by its ``namespace/name`` (a later one of the same name replaces an earlier).
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
    builder = ZoneBuilder(zone=zone, dns_ips=dns_ips, ttl=ttl)
    for service in services:
        builder.set_service(_key(service), service)
    for endpoint_slice in slices:
        builder.set_slice(_key(endpoint_slice), endpoint_slice)
    for pod in pods:
        builder.set_pod(_key(pod), pod)
    return builder.view(synced=synced, serial=serial)


def _key(obj: m.KubeObject) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"
