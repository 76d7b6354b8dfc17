"""Creative/Viatom PC-60F family fingertip oximeters (PC-60F/FW, POD; sold as Wellue and other labels).

A frame: ``AA 55``, a token (``0F`` pulse oximeter, ``F0`` equipment information), a length byte
counting the bytes after it (CRC included), a function byte, its payload, and a CRC-8/MAXIM over
the whole frame, so the CRC of a good frame with its CRC byte is 0. The unit streams frames
while a finger is in it, over Nordic UART (newer units) or FFB0/FFB2 (older ones), cut into
notifications anywhere (see :mod:`drivers.ble.framing`).

Functions (token, function):

- ``0F 01`` SpO2 parameters: SpO2 %, pulse rate u16 little-endian, perfusion index in tenths of a
  per cent, status (bit 1 probe off, bit 2 searching for a pulse), and a byte whose bits 6-7 are
  the battery level 0-3. Public example (sza2 viatom_pc60fw README):
  ``AA 55 0F 08 01 60 3E 00 50 00 C0`` + CRC = 96 %, 62 bpm, PI 8.0. The README leaves the byte
  after the pulse rate and the last two unnamed; Viatom's own SDK (LepuBle ``PC60FwBleResponse``)
  reads them as the pulse rate's high byte, the status and the battery bits.
- ``0F 02`` pleth waveform samples (bit 7 marks the beat; the hub has no use for them);
- ``0F 21`` working status (mode, step); ``F0 01`` device information, ``F0 02`` serial number;
- ``F0 03`` battery level 0-3 (the README's ``F0 03 03 03`` example: level 3).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.ble.framing import FrameFormat, check_crc, crc8_maxim
from drivers.ble.uuids import GattCharacteristic, sig_uuid
from drivers.errors import CodecError
from drivers.model import ReadingFlag

NORDIC_UART_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NORDIC_UART_TX = GattCharacteristic("Nordic UART TX", "6e400003-b5a3-f393-e0a9-e50e24dcca9e", NORDIC_UART_SERVICE)
"""The device's side of the UART: it notifies its frames here (newer units)."""
VIATOM_FFB0_SERVICE = sig_uuid(0xFFB0)
VIATOM_FFB2 = GattCharacteristic("Viatom FFB2", sig_uuid(0xFFB2), VIATOM_FFB0_SERVICE)
"""Older units notify the same frames on FFB2."""
DATA_CHARACTERISTICS = (NORDIC_UART_TX, VIATOM_FFB2)
"""Where a unit may send its frames, newer first; a session subscribes to the first it offers."""

SYNC = b"\xaa\x55"
TOKEN_OXIMETER = 0x0F
TOKEN_EQUIPMENT = 0xF0
_HEADER_SIZE = 4  # sync, token, length
_MIN_LENGTH = 2  # function + CRC
BATTERY_LEVELS = 3
"""The battery is reported as 0-3 (3 full)."""

_STATUS_PROBE_OFF = 0x02
_STATUS_PULSE_SEARCHING = 0x04
_BATTERY_SHIFT = 6


class ViatomCodecError(CodecError):
    """Bytes from a PC-60F-family oximeter that are not a frame it sends (noise, or another firmware)."""


@dataclass(frozen=True, slots=True)
class ViatomSpO2:
    """One SpO2 parameters frame (about once a second while measuring)."""

    spo2_percent: float | None
    """None while the finger is out or the unit has no value yet."""
    pulse_rate_bpm: float | None
    perfusion_index_percent: float | None
    probe_off: bool
    pulse_searching: bool
    battery_level: int
    """0-3 (3 full)."""
    flags: frozenset[ReadingFlag] = frozenset()


@dataclass(frozen=True, slots=True)
class ViatomPleth:
    samples: tuple[int, ...]
    """Waveform samples, beat marker (bit 7) cleared."""


@dataclass(frozen=True, slots=True)
class ViatomBattery:
    level: int
    """0-3 (3 full)."""


@dataclass(frozen=True, slots=True)
class ViatomOther:
    """A frame the hub has no use for (device information, working status, other firmware's)."""

    token: int
    function: int
    payload: bytes


