"""The clock seam: wall time for timestamps, monotonic time for intervals.

Everything that needs time takes a `Clock`; the program passes `SystemClock()`, tests pass
`clusterip.testing.clock.FakeClock` and move time by hand.
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock unix seconds (for creationTimestamp and the like)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start that never goes backwards (for intervals)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
