"""The kubeconfig a server writes, and the token and TLS it requires off loopback.

On 127.0.0.1 the server writes `<data-dir>/kubeconfig` for its http URL and asks for nothing.
Bound to any other address (127.0.0.2 here) it serves https with a CA of its own, requires the
token it keeps in the data directory, and writes both into the kubeconfig; a restart keeps
token and CA, so the kubeconfigs handed out stay good. The Python `kubernetes` client and the
clusterip CLI work with them. (kubectl: tests/kubectl/test_kubectl_auth.py.)
"""

from __future__ import annotations

import socket
import ssl
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from kubernetes import client, config

from clusterip.testing.process import ServerProcess


@pytest.fixture
def off_loopback(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir=tmp_path / "data", log_path=tmp_path / "apiserver.log",
                           listen="127.0.0.2:0")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def service_names(kubeconfig: Path) -> set[str]:
    """The Python client, configured by nothing but the kubeconfig."""
    with config.new_client_from_config(config_file=str(kubeconfig)) as api:
        services = client.CoreV1Api(api).list_service_for_all_namespaces().items
    return {s.metadata.name for s in services}


def clusterip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clusterip", *args], capture_output=True,
                          text=True, timeout=60)


def test_on_loopback_the_kubeconfig_names_the_url_and_no_credentials(
        server: ServerProcess) -> None:
    written = yaml.safe_load(server.kubeconfig.read_text())
    assert written["clusters"] == [{"name": "clusterip", "cluster": {"server": server.url}}]
    assert written["users"] == [{"name": "clusterip", "user": {}}]
    assert written["current-context"] == "clusterip"
    assert mode(server.kubeconfig) == 0o600
    assert not (server.data_dir / "token").exists()
    assert {"kubernetes", "kube-dns"} <= service_names(server.kubeconfig)


def test_clusterip_kubeconfig_prints_the_written_one_or_one_for_a_url(
        server: ServerProcess) -> None:
    printed = clusterip("kubeconfig", "--data-dir", str(server.data_dir))
    assert (printed.returncode, printed.stdout) == (0, server.kubeconfig.read_text())
    other = clusterip("kubeconfig", "--server", "http://192.0.2.7:7080")
    assert yaml.safe_load(other.stdout)["clusters"][0]["cluster"] == {
        "server": "http://192.0.2.7:7080"}
    missing = clusterip("kubeconfig", "--data-dir", str(server.data_dir / "nope"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr


def test_off_loopback_every_request_but_health_needs_the_token(
        off_loopback: ServerProcess) -> None:
    assert off_loopback.url.startswith("https://127.0.0.2:")
    for token in ("", "not-the-token"):
        for path in ("/version", "/api", "/openapi/v3", "/api/v1/namespaces/default/services"):
            status, body = off_loopback.request("GET", path, token=token)
            assert (status, body["reason"]) == (401, "Unauthorized"), path
    status, body = off_loopback.request("GET", "/api/v1/namespaces/default/services")
    assert status == 200 and body["kind"] == "ServiceList"
    tls = ssl.create_default_context(cafile=off_loopback.ca_file)
    for path in ("/healthz", "/livez", "/readyz"):
        with urllib.request.urlopen(off_loopback.url + path, context=tls, timeout=10) as resp:
            assert resp.status == 200


def test_off_loopback_plain_http_and_unknown_certificates_get_nowhere(
        off_loopback: ServerProcess) -> None:
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(off_loopback.url + "/healthz", timeout=10)
    plain = off_loopback.url.replace("https:", "http:")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain + "/healthz", timeout=10)


def test_off_loopback_the_kubeconfig_carries_token_and_ca(off_loopback: ServerProcess) -> None:
    written = yaml.safe_load(off_loopback.kubeconfig.read_text())
    assert written["users"][0]["user"] == {"token": off_loopback.token}
    assert written["clusters"][0]["cluster"]["server"] == off_loopback.url
    for name in ("kubeconfig", "token", "ca.crt", "ca.key", "apiserver.crt", "apiserver.key"):
        assert mode(off_loopback.data_dir / name) == 0o600, name
    assert {"kubernetes", "kube-dns"} <= service_names(off_loopback.kubeconfig)


def test_a_restart_keeps_token_and_ca(off_loopback: ServerProcess, tmp_path: Path) -> None:
    before = off_loopback.kubeconfig.read_text()
    token, ca = off_loopback.token, off_loopback.ca_file.read_bytes()
    off_loopback.restart()
    assert (off_loopback.token, off_loopback.ca_file.read_bytes()) == (token, ca)
    # a kubeconfig handed out before the restart, pointed at the new port, still works
    handed_out = yaml.safe_load(before)
    handed_out["clusters"][0]["cluster"]["server"] = off_loopback.url
    kept = tmp_path / "handed-out"
    kept.write_text(yaml.safe_dump(handed_out))
    assert "kubernetes" in service_names(kept)


def test_the_cli_with_token_and_ca(off_loopback: ServerProcess, tmp_path: Path) -> None:
    listed = off_loopback.cli("get", "svc", "-A", "-o", "name")  # sends both
    assert listed.returncode == 0, listed.stderr
    assert "service/kube-dns" in listed.stdout.split()
    refused = clusterip("--server", off_loopback.url, "--certificate-authority",
                        str(off_loopback.ca_file), "get", "svc")
    assert refused.returncode == 1
    assert "Unauthorized" in refused.stderr
    printed = clusterip("kubeconfig", "--data-dir", str(off_loopback.data_dir),
                        "--server", off_loopback.url)
    assert printed.returncode == 0, printed.stderr
    rebuilt = tmp_path / "rebuilt"
    rebuilt.write_text(printed.stdout)
    assert "kubernetes" in service_names(rebuilt)


def test_the_certificate_names_the_listen_address_and_this_machine(
        off_loopback: ServerProcess) -> None:
    cert = x509.load_pem_x509_certificate((off_loopback.data_dir / "apiserver.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    addresses = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.2", "127.0.0.1", "::1"} <= addresses
    assert {"localhost", socket.gethostname()} <= set(names.get_values_for_type(x509.DNSName))
