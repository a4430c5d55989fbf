"""`RemoteClient`: the `registry.client.Client` seam over the Kubernetes REST API (aiohttp).

A node agent on its own machine (`clusterip node`) reads and writes objects through an API
server, not a store: this client speaks to one with the same requests kubectl and client-go
send, so the agent's informers and writers work unchanged whichever side of the network they
are on.

| Client call                 | request                                                       |
|-----------------------------|---------------------------------------------------------------|
| `get(T, ns, name)`          | GET  item                                                     |
| `list(T, ns)`               | GET  collection; the list's `metadata.resourceVersion`        |
| `watch(T, ns, since)`       | GET  collection `?watch=true&resourceVersion=since`, bookmarks |
| `create(obj)`               | POST collection                                               |
| `update(obj)`               | PUT  item (the body's resourceVersion: 409 when stale)        |
| `update_status(obj)`        | PUT  item/status                                              |
| `delete(T, ns, name, ...)`  | DELETE item with DeleteOptions (preconditions, grace period)  |

Objects are decoded from the response bytes straight into the model's Structs (msgspec; an
object the server sends is trusted, as the informers' own store reads are), list items one at
a time so that `transform` keeps only a slim copy of each.

Watches are what client-go's reflector makes of them: the stream is newline-delimited JSON
events; BOOKMARK events only move the position on; when the server ends a stream (its
`timeoutSeconds`), the watch starts again from the last position, so a caller sees one endless
watch. An ERROR event is raised as the error its Status names (410 Expired: list again).

Several API servers. `server` may list several URLs (comma-separated), all serving one store.
A request goes to the current one; when it cannot even connect (refused, unreachable, TLS
handshake), the next is tried, for every verb, since nothing was sent; when a connection breaks
later, only reads and watches move on (a write may have been done). Each server is tried once per
request before `Unavailable` is raised.

Errors. Every failure is translated here, in `_translated` and `_error_for`, into the
`core.errors` tree: a Status answer by its reason (NotFound, AlreadyExists, Conflict, Invalid,
Expired...), and anything aiohttp or the network raises (refused, reset, timed out, TLS) as
`Unavailable` naming the server.

Delete answers. kube-apiserver answers a DELETE with the deleted object for pods, services and
namespaces and with a Status for other kinds; `delete` returns the object, so it is for those
kinds (anything else raises `BadInput` after the delete is done).
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import msgspec

from clusterip.core import codec
from clusterip.core import errors as e
from clusterip.core.kinds import KindInfo, for_type
from clusterip.core.model import KubeObject
from clusterip.registry.objects import EventKind, ObjectEvent

__all__ = ["RemoteClient"]

T = TypeVar("T", bound=KubeObject)

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
REQUEST_TIMEOUT = 30.0  # seconds for any request but a watch
WATCH_SECONDS = 300  # a watch stream's timeoutSeconds: the server ends it, the client resumes
MAX_LINE = 16 * 1024 * 1024  # the largest watch event (the server's largest body)


class _ListMeta(msgspec.Struct):
    resourceVersion: str = ""  # the wire name


class _List(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)
    items: list[msgspec.Raw] = []


class _WatchLine(msgspec.Struct):
    type: str
    object: msgspec.Raw


class _BookmarkMeta(msgspec.Struct):
    metadata: _ListMeta = msgspec.field(default_factory=_ListMeta)


class _Status(msgspec.Struct):
    kind: str = ""
    code: int = 0
    reason: str = ""
    message: str = ""


_LIST = msgspec.json.Decoder(_List)
_LINE = msgspec.json.Decoder(_WatchLine)
_BOOKMARK = msgspec.json.Decoder(_BookmarkMeta)
_STATUS = msgspec.json.Decoder(_Status)

# A Status's reason → the error it is here (the reverse of `apiserver.status.STATUS_TABLE`).
_ERRORS: dict[str, Callable[[str], e.ClusterIPError]] = {
    "NotFound": e.NotFound,
    "AlreadyExists": e.AlreadyExists,
    "Conflict": e.Conflict,
    "Invalid": e.BadInput,
    "BadRequest": e.BadInput,
    "Forbidden": e.Forbidden,
    "Unauthorized": e.Unauthorized,
    "UnsupportedMediaType": e.UnsupportedMediaType,
    "MethodNotAllowed": e.MethodNotAllowed,
    "Expired": lambda message: _expired(message),
    "Gone": lambda message: _expired(message),
}
_TOO_OLD = re.compile(r"too old resource version: (\d+) \((\d+)\)")
_EVENT_KINDS: dict[str, EventKind] = {"ADDED": "ADDED", "MODIFIED": "MODIFIED",
                                      "DELETED": "DELETED"}


class RemoteClient:
    """A `Client` that talks to the API server(s) at `server` (http or https URLs, several
    separated by commas), with a bearer `token` if they need one and their CA in `ca_file` for
    https. Use `async with`, or `close()`."""

    def __init__(self, server: str, *, token: str = "", ca_file: str = "",
                 watch_seconds: int = WATCH_SECONDS) -> None:
        self.servers = [url.strip().rstrip("/") for url in server.split(",") if url.strip()]
        if not self.servers:
            raise e.BadInput("no API server URL given")
        self._current = 0
        self._headers = {"Accept": JSON_TYPE, "User-Agent": "clusterip-node/1"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._tls: ssl.SSLContext | None = None
        if any(url.startswith("https:") for url in self.servers):
            self._tls = ssl.create_default_context(cafile=ca_file or None)
        self._watch_seconds = watch_seconds
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RemoteClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def server(self) -> str:
        """The API server requests go to now."""
        return self.servers[self._current]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- reads -------------------------------------------------------------------------------

    async def get(self, type_: type[T], namespace: str, name: str) -> T:
        info = for_type(type_)
        return codec.decode_stored(type_, await self._call("GET", _path(info, namespace, name)))

    async def list(
        self,
        type_: type[T],
        namespace: str | None = None,
        *,
        transform: Callable[[T], T] | None = None,
    ) -> tuple[list[T], int]:
        listed = _LIST.decode(await self._call("GET", _path(for_type(type_), namespace)))
        items = [codec.decode_stored(type_, raw) for raw in listed.items]
        if transform is not None:
            items = [transform(item) for item in items]
        return items, int(listed.metadata.resourceVersion or 0)

    async def watch(
        self, type_: type[T], namespace: str | None, since_revision: int
    ) -> AsyncIterator[ObjectEvent]:
        path = _path(for_type(type_), namespace)
        position = since_revision
        while True:
            query = {"watch": "true", "resourceVersion": str(position),
                     "allowWatchBookmarks": "true", "timeoutSeconds": str(self._watch_seconds)}
            timeout = aiohttp.ClientTimeout(total=None, connect=REQUEST_TIMEOUT,
                                            sock_read=self._watch_seconds + REQUEST_TIMEOUT)
            async with self._request("GET", path, params=query, timeout=timeout,
                                     idempotent=True) as resp:
                with _translated(self.server):
                    async for line in _lines(resp.content):
                        event = _LINE.decode(line)
                        if event.type == "BOOKMARK":
                            meta = _BOOKMARK.decode(event.object).metadata
                            position = max(position, int(meta.resourceVersion or 0))
                        elif event.type == "ERROR":
                            raise _error_for(0, bytes(event.object))
                        else:
                            obj = codec.decode_stored(type_, event.object)
                            revision = int(obj.metadata.resource_version or 0)
                            position = max(position, revision)
                            yield ObjectEvent(_EVENT_KINDS[event.type], obj, revision)

    # --- writes ------------------------------------------------------------------------------

    async def create(self, obj: T) -> T:
        info = for_type(type(obj))
        body = await self._call("POST", _path(info, obj.metadata.namespace), _body(obj, info))
        return codec.decode_stored(type(obj), body)

    async def update(self, obj: T) -> T:
        return await self._put(obj, "")

    async def update_status(self, obj: T) -> T:
        return await self._put(obj, "/status")

    async def delete(
        self,
        type_: type[T],
        namespace: str,
        name: str,
        *,
        resource_version: str = "",
        grace_period_seconds: int | None = None,
    ) -> T:
        info = for_type(type_)
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if resource_version:
            options["preconditions"] = {"resourceVersion": resource_version}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        body = await self._call("DELETE", _path(info, namespace, name),
                                msgspec.json.encode(options))
        if _STATUS.decode(body).kind == "Status":
            raise e.BadInput(f"{info.resource} answer a DELETE with a Status, not the object: "
                             "RemoteClient.delete is for pods, services and namespaces")
        return codec.decode_stored(type_, body)

    async def _put(self, obj: T, suffix: str) -> T:
        info = for_type(type(obj))
        path = _path(info, obj.metadata.namespace, obj.metadata.name) + suffix
        return codec.decode_stored(type(obj), await self._call("PUT", path, _body(obj, info)))

    # --- the wire ----------------------------------------------------------------------------

    @property
    def _ssl(self) -> ssl.SSLContext | bool:
        return self._tls if self._tls is not None else True

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            # no pool limit: every watch holds a connection for as long as it runs
            connector = aiohttp.TCPConnector(limit=0)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with self._request(method, path, body=body, timeout=timeout,
                                 idempotent=method == "GET") as resp:
            with _translated(self.server):
                return await resp.read()

    @contextlib.asynccontextmanager
    async def _request(self, method: str, path: str, *, timeout: aiohttp.ClientTimeout,
                       idempotent: bool, body: bytes | None = None,
                       params: dict[str, str] | None = None
                       ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The response of the first server that answers (see "Several API servers"); a
        Status answer is raised as its error."""
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = JSON_TYPE
        for attempt in range(len(self.servers)):
            server = self.server
            try:
                with _translated(server):
                    response = await self._open().request(
                        method, server + path, data=body, params=params, headers=headers,
                        timeout=timeout, ssl=self._ssl)
            except e.Unavailable as exc:
                unsent = isinstance(exc.__cause__, aiohttp.ClientConnectorError)
                if attempt + 1 == len(self.servers) or not (unsent or idempotent):
                    raise
                self._current = (self._current + 1) % len(self.servers)
                log.warning("API server %s unavailable (%s); trying %s", server, exc.__cause__,
                            self.server)
                continue
            async with response:
                await _check(response)
                yield response
            return


