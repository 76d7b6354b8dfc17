"""The hub's motion path: batching for CPU never delays a fall decision."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from synthetic import scenario

from drivers.model import HubTime, MotionBlock
from gateway.detect.falls import FallDetector
from gateway.detect.motion import MotionTracker

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
