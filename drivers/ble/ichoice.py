"""ChoiceMMed iChoice (超思) oximeters: a service named after the unit's address, and an enable command.

- Service UUID: ``ba11f08c-5f14-0b0d-1080-00`` followed by the last five bytes of the unit's
  address (``10a0`` instead of ``1080`` on the iChoice blood-pressure monitor). Public examples
  end ``-007cbe2f87ba``, ``-007cbe238851``, ``-007cbe84e417``.
- Characteristics: cd01-cd04 notify, cd20 takes commands. They are 16-bit UUIDs in the Bluetooth
  base (``0000cd01-0000-1000-8000-00805f9b34fb``), not in the address-derived base: two public
  Android drivers name them so, and an ESP32 sketch finds them as ``CD01``..``CD20``.
- Enable notifications on cd01, cd02, cd03 and cd04 in turn, then write ``AA 55 04 B1 00 00 B5``
  to cd20. The unit sends nothing unless cd01, cd02 and cd03 are all enabled.
- Frames from the unit: ``55 AA``, a length counting the bytes after it (checksum included), the
  payload, and a checksum that is the sum of the length and payload bytes (mod 256); the
  command follows the same rule (04 + B1 + 00 + 00 = B5). A public Android plugin logs both
  frames it ever sees: ``55 AA 03 B1 00 B4`` (the enable command acknowledged) and
  ``55 AA 03 61 4D B1`` (97 %, 77 bpm): a 6-byte oximeter frame, SpO2 in byte 3, pulse in byte 4.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.ble.framing import FrameFormat
from drivers.ble.uuids import GattCharacteristic, sig_uuid
from drivers.errors import CodecError
from drivers.model import ReadingFlag

SERVICE_PREFIX_OXIMETER = "ba11f08c-5f14-0b0d-1080-"
SERVICE_PREFIX_BLOOD_PRESSURE = "ba11f08c-5f14-0b0d-10a0-"
_SERVICE_NAME = SERVICE_PREFIX_OXIMETER + "00<the last five address bytes>"


def _characteristic(name: str, short: int) -> GattCharacteristic:
    return GattCharacteristic(f"iChoice {name}", sig_uuid(short), _SERVICE_NAME)


NOTIFY_CHARACTERISTICS = tuple(_characteristic(f"CD0{n}", 0xCD00 + n) for n in range(1, 5))
"""cd01-cd04, enabled in this order (the unit stays silent unless cd01, cd02 and cd03 are on)."""
COMMAND = _characteristic("CD20", 0xCD20)

UNIT_SYNC = b"\x55\xaa"
HOST_SYNC = b"\xaa\x55"
ENABLE_COMMAND_CODE = 0xB1
_HEADER_SIZE = 3  # sync, length
_MIN_LENGTH = 2  # one payload byte and the checksum


class IChoiceCodecError(CodecError):
    """Bytes from an iChoice unit that are not a frame it sends, or an address that names no unit."""


def service_uuid(address: str, *, blood_pressure: bool = False) -> str:
    """The service UUID of the unit at ``address`` (``AA:BB:CC:DD:EE:FF``), as bleak reports it."""
    digits = address.replace(":", "").replace("-", "").lower()
    if len(digits) != 12 or any(c not in "0123456789abcdef" for c in digits):
        raise IChoiceCodecError(f"{address!r} is not a Bluetooth address")
    prefix = SERVICE_PREFIX_BLOOD_PRESSURE if blood_pressure else SERVICE_PREFIX_OXIMETER
    return f"{prefix}00{digits[2:]}"


def _checksum(length_and_payload: bytes) -> int:
    return sum(length_and_payload) & 0xFF


def encode_command(code: int, arguments: bytes = b"\x00\x00") -> bytes:
    """A host command: ``AA 55``, length, code, arguments, checksum."""
    body = bytes([len(arguments) + 2, code]) + arguments
    return HOST_SYNC + body + bytes([_checksum(body)])


ENABLE = encode_command(ENABLE_COMMAND_CODE)
"""``AA 55 04 B1 00 00 B5``: start sending."""


@dataclass(frozen=True, slots=True)
class IChoiceOximetry:
    spo2_percent: float | None
    """None while no finger is in the clip (the unit sends 0)."""
    pulse_rate_bpm: float | None
    flags: frozenset[ReadingFlag] = frozenset()
    perfusion_index_percent: float | None = None
    """The 6-byte frame carries none."""


@dataclass(frozen=True, slots=True)
class IChoiceAck:
    """The unit took a command (the enable command's echo)."""

    command: int


@dataclass(frozen=True, slots=True)
class IChoiceOther:
    """A frame of a kind no public source documents."""

    payload: bytes


IChoiceMessage = IChoiceOximetry | IChoiceAck | IChoiceOther


def _frame_size(header: bytes) -> int:
    length = header[2]
    if length < _MIN_LENGTH:
        raise IChoiceCodecError(f"iChoice frame: length {length} leaves no room for a payload and checksum")
    return _HEADER_SIZE + length


def _verify(frame: bytes) -> None:
    if _checksum(frame[2:-1]) != frame[-1]:
        raise IChoiceCodecError(f"iChoice frame: checksum {frame[-1]:#04x} does not add up")


FRAME_FORMAT = FrameFormat("iChoice frame", UNIT_SYNC, _HEADER_SIZE, _frame_size, _verify)

_OXIMETRY_SIZE = 2


def _ack(payload: bytes) -> IChoiceAck:
    return IChoiceAck(payload[0])


def _oximetry(payload: bytes) -> IChoiceMessage:
    if len(payload) != _OXIMETRY_SIZE:
        return IChoiceOther(payload)
    spo2 = payload[0] if 0 < payload[0] <= 100 else None
    pulse = payload[1] if spo2 is not None and payload[1] else None
    return IChoiceOximetry(
        spo2_percent=None if spo2 is None else float(spo2), pulse_rate_bpm=None if pulse is None else float(pulse)
    )


_REPLIES: dict[int, Callable[[bytes], IChoiceMessage]] = {ENABLE_COMMAND_CODE: _ack}
"""Frames whose first payload byte is a command code (no SpO2 is above 100) answer that command."""


def decode_frame(frame: bytes) -> IChoiceMessage:
    """Decode one whole frame (as the reassembler hands it over, checksum included and checked again)."""
    if len(frame) < _HEADER_SIZE + _MIN_LENGTH or frame[:2] != UNIT_SYNC:
        raise IChoiceCodecError(f"iChoice frame: {len(frame)} bytes not starting 55 AA with a payload")
    if _frame_size(frame[:_HEADER_SIZE]) != len(frame):
        raise IChoiceCodecError(f"iChoice frame: length byte {frame[2]} does not match its {len(frame)} bytes")
    _verify(frame)
    payload = frame[_HEADER_SIZE:-1]
    reply = _REPLIES.get(payload[0])
    return reply(payload) if reply is not None else _oximetry(payload)