ViatomMessage = ViatomSpO2 | ViatomPleth | ViatomBattery | ViatomOther


def _frame_size(header: bytes) -> int:
    token, length = header[2], header[3]
    if token not in (TOKEN_OXIMETER, TOKEN_EQUIPMENT):
        raise ViatomCodecError(f"PC-60F frame: token {token:#04x} is neither 0x0f nor 0xf0")
    if length < _MIN_LENGTH:
        raise ViatomCodecError(f"PC-60F frame: length {length} leaves no room for a function and its CRC")
    return _HEADER_SIZE + length


def _verify(frame: bytes) -> None:
    check_crc("PC-60F frame", frame, crc8_maxim, covers_itself=True, error=ViatomCodecError)


FRAME_FORMAT = FrameFormat("PC-60F frame", SYNC, _HEADER_SIZE, _frame_size, _verify)
"""For a :class:`~drivers.ble.framing.FrameReassembler` over the unit's data characteristic."""


def _need(payload: bytes, size: int, what: str) -> None:
    if len(payload) < size:
        raise ViatomCodecError(f"PC-60F {what}: {len(payload)} payload bytes, expected at least {size}")


def _spo2(payload: bytes) -> ViatomSpO2:
    _need(payload, 6, "SpO2 parameters")
    status = payload[4]
    probe_off = bool(status & _STATUS_PROBE_OFF)
    searching = bool(status & _STATUS_PULSE_SEARCHING)
    spo2 = payload[0] if 0 < payload[0] <= 100 and not probe_off else None
    pulse = int.from_bytes(payload[1:3], "little")
    perfusion = payload[3]
    return ViatomSpO2(
        spo2_percent=None if spo2 is None else float(spo2),
        # 0 is "no pulse found yet"; anything a u16 can hold beyond 300 bpm is not a heart.
        pulse_rate_bpm=float(pulse) if spo2 is not None and 0 < pulse <= 300 else None,
        perfusion_index_percent=perfusion / 10 if spo2 is not None and perfusion else None,
        probe_off=probe_off,
        pulse_searching=searching,
        battery_level=payload[5] >> _BATTERY_SHIFT,
        flags=frozenset({ReadingFlag.MEASUREMENT_UNRELIABLE}) if searching else frozenset(),
    )


def _pleth(payload: bytes) -> ViatomPleth:
    return ViatomPleth(tuple(sample & 0x7F for sample in payload))


def _battery(payload: bytes) -> ViatomBattery:
    _need(payload, 1, "battery level")
    if payload[0] > BATTERY_LEVELS:
        raise ViatomCodecError(f"PC-60F battery level {payload[0]} is outside 0-{BATTERY_LEVELS}")
    return ViatomBattery(payload[0])


_DECODERS: dict[tuple[int, int], Callable[[bytes], ViatomMessage]] = {
    (TOKEN_OXIMETER, 0x01): _spo2,
    (TOKEN_OXIMETER, 0x02): _pleth,
    (TOKEN_EQUIPMENT, 0x03): _battery,
}


def decode_frame(frame: bytes) -> ViatomMessage:
    """Decode one whole frame (as the reassembler hands it over, CRC included and checked again)."""
    if len(frame) < _HEADER_SIZE + _MIN_LENGTH or frame[:2] != SYNC:
        raise ViatomCodecError(f"PC-60F frame: {len(frame)} bytes not starting AA 55 with a function and CRC")
    if _frame_size(frame[:_HEADER_SIZE]) != len(frame):
        raise ViatomCodecError(f"PC-60F frame: length byte {frame[3]} does not match its {len(frame)} bytes")
    _verify(frame)
    token, function, payload = frame[2], frame[4], frame[5:-1]
    decoder = _DECODERS.get((token, function))
    if decoder is None:
        return ViatomOther(token, function, payload)
    return decoder(payload)


def encode_frame(token: int, function: int, payload: bytes) -> bytes:
    """A frame as the unit sends it (for tests and the bench; the hub sends it nothing)."""
    body = SYNC + bytes([token, len(payload) + 2, function]) + payload
    return body + bytes([crc8_maxim(body)])
