"""A Raspberry Pi's two clocks, under the test's control: booted at 1970, network time when the test says.

Shared by the clock-step tests of the outbox (tests/gateway) and of the upload (tests/uplink).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from daemon_outbox import DaemonOutbox

from drivers.model import HubTime
from gateway.clock import ClockSyncMode, SystemClock
from gateway.clock_watch import ClockWatch
from gateway.store import NewRecord, Priority
from gateway.store.api import HubStamp
from gateway.wire import compact

SHANGHAI = ZoneInfo("Asia/Shanghai")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRUE_BOOT = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
"""When the Pi really booted; its clock said 1970-01-01 00:00 (no fake-hwclock file yet)."""
STEP = (TRUE_BOOT - EPOCH).total_seconds()


@dataclass
class PiClock:
    """The two clocks of a Pi that booted at 1970 and whose NTP arrives when the test says so."""

    monotonic: float = 10.0
    wall_offset_s: float = 0.0
    """Wall minus monotonic, in seconds since 1970: 0 until network time steps it."""
    synced: bool = False
    steps: list[float] = field(default_factory=list)

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self.monotonic + self.wall_offset_s)

    def advance(self, seconds: float) -> None:
        self.monotonic += seconds

    def ntp_arrives(self, *, to: datetime = TRUE_BOOT) -> None:
        """Network time: the wall clock steps to the truth and the kernel says synchronised."""
        self.wall_offset_s = (to - EPOCH).total_seconds()
        self.synced = True

    def system_clock(self, boot_id: str = "boot-1") -> SystemClock:
        return SystemClock(ClockSyncMode.AUTO, recheck_s=0.0, wall=self.wall, monotonic=lambda: self.monotonic,
                           kernel_synced=lambda: self.synced, boot_id=boot_id)

    async def watch(self, clock: SystemClock, outbox: DaemonOutbox) -> ClockWatch:
        """The hub's clock watch over ``clock`` (one of this Pi's) and ``outbox``, started."""
        watch = ClockWatch(clock, outbox.intake, outbox.db, monotonic=lambda: self.monotonic)
        await watch.start()
        return watch


def reading(at: HubTime, stamp: HubStamp | None, n: int = 0, *, time_source: str = "hub_unsynced",
            measured_at: datetime | None = None) -> NewRecord:
    record = {"type": "body_temperature", "resident_id": "r-1", "device": {"id": "thermo", "transport": "ble"},
              "measured_at": (measured_at or at.wall).astimezone(SHANGHAI).isoformat(timespec="milliseconds"),
              "received_at": at.wall.astimezone(SHANGHAI).isoformat(timespec="milliseconds"),
              "time_source": time_source, "values": {"value": 36.5 + n / 10}, "unit": "Cel", "flags": []}
    return NewRecord("body_temperature", Priority.READING, compact(record), at.wall, stamp=stamp)
