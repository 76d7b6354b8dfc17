"""The uplink against a hostile reference platform (a real subprocess): 400 or 413 to everything,
one bad record in a full batch, a body limit below the contract's. Requests are counted at the platform.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import devstack
import pytest
from uplink_hub import Hub, admin, blood_pressure, hub, run, until

from gateway.cli import render_status
from gateway.status_publisher import uplink_status
from gateway.store import records
from gateway.uplink.pacing import ERROR_BURST_REQUESTS, ERROR_REQUESTS_PER_MINUTE
from gateway.uplink.splitting import split_budget


class LongestBackoff(random.Random):
    """Full jitter always drawing its ceiling: the backoff the test configured, exactly."""

    def uniform(self, a: float, b: float) -> float:
        return b


async def platform_counts(url: str) -> dict[str, Any]:
    return await asyncio.to_thread(admin, url, "/admin/records")


async def requests_at(url: str) -> int:
    counts = await platform_counts(url)
    return int(counts["upload_requests"])


async def burst_spent(url: str) -> bool:
    return await requests_at(url) >= ERROR_BURST_REQUESTS


def requests_allowed(seconds: float) -> float:
    """What the error throttle lets through in ``seconds`` after its burst: rate, plus one for the edges."""
    return seconds * ERROR_REQUESTS_PER_MINUTE / 60.0 + 1


@pytest.mark.parametrize(("fault", "reason"), [("400", "HTTP 400"), ("413", "too large for the platform: HTTP 413")])
def test_a_platform_refusing_everything_gets_a_bounded_trickle_and_nobody_is_dead_lettered(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path, fault: str, reason: str) -> None:
    platform = platform_factory("--faults", fault)
    window_s = 1.5

    async def scenario() -> None:
        started = time.monotonic()
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(100)]) as h:
            # The first round's splits and a few backed-off rounds spend the burst; then the throttle holds.
            await until(lambda: burst_spent(platform.url))
            before = await requests_at(platform.url)
            assert before <= ERROR_BURST_REQUESTS + requests_allowed(time.monotonic() - started)
            await asyncio.sleep(window_s)   # the measuring window (the assertion is the count, not the sleep)
            during = await requests_at(platform.url) - before
            assert during <= requests_allowed(window_s), f"{during} requests in {window_s} s"
            stats = await h.stats()
            assert (stats.pending, stats.delivered, stats.dead) == (100, 0, 0)
            status = h.uplink.status
            assert status.throttled
            assert uplink_status(h.uplink)["throttled"] is True
            assert status.consecutive_failures >= 1
            assert f"platform refused every request of the batch ({reason}" in (status.last_error or "")
            if fault == "413":
                # It learned that not even two records go through; a single one is tried, never dead-lettered.
                assert status.batch_max_records == 1
                assert status.batch_max_bytes < 1000

    run(scenario())


def test_one_round_against_400_to_everything_spends_its_split_budget_then_backs_off(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory("--faults", "400")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(100)],
                       backoff_initial_s=30.0, backoff_cap_s=30.0, rng=LongestBackoff()) as h:
            await until(lambda: _failed_rounds(h, 1))
            # 16 requests for 100 records (was 199: every record alone), then a 30 s wait.
            assert await requests_at(platform.url) == split_budget(100) == 16
            next_attempt = h.uplink.status.next_attempt_at
            assert next_attempt is not None
            assert next_attempt.timestamp() - time.time() > 25

    run(scenario())


def test_clean_rounds_go_back_to_back(platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(9)], batch_max_records=3,
                       backoff_initial_s=30.0, backoff_cap_s=30.0, rng=LongestBackoff()) as h:
            await h.settled(delivered=9, timeout_s=5)   # a 30 s wait between rounds would miss this
        assert await requests_at(platform.url) == 3

    run(scenario())


def test_one_bad_record_among_500_is_dead_lettered_with_the_platforms_reason_and_499_delivered(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()
    offered = [blood_pressure(n) for n in range(500)]
    offered[317] = blood_pressure(317, values="not an object")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, offered) as h:
            await h.settled(delivered=499, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert dead.record_id == h.ids[317]
            assert dead.reason == 'HTTP 400: {"error": "records[0].values must be a JSON dict"}'
            counts = await platform_counts(platform.url)
            assert sorted(counts["record_ids"]) == sorted(h.ids[:317] + h.ids[318:])
            # One bisection: down to the record (10 requests), and each sibling on the way back (9).
            assert counts["upload_requests"] <= 2 * math.ceil(math.log2(500)) + 1
            # Nothing is left pending, so nothing is failing: the status says so.
            await until(lambda: _failed_rounds(h, 0))
            assert not h.uplink.status.throttled

    run(scenario())


def test_413_above_a_size_settles_on_a_smaller_batch_and_loses_nothing(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    max_bytes = 20_000   # a proxy in front of the platform, far below the contract's 1 MiB
    platform = platform_factory("--faults", f"413:max_bytes={max_bytes}")
    offered = [blood_pressure(n) for n in range(200)]   # ~90 kB of records

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, offered) as h:
            await h.settled(delivered=200)
            status = h.uplink.status
            assert status.batch_max_records < 200
            assert status.batch_max_bytes < max_bytes
            learned = (status.batch_max_records, status.batch_max_bytes)
            refused = (await platform_counts(platform.url))["upload_answers"]["413"]
            # What comes later goes through at the learned size: no more 413.
            more = [blood_pressure(n) for n in range(200, 400)]
            await h.outbox.intake.accept(more)
            h.uplink.wake()
            await h.settled(delivered=400)
            counts = await platform_counts(platform.url)
            assert counts["upload_answers"]["413"] == refused
            assert counts["count"] == 400
            assert (h.uplink.status.batch_max_records, h.uplink.status.batch_max_bytes) == learned
            # What the technician sees (`yiyang status`, the retained MQTT status).
            published = uplink_status(h.uplink)
            assert (published["batch_max_records"], published["batch_max_bytes"]) == learned
            assert f"batch <= {learned[0]} records / {learned[1]} bytes" in render_status({"uplink": published})
            assert (await h.stats()).dead == 0

    run(scenario())


async def _failed_rounds(h: Hub, rounds: int) -> bool:
    return h.uplink.status.consecutive_failures == rounds


def test_one_oversized_record_is_dead_lettered_as_too_large_and_the_batch_size_survives_it(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory("--faults", "413:max_bytes=200000")
    offered = [blood_pressure(n) for n in range(100)]
    offered[70] = blood_pressure(70, device={"id": "ble:70", "model": "x" * 300_000, "transport": "ble"})

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, offered) as h:
            await h.settled(delivered=99, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert dead.record_id == h.ids[70]
            assert dead.reason == ('too large for the platform: HTTP 413: '
                                   '{"error": "body over 200000 bytes after decompression"}')
            # The split walked down to the big record through ever smaller refused parts; the limit
            # follows what went through (half the batch), not those parts (which would end at one record).
            assert h.uplink.status.batch_max_records == 50

    run(scenario())


def test_one_record_per_request_still_tells_a_bad_record_from_a_bad_platform(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()
    # The bad record is first in line; alone in its request it is no evidence of anything, and it
    # must not hold up the records behind it for ever.
    offered = [blood_pressure(0, values=[1]), blood_pressure(1), blood_pressure(2)]

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, offered, batch_max_records=1) as h:
            await h.settled(delivered=2, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert dead.record_id == h.ids[0]
            assert dead.reason == 'HTTP 400: {"error": "records[0].values must be a JSON dict"}'
        # Never more than one record a request, as configured.
        assert (await platform_counts(platform.url))["upload_answers"] == {"400": 1, "200": 2}

    run(scenario())
