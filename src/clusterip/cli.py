"""The `clusterip` command: run the servers, and kubectl-like verbs against a running one.

    clusterip apiserver --data-dir DIR --listen HOST:PORT     API server, store, controllers
    clusterip up        --data-dir DIR --listen HOST:PORT     all-in-one (the node joins later)
    clusterip apply -f FILE|-                                 create or update from manifests
    clusterip get KIND [NAME] [-n NS|-A] [-o wide|yaml|json|name] [-l SELECTOR]
    clusterip describe KIND NAME [-n NS]
    clusterip delete KIND NAME... [-n NS]  |  clusterip delete -f FILE
    clusterip kubeconfig [--data-dir DIR] [--server URL]     a kubeconfig for kubectl

The verbs find the server through `--server URL` or `CLUSTERIP_SERVER`
(default http://127.0.0.1:7080); a server off loopback needs its token (`--token`,
`CLUSTERIP_TOKEN`) and, for its https, its CA (`--certificate-authority`, `CLUSTERIP_CA`).
Exit codes: 0 ok, 1 an error from the server (or none reachable), 2 bad usage or bad input (a
manifest that does not parse, or a 400/422 answer).

`apply` is client-side apply: the manifest is stored in the
`kubectl.kubernetes.io/last-applied-configuration` annotation, and a later apply sends a merge
patch that sets every field of the new manifest and removes the fields the previous one set and
this one dropped (`core.patch.apply_patch_for`), leaving fields other writers set alone.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from clusterip.core import codec, kinds, kubeconfig, printers
from clusterip.core.errors import BadInput, ClusterIPError
from clusterip.core.patch import apply_patch_for
from clusterip.restclient import ApiError, RestClient

DEFAULT_LISTEN = "127.0.0.1:7080"
DEFAULT_SERVER = f"http://{DEFAULT_LISTEN}"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

EXIT_OK, EXIT_SERVER, EXIT_BAD_INPUT = 0, 1, 2


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _exit_code(exc: ApiError) -> int:
    return EXIT_BAD_INPUT if exc.bad_input else EXIT_SERVER


def _client(ctx: click.Context) -> RestClient:
    return RestClient(ctx.obj["server"], token=ctx.obj["token"], ca_file=ctx.obj["ca_file"])


def _dump(data: Any, output: str) -> str:
    if output == "json":
        return json.dumps(data, indent=4) + "\n"
    return yaml.dump(data, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False, default_flow_style=False)


def _decode(data: dict[str, Any]) -> Any:
    return codec.decode(data).obj


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", envvar="CLUSTERIP_SERVER", default=DEFAULT_SERVER, show_default=True,
              help="API server URL (also CLUSTERIP_SERVER).")
@click.option("--token", envvar="CLUSTERIP_TOKEN", default="",
              help="Bearer token, for a server that requires one (also CLUSTERIP_TOKEN; the "
              "server keeps it in DATA_DIR/token).")
@click.option("--certificate-authority", "ca_file", envvar="CLUSTERIP_CA", default="",
              metavar="FILE", help="Trust this CA for an https:// server (also CLUSTERIP_CA; "
              "the server keeps its own in DATA_DIR/ca.crt).")
@click.pass_context
def main(ctx: click.Context, server: str, token: str, ca_file: str) -> None:
    """clusterip: Kubernetes ClusterIP Services — stable virtual IPs, DNS names and L4 load
    balancing to the pods that are ready now."""
    ctx.ensure_object(dict)
    ctx.obj["server"] = server
    ctx.obj["token"] = token
    ctx.obj["ca_file"] = ca_file


# --- servers ----------------------------------------------------------------------------------


def _server_options(f: Any) -> Any:
    f = click.option("--data-dir", required=True, type=click.Path(file_okay=False),
                     help="Directory for the embedded store (created if missing).")(f)
    f = click.option("--listen", default=DEFAULT_LISTEN, show_default=True,
                     help="HOST:PORT of the API (port 0 picks a free one).")(f)
    f = click.option("--service-cidr", default="10.96.0.0/12", show_default=True,
                     help="The service CIDR ClusterIPs come from.")(f)
    f = click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
                     help="The CIDR every node's pod CIDR (a /24) is given from.")(f)
    f = click.option("--store", "store_url", default="", metavar="URL",
                     help="Store: empty for SQLite in the data directory, memory://, or "
                     "etcd://HOST:PORT[,HOST:PORT...][/PREFIX][?ca=F&cert=F&key=F].")(f)
    f = _common_options(f)
    f = click.option("--apply", "apply", multiple=True, type=click.Path(exists=True),
                     help="Manifest file or folder to create at start (objects that exist are "
                     "left alone). May be given more than once.")(f)
    f = click.option("--auth", type=click.Choice(kubeconfig.AUTH_MODES), default="auto",
                     show_default=True,
                     help="Require a bearer token of every client, and serve HTTPS with a CA "
                     "of the server's own: auto unless the API listens on 127.0.0.1, ::1 or "
                     "localhost; token always. Both are kept in DATA_DIR and written into "
                     "DATA_DIR/kubeconfig.")(f)
    f = click.option("--compaction-interval", type=click.FloatRange(min=0), default=300.0,
                     show_default=True, metavar="SECONDS",
                     help="How often the store's history is compacted, as kube-apiserver's "
                     "--etcd-compaction-interval: each time up to the revision of the time "
                     "before, so watches can resume from a revision at least this old; 0: "
                     "never.")(f)
    f = click.option("--event-ttl", type=click.FloatRange(min=0), default=3600.0,
                     show_default=True, metavar="SECONDS",
                     help="How long an event is kept after it last happened, as "
                     "kube-apiserver's --event-ttl; 0: forever.")(f)
    f = click.option("--node-monitor-grace-period", "node_monitor_grace",
                     type=click.FloatRange(min=1), default=40.0, show_default=True,
                     metavar="SECONDS", help="A node that posts no status for this long is "
                     "Unknown, and its pods not ready (kube-controller-manager's flag).")(f)
    f = click.option("--pod-eviction-timeout", type=click.FloatRange(min=0), default=300.0,
                     show_default=True, metavar="SECONDS",
                     help="A node not ready for this long has its pods deleted, so their "
                     "Deployments replace them on other nodes.")(f)
    return f


def _common_options(f: Any) -> Any:
    f = click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")(f)
    f = click.option("--loop", type=click.Choice(["auto", "uvloop", "asyncio"]), default="auto",
                     show_default=True,
                     help="Event loop: uvloop when installed (auto), or asyncio.")(f)
    return f


def _node_options(f: Any) -> Any:
    f = click.option("--netns", default=None, metavar="NAME",
                     help="Put the node (bridge, pods) in this network namespace, created if "
                     "missing; the API stays where the process runs. Without it the node is "
                     "the host namespace.")(f)
    f = click.option("--dns-upstream", "dns_upstreams", multiple=True, metavar="HOST:PORT",
                     help="Where the cluster DNS forwards other names (default: the host's "
                     "resolv.conf). May be given more than once.")(f)
    f = click.option("--dns-listen", "dns_listen", multiple=True, metavar="HOST:PORT",
                     help="Also serve the cluster DNS here, outside the node (e.g. "
                     "127.0.0.1:5353).")(f)
    f = click.option("--proxy-mode", type=click.Choice(["auto", "nftables", "userspace"]),
                     default="auto", show_default=True,
                     help="The service proxy: nftables rules in the kernel, or userspace "
                     "relays; auto is nftables when the process can program it (root, nft), "
                     "else userspace.")(f)
    f = click.option("--heartbeat", type=click.FloatRange(min=0.1), default=10.0,
                     show_default=True, metavar="SECONDS",
                     help="How often the node posts its status (kubelet's "
                     "--node-status-update-frequency).")(f)
    return f


def _config(options: dict[str, Any], **extra: Any) -> Any:
    """The AppConfig of a server command's options (`--listen` split into host and port)."""
    from clusterip.app import AppConfig

    listen = options.pop("listen", None)
    if listen is not None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            _fail(f"--listen: expected HOST:PORT, got {listen!r}", EXIT_BAD_INPUT)
        options.update(host=host, port=int(port))
    return AppConfig(**options, **extra)


