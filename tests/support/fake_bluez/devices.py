"""Emulated BLE health devices for the fake BlueZ, each a small :class:`Peripheral`.

Payloads are built with the project's own encoders where they exist (IEEE 11073 SFLOAT/FLOAT,
Date Time, RACP responses in ``drivers.ble``); the few measurement encoders here write the
layouts documented in reference/ble-health-devices.md, so the drivers' decoders are checked
against an independent writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from drivers.ble import uuids
from drivers.ble.datetime_char import encode_date_time
from drivers.ble.ieee11073 import encode_float, encode_sfloat
from drivers.ble.racp import (
    RacpNumberOfRecords,
    RacpOpcode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    decode_racp_request,
)
from drivers.errors import CodecError
from fake_bluez.bluez import (
    Advertisement,
    CharacteristicSpec,
    Pairing,
    Peripheral,
    ServiceSpec,
    att_error,
)

# ATT application errors the Glucose Profile defines for the RACP.
ATT_PROCEDURE_ALREADY_IN_PROGRESS = 0xFE
ATT_CCCD_IMPROPERLY_CONFIGURED = 0xFD


def _sfloat(value: float, decimals: int = 0) -> bytes:
    return encode_sfloat(round(value * 10**decimals), -decimals)


# --- measurement encoders (device side) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BloodPressureRecord:
    systolic: int
    diastolic: int
    mean_arterial: int
    pulse_rate: int | None = None
    time: datetime | None = None
    """Device-local time, as the cuff's clock shows it."""
    user_id: int | None = None
    measurement_status: int | None = None

    def encode(self) -> bytes:
        """Blood Pressure Measurement 0x2A35 in mmHg."""
        optional = (
            (0x02, None if self.time is None else encode_date_time(self.time)),
            (0x04, None if self.pulse_rate is None else _sfloat(self.pulse_rate)),
            (0x08, None if self.user_id is None else bytes([self.user_id])),
            (0x10, None if self.measurement_status is None else self.measurement_status.to_bytes(2, "little")),
        )
        flags = sum(bit for bit, field in optional if field is not None)
        body = _sfloat(self.systolic) + _sfloat(self.diastolic) + _sfloat(self.mean_arterial)
        return bytes([flags]) + body + b"".join(field for _, field in optional if field is not None)


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    sequence_number: int
    time: datetime
    mmol_per_l: float
    sample_type: int = 1
    """1 capillary whole blood ... 10 control solution."""
    sample_location: int = 1
    """1 finger ... 4 control solution, 15 not available."""
    sensor_status: int | None = None
    meal: int | None = None
    """Context meal code (1 preprandial, 2 postprandial, 3 fasting...); None sends no context."""

    def encode(self) -> bytes:
        """Glucose Measurement 0x2A18, concentration in mol/L."""
        flags = 0x02 | 0x04 | (0x08 if self.sensor_status is not None else 0) | (0x10 if self.meal is not None else 0)
        data = bytes([flags]) + self.sequence_number.to_bytes(2, "little") + encode_date_time(self.time)
        # mol/L with exponent -5 keeps three significant mmol/L decimals in 12 bits.
        data += encode_sfloat(round(self.mmol_per_l * 100), -5)
        data += bytes([(self.sample_location << 4) | self.sample_type])
        if self.sensor_status is not None:
            data += self.sensor_status.to_bytes(2, "little")
        return data

    def encode_context(self) -> bytes | None:
        """Glucose Measurement Context 0x2A34 with the meal field, when there is one."""
        if self.meal is None:
            return None
        return bytes([0x02]) + self.sequence_number.to_bytes(2, "little") + bytes([self.meal])


@dataclass(frozen=True, slots=True)
class SpotCheckRecord:
    spo2: int
    pulse_rate: int
    time: datetime | None = None

    def encode(self) -> bytes:
        """PLX Spot-check Measurement 0x2A5E."""
        flags = 0x01 if self.time is not None else 0
        data = bytes([flags]) + _sfloat(self.spo2) + _sfloat(self.pulse_rate)
        return data + (encode_date_time(self.time) if self.time is not None else b"")


