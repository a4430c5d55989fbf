"""A real etcd server for tests and benchmarks: a subprocess on free loopback ports.

    with running_etcd() as etcd:          # or EtcdProcess(...).start() / .stop()
        store = await EtcdStore.open([etcd.endpoint])

`EtcdProcess.start()` runs the apt `etcd-server` binary (3.4) as a one-member cluster whose
client and peer URLs are free ports on 127.0.0.1 (never 2379/2380, where a system etcd may
listen), with its data directory and log in a temporary directory of its own. The process work
is `clusterip.etcdcluster`'s (a cluster of one member): it waits, under a deadline, until
`/health` answers healthy, and ports taken by someone else in the meantime are tried again with
new ones. `stop()` ends the process by its own PID (SIGTERM, then SIGKILL after a grace period)
and deletes the directory; `running_etcd` does that however its block ends. Clusters of three
members, for fault tests, are `clusterip.etcdcluster.start_etcd_cluster`'s.

Watch progress notifications come every 100 ms (etcd's default is 10 minutes), so that tests of
`Store.watch`'s `progress` callback run in well under a second.

`write_tls(directory)` makes a CA, a server certificate for 127.0.0.1 and a client certificate;
`EtcdProcess(tls=...)` then serves https and requires client certificates.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterip.core.clusterplan import ETCD_BINARY, EtcdMember, EtcdTlsFiles
from clusterip.etcdcluster import (
    EtcdCluster,
    find_etcd,
    free_ports,
    start_etcd_cluster,
)

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

START_TIMEOUT = 20.0  # seconds for etcd to become healthy
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
START_ATTEMPTS = 3  # fresh ports tried when another process took ours


def fresh_prefix() -> str:
    """A key prefix of its own for a store on a shared etcd: no other test sees its keys."""
    return f"/test-{secrets.token_hex(6)}"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: a CA, and a server and a client certificate it issued (with their keys)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def files(self) -> EtcdTlsFiles:
        """The same files, as `clusterip.etcdcluster` takes them."""
        return EtcdTlsFiles(ca_file=str(self.ca), cert_file=str(self.server_cert),
                            key_file=str(self.server_key), client_cert_file=str(self.client_cert),
                            client_key_file=str(self.client_key))

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
    """One etcd member on loopback (a `clusterip.etcdcluster` cluster of one). `start()` it,
    and `stop()` it in a finally."""

    binary: str = ETCD_BINARY
    tls: TlsFiles | None = None
    progress_interval: str = "100ms"
    workdir: Path | None = None  # None: a fresh temporary directory, deleted by stop()
    cluster: EtcdCluster | None = None
    _owns_workdir: bool = field(default=False, repr=False)

    @property
    def member(self) -> EtcdMember:
        assert self.cluster is not None, "etcd is not started"
        return self.cluster.plan.members[0]

    @property
    def endpoint(self) -> str:
        """The client URL, `http://127.0.0.1:PORT` (https with `tls`)."""
        return self.member.client_url

    @property
    def client_port(self) -> int:
        return self.member.client_port

    @property
    def peer_port(self) -> int:
        return self.member.peer_port

    @property
    def log_path(self) -> Path:
        return Path(self.member.log_file)

    def start(self) -> None:
        """Run etcd and wait until it is healthy. Raises EtcdError (with its log) if it does
        not become so within START_TIMEOUT; nothing is left running then."""
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="clusterip-etcd-"))
            self._owns_workdir = True
        try:
            self.cluster = start_etcd_cluster(
                self.workdir, members=1, token="clusterip-test", binary=self.binary,
                tls=self.tls.files() if self.tls else None,
                progress_interval=self.progress_interval, start_timeout=START_TIMEOUT,
                stop_timeout=STOP_TIMEOUT, attempts=START_ATTEMPTS)
        except BaseException:
            self.stop()
            raise

    def healthy(self) -> bool:
        """Whether etcd answers `/health` with `"health": "true"` right now."""
        return self.cluster is not None and self.cluster.healthy(self.member.name)

    def stop(self) -> None:
        """End the process and delete the temporary directory. Idempotent."""
        if self.cluster is not None:
            self.cluster.stop()
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
