"""The hub clock: the kernel's sync state (adjtimex) and the configured overrides."""

from __future__ import annotations

from gateway.clock import ClockSyncMode, SystemClock, kernel_clock_synced


def test_kernel_answers_a_boolean_here() -> None:
    # Linux always implements adjtimex; whether this machine is synchronised varies.
    assert kernel_clock_synced() in (True, False)


def test_overrides_win_and_now_is_utc_and_monotonic() -> None:
    synced = SystemClock(ClockSyncMode.ASSUME_SYNCED).now()
    unsynced = SystemClock(ClockSyncMode.ASSUME_UNSYNCED).now()
    assert synced.synced is True
    assert unsynced.synced is False
    assert synced.wall.utcoffset() is not None
    assert unsynced.monotonic >= synced.monotonic


def test_auto_follows_the_kernel() -> None:
    assert SystemClock(ClockSyncMode.AUTO).synced() is bool(kernel_clock_synced())
