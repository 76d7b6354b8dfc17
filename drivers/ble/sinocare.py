"""Sinocare 三诺 安稳+Air glucose meter (advertises ``BDE_WEIXIN_TTM``): its ``53 4E`` frames. Pure.

What the public sources say, and all this module assumes:

- GATT service FFB0 with characteristics FFB1 and FFB2 (one notifies, the hub writes the other).
- Frames start ``53 4E`` ("SN"); byte 2 is a length. Command codes (sinocare2017
  ``wx_blue_iot_sdk`` README): 03 start (the meter announces itself), 04 a real-time result,
  0e a history result, 06 set time.
- A result: the meter's time in bytes 6-11 (year - 2000, month, day, hour, minute, second), the
  glucose in bytes 12-13 big-endian in tenths, mmol/L when byte 19 is 0 (mg/dL tenths
  otherwise), as the public BLE example ``53 4E 12 00 12 04 11 05 10 02 04 1D 00 56 00 01 1E 09 00 00``
  (8.6 mmol/L, jianbao ``SannuoAnWenBloodSugar``) reads.

Read from that example, and *unconfirmed*: a frame is ``byte 2 + 2`` bytes long and the command
is byte 5. The WeChat-relayed example in the SDK README (``U04QAAQEEQQLEBskADYAAM0Yog==``, 19
bytes) is one byte longer than its length byte says by that rule, ends with the sum of bytes 2
onwards, and has no byte 19 for the unit: a differently wrapped frame, which this module refuses
(too short for a result) rather than guesses at. A trailing checksum on the meter's own frames
would be left over by the length rule and skipped as noise (counted, logged once); no check is
made, since the BLE example ends in 00 00 and fits no sum. What the hub writes (the time, and an
answer to each result, as the vendor SDK's server answers) is laid out the same way, ending in
that sum. A field test must confirm all of this; the session logs once what a real meter does
differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum, IntEnum

from drivers.ble.uuids import GattCharacteristic, sig_uuid
from drivers.errors import CodecError
from drivers.model import mg_dl_to_mmol_l

SINOCARE_SERVICE = sig_uuid(0xFFB0)
SINOCARE_FFB1 = GattCharacteristic("Sinocare FFB1", sig_uuid(0xFFB1), SINOCARE_SERVICE)
SINOCARE_FFB2 = GattCharacteristic("Sinocare FFB2", sig_uuid(0xFFB2), SINOCARE_SERVICE)

HEADER = b"\x53\x4e"
COMMAND_AT = 5
MIN_FRAME = COMMAND_AT + 1
MAX_FRAME = 64
"""Bigger than any frame the sources show (20 bytes); a larger length byte is line noise."""
RESULT_SIZE = 20
METER_RANGE_MMOL_L = (1.1, 33.3)
"""安稳+Air's measuring range: a value outside it is a frame misread, not a glucose."""


class SinocareFrameError(CodecError):
    """A frame from a Sinocare meter is malformed, or says something this driver does not know."""


class SinocareCommand(IntEnum):
    START = 0x03
    RESULT = 0x04
    SET_TIME = 0x06
    HISTORY = 0x0E


class GlucoseUnit(Enum):
    MMOL_L = "mmol/L"
    MG_DL = "mg/dL"


@dataclass(frozen=True, slots=True)
class SinocareFrame:
    command: int
    """The command byte; a SinocareCommand when it is one this driver knows."""
    data: bytes
    """The whole frame."""


@dataclass(frozen=True, slots=True)
class SinocareResult:
    """One glucose result, real-time (04) or from the meter's memory (0e)."""

    history: bool
    time: datetime
    """The meter's clock, naive local time."""
    raw: int
    """Bytes 12-13: tenths of the unit below."""
    unit: GlucoseUnit
    mmol_l: float

    @property
    def source_key(self) -> str:
        """The result's identity at the meter: the same whether it comes live or from history."""
        return f"sinocare:{self.time.isoformat()}:{self.raw}:{self.unit.value}"


