"""The clock a driver session is given (the gateway injects the real one; tests a fake)."""

from __future__ import annotations

from typing import Protocol

from drivers.model import HubTime


class Clock(Protocol):
    def now(self) -> HubTime:
        """Current hub time: wall (UTC), monotonic, and whether the wall clock is synchronised."""
        ...
