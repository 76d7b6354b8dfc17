"""Omron's own protocol: unlock requests, EEPROM frames and ring-buffer records.

Byte examples: the open and close frames are omblepy's literal bytes (``omblepy.py``:
``0800000000100018``, ``080f000000000007``); the read frame follows its ``_readBlockEeprom``; the
HEM-7361T record below was put together bit by bit from omblepy's table
(``deviceSpecific/hem-7361t.py``), since no public source prints a real record's bytes.
"""

from __future__ import annotations

import contextlib
import os
import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from drivers.ble.omron_eeprom import (
    CLOSE_TRANSFER,
    OPEN_TRANSFER,
    Answer,
    Command,
    FrameAssembler,
    OmronFrameError,
    ReadRefusedError,
    UnlockStep,
    decode_answer,
    encode_command,
    read_answer_data,
    split_into_parts,
    unlock_accepted,
    unlock_request,
)
from drivers.ble.omron_records import (
    MODELS,
    OmronRecord,
    OmronRecordError,
    decode_record,
    decode_ring_buffer,
    encode_record,
    model_named,
    omron_reading,
)
from drivers.errors import ChecksumError, CodecError
from drivers.model import BloodPressure, DeviceInfo, HubTime, Reading, ReadingFlag, TimeSource

SHANGHAI = ZoneInfo("Asia/Shanghai")
KEY = bytes.fromhex("deadbeaf12341234deadbeaf12341234")  # omblepy's example key
HEM_7361T = MODELS["HEM-7361T"]
# 132/84 mmHg, pulse 71, 2024-05-01 07:30:15, irregular heartbeat, no body movement.
HEM_7361T_RECORD = bytes.fromhex("6b54471827548f070000000000000000")


def test_omblepy_open_and_close_frames() -> None:
    assert bytes.fromhex("0800000000100018") == OPEN_TRANSFER
    assert bytes.fromhex("080f000000000007") == CLOSE_TRANSFER


def test_a_read_command_as_omblepy_builds_it() -> None:
    # 08 01 00, address 0x0098 big-endian, 16 bytes, 00, xor of it all.
    assert encode_command(Command.READ, 0x0098, 0x10) == bytes.fromhex("0801000098100081")


def test_unlock_requests_and_answers() -> None:
    assert unlock_request(UnlockStep.ENTER_KEY_PROGRAMMING) == b"\x02" + bytes(16)
    assert unlock_request(UnlockStep.PROGRAM_KEY, KEY) == b"\x00" + KEY
    assert unlock_request(UnlockStep.UNLOCK, KEY) == b"\x01" + KEY
    assert unlock_accepted(UnlockStep.UNLOCK, bytes.fromhex("8100"))
    assert not unlock_accepted(UnlockStep.UNLOCK, bytes.fromhex("8101"))
    assert unlock_accepted(UnlockStep.ENTER_KEY_PROGRAMMING, bytes.fromhex("8200"))
    assert not unlock_accepted(UnlockStep.PROGRAM_KEY, b"\x80")
    with pytest.raises(ValueError):
        unlock_request(UnlockStep.UNLOCK, KEY[:15])


def _read_answer(address: int, data: bytes) -> bytes:
    body = bytes([len(data) + 8, 0x81, 0x00]) + address.to_bytes(2, "big") + bytes([len(data)]) + data + b"\x00"
    check = 0
    for byte in body:
        check ^= byte
    return body + bytes([check])


def test_a_read_answer_arrives_in_two_parts_and_gives_its_data() -> None:
    frame = _read_answer(0x0098, HEM_7361T_RECORD)
    assert len(frame) == 24
    first, second = split_into_parts(frame)
    assembler = FrameAssembler()
    assert assembler.add(0, first) is None
    assert assembler.add(1, second) == frame
    answer = decode_answer(frame)
    assert answer == Answer(b"\x81\x00", 0x0098, HEM_7361T_RECORD)
    assert read_answer_data(answer, 0x0098, 16) == HEM_7361T_RECORD


def test_answers_that_are_not_what_was_asked() -> None:
    with pytest.raises(OmronFrameError):
        read_answer_data(decode_answer(_read_answer(0x00A8, HEM_7361T_RECORD)), 0x0098, 16)
    corrupt = bytearray(_read_answer(0x0098, HEM_7361T_RECORD))
    corrupt[7] ^= 0x01
    with pytest.raises(ChecksumError):
        decode_answer(bytes(corrupt))
    # hass-omron: a region the cuff will not serve comes back as the header with a code in byte 6.
    refused = bytes.fromhex("08810006d81005")
    refused += bytes([0x08 ^ 0x81 ^ 0x06 ^ 0xD8 ^ 0x10 ^ 0x05])
    with pytest.raises(ReadRefusedError):
        read_answer_data(decode_answer(refused), 0x06D8, 16)


