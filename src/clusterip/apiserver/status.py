"""Errors as Kubernetes `Status` objects: the one place the exception tree meets HTTP.

`status_for(exc)` maps an error of `core.errors` to the HTTP code, the Status `reason` and, for
`Invalid`, one `cause` per field error, the way kube-apiserver writes them::

    {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
     "message": "Service \\"web\\" is invalid: spec.ports[0].port: Invalid value: 70000: ...",
     "reason": "Invalid", "details": {"name": "web", "kind": "Service", "causes": [...]},
     "code": 422}
"""

from __future__ import annotations

from typing import Any

from clusterip.core import errors as e

__all__ = ["STATUS_TABLE", "status_body", "status_for", "success_status"]

# Most specific class first: the first row that matches wins.
STATUS_TABLE: tuple[tuple[type[BaseException], int, str], ...] = (
    (e.Invalid, 422, "Invalid"),
    (e.Forbidden, 403, "Forbidden"),
    (e.Unauthorized, 401, "Unauthorized"),
    (e.UnsupportedMediaType, 415, "UnsupportedMediaType"),
    (e.MethodNotAllowed, 405, "MethodNotAllowed"),
    (e.DecodeError, 400, "BadRequest"),
    (e.UnknownResource, 404, "NotFound"),
    (e.UnknownKind, 400, "BadRequest"),
    (e.BadInput, 400, "BadRequest"),
    (e.NotFound, 404, "NotFound"),
    (e.AlreadyExists, 409, "AlreadyExists"),
    (e.Conflict, 409, "Conflict"),
    (e.RangeFull, 409, "Conflict"),
    (e.Expired, 410, "Expired"),
    (e.Unavailable, 503, "ServiceUnavailable"),
)


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def status_for(exc: BaseException, *, resource: str = "", name: str = "") -> dict[str, Any]:
    """The Status object for an error; unknown exceptions are a 500 InternalError."""
    row = next((r for r in STATUS_TABLE if isinstance(exc, r[0])), None)
    if row is None:
        return status_body(500, "InternalError", f"Internal error occurred: {exc!r}")
    _, code, reason = row
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if resource:
        details["kind"] = resource
    if isinstance(exc, e.Invalid):
        if exc.name:  # a create's URL names none; kubectl shows `The Service "web" is invalid`
            details["name"] = exc.name
        details["kind"] = exc.kind or resource
        details["causes"] = [
            {"reason": err.type.reason, "message": err.message, "field": err.field}
            for err in exc.errors
        ]
    if isinstance(exc, e.ApplyConflict):
        details["causes"] = [
            {"reason": "FieldManagerConflict", "message": f"conflict with {manager}",
             "field": field}
            for manager, field in exc.conflicts
        ]
    return status_body(code, reason, str(exc), details or None)


def success_status(details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Success"}
    if details:
        body["details"] = details
    return body
