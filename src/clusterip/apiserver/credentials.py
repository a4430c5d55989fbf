"""The API's credentials in the data directory: the clients' bearer token, and its own TLS.

When the API requires a token (see `core.kubeconfig.token_required`) it also serves HTTPS,
because a token must not travel in clear text, and because kubectl (client-go) reads a
kubeconfig's credentials only for an `https://` server: over plain HTTP it would send none.
Without a certificate given to it, the server makes its own, as kube-apiserver does:

* `token`: 32 random bytes (URL-safe base64), made at the first start that needs one, then kept.
* `ca.crt`, `ca.key`: a certificate authority of this server, made once and kept, so that the
  kubeconfigs handed out stay valid across restarts; they carry it as
  `certificate-authority-data`.
* `apiserver.crt`, `apiserver.key`: the serving certificate, issued by that CA at every start
  for the names a client may use: the listen address, loopback, `localhost` and this machine's
  host names. A changed listen address needs no step of its own.

Every file is written atomically with mode 0600. Keys are ECDSA P-256.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clusterip.core.kubeconfig import CA_FILE, LOOPBACK_HOSTS, TOKEN_FILE

__all__ = ["Credentials", "load_credentials", "write_private"]

CA_FILES = (CA_FILE, "ca.key")
SERVING_FILES = ("apiserver.crt", "apiserver.key")
CA_DAYS = 3650
SERVING_DAYS = 365


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    ca_pem: bytes  # what clients verify the server with
    ssl_context: ssl.SSLContext


def load_credentials(data_dir: Path, host: str) -> Credentials:
    """The token and the TLS of an API listening on `host`, made where missing."""
    ca_cert, ca_key = _ca(data_dir)
    cert, key = _issue(ca_cert, ca_key, _names(host))
    cert_path, key_path = (data_dir / name for name in SERVING_FILES)
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    write_private(key_path, _pem(key))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return Credentials(_token(data_dir), ca_cert.public_bytes(serialization.Encoding.PEM),
                       context)


def write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with a file only its owner may read (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # also when an old partial file had another mode
        out.write(data)
    os.replace(partial, path)


def _token(data_dir: Path) -> str:
    path = data_dir / TOKEN_FILE
    token = path.read_text(encoding="utf-8").strip() if path.exists() else ""
    if not token:  # never an empty one: the server would require nothing
        token = secrets.token_urlsafe(32)
        write_private(path, f"{token}\n".encode())
    return token


def _ca(data_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = (data_dir / name for name in CA_FILES)
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"clusterip-ca@{int(_now().timestamp())}")])
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _pem(key))
    write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _issue(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: list[str]
           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clusterip-apiserver")])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), SERVING_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _names(host: str) -> list[str]:
    """The names and addresses a client may reach an API listening on `host` by."""
    names = [host] if host and host not in ("0.0.0.0", "::") else []
    names += [*sorted(LOOPBACK_HOSTS), socket.gethostname(), socket.getfqdn()]
    return list(dict.fromkeys(names))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             days: int) -> x509.CertificateBuilder:
    now = _now()
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))  # clocks disagree a little
            .not_valid_after(now + datetime.timedelta(days=days)))


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign,
        encipher_only=False, decipher_only=False)


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
