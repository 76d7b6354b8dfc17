"""The streaming fall detector on synthetic signals with known impact times (no dataset needed)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import DAILY_ACTIVITIES, FALLS, scenario

from gateway.detect.fall_model import FallKind, FallParams, LogisticModel
from gateway.detect.falls import FallDetection, FallDetector

RATES = (25.0, 50.0, 100.0, 200.0)
MAX_DELAY_S = 1.6


def stream(detector: FallDetector, samples: np.ndarray, block: int) -> list[FallDetection]:
    found: list[FallDetection] = []
    for start in range(0, max(len(samples), 1), block):
        found.extend(detector.process(samples[start : start + block]))
    return found


def standing_still(seconds: float, rate: float) -> np.ndarray:
    return np.tile([0.0, -1.0, 0.0], (round(seconds * rate), 1))


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", sorted(FALLS))
def test_synthetic_fall_is_detected_once_soon_after_impact(name: str, rate: float) -> None:
    fall = scenario(name, rate)

    [detection] = stream(FallDetector(rate), fall.samples, block=max(1, round(rate / 5)))

    assert abs(detection.impact_index - fall.impact_index) <= 2
    assert 0.0 < detection.delay_s <= MAX_DELAY_S
    assert detection.confidence >= 0.9
    assert detection.peak_g > 2.0
    assert detection.free_fall_min_g is not None
    assert detection.free_fall_min_g < 0.5
    assert 80.0 < detection.posture_change_deg < 100.0
    assert detection.stillness_g < 0.05
    assert detection.evidence.descent_g > 0.2
    assert detection.kind is FallKind.IMPACT
    assert detection.sample_rate_hz == rate


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("name", sorted(DAILY_ACTIVITIES))
def test_daily_activities_are_not_flagged(name: str, rate: float) -> None:
    activity = scenario(name, rate)

    assert stream(FallDetector(rate), activity.samples, block=10) == []


def day_with_two_falls(rate: float) -> tuple[np.ndarray, list[int]]:
    """Walking, jumping, a fall, getting up, a stumble, another fall: one long stream."""
    parts, impacts, offset = [], [], 0
    for name in ("walking", "jumping", "forward_fall", "standing", "stumbling", "fall_then_get_up", "sitting_down"):
        part = scenario(name, rate, seed=len(parts))
        if part.is_fall:
            impacts.append(offset + part.impact_index)
        parts.append(part.samples)
        offset += len(part.samples)
    return np.concatenate(parts), impacts


@pytest.mark.parametrize("rate", RATES)
def test_detections_do_not_depend_on_block_size(rate: float) -> None:
    samples, impacts = day_with_two_falls(rate)

    whole = FallDetector(rate).process(samples)

    assert [abs(d.impact_index - i) <= 2 for d, i in zip(whole, impacts, strict=True)] == [True, True]
    for block in (1, 7, 50):
        assert stream(FallDetector(rate), samples, block) == whole


@settings(deadline=None, max_examples=15, derandomize=True)
@given(cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=40))
def test_any_split_of_the_stream_gives_the_same_detections(cuts: list[int]) -> None:
    samples, _ = day_with_two_falls(50.0)
    expected = FallDetector(50.0).process(samples)
    detector = FallDetector(50.0)
    found: list[FallDetection] = []
    bounds = [0, *sorted(c % len(samples) for c in cuts), len(samples)]
    for start, end in itertools.pairwise(bounds):
        found.extend(detector.process(samples[start:end]))
    assert found == expected


def test_empty_blocks_are_fine() -> None:
    detector = FallDetector(50.0)
    assert detector.process(np.zeros((0, 3))) == []
    assert detector.process(np.empty((0, 3)), gap_before_s=10.0) == []


def test_refractory_period_gives_one_detection_per_fall() -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate).samples
    impact = scenario("forward_fall", rate).impact_index

    # A second impact ~9.5 s after the first is still the same fall (bouncing, trying to get up) ...
    close = FallDetector(rate).process(np.concatenate([fall, fall]))
    # ... one after the refractory period is a new fall.
    apart = FallDetector(rate).process(np.concatenate([fall, standing_still(5.0, rate), fall]))

    assert [d.impact_index for d in close] == [impact]
    assert [d.impact_index for d in apart] == [impact, impact + len(fall) + round(5.0 * rate)]


def test_refractory_period_is_a_parameter() -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate).samples

    detections = FallDetector(rate, FallParams(refractory_s=5.0)).process(np.concatenate([fall, fall]))

    assert len(detections) == 2


@pytest.mark.parametrize("gap_s", [0.5, 3.0, 3600.0])
def test_a_gap_resets_the_window_instead_of_splicing(gap_s: float) -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate)
    cut = fall.impact_index + round(0.3 * rate)
    detector = FallDetector(rate)

    before = detector.process(fall.samples[:cut])
    after = detector.process(fall.samples[cut:], gap_before_s=gap_s)

    assert before == []
    assert after == []  # the post-impact evidence after a gap is not this fall's


def test_jitter_below_the_gap_threshold_is_spliced() -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate)
    cut = fall.impact_index + round(0.3 * rate)
    detector = FallDetector(rate)

    detector.process(fall.samples[:cut])
    [detection] = detector.process(fall.samples[cut:], gap_before_s=0.04)

    assert abs(detection.impact_index - fall.impact_index) <= 2


def test_stream_index_keeps_counting_across_gaps_and_reset() -> None:
    rate = 100.0
    fall = scenario("backward_fall", rate)
    detector = FallDetector(rate)
    lead_in = standing_still(4.0, rate)

    detector.process(lead_in)
    detector.reset()
    [detection] = detector.process(fall.samples, gap_before_s=30.0)

    assert abs(detection.impact_index - (len(lead_in) + fall.impact_index)) <= 2


def test_nan_rows_are_gaps_that_still_count_as_samples() -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate)
    samples = fall.samples.copy()
    samples[10:20] = np.nan  # lost samples while walking, long before the fall

    [detection] = FallDetector(rate).process(samples)

    assert abs(detection.impact_index - fall.impact_index) <= 2


def test_nan_rows_after_the_impact_cut_the_evidence() -> None:
    rate = 50.0
    fall = scenario("forward_fall", rate)
    samples = fall.samples.copy()
    samples[fall.impact_index + 5, 1] = np.nan

    assert FallDetector(rate).process(samples) == []


def test_fall_is_decided_within_the_block_that_completes_the_evidence() -> None:
    rate = 50.0
    fall = scenario("lateral_fall", rate)
    detector = FallDetector(rate)
    reference = FallDetector(rate).process(fall.samples)[0]

    assert detector.process(fall.samples[: reference.decided_index]) == []
    assert detector.process(fall.samples[reference.decided_index : reference.decided_index + 1]) == [reference]


@pytest.mark.parametrize("rate", [0.0, 24.9, 200.1, math.nan, math.inf, -50.0])
def test_unsupported_rates_are_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="sample_rate_hz must be between 25 and 200 Hz"):
        FallDetector(rate)


@pytest.mark.parametrize("shape", [(10,), (10, 2), (10, 4), (2, 3, 1)])
def test_wrong_sample_shape_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"samples must be an \(n, 3\) array"):
        FallDetector(50.0).process(np.zeros(shape))


def test_nan_gap_is_refused() -> None:
    with pytest.raises(ValueError, match="gap_before_s is NaN"):
        FallDetector(50.0).process(np.zeros((1, 3)), gap_before_s=math.nan)


def test_bad_params_are_refused() -> None:
    with pytest.raises(ValueError, match="one scale and one weight per feature"):
        LogisticModel(("peak_g", "descent_g"), (1.0, 0.1), (1.0,), 0.0, 0.9)
    with pytest.raises(ValueError, match="threshold must be in"):
        LogisticModel(("peak_g",), (1.0,), (1.0,), 0.0, 1.0)
    with pytest.raises(ValueError, match="post_window_s"):
        FallParams(post_window_s=(1.0, 0.5))
    with pytest.raises(ValueError, match="before_window_s"):
        FallParams(before_window_s=(-1.0, -2.0))
    with pytest.raises(ValueError, match="low_energy_g"):
        FallParams(low_energy_g=2.0, candidate_g=1.8)
