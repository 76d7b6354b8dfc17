"""An emulated Sinocare 安稳+Air glucose meter (``BDE_WEIXIN_TTM``): FFB0 with FFB1 written, FFB2 notifying.

It behaves as drivers.ble.sinocare reads the public sources: on subscription it announces itself
(03); once the hub set its time (06) it sends its whole memory as history results (0e), each
after the hub answered the one before, then the new measurement as a real-time result (04), and
hangs up. Like some meters it resends its whole history at every connection. Its frames are laid
out as the public BLE example (20 bytes, glucose in tenths of mmol/L in bytes 12-13, byte 19 = 0).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from drivers.ble.sinocare import SINOCARE_FFB1, SINOCARE_FFB2, SINOCARE_SERVICE, SinocareCommand
from fake_bluez.bluez import Advertisement, CharacteristicSpec, Peripheral, ServiceSpec

ANSWER_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class SinocareResultRecord:
    time: datetime
    """The meter's clock, naive local time."""
    mmol_per_l: float

    def encode(self, command: SinocareCommand) -> bytes:
        t = self.time
        raw = round(self.mmol_per_l * 10)
        return (b"\x53\x4e\x12\x00\x12" + bytes([command, t.year - 2000, t.month, t.day, t.hour, t.minute, t.second])
                + raw.to_bytes(2, "big") + bytes.fromhex("0001 1e09 00 00".replace(" ", "")))


def start_frame() -> bytes:
    return bytes.fromhex("534e04000403")


class SinocareMeter(Peripheral):
    def __init__(
        self,
        address: str = "18:93:D7:00:00:08",
        name: str = "BDE_WEIXIN_TTM",
        *,
        history: list[SinocareResultRecord] | None = None,
        advertise_for_s: float = 20.0,
    ) -> None:
        services = (
            ServiceSpec(
                SINOCARE_SERVICE,
                (
                    CharacteristicSpec(SINOCARE_FFB1.uuid, ("write", "write-without-response")),
                    CharacteristicSpec(SINOCARE_FFB2.uuid, ("notify",)),
                ),
            ),
        )
        super().__init__(address, name, services, advertisement=Advertisement())
        self.history = list(history or [])
        self.pending: SinocareResultRecord | None = None
        self.advertise_for_s = advertise_for_s
        self.written: list[bytes] = []
        """Every frame the hub wrote, in order."""
        self.clock_set_to: datetime | None = None
        self._answers: asyncio.Queue[bytes] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._advert_timer: asyncio.TimerHandle | None = None

    def measure(self, mmol_per_l: float, time: datetime | None = None) -> SinocareResultRecord:
        """A resident measures: the result is kept and advertised for ``advertise_for_s``."""
        result = SinocareResultRecord(time or datetime.now().replace(microsecond=0), mmol_per_l)
        self.pending = result
        self.start_advertising()
        if self._advert_timer is not None:
            self._advert_timer.cancel()
        self._advert_timer = asyncio.get_running_loop().call_later(self.advertise_for_s, self.stop_advertising)
        return result

    async def on_subscribed(self, uuid: str) -> None:
        if uuid == SINOCARE_FFB2.uuid:
            self._answers = asyncio.Queue()
            await self.notify(uuid, start_frame())

    async def on_disconnected(self) -> None:
        if self._sender is not None:
            self._sender.cancel()

    async def on_write(self, uuid: str, data: bytes) -> None:
        if uuid != SINOCARE_FFB1.uuid or len(data) < 6:
            return
        self.written.append(data)
        command = data[5]
        if command == SinocareCommand.SET_TIME and len(data) >= 12:
            y, mo, d, h, mi, s = data[6:12]
            self.clock_set_to = datetime(2000 + y, mo, d, h, mi, s)
            if self._sender is None or self._sender.done():
                self._sender = asyncio.get_running_loop().create_task(self._send_memory())
        else:
            self._answers.put_nowait(data)

    async def _send(self, frame: bytes, command: SinocareCommand) -> bool:
        if not await self.notify(SINOCARE_FFB2.uuid, frame):
            return False
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT_S):
                while (await self._answers.get())[5] != command:
                    pass
        except TimeoutError:
            return False
        return True

    async def _send_memory(self) -> None:
        for result in self.history:
            if not await self._send(result.encode(SinocareCommand.HISTORY), SinocareCommand.HISTORY):
                return
        pending = self.pending
        if pending is not None and await self._send(pending.encode(SinocareCommand.RESULT), SinocareCommand.RESULT):
            self.history.append(pending)
            self.pending = None
        self.stop_advertising()
        await asyncio.sleep(0.3)  # the time the hub sets after a real-time result
        await self.drop_link()
