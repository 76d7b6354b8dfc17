"""Sinocare 安稳+Air session: set the meter's clock, take its real-time and history results.

The meter drives the exchange (sinocare2017 ``wx_blue_iot_sdk``): once connected it announces
itself (03); the hub answers with the time (06). Each result (04 real-time, 0e history) is
committed, then answered, as the vendor SDK's server answers every result; after a real-time
result the SDK's server sets the time again, and so does the hub. The session ends when the
meter hangs up or stays silent.

History may come again at every visit: each result's identity at the meter (its time, raw value
and unit) is its source key, so the outbox and the platform drop the ones already taken.

The vendor SDK has an "auth error" status: there may be a handshake no public source documents.
A meter that hangs up without sending anything is logged once as possibly waiting for one.
"""

from __future__ import annotations

import logging
from datetime import tzinfo

from drivers.ble.device_clock import home_local_time
from drivers.ble.link import GattLink
from drivers.ble.policy import ConnectionStyle
from drivers.ble.sessions import CodecComplaints, DeviceTag, Sinks
from drivers.ble.sinocare import (
    SINOCARE_FFB1,
    SINOCARE_FFB2,
    FrameSplitter,
    SinocareCommand,
    SinocareFrame,
    SinocareResult,
    decode_frame,
    decode_result,
    encode_answer,
    encode_set_time,
)
from drivers.ble.stored_time import stored_record_time
from drivers.ble.uuids import GattCharacteristic
from drivers.ble.warn_once import WarnOnce
from drivers.errors import CodecError, DeviceUnavailableError
from drivers.model import Glucose, HubTime, Reading

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 15.0
"""The meter sends its history right after the time is set; 15 s of silence means it is done."""


class SinocareMeterSession:
    style = ConnectionStyle.ON_ADVERT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        home_tz: tzinfo,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        use_start_notify: bool = True,
    ) -> None:
        self.tag = tag
        self.use_start_notify = use_start_notify
        self._sinks = sinks
        self._home_tz = home_tz
        self._idle_timeout_s = idle_timeout_s
        self._complain = CodecComplaints(tag.device_id)
        self._once = WarnOnce(log)

    def _roles(self, link: GattLink) -> tuple[GattCharacteristic, GattCharacteristic]:
        """(notifying, written): the sources name FFB1 and FFB2 but not which does which."""
        both = (SINOCARE_FFB1, SINOCARE_FFB2)
        notifying = next((c for c in both if link.offers(c, "notify")), None)
        written = next((c for c in reversed(both) if c is not notifying and (
            link.offers(c, "write") or link.offers(c, "write-without-response"))), None)
        if notifying is None or written is None:
            raise DeviceUnavailableError(
                f"{self.tag.device_id}: no Sinocare FFB1/FFB2 pair (one notifying, one written); is the "
                "configured driver right for this device?"
            )
        return notifying, written

    async def run(self, link: GattLink) -> None:
        notifying, written = self._roles(link)
        await link.subscribe(notifying)
        splitter = FrameSplitter()
        frames = 0
        while (value := await link.receive(self._idle_timeout_s)) is not None:
            for data in splitter.feed(value.data):
                frames += 1
                try:
                    frame = decode_frame(data)
                except CodecError as exc:
                    self._complain(notifying.uuid, exc)
                    continue
                await self._on_frame(link, written, frame, value.received)
        if splitter.skipped:
            self._once("skipped", "Sinocare bytes outside any frame device=%s count=%d", self.tag.device_id,
                       splitter.skipped)
        if frames == 0 and not link.connected:
            self._once("silent", "Sinocare meter hung up without a frame device=%s: it may want a handshake "
                       "no public source documents (the vendor SDK's 'auth error')", self.tag.device_id)

    async def _on_frame(self, link: GattLink, written: GattCharacteristic, frame: SinocareFrame,
                        received: HubTime) -> None:
        command = frame.command
        if command in (SinocareCommand.START, SinocareCommand.SET_TIME):
            await self._set_time(link, written)
        elif command in (SinocareCommand.RESULT, SinocareCommand.HISTORY):
            try:
                result = decode_result(frame)
            except CodecError as exc:
                self._complain(f"command {command:#04x}", exc)
                return
            # Committed before it is answered: the meter may forget a result once answered.
            await self._sinks.on_readings([self._reading(result, received)])
            await link.write(written, encode_answer(SinocareCommand(command)), response=True)
            if command == SinocareCommand.RESULT:
                await self._set_time(link, written)
        else:
            self._once(f"command {command}", "Sinocare meter sent command %#04x this driver does not know "
                       "device=%s length=%d", command, self.tag.device_id, len(frame.data))

    async def _set_time(self, link: GattLink, written: GattCharacteristic) -> None:
        now = link.clock.now()
        if not now.synced:
            # A hub without network time would set the meter wrong; its own clock is better then.
            self._once("unsynced", "Sinocare meter clock not set device=%s: the hub's clock is not synced yet",
                       self.tag.device_id)
            return
        await link.write(written, encode_set_time(home_local_time(now, self._home_tz)), response=True)

    def _reading(self, result: SinocareResult, received: HubTime) -> Reading:
        measured_at, time_source = stored_record_time(result.time, received, self._home_tz)
        return Reading(
            device=self.tag.info,
            resident_id=self.tag.resident_id,
            measurement=Glucose(mmol_l=result.mmol_l),
            measured_at=measured_at,
            time_source=time_source,
            received=received,
            device_time=result.time,
            source_key=result.source_key,
        )
