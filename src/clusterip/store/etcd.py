"""The distributed store: `store.api.Store` on etcd v3, spoken through etcd's JSON gateway.

Theory of operation
===================

etcd serves its gRPC API also as JSON over HTTP (the grpc-gateway, `POST /v3/...` on the client
port), so aiohttp is the whole client: no gRPC, no protobuf. Every key of the store lives under a
key prefix of its own (`/clusterip` by default): store key `k` is etcd key `prefix + k`, and a
store prefix `p` is the etcd key range [`prefix + p`, `prefix + p` with its last byte
incremented). Choose a prefix that is not the beginning of another one (`/clusterip` and
`/clusterip2` would see each other's keys in `list("")`). resourceVersion is etcd's revision,
which is already store-wide and strictly increasing; failed transactions take none.

| store operation                  | etcd request                                              |
|----------------------------------|-----------------------------------------------------------|
| `get(key)`                       | range key                                                 |
| `list(prefix)`                   | range [start, end) in pages of `list_page`, the pages     |
|                                  | after the first at the first one's revision (a snapshot)  |
| `revision()`                     | range (count only): the header revision                   |
| `create(key, value, lease=)`     | txn: create_revision(key) == 0 ? put : (nothing)          |
| `update(key, value)`             | txn: version(key) > 0 ? put (ignore_lease) : range key    |
| `update(key, value, expected)`   | txn: version > 0 and mod_revision == expected ? put : ... |
| `delete(key[, expected])`        | txn: the same compares ? delete (prev_kv) : range key     |
| `watch(prefix, since, progress)` | `POST /v3/watch`: create_request from revision `since`,   |
|                                  | prev_kv, progress_notify; answered by a stream of JSON    |
| `compact(revision)`              | compaction, capped at the current revision (a revision at |
|                                  | or below the compacted one is a no-op); etcd-wide: it     |
|                                  | compacts the history of every prefix, as kube-apiserver's |
| `grant`, `keepalive`, `revoke`   | `/v3/lease/grant`, `/v3/lease/keepalive`, `/v3/lease/revoke` |

A refused transaction says why through its failure branch: the range shows whether the key is
absent (NotFound, or AlreadyExists for create) or has another mod_revision (Conflict). `update`
puts with `ignore_lease`, so a key created with a lease keeps it.

The gateway's encoding: keys and values are base64, int64 fields (revisions, lease IDs) are JSON
strings, and fields at their default value are left out (an empty value, `succeeded: false`, the
PUT event type). The response types below are msgspec Structs decoded in lax mode, which turns
the strings into ints, base64 into bytes and missing fields into their defaults.

Watch. One watch is one HTTP stream (one connection). etcd watches *from* a revision; the store
watches *after* one, so the watch asks for `since_revision` itself (1 for 0, since etcd reads 0 as
"from now") and drops events at or below `since_revision`. Starting there, rather than at
`since + 1`, makes etcd's own check give exactly the store's rule: etcd cancels a watch whose start
is below the compacted revision (`canceled: true, compact_revision: N`), and that is `since < N`,
which becomes `Expired(since, N)`. A DELETE event carries the previous value because the watch
asks for `prev_kv`; if etcd could not find it (compacted meanwhile) the watch raises Expired.

Progress. `progress(R)` promises that every event under the prefix up to R has been yielded. The
watch calls it (a) after yielding the events of a response, with the last one's revision: etcd
sends a watcher its events in revision order and never splits one revision across responses; and
(b) on etcd's progress notifications (a response with no events that is neither the created nor a
canceled one), with their header revision: etcd sends them only to a watcher that is synced, i.e.
that has been sent every event up to that revision, on the same stream as the events. etcd sends
them every `--experimental-watch-progress-notify-interval` (10 minutes by default; the tests' etcd
uses 100 ms), and only while the watch had no events. (etcd 3.4's on-demand progress request is
not used: it can overtake events, etcd issue 15220.)

A stream that breaks after etcd created its watch (the member died, the connection was reset) is
reopened, on the current endpoint or the next one that answers, from the last revision yielded
or reported, so no event is lost or repeated. A stream that fails before etcd created the watch
raises Unavailable: a watch never spins on an etcd it cannot reach.

Endpoints. Requests go to the current endpoint; when its connection fails, the request moves to
the next endpoint (which becomes the current one) and tries again, until every endpoint has
failed once. Reads, compaction, lease renewal and opening a watch are retried after any
connection failure. Writes (txn, lease grant and revoke) only after a failure to connect
(refused, unreachable, connect timeout, TLS handshake), when nothing was sent: a write whose
connection broke later may have been applied, so it fails with Unavailable and the caller
decides (as after any timeout).

TLS: an `ssl.SSLContext` (a CA to verify etcd, a client certificate and key; see `ssl_context`)
makes the endpoints `https://`. `etcd://` URLs take the files from their query (`EtcdUrl`).

Errors. Every failure of aiohttp, of the connection or of etcd becomes a `core.errors` exception in
exactly one place, `_translated`: compaction (gRPC OutOfRange "required revision has been
compacted", or a watch canceled with a compact revision) is Expired, an unknown lease NotFound,
an invalid request (too large, say) BadInput, and everything else Unavailable.

Lifetime. A store is bound to the event loop that opened it. `close()` ends open watches (they
return quietly), then closes both HTTP sessions: one pooled for requests, one for watch streams,
which hold their connection for their whole life.
"""

