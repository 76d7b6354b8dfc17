"""Wellue/Viatom O2Ring (the "Oxy" ring protocol): live SpO2 by polling, and its clock.

The hub writes requests to 8b00ace7-... and the ring answers on 0734594a-..., both in service
14839ac4-... A request: ``AA cmd ~cmd block(u16 LE) length(u16 LE) payload crc8``; an answer has
the same layout with ``55`` first and a status where the command was (0 = done) - it does not
say which request it answers, so a session keeps one request in flight. The check is CRC-8 with
polynomial 0x07 over every byte before it (MackeyStingray ``o2r/o2pkt.py``; the request
``AA 17 E8 00 00 00 00 1B`` is the one ecostech viatom-ble sends). Requests longer than 20 bytes
go out in 20-byte writes, which the ring joins by their length.

Commands used here:

- ``0x14`` information: a JSON object (``"CurTIME": "2020-08-17,23:29:30"``, battery, model,
  serial, file list), NUL-padded;
- ``0x16`` configuration: JSON ``{"SetTIME":"YYYY-MM-DD,HH:MM:SS"}`` sets the clock (naive local);
- ``0x17`` live values: SpO2 % in byte 0, heart rate in byte 1, battery % in byte 7, charging in
  byte 8, motion in byte 9, a pulse-strength byte in 10 (o2r prints it as perfusion index; its
  unit is unknown, so it is not reported as one), finger present in byte 11 (o2r ``o2state.py``:
  ``624200000000006100920a0100`` is 98 %, 66 bpm, battery 97 %, worn; ``ffffff00000000600005000000``
  is no finger). Newer firmware is reported to prefer command 0x1B for live values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from drivers.ble.framing import FrameFormat, check_crc, crc8_smbus
from drivers.ble.uuids import GattCharacteristic
from drivers.errors import CodecError
from drivers.model import ReadingFlag

O2RING_SERVICE = "14839ac4-7d7e-415c-9a42-167340cf2339"
O2RING_NOTIFY = GattCharacteristic("O2Ring answers", "0734594a-a8e7-4b1a-a6b1-cd5243059a57", O2RING_SERVICE)
O2RING_WRITE = GattCharacteristic("O2Ring requests", "8b00ace7-eb0b-49b0-bbe9-9aee0a26e1a3", O2RING_SERVICE)

REQUEST_SYNC = 0xAA
ANSWER_SYNC = 0x55
WRITE_CHUNK = 20
"""The ring takes requests in writes of at most 20 bytes (the default ATT MTU less its header)."""
TIME_FORMAT = "%Y-%m-%d,%H:%M:%S"
_HEADER_SIZE = 7
MAX_ANSWER_PAYLOAD = 4096
"""Bounds the reassembler: the information JSON is about 300 bytes; a longer length is noise."""
STATUS_OK = 0


class Command(IntEnum):
    INFO = 0x14
    CONFIG = 0x16
    READ_LIVE = 0x17


class O2RingCodecError(CodecError):
    """Bytes from an O2Ring that are not an answer it sends, or an answer the hub cannot read."""


@dataclass(frozen=True, slots=True)
class O2RingAnswer:
    status: int
    """0 when the ring did what it was asked."""
    block: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class O2RingLive:
    """One answer to ``0x17``."""

    spo2_percent: float | None
    """None while no finger is in the ring or it has no value yet."""
    pulse_rate_bpm: float | None
    battery_percent: int | None
    charging: int
    """0 not charging, 1 charging, 2 charged."""
    motion: int
    pulse_strength: int
    finger_present: bool
    flags: frozenset[ReadingFlag] = frozenset()
    perfusion_index_percent: float | None = None
    """The ring's pulse-strength byte is not a perfusion index anyone has confirmed: never set."""


@dataclass(frozen=True, slots=True)
class O2RingInfo:
    device_time: datetime | None
    """``CurTIME`` as the ring shows it (naive local time); None when absent or unreadable."""
    model: str | None
    serial_number: str | None


def _frame_size(header: bytes) -> int:
    status, check = header[1], header[2]
    if status ^ check != 0xFF:
        raise O2RingCodecError(f"O2Ring answer: status {status:#04x} and its complement {check:#04x} disagree")
    length = int.from_bytes(header[5:7], "little")
    if length > MAX_ANSWER_PAYLOAD:
        raise O2RingCodecError(f"O2Ring answer: a {length}-byte payload is more than any answer carries")
    return _HEADER_SIZE + length + 1


