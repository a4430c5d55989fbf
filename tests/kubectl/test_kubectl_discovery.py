"""kubectl finds its way around clusterip: version, discovery, OpenAPI and its validation.

kubectl asks for aggregated discovery and needs nothing more; before `create` it reads the
OpenAPI v3 documents, learns that the server checks fields (`fieldValidation`), and leaves the
checking to the server: an unknown field is refused with the message a real cluster gives.
"""

from __future__ import annotations

import ipaddress
import re

from clusterip.testing.kubectl import Kubectl, columns

SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
    - port: 80
      targetPort: 8080
"""
WITH_UNKNOWN_FIELD = SERVICE + "  foo: 1\n"


def test_version_shows_the_server_version(kubectl: Kubectl) -> None:
    result = kubectl("version")
    assert result.returncode == 0, result.stderr
    assert "Server Version: v1.32.0-clusterip." in result.stdout
    assert "Client Version: v1.32." in result.stdout  # the dispatcher ran the matching kubectl


def test_api_resources_lists_every_kind(kubectl: Kubectl) -> None:
    result = kubectl("api-resources")
    assert result.returncode == 0, result.stderr
    rows = columns(result.stdout)
    expected = {
        # name: (short names, apiVersion, namespaced, kind)
        "services": ("svc", "v1", "true", "Service"),
        "pods": ("po", "v1", "true", "Pod"),
        "endpointslices": ("", "discovery.k8s.io/v1", "true", "EndpointSlice"),
        "deployments": ("deploy", "apps/v1", "true", "Deployment"),
        "namespaces": ("ns", "v1", "false", "Namespace"),
        "nodes": ("no", "v1", "false", "Node"),
    }
    for name, (short, api_version, namespaced, kind) in expected.items():
        assert rows[name] == {"NAME": name, "SHORTNAMES": short, "APIVERSION": api_version,
                              "NAMESPACED": namespaced, "KIND": kind}


def test_discovery_is_aggregated_two_requests(kubectl: Kubectl) -> None:
    result = kubectl("api-resources", "-o", "name", "-v=6")
    assert result.returncode == 0, result.stderr
    requests = re.findall(r"GET https?://[^/\s]+(/[^?\s]*)\S* (\d+)", result.stderr)
    assert requests == [("/api", "200"), ("/apis", "200")]  # no /api/v1, /apis/apps/v1...
    assert "services" in result.stdout.split()


def test_create_with_the_default_validation(kubectl: Kubectl) -> None:
    result = kubectl("create", "-f", "-", "-v=6", input=SERVICE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "service/web created\n"
    # kubectl read the OpenAPI document and left the field checks to the server
    assert re.search(r"GET \S+/openapi/v3/api/v1\?hash=\w+\S* 200", result.stderr)
    assert re.search(r"POST \S+/services\?\S*fieldValidation=Strict\S* 201", result.stderr)
    ip = kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")


def test_an_unknown_field_is_refused_as_a_real_cluster_refuses_it(kubectl: Kubectl) -> None:
    result = kubectl("create", "-f", "-", input=WITH_UNKNOWN_FIELD)
    assert result.returncode == 1
    assert result.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": Service in version "v1" '
        'cannot be handled as a Service: strict decoding error: unknown field "spec.foo"\n')
    assert "NotFound" in kubectl("get", "svc", "web").stderr


def test_without_validation_the_unknown_field_is_dropped(kubectl: Kubectl) -> None:
    quiet = kubectl("create", "-f", "-", "--validate=false", input=WITH_UNKNOWN_FIELD)
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "service/web created\n", "")
    warned = kubectl("create", "-f", "-", "--validate=warn",
                     input=WITH_UNKNOWN_FIELD.replace("name: web", "name: web2"))
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr == 'Warning: unknown field "spec.foo"\n'
    spec = kubectl("get", "svc", "web2", "-o", "jsonpath={.spec}").stdout
    assert "foo" not in spec and "clusterIP" in spec


def test_explain_reads_the_schemas(kubectl: Kubectl) -> None:
    result = kubectl("explain", "services.spec")
    assert result.returncode == 0, result.stderr
    assert re.search(r"ports\s+<\[\]ServicePort>", result.stdout)
    assert re.search(r"selector\s+<map\[string\]string>", result.stdout)


def test_there_is_no_openapi_v2(kubectl: Kubectl) -> None:
    result = kubectl("get", "--raw", "/openapi/v2")
    assert result.returncode == 1
    assert "NotFound" in result.stderr
