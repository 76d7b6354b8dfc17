"""SunTech Advantage OEM blood-pressure (NIBP) module: the pure packet codec (bytes in, frozen dataclasses out).

No I/O, no clock, no logging. Source: the fact sheet ``reference/serial-devices.md`` ("SunTech Advantage
OEM blood-pressure (NIBP) module"), itself drawn from a public STM32 driver (hwy0606/STM32F103), a Qt
monitor's ``SuntechProvider`` (519984307/Appciton) and a Java codec quoting the manual (ak-git/DesktopFX).

Host -> module: ``3A | command | data | checksum``. Module -> host: ``3E | length | data | checksum``
where the length counts the whole packet, start byte and checksum included (4..0x43). The checksum
is ``0x100 - (sum of the earlier bytes mod 256)``, so every packet sums to 0 mod 256. A reply carries
no command id: what it answers is told by its length (4 acknowledge, 5 cuff pressure, 0x18 BP data,
0x43 return string), so the session must keep one exchange at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from enum import IntEnum, StrEnum

from drivers.model import BloodPressure, DeviceInfo, HubTime, Reading, TimeSource

HOST_START = 0x3A
MODULE_START = 0x3E
MIN_PACKET_BYTES = 4
"""Start byte, length, one data byte, checksum: an acknowledge, the shortest reply."""
MAX_PACKET_BYTES = 0x43
"""The sheet's maximum (the return string). A larger length byte is noise that followed a 0x3E."""

MODEL = "SunTech Advantage"


def checksum(head: bytes | bytearray) -> int:
    """The byte that makes the whole packet sum to 0 mod 256."""
    return -sum(head) & 0xFF


def encode_command(command: bytes) -> bytes:
    """A host packet: ``3A``, the command and its data, the checksum (``encode_command(b"\\x20") == START_ADULT``)."""
    if not command:
        raise ValueError("a host command needs at least its command byte")
    head = bytes((HOST_START,)) + command
    return head + bytes((checksum(head),))


# Host commands from the sheet (the tests check each byte for byte).
START_ADULT = encode_command(b"\x20")
ABORT = encode_command(b"\x79\x01\x00")
GET_LAST_BP_DATA = encode_command(b"\x79\x03\x00")
GET_CUFF_PRESSURE = encode_command(b"\x79\x05\x00")
GET_RETURN_STRING = encode_command(b"\x79\x02\x40")
STATUS = encode_command(b"\x79\x11\x00")
"""Status/self-test of the Advantage A+; older modules answer ``D`` (unrecognised)."""
RESET = encode_command(b"\x8A")


# -- the module's packets --------------------------------------------------------------------------


class AckCode(StrEnum):
    """The letter of a 4-byte acknowledge."""

    RECEIVED = "O"
    DONE = "K"
    ABORTED = "A"
    BUSY = "B"
    SLEEPING = "S"
    ERROR = "E"
    UNRECOGNISED = "D"
    TIMEOUT = "T"

    @property
    def text(self) -> str:
        return ACK_TEXTS[self]


ACK_TEXTS: dict[AckCode, str] = {
    AckCode.RECEIVED: "command received",
    AckCode.DONE: "measurement done",
    AckCode.ABORTED: "measurement aborted",
    AckCode.BUSY: "module busy (a measurement is running)",
    AckCode.SLEEPING: "module sleeping",
    AckCode.ERROR: "module reported an error",
    AckCode.UNRECOGNISED: "command not recognised by this module",
    AckCode.TIMEOUT: "module timed out",
}


class ErrorCode(IntEnum):
    """Byte 20 of the BP data: why a measurement has no result (0 means it has one)."""

    WEAK_SIGNAL = 0x01
    ERRATIC_SIGNAL = 0x02
    OUT_OF_RANGE = 0x03
    MEASUREMENT_TIME_EXCEEDED = 0x04
    PNEUMATIC_BLOCKAGE = 0x55
    TERMINATED_BY_USER = 0x56
    INFLATE_TIMEOUT = 0x57
    SAFETY_TIMEOUT = 0x58
    CUFF_OVERPRESSURE = 0x59
    POWER_OR_HARDWARE = 0x5A
    PERMISSION = 0x5B
    TRANSDUCER_OUT_OF_RANGE = 0x61
    CALIBRATION_DATA_FAILURE = 0x63

    @property
    def text(self) -> str:
        return ERROR_TEXTS[self]


