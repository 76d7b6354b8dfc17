"""Sessions for the vendor oximeters: PC-60F family, O2Ring, iChoice, streaming live SpO2.

Each turns its device's protocol into samples for the one SpO2 window every continuous oximeter
uses (drivers.ble.streams.SpO2Window); a window's median becomes a continuous reading the hub
evaluates at once against the sustained-SpO2 rule and commits by the minute. The session ends
when the device hangs up (finger out, switched off) or stays silent, closing its last window.

Where a device behaves other than the public facts say, the session says so once per device in
the log (:class:`FieldNotes`), with the device id, and carries on: that line is what a field test
reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import tzinfo

from drivers.ble import ichoice, o2ring, viatom
from drivers.ble.datetime_char import BleDateTime
from drivers.ble.device_clock import home_local_time, read_device_clock
from drivers.ble.framing import FrameReassembler, Reassembled
from drivers.ble.link import GattLink, Notification, require
from drivers.ble.policy import ConnectionStyle
from drivers.ble.sessions import CodecComplaints, DeviceTag, Sinks
from drivers.ble.streams import OximeterSample, SpO2Summary, SpO2Window, spo2_summary_reading
from drivers.errors import CodecError, DeviceUnavailableError
from drivers.model import DeviceEventKind, HubTime

log = logging.getLogger(__name__)

SPO2_INTERVAL_S = 10.0
"""One summary per 10 s, as for the SIG continuous oximeter."""
IDLE_TIMEOUT_S = 10.0
"""A finger clip that sends nothing for this long has been put down (they notify every second)."""


class FieldNotes:
    """What a device does differently from the public facts: logged once per device and topic."""

    def __init__(self, device_id: str) -> None:
        self._device_id = device_id
        self._told: set[str] = set()

    def __call__(self, topic: str, message: str, *args: object, level: int = logging.WARNING) -> None:
        if topic in self._told:
            return
        self._told.add(topic)
        log.log(level, "field note device=%s " + message, self._device_id, *args)


class SpO2Stream:
    """One connection's live SpO2: samples in, a continuous reading per window out, battery when it changes."""

    def __init__(self, tag: DeviceTag, sinks: Sinks, interval_s: float) -> None:
        self._tag = tag
        self._sinks = sinks
        self._window = SpO2Window(interval_s)
        self._battery: int | None = None
        self.samples = 0
        self.readings = 0

    async def add(self, sample: OximeterSample, received: HubTime) -> None:
        self.samples += 1
        summary = self._window.add(sample, received)
        if summary is not None:
            await self._hand_over(summary)

    async def battery(self, percent: int, received: HubTime) -> None:
        if percent != self._battery:
            self._battery = percent
            await self._sinks.on_event(self._tag.event(DeviceEventKind.BATTERY, received, percent))

    async def close(self) -> None:
        """Hand over the last, partial window (the device hung up or went quiet)."""
        summary = self._window.flush()
        if summary is not None:
            await self._hand_over(summary, last=True)
        log.info("oximeter stream ended device=%s samples=%d readings=%d", self._tag.device_id, self.samples,
                 self.readings)

    async def _hand_over(self, summary: SpO2Summary, *, last: bool = False) -> None:
        self.readings += 1
        await self._sinks.on_readings([spo2_summary_reading(summary, self._tag.info, self._tag.resident_id,
                                                            last=last)])


def _complain_all(complain: CodecComplaints, characteristic: str, result: Reassembled) -> None:
    for exc in result.rejected:
        complain(characteristic, exc)


class _OximeterSession:
    """What every vendor oximeter's session holds: its device and sinks, the SpO2 window length,
    and the log's complaints and field notes about it."""

    def __init__(self, tag: DeviceTag, sinks: Sinks, *, spo2_interval_s: float, use_start_notify: bool) -> None:
        self.tag = tag
        self.use_start_notify = use_start_notify
        self._sinks = sinks
        self._spo2_interval_s = spo2_interval_s
        self._complain = CodecComplaints(tag.device_id)
        self._notes = FieldNotes(tag.device_id)

    def _stream(self) -> SpO2Stream:
        return SpO2Stream(self.tag, self._sinks, self._spo2_interval_s)


