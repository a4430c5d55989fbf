"""How clients reach the API: the kubeconfig, and when a bearer token is required.

`clusterip up` and `clusterip apiserver` write `<data-dir>/kubeconfig` at every start, once the
API is bound, so that `KUBECONFIG=<data-dir>/kubeconfig kubectl get svc` works with no other
step. It has one cluster, one user and one context, all named `clusterip`; the cluster's server is
the URL the API was bound at, as a client on this machine reaches it (`client_url`: a wildcard
address becomes loopback, IPv6 goes in brackets).

A token is required (`token_required`) when the API listens anywhere but loopback — with
`--auth auto`, the default, any address other than 127.0.0.1, ::1 and localhost, so also
127.0.0.2 — or always with `--auth token`. Then the API also serves HTTPS with a certificate
authority of its own (`apiserver.credentials`), and the kubeconfig carries both: the token as
the user's `token` (kubectl and the Python client send it as `Authorization: Bearer <token>`;
kubectl sends credentials to `https://` servers only) and the CA as the cluster's
`certificate-authority-data`.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

__all__ = [
    "AUTH_MODES",
    "CA_FILE",
    "KUBECONFIG_FILE",
    "LOOPBACK_HOSTS",
    "NAME",
    "TOKEN_FILE",
    "client_url",
    "kubeconfig",
    "render",
    "token_required",
]

KUBECONFIG_FILE = "kubeconfig"
TOKEN_FILE = "token"
CA_FILE = "ca.crt"
NAME = "clusterip"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
AUTH_MODES = ("auto", "token")
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def token_required(host: str, auth: str) -> bool:
    """Whether an API listening on `host` requires the bearer token, under `--auth` mode
    `auth` ("auto": unless `host` is loopback; "token": always)."""
    return auth == "token" or host not in LOOPBACK_HOSTS


def client_url(host: str, port: int, *, tls: bool) -> str:
    """The URL a client on this machine reaches an API bound to `host`:`port` at."""
    host = _WILDCARDS.get(host, host)
    scheme = "https" if tls else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def kubeconfig(server: str, token: str = "", ca_pem: bytes = b"") -> dict[str, Any]:
    """A kubeconfig whose current context reaches `server`, trusting the certificate authority
    `ca_pem` and sending `token`, if they are given."""
    cluster: dict[str, str] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": NAME, "cluster": cluster}],
        "users": [{"name": NAME, "user": {"token": token} if token else {}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME}}],
        "current-context": NAME,
        "preferences": {},
    }


def render(config: dict[str, Any]) -> str:
    """The kubeconfig as YAML text, keys in the order kubectl writes them."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
