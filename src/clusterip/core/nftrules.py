"""The nftables proxy mode's rules: the service map as nftables objects, their text, a tracer.

`render(ports, config)` turns the service map into a `Ruleset`: one `Table` per IP family of
the service CIDRs (``ip clusterip``, ``ip6 clusterip``). `full_sync(ruleset)` writes it as one
``nft -f`` transaction that replaces the tables whether or not they exist; `update(old, new)`
writes only the difference; `trace(ruleset, ...)` follows a connection's first packet through
the rendered objects as the kernel would. Hooks, priorities and the reasons for them are in
``src/clusterip/proxy/README.md``.

How a table works
-----------------
Every table has the same fixed chains (`_CHAINS`) and sets (`_SETS`); what changes with the
services is the contents of the sets and maps, plus a few shared chains and the chains of the
rare ports with session affinity:

* ``service-ips``, a verdict map ``ClusterIP . protocol . port : goto pick-N`` for each port
  with endpoints, where N is the number of endpoints `choose` picked; the chains ``pick-<N>``
  (one per N in use, shared by every port) DNAT with one lookup in ``endpoints-tcp`` or
  ``endpoints-udp``, ``ClusterIP . port . slot : endpoint IP . port``, slot = ``numgen random
  mod N``, slots numbered in the endpoints' sorted order. The kernel loads 10,000 vmap
  elements that jump to ~10 distinct chains in 0.19 s, and the same with a chain per service in
  60 s. One endpoints map per protocol, because nft 1.0.6 cannot add a rule that uses an
  existing map whose ``typeof`` holds ``th dport`` ("conflicting protocols specified"): a new
  ``pick-<N>`` chain could then only come with a full sync.
* A port with ClientIP affinity goes to a chain of its own instead (kube-proxy's shape): per
  endpoint ``ip saddr @affinity-… goto endpoint-…``, then ``numgen random mod N vmap {…}``;
  each endpoint chain refreshes the client in its dynamic set (timeout = the affinity timeout)
  and DNATs. Their names are ``service-``/``endpoint-``/``affinity-`` + the first 8 characters
  of base32(sha256) of the port's (and endpoint's) name + a readable suffix (``:`` of IPv6
  addresses written ``-``), at most 212 characters (nft allows 255).
* ``no-endpoint-services``: ``goto reject-chain`` for a port whose `choose` verdict is reject,
  ``drop`` for drop (`_NO_ENDPOINTS`), looked up by the filter chains before DNAT.
* ``cluster-ips`` (every ClusterIP), ``hairpin`` (``IP . IP`` for every chosen endpoint on this
  node: a pod that reaches its own Service is masqueraded), and from the config
  ``service-cidrs``, ``pod-cidrs`` and ``local-ips`` (addresses the node serves itself, never
  DNATed, rejected or dropped).

Rules are tuples of small frozen parts (`CtState`, `InSet`, `DnatFromMap`, `Verdict`, …). Each
part writes its own nft text (`text(family)`) and knows what it does to a packet
(`apply(packet, contents)`), so the tracer runs exactly the objects the text is made of.

Incremental updates
-------------------
A table keeps what each service port added (`PortRules`, keyed by ``str(ServicePortName)``)
next to the whole contents of the sets. `update(old, new)` compares the ports: one whose
`ServicePort` is the same object in both (the service map tracker keeps unchanged ports) is
skipped at once, so a change costs O(changed ports) plus a dictionary lookup per port. Map
elements belong to exactly one port and are diffed per port; set elements may be shared
(``cluster-ips`` by the ports of one service, ``hairpin`` by services with the same pods), so a
port's removed set element is deleted only when no port of the new table still has it. The
transaction is ordered so that every reference is valid at each step: add new chains; flush
changed and removed chains; delete elements; delete removed chains and changed or removed sets;
add sets; add rules; add elements. All the chains of a changed affinity port are rewritten.
A config change means a full sync.

Rendering is incremental too: `render(ports, config, previous)` renders again only the ports
whose `ServicePort` is not the identical object in the map `previous` was rendered from (kept in
`Ruleset.ports`), reuses the other ports' `PortRules`, and keeps the shared sets and the pick-N
chains by reference counts (`Table.refs`: how many ports hold each element, use each chain), so
an endpoint change at 10,000 services costs a few ms instead of a whole render (200-350 ms).
The result equals a render from scratch; `previous` is not changed (`update` still compares it).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal, Protocol

from clusterip.core.servicemap import Endpoint, ServiceMap, ServicePort, ServicePortName, choose

__all__ = [
    "IPV4",
    "IPV6",
    "Chain",
    "ClearMarkBit",
    "Contents",
    "CtState",
    "CtStatusDnat",
    "DnatFromMap",
    "DnatTo",
    "Family",
    "FibSaddrLocal",
    "Hook",
    "InSet",
    "L4protoIn",
    "MarkBitSet",
    "Masquerade",
    "NumgenVmap",
    "Origin",
    "Packet",
    "Part",
    "PortRules",
    "ProxyConfig",
    "Reject",
    "Rule",
    "Ruleset",
    "SetDecl",
    "SetMarkBit",
    "Table",
    "TraceResult",
    "UpdateSet",
    "Verdict",
    "VmapLookup",
    "full_sync",
    "render",
    "trace",
    "update",
]

# Sets and maps.
SERVICE_IPS: Final = "service-ips"
ENDPOINTS: Final[Mapping[str, str]] = {"tcp": "endpoints-tcp", "udp": "endpoints-udp"}
NO_ENDPOINT_SERVICES: Final = "no-endpoint-services"
CLUSTER_IPS: Final = "cluster-ips"
SERVICE_CIDRS: Final = "service-cidrs"
POD_CIDRS: Final = "pod-cidrs"
LOCAL_IPS: Final = "local-ips"
HAIRPIN: Final = "hairpin"
# Regular chains.
SERVICES: Final = "services"
CLUSTER_IPS_CHECK: Final = "cluster-ips-check"
REJECT_CHAIN: Final = "reject-chain"

MASQUERADE_MARK: Final = 0x4000  # kube-proxy's bit
_MARK_MASK: Final = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """What the rules depend on besides the service map."""

    node: str | None  # this node's name (Local policy, hairpin set)
    service_cidrs: tuple[str, ...] = ("10.96.0.0/12",)
    pod_cidrs: tuple[str, ...] = ("10.244.0.0/16",)
    local_ips: frozenset[str] = frozenset()  # served locally, never DNATed/rejected
    table: str = "clusterip"


@dataclass(frozen=True, slots=True)
class Family:
    """An nftables table family and what its rules call addresses."""

    name: Literal["ip", "ip6"]
    version: Literal[4, 6]
    addr_type: str

    def has(self, address: str) -> bool:
        """Whether `address` (an IP or a CIDR) is of this family."""
        return (":" in address) == (self.version == 6)


IPV4: Final = Family("ip", 4, "ipv4_addr")
IPV6: Final = Family("ip6", 6, "ipv6_addr")
_FAMILIES: Final = (IPV4, IPV6)


# --- values ------------------------------------------------------------------------------------

Atom = str | int
Key = tuple[Atom, ...]  # an element's key: ("10.96.0.1", "tcp", 80), or ("10.96.0.0/12",)

VerdictKind = Literal["accept", "drop", "reject", "return", "jump", "goto"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """An nft verdict, in a rule or a verdict map. ``reject`` is a statement in nft, not a verdict
    (a verdict map cannot hold it: `REJECT_CHAIN` exists for that); the tracer records it as the
    packet's fate like ``drop``."""

    kind: VerdictKind
    chain: str | None = None

    def __str__(self) -> str:
        return f"{self.kind} {self.chain}" if self.chain else self.kind

    def text(self, family: Family) -> str:
        return str(self)

    def apply(self, packet: Packet, contents: Contents) -> Packet:
        return replace(packet, verdict=self)


