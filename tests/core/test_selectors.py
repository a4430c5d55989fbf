"""Label selectors, field selectors and label syntax (`clusterip.core.selectors`)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterip.core import model
from clusterip.core.errors import BadInput
from clusterip.core.selectors import (
    FieldSelector,
    FieldTerm,
    Operator,
    Requirement,
    Selector,
    SelectorError,
    label_value_errors,
    object_fields,
    parse_field_selector,
    parse_selector,
    qualified_name_errors,
    regex_error,
    supported_fields,
)

EQ, NE, IN, NOTIN = Operator.EQUALS, Operator.NOT_EQUALS, Operator.IN, Operator.NOT_IN
EXISTS, ABSENT = Operator.EXISTS, Operator.DOES_NOT_EXIST


def req(key: str, op: Operator, *values: str) -> Requirement:
    return Requirement.make(key, op, values)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="empty"),
        pytest.param("   ", [], id="blank"),
        pytest.param("app=web", [req("app", EQ, "web")], id="equals"),
        pytest.param("app==web", [req("app", EQ, "web")], id="double-equals"),
        pytest.param("app!=web", [req("app", NE, "web")], id="not-equals"),
        pytest.param("app=", [req("app", EQ, "")], id="equals-empty"),
        pytest.param("env in (prod, qa)", [req("env", IN, "prod", "qa")], id="in"),
        pytest.param("env notin (dev)", [req("env", NOTIN, "dev")], id="notin"),
        pytest.param("env in ()", [req("env", IN, "")], id="in-empty-parens"),
        pytest.param("env in (,qa)", [req("env", IN, "", "qa")], id="in-leading-comma"),
        pytest.param("tier", [req("tier", EXISTS)], id="exists"),
        pytest.param("!tier", [req("tier", ABSENT)], id="does-not-exist"),
        pytest.param("rank>3", [req("rank", Operator.GREATER_THAN, "3")], id="greater-than"),
        pytest.param("rank<3", [req("rank", Operator.LESS_THAN, "3")], id="less-than"),
        pytest.param(
            "app.kubernetes.io/name=web,!canary, env in (a,b)",
            [req("app.kubernetes.io/name", EQ, "web"), req("canary", ABSENT),
             req("env", IN, "a", "b")],
            id="several",
        ),
        pytest.param("a=in", [req("a", EQ, "in")], id="keyword-as-value"),
    ],
)
def test_parse(text: str, expected: list[Requirement]) -> None:
    assert parse_selector(text) == Selector.of(expected)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("app=web,", "found 'end of string', expected: identifier",
                     id="trailing-comma"),
        pytest.param("app web", "found 'web'", id="missing-operator"),
        pytest.param("env in prod", "found 'prod', expected: '('", id="in-without-parens"),
        pytest.param("env in (a", "found 'end of string'", id="unclosed-parens"),
        pytest.param("env in (a b)", "found 'b'", id="values-without-comma"),
        pytest.param("!a=b", "found '='", id="negation-with-value"),
        pytest.param("=web", "found '=', expected: identifier", id="missing-key"),
        pytest.param("app=(web)", "found '('", id="value-is-a-symbol"),
        pytest.param("-app=web", 'invalid label key "-app"', id="bad-key"),
        pytest.param("app=web_", 'invalid label value "web_"', id="bad-value"),
        pytest.param("app=a b", "found 'b', expected: ','", id="two-values"),
        pytest.param("rank>three", "the value must be an integer", id="gt-not-integer"),
    ],
)
def test_parse_errors_name_the_bad_text(text: str, shown: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_selector(text)

    assert shown in str(info.value)
    assert isinstance(info.value, BadInput)


# --- matching ---------------------------------------------------------------------------------

LABELS = {"app": "web", "env": "prod", "rank": "5"}


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        pytest.param("", LABELS, True, id="empty-matches-all"),
        pytest.param("", None, True, id="empty-matches-unlabelled"),
        pytest.param("app=web", LABELS, True, id="equals"),
        pytest.param("app=db", LABELS, False, id="equals-other"),
        pytest.param("app=web", None, False, id="equals-unlabelled"),
        pytest.param("app!=db", LABELS, True, id="not-equals"),
        pytest.param("missing!=x", LABELS, True, id="not-equals-absent-key"),
        pytest.param("env in (qa,prod)", LABELS, True, id="in"),
        pytest.param("missing in (x)", LABELS, False, id="in-absent-key"),
        pytest.param("env notin (prod)", LABELS, False, id="notin"),
        pytest.param("missing notin (x)", LABELS, True, id="notin-absent-key"),
        pytest.param("app", LABELS, True, id="exists"),
        pytest.param("!app", LABELS, False, id="does-not-exist"),
        pytest.param("!missing", LABELS, True, id="does-not-exist-absent"),
        pytest.param("rank>4", LABELS, True, id="gt"),
        pytest.param("rank<5", LABELS, False, id="lt"),
        pytest.param("app>1", LABELS, False, id="gt-non-integer-label"),
        pytest.param("missing>1", LABELS, False, id="gt-absent"),
        pytest.param("app=web,env=qa", LABELS, False, id="and"),
        pytest.param("app=", {"app": ""}, True, id="empty-value"),
    ],
)
def test_matches(text: str, labels: dict[str, str] | None, matches: bool) -> None:
    assert parse_selector(text).matches(labels) is matches


def test_empty_and_nothing() -> None:
    assert Selector.everything().empty
    assert not Selector.nothing().empty
    assert not Selector.nothing().matches({})
    assert not parse_selector("a").empty


def test_from_map_is_equality_only() -> None:
    sel = Selector.from_map({"app": "web", "tier": "front"})

    assert sel == parse_selector("tier=front,app=web")
    assert sel.matches({"app": "web", "tier": "front", "extra": "x"})
    assert not sel.matches({"app": "web"})
    assert Selector.from_map({}).empty
    assert Selector.from_map(None).empty


def test_from_map_rejects_bad_syntax() -> None:
    with pytest.raises(SelectorError, match='invalid label value "a b"'):
        Selector.from_map({"app": "a b"})


def test_from_label_selector() -> None:
    ls = model.LabelSelector(
        match_labels={"app": "web"},
        match_expressions=(
            model.LabelSelectorRequirement(key="env", operator="In", values=("prod", "qa")),
            model.LabelSelectorRequirement(key="track", operator="NotIn", values=("canary",)),
            model.LabelSelectorRequirement(key="tier", operator="Exists"),
            model.LabelSelectorRequirement(key="legacy", operator="DoesNotExist"),
        ),
    )

    sel = Selector.from_label_selector(ls)

    assert sel == parse_selector("app=web,env in (prod,qa),track notin (canary),tier,!legacy")
    assert sel.matches({"app": "web", "env": "qa", "tier": "x"})
    assert not sel.matches({"app": "web", "env": "qa", "tier": "x", "legacy": "y"})


def test_from_label_selector_none_matches_nothing_and_empty_everything() -> None:
    assert Selector.from_label_selector(None) == Selector.nothing()
    assert Selector.from_label_selector(model.LabelSelector()).empty


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        pytest.param(model.LabelSelectorRequirement(key="a", operator="Equals", values=("x",)),
                     '"Equals" is not a valid label selector operator', id="operator"),
        pytest.param(model.LabelSelectorRequirement(key="a", operator="In"),
                     "values set can't be empty", id="in-without-values"),
        pytest.param(model.LabelSelectorRequirement(key="a", operator="Exists", values=("x",)),
                     "values set must be empty", id="exists-with-values"),
    ],
)
def test_from_label_selector_errors(expr: model.LabelSelectorRequirement, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        Selector.from_label_selector(model.LabelSelector(match_expressions=(expr,)))


# --- printing and the round trip --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        pytest.param("b=2,a=1", "a=1,b=2", id="sorted-by-key"),
        pytest.param("a==1", "a=1", id="double-equals-normalised"),
        pytest.param("a in (y, x, y)", "a in (x,y)", id="values-sorted-deduplicated"),
        pytest.param("a,!a", "!a,a", id="same-key-ordered-by-operator"),
        pytest.param("a in ()", "a in ()", id="empty-value-set"),
        pytest.param("a=", "a=", id="empty-value"),
        pytest.param("a>3", "a>3", id="greater-than"),
    ],
)
def test_str(text: str, printed: str) -> None:
    assert str(parse_selector(text)) == printed
    assert parse_selector(printed) == parse_selector(text)


_NAME_CHARS = st.sampled_from("abcXYZ019-_.")
_ALNUM = st.sampled_from("abcXYZ019")


@st.composite
def _names(draw: st.DrawFn) -> str:
    first = draw(_ALNUM)
    middle = draw(st.text(_NAME_CHARS, max_size=8))
    last = draw(_ALNUM)
    return first + middle + last if draw(st.booleans()) else first


@st.composite
def _keys(draw: st.DrawFn) -> str:
    name = draw(_names())
    if draw(st.booleans()):
        prefix = draw(st.sampled_from(["example.com", "app.kubernetes.io", "k8s.io", "x"]))
        return f"{prefix}/{name}"
    return name


_values = st.one_of(st.just(""), _names())


@st.composite
def _requirements(draw: st.DrawFn) -> Requirement:
    key = draw(_keys())
    op = draw(st.sampled_from(list(Operator)))
    if op in (EXISTS, ABSENT):
        return Requirement.make(key, op)
    if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
        return Requirement.make(key, op, [str(draw(st.integers(0, 10**6)))])
    if op in (IN, NOTIN):
        return Requirement.make(key, op, draw(st.lists(_values, min_size=1, max_size=4)))
    return Requirement.make(key, op, [draw(_values)])


@given(st.lists(_requirements(), max_size=5))
def test_printed_selector_parses_to_the_same(reqs: list[Requirement]) -> None:
    sel = Selector.of(reqs)

    assert parse_selector(str(sel)) == sel


@given(st.lists(_requirements(), max_size=5),
       st.dictionaries(_keys(), _values, max_size=5))
def test_parsed_selector_matches_like_the_original(reqs: list[Requirement],
                                                   labels: dict[str, str]) -> None:
    sel = Selector.of(reqs)

    assert parse_selector(str(sel)).matches(labels) == sel.matches(labels)


# --- label syntax -----------------------------------------------------------------------------

_QNAME_REGEX = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)


@pytest.mark.parametrize(
    ("key", "errors"),
    [
        pytest.param("app", [], id="plain"),
        pytest.param("App.Name_1", [], id="mixed"),
        pytest.param("app.kubernetes.io/name", [], id="prefixed"),
        pytest.param("-app", [_QNAME_REGEX], id="leading-dash"),
        pytest.param("", ["name part must be non-empty", _QNAME_REGEX], id="empty"),
        pytest.param("a" * 64, ["name part must be no more than 63 characters"], id="too-long"),
        pytest.param("/app", ["prefix part must be non-empty"], id="empty-prefix"),
        pytest.param("a/b/c", [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ], id="two-slashes"),
        pytest.param("Example.com/app", [
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        ], id="upper-case-prefix"),
    ],
)
def test_qualified_name_errors(key: str, errors: list[str]) -> None:
    assert qualified_name_errors(key) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        pytest.param("", [], id="empty-is-valid"),
        pytest.param("v1.2_rc-3", [], id="allowed-characters"),
        pytest.param("a" * 63, [], id="63"),
        pytest.param("a" * 64, ["must be no more than 63 characters"], id="64"),
        pytest.param("a b", [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        ], id="space"),
    ],
)
def test_label_value_errors(value: str, errors: list[str]) -> None:
    assert label_value_errors(value) == errors


def test_long_prefix_and_plain_regex_error() -> None:
    prefix = ".".join(["a" * 63] * 4)  # 255 characters

    assert qualified_name_errors(f"{prefix}/x") == [
        "prefix part must be no more than 253 characters"]
    assert regex_error("must be digits", "[0-9]+") == (
        "must be digits (regex used for validation is '[0-9]+')")


# --- field selectors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        pytest.param("", (), id="empty"),
        pytest.param("metadata.name=web", (FieldTerm("metadata.name", "web"),), id="equals"),
        pytest.param("metadata.name==web", (FieldTerm("metadata.name", "web"),),
                     id="double-equals"),
        pytest.param("status.phase!=Running", (FieldTerm("status.phase", "Running", True),),
                     id="not-equals"),
        pytest.param(
            "metadata.name=x,metadata.namespace!=y,spec.nodeName=n,status.phase=Running",
            (FieldTerm("metadata.name", "x"), FieldTerm("metadata.namespace", "y", True),
             FieldTerm("spec.nodeName", "n"), FieldTerm("status.phase", "Running")),
            id="several",
        ),
        pytest.param(r"metadata.name=a\,b\=c\\d", (FieldTerm("metadata.name", r"a,b=c\d"),),
                     id="escapes"),
        pytest.param("spec.nodeName=", (FieldTerm("spec.nodeName", ""),), id="empty-value"),
        pytest.param(r"metadata.name=a\=b=c", (FieldTerm("metadata.name", "a=b=c"),),
                     id="first-unescaped-operator-splits"),
    ],
)
def test_parse_field_selector(text: str, terms: tuple[FieldTerm, ...]) -> None:
    sel = parse_field_selector(text)

    assert sel.terms == terms
    assert parse_field_selector(str(sel)) == sel


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        pytest.param("metadata.name", "can't understand 'metadata.name'", id="no-operator"),
        pytest.param("=web", "can't understand '=web'", id="no-field"),
        pytest.param(r"metadata.name=a\b", "invalid escape sequence", id="bad-escape"),
    ],
)
def test_parse_field_selector_errors(text: str, shown: str) -> None:
    with pytest.raises(SelectorError, match=shown):
        parse_field_selector(text)


def _pod() -> model.Pod:
    return model.Pod(
        metadata=model.ObjectMeta(name="web-1", namespace="default"),
        spec=model.PodSpec(node_name="node-1", restart_policy="Always"),
        status=model.PodStatus(phase="Running", pod_ip="10.244.0.5"),
    )


def test_object_fields_of_a_pod() -> None:
    fields = object_fields(_pod())

    assert fields["metadata.name"] == "web-1"
    assert fields["metadata.namespace"] == "default"
    assert fields["spec.nodeName"] == "node-1"
    assert fields["status.phase"] == "Running"
    assert fields["status.podIP"] == "10.244.0.5"
    assert fields["spec.hostNetwork"] == "false"


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param("", True, id="empty"),
        pytest.param("metadata.name=web-1", True, id="name"),
        pytest.param("metadata.name=web-2", False, id="other-name"),
        pytest.param("spec.nodeName=node-1,status.phase=Running", True, id="and"),
        pytest.param("status.phase!=Running", False, id="not-equals"),
        pytest.param("metadata.namespace!=kube-system", True, id="not-equals-other"),
        pytest.param("status.podIP=10.244.0.5", True, id="pod-ip"),
    ],
)
def test_field_selector_matches_object(text: str, matches: bool) -> None:
    assert parse_field_selector(text).matches_object(_pod()) is matches


def test_missing_field_reads_as_empty_string() -> None:
    assert parse_field_selector("spec.nodeName=").matches({})
    assert not parse_field_selector("spec.nodeName!=").matches({})


def test_supported_fields_per_kind() -> None:
    assert {"metadata.name", "metadata.namespace"} <= supported_fields("Service")
    assert {"spec.nodeName", "status.phase", "status.podIP"} <= supported_fields("Pod")
    assert "spec.nodeName" not in supported_fields("Service")
    parse_field_selector("spec.nodeName=n").check("Pod")


def test_unsupported_field_is_rejected_like_kubernetes() -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector("spec.nodeName=n").check("Service")

    assert str(info.value) == "field label not supported: spec.nodeName"


def test_exact_value_for_indexes() -> None:
    sel = parse_field_selector("metadata.name=web,status.phase!=Failed")

    assert sel.exact("metadata.name") == "web"
    assert sel.exact("status.phase") is None
    assert FieldSelector().empty
