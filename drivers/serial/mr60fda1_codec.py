"""Seeed MR60FDA1 60 GHz mmWave fall radar: the pure frame codec (bytes in, frozen dataclasses out).

No I/O, no clock, no logging. Source: the fact sheet ``reference/serial-devices.md`` ("Seeed MR60FDA1").

A frame is ``53 59 | control | command | length (u16 big-endian) | data[length] | checksum | 54 43``
where the checksum is the low byte of the sum of every byte before it, header included.

The end of a frame is found from its length field, never by looking for the ``54 43`` trailer: data
and checksum bytes may be 0x43 (a public Arduino reader breaks on exactly that), and the firmware
answer ``G60FD1SYv010104`` even holds the header bytes ``53 59`` ("SY").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.errors import CodecError
from drivers.model import DeviceEventKind

HEADER = b"\x53\x59"
TRAILER = b"\x54\x43"
_PREFIX_BYTES = 6
"""Header, control, command and the two length bytes: what must be in hand to know a frame's size."""
_OVERHEAD_BYTES = _PREFIX_BYTES + 1 + len(TRAILER)

MAX_DATA_LENGTH = 64
"""Longest data field accepted. The longest the sheet shows is an ASCII firmware string of ~15
bytes; a larger length field is line noise that happened to follow ``53 59``, and believing it would
hold every following frame (a fall among them) hostage until that many bytes arrived."""
MAX_FRAME_BYTES = _OVERHEAD_BYTES + MAX_DATA_LENGTH
"""The decoder never holds more than this between feeds."""

_QUERY = b"\x0f"
"""Host queries carry the single data byte 0x0F."""


@dataclass(frozen=True, slots=True)
class Frame:
    control: int
    command: int
    data: bytes


def checksum(frame_head: bytes | bytearray) -> int:
    """Low byte of the sum of every byte before the checksum, header included."""
    return sum(frame_head) & 0xFF


def encode_frame(control: int, command: int, data: bytes) -> bytes:
    """A whole frame, e.g. ``encode_frame(0x02, 0xA4, b"\\x0f") == QUERY_FIRMWARE_VERSION``."""
    if not (0 <= control <= 0xFF and 0 <= command <= 0xFF):
        raise ValueError(f"control and command must be single bytes, got 0x{control:X} / 0x{command:X}")
    if len(data) > MAX_DATA_LENGTH:
        raise ValueError(f"data is {len(data)} bytes; the radar's frames carry at most {MAX_DATA_LENGTH}")
    head = HEADER + bytes((control, command)) + len(data).to_bytes(2, "big") + data
    return head + bytes((checksum(head),)) + TRAILER


# Host frames with vendor backing (the sheet's example bytes; the tests check them byte for byte).
QUERY_PRODUCT_MODEL = encode_frame(0x02, 0xA1, _QUERY)
QUERY_FIRMWARE_VERSION = encode_frame(0x02, 0xA4, _QUERY)
RESET = encode_frame(0x01, 0x02, _QUERY)


# -- streaming decoder -----------------------------------------------------------------------------


class DecodeErrorKind(StrEnum):
    GARBAGE = "garbage"
    """Bytes that are not part of any frame (noise before a header, a wrong baud rate)."""
    BAD_LENGTH = "bad_length"
    """A length field above ``MAX_DATA_LENGTH``: the ``53 59`` was noise, not a header."""
    BAD_CHECKSUM = "bad_checksum"
    BAD_TRAILER = "bad_trailer"
    """The bytes where ``54 43`` belongs are something else: a wrong length or a cut frame."""
    TRUNCATED = "truncated"
    """A frame cut short: a complete, valid frame starts before its declared end."""


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Bytes the decoder dropped, and why. An item in the decoded stream, not an exception."""

    kind: DecodeErrorKind
    dropped: int
    """How many bytes were skipped (all of them up to the next possible header)."""


class FrameDecoder:
    """Turns a byte stream, in chunks of any size, into frames and decode errors, in order.

    Resynchronises on ``53 59`` after anything bad, skipping only up to the next possible header so a
    good frame right after garbage or a cut frame is never lost. A frame still incomplete when a
    later complete, checksum-valid frame is already buffered is treated as cut short (the radar
    restarted it, or bytes were lost): waiting for its declared length would delay the good frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (always fewer than ``MAX_FRAME_BYTES``)."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Frame | DecodeError]:
        self._buffer += chunk
        items: list[Frame | DecodeError] = []
        while self._buffer:
            start = _next_header(self._buffer, 0)
            if start > 0:
                items.append(self._drop(start, DecodeErrorKind.GARBAGE))
                continue
            if len(self._buffer) < _PREFIX_BYTES:
                break  # a header, or its first byte, waiting for the rest
            item = self._frame_at_start()
            if item is None:
                break
            items.append(item)
        return items

    def _frame_at_start(self) -> Frame | DecodeError | None:
        """The frame the buffer starts with, an error dropping it, or None to wait for more bytes."""
        buffer = self._buffer
        length = int.from_bytes(buffer[4:6], "big")
        if length > MAX_DATA_LENGTH:
            return self._drop(_next_header(buffer, 1), DecodeErrorKind.BAD_LENGTH)
        size = _OVERHEAD_BYTES + length
        complete = len(buffer) >= size
        kind = _invalid_reason(buffer, size) if complete else None
        if not complete or kind is not None:
            later = _next_valid_frame(buffer, 1)
            if later is not None and later < size:
                return self._drop(later, DecodeErrorKind.TRUNCATED)
            if not complete:
                return None
            assert kind is not None
            return self._drop(_next_header(buffer, 1), kind)
        frame = Frame(control=buffer[2], command=buffer[3], data=bytes(buffer[6 : 6 + length]))
        del buffer[:size]
        return frame

    def _drop(self, count: int, kind: DecodeErrorKind) -> DecodeError:
        del self._buffer[:count]
        return DecodeError(kind=kind, dropped=count)


