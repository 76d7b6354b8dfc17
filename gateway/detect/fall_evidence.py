"""The fall detector's front end: smoothing, candidate peaks and the evidence around them, streamed.

Stages, all in seconds so any rate from 25 to 200 Hz works:

1. smooth to a common ~10 Hz bandwidth (FIR over the block plus a short history);
2. a *candidate* is a smoothed |a| peak >= ``low_energy_g`` that is the largest within
   ``peak_half_window_s`` either side;
3. once its post-impact window has arrived (1.4 s), the ``IMPACT`` evidence is measured: peak |a|,
   the free-fall minimum, the descent std and speed in the second before, the trunk's direction
   before and after, how fast it turned; a peak >= ``candidate_g`` is handed on to be judged as a
   hard fall;
4. once the wearer's upright has been learnt, a candidate after which the trunk is tilted >=
   ``screen_deg`` from it is followed up: once the lying window has arrived (3.5 s), the
   ``LOW_ENERGY`` evidence says where the trunk came to rest.

Tilts are angles from the wearer's upright, learnt from walking (posture.py), so any mounting works.
Until one has been learnt they are measured from the trunk's own direction before the event, and
"already lying before" cannot be told.

Each candidate is measured once per stage from the same samples, whatever the block sizes were: the
output does not depend on how the radio chopped the stream. Gaps longer than ``max_gap_s`` and NaN
rows end the current window; candidates whose evidence is cut off are dropped rather than judged on
spliced, unrelated data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.detect.fall_model import DEFAULT_PARAMS, FallKind, FallParams
from gateway.detect.features import FloatArray, angle_deg, frames, lowpass_taps
from gateway.detect.posture import LearntUpright, UprightLearner

MIN_RATE_HZ = 25.0
MAX_RATE_HZ = 200.0
STANDARD_GRAVITY = 9.80665
SINK_MIN_TURN = 0.03
"""Squared chord between the trunk's directions before and after (0.03: ~10 degrees) below which the
baseline of ``sink_speed_mps`` moves with time rather than with the turn: there is hardly any turn to follow."""
SINK_TURN_BEGUN = 0.1
"""Share of the turn from the direction before to the direction after at which ``sink_speed_mps`` starts
integrating: the transfer has begun."""


@dataclass(frozen=True, slots=True)
class FallEvidence:
    """What was measured around one candidate peak, for one kind of judgement."""

    kind: FallKind
    impact_index: int
    """Stream index of the peak (samples given to ``process`` since the detector was created)."""
    decided_index: int
    """The sample whose arrival completed this evidence (peak + window + filter delay)."""
    peak_g: float
    free_fall_min_g: float | None
    """Lowest smoothed |a| in the second before the peak; None if it never dropped below free fall."""
    descent_g: float
    """Std of |a| in the second before the peak: the fall itself."""
    descent_speed_mps: float
    """Largest downward speed in the second before the peak, integrated from |a| - (|a| at rest before)."""
    sink_speed_mps: float
    """Largest downward speed of the waist from rest before the event to rest after it: |a| less its level at
    rest (3-2 s before the peak, moving to its level in the window after as the trunk turns), integrated
    from where the trunk began to turn (no earlier than 2 s before the peak) to that window, the velocity
    left at its end removed as drift (the wearer is still at both ends). The hips dropping from a seat to
    the floor, against a trunk turning about hips that stay on the bed (SisFall at 50 Hz, 10th-90th
    percentile of the low-energy candidates: faints from a chair, F13, 0.3-1.5 m/s; lying down quickly,
    D13, 0-0.3). The low-energy model reads it (fourth round, docs/falls.md)."""
    variability_g: float
    """Std of smoothed |a| in the second around the peak."""
    posture_change_deg: float
    """Angle between the trunk's direction before the event and after it."""
    tilt_before_deg: float
    """Trunk's angle from the wearer's upright before the event (0 while no upright is learnt)."""
    tilt_after_deg: float
    """Trunk's angle from the upright after the event: ~90 lying, ~20-40 sitting."""
    stillness_g: float
    """Std of |a| after the event: low when the person lies still."""
    turn_rate_dps: float
    """Fastest turn of the acceleration's direction (smoothed to ~3 Hz) from 3 s before the peak to 1 s
    after it, in degrees per second: a body toppling under gravity and losing its support turns it
    fast (SisFall faints from a chair: 370-1060, 10th-90th percentile); lying down on purpose is
    braked (quickly: 210-460; slowly: 90-170). Reported; no model reads it (docs/falls.md)."""
    overshoot_deg: float
    """How far past where it came to rest the trunk went: its furthest tilt in the turn window (the
    direction smoothed as for ``turn_rate_dps``) less ``tilt_after_deg``, 0 if never further. A body
    toppling under gravity is stopped by the floor and rebounds or settles back; a lie-down or a sit is
    braked into its end posture (F13, 10th-90th percentile: 17-54 degrees; D13: 9-31). The low-energy
    model reads it (fourth round, docs/falls.md)."""
    upright_learnt: bool
    """Whether the tilts are from the wearer's upright (learnt from walking, or restored from before a
    restart) rather than from the trunk's direction before the event."""
    upright_confirmed: bool
    """Whether walking has confirmed that upright since the detector started: False for a restored one the
    wearer has not walked with yet (the wearable may have been clipped on differently meanwhile)."""

    @property
    def tilt_gain_deg(self) -> float:
        """How much further from upright the trunk ended than it started."""
        return self.tilt_after_deg - self.tilt_before_deg

    def values(self, names: Sequence[str]) -> tuple[float, ...]:
        """The named evidence, in order (a model's inputs)."""
        return tuple(float(getattr(self, name)) for name in names)


