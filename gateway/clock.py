"""The hub's clock and whether it can be trusted.

A Raspberry-Pi-class hub has no real-time clock: after a power cut it boots
with a wall clock from the last shutdown (fake-hwclock) until NTP corrects it.
The kernel knows: ``adjtimex(2)`` returns ``TIME_ERROR`` while the clock is
unsynchronised (this is what ``timedatectl``'s ``NTPSynchronized`` reads, and
it works for systemd-timesyncd, chrony and ntpd alike, with or without systemd
as PID 1). Records stamped meanwhile are marked ``hub_unsynced``.

When network time arrives the clock *steps*, maybe days later, maybe by 56 years (a Pi that booted
at 1970). The step shows as the wall clock moving against the monotonic clock, which never steps:
:class:`StepDetector` watches ``wall - monotonic`` and reports a jump. Every record stamped while the
clock was unsynchronised carries a :class:`~gateway.store.api.HubStamp` (its boot and monotonic
time), so the outbox can shift the records of this boot stamped before the step by exactly the step
(``hub_corrected``), and hold back from the platform what is dated before :data:`PLAUSIBLE_FROM`
until then. See docs/architecture.md, "The hub's clock".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from drivers.model import HubTime
from gateway.store.api import HubStamp

log = logging.getLogger(__name__)

STEP_TOLERANCE_S = 1.0
"""A change of ``wall - monotonic`` larger than this between two looks is a step. NTP slews small
errors at <= 500 ppm (5 ms between two looks ten seconds apart) and steps anything over 128 ms."""
PLAUSIBLE_FROM = datetime(2026, 1, 1, tzinfo=UTC)
"""No hub runs this release before this date: a record stamped earlier was stamped by a clock that was
not set (a Pi without RTC boots at 1970 when fake-hwclock has nothing saved). Such records wait in
the outbox for the step that corrects them instead of reaching the platform in the wrong year."""
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id(path: Path = _BOOT_ID_PATH) -> str:
    """This boot's id (Linux); monotonic times compare only within one boot. Without it, one per process."""
    try:
        return path.read_text(encoding="ascii").strip() or uuid.uuid4().hex
    except OSError:
        return f"process-{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The wall clock jumped: what was stamped in ``boot_id`` before ``at_monotonic`` is ``delta_s`` off."""

    boot_id: str
    at_monotonic: float
    """The monotonic time at which the step was seen; the step happened at or before it."""
    delta_s: float
    """New wall time minus old wall time for the same instant (positive: the clock moved forward)."""
    synced: bool
    """Whether the clock was synchronised when the step was seen."""
    wall_after: datetime
    """The wall time at which the step was seen (on the new clock)."""


class StepDetector:
    """Watches ``wall - monotonic``: pure, fed the two clocks' readings."""

    def __init__(self, *, tolerance_s: float = STEP_TOLERANCE_S, offset_s: float | None = None) -> None:
        self._tolerance_s = tolerance_s
        self._offset_s = offset_s

    @property
    def offset_s(self) -> float | None:
        """Wall minus monotonic at the last look (seconds); None before the first."""
        return self._offset_s

    @property
    def tolerance_s(self) -> float:
        return self._tolerance_s

    def observe(self, wall_s: float, monotonic_s: float) -> float | None:
        """Take a reading of both clocks; the step (new minus old wall time) if the wall clock jumped."""
        offset = wall_s - monotonic_s
        previous, self._offset_s = self._offset_s, offset
        if previous is None or abs(offset - previous) <= self._tolerance_s:
            return None
        return offset - previous


# linux/timex.h
_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


class ClockSyncMode(StrEnum):
    AUTO = "auto"
    ASSUME_SYNCED = "assume_synced"
    ASSUME_UNSYNCED = "assume_unsynced"


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h> (glibc, 64-bit longs on aarch64/x86_64; 32-bit on armhf):
    # only the leading fields are read, the tail is padding the kernel may write into.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