class _ClipSession(_OximeterSession):
    """A finger clip that streams frames once subscribed, until it hangs up or stays silent."""

    style = ConnectionStyle.ON_ADVERT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        *,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        spo2_interval_s: float = SPO2_INTERVAL_S,
        use_start_notify: bool = True,
    ) -> None:
        super().__init__(tag, sinks, spo2_interval_s=spo2_interval_s, use_start_notify=use_start_notify)
        self._idle_timeout_s = idle_timeout_s

    async def _frames(
        self, link: GattLink, reassemblers: Mapping[str, FrameReassembler]
    ) -> AsyncIterator[tuple[bytes, Notification]]:
        """Each whole frame, with the notification that completed it, from the subscribed
        characteristics that have a reassembler; undecodable bytes are complained about."""
        while (value := await link.receive(self._idle_timeout_s)) is not None:
            reassembler = reassemblers.get(value.uuid)
            if reassembler is None:
                continue
            result = reassembler.feed(value.data)
            _complain_all(self._complain, value.uuid, result)
            for frame in result.frames:
                yield frame, value


# --- Creative/Viatom PC-60F family -------------------------------------------------------------


def viatom_battery_percent(level: int) -> int:
    """The unit's 0-3 battery level as the per cent a battery event carries (3 = 100 %)."""
    return round(level * 100 / viatom.BATTERY_LEVELS)


class ViatomOximeterSession(_ClipSession):
    """A PC-60F/POD unit: subscribe to its UART (or FFB2), reassemble frames, stream its SpO2 frames."""

    async def run(self, link: GattLink) -> None:
        data = next((c for c in viatom.DATA_CHARACTERISTICS if link.offers(c)), None)
        if data is None:
            raise DeviceUnavailableError(
                f"{self.tag.device_id}: neither Nordic UART TX nor FFB2; is it a PC-60F-family oximeter?"
            )
        await link.subscribe(data)
        stream = self._stream()
        try:
            async for frame, value in self._frames(link, {data.uuid: FrameReassembler(viatom.FRAME_FORMAT)}):
                await self._frame(frame, value.received, stream, data.uuid)
        finally:
            await stream.close()

    async def _frame(self, frame: bytes, received: HubTime, stream: SpO2Stream, characteristic: str) -> None:
        try:
            message = viatom.decode_frame(frame)
        except viatom.ViatomCodecError as exc:
            self._complain(characteristic, exc)
            return
        match message:
            case viatom.ViatomSpO2():
                await stream.add(message, received)
                await stream.battery(viatom_battery_percent(message.battery_level), received)
            case viatom.ViatomBattery():
                await stream.battery(viatom_battery_percent(message.level), received)
            case viatom.ViatomOther(token=token, function=function) if (token, function) not in _VIATOM_KNOWN_UNUSED:
                # Its length, not its bytes: they may be measurements, which logs never carry.
                self._notes(f"frame {token:02x}{function:02x}", "PC-60F frame type not in the public facts "
                            "token=%#04x function=%#04x payload_bytes=%d", token, function, len(message.payload),
                            level=logging.INFO)
            case _:
                pass  # pleth samples, working status, device information: nothing the hub uses


_VIATOM_KNOWN_UNUSED = frozenset({(viatom.TOKEN_OXIMETER, 0x21), (viatom.TOKEN_EQUIPMENT, 0x01),
                                  (viatom.TOKEN_EQUIPMENT, 0x02)})
"""Working status, device information and serial number: documented, of no use to the hub."""


# --- Wellue O2Ring ------------------------------------------------------------------------------


class _Ring:
    """One request in flight to an O2Ring, and its answer reassembled from the notifications."""

    def __init__(self, link: GattLink, complain: CodecComplaints) -> None:
        self._link = link
        self._complain = complain
        self._with_response = link.offers(o2ring.O2RING_WRITE, "write")

    async def ask(self, request: bytes, timeout_s: float) -> tuple[o2ring.O2RingAnswer, HubTime] | None:
        """Send ``request``; its answer and when it arrived, or None (no answer in time, or the link went)."""
        link = self._link
        # An answer that came after its request gave up must not pass for this one's.
        while await link.receive(0) is not None:
            pass
        for chunk in o2ring.write_chunks(request):
            await link.write(o2ring.O2RING_WRITE, chunk, response=self._with_response)
        reassembler = FrameReassembler(o2ring.ANSWER_FORMAT)
        deadline = link.clock.now().monotonic + timeout_s
        while (remaining := deadline - link.clock.now().monotonic) > 0:
            value = await link.receive(remaining)
            if value is None:
                return None
            if value.uuid != o2ring.O2RING_NOTIFY.uuid:
                continue
            result = reassembler.feed(value.data)
            _complain_all(self._complain, value.uuid, result)
            for frame in result.frames:
                try:
                    return o2ring.decode_answer(frame), value.received
                except o2ring.O2RingCodecError as exc:
                    self._complain(value.uuid, exc)
        return None


