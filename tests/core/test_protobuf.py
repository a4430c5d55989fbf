"""`core.protobuf` reads the Kubernetes protobuf bodies kubectl's `create` generators send.

Golden files (tests/data/kubectl-protobuf, see its README): the exact bytes kubectl 1.32.4 sent,
each decoded to exactly the JSON kubectl itself prints for that object (`--dry-run=client -o
json`); and "oracles", bodies built from our tables that kubectl's Go decoder read, decoded to
exactly kubectl's JSON of them. The rest are small hand-built bodies: unknown fields are skipped
and reported, zero values follow Go's JSON, and malformed input raises `DecodeError` naming what
is wrong (and where) — never anything else, for any bytes (hypothesis).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clusterip.core import codec
from clusterip.core.errors import DecodeError
from clusterip.core.protobuf import MAGIC, OBJECTS, ProtobufObject, decode, read

GOLDEN = Path(__file__).parents[1] / "data" / "kubectl-protobuf"
BODIES = sorted(GOLDEN.glob("*.pb"))
REQUESTS = [p for p in BODIES if not p.name.startswith("oracle-")]


def body(name: str) -> bytes:
    return (GOLDEN / f"{name}.pb").read_bytes()


def expected(name: str) -> Any:
    return json.loads((GOLDEN / f"{name}.json").read_text())


# --- a tiny encoder for hand-built bodies ------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def ln(number: int, payload: bytes | str) -> bytes:
    """A length-delimited field (wire type 2)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def vi(number: int, value: int) -> bytes:
    """A varint field (wire type 0)."""
    return varint(number << 3) + varint(value)


def envelope(raw: bytes, api_version: str = "v1", kind: str = "Service",
             *extra: bytes) -> bytes:
    return MAGIC + ln(1, ln(1, api_version) + ln(2, kind)) + ln(2, raw) + b"".join(extra)


def meta(name: str = "web") -> bytes:
    return ln(1, ln(1, name))


# --- golden files from the real kubectl --------------------------------------------------------


def test_the_golden_folder_has_the_commands_of_the_brief() -> None:
    names = {p.stem for p in REQUESTS}
    assert {"namespace", "deployment-full", "service-clusterip", "service-headless",
            "service-externalname"} <= names
    assert all(p.with_suffix(".json").exists() for p in BODIES)


@pytest.mark.parametrize("path", BODIES, ids=lambda p: p.stem)
def test_decodes_to_the_json_kubectl_prints(path: Path) -> None:
    decoded = read(path.read_bytes())
    assert decoded.data == expected(path.stem)
    assert decoded.skipped == ()


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.stem)
def test_what_kubectl_sends_is_a_valid_object_under_strict_validation(path: Path) -> None:
    decoded = codec.decode(decode(path.read_bytes()), strict=True)
    assert decoded.warnings == ()
    assert decoded.obj.metadata.name


def test_create_namespace() -> None:
    assert decode(body("namespace")) == {
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "x1", "creationTimestamp": None}, "spec": {}, "status": {},
    }


def test_create_deployment_with_replicas_port_and_command() -> None:
    data = decode(body("deployment-full"))
    assert (data["apiVersion"], data["kind"]) == ("apps/v1", "Deployment")
    assert data["spec"]["replicas"] == 2
    assert data["spec"]["strategy"] == {} and data["status"] == {}
    [container] = data["spec"]["template"]["spec"]["containers"]
    assert container == {"name": "nginx", "image": "nginx:1.27", "command": ["sleep", "1d"],
                         "ports": [{"containerPort": 8080}], "resources": {}}


def test_create_service_ports_and_headless() -> None:
    assert decode(body("service-clusterip-two-ports"))["spec"]["ports"] == [
        {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080},
        {"name": "443-https", "protocol": "TCP", "port": 443, "targetPort": "https"},
    ]
    headless = decode(body("service-headless"))
    assert headless["spec"]["clusterIP"] == "None" and "ports" not in headless["spec"]
    assert headless["status"] == {"loadBalancer": {}}


def test_empty_status_is_harmless() -> None:
    for name in ("namespace", "service-clusterip", "deployment-minimal"):
        obj = codec.decode(decode(body(name)), strict=True).obj
        assert codec.to_dict(obj).get("status", {}) in ({}, {"loadBalancer": {}})


def test_every_served_kind_decodes_its_empty_message() -> None:
    for api_version, kind in OBJECTS:
        assert decode(envelope(b"", api_version, kind)) == {"kind": kind,
                                                            "apiVersion": api_version}


# --- the wire format ---------------------------------------------------------------------------


