"""Vendor byte streams cut into frames: a sync word, a length, a check; pure.

Vendor oximeters talk over a serial-port-like characteristic (Nordic UART and its kin): the
device writes frames into a byte stream and the radio cuts that stream into notifications
wherever its buffer is full. A frame can be split across notifications and one notification can
carry several frames, so a session feeds every notification to a :class:`FrameReassembler`,
which hands back whole frames whose check holds.

A frame whose header cannot start a frame, or whose check fails, is given back as the codec's
error and scanning resumes one byte after its sync word (the sync may have been a coincidence in
noise). The result depends only on the bytes, never on where the radio cut them; the buffer is
bounded by the largest frame a header may announce.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import ChecksumError, CodecError


def _table(step: Callable[[int], int]) -> tuple[int, ...]:
    def byte(value: int) -> int:
        for _ in range(8):
            value = step(value)
        return value

    return tuple(byte(i) for i in range(256))


# CRC-8/MAXIM (Dallas 1-Wire): polynomial 0x31 reflected (0x8C), init 0, no final xor.
_MAXIM = _table(lambda crc: (crc >> 1) ^ 0x8C if crc & 1 else crc >> 1)
# CRC-8/SMBUS (the "CRC-8-CCITT" of Viatom's ring protocol): polynomial 0x07, init 0, not reflected.
_SMBUS = _table(lambda crc: ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF)


def crc8_maxim(data: bytes) -> int:
    """CRC-8/MAXIM; over a frame that ends in its own CRC-8/MAXIM it is 0."""
    crc = 0
    for byte in data:
        crc = _MAXIM[crc ^ byte]
    return crc


def crc8_smbus(data: bytes) -> int:
    """CRC-8/SMBUS (polynomial 0x07, init 0)."""
    crc = 0
    for byte in data:
        crc = _SMBUS[crc ^ byte]
    return crc


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """How one vendor protocol frames its bytes."""

    name: str
    sync: bytes
    header_size: int
    """Bytes from the start of the sync word needed to know the whole frame's size."""
    frame_size: Callable[[bytes], int]
    """The whole frame's size from its header; raises :class:`CodecError` when the header cannot
    start a frame (and must bound the size: it bounds the reassembler's buffer)."""
    verify: Callable[[bytes], None]
    """Raises :class:`CodecError` (the codec's own subclass) when a whole frame's check fails."""

    def __post_init__(self) -> None:
        if not self.sync or self.header_size < len(self.sync):
            raise ValueError(f"{self.name}: a frame format needs a sync word inside its header")


@dataclass(frozen=True, slots=True)
class Reassembled:
    """What one notification completed."""

    frames: tuple[bytes, ...] = ()
    rejected: tuple[CodecError, ...] = ()
    """Candidate frames dropped (a bad header or a failed check), in stream order."""


class FrameReassembler:
    """Whole, checked frames out of a stream of notifications (one per characteristic)."""

    def __init__(self, frame_format: FrameFormat) -> None:
        self._format = frame_format
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Reassembled:
        """Add one notification's bytes; returns the frames it completed and the candidates it dropped."""
        fmt, buffer = self._format, self._buffer
        buffer += data
        frames: list[bytes] = []
        rejected: list[CodecError] = []
        position = 0
        while True:
            start = buffer.find(fmt.sync, position)
            if start < 0:
                # Only the tail that could still become a sync word is worth keeping.
                position = max(position, len(buffer) - (len(fmt.sync) - 1))
                break
            position = start
            if len(buffer) - start < fmt.header_size:
                break
            try:
                size = fmt.frame_size(bytes(buffer[start : start + fmt.header_size]))
                if size < fmt.header_size:
                    raise CodecError(f"{fmt.name}: a header announcing a {size}-byte frame")
                if len(buffer) - start < size:
                    break
                frame = bytes(buffer[start : start + size])
                fmt.verify(frame)
            except CodecError as exc:
                rejected.append(exc)
                position = start + 1
                continue
            frames.append(frame)
            position = start + size
        del buffer[:position]
        return Reassembled(tuple(frames), tuple(rejected))


def check_crc(
    name: str,
    frame: bytes,
    crc: Callable[[bytes], int],
    *,
    covers_itself: bool,
    error: type[CodecError] = ChecksumError,
) -> None:
    """Raise ``error`` (the codec's own) unless ``frame`` ends in a good CRC.

    ``covers_itself``: the CRC runs over the whole frame, its own byte included, and comes out 0
    (CRC-8/MAXIM as Viatom uses it); otherwise the last byte is the CRC of the bytes before it.
    """
    good = crc(frame) == 0 if covers_itself else crc(frame[:-1]) == frame[-1]
    if not good:
        raise error(f"{name}: frame check failed ({len(frame)} bytes ending {frame[-1]:02x})")
