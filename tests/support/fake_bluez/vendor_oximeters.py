"""Emulated vendor oximeters for the fake BlueZ: a PC-60F-family clip, an O2Ring, an iChoice clip.

Their frames are written here from the protocol facts (reference/ble-health-devices.md and the
public drivers it names), with checksums computed bit by bit rather than by the drivers' tables,
so the hub's codecs are checked against an independent writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from fake_bluez.bluez import Advertisement, CharacteristicSpec, Peripheral, ServiceSpec

SUBSCRIBE_WAIT_S = 120.0
"""How long a switched-on clip waits for the hub to connect and subscribe before it gives up (the hub
holds two connections, so a clip may wait for another to finish)."""


def _sig(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def _crc8(data: bytes, poly: int, *, reflected: bool) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if reflected:
                crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
            else:
                crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


class StreamingOximeter(Peripheral):
    """A vendor oximeter that sends live values while a finger is in it.

    Switched on, it advertises until the hub connects and again when the link drops, as a
    single-connection peripheral does.
    """

    switched_on = False

    async def on_connected(self) -> None:
        self.stop_advertising()

    async def on_disconnected(self) -> None:
        if self.switched_on:
            self.start_advertising()

    def switch_on(self) -> None:
        self.switched_on = True
        self.start_advertising()

    async def stream(self, readings: Iterable[tuple[int, int]], rate_hz: float = 1.0) -> int:
        """Measure (SpO2 %, pulse bpm) pairs at ``rate_hz``; returns how many reached the hub."""
        raise NotImplementedError

    async def _wait_subscribed(self, uuid: str) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SUBSCRIBE_WAIT_S
        while not self.is_subscribed(uuid):
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _switch_off(self) -> None:
        self.switched_on = False
        self.stop_advertising()
        await asyncio.sleep(0.05)
        await self.drop_link()


# --- Creative/Viatom PC-60F family ---------------------------------------------------------------

NUS_SERVICE = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
NUS_RX = "6e400002-b5a3-f393-e0a9-e50e24dcca9e"
NUS_TX = "6e400003-b5a3-f393-e0a9-e50e24dcca9e"


def viatom_frame(token: int, function: int, payload: bytes) -> bytes:
    """``AA 55 token length function payload`` + CRC-8/MAXIM (reflected 0x31) over all of it."""
    body = bytes([0xAA, 0x55, token, len(payload) + 2, function]) + payload
    return body + bytes([_crc8(body, 0x8C, reflected=True)])


def viatom_spo2_frame(spo2: int, pulse: int, perfusion_tenths: int, battery_level: int, status: int = 0) -> bytes:
    payload = bytes([spo2]) + pulse.to_bytes(2, "little") + bytes([perfusion_tenths, status, battery_level << 6])
    return viatom_frame(0x0F, 0x01, payload)


class ViatomPC60F(StreamingOximeter):
    """A PC-60F clip: switched on by a finger, it advertises and, once subscribed, writes its frames
    (SpO2 parameters each period, pleth frames between) into its UART, which the radio cuts into
    ``chunk``-byte notifications: frames split across notifications and share them. ``variant``
    "uart" is the Nordic UART service of newer units, "ffb0" the FFB0/FFB2 service of older ones.
    When the readings run out the finger comes out: a probe-off frame, then it switches off.
    """

    def __init__(
        self,
        address: str = "F0:5E:CD:00:00:11",
        name: str = "PC-60F_SN000111",
        *,
        variant: str = "uart",
        chunk: int = 20,
        pleth_frames_per_s: float = 25.0,
        perfusion_tenths: int = 80,
        battery_level: int = 3,
    ) -> None:
        if variant == "uart":
            services = (ServiceSpec(NUS_SERVICE, (CharacteristicSpec(NUS_RX, ("write", "write-without-response")),
                                                  CharacteristicSpec(NUS_TX, ("notify",)))),)
            self.data_uuid = NUS_TX
        elif variant == "ffb0":
            services = (ServiceSpec(_sig(0xFFB0), (CharacteristicSpec(_sig(0xFFB1), ("write",)),
                                                   CharacteristicSpec(_sig(0xFFB2), ("notify",)))),)
            self.data_uuid = _sig(0xFFB2)
        else:
            raise ValueError(f"variant is 'uart' or 'ffb0', not {variant!r}")
        # It advertises its name only: the catalogue recognises it by that.
        super().__init__(address, name, services, advertisement=Advertisement())
        self.chunk = chunk
        self.pleth_frames_per_s = pleth_frames_per_s
        self.perfusion_tenths = perfusion_tenths
        self.battery_level = battery_level
        self.bytes_sent = 0

    async def stream(self, readings: Iterable[tuple[int, int]], rate_hz: float = 1.0) -> int:
        self.switch_on()
        if not await self._wait_subscribed(self.data_uuid):
            await self._switch_off()
            return 0
        sent = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        pleth_per_reading = max(1, round(self.pleth_frames_per_s / rate_hz))
        wave = [0x10, 0x30, 0x58, 0x70, 0x62, 0x48, 0x30, 0x20, 0x18, 0x12]
        for spo2, pulse in readings:
            # The parameters go out with the period's first pleth frame: one write, cut by the radio.
            parameters = viatom_spo2_frame(spo2, pulse, self.perfusion_tenths, self.battery_level)
            for n in range(pleth_per_reading):
                samples = bytes(wave[(n * 5 + i) % len(wave)] | (0x80 if (n * 5 + i) % 25 == 3 else 0)
                                for i in range(5))
                delivered = await self._write((parameters if n == 0 else b"") + viatom_frame(0x0F, 0x02, samples))
                sent += delivered if n == 0 else 0
                deadline += 1.0 / (rate_hz * pleth_per_reading)
                await asyncio.sleep(max(0.0, deadline - loop.time()))
            if not self.connected:
                break
        await self._write(viatom_spo2_frame(0, 0, 0, self.battery_level, status=0x02))
        await self._switch_off()
        return sent

    async def _write(self, frames: bytes) -> int:
        """Frames into the UART, out in ``chunk``-byte notifications; 1 when all of them went out."""
        delivered = True
        for i in range(0, len(frames), self.chunk):
            delivered &= await self.notify(self.data_uuid, frames[i : i + self.chunk])
            self.bytes_sent += len(frames[i : i + self.chunk])
        return int(delivered)


# --- Wellue O2Ring -------------------------------------------------------------------------------

O2RING_SERVICE = "14839ac4-7d7e-415c-9a42-167340cf2339"
O2RING_NOTIFY = "0734594a-a8e7-4b1a-a6b1-cd5243059a57"
O2RING_WRITE = "8b00ace7-eb0b-49b0-bbe9-9aee0a26e1a3"
_RING_TIME = "%Y-%m-%d,%H:%M:%S"


def o2ring_answer(status: int, payload: bytes, block: int = 0) -> bytes:
    body = bytes([0x55, status, status ^ 0xFF]) + block.to_bytes(2, "little") + len(payload).to_bytes(2, "little")
    body += payload
    return body + bytes([_crc8(body, 0x07, reflected=False)])


class O2Ring(StreamingOximeter):
    """An O2Ring: it answers the hub's requests (joined from 20-byte writes) with 20-byte notifications.

    0x14 information (its clock as CurTIME, which starts a day and 3 hours off: never set), 0x16
    configuration (SetTIME moves its clock), 0x17 live values (the current finger values, or 0xFF
    without a finger). :meth:`stream` puts a finger in with each value for ``1 / rate_hz`` seconds.
    ``refuse_live`` answers 0x17 with status 1, as firmware that wants another command might.
    """

    def __init__(self, address: str = "C8:07:5F:00:00:12", name: str = "O2Ring 4512", *,
                 battery_percent: int = 87, refuse_live: bool = False) -> None:
        characteristics = (CharacteristicSpec(O2RING_NOTIFY, ("notify",)),
                           CharacteristicSpec(O2RING_WRITE, ("write", "write-without-response")))
        services = (ServiceSpec(O2RING_SERVICE, characteristics),)
        super().__init__(address, name, services)
        self.battery_percent = battery_percent
        self.refuse_live = refuse_live
        self.clock_offset = timedelta(days=-1, hours=-3)
        self.finger: tuple[int, int] | None = None
        self.commands: list[int] = []
        self.set_times: list[str] = []
        self._request = b""
        self.switch_on()  # worn or on its charger, the ring is always on

    def device_time(self) -> datetime:
        return datetime.now() + self.clock_offset

    async def stream(self, readings: Iterable[tuple[int, int]], rate_hz: float = 1.0) -> int:
        count = 0
        for reading in readings:
            self.finger = reading
            count += 1
            await asyncio.sleep(1.0 / rate_hz)
        self.finger = None
        return count

    async def on_disconnected(self) -> None:
        self._request = b""
        await super().on_disconnected()

    async def on_write(self, uuid: str, data: bytes) -> None:
        if uuid != O2RING_WRITE:
            return
        self._request += data
        if len(self._request) < 7:
            return
        size = 8 + int.from_bytes(self._request[5:7], "little")
        if len(self._request) < size:
            return
        request, self._request = self._request[:size], self._request[size:]
        garbled = request[0] != 0xAA or request[1] ^ request[2] != 0xFF
        if garbled or _crc8(request[:-1], 0x07, reflected=False) != request[-1]:
            return  # the real ring ignores a garbled request; the hub's answer timeout copes
        self.commands.append(request[1])
        await self._answer(request[1], request[7:-1])

    async def _answer(self, command: int, payload: bytes) -> None:
        if command == 0x14:
            info = {"CurTIME": self.device_time().strftime(_RING_TIME), "CurBAT": f"{self.battery_percent}%",
                    "Model": "1652", "SN": "2012345678", "SoftwareVer": "1.4.0", "FileList": ""}
            answer = o2ring_answer(0, json.dumps(info).encode("ascii") + b"\0")
        elif command == 0x16:
            setting = json.loads(payload.decode("ascii"))
            if "SetTIME" in setting:
                self.set_times.append(setting["SetTIME"])
                self.clock_offset = datetime.strptime(setting["SetTIME"], _RING_TIME) - datetime.now()
            answer = o2ring_answer(0, bytes(4))
        elif command == 0x17 and self.refuse_live:
            answer = o2ring_answer(1, b"")
        elif command == 0x17:
            answer = o2ring_answer(0, self._live())
        else:
            answer = o2ring_answer(1, b"")
        for i in range(0, len(answer), 20):
            await self.notify(O2RING_NOTIFY, answer[i : i + 20])

    def _live(self) -> bytes:
        if self.finger is None:
            return bytes([0xFF, 0xFF, 0xFF, 0, 0, 0, 0, self.battery_percent, 0, 0, 0, 0, 0])
        spo2, pulse = self.finger
        return bytes([spo2, pulse, 0, 0, 0, 0, 0, self.battery_percent, 0, 0, 10, 1, 0])


# --- ChoiceMMed iChoice --------------------------------------------------------------------------

ICHOICE_ENABLE = bytes.fromhex("AA5504B10000B5")
ICHOICE_NOTIFY = tuple(_sig(0xCD00 + n) for n in range(1, 5))
ICHOICE_COMMAND = _sig(0xCD20)


def ichoice_frame(payload: bytes) -> bytes:
    body = bytes([len(payload) + 1]) + payload
    return b"\x55\xaa" + body + bytes([sum(body) & 0xFF])


class IChoiceOximeter(StreamingOximeter):
    """An iChoice clip. Its service UUID is made of its address (or ``service_suffix``, for a unit
    whose UUID does not follow its address). It answers the enable command on cd20 only when cd01,
    cd02 and cd03 are all subscribed; then it acknowledges and sends 6-byte frames on
    ``data_uuid`` (cd04 unless told otherwise)."""

    def __init__(self, address: str = "D8:7C:BE:23:88:51", name: str = "iChoice C19", *,
                 service_suffix: str | None = None, data_uuid: str = ICHOICE_NOTIFY[3]) -> None:
        suffix = service_suffix or address.replace(":", "").lower()[2:]
        self.service_uuid = f"ba11f08c-5f14-0b0d-1080-00{suffix}"
        services = (ServiceSpec(self.service_uuid, (*(CharacteristicSpec(uuid, ("notify",)) for uuid in ICHOICE_NOTIFY),
                                                    CharacteristicSpec(ICHOICE_COMMAND, ("write",)))),)
        super().__init__(address, name, services)
        self.data_uuid = data_uuid
        self.enabled = asyncio.Event()
        self.ignored_enables = 0

    async def on_write(self, uuid: str, data: bytes) -> None:
        if uuid != ICHOICE_COMMAND or data != ICHOICE_ENABLE:
            return
        if not all(self.is_subscribed(u) for u in ICHOICE_NOTIFY[:3]):
            self.ignored_enables += 1
            return
        await self.notify(self.data_uuid, ichoice_frame(b"\xb1\x00"))
        self.enabled.set()

    async def on_disconnected(self) -> None:
        self.enabled.clear()
        await super().on_disconnected()

    async def stream(self, readings: Iterable[tuple[int, int]], rate_hz: float = 1.0) -> int:
        self.switch_on()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await self.enabled.wait()
        if not self.enabled.is_set():
            await self._switch_off()
            return 0
        sent = 0
        for spo2, pulse in readings:
            sent += await self.notify(self.data_uuid, ichoice_frame(bytes([spo2, pulse])))
            await asyncio.sleep(1.0 / rate_hz)
        await self.notify(self.data_uuid, ichoice_frame(b"\x00\x00"))
        await self._switch_off()
        return sent
