"""Sinocare 安稳+Air frames.

Byte examples: the BLE result ``53 4E 12 00 12 04 11 05 10 02 04 1D 00 56 00 01 1E 09 00 00``
(8.6 mmol/L) from jianbao's ``SannuoAnWenBloodSugar`` parser, and the WeChat-relayed content
``U04QAAQEEQQLEBskADYAAM0Yog==`` from the sinocare2017 ``wx_blue_iot_sdk`` README.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
from datetime import datetime

import pytest

from drivers.ble.sinocare import (
    FrameSplitter,
    GlucoseUnit,
    SinocareCommand,
    SinocareFrame,
    SinocareFrameError,
    SinocareResult,
    decode_frame,
    decode_result,
    encode_answer,
    encode_set_time,
)
from drivers.errors import CodecError

JIANBAO_8_6_MMOL_L = bytes.fromhex("534e12001204110510020" "41d00560001 1e090000".replace(" ", ""))
WX_SDK_README = base64.b64decode("U04QAAQEEQQLEBskADYAAM0Yog==")


def test_the_public_ble_result() -> None:
    frame = decode_frame(JIANBAO_8_6_MMOL_L)
    assert frame == SinocareFrame(SinocareCommand.RESULT, JIANBAO_8_6_MMOL_L)
    assert decode_result(frame) == SinocareResult(
        history=False, time=datetime(2017, 5, 16, 2, 4, 29), raw=86, unit=GlucoseUnit.MMOL_L, mmol_l=8.6
    )
    assert decode_result(frame).source_key == "sinocare:2017-05-16T02:04:29:86:mmol/L"


def test_a_history_result_keeps_the_identity_of_the_live_one() -> None:
    history = bytearray(JIANBAO_8_6_MMOL_L)
    history[5] = SinocareCommand.HISTORY
    result = decode_result(decode_frame(bytes(history)))
    assert result.history
    assert result.source_key == decode_result(decode_frame(JIANBAO_8_6_MMOL_L)).source_key


def test_mg_dl_results_are_converted() -> None:
    mg_dl = bytearray(JIANBAO_8_6_MMOL_L)
    mg_dl[12:14] = (1550).to_bytes(2, "big")  # 155.0 mg/dL
    mg_dl[19] = 0x01
    result = decode_result(decode_frame(bytes(mg_dl)))
    assert (result.unit, result.mmol_l) == (GlucoseUnit.MG_DL, 8.6)


def test_the_wechat_relayed_readme_frame_is_refused_not_guessed() -> None:
    # 19 bytes: its length byte says 16 + 3, the BLE example's says 18 + 2; its last byte is the sum
    # of bytes 2 onwards (the hub's own frames end so); it has no byte 19 to say the unit.
    assert WX_SDK_README.hex() == "534e1000040411040b101b2400360000cd18a2"
    assert sum(WX_SDK_README[2:-1]) & 0xFF == WX_SDK_README[-1]
    splitter = FrameSplitter()
    (frame,) = splitter.feed(WX_SDK_README)
    assert len(frame) == 18
    with pytest.raises(SinocareFrameError):
        decode_result(decode_frame(frame))
    with pytest.raises(SinocareFrameError):
        decode_result(SinocareFrame(SinocareCommand.RESULT, WX_SDK_README))


def test_frames_split_across_notifications_or_sharing_one() -> None:
    splitter = FrameSplitter()
    start = bytes.fromhex("534e04000403")
    stream = b"\x00\x53" + start[1:] + JIANBAO_8_6_MMOL_L
    assert splitter.feed(stream[:9]) == [start]
    assert splitter.feed(stream[9:15]) == []
    assert splitter.feed(stream[15:]) == [JIANBAO_8_6_MMOL_L]
    assert splitter.skipped == 1


def test_what_the_hub_writes() -> None:
    body = bytes.fromhex("0b000b06180501071e0f")  # length, 00, length, 06, 24-05-01 07:30:15
    assert encode_set_time(datetime(2024, 5, 1, 7, 30, 15)) == b"SN" + body + bytes([sum(body) & 0xFF])
    assert encode_answer(SinocareCommand.HISTORY) == bytes.fromhex("534e0500050e") + bytes([0x05 + 0x05 + 0x0E])
    assert decode_frame(encode_answer(SinocareCommand.RESULT)).command == SinocareCommand.RESULT


FUZZ_SEED = int(os.environ.get("FUZZ_SEED", random.SystemRandom().randrange(2**32)))


def test_fuzz_only_codec_errors() -> None:
    """Random and mutated frames: no exception but the codec's own. FUZZ_SEED=N pins a run."""
    print(f"FUZZ_SEED={FUZZ_SEED}")
    rng = random.Random(FUZZ_SEED)
    splitter = FrameSplitter()
    for _ in range(5000):
        if rng.random() < 0.5:
            data = bytearray(JIANBAO_8_6_MMOL_L)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(b"SN" + rng.randbytes(rng.randrange(0, 40)))
        for frame in [bytes(data), *splitter.feed(bytes(data))]:
            with contextlib.suppress(CodecError):
                decode_result(decode_frame(frame))