Value = Key | Verdict  # a map element's value
OrderedSet = Mapping[Key, None]  # keys in the order they were first seen
MapElement = tuple[str, Key, Value]  # (map name, key, value)
SetElement = tuple[str, Key]  # (set name, key)

ACCEPT: Final = Verdict("accept")
DROP: Final = Verdict("drop")
REJECTED: Final = Verdict("reject")

Origin = Literal["pod", "node", "outside"]
Field = Literal["saddr", "daddr", "l4proto", "dport"]
_FIELD_TEXT: Final[Mapping[Field, str]] = {
    "saddr": "{ip} saddr", "daddr": "{ip} daddr", "l4proto": "meta l4proto", "dport": "th dport",
}


def _fields_text(fields: tuple[Field, ...], family: Family) -> str:
    return " . ".join(_FIELD_TEXT[f].format(ip=family.name) for f in fields)


@dataclass(frozen=True, slots=True)
class Packet:
    """The first packet of a new connection, as the tracer follows it. `random` is what
    ``numgen random`` yields (taken modulo N)."""

    origin: Origin
    saddr: str
    l4proto: str
    daddr: str
    dport: int
    random: int = 0
    mark: int = 0
    dnat: bool = False  # ct status dnat
    masquerade: bool = False
    verdict: Verdict | None = None

    def key(self, fields: tuple[Field, ...]) -> Key:
        return tuple(getattr(self, f) for f in fields)


class Contents:
    """The contents of a table's sets and maps, as the tracer sees them (sets with timeouts,
    filled by the packets themselves, are empty)."""

    def __init__(self, table: Table) -> None:
        self._sets = table.set_elements
        self._intervals = {
            d.name: tuple(ipaddress.ip_network(str(k[0])) for k in table.set_elements[d.name])
            for d in table.sets.values() if "interval" in d.flags
        }
        self._maps: dict[str, dict[Key, Value]] = {}
        for rules in table.ports.values():
            for name, key, value in rules.map_elements():
                self._maps.setdefault(name, {})[key] = value

    def contains(self, name: str, key: Key) -> bool:
        networks = self._intervals.get(name)
        if networks is not None:
            address = ipaddress.ip_address(key[0])
            return any(address in n for n in networks)
        return key in self._sets.get(name, {})

    def lookup(self, name: str, key: Key) -> Value | None:
        return self._maps.get(name, {}).get(key)


class Part(Protocol):
    """One expression of a rule: a match, a statement or a verdict. `apply` returns the packet
    (changed by a statement, or with its `verdict` set), or None when a match fails."""

    def text(self, family: Family) -> str: ...

    def apply(self, packet: Packet, contents: Contents) -> Packet | None: ...


# --- matches -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CtState:
    """``ct state new``: the tracer follows first packets, which are always new."""

    state: Literal["new"] = "new"

    def text(self, family: Family) -> str:
        return f"ct state {self.state}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return packet


@dataclass(frozen=True, slots=True)
class CtStatusDnat:
    """``ct status dnat``: the connection was DNATed."""

    def text(self, family: Family) -> str:
        return "ct status dnat"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return packet if packet.dnat else None


@dataclass(frozen=True, slots=True)
class InSet:
    """``ip daddr @set``, ``ip saddr != @set``, ``ip saddr . ip daddr @set``."""

    fields: tuple[Field, ...]
    set: str
    negate: bool = False

    def text(self, family: Family) -> str:
        return f"{_fields_text(self.fields, family)} {'!= ' if self.negate else ''}@{self.set}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        found = contents.contains(self.set, packet.key(self.fields))
        return packet if found != self.negate else None


