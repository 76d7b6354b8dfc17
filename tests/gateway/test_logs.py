"""The rate-limited log line, on a clock the test moves (gateway/logs.py)."""

from __future__ import annotations

import logging

import pytest

from gateway.logs import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited(caplog: pytest.LogCaptureFixture) -> tuple[RateLimitedLog, FakeClock]:
    caplog.set_level(logging.INFO, logger="test.ratelimit")
    clock = FakeClock()
    return RateLimitedLog(logging.getLogger("test.ratelimit"), "mqtt connect failed", per_window=3,
                          window_s=60.0, clock=clock), clock


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.ratelimit"]


def test_the_first_n_in_a_window_are_logged_then_one_summary(limited, caplog):
    log, clock = limited
    logged = []
    for attempt in range(30):  # a refused connect every 2 s for a minute
        logged.append(log.log(logging.WARNING, "mqtt connect failed attempt=%d", attempt))
        clock.now += 2.0
    assert logged == [True] * 3 + [False] * 27
    assert log.suppressed == 27
    assert lines(caplog) == ["mqtt connect failed attempt=0", "mqtt connect failed attempt=1",
                             "mqtt connect failed attempt=2"]
    assert log.log(logging.WARNING, "mqtt connect failed attempt=%d", 30)  # the next window opens
    assert lines(caplog)[3:] == [
        "mqtt connect failed: suppressed=27 more (at most 3 logged per 60 s)",
        "mqtt connect failed attempt=30",
    ]
    assert log.suppressed == 0


def test_a_window_boundary_is_inclusive_and_quiet_when_nothing_was_held_back(limited, caplog):
    log, clock = limited
    for _ in range(3):
        log.log(logging.WARNING, "x")
    clock.now += 60.0
    assert log.log(logging.WARNING, "x")
    assert lines(caplog) == ["x"] * 4


def test_flush_tells_what_was_held_back_once(limited, caplog):
    log, _clock = limited
    for _ in range(5):
        log.log(logging.WARNING, "x")
    log.flush()
    log.flush()
    assert lines(caplog) == ["x", "x", "x", "mqtt connect failed: suppressed=2 more (at most 3 logged per 60 s)"]


def test_nonsense_limits_are_refused():
    with pytest.raises(ValueError, match="per_window"):
        RateLimitedLog(logging.getLogger("x"), "x", per_window=0, window_s=1.0, clock=FakeClock())
