"""Suite-wide rules: a test marked `root` that is skipped fails the run when CI=true.

CI runs as root, so a skipped root test there means the environment is broken, not that the
test does not apply.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.skipped and item.get_closest_marker("root") and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"root test skipped under CI: {report.longrepr}"
    return report


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