FEATURE_NAMES = frozenset({"peak_g", "descent_g", "descent_speed_mps", "sink_speed_mps", "variability_g",
                           "posture_change_deg",
                           "tilt_before_deg", "tilt_after_deg", "tilt_gain_deg", "stillness_g", "turn_rate_dps",
                           "overshoot_deg"})
"""Evidence a model may read."""


class FallCandidates:
    """The streaming front end: smoothing, peak picking and evidence, without the decision.

    Kept apart from ``FallDetector`` so the tuning bench sees every candidate with its evidence.
    """

    def __init__(self, sample_rate_hz: float, params: FallParams = DEFAULT_PARAMS,
                 upright: npt.ArrayLike | LearntUpright | None = None) -> None:
        if not MIN_RATE_HZ <= sample_rate_hz <= MAX_RATE_HZ:
            raise ValueError(
                f"sample_rate_hz must be between {MIN_RATE_HZ:g} and {MAX_RATE_HZ:g} Hz, got {sample_rate_hz!r}; "
                "resample the wearable's stream or declare its real rate"
            )
        self.sample_rate_hz = rate = float(sample_rate_hz)
        self.params = params

        def samples(seconds: float) -> int:
            return round(seconds * rate)

        self._taps = lowpass_taps(params.smoothing_cutoff_hz, rate, params.smoothing_span_s)
        self._delay = (len(self._taps) - 1) // 2
        self._peak_half = max(1, samples(params.peak_half_window_s))
        self._free_fall_len = max(1, samples(params.free_fall_window_s))
        self._var_half = max(1, samples(params.variability_half_window_s))
        self._pre = (samples(params.pre_posture_s[0]), samples(params.pre_posture_s[1]))
        self._before = (samples(params.before_window_s[0]), samples(params.before_window_s[1]))
        self._rest_before = (samples(params.rest_before_s[0]), samples(params.rest_before_s[1]))
        self._second = max(1, samples(1.0))
        self._after_s = {
            FallKind.IMPACT: (samples(params.post_window_s[0]), max(samples(params.post_window_s[1]), 1)),
            FallKind.LOW_ENERGY: (samples(params.lying_window_s[0]), max(samples(params.lying_window_s[1]), 1)),
        }
        self._turn = TurnRate(rate, params)
        self._need_after = {kind: max(window[1], self._peak_half, self._turn.after) for kind, window
                            in self._after_s.items()}
        self._need_before = max(-self._pre[0], -self._before[0], -self._rest_before[0], self._free_fall_len,
                                self._var_half,
                                self._turn.before) + self._peak_half
        self._max_gap_s = params.max_gap_s
        known = upright if upright is None or isinstance(upright, LearntUpright) else np.asarray(upright, np.float64)
        self._upright = UprightLearner(rate, known)
        self._index = 0
        self._next_eval = 0
        self._seg_start = 0
        self._raw_tail: FloatArray | None = None
        self._acc: FloatArray = np.zeros((0, 3))
        self._mag: FloatArray = np.zeros(0)
        self._buf_start = 0
        self._follow_up: list[int] = []   # stream indices of peaks awaiting their LOW_ENERGY evidence

    @property
    def samples_seen(self) -> int:
        return self._index

    @property
    def upright(self) -> FloatArray | None:
        """The wearer's upright as learnt so far (unit vector, sensor frame), or None."""
        return self._upright.upright

    @property
    def learnt_upright(self) -> LearntUpright | None:
        """The wearer's upright with the walking behind it (what to keep across a restart), or None."""
        return self._upright.learnt

    def reset(self) -> None:
        """End the current window: the next sample starts fresh (after a gap or a reconnect)."""
        self._raw_tail = None
        self._acc = np.zeros((0, 3))
        self._mag = np.zeros(0)
        self._next_eval = self._index
        self._buf_start = self._index
        self._follow_up.clear()
        self._upright.restart_window(self._index)

    def process(self, samples: npt.ArrayLike, gap_before_s: float = 0.0) -> list[FallEvidence]:
        """Feed an (n, 3) block in g; returns the evidence this block completed, in decision order."""
        block = as_block(samples)
        if math.isnan(gap_before_s):
            raise ValueError("gap_before_s is NaN; pass 0.0 when the gap is unknown")
        if gap_before_s > self._max_gap_s:
            self.reset()
        if block.shape[0] == 0:
            return []
        bad = np.logical_not(np.isfinite(block).all(axis=1))
        if not bad.any():
            return self._feed(block)
        found: list[FallEvidence] = []
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
        due: list[int] = []
        if self._follow_up:
            due.append(self._follow_up[0] + self._need_after[FallKind.LOW_ENERGY] + self._delay)
        lo = self._next_eval - self._buf_start
        if self._raw_tail is not None and lo < self._mag.shape[0]:
            above = np.flatnonzero(self._mag[lo:] >= self.params.candidate_g)
            if above.size:
                due.append(int(above[0]) + lo + self._buf_start + self._need_after[FallKind.IMPACT] + self._delay)
        return min(due) if due else None

    def _start_segment(self, first: FloatArray) -> None:
        self._seg_start = self._index
        self._next_eval = max(self._next_eval, self._index)
        # Replicating the first sample lets the centred filter start at the segment's first sample.
        self._raw_tail = np.repeat(first[None, :], self._delay, axis=0)
        # Padding |a| with -inf keeps the peak windows rectangular without ever winning.
        self._acc = np.zeros((self._peak_half, 3))
        self._mag = np.full(self._peak_half, -np.inf)
        self._buf_start = self._index - self._peak_half

    def _feed(self, block: FloatArray) -> list[FallEvidence]:
        self._upright.feed(self._index, block)
        if self._raw_tail is None:
            self._start_segment(block[0])
        assert self._raw_tail is not None
        ext = np.concatenate([self._raw_tail, block])
        width = len(self._taps)
        self._index += block.shape[0]
        self._raw_tail = ext[-(width - 1) :]
        if ext.shape[0] < width:
            return []
        smoothed = frames(ext, width) @ self._taps
        self._acc = np.concatenate([self._acc, smoothed])
        self._mag = np.concatenate([self._mag, np.sqrt(np.einsum("ij,ij->i", smoothed, smoothed))])
        found = self._evaluate()
        oldest = min([self._next_eval, *self._follow_up[:1]])
        self._upright.forget_before(oldest + self._before[0])
        keep_from = max(0, oldest - self._need_before - self._buf_start)
        if keep_from:
            self._acc = self._acc[keep_from:]
            self._mag = self._mag[keep_from:]
            self._buf_start += keep_from
        return found

    def _evaluate(self) -> list[FallEvidence]:
        found: list[FallEvidence] = []
        lo = self._next_eval - self._buf_start
        hi = self._mag.shape[0] - self._need_after[FallKind.IMPACT]
        if hi > lo:
            self._next_eval = hi + self._buf_start
            above = np.flatnonzero(self._mag[lo:hi] >= self.params.low_energy_g) + lo
            if above.size:
                windows = frames(self._mag, 2 * self._peak_half + 1)
                for at in above[np.argmax(windows[above - self._peak_half], axis=1) == self._peak_half]:
                    if self._mag[at] >= self.params.candidate_g:
                        found.append(self._evidence(int(at), FallKind.IMPACT))
                    if self._worth_following_up(int(at)):
                        self._follow_up.append(int(at) + self._buf_start)
        last = self._mag.shape[0] - 1 - self._need_after[FallKind.LOW_ENERGY]
        while self._follow_up and self._follow_up[0] - self._buf_start <= last:
            found.append(self._evidence(self._follow_up.pop(0) - self._buf_start, FallKind.LOW_ENERGY))
        found.sort(key=lambda e: (e.decided_index, e.impact_index))
        return found

    def _directions(self, at: int) -> tuple[FloatArray | None, bool, FloatArray | None]:
        """The upright learnt before the event, whether walking had confirmed it, and the trunk's direction
        just before the event (None: unknown)."""
        seg = max(0, self._seg_start - self._buf_start)
        pre = self._acc[max(seg, at + self._pre[0]) : max(seg, at + self._pre[1])]
        upright, confirmed = self._upright.state_at(at + self._buf_start + self._before[0])
        return upright, confirmed, (pre.mean(axis=0) if pre.size else None)

    def _after(self, at: int, kind: FallKind) -> slice:
        start, end = self._after_s[kind]
        return slice(at + start, at + end + 1)

    def _worth_following_up(self, at: int) -> bool:
        """Most candidates are steps: a cheap look at the trunk 1.4 s later says whether to wait for more."""
        upright = self._upright.upright_at(at + self._buf_start + self._before[0])
        if upright is None:
            return False
        return angle_deg(upright, self._acc[self._after(at, FallKind.IMPACT)].mean(axis=0)) >= self.params.screen_deg

    def _tilt_before(self, at: int, upright: FloatArray) -> float:
        """Angle from upright of the trunk's most upright second in the before window (1 s means)."""
        seg = max(0, self._seg_start - self._buf_start)
        rows = self._acc[max(seg, at + self._before[0]) : max(seg, at + self._before[1])]
        if not rows.size:
            return 0.0
        seconds = max(1, len(rows) // self._second)
        width = min(self._second, len(rows))
        means = rows[len(rows) - seconds * width :].reshape(seconds, width, 3).mean(axis=1)
        cos = means @ upright / np.maximum(np.linalg.norm(means, axis=1), 1e-12)
        return float(np.degrees(np.arccos(np.clip(cos.max(), -1.0, 1.0))))

    def _sink_speed(self, at: int, kind: FallKind, seg: int) -> float:
        """See ``FallEvidence.sink_speed_mps``: |a| integrated from rest to rest, offsets and drift removed.

        |a| at rest is not exactly 1 g and differs with the sensor's orientation (each axis has its own
        offset): the baseline moves from the level before to the level after as the trunk turns from its
        direction before to its direction after, not as time passes. Whatever velocity is left at the end
        (gain errors, a bias the baseline missed) is drift, removed linearly: the wearer is still then."""
        rest = slice(max(seg, at + self._rest_before[0]), max(seg, at + self._rest_before[1]))
        after = self._after(at, kind)
        moving = slice(rest.stop, after.start)
        if rest.stop - rest.start < 1 or after.start - rest.stop < 2:
            return 0.0
        mag = self._mag
        level_before, level_after = float(mag[rest].mean()), float(mag[after].mean())
        start, end = _unit(self._acc[rest].mean(axis=0)), _unit(self._acc[after].mean(axis=0))
        turn = end - start
        span = float(turn @ turn)
        if span < SINK_MIN_TURN:
            progress = np.linspace(0.0, 1.0, after.start - rest.stop)
        else:
            directions = self._acc[moving] / np.maximum(np.linalg.norm(self._acc[moving], axis=1), 1e-12)[:, None]
            progress = np.clip((directions - start) @ turn / span, 0.0, 1.0)
            # Until the trunk starts to turn the waist is where it was (seated, or walking up to the chair, whose
            # steps would only add their own drift): the transfer is integrated from there.
            began = int(np.argmax(progress >= SINK_TURN_BEGUN))
            moving = slice(moving.start + began, moving.stop)
            progress = progress[began:]
            if progress.shape[0] < 2:
                return 0.0
        speed = np.cumsum(mag[moving] - (level_before + (level_after - level_before) * progress))
        speed -= np.linspace(0.0, float(speed[-1]), speed.shape[0])
        return max(0.0, -float(speed.min())) * STANDARD_GRAVITY / self.sample_rate_hz

    def _evidence(self, at: int, kind: FallKind) -> FallEvidence:
        """Measure the evidence around the peak at buffer position ``at`` (all slices inside the segment)."""
        seg = max(0, self._seg_start - self._buf_start)
        mag = self._mag
        impact = at + self._buf_start
        before = mag[max(seg, at - self._free_fall_len) : at]
        free_fall_min = float(before.min()) if before.size else None
        if free_fall_min is not None and free_fall_min >= self.params.free_fall_g:
            free_fall_min = None
        upright, confirmed, pre = self._directions(at)
        reference = upright if upright is not None else pre
        after = self._acc[self._after(at, kind)].mean(axis=0)
        pre_mag = mag[max(seg, at + self._pre[0]) : max(seg, at + self._pre[1])]
        rest_g = float(np.median(pre_mag)) if pre_mag.size else 1.0
        drop = np.cumsum(mag[max(seg, at - self._free_fall_len) : at + 1] - rest_g)
        tilt_after = angle_deg(reference, after) if reference is not None else 0.0
        turn_rate, furthest = self._turn.measure(self._acc, at, seg, reference)
        return FallEvidence(
            kind=kind,
            impact_index=impact,
            decided_index=impact + self._need_after[kind] + self._delay,
            peak_g=float(mag[at]),
            free_fall_min_g=free_fall_min,
            descent_g=float(before.std()) if before.size else 0.0,
            descent_speed_mps=max(0.0, -float(drop.min())) * STANDARD_GRAVITY / self.sample_rate_hz,
            sink_speed_mps=self._sink_speed(at, kind, seg),
            variability_g=float(mag[max(seg, at - self._var_half) : at + self._var_half + 1].std()),
            posture_change_deg=angle_deg(pre, after) if pre is not None else 0.0,
            tilt_before_deg=self._tilt_before(at, upright) if upright is not None else 0.0,
            tilt_after_deg=tilt_after,
            stillness_g=float(mag[self._after(at, kind)].std()),
            turn_rate_dps=turn_rate,
            overshoot_deg=max(0.0, furthest - tilt_after) if reference is not None else 0.0,
            upright_learnt=upright is not None,
            upright_confirmed=upright is not None and confirmed,
        )


class TurnRate:
    """How fast the trunk's acceleration direction turned around a peak: the fall's loss of control.

    A voluntary lie-down or sit-back accelerates the trunk and brakes it again (90-460 degrees per
    second at its fastest on SisFall); a faint or a fall topples under gravity until the impact stops
    it, and the support giving way swings the acceleration's direction as well (370-1060). Measured
    from the smoothed acceleration (no gyroscope), resampled to a common ~25 Hz grid anchored at the
    peak and smoothed to ~3 Hz, so that every rate measures the same thing; only the few seconds around
    a candidate are computed.
    """

    GRID_HZ = 25.0
    CUTOFF_HZ = 3.0
    SPAN_S = 0.6

    def __init__(self, sample_rate_hz: float, params: FallParams) -> None:
        self._step = max(1, round(sample_rate_hz / self.GRID_HZ))
        grid_hz = sample_rate_hz / self._step
        self._taps = lowpass_taps(self.CUTOFF_HZ, grid_hz, self.SPAN_S)
        half = (len(self._taps) - 1) // 2
        self._first = math.ceil(params.turn_window_s[0] * grid_hz) + half   # grid points before the peak
        self._last = math.ceil(params.turn_window_s[1] * grid_hz) + half     # ... and after it
        self._seconds_per_step = self._step / sample_rate_hz
        self.before = self._first * self._step
        """Samples before the peak the measurement reads."""
        self.after = self._last * self._step
        """Samples after the peak the measurement reads."""

    def peak(self, acc: FloatArray, at: int, seg: int) -> float:
        """Largest turn rate in degrees per second around buffer position ``at`` (within the segment)."""
        return self.measure(acc, at, seg, None)[0]

    def measure(self, acc: FloatArray, at: int, seg: int, reference: FloatArray | None) -> tuple[float, float]:
        """The largest turn rate around buffer position ``at`` (degrees per second) and the furthest the
        smoothed direction got from ``reference`` (degrees; 0 without one) in the same window."""
        first = min(self._first, (at - seg) // self._step)
        grid = acc[at - first * self._step : at + self._last * self._step + 1 : self._step]
        if grid.shape[0] < len(self._taps) + 1:
            return 0.0, 0.0
        smooth = frames(grid, len(self._taps)) @ self._taps
        norm = np.maximum(np.linalg.norm(smooth, axis=1), 1e-12)
        cos = np.einsum("ij,ij->i", smooth[1:], smooth[:-1]) / (norm[1:] * norm[:-1])
        # The largest angle between consecutive grid points is the one with the smallest cosine.
        rate = float(np.degrees(np.arccos(np.clip(cos.min(), -1.0, 1.0)))) / self._seconds_per_step
        if reference is None:
            return rate, 0.0
        from_reference = smooth @ reference / (norm * max(float(np.linalg.norm(reference)), 1e-12))
        return rate, float(np.degrees(np.arccos(np.clip(from_reference.min(), -1.0, 1.0))))


def _unit(v: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0.0 else v


def as_block(samples: npt.ArrayLike) -> FloatArray:
    block = np.asarray(samples, dtype=np.float64)
    if block.ndim != 2 or block.shape[1] != 3:
        raise ValueError(
            f"samples must be an (n, 3) array of x, y, z acceleration in g, got shape {block.shape}; "
            "reshape single samples to (1, 3)"
        )
    return block
