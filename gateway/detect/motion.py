"""Per-wearable motion streams: the fall detector, gaps, activity level and the evidence snippet.

Pure (no asyncio, no I/O): the hub feeds each :class:`~drivers.model.MotionBlock` in as it arrives
and gets back what it completed. One stream per device; a device that changes its declared rate
gets a fresh detector (indices and windows are in samples of one rate) that keeps the wearer's
upright learnt so far.

The learnt upright outlives the process through the caller: it hands in what it had stored
(:meth:`MotionTracker.restore`, before the device's first block) and stores what an outcome reports
in ``upright_changed`` (learnt, confirmed, moved by ``UPRIGHT_SAVE_DEG``, or a restored one dropped).

Wearables notify a sample or a few at a time. Running the detector per notification costs CPU
(numpy's per-call overhead), batching costs latency; so samples are batched (``BATCH_S``) except
when the detector has seen a candidate impact: then the batch is flushed at the very sample that
completes its evidence, and the alert leaves with no batching delay (a low-energy fall's evidence
completes ~3.6 s after its peak, a hard fall's ~1.5 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivers.model import MotionBlock
from gateway.detect.fall_watch import Activity, activity_from_level
from gateway.detect.falls import FallDetection, FallDetector
from gateway.detect.features import angle_deg
from gateway.detect.posture import LearntUpright

ACTIVITY_WINDOW_S = 2.0
"""Activity is the std of |a| over the last two seconds: long enough to contain a step (~0.5 s)."""
SNIPPET_S = 10.0
"""Raw samples kept per wearer as fall evidence: the seconds before the impact and after it."""
JITTER_TOLERANCE_S = 0.1
"""Block arrival times wobble by radio scheduling (BLE connection intervals of 7.5-100 ms):
smaller differences are not gaps."""
BATCH_S = 0.2
"""Samples are handed to the detector in batches of this length when no decision is due."""
UPRIGHT_SAVE_DEG = 1.0
"""A learnt upright that has moved this far since it was last reported is reported again: every
agreeing walking window nudges it, and the store need not hear of each nudge."""


@dataclass(frozen=True, slots=True)
class MotionOutcome:
    detections: tuple[FallDetection, ...]
    impact_monotonic: tuple[float, ...]
    """Hub monotonic time of each detection's impact."""
    decided_monotonic: tuple[float, ...]
    """Hub monotonic time at which the sample that completed each detection's evidence arrived."""
    activity: Activity
    level_g: float
    flushed: bool
    """Whether this block ran the detector (the activity level is fresh only then)."""
    upright_changed: bool = False
    """Whether the wearer's upright changed in a way worth storing since it was last reported."""
    upright: LearntUpright | None = None
    """With ``upright_changed``: the wearer's upright now, or None when there is none any more (a restored
    one the first walking disagreed with)."""


@dataclass(frozen=True, slots=True, eq=False)
class Snippet:
    first_sample_monotonic: float
    sample_rate_hz: float
    samples: npt.NDArray[np.float32]


