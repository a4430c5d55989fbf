"""`get` columns and `describe` text, as kubectl prints them."""

from __future__ import annotations

import msgspec
import pytest

from clusterip.core import model as m
from clusterip.core.endpointsview import endpoints_for
from clusterip.core.printers import describe, human_duration, render_table, rows
from clusterip.core.timefmt import parse_rfc3339
from clusterip.testing.builders import make_endpoint_slice, make_pod, make_service, port

CREATED = "2026-01-01T00:00:00Z"
T0 = parse_rfc3339(CREATED)


def created(obj: m.KubeObject) -> m.KubeObject:
    meta = msgspec.structs.replace(obj.metadata, creation_timestamp=CREATED)
    return msgspec.structs.replace(obj, metadata=meta)


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(0, "0s", id="zero"),
    pytest.param(119, "119s", id="under-two-minutes"),
    pytest.param(200, "3m20s", id="minutes-and-seconds"),
    pytest.param(600, "10m", id="ten-minutes"),
    pytest.param(3 * 3600 + 120, "3h2m", id="hours-and-minutes"),
    pytest.param(30 * 3600, "30h", id="hours"),
    pytest.param(3 * 86400 + 3600, "3d1h", id="days-and-hours"),
    pytest.param(40 * 86400, "40d", id="days"),
    pytest.param(800 * 86400, "2y70d", id="years-and-days"),
])
def test_human_duration_is_kubectls(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_service_rows_with_namespace_and_wide_columns() -> None:
    svc = created(make_service("web", cluster_ip="10.96.0.50", selector={"app": "web"},
                               ports=[port(80), port(53, protocol="UDP", name="dns")]))
    table = rows("Service", [svc], T0 + 65, wide=True, with_namespace=True)
    assert table == [
        ["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"],
        ["default", "web", "ClusterIP", "10.96.0.50", "<none>", "80/TCP,53/UDP", "65s",
         "app=web"],
    ]
    assert render_table(table).splitlines()[1].startswith("default     web    ClusterIP")


def test_pod_rows_show_readiness_and_terminating() -> None:
    ready = created(make_pod("a", ip="10.244.0.5", ready=True))
    meta = msgspec.structs.replace(ready.metadata, deletion_timestamp=CREATED)
    leaving = msgspec.structs.replace(ready, metadata=meta)
    table = rows("Pod", [ready, leaving], T0, wide=True)
    assert table[0][5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert table[1] == ["a", "1/1", "Running", "0", "0s", "10.244.0.5", "node-1", "<none>",
                        "<none>"]
    assert table[2][2] == "Terminating"


def test_without_wide_the_priority_columns_are_left_out() -> None:
    table = rows("Pod", [created(make_pod("a"))], T0)
    assert table[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]


def test_describe_service_lists_its_endpoints() -> None:
    svc = make_service("web", cluster_ip="10.96.0.50", selector={"app": "web"},
                       ports=[port(80, 8080)])
    sl = make_endpoint_slice("web-x", service="web", addresses=["10.244.0.5"],
                             ports=[m.EndpointPort(name="", port=8080, protocol="TCP")])
    text = describe(svc, endpoints=endpoints_for(svc, [sl]))
    assert "IP:                10.96.0.50\n" in text
    assert "Endpoints:         10.244.0.5:8080\n" in text
    assert "Selector:          app=web\n" in text
