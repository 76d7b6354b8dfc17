import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.uplink.backoff import (
    RETRY_AFTER_MAX_S,
    backoff_delay,
    parse_http_date,
    parse_retry_after,
    server_clock_offset,
)

NOW = datetime(2026, 11, 22, 2, 15, 0, tzinfo=UTC)


@settings(deadline=None, max_examples=200)
@given(attempt=st.integers(min_value=1, max_value=10_000), seed=st.integers(min_value=0, max_value=2**32))
def test_backoff_stays_within_the_exponential_ceiling_and_the_cap(attempt: int, seed: int) -> None:
    delay = backoff_delay(attempt, initial=1.0, cap=300.0, rng=random.Random(seed))
    assert 0.0 <= delay <= min(300.0, 2.0 ** min(attempt - 1, 20))


def test_backoff_grows_then_caps() -> None:
    # Averages over many draws: full jitter has mean ceiling / 2.
    def mean(attempt: int) -> float:
        rng = random.Random(7)
        return sum(backoff_delay(attempt, initial=1.0, cap=300.0, rng=rng) for _ in range(2000)) / 2000

    assert mean(1) == pytest.approx(0.5, abs=0.05)
    assert mean(4) == pytest.approx(4.0, abs=0.4)
    assert mean(40) == pytest.approx(150.0, abs=15)


def test_backoff_refuses_nonsense_arguments() -> None:
    with pytest.raises(ValueError, match="attempt must be 1 or more"):
        backoff_delay(0, rng=random.Random(1))
    with pytest.raises(ValueError, match="initial <= cap"):
        backoff_delay(1, initial=10.0, cap=1.0, rng=random.Random(1))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 0 ", 0.0),
        ("Sun, 22 Nov 2026 02:15:30 GMT", 30.0),
        ("Sun, 22 Nov 2026 02:14:00 GMT", 0.0),   # already past: retry now
        ("86400", RETRY_AFTER_MAX_S),
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_seconds_or_http_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_http_date_and_server_clock_offset() -> None:
    assert parse_http_date("Sun, 22 Nov 2026 02:15:00 GMT") == NOW
    assert parse_http_date("yesterday") is None
    assert server_clock_offset("Sun, 22 Nov 2026 02:25:00 GMT", NOW) == 600.5  # mid-second of the Date
    assert server_clock_offset(None, NOW) is None
    assert server_clock_offset("garbage", NOW) is None
