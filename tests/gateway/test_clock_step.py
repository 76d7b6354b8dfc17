"""A Pi without RTC: its clock steps when network time arrives; what was stamped before is corrected.

The hub clock here is a :class:`SystemClock` on sources the test controls (wall, monotonic, the
kernel's sync state); the outbox is a real SQLite file.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from daemon_outbox import DaemonOutbox
from pi_clock import EPOCH, STEP, TRUE_BOOT, PiClock, reading

from drivers.model import TimeSource
from gateway.clock import PLAUSIBLE_FROM, StepDetector
from gateway.clock_watch import correction_for
from gateway.errors import StoreError
from gateway.store import records
from gateway.store.retime import estimated, shifted
from gateway.wire import compact


async def uploadable(outbox: DaemonOutbox, held_before: datetime | None = None) -> list[dict[str, Any]]:
    """What the uplink would send now (holding back, as the daemon does, records dated before ``held_before``)."""
    pending = await outbox.db.run(records.pending_batch(max_records=100, held_before=held_before))
    return [json.loads(r.body_json) for r in pending]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- the pieces, pure ----------------------------------------------------------------------------

def test_the_detector_sees_a_step_and_not_the_slow_slew_of_ntp() -> None:
    detector = StepDetector()
    assert detector.observe(1000.0, 10.0) is None          # the first look is the reference
    assert detector.observe(1010.0005, 20.0) is None       # 50 ppm of slew between two looks: no step
    assert detector.observe(5010.0, 30.0) == pytest.approx(3990.0, abs=0.01)
    assert detector.observe(5020.0, 40.0) is None          # the new clock is the reference now
    assert detector.observe(4000.0, 50.0) == pytest.approx(-1030.0, abs=0.01)  # a clock set back


def test_a_shift_moves_hub_times_keeps_the_offset_and_marks_the_record() -> None:
    record = compact({"measured_at": "1970-01-01T08:00:10.000+08:00", "received_at": "1970-01-01T08:00:10.250+08:00",
                      "time_source": "hub_unsynced", "values": {}})
    moved = json.loads(shifted(record, timedelta(seconds=STEP), synced=True))
    assert moved["measured_at"] == "2026-11-30T09:00:10.000+08:00"
    assert moved["received_at"] == "2026-11-30T09:00:10.250+08:00"
    assert moved["time_source"] == TimeSource.HUB_CORRECTED.value
    # A step to a clock still unsynchronised (fake-hwclock restoring its file) moves it, not "corrected".
    assert json.loads(shifted(record, timedelta(days=3), synced=False))["time_source"] == "hub_unsynced"


def test_a_device_stamped_measurement_keeps_its_time_and_only_the_receipt_moves() -> None:
    record = compact({"measured_at": "2026-11-30T08:55:00.000+08:00", "received_at": "1970-01-01T08:00:10.000+08:00",
                      "time_source": "device", "values": {}})
    moved = json.loads(shifted(record, timedelta(seconds=STEP), synced=True))
    assert moved["measured_at"] == "2026-11-30T08:55:00.000+08:00"
    assert moved["received_at"] == "2026-11-30T09:00:10.000+08:00"
    assert moved["time_source"] == "device"


def test_an_estimate_gives_the_latest_possible_time_and_says_so() -> None:
    record = compact({"measured_at": "1970-01-01T08:00:10.000+08:00", "received_at": "1970-01-01T08:00:10.000+08:00",
                      "time_source": "hub_unsynced", "values": {}})
    moved = json.loads(estimated(record, TRUE_BOOT))
    assert moved["measured_at"] == moved["received_at"] == "2026-11-30T09:00:00.000+08:00"
    assert moved["time_source"] == TimeSource.HUB_ESTIMATED.value


def test_a_record_whose_times_cannot_be_read_is_a_clear_store_error() -> None:
    with pytest.raises(StoreError, match="received_at"):
        shifted(compact({"time_source": "hub_unsynced"}), timedelta(seconds=1), synced=True)


# -- the outbox ------------------------------------------------------------------------------------

def test_records_stamped_at_1970_wait_and_reach_the_uplink_corrected_after_ntp(tmp_path: Path) -> None:
    pi = PiClock()
    clock = pi.system_clock()

    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        watch = await pi.watch(clock, outbox)
        before = []
        for n in range(3):
            pi.advance(60.0)
            at = clock.now()
            before.append(at)
            await outbox.intake.accept([reading(at, clock.stamp(at), n)])
        # Dated 1970: the uplink does not see them (they would reach the platform in the wrong year).
        assert await uploadable(outbox, PLAUSIBLE_FROM) == []
        assert (await outbox.db.stats()).pending == 3

        pi.advance(5.0)
        pi.ntp_arrives()
        await watch.check_once()

        records = await uploadable(outbox, PLAUSIBLE_FROM)
        assert len(records) == 3
        for record, at in zip(records, before, strict=True):
            assert record["time_source"] == "hub_corrected"
            expected = TRUE_BOOT + timedelta(seconds=at.monotonic)
            assert when(record["measured_at"]) == expected
            assert when(record["received_at"]) == expected
        assert watch.last_step is not None and watch.last_step.corrected == 3
        assert watch.last_step.delta_s == pytest.approx(STEP)

        # After the step: stamped on a synchronised clock, no correction, no stamp.
        pi.advance(60.0)
        at = clock.now()
        assert clock.stamp(at) is None
        await outbox.intake.accept([reading(at, clock.stamp(at), 9, time_source="hub")])
        latest = (await uploadable(outbox, PLAUSIBLE_FROM))[-1]
        assert latest["time_source"] == "hub" and when(latest["measured_at"]) == at.wall
        await outbox.close()

    asyncio.run(scenario())


def test_a_record_stamped_before_the_step_but_stored_after_it_is_corrected_on_the_way_in(tmp_path: Path) -> None:
    pi = PiClock()
    clock = pi.system_clock()

    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        watch = await pi.watch(clock, outbox)
        pi.advance(30.0)
        received = clock.now()   # a meter's record, received now, stored after a long download
        pi.advance(2.0)
        pi.ntp_arrives()
        await watch.check_once()
        await outbox.intake.accept([reading(received, clock.stamp(received))])
        (record,) = await uploadable(outbox)
        assert record["time_source"] == "hub_corrected"
        assert when(record["received_at"]) == TRUE_BOOT + timedelta(seconds=received.monotonic)
        await outbox.close()

    asyncio.run(scenario())


def test_fake_hwclock_then_ntp_two_steps_each_applied_once(tmp_path: Path) -> None:
    pi = PiClock()
    clock = pi.system_clock()

    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        watch = await pi.watch(clock, outbox)
        pi.advance(20.0)
        at = clock.now()
        await outbox.intake.accept([reading(at, clock.stamp(at))])
        # fake-hwclock restores the time saved at the last shutdown (three days behind): still unsynced.
        pi.advance(1.0)
        pi.wall_offset_s = (TRUE_BOOT - timedelta(days=3) - EPOCH).total_seconds()
        await watch.check_once()
        (record,) = await uploadable(outbox)
        assert record["time_source"] == "hub_unsynced"
        assert when(record["measured_at"]) == TRUE_BOOT - timedelta(days=3) + timedelta(seconds=at.monotonic)
        # Then network time, days later on the monotonic clock.
        pi.advance(2 * 86400.0)
        pi.ntp_arrives()
        await watch.check_once()
        (record,) = await uploadable(outbox)
        assert record["time_source"] == "hub_corrected"
        assert when(record["measured_at"]) == TRUE_BOOT + timedelta(seconds=at.monotonic)
        await outbox.close()

    asyncio.run(scenario())


def test_a_step_while_the_gateway_was_stopped_is_seen_at_the_next_start(tmp_path: Path) -> None:
    pi = PiClock()

    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        first = pi.system_clock()
        watch = await pi.watch(first, outbox)
        await watch.check_once()
        pi.advance(40.0)
        at = first.now()
        await outbox.intake.accept([reading(at, first.stamp(at))])
        await outbox.close()

        pi.advance(10.0)
        pi.ntp_arrives()        # while the gateway is stopped (an upgrade, a restart by systemd)
        pi.advance(10.0)

        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        second = pi.system_clock()   # same boot: the monotonic clock went on
        watch = await pi.watch(second, outbox)
        await watch.check_once()
        (record,) = await uploadable(outbox)
        assert record["time_source"] == "hub_corrected"
        assert when(record["measured_at"]) == TRUE_BOOT + timedelta(seconds=at.monotonic)
        await outbox.close()

    asyncio.run(scenario())


def test_an_earlier_boots_1970_record_is_estimated_and_a_plausible_one_left_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        old_boot = PiClock()
        old = old_boot.system_clock("boot-0")
        old_boot.advance(100.0)
        at_1970 = old.now()
        await outbox.intake.accept([reading(at_1970, old.stamp(at_1970), 1)])
        old_boot.wall_offset_s = (TRUE_BOOT - timedelta(days=2) - EPOCH).total_seconds()  # fake-hwclock
        at_fake = old.now()
        await outbox.intake.accept([reading(at_fake, old.stamp(at_fake), 2)])
        # A power cut; the next boot gets network time.
        pi = PiClock(monotonic=5.0)
        clock = pi.system_clock("boot-1")
        watch = await pi.watch(clock, outbox)
        pi.advance(30.0)
        pi.ntp_arrives()
        await watch.check_once()
        records = {r["values"]["value"]: r for r in await uploadable(outbox, PLAUSIBLE_FROM)}
        estimated_record = records[36.6]
        assert estimated_record["time_source"] == "hub_estimated"
        assert when(estimated_record["measured_at"]) == TRUE_BOOT  # this boot's start: the latest possible
        plausible = records[36.7]
        assert plausible["time_source"] == "hub_unsynced"
        assert when(plausible["measured_at"]) == at_fake.wall
        assert watch.last_step is not None and watch.last_step.estimated == 1
        await outbox.close()

    asyncio.run(scenario())


def test_the_correction_for_a_step_places_this_boots_start_on_the_new_clock() -> None:
    pi = PiClock(monotonic=100.0)
    clock = pi.system_clock()
    clock.check()
    pi.ntp_arrives()
    clock.check()
    (step,) = clock.steps()
    correction = correction_for(step, monotonic_now=130.0)
    assert correction.boot_started_at == TRUE_BOOT
    assert correction.now == TRUE_BOOT + timedelta(seconds=130.0)
    assert correction.synced and correction.before_monotonic == 100.0
