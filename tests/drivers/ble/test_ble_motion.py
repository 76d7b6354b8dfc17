"""micro:bit and Thingy:52 raw motion, and the MotionBlock wrapper."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.ble.motion import decode_microbit_accelerometer, decode_thingy_raw_motion, motion_block
from drivers.errors import CodecError
from drivers.model import HubTime


def test_microbit_flat_on_table() -> None:
    # x=-16, y=32, z=-1024 milli-g: a micro:bit lying face up (the gists that read this
    # characteristic divide each int16 by 1000 to get g).
    data = (
        (-16).to_bytes(2, "little", signed=True)
        + (32).to_bytes(2, "little")
        + (-1024).to_bytes(2, "little", signed=True)
    )
    samples = decode_microbit_accelerometer(data)
    assert samples.dtype == np.float32
    np.testing.assert_array_equal(samples, np.array([[-0.016, 0.032, -1.024]], dtype=np.float32))


def test_microbit_several_samples() -> None:
    raw = np.array([[0, 0, 1000], [1000, -1000, 0]], dtype="<i2")
    np.testing.assert_array_equal(
        decode_microbit_accelerometer(raw.tobytes()), np.array([[0, 0, 1], [1, -1, 0]], dtype=np.float32)
    )


def test_thingy_raw_motion_q_formats() -> None:
    # 1 g = 1024 (Q6.10), 90 deg/s = 2880 (Q11.5), -40 uT = -640 (Q12.4).
    raw = np.array([[0, 0, 1024], [2880, 0, -32], [-640, 16, 0]], dtype="<i2")
    motion = decode_thingy_raw_motion(raw.tobytes())
    np.testing.assert_array_equal(motion.accelerometer_g, np.array([[0, 0, 1]], dtype=np.float32))
    np.testing.assert_array_equal(motion.gyroscope_dps, np.array([[90, 0, -1]], dtype=np.float32))
    np.testing.assert_array_equal(motion.compass_ut, np.array([[-40, 1, 0]], dtype=np.float32))
    assert motion.accelerometer_g.dtype == np.float32


@pytest.mark.parametrize("size", [0, 5, 7, 13])
def test_microbit_partial_sample_is_refused(size: int) -> None:
    with pytest.raises(CodecError, match="6-byte samples"):
        decode_microbit_accelerometer(bytes(size))


@pytest.mark.parametrize("size", [0, 6, 17, 19])
def test_thingy_partial_record_is_refused(size: int) -> None:
    with pytest.raises(CodecError, match="18-byte samples"):
        decode_thingy_raw_motion(bytes(size))


def test_motion_block_back_dates_the_first_sample() -> None:
    arrival = HubTime(wall=datetime(2024, 5, 1, 8, 0, 1, tzinfo=UTC), monotonic=501.0, synced=True)
    samples = np.zeros((5, 3), dtype=np.float32)
    block = motion_block(samples, device_id="d", resident_id="r", sample_rate_hz=50.0, arrival=arrival, sequence=9)
    assert block.first_sample == HubTime(
        wall=arrival.wall - timedelta(seconds=0.08), monotonic=pytest.approx(500.92), synced=True
    )
    assert (block.device_id, block.resident_id, block.sample_rate_hz, block.sequence) == ("d", "r", 50.0, 9)
    assert block.samples is samples


@settings(deadline=None, max_examples=300, derandomize=True)
@given(st.binary(max_size=60))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    for decode in (decode_microbit_accelerometer, decode_thingy_raw_motion):
        with contextlib.suppress(CodecError):
            decode(data)
