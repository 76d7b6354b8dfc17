"""Pure accumulators for streaming devices: oximeter windows and accelerometer blocks.

Both take decoded samples with their hub arrival time and hand back finished summaries; no
I/O, no clock, so their timing rules are tested with plain numbers.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivers.model import DeviceInfo, HubTime, Reading, ReadingFlag, SpO2, TimeSource

# A continuous sample flagged like this is not a measurement of the resident's blood.
_DISCARDED_SAMPLE_FLAGS = frozenset({ReadingFlag.SENSOR_FAULT, ReadingFlag.MEASUREMENT_UNRELIABLE})


def shifted(time: HubTime, seconds: float) -> HubTime:
    """``time`` moved by ``seconds`` on both clocks."""
    return HubTime(wall=time.wall + timedelta(seconds=seconds), monotonic=time.monotonic + seconds, synced=time.synced)


class OximeterSample(Protocol):
    """One live sample of any continuous oximeter (SIG PLX or a vendor protocol), as decoded."""

    @property
    def spo2_percent(self) -> float | None:
        """None while the finger is out."""

    @property
    def pulse_rate_bpm(self) -> float | None: ...

    @property
    def perfusion_index_percent(self) -> float | None: ...

    @property
    def flags(self) -> frozenset[ReadingFlag]: ...


@dataclass(frozen=True, slots=True)
class SpO2Summary:
    """The median of one window of continuous oximeter samples."""

    spo2_percent: float
    pulse_rate_bpm: float | None
    samples: int
    received: HubTime
    """Arrival of the last sample in the window."""
    perfusion_index_percent: float | None = None


class SpO2Window:
    """Turns a continuous oximeter stream (about 1 sample/s) into one value per ``interval_s``.

    The median, not the mean: a finger moving in the clip makes short dips that are not the
    resident's saturation. Samples without SpO2 (finger out) or flagged unreliable are left out.
    Every continuous oximeter's session uses this one window (SIG PLX and the vendor protocols),
    so the hub's sustained-SpO2 rule sees the same kind of summary from each.
    """

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"SpO2 window must be positive, got {interval_s} s")
        self._interval_s = interval_s
        self._started: float | None = None
        self._spo2: list[float] = []
        self._pulse: list[float] = []
        self._perfusion: list[float] = []
        self._last: HubTime | None = None

    def add(self, sample: OximeterSample, received: HubTime) -> SpO2Summary | None:
        """Add one sample; returns the window's summary when this sample closes it."""
        if self._started is None:
            self._started = received.monotonic
        if sample.spo2_percent is not None and not sample.flags & _DISCARDED_SAMPLE_FLAGS:
            self._spo2.append(sample.spo2_percent)
            if sample.pulse_rate_bpm is not None:
                self._pulse.append(sample.pulse_rate_bpm)
            if sample.perfusion_index_percent is not None:
                self._perfusion.append(sample.perfusion_index_percent)
        self._last = received
        if received.monotonic - self._started < self._interval_s:
            return None
        return self.flush()

    def flush(self) -> SpO2Summary | None:
        """Close the window now (e.g. the oximeter disconnected); None when it held no usable sample."""
        summary = None
        if self._spo2 and self._last is not None:
            summary = SpO2Summary(
                spo2_percent=round(statistics.median(self._spo2), 1),
                pulse_rate_bpm=round(statistics.median(self._pulse), 1) if self._pulse else None,
                samples=len(self._spo2),
                received=self._last,
                perfusion_index_percent=round(statistics.median(self._perfusion), 1) if self._perfusion else None,
            )
        self._started, self._last = None, None
        self._spo2, self._pulse, self._perfusion = [], [], []
        return summary


def spo2_summary_reading(summary: SpO2Summary, device: DeviceInfo, resident_id: str, *,
                         last: bool = False) -> Reading:
    """A window's summary as the continuous reading the hub evaluates at once and commits in batches
    (``last``: the stream's final one, after which the batch is committed at once).

    Stamped with the hub's arrival time of the window's last sample: a live stream has no device time.
    """
    received = summary.received
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=SpO2(
            spo2=summary.spo2_percent, pulse=summary.pulse_rate_bpm, perfusion_index=summary.perfusion_index_percent
        ),
        measured_at=received.wall,
        time_source=TimeSource.HUB if received.synced else TimeSource.HUB_UNSYNCED,
        received=received,
        continuous=True,
        stream_end=last,
    )


@dataclass(frozen=True, slots=True, eq=False)
class SampleRun:
    """Consecutive accelerometer samples (n x 3, g) and the hub time of the last one."""

    samples: npt.NDArray[np.float32]
    last_sample: HubTime


class MotionBatcher:
    """Cuts a stream of accelerometer notifications into fixed-size blocks.

    Wearables send no timestamps; each notification's last sample is taken to have arrived
    with it and earlier ones one period apart before it. A notification starting much later
    than the previous sample's successor means samples were lost: the pending partial block is
    closed first, so no block pretends to be continuous across a gap.
    """

    def __init__(self, sample_rate_hz: float, block_size: int, gap_periods: float = 5.0) -> None:
        if sample_rate_hz <= 0 or block_size < 1:
            raise ValueError(f"need a positive rate and block size, got {sample_rate_hz} Hz, {block_size}")
        self._period_s = 1.0 / sample_rate_hz
        self._block_size = block_size
        self._gap_s = gap_periods * self._period_s
        self._pending: list[npt.NDArray[np.float32]] = []
        self._pending_count = 0
        self._last_sample: HubTime | None = None

    def add(self, samples: npt.NDArray[np.float32], arrival: HubTime) -> list[SampleRun]:
        """Add the samples of one notification; returns the blocks it completed (and a gap's remnant)."""
        finished: list[SampleRun] = []
        first_time = arrival.monotonic - (len(samples) - 1) * self._period_s
        if self._last_sample is not None and first_time - (self._last_sample.monotonic + self._period_s) > self._gap_s:
            remnant = self.flush()
            if remnant is not None:
                finished.append(remnant)
        self._pending.append(samples)
        self._pending_count += len(samples)
        self._last_sample = arrival
        while self._pending_count >= self._block_size:
            joined = np.concatenate(self._pending)
            block, rest = joined[: self._block_size], joined[self._block_size :]
            finished.append(SampleRun(samples=block, last_sample=shifted(arrival, -len(rest) * self._period_s)))
            self._pending = [rest] if len(rest) else []
            self._pending_count = len(rest)
        return finished

    def flush(self) -> SampleRun | None:
        """The pending partial block (e.g. when the link dropped), or None."""
        if not self._pending_count or self._last_sample is None:
            return None
        run = SampleRun(samples=np.concatenate(self._pending), last_sample=self._last_sample)
        self._pending, self._pending_count = [], 0
        return run
