"""Each wearer's upright, learnt from walking: where gravity points in the sensor's frame when the trunk is upright.

A belt clip sits differently on every person (SisFall subjects: 0 to 35 degrees from the sensor's
axis) and a wearable can be clipped on rotated or upside down. Walking is the one everyday activity
in which the trunk is reliably upright, so the mean acceleration over steady walking is the upright
direction in the sensor's own frame, whatever the mounting. The fall detector measures the trunk's
tilt against it: lying is ~90 degrees from it, sitting ~20-40.

A window of ``WINDOW_S`` is *walking* when |a| varies like steps (std and mean in the ranges below),
periodically at a step cadence (autocorrelation of |a| at a lag of one step), with a steady direction
(no posture change inside the window). Rolling in bed or getting up is not periodic; standing still
does not vary; both are ignored.

Pure and block-invariant: windows are aligned to the stream index, and :meth:`upright_at` answers
for a given sample index from what had been learnt by then, however the stream was chopped.

Across a restart of the hub the upright is kept as a :class:`LearntUpright` (a unit vector and the
walking behind it; the hub stores it, this module only encodes and checks it). A restored upright is
*provisional*: it is used at once, so low-energy falls are judged before the wearer has walked again,
but the wearable may have been clipped on differently meanwhile, so the first walking window decides:
if it agrees, the upright is confirmed and learning goes on; if it disagrees, the restored upright is
dropped at once and a new one is learnt from scratch (a consensus of walking windows).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.detect.features import FloatArray, angle_deg

WINDOW_S = 2.0
"""Long enough for three or more steps at an elderly cadence (~1.5 Hz)."""
WALK_STD_G = (0.08, 0.6)
"""Std of |a| over a window of walking: above standing or sitting, below running and jumping."""
WALK_MEAN_G = (0.85, 1.2)
"""Mean |a| near 1 g (sensor offsets reach 0.15 g on SisFall's ADXL345)."""
STEP_PERIOD_S = (0.35, 0.75)
"""One step: cadences of 1.3-2.9 Hz, from a shuffle to brisk walking."""
CADENCE_MIN_CORR = 0.4
"""Normalised autocorrelation of |a| at one step's lag: walking is periodic, shuffling about is not."""
STEADY_DEG = 10.0
"""The two halves of a walking window point the same way: the trunk did not turn inside it."""
AGREE_DEG = 30.0
"""A walking window this far from the learnt upright disagrees with it (a stray window, or re-clipped)."""
CONSENSUS_WINDOWS = 5
"""Windows that must agree before an upright is trusted or replaced: 10 s of walking."""
SMOOTHING = 0.05
"""Weight of each new agreeing window: the upright follows a slipping clip over ~20 windows of walking."""
ENCODING_VERSION = 1
MAX_ENCODED_CHARS = 200
"""A stored upright is a few numbers; anything longer is not one and is not parsed."""


@dataclass(frozen=True, slots=True)
class LearntUpright:
    """A wearer's upright worth keeping across a restart: the direction and the walking behind it."""

    direction: tuple[float, float, float]
    """Unit vector in the sensor's frame: where gravity points when the wearer stands upright."""
    windows: int
    """Walking windows that taught or confirmed it."""
    confirmed: bool = True
    """False for an upright restored from before a restart that no walking has confirmed yet."""

    def encode(self) -> str:
        return json.dumps({"v": ENCODING_VERSION, "upright": [round(c, 6) for c in self.direction],
                           "windows": self.windows}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str | None) -> LearntUpright | None:
        """A stored upright, provisional (``confirmed`` False); None when unset or not a sane upright.

        Sane: the current encoding, three finite numbers of length near 1 (normalised again), and at least
        the consensus of walking windows an upright is learnt from."""
        if not text or len(text) > MAX_ENCODED_CHARS:
            return None
        try:
            stored = json.loads(text)
        except ValueError:
            return None
        if not isinstance(stored, dict) or stored.get("v") != ENCODING_VERSION:
            return None
        vector, windows = stored.get("upright"), stored.get("windows")
        if (not isinstance(vector, list) or len(vector) != 3
                or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in vector)
                or not isinstance(windows, int) or isinstance(windows, bool) or windows < CONSENSUS_WINDOWS):
            return None
        v = np.array(vector, dtype=np.float64)
        norm = float(np.linalg.norm(v))
        if not (np.isfinite(v).all() and 0.9 <= norm <= 1.1):
            return None
        return cls(_as_tuple(v / norm), windows, confirmed=False)