def test_unknown_fields_are_skipped_and_reported_with_their_path() -> None:
    raw = (ln(1, ln(1, "web") + vi(99, 7))  # metadata: name, unknown varint 99
           + vi(42, 1)  # unknown varint at the top
           + varint(43 << 3 | 5) + b"\x01\x02\x03\x04"  # unknown fixed32
           + varint(44 << 3 | 1) + bytes(8)  # unknown fixed64
           + ln(2, ln(1, ln(1, "p") + ln(77, "x"))))  # spec.ports[0] with unknown LEN 77
    result = read(envelope(raw))
    assert result.data == {"kind": "Service", "apiVersion": "v1", "metadata": {"name": "web"},
                           "spec": {"ports": [{"name": "p"}]}}
    assert result.skipped == (("metadata", 99), ("", 42), ("", 43), ("", 44),
                              ("spec.ports[0]", 77))


def test_managed_fields_are_skipped_without_a_report() -> None:
    result = read(envelope(ln(1, ln(1, "web") + ln(17, ln(1, "kubectl")))))
    assert result == ProtobufObject({"kind": "Service", "apiVersion": "v1",
                                     "metadata": {"name": "web"}})


def test_unknown_envelope_fields_are_skipped() -> None:
    result = read(envelope(meta(), "v1", "Service", vi(9, 1), ln(4, "")))
    assert result.data["metadata"] == {"name": "web"}


def test_zero_values_follow_go_json() -> None:
    # spec.replicas is a pointer: an explicit 0 stays; minReadySeconds is a plain omitempty
    # int: its 0 goes; a container's name has no omitempty: its "" stays.
    raw = ln(2, vi(1, 0) + vi(5, 0) + ln(3, ln(2, ln(2, ln(1, "") + ln(2, "")))))
    data = decode(envelope(raw, "apps/v1", "Deployment"))
    assert data["spec"] == {"replicas": 0, "template": {"spec": {"containers": [{"name": ""}]}}}


def test_negative_numbers_are_tens_complement_varints() -> None:
    spec = ln(3, ln(2, vi(25, -5) + vi(4, -30)))  # template.spec: priority, grace period
    data = decode(envelope(ln(2, spec), "apps/v1", "Deployment"))
    assert data["spec"]["template"]["spec"] == {"priority": -5,
                                                "terminationGracePeriodSeconds": -30}


def test_repeated_scalars_packed_or_not() -> None:
    security = ln(14, ln(4, varint(1) + varint(2)) + vi(4, 3))  # supplementalGroups
    data = decode(envelope(ln(2, security), "v1", "Pod"))
    assert data["spec"]["securityContext"] == {"supplementalGroups": [1, 2, 3]}


