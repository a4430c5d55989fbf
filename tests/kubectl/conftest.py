"""The `kubectl` fixture: the real kubectl against a real `clusterip apiserver` process.

It starts a server on a free loopback port (parametrize it indirectly with another `--listen`
address, e.g. "127.0.0.2:0" for a server that requires a token) and is a function:
`kubectl(*args, input=None)` runs kubectl with `KUBECONFIG` set to the kubeconfig the server
wrote, and returns the CompletedProcess; `kubectl.server` is the ServerProcess (see
clusterip.testing.kubectl). The tests skip, saying so, only when no kubectl is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterip.testing.kubectl import KUBECTL, Kubectl
from clusterip.testing.process import ServerProcess


@pytest.fixture
def kubectl(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Kubectl]:
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: these tests drive the real kubectl")
    server = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log",
                           listen=getattr(request, "param", "127.0.0.1:0"))
    server.start()
    try:
        yield Kubectl(server, tmp_path / "kubectl-cache")
    finally:
        server.stop()
