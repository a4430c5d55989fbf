"""Kubernetes' own example manifests for Services and Deployments (tests/data/k8s-docs, copied
byte for byte from its documentation) apply unchanged, with kubectl's default validation against
clusterip's OpenAPI documents: each in a namespace of its own, created, then unchanged when
applied again, and the objects read back as the manifests say."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import yaml

from clusterip.testing.kubectl import Kubectl

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
DOCS = Path(__file__).parent.parent / "data" / "k8s-docs"

# manifests that belong together (a Service and its hand-made EndpointSlice) share a namespace
GROUPS = {
    "concepts-service-without-selector": ["concepts-service-without-selector.yaml",
                                          "concepts-service-without-selector-endpointslice.yaml"],
    **{path.stem: [path.name] for path in sorted(DOCS.glob("*.yaml"))
       if not path.stem.startswith("concepts-service-without-selector")},
}


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DOCS / name).read_text()) if d]


def kubectl_name(manifest: dict[str, Any]) -> str:
    """How kubectl names an object in its output: `service/web`, `deployment.apps/web`."""
    group = manifest["apiVersion"].rpartition("/")[0]
    kind = manifest["kind"].lower() + (f".{group}" if group else "")
    return f"{kind}/{manifest['metadata']['name']}"


def test_every_example_manifest_applies_unchanged(kubectl: Kubectl) -> None:
    for index, (group, files) in enumerate(GROUPS.items()):
        namespace = f"docs-{index}"
        ok(kubectl("apply", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\n"
                                               f"metadata: {{name: {namespace}}}\n"))
        manifests = [d for name in files for d in documents(name)]
        names = [kubectl_name(d) for d in manifests]
        args = [arg for name in files for arg in ("-f", str(DOCS / name))]

        created = ok(kubectl("apply", "-n", namespace, *args)).splitlines()
        again = ok(kubectl("apply", "-n", namespace, *args)).splitlines()

        assert created == [f"{n} created" for n in names], group
        assert again == [f"{n} unchanged" for n in names], group
        for manifest, name in zip(manifests, names, strict=True):
            live = json.loads(ok(kubectl("get", "-n", namespace, name, "-o", "json")))
            assert live["metadata"]["namespace"] == namespace
            if manifest["kind"] == "Service":
                assert ipaddress.ip_address(live["spec"]["clusterIP"]) in SERVICE_CIDR
                assert [p["port"] for p in live["spec"]["ports"]] == [
                    p["port"] for p in manifest["spec"]["ports"]]
            elif manifest["kind"] == "Deployment":
                assert live["spec"]["replicas"] == manifest["spec"].get("replicas", 1)


def test_the_endpointslice_of_a_service_without_selector_is_kept_as_written(
        kubectl: Kubectl) -> None:
    files = GROUPS["concepts-service-without-selector"]
    ok(kubectl("apply", *[arg for name in files for arg in ("-f", str(DOCS / name))]))
    text = ok(kubectl("describe", "svc", "my-service"))
    fields = text.split("\nEvents:")[0].splitlines()  # `Name: value` lines, before the events
    described = dict(line.split(":", 1) for line in fields)
    assert described["Selector"].strip() == "<none>"
    assert described["Endpoints"].strip() == "10.4.5.6:9376,10.1.2.3:9376"
