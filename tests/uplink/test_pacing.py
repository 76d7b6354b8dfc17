"""The uplink's pacing, splitting and learned batch limit, pure, on a clock the test moves."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from gateway.uplink.batch_limit import GROWTH_AFTER_CLEAN_ROUNDS, GROWTH_AFTER_S, BatchSize, LearnedLimit
from gateway.uplink.pacing import ERROR_BURST_REQUESTS, ERROR_REQUESTS_PER_MINUTE, ErrorThrottle, ThrottleSettings
from gateway.uplink.splitting import Bisection, split_budget


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def greedy_requests(throttle: ErrorThrottle, clock: FakeClock, window_s: float) -> int:
    """Requests a client that sends whenever allowed gets through in ``window_s`` of fake time."""
    end, sent = clock.now + window_s, 0
    while True:
        wait = throttle.wait_s()
        if clock.now + wait > end:
            return sent
        clock.advance(wait)
        throttle.spend()
        sent += 1


# --- the error throttle -------------------------------------------------------------------------------


def test_a_healthy_uplink_is_never_held_back() -> None:
    clock = FakeClock()
    throttle = ErrorThrottle(clock)
    for _ in range(10_000):
        assert throttle.wait_s() == 0.0
        throttle.spend()


def test_while_errors_last_requests_are_bounded_by_burst_plus_rate() -> None:
    clock = FakeClock()
    throttle = ErrorThrottle(clock)
    throttle.engage()
    assert greedy_requests(throttle, clock, 0.0) == ERROR_BURST_REQUESTS   # the burst goes at once
    assert throttle.wait_s() == pytest.approx(60.0 / ERROR_REQUESTS_PER_MINUTE)
    clock.advance(60.0 / ERROR_REQUESTS_PER_MINUTE)
    assert throttle.wait_s() == 0.0
    throttle.spend()
    # Ten minutes of a platform refusing everything: the sustained rate and nothing more.
    assert greedy_requests(throttle, clock, 600.0) == pytest.approx(10 * ERROR_REQUESTS_PER_MINUTE, abs=1)


def test_the_bound_holds_for_other_settings() -> None:
    clock = FakeClock()
    throttle = ErrorThrottle(clock, ThrottleSettings(requests_per_minute=6, burst=3))
    throttle.engage()
    assert greedy_requests(throttle, clock, 60.0) == 3 + 6


def test_a_flapping_platform_does_not_get_a_fresh_burst_each_time() -> None:
    clock = FakeClock()
    throttle = ErrorThrottle(clock)
    throttle.engage()
    greedy_requests(throttle, clock, 0.0)
    throttle.release()            # one clean round ...
    assert throttle.wait_s() == 0.0
    for _ in range(100):          # ... whose requests are not counted
        throttle.spend()
    clock.advance(1.0)
    throttle.engage()             # and the next error finds the bucket still nearly empty
    assert throttle.wait_s() > 0.0


def test_a_long_healthy_spell_refills_the_burst() -> None:
    clock = FakeClock()
    throttle = ErrorThrottle(clock)
    throttle.engage()
    greedy_requests(throttle, clock, 0.0)
    throttle.release()
    clock.advance(ERROR_BURST_REQUESTS * 60.0 / ERROR_REQUESTS_PER_MINUTE)
    throttle.engage()
    assert greedy_requests(throttle, clock, 0.0) == ERROR_BURST_REQUESTS


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="requests_per_minute"):
        ThrottleSettings(requests_per_minute=0)
    with pytest.raises(ValueError, match="burst"):
        ThrottleSettings(burst=0)


# --- splitting ----------------------------------------------------------------------------------------


@dataclass
class RoundResult:
    requests: int = 0
    delivered: list[int] = field(default_factory=list)
    suspects: list[int] = field(default_factory=list)
    unsent: list[int] = field(default_factory=list)


def split_round(items: Sequence[int], refuses: Callable[[Sequence[int]], bool]) -> RoundResult:
    """One round as the uplink runs it, against a platform that ``refuses`` some parts as a whole."""
    result = RoundResult()
    bisection = Bisection([items], split_budget(len(items)))
    while (part := bisection.next_part()) is not None:
        result.requests += 1
        if not refuses(part):
            result.delivered.extend(part)
        elif len(part) == 1:
            result.suspects.extend(part)
        else:
            bisection.split(part)
    result.unsent = bisection.unsent()
    return result


@pytest.mark.parametrize(("records", "budget"), [(1, 2), (2, 4), (3, 6), (4, 6), (5, 8), (100, 16), (500, 20)])
def test_the_split_budget_is_twice_the_depth_plus_two(records: int, budget: int) -> None:
    assert split_budget(records) == budget == 2 * math.ceil(math.log2(records)) + 2


@pytest.mark.parametrize("records", [1, 2, 3, 7, 64, 100, 500])
def test_one_bad_record_is_always_isolated_in_one_round_and_the_rest_delivered(records: int) -> None:
    items = list(range(records))
    for bad in items:
        result = split_round(items, lambda part, bad=bad: bad in part)
        assert result.suspects == [bad]
        assert sorted(result.delivered) == [i for i in items if i != bad]
        assert result.unsent == []
        assert result.requests <= 2 * math.ceil(math.log2(records)) + 1 < split_budget(records)


@pytest.mark.parametrize("records", [1, 2, 9, 500])
def test_a_platform_refusing_everything_gets_the_budget_and_no_more(records: int) -> None:
    result = split_round(list(range(records)), lambda part: True)
    assert result.requests == min(split_budget(records), 2 * records - 1)   # a tree of n leaves has 2n-1 parts
    assert result.delivered == []
    assert len(result.suspects) + len(result.unsent) == records
    assert split_round(list(range(500)), lambda part: True).requests == 20     # was 999


def test_several_bad_records_are_found_over_rounds_and_nothing_is_lost() -> None:
    bad = {3, 4, 250, 499}
    pending = list(range(500))
    rounds, dead, delivered = 0, set(), set()
    while pending:
        rounds += 1
        result = split_round(pending, lambda part: bool(bad & set(part)))
        assert result.requests <= split_budget(len(pending))
        assert set(result.suspects) <= bad
        dead |= set(result.suspects)
        delivered |= set(result.delivered)
        pending = [i for i in pending if i not in dead and i not in delivered]
    assert dead == bad
    assert delivered == set(range(500)) - bad
    assert rounds <= len(bad)


def test_unsent_parts_keep_their_order() -> None:
    bisection = Bisection([list(range(8)), [8, 9]], budget=2)
    first = bisection.next_part()
    assert first is not None
    bisection.split(first)
    assert bisection.next_part() == [0, 1, 2, 3]
    assert bisection.next_part() is None   # budget spent
    assert bisection.unsent() == [4, 5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="single"):
        bisection.split([1])


# --- the learned batch limit ----------------------------------------------------------------------------

CONFIGURED = BatchSize(records=500, record_bytes=1_000_000)
T = 5000.0   # monotonic seconds


def after_413(limit: LearnedLimit, too_large: list[BatchSize], went_through: list[BatchSize],
              now: float = T) -> LearnedLimit:
    return limit.after_round(too_large=too_large, went_through=went_through, clean=False, now=now)


def test_413_settles_on_the_largest_request_that_went_through() -> None:
    limit = LearnedLimit.start(CONFIGURED)
    # A proxy refusing bodies over ~60 kB: 500 and 250 records refused, 125 went through.
    limit = after_413(limit, [BatchSize(500, 200_000), BatchSize(250, 100_000), BatchSize(250, 100_000)],
                      [BatchSize(125, 50_000), BatchSize(125, 50_000), BatchSize(124, 49_000)])
    assert limit.current == BatchSize(125, 50_000)
    assert limit.changed_at == T
    # Later evidence never raises it.
    assert after_413(limit, [BatchSize(125, 50_000)], [BatchSize(400, 900_000)]).current == BatchSize(125, 50_000)


def test_413_to_everything_halves_the_smallest_request_refused() -> None:
    limit = after_413(LearnedLimit.start(CONFIGURED), [BatchSize(500, 200_000), BatchSize(250, 100_000),
                                                       BatchSize(2, 800), BatchSize(1, 400)], [])
    assert limit.current == BatchSize(1, 400)


def test_one_oversized_record_does_not_drive_the_limit_to_one_record() -> None:
    # The split walks down to the big record: every part holding it is refused, its siblings go through.
    big = 900_000
    refused = [BatchSize(n, big + 400 * (n - 1)) for n in (500, 250, 125, 63, 32, 16, 8, 4, 2, 1)]
    went = [BatchSize(n, 400 * n) for n in (250, 125, 62, 31, 16, 8, 4, 2, 1)]
    limit = after_413(LearnedLimit.start(CONFIGURED), refused, went)
    assert limit.current == BatchSize(250, 100_000)


def test_a_single_record_refused_is_that_record_not_the_batch_size() -> None:
    limit = after_413(LearnedLimit.start(CONFIGURED), [BatchSize(1, 2_000_000)], [BatchSize(3, 1200)])
    assert limit.current == CONFIGURED


def clean_rounds(limit: LearnedLimit, rounds: int, clock: FakeClock, every_s: float) -> LearnedLimit:
    for _ in range(rounds):
        clock.advance(every_s)
        limit = limit.after_round(too_large=[], went_through=[limit.current], clean=True, now=clock.now)
    return limit


def test_the_limit_creeps_back_after_sustained_clean_rounds_and_stops_at_the_configuration() -> None:
    clock = FakeClock(T)
    limit = after_413(LearnedLimit.start(CONFIGURED), [BatchSize(500, 1_000_000)], [], now=clock.now)
    assert limit.current == BatchSize(250, 500_000)
    # Rounds alone are not enough: a busy hub makes 16 rounds in a second.
    limit = clean_rounds(limit, 1000, clock, every_s=0.05)
    assert limit.current == BatchSize(250, 500_000)
    # Time alone is not enough either: an idle hub has no evidence.
    clock.advance(GROWTH_AFTER_S)
    limit = limit.after_round(too_large=[], went_through=[], clean=False, now=clock.now)   # an error: count again
    limit = clean_rounds(limit, GROWTH_AFTER_CLEAN_ROUNDS - 1, clock, every_s=0.05)
    assert limit.current == BatchSize(250, 500_000)
    limit = clean_rounds(limit, 1, clock, every_s=0.05)
    assert limit.current == CONFIGURED
    assert not limit.lowered
    assert clean_rounds(limit, 1, clock, every_s=0.05) == limit


def test_a_platform_with_a_smaller_limit_is_probed_once_per_growth_period() -> None:
    # A proxy takes at most 60 records; the hub drains a backlog at 20 rounds a second for an hour.
    clock = FakeClock(T)
    limit, refused_probes = LearnedLimit.start(CONFIGURED), 0
    for _ in range(20 * (3600 + 30)):
        clock.advance(0.05)
        size = limit.current
        if size.records > 60:
            refused_probes += 1
            half = BatchSize(size.records // 2, size.record_bytes // 2)
            went = [half] if half.records <= 60 else []
            limit = after_413(limit, [size], went, now=clock.now)
        else:
            limit = limit.after_round(too_large=[], went_through=[size], clean=True, now=clock.now)
        assert limit.current.records >= 31
    # Down to 31 records in four rounds (500, 250, 125, 62 refused), then one refused probe every ten minutes.
    assert refused_probes == 4 + int(3600 // GROWTH_AFTER_S)
