"""The low-energy path on synthetic signals: soft falls after a walk, and the transfers that look like them."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import DAILY_ACTIVITIES, LOW_ENERGY_FALLS, UPRIGHT, rotation, scenario

from gateway.detect.fall_model import FallKind, FallParams, LogisticModel
from gateway.detect.falls import FallDetection, FallDetector
from gateway.detect.posture import LearntUpright

RATES = (25.0, 50.0, 100.0, 200.0)
LOW_ENERGY_ONLY = FallParams(candidate_g=2.6)
"""The shipped models with the hard-fall gate above the synthetic faints' ~2.4 g landing: the shipped
detector decides those faints on either path depending on the rate (both confidences are near their
thresholds there), and these tests are about the low-energy path. The hard falls (4 g) still reach
the impact path."""
TRANSFERS = ("sitting_down_hard", "sinking_into_armchair", "lying_down_on_bed_quickly", "picking_something_up",
             "turning_over_in_bed_after_a_walk")


def stream(detector: FallDetector, samples: np.ndarray, block: int) -> list[FallDetection]:
    found: list[FallDetection] = []
    for start in range(0, max(len(samples), 1), block):
        found.extend(detector.process(samples[start : start + block]))
    return found


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", sorted(LOW_ENERGY_FALLS))
def test_a_soft_fall_from_a_chair_is_detected_as_low_energy_within_four_seconds(name: str, rate: float) -> None:
    fall = scenario(name, rate)

    [detection] = stream(FallDetector(rate, LOW_ENERGY_ONLY), fall.samples, block=max(1, round(rate / 5)))

    assert detection.kind is FallKind.LOW_ENERGY
    assert abs(detection.impact_index - fall.impact_index) <= max(2, round(0.05 * rate))
    assert 3.4 < detection.delay_s < 4.0
    assert detection.peak_g < 2.5           # a soft landing: hard falls peak at 3-6 g
    assert detection.evidence.upright_learnt
    assert detection.evidence.tilt_before_deg < 25.0    # sitting
    assert detection.evidence.tilt_after_deg > 80.0     # lying
    assert detection.evidence.turn_rate_dps > 400.0     # toppled


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", sorted(LOW_ENERGY_FALLS))
def test_the_shipped_detector_catches_a_faint_from_a_chair_on_one_path_or_the_other(name: str, rate: float) -> None:
    fall = scenario(name, rate)

    [detection] = stream(FallDetector(rate), fall.samples, block=max(1, round(rate / 5)))

    assert abs(detection.impact_index - fall.impact_index) <= max(2, round(0.05 * rate))
    assert detection.delay_s < 4.0


@pytest.mark.parametrize("rate", [25.0, 50.0, 200.0])
def test_a_slow_slide_to_the_floor_is_caught_like_a_faint_that_topples(rate: float) -> None:
    """The low-energy model does not read how fast the trunk turned (docs/falls.md): a fall that turns at a
    lie-down's steady pace is weighed on where it ended and on its hips dropping, like any other."""
    fall = scenario("slow_slide_to_the_floor", rate)

    [detection] = FallDetector(rate, LOW_ENERGY_ONLY).process(fall.samples)

    assert detection.kind is FallKind.LOW_ENERGY
    assert detection.evidence.turn_rate_dps < 300.0           # as slow as lying down on purpose
    assert abs(detection.impact_index - fall.impact_index) <= max(2, round(0.05 * rate))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", TRANSFERS)
def test_transfers_that_end_low_or_lying_are_not_falls(name: str, rate: float) -> None:
    activity = scenario(name, rate)

    assert stream(FallDetector(rate), activity.samples, block=10) == []


def test_lying_down_on_a_bed_is_weighed_and_rejected_not_just_gated() -> None:
    """The bed case reaches the model (it ends lying, from sitting): the model is what says no."""
    rate = 50.0
    bed = scenario("lying_down_on_bed_quickly", rate).samples
    lenient = FallParams(low_energy=LogisticModel(("variability_g", "tilt_gain_deg", "tilt_after_deg"),
                                                  (0.1, 90.0, 90.0), (1.5, 5.0, 2.2), -9.2, 0.5))

    [detection] = FallDetector(rate, lenient).process(bed)

    assert detection.kind is FallKind.LOW_ENERGY
    assert FallDetector(rate).process(bed) == []


