"""The real `kubectl`, run against a `ServerProcess` with the kubeconfig the server wrote.

    kubectl = Kubectl(server, cache_dir=tmp / "kubectl-cache")
    result = kubectl("get", "svc", "-A")          # a CompletedProcess
    with kubectl.background("get", "pods", "-w") as watch:
        watch.wait_for("p1 ")                     # its output so far, once "p1 " is in it
    columns(result.stdout)                        # {NAME cell: {HEADER: cell}}

`KUBECONFIG` is the server's own `<data-dir>/kubeconfig`, nothing else is configured: that file
is all a user needs. kubectl caches discovery and OpenAPI on disk (`--cache-dir`); give each
test a directory of its own, or one test's discovery requests are hidden from the next. A
background kubectl (`get -w`) is killed by its PID when its `with` block ends.

/usr/bin/kubectl on these machines is a dispatcher that runs the kubectl binary matching the
server's minor version (1.32). `KUBECTL` is None where no kubectl is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from clusterip.testing.process import ServerProcess

__all__ = ["KUBECTL", "Background", "Kubectl", "columns"]

KUBECTL = shutil.which("kubectl")
TIMEOUT = 60.0


@dataclass
class Kubectl:
    server: ServerProcess
    cache_dir: Path

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None, "kubectl is not installed"
        return subprocess.run(
            self._command(args), env=self._env(), capture_output=True, text=True, input=input,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL if input is None else None,  # never the terminal's
        )

    @contextmanager
    def background(self, *args: str) -> Iterator[Background]:
        """kubectl running while the block runs (a `get -w`); killed by its PID at the end."""
        proc = subprocess.Popen(self._command(args), env=self._env(), text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        running = Background(proc)
        try:
            yield running
        finally:
            proc.kill()
            proc.wait(timeout=10)
            running.reader.join(timeout=10)
            assert proc.stdout is not None
            proc.stdout.close()

    def _command(self, args: tuple[str, ...]) -> list[str]:
        assert KUBECTL is not None, "kubectl is not installed"
        return [KUBECTL, f"--cache-dir={self.cache_dir}", *args]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.server.kubeconfig)}


@dataclass
class Background:
    """A kubectl in the background; its output (stdout and stderr) is read as it comes."""

    proc: subprocess.Popen[str]
    chunks: list[str] = field(default_factory=list)
    reader: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.chunks.append(line)

    @property
    def output(self) -> str:
        return "".join(self.chunks)

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """The output so far, once the regular expression `pattern` matches it (or fail)."""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.output, re.MULTILINE):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"kubectl printed no {pattern!r} within {timeout} s "
                                     f"(exit code {self.proc.poll()}):\n{self.output}")
            time.sleep(0.05)
        return self.output


def columns(text: str, key: str = "NAME") -> dict[str, dict[str, str]]:
    """kubectl's column output, one table (no blank lines), by the cell of the `key` column:
    each row is {HEADER: cell}, empty cells "". Headers may hold one space (`NOMINATED NODE`);
    columns are at least two spaces apart."""
    header, *lines = text.splitlines()
    found = list(re.finditer(r"\S+(?: \S+)*", header))
    starts = [m.start() for m in found]
    names = [m.group() for m in found]
    rows = {}
    for line in lines:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        row = dict(zip(names, cells, strict=True))
        rows[row[key]] = row
    return rows