@dataclass(eq=False)
class _Stream:
    rate_hz: float
    detector: FallDetector
    batch: int
    fed: int = 0                                   # samples given to the detector so far
    pending: list[npt.NDArray[np.float32]] = field(default_factory=list)
    pending_n: int = 0
    pending_start: float = 0.0                     # hub monotonic time of the first pending sample
    pending_gap_s: float = 0.0
    next_monotonic: float | None = None
    recent: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    recent_end: float = 0.0
    level_g: float = 0.0
    reported: LearntUpright | None = None          # the upright as last reported to the caller

    @classmethod
    def create(cls, rate_hz: float, upright: LearntUpright | None = None) -> _Stream:
        return cls(rate_hz, FallDetector(rate_hz, upright=upright), batch=max(1, round(BATCH_S * rate_hz)),
                   reported=upright)

    def upright_news(self) -> bool:
        """Whether the upright changed in a way worth reporting since it was last reported (and note it)."""
        now, before = self.detector.learnt_upright, self.reported
        if now is None and before is None:
            return False
        if (now is not None and before is not None and now.confirmed == before.confirmed
                and angle_deg(np.array(now.direction), np.array(before.direction)) < UPRIGHT_SAVE_DEG):
            return False
        self.reported = now
        return True

    @property
    def keep(self) -> int:
        return max(int(SNIPPET_S * self.rate_hz), int(ACTIVITY_WINDOW_S * self.rate_hz))

    def flush(self) -> tuple[list[FallDetection], list[float], list[float]]:
        if not self.pending_n:
            return [], [], []
        samples = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
        start_index, start_mono = self.fed, self.pending_start
        detections = self.detector.process(samples, gap_before_s=self.pending_gap_s)
        self.fed += self.pending_n
        self.pending, self.pending_n, self.pending_gap_s = [], 0, 0.0
        self.recent = np.concatenate([self.recent, samples])[-self.keep:]
        self.recent_end = start_mono + len(samples) / self.rate_hz
        self.level_g = self._level()
        def at(index: int) -> float:
            return start_mono + (index - start_index) / self.rate_hz

        return detections, [at(d.impact_index) for d in detections], [at(d.decided_index) for d in detections]

    def _level(self) -> float:
        window = self.recent[-int(ACTIVITY_WINDOW_S * self.rate_hz):]
        finite = window[np.isfinite(window).all(axis=1)]
        return float(np.linalg.norm(finite, axis=1).std()) if len(finite) > 1 else 0.0


class MotionTracker:
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}
        self._restored: dict[str, LearntUpright] = {}

    def restore(self, device_id: str, upright: LearntUpright) -> None:
        """The wearer's upright as stored before a restart, for the device's stream when its first block
        comes (provisional: the first walking confirms or drops it). Ignored once the stream exists."""
        if device_id not in self._streams:
            self._restored[device_id] = upright

    def feed(self, block: MotionBlock) -> MotionOutcome:
        stream = self._streams.get(block.device_id)
        if stream is None or stream.rate_hz != block.sample_rate_hz:
            # The clip has not moved because the rate changed: the learnt upright carries over.
            upright = self._restored.pop(block.device_id, None) if stream is None else stream.detector.learnt_upright
            stream = self._streams[block.device_id] = _Stream.create(block.sample_rate_hz, upright)
        start = block.first_sample.monotonic
        detections: list[FallDetection] = []
        impacts: list[float] = []
        decided: list[float] = []
        gap = 0.0
        if stream.next_monotonic is not None:
            missing = start - stream.next_monotonic
            gap = missing if missing > JITTER_TOLERANCE_S else 0.0
        if gap:  # never splice across a gap: judge what came before it on its own
            found, at, done = stream.flush()
            detections += found
            impacts += at
            decided += done
        if not stream.pending_n:
            stream.pending_start, stream.pending_gap_s = start, gap
        stream.pending.append(block.samples)
        stream.pending_n += len(block.samples)
        stream.next_monotonic = start + len(block.samples) / stream.rate_hz
        due = stream.detector.next_decision_index()
        flushed = bool(gap)
        if stream.pending_n >= stream.batch or (due is not None and stream.fed + stream.pending_n > due):
            found, at, done = stream.flush()
            detections += found
            impacts += at
            decided += done
            flushed = True
        news = flushed and stream.upright_news()
        return MotionOutcome(tuple(detections), tuple(impacts), tuple(decided), activity_from_level(stream.level_g),
                             stream.level_g, flushed, news, stream.reported if news else None)

    def snippet(self, device_id: str) -> Snippet | None:
        """The last ``SNIPPET_S`` seconds of raw samples of a wearer (for the fall's evidence)."""
        stream = self._streams.get(device_id)
        if stream is None or not (len(stream.recent) or stream.pending_n):
            return None
        samples = np.concatenate([stream.recent, *stream.pending])[-stream.keep:]
        end = stream.pending_start + stream.pending_n / stream.rate_hz if stream.pending_n else stream.recent_end
        return Snippet(end - len(samples) / stream.rate_hz, stream.rate_hz, samples)
