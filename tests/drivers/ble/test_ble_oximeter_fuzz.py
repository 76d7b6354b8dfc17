"""Fuzz: the vendor oximeter codecs and the frame reassembler never raise anything but their own error.

Random bytes, random valid frames with random bytes changed, and streams of frames and noise cut
into random notifications. Each run draws a fresh seed and prints it; set OXIMETER_FUZZ_SEED to
replay one (pytest -s shows the print, and a failure message carries the seed).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from drivers.ble import ichoice, o2ring, viatom
from drivers.ble.framing import FrameFormat, FrameReassembler, crc8_maxim, crc8_smbus
from drivers.errors import CodecError

ROUNDS = 3000


class Fuzz(random.Random):
    """A random generator that remembers the seed it was given, for the failure message."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.seed_value = seed


@pytest.fixture
def rng() -> Fuzz:
    seed = int(os.environ.get("OXIMETER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
    print(f"oximeter fuzz seed {seed} (replay with OXIMETER_FUZZ_SEED={seed})")
    return Fuzz(seed)


def decode_or_own_error(codec: Codec, data: bytes, seed: int) -> None:
    try:
        codec.decode(data)
    except codec.error:
        pass
    except Exception as exc:  # the point of the test: nothing else may escape
        pytest.fail(f"seed {seed}: {codec.name} raised {exc!r} on {data.hex()}")


@dataclass(frozen=True)
class Codec:
    name: str
    frame_format: FrameFormat
    decode: Callable[[bytes], object]
    error: type[CodecError]
    valid_frame: Callable[[random.Random], bytes]


def _viatom_frame(rng: random.Random) -> bytes:
    token, function = rng.choice([(0x0F, 0x01), (0x0F, 0x02), (0xF0, 0x03), (0x0F, 0x21), (0xF0, 0x01)])
    return viatom.encode_frame(token, function, rng.randbytes(rng.randrange(0, 12)))


def _o2ring_frame(rng: random.Random) -> bytes:
    status = rng.choice([0, 0, 1, 0xFF])
    payload = rng.randbytes(rng.choice([0, 4, 12, 13, rng.randrange(0, 300)]))
    body = bytes([0x55, status, status ^ 0xFF]) + rng.randbytes(2) + len(payload).to_bytes(2, "little") + payload
    return body + bytes([crc8_smbus(body)])


def _ichoice_frame(rng: random.Random) -> bytes:
    payload = rng.choice([rng.randbytes(2), b"\xb1\x00", rng.randbytes(rng.randrange(1, 8))])
    body = bytes([len(payload) + 1]) + payload
    return b"\x55\xaa" + body + bytes([sum(body) & 0xFF])


CODECS = [
    Codec("viatom", viatom.FRAME_FORMAT, viatom.decode_frame, viatom.ViatomCodecError, _viatom_frame),
    Codec("o2ring", o2ring.ANSWER_FORMAT, o2ring.decode_answer, o2ring.O2RingCodecError, _o2ring_frame),
    Codec("ichoice", ichoice.FRAME_FORMAT, ichoice.decode_frame, ichoice.IChoiceCodecError, _ichoice_frame),
]


def _mutated(rng: random.Random, frame: bytes) -> bytes:
    data = bytearray(frame)
    for _ in range(rng.randrange(1, 4)):
        match rng.randrange(3):
            case 0 if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            case 1:
                data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            case _ if data:
                del data[rng.randrange(len(data))]
    return bytes(data)


def _cuts(rng: random.Random, stream: bytes) -> list[bytes]:
    chunks, position = [], 0
    while position < len(stream):
        size = rng.choice([1, 2, 5, 20, 20, 64, rng.randrange(1, 200)])
        chunks.append(stream[position : position + size])
        position += size
    return chunks


@pytest.mark.parametrize("codec", CODECS, ids=[c.name for c in CODECS])
def test_decoders_raise_only_their_own_error(codec: Codec, rng: Fuzz) -> None:
    for _ in range(ROUNDS):
        frame = codec.valid_frame(rng)
        for data in (frame, _mutated(rng, frame), rng.randbytes(rng.randrange(0, 40))):
            decode_or_own_error(codec, data, rng.seed_value)


def test_payload_decoders_raise_only_their_own_error(rng: Fuzz) -> None:
    seed = rng.seed_value
    for _ in range(ROUNDS):
        payload = rng.choice([rng.randbytes(rng.randrange(0, 30)), b'{"CurTIME":"' + rng.randbytes(19) + b'"}'])
        for decode in (o2ring.decode_live, o2ring.decode_info):
            try:
                decode(payload)
            except o2ring.O2RingCodecError:
                pass
            except Exception as exc:  # nothing else may escape
                pytest.fail(f"seed {seed}: {decode.__name__} raised {exc!r} on {payload.hex()}")


@pytest.mark.parametrize("codec", CODECS, ids=[c.name for c in CODECS])
def test_valid_frames_come_out_exactly_wherever_the_radio_cuts_them(codec: Codec, rng: Fuzz) -> None:
    seed = rng.seed_value
    for _ in range(ROUNDS // 10):
        frames = [codec.valid_frame(rng) for _ in range(rng.randrange(1, 12))]
        reassembler = FrameReassembler(codec.frame_format)
        out = [f for chunk in _cuts(rng, b"".join(frames)) for f in reassembler.feed(chunk).frames]
        assert out == frames, f"seed {seed}"
        assert reassembler.pending == 0, f"seed {seed}"


@pytest.mark.parametrize("codec", CODECS, ids=[c.name for c in CODECS])
def test_noise_gives_the_same_result_however_cut_and_never_an_unchecked_frame(codec: Codec, rng: Fuzz) -> None:
    seed = rng.seed_value
    for _ in range(ROUNDS // 10):
        parts = [rng.choice([codec.valid_frame(rng), _mutated(rng, codec.valid_frame(rng)), rng.randbytes(9)])
                 for _ in range(rng.randrange(1, 10))]
        stream = b"".join(parts)
        whole = FrameReassembler(codec.frame_format).feed(stream)
        reassembler = FrameReassembler(codec.frame_format)
        frames: list[bytes] = []
        rejected = 0
        for chunk in _cuts(rng, stream):
            result = reassembler.feed(chunk)
            frames.extend(result.frames)
            rejected += len(result.rejected)
            assert all(isinstance(e, codec.error) for e in result.rejected), f"seed {seed}"
        assert (frames, rejected) == (list(whole.frames), len(whole.rejected)), f"seed {seed}"
        assert reassembler.pending <= 7 + max(o2ring.MAX_ANSWER_PAYLOAD, 255) + 1, f"seed {seed}"
        for frame in frames:
            decode_or_own_error(codec, frame, seed)


def test_crc_check_values() -> None:
    # The catalogue of parametrised CRC algorithms: check value over "123456789".
    assert crc8_maxim(b"123456789") == 0xA1
    assert crc8_smbus(b"123456789") == 0xF4
