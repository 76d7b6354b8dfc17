"""The hub's clock and whether it can be trusted.

A Raspberry-Pi-class hub has no real-time clock: after a power cut it boots
with a wall clock from the last shutdown (fake-hwclock) until NTP corrects it.
The kernel knows: ``adjtimex(2)`` returns ``TIME_ERROR`` while the clock is
unsynchronised (this is what ``timedatectl``'s ``NTPSynchronized`` reads, and
it works for systemd-timesyncd, chrony and ntpd alike, with or without systemd
as PID 1). Records stamped meanwhile are marked ``hub_unsynced``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from datetime import UTC, datetime
from enum import StrEnum

from drivers.model import HubTime

log = logging.getLogger(__name__)

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
    """

    def __init__(self, mode: ClockSyncMode = ClockSyncMode.AUTO, recheck_s: float = 10.0) -> None:
        self._mode = mode
        self._recheck_s = recheck_s
        self._checked_at = -float("inf")
        self._synced = False
        self._reported: bool | None = None

    def set_mode(self, mode: ClockSyncMode) -> None:
        self._mode = mode
        self._checked_at = -float("inf")

    def synced(self) -> bool:
        if self._mode is ClockSyncMode.ASSUME_SYNCED:
            return True
        if self._mode is ClockSyncMode.ASSUME_UNSYNCED:
            return False
        now = time.monotonic()
        if now - self._checked_at >= self._recheck_s:
            self._checked_at = now
            state = kernel_clock_synced()
            self._synced = bool(state)
            if state != self._reported:
                self._reported = state
                log.info("hub clock sync state: %s", {True: "synchronised", False: "NOT synchronised",
                                                       None: "unknown (adjtimex unavailable)"}[state])
        return self._synced

    def now(self) -> HubTime:
        return HubTime(wall=datetime.now(UTC), monotonic=time.monotonic(), synced=self.synced())
