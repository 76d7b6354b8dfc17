"""How fast the hips went down and how far past its resting posture the trunk went, on signals where both
are known exactly: a trunk turning from upright to lying on its back, the waist moving straight up or
down with a given speed profile, read by a sensor that may have an offset on one axis (the ADXL345 in
SisFall carries up to 0.15 g)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import rotation

from gateway.detect.fall_evidence import FallCandidates, FallEvidence
from gateway.detect.fall_model import FallKind

RATES = (25.0, 50.0, 100.0, 200.0)
UPRIGHT = (0.0, -1.0, 0.0)
TURN_ENDS_S = 6.0
"""The trunk reaches its furthest tilt, and the waist its lowest point, here: where the landing peak is."""


def transfer(rate: float, *, sink_mps: float, overshoot_deg: float = 0.0, offset_g: float = 0.0,
             turn_s: float = 0.5) -> np.ndarray:
    """Seated still, then the trunk turns back to lying (90 degrees from upright) in ``turn_s``, going
    ``overshoot_deg`` past it and settling back in 0.3 s. The waist drops at ``sink_mps`` at the end of the
    turn: accelerating down over 0.5 s, stopped by the floor in 0.1 s. Without a drop, the back meets the
    mattress with a bump that leaves the waist where it was (+0.8 g then -0.8 g, 0.1 s each). The
    sensor reads ``offset_g`` too much on the axis that points up when lying."""
    t = np.arange(round(12.0 * rate)) / rate
    end = TURN_ENDS_S
    furthest = 90.0 + overshoot_deg
    angle = np.interp(t, [0.0, end - turn_s, end, end + 0.3], [0.0, 0.0, furthest, 90.0])
    up_g = np.zeros_like(t)   # the waist's upward acceleration, in g
    if sink_mps:
        up_g[(t >= end - 0.5) & (t < end)] = -sink_mps / 9.80665 / 0.5
        up_g[(t >= end) & (t < end + 0.1)] = sink_mps / 9.80665 / 0.1
    else:
        up_g[(t >= end) & (t < end + 0.1)] = 0.8
        up_g[(t >= end + 0.1) & (t < end + 0.2)] = -0.8
    radians = np.radians(angle)
    gravity = np.stack([np.zeros_like(t), -np.cos(radians), np.sin(radians)], axis=1)
    return np.asarray(gravity * (1.0 + up_g)[:, None] + np.array([0.0, 0.0, offset_g]))


def evidence(rate: float, samples: np.ndarray, upright: tuple[float, float, float] = UPRIGHT) -> FallEvidence:
    """The low-energy evidence of the candidate at the end of the turn."""
    found = [e for e in FallCandidates(rate, upright=upright).process(samples)
             if e.kind is FallKind.LOW_ENERGY and abs(e.impact_index - TURN_ENDS_S * rate) <= 0.3 * rate]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("speed", [0.8, 1.5, 2.5])
def test_the_hips_dropping_is_measured_at_its_speed(rate: float, speed: float) -> None:
    measured = evidence(rate, transfer(rate, sink_mps=speed)).sink_speed_mps

    assert measured == pytest.approx(speed, rel=0.15)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("offset", [-0.15, 0.0, 0.15])
def test_a_trunk_turning_about_hips_that_stay_put_does_not_sink(rate: float, offset: float) -> None:
    """Lying back onto a bed: |a| at rest changes with the turn by the sensor's offset, which a baseline
    drawn in time from before to after would integrate into a speed; drawn along the turn it does not."""
    ev = evidence(rate, transfer(rate, sink_mps=0.0, offset_g=offset))

    assert ev.peak_g >= 1.4
    assert ev.sink_speed_mps < 0.25


@pytest.mark.parametrize("offset", [-0.15, 0.15])
def test_an_offset_does_not_hide_a_drop(offset: float) -> None:
    rate = 50.0
    assert evidence(rate, transfer(rate, sink_mps=1.5, offset_g=offset)).sink_speed_mps == pytest.approx(1.5, rel=0.2)


@pytest.mark.parametrize("rate", RATES)
def test_the_overshoot_is_how_far_past_its_resting_tilt_the_trunk_went(rate: float) -> None:
    braked = evidence(rate, transfer(rate, sink_mps=1.0))
    toppled = evidence(rate, transfer(rate, sink_mps=1.0, overshoot_deg=40.0))

    assert braked.tilt_after_deg == pytest.approx(90.0, abs=2.0)
    assert braked.overshoot_deg < 5.0
    assert toppled.tilt_after_deg == pytest.approx(90.0, abs=2.0)
    assert toppled.overshoot_deg == pytest.approx(40.0, abs=8.0)   # smoothed to ~3 Hz: the peak is blunted


@pytest.mark.parametrize("turn", [(1.0, 0.0, 0.0, 180.0), (0.3, 1.0, -0.5, 123.0)])
def test_the_sensor_mounting_changes_neither(turn: tuple[float, float, float, float]) -> None:
    rate = 50.0
    samples = transfer(rate, sink_mps=1.2, overshoot_deg=30.0)
    r = rotation(turn[:3], turn[3])
    plain = evidence(rate, samples)
    rotated = evidence(rate, samples @ r.T, upright=tuple(r @ np.array(UPRIGHT)))

    assert rotated.sink_speed_mps == pytest.approx(plain.sink_speed_mps, rel=1e-6)
    assert rotated.overshoot_deg == pytest.approx(plain.overshoot_deg, abs=1e-6)


def test_without_rest_before_the_event_there_is_no_sink_to_measure() -> None:
    """A stream that starts 1 s before the peak has no level at rest before it: no evidence, not a guess."""
    rate = 50.0
    samples = transfer(rate, sink_mps=1.5)[round((TURN_ENDS_S - 1.0) * rate) :]
    found = [e for e in FallCandidates(rate, upright=UPRIGHT).process(samples) if e.kind is FallKind.LOW_ENERGY]

    assert found
    assert all(e.sink_speed_mps == 0.0 for e in found)
