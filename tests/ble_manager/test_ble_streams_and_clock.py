"""Pure helpers of the BLE sessions: oximeter windows, accelerometer blocks, device clocks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from drivers.ble.datetime_char import BleDateTime
from drivers.ble.device_clock import (
    CurrentTime,
    DeviceClock,
    decode_current_time,
    encode_current_time,
    read_device_clock,
)
from drivers.ble.plx import ContinuousMeasurement
from drivers.ble.streams import MotionBatcher, SpO2Summary, SpO2Window, shifted
from drivers.errors import CodecError
from drivers.model import HubTime, ReadingFlag

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = HubTime(wall=datetime(2024, 5, 1, 0, 0, 0, tzinfo=UTC), monotonic=1000.0, synced=True)


def at(seconds: float) -> HubTime:
    return shifted(T0, seconds)


# --- SpO2 windows ------------------------------------------------------------------------


def test_a_window_gives_the_median_of_usable_samples_when_it_closes() -> None:
    window = SpO2Window(interval_s=10.0)
    samples = [
        ContinuousMeasurement(spo2_percent=97.0, pulse_rate_bpm=70.0),
        ContinuousMeasurement(spo2_percent=80.0, pulse_rate_bpm=71.0),  # a dip from a moving finger
        ContinuousMeasurement(spo2_percent=None, pulse_rate_bpm=None),  # finger out
        ContinuousMeasurement(spo2_percent=60.0, pulse_rate_bpm=40.0, flags=frozenset({ReadingFlag.SENSOR_FAULT})),
        ContinuousMeasurement(spo2_percent=96.0, pulse_rate_bpm=72.0),
        ContinuousMeasurement(spo2_percent=98.0, pulse_rate_bpm=None),
    ]
    results = [window.add(sample, at(2.0 * i)) for i, sample in enumerate(samples)]
    assert results[:5] == [None] * 5
    assert results[5] == SpO2Summary(spo2_percent=96.5, pulse_rate_bpm=71.0, samples=4, received=at(10.0))
    assert window.flush() is None


def test_a_window_with_the_finger_out_all_along_gives_nothing() -> None:
    window = SpO2Window(interval_s=2.0)
    assert window.add(ContinuousMeasurement(spo2_percent=None, pulse_rate_bpm=None), at(0)) is None
    assert window.add(ContinuousMeasurement(spo2_percent=None, pulse_rate_bpm=None), at(3)) is None


# --- motion blocks -----------------------------------------------------------------------


def samples(start: int, n: int) -> np.ndarray:
    return np.arange(start * 3, (start + n) * 3, dtype=np.float32).reshape(n, 3)


def test_notifications_are_cut_into_blocks_timed_from_their_last_sample() -> None:
    batcher = MotionBatcher(sample_rate_hz=50.0, block_size=10)
    runs = []
    # micro:bit at 50 Hz: one sample per notification, 20 ms apart; 4 samples -> 25 notifications.
    for i in range(25):
        runs += batcher.add(samples(i, 1), at(0.02 * i))
    assert [len(r.samples) for r in runs] == [10, 10]
    assert np.array_equal(runs[1].samples, samples(10, 10))
    assert runs[0].last_sample.monotonic == pytest.approx(T0.monotonic + 0.18)
    assert runs[1].last_sample.monotonic == pytest.approx(T0.monotonic + 0.38)
    remnant = batcher.flush()
    assert remnant is not None and np.array_equal(remnant.samples, samples(20, 5))


def test_a_block_ending_inside_a_notification_is_timed_back_from_its_arrival() -> None:
    batcher = MotionBatcher(sample_rate_hz=50.0, block_size=4)
    runs = batcher.add(samples(0, 6), at(1.0))
    assert len(runs) == 1
    # Two samples of the notification come after the block's last one: 2 x 20 ms earlier.
    assert runs[0].last_sample.monotonic == pytest.approx(T0.monotonic + 1.0 - 0.04)
    assert runs[0].last_sample.wall == T0.wall + timedelta(seconds=0.96)


def test_a_gap_closes_the_partial_block_instead_of_gluing_across_it() -> None:
    batcher = MotionBatcher(sample_rate_hz=50.0, block_size=10)
    assert batcher.add(samples(0, 3), at(0.04)) == []
    runs = batcher.add(samples(3, 3), at(2.0))  # two seconds of samples never arrived
    assert len(runs) == 1
    assert np.array_equal(runs[0].samples, samples(0, 3))
    assert runs[0].last_sample == at(0.04)


# --- device clocks -----------------------------------------------------------------------


def test_current_time_round_trips_and_names_the_day() -> None:
    data = encode_current_time(datetime(2024, 5, 1, 8, 30, 15, 500_000))
    assert data == bytes([0xE8, 0x07, 5, 1, 8, 30, 15, 3, 128, 0x02])
    assert decode_current_time(data) == CurrentTime(
        date_time=BleDateTime(2024, 5, 1, 8, 30, 15), day_of_week=3, fractions256=128, adjust_reason=2
    )


def test_current_time_that_is_too_short_is_refused() -> None:
    with pytest.raises(CodecError, match="expected 10 bytes, got 7"):
        decode_current_time(bytes(7))


def test_a_device_clock_five_minutes_fast_in_shanghai() -> None:
    # Hub: 00:00 UTC = 08:00 in Shanghai. The cuff shows 08:05.
    clock = read_device_clock(BleDateTime(2024, 5, 1, 8, 5, 0), T0, SHANGHAI)
    assert clock == DeviceClock(offset=timedelta(hours=-8, minutes=-5), drift=timedelta(minutes=5))
    assert clock.needs_setting


def test_a_device_clock_within_tolerance_is_left_alone() -> None:
    assert not read_device_clock(BleDateTime(2024, 5, 1, 8, 1, 0), T0, SHANGHAI).needs_setting


def test_an_unsynchronised_hub_claims_no_offset() -> None:
    unsynced = HubTime(wall=T0.wall, monotonic=T0.monotonic, synced=False)
    assert read_device_clock(BleDateTime(2024, 5, 1, 8, 5, 0), unsynced, SHANGHAI) == DeviceClock(None, None)


def test_a_device_that_does_not_know_the_date_has_no_offset() -> None:
    assert read_device_clock(BleDateTime(None, None, None, 8, 5, 0), T0, SHANGHAI) == DeviceClock(None, None)