@dataclass(frozen=True, slots=True)
class FibSaddrLocal:
    """``fib saddr type local``: the source is one of the node's addresses (for the tracer: the
    packet comes from the node)."""

    negate: bool = False

    def text(self, family: Family) -> str:
        return f"fib saddr type {'!= ' if self.negate else ''}local"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return packet if (packet.origin == "node") != self.negate else None


@dataclass(frozen=True, slots=True)
class MarkBitSet:
    """``meta mark & BIT == BIT``."""

    bit: int

    def text(self, family: Family) -> str:
        return f"meta mark & {self.bit:#x} == {self.bit:#x}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return packet if packet.mark & self.bit else None


@dataclass(frozen=True, slots=True)
class L4protoIn:
    """``meta l4proto tcp`` or ``meta l4proto { tcp, udp }``."""

    protocols: tuple[str, ...]

    def text(self, family: Family) -> str:
        if len(self.protocols) == 1:
            return f"meta l4proto {self.protocols[0]}"
        return f"meta l4proto {{ {', '.join(self.protocols)} }}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return packet if packet.l4proto in self.protocols else None


# --- statements --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetMarkBit:
    """``meta mark set meta mark | BIT``."""

    bit: int

    def text(self, family: Family) -> str:
        return f"meta mark set meta mark | {self.bit:#x}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return replace(packet, mark=packet.mark | self.bit)


@dataclass(frozen=True, slots=True)
class ClearMarkBit:
    """``meta mark set meta mark & ~BIT``."""

    bit: int

    def text(self, family: Family) -> str:
        return f"meta mark set meta mark & {_MARK_MASK ^ self.bit:#x}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return replace(packet, mark=packet.mark & ~self.bit)


@dataclass(frozen=True, slots=True)
class Masquerade:
    """``masquerade fully-random`` (terminal, like every NAT statement)."""

    def text(self, family: Family) -> str:
        return "masquerade fully-random"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return replace(packet, masquerade=True, verdict=ACCEPT)


@dataclass(frozen=True, slots=True)
class DnatTo:
    """``dnat to IP:PORT`` (``[IP]:PORT`` for IPv6)."""

    address: str
    port: int

    def text(self, family: Family) -> str:
        address = f"[{self.address}]" if family.version == 6 else self.address
        return f"dnat to {address}:{self.port}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return replace(packet, daddr=self.address, dport=self.port, dnat=True, verdict=ACCEPT)


@dataclass(frozen=True, slots=True)
class DnatFromMap:
    """``dnat ip to ip daddr . tcp dport . numgen random mod N map @endpoints-tcp``: the map's
    value is ``address . port``; no element, no match. (Needs ``meta l4proto tcp`` before it.)"""

    protocol: str
    modulus: int
    map: str

    def text(self, family: Family) -> str:
        return (f"dnat {family.name} to {family.name} daddr . {self.protocol} dport . "
                f"numgen random mod {self.modulus} map @{self.map}")

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        key = (packet.daddr, packet.dport, packet.random % self.modulus)
        target = contents.lookup(self.map, key)
        if not isinstance(target, tuple):
            return None
        address, port = target
        return replace(packet, daddr=str(address), dport=int(port), dnat=True, verdict=ACCEPT)


@dataclass(frozen=True, slots=True)
class UpdateSet:
    """``update @set { ip saddr }``: adds the source, or refreshes its timeout (the tracer keeps
    such sets empty)."""

    set: str
    fields: tuple[Field, ...]

    def text(self, family: Family) -> str:
        return f"update @{self.set} {{ {_fields_text(self.fields, family)} }}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return packet


@dataclass(frozen=True, slots=True)
class Reject:
    """``reject``: a TCP reset or an ICMP port unreachable, and the packet is gone."""

    def text(self, family: Family) -> str:
        return "reject"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return replace(packet, verdict=REJECTED)


# --- verdict lookups ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VmapLookup:
    """``ip daddr . meta l4proto . th dport vmap @map``; no element, no match."""

    fields: tuple[Field, ...]
    map: str

    def text(self, family: Family) -> str:
        return f"{_fields_text(self.fields, family)} vmap @{self.map}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        verdict = contents.lookup(self.map, packet.key(self.fields))
        return replace(packet, verdict=verdict) if isinstance(verdict, Verdict) else None


@dataclass(frozen=True, slots=True)
class NumgenVmap:
    """``numgen random mod N vmap { 0 : goto a, 1 : goto b, … }``, N = len(targets)."""

    targets: tuple[Verdict, ...]

    def text(self, family: Family) -> str:
        slots = ", ".join(f"{i} : {t}" for i, t in enumerate(self.targets))
        return f"numgen random mod {len(self.targets)} vmap {{ {slots} }}"

    def apply(self, packet: Packet, contents: Contents) -> Packet | None:
        return replace(packet, verdict=self.targets[packet.random % len(self.targets)])


# --- rules, chains, sets, tables ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule: its parts in order (matches, then statements, then at most one verdict)."""

    parts: tuple[Part, ...]

    def text(self, family: Family) -> str:
        return " ".join(p.text(family) for p in self.parts)


def _rule(*parts: Part) -> Rule:
    return Rule(parts)


HookName = Literal["prerouting", "input", "forward", "output", "postrouting"]


