"""MR60FDA1 radar codec: the fact sheet's frames byte for byte, noisy streams, every report as a whole object."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import CodecError
from drivers.model import DeviceEventKind
from drivers.serial import mr60fda1_codec as codec
from drivers.serial.mr60fda1_codec import (
    DecodeError,
    DecodeErrorKind,
    Frame,
    FrameDecoder,
    IdentityField,
    IdentityReport,
    StateReport,
    UnknownReport,
)

# Host frames exactly as the fact sheet (reference/serial-devices.md, "Seeed MR60FDA1") quotes them.
SHEET_FIRMWARE_QUERY = bytes.fromhex("53 59 02 A4 00 01 0F 62 54 43")
SHEET_RESET = bytes.fromhex("53 59 01 02 00 01 0F BF 54 43")
SHEET_PRODUCT_MODEL_QUERY = bytes.fromhex("53 59 02 A1 00 01 0F 5F 54 43")
# Settings the sheet quotes from third-party code: well-formed frames this codec has no report for.
SHEET_HEIGHT_270_CM = bytes.fromhex("53 59 06 02 00 02 01 0E C5 54 43")
SHEET_RESIDENCY_TIME_60_S = bytes.fromhex("53 59 83 0A 00 04 00 00 00 3C 79 54 43")

# Radar reports built by hand from the sheet's table (checksum worked out on paper).
PRESENCE_SOMEBODY = bytes.fromhex("53 59 80 01 00 01 01 2F 54 43")
FALL = bytes.fromhex("53 59 83 01 00 01 01 32 54 43")
BODY_MOVEMENT_19 = bytes.fromhex("53 59 80 03 00 01 13 43 54 43")  # checksum byte is 0x43
BODY_MOVEMENT_67 = bytes.fromhex("53 59 80 03 00 01 43 73 54 43")  # data byte is 0x43
# The sheet's example firmware answer; its ASCII holds "SY", the header bytes 53 59.
FIRMWARE_ANSWER = codec.encode_frame(0x02, 0xA4, b"G60FD1SYv010104")


def decode_all(stream: bytes, chunk_size: int | None = None) -> list[Frame | DecodeError]:
    decoder = FrameDecoder()
    size = chunk_size or max(1, len(stream))
    items: list[Frame | DecodeError] = []
    for start in range(0, len(stream), size):
        items += decoder.feed(stream[start : start + size])
    return items


def frames_in(items: list[Frame | DecodeError]) -> list[Frame]:
    return [item for item in items if isinstance(item, Frame)]


# -- encoding --------------------------------------------------------------------------------------


def test_host_frames_match_the_sheet_byte_for_byte():
    assert codec.QUERY_FIRMWARE_VERSION == SHEET_FIRMWARE_QUERY
    assert codec.RESET == SHEET_RESET
    assert codec.QUERY_PRODUCT_MODEL == SHEET_PRODUCT_MODEL_QUERY
    assert codec.encode_frame(0x06, 0x02, (270).to_bytes(2, "big")) == SHEET_HEIGHT_270_CM
    assert codec.encode_frame(0x83, 0x0A, (60).to_bytes(4, "big")) == SHEET_RESIDENCY_TIME_60_S


def test_frames_with_0x43_in_data_or_checksum_encode_as_worked_out():
    assert codec.encode_frame(0x80, 0x03, b"\x13") == BODY_MOVEMENT_19
    assert codec.encode_frame(0x80, 0x03, b"\x43") == BODY_MOVEMENT_67
    assert codec.encode_frame(0x80, 0x01, b"\x01") == PRESENCE_SOMEBODY
    assert codec.encode_frame(0x83, 0x01, b"\x01") == FALL


@pytest.mark.parametrize(
    ("control", "command", "data", "message"),
    [
        (0x100, 0x01, b"\x00", "single bytes"),
        (0x80, -1, b"\x00", "single bytes"),
        (0x80, 0x01, bytes(codec.MAX_DATA_LENGTH + 1), "at most 64"),
    ],
)
def test_encode_frame_refuses_what_no_frame_can_hold(control, command, data, message):
    with pytest.raises(ValueError, match=message):
        codec.encode_frame(control, command, data)


# -- decoding whole frames -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "frame"),
    [
        (SHEET_FIRMWARE_QUERY, Frame(0x02, 0xA4, b"\x0f")),
        (SHEET_RESET, Frame(0x01, 0x02, b"\x0f")),
        (SHEET_PRODUCT_MODEL_QUERY, Frame(0x02, 0xA1, b"\x0f")),
        (SHEET_HEIGHT_270_CM, Frame(0x06, 0x02, b"\x01\x0e")),
        (SHEET_RESIDENCY_TIME_60_S, Frame(0x83, 0x0A, b"\x00\x00\x00\x3c")),
        (BODY_MOVEMENT_19, Frame(0x80, 0x03, b"\x13")),
        (BODY_MOVEMENT_67, Frame(0x80, 0x03, b"\x43")),
        (FIRMWARE_ANSWER, Frame(0x02, 0xA4, b"G60FD1SYv010104")),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_sheet_frames_decode_whole_in_any_chunking(raw, frame, chunk_size):
    assert decode_all(raw, chunk_size) == [frame]


def test_frames_back_to_back_with_0x43_everywhere_are_all_found():
    stream = BODY_MOVEMENT_19 + BODY_MOVEMENT_67 + FIRMWARE_ANSWER + FALL
    assert decode_all(stream, 4) == [
        Frame(0x80, 0x03, b"\x13"),
        Frame(0x80, 0x03, b"\x43"),
        Frame(0x02, 0xA4, b"G60FD1SYv010104"),
        Frame(0x83, 0x01, b"\x01"),
    ]


def test_garbage_before_between_and_after_frames():
    stream = b"\x00\xff\x54\x43" + PRESENCE_SOMEBODY + b"\x53\x53\x11" + FALL + b"\x59\x00\x01"
    assert decode_all(stream) == [
        DecodeError(DecodeErrorKind.GARBAGE, 4),
        Frame(0x80, 0x01, b"\x01"),
        DecodeError(DecodeErrorKind.GARBAGE, 3),
        Frame(0x83, 0x01, b"\x01"),
        DecodeError(DecodeErrorKind.GARBAGE, 3),
    ]


def test_a_trailing_0x53_is_kept_as_a_possible_header():
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x53") == [DecodeError(DecodeErrorKind.GARBAGE, 1)]
    assert decoder.buffered == 1
    assert decoder.feed(FALL[1:]) == [Frame(0x83, 0x01, b"\x01")]
    assert decoder.buffered == 0


def test_a_bad_checksum_is_dropped_and_the_next_frame_kept():
    corrupt = bytearray(FALL)
    corrupt[7] ^= 0x01
    assert decode_all(bytes(corrupt) + PRESENCE_SOMEBODY) == [
        DecodeError(DecodeErrorKind.BAD_CHECKSUM, 10),
        Frame(0x80, 0x01, b"\x01"),
    ]


def test_a_bad_trailer_is_dropped_and_the_next_frame_kept():
    assert decode_all(FALL[:-1] + b"\x44" + PRESENCE_SOMEBODY) == [
        DecodeError(DecodeErrorKind.BAD_TRAILER, 10),
        Frame(0x80, 0x01, b"\x01"),
    ]


def test_a_noise_header_with_a_huge_length_holds_nothing_hostage():
    assert decode_all(b"\x53\x59\x80\x01\xff\xff" + FALL) == [
        DecodeError(DecodeErrorKind.BAD_LENGTH, 6),
        Frame(0x83, 0x01, b"\x01"),
    ]


@pytest.mark.parametrize("cut", range(1, len(FIRMWARE_ANSWER) - 1))
def test_a_truncated_frame_followed_by_a_good_one_yields_the_good_one_at_once(cut):
    # The firmware answer is 24 bytes: a fall right behind any cut of it fits inside its declared
    # length, and must come out now, not when 24 bytes have piled up.
    decoder = FrameDecoder()
    items = decoder.feed(FIRMWARE_ANSWER[:cut] + FALL)
    assert frames_in(items) == [Frame(0x83, 0x01, b"\x01")]
    assert all(isinstance(item, DecodeError) for item in items[:-1])
    assert decoder.buffered == 0


def test_a_truncated_frame_then_a_good_one_in_separate_chunks():
    decoder = FrameDecoder()
    assert decoder.feed(PRESENCE_SOMEBODY[:7]) == []
    assert decoder.buffered == 7
    assert decoder.feed(FALL) == [DecodeError(DecodeErrorKind.TRUNCATED, 7), Frame(0x83, 0x01, b"\x01")]


# -- reports ---------------------------------------------------------------------------------------


REPORT_CASES = [
    (Frame(0x80, 0x01, b"\x00"), StateReport(DeviceEventKind.PRESENCE, 0, "nobody")),
    (Frame(0x80, 0x01, b"\x01"), StateReport(DeviceEventKind.PRESENCE, 1, "somebody")),
    (Frame(0x80, 0x02, b"\x00"), StateReport(DeviceEventKind.MOTION, 0, "none")),
    (Frame(0x80, 0x02, b"\x01"), StateReport(DeviceEventKind.MOTION, 1, "stationary")),
    (Frame(0x80, 0x02, b"\x02"), StateReport(DeviceEventKind.MOTION, 2, "active")),
    (Frame(0x80, 0x03, b"\x00"), StateReport(DeviceEventKind.BODY_MOVEMENT, 0)),
    (Frame(0x80, 0x03, b"\x43"), StateReport(DeviceEventKind.BODY_MOVEMENT, 67)),
    (Frame(0x80, 0x03, b"\x64"), StateReport(DeviceEventKind.BODY_MOVEMENT, 100)),
    (Frame(0x83, 0x01, b"\x00"), StateReport(DeviceEventKind.FALL, 0, "no fall")),
    (Frame(0x83, 0x01, b"\x01"), StateReport(DeviceEventKind.FALL, 1, "fall")),
    (Frame(0x83, 0x05, b"\x00"), StateReport(DeviceEventKind.RESIDENCY, 0, "none")),
    (Frame(0x83, 0x05, b"\x01"), StateReport(DeviceEventKind.RESIDENCY, 1, "stationary residency")),
    (Frame(0x02, 0xA1, b"MR60FDA1"), IdentityReport(IdentityField.PRODUCT_MODEL, "MR60FDA1")),
    (Frame(0x02, 0xA4, b"G60FD1SYv010104"), IdentityReport(IdentityField.FIRMWARE_VERSION, "G60FD1SYv010104")),
    (
        Frame(0x02, 0xA4, b"G60FD1SYv010104\x00\x00"),
        IdentityReport(IdentityField.FIRMWARE_VERSION, "G60FD1SYv010104"),
    ),
    (Frame(0x83, 0x0A, b"\x00\x00\x00\x3c"), UnknownReport(0x83, 0x0A, b"\x00\x00\x00\x3c")),
    (Frame(0x80, 0x04, b"\x01\x02"), UnknownReport(0x80, 0x04, b"\x01\x02")),
]


@pytest.mark.parametrize(("frame", "report"), REPORT_CASES)
def test_every_report_decodes_to_a_whole_object(frame, report):
    assert codec.decode_report(frame) == report


def test_every_table_entry_has_a_case_above():
    covered = {
        (frame.control, frame.command) for frame, report in REPORT_CASES if not isinstance(report, UnknownReport)
    }
    assert covered == set(codec.REPORTS)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Frame(0x80, 0x01, b"\x02"), r"presence report \(0x80/0x01\) value 2 is out of range 0..1"),
        (Frame(0x80, 0x02, b"\x03"), r"motion report \(0x80/0x02\) value 3 is out of range 0..2"),
        (Frame(0x80, 0x03, b"\x65"), r"body_movement report \(0x80/0x03\) value 101 is out of range 0..100"),
        (Frame(0x83, 0x01, b""), r"fall report \(0x83/0x01\) must carry 1 data byte, got 0"),
        (Frame(0x83, 0x05, b"\x00\x01"), r"residency report \(0x83/0x05\) must carry 1 data byte, got 2"),
        (Frame(0x02, 0xA4, b"\xff\xfe"), r"firmware_version answer \(0x02/0xA4\) is not printable ASCII"),
        (Frame(0x02, 0xA1, b""), r"product_model answer \(0x02/0xA1\) is not printable ASCII"),
    ],
)
def test_known_reports_with_impossible_data_are_refused(frame, message):
    with pytest.raises(CodecError, match=message):
        codec.decode_report(frame)


# -- streams nobody wrote by hand ------------------------------------------------------------------

_frames = st.builds(
    Frame,
    control=st.integers(0, 0xFF),
    command=st.integers(0, 0xFF),
    data=st.binary(max_size=20),
)
_chunk_sizes = st.integers(1, 40)


@settings(deadline=None, max_examples=300, derandomize=True)
@given(stream=st.binary(max_size=400), chunk_size=_chunk_sizes)
def test_arbitrary_bytes_never_raise_never_yield_a_bad_frame_and_stay_bounded(stream, chunk_size):
    decoder = FrameDecoder()
    for start in range(0, len(stream), chunk_size):
        for item in decoder.feed(stream[start : start + chunk_size]):
            if isinstance(item, Frame):
                # Re-encoding gives the exact bytes received, so the checksum and trailer were right.
                assert codec.encode_frame(item.control, item.command, item.data) in stream
        assert decoder.buffered < codec.MAX_FRAME_BYTES


@settings(deadline=None, max_examples=300, derandomize=True)
@given(
    pieces=st.lists(st.tuples(st.binary(max_size=30), _frames), max_size=8),
    tail=st.binary(max_size=30),
    chunk_size=_chunk_sizes,
)
def test_valid_frames_amid_garbage_are_all_recovered_in_order(pieces, tail, chunk_size):
    stream = b"".join(garbage + codec.encode_frame(f.control, f.command, f.data) for garbage, f in pieces) + tail
    assert frames_in(decode_all(stream, chunk_size)) == [frame for _, frame in pieces]


@settings(deadline=None, max_examples=200, derandomize=True)
@given(
    pieces=st.lists(st.tuples(_frames, st.integers(1, 100)), min_size=1, max_size=6),
    last=_frames,
    chunk_size=_chunk_sizes,
)
def test_truncated_frames_never_cost_the_good_frame_behind_them(pieces, last, chunk_size):
    # Each frame is cut somewhere before its end; only the last one arrives whole.
    stream = b""
    for frame, cut in pieces:
        raw = codec.encode_frame(frame.control, frame.command, frame.data)
        stream += raw[: cut % (len(raw) - 1) + 1]
    stream += codec.encode_frame(last.control, last.command, last.data)
    assert frames_in(decode_all(stream, chunk_size))[-1:] == [last]
