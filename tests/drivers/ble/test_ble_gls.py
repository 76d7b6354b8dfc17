"""Glucose Measurement (0x2A18), Glucose Measurement Context (0x2A34) and the RACP (0x2A52)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.datetime_char import BleDateTime, encode_date_time
from drivers.ble.gls import (
    ConcentrationUnit,
    GlucoseContext,
    GlucoseMeasurement,
    SampleLocation,
    SampleType,
    SensorStatus,
    decode_glucose_context,
    decode_glucose_measurement,
    glucose_reading,
    pair_contexts,
)
from drivers.ble.ieee11073 import SpecialValue, SpecialValueError, encode_sfloat, encode_sfloat_special
from drivers.ble.racp import (
    RacpNumberOfRecords,
    RacpOpcode,
    RacpOperator,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    abort_operation,
    decode_racp_request,
    decode_racp_response,
    report_all_records,
    report_number_of_records,
    report_number_of_records_from,
    report_records_from,
)
from drivers.errors import CodecError
from drivers.model import DeviceInfo, Glucose, GlucoseSample, HubTime, MealContext, Reading, ReadingFlag, TimeSource

# Accu-Chek Guide, captured in innoveit/react-native-ble-manager issue #1162: the meter showed
# 6.2 mmol/L. Flags 0x1B, seq 15, 2024-01-30 05:58:27, offset +339 min, 111e-5 kg/L, type 8
# (undetermined plasma), location not available, status 0, context follows.
ACCU_CHEK_GUIDE = bytes([27, 15, 0, 232, 7, 1, 30, 5, 58, 27, 83, 1, 111, 176, 248, 0, 0])
# A glucometer in dotintent/react-native-ble-plx issue #652 (base64 "AwYA5AcEDRAmCgAAeLDx"):
# 120 mg/dL, seq 6, 2020-04-13 16:38:10, offset 0, capillary whole blood.
BLE_PLX_METER = bytes.fromhex("030600e407040d10260a000078b0f1")
# Nordic Android-BLE-Common-Library GlucoseMeasurementDataCallbackTest: seq 1, 2019-02-27
# 11:10:30, offset -5 min, 30 kg/L (sic), capillary plasma at the finger, status 0x0105.
NORDIC_GLUCOSE = bytes([0b011011, 1, 0, 0xE3, 0x07, 2, 27, 11, 10, 30, 0xFB, 0xFF, 30, 0, 0x12, 0b101, 0b1])


def test_accu_chek_guide_capture() -> None:
    assert decode_glucose_measurement(ACCU_CHEK_GUIDE) == GlucoseMeasurement(
        sequence_number=15,
        base_time=BleDateTime(2024, 1, 30, 5, 58, 27),
        time_offset_minutes=339,
        concentration_mmol_l=6.16,  # 111 mg/dL / 18.016, the meter rounds to 6.2
        unit_sent=ConcentrationUnit.KG_PER_L,
        sample_type=SampleType.UNDETERMINED_PLASMA,
        sample_location=SampleLocation.NOT_AVAILABLE,
        context_follows=True,
    )


def test_react_native_ble_plx_capture() -> None:
    measurement = decode_glucose_measurement(BLE_PLX_METER)
    assert measurement == GlucoseMeasurement(
        sequence_number=6,
        base_time=BleDateTime(2020, 4, 13, 16, 38, 10),
        time_offset_minutes=0,
        concentration_mmol_l=6.66,  # 120 mg/dL
        unit_sent=ConcentrationUnit.KG_PER_L,
        sample_type=SampleType.CAPILLARY_WHOLE_BLOOD,
        sample_location=SampleLocation.NOT_AVAILABLE,
    )
    assert measurement.device_time == datetime(2020, 4, 13, 16, 38, 10)


def test_nordic_vector_with_negative_offset_and_status() -> None:
    measurement = decode_glucose_measurement(NORDIC_GLUCOSE)
    assert measurement == GlucoseMeasurement(
        sequence_number=1,
        base_time=BleDateTime(2019, 2, 27, 11, 10, 30),
        time_offset_minutes=-5,
        concentration_mmol_l=166518.65,  # 30 kg/L is not physiological; the vector tests layout only
        unit_sent=ConcentrationUnit.KG_PER_L,
        sample_type=SampleType.CAPILLARY_PLASMA,
        sample_location=SampleLocation.FINGER,
        sensor_status=frozenset(
            {SensorStatus.BATTERY_LOW, SensorStatus.SAMPLE_SIZE_INSUFFICIENT, SensorStatus.TEMPERATURE_TOO_LOW}
        ),
        flags=frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE}),
        context_follows=True,
    )
    assert measurement.device_time == datetime(2019, 2, 27, 11, 5, 30)


def _payload(flags: int, status: int = 0x0020) -> bytes:
    body = (42).to_bytes(2, "little") + encode_date_time(datetime(2024, 5, 1, 7, 30, 0))
    if flags & 0x01:
        body += (-90).to_bytes(2, "little", signed=True)
    if flags & 0x02:
        # 5.6 mmol/L as 5.6e-3 mol/L, or 101 mg/dL as 101e-5 kg/L.
        body += encode_sfloat(56, -4) if flags & 0x04 else encode_sfloat(101, -5)
        body += bytes([0x11])  # capillary whole blood, finger
    if flags & 0x08:
        body += status.to_bytes(2, "little")
    return bytes([flags]) + body


def _expected(flags: int) -> GlucoseMeasurement:
    has_value = bool(flags & 0x02)
    mol = bool(flags & 0x04)
    return GlucoseMeasurement(
        sequence_number=42,
        base_time=BleDateTime(2024, 5, 1, 7, 30, 0),
        time_offset_minutes=-90 if flags & 0x01 else None,
        concentration_mmol_l=(5.6 if mol else 5.61) if has_value else None,
        unit_sent=(ConcentrationUnit.MOL_PER_L if mol else ConcentrationUnit.KG_PER_L) if has_value else None,
        sample_type=SampleType.CAPILLARY_WHOLE_BLOOD if has_value else None,
        sample_location=SampleLocation.FINGER if has_value else None,
        sensor_status=frozenset({SensorStatus.RESULT_ABOVE_RANGE}) if flags & 0x08 else frozenset(),
        flags=frozenset({ReadingFlag.ABOVE_RANGE}) if flags & 0x08 else frozenset(),
        context_follows=bool(flags & 0x10),
    )


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    payload = _payload(flags)
    assert decode_glucose_measurement(payload) == _expected(flags)
    with pytest.raises(CodecError, match="truncated"):
        decode_glucose_measurement(payload[:-1])


@pytest.mark.parametrize(
    ("type_location", "sample_type", "location"),
    [
        (0x4A, SampleType.CONTROL_SOLUTION, SampleLocation.CONTROL_SOLUTION),
        (0xFA, SampleType.CONTROL_SOLUTION, SampleLocation.NOT_AVAILABLE),
        (0x41, SampleType.CAPILLARY_WHOLE_BLOOD, SampleLocation.CONTROL_SOLUTION),
    ],
)
def test_control_solution_is_flagged_and_never_evaluated(
    type_location: int,
    sample_type: SampleType,
    location: SampleLocation,
    device: DeviceInfo,
    received: HubTime,
) -> None:
    payload = bytearray(_payload(0x02))
    payload[-1] = type_location
    measurement = decode_glucose_measurement(bytes(payload))
    assert (measurement.sample_type, measurement.sample_location) == (sample_type, location)
    assert measurement.is_control_solution
    reading = glucose_reading(measurement, None, device=device, resident_id="r", received=received, clock_offset=None)
    assert reading is not None
    assert not reading.evaluable


@pytest.mark.parametrize("type_location", [0x10, 0x1B, 0x1F, 0x01, 0x51, 0xE1])
def test_reserved_type_or_location_is_refused(type_location: int) -> None:
    payload = bytearray(_payload(0x02))
    payload[-1] = type_location
    with pytest.raises(CodecError, match="reserved"):
        decode_glucose_measurement(bytes(payload))


@pytest.mark.parametrize(
    ("special", "flag"),
    [
        (SpecialValue.POSITIVE_INFINITY, ReadingFlag.ABOVE_RANGE),
        (SpecialValue.NEGATIVE_INFINITY, ReadingFlag.BELOW_RANGE),
    ],
)
def test_infinite_concentration_is_hi_lo(special: SpecialValue, flag: ReadingFlag) -> None:
    payload = bytes([0x02]) + _payload(0x00)[1:] + encode_sfloat_special(special) + b"\x11"
    measurement = decode_glucose_measurement(payload)
    assert measurement.concentration_mmol_l is None
    assert measurement.flags == frozenset({flag})


@pytest.mark.parametrize("special", [SpecialValue.NAN, SpecialValue.NRES, SpecialValue.RESERVED])
def test_other_special_concentrations_are_refused(special: SpecialValue) -> None:
    payload = bytes([0x02]) + _payload(0x00)[1:] + encode_sfloat_special(special) + b"\x11"
    with pytest.raises(SpecialValueError, match="glucose concentration"):
        decode_glucose_measurement(payload)


def test_every_sensor_status_bit() -> None:
    measurement = decode_glucose_measurement(_payload(0x08, 0x0FFF))
    assert measurement.sensor_status == frozenset(SensorStatus)
    assert measurement.flags == frozenset(
        {
            ReadingFlag.SENSOR_FAULT,
            ReadingFlag.MEASUREMENT_UNRELIABLE,
            ReadingFlag.ABOVE_RANGE,
            ReadingFlag.BELOW_RANGE,
        }
    )


def test_unknown_base_date_decodes() -> None:
    payload = bytearray(_payload(0x00))
    payload[3:7] = b"\x00\x00\x00\x00"  # year and month unknown
    assert decode_glucose_measurement(bytes(payload)).device_time is None


# --- context --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "meal"),
    [
        (1, MealContext.PREPRANDIAL),
        (2, MealContext.POSTPRANDIAL),
        (3, MealContext.FASTING),
        (4, MealContext.CASUAL),
        (5, MealContext.BEDTIME),
    ],
)
def test_context_meal(code: int, meal: MealContext) -> None:
    assert decode_glucose_context(bytes([0x02, 15, 0, code])) == GlucoseContext(sequence_number=15, meal=meal)


@pytest.mark.parametrize("code", [0, 6, 255])
def test_context_reserved_meal_is_refused(code: int) -> None:
    with pytest.raises(CodecError, match=f"meal code {code} is reserved"):
        decode_glucose_context(bytes([0x02, 15, 0, code]))


def test_context_with_every_field() -> None:
    payload = (
        bytes([0xFF, 7, 0])  # all flags (medication in liters), seq 7
        + b"\x00"  # extended flags
        + b"\x01"
        + encode_sfloat(45, -3)  # breakfast, 45 g as 45e-3 kg
        + b"\x03"  # fasting
        + b"\x51"  # tester self, health: none
        + (1800).to_bytes(2, "little")
        + b"\x32"  # 30 min at 50 %
        + b"\x02"
        + encode_sfloat(5, -3)  # medication 2: 5e-3 L = 5 mL
        + encode_sfloat(62, -1)  # HbA1c 6.2 %
    )
    assert decode_glucose_context(payload) == GlucoseContext(
        sequence_number=7,
        meal=MealContext.FASTING,
        carbohydrate_id=1,
        carbohydrate_grams=45.0,
        tester=1,
        health=5,
        exercise_duration_s=1800,
        exercise_intensity_percent=50,
        medication_id=2,
        medication_milliliters=5.0,
        hba1c_percent=6.2,
    )


# Context flag bit -> the bytes it adds, in wire order (carbohydrate, meal, tester/health,
# exercise, medication, HbA1c); bit 5 only changes the medication unit, bit 7 adds a byte first.
_CONTEXT_FIELDS: dict[int, bytes] = {
    0x01: b"\x01" + encode_sfloat(10, -3),
    0x02: b"\x01",
    0x04: b"\x11",
    0x08: b"\x3c\x00\x0a",
    0x10: b"\x01" + encode_sfloat(1, -6),
    0x40: encode_sfloat(60, -1),
}


@pytest.mark.parametrize("flags", range(256))
def test_context_every_flag_combination(flags: int) -> None:
    body = bytes([flags, 1, 0]) + (b"\x00" if flags & 0x80 else b"")
    body += b"".join(chunk for bit, chunk in _CONTEXT_FIELDS.items() if flags & bit)
    liters = bool(flags & 0x20)
    assert decode_glucose_context(body) == GlucoseContext(
        sequence_number=1,
        meal=MealContext.PREPRANDIAL if flags & 0x02 else MealContext.UNKNOWN,
        carbohydrate_id=1 if flags & 0x01 else None,
        carbohydrate_grams=10.0 if flags & 0x01 else None,
        tester=1 if flags & 0x04 else None,
        health=1 if flags & 0x04 else None,
        exercise_duration_s=60 if flags & 0x08 else None,
        exercise_intensity_percent=10 if flags & 0x08 else None,
        medication_id=1 if flags & 0x10 else None,
        medication_milligrams=1.0 if flags & 0x10 and not liters else None,
        medication_milliliters=0.001 if flags & 0x10 and liters else None,
        hba1c_percent=6.0 if flags & 0x40 else None,
    )
    if len(body) > 3:
        with pytest.raises(CodecError, match="truncated"):
            decode_glucose_context(body[:-1])


def test_pair_contexts_by_sequence_number() -> None:
    first = decode_glucose_measurement(_payload(0x12))
    second = GlucoseMeasurement(sequence_number=43, base_time=first.base_time)
    context = GlucoseContext(sequence_number=42, meal=MealContext.POSTPRANDIAL)
    assert pair_contexts([first, second], [context]) == [(first, context), (second, None)]


def test_reading_carries_meal_and_time(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_glucose_measurement(_payload(0x13))
    context = GlucoseContext(sequence_number=42, meal=MealContext.FASTING)
    reading = glucose_reading(
        measurement,
        context,
        device=device,
        resident_id="res-1",
        received=received,
        clock_offset=timedelta(hours=-8),
    )
    assert reading == Reading(
        device=device,
        resident_id="res-1",
        measurement=Glucose(mmol_l=5.61, meal=MealContext.FASTING, sample=GlucoseSample.CAPILLARY_WHOLE_BLOOD),
        measured_at=datetime(2024, 4, 30, 22, 0, 0, tzinfo=UTC),  # 07:30 - 90 min, Beijing -> UTC
        time_source=TimeSource.DEVICE,
        received=received,
        device_time=datetime(2024, 5, 1, 6, 0, 0),
        source_key="gls:42@2024-05-01T07:30:00",
    )


def test_reading_refuses_foreign_context(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_glucose_measurement(_payload(0x02))
    with pytest.raises(ValueError, match="does not belong"):
        glucose_reading(
            measurement,
            GlucoseContext(sequence_number=1),
            device=device,
            resident_id="r",
            received=received,
            clock_offset=None,
        )


def test_time_fault_distrusts_meter_clock(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_glucose_measurement(_payload(0x0A, 0x0800))
    reading = glucose_reading(
        measurement, None, device=device, resident_id="r", received=received, clock_offset=timedelta(0)
    )
    assert reading is not None
    assert (reading.measured_at, reading.time_source) == (received.wall, TimeSource.HUB)


def test_record_without_concentration_has_no_reading(device: DeviceInfo, received: HubTime) -> None:
    measurement = decode_glucose_measurement(_payload(0x00))
    assert (
        glucose_reading(measurement, None, device=device, resident_id="r", received=received, clock_offset=None) is None
    )


# --- RACP -----------------------------------------------------------------------------

_REPORT = RacpOpcode.REPORT_STORED_RECORDS


def test_racp_requests_match_the_reference_bytes() -> None:
    assert report_all_records().encode() == bytes.fromhex("0101")
    assert report_number_of_records().encode() == bytes.fromhex("0401")
    assert report_records_from(0x1234).encode() == bytes.fromhex("0103013412")
    assert report_number_of_records_from(5).encode() == bytes.fromhex("0403010500")
    assert abort_operation().encode() == bytes.fromhex("0300")


def test_racp_request_refuses_out_of_range_sequence() -> None:
    with pytest.raises(ValueError, match="does not fit 16 bits"):
        report_records_from(0x10000)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes.fromhex("06000101"), RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.SUCCESS)),
        (bytes.fromhex("05000a00"), RacpNumberOfRecords(10)),
        (bytes.fromhex("06000106"), RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND)),
        (bytes.fromhex("06000307"), RacpResponse(RacpOpcode.ABORT_OPERATION, RacpResponseCode.ABORT_UNSUCCESSFUL)),
        (
            bytes.fromhex("06000108"),
            RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.PROCEDURE_NOT_COMPLETED),
        ),
        (
            bytes.fromhex("06000109"),
            RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.OPERAND_NOT_SUPPORTED),
        ),
        (
            bytes.fromhex("06000202"),
            RacpResponse(RacpOpcode.DELETE_STORED_RECORDS, RacpResponseCode.OPCODE_NOT_SUPPORTED),
        ),
    ],
)
def test_racp_responses(data: bytes, expected: RacpNumberOfRecords | RacpResponse) -> None:
    assert decode_racp_response(data) == expected
    assert expected.encode() == data


def test_racp_success_and_no_records_both_end_a_download() -> None:
    assert RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.NO_RECORDS_FOUND).succeeded
    assert not RacpResponse(RacpOpcode.REPORT_STORED_RECORDS, RacpResponseCode.PROCEDURE_NOT_COMPLETED).succeeded


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x06", "too short"),
        (bytes.fromhex("0601010a"), "responses carry the Null operator"),
        (bytes.fromhex("0600010a"), "response code 10 is not defined"),
        (bytes.fromhex("0100"), "is a request, not a response"),
        (bytes.fromhex("070001"), "opcode 7 is not defined"),
        (bytes.fromhex("05000a"), "must be 4 bytes"),
    ],
)
def test_racp_bad_responses(data: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode_racp_response(data)


@settings(deadline=None, max_examples=200, derandomize=True)
@given(
    st.sampled_from(list(RacpOpcode)),
    st.sampled_from(list(RacpOperator)),
    st.binary(max_size=5),
)
def test_racp_request_round_trip(opcode: RacpOpcode, operator: RacpOperator, operand: bytes) -> None:
    request = RacpRequest(opcode, operator, operand)
    assert decode_racp_request(request.encode()) == request


@settings(deadline=None, max_examples=200, derandomize=True)
@given(st.integers(0, 0xFFFF))
def test_racp_number_round_trip(count: int) -> None:
    assert decode_racp_response(RacpNumberOfRecords(count).encode()) == RacpNumberOfRecords(count)


@settings(deadline=None, max_examples=500, derandomize=True)
@given(st.binary(max_size=24))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    for decode in (decode_glucose_measurement, decode_glucose_context, decode_racp_response, decode_racp_request):
        with contextlib.suppress(CodecError):
            decode(data)
