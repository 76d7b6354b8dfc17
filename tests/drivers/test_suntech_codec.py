"""SunTech NIBP codec: the fact sheet's packets byte for byte, every error code, noisy streams, readings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivers.model import BloodPressure, DeviceInfo, HubTime, Reading, TimeSource
from drivers.serial import suntech_codec as codec
from drivers.serial.suntech_codec import (
    Ack,
    AckCode,
    BpResult,
    CuffPressure,
    DecodeError,
    DecodeErrorKind,
    ErrorCode,
    FrameDecoder,
    Packet,
    ReturnString,
    UnknownPacket,
)

# Module packets exactly as the fact sheet (reference/serial-devices.md, "SunTech Advantage") quotes them.
SHEET_BP_DATA_115_74 = bytes.fromhex("3E 18 73 00 4A 00 1E 01 00 00 00 00 00 00 31 07 55 00 58 00 00 00 00 E9")
SHEET_ACK_RECEIVED = bytes.fromhex("3E 04 4F 6F")
SHEET_ACK_DONE = bytes.fromhex("3E 04 4B 73")
SHEET_ACK_BUSY = bytes.fromhex("3E 04 42 7C")
SHEET_CUFF_PRESSURE_258 = bytes.fromhex("3E 05 02 01 BA")

RESULT_115_74 = BpResult(
    systolic=115,
    diastolic=74,
    map=88,
    heart_rate=85,
    beats=0x1E,
    status=0x01,
    error_code=None,
    test_codes=bytes.fromhex("00 00 00 00 00 00 31 07"),
)
# The sheet's unverified variant: a type byte 0x03, then the same 21 data bytes (checksum worked out by hand).
TYPED_BP_DATA_115_74 = bytes.fromhex("3E 19 03 73 00 4A 00 1E 01 00 00 00 00 00 00 31 07 55 00 58 00 00 00 00 E5")


def decode_all(stream: bytes, chunk_size: int | None = None) -> list[Packet | DecodeError]:
    decoder = FrameDecoder()
    size = chunk_size or max(1, len(stream))
    items: list[Packet | DecodeError] = []
    for start in range(0, len(stream), size):
        items += decoder.feed(stream[start : start + size])
    return items


def packets_in(items: list[Packet | DecodeError]) -> list[Packet]:
    return [item for item in items if not isinstance(item, DecodeError)]


# -- host commands ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "sheet"),
    [
        (codec.START_ADULT, "3A 20 A6"),
        (codec.ABORT, "3A 79 01 00 4C"),
        (codec.GET_LAST_BP_DATA, "3A 79 03 00 4A"),
        (codec.GET_CUFF_PRESSURE, "3A 79 05 00 48"),
        (codec.STATUS, "3A 79 11 00 3C"),
        (codec.RESET, "3A 8A 3C"),
        (codec.GET_RETURN_STRING, "3A 79 02 40 0B"),  # the sheet leaves this checksum to the reader
    ],
)
def test_host_commands_match_the_sheet_byte_for_byte(command, sheet):
    assert command == bytes.fromhex(sheet)
    assert sum(command) % 256 == 0


def test_encode_command_refuses_an_empty_command():
    with pytest.raises(ValueError, match="at least its command byte"):
        codec.encode_command(b"")


# -- the sheet's replies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "packet"),
    [
        (SHEET_BP_DATA_115_74, RESULT_115_74),
        (TYPED_BP_DATA_115_74, RESULT_115_74),
        (SHEET_ACK_RECEIVED, Ack(AckCode.RECEIVED)),
        (SHEET_ACK_DONE, Ack(AckCode.DONE)),
        (SHEET_ACK_BUSY, Ack(AckCode.BUSY)),
        (SHEET_CUFF_PRESSURE_258, CuffPressure(258)),
        (codec.encode_packet(b"\xff\xff"), CuffPressure(None)),
        (codec.encode_packet(b"\xf6\xff"), CuffPressure(-10)),
        # Streamed during a 3A 56 measurement; 0x008E = 142 mmHg is the public example.
        (codec.encode_packet(b"\x01\x8e\x00\x00"), CuffPressure(142)),
        (codec.encode_return_string("LX 1.05"), ReturnString("LX 1.05")),
        (codec.encode_packet(b"Z"), UnknownPacket(b"Z")),
        (codec.encode_packet(b"\x02\x8e\x00\x00"), UnknownPacket(b"\x02\x8e\x00\x00")),
        (codec.encode_packet(bytes(6)), UnknownPacket(bytes(6))),
    ],
)
def test_sheet_packets_decode_whole_in_any_chunking(raw, packet):
    for chunk_size in (1, 2, 3, None):
        assert decode_all(raw, chunk_size) == [packet]


@pytest.mark.parametrize("code", list(AckCode))
def test_every_ack_letter(code):
    raw = codec.encode_ack(code)
    assert raw == bytes((0x3E, 0x04, ord(code.value), -(0x3E + 0x04 + ord(code.value)) & 0xFF))
    assert decode_all(raw) == [Ack(code)]
    assert code.text


def test_the_sheet_example_encodes_back_to_the_same_bytes():
    assert codec.encode_bp_result(RESULT_115_74) == SHEET_BP_DATA_115_74
    assert codec.encode_bp_result(RESULT_115_74, typed=True) == TYPED_BP_DATA_115_74


SHEET_ERROR_CODES = {
    0x01: ErrorCode.WEAK_SIGNAL,
    0x02: ErrorCode.ERRATIC_SIGNAL,
    0x03: ErrorCode.OUT_OF_RANGE,
    0x04: ErrorCode.MEASUREMENT_TIME_EXCEEDED,
    0x55: ErrorCode.PNEUMATIC_BLOCKAGE,
    0x56: ErrorCode.TERMINATED_BY_USER,
    0x57: ErrorCode.INFLATE_TIMEOUT,
    0x58: ErrorCode.SAFETY_TIMEOUT,
    0x59: ErrorCode.CUFF_OVERPRESSURE,
    0x5A: ErrorCode.POWER_OR_HARDWARE,
    0x5B: ErrorCode.PERMISSION,
    0x61: ErrorCode.TRANSDUCER_OUT_OF_RANGE,
    0x63: ErrorCode.CALIBRATION_DATA_FAILURE,
}


@pytest.mark.parametrize(("byte", "code"), SHEET_ERROR_CODES.items())
def test_every_error_code_of_the_sheet(byte, code):
    raw = bytearray(SHEET_BP_DATA_115_74)
    raw[20] = byte
    raw[23] = codec.checksum(raw[:23])
    [result] = decode_all(bytes(raw))
    assert result == BpResult(
        systolic=115, diastolic=74, map=88, heart_rate=85, beats=0x1E, status=0x01, error_code=code,
        test_codes=bytes.fromhex("00 00 00 00 00 00 31 07"),
    )
    assert codec.error_text(byte) == code.text
    assert codec.result_to_reading(result, DEVICE, "r-1", HUB_SYNCED) is None


def test_the_error_table_is_the_sheet_table_with_a_text_each():
    assert set(ErrorCode) == set(SHEET_ERROR_CODES.values())
    assert all(len(code.text) > 10 for code in ErrorCode)


def test_an_error_code_missing_from_the_table_is_kept_and_still_an_error():
    [result] = decode_all(codec.encode_packet(codec.bp_data(RESULT_115_74)[:18] + b"\x05\x00\x00"))
    assert isinstance(result, BpResult)
    assert result.error_code == 5
    assert not isinstance(result.error_code, ErrorCode)
    assert codec.error_text(5) == "error code 0x05 (not in the module's documented table): call the technician"
    assert codec.result_to_reading(result, DEVICE, "r-1", HUB_SYNCED) is None


# -- streaming -------------------------------------------------------------------------------------


def test_replies_back_to_back_and_garbage_between():
    stream = b"\x00\x11" + SHEET_ACK_RECEIVED + SHEET_CUFF_PRESSURE_258 + b"\xaa"
    stream += SHEET_ACK_DONE + SHEET_BP_DATA_115_74
    assert decode_all(stream, 5) == [
        DecodeError(DecodeErrorKind.GARBAGE, 2),
        Ack(AckCode.RECEIVED),
        CuffPressure(258),
        DecodeError(DecodeErrorKind.GARBAGE, 1),
        Ack(AckCode.DONE),
        RESULT_115_74,
    ]


@pytest.mark.parametrize("length", [0x00, 0x03, 0x44, 0xFF])
def test_an_impossible_length_drops_up_to_the_next_start_byte(length):
    assert decode_all(bytes((0x3E, length)) + SHEET_ACK_DONE) == [
        DecodeError(DecodeErrorKind.BAD_LENGTH, 2),
        Ack(AckCode.DONE),
    ]


def test_a_bad_checksum_is_dropped_and_the_next_packet_kept():
    assert decode_all(b"\x3e\x04\x4b\x74" + SHEET_ACK_BUSY) == [
        DecodeError(DecodeErrorKind.BAD_CHECKSUM, 4),
        Ack(AckCode.BUSY),
    ]


def test_a_noise_start_with_a_long_length_does_not_hold_the_done_ack_hostage():
    # 3E 40 promises 64 bytes; the K behind it must come out now, not after 60 more bytes.
    decoder = FrameDecoder()
    assert decoder.feed(b"\x3e\x40\x01" + SHEET_ACK_DONE) == [
        DecodeError(DecodeErrorKind.TRUNCATED, 3),
        Ack(AckCode.DONE),
    ]
    assert decoder.buffered == 0


def test_a_cut_bp_packet_then_a_good_one():
    stream = SHEET_BP_DATA_115_74[:10] + SHEET_BP_DATA_115_74
    assert packets_in(decode_all(stream, 7)) == [RESULT_115_74]


def test_a_lone_start_byte_waits_for_its_length():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x3e") == []
    assert decoder.buffered == 1
    assert decoder.feed(SHEET_ACK_DONE[1:]) == [Ack(AckCode.DONE)]


_results = st.builds(
    BpResult,
    systolic=st.integers(0, 0xFFFF),
    diastolic=st.integers(0, 0xFFFF),
    map=st.integers(0, 0xFFFF),
    heart_rate=st.integers(0, 0xFF),
    beats=st.integers(0, 0xFF),
    status=st.integers(0, 0xFF),
    error_code=st.one_of(st.none(), st.sampled_from(list(ErrorCode))),
    test_codes=st.binary(min_size=8, max_size=8),
)
_packets = st.one_of(
    st.sampled_from(list(AckCode)).map(Ack),
    st.integers(-0x8000, 0x7FFF).filter(lambda v: v != -1).map(CuffPressure),
    _results,
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64).map(ReturnString),
)


def encode(packet: Packet) -> bytes:
    if isinstance(packet, Ack):
        return codec.encode_ack(packet.code)
    if isinstance(packet, CuffPressure):
        return codec.encode_cuff_pressure(packet.mmhg)
    if isinstance(packet, BpResult):
        return codec.encode_bp_result(packet)
    assert isinstance(packet, ReturnString)
    return codec.encode_return_string(packet.text)


# Garbage without the start byte: a 1-byte checksum lets random bytes that hold 0x3E pass for a
# packet about once in 256 tries, which no decoder can tell apart; those are tested by hand above.
_garbage = st.binary(max_size=30).map(lambda raw: raw.replace(b"\x3e", b"\x3f"))
_chunk_sizes = st.integers(1, 40)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(stream=st.binary(max_size=400), chunk_size=_chunk_sizes)
def test_arbitrary_bytes_never_raise_never_yield_a_bad_packet_and_stay_bounded(stream, chunk_size):
    decoder = FrameDecoder()
    for start in range(0, len(stream), chunk_size):
        for item in decoder.feed(stream[start : start + chunk_size]):
            assert isinstance(item, DecodeError | Ack | CuffPressure | BpResult | ReturnString | UnknownPacket)
        assert decoder.buffered < codec.MAX_PACKET_BYTES


@settings(deadline=None, max_examples=300, derandomize=True)
@given(pieces=st.lists(st.tuples(_garbage, _packets), max_size=8), tail=_garbage, chunk_size=_chunk_sizes)
def test_valid_packets_amid_garbage_are_all_recovered_in_order(pieces, tail, chunk_size):
    stream = b"".join(garbage + encode(packet) for garbage, packet in pieces) + tail
    assert packets_in(decode_all(stream, chunk_size)) == [packet for _, packet in pieces]


@settings(deadline=None, max_examples=200, derandomize=True)
@given(pieces=st.lists(st.tuples(_packets, st.integers(1, 100)), min_size=1, max_size=6), last=_packets,
       chunk_size=_chunk_sizes)
def test_cut_packets_never_cost_the_good_packet_behind_them(pieces, last, chunk_size):
    stream = b""
    for packet, cut in pieces:
        raw = encode(packet)
        stream += raw[: cut % (len(raw) - 1) + 1]
    stream += encode(last)
    decoded = packets_in(decode_all(stream, chunk_size))
    # With a one-byte checksum, a cut packet plus the bytes after it passes as a packet about once in
    # 256 (no decoder can tell): that is the only way the good packet may be lost, and it shows as a
    # packet nobody sent.
    assume(all(packet in [p for p, _ in pieces] + [last] for packet in decoded))
    assert decoded[-1:] == [last]


# -- readings --------------------------------------------------------------------------------------

DEVICE = DeviceInfo(id="bp-hall", transport="serial", model=codec.MODEL)
WALL = datetime(2025, 3, 21, 8, 30, 5, tzinfo=UTC)
HUB_SYNCED = HubTime(wall=WALL, monotonic=1000.0, synced=True)


@pytest.mark.parametrize(("synced", "source"), [(True, TimeSource.HUB), (False, TimeSource.HUB_UNSYNCED)])
def test_the_sheet_result_as_a_reading(synced, source):
    received = HubTime(wall=WALL, monotonic=1000.0, synced=synced)
    assert codec.result_to_reading(RESULT_115_74, DEVICE, "r-0001", received) == Reading(
        device=DEVICE,
        resident_id="r-0001",
        measurement=BloodPressure(systolic=115.0, diastolic=74.0, mean_arterial=88.0, pulse=85.0),
        measured_at=WALL,
        time_source=source,
        received=received,
        source_key="73004a001e01000000000000310755005800000000@2025-03-21T08:30:05Z",
    )


def test_an_empty_memory_is_not_a_reading():
    empty = BpResult(systolic=0, diastolic=0, map=0, heart_rate=0, beats=0, status=0, error_code=None)
    assert empty.empty
    assert codec.result_to_reading(empty, DEVICE, "r-1", HUB_SYNCED) is None