def test_without_a_learnt_upright_only_hard_falls_are_judged() -> None:
    """Turning over in bed and lying down look alike until the wearer's upright is known."""
    rate = 50.0
    fall = scenario("slump_from_chair", rate).samples
    no_walk = fall[round(12.0 * rate) :]      # the same fall after 4 s of walking: too little to learn from

    assert FallDetector(rate, LOW_ENERGY_ONLY).process(no_walk) == []
    [detection] = FallDetector(rate, LOW_ENERGY_ONLY, upright=UPRIGHT).process(no_walk)
    assert detection.kind is FallKind.LOW_ENERGY


def test_an_upright_restored_after_a_restart_judges_a_soft_fall_before_any_walk() -> None:
    rate = 50.0
    no_walk = scenario("slump_from_chair", rate).samples[round(16.0 * rate) :]   # from the end of the walk
    restored = LearntUpright(UPRIGHT, windows=40, confirmed=False)

    [detection] = FallDetector(rate, LOW_ENERGY_ONLY, upright=restored).process(no_walk)

    assert detection.kind is FallKind.LOW_ENERGY
    assert detection.evidence.upright_learnt
    assert not detection.evidence.upright_confirmed


@pytest.mark.parametrize("turn", [(1.0, 0.0, 0.0, 180.0), (0.0, 0.0, 1.0, 90.0)])
def test_a_restored_upright_from_another_mounting_never_stops_a_hard_fall(
        turn: tuple[float, float, float, float]) -> None:
    """Clipped on upside down while the hub was down: by the old upright the wearer is 'lying' all along,
    which would gate every fall out. Until walking confirms it, the hard-fall path does not listen."""
    rate = 50.0
    r = rotation(turn[:3], turn[3])
    fall = scenario("forward_fall", rate)
    stale = LearntUpright(UPRIGHT, windows=40, confirmed=False)

    [detection] = FallDetector(rate, upright=stale).process(fall.samples @ r.T)

    assert detection.kind is FallKind.IMPACT
    assert detection.evidence.tilt_before_deg >= 60.0   # "lying before", by the stale upright
    assert abs(detection.impact_index - fall.impact_index) <= 2


def test_a_confirmed_upright_still_keeps_turning_over_in_bed_out() -> None:
    """The exemption is for unconfirmed uprights only: the same signal with a confirmed one is gated."""
    rate = 50.0
    r = rotation((1.0, 0.0, 0.0), 180.0)
    samples = scenario("forward_fall", rate).samples @ r.T

    assert FallDetector(rate, upright=UPRIGHT).process(samples) == []


@pytest.mark.parametrize("turn", [(1.0, 0.0, 0.0, 180.0), (0.0, 0.0, 1.0, 180.0), (0.3, 1.0, -0.5, 123.0)])
@pytest.mark.parametrize("name", ["slump_from_chair", "forward_fall", "lying_down_on_bed_quickly"])
def test_a_sensor_upside_down_or_rotated_decides_the_same(name: str, turn: tuple[float, float, float, float]) -> None:
    rate = 50.0
    samples = scenario(name, rate).samples
    if name == "forward_fall":  # a hard fall works from cold; give it the walk the others have
        samples = np.concatenate([scenario("walking", rate).samples, samples])
    r = rotation(turn[:3], turn[3])

    upright = FallDetector(rate).process(samples)
    rotated = FallDetector(rate).process(samples @ r.T)

    assert [d.kind for d in rotated] == [d.kind for d in upright]
    assert [d.impact_index for d in rotated] == [d.impact_index for d in upright]
    for a, b in zip(rotated, upright, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-6)
        assert a.evidence.tilt_after_deg == pytest.approx(b.evidence.tilt_after_deg, abs=1e-3)


