"""The version, discovery and OpenAPI endpoints over HTTP (the documents are `core.discovery`'s
and `core.openapi`'s).

`/api` and `/apis` answer in the form the Accept header asks for first: kubectl sends
`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList, ...v2beta1...,
application/json` and gets the aggregated document under exactly that content type; a plain
`application/json` (or no Accept) gets the legacy one. Both carry `Vary: Accept`, for caches.

`/openapi/v3` is the index and `/openapi/v3/{api/v1|apis/GROUP/VERSION}` the documents, encoded
once per process. There is no `/openapi/v2`: a 404 is what kubectl expects when a server has
only v3 (it would ask v2 for protobuf).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import msgspec
from aiohttp import web

from clusterip.apiserver.status import status_body
from clusterip.core import discovery, openapi
from clusterip.core.mediatypes import parse_accept

__all__ = ["Discovery"]

JSON_TYPE = "application/json"
_AGGREGATED_PARAMS = {"g": "apidiscovery.k8s.io", "v": "v2", "as": "APIGroupDiscoveryList"}
_VARY = {"Vary": "Accept"}  # /api and /apis answer by the Accept header


def _json(body: Any, status: int = 200, content_type: str = JSON_TYPE,
          headers: dict[str, str] | None = None) -> web.Response:
    response = web.Response(body=msgspec.json.encode(body), status=status, headers=headers)
    response.headers["Content-Type"] = content_type  # verbatim: kubectl matches it exactly
    return response


def _not_found() -> web.Response:
    return _json(status_body(404, "NotFound", "the server could not find the requested resource"),
                 status=404)


def _wants_aggregated(accept: str) -> bool:
    """Whether the first media range of an Accept header that this server can answer is the
    aggregated discovery document (else: the legacy one)."""
    for media_range in parse_accept(accept):
        if not media_range.json:
            continue
        if not media_range.converted:
            return False
        if all(media_range.params.get(k) == v for k, v in _AGGREGATED_PARAMS.items()):
            return True
    return False


class Discovery:
    """The handlers; the OpenAPI documents list `patch_types`, the PATCH content types the
    server accepts."""

    def __init__(self, patch_types: Iterable[str]) -> None:
        self._patch_types = tuple(patch_types)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/version", self.version)
        app.router.add_get("/api", self.core_group)
        app.router.add_get("/apis", self.named_groups)
        app.router.add_get("/api/{version}", self.resource_list)
        app.router.add_get("/apis/{group}/{version}", self.resource_list)
        app.router.add_get("/openapi/v3", self.openapi_index)
        app.router.add_get("/openapi/v3/{path:.+}", self.openapi_document)

    async def version(self, request: web.Request) -> web.Response:
        return _json(discovery.VERSION_INFO)

    async def core_group(self, request: web.Request) -> web.Response:
        if _wants_aggregated(request.headers.get("Accept", "")):
            return _json(discovery.aggregated_discovery(core=True),
                         content_type=discovery.AGGREGATED_CONTENT_TYPE, headers=_VARY)
        return _json(discovery.api_versions(request.host), headers=_VARY)

    async def named_groups(self, request: web.Request) -> web.Response:
        if _wants_aggregated(request.headers.get("Accept", "")):
            return _json(discovery.aggregated_discovery(core=False),
                         content_type=discovery.AGGREGATED_CONTENT_TYPE, headers=_VARY)
        return _json(discovery.api_group_list(), headers=_VARY)

    async def resource_list(self, request: web.Request) -> web.Response:
        body = discovery.api_resource_list(request.match_info.get("group", ""),
                                           request.match_info["version"])
        return _not_found() if body is None else _json(body)

    async def openapi_index(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi()[0], content_type=JSON_TYPE)

    async def openapi_document(self, request: web.Request) -> web.Response:
        body = self._openapi()[1].get(request.match_info["path"])
        if body is None:
            return _not_found()
        return web.Response(body=body, content_type=JSON_TYPE)

    def _openapi(self) -> tuple[bytes, dict[str, bytes]]:
        return _encoded_openapi(self._patch_types)


@functools.cache
def _encoded_openapi(patch_types: tuple[str, ...]) -> tuple[bytes, dict[str, bytes]]:
    """The index and the documents, encoded: built on the first request, once per process."""
    docs = {path: msgspec.json.encode(doc)
            for path, doc in openapi.documents(patch_types).items()}
    return msgspec.json.encode(openapi.index(docs)), docs
