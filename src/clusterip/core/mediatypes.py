"""Accept headers: the media ranges a client asks for, in its order (pure).

Kubernetes clients ask for a form of the answer with parameters on `application/json`: kubectl
asks `get` for `application/json;as=Table;v=v1;g=meta.k8s.io, ...;v=v1beta1..., application/json`
(a Table, else the object) and discovery for `application/json;g=apidiscovery.k8s.io;v=v2;
as=APIGroupDiscoveryList, ..., application/json`. The server answers with the first range it can
serve; `parse_accept` splits the header into ranges for that choice (q-values are not weighed:
Kubernetes clients list their preference in order).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["MediaRange", "parse_accept"]

_JSON_RANGES = frozenset({"application/json", "application/*", "*/*"})


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One range of an Accept header: `application/json` and its parameters (`as`, `g`, `v`)."""

    type: str
    params: Mapping[str, str]

    @property
    def json(self) -> bool:
        """Whether JSON is in this range (`application/json`, `application/*`, `*/*`)."""
        return self.type in _JSON_RANGES

    @property
    def converted(self) -> bool:
        """Whether it asks for a form other than the plain object (`as=`, `g=`, `v=` given)."""
        return bool({"as", "g", "v"} & self.params.keys())


def parse_accept(accept: str) -> tuple[MediaRange, ...]:
    """The ranges of an Accept header, in the client's order (empty parts skipped)."""
    ranges = []
    for part in accept.split(","):
        kind, *params = (p.strip() for p in part.split(";"))
        if kind:
            values = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in params)}
            ranges.append(MediaRange(kind.lower(), values))
    return tuple(ranges)
