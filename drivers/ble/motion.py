"""Raw accelerometer wearables: BBC micro:bit and Nordic Thingy:52, decoded into sample arrays.

micro:bit Accelerometer Data (E95DCA4B-...): x, y, z as int16 little-endian in milli-g
(micro:bit DAL docs; readers divide by 1000). Thingy:52 Raw Data (EF680406-...): accelerometer,
gyroscope and compass as int16 little-endian triples in fixed point, Q6.10 g, Q11.5 deg/s and
Q12.4 uT (RAW_Q_FORMAT_*_COMMA_BITS = 10, 5, 4 in the Thingy firmware's drv_motion.h).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import numpy.typing as npt

from drivers.errors import CodecError
from drivers.model import HubTime, MotionBlock

_AXES = 3
_INT16 = np.dtype("<i2")
_MICROBIT_SAMPLE_BYTES = _AXES * _INT16.itemsize
_THINGY_SAMPLE_BYTES = 3 * _AXES * _INT16.itemsize

MICROBIT_MILLI_G_PER_G = 1000.0
THINGY_ACCELEROMETER_LSB_PER_G = float(1 << 10)
THINGY_GYROSCOPE_LSB_PER_DPS = float(1 << 5)
THINGY_COMPASS_LSB_PER_UT = float(1 << 4)


def _triples(data: bytes, sample_bytes: int, characteristic: str) -> npt.NDArray[np.int16]:
    if not data or len(data) % sample_bytes:
        raise CodecError(
            f"{characteristic}: {len(data)} bytes is not a whole number of {sample_bytes}-byte samples; "
            "the notification was cut short (check the negotiated MTU)"
        )
    return np.frombuffer(data, dtype=_INT16).reshape(-1, _AXES)


def decode_microbit_accelerometer(data: bytes) -> npt.NDArray[np.float32]:
    """One or more micro:bit samples as an (n, 3) float32 array in g."""
    raw = _triples(data, _MICROBIT_SAMPLE_BYTES, "micro:bit Accelerometer Data")
    return (raw.astype(np.float32) / np.float32(MICROBIT_MILLI_G_PER_G)).astype(np.float32)


@dataclass(frozen=True, slots=True, eq=False)
class ThingyRawMotion:
    """Thingy:52 raw samples, each an (n, 3) float32 array in its physical unit."""

    accelerometer_g: npt.NDArray[np.float32]
    gyroscope_dps: npt.NDArray[np.float32]
    compass_ut: npt.NDArray[np.float32]


def decode_thingy_raw_motion(data: bytes) -> ThingyRawMotion:
    """One or more 18-byte Thingy:52 raw motion records."""
    raw = _triples(data, _THINGY_SAMPLE_BYTES, "Thingy:52 Raw Data").reshape(-1, 3, _AXES).astype(np.float32)
    return ThingyRawMotion(
        accelerometer_g=raw[:, 0, :] / np.float32(THINGY_ACCELEROMETER_LSB_PER_G),
        gyroscope_dps=raw[:, 1, :] / np.float32(THINGY_GYROSCOPE_LSB_PER_DPS),
        compass_ut=raw[:, 2, :] / np.float32(THINGY_COMPASS_LSB_PER_UT),
    )


def motion_block(
    samples_g: npt.NDArray[np.float32],
    *,
    device_id: str,
    resident_id: str,
    sample_rate_hz: float,
    arrival: HubTime,
    sequence: int | None = None,
) -> MotionBlock:
    """Wrap samples that arrived together into a :class:`MotionBlock`.

    The wearables send no timestamps: the last sample is taken to be the arrival, and earlier
    ones one sample period apart before it. Radio jitter and gaps are the detector's to handle.
    """
    span = timedelta(seconds=(len(samples_g) - 1) / sample_rate_hz) if len(samples_g) else timedelta(0)
    first = HubTime(
        wall=arrival.wall - span,
        monotonic=arrival.monotonic - span.total_seconds(),
        synced=arrival.synced,
    )
    return MotionBlock(
        device_id=device_id,
        resident_id=resident_id,
        samples=samples_g,
        sample_rate_hz=sample_rate_hz,
        first_sample=first,
        sequence=sequence,
    )
