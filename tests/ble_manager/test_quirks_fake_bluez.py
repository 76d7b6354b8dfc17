"""Devices that bend the SIG profiles, and the Xiaomi MiBeacon thermometer, on the real bleak path against the
fake BlueZ: the A&D cuff's command and clock, an Omron X4 that sends one reading and hangs up, a cuff that
measures nothing but NaN, and an encrypted MiBeacon advert."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from ble_harness import SHANGHAI, Recorder, ble_manager, recording, tag
from fake_bluez import FakeBluez
from fake_bluez.devices import AND_COMMAND, AndCuff, BloodPressureCuff, BloodPressureRecord, XiaomiThermometer
from loopcheck import running

from drivers.ble.and_bp import AndCuffPreparation
from drivers.ble.datetime_char import decode_date_time
from drivers.ble.ieee11073 import SpecialValue, encode_sfloat_special
from drivers.ble.link import GattLink
from drivers.ble.mibeacon_session import MiBeaconSession
from drivers.ble.sessions import MEASUREMENT_FAILED, MeasurementSession
from drivers.ble.uuids import BLOOD_PRESSURE_MEASUREMENT, DATE_TIME
from drivers.model import BloodPressure, BodyTemperature, DeviceEventKind


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    async with recording(tmp_path, no_motion="no motion here") as recorder:
        yield recorder


class Timed:
    """A connected session run through the manager, with how long each visit took and how it ended."""

    def __init__(self, inner: MeasurementSession) -> None:
        self.inner = inner
        self.tag, self.style, self.use_start_notify = inner.tag, inner.style, inner.use_start_notify
        self.visits: list[tuple[float, BaseException | None]] = []

    async def run(self, link: GattLink) -> None:
        started = time.monotonic()
        error: BaseException | None = None
        try:
            await self.inner.run(link)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.visits.append((time.monotonic() - started, error))


# --- A&D UA-651BLE --------------------------------------------------------------------------------------


async def test_an_a_and_d_cuff_is_sent_its_command_and_the_clock_before_it_indicates(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    cuff = fake_bluez.add(AndCuff())
    session = MeasurementSession(tag("bp-and", cuff.address, "and-bp"), recorder.sinks, SHANGHAI,
                                 [BLOOD_PRESSURE_MEASUREMENT], prepare=AndCuffPreparation("bp-and", SHANGHAI))
    async with running(ble_manager(session)):
        cuff.measure(BloodPressureRecord(systolic=142, diastolic=91, mean_arterial=108, pulse_rate=77))
        await recorder.until(lambda: len(recorder.readings) == 1)
    assert recorder.readings[0].measurement == BloodPressure(systolic=142, diastolic=91, mean_arterial=108, pulse=77)
    (command_uuid, command), (clock_uuid, clock) = cuff.writes
    assert (command_uuid, command, clock_uuid) == (AND_COMMAND, bytes([0x02, 0x00, 0xE1]), DATE_TIME.uuid)
    set_to = decode_date_time(clock).to_datetime()
    assert set_to is not None
    assert abs((set_to - datetime.now(SHANGHAI).replace(tzinfo=None)).total_seconds()) < 5  # the home's time
    assert cuff.delivered and not cuff.stored  # it sent what it had not sent, then hung up


async def test_the_plain_profile_gets_nothing_from_an_a_and_d_cuff(fake_bluez: FakeBluez, recorder: Recorder) -> None:
    # Why A&D has a row of its own: bound as ble-bps, the cuff waits for a command that never comes.
    cuff = fake_bluez.add(AndCuff())
    session = MeasurementSession(tag("bp-and", cuff.address, "ble-bps"), recorder.sinks, SHANGHAI,
                                 [BLOOD_PRESSURE_MEASUREMENT], idle_timeout_s=0.5)
    async with running(ble_manager(session)):
        cuff.measure(BloodPressureRecord(systolic=142, diastolic=91, mean_arterial=108))
        await recorder.until(lambda: cuff.connected, 5)
        await asyncio.sleep(1.0)
    assert recorder.readings == [] and cuff.stored


# --- Omron X4 Smart over 0x1810: the latest reading, then it hangs up ------------------------------------


async def test_a_cuff_that_sends_one_reading_and_hangs_up_ends_the_visit_at_once_without_error(
    fake_bluez: FakeBluez, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    cuff = fake_bluez.add(BloodPressureCuff(name="BLESmart_00000123X4", hang_up_when_done=True))
    session = Timed(MeasurementSession(tag("bp-x4", cuff.address, "ble-bps"), recorder.sinks, SHANGHAI,
                                       [BLOOD_PRESSURE_MEASUREMENT], idle_timeout_s=10.0))
    with caplog.at_level(logging.INFO):
        async with running(ble_manager(session)):
            cuff.measure(BloodPressureRecord(systolic=133, diastolic=85, mean_arterial=101, pulse_rate=64))
            await recorder.until(lambda: len(recorder.readings) == 1)
            await recorder.until(lambda: bool(session.visits), 5)
    [(took_s, error)] = session.visits
    assert error is None
    assert took_s < 2.0  # the hang-up ends it, not the 10 s of silence
    assert recorder.readings[0].measurement == BloodPressure(systolic=133, diastolic=85, mean_arterial=101, pulse=64)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --- NaN in every field ---------------------------------------------------------------------------------


async def test_a_cuff_that_measured_nothing_is_a_device_error_event_and_no_reading(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    cuff = fake_bluez.add(BloodPressureCuff())
    nan = encode_sfloat_special(SpecialValue.NAN)
    session = MeasurementSession(tag("bp-nan", cuff.address, "ble-bps"), recorder.sinks, SHANGHAI,
                                 [BLOOD_PRESSURE_MEASUREMENT])
    async with running(ble_manager(session)):
        cuff.store(b"\x04" + nan * 4)  # NaN pressures and pulse, no status field
        await recorder.until(lambda: any(e.kind is DeviceEventKind.DEVICE_ERROR for e in recorder.events))
        await recorder.until(lambda: not cuff.connected, 5)
    [error] = [e for e in recorder.events if e.kind is DeviceEventKind.DEVICE_ERROR]
    assert (error.device_id, error.value) == ("bp-nan", MEASUREMENT_FAILED)
    assert error.detail is not None and "NaN in every value" in error.detail
    assert recorder.readings == []


# --- Xiaomi MiBeacon ------------------------------------------------------------------------------------


async def test_an_encrypted_mibeacon_thermometer_gives_one_reading_per_measurement(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    thermometer = fake_bluez.add(XiaomiThermometer())
    session = MiBeaconSession(tag("thermo-mi", thermometer.address, "xiaomi-mibeacon"), recorder.sinks,
                              thermometer.bind_key, reading_every_s=0.0)
    async with running(ble_manager(advertised=[session])):
        thermometer.measure(38.6)  # a one-second burst of the same frame
        await recorder.until(lambda: len(recorder.readings) == 1)
        await asyncio.sleep(1.2)
        thermometer.measure(37.9)
        await recorder.until(lambda: len(recorder.readings) == 2)
    assert [r.measurement for r in recorder.readings] == [BodyTemperature(celsius=38.6), BodyTemperature(celsius=37.9)]
    assert recorder.readings[0].device.id == "thermo-mi"


async def test_a_bpx1_is_heard_said_once_to_be_undecodable_and_gives_nothing(
    fake_bluez: FakeBluez, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    cuff = fake_bluez.add(XiaomiThermometer(address="C8:5C:CC:9B:00:01", name="BPX1", product="BPX1"))
    session = MiBeaconSession(tag("bp-mi", cuff.address, "xiaomi-mibeacon"), recorder.sinks, cuff.bind_key)
    with caplog.at_level(logging.DEBUG, logger="drivers.ble.sessions"):
        async with running(ble_manager(advertised=[session])):
            cuff.measure(37.0)
            await recorder.until(lambda: sum("0xbeef" in r.getMessage() for r in caplog.records) >= 2, 5)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "0xbeef" in r.getMessage()]
    assert len(warnings) == 1 and "device=bp-mi" in warnings[0].getMessage()
    assert recorder.readings == []
