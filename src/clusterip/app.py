"""The composition root: builds the parts and runs them under one `asyncio.TaskGroup`.

`serve` is an API server (`clusterip apiserver`; with a node too, `clusterip up`):

    open store ─► ObjectStore ─► ClusterIPAllocator ─► Registry
                                                          │
    API server (binds first, so the `kubernetes` Service knows its port; off loopback with
    a token and TLS, see apiserver.credentials), then <data-dir>/kubeconfig for kubectl
    bootstrap: namespaces, ServiceCIDR, `kubernetes` and `kube-dns` Services
    repair pass (IPAddresses ⇄ Services) at once, unless other API servers share the store
    leader election on etcd (control.leader; alone on SQLite) ─► while it leads, one term:
        controllers: endpoints, deployments, scheduler, node IPAM, node lifecycle
        periodic passes: IP repair (3 min), compaction, the event TTL sweep
    /readyz turns 200 once the term's caches synced, or another server is seen leading
    events: one broadcaster (its writer task) for every component's recorder

`serve_node` is one node of a cluster (`clusterip node`): a RemoteClient to the API servers,
the Node registered and its pod CIDR awaited, then the node agent, the cluster DNS, the service
proxy and the routes to the other nodes' pods.

SIGINT and SIGTERM cancel the group; every task is awaited and the store closed before the
process exits. Nothing here has logic of its own: each part is documented where it lives.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import ipaddress
import logging
import os
import random
import signal
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import msgspec

from clusterip.apiserver.credentials import Credentials, load_credentials, write_private
from clusterip.apiserver.server import ApiServer, serve_api
from clusterip.clock import Clock, SystemClock
from clusterip.control.deployments import DeploymentController
from clusterip.control.endpoints import EndpointsController
from clusterip.control.informer import InformerFactory
from clusterip.control.ipalloc_repair import repair
from clusterip.control.leader import LeaderElector
from clusterip.control.nodeipam import NodeIpamController
from clusterip.control.nodelifecycle import NodeLifecycleController
from clusterip.control.scheduler import Scheduler
from clusterip.core import codec, kubeconfig
from clusterip.core import events as ev
from clusterip.core import model as m
from clusterip.core.errors import AlreadyExists, BadInput, ClusterIPError
from clusterip.core.ipalloc import ServiceRange
from clusterip.core.nodeipam import NodeCidrs
from clusterip.core.nodelifecycle import Timing as NodeTiming
from clusterip.core.projections import PodSlimmer
from clusterip.registry.client import Client
from clusterip.registry.events import EventBroadcaster, expire_events
from clusterip.registry.ipalloc import ClusterIPAllocator
from clusterip.registry.objects import ObjectStore
from clusterip.registry.registry import Registry
from clusterip.registry.remote import RemoteClient
from clusterip.store.api import Store
from clusterip.store.etcd import EtcdStore
from clusterip.store.memory import MemoryStore
from clusterip.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from clusterip.core.nftrules import ProxyConfig
    from clusterip.dnsserver.cache import DnsCache
    from clusterip.dnsserver.forward import Forwarder
    from clusterip.proxy.controller import ProxyController
    from clusterip.runtime.agent import NodeAgent
    from clusterip.runtime.nssocket import NetnsSockets
    from clusterip.runtime.podnet import NetnsPodNetwork
    from clusterip.runtime.routes import NodeRoutes

__all__ = ["AppConfig", "controller_identity", "loop_name", "run", "run_node", "run_on", "serve",
           "serve_node"]

log = logging.getLogger("clusterip")

T = TypeVar("T")

REPAIR_INTERVAL = 180.0
EVENT_SWEEP_INTERVAL = 60.0  # at most; a shorter TTL is swept every half TTL
STORE_FILE = "store.db"


@dataclass(frozen=True, slots=True)
class AppConfig:
    data_dir: str
    host: str = "127.0.0.1"
    port: int = 7080
    service_cidr: str = "10.96.0.0/12"
    store_url: str = ""
    verbose: bool = False
    loop: str = "auto"  # auto (uvloop when installed), uvloop, asyncio
    apply: tuple[str, ...] = ()
    node: bool = False  # run a node agent in this process (`up`)
    netns: str | None = None  # the node's network namespace (created if missing); None: host
    node_name: str = "node-1"
    pod_cidr: str = "10.244.0.0/24"
    cluster_dns: str = "10.96.0.10"
    dns_upstreams: tuple[str, ...] = ()  # HOST:PORT; empty: the host's resolv.conf
    dns_listen: tuple[str, ...] = ()  # extra HOST:PORT listeners, outside the node
    proxy_mode: str = "auto"  # auto (nftables when it can be programmed), nftables, userspace
    cluster_cidr: str = "10.244.0.0/16"  # every node's pod CIDR is inside it
    auth: str = "auto"  # token and TLS: auto (off loopback), token (always)
    compaction_interval: float = 300.0  # seconds, as kube-apiserver's; 0: never
    event_ttl: float = ev.DEFAULT_TTL_SECONDS  # seconds, as kube-apiserver's --event-ttl; 0: keep
    node_monitor_grace: float = 40.0  # seconds without a heartbeat before a node is Unknown
    pod_eviction_timeout: float = 300.0  # seconds a node is not ready before its pods go
    heartbeat: float = 10.0  # seconds between a node agent's status posts
    node_ip: str = ""  # the node's InternalIP (default: its bridge address)
    servers: str = ""  # `clusterip node`: the API server URL(s), comma-separated
    token: str = ""  # `clusterip node`: the bearer token, for an API that asks for one
    ca_file: str = ""  # `clusterip node`: the CA of an https API server

    @property
    def node_timing(self) -> NodeTiming:
        return NodeTiming(grace=self.node_monitor_grace, eviction=self.pod_eviction_timeout)


async def open_store(config: AppConfig) -> Store:
    """The store the config names: SQLite in the data directory unless `memory://` or
    `etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?ca=FILE&cert=FILE&key=FILE]` (see store.etcd)."""
    if config.store_url == "memory://":
        return MemoryStore()
    if config.store_url.startswith("etcd://"):
        return await EtcdStore.from_url(config.store_url)
    if config.store_url:
        raise BadInput(f"--store: unsupported store URL {config.store_url!r} "
                       "(use memory://, etcd://HOST:PORT,... or leave it empty for SQLite)")
    Path(config.data_dir).mkdir(parents=True, exist_ok=True)
    return await SqliteStore.open(os.path.join(config.data_dir, STORE_FILE))


def _random_suffix(rng: random.Random) -> Callable[[], str]:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return lambda: "".join(rng.choice(alphabet) for _ in range(5))


async def serve(
    config: AppConfig,
    *,
    clock: Clock | None = None,
    ready: Callable[[str], None] = lambda url: None,
) -> None:
    """Run the control plane (and with `config.node` a node) until cancelled. `ready(url)`,
    with the API's URL, once the API is bound and the controllers this server leads have
    synced (or another server is seen leading), and the node is ready."""
    clock = clock or SystemClock()
    ranges = [ServiceRange.parse(config.service_cidr)]
    rng = random.Random()
    store = await open_store(config)
    try:
        objects = ObjectStore(store, clock)
        allocator = ClusterIPAllocator(objects, ranges, rng)
        registry = Registry(objects, allocator, service_cidrs=[r.cidr for r in ranges],
                            clock=clock, rng=rng)
        data_dir = Path(config.data_dir)
        credentials = (load_credentials(data_dir, config.host)
                       if kubeconfig.token_required(config.host, config.auth) else None)
        elector = LeaderElector(registry, controller_identity(config.data_dir), clock=clock)
        bootstrapped, controllers_synced = asyncio.Event(), asyncio.Event()

        def api_ready() -> bool:
            return bootstrapped.is_set() and (controllers_synced.is_set()
                                              or elector.following.is_set())

        api = ApiServer(registry, ready=api_ready,
                        token=credentials.token if credentials else "", clock=clock)
        bound: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()

        def api_bound(host: str, port: int) -> None:
            if not bound.done():
                bound.set_result((host, port))

        broadcaster = EventBroadcaster(registry, clock)
        registry.events = broadcaster.recorder(ev.ALLOCATOR)
        shared_store = config.store_url.startswith("etcd://")

        async def lead() -> None:
            """The controllers and the periodic passes, while this API server leads: made
            afresh each term, so a new term starts from fresh lists."""
            informers = InformerFactory(registry, transforms={m.Pod: PodSlimmer()})
            controllers: list[_Controller] = [
                EndpointsController(registry, clock=clock, new_suffix=_random_suffix(rng),
                                    informers=informers,
                                    events=broadcaster.recorder(ev.ENDPOINTS_CONTROLLER)),
                DeploymentController(registry, clock=clock, new_suffix=_random_suffix(rng),
                                     informers=informers,
                                     events=broadcaster.recorder(ev.DEPLOYMENT_CONTROLLER)),
                Scheduler(registry, informers=informers,
                          events=broadcaster.recorder(ev.SCHEDULER)),
                NodeIpamController(registry, NodeCidrs.parse(config.cluster_cidr),
                                   informers=informers,
                                   events=broadcaster.recorder(ev.NODE_IPAM_CONTROLLER)),
                NodeLifecycleController(registry, clock=clock, timing=config.node_timing,
                                        informers=informers,
                                        events=broadcaster.recorder(ev.NODE_CONTROLLER)),
            ]
            try:
                async with asyncio.TaskGroup() as term:
                    term.create_task(informers.run())
                    for controller in controllers:
                        term.create_task(controller.run())
                    if shared_store:  # other API servers may be allocating: orphans wait
                        term.create_task(_repair(objects, ranges, clock))
                    term.create_task(_every(REPAIR_INTERVAL,
                                            lambda: _repair(objects, ranges, clock)))
                    if config.compaction_interval > 0:
                        compactor = _Compactor(store, await store.revision())
                        term.create_task(_every(config.compaction_interval, compactor.compact))
                    if config.event_ttl > 0:
                        ttl = config.event_ttl
                        term.create_task(_every(min(EVENT_SWEEP_INTERVAL, max(1.0, ttl / 2)),
                                                lambda: _expire_events(registry, clock, ttl)))
                    for controller in controllers:
                        await controller.ready.wait()
                    controllers_synced.set()
            finally:
                controllers_synced.clear()

        node = (_node(config, registry, clock, broadcaster, pod_cidr=config.pod_cidr)
                if config.node else None)
        if node is not None:
            api.logs = node.agent
        async with contextlib.AsyncExitStack() as cleanup, asyncio.TaskGroup() as tasks:
            if node is not None:
                cleanup.push_async_callback(node.close)
            tasks.create_task(broadcaster.run())
            tasks.create_task(serve_api(
                api, config.host, config.port, ready=api_bound,
                ssl_context=credentials.ssl_context if credentials else None))
            host, port = await bound
            url = kubeconfig.client_url(host, port, tls=credentials is not None)
            _write_kubeconfig(data_dir, url, credentials)
            await allocator.ensure_service_cidr()
            await registry.bootstrap(api_port=port)
            await _apply_files(registry, config.apply)
            if not shared_store:
                # No create can be in flight before this process accepts writes (no other API
                # server shares the store): orphaned IPAddresses (a crash between allocation
                # and the Service write) go at once. Later passes give creates the API's 60 s.
                await _repair(objects, ranges, clock, grace=0.0)
            bootstrapped.set()
            # Only a shared store (etcd) can have other API servers: the embedded one leads
            # alone, with no Lease to renew (and no write a second while nothing changes).
            tasks.create_task(elector.run(lead) if shared_store else lead())
            if node is not None:
                node.start(tasks)
            await _first_of(controllers_synced.wait(), elector.following.wait())
            if node is not None:
                await node.synced()
            # The caches now hold most of what this process will keep: move them out of the
            # collector's reach, so that full collections do not walk 100,000 cached objects
            # (which showed as tens of milliseconds of tail latency on every write path).
            gc.collect()
            gc.freeze()
            log.info("clusterip API ready on %s", url)
            ready(url)
    finally:
        await store.close()


async def serve_node(
    config: AppConfig,
    *,
    clock: Clock | None = None,
    ready: Callable[[str], None] = lambda name: None,
) -> None:
    """Run one node (`clusterip node`) against the API server(s) `config.servers` until
    cancelled: its pods, the cluster DNS and the service proxy inside `config.netns`, and routes
    to the other nodes' pods. Without a `pod_cidr` the node registers and waits for the node
    IPAM controller to give it one. `ready(name)` once its pods, DNS, proxy and routes are
    served. The namespace is the cluster's: a stop leaves it (and its link) in place."""
    clock = clock or SystemClock()
    async with RemoteClient(config.servers, token=config.token,
                            ca_file=config.ca_file) as client:
        pod_cidr = config.pod_cidr or await _assigned_pod_cidr(client, config)
        log.info("node %s: pod CIDR %s", config.node_name, pod_cidr)
        broadcaster = EventBroadcaster(client, clock)
        node = _node(config, client, clock, broadcaster, pod_cidr=pod_cidr, routes=True)
        async with contextlib.AsyncExitStack() as cleanup, asyncio.TaskGroup() as tasks:
            cleanup.push_async_callback(node.close)
            tasks.create_task(broadcaster.run())
            node.start(tasks)
            await node.synced()
            assert node.routes is not None
            await node.routes.synced.wait()
            log.info("node %s ready", config.node_name)
            ready(config.node_name)


