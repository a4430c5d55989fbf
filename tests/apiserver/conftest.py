"""The `api` fixture: an in-process API server over a MemoryStore (see clusterip.testing.api)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from clusterip.testing.api import TestApi, open_test_api


@pytest.fixture
async def api() -> AsyncIterator[TestApi]:
    async with open_test_api() as test_api:
        yield test_api