def mixed_day(rate: float) -> tuple[np.ndarray, list[tuple[int, FallKind]]]:
    """A soft fall, getting up, lying down on a bed, a hard fall: one long stream."""
    parts, truth, offset = [], [], 0
    for name, kind in (("slump_from_chair", FallKind.LOW_ENERGY), ("walking", None),
                       ("lying_down_on_bed_quickly", None), ("fall_then_get_up", FallKind.IMPACT),
                       ("sinking_into_armchair", None), ("slide_off_chair_sideways", FallKind.LOW_ENERGY)):
        part = scenario(name, rate, seed=len(parts))
        if kind is not None:
            truth.append((offset + part.impact_index, kind))
        parts.append(part.samples)
        offset += len(part.samples)
    return np.concatenate(parts), truth


@pytest.mark.parametrize("rate", [25.0, 50.0])
def test_both_kinds_are_decided_the_same_whatever_the_block_size(rate: float) -> None:
    samples, truth = mixed_day(rate)

    whole = FallDetector(rate, LOW_ENERGY_ONLY).process(samples)

    assert [d.kind for d in whole] == [kind for _, kind in truth]
    assert all(abs(d.impact_index - i) <= round(0.1 * rate) for d, (i, _) in zip(whole, truth, strict=True))
    for block in (1, 7, 50):
        assert stream(FallDetector(rate, LOW_ENERGY_ONLY), samples, block) == whole


@settings(deadline=None, max_examples=10, derandomize=True)
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_any_split_of_a_mixed_day_gives_the_same_detections(cuts: list[int]) -> None:
    samples, _ = mixed_day(25.0)
    expected = FallDetector(25.0, LOW_ENERGY_ONLY).process(samples)
    detector = FallDetector(25.0, LOW_ENERGY_ONLY)
    found: list[FallDetection] = []
    bounds = [0, *sorted(c % len(samples) for c in cuts), len(samples)]
    for start, end in itertools.pairwise(bounds):
        found.extend(detector.process(samples[start:end]))
    assert found == expected


def test_missing_samples_in_the_lying_window_cut_the_low_energy_evidence() -> None:
    rate = 50.0
    fall = scenario("slump_from_chair", rate)
    samples = fall.samples.copy()
    samples[fall.impact_index + round(2.0 * rate), 0] = np.nan

    assert FallDetector(rate, LOW_ENERGY_ONLY).process(samples) == []


def test_missing_samples_while_walking_only_delay_the_learning() -> None:
    rate = 50.0
    fall = scenario("slump_from_chair", rate)
    samples = np.concatenate([scenario("walking", rate).samples, fall.samples])
    samples[round(3.0 * rate) : round(3.5 * rate)] = np.nan

    [detection] = FallDetector(rate, LOW_ENERGY_ONLY).process(samples)

    assert detection.kind is FallKind.LOW_ENERGY


def test_the_upright_learnt_can_be_read_back() -> None:
    rate = 50.0
    detector = FallDetector(rate)
    assert detector.upright is None

    detector.process(scenario("walking", rate).samples)

    assert detector.upright is not None
    assert float(np.dot(detector.upright, UPRIGHT)) > 0.999


@pytest.mark.parametrize("name", sorted(DAILY_ACTIVITIES))
def test_a_known_upright_does_not_make_daily_life_alarming(name: str) -> None:
    rate = 50.0
    assert FallDetector(rate, upright=UPRIGHT).process(scenario(name, rate).samples) == []


def test_the_models_print_as_formulas() -> None:
    text = FallParams().low_energy.describe()

    assert text.startswith("fall if sigmoid(")
    assert "variability_g/0.1" in text
    assert "tilt_gain_deg/90" in text


def test_a_model_reading_unmeasured_evidence_is_refused() -> None:
    model = LogisticModel(("heart_rate",), (1.0,), (1.0,), 0.0, 0.5)

    with pytest.raises(ValueError, match="does not measure: \\['heart_rate'\\]"):
        FallDetector(50.0, FallParams(low_energy=model))
