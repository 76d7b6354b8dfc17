"""The fall detector's parameters: physically motivated windows and gates, and two small logistic models.

Every window is in seconds so one parameter set serves wearables at 25-200 Hz. The two models are
fitted by ``bench/fall_tune.py`` on a SisFall archive (waist sensor, 50 Hz and 200 Hz pooled), their
thresholds chosen by leave-one-subject-out cross-validation; rerun it to reproduce them and
``bench/falls.py`` to see how they do on people they were not fitted on.

Two kinds of fall, two decisions:

- ``IMPACT``: a hard fall, judged 1.5 s after the impact on the impact itself (peak |a|, the
  descent before it) and the trunk having turned towards lying (posture change).
- ``LOW_ENERGY``: a fall with little impact (fainting from a chair, slumping while getting up or
  sitting down, sliding down a table), judged 3.5 s after its largest |a|, only if the trunk came to
  rest lying (>= 60 degrees from the wearer's upright) and much further from it than it started, on
  how it got there: a disturbed moment, the hips going down, the trunk not braked into its end
  posture. Lying down on a bed ends in the same place, but the hips stay on the bed and the turn is
  braked; a plop into a deep armchair drops and jolts too, but ends seated, short of the gate.

Post-fall stillness, the descent speed and the turn rate are reported as evidence but are
deliberately not model inputs. On SisFall stillness would buy a few falls, because the actors lay
still after falling and moved after lying down on purpose; it would lower the confidence exactly for
the elder who struggles on the floor. The descent speed from |a| added nothing once the tilt was
known (its weight came out near zero and it did not move the cross-validated figures), and its
calibration depends on each sensor's offset (up to 0.15 g on the ADXL345). The turn rate tells a
topple from a braked lie-down, but on people the models never saw ``descent_g`` tells them apart
with fewer missed falls, and the turn rate would also mark down a fall that turns slowly
(docs/falls.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class FallKind(StrEnum):
    IMPACT = "impact"
    LOW_ENERGY = "low_energy"


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """confidence = 1 / (1 + exp(-(bias + sum(weight * feature / scale)))); a fall at >= threshold.

    Features are named after the evidence they read (``FallEvidence`` attributes). Each is divided by
    its scale first, so a weight reads "log-odds per typical unit of that evidence".
    """

    features: tuple[str, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def __post_init__(self) -> None:
        if not len(self.features) == len(self.scales) == len(self.weights):
            raise ValueError(f"LogisticModel needs one scale and one weight per feature {self.features}, "
                             f"got {len(self.scales)} scales and {len(self.weights)} weights")
        if not all(s > 0.0 for s in self.scales):
            raise ValueError(f"LogisticModel scales must be positive, got {self.scales}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"LogisticModel threshold must be in (0, 1), got {self.threshold}")

    def logit(self, values: Sequence[float]) -> float:
        return self.bias + sum(w * v / s for w, v, s in zip(self.weights, values, self.scales, strict=True))

    def confidence(self, values: Sequence[float]) -> float:
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, self.logit(values)))))

    def describe(self) -> str:
        terms = " ".join(f"{w:+.2f}*{name}/{s:g}" for name, s, w in zip(self.features, self.scales, self.weights,
                                                                         strict=True))
        return f"fall if sigmoid({self.bias:+.2f} {terms}) >= {self.threshold:g}"


IMPACT_MODEL = LogisticModel(
    features=("peak_g", "descent_g", "posture_change_deg"),
    scales=(1.0, 0.1, 90.0),
    weights=(1.269, 2.203, 2.636),
    bias=-8.79,
    threshold=0.98,
)
"""peak_g: the impact; descent_g: std of |a| in the second before it (the drop towards free fall and
the swing back); posture_change_deg: trunk direction before vs after."""

LOW_ENERGY_MODEL = LogisticModel(
    features=("variability_g", "tilt_gain_deg", "tilt_after_deg", "sink_speed_mps", "overshoot_deg"),
    scales=(0.1, 90.0, 90.0, 1.0, 90.0),
    weights=(1.895, 1.057, 0.128, 3.617, 3.973),
    bias=-8.09,
    threshold=0.7,
)
"""variability_g: std of smoothed |a| over the second around the peak (SisFall's magnitude
variability, the family of features that lost least on elderly subjects); tilt_gain_deg: how much
further from upright the trunk ended than it started; tilt_after_deg: how far from upright it ended
(nearly weightless once the ``lying_deg`` gate has said "lying"); sink_speed_mps: how fast the hips
went down, from rest to rest: a faint or a fall from a chair drops them to the floor, lying back onto a
bed turns the trunk about hips that stay on the bed; overshoot_deg: how far past its resting posture
the trunk went, a fall not being braked. Fourth round (docs/falls.md): refitted with the 60-degree
gate in place, which keeps a plop into a deep armchair (a drop and a jolt too) out before the model is
asked. ``turn_rate_dps`` is measured and reported but not read: see docs/falls.md."""


@dataclass(frozen=True, slots=True)
class FallParams:
    """Windows, gates and models of the detector (defaults are the tuned ones)."""

    smoothing_cutoff_hz: float = 10.0
    """Common bandwidth for all sampling rates: impacts at 200 Hz would otherwise look sharper
    (higher peaks) than the same impact sampled at 25 Hz."""
    smoothing_span_s: float = 0.2
    candidate_g: float = 1.8
    """A smoothed |a| peak below this is not an impact worth judging as a hard fall (walking peaks
    ~1.3-1.6 g)."""
    low_energy_g: float = 1.4
    """Lower trigger for low-energy falls: every SisFall fall peaks above 1.7 g; this leaves room for
    cushioned falls. The posture evidence, not the peak, carries these."""
    peak_half_window_s: float = 0.5
    """A candidate is the largest |a| within this distance on either side (one candidate per fall)."""
    free_fall_window_s: float = 1.0
    """Free fall (|a| well below 1 g), the descent std and speed are measured in this window before the peak."""
    free_fall_g: float = 0.6
    """Below this the body is falling; above it ``free_fall_min_g`` is reported as None."""
    variability_half_window_s: float = 0.5
    """``variability_g`` is the std of |a| within this distance of the peak."""
    pre_posture_s: tuple[float, float] = (-2.0, -1.0)
    """Window before the peak whose mean acceleration is the trunk's direction before the event."""
    before_window_s: tuple[float, float] = (-5.0, -1.0)
    """The trunk's posture before the event is its most upright second in this window: a slow slump
    from a chair starts well before its impact, and someone turning over in bed was lying throughout."""
    rest_before_s: tuple[float, float] = (-3.0, -2.0)
    """Window before the peak whose mean |a| is the level at rest before the event (``sink_speed_mps``
    integrates from its end): before a faint's slow sag has begun."""
    turn_window_s: tuple[float, float] = (3.0, 1.0)
    """``turn_rate_dps`` is the fastest turn from this long before the peak to this long after it: the
    descent (a slow slump can start seconds before the topple) and the landing."""
    post_window_s: tuple[float, float] = (0.5, 1.4)
    """Window after the impact for the hard-fall posture and stillness; its end is the decision delay."""
    lying_window_s: tuple[float, float] = (1.5, 3.5)
    """Window after the peak where a low-energy faller has come to rest; its end is that decision's delay."""
    posture_gate_deg: float = 45.0
    """A hard fall ends lying down: impacts after which the trunk turned less than this are not judged
    (jumps, stumbles, sitting down hard)."""
    lying_before_deg: float = 60.0
    """Tilt from the learnt upright above which the wearer was already lying before: turning over in
    bed is not a fall. (Falls out of bed are not covered: SisFall has none to learn them from.)"""
    lying_deg: float = 60.0
    """A low-energy fall ends lying: at rest at least this far from upright, the bound above which the wearer
    counts as lying before (``lying_before_deg``). Sitting is ~20-40 degrees; sunk deep into an armchair or a
    low seat, up to ~55. The posture gate in front of a model that weighs the hips' drop and the overshoot,
    which a plop into an armchair has too (fourth round, docs/falls.md; 50 degrees until then)."""
    tilt_gain_deg: float = 30.0
    """... and at least this much further from upright than it started (not a recliner sitter settling)."""
    screen_deg: float = 30.0
    """A peak whose trunk is within this of upright 1.4 s later is not followed up as a low-energy fall
    (walking steps); keeps the pending list and its CPU small."""
    refractory_s: float = 10.0
    """After a detection, candidates within this time belong to the same fall (bounces, getting up)."""
    max_gap_s: float = 0.25
    """A gap longer than this starts a fresh window instead of splicing unrelated data."""
    impact: LogisticModel = field(default=IMPACT_MODEL)
    low_energy: LogisticModel = field(default=LOW_ENERGY_MODEL)

    def __post_init__(self) -> None:
        for name in ("pre_posture_s", "before_window_s", "rest_before_s"):
            window = getattr(self, name)
            if not window[0] < window[1] <= 0.0:
                raise ValueError(f"FallParams.{name} must be an increasing window before 0: {window}")
        if not (min(self.turn_window_s) >= 0.0 and sum(self.turn_window_s) > 0.0):
            raise ValueError(f"FallParams.turn_window_s must be (seconds before, seconds after) the peak, "
                             f"not negative: {self.turn_window_s}")
        for name in ("post_window_s", "lying_window_s"):
            window = getattr(self, name)
            if not 0.0 <= window[0] < window[1]:
                raise ValueError(f"FallParams.{name} must be an increasing window after 0: {window}")
        if not self.low_energy_g <= self.candidate_g:
            raise ValueError(f"FallParams.low_energy_g ({self.low_energy_g}) must not exceed candidate_g "
                             f"({self.candidate_g}): hard-fall candidates are found among low-energy ones")

    def model(self, kind: FallKind) -> LogisticModel:
        return self.impact if kind is FallKind.IMPACT else self.low_energy


DEFAULT_PARAMS = FallParams()