async def _assigned_pod_cidr(client: Client, config: AppConfig) -> str:
    """Register the Node (without a pod CIDR) and wait until the node IPAM controller has
    written one into it."""
    name = config.node_name
    try:
        await client.create(m.Node(metadata=m.ObjectMeta(
            name=name, labels={"kubernetes.io/hostname": name})))
    except AlreadyExists:
        pass
    delay, waited = 0.05, 0.0
    while True:
        cidr = (await client.get(m.Node, "", name)).spec.pod_cidr
        if cidr:
            return cidr
        if waited >= 10.0:
            log.warning("node %s: still waiting for a pod CIDR (is a controller leading?)", name)
            waited = 0.0
        await asyncio.sleep(delay)
        waited += delay
        delay = min(delay * 2, 1.0)


class _Controller(Protocol):
    ready: asyncio.Event

    async def run(self) -> None: ...


def controller_identity(data_dir: str) -> str:
    """An API server's name in leader election: the host and its data directory, so that a
    server restarted on the same data renews its own lease at once instead of waiting for it to
    expire."""
    where = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:8]
    return f"{socket.gethostname()}_{where}"


async def _first_of(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until any of `waits` is done; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _bare_ip(address: str) -> str:
    """`172.18.0.2/24` or `172.18.0.2` → `172.18.0.2` ("" stays "")."""
    return str(ipaddress.ip_interface(address).ip) if address else ""


@dataclass
class _Node:
    """The node's parts in this process, and how to put them away."""

    informers: InformerFactory  # the node's own caches (an API server's controllers have theirs)
    agent: NodeAgent
    network: NetnsPodNetwork
    sockets: NetnsSockets
    dns: DnsCache
    forwarder: Forwarder
    cluster_dns: str
    dns_listen: tuple[str, ...]
    proxy: ProxyController
    proxy_mode: str
    proxy_config: ProxyConfig
    routes: NodeRoutes | None = None
    owns_namespace: bool = True  # `up --netns` owns it; a cluster's node namespace is the cluster's
    proxy_close: Callable[[], Awaitable[None]] | None = None
    dns_bound: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, tasks: asyncio.TaskGroup) -> None:
        """Run the informers, the agent, the DNS (cache and server), the proxy and the routes
        in `tasks`."""
        tasks.create_task(self.informers.run())
        tasks.create_task(self.agent.run())
        tasks.create_task(self.dns.run())
        tasks.create_task(self.serve_dns())
        tasks.create_task(self.run_proxy())
        if self.routes is not None:
            tasks.create_task(self.routes.run())

    async def synced(self) -> None:
        """Ready: pods are run, a pod's DNS answers and its ClusterIPs are served."""
        await self.agent.synced()
        await self.dns_bound.wait()
        await self.proxy.synced.wait()

    async def serve_dns(self) -> None:
        """The cluster DNS on `cluster_dns`:53 inside the node (node-local: no DNAT between a
        pod and its DNS), and on the `--dns-listen` addresses outside it. Never returns."""
        from clusterip.dnsserver.server import bind_sockets, serve_dns

        await self.network.ensure_node()  # the address is on the node's loopback from here
        udp = await self.sockets.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = await self.sockets.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for sock in (udp, tcp):
            sock.setblocking(False)
            sock.bind((self.cluster_dns, 53))
        tcp.listen(128)
        udps, tcps = [udp], [tcp]
        for address in self.dns_listen:
            host, port = _host_port(address, "--dns-listen")
            extra_udp, extra_tcp = bind_sockets(host, port)
            udps.append(extra_udp)
            tcps.append(extra_tcp)
        await serve_dns(self.dns.current, self.forwarder, udp_sockets=udps, tcp_sockets=tcps,
                        ready=self._dns_serving)

    def _dns_serving(self, bound: list[tuple[str, int]]) -> None:
        log.info("cluster DNS serving on %s", bound)
        self.dns_bound.set()

    async def run_proxy(self) -> NoReturn:
        """The service proxy in the mode `--proxy-mode` asks for; "auto" is nftables when this
        process can program it in the node's namespace, else userspace (said in the log)."""
        from clusterip.proxy.nftables import (
            LibNftables,
            NetlinkConntrack,
            NftablesProxier,
            NftCommand,
            probe,
        )
        from clusterip.proxy.userspace import UserspaceProxier

        await self.network.ensure_node()
        if self.proxy_mode in ("auto", "nftables"):
            nft = (LibNftables(self.sockets) if LibNftables.available()
                   else NftCommand(self.network.node_netns))
            why_not = await probe(nft, self.proxy_config.table)
            if why_not is None:
                proxier = NftablesProxier(nft, NetlinkConntrack(self.sockets), self.proxy_config)
                self.proxy_close = proxier.close
                log.info("service proxy: nftables mode (%s)", type(nft).__name__)
                await self.proxy.run(proxier)
            if self.proxy_mode == "nftables":
                raise ClusterIPError(f"--proxy-mode nftables: cannot program nftables: {why_not}")
            log.warning("service proxy: nftables cannot be programmed here (%s); "
                        "falling back to userspace mode", why_not)
        userspace = UserspaceProxier(
            self.sockets, _Loopback(self.network), node=self.proxy_config.node,
            # internal only: pods, and the node itself (its connections to a VIP on its
            # loopback come from that VIP, or from 127.0.0.1)
            clients=[*self.proxy_config.pod_cidrs, *self.proxy_config.service_cidrs,
                     "127.0.0.0/8"])
        log.info("service proxy: userspace mode")
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(userspace.run())
            tasks.create_task(self.proxy.run(userspace))
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """On a clean stop: every pod of the node is gone (the runtimes' own cleanup, when the
        task group was cancelled), then the node's namespace, which `--netns` hands to clusterip
        (also when an earlier run made it and was killed)."""
        if self.proxy_close is not None:
            await self.proxy_close()
        await self.network.teardown_node(remove_namespace=self.owns_namespace)
        self.sockets.close()


