"""The BLE manager and its sessions on the real bleak code path, against the fake BlueZ.

Records go into a real outbox (SQLite in tmp_path), and the glucose cursor lives there too.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from ble_harness import SHANGHAI, Recorder, ble_manager, recording, tag
from daemon_outbox import DaemonOutbox
from fake_bluez import ConnectFault, FakeBluez
from fake_bluez.devices import (
    BloodPressureCuff,
    BloodPressureRecord,
    BTHomeButton,
    GlucoseMeter,
    MicroBit,
    PulseOximeter,
    SpotCheckRecord,
    TemperatureRecord,
    Thermometer,
)
from loopcheck import running

from drivers.ble.adapter import power_cycle_adapter
from drivers.ble.gls_session import MEMORY_RESET, GlucoseMeterSession
from drivers.ble.gls_transfer import cursor_name, parse_cursor
from drivers.ble.motion_session import MICROBIT, MotionSession
from drivers.ble.policy import BackoffPolicy, WedgePolicy
from drivers.ble.sessions import BTHomeButtonSession, MeasurementSession, Sinks
from drivers.ble.uuids import BLOOD_PRESSURE_MEASUREMENT, PLX_SPOT_CHECK_MEASUREMENT, TEMPERATURE_MEASUREMENT
from drivers.errors import NotAcceptedError
from drivers.model import (
    BloodPressure,
    BodyTemperature,
    DeviceEventKind,
    Glucose,
    MealContext,
    Reading,
    SpO2,
    TimeSource,
)


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    async with recording(tmp_path) as recorder:
        yield recorder


async def newest_sequence(outbox: DaemonOutbox, device_id: str) -> int | None:
    """The sequence number of the newest record the meter's cursor says was committed."""
    cursor = parse_cursor(await outbox.get_cursor(cursor_name(device_id)))
    return None if cursor is None else cursor.newest.sequence


