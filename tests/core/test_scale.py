"""A Deployment's Scale: the view `kubectl scale` reads and writes."""

from __future__ import annotations

import pytest

from clusterip.core import model as m
from clusterip.core.errors import BadInput, Invalid
from clusterip.core.scale import scale_of, scaled

DEPLOYMENT = m.Deployment(
    api_version="apps/v1", kind="Deployment",
    metadata=m.ObjectMeta(name="web", namespace="default", uid="u1", resource_version="7",
                          creation_timestamp="2026-11-26T00:00:00Z"),
    spec=m.DeploymentSpec(replicas=2, selector=m.LabelSelector(match_labels={"app": "web"})),
    status=m.DeploymentStatus(replicas=1),
)


def test_the_scale_of_a_deployment() -> None:
    assert scale_of(DEPLOYMENT) == {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                     "creationTimestamp": "2026-11-26T00:00:00Z"},
        "spec": {"replicas": 2},
        "status": {"replicas": 1, "selector": "app=web"},
    }


def test_a_scale_changes_only_the_replicas_at_its_resource_version() -> None:
    scale = {"kind": "Scale", "metadata": {"name": "web", "resourceVersion": "5"},
             "spec": {"replicas": 4}}
    assert scaled(DEPLOYMENT, scale) == m.Deployment(
        api_version="apps/v1", kind="Deployment",
        metadata=m.ObjectMeta(name="web", namespace="default", uid="u1", resource_version="5",
                              creation_timestamp="2026-11-26T00:00:00Z"),
        spec=m.DeploymentSpec(replicas=4, selector=m.LabelSelector(match_labels={"app": "web"})),
        status=m.DeploymentStatus(replicas=1),
    )


def test_a_scale_without_a_resource_version_is_written_at_the_one_read() -> None:
    assert scaled(DEPLOYMENT, {"spec": {"replicas": 0}}).metadata.resource_version == "7"


@pytest.mark.parametrize(("scale", "error", "message"), [
    ({"spec": {"replicas": -1}}, Invalid, 'Scale "web" is invalid: spec.replicas: '
                                          "Invalid value: -1: must be greater than or equal to 0"),
    ({"spec": {"replicas": "3"}}, Invalid, 'Invalid value: "3"'),
    ({"kind": "Deployment"}, BadInput, "must be an autoscaling/v1 Scale"),
    ({"metadata": {"name": "other"}}, BadInput, r"\(other\) does not match"),
])
def test_a_bad_scale_is_refused(scale: dict[str, object], error: type[Exception], message: str
                                ) -> None:
    with pytest.raises(error, match=message):
        scaled(DEPLOYMENT, scale)