def _run(run: Callable[[Any], None], config: Any) -> None:
    try:
        run(config)
    except ClusterIPError as exc:
        _fail(str(exc), EXIT_SERVER)


@main.command()
@_server_options
def apiserver(**options: Any) -> None:
    """Run the API server with its store and controllers (no node). Several may share one
    etcd store: they elect one leader to run the controllers."""
    from clusterip.app import run

    _run(run, _config(options))


@main.command()
@_server_options
@_node_options
def up(**options: Any) -> None:
    """Run everything in one process: API server, store, controllers and the node agent
    (pods, the cluster DNS on 10.96.0.10:53 inside the node, the service proxy)."""
    from clusterip.app import run

    _run(run, _config(options, node=True))


@main.command()
@click.option("--data-dir", required=True, type=click.Path(file_okay=False),
              help="Directory for the node's state (created if missing).")
@click.option("--server", "servers", required=True, metavar="URL[,URL...]",
              help="The API server(s); the next is tried when one cannot be reached.")
@click.option("--token", default="", help="Bearer token, for an API that asks for one.")
@click.option("--certificate-authority", "ca_file", default="", metavar="FILE",
              help="The CA an https API server's certificate is checked against.")
@click.option("--node-name", required=True, help="The Node's name.")
@click.option("--node-ip", default="", metavar="IP[/PREFIX]",
              help="The node's InternalIP on the link between nodes (other nodes route this "
              "node's pods to it).")