def _verify(frame: bytes) -> None:
    check_crc("O2Ring answer", frame, crc8_smbus, covers_itself=False, error=O2RingCodecError)


ANSWER_FORMAT = FrameFormat("O2Ring answer", bytes([ANSWER_SYNC]), _HEADER_SIZE, _frame_size, _verify)


def encode_request(command: Command, payload: bytes = b"", block: int = 0) -> bytes:
    """A whole request; write it in :data:`WRITE_CHUNK`-byte pieces (:func:`write_chunks`)."""
    body = bytes([REQUEST_SYNC, command, command ^ 0xFF]) + block.to_bytes(2, "little")
    body += len(payload).to_bytes(2, "little") + payload
    return body + bytes([crc8_smbus(body)])


def write_chunks(request: bytes) -> list[bytes]:
    return [request[i : i + WRITE_CHUNK] for i in range(0, len(request), WRITE_CHUNK)]


def encode_set_time(local: datetime) -> bytes:
    """The configuration request that sets the ring's clock to ``local`` (naive home time)."""
    text = json.dumps({"SetTIME": local.strftime(TIME_FORMAT)}, separators=(",", ":"))
    return encode_request(Command.CONFIG, text.encode("ascii"))


def decode_answer(frame: bytes) -> O2RingAnswer:
    """Decode one whole answer frame (as the reassembler hands it over)."""
    if len(frame) < _HEADER_SIZE + 1 or frame[0] != ANSWER_SYNC:
        raise O2RingCodecError(f"O2Ring answer: {len(frame)} bytes not starting 55 with a header and CRC")
    if _frame_size(frame[:_HEADER_SIZE]) != len(frame):
        raise O2RingCodecError(f"O2Ring answer: its length field does not match its {len(frame)} bytes")
    _verify(frame)
    return O2RingAnswer(status=frame[1], block=int.from_bytes(frame[3:5], "little"), payload=frame[_HEADER_SIZE:-1])


_LIVE_SIZE = 12
_SPO2, _PULSE, _BATTERY, _CHARGING, _MOTION, _STRENGTH, _FINGER = 0, 1, 7, 8, 9, 10, 11
_SPO2_RANGE = range(10, 101)
"""o2r takes SpO2 outside 10-100 as no value (0xFF with no finger, 0 while it settles)."""
_NO_PULSE = (0, 0xFF)


def decode_live(payload: bytes) -> O2RingLive:
    """Decode the payload of an answer to ``0x17``."""
    if len(payload) < _LIVE_SIZE:
        raise O2RingCodecError(f"O2Ring live values: {len(payload)} bytes, expected at least {_LIVE_SIZE}")
    finger = bool(payload[_FINGER])
    spo2 = payload[_SPO2] if finger and payload[_SPO2] in _SPO2_RANGE else None
    pulse = payload[_PULSE] if spo2 is not None and payload[_PULSE] not in _NO_PULSE else None
    battery = payload[_BATTERY]
    return O2RingLive(
        spo2_percent=None if spo2 is None else float(spo2),
        pulse_rate_bpm=None if pulse is None else float(pulse),
        battery_percent=battery if battery <= 100 else None,
        charging=payload[_CHARGING],
        motion=payload[_MOTION],
        pulse_strength=payload[_STRENGTH],
        finger_present=finger,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def decode_info(payload: bytes) -> O2RingInfo:
    """Decode the JSON payload of an answer to ``0x14``."""
    try:
        info = json.loads(payload.decode("ascii").rstrip(" \t\r\n\0"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # a hostile nesting depth too
        raise O2RingCodecError(f"O2Ring information is not JSON: {exc}") from exc
    if not isinstance(info, dict):
        raise O2RingCodecError("O2Ring information is not a JSON object")
    time_text = _text(info.get("CurTIME"))
    device_time = None
    if time_text is not None:
        try:
            device_time = datetime.strptime(time_text, TIME_FORMAT)
        except ValueError:
            device_time = None
    return O2RingInfo(device_time=device_time, model=_text(info.get("Model")), serial_number=_text(info.get("SN")))
