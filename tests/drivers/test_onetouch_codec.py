"""OneTouch Ultra 2 codec: real reply lines in, whole objects out."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import ChecksumError, CodecError
from drivers.model import (
    DeviceInfo,
    Glucose,
    GlucoseSample,
    HubTime,
    MealContext,
    Reading,
    ReadingFlag,
    TimeSource,
)
from drivers.serial import onetouch_codec as codec
from drivers.serial.onetouch_codec import (
    DumpErrorKind,
    DumpHeader,
    DumpLineError,
    DumpResult,
    GlucoseUnit,
    MeterRecord,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")

# A complete dump quoted in a comment of Tidepool's uploader, lib/drivers/onetouch/oneTouchUltra2.js
# (checksums as the meter sent them; dump lines end in CR LF).
TIDEPOOL_DUMP = [
    b'P 003,"GMF600DCY","MG/DL " 05A6\r\n',
    b'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B6\r\n',
    b'P "SAT","03/21/15","16:42:11   ","  105 ","B","02", 00 099F\r\n',
    b'P "SAT","03/21/15","16:39:46   ","  176 ","N","02", 00 09C1\r\n',
]
TIDEPOOL_RECORDS = (
    MeterRecord(datetime(2015, 3, 21, 16, 45, 24), 81, meal=MealContext.UNKNOWN, comment=3),
    MeterRecord(datetime(2015, 3, 21, 16, 42, 11), 105, meal=MealContext.PREPRANDIAL, comment=2),
    MeterRecord(datetime(2015, 3, 21, 16, 39, 46), 176, meal=MealContext.UNKNOWN, comment=2),
)
TIDEPOOL_HEADER = DumpHeader(count=3, serial="GMF600DCY", unit=GlucoseUnit.MG_DL)


def test_encode_command_wakes_the_meter_then_sends_the_command():
    assert codec.encode_command("DM@") == b"\x11\rDM@\r"
    assert codec.encode_command("DMT03/21/15 16:45:24") == b"\x11\rDMT03/21/15 16:45:24\r"


@pytest.mark.parametrize("bad", ["", "DM\r@", "DMé"])
def test_encode_command_refuses_what_the_meter_cannot_read(bad):
    with pytest.raises(ValueError, match="printable ASCII"):
        codec.encode_command(bad)


def test_tidepool_dump_parses_to_header_and_every_record():
    assert codec.parse_dump(TIDEPOOL_DUMP) == DumpResult(TIDEPOOL_HEADER, TIDEPOOL_RECORDS, ())


def test_tidepool_dump_reencodes_byte_for_byte():
    assert codec.encode_line(codec.format_dump_header(TIDEPOOL_HEADER), dump=True) == TIDEPOOL_DUMP[0]
    for record, line in zip(TIDEPOOL_RECORDS, TIDEPOOL_DUMP[1:], strict=True):
        assert codec.encode_line(codec.format_record(record), dump=True) == line


def test_lines_read_up_to_cr_keep_the_previous_lf_and_still_parse():
    assert codec.parse_line(b'\nP "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B6\r') == (
        'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00'
    )


def test_one_line_replies_from_the_fact_sheet():
    assert codec.parse_serial(codec.parse_line(b'@ "GMF600DCY" 02F4\r')) == "GMF600DCY"
    assert codec.parse_clock(codec.parse_line(b'F "SAT","08/03/13","22:12:00   " 05FA\r')) == datetime(
        2013, 8, 3, 22, 12, 0
    )
    assert codec.parse_units(codec.parse_line(b'SU?,"MMOL/L" 0307\r')) is GlucoseUnit.MMOL_L
    assert codec.parse_units('SU?,"MG/DL "') is GlucoseUnit.MG_DL
    assert codec.parse_clock('T "SAT","08/03/13","22:12:00   "') == datetime(2013, 8, 3, 22, 12, 0)


def test_control_solution_and_parity_error_marks():
    control = codec.parse_line(b'P "SAT","03/21/15","16:45:24   ","C 110 ","N","00", 00 09CF\r\n')
    parity = codec.parse_line(b'P "SAT","03/21/15","16:45:24   ","  081?","A","11", 00 09C7\r\n')
    assert codec.parse_record(control) == MeterRecord(
        datetime(2015, 3, 21, 16, 45, 24), 110, control_solution=True, meal=MealContext.UNKNOWN, comment=0
    )
    assert codec.parse_record(parity) == MeterRecord(
        datetime(2015, 3, 21, 16, 45, 24), 81, parity_error=True, meal=MealContext.POSTPRANDIAL, comment=11
    )


def test_two_digit_years_pivot_at_70():
    last_century = codec.parse_line(b'P "FRI","12/31/99","23:59:59   ","  600 ","N","00", 00 09C1\r\n')
    this_century = codec.parse_line(b'P "SUN","01/01/00","00:00:00   ","  601 ","N","00", 00 099F\r\n')
    assert codec.parse_record(last_century).meter_time == datetime(1999, 12, 31, 23, 59, 59)
    assert codec.parse_record(this_century).meter_time == datetime(2000, 1, 1, 0, 0, 0)
    assert [codec.expand_year(y) for y in (0, 15, 69, 70, 99)] == [2000, 2015, 2069, 1970, 1999]


def test_empty_meter_dumps_only_a_header():
    assert codec.parse_dump([b'P 000,"GMF600DCY","MMOL/L" 05E0\r\n']) == DumpResult(
        DumpHeader(0, "GMF600DCY", GlucoseUnit.MMOL_L), (), ()
    )


def test_checksum_mismatch_raises_checksum_error_naming_both_sums():
    with pytest.raises(ChecksumError, match="checksum is 09B7 but the payload sums to 09B6"):
        codec.parse_line(b'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B7\r\n')


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09B6', "truncated"),
        (b'P "SAT","03/21/15","16:45:24   ","  0', "truncated"),
        (b"", "truncated"),
        (b'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00 09b6\r\n', "4 hex digit checksum"),
        (b'P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00\r\n', "4 hex digit checksum"),
        (b"\xff\xfe 0000\r", "printable ASCII"),
    ],
)
def test_truncated_or_unframed_lines_raise_codec_error(line, message):
    with pytest.raises(CodecError, match=message):
        codec.parse_line(line)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('P "SAT","13/21/15","16:45:24   ","  081 ","N","03", 00', "month must be 01-12"),
        ('P "SAT","02/30/15","16:45:24   ","  081 ","N","03", 00', "day 30 does not exist"),
        ('P "SAT","03/21/15","24:45:24   ","  081 ","N","03", 00', "time field out of range"),
        ('P "SAT","03/21/15","16:45:24","  081 ","N","03", 00', "time field must be"),
        ('P "SAT","3/21/15","16:45:24   ","  081 ","N","03", 00', "date field must be MM/DD/YY"),
        ('P "SAX","03/21/15","16:45:24   ","  081 ","N","03", 00', "day of week"),
        ('P "SAT","03/21/15","16:45:24   ","  81 ","N","03", 00', "result field"),
        ('P "SAT","03/21/15","16:45:24   ","X 081 ","N","03", 00', "result field"),
        ('P "SAT","03/21/15","16:45:24   ","  081 ","X","03", 00', "meal field must be N, B or A"),
        ('P "SAT","03/21/15","16:45:24   ","  081 ","N","12", 00', "comment field must be 00-11"),
        ('P "SAT","03/21/15","16:45:24   ","  081 ","N","03", 01', "last field must be ' 00'"),
        ('P "SAT","03/21/15","16:45:24   ","  081 ",N,"03", 00', "meal field must be in double quotes"),
        ('P "SAT","03/21/15","16:45:24   ","  081 ","N","03"', "expected 7 comma-separated fields"),
        ('Q "SAT","03/21/15","16:45:24   ","  081 ","N","03", 00', "starting with 'P '"),
    ],
)
def test_every_record_field_is_validated_by_name(payload, message):
    with pytest.raises(CodecError, match=message):
        codec.parse_record(payload)


@pytest.mark.parametrize(
    ("parse", "payload", "message"),
    [
        (codec.parse_serial, '@ "GMF600DC"', "serial number must be 9"),
        (codec.parse_serial, "@ GMF600DCY", "double quotes"),
        (codec.parse_units, 'SU?,"MMOL/ "', "unit field must be"),
        (codec.parse_clock, 'F "SAT","08/03/13"', "expected 3 comma-separated fields"),
        (codec.parse_dump_header, 'P 03,"GMF600DCY","MG/DL "', "record count field must be 3 digits"),
        (codec.parse_dump_header, 'P 003,"gmf600dcy","MG/DL "', "serial number must be 9"),
    ],
)
def test_one_line_replies_are_validated(parse, payload, message):
    with pytest.raises(CodecError, match=message):
        parse(payload)


def test_every_single_bit_flip_in_the_tidepool_dump_is_caught():
    # A 16-bit sum changes under any one flipped bit, and a flip in the checksum digits or the
    # separator breaks the framing: no corrupted line may ever parse.
    for line in TIDEPOOL_DUMP:
        for position in range(len(line) - 2):
            for bit in range(8):
                flipped = bytearray(line)
                flipped[position] ^= 1 << bit
                with pytest.raises(CodecError):
                    codec.parse_line(bytes(flipped))


def test_a_bad_record_line_is_reported_and_skipped_and_the_count_checked():
    corrupted = TIDEPOOL_DUMP[2].replace(b"105", b"106")
    result = codec.parse_dump([TIDEPOOL_DUMP[0], TIDEPOOL_DUMP[1], corrupted])
    assert result.header == TIDEPOOL_HEADER
    assert result.records == TIDEPOOL_RECORDS[:1]
    assert [(e.line_number, e.kind) for e in result.errors] == [
        (2, DumpErrorKind.CHECKSUM),
        (0, DumpErrorKind.COUNT_MISMATCH),
    ]
    assert result.errors[1] == DumpLineError(
        0, DumpErrorKind.COUNT_MISMATCH, "header announces 3 records but 2 lines followed"
    )
    assert not result.complete


def test_a_malformed_record_with_a_good_checksum_is_reported_as_malformed():
    bad = codec.encode_line('P "SAT","03/21/15","16:45:24   ","  081 ","Z","03", 00', dump=True)
    result = codec.parse_dump([TIDEPOOL_DUMP[0], bad, *TIDEPOOL_DUMP[2:]])
    assert result.records == TIDEPOOL_RECORDS[1:]
    assert [(e.line_number, e.kind) for e in result.errors] == [(1, DumpErrorKind.MALFORMED)]


def test_a_dump_without_a_usable_header_raises():
    with pytest.raises(CodecError, match="dump header"):
        codec.parse_dump(TIDEPOOL_DUMP[1:])
    with pytest.raises(CodecError, match="no header"):
        codec.parse_dump([])


# -- to Readings -----------------------------------------------------------------------------------

RECEIVED = HubTime(wall=datetime(2015, 3, 21, 9, 0, 0, tzinfo=UTC), monotonic=1000.0, synced=True)


def _reading(record: MeterRecord, **overrides: object) -> Reading:
    arguments: dict[str, object] = {
        "serial": "GMF600DCY",
        "clock_offset": timedelta(seconds=120),
        "hub_time": RECEIVED,
        "tz": SHANGHAI,
        "device_id": "meter-1",
        "resident_id": "resident-7",
    }
    arguments.update(overrides)
    return codec.record_to_reading(record, **arguments)


def test_record_to_reading_corrects_the_meter_clock_and_converts_to_utc_mmol():
    assert _reading(TIDEPOOL_RECORDS[1]) == Reading(
        device=DeviceInfo(id="meter-1", transport="serial", model="OneTouch Ultra 2", serial_number="GMF600DCY"),
        resident_id="resident-7",
        measurement=Glucose(mmol_l=5.83, meal=MealContext.PREPRANDIAL, sample=GlucoseSample.CAPILLARY_WHOLE_BLOOD),
        # 16:42:11 on the meter, which runs 2 minutes slow, in Shanghai (UTC+8).
        measured_at=datetime(2015, 3, 21, 8, 44, 11, tzinfo=UTC),
        time_source=TimeSource.DEVICE,
        received=RECEIVED,
        device_time=datetime(2015, 3, 21, 16, 42, 11),
        flags=frozenset(),
        source_key="GMF600DCY|2015-03-21T16:42:11|105",
    )


def test_control_solution_reading_is_flagged_and_not_a_human_sample():
    record = MeterRecord(datetime(2015, 3, 21, 16, 45, 24), 110, control_solution=True, parity_error=True)
    reading = _reading(record, hub_time=replace_synced(RECEIVED, synced=False))
    assert reading.measurement == Glucose(mmol_l=6.11, meal=MealContext.UNKNOWN, sample=GlucoseSample.CONTROL_SOLUTION)
    assert reading.flags == {ReadingFlag.CONTROL_SOLUTION, ReadingFlag.PARITY_ERROR}
    assert reading.time_source is TimeSource.HUB_UNSYNCED
    assert not reading.evaluable


@pytest.mark.parametrize(
    ("mg_dl", "flags"),
    [
        (19, {ReadingFlag.BELOW_RANGE}),
        (20, set()),
        (600, set()),
        (601, {ReadingFlag.ABOVE_RANGE}),
    ],
)
def test_values_beyond_the_meters_range_are_flagged_as_hi_lo(mg_dl, flags):
    record = MeterRecord(datetime(2015, 3, 21, 16, 45, 24), mg_dl)
    assert _reading(record).flags == flags


def test_clock_offset_is_hub_local_wall_time_minus_meter_clock_in_whole_seconds():
    hub_wall = datetime(2013, 8, 3, 14, 14, 0, 400_000, tzinfo=UTC)  # 22:14:00.4 in Shanghai
    assert codec.meter_clock_offset(datetime(2013, 8, 3, 22, 12, 0), hub_wall, SHANGHAI) == timedelta(seconds=120)


def replace_synced(hub_time: HubTime, *, synced: bool) -> HubTime:
    return HubTime(wall=hub_time.wall, monotonic=hub_time.monotonic, synced=synced)


# -- properties ------------------------------------------------------------------------------------

records = st.builds(
    MeterRecord,
    meter_time=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2069, 12, 31, 23, 59, 59)).map(
        lambda moment: moment.replace(microsecond=0)
    ),
    mg_dl=st.integers(0, 999),
    control_solution=st.booleans(),
    parity_error=st.booleans(),
    meal=st.sampled_from([MealContext.UNKNOWN, MealContext.PREPRANDIAL, MealContext.POSTPRANDIAL]),
    comment=st.integers(0, 11),
)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(records)
def test_generated_records_round_trip_through_a_dump_line(record):
    line = codec.encode_line(codec.format_record(record), dump=True)
    assert codec.parse_record(codec.parse_line(line)) == record


@settings(deadline=None, max_examples=500, derandomize=True)
@given(st.binary(max_size=120))
def test_no_bytes_crash_the_line_parser(data):
    for line in (data, data + b"\r", data + b"\r\n"):
        with contextlib.suppress(CodecError):
            codec.parse_line(line)


_PAYLOAD_ALPHABET = st.sampled_from([*list('P "SATMON0123456789/:,CNBA?@FU-'), "\x7f", "é"])


@settings(deadline=None, max_examples=500, derandomize=True)
@given(st.text(_PAYLOAD_ALPHABET, max_size=80))
def test_no_payload_crashes_the_field_parsers(payload):
    for parse in (
        codec.parse_record,
        codec.parse_dump_header,
        codec.parse_clock,
        codec.parse_serial,
        codec.parse_units,
    ):
        with contextlib.suppress(CodecError):
            parse(payload)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(records, st.integers(0, 60), st.integers(0, 7))
def test_a_flipped_bit_in_a_generated_line_never_parses_to_a_different_record(record, position, bit):
    line = bytearray(codec.encode_line(codec.format_record(record), dump=True))
    line[position % (len(line) - 2)] ^= 1 << bit
    with pytest.raises(CodecError):
        codec.parse_record(codec.parse_line(bytes(line)))