class UprightLearner:
    """Streams raw samples (g) with their stream index; learns the upright direction from walking.

    ``initial`` is an upright known already: a vector is taken as confirmed (the bench's, or one carried
    over from a stream at another rate), a :class:`LearntUpright` as it says (restored: provisional).
    """

    def __init__(self, sample_rate_hz: float, initial: FloatArray | LearntUpright | None = None) -> None:
        self._width = max(4, round(WINDOW_S * sample_rate_hz))
        lo, hi = (max(1, round(s * sample_rate_hz)) for s in STEP_PERIOD_S)
        self._lags = np.arange(lo, min(hi, self._width // 2) + 1)
        self._window_start = 0
        self._chunks: list[FloatArray] = []
        self._chunks_start = 0          # stream index of the first sample in _chunks
        self._expected = 0              # stream index that continues the samples fed so far
        if isinstance(initial, LearntUpright):
            self._upright: FloatArray | None = _unit(np.array(initial.direction, dtype=np.float64))
            self._windows, self._confirmed = initial.windows, initial.confirmed
        else:
            self._upright = None if initial is None else _unit(np.asarray(initial, dtype=np.float64))
            self._windows, self._confirmed = (0, False) if initial is None else (CONSENSUS_WINDOWS, True)
        self._proposals: list[FloatArray] = []
        # (stream index from which it holds, upright, confirmed): the history upright_at() answers from.
        self._history: list[tuple[int, FloatArray | None, bool]] = [(0, self._upright, self._confirmed)]

    @property
    def upright(self) -> FloatArray | None:
        """The latest upright (unit vector, sensor frame), or None before any has been learnt."""
        return self._upright

    @property
    def learnt(self) -> LearntUpright | None:
        """The latest upright with the walking behind it, to keep across a restart; None if there is none."""
        if self._upright is None:
            return None
        return LearntUpright(_as_tuple(self._upright), self._windows, self._confirmed)

    def upright_at(self, index: int) -> FloatArray | None:
        """The upright learnt from the windows that ended at or before stream sample ``index``."""
        return self.state_at(index)[0]

    def state_at(self, index: int) -> tuple[FloatArray | None, bool]:
        """The upright in force at stream sample ``index`` and whether walking had confirmed it by then."""
        for since, upright, confirmed in reversed(self._history):
            if since <= index:
                return upright, confirmed
        return self._history[0][1], self._history[0][2]

    def forget_before(self, index: int) -> None:
        """Drop history no caller will ask about again (keeps the entry in force at ``index``)."""
        keep = max((n for n, (since, _, _) in enumerate(self._history) if since <= index), default=0)
        del self._history[:keep]

    def restart_window(self, index: int) -> None:
        """A gap or invalid samples: the window in progress is not walking evidence."""
        self._window_start = -(-index // self._width) * self._width
        self._chunks = []
        self._chunks_start = self._expected = index

    def feed(self, first_index: int, samples: FloatArray) -> None:
        """Feed consecutive finite samples starting at stream index ``first_index``."""
        if first_index != self._expected:
            self.restart_window(first_index)
        if not self._chunks:
            self._chunks_start = first_index
        self._chunks.append(samples)
        self._expected = first_index + len(samples)
        if self._expected < self._window_start + self._width:
            return  # cheap until a window completes: blocks arrive a few samples at a time
        data = np.concatenate(self._chunks)[self._window_start - self._chunks_start :]
        complete = len(data) // self._width
        windows = data[: complete * self._width].reshape(complete, self._width, 3)
        for n in np.flatnonzero(self._walking(windows)):
            self._learn(_unit(windows[n].mean(axis=0)), self._window_start + (int(n) + 1) * self._width)
        self._window_start += complete * self._width
        rest = data[complete * self._width :]
        self._chunks = [rest] if len(rest) else []
        self._chunks_start = self._window_start

    def _walking(self, windows: FloatArray) -> npt.NDArray[np.bool_]:
        mag = np.sqrt(np.einsum("kij,kij->ki", windows, windows))
        mean = mag.mean(axis=1)
        std = mag.std(axis=1)
        half = self._width // 2
        first, second = windows[:, :half].mean(axis=1), windows[:, half:].mean(axis=1)
        cos = np.einsum("ki,ki->k", first, second) / np.maximum(
            np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1), 1e-12)
        # Autocorrelation of |a| at every step-length lag at once (zero-padded FFT: no wrap-around).
        spectrum = np.fft.rfft(mag - mean[:, None], n=2 * self._width, axis=1)
        auto = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, n=2 * self._width, axis=1)
        corr = auto[:, self._lags] * (self._width / (self._width - self._lags)) / np.maximum(auto[:, :1], 1e-12)
        return np.asarray(
            (std >= WALK_STD_G[0]) & (std <= WALK_STD_G[1]) & (mean >= WALK_MEAN_G[0]) & (mean <= WALK_MEAN_G[1])
            & (cos >= math.cos(math.radians(STEADY_DEG))) & (corr.max(axis=1) >= CADENCE_MIN_CORR)
        )

    def _learn(self, direction: FloatArray, end_index: int) -> None:
        current = self._upright
        if current is not None and angle_deg(current, direction) <= AGREE_DEG:
            self._proposals.clear()
            self._set(_unit((1.0 - SMOOTHING) * current + SMOOTHING * direction), end_index, self._windows + 1)
            return
        if current is not None and not self._confirmed:
            # A restored upright the first walking disagrees with: the clip was put on differently.
            self._set(None, end_index, 0)
        # No upright yet, or one this window disagrees with: it takes a consensus to (re)learn one.
        self._proposals = [*self._proposals, direction][-CONSENSUS_WINDOWS:]
        if len(self._proposals) < CONSENSUS_WINDOWS:
            return
        mean = _unit(np.sum(self._proposals, axis=0))
        if all(angle_deg(mean, p) <= AGREE_DEG for p in self._proposals):
            self._proposals.clear()
            self._set(mean, end_index, CONSENSUS_WINDOWS)

    def _set(self, upright: FloatArray | None, since: int, windows: int) -> None:
        """A new upright from walking (confirmed), or None: a restored one dropped."""
        self._upright, self._windows, self._confirmed = upright, windows, upright is not None
        self._history.append((since, upright, self._confirmed))


def _as_tuple(v: FloatArray) -> tuple[float, float, float]:
    return float(v[0]), float(v[1]), float(v[2])



def _unit(v: FloatArray) -> FloatArray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0.0 else v

