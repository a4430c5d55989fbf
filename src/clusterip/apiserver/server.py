"""The HTTP API: Kubernetes REST paths over the Registry, on aiohttp.

One catch-all handler parses the path (`paths.parse_path`) and dispatches on (collection or
item, method, subresource) through `_ROUTES`; each route is a short coroutine that decodes the
body, calls the Registry, and encodes the answer. Errors of `core.errors` become Kubernetes Status
objects in `status.status_for`, the only place they meet HTTP; anything else is a 500 and logged.

Request bodies are JSON, YAML, or Kubernetes protobuf (`application/vnd.kubernetes.protobuf`,
what `kubectl create namespace|deployment|service` send; `core.protobuf`); answers are JSON.
`fieldValidation=Strict` rejects unknown fields (400), the default (`Warn`) drops them and
reports each in a `Warning: 299 - "unknown field ..."` header, `Ignore` drops them silently.
`dryRun=All` validates without writing.

PATCH takes a JSON merge patch, a JSON patch, a strategic merge patch (`core.strategicpatch`:
kubectl's client-side apply, the Python client's default) or a server-side apply
(`application/apply-patch+yaml`, which creates a missing object and needs `?fieldManager=`).
A patch is applied to the object as read and written back at its resourceVersion, again on a
lost race (unless the patch names the resourceVersion itself: then a stale one is a 409); the
result is decoded and validated like any update. Every write records its field manager (the
`fieldManager` parameter, else the User-Agent's product) in `managedFields`, see
`core.fieldmanager`. A Deployment's `/scale` is the autoscaling/v1 Scale of `core.scale`.

Watches (`?watch=true`) stream newline-delimited JSON events over chunked encoding. Without a
resourceVersion (or with "0", or with `sendInitialEvents=true`) the current objects come first
as ADDED events, then changes; with one, only changes after it. A compacted resourceVersion gives
HTTP 200 and one ERROR event with a 410 Expired Status, as kube-apiserver's watch cache does.
With `allowWatchBookmarks=true` a BOOKMARK event (the kind, and only a resourceVersion) comes
every `bookmark_interval` seconds (a minute, as kube-apiserver's) when the store's progress
passed the last resourceVersion sent: a client that resumes from it misses nothing, and a quiet
resource's watcher keeps a resourceVersion that compaction does not expire. The stream ends after
`timeoutSeconds` (default 30 minutes; kubectl does not reconnect).

`kubectl get` asks for a Table (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`):
a GET, a list and a watch then answer with `core.tables`' Tables instead of the objects (in a
watch, each event's object is a one-row Table), with the ages counted on the server's `clock`.
Any other Accept header gets the plain object or list.

DELETE answers with the deleted object for pods, services and namespaces (202 while a pod
terminates gracefully) and with a Success Status for the other kinds, as kube-apiserver does.

Version, discovery and OpenAPI documents are `apiserver.discovery`'s. With a `token`, every
request but the health checks (/healthz, /livez, /readyz) must carry `Authorization: Bearer
<token>`, or gets a 401 Unauthorized Status (`clusterip up` turns this on when the API listens on
an address other than loopback, see `core.kubeconfig`).

`serve_api` binds, reports the bound address through `ready`, and serves until cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import msgspec
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler as AioHandler
from aiohttp.typedefs import Middleware

from clusterip.apiserver.discovery import Discovery
from clusterip.apiserver.paths import Target, parse_path
from clusterip.apiserver.status import status_for, success_status
from clusterip.clock import Clock, SystemClock
from clusterip.core import codec, protobuf, selectors, tables
from clusterip.core import model as m
from clusterip.core.errors import (
    BadInput,
    ClusterIPError,
    Conflict,
    DecodeError,
    Expired,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
)
from clusterip.core.patch import json_patch, merge_patch
from clusterip.core.patchmeta import Schema, schema_of
from clusterip.core.scale import scale_of, scaled
from clusterip.core.strategicpatch import strategic_merge_patch
from clusterip.registry.objects import ObjectEvent
from clusterip.registry.registry import Registry

__all__ = ["ApiServer", "PodLogs", "serve_api"]

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
DEFAULT_WATCH_TIMEOUT = 1800.0
DEFAULT_BOOKMARK_INTERVAL = 60.0
_PATCH_RETRIES = 5
_TRUE = {"true", "1", "True"}

Handler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})  # no token asked


def _respond(body: Any, status: int = 200, warnings: tuple[str, ...] = ()) -> web.Response:
    headers = {"Warning": ", ".join(f'299 - "{_quote(w)}"' for w in warnings)} if warnings else None
    return web.Response(
        body=msgspec.json.encode(body), status=status, content_type=JSON_TYPE, headers=headers
    )


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _error(exc: BaseException, target: Target | None = None, name: str = "") -> web.Response:
    body = status_for(exc, resource=target.info.resource if target else "", name=name)
    if body["code"] >= 500:
        log.error("request failed: %r", exc, exc_info=exc)
    return _respond(body, status=body["code"])


class PodLogs(Protocol):
    """Where a pod's container logs are (the node agent, in the all-in-one process)."""

    async def read_log(self, namespace: str, name: str, container: str, previous: bool
                       ) -> bytes: ...


