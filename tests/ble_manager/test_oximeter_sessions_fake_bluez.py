"""The vendor oximeters' sessions through the BLE manager and the real bleak path, against the fake BlueZ.

Readings go into a real outbox, as in test_sessions_fake_bluez. Streams run at 20 values a second
with short windows so a test takes seconds, not minutes; the hub's timing is the real one.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from ble_harness import SHANGHAI, Recorder, ble_manager, recording, tag
from bleak import BleakClient, BleakScanner
from fake_bluez import FakeBluez
from fake_bluez.vendor_oximeters import (
    ICHOICE_COMMAND,
    ICHOICE_ENABLE,
    ICHOICE_NOTIFY,
    IChoiceOximeter,
    O2Ring,
    ViatomPC60F,
)
from loopcheck import running

from drivers.ble.oximeter_sessions import IChoiceOximeterSession, O2RingSession, ViatomOximeterSession
from drivers.model import DeviceEventKind, Reading, SpO2, TimeSource
from gateway.ble_cli import scan

WINDOW_S = 0.5


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[Recorder]:
    async with recording(tmp_path, no_motion="an oximeter sends no motion", wait_s=15.0) as recorder:
        yield recorder


def assert_live_stream(readings: list[Reading], device_id: str, measurement: SpO2) -> None:
    assert len(readings) >= 2, readings
    assert {r.measurement for r in readings} == {measurement}
    assert all(r.continuous and r.device.id == device_id and r.time_source is TimeSource.HUB for r in readings)
    stamps = [r.measured_at for r in readings]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize("variant", ["uart", "ffb0"])
async def test_a_pc60f_streams_spo2_pulse_and_perfusion_cut_anywhere_by_the_radio(
    fake_bluez: FakeBluez, recorder: Recorder, variant: str
) -> None:
    clip = ViatomPC60F(variant=variant, chunk=16, pleth_frames_per_s=60.0)
    fake_bluez.add(clip)
    session = ViatomOximeterSession(tag("finger", clip.address, "viatom-oximeter"), recorder.sinks,
                                    spo2_interval_s=WINDOW_S, idle_timeout_s=2.0)
    async with running(ble_manager(session)) as ble:
        assert await clip.stream([(96, 62)] * 40, rate_hz=20.0) == 40
        # The finger came out and the clip switched off: the session hands over its last window.
        await recorder.until(lambda: ble.status.connected == () and recorder.readings[-1:] != [])
    assert_live_stream(recorder.readings, "finger", SpO2(spo2=96, pulse=62, perfusion_index=8.0))
    # Only the window handed over at the hang-up ends the stream (the hub commits the batch then).
    assert [r.stream_end for r in recorder.readings] == [False] * (len(recorder.readings) - 1) + [True]
    assert [(e.kind, e.value) for e in recorder.events] == [(DeviceEventKind.BATTERY, 100)]
    assert (await recorder.outbox.db.stats()).pending == len(recorder.readings)


async def test_an_o2ring_gets_its_clock_set_once_and_streams_the_finger(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    ring = O2Ring()
    fake_bluez.add(ring)
    session = O2RingSession(tag("ring", ring.address, "o2ring"), recorder.sinks, SHANGHAI, poll_interval_s=0.05,
                            spo2_interval_s=WINDOW_S)
    async with running(ble_manager(session)):
        await recorder.until(lambda: bool(ring.set_times))
        streamed = asyncio.create_task(ring.stream([(91, 58)] * 40, rate_hz=20.0))
        await recorder.until(lambda: sum(r.measurement == SpO2(91, 58) for r in recorder.readings) >= 2)
        await streamed
        await ring.drop_link()  # out of range for a moment: back within a second, clock left alone
        await recorder.until(lambda: recorder.kinds().count(DeviceEventKind.CONNECTED) == 2)
        await recorder.until(lambda: ring.commands.count(0x14) == 2 and ring.commands[-1] == 0x17)
    set_to = datetime.strptime(ring.set_times[0], "%Y-%m-%d,%H:%M:%S")
    assert abs(set_to - datetime.now(SHANGHAI).replace(tzinfo=None)) < timedelta(seconds=5)
    assert ring.set_times == ring.set_times[:1]  # once: the second visit found it right
    assert ring.commands[:3] == [0x14, 0x16, 0x17]
    assert_live_stream([r for r in recorder.readings if r.measurement.spo2 == 91], "ring", SpO2(91, 58))
    assert recorder.kinds()[:3] == [DeviceEventKind.CONNECTED, DeviceEventKind.BATTERY, DeviceEventKind.LOST]
    assert [e.value for e in recorder.events if e.kind is DeviceEventKind.BATTERY][:1] == [87]


async def test_a_ring_left_on_the_table_is_asked_less_often_until_a_finger_is_back(
    fake_bluez: FakeBluez, recorder: Recorder
) -> None:
    ring = O2Ring()
    fake_bluez.add(ring)
    session = O2RingSession(tag("ring", ring.address, "o2ring"), recorder.sinks, SHANGHAI, poll_interval_s=0.05,
                            unworn_poll_interval_s=0.5, unworn_after_s=0.5, spo2_interval_s=WINDOW_S)
    async with running(ble_manager(session)):
        await recorder.until(lambda: ring.commands.count(0x17) > 0)
        await asyncio.sleep(1.0)  # unworn for a while: now asked every 0.5 s
        before = ring.commands.count(0x17)
        await asyncio.sleep(2.0)
        assert 3 <= ring.commands.count(0x17) - before <= 5
        before = ring.commands.count(0x17)
        # Within 0.5 s the finger is seen, then it is asked every 0.05 s: 4 s of finger is about 70
        # requests on an idle machine. Unworn, 4 s would be 8 at most; 20 says the fast polling is back
        # even when a loaded CI machine stretches each request's round trip (14 in 2 s was seen there).
        await ring.stream([(94, 61)] * 80, rate_hz=20.0)
        assert ring.commands.count(0x17) - before >= 20
        await recorder.until(lambda: any(r.measurement == SpO2(94, 61) for r in recorder.readings))


async def test_an_o2ring_that_refuses_the_live_command_is_noted_once(
    fake_bluez: FakeBluez, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    ring = O2Ring(refuse_live=True)
    fake_bluez.add(ring)
    session = O2RingSession(tag("ring", ring.address, "o2ring"), recorder.sinks, SHANGHAI, poll_interval_s=0.05)
    with caplog.at_level(logging.INFO, logger="drivers.ble.oximeter_sessions"):
        async with running(ble_manager(session)):
            await recorder.until(lambda: ring.commands.count(0x17) >= 10)
    notes = [r.getMessage() for r in caplog.records if "field note" in r.getMessage()]
    assert notes == ["field note device=ring O2Ring refused the live-values command 0x17 status=1 "
                     "(newer firmware may want 0x1B)"]
    assert recorder.readings == []


async def test_an_ichoice_clip_is_enabled_and_streams(fake_bluez: FakeBluez, recorder: Recorder,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    clip = IChoiceOximeter()
    fake_bluez.add(clip)
    session = IChoiceOximeterSession(tag("ichoice", clip.address, "ichoice-oximeter"), recorder.sinks,
                                     spo2_interval_s=WINDOW_S, idle_timeout_s=2.0)
    with caplog.at_level(logging.INFO, logger="drivers.ble.oximeter_sessions"):
        async with running(ble_manager(session)) as ble:
            assert await clip.stream([(97, 77)] * 30, rate_hz=20.0) == 30
            await recorder.until(lambda: ble.status.connected == () and recorder.readings[-1:] != [])
    assert_live_stream(recorder.readings, "ichoice", SpO2(97, 77))
    assert clip.ignored_enables == 0
    notes = [r.getMessage() for r in caplog.records if "field note" in r.getMessage()]
    assert notes == [f"field note device=ichoice iChoice oximeter frames arrive on characteristic={ICHOICE_NOTIFY[3]}"]


async def test_an_ichoice_whose_service_does_not_follow_its_address_still_streams_and_is_noted(
    fake_bluez: FakeBluez, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    clip = IChoiceOximeter(service_suffix="7cbe00000001")
    fake_bluez.add(clip)
    session = IChoiceOximeterSession(tag("ichoice", clip.address, "ichoice-oximeter"), recorder.sinks,
                                     spo2_interval_s=WINDOW_S, idle_timeout_s=2.0)
    with caplog.at_level(logging.WARNING, logger="drivers.ble.oximeter_sessions"):
        async with running(ble_manager(session)) as ble:
            await clip.stream([(95, 66)] * 20, rate_hz=20.0)
            await recorder.until(lambda: ble.status.connected == () and recorder.readings[-1:] != [])
    assert {r.measurement for r in recorder.readings} == {SpO2(95, 66)}
    notes = [r.getMessage() for r in caplog.records if "field note" in r.getMessage()]
    assert notes == ["field note device=ichoice iChoice service is not the one its address gives "
                     "expected=ba11f08c-5f14-0b0d-1080-007cbe238851 found=ba11f08c-5f14-0b0d-1080-007cbe00000001"]


async def test_the_emulated_ichoice_stays_silent_unless_cd01_to_cd03_are_all_enabled(fake_bluez: FakeBluez) -> None:
    clip = IChoiceOximeter()
    fake_bluez.add(clip)
    clip.start_advertising()
    device = await BleakScanner.find_device_by_address(clip.address, timeout=5)
    assert device is not None
    async with BleakClient(device) as client:
        for uuid in (ICHOICE_NOTIFY[0], ICHOICE_NOTIFY[3]):
            await client.start_notify(uuid, lambda _c, _d: None)
        await client.write_gatt_char(ICHOICE_COMMAND, ICHOICE_ENABLE, response=True)
        await asyncio.sleep(0.2)
        assert (clip.ignored_enables, clip.enabled.is_set()) == (1, False)
        for uuid in ICHOICE_NOTIFY[1:3]:
            await client.start_notify(uuid, lambda _c, _d: None)
        await client.write_gatt_char(ICHOICE_COMMAND, ICHOICE_ENABLE, response=True)
        await asyncio.wait_for(clip.enabled.wait(), 2)


async def test_yiyang_scan_names_each_oximeter_by_its_advertisement(fake_bluez: FakeBluez) -> None:
    devices = [ViatomPC60F(), ViatomPC60F("F0:5E:CD:00:00:13", "POD-1_SN0113", variant="ffb0"), O2Ring(),
               IChoiceOximeter()]
    for device in devices:
        fake_bluez.add(device)
        device.start_advertising()
    out = io.StringIO()
    assert await scan(1.0, {}, out) == 0
    rows = [line.split() for line in out.getvalue().splitlines() if line[:2] in {"F0", "C8", "D8"}]
    table = {row[0]: row[-3] for row in rows}  # address: drivers (before NEEDS, CONFIGURED AS; a name may have spaces)
    assert table == {"F0:5E:CD:00:00:11": "viatom-oximeter", "F0:5E:CD:00:00:13": "viatom-oximeter",
                     "C8:07:5F:00:00:12": "o2ring", "D8:7C:BE:23:88:51": "ichoice-oximeter"}
    assert "Before binding" not in out.getvalue()
