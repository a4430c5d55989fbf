"""The project's one exception tree, and the field errors that validation returns.

Every error clusterip raises on purpose is a `ClusterIPError`. The tree separates what the caller
did wrong (bad input: HTTP 4xx, CLI exit 2), what the state of the world refused (not found,
already exists, a stale resourceVersion, history compacted away: retry or report), and what the
environment failed at (a store that cannot be reached: 503)::

    ClusterIPError
    ├── BadInput                  the request or manifest is wrong            400 / 422
    │   ├── DecodeError           not YAML/JSON, or a field of the wrong type  400 BadRequest
    │   ├── UnknownKind           apiVersion/kind that clusterip does not serve 400 BadRequest
    │   │   └── UnknownResource   a URL for a resource clusterip does not serve 404 NotFound
    │   ├── UnsupportedMediaType  a body of a content type the verb cannot read 415
    │   ├── MethodNotAllowed      a verb the path does not take                405
    │   ├── Invalid               fails validation: carries every FieldError   422 Invalid
    │   ├── Forbidden             a well-formed request that is never allowed  403 Forbidden
    │   └── Unauthorized          no valid bearer token (the API needs one)    401 Unauthorized
    ├── StateError                the store's state refuses the request
    │   ├── NotFound                                                            404 NotFound
    │   ├── AlreadyExists                                                       409 AlreadyExists
    │   ├── Conflict              stale resourceVersion, or an allocation race  409 Conflict
    │   │   └── ApplyConflict     an apply would take fields others manage      409 Conflict
    │   ├── Expired               revision older than the compacted history     410 Expired
    │   └── RangeFull             no free address left in a service CIDR        409 Conflict
    └── Unavailable               the store cannot be reached or is closed      503 Unavailable

Foreign exceptions (sqlite3, aiohttp, msgspec, yaml) are translated into this tree in exactly one
place each: the store backend, the API client, `core.codec`. The mapping from this tree to HTTP
status codes and Kubernetes `Status` reasons is a table in `clusterip.apiserver.status`.

A `FieldError` is one finding of validation, printed the way Kubernetes prints it::

    spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "AlreadyExists",
    "ApplyConflict",
    "BadInput",
    "ClusterIPError",
    "Conflict",
    "DecodeError",
    "ErrorType",
    "Expired",
    "FieldError",
    "Forbidden",
    "Invalid",
    "MethodNotAllowed",
    "NotFound",
    "RangeFull",
    "StateError",
    "Unauthorized",
    "Unavailable",
    "UnknownKind",
    "UnknownResource",
    "UnsupportedMediaType",
]


class ErrorType(Enum):
    """Kubernetes' field error types: (the text it prints, the `reason` of a Status cause)."""

    REQUIRED = ("Required value", "FieldValueRequired")
    INVALID = ("Invalid value", "FieldValueInvalid")
    DUPLICATE = ("Duplicate value", "FieldValueDuplicate")
    NOT_SUPPORTED = ("Unsupported value", "FieldValueNotSupported")
    FORBIDDEN = ("Forbidden", "FieldValueForbidden")
    TOO_LONG = ("Too long", "FieldValueTooLong")
    TOO_MANY = ("Too many", "FieldValueTooMany")
    UNKNOWN_FIELD = ("unknown field", "FieldValueInvalid")

    @property
    def text(self) -> str:
        return self.value[0]

    @property
    def reason(self) -> str:
        return self.value[1]


_NO_VALUE: Any = object()

# Which error types print the offending value after their name (Kubernetes' field.Error.Error()).
_SHOWS_VALUE = {
    ErrorType.INVALID, ErrorType.DUPLICATE, ErrorType.NOT_SUPPORTED, ErrorType.TOO_MANY,
}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str, sort_keys=True)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One validation finding: where (a Kubernetes field path), what kind, the value, and why."""

    field: str
    type: ErrorType
    value: Any = _NO_VALUE
    detail: str = ""

    @property
    def message(self) -> str:
        """The text after the field path, as in a Status cause's `message`."""
        text = self.type.text
        if self.type is ErrorType.UNKNOWN_FIELD:
            return f'unknown field "{self.field}"'
        if self.type in _SHOWS_VALUE and self.value is not _NO_VALUE:
            text += f": {_show(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text

    def __str__(self) -> str:
        if self.type is ErrorType.UNKNOWN_FIELD:
            return self.message
        return f"{self.field}: {self.message}"


