"""A local cluster for tests and benchmarks: `LocalCluster` with a name of its own, checked gone.

    async with running_cluster(tmp_path, nodes=3, etcd_members=3) as cluster:
        async with RemoteClient(",".join(cluster.servers)) as api: ...

The cluster's name is a prefix and a random suffix, so its namespaces never meet another run's;
its node agents get a heartbeat of one second (unless `node_args` say otherwise) and a DNS
upstream nothing answers on (never the host's resolver). However the block ends, every process
is stopped by its PID and every namespace deleted; that nothing of the cluster's is left is
then asserted.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from clusterip.cluster import LocalCluster, clusterip_program
from clusterip.core.clusterplan import ClusterSpec
from clusterip.runtime import netlink

__all__ = ["NODE_ARGS", "running_cluster"]

NODE_ARGS = ("--heartbeat", "1", "--dns-upstream", "127.0.0.1:9")


@asynccontextmanager
async def running_cluster(directory: Path, *, prefix: str = "ct", node_args: tuple[str, ...] = (),
                          **spec: Any) -> AsyncIterator[LocalCluster]:
    """A started cluster in `directory`; `spec` are `ClusterSpec` fields (nodes, ...)."""
    name = f"{prefix}{secrets.token_hex(3)}"
    local = LocalCluster(ClusterSpec(name=name, data_dir=str(directory / "cluster"),
                                     program=clusterip_program(),
                                     node_args=(*NODE_ARGS, *node_args), **spec))
    await local.start()
    try:
        yield local
    finally:
        await local.stop()
        left = [n for n in netlink.list_netns() if n.startswith(name)]
        assert not left, f"namespaces left behind: {left}"
