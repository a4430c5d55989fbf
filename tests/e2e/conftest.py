"""The `server` fixture: a real `clusterip apiserver` process on a free loopback port, on a
data directory of the test's own, stopped by its PID at the end, pass or fail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterip.testing.process import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log")
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
