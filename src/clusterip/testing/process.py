"""A real `clusterip apiserver` process, driven from tests and benchmarks.

`ServerProcess.start()` runs `clusterip apiserver --data-dir <tmp> --listen 127.0.0.1:0` (or
another `listen` address), reads the API's URL from its "API ready" line, and `stop()` ends it
by its PID (the owner calls it in a finally). `restart()` stops it (SIGTERM, or SIGKILL with
`kill=True`) and starts it again on the same data directory. `cli(...)` runs
`python -m clusterip --server <url> ...` and returns the CompletedProcess.

A server off loopback serves https and requires its token (see `apiserver.credentials`):
`request` and `cli` then send the token of the data directory and trust its CA, unless a test
passes `token=` itself ("" for none).
"""

from __future__ import annotations

import json
import selectors
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterip.core.kubeconfig import CA_FILE, KUBECONFIG_FILE, TOKEN_FILE
from clusterip.core.naming import pod_id

__all__ = ["Node", "ServerProcess", "eventually"]

READY_PREFIX = "clusterip: API ready on "
START_TIMEOUT = 20.0


@dataclass
class ServerProcess:
    data_dir: Path
    log_path: Path
    url: str = ""
    proc: subprocess.Popen[str] | None = None
    command: tuple[str, ...] = ("apiserver",)  # or ("up", "--netns", NAME)
    listen: str = "127.0.0.1:0"
    _log: Any = field(default=None, repr=False)

    def start(self) -> None:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clusterip", *self.command, "--data-dir", str(self.data_dir),
             "--listen", self.listen],
            stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        self.url = self._await_ready()

    @property
    def kubeconfig(self) -> Path:
        """The kubeconfig the server wrote into its data directory."""
        return self.data_dir / KUBECONFIG_FILE

    @property
    def token(self) -> str:
        """The bearer token the server requires ("" when it requires none)."""
        if not self.url.startswith("https:"):
            return ""
        return (self.data_dir / TOKEN_FILE).read_text().strip()

    @property
    def ca_file(self) -> Path:
        """The CA an https server's certificate is verified against."""
        return self.data_dir / CA_FILE

    def _await_ready(self) -> str:
        assert self.proc and self.proc.stdout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=deadline - time.monotonic()):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
        finally:
            sel.close()
        self.stop(kill=True)
        raise AssertionError(f"apiserver did not become ready; log:\n{self.log_path.read_text()}")

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None
        if self._log:
            self._log.close()

    def restart(self, *, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()

    # --- a tiny HTTP client -------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", *, token: str | None = None
                ) -> tuple[int, Any]:
        """Send one request; `token` None sends the server's own (if it requires one)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        token = self.token if token is None else token
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        tls = (ssl.create_default_context(cafile=self.ca_file)
               if self.url.startswith("https:") else None)
        try:
            with urllib.request.urlopen(req, timeout=10, context=tls) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        access = (["--token", self.token, "--certificate-authority", str(self.ca_file)]
                  if self.token else [])
        return subprocess.run(
            [sys.executable, "-m", "clusterip", "--server", self.url, *access, *args],
            capture_output=True, text=True, input=input, timeout=60,
        )


def eventually(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns a truthy value, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: last value {value!r}")
        time.sleep(interval)


@dataclass
class Node:
    """A running all-in-one server whose node lives in the network namespace `netns`."""

    server: ServerProcess
    netns: str
    state: Path  # a folder the pods' programs write markers to
    dns: tuple[str, int] = ("127.0.0.1", 0)  # the cluster DNS's listener outside the node

    def pod_netns(self, uid: str) -> str:
        """The network namespace the node agent made for the pod with this uid."""
        return f"{self.netns}-pod-{pod_id(uid)}"
