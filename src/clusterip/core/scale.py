"""A Deployment's `/scale` subresource: the autoscaling/v1 Scale view of it.

`kubectl scale deployment web --replicas=3` patches `.../deployments/web/scale` with
`{"spec":{"replicas":3}}` and needs a `Scale` back (a Deployment fails its decoding):

    {"kind": "Scale", "apiVersion": "autoscaling/v1",
     "metadata": {"name": "web", "namespace": "default", "uid": ..., "resourceVersion": ...},
     "spec": {"replicas": 3}, "status": {"replicas": 1, "selector": "app=web"}}

`scale_of` is the view; `scaled` takes a Scale (from a PUT, or the view after a patch) back to
the Deployment it was read with: only `spec.replicas` changes, and the write is conditional on
the Scale's resourceVersion, or on the Deployment's when the Scale has none.
"""

from __future__ import annotations

from typing import Any

import msgspec

from clusterip.core import model as m
from clusterip.core.errors import BadInput, Invalid, invalid
from clusterip.core.selectors import Selector

__all__ = ["scale_of", "scaled"]

API_VERSION = "autoscaling/v1"
KIND = "Scale"


def scale_of(deployment: m.Deployment) -> dict[str, Any]:
    meta = deployment.metadata
    metadata = {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid,
                "resourceVersion": meta.resource_version}
    if meta.creation_timestamp:
        metadata["creationTimestamp"] = meta.creation_timestamp
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": metadata,
        "spec": {"replicas": deployment.spec.replicas or 0},
        "status": {
            "replicas": deployment.status.replicas or 0,
            "selector": str(Selector.from_label_selector(deployment.spec.selector)),
        },
    }


def scaled(deployment: m.Deployment, scale: Any) -> m.Deployment:
    """The Deployment with the Scale's replicas, and the resourceVersion to write it at.

    Raises:
        BadInput: not a Scale of this Deployment; Invalid: replicas not a count.
    """
    if not isinstance(scale, dict) or scale.get("kind", KIND) != KIND:
        raise BadInput(f"the body must be an {API_VERSION} {KIND}")
    meta = scale.get("metadata") or {}
    name = deployment.metadata.name
    if meta.get("name", name) != name:
        raise BadInput(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL "
            f"({name})")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise Invalid(KIND, name, [invalid(
            "spec.replicas", replicas, "must be greater than or equal to 0")])
    version = str(meta.get("resourceVersion") or deployment.metadata.resource_version)
    return msgspec.structs.replace(
        deployment,
        metadata=msgspec.structs.replace(deployment.metadata, resource_version=version),
        spec=msgspec.structs.replace(deployment.spec, replicas=replicas),
    )
