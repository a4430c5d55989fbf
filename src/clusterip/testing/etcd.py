"""A real etcd server for tests and benchmarks: a subprocess on free loopback ports.

    with running_etcd() as etcd:          # or EtcdProcess(...).start() / .stop()
        store = await EtcdStore.open([etcd.endpoint])

`EtcdProcess.start()` runs the apt `etcd-server` binary (3.4) as a one-member cluster whose
client and peer URLs are free ports on 127.0.0.1 (never 2379/2380, where a system etcd may
listen), with its data directory and log in a temporary directory of its own. It waits, under a
deadline, until `/health` answers healthy; ports taken by someone else in the meantime are tried
again with new ones. `stop()` ends the process by its own PID (SIGTERM, then SIGKILL after a
grace period) and deletes the directory; `running_etcd` does that however its block ends.

Watch progress notifications come every 100 ms (etcd's default is 10 minutes), so that tests of
`Store.watch`'s `progress` callback run in well under a second.

`write_tls(directory)` makes a CA, a server certificate for 127.0.0.1 and a client certificate;
`EtcdProcess(tls=...)` then serves https and requires client certificates.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "ETCD_BINARY",
    "EtcdProcess",
    "TlsFiles",
    "find_etcd",
    "free_ports",
    "fresh_prefix",
    "running_etcd",
    "write_tls",
]

ETCD_BINARY = "/usr/bin/etcd"
START_TIMEOUT = 20.0  # seconds for etcd to become healthy
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
START_ATTEMPTS = 3  # fresh ports tried when another process took ours
RESERVED_PORTS = frozenset({2379, 2380})  # a system etcd's


def find_etcd() -> str | None:
    """The etcd binary: the apt package's, else one on PATH; None when there is none."""
    if os.access(ETCD_BINARY, os.X_OK):
        return ETCD_BINARY
    return shutil.which("etcd")


def fresh_prefix() -> str:
    """A key prefix of its own for a store on a shared etcd: no other test sees its keys."""
    return f"/test-{secrets.token_hex(6)}"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports that were free a moment ago (none of RESERVED_PORTS)."""
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < count:
            s = socket.socket()
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in RESERVED_PORTS:
                sockets.pop().close()
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, and a server and a client certificate it issued (with their keys)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca)
        context.load_cert_chain(self.client_cert, self.client_key)
        return context


def write_tls(directory: Path) -> TlsFiles:
    """Make a CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        path.with_suffix(".key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    def issue(common: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
              usage: list[Any], sans: list[x509.GeneralName]
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        issuer, signer = (ca[0].subject, ca[1]) if ca else (name(common), key)
        builder = (x509.CertificateBuilder().subject_name(name(common)).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None),
                                  critical=True))
        if usage:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(signer, hashes.SHA256()), key

    ca = issue("clusterip-test-ca", None, [], [])
    server = issue("etcd", ca, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                   [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])
    client = issue("clusterip", ca, [ExtendedKeyUsageOID.CLIENT_AUTH], [])
    for stem, (cert, key) in (("ca", ca), ("server", server), ("client", client)):
        write(directory / stem, cert, key)
    return TlsFiles(directory / "ca.crt", directory / "server.crt", directory / "server.key",
                    directory / "client.crt", directory / "client.key")


@dataclass
class EtcdProcess:
    """One etcd member on loopback. `start()` it, and `stop()` it in a finally."""

    binary: str = ETCD_BINARY
    tls: TlsFiles | None = None
    progress_interval: str = "100ms"
    workdir: Path | None = None  # None: a fresh temporary directory, deleted by stop()
    client_port: int = 0
    peer_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    _owns_workdir: bool = field(default=False, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        """The client URL, `http://127.0.0.1:PORT` (https with `tls`)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "etcd.log"

    def start(self) -> None:
        """Run etcd and wait until it is healthy. Raises RuntimeError (with its log) if it
        does not become so within START_TIMEOUT; nothing is left running then."""
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="clusterip-etcd-"))
            self._owns_workdir = True
        try:
            for attempt in range(START_ATTEMPTS):
                self.client_port, self.peer_port = free_ports(2)
                self._spawn()
                if self._await_healthy():
                    return
                log = self.log_path.read_text(errors="replace")
                self._end_process()
                if "address already in use" not in log or attempt == START_ATTEMPTS - 1:
                    raise RuntimeError(f"etcd did not become healthy; its log:\n{log[-4000:]}")
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        assert self.workdir is not None
        data_dir = self.workdir / "data"
        shutil.rmtree(data_dir, ignore_errors=True)  # a failed attempt's
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.binary, "--name", "clusterip-test", "--data-dir", str(data_dir),
            "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"clusterip-test={peer}", "--initial-cluster-state", "new",
            "--logger", "zap", "--log-level", "warn", "--log-outputs", "stderr",
            "--experimental-watch-progress-notify-interval", self.progress_interval,
        ]
        if self.tls:
            args += ["--cert-file", str(self.tls.server_cert), "--key-file",
                     str(self.tls.server_key), "--trusted-ca-file", str(self.tls.ca),
                     "--client-cert-auth"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed by _end_process
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)

    def healthy(self) -> bool:
        """Whether etcd answers `/health` with `"health": "true"` right now."""
        context = self.tls.client_context() if self.tls else None
        try:
            with urllib.request.urlopen(self.endpoint + "/health", timeout=1,
                                        context=context) as response:
                return bool(json.load(response).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _await_healthy(self) -> bool:
        """Poll `/health` until it says healthy (True), or etcd exits or the deadline passes."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            if self.healthy():
                return True
            time.sleep(0.05)
        return False

    def _end_process(self) -> None:
        """SIGTERM our etcd (by its PID), SIGKILL it after STOP_TIMEOUT, and reap it."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """End the process and delete the temporary directory. Idempotent."""
        self._end_process()
        if self._owns_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
            self._owns_workdir = False


@contextlib.contextmanager
def running_etcd(**options: Any) -> Iterator[EtcdProcess]:
    """An etcd for the duration of the block, stopped and deleted however the block ends."""
    etcd = EtcdProcess(binary=find_etcd() or ETCD_BINARY, **options)
    etcd.start()
    try:
        yield etcd
    finally:
        etcd.stop()
