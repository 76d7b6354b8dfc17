"""Streaming fall detection for one wearer's waist or pendant accelerometer (numpy, no per-sample loop).

Stages, all in seconds so any rate from 25 to 200 Hz works:

1. smooth to a common ~10 Hz bandwidth (FIR over the block plus a short history);
2. an *impact candidate* is a smoothed |a| peak >= ``candidate_g`` that is the largest within
   ``peak_half_window_s`` either side;
3. once the post-impact window has arrived, the candidate's evidence is measured: peak |a|, the
   free-fall minimum and the descent activity (std of |a|) in the second before it, the change of
   the gravity direction (upright before, lying after) and the post-impact activity;
4. impacts without a posture change of ``posture_gate_deg`` are dropped (a fall ends lying down);
   a 3-feature logistic model (fall_model.py) turns the rest into a confidence; at or above the
   threshold it is a detection, and impacts within the refractory period after it are the same fall.

A candidate is decided exactly once, from the same samples, whatever the block sizes were: the output
does not depend on how the radio chopped the stream. Gaps longer than ``max_gap_s`` and NaN rows end
the current window (pending candidates whose evidence is cut off are dropped rather than judged on
spliced, unrelated data).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.detect.fall_model import DEFAULT_PARAMS, FallParams
from gateway.detect.features import FloatArray, angle_deg, lowpass_taps

log = logging.getLogger(__name__)

MIN_RATE_HZ = 25.0
MAX_RATE_HZ = 200.0


@dataclass(frozen=True, slots=True)
class ImpactCandidate:
    """An |a| peak and the evidence around it, before the model has judged it."""

    impact_index: int
    decided_index: int
    peak_g: float
    free_fall_min_g: float | None
    posture_change_deg: float
    stillness_g: float
    descent_g: float

    def features(self) -> tuple[float, ...]:
        """Model inputs in ``fall_model.FEATURE_NAMES`` order."""
        return (self.peak_g, self.descent_g, self.posture_change_deg)


@dataclass(frozen=True, slots=True)
class FallDetection:
    """One detected fall. Indices count samples given to ``process`` since the detector was created."""

    impact_index: int
    decided_index: int
    """The sample whose arrival completed the evidence (impact + post window + filter delay)."""
    confidence: float
    peak_g: float
    free_fall_min_g: float | None
    """Lowest smoothed |a| in the second before the impact; None if it never dropped below free fall."""
    posture_change_deg: float
    """Angle between the gravity direction before the fall and after the impact."""
    stillness_g: float
    """Standard deviation of |a| in the post-impact window: low when the person lies still."""
    descent_g: float
    """Standard deviation of |a| in the second before the impact: the fall itself."""
    sample_rate_hz: float

    @property
    def delay_s(self) -> float:
        """Detection delay after the impact, in seconds of signal."""
        return (self.decided_index - self.impact_index) / self.sample_rate_hz


class ImpactCandidates:
    """The streaming front end: smoothing, peak picking and evidence, without the decision.

    Kept apart from :class:`FallDetector` so the tuning script sees every candidate with its evidence.
    """

    def __init__(self, sample_rate_hz: float, params: FallParams = DEFAULT_PARAMS) -> None:
        if not MIN_RATE_HZ <= sample_rate_hz <= MAX_RATE_HZ:
            raise ValueError(
                f"sample_rate_hz must be between {MIN_RATE_HZ:g} and {MAX_RATE_HZ:g} Hz, got {sample_rate_hz!r}; "
                "resample the wearable's stream or declare its real rate"
            )
        self.sample_rate_hz = float(sample_rate_hz)
        self.params = params
        rate = self.sample_rate_hz

        def samples(seconds: float) -> int:
            return round(seconds * rate)

        self._taps = lowpass_taps(params.smoothing_cutoff_hz, rate, params.smoothing_span_s)
        self._delay = (len(self._taps) - 1) // 2
        self._peak_half = max(1, samples(params.peak_half_window_s))
        self._free_fall_len = max(1, samples(params.free_fall_window_s))
        self._pre = (samples(params.pre_posture_s[0]), samples(params.pre_posture_s[1]))
        self._post = (samples(params.post_window_s[0]), max(samples(params.post_window_s[1]), 1))
        self._need_after = max(self._post[1], self._peak_half)
        self._need_before = max(-self._pre[0], self._free_fall_len) + self._peak_half
        self._max_gap_s = params.max_gap_s
        self._index = 0
        self._next_eval = 0
        self._seg_start = 0
        self._raw_tail: FloatArray | None = None
        self._acc: FloatArray = np.zeros((0, 3))
        self._mag: FloatArray = np.zeros(0)
        self._buf_start = 0

    @property
    def samples_seen(self) -> int:
        return self._index

    def reset(self) -> None:
        """End the current window: the next sample starts fresh (after a gap or a reconnect)."""
        self._raw_tail = None
        self._acc = np.zeros((0, 3))
        self._mag = np.zeros(0)
        self._next_eval = self._index
        self._buf_start = self._index

    def process(self, samples: npt.ArrayLike, gap_before_s: float = 0.0) -> list[ImpactCandidate]:
        """Feed an (n, 3) block in g; returns the candidates whose evidence this block completed."""
        block = _as_block(samples)
        if math.isnan(gap_before_s):
            raise ValueError("gap_before_s is NaN; pass 0.0 when the gap is unknown")
        if gap_before_s > self._max_gap_s:
            self.reset()
        if block.shape[0] == 0:
            return []
        bad = np.logical_not(np.isfinite(block).all(axis=1))
        if not bad.any():
            return self._feed(block)
        found: list[ImpactCandidate] = []
        # Split into runs of good rows and bad (NaN) rows; a bad run is a gap of its own length.
        edges = np.flatnonzero(np.diff(bad.astype(np.int8))) + 1
        for run in np.split(np.arange(block.shape[0]), edges):
            if bad[run[0]]:
                self.reset()
                self._index += len(run)
                self.reset()
            else:
                found.extend(self._feed(block[run[0] : run[-1] + 1]))
        return found

    def next_decision_index(self) -> int | None:
        """Stream index of the sample that will complete the evidence of the earliest candidate seen
        but not yet judged, or None. A caller that batches samples (to save CPU) flushes no later than
        this sample, so batching never delays a fall alert."""
        lo = self._next_eval - self._buf_start
        if self._raw_tail is None or lo >= self._mag.shape[0]:
            return None
        above = np.flatnonzero(self._mag[lo:] >= self.params.candidate_g)
        if above.size == 0:
            return None
        return int(above[0]) + lo + self._buf_start + self._need_after + self._delay

    def _start_segment(self, first: FloatArray) -> None:
        self._seg_start = self._index
        self._next_eval = max(self._next_eval, self._index)
        # Replicating the first sample lets the centred filter start at the segment's first sample.
        self._raw_tail = np.repeat(first[None, :], self._delay, axis=0)
        # Padding |a| with -inf keeps the peak windows rectangular without ever winning.
        self._acc = np.zeros((self._peak_half, 3))
        self._mag = np.full(self._peak_half, -np.inf)
        self._buf_start = self._index - self._peak_half

    def _feed(self, block: FloatArray) -> list[ImpactCandidate]:
        if self._raw_tail is None:
            self._start_segment(block[0])
        assert self._raw_tail is not None
        ext = np.concatenate([self._raw_tail, block])
        width = len(self._taps)
        self._index += block.shape[0]
        self._raw_tail = ext[-(width - 1) :]
        if ext.shape[0] < width:
            return []
        smoothed = np.lib.stride_tricks.sliding_window_view(ext, width, axis=0) @ self._taps
        self._acc = np.concatenate([self._acc, smoothed])
        self._mag = np.concatenate([self._mag, np.sqrt(np.einsum("ij,ij->i", smoothed, smoothed))])
        found = self._evaluate()
        keep_from = max(0, self._next_eval - self._need_before - self._buf_start)
        if keep_from:
            self._acc = self._acc[keep_from:]
            self._mag = self._mag[keep_from:]
            self._buf_start += keep_from
        return found

    def _evaluate(self) -> list[ImpactCandidate]:
        lo = self._next_eval - self._buf_start
        hi = self._mag.shape[0] - self._need_after
        if hi <= lo:
            return []
        self._next_eval = hi + self._buf_start
        above = np.flatnonzero(self._mag[lo:hi] >= self.params.candidate_g) + lo
        if above.size == 0:
            return []
        windows = np.lib.stride_tricks.sliding_window_view(self._mag, 2 * self._peak_half + 1)
        peaks = above[np.argmax(windows[above - self._peak_half], axis=1) == self._peak_half]
        return [self._evidence(int(p)) for p in peaks]

    def _evidence(self, at: int) -> ImpactCandidate:
        """Measure the evidence around the peak at buffer position ``at`` (all slices inside the segment)."""
        seg = max(0, self._seg_start - self._buf_start)
        mag, acc = self._mag, self._acc
        before = mag[max(seg, at - self._free_fall_len) : at]
        free_fall_min = float(before.min()) if before.size else None
        descent = float(before.std()) if before.size else 0.0
        if free_fall_min is not None and free_fall_min >= self.params.free_fall_g:
            free_fall_min = None
        pre = acc[max(seg, at + self._pre[0]) : max(seg, at + self._pre[1])]
        post = acc[at + self._post[0] : at + self._post[1] + 1]
        post_mag = mag[at + self._post[0] : at + self._post[1] + 1]
        posture = angle_deg(pre.mean(axis=0), post.mean(axis=0)) if pre.size else 0.0
        impact = at + self._buf_start
        return ImpactCandidate(
            impact_index=impact,
            decided_index=impact + self._need_after + self._delay,
            peak_g=float(mag[at]),
            free_fall_min_g=free_fall_min,
            posture_change_deg=posture,
            stillness_g=float(post_mag.std()),
            descent_g=descent,
        )


class FallDetector:
    """Per-wearer streaming fall detector: feed blocks of (n, 3) samples in g, get detections back."""

    def __init__(self, sample_rate_hz: float, params: FallParams = DEFAULT_PARAMS) -> None:
        self._candidates = ImpactCandidates(sample_rate_hz, params)
        self._params = params
        self._refractory = round(params.refractory_s * self._candidates.sample_rate_hz)
        self._refractory_until = -1

    @property
    def sample_rate_hz(self) -> float:
        return self._candidates.sample_rate_hz

    def reset(self) -> None:
        """Drop the window (the refractory period still holds: it is about the person, not the data)."""
        self._candidates.reset()

    def next_decision_index(self) -> int | None:
        """See :meth:`ImpactCandidates.next_decision_index`."""
        return self._candidates.next_decision_index()

    def process(self, samples: npt.ArrayLike, gap_before_s: float = 0.0) -> list[FallDetection]:
        """Feed the next block; ``gap_before_s`` is the time missing since the previous block, if known."""
        detections: list[FallDetection] = []
        for candidate in self._candidates.process(samples, gap_before_s):
            if candidate.impact_index < self._refractory_until:
                continue
            confidence = self._params.confidence(candidate.features())
            if confidence < self._params.decision_threshold:
                continue
            self._refractory_until = candidate.impact_index + self._refractory
            detections.append(
                FallDetection(
                    impact_index=candidate.impact_index,
                    decided_index=candidate.decided_index,
                    confidence=confidence,
                    peak_g=candidate.peak_g,
                    free_fall_min_g=candidate.free_fall_min_g,
                    posture_change_deg=candidate.posture_change_deg,
                    stillness_g=candidate.stillness_g,
                    descent_g=candidate.descent_g,
                    sample_rate_hz=self.sample_rate_hz,
                )
            )
            log.info(
                "fall detected impact_index=%d decided_index=%d confidence=%.2f",
                candidate.impact_index,
                candidate.decided_index,
                confidence,
            )
        return detections


def _as_block(samples: npt.ArrayLike) -> FloatArray:
    block = np.asarray(samples, dtype=np.float64)
    if block.ndim != 2 or block.shape[1] != 3:
        raise ValueError(
            f"samples must be an (n, 3) array of x, y, z acceleration in g, got shape {block.shape}; "
            "reshape single samples to (1, 3)"
        )
    return block
