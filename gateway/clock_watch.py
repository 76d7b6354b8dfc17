"""The daemon's watch on the hub clock: a step found, the stored records corrected.

:class:`gateway.clock.SystemClock` sees a step on any reading of the clocks; this service looks
every few seconds (so an idle hub sees it too), turns each step into a
:class:`~gateway.store.api.ClockCorrection` for the outbox, and keeps the clock's reference
(``wall - monotonic`` for this boot) in the outbox's cursors, so a step that happens while the
daemon is stopped is still seen when it starts again in the same boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from gateway.clock import PLAUSIBLE_FROM, ClockStep, SystemClock
from gateway.errors import StoreError
from gateway.store import cursors
from gateway.store.api import ClockCorrection, Retimed
from gateway.store.work import Runner

log = logging.getLogger(__name__)

CURSOR = "hub-clock"
CHECK_EVERY_S = 5.0
SAVE_DRIFT_S = 0.5
"""The saved reference is rewritten when the clock's offset has moved this much (NTP's slow slew):
a write every few hours at most, not one per look."""


class ClockCorrector(Protocol):
    """What corrects the outbox for a step (:class:`gateway.store.intake.Intake`: also what is stored later)."""

    async def correct_clock(self, correction: ClockCorrection, /) -> Retimed: ...


@dataclass(frozen=True, slots=True)
class StepReport:
    """The last step, for the status file."""

    at: datetime
    delta_s: float
    synced: bool
    corrected: int
    estimated: int


def correction_for(step: ClockStep, *, monotonic_now: float,
                   plausible_from: datetime = PLAUSIBLE_FROM) -> ClockCorrection:
    """What the outbox does for one step: the boot's start and now on the new clock."""
    now = step.wall_after + timedelta(seconds=monotonic_now - step.at_monotonic)
    return ClockCorrection(boot_id=step.boot_id, before_monotonic=step.at_monotonic, delta_s=step.delta_s,
                           synced=step.synced, boot_started_at=now - timedelta(seconds=monotonic_now), now=now,
                           plausible_from=plausible_from)


class ClockWatch:
    def __init__(self, clock: SystemClock, outbox: ClockCorrector, store: Runner, *, monotonic: Callable[[], float],
                 on_corrected: Callable[[], None] = lambda: None, check_every_s: float = CHECK_EVERY_S,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._clock = clock
        self._outbox = outbox
        self._store = store
        self._monotonic = monotonic
        self._on_corrected = on_corrected
        self._check_every_s = check_every_s
        self._sleep = sleep
        self._saved_offset: float | None = None
        self.last_step: StepReport | None = None

    async def start(self) -> None:
        """Take back this boot's reference (a step while the daemon was down is then seen)."""
        saved = await self._load()
        if saved is not None:
            self._clock.resume(*saved)
        else:
            self._clock.check()

    async def run(self) -> None:
        await self.start()
        while True:
            await self.check_once()
            await self._sleep(self._check_every_s)

    async def check_once(self) -> None:
        """Look at the clocks; correct the outbox for every step found; keep the reference."""
        self._clock.check()
        for step in self._clock.steps():
            await self._correct(step)
        await self._save_reference()

    async def _correct(self, step: ClockStep) -> None:
        correction = correction_for(step, monotonic_now=self._monotonic())
        retimed = await self._outbox.correct_clock(correction)
        self.last_step = StepReport(step.wall_after.astimezone(UTC), step.delta_s, step.synced,
                                    retimed.corrected, retimed.estimated)
        log.warning("records corrected for a clock step delta_s=%.1f synced=%s corrected=%d estimated=%d",
                    step.delta_s, step.synced, retimed.corrected, retimed.estimated)
        self._on_corrected()

    async def _save_reference(self) -> None:
        offset = self._clock.offset_s
        if offset is None or (self._saved_offset is not None and abs(offset - self._saved_offset) < SAVE_DRIFT_S):
            return
        try:
            await self._store.run(cursors.put(CURSOR, json.dumps({"boot_id": self._clock.boot_id,
                                                                  "offset_s": offset})))
        except StoreError:
            return  # the next look tries again; the reference only matters across a restart
        self._saved_offset = offset

    async def _load(self) -> tuple[str, float] | None:
        with contextlib.suppress(StoreError):
            text = await self._store.run(cursors.get(CURSOR))
            if text is None:
                return None
            try:
                saved = json.loads(text)
                return str(saved["boot_id"]), float(saved["offset_s"])
            except (ValueError, KeyError, TypeError):
                log.warning("hub clock reference unreadable in the outbox; starting a new one")
        return None