@dataclass(frozen=True, slots=True)
class Hook:
    """Where a base chain is attached. Priorities are numbers: nft 1.0.6 rejects the names
    (``dstnat``) in some contexts."""

    type: Literal["filter", "nat"]
    hook: HookName
    priority: int


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain and its rules; a base chain has a `hook`."""

    name: str
    rules: tuple[Rule, ...] = ()
    hook: Hook | None = None

    def declaration(self) -> str:
        if self.hook is None:
            return self.name
        h = self.hook
        return f"{self.name} {{ type {h.type} hook {h.hook} priority {h.priority}; }}"


@dataclass(frozen=True, slots=True)
class SetDecl:
    """A set or map declaration. `type` is nft's ``type …`` or ``typeof …`` clause."""

    name: str
    kind: Literal["set", "map"]
    type: str
    flags: tuple[str, ...] = ()
    timeout: int | None = None  # seconds, for sets that forget

    def declaration(self) -> str:
        body = [self.type]
        if self.flags:
            body.append(f"flags {','.join(self.flags)}")
        if self.timeout is not None:
            body.append(f"timeout {self.timeout}s")
        return f"{self.name} {{ {'; '.join(body)}; }}"


@dataclass(frozen=True, slots=True)
class PortRules:
    """What one service port adds to one family's table: its elements, as `map_elements()` and
    `set_elements()` spell them out, and the sets and chains of its own (session affinity).
    Equal `PortRules` give equal rules; `source` (what it was rendered from) is left out of the
    comparison. The fields hold what rendering has anyway (the chosen `Endpoint`s), not element
    tuples: 100,000 endpoints would make 300,000 long-lived tuples, and the garbage collector's
    visits to them doubled the time of `render`."""

    source: ServicePort = field(compare=False)
    vips: tuple[str, ...]  # its ClusterIPs of the table's family
    protocol: str  # "tcp" or "udp"
    port: int
    verdict_map: str  # service-ips, or no-endpoint-services for a port without endpoints
    verdict: Verdict  # ``vip . protocol . port : verdict`` in verdict_map
    slots: tuple[Endpoint, ...] = ()  # ``vip . port . i : slots[i]`` in endpoints-<protocol>
    hairpin: tuple[str, ...] = ()  # this node's endpoint IPs among the chosen
    sets: tuple[SetDecl, ...] = ()  # session affinity only
    chains: tuple[Chain, ...] = ()  # session affinity only

    def map_elements(self) -> Iterator[MapElement]:
        slots = ENDPOINTS[self.protocol]
        for vip in self.vips:
            yield self.verdict_map, (vip, self.protocol, self.port), self.verdict
            for i, e in enumerate(self.slots):
                yield slots, (vip, self.port, i), (e.ip, e.port)

    def set_elements(self) -> Iterator[SetElement]:
        for vip in self.vips:
            yield CLUSTER_IPS, (vip,)
        for ip in self.hairpin:
            yield HAIRPIN, (ip, ip)


@dataclass(frozen=True, slots=True)
class Table:
    """One family's table. `sets` and `chains` are the table's own; each port's own sets and
    chains are in its `PortRules`. `set_elements` is the whole contents of every set that is
    not filled by packets."""

    family: Family
    name: str
    sets: Mapping[str, SetDecl]
    chains: Mapping[str, Chain]
    set_elements: Mapping[str, OrderedSet]
    ports: Mapping[str, PortRules]  # by str(ServicePortName)
    # How many ports hold each element of the shared sets (cluster-ips, hairpin) and use each
    # pick-N chain (under `_PICKS`, keys ``(N,)``): what an incremental `render` needs to know
    # when an element or a chain goes. Not compared: it follows from `ports`.
    refs: Mapping[str, Mapping[Key, int]] = field(default_factory=dict, compare=False,
                                                  repr=False)

    @property
    def ref(self) -> str:
        """``ip clusterip``: how commands name this table."""
        return f"{self.family.name} {self.name}"

    def all_sets(self) -> Iterator[SetDecl]:
        yield from self.sets.values()
        for rules in self.ports.values():
            yield from rules.sets

    def all_chains(self) -> Iterator[Chain]:
        yield from self.chains.values()
        for rules in self.ports.values():
            yield from rules.chains


@dataclass(frozen=True, slots=True)
class Ruleset:
    """The desired state of the proxy's tables: one per family of the service CIDRs."""

    config: ProxyConfig
    tables: tuple[Table, ...]
    # A copy of the service map it was rendered from (an incremental `render` compares its
    # ports by identity: a copy, so that a caller may change its map in place); not compared.
    ports: ServiceMap = field(default_factory=dict, compare=False, repr=False)


# --- the fixed part of every table -------------------------------------------------------------

_SERVICE_KEY: Final[tuple[Field, ...]] = ("daddr", "l4proto", "dport")
_NEW: Final = CtState("new")
_NO_ENDPOINTS_CHECK: Final = _rule(_NEW, VmapLookup(_SERVICE_KEY, NO_ENDPOINT_SERVICES))
_TO_CLUSTER_IPS_CHECK: Final = _rule(_NEW, Verdict("jump", CLUSTER_IPS_CHECK))
_TO_SERVICES: Final = _rule(Verdict("jump", SERVICES))

# Filter chains run 10 before DNAT (-100) and, for locally made packets, 10 after it.
_BEFORE_DNAT: Final = -110
_DNAT: Final = -100
_AFTER_DNAT: Final = -90
_SNAT: Final = 100