def _next_header(buffer: bytearray, start: int) -> int:
    """Index of the next ``53 59`` at or after ``start``; a lone trailing 0x53 may be one too."""
    found = buffer.find(HEADER, start)
    if found >= 0:
        return found
    if len(buffer) > start and buffer[-1] == HEADER[0]:
        return len(buffer) - 1
    return len(buffer)


def _invalid_reason(buffer: bytearray, size: int) -> DecodeErrorKind | None:
    """Why the complete frame of ``size`` bytes at the start of ``buffer`` is bad, or None when good."""
    if buffer[size - 2 : size] != TRAILER:
        return DecodeErrorKind.BAD_TRAILER
    if buffer[size - 3] != checksum(buffer[: size - 3]):
        return DecodeErrorKind.BAD_CHECKSUM
    return None


def _next_valid_frame(buffer: bytearray, start: int) -> int | None:
    """Start of the first complete, valid frame at or after ``start``, if one is buffered."""
    position = buffer.find(HEADER, start)
    while position >= 0 and len(buffer) - position >= _OVERHEAD_BYTES:
        length = int.from_bytes(buffer[position + 4 : position + 6], "big")
        size = _OVERHEAD_BYTES + length
        if length <= MAX_DATA_LENGTH and len(buffer) - position >= size:
            candidate = buffer[position : position + size]
            if _invalid_reason(candidate, size) is None:
                return position
        position = buffer.find(HEADER, position + 1)
    return None


# -- reports ---------------------------------------------------------------------------------------


class IdentityField(StrEnum):
    PRODUCT_MODEL = "product_model"
    FIRMWARE_VERSION = "firmware_version"


@dataclass(frozen=True, slots=True)
class StateSpec:
    """A one-byte state report; ``labels`` name the values in the sheet's words (None: a plain number)."""

    kind: DeviceEventKind
    highest: int
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class IdentitySpec:
    """An ASCII answer to a host query."""

    field: IdentityField


ReportSpec = StateSpec | IdentitySpec

REPORTS: dict[tuple[int, int], ReportSpec] = {
    # (control, command): what the frame reports. From the sheet's table and its host-frame notes.
    (0x80, 0x01): StateSpec(DeviceEventKind.PRESENCE, 1, ("nobody", "somebody")),
    (0x80, 0x02): StateSpec(DeviceEventKind.MOTION, 2, ("none", "stationary", "active")),
    (0x80, 0x03): StateSpec(DeviceEventKind.BODY_MOVEMENT, 100),
    (0x83, 0x01): StateSpec(DeviceEventKind.FALL, 1, ("no fall", "fall")),
    (0x83, 0x05): StateSpec(DeviceEventKind.RESIDENCY, 1, ("none", "stationary residency")),
    (0x02, 0xA1): IdentitySpec(IdentityField.PRODUCT_MODEL),
    (0x02, 0xA4): IdentitySpec(IdentityField.FIRMWARE_VERSION),
}


@dataclass(frozen=True, slots=True)
class StateReport:
    kind: DeviceEventKind
    value: int
    label: str | None = None


@dataclass(frozen=True, slots=True)
class IdentityReport:
    field: IdentityField
    text: str


@dataclass(frozen=True, slots=True)
class UnknownReport:
    """A well-formed frame this codec has no table entry for (newer firmware, an undocumented report)."""

    control: int
    command: int
    data: bytes


Report = StateReport | IdentityReport | UnknownReport


def decode_report(frame: Frame) -> Report:
    """What a checksum-valid frame reports.

    Raises :class:`CodecError` when a known report carries data it cannot (wrong size, a value out of
    range, non-ASCII text): the frame is well-formed but its meaning is not, so it is refused.
    """
    spec = REPORTS.get((frame.control, frame.command))
    if spec is None:
        return UnknownReport(frame.control, frame.command, frame.data)
    if isinstance(spec, IdentitySpec):
        return _decode_identity(spec, frame)
    return _decode_state(spec, frame)


def _decode_state(spec: StateSpec, frame: Frame) -> StateReport:
    where = f"{spec.kind.value} report (0x{frame.control:02X}/0x{frame.command:02X})"
    if len(frame.data) != 1:
        raise CodecError(f"{where} must carry 1 data byte, got {len(frame.data)}")
    value = frame.data[0]
    if value > spec.highest:
        raise CodecError(f"{where} value {value} is out of range 0..{spec.highest}")
    return StateReport(spec.kind, value, spec.labels[value] if spec.labels else None)


def _decode_identity(spec: IdentitySpec, frame: Frame) -> IdentityReport:
    text = frame.data.rstrip(b"\x00")
    if not text or not text.isascii() or not all(0x20 <= byte < 0x7F for byte in text):
        raise CodecError(
            f"{spec.field.value} answer (0x{frame.control:02X}/0x{frame.command:02X}) is not printable ASCII: "
            f"{frame.data[:MAX_DATA_LENGTH]!r}"
        )
    return IdentityReport(spec.field, text.decode("ascii"))
