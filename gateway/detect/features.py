"""Pure vectorised signal helpers for the motion detectors: low-pass FIR design, filtering, decimation.

No state, no I/O: the streaming detector keeps its own history and calls these on whole blocks.
scipy is not a dependency (it is heavy on a Pi), so the few filters we need are built from numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def lowpass_taps(cutoff_hz: float, sample_rate_hz: float, span_s: float) -> FloatArray:
    """Hamming-windowed sinc low-pass taps with unit DC gain and an odd length (integer group delay).

    The span is given in seconds so the filter has the same time resolution at every sampling rate;
    that is what makes detector features comparable between a 25 Hz and a 200 Hz wearable.
    """
    if not cutoff_hz > 0.0:
        raise ValueError(f"cutoff_hz must be positive, got {cutoff_hz}")
    half = max(1, round(span_s * sample_rate_hz / 2.0))
    n = np.arange(-half, half + 1, dtype=np.float64)
    # Above Nyquist the sinc would alias; clamp so slow rates get a plain smoothing window instead.
    fc = min(cutoff_hz, 0.45 * sample_rate_hz) / sample_rate_hz
    taps = 2.0 * fc * np.sinc(2.0 * fc * n) * np.hamming(2 * half + 1)
    return np.asarray(taps / taps.sum(), dtype=np.float64)


def frames(x: FloatArray, width: int) -> FloatArray:
    """Read-only view of every run of ``width`` consecutive rows of ``x``: shape (n - width + 1, *rest, width).

    What ``sliding_window_view`` returns, built directly: the detector calls this on every block and
    numpy's general version costs several microseconds of Python per call.
    """
    x = np.ascontiguousarray(x)
    count = x.shape[0] - width + 1
    view: FloatArray = np.ndarray((count, *x.shape[1:], width), x.dtype, x, 0, (*x.strides, x.strides[0]))
    view.flags.writeable = False
    return view


def filter_same(samples: npt.ArrayLike, taps: FloatArray) -> FloatArray:
    """Zero-phase-aligned FIR of an (n, k) signal: output[t] is centred on input[t], edges replicated."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    half = (len(taps) - 1) // 2
    if x.shape[0] == 0:
        return x.copy()
    padded = np.concatenate([np.repeat(x[:1], half, axis=0), x, np.repeat(x[-1:], half, axis=0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, len(taps), axis=0)
    return np.asarray(windows @ taps[::-1], dtype=np.float64)


def decimate(samples: npt.ArrayLike, factor: int, sample_rate_hz: float) -> FloatArray:
    """Anti-alias filter (cutoff 0.4 x the new rate) and keep every ``factor``-th sample.

    Used to turn 200 Hz archives into what a 50 Hz wearable would have sent.
    """
    if factor < 1:
        raise ValueError(f"decimation factor must be >= 1, got {factor}")
    if factor == 1:
        return np.asarray(samples, dtype=np.float64)
    new_rate = sample_rate_hz / factor
    # 8 output periods of support gives > 40 dB stop-band rejection with a Hamming window.
    taps = lowpass_taps(0.4 * new_rate, sample_rate_hz, span_s=8.0 / new_rate)
    return filter_same(samples, taps)[::factor]


def angle_deg(u: FloatArray, v: FloatArray) -> float:
    """Angle between two 3-vectors in degrees (0 when either is zero, so missing data is no evidence)."""
    nu = float(np.linalg.norm(u))
    nv = float(np.linalg.norm(v))
    if nu == 0.0 or nv == 0.0:
        return 0.0
    cos = float(np.dot(u, v)) / (nu * nv)
    return float(np.degrees(np.arccos(min(1.0, max(-1.0, cos)))))