def encode_plx_continuous(spo2: int, pulse_rate: int) -> bytes:
    """PLX Continuous Measurement 0x2A5F with only the normal SpO2/PR pair."""
    return b"\x00" + _sfloat(spo2) + _sfloat(pulse_rate)


@dataclass(frozen=True, slots=True)
class TemperatureRecord:
    celsius: float
    time: datetime | None = None
    site: int | None = None
    """Temperature Type: 1 armpit, 2 body, 3 ear, ... 9 tympanum."""

    def encode(self) -> bytes:
        """Temperature Measurement 0x2A1C in °C (FLOAT, two decimals)."""
        flags = (0x02 if self.time is not None else 0) | (0x04 if self.site is not None else 0)
        data = bytes([flags]) + encode_float(round(self.celsius * 100), -2)
        if self.time is not None:
            data += encode_date_time(self.time)
        return data + (bytes([self.site]) if self.site is not None else b"")


# --- store-and-forward measuring devices ------------------------------------------------------


class MeasuringDevice(Peripheral):
    """A cuff, thermometer or spot-check oximeter: it measures, then advertises for a while.

    A measurement is kept until it has been indicated to a subscribed client. After the last one
    the device stops advertising and hangs up, as A&D and Omron devices do.
    """

    measurement_uuid: str = ""

    def __init__(
        self,
        address: str,
        name: str,
        services: tuple[ServiceSpec, ...],
        *,
        advertise_for_s: float = 20.0,
        hang_up_when_done: bool = True,
    ) -> None:
        super().__init__(address, name, services, advertisement=Advertisement(service_uuids=(services[0].uuid,)))
        self.advertise_for_s = advertise_for_s
        self.hang_up_when_done = hang_up_when_done
        self.stored: list[bytes] = []
        self.delivered: list[bytes] = []
        self._advert_timer: asyncio.TimerHandle | None = None

    def store(self, payload: bytes) -> None:
        """Keep a measurement and advertise for ``advertise_for_s`` so the hub can fetch it."""
        self.stored.append(payload)
        self.start_advertising()
        if self._advert_timer is not None:
            self._advert_timer.cancel()
        self._advert_timer = asyncio.get_running_loop().call_later(self.advertise_for_s, self.stop_advertising)

    async def on_subscribed(self, uuid: str) -> None:
        if uuid != self.measurement_uuid:
            return
        while self.stored:
            if not await self.notify(uuid, self.stored[0]):
                return  # link lost: the measurement stays stored for the next connection
            self.delivered.append(self.stored.pop(0))
        self.stop_advertising()
        if self.hang_up_when_done:
            await asyncio.sleep(0.05)
            await self.drop_link()


class BloodPressureCuff(MeasuringDevice):
    measurement_uuid = uuids.BLOOD_PRESSURE_MEASUREMENT.uuid

    def __init__(
        self,
        address: str = "A4:C1:38:00:00:01",
        name: str = "BLESmart_0000",
        *,
        feature: int = 0x0001,
        advertise_for_s: float = 20.0,
        hang_up_when_done: bool = True,
    ) -> None:
        services = (
            ServiceSpec(
                uuids.BLOOD_PRESSURE_SERVICE,
                (
                    CharacteristicSpec(self.measurement_uuid, ("indicate",)),
                    CharacteristicSpec(uuids.BLOOD_PRESSURE_FEATURE.uuid, ("read",), feature.to_bytes(2, "little")),
                ),
            ),
        )
        super().__init__(address, name, services, advertise_for_s=advertise_for_s, hang_up_when_done=hang_up_when_done)

    def measure(self, record: BloodPressureRecord) -> None:
        self.store(record.encode())