_CHAINS: Final[tuple[Chain, ...]] = (
    # Nothing from outside the cluster reaches a service address.
    Chain("filter-prerouting", (
        _rule(_NEW, InSet(("daddr",), SERVICE_CIDRS), InSet(("saddr",), POD_CIDRS, negate=True),
              FibSaddrLocal(negate=True), DROP),
    ), Hook("filter", "prerouting", _BEFORE_DNAT)),
    # A service port without endpoints: refused (or dropped, Local policy), wherever it goes.
    Chain("filter-input", (_NO_ENDPOINTS_CHECK,), Hook("filter", "input", _BEFORE_DNAT)),
    Chain("filter-forward", (_NO_ENDPOINTS_CHECK, _TO_CLUSTER_IPS_CHECK),
          Hook("filter", "forward", _BEFORE_DNAT)),
    Chain("filter-output", (_NO_ENDPOINTS_CHECK,), Hook("filter", "output", _BEFORE_DNAT)),
    Chain("filter-output-post-dnat", (_TO_CLUSTER_IPS_CHECK,),
          Hook("filter", "output", _AFTER_DNAT)),
    Chain("nat-prerouting", (_TO_SERVICES,), Hook("nat", "prerouting", _DNAT)),
    Chain("nat-output", (_TO_SERVICES,), Hook("nat", "output", _DNAT)),
    Chain("nat-postrouting", (
        _rule(MarkBitSet(MASQUERADE_MARK), ClearMarkBit(MASQUERADE_MARK), Masquerade()),
        _rule(CtStatusDnat(), InSet(("saddr", "daddr"), HAIRPIN), Masquerade()),
    ), Hook("nat", "postrouting", _SNAT)),
    Chain(SERVICES, (
        _rule(InSet(("daddr",), CLUSTER_IPS), InSet(("saddr",), POD_CIDRS, negate=True),
              SetMarkBit(MASQUERADE_MARK)),
        _rule(VmapLookup(_SERVICE_KEY, SERVICE_IPS)),
    )),
    # After DNAT: what is still addressed to a service address was not served.
    Chain(CLUSTER_IPS_CHECK, (
        _rule(InSet(("daddr",), CLUSTER_IPS), Reject()),
        _rule(InSet(("daddr",), SERVICE_CIDRS), InSet(("daddr",), LOCAL_IPS, negate=True), DROP),
    )),
    Chain(REJECT_CHAIN, (_rule(Reject()),)),
)

_SERVICE_KEY_TYPE: Final = "type {addr} . inet_proto . inet_service : verdict"
# One map per protocol: nft 1.0.6 cannot add a rule that uses an existing map whose typeof
# value holds ``th dport`` ("conflicting protocols specified: tcp vs. th").
_ENDPOINTS_TYPE: Final = ("typeof {{ip}} daddr . {protocol} dport . numgen random mod 1 : "
                          "{{ip}} daddr . {protocol} dport")
_SETS: Final[tuple[tuple[str, Literal["set", "map"], str, tuple[str, ...]], ...]] = (
    (SERVICE_IPS, "map", _SERVICE_KEY_TYPE, ()),
    (NO_ENDPOINT_SERVICES, "map", _SERVICE_KEY_TYPE, ()),
    (ENDPOINTS["tcp"], "map", _ENDPOINTS_TYPE.format(protocol="tcp"), ()),
    (ENDPOINTS["udp"], "map", _ENDPOINTS_TYPE.format(protocol="udp"), ()),
    (CLUSTER_IPS, "set", "type {addr}", ()),
    (SERVICE_CIDRS, "set", "type {addr}", ("interval",)),
    (POD_CIDRS, "set", "type {addr}", ("interval",)),
    (LOCAL_IPS, "set", "type {addr}", ()),
    (HAIRPIN, "set", "type {addr} . {addr}", ()),
)

# What a port without endpoints gets in no-endpoint-services, by `choose`'s verdict.
_NO_ENDPOINTS: Final[Mapping[str, Verdict]] = {
    "reject": Verdict("goto", REJECT_CHAIN),
    "drop": DROP,
}


@functools.cache
def _pick_chain(n: int) -> Chain:
    return Chain(f"pick-{n}", tuple(
        _rule(L4protoIn((protocol,)), DnatFromMap(protocol, n, name))
        for protocol, name in ENDPOINTS.items()))


# --- render ------------------------------------------------------------------------------------


_PICKS: Final = "pick-"  # in `Table.refs`: how many ports use each pick-N chain


def render(
    ports: ServiceMap,
    config: ProxyConfig,
    previous: Ruleset | None = None,
    changed: Collection[ServicePortName] = (),
) -> Ruleset:
    """The proxy's tables for the service map `ports` (see the module docstring).

    With `previous` (a `render` of the same config), only the ports whose `ServicePort` is not
    the identical object in `previous`'s map, the removed ones and those in `changed` are
    rendered again; the others' `PortRules` are reused and the shared sets and pick-N chains
    are kept by reference counts: O(changed ports) work plus a few C-speed copies and an
    identity scan of the map. The result equals a from-scratch render (`==`: only the order of
    the shared sets' elements may differ). `previous` is not changed."""
    families = tuple(f for f in _FAMILIES if any(f.has(c) for c in config.service_cidrs))
    if (previous is None or previous.config != config
            or not all(t.refs for t in previous.tables)):
        tables = tuple(_render_table(f, ports, config) for f in families)
        return Ruleset(config, tables, dict(ports))
    work = _changed_ports(previous.ports, ports)
    work.update(changed)
    if not work:
        return Ruleset(config, previous.tables, dict(ports))
    return Ruleset(config, tuple(_rerender_table(t, ports, work, config)
                                 for t in previous.tables), dict(ports))


def _changed_ports(before: ServiceMap, after: ServiceMap) -> set[ServicePortName]:
    """The names whose port is not the identical object in `before` and `after` (added,
    changed or removed). `ServicePortName.__hash__` is Python code: at 10,000 ports, looking
    every name up costs more than the rest of an incremental render, so the ports are matched
    by object id (the key objects are usually the same too) and the names looked up only for
    the ports that differ, and for the removed ones only when some were."""
    names_by_id = dict(zip(map(id, before.values()), before.keys(), strict=True))
    work: set[ServicePortName] = set()
    for name, port in after.items():
        found = names_by_id.get(id(port))
        if found is None or (found is not name and found != name):
            work.add(name)
    added = sum(1 for name in work if name not in before)
    if len(before) != len(after) - added:  # some were removed
        work.update(before.keys() - after.keys())
    return work


