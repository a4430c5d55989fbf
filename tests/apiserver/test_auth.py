"""Bearer token authentication: with a token, every request but the health checks needs it.

A request without it, or with another one, gets kube-apiserver's 401 Status and changes nothing.
(TLS, which a token always comes with, is the server process's: tests/e2e/test_kubeconfig.py.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clusterip.testing.api import TestApi as Api
from clusterip.testing.api import open_test_api

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-t0ken"
GUARDED = ["/version", "/api", "/apis", "/api/v1", "/openapi/v3", "/api/v1/services",
           "/api/v1/namespaces/default/services/kubernetes", "/api/v1/pods?watch=true"]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with open_test_api(token=TOKEN) as test_api:
        yield test_api


@pytest.mark.parametrize("authorization", [
    pytest.param(None, id="none"),
    pytest.param("Bearer wrong", id="another-token"),
    pytest.param(f"Bearer {TOKEN}x", id="longer"),
    pytest.param(TOKEN, id="no-scheme"),
    pytest.param(f"Basic {TOKEN}", id="basic"),
    pytest.param("Bearer t\u00f6ken", id="not-ascii"),
])
async def test_requests_without_the_token_get_401(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for path in GUARDED:
        resp = await api.http.get(path, headers=headers)
        assert resp.status == 401, path
        assert await resp.json() == {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Unauthorized", "reason": "Unauthorized", "code": 401}
    before = await api.store.revision()
    resp = await api.http.post("/api/v1/namespaces", headers=headers, json={
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
    assert resp.status == 401
    assert await api.store.revision() == before


async def test_requests_with_the_token_are_served(api: Api) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for path in GUARDED[:-1]:
        resp = await api.http.get(path, headers=headers)
        assert resp.status == 200, path


async def test_health_checks_need_no_token(api: Api) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        assert (await api.http.get(path)).status == 200