ERROR_TEXTS: dict[ErrorCode, str] = {
    ErrorCode.WEAK_SIGNAL: "weak or no signal: check the cuff is on the bare upper arm and measure again",
    ErrorCode.ERRATIC_SIGNAL: "erratic signal or artefact: sit still, do not talk, and measure again",
    ErrorCode.OUT_OF_RANGE: "blood pressure out of the module's range: measure again, call the doctor if repeated",
    ErrorCode.MEASUREMENT_TIME_EXCEEDED: "measurement took too long: sit still and measure again",
    ErrorCode.PNEUMATIC_BLOCKAGE: "pneumatic blockage: check the cuff hose is not kinked or pinched",
    ErrorCode.TERMINATED_BY_USER: "measurement stopped by the user",
    ErrorCode.INFLATE_TIMEOUT: "inflate timeout, air leak or loose cuff: check the cuff and its hose",
    ErrorCode.SAFETY_TIMEOUT: "safety timeout: the cuff was deflated; measure again",
    ErrorCode.CUFF_OVERPRESSURE: "cuff overpressure: the cuff was deflated; check the arm is still",
    ErrorCode.POWER_OR_HARDWARE: "power or hardware problem: call the technician",
    ErrorCode.PERMISSION: "permission problem in the module: call the technician",
    ErrorCode.TRANSDUCER_OUT_OF_RANGE: "pressure transducer out of range: call the technician",
    ErrorCode.CALIBRATION_DATA_FAILURE: "calibration data failure: the module needs calibration, call the technician",
}


_ERROR_CODES: dict[int, ErrorCode] = {int(code): code for code in ErrorCode}
_ACK_CODES: dict[str, AckCode] = {code.value: code for code in AckCode}


def error_text(code: int) -> str:
    """What a technician reads for an error code, including codes the sheet's table lacks."""
    if code in _ERROR_CODES:
        return _ERROR_CODES[code].text
    return f"error code 0x{code:02X} (not in the module's documented table): call the technician"


@dataclass(frozen=True, slots=True)
class Ack:
    code: AckCode


@dataclass(frozen=True, slots=True)
class CuffPressure:
    mmhg: int | None
    """None when the module reports -1 (no valid pressure)."""


@dataclass(frozen=True, slots=True)
class BpResult:
    """The last measurement the module holds (always mmHg)."""

    systolic: int
    diastolic: int
    map: int
    """Mean arterial pressure."""
    heart_rate: int
    beats: int
    """Beats detected during deflation."""
    status: int
    """The BP status byte, passed through: the public sources do not say what its bits mean."""
    error_code: ErrorCode | int | None
    """None for a good result; an :class:`ErrorCode`, or the raw code if the sheet's table lacks it."""
    test_codes: bytes = bytes(8)

    @property
    def empty(self) -> bool:
        """True when the module holds no measurement (all zero after power-up)."""
        return self.error_code is None and self.systolic == 0 and self.diastolic == 0


@dataclass(frozen=True, slots=True)
class ReturnString:
    """The module's model/version string ("LX..." Advantage, "SB..." Advantage A+)."""

    text: str


@dataclass(frozen=True, slots=True)
class UnknownPacket:
    """A checksum-valid packet this codec has no layout for (a length or type the sheet does not give)."""

    data: bytes


Packet = Ack | CuffPressure | BpResult | ReturnString | UnknownPacket

_BP_DATA_BYTES = 21
"""Data bytes of the 0x18 BP data packet (24 minus start, length and checksum)."""
_STREAM_PRESSURE_TYPE = 0x01
"""``3E 07 01 LL HH ..``: cuff pressure streamed during a ``3A 56`` measurement (other bytes undocumented)."""
_BP_TYPED_TYPE = 0x03
"""``3E 19 03 ..``: after a ``3A 56`` measurement; unverified, read as a type byte then the 21 BP data bytes."""


