"""Label selectors, field selectors, and the label syntax both are built on.

Label selectors
---------------
A `Selector` is an AND of `Requirement`s, each a key, an operator and a set of values, exactly as
Kubernetes' `labels.Selector`. Three sources produce one:

* `parse_selector(text)`: the string syntax of `?labelSelector=` and `kubectl -l`::

      a=b   a==b   a!=b   a in (x,y)   a notin (x)   a   !a   a>3   a<3     (comma = AND)

  The text is split into tokens (identifiers, and the symbols `= == != ! ( ) , < >`; the words
  `in`/`notin` are operators only where an operator is expected), then a small recursive-descent
  parser follows Kubernetes' grammar, including its corner cases: `a=` means "a is the empty
  string", `a in ()` and `a in (,x)` contain the empty string. Every key must be a qualified name
  and every value a label value, as Kubernetes checks them.
* `Selector.from_map({"app": "web"})`: a Service's `spec.selector`, equality only.
* `Selector.from_label_selector(model.LabelSelector)`: a Deployment's `matchLabels` and
  `matchExpressions` (In, NotIn, Exists, DoesNotExist).

Matching (`Selector.matches(labels)`) follows `labels.Requirement.Matches`: `=`/`in` need the key
present with one of the values; `!=`/`notin` also match when the key is absent; `>`/`<` need an
integer value. A selector without requirements is *empty* and matches everything; the one made from
a missing (`None`) `LabelSelector` matches nothing (`Selector.nothing()`), as in Kubernetes.
Whether a Service with no selector gets endpoints is the caller's decision, not this module's.

Selectors are canonical values: requirements are sorted and values deduplicated and sorted, so two
selectors that mean the same thing textually compare equal, and `parse_selector(str(s)) == s`.

Field selectors
---------------
`parse_field_selector("metadata.name=x,status.phase!=Failed")` gives a `FieldSelector`, an AND of
`=`/`==`/`!=` terms (`\\`, `\\,` and `\\=` escape inside values). Objects are matched through a flat
`{path: str}` view made by `object_fields(obj)`; which paths each kind supports is the table
`FIELD_PATHS`, and `FieldSelector.check(kind)` rejects the others with Kubernetes' message
`field label not supported: ...`. A missing field reads as the empty string, as in Kubernetes.

Label syntax
------------
`qualified_name_errors`, `label_value_errors` and `dns1123_subdomain_errors` return Kubernetes'
messages (an empty list means valid). `core.validation` builds its field errors from them.

Parse errors raise `SelectorError` (a `BadInput`: HTTP 400, CLI exit 2) naming the bad text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from clusterip.core import model
from clusterip.core.errors import BadInput

__all__ = [
    "DNS1123_LABEL_FMT",
    "DNS1123_SUBDOMAIN_FMT",
    "FIELD_PATHS",
    "FieldSelector",
    "FieldTerm",
    "Operator",
    "Requirement",
    "Selector",
    "SelectorError",
    "dns1123_subdomain_errors",
    "label_value_errors",
    "max_len_error",
    "object_fields",
    "parse_field_selector",
    "parse_selector",
    "qualified_name_errors",
    "regex_error",
    "supported_fields",
]


class SelectorError(BadInput):
    """A label or field selector that cannot be parsed, or names a field that is not supported."""


# --- label syntax -----------------------------------------------------------------------------


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """Kubernetes' `validation.RegexError` text, double spaces and all."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{fmt}')"


def max_len_error(limit: int) -> str:
    return f"must be no more than {limit} characters"