def _render_table(family: Family, ports: ServiceMap, config: ProxyConfig) -> Table:
    by_port: dict[str, PortRules] = {}
    for name, port in ports.items():
        rules = _render_port(family, port, config)
        if rules is not None:
            by_port[str(name)] = rules
    contents: dict[str, dict[Key, None]] = {
        SERVICE_CIDRS: {(c,): None for c in config.service_cidrs if family.has(c)},
        POD_CIDRS: {(c,): None for c in config.pod_cidrs if family.has(c)},
        LOCAL_IPS: {(a,): None for a in sorted(config.local_ips) if family.has(a)},
        CLUSTER_IPS: {},
        HAIRPIN: {},
    }
    refs: dict[str, dict[Key, int]] = {CLUSTER_IPS: {}, HAIRPIN: {}, _PICKS: {}}
    for rules in by_port.values():
        _count(rules, 1, contents, refs)
    sets = {
        name: SetDecl(name, kind, type_.format(addr=family.addr_type, ip=family.name), flags)
        for name, kind, type_, flags in _SETS
    }
    return Table(family, config.table, sets, _table_chains(refs), contents, by_port, refs)


def _rerender_table(old: Table, ports: ServiceMap, work: Iterable[ServicePortName],
                    config: ProxyConfig) -> Table:
    """`old` with the ports in `work` rendered again (removed if not in `ports`)."""
    by_port = dict(old.ports)
    contents = {name: dict(keys) for name, keys in old.set_elements.items()}
    refs = {name: dict(counts) for name, counts in old.refs.items()}
    for name in work:
        key = str(name)
        port = ports.get(name)
        after = _render_port(old.family, port, config) if port is not None else None
        before = by_port.get(key)
        if after is not None:  # counted up first: an element it keeps keeps its place
            _count(after, 1, contents, refs)
            by_port[key] = after
        elif before is not None:
            del by_port[key]
        if before is not None:
            _count(before, -1, contents, refs)
    return Table(old.family, old.name, old.sets, _table_chains(refs), contents, by_port, refs)


def _count(rules: PortRules, delta: Literal[1, -1], contents: dict[str, dict[Key, None]],
           refs: dict[str, dict[Key, int]]) -> None:
    """Add (1) or take away (-1) what `rules` holds in the shared sets and pick-N chains."""
    for set_name, key in rules.set_elements():
        _refcount(refs[set_name], key, delta, contents[set_name])
    if rules.slots:
        _refcount(refs[_PICKS], (len(rules.slots),), delta, None)


def _refcount(counts: dict[Key, int], key: Key, delta: int,
              elements: dict[Key, None] | None) -> None:
    n = counts.get(key, 0) + delta
    if n:
        counts[key] = n
        if n == 1 and delta == 1 and elements is not None:
            elements[key] = None
    else:
        del counts[key]
        if elements is not None:
            del elements[key]


def _table_chains(refs: Mapping[str, Mapping[Key, int]]) -> dict[str, Chain]:
    chains = {c.name: c for c in _CHAINS}
    picks = sorted(int(k[0]) for k in refs[_PICKS])
    chains.update((c.name, c) for c in map(_pick_chain, picks))
    return chains


def _render_port(family: Family, port: ServicePort, config: ProxyConfig) -> PortRules | None:
    vips = [ip for ip in port.cluster_ips if family.has(ip) and ip not in config.local_ips]
    if not vips:
        return None
    protocol = port.protocol.lower()
    choice = choose(port, config.node, family.version)
    if choice.verdict != "endpoints":
        return PortRules(port, tuple(vips), protocol, port.port, NO_ENDPOINT_SERVICES,
                         _NO_ENDPOINTS[choice.verdict])
    endpoints = choice.endpoints
    node = config.node
    hairpin = tuple([e.ip for e in endpoints if e.node_name is None or e.node_name == node])
    if port.affinity_timeout is not None:
        return _render_affinity(family, port, tuple(vips), hairpin, endpoints)
    return PortRules(port, tuple(vips), protocol, port.port, SERVICE_IPS,
                     _goto_pick(len(endpoints)), endpoints, hairpin)


@functools.cache
def _goto_pick(n: int) -> Verdict:
    return Verdict("goto", f"pick-{n}")


def _render_affinity(
    family: Family,
    port: ServicePort,
    vips: tuple[str, ...],
    hairpin: tuple[str, ...],
    endpoints: tuple[Endpoint, ...],
) -> PortRules:
    """A port with ClientIP affinity: a chain of its own, a chain and a set per endpoint."""
    service_chain = f"service-{_name_base(str(port.name), port.name)}"
    protocol = port.protocol.lower()
    sets: list[SetDecl] = []
    endpoint_chains: list[Chain] = []
    remembered: list[Rule] = []
    for e in endpoints:
        base = _name_base(f"{port.name}__{e.ip}/{e.port}", port.name,
                          f"__{e.ip.replace(':', '-')}-{e.port}")
        client_set, chain = f"affinity-{base}", f"endpoint-{base}"
        sets.append(SetDecl(client_set, "set", f"type {family.addr_type}",
                            ("dynamic", "timeout"), port.affinity_timeout))
        endpoint_chains.append(Chain(chain, (_rule(
            L4protoIn((protocol,)), UpdateSet(client_set, ("saddr",)), DnatTo(e.ip, e.port)),)))
        remembered.append(_rule(InSet(("saddr",), client_set), Verdict("goto", chain)))
    spread = _rule(NumgenVmap(tuple(Verdict("goto", c.name) for c in endpoint_chains)))
    chains = (Chain(service_chain, (*remembered, spread)), *endpoint_chains)
    return PortRules(port, vips, protocol, port.port, SERVICE_IPS,
                     Verdict("goto", service_chain), hairpin=hairpin, sets=tuple(sets),
                     chains=chains)


