"""The uplink against the reference platform server (a real subprocess) and a real outbox."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import devstack
import pytest
from daemon_outbox import DaemonOutbox
from uplink_hub import GATEWAY_ID, SECRET, T0, Hub, admin, blood_pressure, hub, run, until

from gateway.config.schema import PlatformSettings, setting_of
from gateway.errors import ConfigError
from gateway.store import NewRecord, Priority, records
from gateway.uplink import Uplink
from gateway.uplink.batch import build_body
from gateway.uplink.http import post
from gateway.uplink.signing import HmacSha256Signer


async def set_faults(url: str, **faults: Any) -> None:
    await asyncio.to_thread(admin, url, "/admin/faults", faults)


async def platform_records(url: str) -> dict[str, Any]:
    return await asyncio.to_thread(admin, url, "/admin/records")


def test_every_record_is_delivered_exactly_once(platform_factory: Callable[..., devstack.Platform],
                                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    platform = platform_factory()

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(7)], batch_max_records=3) as h:
            await h.settled(delivered=7)
            stored = await platform_records(platform.url)
            assert sorted(stored["record_ids"]) == sorted(h.ids)
            assert stored["upload_requests"] == 3
            assert h.uplink.status.consecutive_failures == 0
            assert h.uplink.status.last_success_at is not None
            # New records after a wake are sent without waiting for anything else.
            await h.outbox.intake.accept([blood_pressure(8)])
            h.uplink.wake()
            await h.settled(delivered=8)

    run(scenario())
    assert SECRET not in caplog.text
    assert "X-Signature" not in caplog.text


def test_records_the_platform_already_has_count_as_delivered(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()

    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        await outbox.intake.accept([blood_pressure(n) for n in range(3)])
        # An earlier try whose answer was lost: the platform has the records, the hub does not know.
        batch = await outbox.db.run(records.pending_batch(max_records=10, max_bytes=100_000))
        body = build_body([r.body_json for r in batch], "2026-11-22T10:15:00.120+08:00")
        path = f"/v1/gateways/{GATEWAY_ID}/records"
        headers = {"Content-Type": "application/json",
                   **HmacSha256Signer(GATEWAY_ID, SECRET.encode()).auth_headers(
                       path=path, timestamp_ms=round(time.time() * 1000), body=body)}
        first = await asyncio.to_thread(post, platform.url + path, body, headers, 5.0)
        assert first.status == 200
        await outbox.close()
        async with hub(tmp_path, platform.url, []) as h:
            await h.settled(delivered=3)
        assert (await platform_records(platform.url))["count"] == 3

    run(scenario())


def test_rejected_records_go_to_the_dead_letters(platform_factory: Callable[..., devstack.Platform],
                                                 tmp_path: Path) -> None:
    platform = platform_factory("--reject-type", "spo2")
    spo2 = NewRecord("spo2", Priority.READING, '{"type":"spo2","resident_id":"r-1","values":{"spo2":97}}', T0)

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(0), spo2, blood_pressure(1)]) as h:
            await h.settled(delivered=2, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert (dead.record_id, dead.type) == (h.ids[1], "spo2")
            assert dead.reason == "record type 'spo2' is not accepted by this platform"

    run(scenario())


def test_503_retry_after_is_honoured(platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory("--faults", "503:count=1,retry_after=1")

    async def scenario() -> None:
        # Backoff would wait up to 30 s here: delivery after about 1 s means Retry-After was used.
        async with hub(tmp_path, platform.url, [blood_pressure(0)], backoff_initial_s=30.0, backoff_cap_s=30.0) as h:
            started = time.monotonic()
            await until(lambda: _failed_once(h))
            assert h.uplink.status.last_error == "platform answered HTTP 503"
            assert h.uplink.status.next_attempt_at is not None
            await h.settled(delivered=1, timeout_s=5)
            assert 0.8 <= time.monotonic() - started <= 4.0
        assert (await platform_records(platform.url))["upload_requests"] == 2

    run(scenario())


async def _failed_once(h: Hub) -> bool:
    return h.uplink.status.consecutive_failures == 1


def test_429_without_retry_after_backs_off(platform_factory: Callable[..., devstack.Platform],
                                           tmp_path: Path) -> None:
    platform = platform_factory("--faults", "429:count=3")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(0)]) as h:
            await h.settled(delivered=1)
            assert h.uplink.status.consecutive_failures == 0
        assert (await platform_records(platform.url))["upload_requests"] == 4

    run(scenario())


def test_a_timed_out_request_is_retried_and_its_duplicates_count_as_delivered(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    platform = platform_factory("--faults", "timeout:count=1,delay_s=2")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(3)], timeout_s=0.4) as h:
            await h.settled(delivered=3)
        stored = await platform_records(platform.url)
        assert stored["count"] == 3
        assert stored["upload_requests"] == 2

    run(scenario())
    assert "error='no answer within 0.4 s' consecutive_failures=1" in caplog.text


def test_401_with_server_date_corrects_the_clock(platform_factory: Callable[..., devstack.Platform],
                                                 tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    platform = platform_factory("--clock-offset-s", "3600")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(0)], clock_synced=False) as h:
            await h.settled(delivered=1)
            assert h.uplink.status.server_clock_offset_s == pytest.approx(3600, abs=2)
            assert h.uplink.status.consecutive_failures == 0
        assert (await platform_records(platform.url))["upload_requests"] == 2

    run(scenario())
    assert "platform says our clock is off by 3600 s" in caplog.text


def test_repeated_401_backs_off_and_says_the_secret_is_wrong(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    platform = platform_factory()

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(0)], secret="the-wrong-secret") as h:
            await until(lambda: _failed_at_least(h, 3))
            stats = await h.stats()
            assert (stats.pending, stats.delivered) == (1, 0)
            assert h.uplink.status.server_clock_offset_s == 0.0   # the clocks agree: nothing to correct

    run(scenario())
    assert "the gateway secret or gateway id is wrong" in caplog.text
    assert "the-wrong-secret" not in caplog.text


async def _failed_at_least(h: Hub, failures: int) -> bool:
    return h.uplink.status.consecutive_failures >= failures


def test_400_split_isolates_the_one_bad_record(platform_factory: Callable[..., devstack.Platform],
                                               tmp_path: Path) -> None:
    platform = platform_factory()
    offered = [blood_pressure(n) for n in range(6)]
    offered[4] = blood_pressure(4, values="not an object")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, offered) as h:
            await h.settled(delivered=5, dead=1)
            [dead] = await h.outbox.db.run(records.dead_letters())
            assert dead.record_id == h.ids[4]
            assert dead.reason == 'HTTP 400: {"error": "records[0].values must be a JSON dict"}'
        assert sorted((await platform_records(platform.url))["record_ids"]) == sorted(h.ids[:4] + h.ids[5:])

    run(scenario())


def test_a_lone_400_record_is_not_dead_lettered_on_that_evidence_alone(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(0, values=[1])]) as h:
            await until(lambda: _failed_at_least(h, 2))
            assert (await h.stats()).dead == 0
            assert "refused every request of the batch" in (h.uplink.status.last_error or "")
            # Once it travels with good records, the split shows which one is bad.
            await h.outbox.intake.accept([blood_pressure(1)])
            await h.settled(delivered=1, dead=1)

    run(scenario())


def test_413_splits_the_batch(platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory("--max-records", "2")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(5)], batch_max_records=5) as h:
            await h.settled(delivered=5)
        assert (await platform_records(platform.url))["count"] == 5

    run(scenario())


def test_nonsense_answers_mark_nothing_delivered(platform_factory: Callable[..., devstack.Platform],
                                                 tmp_path: Path) -> None:
    platform = platform_factory("--faults", "nonsense")

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(3)]) as h:
            await until(lambda: _failed_at_least(h, 5))
            stats = await h.stats()
            assert (stats.pending, stats.delivered, stats.dead) == (3, 0, 0)
            assert "platform answer is not usable" in (h.uplink.status.last_error or "")
            await set_faults(platform.url, mode="down", count=2)
            await until(lambda: _failed_at_least(h, 7))
            assert (await h.stats()).delivered == 0
            await set_faults(platform.url, mode="ok")
            await h.settled(delivered=3)

    run(scenario())


def test_connection_refused_then_the_platform_comes_up(platform_factory: Callable[..., devstack.Platform],
                                                       tmp_path: Path) -> None:
    port = devstack.free_port()

    async def scenario() -> None:
        async with hub(tmp_path, f"http://127.0.0.1:{port}", [blood_pressure(n) for n in range(2)]) as h:
            await until(lambda: _failed_at_least(h, 3))
            assert "ConnectionRefusedError" in (h.uplink.status.last_error or "")
            platform = await asyncio.to_thread(platform_factory, port=port)
            await h.settled(delivered=2)
            assert (await platform_records(platform.url))["count"] == 2

    run(scenario())


def _signed_request(body: bytes, timestamp_ms: int) -> tuple[str, dict[str, str]]:
    path = f"/v1/gateways/{GATEWAY_ID}/records"
    headers = {"Content-Type": "application/json",
               **HmacSha256Signer(GATEWAY_ID, SECRET.encode()).auth_headers(path=path, timestamp_ms=timestamp_ms,
                                                                            body=body)}
    return path, headers


def test_the_platform_refuses_replays_stale_timestamps_and_stores_what_it_accepts(
        platform_factory: Callable[..., devstack.Platform]) -> None:
    platform = platform_factory()
    record = blood_pressure(0).payload_json.replace("{", '{"record_id":"0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a69",', 1)
    body = build_body([record], "2026-11-22T10:15:00.120+08:00")
    now_ms = round(time.time() * 1000)

    path, headers = _signed_request(body, now_ms)
    assert post(platform.url + path, body, headers, 5.0).status == 200
    replay = post(platform.url + path, body, headers, 5.0)
    assert (replay.status, json.loads(replay.body)) == (401, {"error": "nonce already used"})

    path, headers = _signed_request(body, now_ms - 301_000)
    stale = post(platform.url + path, body, headers, 5.0)
    assert (stale.status, json.loads(stale.body)) == (401, {"error": "X-Timestamp more than 300 s from server time"})
    assert "date" in stale.headers

    path, headers = _signed_request(body, now_ms)
    headers["X-Signature"] = "0" * 64
    assert post(platform.url + path, body, headers, 5.0).status == 401

    with contextlib.closing(sqlite3.connect(platform.db)) as db:
        rows = db.execute("SELECT record_id, gateway_id, type, body FROM records").fetchall()
    assert [(r[0], r[1], r[2], json.loads(r[3])) for r in rows] == [
        ("0f5b2c1e-7c1d-4a53-9d1a-2d1f3c4b5a69", GATEWAY_ID, "blood_pressure", json.loads(record))]


def test_bad_uplink_settings_are_refused_by_name() -> None:
    with pytest.raises(ConfigError) as info:
        Uplink(gateway_id="gw 1/..", base_url="ftp://platform", secret=b"x", outbox=None,  # type: ignore[arg-type]
               clock_synced=lambda: True, batch_max_records=501, batch_max_bytes=2_000_000)
    assert info.value.problems == [
        "gateway_id 'gw 1/..': use the id the platform issued (1-64 letters, digits, '.', '_', '-')",
        "base_url 'ftp://platform': give the platform's http:// or https:// address without query",
        "batch_max_records 501: must be 1..500 (as platform.batch_max_records in the configuration)",
        "batch_max_bytes 2000000: must be 1024..1048576 (as platform.batch_max_bytes in the configuration)",
    ]


@pytest.mark.parametrize("name", ["batch_max_records", "batch_max_bytes"])
def test_the_uplink_accepts_exactly_the_range_the_configuration_documents(name: str) -> None:
    [field] = [f for f in dataclasses.fields(PlatformSettings) if f.name == name]
    documented = setting_of(field)
    assert documented.minimum is not None
    assert documented.maximum is not None
    low, high = int(documented.minimum), int(documented.maximum)

    def refused(value: int) -> bool:
        try:
            Uplink(gateway_id=GATEWAY_ID, base_url="http://platform", secret=b"x", outbox=None,  # type: ignore[arg-type]
                   clock_synced=lambda: True, **{name: value})
        except ConfigError:
            return True
        return False

    assert [refused(v) for v in (low - 1, low, high, high + 1)] == [True, False, False, True]


def test_the_documented_largest_batch_fills_a_request_to_the_platforms_mib(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    platform = platform_factory()
    record_bytes = 4096   # 256 of them are exactly 1 MiB of records: the envelope would not fit around them

    def sized(n: int) -> NewRecord:
        record = blood_pressure(n, device={"id": f"ble:{n:03d}", "model": "", "transport": "ble"})
        stored_overhead = len('"record_id":"",') + 36   # what the outbox splices in (a UUID)
        padding = record_bytes - stored_overhead - len(record.payload_json)
        return blood_pressure(n, device={"id": f"ble:{n:03d}", "model": "x" * padding, "transport": "ble"})

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [sized(n) for n in range(510)], batch_max_bytes=1_048_576) as h:
            [first] = await h.outbox.db.run(records.pending_batch(max_records=1, max_bytes=1))
            assert len(first.body_json.encode()) == record_bytes
            await h.settled(delivered=510)
            assert h.uplink.status.consecutive_failures == 0
        # 255 records a request, each body within the 1 MiB: no request refused, no split.
        assert (await platform_records(platform.url))["upload_requests"] == 2

    run(scenario())


def test_delivered_marks_wait_for_mark_after_s_then_go_in_one_transaction(
        platform_factory: Callable[..., devstack.Platform], tmp_path: Path) -> None:
    """An SD card lasts longer with fewer small commits: what the platform took is written delivered
    once the first of it has waited mark_after_s, not after every upload (clock under the test's control)."""
    platform = platform_factory()
    clock = [1000.0]

    async def scenario() -> None:
        async with hub(tmp_path, platform.url, [blood_pressure(n) for n in range(3)], mark_after_s=300.0,
                       monotonic=lambda: clock[0]) as h:
            async def at_platform() -> bool:
                return (await platform_records(platform.url))["count"] == 3 and \
                    h.uplink.status.delivered_unmarked == 3

            await until(at_platform)
            await asyncio.sleep(0.3)  # several idle polls (0.05 s): none marks before its time
            stats = await h.stats()
            assert (stats.pending, stats.delivered) == (3, 0)
            # More records meanwhile: uploaded, left out of what is read again, marked with the first.
            clock[0] += 200.0
            await h.outbox.intake.accept([blood_pressure(3)])
            h.uplink.wake()

            async def four_at_platform() -> bool:
                return h.uplink.status.delivered_unmarked == 4

            await until(four_at_platform)
            assert (await platform_records(platform.url))["upload_requests"] == 2  # nothing sent twice
            clock[0] += 100.0
            await h.settled(delivered=4)
            assert h.uplink.status.delivered_unmarked == 0

    run(scenario())