class FrameSplitter:
    """Cuts the notified byte stream into frames (one notification may hold part of one, or two)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.skipped = 0
        """Bytes dropped while looking for a frame start (noise, or a frame this driver misreads)."""

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        frames: list[bytes] = []
        while True:
            start = self._buffer.find(HEADER)
            if start < 0:
                keep = 1 if self._buffer.endswith(HEADER[:1]) else 0
                self.skipped += len(self._buffer) - keep
                del self._buffer[: len(self._buffer) - keep]
                return frames
            self.skipped += start
            del self._buffer[:start]
            if len(self._buffer) < 3:
                return frames
            size = self._buffer[2] + 2
            if not MIN_FRAME <= size <= MAX_FRAME:
                self.skipped += 1
                del self._buffer[:1]
                continue
            if len(self._buffer) < size:
                return frames
            frames.append(bytes(self._buffer[:size]))
            del self._buffer[:size]


def decode_frame(frame: bytes) -> SinocareFrame:
    """One whole frame (as FrameSplitter cuts them): its command."""
    if not frame.startswith(HEADER):
        raise SinocareFrameError(f"Sinocare frame starts {frame[:2].hex()}; 534e expected")
    if len(frame) < MIN_FRAME or frame[2] + 2 != len(frame):
        raise SinocareFrameError(f"Sinocare frame of {len(frame)} bytes says it has {frame[2:3].hex() or 'no'} length")
    return SinocareFrame(frame[COMMAND_AT], frame)


_UNITS = {0x00: GlucoseUnit.MMOL_L}


def decode_result(frame: SinocareFrame) -> SinocareResult:
    """A real-time (04) or history (0e) result frame."""
    if frame.command not in (SinocareCommand.RESULT, SinocareCommand.HISTORY):
        raise SinocareFrameError(f"Sinocare command {frame.command:#04x} carries no result")
    data = frame.data
    if len(data) < RESULT_SIZE:
        raise SinocareFrameError(f"Sinocare result frame of {len(data)} bytes; {RESULT_SIZE} expected")
    try:
        time = datetime(2000 + data[6], data[7], data[8], data[9], data[10], data[11])
    except ValueError as exc:
        raise SinocareFrameError(f"Sinocare result has an impossible time: {exc}") from None
    raw = int.from_bytes(data[12:14], "big")
    unit = _UNITS.get(data[19], GlucoseUnit.MG_DL)
    mmol_l = round(raw / 10, 1) if unit is GlucoseUnit.MMOL_L else mg_dl_to_mmol_l(raw / 10)
    low, high = METER_RANGE_MMOL_L
    if not low <= mmol_l <= high:
        raise SinocareFrameError(
            f"Sinocare result {raw} in tenths of {unit.value} is {mmol_l} mmol/L, outside the meter's "
            f"{low}-{high} mmol/L: not a reading this driver can read"
        )
    return SinocareResult(frame.command == SinocareCommand.HISTORY, time, raw, unit, mmol_l)


def encode_frame(command: SinocareCommand, payload: bytes = b"") -> bytes:
    """A frame from the hub, laid out as the meter's own (unconfirmed; see the module docstring)."""
    size = MIN_FRAME + len(payload) + 1
    if size > MAX_FRAME:
        raise ValueError(f"Sinocare frame of {size} bytes; at most {MAX_FRAME}")
    body = HEADER + bytes([size - 2, 0x00, size - 2, command]) + payload
    return body + bytes([sum(body[2:]) & 0xFF])


def encode_set_time(now_local: datetime) -> bytes:
    """Set the meter's clock to the home's local time (naive)."""
    if not 2000 <= now_local.year <= 2255:
        raise ValueError(f"the meter's clock cannot show {now_local.year}")
    return encode_frame(SinocareCommand.SET_TIME, bytes([now_local.year - 2000, now_local.month, now_local.day,
                                                         now_local.hour, now_local.minute, now_local.second]))


def encode_answer(command: SinocareCommand) -> bytes:
    """The hub's answer to a result (04, 0e): its command echoed, as the vendor SDK's server answers."""
    return encode_frame(command)
