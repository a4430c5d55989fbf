"""Field ownership and server-side apply: who set which field, what an apply removes, and when
it conflicts with another manager."""

from __future__ import annotations

from typing import Any

import pytest

from clusterip.core import fieldmanager as fm
from clusterip.core import model as m
from clusterip.core.errors import ApplyConflict
from clusterip.core.patchmeta import schema_of

SERVICE = schema_of(m.Service)


def config(*ports: dict[str, Any], labels: dict[str, str] | None = None, **spec: Any
           ) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "default"}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {"selector": {"app": "web"}, "ports": list(ports), **spec}}


def apply(live: dict[str, Any] | None, cfg: dict[str, Any], manager: str = "kubectl", *,
          force: bool = False, now: str = "T1") -> dict[str, Any]:
    return fm.apply(live, cfg, manager, force=force, schema=SERVICE, now=now)


def managers(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["manager"], e["operation"]): e for e in obj["metadata"]["managedFields"]}


def owned(obj: dict[str, Any], manager: str, operation: str = fm.APPLY) -> set[str]:
    entry = managers(obj)[(manager, operation)]
    return {fm.path_text(p) for p in fm.from_fields_v1(entry["fieldsV1"])}


HTTP = {"name": "http", "port": 80, "targetPort": 8080}
METRICS = {"name": "metrics", "port": 9090}


def test_apply_creates_and_records_the_fields_of_the_config() -> None:
    created = apply(None, config(HTTP, labels={"app": "web"}))
    assert created["spec"] == {"selector": {"app": "web"}, "ports": [HTTP]}
    [entry] = created["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": "T1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {  # what kube-apiserver records, but ports keyed by port alone
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:ports": {'k:{"port":80}': {".": {}, "f:name": {}, "f:port": {},
                                              "f:targetPort": {}}},
                "f:selector": {"f:app": {}},
            },
        },
    }


def test_reapplying_without_a_field_removes_it() -> None:
    first = apply(None, config(HTTP, METRICS, labels={"app": "web", "tier": "front"}))
    second = apply(first, config(HTTP, labels={"app": "web"}), now="T2")
    assert second["spec"]["ports"] == [HTTP]
    assert second["metadata"]["labels"] == {"app": "web"}
    assert owned(second, "kubectl") == {
        ".metadata.labels.app", ".spec.selector.app", ".spec.ports[port=80]",
        ".spec.ports[port=80].name", ".spec.ports[port=80].port",
        ".spec.ports[port=80].targetPort"}


def test_a_map_the_removal_empties_goes_too() -> None:
    first = apply(None, config(HTTP, labels={"tier": "front"}))
    assert "labels" not in apply(first, config(HTTP))["metadata"]


def test_reapplying_keeps_what_other_managers_set() -> None:
    applied = apply(None, config(HTTP, labels={"app": "web"}))
    labelled = {**applied, "metadata": {**applied["metadata"],
                                        "labels": {"app": "web", "tier": "front"}}}
    labelled["metadata"]["managedFields"] = fm.update(
        applied, labelled, "kubectl-label", schema=SERVICE, now="T2")
    reapplied = apply(labelled, config(HTTP), now="T3")
    assert reapplied["metadata"]["labels"] == {"tier": "front"}  # app was only kubectl's
    assert owned(reapplied, "kubectl-label", fm.UPDATE) == {".metadata.labels.tier"}


def test_a_field_two_appliers_set_stays_until_both_drop_it() -> None:
    both = apply(apply(None, config(HTTP, METRICS)), config(METRICS), "other")
    assert apply(both, config(HTTP))["spec"]["ports"] == [HTTP, METRICS]


def test_changing_a_field_another_manager_owns_is_a_conflict() -> None:
    created = apply(None, config(HTTP), "kubectl-client-side-apply")
    with pytest.raises(ApplyConflict) as raised:
        apply(created, config({**HTTP, "targetPort": 8081}, labels={"app": "web"}))
    assert raised.value.conflicts == [
        ('"kubectl-client-side-apply"', ".spec.ports[port=80].targetPort")]
    assert str(raised.value) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply": '
        ".spec.ports[port=80].targetPort")


def test_conflicts_are_listed_by_manager() -> None:
    created = apply(None, config(HTTP), "one")
    with pytest.raises(ApplyConflict) as raised:
        apply(created, config({**HTTP, "targetPort": 1}, selector={"app": "x"}), "two")
    assert str(raised.value) == (
        'Apply failed with 2 conflicts: conflicts with "one":\n'
        "- .spec.ports[port=80].targetPort\n- .spec.selector.app")


def test_an_update_manager_is_named_with_its_api_version() -> None:
    created = apply(None, config(HTTP))
    edited = {**created, "spec": {**created["spec"], "selector": {"app": "x"}}}
    edited["metadata"] = {**created["metadata"], "managedFields": fm.update(
        created, edited, "kubectl-edit", schema=SERVICE, now="T2")}
    with pytest.raises(ApplyConflict, match='conflict with "kubectl-edit" using v1: '
                                            r"\.spec\.selector\.app"):
        apply(edited, config(HTTP, selector={"app": "y"}), "other")