class O2RingSession(_OximeterSession):
    """An O2Ring worn overnight: set its clock, then poll its live values and stream them.

    Persistent: a ring on a sleeper's finger fades in and out of range, and each drop is
    reconnected within a second (the manager's LOST backoff) rather than after a measuring
    device's pause.
    """

    style = ConnectionStyle.PERSISTENT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        home_tz: tzinfo,
        *,
        poll_interval_s: float = 1.0,
        unworn_poll_interval_s: float = 10.0,
        unworn_after_s: float = 60.0,
        answer_timeout_s: float = 3.0,
        stall_timeout_s: float = 15.0,
        spo2_interval_s: float = SPO2_INTERVAL_S,
        use_start_notify: bool = True,
    ) -> None:
        super().__init__(tag, sinks, spo2_interval_s=spo2_interval_s, use_start_notify=use_start_notify)
        self._home_tz = home_tz
        self._poll_interval_s = poll_interval_s
        # A ring lying on the night table stays connected: asked ten times less often, it spends its
        # battery on the night, and a finger put back in is still seen within seconds.
        self._unworn_poll_interval_s = unworn_poll_interval_s
        self._unworn_after_s = unworn_after_s
        self._answer_timeout_s = answer_timeout_s
        self._stall_timeout_s = stall_timeout_s

    async def run(self, link: GattLink) -> None:
        require(link, o2ring.O2RING_NOTIFY)
        require(link, o2ring.O2RING_WRITE)
        await self._sinks.on_event(self.tag.event(DeviceEventKind.CONNECTED, link.clock.now()))
        stream = self._stream()
        try:
            await link.subscribe(o2ring.O2RING_NOTIFY)
            ring = _Ring(link, self._complain)
            await self._set_clock(link, ring)
            await self._poll(link, ring, stream)
        finally:
            await stream.close()
            await self._sinks.on_event(self.tag.event(DeviceEventKind.LOST, link.clock.now()))

    async def _set_clock(self, link: GattLink, ring: _Ring) -> None:
        """Set the ring's clock (its overnight files are stamped by it) when it is off; needs a synced hub."""
        if not link.clock.now().synced:
            log.info("O2Ring clock left alone device=%s: the hub clock is not synchronised", self.tag.device_id)
            return
        asked = await ring.ask(o2ring.encode_request(o2ring.Command.INFO), self._answer_timeout_s)
        device_time = None
        if asked is not None and asked[0].status == o2ring.STATUS_OK:
            try:
                device_time = o2ring.decode_info(asked[0].payload).device_time
            except o2ring.O2RingCodecError as exc:
                self._complain(o2ring.O2RING_NOTIFY.uuid, exc)
        if asked is not None and device_time is not None:
            shown = BleDateTime(device_time.year, device_time.month, device_time.day, device_time.hour,
                                device_time.minute, device_time.second)
            if not read_device_clock(shown, asked[1], self._home_tz).needs_setting:
                return
        else:
            self._notes("info", "O2Ring gave no CurTIME in its information; setting its clock regardless")
        local = home_local_time(link.clock.now(), self._home_tz)
        answered = await ring.ask(o2ring.encode_set_time(local), self._answer_timeout_s)
        if answered is None or answered[0].status != o2ring.STATUS_OK:
            self._notes("settime", "O2Ring did not take SetTIME status=%s",
                        None if answered is None else answered[0].status)
            return
        log.info("device clock set device=%s was=%s", self.tag.device_id, device_time)

    async def _poll(self, link: GattLink, ring: _Ring, stream: SpO2Stream) -> None:
        request = o2ring.encode_request(o2ring.Command.READ_LIVE)
        last_answer = last_finger = link.clock.now().monotonic
        while link.connected:
            started = link.clock.now().monotonic
            worn = started - last_finger < self._unworn_after_s
            interval = self._poll_interval_s if worn else self._unworn_poll_interval_s
            answered = await ring.ask(request, self._answer_timeout_s)
            if answered is not None:
                last_answer = link.clock.now().monotonic
                if await self._live(*answered, stream):
                    last_finger = last_answer
            elif not link.connected:
                return
            elif link.clock.now().monotonic - last_answer >= max(self._stall_timeout_s, 2.5 * interval):
                log.warning("O2Ring stopped answering device=%s for_s=%.0f", self.tag.device_id,
                            link.clock.now().monotonic - last_answer)
                return
            await asyncio.sleep(max(0.0, started + interval - link.clock.now().monotonic))

    async def _live(self, answer: o2ring.O2RingAnswer, received: HubTime, stream: SpO2Stream) -> bool:
        """Stream one answer to 0x17; True when a finger is in the ring."""
        if answer.status != o2ring.STATUS_OK:
            self._notes("live", "O2Ring refused the live-values command 0x17 status=%d (newer firmware may want "
                        "0x1B)", answer.status)
            return False
        try:
            live = o2ring.decode_live(answer.payload)
        except o2ring.O2RingCodecError as exc:
            self._complain(o2ring.O2RING_NOTIFY.uuid, exc)
            return False
        await stream.add(live, received)
        if live.battery_percent is not None:
            await stream.battery(live.battery_percent, received)
        return live.finger_present


