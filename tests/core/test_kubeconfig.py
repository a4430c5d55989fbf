"""When the API requires a token, the URL a client uses, and the kubeconfig it gets."""

from __future__ import annotations

import base64

import pytest
import yaml

from clusterip.core.kubeconfig import client_url, kubeconfig, render, token_required


@pytest.mark.parametrize(("host", "auth", "required"), [
    pytest.param("127.0.0.1", "auto", False, id="loopback"),
    pytest.param("::1", "auto", False, id="loopback-v6"),
    pytest.param("localhost", "auto", False, id="localhost"),
    pytest.param("127.0.0.2", "auto", True, id="other-loopback-address"),
    pytest.param("0.0.0.0", "auto", True, id="every-address"),
    pytest.param("::", "auto", True, id="every-address-v6"),
    pytest.param("192.0.2.7", "auto", True, id="an-interface"),
    pytest.param("127.0.0.1", "token", True, id="asked-for"),
])
def test_token_required(host: str, auth: str, required: bool) -> None:
    assert token_required(host, auth) is required


@pytest.mark.parametrize(("host", "tls", "url"), [
    pytest.param("127.0.0.1", False, "http://127.0.0.1:7080", id="loopback"),
    pytest.param("192.0.2.7", True, "https://192.0.2.7:7080", id="tls"),
    pytest.param("0.0.0.0", True, "https://127.0.0.1:7080", id="wildcard"),
    pytest.param("::", True, "https://[::1]:7080", id="wildcard-v6"),
    pytest.param("::1", False, "http://[::1]:7080", id="v6-in-brackets"),
    pytest.param("localhost", False, "http://localhost:7080", id="name"),
])
def test_client_url(host: str, tls: bool, url: str) -> None:
    assert client_url(host, 7080, tls=tls) == url


def test_a_kubeconfig_without_credentials() -> None:
    config = yaml.safe_load(render(kubeconfig("http://127.0.0.1:7080")))
    assert config == {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "clusterip", "cluster": {"server": "http://127.0.0.1:7080"}}],
        "users": [{"name": "clusterip", "user": {}}],
        "contexts": [{"name": "clusterip",
                      "context": {"cluster": "clusterip", "user": "clusterip"}}],
        "current-context": "clusterip",
        "preferences": {},
    }


def test_a_kubeconfig_with_token_and_ca() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    config = yaml.safe_load(render(kubeconfig("https://192.0.2.7:7080", "tok", pem)))
    cluster = config["clusters"][0]["cluster"]
    assert base64.b64decode(cluster.pop("certificate-authority-data")) == pem
    assert cluster == {"server": "https://192.0.2.7:7080"}
    assert config["users"] == [{"name": "clusterip", "user": {"token": "tok"}}]