def test_setting_the_same_value_shares_the_field() -> None:
    created = apply(None, config(HTTP), "one")
    shared = apply(created, config(HTTP), "two")
    assert ".spec.ports[port=80].targetPort" in owned(shared, "one") & owned(shared, "two")


def test_force_takes_the_fields_from_the_other_manager() -> None:
    created = apply(None, config(HTTP, METRICS), "one")
    forced = apply(created, config({**HTTP, "targetPort": 8081}), "two", force=True)
    assert forced["spec"]["ports"][0]["targetPort"] == 8081
    assert ".spec.ports[port=80].targetPort" in owned(forced, "two")
    assert ".spec.ports[port=80].targetPort" not in owned(forced, "one")
    assert ".spec.ports[port=9090].port" in owned(forced, "one")


def test_an_apply_that_changes_nothing_keeps_the_time() -> None:
    created = apply(None, config(HTTP))
    again = apply(created, config(HTTP), now="T2")
    assert again == created


def test_null_in_a_config_removes_the_field() -> None:
    created = apply(None, config(HTTP, labels={"a": "1", "b": "2"}))
    assert apply(created, config(HTTP, labels={"a": None, "b": "2"}))["metadata"]["labels"] == {
        "b": "2"}


def test_unknown_fields_and_server_metadata_are_no_one_s() -> None:
    cfg = config(HTTP, bogus=1)
    cfg["metadata"] |= {"uid": "x", "resourceVersion": "7"}
    cfg["status"] = {"loadBalancer": {}}
    fields = {fm.path_text(p) for p in fm.field_set(cfg, SERVICE)}
    assert not {f for f in fields if "bogus" in f or f.startswith((".status", ".metadata.uid"))}
    assert ".spec.ports[port=80].port" in fields


def test_a_keyed_list_with_an_item_missing_its_key_is_owned_whole() -> None:
    fields = {fm.path_text(p) for p in fm.field_set(config({"name": "noport"}), SERVICE)}
    assert ".spec.ports" in fields


def test_update_gives_the_changed_fields_to_the_writer() -> None:
    created = apply(None, config(HTTP, METRICS))
    changed = {**created, "spec": {"selector": {"app": "web"}, "ports": [
        {**HTTP, "targetPort": 9000}]}}
    entries = fm.update(created, changed, "OpenAPI-Generator", schema=SERVICE, now="T2")
    by_manager = {(e["manager"], e["operation"]): e for e in entries}
    assert {fm.path_text(p) for p in fm.from_fields_v1(
        by_manager[("OpenAPI-Generator", "Update")]["fieldsV1"])} == {
        ".spec.ports[port=80].targetPort"}
    applied = by_manager[("kubectl", "Apply")]["fieldsV1"]
    kept = {fm.path_text(p) for p in fm.from_fields_v1(applied)}
    assert ".spec.ports[port=80].targetPort" not in kept  # taken
    assert not any("9090" in f for f in kept)  # removed by the write: no one's


def test_an_update_that_changes_nothing_changes_no_entry() -> None:
    created = apply(None, config(HTTP))
    assert fm.update(created, created, "other", schema=SERVICE, now="T2") == created[
        "metadata"]["managedFields"]


def test_a_create_gives_every_field_to_its_writer() -> None:
    entries = fm.update(None, config(HTTP), "kubectl-create", schema=SERVICE, now="T1")
    assert [(e["manager"], e["operation"], e["time"]) for e in entries] == [
        ("kubectl-create", "Update", "T1")]


def test_entries_the_client_sends_replace_the_stored_ones() -> None:
    created = apply(None, config(HTTP))
    upgraded = dict(created, metadata={**created["metadata"], "managedFields": [
        {**created["metadata"]["managedFields"][0], "manager": "renamed"}]})
    assert [e["manager"] for e in fm.update(created, upgraded, "x", schema=SERVICE,
                                            now="T2")] == ["renamed"]


@pytest.mark.parametrize(("path", "text"), [
    (("f:spec", "f:replicas"), ".spec.replicas"),
    (("f:spec", "f:ports", 'k:{"port":80}', "f:targetPort"), ".spec.ports[port=80].targetPort"),
    (("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image"),
     '.spec.template.spec.containers[name="web"].image'),
    (("f:metadata", "f:finalizers", 'v:"example.com/x"'), '.metadata.finalizers[="example.com/x"]'),
])
def test_paths_print_as_kubernetes_prints_them(path: fm.Path, text: str) -> None:
    assert fm.path_text(path) == text


def test_fields_v1_round_trips() -> None:
    fields = fm.field_set(config(HTTP, METRICS, labels={"a": "b"}), SERVICE)
    assert fm.from_fields_v1(fm.to_fields_v1(fields)) == fields