class ApiServer:
    """The aiohttp application. `ready()` tells /readyz whether the controllers have synced;
    `logs` serves the pods' `log` subresource (absent: 404, as for a pod no node runs); a
    `token` is required of every client (empty: none is); the `clock` tells Tables' ages;
    watches that allow bookmarks get one every `bookmark_interval` seconds."""

    def __init__(self, registry: Registry, *, ready: Callable[[], bool] = lambda: True,
                 logs: PodLogs | None = None, token: str = "", clock: Clock | None = None,
                 bookmark_interval: float = DEFAULT_BOOKMARK_INTERVAL) -> None:
        self.registry = registry
        self._bookmark_interval = bookmark_interval
        self._ready = ready
        self.logs = logs
        self._token = token
        self._clock = clock or SystemClock()
        self.watches: set[asyncio.Task[Any]] = set()  # ended when the server stops

    def app(self) -> web.Application:
        middlewares = [_bearer_token(self._token)] if self._token else []
        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=middlewares)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/livez", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        Discovery(patch_types=(*_PATCHERS, APPLY_PATCH)).add_routes(app)
        app.router.add_route("*", "/api/{tail:.+}", self._dispatch)
        app.router.add_route("*", "/apis/{tail:.+}", self._dispatch)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok")
        return web.Response(text="not ready: controllers have not synced", status=503)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            target = parse_path(request.path)
        except ClusterIPError as exc:
            return _error(exc)
        scope = "item" if target.name else "collection"
        route = _ROUTES.get((scope, request.method, target.subresource))
        if route is None:
            return _error(MethodNotAllowed(
                f"method {request.method} is not allowed on {request.path}"), target)
        try:
            return await route(self, request, target)
        except ClusterIPError as exc:
            return _error(exc, target, target.name)

    # --- collection --------------------------------------------------------------------------

    async def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        if query.get("watch", "") in _TRUE:
            return await self._watch(request, target)
        match = _filter(target, query)
        wanted = _table_request(request)
        if wanted is not None:
            items, revision = await self.registry.list(target.info.type, target.namespace)
            return _respond(tables.table(
                wanted, target.info.kind, [i for i in items if match(i)], self._clock.now(),
                metadata=m.ListMeta(resource_version=str(revision))))
        if match is _everything:
            encoded, revision = await self.registry.list_encoded(
                target.info.type, target.namespace)
        else:
            items, revision = await self.registry.list(target.info.type, target.namespace)
            encoded = [msgspec.json.encode(i) for i in items if match(i)]
        head = msgspec.json.encode({
            "kind": f"{target.info.kind}List",
            "apiVersion": target.info.api_version,
            "metadata": {"resourceVersion": str(revision)},
        })
        body = b"%s,\"items\":[%s]}" % (head[:-1], b",".join(encoded))
        return web.Response(body=body, content_type=JSON_TYPE)

    async def _create(self, request: web.Request, target: Target) -> web.StreamResponse:
        decoded = await _read_object(request, target)
        obj = _place(decoded.obj, target)
        created = await self.registry.create(obj, dry_run=_dry_run(request),
                                             field_manager=_field_manager(request))
        return _respond(created, status=201, warnings=_warnings(request, decoded))

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        match = _filter(target, query)
        present = self._presenter(request, target)
        timeout = float(query.get("timeoutSeconds", DEFAULT_WATCH_TIMEOUT))
        rv = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents", "") in _TRUE
        bookmarks = query.get("allowWatchBookmarks", "") in _TRUE
        response = web.StreamResponse(headers={"Content-Type": JSON_TYPE})
        response.enable_chunked_encoding()
        task = asyncio.current_task()
        if task is not None:
            self.watches.add(task)
            task.add_done_callback(self.watches.discard)
        type_ = target.info.type
        try:
            since = int(rv) if rv not in ("", "0") and not initial else None
        except ValueError:
            raise BadInput(f'resourceVersion: Invalid value: "{rv}": must be an integer') from None
        if since is None:
            items, since = await self.registry.list(type_, target.namespace)
            await response.prepare(request)
            lines = [_event_line("ADDED", present(i)) for i in items if match(i)]
            if initial:
                lines.append(_bookmark(target, since, initial_end=True))
            if lines:
                await response.write(b"".join(lines))
        else:
            await response.prepare(request)
        sent = progressed = since

        def progress(revision: int) -> None:
            nonlocal progressed
            progressed = max(progressed, revision)

        events = self.registry.watch(type_, target.namespace, since, progress)
        interval = self._bookmark_interval if bookmarks else None
        try:
            async with asyncio.timeout(timeout):
                async for event in _with_ticks(events, interval):
                    if event is None:
                        if progressed > sent:
                            await response.write(_bookmark(target, progressed, initial_end=False))
                            sent = progressed
                    elif match(event.obj):
                        await response.write(_event_line(event.type, present(event.obj)))
                        sent = max(sent, event.revision)
        except TimeoutError:
            pass
        except Expired as exc:
            with contextlib.suppress(ConnectionResetError):
                await response.write(_event_line("ERROR", status_for(exc)))
        except ConnectionResetError:  # the client went away: the normal end of many watches
            return response
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    def _presenter(self, request: web.Request, target: Target) -> Callable[[m.KubeObject], Any]:
        """What a watch event carries: the object, or (`as=Table`) the object's one-row Table,
        with the column definitions in the first event only."""
        wanted = _table_request(request)
        if wanted is None:
            return lambda obj: obj
        headers = True

        def as_table(obj: m.KubeObject) -> tables.Table:
            nonlocal headers
            table = tables.one(wanted, target.info.kind, obj, self._clock.now(), headers=headers)
            headers = False
            return table

        return as_table

    # --- item --------------------------------------------------------------------------------

    async def _get(self, request: web.Request, target: Target) -> web.StreamResponse:
        wanted = _table_request(request)
        obj = await self.registry.get(target.info.type, target.namespace or "", target.name)
        if wanted is not None:
            return _respond(tables.one(wanted, target.info.kind, obj, self._clock.now()))
        return _respond(obj)

    async def _replace(self, request: web.Request, target: Target) -> web.StreamResponse:
        decoded = await _read_object(request, target)
        obj = _place(decoded.obj, target)
        if obj.metadata.name != target.name:
            raise BadInput(
                f"the name of the object ({obj.metadata.name}) does not match the name on the "
                f"URL ({target.name})"
            )
        return _respond(await self._write(request, target, obj),
                        warnings=_warnings(request, decoded))

    async def _write(self, request: web.Request, target: Target, obj: m.KubeObject
                     ) -> m.KubeObject:
        """Update the object, or only its status for the status subresource."""
        if target.subresource == "status":
            return await self.registry.update_status(obj, dry_run=_dry_run(request))
        return await self.registry.update(obj, dry_run=_dry_run(request),
                                          field_manager=_field_manager(request))

    async def _patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        kind = request.content_type
        if kind == APPLY_PATCH:
            return await self._apply(request, target)
        patcher = _PATCHERS.get(kind)
        if patcher is None:
            raise UnsupportedMediaType(
                f"the body of a PATCH must be one of {', '.join([*_PATCHERS, APPLY_PATCH])}, "
                f"not {kind}")
        patch = _parse_body(await request.read(), kind)
        schema = None if target.subresource == "scale" else schema_of(target.info.type)
        return await self._change(request, target, lambda view: patcher(view, patch, schema),
                                  pinned=_patch_pins_version(patch))

    async def _change(self, request: web.Request, target: Target, change: Callable[[Any], Any],
                      *, pinned: bool) -> web.StreamResponse:
        """Read the object, `change` what the path addresses (the object as JSON data, or its
        Scale), write it back conditionally; on a lost race read and change again, unless the
        change named the resourceVersion it expects."""
        for _ in range(_PATCH_RETRIES):
            try:
                if target.subresource == "scale":
                    live = await self._scalable(target)
                    updated = await self.registry.update(
                        scaled(live, change(scale_of(live))), dry_run=_dry_run(request),
                        field_manager=_field_manager(request))
                    return _respond(scale_of(updated))
                live_obj = await self.registry.get(target.info.type, target.namespace or "",
                                                   target.name)
                decoded = _decode_object(change(codec.to_dict(live_obj)), request, target)
                result = await self._write(request, target, _place(decoded.obj, target))
                return _respond(result, warnings=_warnings(request, decoded))
            except Conflict:
                if pinned:
                    raise
        raise Conflict(f'{target.info.resource} "{target.name}": too many conflicting writers')

    async def _apply(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Server-side apply: the body is the manifest (YAML, or JSON: kubectl sends JSON)."""
        manager = request.query.get("fieldManager", "")
        if not manager:
            raise BadInput("fieldManager is required for apply requests")
        if target.subresource:
            raise BadInput(f"server-side apply to the {target.subresource} subresource is not "
                           "supported")
        config = _parse_body(await request.read(), APPLY_PATCH)
        decoded = _decode_object(config, request, target)
        obj = _place(decoded.obj, target)
        if obj.metadata.name not in ("", target.name):
            raise BadInput(
                f"the name of the object ({obj.metadata.name}) does not match the name on the "
                f"URL ({target.name})"
            )
        result, created = await self.registry.apply(
            target.info.type, obj.metadata.namespace, target.name, config, field_manager=manager,
            force=request.query.get("force", "") in _TRUE, dry_run=_dry_run(request))
        return _respond(result, status=201 if created else 200,
                        warnings=_warnings(request, decoded))

    async def _scalable(self, target: Target) -> m.Deployment:
        if target.info.type is not m.Deployment:
            raise NotFound(f"{target.info.resource} have no scale subresource")
        return await self.registry.get(m.Deployment, target.namespace or "", target.name)

    async def _get_scale(self, request: web.Request, target: Target) -> web.StreamResponse:
        return _respond(scale_of(await self._scalable(target)))

    async def _replace_scale(self, request: web.Request, target: Target) -> web.StreamResponse:
        scale = _parse_body(await request.read(), request.content_type)
        pinned = isinstance(scale, dict) and bool((scale.get("metadata") or {}).get(
            "resourceVersion"))
        return await self._change(request, target, lambda view: scale, pinned=pinned)

    async def _log(self, request: web.Request, target: Target) -> web.StreamResponse:
        if target.info.kind != "Pod":
            raise BadInput(f"{target.info.resource} have no log subresource")
        pod = await self.registry.get(m.Pod, target.namespace or "", target.name)
        container = request.query.get("container", "")
        names = [c.name for c in pod.spec.containers]
        if not container:
            if len(names) != 1:
                raise BadInput(
                    f"a container name must be specified for pod {target.name}, choose one of: "
                    f"[{' '.join(names)}]")
            container = names[0]
        elif container not in names:
            raise BadInput(f"container {container} is not valid for pod {target.name}")
        if self.logs is None:
            raise NotFound(f'pod "{target.name}" runs on no node of this server')
        previous = request.query.get("previous", "") in _TRUE
        text = await self.logs.read_log(target.namespace or "", target.name, container, previous)
        return web.Response(body=text, content_type="text/plain")

    async def _delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                options = _parse_body(raw, JSON_TYPE)
        preconditions = options.get("preconditions") or {}
        grace = options.get("gracePeriodSeconds", request.query.get("gracePeriodSeconds"))
        try:
            grace_seconds = int(grace) if grace is not None else None
        except (TypeError, ValueError):
            raise BadInput(
                f'gracePeriodSeconds: Invalid value: "{grace}": must be an integer') from None
        deleted = await self.registry.delete(
            target.info.type,
            target.namespace or "",
            target.name,
            resource_version=str(preconditions.get("resourceVersion") or ""),
            dry_run=_dry_run(request) or options.get("dryRun") == ["All"],
            grace_period_seconds=grace_seconds,
        )
        if deleted.metadata.deletion_timestamp and deleted.metadata.finalizers:
            return _respond(deleted, status=202)
        if target.info.resource in _DELETE_RETURNS_OBJECT:
            return _respond(deleted)
        return _respond(success_status({
            "name": deleted.metadata.name, "group": target.info.group,
            "kind": target.info.resource, "uid": deleted.metadata.uid}))


_ROUTES: dict[tuple[str, str, str], Callable[[ApiServer, web.Request, Target],
                                             Awaitable[web.StreamResponse]]] = {
    ("collection", "GET", ""): ApiServer._list,
    ("collection", "POST", ""): ApiServer._create,
    ("item", "GET", ""): ApiServer._get,
    ("item", "PUT", ""): ApiServer._replace,
    ("item", "PATCH", ""): ApiServer._patch,
    ("item", "DELETE", ""): ApiServer._delete,
    ("item", "GET", "status"): ApiServer._get,
    ("item", "PUT", "status"): ApiServer._replace,
    ("item", "PATCH", "status"): ApiServer._patch,
    ("item", "GET", "scale"): ApiServer._get_scale,
    ("item", "PUT", "scale"): ApiServer._replace_scale,
    ("item", "PATCH", "scale"): ApiServer._patch,
    ("item", "GET", "log"): ApiServer._log,
}

# PATCH content types but server-side apply: (the object as JSON data, the patch, where the
# object sits in the model) → the patched object.
_PATCHERS: dict[str, Callable[[Any, Any, Schema], Any]] = {
    "application/merge-patch+json": lambda live, patch, schema: merge_patch(live, patch),
    "application/strategic-merge-patch+json": strategic_merge_patch,
    "application/json-patch+json": lambda live, patch, schema: json_patch(live, patch),
}
APPLY_PATCH = "application/apply-patch+yaml"

# What a DELETE answers, as kube-apiserver's registries do: the deleted object for these
# resources (their OpenAPI says so), a Success Status naming it for the others.
_DELETE_RETURNS_OBJECT = frozenset({"pods", "services", "namespaces"})


def _bearer_token(token: str) -> Middleware:
    """The middleware that turns away requests without `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def authenticate(request: web.Request, handler: AioHandler) -> web.StreamResponse:
        if request.path not in _OPEN_PATHS:
            given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return _error(Unauthorized("Unauthorized"))
        return await handler(request)

    return authenticate


def _patch_pins_version(patch: Any) -> bool:
    if isinstance(patch, dict):
        return bool((patch.get("metadata") or {}).get("resourceVersion"))
    return any(
        isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/resourceVersion")
        for op in patch or ()
    )


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw.strip():
        raise DecodeError("the request body is empty")
    if content_type == protobuf.MEDIA_TYPE:  # kubectl's typed `create` generators send it
        return protobuf.decode(raw)
    if "yaml" in content_type:
        try:
            return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            raise DecodeError(f"error parsing YAML body: {exc}".replace("\n", " ")) from None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"error decoding JSON body: {exc}") from None


async def _read_object(request: web.Request, target: Target) -> codec.Decoded:
    return _decode_object(_parse_body(await request.read(), request.content_type), request,
                          target)


def _decode_object(data: Any, request: web.Request, target: Target) -> codec.Decoded:
    """A request body as the typed object of the URL's kind (with `fieldValidation`)."""
    if not isinstance(data, dict):
        raise DecodeError("the request body must be a JSON object")
    strict = request.query.get("fieldValidation", "") == "Strict"
    decoded = codec.decode(data, strict=strict)
    if decoded.info is not target.info:
        raise BadInput(
            f"the body is a {decoded.info.kind} ({decoded.info.api_version}) but the URL is for "
            f"{target.info.resource} ({target.info.api_version})"
        )
    return decoded


def _place(obj: m.KubeObject, target: Target) -> m.KubeObject:
    """Put the URL's namespace into the object, refusing a body that names another one."""
    if not target.info.namespaced:
        return obj
    ns = obj.metadata.namespace
    if ns and target.namespace and ns != target.namespace:
        raise BadInput(
            f"the namespace of the provided object ({ns}) does not match the namespace sent on "
            f"the request ({target.namespace})"
        )
    namespace = target.namespace or ns
    return msgspec.structs.replace(
        obj, metadata=msgspec.structs.replace(obj.metadata, namespace=namespace)
    )


def _warnings(request: web.Request, decoded: codec.Decoded) -> tuple[str, ...]:
    if request.query.get("fieldValidation", "") == "Ignore":
        return ()
    return decoded.warnings


def _table_request(request: web.Request) -> tables.TableRequest | None:
    return tables.requested_table(request.headers.get("Accept", ""),
                                  request.query.get("includeObject", ""))


def _field_manager(request: web.Request) -> str:
    """Who writes: `?fieldManager=`, else the User-Agent up to its first "/" (as
    kube-apiserver names the managers of clients that name none: `kubectl`,
    `OpenAPI-Generator`)."""
    named = request.query.get("fieldManager", "")
    if named:
        return named
    agent = request.headers.get("User-Agent", "").split("/")[0]
    return "".join(c for c in agent if c.isprintable())[:128]


def _dry_run(request: web.Request) -> bool:
    return "All" in request.query.getall("dryRun", [])


def _filter(target: Target, query: Any) -> Callable[[m.KubeObject], bool]:
    labels = selectors.parse_selector(query.get("labelSelector", ""))
    fields = selectors.parse_field_selector(query.get("fieldSelector", ""))
    fields.check(target.info.kind)
    if labels.empty and fields.empty:
        return _everything
    return lambda obj: labels.matches(obj.metadata.labels) and fields.matches_object(obj)


def _everything(obj: m.KubeObject) -> bool:
    return True


async def _with_ticks(events: AsyncIterator[ObjectEvent], interval: float | None
                      ) -> AsyncIterator[ObjectEvent | None]:
    """The events, and a None every `interval` seconds (none without an interval)."""
    if interval is None:
        async for event in events:
            yield event
        return
    loop = asyncio.get_running_loop()
    next_tick = loop.time() + interval
    pending = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, next_tick - loop.time()))
            if not done:
                next_tick = loop.time() + interval
                yield None
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = asyncio.ensure_future(anext(events))
            yield event
    finally:
        if pending.done():
            pending.exception()  # retrieved: the consumer left, the stream's end is no news
        else:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending


def _event_line(kind: str, obj: Any) -> bytes:
    return msgspec.json.encode({"type": kind, "object": obj}) + b"\n"


def _bookmark(target: Target, revision: int, *, initial_end: bool) -> bytes:
    metadata: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": target.info.kind, "apiVersion": target.info.api_version, "metadata": metadata}
    return msgspec.json.encode({"type": "BOOKMARK", "object": obj}) + b"\n"


async def serve_api(
    server: ApiServer,
    host: str,
    port: int,
    *,
    ready: Callable[[str, int], None] = lambda host, port: None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve until cancelled, over TLS with an `ssl_context`. `ready(host, port)` is called
    once the socket is bound (port 0 binds a free port; `ready` gets the real one)."""
    # A watch waits on the store, not on its client: a stop ends the open ones itself (as
    # kube-apiserver closes its watches) instead of waiting aiohttp's 60 s for them.
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None,
                           shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        ready(bound[0], bound[1])
        await asyncio.Event().wait()
    finally:
        for watch in list(server.watches):
            watch.cancel()
        await runner.cleanup()