from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterator,
    Sequence,
)
from contextlib import aclosing, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit

import aiohttp
import msgspec

from clusterip.core.errors import (
    AlreadyExists,
    BadInput,
    Conflict,
    Expired,
    NotFound,
    Unavailable,
)
from clusterip.store.api import EventType, KeyValue, Store, WatchEvent

__all__ = ["DEFAULT_PREFIX", "EtcdStore", "EtcdUrl", "prefix_end", "ssl_context"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PREFIX: Final = "/clusterip"
_TIMEOUT: Final = 30.0  # seconds a request may take
_CONNECT_TIMEOUT: Final = 5.0  # seconds to establish a connection before trying the next endpoint
_LIST_PAGE: Final = 1000  # keys per range request of `list`
_LIST_RETRIES: Final = 3  # lists restarted when compaction overtook their snapshot
_POOL: Final = 100  # concurrent request connections

# gRPC status codes that etcd's errors carry.
_NOT_FOUND: Final = 5
_INVALID_ARGUMENT: Final = 3
_OUT_OF_RANGE: Final = 11
_UNAVAILABLE: Final = 14
_COMPACTED: Final = "required revision has been compacted"

# `hasleader` (gRPC metadata, which the gateway takes as a header) makes a member without a leader
# refuse a request at once ("etcdserver: no leader") instead of proposing it and timing out after
# 7 s, when the write may still be applied later: kube-apiserver's etcd client asks the same.
_JSON: Final = {"Content-Type": "application/json", "Grpc-Metadata-hasleader": "true"}

# Which connection failures move a request to the next endpoint: any, for requests that may be
# repeated (reads, compaction, lease renewal, opening a watch); for the others (txn, lease grant
# and revoke) only failures to connect, before anything was sent.
_IDEMPOTENT: Final = frozenset({"/v3/kv/range", "/v3/kv/compaction", "/v3/lease/keepalive",
                                "/v3/watch"})
_CONNECTION_FAILURES: Final = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
_CONNECT_FAILURES: Final = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)

_Body = dict[str, Any]  # a request's JSON (the class's `list` method shadows `list` inside it)
_Ops = list[_Body]
_Batch = tuple[list[WatchEvent], int]
_KeyValues = list[KeyValue]


# --- the gateway's JSON ---------------------------------------------------------------------


class _Header(msgspec.Struct):
    revision: int = 0


def _header() -> _Header:
    return _Header()


class _KV(msgspec.Struct):
    key: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    value: bytes = b""


class _Range(msgspec.Struct):
    header: _Header = msgspec.field(default_factory=_header)
    kvs: list[_KV] = []
    more: bool = False


class _DeleteRange(msgspec.Struct):
    header: _Header = msgspec.field(default_factory=_header)
    prev_kvs: list[_KV] = []


class _ResponseOp(msgspec.Struct):
    response_range: _Range | None = None
    response_delete_range: _DeleteRange | None = None


class _Txn(msgspec.Struct):
    header: _Header = msgspec.field(default_factory=_header)
    succeeded: bool = False
    responses: list[_ResponseOp] = []


class _Answer(msgspec.Struct):
    """An answer whose content beyond its header does not matter (compaction, revoke)."""

    header: _Header = msgspec.field(default_factory=_header)


class _Event(msgspec.Struct):
    kv: _KV
    type: str = "PUT"
    prev_kv: _KV | None = None


class _StreamError(msgspec.Struct):
    grpc_code: int = 0
    message: str = ""


class _WatchResponse(msgspec.Struct):
    header: _Header = msgspec.field(default_factory=_header)
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    events: list[_Event] = []


