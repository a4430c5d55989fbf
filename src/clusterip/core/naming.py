"""Names the node agent derives from a pod, shared by the agent and the CLI (pure).

A pod's network namespace and host-side veth are named from `pod_id(uid)`: ten hex digits of
the SHA-1 of the pod's uid, so that a recreated pod with the same name never meets the leftovers
of its predecessor, and so that `clusterip exec` finds the namespace of a pod from its uid alone
(`ip netns list`, the name that ends in `-<pod_id>`).
"""

from __future__ import annotations

import hashlib

__all__ = ["pod_id"]


def pod_id(uid: str) -> str:
    return hashlib.sha1(uid.encode(), usedforsecurity=False).hexdigest()[:10]
