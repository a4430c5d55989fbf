"""A small synchronous client of clusterip's Kubernetes REST API, for the command line.

Standard library only (urllib), so that `clusterip get` starts fast. Paths come from the kinds
table. Every failure is translated here, once: an HTTP error with a Status body becomes
`ApiError` carrying the Status (code, reason, message), and a connection failure becomes
`ApiError` with code 0 and a message that names the server.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from clusterip.core.kinds import KindInfo

__all__ = ["ApiError", "RestClient"]

JSON = dict[str, Any]


class ApiError(Exception):
    """The server refused (code ≥ 400, `status` is its Status object) or could not be reached
    (code 0)."""

    def __init__(self, code: int, message: str, status: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or {}

    @property
    def bad_input(self) -> bool:
        """The request itself was wrong (400, 403, 404 kind, 422): the CLI exits with 2."""
        return self.code in (400, 415, 422) or self.status.get("reason") == "BadRequest"


class RestClient:
    def __init__(self, server: str, *, timeout: float = 30.0, token: str = "",
                 ca_file: str = "") -> None:
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.token = token
        # an https server is verified against `ca_file` (its own CA), else the system's CAs
        self._tls = (ssl.create_default_context(cafile=ca_file or None)
                     if self.server.startswith("https:") else None)

    def path(self, info: KindInfo, namespace: str | None, name: str = "",
             subresource: str = "") -> str:
        base = f"/apis/{info.group}/{info.version}" if info.group else "/api/v1"
        if info.namespaced and namespace:
            base += f"/namespaces/{urllib.parse.quote(namespace)}"
        base += f"/{info.resource}"
        if name:
            base += f"/{urllib.parse.quote(name)}"
        if subresource:
            base += f"/{subresource}"
        return base

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[JSON, list[str]]:
        """Send one request; returns the decoded JSON body and the Warning headers."""
        payload, warnings = self.request_bytes(method, path, body, query=query,
                                               content_type=content_type)
        return (json.loads(payload) if payload else {}), warnings

    def request_bytes(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[bytes, list[str]]:
        """Send one request; returns the raw body (a pod's log, say) and the Warning headers."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self._tls) as resp:
                payload = resp.read()
                warnings = resp.headers.get_all("Warning") or []
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                status = json.loads(raw)
            except ValueError:
                status = {"message": raw.decode(errors="replace").strip(), "code": exc.code}
            raise ApiError(exc.code, str(status.get("message", exc.reason)), status) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, f"cannot reach the server at {self.server}: {reason}") from None
        return payload, warnings
