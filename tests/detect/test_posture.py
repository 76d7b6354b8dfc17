"""Learning the wearer's upright from walking, on synthetic signals (any mounting, any chopping)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import UPRIGHT, _Timeline, rotation, scenario

from gateway.detect.features import angle_deg
from gateway.detect.posture import CONSENSUS_WINDOWS, LearntUpright, UprightLearner

RATES = (25.0, 50.0, 100.0, 200.0)


def walking(seconds: float, rate: float, seed: int = 1) -> np.ndarray:
    return _Timeline(seed).walk(seconds).render(rate)


def learnt(samples: np.ndarray, rate: float) -> np.ndarray | None:
    learner = UprightLearner(rate)
    learner.feed(0, samples)
    return learner.upright


@pytest.mark.parametrize("rate", RATES)
def test_walking_teaches_the_upright(rate: float) -> None:
    upright = learnt(walking(20.0, rate), rate)

    assert upright is not None
    assert angle_deg(upright, np.array(UPRIGHT)) < 2.0


@pytest.mark.parametrize("turn", [(1.0, 0.0, 0.0, 180.0), (0.0, 0.0, 1.0, 180.0), (0.3, 1.0, -0.5, 123.0)])
def test_a_sensor_clipped_on_any_way_up_learns_its_own_upright(turn: tuple[float, float, float, float]) -> None:
    rate = 50.0
    r = rotation(turn[:3], turn[3])

    upright = learnt(walking(20.0, rate) @ r.T, rate)

    assert upright is not None
    assert angle_deg(upright, r @ np.array(UPRIGHT)) < 2.0


def test_too_short_a_walk_teaches_nothing() -> None:
    assert learnt(walking(8.0, 50.0), 50.0) is None


@pytest.mark.parametrize("name", ["standing", "lying_down", "rolling_over_in_bed", "jumping"])
def test_standing_lying_and_jumping_are_not_walking(name: str) -> None:
    # Each has at most a few seconds of walking in it: never the 10 s an upright needs.
    assert learnt(scenario(name, 50.0).samples, 50.0) is None


def test_the_upright_holds_from_the_window_that_taught_it() -> None:
    rate = 50.0
    learner = UprightLearner(rate)
    learner.feed(0, walking(20.0, rate))

    assert learner.upright_at(round(9.0 * rate)) is None
    assert learner.upright_at(round(10.0 * rate)) is not None


def test_feeding_block_by_block_learns_what_feeding_at_once_learns() -> None:
    rate = 50.0
    samples = walking(30.0, rate)
    whole = UprightLearner(rate)
    whole.feed(0, samples)
    chopped = UprightLearner(rate)
    for start in range(0, len(samples), 7):
        chopped.feed(start, samples[start : start + 7])

    assert chopped.upright is not None
    assert whole.upright is not None
    np.testing.assert_array_equal(chopped.upright, whole.upright)
    for index in range(0, len(samples), 25):
        assert np.array_equal(chopped.upright_at(index), whole.upright_at(index))  # type: ignore[arg-type]


def test_walking_either_side_of_a_gap_counts_but_no_window_spans_it() -> None:
    rate = 50.0
    samples = walking(12.0, rate)
    learner = UprightLearner(rate)
    learner.feed(0, samples[: round(6 * rate)])
    gap = round(60.3 * rate)  # resumes mid-window: the partial window after the gap is dropped
    learner.feed(gap, samples[round(6 * rate) :])

    assert learner.upright is not None
    assert learner.upright_at(gap + round(1.6 * rate)) is None   # 3 windows before, none complete after
    assert learner.upright_at(gap + round(5.7 * rate)) is not None


def test_a_reclipped_sensor_is_relearnt_after_a_consensus_of_walking() -> None:
    rate = 50.0
    r = rotation((1.0, 0.0, 0.0), 90.0)
    first, second = walking(20.0, rate), walking(20.0, rate, seed=2) @ r.T
    learner = UprightLearner(rate)
    learner.feed(0, first)
    learner.feed(len(first), second)

    assert learner.upright is not None
    assert angle_deg(learner.upright, r @ np.array(UPRIGHT)) < 2.0


def test_a_known_upright_can_be_given() -> None:
    learner = UprightLearner(50.0, initial=np.array([0.0, 2.0, 0.0]))

    np.testing.assert_allclose(learner.upright_at(0), [0.0, 1.0, 0.0])  # type: ignore[arg-type]


# -- across a restart -----------------------------------------------------------------------------


def test_a_learnt_upright_survives_encoding_as_a_provisional_one() -> None:
    learner = UprightLearner(50.0)
    learner.feed(0, walking(20.0, 50.0))
    kept = learner.learnt
    assert kept is not None
    assert kept.confirmed
    assert kept.windows >= CONSENSUS_WINDOWS

    restored = LearntUpright.decode(kept.encode())

    assert restored is not None
    assert not restored.confirmed                    # the wearable may have been clipped on differently since
    assert restored.windows == kept.windows
    assert angle_deg(np.array(restored.direction), np.array(kept.direction)) < 1e-3


@pytest.mark.parametrize("stored", [
    None, "", "not json", "[1, 2, 3]", '{"v": 2, "upright": [0, -1, 0], "windows": 9}',
    '{"v": 1, "upright": [0, -1], "windows": 9}', '{"v": 1, "upright": [0, -1, "0"], "windows": 9}',
    '{"v": 1, "upright": [0, -1, true], "windows": 9}', '{"v": 1, "upright": [0, 0, 0], "windows": 9}',
    '{"v": 1, "upright": [0, -3, 0], "windows": 9}', '{"v": 1, "upright": [NaN, -1, 0], "windows": 9}',
    '{"v": 1, "upright": [0, -1, 0], "windows": 2}', '{"v": 1, "upright": [0, -1, 0], "windows": 9.5}',
    '{"v": 1, "upright": [0, -1, 0], "windows": 9, "pad": "' + "x" * 300 + '"}',
])
def test_a_stored_value_that_is_not_a_sane_upright_is_not_restored(stored: str | None) -> None:
    assert LearntUpright.decode(stored) is None


def restored_as(direction: tuple[float, float, float]) -> LearntUpright:
    return LearntUpright(direction, windows=20, confirmed=False)


def test_a_restored_upright_is_used_at_once_and_confirmed_by_the_first_walk() -> None:
    rate = 50.0
    learner = UprightLearner(rate, initial=restored_as(UPRIGHT))

    assert learner.state_at(0)[1] is False
    np.testing.assert_allclose(learner.upright_at(0), UPRIGHT)  # type: ignore[arg-type]

    learner.feed(0, walking(4.0, rate))               # two windows: the first one decides

    upright, confirmed = learner.state_at(round(4.0 * rate))
    assert confirmed
    assert upright is not None
    assert angle_deg(upright, np.array(UPRIGHT)) < 2.0
    assert learner.learnt is not None
    assert learner.learnt.windows == 22


@pytest.mark.parametrize("turn", [(1.0, 0.0, 0.0, 180.0), (1.0, 0.0, 0.0, 90.0)])
def test_a_restored_upright_the_first_walk_disagrees_with_is_dropped_and_relearnt(
        turn: tuple[float, float, float, float]) -> None:
    """Clipped on upside down or sideways while the hub was down: the old upright must not outlive it."""
    rate = 50.0
    r = rotation(turn[:3], turn[3])
    learner = UprightLearner(rate, initial=restored_as(UPRIGHT))

    learner.feed(0, walking(2.0, rate) @ r.T)

    assert learner.upright is None
    assert learner.learnt is None
    assert learner.upright_at(0) is not None          # it held until the walking window that disagreed

    learner.feed(round(2.0 * rate), walking(20.0, rate, seed=2) @ r.T)

    assert learner.upright is not None
    assert angle_deg(learner.upright, r @ np.array(UPRIGHT)) < 2.0