# --- ChoiceMMed iChoice -------------------------------------------------------------------------


class IChoiceOximeterSession(_ClipSession):
    """An iChoice unit: find its address-derived service, enable cd01-cd04, write the enable command."""

    async def run(self, link: GattLink) -> None:
        self._check_service(link)
        needed = (*ichoice.NOTIFY_CHARACTERISTICS[:3], ichoice.COMMAND)
        for characteristic in needed:
            require(link, characteristic)
        for characteristic in ichoice.NOTIFY_CHARACTERISTICS:
            if link.offers(characteristic):
                await link.subscribe(characteristic)
        await link.write(ichoice.COMMAND, ichoice.ENABLE, response=link.offers(ichoice.COMMAND, "write"))
        reassemblers = {c.uuid: FrameReassembler(ichoice.FRAME_FORMAT) for c in ichoice.NOTIFY_CHARACTERISTICS}
        stream = self._stream()
        acknowledged = False
        try:
            async for frame, value in self._frames(link, reassemblers):
                acknowledged |= await self._frame(frame, value, stream)
        finally:
            if not acknowledged:
                self._notes("ack", "iChoice never acknowledged the enable command")
            await stream.close()

    def _check_service(self, link: GattLink) -> None:
        expected = ichoice.service_uuid(self.tag.address)
        services = {service.uuid.lower() for service in link.client.services}
        if expected in services:
            return
        found = sorted(s for s in services if s.startswith(ichoice.SERVICE_PREFIX_OXIMETER))
        if found:
            self._notes("service", "iChoice service is not the one its address gives expected=%s found=%s",
                        expected, ",".join(found))
            return
        if any(s.startswith(ichoice.SERVICE_PREFIX_BLOOD_PRESSURE) for s in services):
            raise DeviceUnavailableError(f"{self.tag.device_id}: an iChoice blood-pressure monitor, not an oximeter")
        raise DeviceUnavailableError(f"{self.tag.device_id}: no iChoice oximeter service ({expected})")

    async def _frame(self, frame: bytes, value: Notification, stream: SpO2Stream) -> bool:
        """Act on one frame; True when it acknowledged the enable command."""
        try:
            message = ichoice.decode_frame(frame)
        except CodecError as exc:
            self._complain(value.uuid, exc)
            return False
        match message:
            case ichoice.IChoiceAck():
                return True
            case ichoice.IChoiceOximetry():
                self._notes("carrier", "iChoice oximeter frames arrive on characteristic=%s", value.uuid,
                            level=logging.INFO)
                await stream.add(message, value.received)
            case ichoice.IChoiceOther():
                self._notes(f"frame {len(message.payload)}", "iChoice frame not in the public facts "
                            "first_byte=%#04x payload_bytes=%d", message.payload[0], len(message.payload),
                            level=logging.INFO)
        return False
