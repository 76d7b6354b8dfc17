"""Omron's own BLE protocol (older units): the unlock key and the EEPROM block frames. Pure.

Facts from the public omblepy driver (``omblepy.py``) and hass-omron (``omron_ble/``):

- Service ecbe3980-c9a2-11e1-b1bd-0002a5d5c51b has four "send" characteristics (the hub writes a
  command there, 16 bytes per characteristic, the first 16 on the first), four "receive"
  characteristics (the cuff notifies its answer the same way: the first byte of the first part
  is the frame's length, so ``ceil(length / 16)`` parts make a frame), and an unlock
  characteristic.
- Unlock: with the cuff in pairing mode (``-P-``), ``02`` + 16 zero bytes asks to program a key
  (answer ``82 ..``), then ``00`` + the 16-byte key programs it (answer ``80 ..``). Every later
  session writes ``01`` + the key (answer ``81 ..``; anything else: not this key).
- A frame is ``[length][command: 2][address: 2, big-endian][size][data...][00][xor]``, the xor of
  every byte of a whole frame being 0. Commands: ``00 00`` opens a transfer (answer ``80 00``),
  ``01 00`` reads ``size`` bytes of EEPROM at ``address`` (answer ``81 00`` with the data),
  ``0f 00`` ends the transfer (answer ``8f 00``, byte 6 a status, 0 = fine).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import reduce
from operator import xor

from drivers.ble.uuids import GattCharacteristic, sig_uuid
from drivers.errors import ChecksumError, CodecError

OMRON_SERVICE = "ecbe3980-c9a2-11e1-b1bd-0002a5d5c51b"
OMRON_NEWER_SERVICE = sig_uuid(0xFE4A)
"""Newer units (hass-omron): Omron's 16-bit service, bonded by the operating system."""

SEND = tuple(
    GattCharacteristic(f"Omron send {n}", uuid, OMRON_SERVICE)
    for n, uuid in enumerate(
        (
            "db5b55e0-aee7-11e1-965e-0002a5d5c51b",
            "e0b8a060-aee7-11e1-92f4-0002a5d5c51b",
            "0ae12b00-aee8-11e1-a192-0002a5d5c51b",
            "10e1ba60-aee8-11e1-89e5-0002a5d5c51b",
        )
    )
)
RECEIVE = tuple(
    GattCharacteristic(f"Omron receive {n}", uuid, OMRON_SERVICE)
    for n, uuid in enumerate(
        (
            "49123040-aee8-11e1-a74d-0002a5d5c51b",
            "4d0bf320-aee8-11e1-a0d9-0002a5d5c51b",
            "5128ce60-aee8-11e1-b84b-0002a5d5c51b",
            "560f1420-aee8-11e1-8184-0002a5d5c51b",
        )
    )
)
UNLOCK = GattCharacteristic("Omron unlock", "b305b680-aee7-11e1-a730-0002a5d5c51b", OMRON_SERVICE)

PART_SIZE = 16
"""Bytes per send or receive characteristic: a frame is cut into parts of this size."""
MAX_FRAME = PART_SIZE * len(RECEIVE)
KEY_SIZE = 16
MAX_READ = MAX_FRAME - 8
"""The most EEPROM bytes one read can answer: a frame is 8 bytes of header and trailer."""


class OmronFrameError(CodecError):
    """A frame from an Omron cuff is malformed: cut short, too long, or not what was asked for."""


class ReadRefusedError(OmronFrameError):
    """The cuff answered a read with a refusal code instead of data (a region it will not serve)."""


class Command(Enum):
    """Command codes of the EEPROM protocol; the cuff answers with the first byte's top bit set."""

    OPEN = b"\x00\x00"
    READ = b"\x01\x00"
    CLOSE = b"\x0f\x00"

    @property
    def answer(self) -> bytes:
        return bytes([self.value[0] | 0x80, self.value[1]])


class UnlockStep(Enum):
    """What the hub writes to the unlock characteristic, and the first byte of the cuff's yes."""

    ENTER_KEY_PROGRAMMING = (0x02, 0x82)
    PROGRAM_KEY = (0x00, 0x80)
    UNLOCK = (0x01, 0x81)

    @property
    def opcode(self) -> int:
        return self.value[0]

    @property
    def accepted(self) -> int:
        return self.value[1]


def unlock_request(step: UnlockStep, key: bytes | None = None) -> bytes:
    """The unlock characteristic's value for ``step``: its opcode and the key (zeros to enter programming)."""
    if step is UnlockStep.ENTER_KEY_PROGRAMMING:
        return bytes([step.opcode]) + bytes(KEY_SIZE)
    if key is None or len(key) != KEY_SIZE:
        raise ValueError(f"an Omron unlock key is {KEY_SIZE} bytes")
    return bytes([step.opcode]) + key