@dataclass
class _Loopback:
    """The userspace proxy's ClusterIPs on the node's loopback."""

    network: NetnsPodNetwork

    async def add(self, ip: str) -> None:
        await self.network.add_local_address(ip)

    async def remove(self, ip: str) -> None:
        await self.network.remove_local_address(ip)


def _node(config: AppConfig, client: Client, clock: Clock, broadcaster: EventBroadcaster, *,
          pod_cidr: str, routes: bool = False) -> _Node:
    """The node agent and its kernel-facing parts (imported here: only `up` and `node` run a
    node, and `apiserver` need not load pyroute2), for a node with pod CIDR `pod_cidr`; with
    `routes`, it also keeps routes to the other nodes' pods."""
    from clusterip.core.nftrules import ProxyConfig
    from clusterip.dnsserver.cache import DnsCache
    from clusterip.dnsserver.forward import UpstreamForwarder, upstreams_from_resolv_conf
    from clusterip.proxy.controller import ProxyController
    from clusterip.runtime.agent import AgentConfig, NodeAgent
    from clusterip.runtime.containers import RealProcessRunner
    from clusterip.runtime.nssocket import NetnsSockets
    from clusterip.runtime.podnet import NetnsPodNetwork
    from clusterip.runtime.routes import NetlinkRouteTable, NodeRoutes

    informers = InformerFactory(client, transforms={m.Pod: PodSlimmer()})
    prefix = f"{config.netns or 'clusterip'}-pod"
    network = NetnsPodNetwork(config.netns, pod_cidr=pod_cidr, prefix=prefix,
                              local_addresses=[f"{config.cluster_dns}/32"],
                              service_cidr=config.service_cidr)
    sockets = NetnsSockets(config.netns)
    agent = NodeAgent(
        client, network, RealProcessRunner(), sockets.open_connection,
        config=AgentConfig(state_dir=Path(config.data_dir) / "node",
                           node_name=config.node_name,
                           pod_cidr=ipaddress.IPv4Network(pod_cidr),
                           heartbeat_seconds=config.heartbeat),
        clock=clock, informers=informers, node_address=_bare_ip(config.node_ip),
        events=broadcaster.recorder(ev.KUBELET, host=config.node_name),
    )
    if config.dns_upstreams:
        upstreams = [_host_port(u, "--dns-upstream") for u in config.dns_upstreams]
    else:
        upstreams = upstreams_from_resolv_conf(
            Path("/etc/resolv.conf").read_text(encoding="utf-8"), exclude={config.cluster_dns})
    dns = DnsCache(informers, dns_ips=(config.cluster_dns,))
    local_ips = frozenset({config.cluster_dns})
    proxy = ProxyController(informers, local_ips=local_ips)
    proxy_config = ProxyConfig(node=config.node_name, service_cidrs=(config.service_cidr,),
                               pod_cidrs=(config.cluster_cidr,), local_ips=local_ips)
    node_routes = (NodeRoutes(informers, config.node_name, NetlinkRouteTable(config.netns))
                   if routes else None)
    return _Node(informers, agent, network, sockets, dns, UpstreamForwarder(upstreams),
                 config.cluster_dns, config.dns_listen, proxy, config.proxy_mode, proxy_config,
                 node_routes, owns_namespace=not routes)