def test_time_quantity_int_or_string_and_maps() -> None:
    metadata = ln(1, ln(8, vi(1, 1704164645) + vi(2, 999)) + ln(9, b"")
                  + ln(11, ln(1, "a") + ln(2, "1")) + ln(11, ln(1, "b")))
    container = ln(1, "c") + ln(8, ln(1, ln(1, "cpu") + ln(2, ln(1, "500m")))
                                + ln(2, ln(1, "memory") + ln(2, b"")))
    spec = ln(3, ln(2, ln(2, container)))
    strategy = ln(4, ln(2, ln(1, vi(1, 1) + ln(3, "25%")) + ln(2, vi(2, 3))))
    data = decode(envelope(metadata + ln(2, spec + strategy), "apps/v1", "Deployment"))
    assert data["metadata"] == {"creationTimestamp": "2024-01-02T03:04:05Z",
                                "deletionTimestamp": None, "labels": {"a": "1", "b": ""}}
    assert data["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "limits": {"cpu": "500m"}, "requests": {"memory": "0"}}
    assert data["spec"]["strategy"] == {"rollingUpdate": {"maxUnavailable": "25%",
                                                          "maxSurge": 3}}


def test_last_scalar_wins_and_a_repeated_message_merges() -> None:
    raw = ln(1, ln(1, "a") + ln(1, "b")) + ln(2, ln(3, "1.2.3.4")) + ln(2, ln(4, "ClusterIP"))
    data = decode(envelope(raw))
    assert data["metadata"] == {"name": "b"}
    assert data["spec"] == {"clusterIP": "1.2.3.4", "type": "ClusterIP"}


def test_a_later_zero_value_removes_an_omitempty_field() -> None:
    assert decode(envelope(ln(1, ln(1, "a") + ln(1, ""))))["metadata"] == {}


# --- malformed input ---------------------------------------------------------------------------


def error(data: bytes) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(data)
    return info.value


def test_bad_magic() -> None:
    assert "magic bytes b'k8s\\x00'" in str(error(b'{"kind": "Service"}'))
    assert "magic" in str(error(b""))


def test_truncated_varint_names_its_offset() -> None:
    assert str(error(MAGIC + b"\x0a\x80")) == "truncated varint at offset 5"
    assert str(error(MAGIC + b"\x80")) == "truncated varint at offset 4"


def test_a_varint_longer_than_ten_bytes() -> None:
    assert "varint longer than 10 bytes at offset 4" in str(error(MAGIC + b"\xff" * 11))


def test_a_length_past_the_end_names_the_field() -> None:
    raw = ln(2, ln(1, ln(1, "p")))
    cut = envelope(raw)[:-1]
    assert "truncated" in str(error(cut))
    spec = ln(2, varint(1 << 3 | 2) + varint(50) + b"abc")
    err = error(envelope(spec))
    assert err.field == "spec.ports[0]"
    assert "50 bytes declared" in str(err)


def test_every_truncation_of_a_golden_is_an_error_or_the_same_object() -> None:
    data = body("deployment-full")
    whole = decode(data)
    for cut in range(len(data)):
        try:
            assert decode(data[:cut]) == whole  # only the empty envelope strings at the end
        except DecodeError:
            pass


def test_wrong_wire_type_names_the_field_path() -> None:
    ports = ln(1, ln(1, "http") + ln(3, "80"))  # port written as a string
    err = error(envelope(ln(2, ports)))
    assert err.field == "spec.ports[0].port"
    assert str(err) == ("spec.ports[0].port: wrong wire type 2 (LEN) for an int32 field, "
                        "expected 0 (VARINT)")
    err = error(envelope(vi(1, 5)))
    assert err.field == "metadata"


def test_unknown_kind_says_json_is_accepted() -> None:
    message = str(error(envelope(meta(), "v1", "ConfigMap")))
    assert 'unknown kind "ConfigMap" (apiVersion "v1") for protobuf' in message
    assert "send other kinds as JSON" in message
    assert 'unknown kind "Deployment" (apiVersion "v1")' in str(
        error(envelope(meta(), "v1", "Deployment")))


def test_envelope_problems() -> None:
    assert "no object" in str(error(MAGIC + ln(1, ln(1, "v1") + ln(2, "Service"))))
    assert "names no apiVersion and kind" in str(error(MAGIC + ln(2, meta())))
    assert 'content encoding "gzip"' in str(error(envelope(meta(), "v1", "Service",
                                                            ln(3, "gzip"))))
    assert '"application/json", not protobuf' in str(
        error(envelope(meta(), "v1", "Service", ln(4, "application/json"))))


def test_text_must_be_utf8() -> None:
    err = error(envelope(ln(1, ln(1, b"\xff\xfe"))))
    assert err.field == "metadata.name"


def test_int_or_string_type_must_be_0_or_1() -> None:
    err = error(envelope(ln(2, ln(1, ln(4, vi(1, 2))))))
    assert err.field == "spec.ports[0].targetPort"


def test_groups_field_zero_and_bad_wire_types() -> None:
    assert "groups" in str(error(envelope(varint(50 << 3 | 3))))
    assert "field number 0" in str(error(envelope(vi(0, 1))))
    assert "invalid wire type 7" in str(error(envelope(varint(50 << 3 | 7))))
    assert "truncated fixed64" in str(error(envelope(varint(50 << 3 | 1) + b"\x00")))


def test_a_time_out_of_range() -> None:
    err = error(envelope(ln(1, ln(8, vi(1, 1 << 62)))))
    assert err.field == "metadata.creationTimestamp"


# --- any bytes: a dict or a DecodeError, nothing else ------------------------------------------


def _decodes_or_refuses(data: bytes) -> None:
    try:
        result = decode(data)
    except DecodeError:
        return
    assert isinstance(result, dict) and {"kind", "apiVersion"} <= result.keys()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    _decodes_or_refuses(data)
    _decodes_or_refuses(MAGIC + data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(BODIES), st.data())
def test_mutated_goldens(path: Path, draw: st.DataObject) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(draw.draw(st.integers(1, 4))):
        at = draw.draw(st.integers(4, len(data) - 1))
        action = draw.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = draw.draw(st.integers(0, 255))
        if action == "flip":
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        elif len(data) > 5:
            del data[at]
    _decodes_or_refuses(bytes(data))


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.binary(max_size=12), lambda inner: st.lists(
    st.tuples(st.integers(1, 45), st.sampled_from([0, 1, 2, 5]), inner), max_size=5).map(
        lambda fields: b"".join(_field(*f) for f in fields)), max_leaves=20),
    st.sampled_from(sorted(OBJECTS)))
def test_random_well_formed_messages(raw: bytes, kind: tuple[str, str]) -> None:
    _decodes_or_refuses(envelope(raw, *kind))


def _field(number: int, wire: int, payload: bytes) -> bytes:
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(int.from_bytes(payload[:9] or b"\x00", "little"))
    if wire == 1:
        return key + payload[:8].ljust(8, b"\x00")
    if wire == 5:
        return key + payload[:4].ljust(4, b"\x00")
    return key + varint(len(payload)) + payload