def _body(obj: KubeObject, info: KindInfo) -> bytes:
    """The object as a request body: with its apiVersion and kind, which the server needs and
    an object built in code may leave empty."""
    if obj.api_version != info.api_version or obj.kind != info.kind:
        obj = msgspec.structs.replace(obj, api_version=info.api_version, kind=info.kind)
    return codec.encode(obj)


def _path(info: KindInfo, namespace: str | None, name: str = "") -> str:
    base = f"/apis/{info.group}/{info.version}" if info.group else "/api/v1"
    if info.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{info.resource}"
    return f"{base}/{name}" if name else base


async def _check(resp: aiohttp.ClientResponse) -> None:
    if resp.status >= 400:
        raise _error_for(resp.status, await resp.read())


def _error_for(code: int, body: bytes) -> e.ClusterIPError:
    """The error a Status answer (or an ERROR event's Status) stands for."""
    try:
        status = _STATUS.decode(body)
    except msgspec.DecodeError:
        status = _Status(code=code, message=body.decode(errors="replace").strip()[:500])
    code = status.code or code
    message = status.message or f"the server answered {code}"
    make = _ERRORS.get(status.reason)
    if make is not None:
        return make(message)
    if code == 410:
        return _expired(message)
    if 400 <= code < 500:
        return e.BadInput(message)
    return e.Unavailable(message)


def _expired(message: str) -> e.Expired:
    found = _TOO_OLD.search(message)
    requested, compacted = (int(found[1]), int(found[2])) if found else (0, 0)
    return e.Expired(requested, compacted)


@contextlib.contextmanager
def _translated(server: str) -> Iterator[None]:
    """aiohttp's and the network's failures, as `Unavailable` naming the server."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise e.Unavailable(f"cannot reach the API server at {server}: "
                            f"{type(exc).__name__}: {exc}") from exc


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The stream's newline-terminated lines, each at most `MAX_LINE` bytes."""
    pending = b""
    async for chunk in content.iter_any():
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
        if len(pending) > MAX_LINE:
            raise e.Unavailable(f"a watch event longer than {MAX_LINE} bytes")
    if pending.strip():
        yield pending
