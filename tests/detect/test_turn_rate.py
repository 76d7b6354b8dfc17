"""How fast the trunk turned around a candidate peak, on signals whose turning rate is known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import rotation, scenario

from gateway.detect.fall_evidence import FallCandidates, TurnRate
from gateway.detect.fall_model import FallKind, FallParams

RATES = (25.0, 50.0, 100.0, 200.0)


def turning(rate: float, degrees: float, seconds: float, hold_s: float = 4.0) -> tuple[np.ndarray, int]:
    """Gravity read by a sensor whose trunk turns ``degrees`` at a constant rate, from upright towards lying
    on the back; returns the samples and the index at which the turn ends (where a landing peak would be)."""
    t = np.arange(round((2 * hold_s + seconds) * rate)) / rate
    angles = np.radians(np.clip((t - hold_s) * degrees / seconds, 0.0, degrees))
    samples = np.stack([np.zeros_like(angles), -np.cos(angles), np.sin(angles)], axis=1)
    return samples, round((hold_s + seconds) * rate)


@pytest.mark.parametrize("rate", RATES)
def test_a_steady_turn_is_measured_at_its_rate(rate: float) -> None:
    samples, end = turning(rate, degrees=90.0, seconds=1.0)   # 90 degrees per second throughout

    measured = TurnRate(rate, FallParams()).peak(samples, end, seg=0)

    assert measured == pytest.approx(90.0, rel=0.05)


@pytest.mark.parametrize("rate", RATES)
def test_a_toppling_turn_reads_several_times_faster_than_a_controlled_one(rate: float) -> None:
    """Lying back in 0.8 s against falling back in 0.2 s: the smoothing blunts the fast one, never reverses them."""
    controlled, end_c = turning(rate, degrees=90.0, seconds=0.8)
    toppling, end_t = turning(rate, degrees=90.0, seconds=0.2)
    turn = TurnRate(rate, FallParams())

    slow, fast = turn.peak(controlled, end_c, seg=0), turn.peak(toppling, end_t, seg=0)

    assert slow == pytest.approx(112.5, rel=0.1)
    assert fast > 2.5 * slow


def test_every_rate_measures_the_same_turn() -> None:
    measured = []
    for rate in RATES:
        samples, end = turning(rate, degrees=80.0, seconds=0.3)
        measured.append(TurnRate(rate, FallParams()).peak(samples, end, seg=0))

    assert max(measured) - min(measured) < 0.05 * min(measured)


def test_only_the_turn_window_is_read() -> None:
    """A turn that ended more than the window's 3 s before the peak is not this event's turn."""
    rate = 50.0
    samples, end = turning(rate, degrees=90.0, seconds=0.3)
    turn = TurnRate(rate, FallParams())

    assert turn.peak(samples, end + round(1.0 * rate), seg=0) > 200.0
    assert turn.peak(samples, end + round(3.6 * rate), seg=0) < 1.0


def test_a_window_cut_by_the_start_of_the_segment_measures_what_is_there() -> None:
    rate = 50.0
    samples, end = turning(rate, degrees=90.0, seconds=1.0, hold_s=0.5)

    assert TurnRate(rate, FallParams()).peak(samples, end, seg=0) == pytest.approx(90.0, rel=0.05)
    assert TurnRate(rate, FallParams()).peak(samples, end, seg=end - 2) == 0.0   # too little left to measure


@pytest.mark.parametrize("turn", [(1.0, 0.0, 0.0, 180.0), (0.3, 1.0, -0.5, 123.0)])
def test_the_sensor_mounting_does_not_change_the_turn_rate(turn: tuple[float, float, float, float]) -> None:
    rate = 50.0
    samples = scenario("slump_from_chair", rate).samples
    r = rotation(turn[:3], turn[3])

    plain = [e.turn_rate_dps for e in FallCandidates(rate).process(samples) if e.kind is FallKind.LOW_ENERGY]
    rotated = [e.turn_rate_dps for e in FallCandidates(rate).process(samples @ r.T) if e.kind is FallKind.LOW_ENERGY]

    assert plain
    assert rotated == pytest.approx(plain, rel=1e-6)
