"""The fall detector's parameters: physically motivated windows, a posture gate and a 3-feature logistic model.

Every window is in seconds so one parameter set serves wearables at 25-200 Hz. The logistic weights
were fitted by ``bench/fall_tune.py`` on the SisFall development split (waist sensor, 50 Hz and 200 Hz
pooled) and the decision threshold chosen from its leave-subjects-out cross-validation curve; rerun it
to reproduce them.

Post-impact stillness is reported as evidence but is deliberately not a model input: on SisFall it
would *reward* movement after the impact (people lying down on purpose lie stiller than people who
fell), which would lower the confidence exactly for the unconscious faller who cannot move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Feature order of the logistic model; each is divided by its scale first so the weights are
# comparable in size and readable: a weight is "log-odds per typical unit of that evidence".
# descent_g is the std of |a| in the second before the impact: the drop towards free fall and the
# swing back that a fall has and rolling over in bed does not.
FEATURE_NAMES: tuple[str, ...] = ("peak_g", "descent_g", "posture_change_deg")
FEATURE_SCALES: tuple[float, ...] = (1.0, 0.1, 90.0)


@dataclass(frozen=True, slots=True)
class FallParams:
    """Windows and thresholds of the detector (defaults are the tuned ones)."""

    smoothing_cutoff_hz: float = 10.0
    """Common bandwidth for all sampling rates: impacts at 200 Hz would otherwise look sharper
    (higher peaks) than the same impact sampled at 25 Hz."""
    smoothing_span_s: float = 0.2
    candidate_g: float = 1.8
    """A smoothed |a| peak below this is not an impact worth examining (walking peaks ~1.3-1.6 g)."""
    peak_half_window_s: float = 0.5
    """An impact is the largest |a| within this distance on either side (one candidate per fall)."""
    free_fall_window_s: float = 1.0
    """Free fall (|a| well below 1 g) is looked for in this window just before the impact."""
    free_fall_g: float = 0.6
    """Below this the body is falling; above it ``free_fall_min_g`` is reported as None."""
    pre_posture_s: tuple[float, float] = (-2.0, -1.0)
    """Window before the impact whose mean acceleration gives the upright gravity direction."""
    post_window_s: tuple[float, float] = (0.5, 1.4)
    """Window after the impact for resting posture and stillness; its end is the decision delay."""
    posture_gate_deg: float = 45.0
    """A fall ends lying down: impacts after which the trunk turned less than this are not falls
    (jumps, stumbles, sitting down), whatever the model says. The model then only has to tell falls
    from other big posture changes (lying down quickly, rolling over in bed)."""
    refractory_s: float = 10.0
    """After a detection, impacts within this time belong to the same fall (bounces, getting up)."""
    max_gap_s: float = 0.25
    """A gap longer than this starts a fresh window instead of splicing unrelated data."""
    weights: tuple[float, ...] = (1.998, 1.983, 2.477)
    bias: float = -11.153
    decision_threshold: float = 0.9

    def __post_init__(self) -> None:
        if len(self.weights) != len(FEATURE_NAMES):
            raise ValueError(f"FallParams.weights needs {len(FEATURE_NAMES)} values, got {len(self.weights)}")
        if not self.pre_posture_s[0] < self.pre_posture_s[1] <= 0.0:
            raise ValueError(f"FallParams.pre_posture_s must be an increasing window before 0: {self.pre_posture_s}")
        if not 0.0 <= self.post_window_s[0] < self.post_window_s[1]:
            raise ValueError(f"FallParams.post_window_s must be an increasing window after 0: {self.post_window_s}")
        if not 0.0 < self.decision_threshold < 1.0:
            raise ValueError(f"FallParams.decision_threshold must be in (0, 1), got {self.decision_threshold}")

    def confidence(self, features: tuple[float, ...]) -> float:
        """Logistic probability that an impact with these features is a fall (0 below the posture gate)."""
        if features[FEATURE_NAMES.index("posture_change_deg")] < self.posture_gate_deg:
            return 0.0
        z = self.bias + sum(w * f / s for w, f, s in zip(self.weights, features, FEATURE_SCALES, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))


DEFAULT_PARAMS = FallParams()