def kernel_clock_synced() -> bool | None:
    """Ask the kernel whether NTP has synchronised the clock; None if it cannot be asked."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != _TIME_ERROR and not (tx.status & _STA_UNSYNC)


class SystemClock:
    """The real hub clock; implements :class:`drivers.clock.Clock`.

    The sync state is re-read at most every ``recheck_s`` seconds: adjtimex is
    cheap, but readings arrive in bursts and one answer per burst is enough.
    Every reading also looks for a step (:meth:`steps` hands them over); the sources are injectable
    so tests drive a clock of their own.
    """

    def __init__(self, mode: ClockSyncMode = ClockSyncMode.AUTO, recheck_s: float = 10.0, *,
                 wall: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic,
                 kernel_synced: Callable[[], bool | None] = kernel_clock_synced,
                 boot_id: str | None = None) -> None:
        self._mode = mode
        self._recheck_s = recheck_s
        self._wall = wall
        self._monotonic = monotonic
        self._kernel_synced = kernel_synced
        self.boot_id = boot_id if boot_id is not None else read_boot_id()
        self._checked_at = -float("inf")
        self._synced = False
        self._reported: bool | None = None
        self._detector = StepDetector()
        self._steps: list[ClockStep] = []
        self._first_look: tuple[datetime, float, bool] | None = None
        self.on_step: Callable[[], None] = lambda: None
        """Called (on the caller's thread) when a step is found; the daemon wakes its correction."""

    def set_mode(self, mode: ClockSyncMode) -> None:
        self._mode = mode
        self._checked_at = -float("inf")

    def synced(self) -> bool:
        if self._mode is ClockSyncMode.ASSUME_SYNCED:
            return True
        if self._mode is ClockSyncMode.ASSUME_UNSYNCED:
            return False
        now = self._monotonic()
        if now - self._checked_at >= self._recheck_s:
            self._checked_at = now
            state = self._kernel_synced()
            self._synced = bool(state)
            if state != self._reported:
                self._reported = state
                log.info("hub clock sync state: %s", {True: "synchronised", False: "NOT synchronised",
                                                       None: "unknown (adjtimex unavailable)"}[state])
        return self._synced

    def now(self) -> HubTime:
        wall, monotonic = self._wall(), self._monotonic()
        synced = self.synced()
        self._look(wall, monotonic, synced)
        return HubTime(wall=wall, monotonic=monotonic, synced=synced)

    def check(self) -> None:
        """Look at the clocks now (the daemon does every few seconds, so a step is seen on an idle hub)."""
        self.now()

    def resume(self, boot_id: str, offset_s: float) -> None:
        """The reference a previous run of this boot saved: a step while the daemon was down is seen.

        The step is placed at this run's first look at the clocks: every record this run stamped came
        after it (stamping looks first), every record of the earlier runs before it."""
        if self._first_look is None:
            self.check()
        if boot_id != self.boot_id or self._first_look is None:
            return
        wall, monotonic, synced = self._first_look
        delta = wall.timestamp() - monotonic - offset_s
        if abs(delta) > self._detector.tolerance_s:
            log.warning("hub clock stepped by %.1f s while the gateway was stopped; correcting what was stamped "
                        "before", delta)
            self._steps.append(ClockStep(self.boot_id, monotonic, delta, synced, wall))
            self.on_step()

    @property
    def offset_s(self) -> float | None:
        """Wall minus monotonic at the last look: what :meth:`resume` takes back after a restart."""
        return self._detector.offset_s

    def steps(self) -> list[ClockStep]:
        """The steps seen since the last call, oldest first."""
        steps, self._steps = self._steps, []
        return steps

    def stamp(self, hub_time: HubTime) -> HubStamp | None:
        """What a record stamped at ``hub_time`` carries so a later step can correct it (None once synced)."""
        return None if hub_time.synced else HubStamp(self.boot_id, hub_time.monotonic)

    def stamp_now(self) -> HubStamp | None:
        """:meth:`stamp` for a record stamped just now (alerts, events)."""
        return self.stamp(self.now())

    def _look(self, wall: datetime, monotonic: float, synced: bool) -> None:
        if self._first_look is None:
            self._first_look = (wall, monotonic, synced)
        delta = self._detector.observe(wall.timestamp(), monotonic)
        if delta is None:
            return
        log.warning("hub clock stepped by %.1f s (clock %s); correcting what was stamped before",
                    delta, "synchronised" if synced else "still NOT synchronised")
        self._steps.append(ClockStep(self.boot_id, monotonic, delta, synced, wall))
        self.on_step()
