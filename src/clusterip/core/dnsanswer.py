"""The cluster DNS, pure: query bytes in, reply bytes (or a decision to ask upstream) out.

The asyncio shell (`clusterip.dnsserver`) owns the sockets; everything it answers comes from here::

    view = build_view(services, slices, pods, zone="cluster.local")  # core.dnsview
    responder = Responder(view)   # one per view; the shell swaps it when the view changes
    result = responder.respond(wire, transport="udp", client_ip="10.244.1.5")
    Answer(wire)  → send `wire` as it is
    Forward(...)  → send `forward.query` upstream, then
                    `finish(forward, reply_or_None, transport=...)` gives the reply
    None          → drop the packet silently

What `respond` decides, in order (numbers are items of the checklist in cluster-dns.md 1.4):

1. Fewer than 12 bytes (no header), or QR set (a response: answering it could start a loop
   between two servers): None.
2. An opcode other than QUERY: NOTIMP. A message dnspython cannot parse: FORMERR. Both echo
   the ID, the opcode, RD and the question when the question alone can be read. A QDCOUNT
   other than 1: FORMERR. EDNS version above 0: BADVERS (RFC 6891).
3. A class other than IN: REFUSED. AXFR/IXFR: REFUSED (#37). OPT, TSIG, TKEY, MAILA, MAILB as
   the question's type: NOTIMP.
4. A name in the cluster zone, or a reverse name (``in-addr.arpa``/``ip6.arpa``) of a cluster IP:
   answered here from the `DnsView`, authoritatively (AA=1), SERVFAIL instead while the view is
   not synced (#41; reverse names of any kind then, since we cannot yet tell whose they are).
   The name exists with that type: its records (SRV and NS bring the A/AAAA of their targets
   in Additional). It exists without it: NODATA. It does not exist: NXDOMAIN. Both negative
   answers carry the zone's SOA in Authority, whose minimum is the negative TTL (#5, #28-#31).
   An ExternalName's CNAME is followed for every type but CNAME and ANY: inside the zone here,
   outside by asking upstream (#24, #25), at most 8 hops (a loop: SERVFAIL).
5. Every other name, and reverse names that are no cluster IP (kubeadm's ``fallthrough``): a
   `Forward` (#39, #40). `finish` turns the upstream's reply into the client's: the client's ID
   and question, the CNAME chain from step 4 in front of the upstream's answer, TC passed on,
   RA=1, no AA, and the client's size limit; SERVFAIL when the upstream failed.
6. Autopath (CoreDNS's ``autopath @kubernetes``, cluster-dns.md 2.2), server-side search:
   a pod in namespace ``ns`` has the search list ``ns.svc.<zone> svc.<zone> <zone>``, so with
   ndots:5 its first try for ``web`` or ``www.example.com`` is ``X.ns.svc.<zone>``. When
   - `client_ip` is the IP of a known pod (`DnsView.pod_namespace`),
   - the query's name is ``X.<ns>.svc.<zone>`` with ``<ns>`` that pod's namespace, and
   - that name does not exist (NXDOMAIN with no CNAME before it),
   the server walks the rest of the search list for the client: ``X.svc.<zone>``, then
   ``X.<zone>`` (in the zone), then ``X.`` itself (outside the zone: upstream). The first that
   is not NXDOMAIN is the answer, behind a ``CNAME <query name> → <found name>`` record, so one
   query does what took the client up to four (eight with AAAA). For ``X.`` the `Forward`
   carries that CNAME and a fallback: if upstream answers anything but NOERROR, or fails, the
   client gets the plain NXDOMAIN it would have had without autopath and walks its search list
   itself (CoreDNS passes an upstream SERVFAIL on instead; we prefer the client's own retry).
   Any other client, a pod asking under another namespace, or a name that exists: no autopath.
   Search domains beyond ``<zone>`` (the node's own) are not tried, as CoreDNS when its
   resolv.conf has none.

Sizes (cluster-dns.md 4.5): over UDP the limit is 512 bytes without EDNS and the client's
payload (at least 512, at most 1232) with it; over TCP 65535. The reply carries an OPT (payload
1232, DO echoed) only if the query had one. A reply over its limit is cut at an RRset boundary
by dnspython's ``prefer_truncation``: Additional records are dropped silently, anything before
them sets TC, and the question always stays (#43, #44). The first names of every answer are
compression pointers to the question at offset 12, so the owner names echo the query's letter
case (0x20, #38).

The fast path (cluster-dns.md 6.4). Parsing and rendering with dnspython costs ~100-300 µs,
so answers are rendered once and then spliced. The first *plain* query (QR=0, opcode QUERY,
QDCOUNT=1, ANCOUNT=NSCOUNT=0, and either nothing after the question or exactly one OPT of
version 0 without options; see `_plain_question_end`) for a name goes the slow way (dnspython
from_wire, build, to_wire). Unless the result is a Forward, the reply is stored under
``wire[4:].lower()`` (the counts, the lower-cased question and the OPT: so the EDNS payload
and the DO bit are part of the key, and a key has exactly one reply per transport) in that
transport's table, split into header bytes 2-12 (with RD clear and with RD set), the
question's end, and the sections after the question. A later query with the same key gets
``its own ID + stored flags (with its RD) + counts + its own question bytes + stored
sections`` with no parsing at all: byte for byte what the slow path builds, because the
question's length and label structure do not depend on letter case and every compression
pointer into it stays valid. An NXDOMAIN under ``<ns>.svc.<zone>`` remembers ``<ns>``; a pod
of that namespace is answered from a second table that holds what autopath found (or the slow
path runs autopath and fills it). Each table is bounded (`cache_size` keys, cleared when
full) and belongs to one `Responder`, that is one view: a changed view is a new Responder, so
nothing is ever stale. Queries that are not plain (an EDNS cookie, as dig sends), and the few
whose type or OPT bytes hold an ASCII letter (type HTTPS is 0x0041, "A"; payload 1400 is
0x0578, "x"), are always answered the slow way.

Big answers: dnspython needs ~50 µs per record to build and render. An RRset that cannot fit
the reply's limit is never built (`Responder._records`; the reply is the same bytes), so a UDP
answer costs a few ms at most whatever the service's size. A TCP answer that does fit 64 KiB is
built in full once per view: ~60 ms for a 1,000-endpoint headless service on the machine
measured.

Nothing here does I/O, reads clocks or draws random numbers: the forwarded query keeps the
client's ID (the shell's forwarder replaces it with a random one) and the SOA serial comes
from the view.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from clusterip.core.dnsview import (
    AAAA,
    CNAME,
    NS,
    PTR,
    REVERSE_ZONES,
    SOA,
    SRV,
    TXT,
    A,
    DnsView,
    Node,
    Soa,
    Srv,
    Value,
    build_view,
)

__all__ = [
    "EDNS_PAYLOAD",
    "Answer",
    "DnsView",
    "Forward",
    "Responder",
    "Transport",
    "build_view",
    "finish",
]

Transport = Literal["udp", "tcp"]

EDNS_PAYLOAD = 1232  # our UDP ceiling and the payload we advertise (DNS Flag Day 2020)
_UDP_PLAIN = 512
_TCP_MAX = 65535
_MAX_CHAIN = 8  # CNAME hops followed inside the zone

_QR = 0x8000
_OPCODE = 0x7800
_AA = 0x0400
_TC = 0x0200
_RD = 0x0100
_RA = 0x0080
_DO = 0x8000  # in the OPT's flags

_IN = dns.rdataclass.IN
_ANY = dns.rdatatype.ANY
_REFUSED_TYPES = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})
_NOTIMP_TYPES = frozenset({dns.rdatatype.OPT, dns.rdatatype.TSIG, dns.rdatatype.TKEY,
                           dns.rdatatype.MAILA, dns.rdatatype.MAILB})
_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00"  # QDCOUNT=1, ANCOUNT=0, NSCOUNT=0, ARCOUNT<256
_OPT_HEAD = b"\x00\x00\x29"  # root owner, type OPT


@dataclass(frozen=True, slots=True)
class Answer:
    """A reply to send as it is (over TCP, the shell adds the 2-byte length)."""

    wire: bytes


# Building an Answer through its slot skips the frozen dataclass's __init__ (~0.3 µs of the
# ~1 µs fast path); the object is the same.
_new_object = object.__new__
_set_answer_wire = Answer.__dict__["wire"].__set__


@dataclass(frozen=True, eq=False)
class Forward:
    """Ask upstream: send `query` (RD set, EDNS payload 1232, the client's ID), then call
    `finish` with the reply bytes, or None if there was none.

    Attributes:
        query: what to send upstream.
        original: the client's query (its ID, question, EDNS and size limit shape the reply).
        prefix: records to put before the upstream's answer: the CNAME chain of an
            ExternalName, or autopath's CNAME.
        fallback: for autopath, the reply to give when the upstream answers anything but
            NOERROR or fails (the NXDOMAIN the client would have had without autopath).
    """

    query: dns.message.Message
    original: dns.message.Message
    prefix: tuple[dns.rrset.RRset, ...] = ()
    fallback: dns.message.Message | None = None


@dataclass(slots=True)
class _Reply:
    """A decision answered here: rcode, AA, and the three sections."""

    rcode: int
    aa: bool
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    autopath: bool = False  # the answer autopath found for a pod of the name's namespace
    autopath_ns: str | None = None  # NXDOMAIN of X.<ns>.svc.<zone>: <ns>
    truncated: bool = False  # an answer RRset was left out because it cannot fit: TC


@dataclass(slots=True)
class _Upstream:
    """A decision to ask upstream for `name`, with `prefix` before its answer."""

    name: dns.name.Name
    prefix: list[dns.rrset.RRset]
    fallback: _Reply | None = None


class _Entry(NamedTuple):
    """A stored reply: its header bytes 2-12 with RD clear and with RD set, where the question
    ends (in the query and in the reply alike), the sections after the question, and the
    autopath namespace of an NXDOMAIN under ``<ns>.svc.<zone>``."""

    head0: bytes
    head1: bytes
    qend: int
    body: bytes
    autopath_ns: str | None


def _plain_question_end(wire: bytes) -> int | None:
    """Where the question of a *plain* query ends, or None if the query is not plain.

    Plain: QR=0, opcode QUERY, QDCOUNT=1, ANCOUNT=NSCOUNT=0; a question name of labels with no
    zero byte inside them; then either nothing (ARCOUNT=0) or exactly one OPT (ARCOUNT=1) of
    version 0 with no options; and no ASCII letter in any byte after the name. The fast path
    keys on ``wire[4:].lower()``: the last rule keeps two queries that differ only in the case
    of a type, class or OPT byte (type 65 is "A", type 97 is "a") from sharing a key, since a
    stored key never has a letter there, and a query with one never matches it.
    """
    if len(wire) < 17 or wire[2] & 0xF8 or wire[4:11] != _ONE_QUESTION:
        return None
    end = wire.find(0, 12)
    qend = end + 5
    if wire[11] == 0:
        if len(wire) != qend:
            return None
    elif (wire[11] != 1 or len(wire) != qend + 11 or wire[qend:qend + 3] != _OPT_HEAD
          or wire[qend + 6] != 0 or wire[qend + 9:qend + 11] != b"\x00\x00"):
        return None
    tail = wire[end:]
    if tail.lower() != tail.upper():
        return None
    return qend


def _limit(query: dns.message.Message, transport: Transport) -> int:
    """The largest reply `query` may get over `transport` (cluster-dns.md 4.5)."""
    if transport == "tcp":
        return _TCP_MAX
    if query.edns < 0:
        return _UDP_PLAIN
    return min(max(query.payload, _UDP_PLAIN), EDNS_PAYLOAD)


def _skeleton(query: dns.message.Message) -> dns.message.Message:
    """A reply to `query` with no content: its ID, opcode, RD and question, RA=1, and an OPT
    (payload 1232, DO echoed) only if the query had one."""
    reply = dns.message.make_response(
        query, recursion_available=True, our_payload=EDNS_PAYLOAD, pad=0
    )
    if query.edns >= 0:
        reply.ednsflags = query.ednsflags & _DO
    return reply


def _error_reply(wire: bytes, rcode: int) -> bytes:
    """A header-only reply with `rcode` (plus the question, if it alone parses): for
    messages that cannot be answered properly."""
    qid, flags = struct.unpack_from("!HH", wire)
    question: list[dns.rrset.RRset] = []
    try:
        parsed = dns.message.from_wire(wire, question_only=True)
        if len(parsed.question) == 1:
            question = parsed.question
    except Exception:  # anything dnspython raises on bad input: no question then
        pass
    reply = dns.message.Message(id=qid)
    reply.flags = _QR | (flags & (_OPCODE | _RD)) | _RA
    reply.set_rcode(dns.rcode.Rcode(rcode))
    reply.question = question
    return reply.to_wire()


def _render(message: dns.message.Message, limit: int) -> bytes:
    # want_shuffle=False: dnspython shuffles the records of each RRset with the global RNG by
    # default; the core stays deterministic (and the fast path equal to the slow one).
    return message.to_wire(max_size=limit, prefer_truncation=True, want_shuffle=False)


# dnspython's record classes are untyped; these names give their constructors a type.
_RdataClass = Callable[..., dns.rdata.Rdata]
_SRV: _RdataClass = dns.rdtypes.IN.SRV.SRV
_SOA: _RdataClass = dns.rdtypes.ANY.SOA.SOA
_A: _RdataClass = dns.rdtypes.IN.A.A
_AAAA: _RdataClass = dns.rdtypes.IN.AAAA.AAAA
_PTR: _RdataClass = dns.rdtypes.ANY.PTR.PTR
_CNAME: _RdataClass = dns.rdtypes.ANY.CNAME.CNAME
_NS: _RdataClass = dns.rdtypes.ANY.NS.NS
_TXT: _RdataClass = dns.rdtypes.ANY.TXT.TXT


def _rdata(rdtype: int, value: Value) -> dns.rdata.Rdata:
    if isinstance(value, Srv):
        return _SRV(_IN, dns.rdatatype.SRV, value.priority, value.weight, value.port,
                    dns.name.from_text(value.target))
    if isinstance(value, Soa):
        return _SOA(
            _IN, dns.rdatatype.SOA, dns.name.from_text(value.mname),
            dns.name.from_text(value.rname), value.serial, value.refresh, value.retry,
            value.expire, value.minimum)
    if rdtype == A:
        return _A(_IN, dns.rdatatype.A, value)
    if rdtype == AAAA:
        return _AAAA(_IN, dns.rdatatype.AAAA, value)
    if rdtype == PTR:
        return _PTR(_IN, dns.rdatatype.PTR, dns.name.from_text(value))
    if rdtype == CNAME:
        return _CNAME(_IN, dns.rdatatype.CNAME, dns.name.from_text(value))
    if rdtype == NS:
        return _NS(_IN, dns.rdatatype.NS, dns.name.from_text(value))
    if rdtype == TXT:
        return _TXT(_IN, dns.rdatatype.TXT, [value.encode()])
    raise AssertionError(f"no rdata for type {rdtype}")  # the view holds no other type


def _rrset(owner: dns.name.Name, rdtype: int, ttl: int, values: Sequence[Value]
           ) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, ttl, [_rdata(rdtype, v) for v in values])


def _floor(rdtype: int, values: Sequence[Value]) -> int:
    """A lower bound of the wire size of an RRset: each record at least a 2-byte owner
    (a compression pointer), 10 fixed bytes and its RDATA, where a compressible target name
    (CNAME, PTR, NS) may itself be a 2-byte pointer and an SRV target never is (RFC 2782)."""
    if rdtype == A:
        return 16 * len(values)
    if rdtype == AAAA:
        return 28 * len(values)
    total = 0
    for value in values:
        if isinstance(value, Srv):
            total += 12 + 6 + len(value.target) + 1
        elif rdtype == TXT:
            total += 12 + 1 + len(value)
        else:
            total += 12 + 2
    return total


def _cname(owner: dns.name.Name, target: dns.name.Name, ttl: int) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(owner, ttl, [_CNAME(_IN, dns.rdatatype.CNAME, target)])


class Responder:
    """Answers queries from one `DnsView`; see the module docstring.

    Args:
        view: the zone to answer from.
        cache_size: how many precomputed replies to keep (the cache is cleared when full);
            0 turns the fast path off, so every query goes through dnspython.
    """

    def __init__(self, view: DnsView, *, cache_size: int = 100_000) -> None:
        self.view = view
        self._udp: dict[bytes, _Entry] = {}
        self._tcp: dict[bytes, _Entry] = {}
        self._udp_autopath: dict[bytes, _Entry] = {}  # answers for a pod of <ns>, when the
        self._tcp_autopath: dict[bytes, _Entry] = {}  # plain entry has autopath_ns == <ns>
        self._cache_size = cache_size
        self._zone = dns.name.from_text(view.zone)
        self._svc = dns.name.from_text(f"svc.{view.zone}")
        self._zones = ((view.zone, self._zone),
                       *((z, dns.name.from_text(z)) for z in REVERSE_ZONES))
        self._soa: dict[str, dns.rrset.RRset] = {}

    @property
    def cached(self) -> int:
        """How many replies the fast path holds (UDP and TCP, plain and autopath)."""
        return (len(self._udp) + len(self._tcp) + len(self._udp_autopath)
                + len(self._tcp_autopath))

    def respond(
        self, wire: bytes, *, transport: Transport, client_ip: str | None = None
    ) -> Answer | Forward | None:
        """The reply to one query.

        Args:
            wire: the query as received (over TCP, without its length prefix).
            transport: what it came over; decides the size limit.
            client_ip: the source address, for autopath (None: no autopath).

        Returns:
            `Answer` to send, `Forward` to ask upstream, or None to drop (no header, or a
            response). Never raises on any input.
        """
        if len(wire) > 16 and not wire[2] & 0xF8:
            key = wire[4:].lower()
            udp = transport == "udp"
            entry = (self._udp if udp else self._tcp).get(key)
            if entry is not None:
                autopath_ns = entry[4]
                if (autopath_ns is not None and client_ip is not None
                        and self.view.pod_namespace(client_ip) == autopath_ns):
                    entry = (self._udp_autopath if udp else self._tcp_autopath).get(key)
                if entry is not None:
                    head0, head1, qend, body, _ = entry
                    answer = _new_object(Answer)
                    _set_answer_wire(answer, wire[:2] + (head1 if wire[2] & 1 else head0)
                                     + wire[12:qend] + body)
                    return answer
        return self._slow(wire, transport, client_ip)

    # --- the slow path ------------------------------------------------------------------------

    def _slow(self, wire: bytes, transport: Transport, client_ip: str | None
              ) -> Answer | Forward | None:
        if len(wire) < 12:
            return None
        flags = (wire[2] << 8) | wire[3]
        if flags & _QR:
            return None
        if flags & _OPCODE:
            return Answer(_error_reply(wire, dns.rcode.NOTIMP))
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # every way dnspython rejects bytes: the message cannot be read
            return Answer(_error_reply(wire, dns.rcode.FORMERR))
        if len(query.question) != 1:
            return Answer(_error_reply(wire, dns.rcode.FORMERR))
        limit = _limit(query, transport)
        decision = self._decide(query, client_ip, limit)
        if isinstance(decision, _Upstream):
            return self._forward(query, decision)
        out = _render(self._message(query, decision), limit)
        if self._cache_size > 0:
            qend = _plain_question_end(wire)
            if qend is not None and query.question[0].name.to_wire() == wire[12:qend - 4]:
                self._store(transport, decision.autopath, wire[4:].lower(), qend, out,
                            decision.autopath_ns)
        return Answer(out)

    def _store(self, transport: Transport, autopath: bool, key: bytes, qend: int, out: bytes,
               autopath_ns: str | None) -> None:
        if transport == "udp":
            cache = self._udp_autopath if autopath else self._udp
        else:
            cache = self._tcp_autopath if autopath else self._tcp
        if len(cache) >= self._cache_size:
            cache.clear()
        rest = out[3:12]
        cache[key] = _Entry(bytes((out[2] & 0xFE,)) + rest, bytes((out[2] | 0x01,)) + rest,
                            qend, out[qend:], autopath_ns)

    def _message(self, query: dns.message.Message, decision: _Reply) -> dns.message.Message:
        reply = _skeleton(query)
        if decision.aa:
            reply.flags |= _AA
        if decision.truncated:
            reply.flags |= _TC
        reply.set_rcode(dns.rcode.Rcode(decision.rcode))
        reply.answer = decision.answer
        reply.authority = decision.authority
        reply.additional = decision.additional
        return reply

    def _forward(self, query: dns.message.Message, up: _Upstream) -> Forward:
        question = query.question[0]
        upstream_query = dns.message.make_query(
            up.name, question.rdtype, question.rdclass, use_edns=0, payload=EDNS_PAYLOAD,
            id=query.id)
        fallback = self._message(query, up.fallback) if up.fallback is not None else None
        return Forward(query=upstream_query, original=query, prefix=tuple(up.prefix),
                       fallback=fallback)

    def _decide(self, query: dns.message.Message, client_ip: str | None, limit: int
                ) -> _Reply | _Upstream:
        if query.edns > 0:
            return _Reply(dns.rcode.BADVERS, False)
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        if question.rdclass != _IN or qtype in _REFUSED_TYPES:
            return _Reply(dns.rcode.REFUSED, False)
        if qtype in _NOTIMP_TYPES:
            return _Reply(dns.rcode.NOTIMP, False)
        result = self._resolve(qname, qtype, limit)
        if (isinstance(result, _Reply) and result.rcode == dns.rcode.NXDOMAIN
                and not result.answer):
            namespace = self._search_namespace(qname)
            if namespace is not None:
                result.autopath_ns = namespace
                if client_ip is not None and self.view.pod_namespace(client_ip) == namespace:
                    return self._autopath(qname, qtype, limit, result)
        return result

    # --- resolution inside the zone -----------------------------------------------------------

    def _zone_of(self, name: dns.name.Name) -> str | None:
        for text, zone in self._zones:
            if name.is_subdomain(zone):
                return text
        return None

    def _soa_rrset(self, zone: str) -> dns.rrset.RRset:
        rrset = self._soa.get(zone)
        if rrset is None:
            rrset = _rrset(dns.name.from_text(zone), SOA, self.view.ttl_of(zone, SOA),
                           [self.view.soa(zone)])
            self._soa[zone] = rrset
        return rrset

    def _node(self, key: str, zone: str) -> Node | None:
        records = self.view.records
        node = records.get(key)
        suffix = f".pod.{zone}"
        if node is None and key.endswith(suffix):
            labels = key[: -len(suffix)].split(".")
            if len(labels) == 2:
                pod_key = self.view.pod_key(labels[0], labels[1])
                node = records.get(pod_key) if pod_key is not None else None
        return node

    def _resolve(self, qname: dns.name.Name, qtype: int, limit: int) -> _Reply | _Upstream:
        view = self.view
        chain: list[dns.rrset.RRset] = []
        name = qname
        for _ in range(_MAX_CHAIN):
            zone = self._zone_of(name)
            if zone is None:
                return _Upstream(name, chain)
            if not view.synced:
                return _Reply(dns.rcode.SERVFAIL, False)
            key = name.to_text().lower()
            node = self._node(key, zone)
            if node is None:
                if zone != view.zone:
                    return _Upstream(name, chain)  # a reverse name that is not ours
                rcode = dns.rcode.NOERROR if view.exists(key) else dns.rcode.NXDOMAIN
                return _Reply(rcode, True, chain, [self._soa_rrset(zone)])
            targets = node.get(CNAME)
            if targets is not None and qtype not in (CNAME, _ANY):
                chain.append(_rrset(name, CNAME, view.ttl_of(key, CNAME), targets))
                name = dns.name.from_text(str(targets[0]))
                continue
            answer, additional, truncated = self._records(name, key, node, qtype, limit)
            if not answer and not truncated:
                return _Reply(dns.rcode.NOERROR, True, chain, [self._soa_rrset(zone)])
            return _Reply(dns.rcode.NOERROR, True, chain + answer, [], additional,
                          truncated=truncated)
        return _Reply(dns.rcode.SERVFAIL, False)  # an ExternalName loop

    def _records(self, owner: dns.name.Name, key: str, node: Node, qtype: int, limit: int
                 ) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset], bool]:
        """The answer and Additional RRsets of `qtype` at a node, and whether an answer RRset
        was left out because it cannot fit in `limit` bytes.

        Building and rendering a record with dnspython costs ~50 µs, so a 10,000-endpoint
        headless service would take half a second to answer, only for dnspython to drop the
        RRset as too big. `_floor` gives a lower bound of each record's size: an answer RRset
        whose bound exceeds `limit` is left out and TC set, and Additional RRsets stop once the
        bound of everything so far exceeds it. Either way the reply is byte for byte what
        dnspython would render from everything (it stops at the first RRset that does not fit,
        and sets TC unless that RRset is in Additional), at the cost of the records that fit.
        """
        view = self.view
        types = list(node) if qtype == _ANY else [qtype] if qtype in node else []
        answer: list[dns.rrset.RRset] = []
        total = 0
        for t in types:
            values = node[t]
            size = _floor(t, values)
            if size > limit:
                return answer, [], True
            total += size
            answer.append(_rrset(owner, t, view.ttl_of(key, t), values))
        additional: list[dns.rrset.RRset] = []
        seen: set[str] = set()
        for t in types:
            if t not in (SRV, NS):
                continue
            for value in node[t]:
                target = value.target if isinstance(value, Srv) else str(value)
                target_node = view.records.get(target)
                if target in seen or target_node is None:
                    continue
                seen.add(target)
                target_name = dns.name.from_text(target)
                for address_type in (A, AAAA):
                    addresses = target_node.get(address_type)
                    if addresses is None:
                        continue
                    if total > limit:
                        return answer, additional, False  # dnspython would stop before here
                    total += _floor(address_type, addresses)
                    additional.append(_rrset(target_name, address_type,
                                             view.ttl_of(target, address_type), addresses))
        return answer, additional, False

    # --- autopath -----------------------------------------------------------------------------

    def _search_namespace(self, qname: dns.name.Name) -> str | None:
        """``<ns>`` if `qname` is ``X.<ns>.svc.<zone>`` (X at least one label), else None."""
        if not qname.is_subdomain(self._svc):
            return None
        depth = len(qname.labels) - len(self._svc.labels)
        if depth < 2:
            return None
        return qname.labels[-len(self._svc.labels) - 1].decode("ascii", "replace").lower()

    def _autopath(self, qname: dns.name.Name, qtype: int, limit: int, original: _Reply
                  ) -> _Reply | _Upstream:
        base = dns.name.Name(qname.labels[: len(qname.labels) - len(self._svc.labels) - 1])
        for suffix in (self._svc, self._zone, dns.name.root):
            candidate = base.concatenate(suffix)
            result = self._resolve(candidate, qtype, limit)
            if isinstance(result, _Upstream):
                cname = _cname(qname, candidate, self.view.ttl)
                return _Upstream(result.name, [cname, *result.prefix], fallback=original)
            if result.rcode != dns.rcode.NXDOMAIN:
                result.answer.insert(0, _cname(qname, candidate, self.view.ttl))
                result.autopath = True
                return result
        return original


def finish(forward: Forward, upstream: bytes | None, *, transport: Transport) -> bytes:
    """The client's reply to a forwarded query, from the upstream's reply.

    Args:
        forward: what `Responder.respond` returned.
        upstream: the upstream's reply bytes, or None when it failed or timed out.
        transport: what the client's query came over (decides the size limit).

    Returns:
        The reply to send: the upstream's rcode and sections with the client's ID and question,
        `forward.prefix` in front of the answer, TC if the upstream set it, RA=1, AA=0, cut to
        the client's limit. SERVFAIL if `upstream` is None, unparsable, not a response, or for
        another question. For autopath (`forward.fallback`), the fallback instead of any
        upstream rcode but NOERROR and instead of SERVFAIL. Never raises.
    """
    original = forward.original
    limit = _limit(original, transport)
    reply = _upstream_reply(forward.query, upstream)
    if reply is not None and forward.fallback is not None and reply.rcode() != dns.rcode.NOERROR:
        reply = None
    if reply is None:
        if forward.fallback is not None:
            return _render(forward.fallback, limit)
        return _servfail(original, limit)
    message = _skeleton(original)
    rcode = reply.rcode()
    if rcode > 15 and original.edns < 0:
        rcode = dns.rcode.SERVFAIL  # an extended rcode cannot reach a client without EDNS
    message.set_rcode(rcode)
    message.answer = [*forward.prefix, *reply.answer]
    message.authority = list(reply.authority)
    message.additional = list(reply.additional)
    if reply.flags & _TC:
        message.flags |= _TC
    try:
        return _render(message, limit)
    except Exception:  # upstream data dnspython cannot render back (it parsed, so rare)
        return _servfail(original, limit)


def _upstream_reply(query: dns.message.Message, upstream: bytes | None
                    ) -> dns.message.Message | None:
    """The upstream's reply if it is a usable response to `query`, else None."""
    if upstream is None:
        return None
    try:
        reply = dns.message.from_wire(upstream)
    except Exception:  # every way dnspython rejects bytes
        return None
    if not reply.flags & _QR or len(reply.question) != 1:
        return None
    asked, got = query.question[0], reply.question[0]
    if (got.name != asked.name or got.rdtype != asked.rdtype
            or got.rdclass != asked.rdclass):
        return None
    return reply


def _servfail(query: dns.message.Message, limit: int) -> bytes:
    message = _skeleton(query)
    message.set_rcode(dns.rcode.SERVFAIL)
    return _render(message, limit)
