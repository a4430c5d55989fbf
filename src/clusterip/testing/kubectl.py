"""The real `kubectl`, run against a `ServerProcess` with the kubeconfig the server wrote.

    kubectl = Kubectl(server, cache_dir=tmp / "kubectl-cache")
    result = kubectl("get", "svc", "-A")          # a CompletedProcess

`KUBECONFIG` is the server's own `<data-dir>/kubeconfig`, nothing else is configured: that file
is all a user needs. kubectl caches discovery and OpenAPI on disk (`--cache-dir`); give each
test a directory of its own, or one test's discovery requests are hidden from the next.

/usr/bin/kubectl on these machines is a dispatcher that runs the kubectl binary matching the
server's minor version (1.32). `KUBECTL` is None where no kubectl is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from clusterip.testing.process import ServerProcess

__all__ = ["KUBECTL", "Kubectl"]

KUBECTL = shutil.which("kubectl")
TIMEOUT = 60.0


@dataclass
class Kubectl:
    server: ServerProcess
    cache_dir: Path

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl is not installed"
        return subprocess.run(
            [KUBECTL, f"--cache-dir={self.cache_dir}", *args],
            env={**os.environ, "KUBECONFIG": str(self.server.kubeconfig)},
            capture_output=True, text=True, input=input, timeout=TIMEOUT,
            stdin=subprocess.DEVNULL if input is None else None,  # never the terminal's
        )