def _ack(data: bytes) -> Packet:
    code = _ACK_CODES.get(chr(data[0]))
    return UnknownPacket(data) if code is None else Ack(code)


def _pressure(low_high: bytes) -> CuffPressure:
    mmhg = int.from_bytes(low_high, "little", signed=True)
    return CuffPressure(None if mmhg == -1 else mmhg)


def _streamed_pressure(data: bytes) -> Packet:
    return _pressure(data[1:3]) if data[0] == _STREAM_PRESSURE_TYPE else UnknownPacket(data)


def _bp_result(data: bytes) -> BpResult:
    code = data[18]
    error: ErrorCode | int | None = None
    if code:
        error = _ERROR_CODES.get(code, code)
    return BpResult(
        systolic=int.from_bytes(data[0:2], "little"),
        diastolic=int.from_bytes(data[2:4], "little"),
        map=int.from_bytes(data[16:18], "little"),
        heart_rate=data[14],
        beats=data[4],
        status=data[5],
        error_code=error,
        test_codes=bytes(data[6:14]),
    )


def _typed_bp_result(data: bytes) -> Packet:
    return _bp_result(data[1:]) if data[0] == _BP_TYPED_TYPE else UnknownPacket(data)


def _return_string(data: bytes) -> ReturnString:
    return ReturnString(data.decode("ascii", "replace").rstrip("\x00 "))


_DECODERS: dict[int, Callable[[bytes], Packet]] = {
    # Whole packet length: how its data bytes read. From the sheet's "replies by length".
    4: _ack,
    5: _pressure,
    7: _streamed_pressure,
    0x18: _bp_result,
    0x19: _typed_bp_result,
    0x43: _return_string,
}


def decode_packet(packet: bytes) -> Packet:
    """A whole, checksum-valid module packet as its dataclass (``UnknownPacket`` for a length with no layout)."""
    decoder = _DECODERS.get(len(packet))
    data = bytes(packet[2:-1])
    return UnknownPacket(data) if decoder is None else decoder(data)


# -- module-side encoders (the simulator and the tests build packets with these) -------------------


def encode_packet(data: bytes) -> bytes:
    size = len(data) + 3
    if not MIN_PACKET_BYTES <= size <= MAX_PACKET_BYTES:
        raise ValueError(f"a module packet holds 1..{MAX_PACKET_BYTES - 3} data bytes, got {len(data)}")
    head = bytes((MODULE_START, size)) + data
    return head + bytes((checksum(head),))


def encode_ack(code: AckCode) -> bytes:
    return encode_packet(code.value.encode("ascii"))


def encode_cuff_pressure(mmhg: int | None) -> bytes:
    return encode_packet((-1 if mmhg is None else mmhg).to_bytes(2, "little", signed=True))


def bp_data(result: BpResult) -> bytes:
    """The 21 data bytes of a BP data packet (spare bytes zero)."""
    if len(result.test_codes) != 8:
        raise ValueError(f"test_codes must be 8 bytes, got {len(result.test_codes)}")
    return (
        result.systolic.to_bytes(2, "little")
        + result.diastolic.to_bytes(2, "little")
        + bytes((result.beats, result.status))
        + result.test_codes
        + bytes((result.heart_rate, 0))
        + result.map.to_bytes(2, "little")
        + bytes((int(result.error_code or 0), 0, 0))
    )


def encode_bp_result(result: BpResult, *, typed: bool = False) -> bytes:
    """The 0x18 BP data packet, or with ``typed`` the ``3E 19 03 ..`` variant."""
    return encode_packet((bytes((_BP_TYPED_TYPE,)) if typed else b"") + bp_data(result))


def encode_return_string(text: str) -> bytes:
    return encode_packet(text.encode("ascii").ljust(MAX_PACKET_BYTES - 3, b"\x00")[: MAX_PACKET_BYTES - 3])


# -- streaming decoder -----------------------------------------------------------------------------