@click.option("--pod-cidr", default="", metavar="CIDR",
              help="This node's pod CIDR (default: the one the node IPAM controller gives).")
@click.option("--service-cidr", default="10.96.0.0/12", show_default=True,
              help="The service CIDR (routed to the node's bridge; not masqueraded).")
@click.option("--cluster-cidr", default="10.244.0.0/16", show_default=True,
              help="The CIDR of every node's pods.")
@_common_options
@_node_options
def node(**options: Any) -> None:
    """Run one node of a cluster: its pods, the cluster DNS and the service proxy inside the
    node, and routes to the other nodes' pods, against the API server(s) at --server."""
    from clusterip.app import run_node

    _run(run_node, _config(options, node=True))


@main.group()
def cluster() -> None:
    """A local cluster of many nodes, in network namespaces."""


@cluster.command("create")
@click.option("--name", default="clusterip", show_default=True,
              help="The cluster's name: it prefixes every namespace (NAME-link, NAME-node-1...).")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False),
              help="Where every process keeps its data and log (DATA_DIR/kubeconfig too).")
@click.option("--nodes", type=click.IntRange(1, 200), default=3, show_default=True)
@click.option("--etcd-members", type=click.Choice(["1", "3", "5"]), default="1",
              show_default=True)
@click.option("--apiservers", type=click.IntRange(1, 5), default=1, show_default=True)
@click.option("--apiserver-arg", "apiserver_args", multiple=True, metavar="ARG",
              help="One more argument for every API server, e.g. "
              "--apiserver-arg=--pod-eviction-timeout=30.")
@click.option("--node-arg", "node_args", multiple=True, metavar="ARG",
              help="One more argument for every node agent, e.g. --node-arg=--heartbeat=2.")
@_common_options
def cluster_create(name: str, data_dir: str, nodes: int, etcd_members: str, apiservers: int,
                   apiserver_args: tuple[str, ...], node_args: tuple[str, ...],
                   verbose: bool, loop: str) -> None:
    """Create a cluster and run it until Ctrl-C (or SIGTERM), then delete it: an etcd cluster
    on loopback, API servers on it, and one node agent per node namespace, the nodes joined by
    a link namespace. Prints how to reach it (DATA_DIR/kubeconfig)."""
    import logging

    from clusterip.app import run_on
    from clusterip.cluster import LocalCluster, clusterip_program
    from clusterip.core.clusterplan import ClusterSpec

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = ClusterSpec(name=name, data_dir=str(Path(data_dir).resolve()), nodes=nodes,
                       etcd_members=int(etcd_members), apiservers=apiservers,
                       program=clusterip_program(), apiserver_args=apiserver_args,
                       node_args=node_args)
    try:
        run_on(_run_cluster(LocalCluster(spec)), loop)
    except ClusterIPError as exc:
        _fail(str(exc), EXIT_SERVER)