def _write_kubeconfig(data_dir: Path, server: str, credentials: Credentials | None) -> None:
    path = data_dir / kubeconfig.KUBECONFIG_FILE
    config = (kubeconfig.kubeconfig(server, credentials.token, credentials.ca_pem)
              if credentials else kubeconfig.kubeconfig(server))
    write_private(path, kubeconfig.render(config).encode())
    log.info("kubeconfig for %s written to %s", server, path)


def _host_port(text: str, flag: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"{flag}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _manifest_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files += sorted(path.glob("*.y*ml")) + sorted(path.glob("*.json")) if path.is_dir() \
            else [path]
    return files


async def _apply_files(registry: Registry, paths: tuple[str, ...]) -> None:
    """Create the objects of the `--apply` manifests that do not exist yet."""
    for path in _manifest_files(paths):
        for doc in codec.parse_documents(path.read_text(encoding="utf-8")):
            decoded = codec.decode(doc)
            obj = decoded.obj
            if decoded.info.namespaced and not obj.metadata.namespace:
                meta = msgspec.structs.replace(obj.metadata, namespace="default")
                obj = msgspec.structs.replace(obj, metadata=meta)
            try:
                await registry.create(obj)
                log.info("applied %s %s from %s", decoded.info.kind, obj.metadata.name, path)
            except AlreadyExists:
                pass


async def _repair(objects: ObjectStore, ranges: list[ServiceRange], clock: Clock,
                  grace: float = 60.0) -> None:
    report = await repair(objects, ranges, clock=clock, orphan_grace_seconds=grace)
    log.info("ClusterIP repair pass: %s", report)


async def _expire_events(registry: Registry, clock: Clock, ttl: float) -> None:
    await expire_events(registry, clock, ttl)


@dataclass
class _Compactor:
    """kube-apiserver's compaction: each time, forget the history up to the revision seen the
    time before, so a watch can always resume from a revision one interval old (with a BOOKMARK
    at least that fresh, a quiet watcher never sees 410 Expired)."""

    store: Store
    previous: int

    async def compact(self) -> None:
        current = await self.store.revision()
        if self.previous > 0:
            await self.store.compact(self.previous)
            log.info("compacted the store history up to revision %d", self.previous)
        self.previous = current


async def _every(interval: float, action: Callable[[], Awaitable[None]]) -> None:
    """Run `action` every `interval` seconds, the first time after one interval."""
    while True:
        await asyncio.sleep(interval)
        try:
            await action()
        except Exception:
            log.exception("periodic task failed; it runs again in %.0f s", interval)


def run(config: AppConfig) -> None:
    """Run `serve` in a new event loop; SIGINT/SIGTERM stop it cleanly."""
    _log_to_stderr(config)
    run_on(_main(serve(config, ready=lambda url: print(f"clusterip: API ready on {url}",
                                                      flush=True))), config.loop)


def run_node(config: AppConfig) -> None:
    """Run `serve_node` in a new event loop; SIGINT/SIGTERM stop it cleanly."""
    _log_to_stderr(config)
    run_on(_main(serve_node(config, ready=lambda name: print(f"clusterip: node {name} ready",
                                                            flush=True))), config.loop)


def _log_to_stderr(config: AppConfig) -> None:
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_on(main: Coroutine[Any, Any, T], choice: str) -> T:
    """Run `main` on the event loop `choice` names: `uvloop.run` (never `uvloop.install`:
    nothing else's loop policy changes) for "uvloop", and for "auto" when uvloop is installed;
    `asyncio.run` otherwise. uvloop answers DNS about 1.2x faster here; everything the node does
    with netlink runs in threads, off the loop, because pyroute2's asyncio netlink does not work
    on uvloop. The benchmarks use it too, so they measure the loop the server runs on."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise BadInput("--loop uvloop: uvloop is not installed") from None
        else:
            log.debug("event loop: uvloop")
            return uvloop.run(main)
    return asyncio.run(main)


def loop_name(choice: str) -> str:
    """The loop `run_on(..., choice)` runs on, for logs and benchmark reports."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio (uvloop not installed)"
    return "uvloop"


async def _main(job: Coroutine[Any, Any, None]) -> None:
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main.cancel)
    try:
        await job
    except asyncio.CancelledError:
        log.info("stopped")