def unlock_accepted(step: UnlockStep, answer: bytes) -> bool:
    """Whether the cuff's notification on the unlock characteristic says yes to ``step``."""
    return len(answer) >= 2 and answer[0] == step.accepted and answer[1] == 0x00


def _with_checksum(body: bytes) -> bytes:
    frame = body + b"\x00"
    return frame + bytes([reduce(xor, frame, 0)])


def encode_command(command: Command, address: int = 0, size: int = 0) -> bytes:
    """A command frame (without data): open, read ``size`` bytes at ``address``, close."""
    if not 0 <= address <= 0xFFFF or not 0 <= size <= MAX_READ:
        raise ValueError(f"EEPROM address {address:#x} or size {size} out of range")
    body = command.value + address.to_bytes(2, "big") + bytes([size])
    return _with_checksum(bytes([len(body) + 3]) + body)


OPEN_TRANSFER = encode_command(Command.OPEN, 0, 0x10)
"""omblepy's open: ``08 00 00 00 00 10 00 18``."""
CLOSE_TRANSFER = encode_command(Command.CLOSE)


def split_into_parts(frame: bytes) -> list[bytes]:
    """The writes that send ``frame``: one per send characteristic, 16 bytes each."""
    if not frame or len(frame) > MAX_FRAME:
        raise ValueError(f"an Omron frame is 1 to {MAX_FRAME} bytes")
    return [frame[i : i + PART_SIZE] for i in range(0, len(frame), PART_SIZE)]


@dataclass(frozen=True, slots=True)
class Answer:
    """One frame from the cuff."""

    command: bytes
    """Two bytes, e.g. ``81 00`` for a read's answer."""
    address: int
    data: bytes
    """A read's EEPROM bytes; for the other answers the status byte (0 = fine)."""
    refused: int = 0
    """A read the cuff will not serve (hass-omron: an unregistered user's region on some models)
    comes back as the 8-byte header with a result code in byte 6: that code, else 0."""


def decode_answer(frame: bytes) -> Answer:
    """Decode one whole frame from the receive characteristics."""
    if len(frame) < 8:
        raise OmronFrameError(f"Omron frame of {len(frame)} bytes; at least 8 expected")
    if frame[0] != len(frame):
        raise OmronFrameError(f"Omron frame says {frame[0]} bytes but has {len(frame)}")
    if reduce(xor, frame, 0) != 0:
        raise ChecksumError("Omron frame fails its xor check")
    command, address, size = frame[1:3], int.from_bytes(frame[3:5], "big"), frame[5]
    if command == Command.READ.answer:
        if len(frame) == 8 and size and frame[6]:
            return Answer(command, address, b"", refused=frame[6])
        if len(frame) != size + 8:
            raise OmronFrameError(f"Omron read answer says {size} data bytes but carries {len(frame) - 8}")
        return Answer(command, address, frame[6 : 6 + size])
    return Answer(command, address, frame[6:7])


def read_answer_data(answer: Answer, address: int, size: int) -> bytes:
    """The EEPROM bytes of ``answer``, checked to be the read of ``size`` bytes at ``address``."""
    if answer.command != Command.READ.answer:
        raise OmronFrameError(f"Omron answer {answer.command.hex()} to a read; 8100 expected")
    if answer.refused:
        raise ReadRefusedError(f"the cuff refused the read at {address:#06x} (code {answer.refused:#04x})")
    if answer.address != address or len(answer.data) != size:
        raise OmronFrameError(
            f"Omron read answer for {answer.address:#06x} ({len(answer.data)} bytes); "
            f"{address:#06x} ({size} bytes) was asked"
        )
    return answer.data


class FrameAssembler:
    """Puts a frame back together from its parts on the four receive characteristics.

    A part on the first characteristic starts a new frame (hass-omron does the same: the cuff
    sends the parts in order, so a first part means anything held is stale).
    """

    def __init__(self) -> None:
        self._parts: list[bytes | None] = [None] * len(RECEIVE)

    def add(self, channel: int, part: bytes) -> bytes | None:
        """Take one notification; the whole frame once every part of it is here."""
        if not 0 <= channel < len(RECEIVE):
            raise OmronFrameError(f"no Omron receive characteristic {channel}")
        if channel == 0:
            self._parts = [None] * len(RECEIVE)
            if not part or part[0] == 0 or part[0] > MAX_FRAME:
                raise OmronFrameError(f"Omron frame length {part[0] if part else 'missing'}; 1 to {MAX_FRAME}")
        self._parts[channel] = part
        first = self._parts[0]
        if first is None:
            return None
        needed = -(-first[0] // PART_SIZE)
        parts = self._parts[:needed]
        if any(p is None for p in parts):
            return None
        self._parts = [None] * len(RECEIVE)
        frame = b"".join(p for p in parts if p is not None)
        if len(frame) < first[0]:
            raise OmronFrameError(f"Omron frame says {first[0]} bytes; its parts hold {len(frame)}")
        return frame[: first[0]]