def _name_base(hashed: str, name: ServicePortName, suffix: str = "") -> str:
    """``HASH8-namespace-name-protocol-portname`` + `suffix`: kube-proxy's stable short hash
    of `hashed` (base32 of sha256), made readable. Namespaces and names are DNS labels (63),
    port names IANA service names (15): with an IPv6 endpoint suffix, 203 characters."""
    digest = base64.b32encode(hashlib.sha256(hashed.encode()).digest()).decode()[:8]
    readable = "-".join(p for p in (name.namespace, name.name, name.protocol.lower(),
                                    name.port_name) if p)
    return f"{digest}-{readable}{suffix}"


# --- text --------------------------------------------------------------------------------------


# ``a . b . c`` by number of parts: %-formatting a tuple is twice as fast as joining it.
_CONCAT: Final = {n: " . ".join(["%s"] * n) for n in range(1, 6)}


def _key_text(key: Key) -> str:
    return _CONCAT[len(key)] % key


def _element_text(key: Key, value: Value | None) -> str:
    if value is None:
        return _CONCAT[len(key)] % key
    if isinstance(value, Verdict):
        return f"{_CONCAT[len(key)] % key} : {value}"
    return f"{_CONCAT[len(key)] % key} : {_CONCAT[len(value)] % value}"


def _elements(command: str, table: Table, name: str, items: list[str]) -> list[str]:
    if not items:
        return []
    return [f"{command} element {table.ref} {name} {{\n\t" + ",\n\t".join(items) + "\n}"]


def _add_set(table: Table, decl: SetDecl) -> str:
    return f"add {decl.kind} {table.ref} {decl.declaration()}"


def _chain_rules(table: Table, chain: Chain) -> Iterator[str]:
    for rule in chain.rules:
        yield f"add rule {table.ref} {chain.name} {rule.text(table.family)}"


def _map_items(ports: Iterable[PortRules]) -> dict[str, list[str]]:
    items: dict[str, list[str]] = {}
    for rules in ports:
        for name, key, value in rules.map_elements():
            found = items.get(name)
            if found is None:
                found = items[name] = []
            found.append(_element_text(key, value))
    return items


def full_sync(new: Ruleset) -> str:
    """One nft transaction that makes the kernel hold exactly `new`, whether or not the tables
    exist (``add table`` then ``delete table``, then everything), and removes the table of a
    family that `new` has none for."""
    lines: list[str] = []
    rendered = {t.family for t in new.tables}
    for family in _FAMILIES:
        if family not in rendered:
            ref = f"{family.name} {new.config.table}"
            lines += [f"add table {ref}", f"delete table {ref}"]
    for table in new.tables:
        lines += [f"add table {table.ref}", f"delete table {table.ref}", f"add table {table.ref}"]
        lines += [_add_set(table, decl) for decl in table.all_sets()]
        chains = list(table.all_chains())
        lines += [f"add chain {table.ref} {c.declaration()}" for c in chains]
        for chain in chains:
            lines += _chain_rules(table, chain)
        for name, keys in table.set_elements.items():
            lines += _elements("add", table, name, list(map(_key_text, keys)))
        for name, items in _map_items(table.ports.values()).items():
            lines += _elements("add", table, name, items)
    return "\n".join(lines) + "\n"


# --- update ------------------------------------------------------------------------------------


@dataclass
class _Diff:
    """One table's changes, gathered before they are written in a safe order."""

    add_chains: dict[str, Chain] = field(default_factory=dict)
    flush_chains: set[str] = field(default_factory=set)
    delete_chains: set[str] = field(default_factory=set)
    rule_chains: dict[str, Chain] = field(default_factory=dict)  # chains whose rules go in
    delete_sets: set[str] = field(default_factory=set)
    add_sets: dict[str, SetDecl] = field(default_factory=dict)
    delete_elements: dict[str, set[Key]] = field(default_factory=dict)
    add_elements: dict[str, dict[Key, Value | None]] = field(default_factory=dict)

    def chains(self, before: Iterable[Chain], after: Iterable[Chain], rewrite_all: bool) -> None:
        old = {c.name: c for c in before}
        new = {c.name: c for c in after}
        for name, chain in new.items():
            previous = old.get(name)
            if previous is None:
                self.add_chains[name] = chain
                self.rule_chains[name] = chain
            elif rewrite_all or previous != chain:
                self.flush_chains.add(name)
                self.rule_chains[name] = chain
        for name in old.keys() - new.keys():
            self.flush_chains.add(name)
            self.delete_chains.add(name)

    def sets(self, before: Iterable[SetDecl], after: Iterable[SetDecl]) -> None:
        old = {d.name: d for d in before}
        new = {d.name: d for d in after}
        for name, decl in new.items():
            if old.get(name) != decl:
                if name in old:
                    self.delete_sets.add(name)
                self.add_sets[name] = decl
        self.delete_sets.update(old.keys() - new.keys())

    def port(self, before: PortRules | None, after: PortRules | None, old: Table,
             new: Table) -> None:
        old_maps = set(before.map_elements()) if before else set()
        new_maps = set(after.map_elements()) if after else set()
        for name, key, _ in old_maps - new_maps:
            self.delete_elements.setdefault(name, set()).add(key)
        for name, key, value in new_maps - old_maps:
            self.add_elements.setdefault(name, {})[key] = value
        old_sets = set(before.set_elements()) if before else set()
        new_sets = set(after.set_elements()) if after else set()
        for name, key in old_sets - new_sets:
            if key not in new.set_elements[name]:  # no other port keeps it
                self.delete_elements.setdefault(name, set()).add(key)
        for name, key in new_sets - old_sets:
            if key not in old.set_elements[name]:  # no other port had it
                self.add_elements.setdefault(name, {})[key] = None
        self.sets(before.sets if before else (), after.sets if after else ())
        self.chains(before.chains if before else (), after.chains if after else (),
                    rewrite_all=True)

    def text(self, table: Table) -> list[str]:
        ref = table.ref
        lines = [f"add chain {ref} {c.declaration()}" for c in self.add_chains.values()]
        lines += [f"flush chain {ref} {name}" for name in sorted(self.flush_chains)]
        for name, keys in sorted(self.delete_elements.items()):
            lines += _elements("delete", table, name, sorted(map(_key_text, keys)))
        lines += [f"delete chain {ref} {name}" for name in sorted(self.delete_chains)]
        lines += [f"delete {_kind(table, name)} {ref} {name}" for name in sorted(self.delete_sets)]
        lines += [_add_set(table, decl) for decl in self.add_sets.values()]
        for chain in self.rule_chains.values():
            lines += _chain_rules(table, chain)
        for name, values in sorted(self.add_elements.items()):
            lines += _elements("add", table, name, sorted(
                _element_text(k, v) for k, v in values.items()))
        return lines


