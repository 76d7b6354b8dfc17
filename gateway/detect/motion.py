"""Per-wearable motion streams: the fall detector, gaps, activity level and the evidence snippet.

Pure (no asyncio, no I/O): the hub feeds each :class:`~drivers.model.MotionBlock` in and gets
back what it completed. One stream per device; a device that changes its declared rate gets a
fresh detector (indices and windows are in samples of one rate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.model import MotionBlock
from gateway.detect.fall_watch import Activity, activity_from_level
from gateway.detect.falls import FallDetection, FallDetector

ACTIVITY_WINDOW_S = 2.0
"""Activity is the std of |a| over the last two seconds: long enough to contain a step (~0.5 s)."""
SNIPPET_S = 10.0
"""Raw samples kept per wearer as fall evidence: the seconds before the impact and after it."""
JITTER_TOLERANCE_S = 0.1
"""Block arrival times wobble by radio scheduling; smaller differences are not gaps."""


@dataclass(frozen=True, slots=True)
class MotionOutcome:
    detections: tuple[FallDetection, ...]
    impact_monotonic: tuple[float, ...]
    """Hub monotonic time of each detection's impact."""
    activity: Activity
    level_g: float


@dataclass(frozen=True, slots=True, eq=False)
class Snippet:
    first_sample_monotonic: float
    sample_rate_hz: float
    samples: npt.NDArray[np.float32]


class _Stream:
    def __init__(self, rate_hz: float) -> None:
        self.detector = FallDetector(rate_hz)
        self.rate_hz = rate_hz
        self.index = 0                      # samples fed to the detector so far
        self.next_monotonic: float | None = None
        keep = max(int(SNIPPET_S * rate_hz), int(ACTIVITY_WINDOW_S * rate_hz))
        self.recent = np.zeros((keep, 3), dtype=np.float32)
        self.recent_filled = 0
        self.recent_end_monotonic = 0.0

    def remember(self, samples: npt.NDArray[np.float32], end_monotonic: float) -> None:
        n = min(len(samples), len(self.recent))
        self.recent = np.roll(self.recent, -n, axis=0)
        self.recent[-n:] = samples[-n:]
        self.recent_filled = min(len(self.recent), self.recent_filled + n)
        self.recent_end_monotonic = end_monotonic

    def level_g(self) -> float:
        n = min(self.recent_filled, int(ACTIVITY_WINDOW_S * self.rate_hz))
        if n < 2:
            return 0.0
        window = self.recent[-n:]
        finite = window[np.isfinite(window).all(axis=1)]
        return float(np.linalg.norm(finite, axis=1).std()) if len(finite) > 1 else 0.0


class MotionTracker:
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def feed(self, block: MotionBlock) -> MotionOutcome:
        stream = self._streams.get(block.device_id)
        if stream is None or stream.rate_hz != block.sample_rate_hz:
            stream = self._streams[block.device_id] = _Stream(block.sample_rate_hz)
        start = block.first_sample.monotonic
        gap = 0.0
        if stream.next_monotonic is not None:
            missing = start - stream.next_monotonic
            gap = missing if missing > JITTER_TOLERANCE_S else 0.0
        samples = block.samples
        block_start_index = stream.index
        detections = stream.detector.process(samples, gap_before_s=gap)
        stream.index += len(samples)
        end = start + len(samples) / stream.rate_hz
        stream.next_monotonic = end
        stream.remember(samples, end)
        impacts = tuple(start + (d.impact_index - block_start_index) / stream.rate_hz for d in detections)
        level = stream.level_g()
        return MotionOutcome(tuple(detections), impacts, activity_from_level(level), level)

    def snippet(self, device_id: str) -> Snippet | None:
        """The last ``SNIPPET_S`` seconds of raw samples of a wearer (for the fall's evidence)."""
        stream = self._streams.get(device_id)
        if stream is None or stream.recent_filled == 0:
            return None
        samples = stream.recent[-stream.recent_filled:].copy()
        first = stream.recent_end_monotonic - len(samples) / stream.rate_hz
        return Snippet(first, stream.rate_hz, samples)
