"""A clock that moves only when a test moves it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FakeClock"]


@dataclass
class FakeClock:
    """`Clock` for tests: starts at a fixed wall time (2026-01-01T00:00:00Z) and monotonic 0."""

    wall: float = 1767225600.0
    mono: float = 0.0

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds
