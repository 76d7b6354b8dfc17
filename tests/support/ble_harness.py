"""BLE sessions run by the real manager on the real bleak path (against the fake BlueZ), their records in a real outbox.

The tests under tests/ble_manager build their sessions with :func:`tag` and :attr:`Recorder.sinks`,
and run them with ``loopcheck.running(ble_manager(...))``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daemon_outbox import DaemonOutbox

from drivers.ble.manager import BleManager
from drivers.ble.policy import BackoffPolicy
from drivers.ble.sessions import AdvertSession, ConnectedSession, DeviceTag, Sinks
from drivers.model import DeviceEvent, DeviceEventKind, MotionBlock, Reading
from gateway.clock import ClockSyncMode, SystemClock
from gateway.hub import reading_to_record

SHANGHAI = ZoneInfo("Asia/Shanghai")
RESIDENT_ID = "r-0001"
FAST_BACKOFF = BackoffPolicy(initial_s=0.2, max_s=1.0, after_completed_s=30.0, after_lost_s=0.2)


@dataclass
class Recorder:
    """The sinks: readings are committed to the real outbox before the sink returns."""

    outbox: DaemonOutbox
    no_motion: str | None = None
    """When set, a motion block fails the test with this message (the devices under test send none)."""
    wait_s: float = 10.0
    """How long :meth:`until` waits unless told otherwise."""
    readings: list[Reading] = field(default_factory=list)
    new: int = 0
    """Readings the outbox did not have yet."""
    motion: list[MotionBlock] = field(default_factory=list)
    events: list[DeviceEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_readings(self, readings: Sequence[Reading]) -> None:
        accepted = await self.outbox.intake.accept([reading_to_record(r, SHANGHAI, "gw-test") for r in readings])
        self.readings.extend(readings)
        self.new += sum(a.new for a in accepted)
        self.changed.set()

    async def on_motion(self, block: MotionBlock) -> None:
        if self.no_motion is not None:
            raise AssertionError(self.no_motion)
        self.motion.append(block)
        self.changed.set()

    async def on_event(self, event: DeviceEvent) -> None:
        self.events.append(event)
        self.changed.set()

    @property
    def sinks(self) -> Sinks:
        return Sinks(self.on_readings, self.on_motion, self.on_event)

    def kinds(self) -> list[DeviceEventKind]:
        return [e.kind for e in self.events]

    async def until(self, condition: Callable[[], bool], timeout_s: float | None = None) -> None:
        async with asyncio.timeout(self.wait_s if timeout_s is None else timeout_s):
            while not condition():
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await self.changed.wait()


@contextlib.asynccontextmanager
async def recording(tmp_path: Path, *, no_motion: str | None = None, wait_s: float = 10.0) -> AsyncIterator[Recorder]:
    """A :class:`Recorder` on a fresh outbox in ``tmp_path``, closed after the block."""
    async with await DaemonOutbox.open(tmp_path / "outbox.sqlite") as outbox:
        yield Recorder(outbox, no_motion=no_motion, wait_s=wait_s)


def tag(device_id: str, address: str, model: str) -> DeviceTag:
    return DeviceTag(device_id=device_id, resident_id=RESIDENT_ID, address=address, model=model)


def ble_manager(
    *connected: ConnectedSession,
    advertised: Sequence[AdvertSession] = (),
    backoff: BackoffPolicy = FAST_BACKOFF,
    **options: Any,
) -> BleManager:
    """A manager for these sessions on a synced system clock, watching its links every 0.1 s;
    ``options`` are the manager's other keyword arguments."""
    return BleManager(list(connected), advertised, clock=SystemClock(ClockSyncMode.ASSUME_SYNCED),
                      backoff=backoff, watch_interval_s=0.1, **options)