class Thermometer(MeasuringDevice):
    measurement_uuid = uuids.TEMPERATURE_MEASUREMENT.uuid

    def __init__(
        self,
        address: str = "A4:C1:38:00:00:04",
        name: str = "TEMP-01",
        *,
        advertise_for_s: float = 20.0,
        hang_up_when_done: bool = True,
    ) -> None:
        services = (
            ServiceSpec(uuids.HEALTH_THERMOMETER_SERVICE, (CharacteristicSpec(self.measurement_uuid, ("indicate",)),)),
        )
        super().__init__(address, name, services, advertise_for_s=advertise_for_s, hang_up_when_done=hang_up_when_done)

    def measure(self, record: TemperatureRecord) -> None:
        self.store(record.encode())


class PulseOximeter(MeasuringDevice):
    """Spot-check results are stored and indicated; :meth:`stream` notifies continuous readings."""

    measurement_uuid = uuids.PLX_SPOT_CHECK_MEASUREMENT.uuid

    def __init__(
        self,
        address: str = "A4:C1:38:00:00:03",
        name: str = "PO-60",
        *,
        advertise_for_s: float = 20.0,
        hang_up_when_done: bool = False,
    ) -> None:
        services = (
            ServiceSpec(
                uuids.PULSE_OXIMETER_SERVICE,
                (
                    CharacteristicSpec(self.measurement_uuid, ("indicate",)),
                    CharacteristicSpec(uuids.PLX_CONTINUOUS_MEASUREMENT.uuid, ("notify",)),
                    CharacteristicSpec(uuids.PLX_FEATURES.uuid, ("read",), b"\x00\x00"),
                ),
            ),
        )
        super().__init__(address, name, services, advertise_for_s=advertise_for_s, hang_up_when_done=hang_up_when_done)

    def measure(self, record: SpotCheckRecord) -> None:
        self.store(record.encode())

    async def stream(self, readings: Iterable[tuple[int, int]], rate_hz: float = 1.0) -> int:
        """Notify (SpO2 %, pulse bpm) pairs at ``rate_hz``; returns how many were delivered."""
        sent = 0
        for spo2, pulse_rate in readings:
            if await self.notify(uuids.PLX_CONTINUOUS_MEASUREMENT.uuid, encode_plx_continuous(spo2, pulse_rate)):
                sent += 1
            await asyncio.sleep(1.0 / rate_hz)
        return sent


# --- glucose meter with the Record Access Control Point ---------------------------------------


def default_glucose_records(count: int, start: datetime | None = None) -> list[GlucoseRecord]:
    """``count`` plausible fasting and after-meal readings, one every 12 hours, sequence 1..count."""
    first = start or datetime(2024, 5, 1, 7, 30)  # meters keep naive local time
    return [
        GlucoseRecord(
            sequence_number=n,
            time=first + timedelta(hours=12 * (n - 1)),
            mmol_per_l=5.6 + (n % 7) * 0.4,
            meal=3 if n % 2 else 2,
        )
        for n in range(1, count + 1)
    ]


