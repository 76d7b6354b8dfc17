"""Omron cuff session: unlock with the hub's key, read every user's ring buffer, hand over the readings.

Older units (Omron's service ecbe3980-...): the cuff's memory is read block by block after the
unlock characteristic accepted the hub's key (drivers.ble.omron_eeprom, omron_records).

**The key.** The hub makes one random 16-byte key per cuff (``secrets``), the first time it meets
the cuff, and keeps it in the outbox's small named-value table (the cursors that drivers keep,
``omron-bp:<device id>:unlock-key``, hex) *before* it gives it to the cuff, so a key the cuff holds
is never one the hub lost. It lives in the outbox database in the hub's data directory, which
only the gateway's own user (and root) can read (systemd ``UMask=0077``, ``StateDirectoryMode=0750``);
it is never logged, never in a record, and never leaves the hub. A cuff that refuses the key (it
was paired with another host, or reset) is offered programming mode: if a technician put it in
pairing mode (hold the Bluetooth button until ``-P-`` blinks) the same key is programmed again;
otherwise the session stops with that instruction.

**Duplicates.** Every visit reads every slot of every user (the "unread" counters are emptied by
the phone app's auto-sync, and the hub never writes the cuff's memory); each record's identity at
the cuff becomes its source key, so the outbox and the platform drop the ones already taken.

Newer units (service 0xFE4A) are bonded by the operating system (``yiyang pair``, hass-omron
``omron_ble/``); their memory protocol is not publicly documented as far as the public facts go,
so a cuff without the older service is served as a SIG Blood Pressure cuff (0x2A35 indications:
usually only the latest reading), and the log says so once.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import tzinfo

from drivers.ble.link import GattLink, Notification
from drivers.ble.omron_eeprom import (
    CLOSE_TRANSFER,
    OPEN_TRANSFER,
    RECEIVE,
    SEND,
    UNLOCK,
    Answer,
    Command,
    FrameAssembler,
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
    DEFAULT_MODEL,
    MODELS,
    OmronModel,
    decode_ring_buffer,
    model_named,
    omron_reading,
)
from drivers.ble.policy import ConnectionStyle
from drivers.ble.sessions import CodecComplaints, CursorGet, CursorSet, DeviceTag, MeasurementSession, Sinks
from drivers.ble.uuids import BLOOD_PRESSURE_MEASUREMENT, GattCharacteristic, sig_uuid
from drivers.ble.warn_once import WarnOnce
from drivers.errors import CodecError, DeviceTimeoutError, DeviceUnavailableError
from drivers.model import Reading, TimeSource

log = logging.getLogger(__name__)

MODEL_NUMBER = GattCharacteristic("Model Number String", sig_uuid(0x2A24), sig_uuid(0x180A))
KEY_CURSOR_PREFIX = "omron-bp:"
ANSWER_TIMEOUT_S = 3.0
"""omblepy waits 1 s and retries; hass-omron waits 5 s for weak links. Between the two."""
COMMAND_TRIES = 3
"""A lost notification costs a resend, not the visit: the read is idempotent."""


def key_cursor(device_id: str) -> str:
    """The outbox cursor holding the hub's unlock key for one cuff (hex)."""
    return f"{KEY_CURSOR_PREFIX}{device_id}:unlock-key"


class PairingNeededError(DeviceUnavailableError):
    """The cuff does not take the hub's key and is not in pairing mode.

    Hold the cuff's Bluetooth button until -P- blinks, then let the hub connect (within a minute).
    """


