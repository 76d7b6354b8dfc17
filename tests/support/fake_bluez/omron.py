"""An emulated Omron cuff speaking Omron's own protocol (older units): unlock key, EEPROM reads.

It keeps a real EEPROM image: each user's ring buffer at its model's address, empty slots FF,
records written with ``drivers.ble.omron_records.encode_record``. Unlock and frames follow the
facts in drivers.ble.omron_eeprom (omblepy): programming mode only while the button was held
(``hold_button()``, the ``-P-`` on its display), ``01`` + the key it was given to unlock, then
open, reads, close; after the close it hangs up. It answers nothing on the send characteristics
until unlocked.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from drivers.ble import uuids
from drivers.ble.omron_eeprom import (
    KEY_SIZE,
    OMRON_SERVICE,
    PART_SIZE,
    RECEIVE,
    SEND,
    UNLOCK,
    Command,
    split_into_parts,
)
from drivers.ble.omron_records import MODELS, OmronRecord, encode_record
from drivers.ble.omron_session import MODEL_NUMBER
from fake_bluez.bluez import Advertisement, CharacteristicSpec, Peripheral, ServiceSpec

EEPROM_SIZE = 0x1000


def _frame(command: bytes, address: int, data: bytes) -> bytes:
    body = bytes([len(data) + 8]) + command + address.to_bytes(2, "big") + bytes([len(data)]) + data + b"\x00"
    check = 0
    for byte in body:
        check ^= byte
    return body + bytes([check])


class OmronCuff(Peripheral):
    """An Omron cuff of ``model`` (omron_records.MODELS) with two users' ring buffers."""

    def __init__(
        self,
        address: str = "28:FF:B2:00:00:07",
        name: str = "BLESmart_00000116",
        *,
        model: str = "HEM-7361T",
        say_model: bool = True,
        advertise_for_s: float = 20.0,
    ) -> None:
        services = (
            ServiceSpec(
                OMRON_SERVICE,
                (
                    *(CharacteristicSpec(c.uuid, ("write", "write-without-response")) for c in SEND),
                    *(CharacteristicSpec(c.uuid, ("notify",)) for c in RECEIVE),
                    CharacteristicSpec(UNLOCK.uuid, ("write", "notify")),
                ),
            ),
            ServiceSpec(
                uuids.sig_uuid(0x180A),
                (CharacteristicSpec(MODEL_NUMBER.uuid, ("read",), model.encode()),) if say_model else (),
            ),
        )
        super().__init__(address, name, services,
                         advertisement=Advertisement(service_uuids=(uuids.BLOOD_PRESSURE_SERVICE,)))
        self.model = MODELS[model]
        self.advertise_for_s = advertise_for_s
        self.eeprom = bytearray(b"\xff" * EEPROM_SIZE)
        self.next_slot = [0] * len(self.model.user_starts)
        self.key: bytes | None = None
        self.pairing_mode = False
        self.reads = 0
        """EEPROM reads answered (all connections)."""
        self.transfers_closed = 0
        self._programming = False
        self._unlocked = False
        self._parts: list[bytes | None] = [None] * len(SEND)
        self._advert_timer: asyncio.TimerHandle | None = None

    # -- what a resident and a technician do --
    def measure(self, user: int, record: OmronRecord) -> int:
        """Store a measurement in user ``user``'s (1, 2) ring buffer; returns its slot. Then it advertises."""
        index = user - 1
        slot = self.next_slot[index]
        at = self.model.user_starts[index] + slot * self.model.record_size
        self.eeprom[at : at + self.model.record_size] = encode_record(self.model, record)
        self.next_slot[index] = (slot + 1) % self.model.records_per_user
        self._advertise()
        return slot

    def hold_button(self) -> None:
        """Hold the Bluetooth button until -P- blinks: a host may now program its key. It advertises."""
        self.pairing_mode = True
        self._advertise()

    def _advertise(self) -> None:
        self.start_advertising()
        if self._advert_timer is not None:
            self._advert_timer.cancel()
        self._advert_timer = asyncio.get_running_loop().call_later(self.advertise_for_s, self.stop_advertising)

    # -- the radio side --
    async def on_connected(self) -> None:
        self._unlocked = self._programming = False
        self._parts = [None] * len(SEND)

    async def on_write(self, uuid: str, data: bytes) -> None:
        if uuid == UNLOCK.uuid:
            await self._unlock(data)
            return
        channel = next((i for i, c in enumerate(SEND) if c.uuid == uuid), None)
        if channel is None or not self._unlocked:
            return
        if channel == 0:
            self._parts = [None] * len(SEND)
        self._parts[channel] = data
        first = self._parts[0]
        if first is None or not first:
            return
        needed = -(-first[0] // PART_SIZE)
        if any(p is None for p in self._parts[:needed]):
            return
        frame = b"".join(p for p in self._parts[:needed] if p is not None)[: first[0]]
        self._parts = [None] * len(SEND)
        await self._command(frame)

    async def _unlock(self, data: bytes) -> None:
        opcode, key = data[:1], data[1:]
        if opcode == b"\x02":
            self._programming = self.pairing_mode
            answer = b"\x82\x00" if self._programming else b"\x82\x01"
        elif opcode == b"\x00" and self._programming and len(key) == KEY_SIZE:
            self.key, self._programming, self.pairing_mode = key, False, False
            answer = b"\x80\x00"
        elif opcode == b"\x01":
            self._unlocked = self.key is not None and key == self.key
            answer = b"\x81\x00" if self._unlocked else b"\x81\x01"
        else:
            answer = bytes([data[0] | 0x80 if data else 0x80, 0x01])
        await self.notify(UNLOCK.uuid, answer)

    async def _command(self, frame: bytes) -> None:
        command, address, size = frame[1:3], int.from_bytes(frame[3:5], "big"), frame[5]
        if command == Command.OPEN.value:
            await self._answer(_frame(Command.OPEN.answer, 0, b"\x00"))
        elif command == Command.READ.value:
            self.reads += 1
            await self._answer(_frame(Command.READ.answer, address, bytes(self.eeprom[address : address + size])))
        elif command == Command.CLOSE.value:
            self.transfers_closed += 1
            await self._answer(_frame(Command.CLOSE.answer, 0, b"\x00"))
            self.stop_advertising()
            await asyncio.sleep(0.05)
            await self.drop_link()

    async def _answer(self, frame: bytes) -> None:
        for characteristic, part in zip(RECEIVE, split_into_parts(frame), strict=False):
            if not await self.notify(characteristic.uuid, part):
                return


def reading_time() -> datetime:
    """A cuff's clock shows naive local time."""
    return datetime.now().replace(microsecond=0)