def required(field: str, detail: str = "") -> FieldError:
    return FieldError(field, ErrorType.REQUIRED, detail=detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    return FieldError(field, ErrorType.INVALID, value, detail)


def duplicate(field: str, value: Any) -> FieldError:
    return FieldError(field, ErrorType.DUPLICATE, value)


def not_supported(field: str, value: Any, supported: list[str], detail: str = "") -> FieldError:
    text = "supported values: " + ", ".join(json.dumps(s) for s in supported)
    if detail:
        text = f"{detail}; {text}"
    return FieldError(field, ErrorType.NOT_SUPPORTED, value, text)


def forbidden(field: str, detail: str) -> FieldError:
    return FieldError(field, ErrorType.FORBIDDEN, detail=detail)


def too_long(field: str, limit: int) -> FieldError:
    return FieldError(field, ErrorType.TOO_LONG, detail=f"must have at most {limit} bytes")


def too_many(field: str, count: int, limit: int) -> FieldError:
    return FieldError(field, ErrorType.TOO_MANY, count, f"must have at most {limit} items")


def unknown_field(field: str) -> FieldError:
    return FieldError(field, ErrorType.UNKNOWN_FIELD)


class ClusterIPError(Exception):
    """Root of every error clusterip raises on purpose."""


class BadInput(ClusterIPError):
    """The request or manifest is wrong; retrying it unchanged will fail the same way."""


class DecodeError(BadInput):
    """Not YAML or JSON, or a field of the wrong type (`field` names it when known)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class UnknownKind(BadInput):
    """An apiVersion/kind that clusterip does not serve."""


class UnknownResource(UnknownKind):
    """A path that names a resource clusterip does not serve."""


class UnsupportedMediaType(BadInput):
    """A body in a content type the request cannot take (a PATCH of an unknown patch type)."""


class MethodNotAllowed(BadInput):
    """A verb the path does not take (POST to an item)."""


class Invalid(BadInput):
    """The object failed validation; `errors` holds every finding, not only the first."""

    def __init__(self, kind: str, name: str, errors: list[FieldError]) -> None:
        self.kind = kind
        self.name = name
        self.errors = list(errors)
        joined = ", ".join(str(e) for e in self.errors)
        shown = f"[{joined}]" if len(self.errors) > 1 else joined
        super().__init__(f'{kind} "{name}" is invalid: {shown}')


class Forbidden(BadInput):
    """A well-formed request that clusterip never allows (deleting `default`, say)."""


class Unauthorized(BadInput):
    """The request carries no valid credentials, and the API requires them."""


class StateError(ClusterIPError):
    """The store's current state refuses the request."""


class NotFound(StateError):
    """No such object (or key)."""


class AlreadyExists(StateError):
    """An object (or key) with that name already exists."""


class Conflict(StateError):
    """The write was based on a stale resourceVersion, or lost a race; re-read and retry."""


class ApplyConflict(Conflict):
    """A server-side apply would change fields that other field managers own (and it did not
    force). `conflicts` are (manager, field) pairs as Kubernetes prints them:
    (`"kubectl-client-side-apply" using v1`, `.spec.ports[port=80].targetPort`)."""

    def __init__(self, conflicts: list[tuple[str, str]]) -> None:
        self.conflicts = list(conflicts)
        if len(self.conflicts) == 1:
            manager, field = self.conflicts[0]
            text = f"Apply failed with 1 conflict: conflict with {manager}: {field}"
        else:
            lines: list[str] = []
            for manager in sorted({m for m, _ in self.conflicts}):
                lines.append(f"conflicts with {manager}:")
                lines += [f"- {f}" for m, f in self.conflicts if m == manager]
            text = f"Apply failed with {len(self.conflicts)} conflicts: " + "\n".join(lines)
        super().__init__(text)


class Expired(StateError):
    """The requested revision is older than the compacted history (HTTP 410)."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


class RangeFull(StateError):
    """No free address is left in the service CIDR(s)."""


class Unavailable(ClusterIPError):
    """The store cannot be reached, is closed, or timed out."""