async def test_a_cuff_advertising_after_a_measurement_gives_one_reading(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    cuff = BloodPressureCuff()
    fake_bluez.add(cuff)
    session = MeasurementSession(
        tag("bp-bedroom", cuff.address, "ble-bps"), recorder.sinks, SHANGHAI, [BLOOD_PRESSURE_MEASUREMENT]
    )
    async with running(ble_manager(session)) as ble:
        cuff.measure(BloodPressureRecord(systolic=128, diastolic=82, mean_arterial=97, pulse_rate=71))
        await recorder.until(lambda: len(recorder.readings) == 1)
        await asyncio.sleep(0.5)  # the cuff keeps advertising ~20 s: no second session, no second reading
        assert ble.status.connected == ()
    [reading] = recorder.readings
    assert reading.measurement == BloodPressure(systolic=128, diastolic=82, mean_arterial=97, pulse=71)
    assert (reading.device.id, reading.resident_id, reading.time_source) == ("bp-bedroom", "r-0001", TimeSource.HUB)
    assert cuff.delivered and not cuff.stored
    assert (await recorder.outbox.db.stats()).pending == 1


async def test_a_thermometer_reading_arrives_with_its_site(fake_bluez: FakeBluez, recorder: Recorder) -> None:
    thermometer = Thermometer()
    fake_bluez.add(thermometer)
    session = MeasurementSession(
        tag("thermo", thermometer.address, "ble-hts"), recorder.sinks, SHANGHAI, [TEMPERATURE_MEASUREMENT]
    )
    async with running(ble_manager(session)):
        thermometer.measure(TemperatureRecord(celsius=38.62, site=1))
        await recorder.until(lambda: len(recorder.readings) == 1)
    assert recorder.readings[0].measurement == BodyTemperature(celsius=38.62, site="armpit")


async def test_an_oximeter_gives_its_spot_check_and_a_median_of_its_stream(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    oximeter = PulseOximeter()
    fake_bluez.add(oximeter)
    session = MeasurementSession(
        tag("oxi", oximeter.address, "ble-plx"),
        recorder.sinks,
        SHANGHAI,
        [PLX_SPOT_CHECK_MEASUREMENT],
        continuous_spo2=True,
        spo2_interval_s=30.0,
        idle_timeout_s=1.0,
    )
    async with running(ble_manager(session)):
        oximeter.measure(SpotCheckRecord(spo2=97, pulse_rate=68))
        await recorder.until(lambda: oximeter.connected and oximeter.is_subscribed(oximeter.measurement_uuid))
        await recorder.until(lambda: not oximeter.stored)
        await oximeter.stream([(95, 70), (80, 71), (96, 72), (95, 73), (94, 70), (96, 71), (95, 72)], rate_hz=20.0)
        # The oximeter goes quiet: the session ends after its idle timeout and closes the window.
        await recorder.until(lambda: len(recorder.readings) == 2)
    # The median leaves the 80 % dip of a moving finger behind.
    assert [r.measurement for r in recorder.readings] == [SpO2(spo2=97, pulse=68), SpO2(spo2=95, pulse=71)]
    assert recorder.readings[1].source_key is None


async def test_a_glucose_meter_uploads_50_records_and_the_next_visit_only_new_ones(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=50)
    fake_bluez.add(meter)
    outbox = recorder.outbox
    session = GlucoseMeterSession(
        tag("glucose-kitchen", meter.address, "ble-gls"), recorder.sinks, SHANGHAI, outbox.get_cursor, outbox.set_cursor
    )
    ble = ble_manager(session, backoff=BackoffPolicy(initial_s=0.2, max_s=1.0, after_completed_s=0.5))
    async with running(ble):
        await recorder.until(lambda: len(recorder.readings) == 50)
        assert await newest_sequence(outbox, "glucose-kitchen") == 50
        meter.add_record(3.1, datetime(2024, 6, 1, 7, 0), meal=3)
        await recorder.until(lambda: len(recorder.readings) == 51)
        await asyncio.sleep(0.8)  # another visit after the pause: nothing new to send
    assert [r.source_key for r in recorder.readings] == [
        f"gls:{record.sequence_number}@{record.time.isoformat()}" for record in meter.records
    ]
    assert recorder.readings[-1].measurement == Glucose(mmol_l=3.1, meal=MealContext.FASTING)
    # All at first; then, each visit, the oldest record (is the memory the one read before?) and the new ones.
    assert [bytes(r.encode()) for r in meter.racp_requests[:3]] == [b"\x01\x01", FIRST_RECORD, b"\x01\x03\x01\x33\x00"]
    assert await newest_sequence(outbox, "glucose-kitchen") == 51
    assert (await outbox.db.stats()).pending == 51


async def test_a_meter_that_drops_mid_transfer_keeps_what_was_committed_and_sends_the_rest_next_time(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=50, drop_after_records=25)
    fake_bluez.add(meter)
    outbox = recorder.outbox
    session = GlucoseMeterSession(
        tag("glucose-kitchen", meter.address, "ble-gls"),
        recorder.sinks,
        SHANGHAI,
        outbox.get_cursor,
        outbox.set_cursor,
        commit_every=10,
    )
    ble = ble_manager(session, backoff=BackoffPolicy(initial_s=0.3, max_s=1.0, after_completed_s=0.3))
    async with running(ble):
        # Committed in chunks of 10, and the complete records received before the drop at the end.
        await recorder.until(lambda: len(recorder.readings) == 25 and not meter.connected)
        assert await newest_sequence(outbox, "glucose-kitchen") == 25
        meter.drop_after_records = None  # the strip is out: the next visit completes
        await recorder.until(lambda: len(recorder.readings) == 50)
    sequences = [int(r.source_key.split(":")[1].split("@")[0]) for r in recorder.readings]  # type: ignore[union-attr]
    assert sequences == list(range(1, 51))  # nothing twice, nothing skipped
    assert await newest_sequence(outbox, "glucose-kitchen") == 50
    assert [bytes(r.encode()) for r in meter.racp_requests[:3]] == [b"\x01\x01", FIRST_RECORD, b"\x01\x03\x01\x1a\x00"]


def glucose_session(meter: GlucoseMeter, recorder: Recorder) -> GlucoseMeterSession:
    outbox = recorder.outbox
    return GlucoseMeterSession(
        tag("glucose-kitchen", meter.address, "ble-gls"), recorder.sinks, SHANGHAI, outbox.get_cursor, outbox.set_cursor
    )


REVISITS = BackoffPolicy(initial_s=0.2, max_s=1.0, after_completed_s=0.3)
"""The fake meter advertises all the time: a new visit every 0.3 s."""
ALL_RECORDS = b"\x01\x01"
FIRST_RECORD = b"\x01\x05"


async def test_a_resync_has_the_meter_send_every_record_again_and_the_outbox_keeps_each_once(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=50)
    fake_bluez.add(meter)
    session = glucose_session(meter, recorder)
    outbox = recorder.outbox
    async with running(ble_manager(session, backoff=REVISITS)):
        await recorder.until(lambda: len(recorder.readings) == 50)
        await recorder.until(lambda: len(meter.racp_requests) >= 3)  # a visit asking only for new records
        assert bytes(meter.racp_requests[2].encode()) == b"\x01\x03\x01\x33\x00"
        await session.resync()
        assert await outbox.get_cursor(cursor_name("glucose-kitchen")) == ""  # kept across a restart too
        await recorder.until(lambda: len(recorder.readings) == 100, timeout_s=20.0)
        # The visit after the full read asks only for records after 50 again: the cursor was committed
        # (after the readings; leaving the block earlier could cancel its write).
        await recorder.until(lambda: [bytes(r.encode()) for r in meter.racp_requests[3:]].count(
            b"\x01\x03\x01\x33\x00") >= 1)
    assert [bytes(r.encode()) for r in meter.racp_requests].count(ALL_RECORDS) == 2
    assert [r.source_key for r in recorder.readings[50:]] == [r.source_key for r in recorder.readings[:50]]
    stats = await outbox.db.stats()
    assert stats.pending == 50  # sent again, stored once
    assert await newest_sequence(outbox, "glucose-kitchen") == 50


async def test_a_meter_whose_numbering_started_again_is_told_and_read_from_the_start(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=50)
    fake_bluez.add(meter)
    session = glucose_session(meter, recorder)
    async with running(ble_manager(session, backoff=REVISITS)):
        await recorder.until(lambda: len(recorder.readings) == 50)
        # Batteries out: the meter's memory is gone and its sequence numbers start at 1 again. Asking
        # for ">= 51" alone, the hub would never see these two; the oldest record gives the reset away.
        meter.reset_memory()
        meter.add_record(3.4, datetime(2024, 7, 1, 7, 0), meal=3)
        meter.add_record(8.9, datetime(2024, 7, 1, 9, 30), meal=2)
        await recorder.until(lambda: len(recorder.readings) == 52)
        visits = len(meter.racp_requests)
        await recorder.until(lambda: len(meter.racp_requests) >= visits + 2)  # the next visit: new numbering, no reset
    assert [r.measurement for r in recorder.readings[50:]] == [
        Glucose(mmol_l=3.4, meal=MealContext.FASTING), Glucose(mmol_l=8.9, meal=MealContext.POSTPRANDIAL)]
    [reset] = [e for e in recorder.events if e.kind is DeviceEventKind.DEVICE_ERROR]
    assert (reset.device_id, reset.value) == ("glucose-kitchen", MEMORY_RESET)
    assert reset.detail is not None and "start again at #1" in reset.detail
    assert await newest_sequence(recorder.outbox, "glucose-kitchen") == 2
    assert len(recorder.readings) == 52


async def test_a_meter_counting_backwards_gets_its_new_records_asked_for_below_the_cursor(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=5, count_down_from=1000)  # TaiDoc: 1000, 999, ... 996
    fake_bluez.add(meter)
    session = glucose_session(meter, recorder)
    async with running(ble_manager(session, backoff=REVISITS)):
        await recorder.until(lambda: len(recorder.readings) == 5)
        assert await newest_sequence(recorder.outbox, "glucose-kitchen") == 996
        meter.add_record(6.2, datetime(2024, 6, 1, 7, 0), meal=3)  # number 995
        await recorder.until(lambda: len(recorder.readings) == 6)
        visits = len(meter.racp_requests)
        await recorder.until(lambda: len(meter.racp_requests) >= visits + 1)
    assert [int(r.source_key.split(":")[1].split("@")[0]) for r in recorder.readings] == [  # type: ignore[union-attr]
        1000, 999, 998, 997, 996, 995]
    assert bytes(meter.racp_requests[1].encode()) == b"\x01\x02\x01" + (995).to_bytes(2, "little")  # "<= 995"
    assert await newest_sequence(recorder.outbox, "glucose-kitchen") == 995
    assert (await recorder.outbox.db.stats()).pending == 6


async def test_a_meter_that_resends_its_whole_history_adds_nothing_twice(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=20, ignores_filters=True)  # Contour Next One: everything, every time
    fake_bluez.add(meter)
    session = glucose_session(meter, recorder)
    async with running(ble_manager(session, backoff=REVISITS)):
        await recorder.until(lambda: len(recorder.readings) == 20)
        meter.add_record(4.4, datetime(2024, 6, 1, 7, 0), meal=3)
        await recorder.until(lambda: len(recorder.readings) == 21)
        await session.resync()  # and once with the cursor cleared: the outbox is the last guard
        visits = len(meter.racp_requests)
        await recorder.until(lambda: len(meter.racp_requests) >= visits + 1)
        await recorder.until(lambda: len(recorder.readings) == 42)
    assert (await recorder.outbox.db.stats()).pending == 21


async def test_a_bthome_button_press_becomes_one_event(fake_bluez: FakeBluez, recorder: Recorder) -> None:
    button = BTHomeButton(battery_percent=87)
    fake_bluez.add(button)
    session = BTHomeButtonSession(tag("sos-bed", button.address, "bthome-button"), recorder.sinks)
    async with running(ble_manager(advertised=[session])):
        await asyncio.sleep(0.3)
        button.press("double_press")
        await recorder.until(lambda: any(e.kind is DeviceEventKind.BUTTON_PRESS for e in recorder.events))
        await asyncio.sleep(0.5)  # the burst repeats the advert: still one press
    presses = [e for e in recorder.events if e.kind is DeviceEventKind.BUTTON_PRESS]
    assert [(e.device_id, e.value, e.extra) for e in presses] == [("sos-bed", "double", {"button": 1})]
    assert any(e.kind is DeviceEventKind.BATTERY and e.value == 87 for e in recorder.events)


async def test_a_microbit_at_50_hz_streams_motion_blocks_at_that_rate(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    microbit = MicroBit(rate_hz=50.0)
    fake_bluez.add(microbit)
    session = MotionSession(tag("wrist", microbit.address, "microbit-accel"), recorder.sinks, MICROBIT, block_size=10)
    async with running(ble_manager(session)) as ble:
        await recorder.until(lambda: len(recorder.motion) >= 5)
        assert ble.status.connected == ("wrist",)
    blocks = recorder.motion[:5]
    assert all(b.sample_rate_hz == 50.0 and b.samples.shape == (10, 3) for b in blocks)
    assert np.allclose(blocks[0].samples, [[0.0, 0.0, -1.0]] * 10)
    starts = [b.first_sample.monotonic for b in blocks]
    # Ten samples at 50 Hz: blocks start 0.2 s apart on average (radio and loop jitter allowed).
    assert 0.15 < (starts[-1] - starts[0]) / 4 < 0.3
    assert recorder.events[0].kind is DeviceEventKind.CONNECTED


async def test_connect_answered_in_progress_is_retried(fake_bluez: FakeBluez, recorder: Recorder) -> None:
    cuff = BloodPressureCuff()
    cuff.fail_connects(ConnectFault.IN_PROGRESS, times=2)
    fake_bluez.add(cuff)
    session = MeasurementSession(
        tag("bp-bedroom", cuff.address, "ble-bps"), recorder.sinks, SHANGHAI, [BLOOD_PRESSURE_MEASUREMENT]
    )
    async with running(ble_manager(session)):
        cuff.measure(BloodPressureRecord(systolic=141, diastolic=91, mean_arterial=108))
        await recorder.until(lambda: len(recorder.readings) == 1)
    assert cuff.connect_attempts == 3
    assert recorder.readings[0].measurement == BloodPressure(systolic=141, diastolic=91, mean_arterial=108)


async def test_an_adapter_that_stops_reporting_adverts_is_power_cycled(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    cuff = BloodPressureCuff()
    fake_bluez.add(cuff)
    troubles: list[str] = []
    session = MeasurementSession(
        tag("bp-bedroom", cuff.address, "ble-bps"), recorder.sinks, SHANGHAI, [BLOOD_PRESSURE_MEASUREMENT]
    )
    ble = ble_manager(
        session,
        wedge=WedgePolicy(silence_s=1.0, min_cycle_interval_s=0.5),
        on_adapter_trouble=troubles.append,
        power_cycle=lambda adapter: power_cycle_adapter(adapter, off_s=0.1),
    )
    async with running(ble):
        await asyncio.sleep(0.3)
        fake_bluez.wedge_discovery()
        await recorder.until(lambda: ble.status.power_cycles >= 1, timeout_s=5.0)
        assert not fake_bluez.wedged
        # Scanning again after the cycle: a measurement gets through.
        cuff.measure(BloodPressureRecord(systolic=120, diastolic=80, mean_arterial=93))
        await recorder.until(lambda: len(recorder.readings) == 1)
    assert troubles[0].startswith("Bluetooth adapter hci0 power-cycled: no advertisement for")
    assert ble.status.last_power_cycle_reason is not None


async def test_a_meter_whose_records_the_gateway_cannot_store_keeps_its_cursor_and_sends_them_again(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    meter = GlucoseMeter(record_count=20)
    fake_bluez.add(meter)
    outbox = recorder.outbox
    refusals = 0
    store = recorder.on_readings

    async def disk_full_at_first(readings: Sequence[Reading]) -> None:
        nonlocal refusals
        if refusals < 2:
            refusals += 1
            recorder.changed.set()
            raise NotAcceptedError("the gateway's disk is full")
        await store(readings)

    sinks = Sinks(disk_full_at_first, recorder.on_motion, recorder.on_event)
    session = GlucoseMeterSession(tag("glucose-kitchen", meter.address, "ble-gls"), sinks, SHANGHAI,
                                  outbox.get_cursor, outbox.set_cursor)
    ble = ble_manager(session, backoff=BackoffPolicy(initial_s=0.2, max_s=0.5, after_completed_s=0.5, after_lost_s=0.2))
    async with running(ble):
        await recorder.until(lambda: refusals == 1)
        assert await outbox.get_cursor(cursor_name("glucose-kitchen")) is None  # nothing acknowledged
        await recorder.until(lambda: len(recorder.readings) == 20)
    assert refusals == 2
    assert await newest_sequence(outbox, "glucose-kitchen") == 20
    assert (await outbox.db.stats()).pending == 20