async def _run_cluster(local: Any) -> None:
    import asyncio
    import signal

    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, main.cancel)
    plan = await local.start()
    try:
        click.echo(f"clusterip: cluster {plan.name} ready: {len(plan.nodes)} nodes, "
                   f"API servers {', '.join(plan.servers)}")
        click.echo(f"  export KUBECONFIG={local.kubeconfig}; kubectl get nodes -o wide")
        click.echo(f"  ip netns exec {plan.nodes[0].net.netns} ...   (a node's namespace)")
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        click.echo("clusterip: stopping the cluster")
    finally:
        await asyncio.shield(local.stop())


@main.command("kubeconfig")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="The data directory of a server: its kubeconfig, with its token and CA.")
@click.option("--server", "server_url", default=None, metavar="URL",
              help="The server URL to write (default: the one the server in --data-dir wrote, "
              "else clusterip's --server).")
@click.pass_context
def kubeconfig_(ctx: click.Context, data_dir: str | None, server_url: str | None) -> None:
    """Print a kubeconfig for kubectl and client libraries.

    Example: clusterip kubeconfig --data-dir DIR > kc; KUBECONFIG=kc kubectl get svc
    """
    token, ca_file = ctx.obj["token"], ctx.obj["ca_file"]
    if data_dir:
        folder = Path(data_dir)
        if not server_url:
            click.echo(_read_text(folder / kubeconfig.KUBECONFIG_FILE), nl=False)
            return
        if (folder / kubeconfig.TOKEN_FILE).exists():  # else: the server needs none
            token = _read_text(folder / kubeconfig.TOKEN_FILE).strip()
            ca_file = str(folder / kubeconfig.CA_FILE)
    ca_pem = _read_text(Path(ca_file)).encode() if ca_file else b""
    config = kubeconfig.kubeconfig(server_url or ctx.obj["server"], token, ca_pem)
    click.echo(kubeconfig.render(config), nl=False)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}", EXIT_BAD_INPUT)


# --- apply ------------------------------------------------------------------------------------


def _read_manifests(filename: str) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text(encoding="utf-8")
    except OSError as exc:
        _fail(f"cannot read {filename}: {exc.strerror}", EXIT_BAD_INPUT)
    try:
        docs = codec.parse_documents(text)
    except BadInput as exc:
        _fail(f"{filename}: {exc}", EXIT_BAD_INPUT)
    if not docs:
        _fail(f"no objects passed to apply in {filename}", EXIT_BAD_INPUT)
    return docs


def _target(doc: dict[str, Any], namespace: str | None) -> tuple[kinds.KindInfo, str, str]:
    info = codec.kind_of(doc)
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = str(meta.get("name", "")) if meta else ""
    ns = (str(meta.get("namespace") or "") if meta else "") or namespace or "default"
    return info, (ns if info.namespaced else ""), name


def _apply_one(client: RestClient, doc: dict[str, Any], namespace: str | None,
               strict: bool) -> str:
    info, ns, name = _target(doc, namespace)
    desired = json.loads(json.dumps(doc))
    desired.setdefault("metadata", {})
    if info.namespaced:
        desired["metadata"]["namespace"] = ns
    annotation = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    query = {"fieldValidation": "Strict" if strict else "Warn"}
    try:
        live, _ = client.request("GET", client.path(info, ns, name)) if name else ({}, [])
    except ApiError as exc:
        if exc.code != 404:
            raise
        live = {}
    if not live:  # absent (or unnamed: the server names it from generateName, or refuses it)
        body = json.loads(annotation)
        body["metadata"].setdefault("annotations", {})[LAST_APPLIED] = annotation + "\n"
        created, warnings = client.request("POST", client.path(info, ns), body, query=query)
        _warn(warnings)
        return f"{info.singular}/{created['metadata']['name']} created"
    label = f"{info.singular}/{name}"
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    try:
        last = json.loads(annotations.get(LAST_APPLIED, "{}"))
    except ValueError:
        last = {}
    patch = apply_patch_for(live, last, desired)
    patch.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = (
        annotation + "\n"
    )
    patched, warnings = client.request(
        "PATCH", client.path(info, ns, name), patch, query=query,
        content_type="application/merge-patch+json",
    )
    _warn(warnings)
    before = (live.get("metadata") or {}).get("resourceVersion")
    after = (patched.get("metadata") or {}).get("resourceVersion")
    return f"{label} {'unchanged' if before == after else 'configured'}"


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        click.echo(f"Warning: {w}", err=True)


