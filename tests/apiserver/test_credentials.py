"""The API's credentials in its data directory: a token and a CA made once and kept, a serving
certificate issued by that CA at every start for the names clients use."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from cryptography import x509

from clusterip.apiserver.credentials import load_credentials


def serving_names(data_dir: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate((data_dir / "apiserver.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} | set(
        sans.get_values_for_type(x509.DNSName))


def test_token_and_ca_are_made_once_and_kept(tmp_path: Path) -> None:
    first = load_credentials(tmp_path, "127.0.0.2")
    again = load_credentials(tmp_path, "192.0.2.7")
    assert len(first.token) >= 40 and again.token == first.token
    assert again.ca_pem == first.ca_pem
    assert (tmp_path / "token").read_text() == f"{first.token}\n"
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_the_serving_certificate_follows_the_listen_address(tmp_path: Path) -> None:
    load_credentials(tmp_path, "127.0.0.2")
    assert {"127.0.0.2", "127.0.0.1", "::1", "localhost"} <= serving_names(tmp_path)
    load_credentials(tmp_path, "192.0.2.7")
    assert "192.0.2.7" in serving_names(tmp_path)
    assert "127.0.0.2" not in serving_names(tmp_path)
    load_credentials(tmp_path, "0.0.0.0")
    assert "0.0.0.0" not in serving_names(tmp_path)


def test_the_certificate_verifies_against_the_ca(tmp_path: Path) -> None:
    credentials = load_credentials(tmp_path, "127.0.0.2")
    assert credentials.ssl_context.protocol == ssl.PROTOCOL_TLS_SERVER
    ca = x509.load_pem_x509_certificate(credentials.ca_pem)
    cert = x509.load_pem_x509_certificate((tmp_path / "apiserver.crt").read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if not


def test_an_empty_token_file_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    assert load_credentials(tmp_path, "127.0.0.2").token.strip()