class _WatchMessage(msgspec.Struct):
    result: _WatchResponse | None = None
    error: _StreamError | None = None


class _Lease(msgspec.Struct):
    """A lease grant's answer, and a keepalive's result (TTL 0: the lease has ended)."""

    id: int = msgspec.field(default=0, name="ID")
    ttl: int = msgspec.field(default=0, name="TTL")


class _KeepAliveMessage(msgspec.Struct):
    result: _Lease | None = None
    error: _StreamError | None = None


class _Status(msgspec.Struct):
    """The body of an error answer: `{"error": ..., "message": ..., "code": <gRPC code>}`."""

    message: str = ""
    code: int = 0


_STATUS: Final = msgspec.json.Decoder(_Status, strict=False)


def _decode(data: bytes | bytearray, kind: type[T]) -> T:
    return msgspec.json.decode(data, type=kind, strict=False)


def _encode(body: dict[str, Any]) -> bytes:
    return msgspec.json.encode(body)  # bytes values become base64, as the gateway wants


# --- errors: the one place ------------------------------------------------------------------


class _GatewayError(Exception):
    """An error that etcd (or its gateway) answered; `_translated` turns it into ours.

    `requested` is the revision the request asked for, `compacted` the compacted revision when
    etcd said which (a canceled watch does, a range does not)."""

    def __init__(self, code: int, message: str, *, requested: int = 0, compacted: int = 0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.requested = requested
        self.compacted = compacted

    @classmethod
    def of_answer(cls, status: int, body: bytes, requested: int) -> _GatewayError:
        try:
            answer = _STATUS.decode(body)
        except msgspec.MsgspecError:
            answer = _Status(f"HTTP {status}: {body[:200]!r}", _UNAVAILABLE)
        return cls(answer.code, answer.message or f"HTTP {status}", requested=requested)


@contextmanager
def _translated() -> Iterator[None]:
    """The one place where aiohttp's, the connection's and etcd's errors become ours."""
    try:
        yield
    except _GatewayError as exc:
        if exc.compacted or (exc.code == _OUT_OF_RANGE and _COMPACTED in exc.message):
            # A range does not say the compacted revision; it is above the one requested.
            raise Expired(exc.requested, exc.compacted or exc.requested + 1) from exc
        if exc.code == _NOT_FOUND:
            raise NotFound(f"etcd: {exc.message}") from exc
        if exc.code == _INVALID_ARGUMENT:
            raise BadInput(f"etcd: {exc.message}") from exc
        raise Unavailable(f"etcd: {exc.message}") from exc
    except (aiohttp.ClientError, OSError, msgspec.MsgspecError, UnicodeDecodeError) as exc:
        raise Unavailable(f"etcd: {type(exc).__name__}: {exc}") from exc  # OSError: timeouts too
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise  # the caller is being cancelled
        # Not the caller: closing the session cancels the requests waiting for a connection.
        raise Unavailable("etcd: the store closed during the request") from None


# --- keys -----------------------------------------------------------------------------------


def prefix_end(prefix: bytes) -> bytes:
    """The end of the etcd key range of every key that starts with `prefix`: the prefix with its
    last byte below 0xff incremented (and the 0xff bytes after it dropped); `\\0`, which etcd
    reads as "every key from the start on", when there is no such byte."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\0"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _compare(key: bytes, target: str, result: str, value: int) -> dict[str, Any]:
    field = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version"}[target]
    return {"key": key, "target": target, "result": result, field: str(value)}


class _Lines:
    """Splits a stream of bytes into the gateway's newline-delimited JSON messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[bytearray]:
        self._buffer += chunk
        if b"\n" not in chunk:  # the only new newlines can be in the new chunk
            return []
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = rest
        return [line for line in lines if line.strip()]


def ssl_context(
    ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None
) -> ssl_module.SSLContext:
    """A client TLS context: verify etcd with `ca_file` (else the system's CAs), and present
    `cert_file`/`key_file` when etcd asks for client certificates."""
    context = ssl_module.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context


@dataclass(frozen=True, slots=True)
class EtcdUrl:
    """What an `etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?ca=F&cert=F&key=F]` URL says."""

    endpoints: tuple[str, ...]
    prefix: str
    ssl: ssl_module.SSLContext | None

    @classmethod
    def parse(cls, url: str) -> EtcdUrl:
        parts = urlsplit(url)
        hosts = tuple(h for h in parts.netloc.split(",") if h)
        if parts.scheme != "etcd" or not hosts:
            raise BadInput(f"--store: expected etcd://HOST:PORT[,HOST:PORT...], got {url!r}")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"ca", "cert", "key"}
        if unknown:
            raise BadInput(f"--store: unknown etcd URL options {sorted(unknown)} (ca, cert, key)")
        tls = None
        if query:
            try:
                tls = ssl_context(query.get("ca"), query.get("cert"), query.get("key"))
            except (OSError, ssl_module.SSLError) as exc:
                raise BadInput(f"--store: etcd TLS files: {exc}") from exc
        return cls(hosts, parts.path.rstrip("/") or DEFAULT_PREFIX, tls)


