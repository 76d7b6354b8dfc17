"""The hub's motion path: batching for CPU never delays a fall decision."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from synthetic import UPRIGHT, rotation, scenario

from drivers.model import HubTime, MotionBlock
from gateway.detect.falls import FallDetector
from gateway.detect.motion import MotionTracker
from gateway.detect.posture import LearntUpright

RATE = 50.0


def blocks(samples: np.ndarray, size: int, t0: float = 100.0) -> list[MotionBlock]:
    out = []
    for start in range(0, len(samples), size):
        chunk = samples[start:start + size].astype(np.float32)
        out.append(MotionBlock("band", "r-1", chunk, RATE,
                               HubTime(datetime(2026, 1, 1, tzinfo=UTC), t0 + start / RATE, True)))
    return out


@pytest.mark.parametrize("name", ["forward_fall", "slump_from_chair"])
@pytest.mark.parametrize("size", [1, 3, 10, 25])
def test_the_detection_comes_back_with_the_block_holding_the_deciding_sample(size: int, name: str) -> None:
    fall = scenario(name, RATE).samples.astype(np.float32)
    reference = FallDetector(RATE).process(fall)
    assert len(reference) == 1
    decided = reference[0].decided_index
    tracker = MotionTracker()
    seen = 0
    for block in blocks(fall, size):
        outcome = tracker.feed(block)
        seen += len(block.samples)
        if outcome.detections:
            assert outcome.detections == tuple(reference)
            # No batching delay: the block that carried sample `decided` returned the detection.
            assert seen - len(block.samples) <= decided < seen
            assert outcome.impact_monotonic[0] == pytest.approx(100.0 + reference[0].impact_index / RATE)
            return
    pytest.fail("no detection")


def test_a_gap_is_not_spliced_and_daily_life_is_batched() -> None:
    walking = scenario("walking", RATE).samples
    tracker = MotionTracker()
    flushes = sum(tracker.feed(b).flushed for b in blocks(walking, 1))
    assert flushes == pytest.approx(len(walking) / 10, abs=2)  # 0.2 s batches at 50 Hz
    later = blocks(walking[:20], 1, t0=500.0)  # 5 minutes later: a gap
    assert tracker.feed(later[0]).flushed  # what came before the gap is judged on its own


def test_snippet_keeps_the_last_seconds_of_raw_samples() -> None:
    tracker = MotionTracker()
    fall = scenario("forward_fall", RATE).samples
    long_stream = np.concatenate([scenario("walking", RATE).samples, fall])
    for block in blocks(long_stream, 10):
        tracker.feed(block)
    snippet = tracker.snippet("band")
    assert snippet is not None
    assert snippet.samples.shape == (500, 3)  # SNIPPET_S = 10 s at 50 Hz
    np.testing.assert_allclose(snippet.samples[-len(fall):], fall.astype(np.float32))
    assert tracker.snippet("other") is None


def test_a_new_rate_keeps_the_upright_learnt_at_the_old_one() -> None:
    tracker = MotionTracker()
    for block in blocks(scenario("walking", RATE).samples, 10):
        tracker.feed(block)
    learnt = tracker._streams["band"].detector.upright
    assert learnt is not None

    slower = scenario("standing", 25.0).samples[:5].astype(np.float32)
    tracker.feed(MotionBlock("band", "r-1", slower, 25.0, HubTime(datetime(2026, 1, 1, tzinfo=UTC), 500.0, True)))

    stream = tracker._streams["band"]
    assert stream.rate_hz == 25.0
    np.testing.assert_array_equal(stream.detector.upright, learnt)  # type: ignore[arg-type]


def test_the_upright_is_reported_when_learnt_and_not_at_every_walking_window() -> None:
    tracker = MotionTracker()
    reports = [o.upright for o in map(tracker.feed, blocks(scenario("walking", RATE).samples, 10)) if o.upright_changed]

    assert len(reports) == 1                          # learnt once; the nudges of later windows stay under 1 degree
    [learnt] = reports
    assert learnt is not None
    assert learnt.confirmed
    assert np.allclose(learnt.direction, UPRIGHT, atol=0.03)


def test_a_restored_upright_is_used_from_the_first_block_and_reported_once_confirmed() -> None:
    tracker = MotionTracker()
    tracker.restore("band", LearntUpright(UPRIGHT, windows=30, confirmed=False))
    outcomes = [tracker.feed(b) for b in blocks(scenario("walking", RATE).samples, 10)]

    assert tracker._streams["band"].detector.upright is not None
    changed = [o.upright for o in outcomes if o.upright_changed]
    assert len(changed) == 1
    assert changed[0] is not None
    assert changed[0].confirmed
    assert changed[0].windows > 30


def test_a_restored_upright_the_first_walk_disagrees_with_is_reported_gone_then_relearnt() -> None:
    tracker = MotionTracker()
    tracker.restore("band", LearntUpright(UPRIGHT, windows=30, confirmed=False))
    upside_down = scenario("walking", RATE).samples @ rotation((1.0, 0.0, 0.0), 180.0).T

    changed = [o.upright for b in blocks(upside_down, 10) if (o := tracker.feed(b)).upright_changed]

    assert changed[0] is None                         # dropped at the first walking window
    assert changed[-1] is not None
    assert np.allclose(changed[-1].direction, (0.0, 1.0, 0.0), atol=0.03)


def test_a_restore_after_the_stream_started_is_ignored() -> None:
    tracker = MotionTracker()
    tracker.feed(blocks(scenario("standing", RATE).samples, 10)[0])
    tracker.restore("band", LearntUpright(UPRIGHT, windows=30, confirmed=False))

    for block in blocks(scenario("standing", RATE).samples, 10):
        tracker.feed(block)

    assert tracker._streams["band"].detector.upright is None