class DecodeErrorKind(StrEnum):
    GARBAGE = "garbage"
    """Bytes before a 0x3E start byte (noise, a wrong baud rate)."""
    BAD_LENGTH = "bad_length"
    """A length byte outside 4..0x43: that 0x3E was noise, not a start byte."""
    BAD_CHECKSUM = "bad_checksum"
    TRUNCATED = "truncated"
    """A packet cut short: a complete, valid packet starts before its declared end."""


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Bytes the decoder dropped, and why. An item in the decoded stream, not an exception."""

    kind: DecodeErrorKind
    dropped: int


class FrameDecoder:
    """Turns a byte stream, in chunks of any size, into packets and decode errors, in order.

    After anything bad it resynchronises on the next 0x3E, skipping only up to there, so a good packet
    right behind noise or a cut packet is never lost. A packet still incomplete while a complete,
    checksum-valid packet already sits inside its declared length is taken as cut short: waiting
    for the declared length would hold an acknowledge (the end of a measurement) hostage.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete packet (always fewer than ``MAX_PACKET_BYTES``)."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Packet | DecodeError]:
        self._buffer += chunk
        items: list[Packet | DecodeError] = []
        while self._buffer:
            start = self._buffer.find(MODULE_START)
            if start != 0:
                items.append(self._drop(len(self._buffer) if start < 0 else start, DecodeErrorKind.GARBAGE))
                continue
            if len(self._buffer) < 2:
                break  # a start byte waiting for its length
            item = self._packet_at_start()
            if item is None:
                break
            items.append(item)
        return items

    def _packet_at_start(self) -> Packet | DecodeError | None:
        """The packet the buffer starts with, an error dropping it, or None to wait for more bytes."""
        buffer = self._buffer
        size = buffer[1]
        if not MIN_PACKET_BYTES <= size <= MAX_PACKET_BYTES:
            return self._drop(_next_start(buffer, 1), DecodeErrorKind.BAD_LENGTH)
        complete = len(buffer) >= size
        valid = complete and sum(buffer[:size]) & 0xFF == 0
        if not valid:
            later = _next_valid_packet(buffer, 1)
            if later is not None and later < size:
                return self._drop(later, DecodeErrorKind.TRUNCATED)
            if not complete:
                return None
            return self._drop(_next_start(buffer, 1), DecodeErrorKind.BAD_CHECKSUM)
        packet = decode_packet(bytes(buffer[:size]))
        del buffer[:size]
        return packet

    def _drop(self, count: int, kind: DecodeErrorKind) -> DecodeError:
        del self._buffer[:count]
        return DecodeError(kind=kind, dropped=count)


def _next_start(buffer: bytearray, start: int) -> int:
    found = buffer.find(MODULE_START, start)
    return len(buffer) if found < 0 else found


def _next_valid_packet(buffer: bytearray, start: int) -> int | None:
    """Start of the first complete, checksum-valid packet at or after ``start``, if one is buffered."""
    position = buffer.find(MODULE_START, start)
    while 0 <= position < len(buffer) - 1:
        size = buffer[position + 1]
        if (
            MIN_PACKET_BYTES <= size <= MAX_PACKET_BYTES
            and len(buffer) - position >= size
            and sum(buffer[position : position + size]) & 0xFF == 0
        ):
            return position
        position = buffer.find(MODULE_START, position + 1)
    return None


# -- readings --------------------------------------------------------------------------------------


def source_key(result: BpResult, received: HubTime) -> str:
    """The module has no clock and no counter: its result bytes plus the second the hub first got them."""
    return f"{bp_data(result).hex()}@{received.wall.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"


def result_to_reading(result: BpResult, device: DeviceInfo, resident_id: str, received: HubTime) -> Reading | None:
    """A module result as a hub ``Reading`` in mmHg, or None when it is not a measurement of a person.

    A result with an error code is not a reading (its numbers are whatever the module gave up on), and
    an empty one (all zero after power-up) is no measurement at all. The module has no clock, so the
    measurement time is the hub's receive time.
    """
    if result.error_code is not None or result.empty:
        return None
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=BloodPressure(
            systolic=float(result.systolic),
            diastolic=float(result.diastolic),
            mean_arterial=float(result.map),
            pulse=float(result.heart_rate),
        ),
        measured_at=received.wall,
        time_source=TimeSource.HUB if received.synced else TimeSource.HUB_UNSYNCED,
        received=received,
        source_key=source_key(result, received),
    )
