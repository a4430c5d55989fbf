"""The checklist fixture of cluster-dns.md §1.4 as model objects, and a server process over it.

Zone `cluster.local`, DNS address 10.96.0.10. Namespace `default`: `kubernetes` (10.96.0.1,
https 443/TCP). Namespace `testns`:

- `svc1` 10.0.0.1: http 80/TCP, dns 53/UDP, an unnamed 8080/TCP;
- `svc6` fd00::1 and `dual` 10.0.0.3 + fd00::3: http 80/TCP;
- `hdls` headless, http 80/TCP: ready 10.3.0.100 (hostname my-pet), 10.3.0.2, fd00::5; not
  ready 10.3.0.9;
- `hdls-empty` headless, only a not-ready 10.3.0.8; `hdls-pnra` headless with
  publishNotReadyAddresses and a not-ready 10.3.0.7;
- `ext` ExternalName www.example.com; `empty` 10.0.0.9 with no endpoints;
- extras: `big` headless with 100 ready endpoints 10.4.0.1–100 (item 43/44), `ext-big`
  ExternalName big.example.com (an upstream name with 60 A records: TC propagation, item 25);
- a pod 10.244.1.5.

Run as a script, it serves this view on 127.0.0.1:0 with a fake forwarder (half the forwarded
queries fail, half get a minimal reply) and prints `ready <port>`: the fuzz test's server, in a
process of its own so that its memory can be watched. The file is not a test module; conftest.py
loads it by path.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import msgspec

from clusterip.core import model as m
from clusterip.testing.builders import make_pod, make_service, port

ZONE = "cluster.local"
DNS_IPS = ("10.96.0.10",)
UPSTREAM_A = "93.184.216.34"  # www.example.com, from the tests' own upstream
BIG_ENDPOINTS = 100
BIG_UPSTREAM = 60  # A records of big.example.com at the tests' upstream


def _service(
    name: str,
    namespace: str,
    *,
    ips: Sequence[str] = (),
    ports: Sequence[m.ServicePort] = (),
    headless: bool = False,
    external: str = "",
    publish_not_ready: bool = False,
) -> m.Service:
    def mutate(svc: m.Service) -> m.Service:
        if external:
            spec = msgspec.structs.replace(
                svc.spec, type="ExternalName", external_name=external, cluster_ip="",
                cluster_ips=(), selector=None,
            )
        else:
            cluster_ips = ("None",) if headless else tuple(ips)
            families = tuple("IPv6" if ":" in ip else "IPv4" for ip in ips)
            spec = msgspec.structs.replace(
                svc.spec, cluster_ip=cluster_ips[0], cluster_ips=cluster_ips,
                ip_families=families or ("IPv4",),
                publish_not_ready_addresses=publish_not_ready,
            )
        return msgspec.structs.replace(svc, spec=spec)

    return make_service(
        name, namespace=namespace, ports=ports or (port(80, name="http"),),
        selector={"app": name}, mutate=mutate,
    )


def _slice(
    name: str,
    service: str,
    namespace: str,
    endpoints: Sequence[tuple[str, bool, str | None]],
    *,
    family: str = "IPv4",
) -> m.EndpointSlice:
    """An EndpointSlice of (address, ready, hostname) endpoints with port http 80/TCP."""
    return m.EndpointSlice(
        api_version="discovery.k8s.io/v1",
        kind="EndpointSlice",
        metadata=m.ObjectMeta(
            name=name, namespace=namespace, labels={"kubernetes.io/service-name": service}
        ),
        address_type=family,
        endpoints=tuple(
            m.Endpoint(
                addresses=(address,),
                conditions=m.EndpointConditions(ready=ready, serving=ready, terminating=False),
                hostname=hostname,
            )
            for address, ready, hostname in endpoints
        ),
        ports=(m.EndpointPort(name="http", protocol="TCP", port=80),),
    )


def checklist_cluster() -> tuple[list[m.Service], list[m.EndpointSlice], list[m.Pod]]:
    """(services, slices, pods) of the §1.4 fixture, plus the extras above."""
    ns = "testns"
    services = [
        _service("kubernetes", "default", ips=["10.96.0.1"], ports=[port(443, name="https")]),
        _service("svc1", ns, ips=["10.0.0.1"], ports=[
            port(80, name="http"), port(53, name="dns", protocol="UDP"), port(8080),
        ]),
        _service("svc6", ns, ips=["fd00::1"]),
        _service("dual", ns, ips=["10.0.0.3", "fd00::3"]),
        _service("hdls", ns, headless=True),
        _service("hdls-empty", ns, headless=True),
        _service("hdls-pnra", ns, headless=True, publish_not_ready=True),
        _service("ext", ns, external="www.example.com"),
        _service("empty", ns, ips=["10.0.0.9"]),
        _service("big", ns, headless=True),
        _service("ext-big", ns, external="big.example.com"),
    ]
    slices = [
        _slice("hdls-v4", "hdls", ns, [
            ("10.3.0.100", True, "my-pet"), ("10.3.0.2", True, None), ("10.3.0.9", False, None),
        ]),
        _slice("hdls-v6", "hdls", ns, [("fd00::5", True, None)], family="IPv6"),
        _slice("hdls-empty-v4", "hdls-empty", ns, [("10.3.0.8", False, None)]),
        _slice("hdls-pnra-v4", "hdls-pnra", ns, [("10.3.0.7", False, None)]),
        _slice("big-v4", "big", ns,
               [(f"10.4.0.{i}", True, None) for i in range(1, BIG_ENDPOINTS + 1)]),
    ]
    pods = [make_pod("client", namespace=ns, ip="10.244.1.5", ready=True)]
    return services, slices, pods


def many_services(count: int) -> list[m.Service]:
    """`count` ClusterIP services svc-0 … in `default`, 10.96.0.0/12 from 10.100.0.0 on."""
    return [
        _service(f"svc-{i}", "default", ips=[f"10.{100 + i // 65536}.{i // 256 % 256}.{i % 256}"])
        for i in range(count)
    ]


class _FuzzForwarder:
    """Every other forwarded query fails; the others get a minimal reply (the query, QR set)."""

    def __init__(self) -> None:
        self.count = 0

    async def ask(self, query_wire: bytes) -> bytes | None:
        self.count += 1
        if self.count % 2 or len(query_wire) < 12:
            return None
        return query_wire[:2] + bytes([query_wire[2] | 0x80, 0x80]) + query_wire[4:]


async def _serve() -> None:
    from clusterip.core.dnsanswer import Responder, build_view
    from clusterip.dnsserver.server import serve_dns

    services, slices, pods = checklist_cluster()
    responder = Responder(build_view(services, slices, pods, zone=ZONE, dns_ips=DNS_IPS))

    def ready(addresses: list[tuple[str, int]]) -> None:
        print(f"ready {addresses[0][1]}", flush=True)

    await serve_dns(lambda: responder, _FuzzForwarder(), host="127.0.0.1", port=0, ready=ready)


if __name__ == "__main__":
    try:
        asyncio.run(_serve())
    except KeyboardInterrupt:
        sys.exit(0)