def test_the_hem_7361t_record() -> None:
    record = decode_record(HEM_7361T, 1, HEM_7361T_RECORD)
    assert record == OmronRecord(user=1, systolic_mmhg=132, diastolic_mmhg=84, pulse_bpm=71,
                                 time=datetime(2024, 5, 1, 7, 30, 15), body_movement=False, irregular_heartbeat=True)
    assert encode_record(HEM_7361T, record) == HEM_7361T_RECORD


def test_empty_slots_and_garbage_in_a_ring_buffer() -> None:
    garbage = bytes(16)  # month 0
    records, errors = decode_ring_buffer(HEM_7361T, 2, HEM_7361T_RECORD + b"\xff" * 16 + garbage)
    assert [r.user for r in records] == [2]
    assert len(errors) == 1 and isinstance(errors[0], OmronRecordError)


def test_each_model_writes_and_reads_its_own_layout() -> None:
    record = OmronRecord(user=2, systolic_mmhg=185, diastolic_mmhg=100, pulse_bpm=80,
                         time=datetime(2025, 12, 31, 23, 59, 59), body_movement=True, irregular_heartbeat=False)
    for model in MODELS.values():
        assert decode_record(model, 2, encode_record(model, record)) == record
    assert model_named(" hem-7322t ") is MODELS["HEM-7322T"]
    assert model_named("HEM-7361T-D") is None


def test_a_record_becomes_a_reading_at_the_cuff_time_in_the_home() -> None:
    received = HubTime(wall=datetime(2024, 5, 2, 0, 0, tzinfo=UTC), monotonic=5.0, synced=True)
    device = DeviceInfo(id="bp-omron", transport="ble", model="omron-bp")
    record = decode_record(HEM_7361T, 1, HEM_7361T_RECORD)
    assert record is not None
    assert omron_reading(record, device=device, resident_id="r-0001", received=received, home_tz=SHANGHAI) == Reading(
        device=device, resident_id="r-0001", measurement=BloodPressure(132.0, 84.0, None, 71.0),
        measured_at=datetime(2024, 4, 30, 23, 30, 15, tzinfo=UTC), time_source=TimeSource.DEVICE, received=received,
        device_time=datetime(2024, 5, 1, 7, 30, 15), flags=frozenset({ReadingFlag.IRREGULAR_PULSE}),
        source_key="omron:u1:2024-05-01T07:30:15:132/84/71",
    )


def test_a_cuff_clock_in_the_future_gives_the_receive_time() -> None:
    received = HubTime(wall=datetime(2024, 4, 1, tzinfo=UTC), monotonic=5.0, synced=False)
    record = decode_record(HEM_7361T, 1, HEM_7361T_RECORD)
    assert record is not None
    reading = omron_reading(record, device=DeviceInfo("d", "ble"), resident_id="r", received=received,
                            home_tz=SHANGHAI)
    assert (reading.measured_at, reading.time_source) == (received.wall, TimeSource.HUB_UNSYNCED)
    assert reading.source_key == "omron:u1:2024-05-01T07:30:15:132/84/71"


FUZZ_SEED = int(os.environ.get("FUZZ_SEED", random.SystemRandom().randrange(2**32)))


def test_fuzz_only_codec_errors() -> None:
    """Random frames, parts and records: no exception but the codecs' own. FUZZ_SEED=N pins a run."""
    print(f"FUZZ_SEED={FUZZ_SEED}")
    rng = random.Random(FUZZ_SEED)
    assembler = FrameAssembler()
    for _ in range(5000):
        data = rng.randbytes(rng.randrange(0, 70))
        if rng.random() < 0.3 and data:  # mostly-valid frames reach the deeper checks
            data = bytes([len(data)]) + data[1:]
        model = rng.choice(list(MODELS.values()))
        channel = rng.randrange(4)
        with contextlib.suppress(CodecError):
            decode_answer(data)
        with contextlib.suppress(CodecError):
            assembler.add(channel, data[:16])
        with contextlib.suppress(CodecError):
            decode_record(model, 1, data[: model.record_size])
