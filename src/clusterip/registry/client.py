"""The seam controllers and agents read and write objects through.

`Client` is what a controller needs: list+watch to feed its informers, and writes. In the
all-in-one process the `Registry` (validation, defaults, allocation over the store) is the client;
a node agent on another machine will use an HTTP implementation of the same Protocol; unit tests
use `ObjectStore` directly. Writes of `status` go through `update_status`, like the `/status`
subresource: they change only the status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

from clusterip.core.model import KubeObject
from clusterip.registry.objects import ObjectEvent

__all__ = ["Client"]

T = TypeVar("T", bound=KubeObject)


class Client(Protocol):
    async def get(self, type_: type[T], namespace: str, name: str) -> T: ...

    async def list(
        self,
        type_: type[T],
        namespace: str | None = None,
        *,
        transform: Callable[[T], T] | None = None,
    ) -> tuple[list[T], int]:
        """Every object (each passed through `transform` as it is decoded, so that a caller
        keeping a slim copy never holds every full object at once) and the list's revision."""
        ...

    def watch(
        self, type_: type[T], namespace: str | None, since_revision: int
    ) -> AsyncIterator[ObjectEvent]: ...

    async def create(self, obj: T) -> T: ...

    async def update(self, obj: T) -> T: ...

    async def update_status(self, obj: T) -> T: ...

    async def delete(
        self,
        type_: type[T],
        namespace: str,
        name: str,
        *,
        resource_version: str = "",
        grace_period_seconds: int | None = None,
    ) -> T: ...
