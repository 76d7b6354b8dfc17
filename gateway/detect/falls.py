"""Streaming fall detection for one wearer's waist accelerometer (numpy, no per-sample loop).

The front end (fall_evidence.py) finds candidate peaks and measures the evidence around them; this
module judges it. Two kinds of fall are judged, each by its own gates and small logistic model
(fall_model.py):

- ``IMPACT``, 1.5 s after the impact: a peak >= 1.8 g after which the trunk turned >= 45 degrees;
- ``LOW_ENERGY``, 3.5 s after the peak: the trunk came to rest lying, >= 60 degrees from the wearer's
  upright, and >= 30 degrees further from it than it started, after the hips went down and the trunk
  turned unbraked (a seat, even a deep armchair, stops short of lying). Only once
  that upright is known (learnt from walking, or restored from before a restart): before, lying down
  from upright cannot be told from turning over in bed.

Neither is judged when the wearer was already lying before (turning over in bed), except that a
restored upright no walking has confirmed yet never stops the hard-fall path: it may belong to
another mounting, and without it the impact path judges as it always did. A detection starts
a refractory period: later candidates of the same fall (bounces, the other kind's verdict on the same
peak) are not reported again.

Wearing: at the waist, on a belt clip or waistband, any way up and any rotation. The detector learns
the wearer's upright from walking (posture.py), so the sensor's axes need not match anything; until
it has seen ~10 s of walking it judges hard falls only, measuring the posture change from the
trunk's direction before each event. The
figures in docs/falls.md are for a waist sensor; a pendant swings and has not been evaluated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy.typing as npt

from gateway.detect.fall_evidence import FEATURE_NAMES, FallCandidates, FallEvidence
from gateway.detect.fall_model import DEFAULT_PARAMS, FallKind, FallParams
from gateway.detect.features import FloatArray
from gateway.detect.posture import LearntUpright

log = logging.getLogger(__name__)

__all__ = ["FallDetection", "FallDetector", "FallEvidence", "FallKind", "LearntUpright", "admissible", "judge"]


@dataclass(frozen=True, slots=True)
class FallDetection:
    """One detected fall, with the evidence that made it one."""

    confidence: float
    evidence: FallEvidence
    sample_rate_hz: float

    @property
    def kind(self) -> FallKind:
        return self.evidence.kind

    @property
    def impact_index(self) -> int:
        return self.evidence.impact_index

    @property
    def decided_index(self) -> int:
        """The sample whose arrival completed the evidence (impact + window + filter delay)."""
        return self.evidence.decided_index

    @property
    def peak_g(self) -> float:
        return self.evidence.peak_g

    @property
    def free_fall_min_g(self) -> float | None:
        return self.evidence.free_fall_min_g

    @property
    def posture_change_deg(self) -> float:
        return self.evidence.posture_change_deg

    @property
    def stillness_g(self) -> float:
        return self.evidence.stillness_g

    @property
    def delay_s(self) -> float:
        """Detection delay after the impact, in seconds of signal."""
        return (self.decided_index - self.impact_index) / self.sample_rate_hz


def admissible(params: FallParams, evidence: FallEvidence) -> bool:
    """The gates in front of the models: what a fall must look like before it is weighed at all."""
    if evidence.tilt_before_deg >= params.lying_before_deg and (
            evidence.kind is FallKind.LOW_ENERGY or evidence.upright_confirmed):
        # "Lying before" by an upright from before a restart may be a sensor clipped on differently since:
        # the hard-fall path does not trust it until walking has confirmed it.
        return False
    if evidence.kind is FallKind.IMPACT:
        return evidence.peak_g >= params.candidate_g and evidence.posture_change_deg >= params.posture_gate_deg
    # Without the wearer's upright, "lying down from upright" cannot be told from "turning over in bed".
    return (evidence.upright_learnt and evidence.tilt_after_deg >= params.lying_deg
            and evidence.tilt_gain_deg >= params.tilt_gain_deg)


def judge(params: FallParams, evidence: FallEvidence) -> float | None:
    """The confidence that this evidence is a fall if it passes the gates and the threshold, else None."""
    if not admissible(params, evidence):
        return None
    model = params.model(evidence.kind)
    confidence = model.confidence(evidence.values(model.features))
    return confidence if confidence >= model.threshold else None


class FallDetector:
    """Per-wearer streaming fall detector: feed blocks of (n, 3) samples in g, get detections back.

    ``upright`` is the wearer's upright if already known: a direction in the sensor frame (taken as
    confirmed) or a :class:`LearntUpright` (one restored from before a restart is provisional until
    walking confirms it); otherwise it is learnt from walking.
    """

    def __init__(self, sample_rate_hz: float, params: FallParams = DEFAULT_PARAMS,
                 upright: npt.ArrayLike | LearntUpright | None = None) -> None:
        unknown = (set(params.impact.features) | set(params.low_energy.features)) - FEATURE_NAMES
        if unknown:
            raise ValueError(f"FallParams models read evidence the detector does not measure: {sorted(unknown)}; "
                             f"choose from {sorted(FEATURE_NAMES)}")
        self._candidates = FallCandidates(sample_rate_hz, params, upright)
        self._params = params
        self._refractory = round(params.refractory_s * self._candidates.sample_rate_hz)
        self._refractory_until = -1

    @property
    def sample_rate_hz(self) -> float:
        return self._candidates.sample_rate_hz

    @property
    def upright(self) -> FloatArray | None:
        """The wearer's upright as learnt so far (unit vector, sensor frame), or None."""
        return self._candidates.upright

    @property
    def learnt_upright(self) -> LearntUpright | None:
        """The wearer's upright with the walking behind it, to keep across a restart; None before any."""
        return self._candidates.learnt_upright

    def reset(self) -> None:
        """Drop the window (the refractory period still holds: it is about the person, not the data)."""
        self._candidates.reset()

    def next_decision_index(self) -> int | None:
        """See :meth:`FallCandidates.next_decision_index`."""
        return self._candidates.next_decision_index()

    def process(self, samples: npt.ArrayLike, gap_before_s: float = 0.0) -> list[FallDetection]:
        """Feed the next block; ``gap_before_s`` is the time missing since the previous block, if known."""
        detections: list[FallDetection] = []
        for evidence in self._candidates.process(samples, gap_before_s):
            if evidence.impact_index < self._refractory_until:
                continue
            confidence = judge(self._params, evidence)
            if confidence is None:
                continue
            self._refractory_until = evidence.impact_index + self._refractory
            detections.append(FallDetection(confidence, evidence, self.sample_rate_hz))
            log.info("fall detected kind=%s impact_index=%d decided_index=%d confidence=%.2f peak_g=%.2f "
                     "tilt_before_deg=%.0f tilt_after_deg=%.0f", evidence.kind, evidence.impact_index,
                     evidence.decided_index, confidence, evidence.peak_g, evidence.tilt_before_deg,
                     evidence.tilt_after_deg)
        return detections
