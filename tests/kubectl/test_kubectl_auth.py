"""kubectl with the kubeconfig clusterip writes, on loopback and off it.

On 127.0.0.1 the API asks for nothing. Anywhere else (127.0.0.2 here: only 127.0.0.1, ::1 and
localhost count as loopback) it serves https with a CA of its own and requires a bearer token;
the kubeconfig it writes carries both, so kubectl needs no other step.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clusterip.testing.kubectl import Kubectl

OFF_LOOPBACK = pytest.mark.parametrize("kubectl", ["127.0.0.2:0"], indirect=True)


def clusterip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clusterip", *args], capture_output=True,
                          text=True, timeout=60)


def test_on_loopback_the_kubeconfig_needs_no_credentials(kubectl: Kubectl) -> None:
    config = yaml.safe_load(kubectl.server.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"] == {"server": kubectl.server.url}
    assert config["users"][0]["user"] == {}
    result = kubectl("get", "svc", "-A")
    assert result.returncode == 0, result.stderr
    assert {"kubernetes", "kube-dns"} <= set(result.stdout.split())


def test_clusterip_kubeconfig_prints_one_for_a_server_url(kubectl: Kubectl, tmp_path: Path
                                                          ) -> None:
    printed = clusterip("kubeconfig", "--server", kubectl.server.url)
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "printed-kubeconfig"
    path.write_text(printed.stdout)
    result = kubectl("--kubeconfig", str(path), "get", "ns", "-o", "name")
    assert result.returncode == 0, result.stderr
    assert "namespace/kube-system" in result.stdout.split()


@OFF_LOOPBACK
def test_off_loopback_kubectl_works_with_the_written_kubeconfig(kubectl: Kubectl) -> None:
    assert kubectl.server.url.startswith("https://127.0.0.2:")
    config = yaml.safe_load(kubectl.server.kubeconfig.read_text())
    assert config["users"][0]["user"] == {"token": kubectl.server.token}
    assert config["clusters"][0]["cluster"]["certificate-authority-data"]
    for args in (("version",), ("api-resources", "-o", "name"), ("get", "svc", "-A")):
        result = kubectl(*args)
        assert result.returncode == 0, (args, result.stderr)
    assert "kube-dns" in kubectl("get", "svc", "-n", "kube-system").stdout


@OFF_LOOPBACK
def test_off_loopback_kubectl_with_another_token_is_turned_away(kubectl: Kubectl,
                                                               tmp_path: Path) -> None:
    printed = clusterip("--token", "not-the-token", "--certificate-authority",
                        str(kubectl.server.ca_file), "kubeconfig", "--server", kubectl.server.url)
    assert printed.returncode == 0, printed.stderr
    path = tmp_path / "wrong-token"
    path.write_text(printed.stdout)
    result = kubectl("--kubeconfig", str(path), "get", "svc")
    assert result.returncode == 1
    assert "error: You must be logged in to the server" in result.stderr
