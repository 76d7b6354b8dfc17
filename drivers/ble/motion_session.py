"""Wearable accelerometers (BBC micro:bit, Nordic Thingy:52): stay connected, stream MotionBlocks.

The manager keeps these connected and reconnects when the link drops; a session lasts as long
as one connection. Samples carry no time: blocks are timed from arrival (see streams.MotionBatcher).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.ble.link import GattLink, read_battery_percent, require
from drivers.ble.motion import decode_microbit_accelerometer, decode_thingy_raw_motion, motion_block
from drivers.ble.policy import ConnectionStyle
from drivers.ble.sessions import CodecComplaints, DeviceTag, Sinks
from drivers.ble.streams import MotionBatcher, SampleRun
from drivers.ble.uuids import (
    MICROBIT_ACCELEROMETER_DATA,
    MICROBIT_ACCELEROMETER_PERIOD,
    THINGY_MOTION_CONFIG,
    THINGY_RAW_DATA,
    GattCharacteristic,
)
from drivers.errors import CodecError
from drivers.model import DeviceEventKind

log = logging.getLogger(__name__)

MICROBIT_PERIODS_MS = (1, 2, 5, 10, 20, 80, 160, 640)
"""The only periods the micro:bit accelerometer service accepts (others are silently rounded)."""
THINGY_RATE_RANGE_HZ = (5, 200)
"""Motion processing frequency the Thingy:52 firmware accepts."""
_THINGY_FREQUENCY_SLICE = slice(6, 8)
# Motion configuration: step counter interval, temperature compensation interval, magnetometer
# compensation interval (u16 each), motion processing frequency u16 Hz, wake on motion u8.
_THINGY_CONFIG_SIZE = 9


def _microbit_samples(data: bytes) -> npt.NDArray[np.float32]:
    return decode_microbit_accelerometer(data)


def _thingy_samples(data: bytes) -> npt.NDArray[np.float32]:
    return decode_thingy_raw_motion(data).accelerometer_g


@dataclass(frozen=True, slots=True)
class Wearable:
    """What differs between wearables: the data characteristic, its decoder, how to set the rate."""

    data: GattCharacteristic
    decode: Callable[[bytes], npt.NDArray[np.float32]]
    model: str


MICROBIT = Wearable(MICROBIT_ACCELEROMETER_DATA, _microbit_samples, "micro:bit")
THINGY52 = Wearable(THINGY_RAW_DATA, _thingy_samples, "Thingy:52")


def microbit_period_ms(sample_rate_hz: float) -> int:
    period = round(1000.0 / sample_rate_hz)
    if period not in MICROBIT_PERIODS_MS:
        allowed = ", ".join(f"{1000 / p:g}" for p in MICROBIT_PERIODS_MS)
        raise ValueError(f"a micro:bit cannot sample at {sample_rate_hz:g} Hz; choose one of {allowed} Hz")
    return period


class MotionSession:
    """One connection of a wearable: set its rate, subscribe, batch samples into MotionBlocks."""

    style = ConnectionStyle.PERSISTENT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        wearable: Wearable,
        *,
        sample_rate_hz: float = 50.0,
        block_size: int = 10,
        stall_timeout_s: float = 10.0,
        use_start_notify: bool = True,
    ) -> None:
        if wearable is MICROBIT:
            microbit_period_ms(sample_rate_hz)
        elif not THINGY_RATE_RANGE_HZ[0] <= sample_rate_hz <= THINGY_RATE_RANGE_HZ[1]:
            raise ValueError(
                f"a Thingy:52 samples at {THINGY_RATE_RANGE_HZ[0]}-{THINGY_RATE_RANGE_HZ[1]} Hz, "
                f"not {sample_rate_hz:g} Hz"
            )
        self.tag = tag
        self.use_start_notify = use_start_notify
        self._sinks = sinks
        self._wearable = wearable
        self._rate_hz = sample_rate_hz
        self._block_size = block_size
        self._stall_timeout_s = stall_timeout_s
        self._complain = CodecComplaints(tag.device_id)

    async def run(self, link: GattLink) -> None:
        require(link, self._wearable.data)
        await self._sinks.on_event(self.tag.event(DeviceEventKind.CONNECTED, link.clock.now()))
        battery = await read_battery_percent(link)
        if battery is not None:
            await self._sinks.on_event(self.tag.event(DeviceEventKind.BATTERY, link.clock.now(), battery))
        await self._set_rate(link)
        await link.subscribe(self._wearable.data)
        batcher = MotionBatcher(self._rate_hz, self._block_size)
        try:
            # A link that stays "connected" but silent is dead (a wearable switched off can stay
            # connected in BlueZ): ending the session makes the manager reconnect.
            while (value := await link.receive(self._stall_timeout_s)) is not None:
                try:
                    samples = self._wearable.decode(value.data)
                except CodecError as exc:
                    self._complain(self._wearable.data.uuid, exc)
                    continue
                for run in batcher.add(samples, value.received):
                    await self._emit(run)
        finally:
            remnant = batcher.flush()
            if remnant is not None:
                await self._emit(remnant)
            await self._sinks.on_event(self.tag.event(DeviceEventKind.LOST, link.clock.now()))

    async def _set_rate(self, link: GattLink) -> None:
        if self._wearable is MICROBIT and link.offers(MICROBIT_ACCELEROMETER_PERIOD, "write"):
            period = microbit_period_ms(self._rate_hz)
            await link.write(MICROBIT_ACCELEROMETER_PERIOD, period.to_bytes(2, "little"))
        elif self._wearable is THINGY52 and link.offers(THINGY_MOTION_CONFIG, "read", "write"):
            config = bytearray(await link.read(THINGY_MOTION_CONFIG))
            if len(config) != _THINGY_CONFIG_SIZE:
                log.warning(
                    "Thingy motion configuration unexpected device=%s length=%d", self.tag.device_id, len(config)
                )
                return
            config[_THINGY_FREQUENCY_SLICE] = int(self._rate_hz).to_bytes(2, "little")
            await link.write(THINGY_MOTION_CONFIG, bytes(config))

    async def _emit(self, run: SampleRun) -> None:
        await self._sinks.on_motion(
            motion_block(
                run.samples,
                device_id=self.tag.device_id,
                resident_id=self.tag.resident_id,
                sample_rate_hz=self._rate_hz,
                arrival=run.last_sample,
            )
        )