class GlucoseMeter(Peripheral):
    """A meter with stored records downloaded over the RACP (report number, report all / >= N, abort).

    ``requires_bonding`` makes the measurement, context and RACP characteristics answer
    NotPermitted until the hub has paired (by ``pairing``, with ``passkey``).
    ``drop_after_records`` is the bad day where the meter sends that many records and hangs up.
    """

    def __init__(
        self,
        address: str = "A4:C1:38:00:00:02",
        name: str = "Meter-01",
        *,
        records: list[GlucoseRecord] | None = None,
        record_count: int = 50,
        requires_bonding: bool = False,
        pairing: Pairing = Pairing.JUST_WORKS,
        passkey: int = 123456,
        record_interval_s: float = 0.002,
        drop_after_records: int | None = None,
        count_down_from: int | None = None,
        ignores_filters: bool = False,
    ) -> None:
        encrypted = requires_bonding
        services = (
            ServiceSpec(
                uuids.GLUCOSE_SERVICE,
                (
                    CharacteristicSpec(uuids.GLUCOSE_MEASUREMENT.uuid, ("notify",), encrypted=encrypted),
                    CharacteristicSpec(uuids.GLUCOSE_MEASUREMENT_CONTEXT.uuid, ("notify",), encrypted=encrypted),
                    CharacteristicSpec(
                        uuids.RECORD_ACCESS_CONTROL_POINT.uuid, ("write", "indicate"), encrypted=encrypted
                    ),
                    CharacteristicSpec(uuids.GLUCOSE_FEATURE.uuid, ("read",), b"\x00\x00"),
                ),
            ),
        )
        super().__init__(
            address,
            name,
            services,
            advertisement=Advertisement(service_uuids=(uuids.GLUCOSE_SERVICE,)),
            requires_bonding=requires_bonding,
            pairing=pairing,
            passkey=passkey,
        )
        self.count_down_from = count_down_from
        """TaiDoc style: the first record is numbered this, each new one one lower (None: 1, 2, 3 ...)."""
        self.ignores_filters = ignores_filters
        """Contour Next One style: every "report records" request gets the whole memory."""
        self.records = list(records) if records is not None else default_glucose_records(record_count)
        if count_down_from is not None:
            self.records = [dataclasses.replace(r, sequence_number=count_down_from - index)
                            for index, r in enumerate(self.records)]
        self.record_interval_s = record_interval_s
        self.drop_after_records = drop_after_records
        self.racp_requests: list[RacpRequest] = []
        self._procedure: asyncio.Task[None] | None = None
        self.start_advertising()

    def add_record(self, mmol_per_l: float, time: datetime, meal: int | None = None) -> GlucoseRecord:
        step = -1 if self.count_down_from is not None else 1
        first = self.count_down_from if self.count_down_from is not None else 1
        sequence = (self.records[-1].sequence_number + step) if self.records else first
        record = GlucoseRecord(sequence, time, mmol_per_l, meal=meal)
        self.records.append(record)
        return record

    def reset_memory(self) -> None:
        """Battery out or a factory reset: the records are gone and the numbering starts again."""
        self.records = []

    def check_write(self, uuid: str, data: bytes) -> None:
        if uuid != uuids.RECORD_ACCESS_CONTROL_POINT.uuid:
            return
        if not self.is_subscribed(uuid):
            raise att_error(ATT_CCCD_IMPROPERLY_CONFIGURED)
        busy = self._procedure is not None and not self._procedure.done()
        if busy and data[:1] != bytes([RacpOpcode.ABORT_OPERATION]):
            raise att_error(ATT_PROCEDURE_ALREADY_IN_PROGRESS)

    async def on_write(self, uuid: str, data: bytes) -> None:
        if uuid != uuids.RECORD_ACCESS_CONTROL_POINT.uuid:
            return
        try:
            request = decode_racp_request(data)
        except CodecError:
            opcode = RacpOpcode(data[0]) if data and data[0] in RacpOpcode._value2member_map_ else None
            if opcode is None:
                await self._respond(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.OPCODE_NOT_SUPPORTED)
            else:
                await self._respond(opcode, RacpResponseCode.INVALID_OPERATOR)
            return
        self.racp_requests.append(request)
        if request.opcode is RacpOpcode.ABORT_OPERATION:
            await self._abort()
            return
        self._procedure = asyncio.get_running_loop().create_task(self._run(request))

    async def on_disconnected(self) -> None:
        if self._procedure is not None:
            self._procedure.cancel()

    def _selected(self, request: RacpRequest) -> list[GlucoseRecord] | RacpResponseCode:
        if request.operator is RacpOperator.ALL_RECORDS or (
                self.ignores_filters and request.opcode is RacpOpcode.REPORT_STORED_RECORDS):
            return list(self.records)
        if request.operator in (RacpOperator.FIRST_RECORD, RacpOperator.LAST_RECORD):
            edge = self.records[:1] if request.operator is RacpOperator.FIRST_RECORD else self.records[-1:]
            return list(edge)
        if request.operator is RacpOperator.LESS_THAN_OR_EQUAL:
            if len(request.operand) != 3 or request.operand[0] != 0x01:
                return RacpResponseCode.INVALID_OPERAND
            last = int.from_bytes(request.operand[1:3], "little")
            return [r for r in self.records if r.sequence_number <= last]
        if request.operator is RacpOperator.GREATER_THAN_OR_EQUAL:
            if len(request.operand) != 3:
                return RacpResponseCode.INVALID_OPERAND
            if request.operand[0] != 0x01:
                return RacpResponseCode.OPERAND_NOT_SUPPORTED
            first = int.from_bytes(request.operand[1:3], "little")
            return [r for r in self.records if r.sequence_number >= first]
        if request.operator is RacpOperator.NULL:
            return RacpResponseCode.INVALID_OPERATOR
        return RacpResponseCode.OPERATOR_NOT_SUPPORTED

    async def _run(self, request: RacpRequest) -> None:
        selected = self._selected(request)
        if isinstance(selected, RacpResponseCode):
            await self._respond(request.opcode, selected)
            return
        if request.opcode is RacpOpcode.REPORT_NUMBER_OF_STORED_RECORDS:
            await self.notify(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, RacpNumberOfRecords(len(selected)).encode())
            return
        if request.opcode is not RacpOpcode.REPORT_STORED_RECORDS:
            await self._respond(request.opcode, RacpResponseCode.OPCODE_NOT_SUPPORTED)
            return
        if not selected:
            await self._respond(request.opcode, RacpResponseCode.NO_RECORDS_FOUND)
            return
        for sent, record in enumerate(selected, start=1):
            await self.notify(uuids.GLUCOSE_MEASUREMENT.uuid, record.encode())
            context = record.encode_context()
            if context is not None:
                await self.notify(uuids.GLUCOSE_MEASUREMENT_CONTEXT.uuid, context)
            if self.drop_after_records is not None and sent >= self.drop_after_records:
                await self.drop_link()
                return
            await asyncio.sleep(self.record_interval_s)
        await self._respond(request.opcode, RacpResponseCode.SUCCESS)

    async def _abort(self) -> None:
        procedure, self._procedure = self._procedure, None
        if procedure is not None and not procedure.done():
            procedure.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await procedure
        await self._respond(RacpOpcode.ABORT_OPERATION, RacpResponseCode.SUCCESS)

    async def _respond(self, opcode: RacpOpcode, code: RacpResponseCode) -> None:
        await self.notify(uuids.RECORD_ACCESS_CONTROL_POINT.uuid, RacpResponse(opcode, code).encode())


