"""The fake BlueZ against the real, unmodified bleak BlueZ backend.

Each test starts a private dbus-daemon and the fake bluetoothd (fixture ``fake_bluez``), puts
emulated devices in range and drives them with bleak's BleakScanner and BleakClient. Payloads are
checked with the project's own decoders, so the device encoders and the codecs agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDBusError, BleakError
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method
from fake_bluez import ADAPTER_PATH, ConnectFault, FakeBluez, Pairing
from fake_bluez.devices import (
    BloodPressureCuff,
    BloodPressureRecord,
    BTHomeButton,
    GlucoseMeter,
    MicroBit,
    PulseOximeter,
    TemperatureRecord,
    Thermometer,
)

from drivers.ble import uuids
from drivers.ble.bps import BloodPressureMeasurement, PressureUnit, decode_blood_pressure_measurement
from drivers.ble.datetime_char import BleDateTime
from drivers.ble.gls import (
    decode_glucose_measurement,
)
from drivers.ble.hts import TemperatureMeasurement, TemperatureSite, TemperatureUnit, decode_temperature_measurement
from drivers.ble.motion import decode_microbit_accelerometer
from drivers.ble.plx import ContinuousMeasurement, decode_continuous
from drivers.ble.racp import (
    RacpNumberOfRecords,
    RacpOpcode,
    RacpResponse,
    RacpResponseCode,
    abort_operation,
    decode_racp_response,
    report_all_records,
    report_number_of_records,
    report_records_from,
)

SCAN_TIMEOUT_S = 3.0


async def _find(address: str) -> BLEDevice:
    device = await BleakScanner.find_device_by_address(address, timeout=SCAN_TIMEOUT_S)
    assert device is not None, f"{address} not discovered"
    return device


async def _collector(client: BleakClient, uuid: str, **kwargs: object) -> asyncio.Queue[bytes]:
    received: asyncio.Queue[bytes] = asyncio.Queue()
    await client.start_notify(uuid, lambda _char, data: received.put_nowait(bytes(data)), **kwargs)  # type: ignore[arg-type]
    return received


async def _next(queue: asyncio.Queue[bytes]) -> bytes:
    return await asyncio.wait_for(queue.get(), 2.0)


async def test_scanner_sees_a_button_press_in_service_data(fake_bluez: FakeBluez) -> None:
    button = fake_bluez.add(BTHomeButton(battery_percent=87))
    seen: asyncio.Queue[AdvertisementData] = asyncio.Queue()

    def on_advert(device: BLEDevice, advert: AdvertisementData) -> None:
        if device.address == button.address and uuids.BTHOME_SERVICE_DATA in advert.service_data:
            seen.put_nowait(advert)

    async with BleakScanner(on_advert):
        assert button.press() == 1
        advert = await asyncio.wait_for(seen.get(), SCAN_TIMEOUT_S)

    # BTHome v2 trigger-based, packet id 1, battery 87 %, button "press".
    assert advert.service_data[uuids.BTHOME_SERVICE_DATA] == bytes([0x44, 0x00, 1, 0x01, 87, 0x3A, 0x01])
    assert advert.rssi == -60
    assert advert.local_name == "SBBT-002C"


async def test_cuff_advertises_after_a_measurement_and_indicates_it(fake_bluez: FakeBluez) -> None:
    cuff = fake_bluez.add(BloodPressureCuff())
    record = BloodPressureRecord(132, 84, 100, pulse_rate=71, time=datetime(2024, 5, 1, 8, 15, 0))  # device clock
    cuff.measure(record)
    device = await _find(cuff.address)
    assert device.name == "BLESmart_0000"

    lost = asyncio.Event()
    async with BleakClient(device, disconnected_callback=lambda _c: lost.set()) as client:
        feature = await client.read_gatt_char(uuids.BLOOD_PRESSURE_FEATURE.uuid)
        indications = await _collector(client, uuids.BLOOD_PRESSURE_MEASUREMENT.uuid)
        payload = await _next(indications)
        # The cuff hangs up once its stored measurements are sent.
        await asyncio.wait_for(lost.wait(), 2.0)

    assert feature == b"\x01\x00"
    assert decode_blood_pressure_measurement(payload) == BloodPressureMeasurement(
        systolic_mmhg=132.0,
        diastolic_mmhg=84.0,
        mean_arterial_mmhg=100.0,
        unit_sent=PressureUnit.MMHG,
        timestamp=BleDateTime(2024, 5, 1, 8, 15, 0),
        pulse_rate_bpm=71.0,
    )
    assert cuff.stored == []
    assert not cuff.advertising


async def test_cuff_stops_advertising_after_its_window(fake_bluez: FakeBluez) -> None:
    cuff = fake_bluez.add(BloodPressureCuff(advertise_for_s=0.2))
    cuff.measure(BloodPressureRecord(120, 80, 93))
    assert cuff.advertising
    await asyncio.sleep(0.3)
    assert not cuff.advertising
    assert await BleakScanner.find_device_by_address(cuff.address, timeout=0.5) is None


async def test_start_notify_and_acquire_notify_both_deliver(fake_bluez: FakeBluez) -> None:
    oximeter = fake_bluez.add(PulseOximeter())
    oximeter.start_advertising()
    device = await _find(oximeter.address)
    uuid = uuids.PLX_CONTINUOUS_MEASUREMENT.uuid
    async with BleakClient(device) as client:
        via_signal = await _collector(client, uuid)
        assert await oximeter.stream([(97, 72)], rate_hz=100) == 1
        assert decode_continuous(await _next(via_signal)) == ContinuousMeasurement(97.0, 72.0)
        await client.stop_notify(uuid)

        via_socket = await _collector(client, uuid, bluez={"use_start_notify": False})
        assert fake_bluez.calls[-1][1] == "AcquireNotify"
        assert await oximeter.stream([(95, 80), (94, 81)], rate_hz=100) == 2
        readings = [decode_continuous(await _next(via_socket)) for _ in range(2)]
        assert readings == [ContinuousMeasurement(95.0, 80.0), ContinuousMeasurement(94.0, 81.0)]
        await client.stop_notify(uuid)
        # bleak closed its end of the socketpair; the device sees nobody listening any more.
        await asyncio.sleep(0.05)
        assert await oximeter.stream([(93, 82)], rate_hz=100) == 0


async def test_thermometer_indication_decodes(fake_bluez: FakeBluez) -> None:
    thermometer = fake_bluez.add(Thermometer())
    thermometer.measure(TemperatureRecord(38.25, site=1))
    async with BleakClient(await _find(thermometer.address)) as client:
        indications = await _collector(client, uuids.TEMPERATURE_MEASUREMENT.uuid)
        measurement = decode_temperature_measurement(await _next(indications))
    assert measurement == TemperatureMeasurement(38.25, TemperatureUnit.CELSIUS, site=TemperatureSite.ARMPIT)


async def test_microbit_streams_a_fed_fall_over_acquire_notify(fake_bluez: FakeBluez) -> None:
    microbit = fake_bluez.add(MicroBit(rate_hz=200))
    fall = np.array([[0.0, 0.0, -1.0], [0.5, 0.2, -2.5], [2.9, -1.1, 0.4], [0.0, 0.98, 0.05]])
    microbit.feed(fall)
    async with BleakClient(await _find(microbit.address)) as client:
        stream = await _collector(client, uuids.MICROBIT_ACCELEROMETER_DATA.uuid, bluez={"use_start_notify": False})
        samples = np.concatenate([decode_microbit_accelerometer(await _next(stream)) for _ in range(len(fall))])
        # Nothing queued: a resting wearer, (0, 0, -1 g).
        resting = decode_microbit_accelerometer(await _next(stream))
        await client.write_gatt_char(uuids.MICROBIT_ACCELEROMETER_PERIOD.uuid, (20).to_bytes(2, "little"), True)
        with pytest.raises(BleakError):
            await client.write_gatt_char(uuids.MICROBIT_ACCELEROMETER_PERIOD.uuid, (3).to_bytes(2, "little"), True)
    np.testing.assert_allclose(samples, fall, atol=0.001)
    np.testing.assert_allclose(resting, [[0.0, 0.0, -1.0]])
    assert microbit.rate_hz == 50


async def _racp(client: BleakClient, indications: asyncio.Queue[bytes], request: bytes) -> object:
    await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, request, response=True)
    return decode_racp_response(await _next(indications))


async def _subscribe_meter(client: BleakClient) -> tuple[asyncio.Queue[bytes], asyncio.Queue[bytes]]:
    measurements = await _collector(client, uuids.GLUCOSE_MEASUREMENT.uuid)
    await client.start_notify(uuids.GLUCOSE_MEASUREMENT_CONTEXT.uuid, lambda _c, _d: None)
    racp = await _collector(client, uuids.RECORD_ACCESS_CONTROL_POINT.uuid)
    return measurements, racp


async def test_racp_count_download_and_download_from_sequence(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter(record_count=50))
    async with BleakClient(await _find(meter.address)) as client:
        measurements, racp = await _subscribe_meter(client)
        assert await _racp(client, racp, report_number_of_records().encode()) == RacpNumberOfRecords(50)

        done = await _racp(client, racp, report_all_records().encode())
        assert done == RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)
        got = [decode_glucose_measurement(measurements.get_nowait()) for _ in range(measurements.qsize())]
        assert [m.sequence_number for m in got] == list(range(1, 51))

        done = await _racp(client, racp, report_records_from(49).encode())
        assert done == RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)
        assert [decode_glucose_measurement(measurements.get_nowait()).sequence_number for _ in range(2)] == [49, 50]

        none_new = await _racp(client, racp, report_records_from(51).encode())
        assert none_new == RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)
    first = got[0]
    assert first.base_time == BleDateTime(2024, 5, 1, 7, 30, 0)
    assert first.context_follows


async def test_racp_abort_stops_a_download(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter(record_count=50, record_interval_s=0.02))
    async with BleakClient(await _find(meter.address)) as client:
        measurements, racp = await _subscribe_meter(client)
        await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, report_all_records().encode(), True)
        await _next(measurements)
        response = await _racp(client, racp, abort_operation().encode())
    assert response == RacpResponse(RacpOpcode.ABORT_OPERATION, RacpResponseCode.SUCCESS)
    assert measurements.qsize() < 49


async def test_racp_write_before_subscribing_is_refused(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter(record_count=1))
    async with BleakClient(await _find(meter.address)) as client:
        with pytest.raises(BleakError, match=r"CCCD|0xfd|253"):
            await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, report_all_records().encode(), True)


class PasskeyAgent(ServiceInterface):
    """What the gateway registers: types the passkey the meter shows."""

    def __init__(self, passkey: int) -> None:
        super().__init__("org.bluez.Agent1")
        self.passkey = passkey
        self.asked: list[str] = []

    @method()
    def RequestPasskey(self, device: "o") -> "u":  # type: ignore[name-defined]  # noqa: F821, UP037
        self.asked.append(device)
        return self.passkey

    @method()
    def RequestConfirmation(self, device: "o", passkey: "u"):  # type: ignore[name-defined,no-untyped-def]  # noqa: F821, UP037
        self.asked.append(f"confirm {passkey:06d}")

    @method()
    def DisplayPasskey(self, device: "o", passkey: "u", entered: "q"):  # type: ignore[name-defined,no-untyped-def]  # noqa: F821, UP037
        self.asked.append(f"display {passkey:06d}")

    @method()
    def Release(self):  # type: ignore[no-untyped-def]
        pass


async def _register_agent(bus_address: str, agent: PasskeyAgent) -> MessageBus:
    bus = await MessageBus(bus_address=bus_address).connect()
    bus.export("/test/agent", agent)
    for member, signature, body in (
        ("RegisterAgent", "os", ["/test/agent", "KeyboardDisplay"]),
        ("RequestDefaultAgent", "o", ["/test/agent"]),
    ):
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path="/org/bluez",
                interface="org.bluez.AgentManager1",
                member=member,
                signature=signature,
                body=body,
            )
        )
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply
    return bus


async def test_bonded_meter_refuses_until_paired_through_the_agent(fake_bluez: FakeBluez, fake_bluez_bus: str) -> None:
    meter = fake_bluez.add(
        GlucoseMeter(record_count=3, requires_bonding=True, pairing=Pairing.PASSKEY_ENTRY, passkey=246810)
    )
    device = await _find(meter.address)
    async with BleakClient(device) as client:
        with pytest.raises(BleakDBusError, match="NotPermitted"):
            await client.start_notify(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, lambda _c, _d: None)
        with pytest.raises(BleakDBusError, match="AuthenticationFailed"):
            await client.pair()  # no agent registered yet

    agent = PasskeyAgent(246810)
    agent_bus = await _register_agent(fake_bluez_bus, agent)
    try:
        async with BleakClient(device, pair=True) as client:
            _, racp = await _subscribe_meter(client)
            assert await _racp(client, racp, report_number_of_records().encode()) == RacpNumberOfRecords(3)
    finally:
        agent_bus.disconnect()
    assert agent.asked == [f"{ADAPTER_PATH}/dev_A4_C1_38_00_00_02"]
    assert meter.paired


@pytest.mark.parametrize(
    ("pairing", "asked"),
    [(Pairing.NUMERIC_COMPARISON, "confirm 024680"), (Pairing.DISPLAY_PASSKEY, "display 024680")],
)
async def test_pairing_methods_call_the_agent(
    fake_bluez: FakeBluez, fake_bluez_bus: str, pairing: Pairing, asked: str
) -> None:
    meter = fake_bluez.add(GlucoseMeter(requires_bonding=True, pairing=pairing, passkey=24680))
    agent = PasskeyAgent(0)
    agent_bus = await _register_agent(fake_bluez_bus, agent)
    try:
        async with BleakClient(await _find(meter.address), pair=True) as client:
            assert await client.read_gatt_char(uuids.GLUCOSE_FEATURE.uuid) == b"\x00\x00"
    finally:
        agent_bus.disconnect()
    assert agent.asked == [asked]
    assert meter.paired


async def test_wrong_passkey_fails_pairing(fake_bluez: FakeBluez, fake_bluez_bus: str) -> None:
    meter = fake_bluez.add(GlucoseMeter(requires_bonding=True, pairing=Pairing.PASSKEY_ENTRY, passkey=111111))
    agent_bus = await _register_agent(fake_bluez_bus, PasskeyAgent(999999))
    try:
        with pytest.raises(BleakDBusError, match="AuthenticationFailed"):
            async with BleakClient(await _find(meter.address), pair=True):
                pass
    finally:
        agent_bus.disconnect()
    assert not meter.paired


async def test_meter_that_drops_mid_download_is_seen_as_disconnected(fake_bluez: FakeBluez) -> None:
    meter = fake_bluez.add(GlucoseMeter(record_count=50, drop_after_records=5))
    lost = asyncio.Event()
    client = BleakClient(await _find(meter.address), disconnected_callback=lambda _c: lost.set())
    await client.connect()
    measurements, _ = await _subscribe_meter(client)
    await client.write_gatt_char(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, report_all_records().encode(), True)
    await asyncio.wait_for(lost.wait(), 2.0)
    assert not client.is_connected
    await client.disconnect()  # a no-op on the link, but it lets bleak release its bus socket
    assert measurements.qsize() == 5


async def test_device_that_disconnects_after_k_notifications(fake_bluez: FakeBluez) -> None:
    microbit = fake_bluez.add(MicroBit(rate_hz=500))
    microbit.drop_after_notifications = 10
    lost = asyncio.Event()
    async with BleakClient(await _find(microbit.address), disconnected_callback=lambda _c: lost.set()) as client:
        stream = await _collector(client, uuids.MICROBIT_ACCELEROMETER_DATA.uuid)
        await asyncio.wait_for(lost.wait(), 2.0)
    assert stream.qsize() == 10


async def test_connect_in_progress_then_succeeds(fake_bluez: FakeBluez) -> None:
    thermometer = fake_bluez.add(Thermometer())
    thermometer.start_advertising()
    thermometer.fail_connects(ConnectFault.IN_PROGRESS, times=2)
    device = await _find(thermometer.address)
    for _ in range(2):
        with pytest.raises(BleakDBusError, match="InProgress"):
            await BleakClient(device).connect()
    async with BleakClient(device) as client:
        assert client.is_connected
    assert thermometer.connect_attempts == 3


async def test_abort_by_local_is_retried_by_bleak(fake_bluez: FakeBluez) -> None:
    thermometer = fake_bluez.add(Thermometer())
    thermometer.start_advertising()
    thermometer.fail_connects(ConnectFault.ABORT_BY_LOCAL)
    async with BleakClient(await _find(thermometer.address), timeout=5) as client:
        assert client.is_connected
    assert thermometer.connect_attempts == 2


async def _set_powered(bus_address: str, powered: bool) -> None:
    bus = await MessageBus(bus_address=bus_address).connect()
    try:
        reply = await bus.call(
            Message(
                destination="org.bluez",
                path=ADAPTER_PATH,
                interface="org.freedesktop.DBus.Properties",
                member="Set",
                signature="ssv",
                body=["org.bluez.Adapter1", "Powered", Variant("b", powered)],
            )
        )
        assert reply is not None and reply.message_type is MessageType.METHOD_RETURN, reply
    finally:
        bus.disconnect()


async def test_wedged_adapter_reports_nothing_until_power_cycled(fake_bluez: FakeBluez, fake_bluez_bus: str) -> None:
    microbit = fake_bluez.add(MicroBit())
    fake_bluez.wedge_discovery()
    assert await BleakScanner.find_device_by_address(microbit.address, timeout=0.5) is None
    await _set_powered(fake_bluez_bus, False)
    await _set_powered(fake_bluez_bus, True)
    assert await BleakScanner.find_device_by_address(microbit.address, timeout=SCAN_TIMEOUT_S) is not None


async def test_connect_to_a_silent_device_times_out(fake_bluez: FakeBluez) -> None:
    cuff = fake_bluez.add(BloodPressureCuff(advertise_for_s=0.3))
    cuff.measure(BloodPressureRecord(120, 80, 93))
    device = await _find(cuff.address)
    cuff.stored.clear()
    cuff.stop_advertising()
    cuff.page_timeout_s = 0.2
    with pytest.raises(BleakDBusError, match="Page Timeout"):
        await BleakClient(device).connect()


SUPPORT = Path(__file__).resolve().parents[1] / "support"


async def _command(process: asyncio.subprocess.Process, command: dict[str, object]) -> dict[str, object]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(command).encode() + b"\n")
    await process.stdin.drain()
    answer: dict[str, object] = json.loads(await asyncio.wait_for(process.stdout.readline(), 5.0))
    return answer


async def test_standalone_process_is_driven_over_stdin(fake_bluez_bus: str) -> None:
    env = {**os.environ, "PYTHONPATH": f"{SUPPORT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fake_bluez", "--bus-address", fake_bluez_bus, "--scenario", "home",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 10.0))
        assert ready["event"] == "ready"
        cuff_address = ready["devices"]["cuff"]

        assert await _command(process, {"cmd": "measure", "device": "cuff", "systolic": 182, "diastolic": 96}) == {
            "ok": False,
            "error": "'measure' needs a 'mean_arterial' field",
        }
        assert await _command(
            process, {"cmd": "measure", "device": "cuff", "systolic": 182, "diastolic": 96, "mean_arterial": 125}
        ) == {"ok": True, "cmd": "measure", "stored": 1}
        async with BleakClient(await _find(cuff_address)) as client:
            indications = await _collector(client, uuids.BLOOD_PRESSURE_MEASUREMENT.uuid)
            measurement = decode_blood_pressure_measurement(await _next(indications))
        assert (measurement.systolic_mmhg, measurement.diastolic_mmhg) == (182.0, 96.0)
        assert await _command(process, {"cmd": "quit"}) == {"ok": True, "cmd": "quit"}
        assert await asyncio.wait_for(process.wait(), 5.0) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _discovery(bus: MessageBus, member: str) -> Message:
    reply = await bus.call(Message(destination="org.bluez", path=ADAPTER_PATH, interface="org.bluez.Adapter1",
                                   member=member))
    assert reply is not None
    return reply


async def test_each_bus_client_holds_one_discovery_session_as_bluetoothd_does(
    fake_bluez: FakeBluez, fake_bluez_bus: str
) -> None:
    # A second scanner in the same process shares bleak's one D-Bus connection: refused, as
    # bluetoothd refuses a second StartDiscovery from one sender (src/adapter.c, start_discovery).
    async with BleakScanner():
        with pytest.raises(BleakDBusError, match="InProgress"):
            await BleakScanner().start()
        # Another process (another bus connection) has a session of its own beside ours ...
        other = await MessageBus(bus_address=fake_bluez_bus).connect()
        try:
            assert (await _discovery(other, "StartDiscovery")).message_type is MessageType.METHOD_RETURN
            assert len(fake_bluez.discovery_sessions) == 2
            # ... and ending it leaves ours discovering.
            assert (await _discovery(other, "StopDiscovery")).message_type is MessageType.METHOD_RETURN
            assert fake_bluez.discovering
        finally:
            other.disconnect()
    assert not fake_bluez.discovering
