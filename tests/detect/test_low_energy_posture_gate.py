"""The low-energy path's posture gate: a fall it judges ends lying, and a recline in a seat never gets there.

A model that weighs how fast the hips went down and how far the trunk overshot (docs/falls.md, third and
fourth rounds) scores a plop into a deep armchair much like a faint. What keeps a seated recline out is
not the model but where the trunk came to rest: at least ``FallParams.lying_deg`` from upright, the
same "lying" the detector already uses for "lying before". These tests give the low-energy path
everything a model could want (a fast drop, a big overshoot, a jolt) and a model that says "fall" to
anything it is shown, so only the gate decides."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.detect.fall_model import DEFAULT_PARAMS, FallKind, FallParams, LogisticModel
from gateway.detect.falls import FallDetector

RATES = (25.0, 50.0, 200.0)
UPRIGHT = (0.0, -1.0, 0.0)
SEATED_DEG = 20.0
LAND_S = 6.0
EVERYTHING_IS_A_FALL = FallParams(
    candidate_g=10.0,    # keep the hard-fall path out: these tests are about the low-energy one
    low_energy=LogisticModel(("variability_g",), (0.1,), (0.0,), 20.0, 0.5),
)


def recline(rate: float, end_deg: float, *, overshoot_deg: float = 40.0, sink_mps: float = 1.5,
            seed: int = 0) -> np.ndarray:
    """Seated (20 degrees back) and still, then the trunk turns back in 0.5 s to ``overshoot_deg`` past
    ``end_deg`` and settles back to it in 0.3 s, the waist dropping at ``sink_mps`` into the landing and
    stopped in 0.1 s: a plop into a deep seat, as fast and as unbraked as a faint."""
    t = np.arange(round(12.0 * rate)) / rate
    angle = np.interp(t, [0.0, LAND_S - 0.5, LAND_S, LAND_S + 0.3],
                      [SEATED_DEG, SEATED_DEG, end_deg + overshoot_deg, end_deg])
    up_g = np.zeros_like(t)
    up_g[(t >= LAND_S - 0.5) & (t < LAND_S)] = -sink_mps / 9.80665 / 0.5
    up_g[(t >= LAND_S) & (t < LAND_S + 0.1)] = sink_mps / 9.80665 / 0.1
    radians = np.radians(angle)
    gravity = np.stack([np.zeros_like(t), -np.cos(radians), np.sin(radians)], axis=1)
    noise = np.random.default_rng(seed).normal(0.0, 0.01, (len(t), 3))
    return np.asarray(gravity * (1.0 + up_g)[:, None] + noise)


def test_the_gate_is_the_detectors_own_lying() -> None:
    """One definition of lying: the bound a low-energy fall must reach is the one above which the wearer
    counts as lying before (turning over in bed)."""
    assert DEFAULT_PARAMS.lying_deg == DEFAULT_PARAMS.lying_before_deg == 60.0


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("end_deg", [35.0, 45.0, 52.0, 56.0])
def test_a_recline_that_ends_short_of_lying_never_fires_on_the_low_energy_path(rate: float, end_deg: float) -> None:
    samples = recline(rate, end_deg)

    assert FallDetector(rate, EVERYTHING_IS_A_FALL, upright=UPRIGHT).process(samples) == []


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("end_deg", [65.0, 90.0])
def test_the_same_recline_ending_lying_reaches_the_model(rate: float, end_deg: float) -> None:
    """The signal above is otherwise admissible: ending lying, it is weighed (and this model says fall)."""
    samples = recline(rate, end_deg)

    [detection] = FallDetector(rate, EVERYTHING_IS_A_FALL, upright=UPRIGHT).process(samples)

    assert detection.kind is FallKind.LOW_ENERGY
    assert detection.evidence.tilt_after_deg == pytest.approx(end_deg, abs=3.0)
    assert abs(detection.impact_index - round(LAND_S * rate)) <= max(2, round(0.1 * rate))


@pytest.mark.parametrize("rate", RATES)
def test_a_recline_to_just_below_the_old_bound_was_weighed_before_the_gate(rate: float) -> None:
    """The gate is what stops a 56-degree recline: with the second round's 50-degree bound it reaches the
    model (as SisFall's elderly quick sits into a low chair, 52-85 degrees, did)."""
    samples = recline(rate, 56.0)
    old_gate = FallParams(candidate_g=10.0, lying_deg=50.0, low_energy=EVERYTHING_IS_A_FALL.low_energy)

    [detection] = FallDetector(rate, old_gate, upright=UPRIGHT).process(samples)

    assert detection.kind is FallKind.LOW_ENERGY
    assert detection.evidence.tilt_after_deg < DEFAULT_PARAMS.lying_deg