# --- BTHome v2 button -------------------------------------------------------------------------

# BTHome v2 object ids and button event codes (bthome.io/format).
_BTHOME_PACKET_ID = 0x00
_BTHOME_BATTERY = 0x01
_BTHOME_BUTTON = 0x3A
BTHOME_EVENTS: dict[str, int] = {"none": 0x00, "press": 0x01, "double_press": 0x02, "triple_press": 0x03,
                                 "long_press": 0x04, "long_double_press": 0x05, "long_triple_press": 0x06,
                                 "hold_press": 0x80}  # fmt: skip
# Device information byte: BTHome v2, unencrypted, trigger-based (the button sleeps between presses).
_BTHOME_V2_TRIGGER = 0x44


def encode_bthome_button(packet_id: int, event: str, battery_percent: int) -> bytes:
    """Service data for UUID 0xFCD2: objects in ascending id order, as the format requires."""
    return bytes(
        [_BTHOME_V2_TRIGGER, _BTHOME_PACKET_ID, packet_id, _BTHOME_BATTERY, battery_percent,
         _BTHOME_BUTTON, BTHOME_EVENTS[event]]
    )  # fmt: skip


class BTHomeButton(Peripheral):
    """An SOS button (Shelly BLU Button style): a press advertises a burst with a new packet id."""

    def __init__(
        self,
        address: str = "3C:2E:F5:00:00:05",
        name: str = "SBBT-002C",
        *,
        battery_percent: int = 100,
        burst_s: float = 1.0,
    ) -> None:
        super().__init__(address, name, advert_interval_s=0.05)
        self.packet_id = 0
        self.battery_percent = battery_percent
        self.burst_s = burst_s
        self._burst_end: asyncio.TimerHandle | None = None
        self._set_payload("none")

    def _set_payload(self, event: str) -> None:
        self.advertisement.service_data = {
            uuids.BTHOME_SERVICE_DATA: encode_bthome_button(self.packet_id, event, self.battery_percent)
        }

    def press(self, event: str = "press") -> int:
        """Press the button; returns the packet id the burst carries."""
        if event not in BTHOME_EVENTS:
            raise ValueError(f"unknown BTHome button event {event!r}; one of {sorted(BTHOME_EVENTS)}")
        self.packet_id = (self.packet_id + 1) % 256
        self._set_payload(event)
        self.start_advertising()
        if self._burst_end is not None:
            self._burst_end.cancel()
        self._burst_end = asyncio.get_running_loop().call_later(self.burst_s, self.stop_advertising)
        return self.packet_id