@main.command()
@click.option("-f", "--filename", required=True, help="Manifest file (YAML or JSON), or - .")
@click.option("-n", "--namespace", default=None, help="Namespace for objects that name none.")
@click.option("--validate", type=click.Choice(["strict", "warn", "ignore"]), default="strict",
              show_default=True, help="Unknown fields: reject (strict) or drop with a warning.")
@click.pass_context
def apply(ctx: click.Context, filename: str, namespace: str | None, validate: str) -> None:
    """Create or update objects from a manifest file."""
    client = _client(ctx)
    worst = EXIT_OK
    for doc in _read_manifests(filename):
        try:
            click.echo(_apply_one(client, doc, namespace, validate == "strict"))
        except BadInput as exc:
            click.echo(f"error: {exc}", err=True)
            worst = max(worst, EXIT_BAD_INPUT)
        except ApiError as exc:
            click.echo(f"error: {exc}", err=True)
            if exc.code == 0:
                sys.exit(EXIT_SERVER)
            worst = max(worst, _exit_code(exc))
    sys.exit(worst)


# --- get / describe / delete ------------------------------------------------------------------


def _kind(name: str) -> kinds.KindInfo:
    try:
        return kinds.lookup(name)
    except BadInput as exc:
        _fail(str(exc), EXIT_BAD_INPUT)


@main.command()
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-A", "--all-namespaces", is_flag=True)
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db.")
@click.pass_context
def get(ctx: click.Context, kind: str, name: str | None, namespace: str, all_namespaces: bool,
        output: str | None, selector: str) -> None:
    """Show objects of a kind, as a table or as YAML/JSON."""
    info = _kind(kind)
    client = _client(ctx)
    ns = None if all_namespaces else namespace
    try:
        if name:
            body, _ = client.request("GET", client.path(info, ns or namespace, name))
            items = [body]
        else:
            query = {"labelSelector": selector} if selector else None
            body, _ = client.request("GET", client.path(info, ns), query=query)
            items = body.get("items", [])
    except ApiError as exc:
        _fail(str(exc), _exit_code(exc))
    if output in ("yaml", "json"):
        data = items[0] if name else {"apiVersion": "v1", "kind": "List", "items": items,
                                      "metadata": {"resourceVersion": ""}}
        click.echo(_dump(data, output), nl=False)
        return
    if output == "name":
        for item in items:
            click.echo(f"{info.singular}/{item['metadata']['name']}")
        return
    if not items:
        where = "" if all_namespaces or not info.namespaced else f" in {namespace} namespace"
        click.echo(f"No resources found{where}.", err=True)
        return
    objects = [_decode(i) for i in items]
    table = printers.rows(info.kind, objects, time.time(), wide=output == "wide",
                          with_namespace=all_namespaces and info.namespaced)
    click.echo(printers.render_table(table), nl=False)


@main.command()
@click.argument("kind")
@click.argument("name")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
def describe(ctx: click.Context, kind: str, name: str, namespace: str) -> None:
    """Show one object in detail (a Service with its endpoints), and its events."""
    info = _kind(kind)
    client = _client(ctx)
    try:
        body, _ = client.request("GET", client.path(info, namespace, name))
        endpoints = None
        if info.kind == "Service":
            ep_body, _ = client.request("GET", client.path(kinds.lookup("endpoints"),
                                                           namespace, name))
            endpoints = _decode(ep_body)
    except ApiError as exc:
        _fail(str(exc), _exit_code(exc))
    obj = _decode(body)
    click.echo(printers.describe(obj, endpoints=endpoints, events=_events_of(client, obj),
                                 now=time.time()), nl=False)


def _events_of(client: RestClient, obj: Any) -> list[Any]:
    """The object's events, asked for as kubectl describe asks (none if that fails)."""
    meta = obj.metadata
    info = kinds.for_type(type(obj))
    selector = {"involvedObject.name": meta.name, "involvedObject.namespace": meta.namespace,
                "involvedObject.kind": info.kind, "involvedObject.uid": meta.uid}
    query = {"fieldSelector": ",".join(f"{k}={v}" for k, v in selector.items())}
    try:
        found, _ = client.request("GET", client.path(kinds.lookup("events"),
                                                     meta.namespace or "default"), query=query)
    except ApiError:
        return []
    return [_decode(item) for item in found.get("items", [])]