# --- the store ------------------------------------------------------------------------------


class EtcdStore:
    """A `Store` in etcd. Open it with `await EtcdStore.open(endpoints)` or `from_url(url)`."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = _TIMEOUT,
        list_page: int = _LIST_PAGE,
    ) -> None:
        """Use `open`, which also checks that etcd answers. Must run on the event loop."""
        if not endpoints:
            raise BadInput("etcd: no endpoints")
        scheme = "https" if ssl is not None else "http"
        self._endpoints = [e.rstrip("/") if "://" in e else f"{scheme}://{e}" for e in endpoints]
        self._current = 0
        self._ns = prefix.encode()
        self._list_page = list_page
        self._closed = False
        self._streams: set[aiohttp.ClientResponse] = set()
        timeouts = aiohttp.ClientTimeout(total=timeout, sock_connect=_CONNECT_TIMEOUT)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=_POOL, ssl=ssl if ssl else True),
            timeout=timeouts,
        )
        self._watch_session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ssl=ssl if ssl else True),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT),
        )

    @classmethod
    async def open(
        cls,
        endpoints: Sequence[str],
        *,
        prefix: str = DEFAULT_PREFIX,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = _TIMEOUT,
        list_page: int = _LIST_PAGE,
    ) -> EtcdStore:
        """A store on the etcd cluster at `endpoints` (`host:port`, or URLs), keys under `prefix`.

        Raises:
            Unavailable: no endpoint answers.
        """
        store = cls(endpoints, prefix=prefix, ssl=ssl, timeout=timeout, list_page=list_page)
        try:
            await store.revision()
        except BaseException:
            await store.close()
            raise
        return store

    @classmethod
    async def from_url(cls, url: str) -> EtcdStore:
        """`open` with what an `etcd://h1:2379,h2:2379/prefix?ca=F&cert=F&key=F` URL says."""
        parsed = EtcdUrl.parse(url)
        return await cls.open(parsed.endpoints, prefix=parsed.prefix, ssl=parsed.ssl)

    # --- transport ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("store is closed")

    async def _on_endpoints(self, path: str, attempt: Callable[[str], Awaitable[T]]) -> T:
        """Run `attempt(endpoint)` on the current endpoint; on a connection failure that allows
        it (see `_IDEMPOTENT`), move to the next endpoint and try again, each endpoint once."""
        retried = _CONNECTION_FAILURES if path in _IDEMPOTENT else _CONNECT_FAILURES
        failure: Exception | None = None
        for _ in self._endpoints:
            index = self._current
            try:
                return await attempt(self._endpoints[index])
            except retried as exc:
                failure = exc
                if self._current == index:
                    self._current = (index + 1) % len(self._endpoints)
                    log.warning("etcd endpoint failed, trying the next endpoint=%s error=%s",
                                self._endpoints[index], exc)
        assert failure is not None
        raise failure

    async def _call(self, path: str, body: _Body, kind: type[T], requested: int = 0) -> T:
        """One request and its decoded answer. `requested`: the revision it asks for."""
        self._check_open()
        data = _encode(body)

        async def attempt(endpoint: str) -> bytes:
            async with self._session.post(endpoint + path, data=data, headers=_JSON) as response:
                answer = await response.read()
                if response.status != 200:
                    raise _GatewayError.of_answer(response.status, answer, requested)
                return answer

        with _translated():
            return _decode(await self._on_endpoints(path, attempt), kind)

    async def _stream(self, path: str, body: _Body, requested: int) -> aiohttp.ClientResponse:
        """Open a streaming request (a watch); the caller reads the stream and closes it."""
        data = _encode(body)

        async def attempt(endpoint: str) -> aiohttp.ClientResponse:
            response = await self._watch_session.post(endpoint + path, data=data, headers=_JSON)
            if response.status != 200:
                try:
                    answer = await response.read()
                finally:
                    response.release()
                raise _GatewayError.of_answer(response.status, answer, requested)
            return response

        with _translated():
            return await self._on_endpoints(path, attempt)

    async def _txn(self, compare: _Ops, success: _Ops, failure: _Ops) -> _Txn:
        body = {"compare": compare, "success": success, "failure": failure}
        return await self._call("/v3/kv/txn", body, _Txn)

    # --- conversions ----------------------------------------------------------------------

    def _key(self, key: str) -> bytes:
        return self._ns + key.encode()

    def _range(self, prefix: str) -> tuple[bytes, bytes]:
        start = self._key(prefix)
        return start, prefix_end(start)

    def _kv(self, kv: _KV) -> KeyValue:
        with _translated():  # a key that another client wrote, not in UTF-8
            key = kv.key[len(self._ns):].decode()
        return KeyValue(key, kv.value, kv.create_revision, kv.mod_revision)

    def _refused(self, key: str, txn: _Txn, expected: int | None) -> Exception:
        """Why a txn's compare failed, from its failure branch's range of the key."""
        found = txn.responses[0].response_range if txn.responses else None
        if found is None or not found.kvs:
            return NotFound(key)
        return Conflict(f"{key}: expected revision {expected}, is {found.kvs[0].mod_revision}")

    # --- reads ----------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue:
        found = await self._call("/v3/kv/range", {"key": self._key(key)}, _Range)
        if not found.kvs:
            raise NotFound(key)
        return self._kv(found.kvs[0])

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        for attempt in range(_LIST_RETRIES):
            try:
                return await self._list_once(prefix)
            except Expired:  # compaction overtook the snapshot between two pages: read again
                if attempt == _LIST_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    async def _list_once(self, prefix: str) -> tuple[_KeyValues, int]:
        start, end = self._range(prefix)
        body: dict[str, Any] = {"key": start, "range_end": end, "limit": str(self._list_page)}
        page = await self._call("/v3/kv/range", body, _Range)
        revision = page.header.revision
        items = [self._kv(kv) for kv in page.kvs]
        while page.more and page.kvs:
            body["key"] = page.kvs[-1].key + b"\0"
            body["revision"] = str(revision)
            page = await self._call("/v3/kv/range", body, _Range, requested=revision)
            items.extend(self._kv(kv) for kv in page.kvs)
        return items, revision

    async def revision(self) -> int:
        body = {"key": self._ns, "count_only": True}
        return (await self._call("/v3/kv/range", body, _Range)).header.revision

    # --- writes ---------------------------------------------------------------------------

    async def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Put the key only if it is absent; with `lease`, etcd deletes the key when the lease
        ends (revoked, or not kept alive). Returns the new revision. Raises AlreadyExists."""
        k = self._key(key)
        put: dict[str, Any] = {"key": k, "value": value}
        if lease:
            put["lease"] = str(lease)
        txn = await self._txn([_compare(k, "CREATE", "EQUAL", 0)], [{"request_put": put}], [])
        if not txn.succeeded:
            raise AlreadyExists(key)
        return txn.header.revision

    def _existing(self, k: bytes, expected: int | None) -> _Ops:
        compare = [_compare(k, "VERSION", "GREATER", 0)]  # exists (a missing key's version is 0)
        if expected is not None:
            compare.append(_compare(k, "MOD", "EQUAL", expected))
        return compare

    async def update(self, key: str, value: bytes, expected_revision: int | None = None) -> int:
        k = self._key(key)
        put = {"request_put": {"key": k, "value": value, "ignore_lease": True}}
        txn = await self._txn(self._existing(k, expected_revision), [put],
                              [{"request_range": {"key": k}}])
        if not txn.succeeded:
            raise self._refused(key, txn, expected_revision)
        return txn.header.revision

    async def delete(self, key: str, expected_revision: int | None = None) -> tuple[KeyValue, int]:
        k = self._key(key)
        txn = await self._txn(self._existing(k, expected_revision),
                              [{"request_delete_range": {"key": k, "prev_kv": True}}],
                              [{"request_range": {"key": k}}])
        if not txn.succeeded:
            raise self._refused(key, txn, expected_revision)
        deleted = txn.responses[0].response_delete_range if txn.responses else None
        if deleted is None or not deleted.prev_kvs:  # cannot be: the compare saw the key
            raise NotFound(key)
        return self._kv(deleted.prev_kvs[0]), txn.header.revision

    async def compact(self, revision: int) -> None:
        revision = min(revision, await self.revision())
        if revision <= 0:
            return
        try:
            await self._call("/v3/kv/compaction", {"revision": str(revision)}, _Answer,
                             requested=revision)
        except Expired:
            pass  # already compacted at or past `revision`

    # --- leases ---------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        """A new lease of `ttl` seconds (etcd raises very short ones to its minimum, about 2 s);
        returns its ID."""
        return (await self._call("/v3/lease/grant", {"TTL": str(ttl)}, _Lease)).id

    async def keepalive(self, lease: int) -> int:
        """Renew the lease; returns its TTL in seconds. Raises NotFound when it has ended."""
        answer = await self._call("/v3/lease/keepalive", {"ID": str(lease)}, _KeepAliveMessage)
        if answer.error is not None:
            with _translated():
                raise _GatewayError(answer.error.grpc_code, answer.error.message)
        if answer.result is None or answer.result.ttl <= 0:
            raise NotFound(f"etcd: lease {lease:x} has ended")
        return answer.result.ttl

    async def revoke(self, lease: int) -> None:
        """End the lease now: etcd deletes every key attached to it. Raises NotFound."""
        await self._call("/v3/lease/revoke", {"ID": str(lease)}, _Answer)

    # --- watch ----------------------------------------------------------------------------

    async def watch(
        self, prefix: str, since_revision: int, progress: Callable[[int], None] | None = None
    ) -> AsyncGenerator[WatchEvent, None]:
        self._check_open()
        start, end = self._range(prefix)
        position = since_revision
        while not self._closed:
            created = False
            try:
                async with aclosing(self._watch_stream(start, end, position)) as stream:
                    async for events, safe in stream:
                        created = True
                        for event in events:
                            if event.revision > position:
                                position = event.revision
                                yield event
                        position = max(position, safe)
                        if safe and progress is not None:
                            progress(safe)
            except Unavailable as exc:
                if self._closed:
                    return
                if not created:
                    raise
                log.warning("etcd watch stream broke, resuming revision=%d error=%s",
                            position, exc)

    async def _watch_stream(
        self, start: bytes, end: bytes, position: int
    ) -> AsyncGenerator[_Batch, None]:
        """One watch stream from `position`: each response as (its events, the revision up to
        which every event has been sent, 0 when unknown)."""
        create = {"key": start, "range_end": end, "start_revision": str(max(position, 1)),
                  "prev_kv": True, "progress_notify": True}
        response = await self._stream("/v3/watch", {"create_request": create}, position)
        self._streams.add(response)
        try:
            lines = _Lines()
            while True:
                with _translated():
                    chunk = await response.content.readany()
                    if not chunk:
                        raise _GatewayError(_UNAVAILABLE, "watch stream ended")
                    batches = [self._watch_batch(line, position) for line in lines.feed(chunk)]
                for batch in batches:
                    yield batch
        finally:
            self._streams.discard(response)
            response.close()

    def _watch_batch(self, line: bytearray, position: int) -> _Batch:
        message = _decode(line, _WatchMessage)
        if message.error is not None:
            raise _GatewayError(message.error.grpc_code, message.error.message)
        result = message.result or _WatchResponse()
        if result.canceled:
            reason = result.cancel_reason or "watch canceled"
            raise _GatewayError(_OUT_OF_RANGE if result.compact_revision else _UNAVAILABLE,
                                reason, requested=position, compacted=result.compact_revision)
        if result.created:
            return [], 0
        if not result.events:  # a progress notification
            return [], result.header.revision
        # The watch starts at `position` itself (see the module docstring): skip that revision
        # before converting, as its DELETE's previous value may be compacted away.
        events = [self._event(e) for e in result.events if e.kv.mod_revision > position]
        return events, result.events[-1].kv.mod_revision

    def _event(self, event: _Event) -> WatchEvent:
        revision = event.kv.mod_revision
        if event.type != "DELETE":
            return WatchEvent(EventType.PUT, self._kv(event.kv), revision)
        if event.prev_kv is None:  # compacted away before etcd could read it
            raise _GatewayError(_OUT_OF_RANGE, _COMPACTED, requested=revision - 1)
        return WatchEvent(EventType.DELETE, self._kv(event.prev_kv), revision)

    # --- lifetime -------------------------------------------------------------------------

    async def close(self) -> None:
        """End open watches and close the connections. Idempotent."""
        self._closed = True
        for response in list(self._streams):
            response.close()
        await self._session.close()
        await self._watch_session.close()


if TYPE_CHECKING:
    _: type[Store] = EtcdStore  # mypy checks here that EtcdStore satisfies the Protocol