QUALIFIED_NAME_MAX = 63
LABEL_VALUE_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_QNAME_RE = re.compile(f"^{_QNAME_FMT}$")
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = rf"{DNS1123_LABEL_FMT}(\.{DNS1123_LABEL_FMT})*"
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{DNS1123_SUBDOMAIN_FMT}$")


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Why `value` is not a DNS-1123 subdomain (`example.com`); empty when it is one."""
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(max_len_error(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """Why `value` is not a qualified name (`[prefix/]name`, a label or annotation key)."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend(f"prefix part {m}" for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name "
            + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX:
        errs.append("name part " + max_len_error(QUALIFIED_NAME_MAX))
    if not _QNAME_RE.match(name):
        errs.append(
            "name part " + regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def label_value_errors(value: str) -> list[str]:
    """Why `value` is not a label value (≤63 characters, may be empty)."""
    errs = []
    if len(value) > LABEL_VALUE_MAX:
        errs.append(max_len_error(LABEL_VALUE_MAX))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


# --- label selectors: values ------------------------------------------------------------------


class Operator(Enum):
    """A requirement's operator; the value is how it prints in the string syntax."""

    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = ">"
    LESS_THAN = "<"


# How many values each operator takes: (min, max); None = unbounded.
_ARITY: dict[Operator, tuple[int, int | None]] = {
    Operator.EQUALS: (1, 1),
    Operator.NOT_EQUALS: (1, 1),
    Operator.IN: (1, None),
    Operator.NOT_IN: (1, None),
    Operator.EXISTS: (0, 0),
    Operator.DOES_NOT_EXIST: (0, 0),
    Operator.GREATER_THAN: (1, 1),
    Operator.LESS_THAN: (1, 1),
}

_ARITY_MESSAGES: dict[Operator, str] = {
    Operator.EQUALS: "exact-match compatibility requires one single value",
    Operator.NOT_EQUALS: "exact-match compatibility requires one single value",
    Operator.IN: "for 'in', 'notin' operators, values set can't be empty",
    Operator.NOT_IN: "for 'in', 'notin' operators, values set can't be empty",
    Operator.EXISTS: "values set must be empty for exists and does not exist",
    Operator.DOES_NOT_EXIST: "values set must be empty for exists and does not exist",
    Operator.GREATER_THAN: "for 'Gt', 'Lt' operators, exactly one value is required",
    Operator.LESS_THAN: "for 'Gt', 'Lt' operators, exactly one value is required",
}


def _as_int(text: str) -> int | None:
    return int(text, 10) if re.fullmatch(r"[-+]?[0-9]+", text) else None


def _matches_gt(value: str | None, values: tuple[str, ...]) -> bool:
    have, want = _as_int(value or ""), _as_int(values[0])
    return value is not None and have is not None and want is not None and have > want


def _matches_lt(value: str | None, values: tuple[str, ...]) -> bool:
    have, want = _as_int(value or ""), _as_int(values[0])
    return value is not None and have is not None and want is not None and have < want


# How each operator matches: (the label's value or None when absent, the requirement's values).
_MATCHERS: dict[Operator, Callable[[str | None, tuple[str, ...]], bool]] = {
    Operator.EQUALS: lambda v, vs: v is not None and v in vs,
    Operator.IN: lambda v, vs: v is not None and v in vs,
    Operator.NOT_EQUALS: lambda v, vs: v is None or v not in vs,
    Operator.NOT_IN: lambda v, vs: v is None or v not in vs,
    Operator.EXISTS: lambda v, vs: v is not None,
    Operator.DOES_NOT_EXIST: lambda v, vs: v is None,
    Operator.GREATER_THAN: _matches_gt,
    Operator.LESS_THAN: _matches_lt,
}


@dataclass(frozen=True, slots=True)
class Requirement:
    """One `key op values` term. Build with `Requirement.make` to get checks and canonical order."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    @classmethod
    def make(cls, key: str, operator: Operator, values: Iterable[str] = ()) -> Requirement:
        """A checked requirement: key and values syntax, arity; values sorted and deduplicated.

        Raises:
            SelectorError: the key or a value is not valid, or the number of values is wrong.
        """
        vals = tuple(sorted(set(values)))
        for msg in qualified_name_errors(key):
            raise SelectorError(f'invalid label key "{key}": {msg}')
        low, high = _ARITY[operator]
        if len(vals) < low or (high is not None and len(vals) > high):
            raise SelectorError(f'invalid requirement on "{key}": {_ARITY_MESSAGES[operator]}')
        if operator in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if _as_int(vals[0]) is None:
                raise SelectorError(
                    f'invalid requirement on "{key}": '
                    f"for 'Gt', 'Lt' operators, the value must be an integer (got \"{vals[0]}\")"
                )
        else:
            for value in vals:
                for msg in label_value_errors(value):
                    raise SelectorError(f'invalid label value "{value}" for key "{key}": {msg}')
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return _MATCHERS[self.operator](labels.get(self.key), self.values)

    def __str__(self) -> str:
        op = self.operator
        if op is Operator.EXISTS:
            return self.key
        if op is Operator.DOES_NOT_EXIST:
            return f"!{self.key}"
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({','.join(self.values)})"
        return f"{self.key}{op.value}{self.values[0]}"

    def _order(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.key, self.operator.value, self.values)


@dataclass(frozen=True, slots=True)
class Selector:
    """An AND of requirements. Empty matches everything; `Selector.nothing()` matches nothing."""

    requirements: tuple[Requirement, ...] = ()
    match_nothing: bool = False

    @classmethod
    def of(cls, requirements: Iterable[Requirement]) -> Selector:
        """The canonical selector of these requirements (sorted, duplicates removed)."""
        return cls(tuple(sorted(set(requirements), key=Requirement._order)))

    @classmethod
    def everything(cls) -> Selector:
        return cls()

    @classmethod
    def nothing(cls) -> Selector:
        return cls(match_nothing=True)

    @classmethod
    def from_map(cls, labels: Mapping[str, str] | None) -> Selector:
        """Equality-only selector of a map (a Service's `spec.selector`); `{}`/None is empty.

        Raises:
            SelectorError: a key or value is not valid label syntax.
        """
        return cls.of(Requirement.make(k, Operator.EQUALS, (v,)) for k, v in (labels or {}).items())

    @classmethod
    def from_label_selector(cls, selector: model.LabelSelector | None) -> Selector:
        """Kubernetes' `LabelSelectorAsSelector`: None matches nothing, `{}` everything.

        Raises:
            SelectorError: an unknown operator, wrong number of values, or bad syntax.
        """
        if selector is None:
            return cls.nothing()
        reqs = [
            Requirement.make(k, Operator.EQUALS, (v,))
            for k, v in (selector.match_labels or {}).items()
        ]
        for expr in selector.match_expressions:
            try:
                op = _EXPRESSION_OPERATORS[expr.operator]
            except KeyError:
                raise SelectorError(
                    f'"{expr.operator}" is not a valid label selector operator'
                ) from None
            reqs.append(Requirement.make(expr.key, op, expr.values))
        return cls.of(reqs)

    @property
    def empty(self) -> bool:
        """True when the selector has no requirements and so matches every object."""
        return not self.requirements and not self.match_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.match_nothing:
            return False
        have = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


_EXPRESSION_OPERATORS: dict[str, Operator] = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


# --- label selectors: the string syntax -------------------------------------------------------

# Longest first, so that "!=" wins over "!" and "==" over "=".
_SYMBOLS = ("!=", "==", "=", "!", "(", ")", ",", ">", "<")
_SPECIAL = frozenset("=!(),<>")
_IDENT = "identifier"
_END = "end of string"

# Operator tokens after a key: the token text → the operator.
_OPERATOR_TOKENS: dict[str, Operator] = {
    "=": Operator.EQUALS,
    "==": Operator.EQUALS,
    "!=": Operator.NOT_EQUALS,
    "in": Operator.IN,
    "notin": Operator.NOT_IN,
    ">": Operator.GREATER_THAN,
    "<": Operator.LESS_THAN,
}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # _IDENT, _END, or the symbol itself
    text: str


def _tokens(text: str) -> Iterator[_Token]:
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in _SPECIAL:
            sym = next(s for s in _SYMBOLS if text.startswith(s, i))
            yield _Token(sym, sym)
            i += len(sym)
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            yield _Token(_IDENT, text[i:j])
            i = j
    yield _Token(_END, "")


class _Parser:
    """Recursive descent over the token list; one method a grammar rule."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = list(_tokens(text))
        self.pos = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        if tok.kind != _END:
            self.pos += 1
        return tok

    def fail(self, found: _Token, expected: str) -> SelectorError:
        shown = found.text if found.kind != _END else "end of string"
        return SelectorError(
            f"unable to parse label selector \"{self.text}\": found '{shown}', expected: {expected}"
        )

    def selector(self) -> Selector:
        if self.peek().kind == _END:
            return Selector.everything()
        reqs = [self.requirement()]
        while True:
            tok = self.take()
            if tok.kind == _END:
                return Selector.of(reqs)
            if tok.kind != ",":
                raise self.fail(tok, "','")
            reqs.append(self.requirement())

    def requirement(self) -> Requirement:
        negated = self.peek().kind == "!"
        if negated:
            self.take()
        key = self.take()
        if key.kind != _IDENT:
            raise self.fail(key, "identifier")
        after = self.peek()
        if negated or after.kind in (",", _END):
            if negated and after.kind not in (",", _END):
                raise self.fail(after, "',' or end of string")
            return Requirement.make(
                key.text, Operator.DOES_NOT_EXIST if negated else Operator.EXISTS
            )
        op_token = self.take()
        op = _OPERATOR_TOKENS.get(op_token.text) if op_token.kind != _END else None
        if op is None:
            raise self.fail(op_token, "'=', '!=', '==', 'in', 'notin', '>' or '<'")
        if op in (Operator.IN, Operator.NOT_IN):
            return Requirement.make(key.text, op, self.value_set())
        return Requirement.make(key.text, op, (self.exact_value(),))

    def exact_value(self) -> str:
        tok = self.peek()
        if tok.kind in (",", _END):
            return ""
        self.take()
        if tok.kind != _IDENT:
            raise self.fail(tok, "identifier")
        return tok.text

    def value_set(self) -> list[str]:
        tok = self.take()
        if tok.kind != "(":
            raise self.fail(tok, "'('")
        values: list[str] = []
        current = ""
        while True:
            tok = self.take()
            if tok.kind == _IDENT and not current:
                current = tok.text
            elif tok.kind == ",":
                values.append(current)
                current = ""
            elif tok.kind == ")":
                values.append(current)
                return values
            else:
                raise self.fail(tok, "',', ')' or identifier")


def parse_selector(text: str) -> Selector:
    """Parse the label selector syntax of `?labelSelector=` and `kubectl -l`.

    Raises:
        SelectorError: the text is not a valid selector; the message quotes the bad part.
    """
    return _Parser(text).selector()


# --- field selectors --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldTerm:
    """One `field=value` (or `!=`) term of a field selector."""

    field: str
    value: str
    negated: bool = False

    def matches(self, fields: Mapping[str, str]) -> bool:
        return (fields.get(self.field, "") == self.value) != self.negated

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{_escape(self.value)}"


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """An AND of field terms; empty matches everything."""

    terms: tuple[FieldTerm, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(t.matches(fields) for t in self.terms)

    def matches_object(self, obj: model.KubeObject) -> bool:
        return self.matches(object_fields(obj))

    def exact(self, field: str) -> str | None:
        """The value `field` must equal, when a `field=value` term requires one (for indexes)."""
        return next((t.value for t in self.terms if t.field == field and not t.negated), None)

    def check(self, kind: str) -> None:
        """Raise unless every field this selector uses is supported for `kind`.

        Raises:
            SelectorError: `field label not supported: <path>`, as Kubernetes says it.
        """
        supported = supported_fields(kind)
        for term in self.terms:
            if term.field not in supported:
                raise SelectorError(f"field label not supported: {term.field}")

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


_ESCAPES = {"\\": "\\\\", ",": "\\,", "=": "\\="}


def _escape(value: str) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in value)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(value: str, selector: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            nxt = value[i + 1 : i + 2]
            if nxt not in _ESCAPES:
                raise SelectorError(
                    f'invalid field selector "{selector}": invalid escape sequence in "{value}"'
                )
            out.append(nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# Term operators, in the order they are searched for at each position.
_FIELD_OPERATORS = (("!=", True), ("==", False), ("=", False))


def _split_term(term: str) -> tuple[str, str, bool] | None:
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op, negated in _FIELD_OPERATORS:
            if term.startswith(op, i):
                return term[:i], term[i + len(op) :], negated
        i += 1
    return None


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `metadata.name=x,spec.nodeName!=n` (values may escape `\\`, `,`, `=`).

    Raises:
        SelectorError: a term has no operator, an empty field name, or a bad escape.
    """
    if not text.strip():
        return FieldSelector()
    terms = []
    for part in _split_unescaped(text, ","):
        split = _split_term(part)
        if split is None or not split[0].strip():
            raise SelectorError(f"invalid field selector \"{text}\": can't understand '{part}'")
        field, raw, negated = split
        terms.append(FieldTerm(field.strip(), _unescape(raw, text), negated))
    return FieldSelector(tuple(terms))


# Which field paths each kind supports, and how to read them; "*" applies to every kind.
_Getter = Callable[[Any], str]


def _flag(value: bool) -> str:
    return "true" if value else "false"


FIELD_PATHS: dict[str, dict[str, _Getter]] = {
    "*": {
        "metadata.name": lambda o: o.metadata.name,
        "metadata.namespace": lambda o: o.metadata.namespace,
    },
    "Pod": {
        "spec.nodeName": lambda o: o.spec.node_name,
        "spec.restartPolicy": lambda o: o.spec.restart_policy,
        "spec.schedulerName": lambda o: o.spec.scheduler_name,
        "spec.serviceAccountName": lambda o: o.spec.service_account_name,
        "spec.hostNetwork": lambda o: _flag(o.spec.host_network),
        "status.phase": lambda o: o.status.phase,
        "status.podIP": lambda o: o.status.pod_ip,
    },
    "Service": {
        "spec.clusterIP": lambda o: o.spec.cluster_ip,
        "spec.type": lambda o: o.spec.type,
    },
    "Namespace": {
        "status.phase": lambda o: o.status.phase,
    },
    "Node": {
        "spec.unschedulable": lambda o: _flag(o.spec.unschedulable),
    },
    # kube-apiserver's event fields (`kubectl describe` asks for involvedObject.name,
    # .namespace, .kind and .uid); `source` is the reporting component.
    "Event": {
        "involvedObject.kind": lambda o: o.involved_object.kind,
        "involvedObject.namespace": lambda o: o.involved_object.namespace,
        "involvedObject.name": lambda o: o.involved_object.name,
        "involvedObject.uid": lambda o: o.involved_object.uid,
        "involvedObject.apiVersion": lambda o: o.involved_object.api_version,
        "involvedObject.resourceVersion": lambda o: o.involved_object.resource_version,
        "involvedObject.fieldPath": lambda o: o.involved_object.field_path,
        "reason": lambda o: o.reason,
        "reportingComponent": lambda o: o.reporting_component,
        "source": lambda o: o.source.component,
        "type": lambda o: o.type,
    },
}


def supported_fields(kind: str) -> frozenset[str]:
    """The field paths a field selector may use for `kind`."""
    return frozenset(FIELD_PATHS["*"]) | frozenset(FIELD_PATHS.get(kind, {}))


def object_fields(obj: model.KubeObject) -> dict[str, str]:
    """The flat `{field path: value}` view of `obj` that field selectors match against."""
    getters = {**FIELD_PATHS["*"], **FIELD_PATHS.get(type(obj).KIND, {})}
    return {path: get(obj) for path, get in getters.items()}
