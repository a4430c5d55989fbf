"""Timestamps as Kubernetes writes them: RFC 3339 in UTC (`2026-11-26T15:49:24Z`).

Pure conversions between unix seconds (what an injected clock gives) and that text.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_rfc3339", "rfc3339", "rfc3339_micro"]


def rfc3339(unix_seconds: float) -> str:
    return datetime.fromtimestamp(int(unix_seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(unix_seconds: float) -> str:
    """A MicroTime (Leases' times): `2026-11-26T15:49:24.123456Z`."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    """Unix seconds of an RFC 3339 time, with or without fractional seconds (RFC3339Nano's
    nine digits are cut to the microseconds Python keeps)."""
    head, dot, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + (float(f"0.{fraction[:6]}") if dot and fraction else 0.0)