def _kind(table: Table, name: str) -> str:
    decl = table.sets.get(name)
    return decl.kind if decl is not None else "set"  # a port's own: affinity sets


def update(old: Ruleset, new: Ruleset) -> str:
    """The nft transaction that turns `old` (what the kernel holds) into `new`: element adds
    and deletes, and the chains and sets that were added, changed or removed; "" when nothing
    changed. A change of config is a `full_sync`."""
    if old.config != new.config:  # the families and every fixed part go with it
        return full_sync(new)
    lines: list[str] = []
    for before, after in zip(old.tables, new.tables, strict=True):
        lines += _table_update(before, after)
    return "\n".join(lines) + "\n" if lines else ""


def _table_update(old: Table, new: Table) -> list[str]:
    diff = _Diff()
    diff.sets(old.sets.values(), new.sets.values())
    diff.chains(old.chains.values(), new.chains.values(), rewrite_all=False)
    for key, after in new.ports.items():
        before = old.ports.get(key)
        if before is None or (before.source is not after.source and before != after):
            diff.port(before, after, old, new)
    for key, before in old.ports.items():
        if key not in new.ports:
            diff.port(before, None, old, new)
    return diff.text(new)


# --- trace -------------------------------------------------------------------------------------

TraceKind = Literal["endpoint", "reject", "drop", "accept"]


@dataclass(frozen=True, slots=True)
class TraceResult:
    """Where a new connection's first packet ends: at an endpoint (DNATed, maybe masqueraded),
    refused, dropped, or accepted untouched (not a service, or served by the node itself)."""

    kind: TraceKind
    endpoint: tuple[str, int] | None = None
    masquerade: bool = False


# The hooks a packet passes by where it comes from; "route" is the routing decision after
# prerouting: delivered to the node (input) or forwarded (forward, then postrouting).
_PATHS: Final[Mapping[Origin, tuple[str, ...]]] = {
    "pod": ("prerouting", "route"),
    "outside": ("prerouting", "route"),
    "node": ("output", "postrouting"),
}
_ROUTES: Final[Mapping[bool, tuple[HookName, ...]]] = {
    True: ("input",),
    False: ("forward", "postrouting"),
}
_FINAL: Final[Mapping[str, TraceKind]] = {"drop": "drop", "reject": "reject"}


def trace(
    ruleset: Ruleset,
    src: str,
    protocol: str,
    dst: str,
    dport: int,
    *,
    origin: Origin = "pod",
    choice: int = 0,
) -> TraceResult:
    """Follow the first packet of a new connection from `origin` through the rendered chains,
    as the kernel would; `choice` is what every ``numgen random`` yields (modulo N), so that
    tests can enumerate the slots. Sets filled by packets (affinity) are empty."""
    src, dst = str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst))
    table = next((t for t in ruleset.tables if t.family.has(dst)), None)
    if table is None:
        return TraceResult("accept")
    contents = Contents(table)
    chains = {c.name: c for c in table.all_chains()}
    packet = Packet(origin, src, protocol.lower(), dst, dport, random=choice)
    hooks = list(_PATHS[origin])
    while hooks:
        hook = hooks.pop(0)
        if hook == "route":
            hooks[:0] = _ROUTES[packet.daddr in ruleset.config.local_ips]
            continue
        for chain in sorted((c for c in chains.values() if c.hook and c.hook.hook == hook),
                            key=lambda c: c.hook.priority if c.hook else 0):
            packet = _run(chain, packet, chains, contents)
            if packet.verdict is not None and packet.verdict.kind in _FINAL:
                return TraceResult(_FINAL[packet.verdict.kind])
            packet = replace(packet, verdict=None)
    if packet.dnat:
        return TraceResult("endpoint", (packet.daddr, packet.dport), packet.masquerade)
    return TraceResult("accept", masquerade=packet.masquerade)


def _run(chain: Chain, packet: Packet, chains: Mapping[str, Chain],
         contents: Contents) -> Packet:
    """The packet after `chain`: with a verdict that ends it (accept, drop, reject), or none
    (it fell through or returned)."""
    for rule in chain.rules:
        after = _apply(rule, packet, contents)
        if after is None:
            continue  # no match
        packet = after
        verdict = packet.verdict
        if verdict is None:
            continue
        if verdict.kind == "return":
            return replace(packet, verdict=None)
        if verdict.chain is None:
            return packet
        called = _run(chains[verdict.chain], replace(packet, verdict=None), chains, contents)
        if verdict.kind == "goto" or called.verdict is not None:
            return called
        packet = called
    return packet


def _apply(rule: Rule, packet: Packet, contents: Contents) -> Packet | None:
    """The packet after `rule`'s parts, up to the first verdict; None if a match fails."""
    for part in rule.parts:
        after = part.apply(packet, contents)
        if after is None:
            return None
        packet = after
        if packet.verdict is not None:
            break
    return packet
