"""The plan of a local multi-node cluster on one machine, the way `kind` makes one of containers
(here of network namespaces): every name, address, port, directory and command line, computed
from a `ClusterSpec` and the free ports the shell found. Values in, values out.

What a cluster called ``c`` with data directory ``D``, 3 nodes, 3 etcd members and 2 API servers
is made of::

    network namespace "c-link"                     (the switch the nodes plug into)
      br0 (no address) ── v-node-1 ─┐ ── v-node-2 ─┐ ── v-node-3 ─┐
                                    │ veth          │              │
    "c-node-1": eth0 172.18.0.2/24 ─┘  "c-node-2": eth0 .3/24     "c-node-3": eth0 .4/24

    etcd-1..3      /usr/bin/etcd on 127.0.0.1:<client>/<peer>, data D/etcd-i, log D/etcd-i.log
    apiserver-1..2 clusterip apiserver --store etcd://127.0.0.1:<c1>,... on 127.0.0.1:<port>
    node-1..3      clusterip node --server http://127.0.0.1:<p1>,... --netns c-node-i
                   --node-ip 172.18.0.(1+i)/24 [node_args...]

Rules the plan follows:

- Namespaces: ``<cluster>-link`` for the link, ``<cluster>-<node>`` for each node; nodes are
  ``node-1``, ``node-2``, ... (1-based, as the one-node cluster's ``node-1``). Pods of a node are
  the node agent's business (its namespaces start with the node's name and a dash).
- Addresses: on the link subnet (172.18.0.0/24 by default, the subnet of kind's docker network),
  node-i has host address 1 + i, so node-1 is .2; .1 is left free, as kind leaves it to the
  gateway. The link port of node ``n`` in the link namespace is ``v-<n>`` (15 bytes at most,
  the kernel's limit on interface names). A node's eth0 has a MAC made of its address.
- Processes listen on 127.0.0.1 only, on ports the shell chose (`Ports`: free a moment ago,
  never etcd's well-known 2379/2380). etcd members are ``etcd-i`` with data directory
  ``D/etcd-i``; their ``--initial-cluster-token`` is the cluster name, so members of two clusters
  never join each other. API server i has ``D/apiserver-i``, node i ``D/node-i``; each process
  logs to ``D/<name>.log``.
- Command lines: one function each (`etcd_argv`, `apiserver_argv`, `node_argv`), the only
  places that know a process's flags. `ClusterSpec.program` is how to run clusterip (the shell
  passes ``(sys.executable, "-m", "clusterip")``).

`render_plan` prints a plan as text (what ``clusterip cluster create`` can show, and what the
golden tests compare). Errors: `BadInput` for a spec a user could have written wrong (a bad
cluster name, an even number of etcd members, more nodes than the subnet holds); ValueError for
ports the shell got wrong (too few, duplicated, out of range, reserved).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from clusterip.core.errors import BadInput

__all__ = [
    "DEFAULT_LINK_SUBNET",
    "ETCD_BINARY",
    "ETCD_PROGRESS_INTERVAL",
    "LINK_BRIDGE",
    "LOOPBACK",
    "NODE_INTERFACE",
    "RESERVED_PORTS",
    "ApiServerPlan",
    "ClusterPlan",
    "ClusterSpec",
    "EtcdMember",
    "EtcdPlan",
    "EtcdTlsFiles",
    "LinkPlan",
    "NetworkPlan",
    "NodeNet",
    "NodePlan",
    "Ports",
    "apiserver_argv",
    "etcd_argv",
    "node_argv",
    "plan_cluster",
    "plan_etcd",
    "plan_network",
    "ports_needed",
    "render_plan",
]

DEFAULT_LINK_SUBNET = ipaddress.IPv4Network("172.18.0.0/24")
LINK_BRIDGE = "br0"
NODE_INTERFACE = "eth0"
LOOPBACK = "127.0.0.1"
ETCD_BINARY = "/usr/bin/etcd"  # the apt etcd-server package's
ETCD_PROGRESS_INTERVAL = "1s"  # etcd's default is 10 minutes; watches resume from fresher points
ETCD_MEMBER_COUNTS = (1, 3, 5, 7)
RESERVED_PORTS = frozenset({2379, 2380})  # a system etcd's
DEFAULT_COMPACTION_INTERVAL = 300.0  # `clusterip apiserver --compaction-interval`'s default

_IFNAMSIZ = 15  # bytes in an interface name
_CLUSTER_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")


# --- what the shell asks for ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    """What a cluster should be made of.

    Attributes:
        name: the cluster's name, a lowercase DNS label of at most 40 characters; it prefixes
            every namespace of the cluster.
        data_dir: absolute directory that holds every process's data directory and log.
        nodes: node agents (and node namespaces).
        etcd_members: 1, 3, 5 or 7 (an even count tolerates no more failures than one fewer).
        apiservers: API servers, all on the one etcd cluster.
        link_subnet: the nodes' shared link; node-i gets its host address 1 + i.
        compaction_interval: each API server's ``--compaction-interval`` (seconds).
        program: how to run clusterip, e.g. ``("clusterip",)`` or
            ``("/usr/bin/python3", "-m", "clusterip")``.
        etcd_binary: the etcd executable.
        apiserver_args: more flags for every API server (``--node-monitor-grace-period 6``).
        node_args: more flags for every node agent (``--heartbeat 1``, ``--dns-upstream ...``).
    """

    name: str
    data_dir: str
    nodes: int = 1
    etcd_members: int = 1
    apiservers: int = 1
    link_subnet: ipaddress.IPv4Network = DEFAULT_LINK_SUBNET
    compaction_interval: float = DEFAULT_COMPACTION_INTERVAL
    program: tuple[str, ...] = ("clusterip",)
    etcd_binary: str = ETCD_BINARY
    apiserver_args: tuple[str, ...] = ()
    node_args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ports:
    """The loopback ports the shell found free, by use."""

    etcd_client: tuple[int, ...]
    etcd_peer: tuple[int, ...]
    apiserver: tuple[int, ...]

    @classmethod
    def deal(cls, spec: ClusterSpec, free: Sequence[int]) -> Ports:
        """Deal `ports_needed(spec)` free ports out: etcd clients, etcd peers, API servers."""
        if len(free) != ports_needed(spec):
            raise ValueError(f"expected {ports_needed(spec)} ports, got {len(free)}")
        members, servers = spec.etcd_members, spec.apiservers
        return cls(tuple(free[:members]), tuple(free[members:2 * members]),
                   tuple(free[2 * members:2 * members + servers]))


def ports_needed(spec: ClusterSpec) -> int:
    """How many free loopback ports a cluster of `spec` needs."""
    return 2 * spec.etcd_members + spec.apiservers


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkPlan:
    """The link: a namespace holding a bridge with no address, the switch between nodes."""

    netns: str
    bridge: str
    subnet: ipaddress.IPv4Network


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeNet:
    """A node's place on the link.

    Attributes:
        name: the node's name (``node-1``).
        number: 1 for node-1, ...
        netns: the node's namespace (``<cluster>-node-1``).
        interface: the node's end of its veth, in `netns` (``eth0``).
        address: the node's address on the link, with the link's prefix length.
        mac: eth0's MAC address, made of the address (``02:c2:`` and its four bytes): a node
            whose veth is made again keeps its MAC, so the other nodes' ARP caches stay right.
        link_port: the other end, in the link namespace, enslaved to the bridge (``v-node-1``).
    """

    name: str
    number: int
    netns: str
    interface: str
    address: ipaddress.IPv4Interface
    mac: str
    link_port: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPlan:
    """Every namespace and address of a cluster's network."""

    link: LinkPlan
    nodes: tuple[NodeNet, ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace the network is made of: the nodes', then the link's."""
        return (*(node.netns for node in self.nodes), self.link.netns)


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdTlsFiles:
    """PEM files for an etcd that serves https to clients and requires their certificates:
    the CA, the server's certificate and key, and a client certificate and key (the health
    check's, and what API servers present)."""

    ca_file: str
    cert_file: str
    key_file: str
    client_cert_file: str
    client_key_file: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdMember:
    """One etcd member: its name, URLs, directory, log, and command line."""

    name: str
    client_port: int
    peer_port: int
    client_url: str
    peer_url: str
    data_dir: str
    log_file: str
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EtcdPlan:
    """An etcd cluster on loopback."""

    token: str
    members: tuple[EtcdMember, ...]
    initial_cluster: str
    tls: EtcdTlsFiles | None = None

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The members' client URLs."""
        return tuple(member.client_url for member in self.members)

    @property
    def store_url(self) -> str:
        """``etcd://127.0.0.1:C1,127.0.0.1:C2,...`` (with the TLS files in its query), the
        `--store` of an API server."""
        hosts = ",".join(f"{LOOPBACK}:{member.client_port}" for member in self.members)
        url = f"etcd://{hosts}"
        if self.tls is not None:
            url += (f"?ca={self.tls.ca_file}&cert={self.tls.client_cert_file}"
                    f"&key={self.tls.client_key_file}")
        return url

    def member(self, name: str) -> EtcdMember:
        """The member called `name`; KeyError if there is none."""
        for member in self.members:
            if member.name == name:
                return member
        raise KeyError(f"no etcd member {name!r} (members: "
                       f"{', '.join(m.name for m in self.members)})")


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiServerPlan:
    """One API server process."""

    name: str
    listen: str
    url: str
    data_dir: str
    log_file: str
    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodePlan:
    """One node agent process, and its node's place on the link."""

    net: NodeNet
    data_dir: str
    log_file: str
    argv: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.net.name


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterPlan:
    """Everything a local cluster is made of. Start etcd, then the API servers, then the nodes;
    stop in the reverse order."""

    name: str
    data_dir: str
    network: NetworkPlan
    etcd: EtcdPlan
    apiservers: tuple[ApiServerPlan, ...]
    nodes: tuple[NodePlan, ...]

    @property
    def servers(self) -> tuple[str, ...]:
        """The API servers' URLs."""
        return tuple(server.url for server in self.apiservers)


# --- planning ---------------------------------------------------------------------------------


def _check_cluster_name(name: str) -> None:
    if not _CLUSTER_NAME.fullmatch(name):
        raise BadInput(f"cluster name {name!r}: must be at most 40 characters of [a-z0-9-], "
                       "starting and ending with a letter or digit")


def _check_ports(ports: Sequence[int]) -> None:
    for port in ports:
        if not 0 < port < 65536:
            raise ValueError(f"port {port} is out of range")
        if port in RESERVED_PORTS:
            raise ValueError(f"port {port} is reserved for a system etcd")
    if len(set(ports)) != len(ports):
        raise ValueError(f"ports are not distinct: {sorted(ports)}")


def _join(directory: str, name: str) -> str:
    return str(PurePosixPath(directory) / name)


def _node_mac(address: ipaddress.IPv4Address) -> str:
    """``02:c2:`` (locally administered, unicast; podnet's gateways use ``02:c1:``) and the
    address's four bytes."""
    return ":".join(f"{b:02x}" for b in (0x02, 0xC2, *address.packed))


def plan_network(cluster: str, nodes: int,
                 subnet: ipaddress.IPv4Network = DEFAULT_LINK_SUBNET) -> NetworkPlan:
    """The link and node namespaces of cluster `cluster` with `nodes` nodes on `subnet`."""
    _check_cluster_name(cluster)
    usable = subnet.num_addresses - 3  # network, .1, broadcast
    if nodes < 1:
        raise BadInput(f"a cluster needs at least one node, not {nodes}")
    if nodes > usable:
        raise BadInput(f"link subnet {subnet} holds at most {max(usable, 0)} nodes, not {nodes}")
    planned = []
    for number in range(1, nodes + 1):
        name = f"node-{number}"
        link_port = f"v-{name}"
        if len(link_port.encode()) > _IFNAMSIZ:
            raise BadInput(f"interface name {link_port!r} is longer than {_IFNAMSIZ} bytes")
        address = ipaddress.IPv4Interface(
            f"{subnet.network_address + 1 + number}/{subnet.prefixlen}")
        planned.append(NodeNet(
            name=name, number=number, netns=f"{cluster}-{name}", interface=NODE_INTERFACE,
            address=address, mac=_node_mac(address.ip), link_port=link_port,
        ))
    return NetworkPlan(
        link=LinkPlan(netns=f"{cluster}-link", bridge=LINK_BRIDGE, subnet=subnet),
        nodes=tuple(planned),
    )


def etcd_argv(binary: str, member: EtcdMember, *, initial_cluster: str, token: str,
              progress_interval: str, tls: EtcdTlsFiles | None, log_level: str) -> tuple[str, ...]:
    """etcd 3.4's command line for `member` (its `argv` is not read) of the cluster that
    `initial_cluster` names.

    Restarting a member with the same command line is right: once its data directory holds a
    member, etcd ignores the ``--initial-*`` flags and rejoins with what it stored.
    """
    argv = [
        binary, "--name", member.name, "--data-dir", member.data_dir,
        "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
        "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
        "--initial-cluster", initial_cluster, "--initial-cluster-state", "new",
        "--initial-cluster-token", token,
        "--experimental-watch-progress-notify-interval", progress_interval,
        "--logger", "zap", "--log-level", log_level, "--log-outputs", "stderr",
    ]
    if tls is not None:
        argv += ["--cert-file", tls.cert_file, "--key-file", tls.key_file,
                 "--trusted-ca-file", tls.ca_file, "--client-cert-auth"]
    return tuple(argv)


def plan_etcd(*, token: str, data_dir: str, client_ports: Sequence[int],
              peer_ports: Sequence[int], binary: str = ETCD_BINARY,
              progress_interval: str = ETCD_PROGRESS_INTERVAL, tls: EtcdTlsFiles | None = None,
              log_level: str = "warn") -> EtcdPlan:
    """An etcd cluster of ``len(client_ports)`` members on loopback: member i (from 1) is
    ``etcd-i`` on ``client_ports[i-1]`` and ``peer_ports[i-1]``, with ``data_dir/etcd-i``.
    With `tls` the client URLs are https (peers stay http, on loopback)."""
    count = len(client_ports)
    if count not in ETCD_MEMBER_COUNTS:
        raise BadInput(f"etcd members: {count}; one of {', '.join(map(str, ETCD_MEMBER_COUNTS))} "
                       "(an even count tolerates no more failures than one fewer)")
    if len(peer_ports) != count:
        raise ValueError(f"{count} client ports but {len(peer_ports)} peer ports")
    _check_ports([*client_ports, *peer_ports])
    scheme = "https" if tls is not None else "http"
    names = [f"etcd-{i}" for i in range(1, count + 1)]
    initial_cluster = ",".join(
        f"{name}=http://{LOOPBACK}:{port}" for name, port in zip(names, peer_ports, strict=True))
    members = []
    for name, client, peer in zip(names, client_ports, peer_ports, strict=True):
        member = EtcdMember(
            name=name, client_port=client, peer_port=peer,
            client_url=f"{scheme}://{LOOPBACK}:{client}", peer_url=f"http://{LOOPBACK}:{peer}",
            data_dir=_join(data_dir, name), log_file=_join(data_dir, f"{name}.log"), argv=(),
        )
        argv = etcd_argv(binary, member, initial_cluster=initial_cluster, token=token,
                         progress_interval=progress_interval, tls=tls, log_level=log_level)
        members.append(replace(member, argv=argv))
    return EtcdPlan(token=token, members=tuple(members), initial_cluster=initial_cluster, tls=tls)


def _seconds(value: float) -> str:
    return f"{value:g}"


def apiserver_argv(program: Sequence[str], *, data_dir: str, listen: str, store_url: str,
                   compaction_interval: float, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """``clusterip apiserver``'s command line."""
    return (*program, "apiserver", "--data-dir", data_dir, "--listen", listen,
            "--store", store_url, "--compaction-interval", _seconds(compaction_interval),
            *extra)


def node_argv(program: Sequence[str], node: NodeNet, *, data_dir: str,
              servers: Sequence[str], extra: Sequence[str] = ()) -> tuple[str, ...]:
    """``clusterip node``'s command line: the one place that knows the node agent's flags."""
    return (*program, "node", "--data-dir", data_dir, "--server", ",".join(servers),
            "--node-name", node.name, "--netns", node.netns,
            "--node-ip", str(node.address), *extra)


def plan_cluster(spec: ClusterSpec, ports: Ports) -> ClusterPlan:
    """The whole cluster `spec` asks for, on `ports`."""
    _check_cluster_name(spec.name)
    if not PurePosixPath(spec.data_dir).is_absolute():
        raise BadInput(f"data directory {spec.data_dir!r}: must be an absolute path")
    if spec.apiservers < 1:
        raise BadInput(f"a cluster needs at least one API server, not {spec.apiservers}")
    if len(ports.apiserver) != spec.apiservers or len(ports.etcd_client) != spec.etcd_members:
        raise ValueError(f"ports {ports} do not fit {spec.etcd_members} etcd members and "
                         f"{spec.apiservers} API servers")
    _check_ports([*ports.etcd_client, *ports.etcd_peer, *ports.apiserver])
    network = plan_network(spec.name, spec.nodes, spec.link_subnet)
    etcd = plan_etcd(token=spec.name, data_dir=spec.data_dir, client_ports=ports.etcd_client,
                     peer_ports=ports.etcd_peer, binary=spec.etcd_binary)
    apiservers = []
    for number, port in enumerate(ports.apiserver, start=1):
        name = f"apiserver-{number}"
        listen = f"{LOOPBACK}:{port}"
        data_dir = _join(spec.data_dir, name)
        apiservers.append(ApiServerPlan(
            name=name, listen=listen, url=f"http://{listen}", data_dir=data_dir,
            log_file=_join(spec.data_dir, f"{name}.log"),
            argv=apiserver_argv(spec.program, data_dir=data_dir, listen=listen,
                                store_url=etcd.store_url,
                                compaction_interval=spec.compaction_interval,
                                extra=spec.apiserver_args),
        ))
    servers = tuple(server.url for server in apiservers)
    nodes = []
    for net in network.nodes:
        data_dir = _join(spec.data_dir, net.name)
        nodes.append(NodePlan(
            net=net, data_dir=data_dir, log_file=_join(spec.data_dir, f"{net.name}.log"),
            argv=node_argv(spec.program, net, data_dir=data_dir, servers=servers,
                           extra=spec.node_args),
        ))
    return ClusterPlan(name=spec.name, data_dir=spec.data_dir, network=network, etcd=etcd,
                       apiservers=tuple(apiservers), nodes=tuple(nodes))


def render_plan(plan: ClusterPlan) -> str:
    """The plan as text: namespaces and addresses, then each process's command line."""
    link = plan.network.link
    lines = [
        f"cluster {plan.name} in {plan.data_dir}",
        f"link: netns {link.netns}, bridge {link.bridge} (no address), subnet {link.subnet}",
    ]
    for net in plan.network.nodes:
        lines.append(f"node {net.name}: netns {net.netns}, {net.interface} {net.address} "
                     f"{net.mac}, link port {net.link_port}")
    lines.append(f"etcd: token {plan.etcd.token}, store {plan.etcd.store_url}")
    processes: list[tuple[str, str, tuple[str, ...]]] = [
        *((m.name, m.log_file, m.argv) for m in plan.etcd.members),
        *((s.name, s.log_file, s.argv) for s in plan.apiservers),
        *((n.name, n.log_file, n.argv) for n in plan.nodes),
    ]
    for name, log_file, argv in processes:
        lines.append(f"{name} (log {log_file}):")
        lines.append(f"  {shlex.join(argv)}")
    return "\n".join(lines) + "\n"
