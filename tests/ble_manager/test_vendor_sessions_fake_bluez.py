"""The omron-bp and sinocare-glucose sessions on the real bleak path, against the fake BlueZ.

Readings go into a real outbox (SQLite in tmp_path), whose cursor table also keeps the Omron key.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ble_harness import SHANGHAI, Recorder, ble_manager, recording, tag
from fake_bluez import FakeBluez
from fake_bluez.devices import BloodPressureCuff, BloodPressureRecord
from fake_bluez.omron import OmronCuff
from fake_bluez.sinocare import SinocareMeter, SinocareResultRecord
from loopcheck import running

from drivers.ble.manager import BleManager
from drivers.ble.omron_records import OmronRecord
from drivers.ble.omron_session import OmronCuffSession, key_cursor
from drivers.ble.policy import BackoffPolicy
from drivers.ble.sessions import ConnectedSession
from drivers.ble.sinocare import SinocareCommand
from drivers.ble.sinocare_session import SinocareMeterSession
from drivers.model import BloodPressure, Glucose, ReadingFlag, TimeSource

# Revisits come quickly here: each visit reads the whole memory again, and nothing may be uploaded twice.
QUICK_REVISIT = BackoffPolicy(initial_s=0.2, max_s=1.0, after_completed_s=0.3, after_lost_s=0.2)


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    async with recording(tmp_path, no_motion="no motion from a cuff or a meter", wait_s=15.0) as recorder:
        yield recorder


def manager(session: ConnectedSession) -> BleManager:
    return ble_manager(session, backoff=QUICK_REVISIT)


def omron_session(cuff: OmronCuff, recorder: Recorder, **options: object) -> OmronCuffSession:
    return OmronCuffSession(tag("bp-omron", cuff.address, "omron-bp"), recorder.sinks, SHANGHAI,
                            recorder.outbox.get_cursor, recorder.outbox.set_cursor, **options)  # type: ignore[arg-type]


def record(systolic: int, minutes_ago: int, *, irregular: bool = False, user: int = 1) -> OmronRecord:
    time = (datetime.now() - timedelta(minutes=minutes_ago)).replace(microsecond=0)
    return OmronRecord(user=user, systolic_mmhg=systolic, diastolic_mmhg=85, pulse_bpm=70, time=time,
                       body_movement=False, irregular_heartbeat=irregular)


async def test_an_omron_cuff_is_paired_with_the_hubs_key_and_every_users_memory_read_once(
    fake_bluez: FakeBluez, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    cuff = OmronCuff()
    fake_bluez.add(cuff)
    cuff.measure(1, record(131, 60))
    cuff.measure(1, record(152, 30, irregular=True))
    cuff.measure(2, record(118, 45, user=2))
    cuff.hold_button()
    session = omron_session(cuff, recorder)
    with caplog.at_level(logging.DEBUG):
        async with running(manager(session)):
            await recorder.until(lambda: cuff.transfers_closed >= 1 and recorder.new == 3)
            cuff.measure(2, record(124, 1, user=2))
            await recorder.until(lambda: recorder.new == 4 and cuff.transfers_closed >= 2)
    stored = await recorder.outbox.get_cursor(key_cursor("bp-omron"))
    assert cuff.key is not None and stored == cuff.key.hex()
    assert cuff.key.hex() not in caplog.text and cuff.key.hex().upper() not in caplog.text
    # Both users' ring buffers, every slot, at each visit: 2 x 100 reads of 16 bytes.
    assert cuff.reads == 200 * cuff.transfers_closed
    first = sorted(recorder.readings[:3], key=lambda r: r.measured_at)
    assert [(r.measurement, r.flags, r.time_source) for r in first] == [
        (BloodPressure(131.0, 85.0, None, 70.0), frozenset(), TimeSource.DEVICE),
        (BloodPressure(118.0, 85.0, None, 70.0), frozenset(), TimeSource.DEVICE),
        (BloodPressure(152.0, 85.0, None, 70.0), frozenset({ReadingFlag.IRREGULAR_PULSE}), TimeSource.DEVICE),
    ]
    assert first[0].source_key is not None and first[0].source_key.startswith("omron:u1:")
    assert (await recorder.outbox.db.stats()).pending == 4


async def test_a_cuff_that_was_never_given_the_key_and_shows_no_p_is_told_to_pair(
    fake_bluez: FakeBluez, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    cuff = OmronCuff()
    fake_bluez.add(cuff)
    cuff.measure(1, record(131, 60))
    with caplog.at_level(logging.INFO, logger="drivers.ble.manager"):
        async with running(manager(omron_session(cuff, recorder))):
            await recorder.until(lambda: "-P- blinks" in caplog.text)
            assert recorder.readings == [] and cuff.reads == 0
            cuff.hold_button()  # the technician does what the log said
            await recorder.until(lambda: recorder.new == 1)
    assert cuff.key is not None and await recorder.outbox.get_cursor(key_cursor("bp-omron")) == cuff.key.hex()


async def test_a_newer_omron_unit_is_served_by_its_blood_pressure_indications(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    cuff = BloodPressureCuff()  # named BLESmart_..., no Omron memory service
    fake_bluez.add(cuff)
    session = OmronCuffSession(tag("bp-new", cuff.address, "omron-bp"), recorder.sinks, SHANGHAI,
                               recorder.outbox.get_cursor, recorder.outbox.set_cursor)
    async with running(manager(session)):
        cuff.measure(BloodPressureRecord(systolic=128, diastolic=82, mean_arterial=97, pulse_rate=71))
        await recorder.until(lambda: len(recorder.readings) == 1)
    assert recorder.readings[0].measurement == BloodPressure(128, 82, 97, 71)
    assert await recorder.outbox.get_cursor(key_cursor("bp-new")) is None


async def test_a_sinocare_meter_gets_its_clock_and_gives_history_and_real_time_results_once(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    now = datetime.now().replace(microsecond=0)
    meter = SinocareMeter(history=[SinocareResultRecord(now - timedelta(days=d), 5.0 + d / 10) for d in (3, 2, 1)])
    fake_bluez.add(meter)
    session = SinocareMeterSession(tag("glu-sino", meter.address, "sinocare-glucose"), recorder.sinks, SHANGHAI,
                                   idle_timeout_s=2.0)
    async with running(manager(session)):
        meter.measure(7.8)
        await recorder.until(lambda: recorder.new == 4 and not meter.connected)
        meter.measure(3.1)  # the meter sends its whole history again, then the new result
        await recorder.until(lambda: recorder.new == 5 and len(recorder.readings) >= 9)
    assert [r.measurement for r in recorder.readings[:4]] == [Glucose(5.3), Glucose(5.2), Glucose(5.1), Glucose(7.8)]
    assert all(r.time_source is TimeSource.DEVICE for r in recorder.readings)
    home_now = datetime.now(SHANGHAI).replace(tzinfo=None)  # the meter's clock shows the home's local time
    assert meter.clock_set_to is not None and abs(meter.clock_set_to - home_now) < timedelta(seconds=30)
    answered = [frame[5] for frame in meter.written]
    assert answered[:5] == [SinocareCommand.SET_TIME, SinocareCommand.HISTORY, SinocareCommand.HISTORY,
                            SinocareCommand.HISTORY, SinocareCommand.RESULT]
    assert (await recorder.outbox.db.stats()).pending == 5
