"""Waves: the canaries first, then equal waves of a share of the rest, then whatever is left. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fleetctl.errors import UsageError


@dataclass(frozen=True, slots=True)
class WavePlan:
    canary: int
    """How many hubs the first wave has (the first lines of the hubs file); 0 for no canary wave."""
    wave_percent: int
    """Each later wave is this share of the hubs left after the canaries (rounded up), the last one smaller."""
    waves: tuple[tuple[str, ...], ...]

    @property
    def hubs(self) -> tuple[str, ...]:
        return tuple(hub for wave in self.waves for hub in wave)


def plan_waves(hubs: Sequence[str], canary: int, wave_percent: int) -> WavePlan:
    """Split ``hubs`` (in order) into waves.

    1,000 hubs, canary 10, 10 %: 10, then ten waves of 99. The wave size is fixed from the hubs left
    after the canaries, so the waves do not shrink towards the end into many tiny ones.
    """
    if not hubs:
        raise UsageError("no hubs to roll out to")
    if canary < 0:
        raise UsageError(f"--canary must be 0 or more, not {canary}")
    if not 1 <= wave_percent <= 100:
        raise UsageError(f"--wave-percent must be 1 to 100, not {wave_percent}")
    first = tuple(hubs[:canary])
    rest = tuple(hubs[canary:])
    size = max(1, -(-len(rest) * wave_percent // 100))  # ceiling, in integers
    waves = ([first] if first else []) + [rest[i : i + size] for i in range(0, len(rest), size)]
    return WavePlan(canary=len(first), wave_percent=wave_percent, waves=tuple(waves))