# --- BBC micro:bit accelerometer --------------------------------------------------------------

MICROBIT_PERIODS_MS = (1, 2, 5, 10, 20, 80, 160, 640)
_RESTING_MILLI_G = np.array([[0, 0, -1000]], dtype=np.int16)


class MicroBit(Peripheral):
    """A micro:bit wearable notifying x, y, z int16 milli-g samples on the accelerometer data.

    It streams while subscribed, at ``rate_hz`` (or what the hub writes to the period
    characteristic). Samples come from :meth:`feed` (e.g. a recorded fall, N x 3 in g) and,
    when none are queued, a wearer lying still (0, 0, -1 g).
    """

    def __init__(
        self,
        address: str = "D4:8A:FC:00:00:06",
        name: str = "BBC micro:bit [tovit]",
        *,
        rate_hz: float = 50.0,
        samples_per_notification: int = 1,
    ) -> None:
        services = (
            ServiceSpec(
                uuids.MICROBIT_ACCELEROMETER_SERVICE,
                (
                    CharacteristicSpec(uuids.MICROBIT_ACCELEROMETER_DATA.uuid, ("read", "notify")),
                    CharacteristicSpec(
                        uuids.MICROBIT_ACCELEROMETER_PERIOD.uuid,
                        ("read", "write"),
                        round(1000 / rate_hz).to_bytes(2, "little"),
                    ),
                ),
            ),
        )
        super().__init__(address, name, services)
        self.rate_hz = rate_hz
        self.samples_per_notification = samples_per_notification
        self.queued: npt.NDArray[np.int16] = np.empty((0, 3), dtype=np.int16)
        self.samples_sent = 0
        self._streamer: asyncio.Task[None] | None = None
        self.start_advertising()

    def feed(self, samples_g: npt.ArrayLike) -> None:
        """Queue N x 3 samples in g to stream next."""
        samples = np.asarray(samples_g, dtype=np.float64)
        if samples.ndim != 2 or samples.shape[1] != 3:
            raise ValueError(f"samples must be N x 3 (x, y, z in g), got shape {samples.shape}")
        milli_g = np.clip(np.rint(samples * 1000), -32768, 32767).astype(np.int16)
        self.queued = np.concatenate([self.queued, milli_g])

    async def wait_drained(self) -> None:
        """Wait until every fed sample has been notified (or the stream stopped)."""
        while len(self.queued) and self._streamer is not None and not self._streamer.done():
            await asyncio.sleep(0.01)

    def check_write(self, uuid: str, data: bytes) -> None:
        if uuid == uuids.MICROBIT_ACCELEROMETER_PERIOD.uuid and (
            len(data) != 2 or int.from_bytes(data, "little") not in MICROBIT_PERIODS_MS
        ):
            raise att_error(0x13)  # Value Not Allowed: the DAL only takes its fixed periods

    async def on_write(self, uuid: str, data: bytes) -> None:
        if uuid == uuids.MICROBIT_ACCELEROMETER_PERIOD.uuid:
            self.rate_hz = 1000 / int.from_bytes(data, "little")

    async def on_subscribed(self, uuid: str) -> None:
        if uuid == uuids.MICROBIT_ACCELEROMETER_DATA.uuid and (self._streamer is None or self._streamer.done()):
            self._streamer = asyncio.get_running_loop().create_task(self._stream())

    async def on_disconnected(self) -> None:
        if self._streamer is not None:
            self._streamer.cancel()

    def _next_samples(self) -> npt.NDArray[np.int16]:
        count = self.samples_per_notification
        if len(self.queued):
            taken, self.queued = self.queued[:count], self.queued[count:]
            return taken
        return np.repeat(_RESTING_MILLI_G, count, axis=0)

    async def _stream(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        uuid = uuids.MICROBIT_ACCELEROMETER_DATA.uuid
        while self.is_subscribed(uuid):
            samples = self._next_samples()
            if await self.notify(uuid, samples.astype("<i2").tobytes()):
                self.samples_sent += len(samples)
            # Absolute deadlines: the rate holds on average even when one send runs late.
            deadline += len(samples) / self.rate_hz
            await asyncio.sleep(max(0.0, deadline - loop.time()))


# --- Xiaomi MiBeacon body thermometer ---------------------------------------------------------

# MiBeacon frame control bits and the objects written here (the MiBeacon format as xiaomi-ble and
# Xiaomi's own object list describe it); the encryption is MiBeacon v4/v5 AES-CCM with a 4-byte tag.
_MIBEACON_V5 = 5 << 12
_MIBEACON_ENCRYPTED = 0x0008
_MIBEACON_MAC_INCLUDED = 0x0010
_MIBEACON_OBJECT_INCLUDED = 0x0040
_MIBEACON_AAD = b"\x11"
MIBEACON_BODY_TEMPERATURE = 0x000A
"""Object 0x000A: body temperature, int16 in 0.01 °C (the MMC-W505)."""
MIBEACON_PRODUCTS = {"MMC-W505": 0x0391, "BPX1": 0xBEEF}
"""Product ids. The BPX1's is not public: 0xBEEF stands for "a product xiaomi-ble does not know"."""


def encode_mibeacon(address: str, product_id: int, frame_counter: int, objects: bytes,
                    bind_key: bytes | None = None, ext_counter: int = 0) -> bytes:
    """0xFE95 service data: a MiBeacon v5 frame with the MAC, encrypted when a bind key is given."""
    mac_reversed = bytes.fromhex(address.replace(":", ""))[::-1]
    frame_control = _MIBEACON_V5 | _MIBEACON_MAC_INCLUDED | _MIBEACON_OBJECT_INCLUDED
    if bind_key is not None:
        frame_control |= _MIBEACON_ENCRYPTED
    head = frame_control.to_bytes(2, "little") + product_id.to_bytes(2, "little") + bytes([frame_counter & 0xFF])
    if bind_key is None:
        return head + mac_reversed + objects
    ext = ext_counter.to_bytes(3, "little")
    nonce = mac_reversed + head[2:5] + ext
    sealed = AESCCM(bind_key, tag_length=4).encrypt(nonce, objects, _MIBEACON_AAD)
    return head + mac_reversed + sealed[:-4] + ext + sealed[-4:]


def mibeacon_object(object_id: int, value: bytes) -> bytes:
    return object_id.to_bytes(2, "little") + bytes([len(value)]) + value


class XiaomiThermometer(Peripheral):
    """A MiBeacon body thermometer (MMC-W505 by default): each measurement is a burst of advertisements
    with a new frame counter, encrypted with ``bind_key`` when one is given. ``product`` "BPX1" makes
    it a product xiaomi-ble does not know, as the Mijia BPX1 cuff is."""

    def __init__(
        self,
        address: str = "D0:24:18:53:AB:07",
        name: str = "MMC-W505",
        *,
        bind_key: bytes | None = bytes.fromhex("b65f0e3b2cd35e8a4a3f6e9c5d7e1a20"),
        product: str = "MMC-W505",
        burst_s: float = 1.0,
    ) -> None:
        super().__init__(address, name, advert_interval_s=0.05)
        self.bind_key = bind_key
        self.product_id = MIBEACON_PRODUCTS[product]
        self.frame_counter = 0
        self.burst_s = burst_s
        self._burst_end: asyncio.TimerHandle | None = None

    def measure(self, celsius: float) -> int:
        """Advertise a body temperature for ``burst_s``; returns the frame counter it carries."""
        self.frame_counter = (self.frame_counter + 1) % 256
        value = round(celsius * 100).to_bytes(2, "little", signed=True)
        self.advertisement.service_data = {uuids.MIBEACON_SERVICE_DATA: encode_mibeacon(
            self.address, self.product_id, self.frame_counter, mibeacon_object(MIBEACON_BODY_TEMPERATURE, value),
            self.bind_key, ext_counter=self.frame_counter)}
        self.start_advertising()
        if self._burst_end is not None:
            self._burst_end.cancel()
        self._burst_end = asyncio.get_running_loop().call_later(self.burst_s, self.stop_advertising)
        return self.frame_counter


# --- A&D UA-651BLE ----------------------------------------------------------------------------

AND_CUSTOM_SERVICE = "233bf000-5a34-1b6d-975c-000d5690abe4"
AND_COMMAND = "233bf001-5a34-1b6d-975c-000d5690abe4"
AND_SEND_READINGS = bytes([0x02, 0x00, 0xE1])


class AndCuff(BloodPressureCuff):
    """An A&D UA-651BLE: indicates its unsent readings only after A&D's command and a Date Time write,
    in that order (obniz ``parts/Ble/UA651BLE``), then hangs up. ``writes`` records what the hub wrote."""

    def __init__(self, address: str = "5C:F8:21:00:65:1B", name: str = "A&D_UA-651BLE_1B", **options: object) -> None:
        super().__init__(address, name, **options)  # type: ignore[arg-type]
        bps, *_ = self.services
        self.services = (
            ServiceSpec(bps.uuid, (*bps.characteristics, CharacteristicSpec(uuids.DATE_TIME.uuid, ("write",)))),
            ServiceSpec(AND_CUSTOM_SERVICE, (CharacteristicSpec(AND_COMMAND, ("write",)),)),
        )
        self.writes: list[tuple[str, bytes]] = []

    async def on_connected(self) -> None:
        self.writes.clear()

    async def on_write(self, uuid: str, data: bytes) -> None:
        self.writes.append((uuid, data))

    @property
    def told_to_send(self) -> bool:
        """A&D's command, then the clock: what the cuff waits for before it indicates."""
        uuids_written = [uuid for uuid, _ in self.writes]
        return (uuids_written[:2] == [AND_COMMAND, uuids.DATE_TIME.uuid]
                and self.writes[0][1] == AND_SEND_READINGS and len(self.writes[1][1]) == 7)

    async def on_subscribed(self, uuid: str) -> None:
        if self.told_to_send:
            await super().on_subscribed(uuid)