class OmronCuffSession:
    style = ConnectionStyle.ON_ADVERT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        home_tz: tzinfo,
        cursor_get: CursorGet,
        cursor_set: CursorSet,
        *,
        residents_by_user: Mapping[int, str] | None = None,
        new_key: Callable[[], bytes] = lambda: secrets.token_bytes(16),
        answer_timeout_s: float = ANSWER_TIMEOUT_S,
        use_start_notify: bool = True,
    ) -> None:
        """``residents_by_user``: whose readings each user button holds (user 1, 2...); by default
        every user's are the device's resident's. A user absent from the mapping is read but not
        handed over (a visitor's button)."""
        self.tag = tag
        self.use_start_notify = use_start_notify
        self._sinks = sinks
        self._home_tz = home_tz
        self._cursor_get = cursor_get
        self._cursor_set = cursor_set
        self._residents_by_user = residents_by_user
        self._new_key = new_key
        self._answer_timeout_s = answer_timeout_s
        self._complain = CodecComplaints(tag.device_id)
        self._assembler = FrameAssembler()
        self._once = WarnOnce(log)

    async def run(self, link: GattLink) -> None:
        if not all(link.offers(c) for c in (*SEND, *RECEIVE, UNLOCK)):
            await self._newer_unit(link)
            return
        model = await self._model(link)
        for characteristic in (*RECEIVE, UNLOCK):
            await link.subscribe(characteristic)
        await self._unlock(link)
        await self._exchange(link, OPEN_TRANSFER, Command.OPEN)
        try:
            for user in range(len(model.user_starts)):
                await self._read_user(link, model, user)
        finally:
            if link.connected:
                # Ends the transfer on the cuff's display; a failure here must not hide one before it.
                with contextlib.suppress(DeviceTimeoutError):
                    answer = await self._exchange(link, CLOSE_TRANSFER, Command.CLOSE)
                    if answer.data[:1] != b"\x00":
                        log.info("cuff ended the transfer with status %s device=%s", answer.data.hex(),
                                 self.tag.device_id)

    async def _newer_unit(self, link: GattLink) -> None:
        if not link.offers(BLOOD_PRESSURE_MEASUREMENT):
            raise DeviceUnavailableError(
                f"{self.tag.device_id}: neither Omron's memory service nor Blood Pressure Measurement; is it "
                "an Omron cuff, and bonded (yiyang pair, with the Bluetooth button held until -P- blinks)?"
            )
        self._once("newer", "Omron cuff without the memory service device=%s: taking its Blood Pressure "
                   "indications (newer units send the latest reading only)", self.tag.device_id)
        await MeasurementSession(self.tag, self._sinks, self._home_tz, [BLOOD_PRESSURE_MEASUREMENT],
                                 use_start_notify=self.use_start_notify).run(link)

    async def _model(self, link: GattLink) -> OmronModel:
        if not link.offers(MODEL_NUMBER, "read"):
            self._once("model", "Omron cuff does not name its model device=%s; reading it as a %s",
                       self.tag.device_id, DEFAULT_MODEL)
            return MODELS[DEFAULT_MODEL]
        name = (await link.read(MODEL_NUMBER)).decode("ascii", "replace").strip("\x00 ")
        model = model_named(name)
        if model is None:
            # Reading another model's memory with a wrong layout would upload nonsense as blood pressure.
            raise DeviceUnavailableError(
                f"{self.tag.device_id}: Omron model {name!r} has no memory layout here (known: "
                f"{', '.join(MODELS)}); add its row to drivers.ble.omron_records.MODELS from omblepy"
            )
        return model

    # -- the key -----------------------------------------------------------------------------

    async def _key(self) -> tuple[bytes, bool]:
        """The hub's key for this cuff, and whether it was just made (the cuff does not have it yet)."""
        stored = await self._cursor_get(key_cursor(self.tag.device_id))
        if stored:
            try:
                key = bytes.fromhex(stored)
            except ValueError:
                key = b""
            if len(key) == 16:
                return key, False
            log.warning("stored Omron key unusable device=%s; making a new one (pair the cuff again)",
                        self.tag.device_id)
        key = self._new_key()
        # Kept before the cuff gets it: a crash in between leaves a key the hub has, never one it lost.
        await self._cursor_set(key_cursor(self.tag.device_id), key.hex())
        return key, True

    async def _unlock(self, link: GattLink) -> None:
        key, new = await self._key()
        if not new and await self._unlock_step(link, UnlockStep.UNLOCK, key):
            return
        if not await self._unlock_step(link, UnlockStep.ENTER_KEY_PROGRAMMING, None):
            raise PairingNeededError(
                f"{self.tag.device_id}: the cuff {'has no key from this hub yet' if new else 'refuses the hub key'} "
                "and is not in pairing mode: hold its Bluetooth button until -P- blinks"
            )
        if not await self._unlock_step(link, UnlockStep.PROGRAM_KEY, key):
            raise PairingNeededError(f"{self.tag.device_id}: the cuff did not take the hub's key; pair it again")
        log.info("Omron cuff paired with the hub's key device=%s", self.tag.device_id)
        if not await self._unlock_step(link, UnlockStep.UNLOCK, key):
            raise PairingNeededError(f"{self.tag.device_id}: the cuff took the hub's key but refuses it")

    async def _unlock_step(self, link: GattLink, step: UnlockStep, key: bytes | None) -> bool:
        await link.write(UNLOCK, unlock_request(step, key), response=True)
        while (value := await link.receive(self._answer_timeout_s)) is not None:
            if value.uuid == UNLOCK.uuid:
                # The answer is only its first two bytes' worth: never log it (it may echo the key).
                return unlock_accepted(step, value.data)
        if not link.connected:
            raise DeviceTimeoutError(f"{self.tag.device_id}: the cuff hung up during the unlock")
        return False

    # -- the memory --------------------------------------------------------------------------

    async def _read_user(self, link: GattLink, model: OmronModel, user: int) -> None:
        memory = bytearray()
        received = link.clock.now()
        for address, size in model.reads(user):
            command = encode_command(Command.READ, address, size)
            try:
                memory += read_answer_data(await self._exchange(link, command, Command.READ, address), address, size)
            except ReadRefusedError:
                log.info("cuff refused user %d's memory device=%s: no such user on this model", user + 1,
                         self.tag.device_id)
                return
        records, errors = decode_ring_buffer(model, user + 1, bytes(memory))
        for error in errors:
            self._complain(f"user {user + 1} memory", error)
        resident = self._resident(user + 1)
        if resident is None:
            log.info("records of user %d not handed over device=%s count=%d (no resident for that user)",
                     user + 1, self.tag.device_id, len(records))
            return
        readings: list[Reading] = [
            omron_reading(r, device=self.tag.info, resident_id=resident, received=received, home_tz=self._home_tz)
            for r in records
        ]
        if any(r.time_source is not TimeSource.DEVICE for r in readings):
            self._once("clock", "Omron cuff clock ahead of the hub device=%s: those records take the "
                       "receive time (was its battery changed?)", self.tag.device_id)
        if readings:
            await self._sinks.on_readings(readings)
        log.info("Omron ring buffer read device=%s user=%d records=%d", self.tag.device_id, user + 1, len(readings))

    def _resident(self, user: int) -> str | None:
        if self._residents_by_user is None:
            return self.tag.resident_id
        return self._residents_by_user.get(user)

    async def _exchange(self, link: GattLink, frame: bytes, command: Command, address: int | None = None) -> Answer:
        """Send a command frame and wait for its answer, resending it when the answer is lost."""
        for _ in range(COMMAND_TRIES):
            for characteristic, part in zip(SEND, split_into_parts(frame), strict=False):
                await link.write(characteristic, part, response=True)
            answer = await self._answer(link, command, address)
            if answer is not None:
                return answer
            if not link.connected:
                break
        raise DeviceTimeoutError(
            f"{self.tag.device_id}: the cuff {'hung up' if not link.connected else 'stopped answering'} "
            f"during its memory transfer; the next visit reads it again"
        )

    async def _answer(self, link: GattLink, command: Command, address: int | None) -> Answer | None:
        while (value := await link.receive(self._answer_timeout_s)) is not None:
            answer = self._frame(value)
            # A late answer to an earlier (resent) command is skipped by its command and address.
            if answer is not None and answer.command == command.answer and address in (None, answer.address):
                return answer
        return None

    def _frame(self, value: Notification) -> Answer | None:
        channel = next((i for i, c in enumerate(RECEIVE) if c.uuid == value.uuid), None)
        if channel is None:
            return None
        try:
            frame = self._assembler.add(channel, value.data)
            return None if frame is None else decode_answer(frame)
        except CodecError as exc:
            self._complain("Omron receive", exc)
            return None