@main.command()
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-f", "--filename", default=None, help="Delete the objects a manifest names.")
@click.option("--ignore-not-found", is_flag=True)
@click.pass_context
def delete(ctx: click.Context, kind: str | None, names: tuple[str, ...], namespace: str,
           filename: str | None, ignore_not_found: bool) -> None:
    """Delete objects by kind and name, or those a manifest names."""
    client = _client(ctx)
    targets: list[tuple[kinds.KindInfo, str, str]] = []
    if filename:
        try:
            targets = [_target(doc, namespace) for doc in _read_manifests(filename)]
        except BadInput as exc:
            _fail(str(exc), EXIT_BAD_INPUT)
    elif kind and names:
        info = _kind(kind)
        targets = [(info, namespace if info.namespaced else "", n) for n in names]
    else:
        raise click.UsageError("give KIND and NAME, or -f FILE")
    worst = EXIT_OK
    for info, ns, name in targets:
        try:
            client.request("DELETE", client.path(info, ns, name))
            click.echo(f'{info.singular} "{name}" deleted')
        except ApiError as exc:
            if exc.code == 404 and ignore_not_found:
                continue
            click.echo(f"error: {exc}", err=True)
            worst = max(worst, _exit_code(exc) if exc.code != 404 else EXIT_SERVER)
    sys.exit(worst)


# --- pods and deployments ---------------------------------------------------------------------


@main.command()
@click.argument("kind", type=click.Choice(["deployment", "deployments", "deploy"]))
@click.argument("name")
@click.option("--replicas", type=click.IntRange(min=0), required=True)
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
def scale(ctx: click.Context, kind: str, name: str, replicas: int, namespace: str) -> None:
    """Set the number of replicas of a Deployment."""
    client = _client(ctx)
    info = kinds.lookup("deployments")
    try:
        client.request("PATCH", client.path(info, namespace, name),
                       {"spec": {"replicas": replicas}},
                       content_type="application/merge-patch+json")
    except ApiError as exc:
        _fail(str(exc), _exit_code(exc))
    click.echo(f"deployment.apps/{name} scaled")


@main.command()
@click.argument("pod")
@click.option("-c", "--container", default="", help="Container (needed when the pod has several).")
@click.option("-p", "--previous", is_flag=True, help="The log of the previous run.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
def logs(ctx: click.Context, pod: str, container: str, previous: bool, namespace: str) -> None:
    """Print a container's output (stdout and stderr)."""
    client = _client(ctx)
    query = {"container": container} if container else {}
    if previous:
        query["previous"] = "true"
    try:
        text, _ = client.request_bytes(
            "GET", client.path(kinds.lookup("pods"), namespace, pod, "log"), query=query)
    except ApiError as exc:
        _fail(str(exc), _exit_code(exc))
    sys.stdout.buffer.write(text)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-c", "--container", default="",
              help="Accepted for kubectl's sake: every container of a pod shares its network.")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.pass_context
def exec(ctx: click.Context, pod: str, command: tuple[str, ...], container: str,
         namespace: str) -> None:
    """Run COMMAND inside POD's network namespace, with its resolv.conf (on the pod's node).

    Example: clusterip exec client -- curl -s http://my-clusterip-service
    """
    client = _client(ctx)
    try:
        body, _ = client.request("GET", client.path(kinds.lookup("pods"), namespace, pod))
    except ApiError as exc:
        _fail(str(exc), _exit_code(exc))
    netns = _pod_netns(str(body["metadata"].get("uid", "")))
    if netns is None:
        _fail(f'pod "{pod}" has no network namespace on this machine (is it running here?)',
              EXIT_SERVER)
    argv = ["ip", "netns", "exec", netns, *command]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        _fail(f"cannot run {argv[0]}: {exc.strerror}", EXIT_SERVER)


def _pod_netns(uid: str) -> str | None:
    """The network namespace of the pod with this uid on this machine (see `core.naming`)."""
    from clusterip.core.naming import pod_id

    suffix = f"-{pod_id(uid)}"
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return None
    return next((n for n in names if n.endswith(suffix)), None)
