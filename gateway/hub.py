"""The one fan-out point: every record from every driver comes through here.

A batch of readings is first committed to the outbox (that commit is the
moment of acceptance); only then is it published locally, shown on the status
board and evaluated by the detector. Readings the outbox already had (a meter's
memory downloaded again) are neither republished nor re-evaluated.

When the outbox cannot commit (its disk failed), the readings are still published
and evaluated -- a hypoglycaemia must reach the family whatever the SD card does --
and the outbox holds them in memory; the driver is told they are not accepted
(``NotAcceptedError``), so it keeps them on the device and offers them again.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, tzinfo
from typing import Protocol

from drivers.errors import NotAcceptedError
from drivers.model import DeviceEvent, DeviceEventKind, HubTime, MotionBlock, Reading
from gateway.detect.silence import SilenceWatch
from gateway.detect.vital_state import VitalsMonitor
from gateway.errors import NotDurableError, StoreError
from gateway.record import EvidenceValue, RecordType
from gateway.respond.falls import FallResponder
from gateway.respond.service import AlertService, Publisher
from gateway.respond.silence import SilenceAlerts
from gateway.respond.vitals import VitalAlerts
from gateway.status import DeviceStatusBoard
from gateway.store.api import Accepted, HubStamp, NewRecord, Priority
from gateway.store.ids import RecordIdFactory, derived_record_id
from gateway.topics import reading_topic
from gateway.wire import local_reading_payload, platform_event, platform_reading

log = logging.getLogger(__name__)


STATUS_EVENTS = frozenset({DeviceEventKind.BATTERY, DeviceEventKind.LOST, DeviceEventKind.CONNECTED,
                           DeviceEventKind.DEVICE_ERROR})
"""Device events that become ``device_status`` records at the platform (battery, lost/found)."""


SEEN_EVERY_S = 1.0
STREAM_COMMIT_S = 120.0
"""Summaries of a continuous stream (an overnight oximeter, one every 10 s) are committed together
every two minutes, at once when one of them raises an alert, and when the stream ends. Each commit
costs the SD card some 45 KiB (bench/sdcard.py: the WAL frames of the table and its indexes, the
wal-index): committed one by one, a night of SpO2 alone would write 100 MiB; once a minute, 25 MiB;
every two minutes, about 12 MiB, inside the 20 MiB a day the card is budgeted. They are evaluated
the moment they arrive; a crash loses at most the last two minutes of the trace (the oximeter keeps
no memory of it), never a spot reading nor an alert."""
EVALUATED_MEMORY = 4096
"""Record ids already evaluated, remembered so a reading offered again while the disk fails (the
outbox cannot say it has it) raises no second alert; a few days of a household's readings."""


class OutboxWriter(Protocol):
    async def accept(self, records: Sequence[NewRecord]) -> list[Accepted]: ...


def reading_to_record(reading: Reading, tz: tzinfo, gateway_id: str, stamp: HubStamp | None = None) -> NewRecord:
    """The outbox record of a reading; one from a device's memory gets an id derived from its identity there.

    ``stamp``: the hub clock's stamp of the reading's receipt when that clock was unsynchronised
    (:meth:`gateway.clock.SystemClock.stamp`), so a later clock step corrects its times."""
    dedupe = f"{reading.device.id}|{reading.source_key}" if reading.source_key else None
    return NewRecord(type=reading.type.value, priority=Priority.READING,
                     payload_json=platform_reading(reading, tz).to_json(),
                     created_at=reading.received.wall, dedupe_key=dedupe,
                     record_id=derived_record_id(gateway_id, dedupe) if dedupe else None, stamp=stamp)


class Hub:
    def __init__(self, *, gateway_id: str, outbox: OutboxWriter, alerts: AlertService, publisher: Publisher,
                 board: DeviceStatusBoard, vitals: VitalsMonitor, silence: SilenceWatch,
                 tz: tzinfo, now: Callable[[], datetime], now_monotonic: Callable[[], float],
                 max_reading_age_s: float, falls: FallResponder,
                 on_accepted: Callable[[], None] = lambda: None,
                 stamp: Callable[[HubTime], HubStamp | None] = lambda _received: None) -> None:
        self._gateway_id = gateway_id
        self._stamp = stamp
        self._outbox = outbox
        self._alerts = alerts
        self._publisher = publisher
        self._board = board
        self._vitals = vitals
        self._silence = silence
        self._silence_alerts = SilenceAlerts(alerts)
        self._vital_alerts = VitalAlerts(alerts)
        self._now_mono = now_monotonic
        self._motion_seen: dict[str, float] = {}
        self._tz = tz
        self._now = now
        self._max_age_s = max_reading_age_s
        self._on_accepted = on_accepted
        self._falls = falls
        self._evaluated: OrderedDict[str, None] = OrderedDict()
        self._ids = RecordIdFactory()
        self._stream: list[NewRecord] = []
        self._stream_since: float | None = None

    def _record_of(self, reading: Reading) -> NewRecord:
        return reading_to_record(reading, self._tz, self._gateway_id, self._stamp(reading.received))

    def reconfigure(self, *, max_reading_age_s: float, silence: SilenceWatch | None, tz: tzinfo) -> None:
        """New settings from a reloaded configuration; ``silence`` when the watched devices changed."""
        self._max_age_s = max_reading_age_s
        self._tz = tz
        if silence is not None:
            self._silence = silence

    async def on_readings(self, readings: Sequence[Reading]) -> None:
        """Accept readings durably, then publish and evaluate the new ones.

        Returns only after the commit, so a driver may treat the readings as
        accepted (advance a RACP cursor, consume a frame) once this returns.
        Raises ``NotAcceptedError`` when the commit failed (after publishing and evaluating).
        """
        if not readings:
            return
        if all(reading.continuous for reading in readings):
            await self._on_stream(readings)
            return
        records = [self._record_of(r) for r in readings]
        failure: NotDurableError | None = None
        try:
            accepted = await self._outbox.accept(records)
        except NotDurableError as exc:
            failure = exc
            accepted = [Accepted(record_id, new=True) for record_id in exc.record_ids]
        else:
            self._on_accepted()
        fresh = [(r, a) for r, a in zip(readings, accepted, strict=True)
                 if a.new and a.record_id not in self._evaluated]
        log.info("readings accepted device=%s new=%d already_had=%d durable=%s", readings[0].device.id,
                 len(fresh), len(readings) - len(fresh), failure is None)
        for device_id in {r.device.id for r in readings}:
            self._board.readings(device_id, self._now(), sum(1 for r, _ in fresh if r.device.id == device_id))
        for reading, acc in fresh:
            self._remember_evaluated(acc.record_id)
            self._publisher.publish(reading_topic(reading.resident_id, reading.type.value),
                                    local_reading_payload(reading, self._tz), retain=True)
            await self._evaluate(reading, acc.record_id)
            await self._silence_alerts.apply(self._silence.note_reading(reading.device.id, self._now_mono()))
        if failure is not None:
            raise NotAcceptedError(f"the gateway could not store {len(readings)} reading(s) on its disk "
                                   f"({failure}); keep them on the device") from failure

    async def _on_stream(self, readings: Sequence[Reading]) -> None:
        """Stream summaries: evaluated now, committed with the others of the last STREAM_COMMIT_S."""
        records = [replace(record, record_id=record.record_id or self._ids.new_id())
                   for record in (self._record_of(r) for r in readings)]
        if self._stream_since is None:
            self._stream_since = self._now_mono()
        self._stream.extend(records)
        raised = 0
        for reading, record in zip(readings, records, strict=True):
            assert record.record_id is not None
            self._remember_evaluated(record.record_id)
            self._publisher.publish(reading_topic(reading.resident_id, reading.type.value),
                                    local_reading_payload(reading, self._tz), retain=True)
            raised += await self._evaluate(reading, record.record_id)
            await self._silence_alerts.apply(self._silence.note_reading(reading.device.id, self._now_mono()))
        for device_id in {r.device.id for r in readings}:
            self._board.readings(device_id, self._now(), sum(1 for r in readings if r.device.id == device_id))
        ended = any(reading.stream_end for reading in readings)
        if raised or ended or self._now_mono() - self._stream_since >= STREAM_COMMIT_S:
            await self.flush_streams()

    async def flush_streams(self, *, due_only: bool = False) -> None:
        """Commit the stream summaries gathered (all of them, or only once STREAM_COMMIT_S has gone by)."""
        if not self._stream or self._stream_since is None:
            return
        if due_only and self._now_mono() - self._stream_since < STREAM_COMMIT_S:
            return
        records, self._stream, self._stream_since = self._stream, [], None
        try:
            await self._outbox.accept(records)
        except StoreError:
            return  # held in memory by the outbox, written when its disk takes them; no device to tell
        self._on_accepted()

    def _remember_evaluated(self, record_id: str) -> None:
        self._evaluated[record_id] = None
        while len(self._evaluated) > EVALUATED_MEMORY:
            self._evaluated.popitem(last=False)

    async def on_motion(self, block: MotionBlock) -> None:
        """Raw motion is not uploaded: it feeds the fall detector (which keeps a snippet as evidence)."""
        now = self._now_mono()
        # A wearable notifies 25-200 times a second; "last seen" needs no more than one update a second.
        if now - self._motion_seen.get(block.device_id, -SEEN_EVERY_S) >= SEEN_EVERY_S:
            self._motion_seen[block.device_id] = now
            self._board.seen(block.device_id, block.first_sample.wall)
            await self._silence_alerts.apply(self._silence.note_seen(block.device_id, now))
        await self._falls.on_motion(block)

    async def on_event(self, event: DeviceEvent) -> None:
        self._board.seen(event.device_id, event.received.wall)
        await self._silence_alerts.apply(self._silence.note_seen(event.device_id, self._now_mono()))
        if event.kind is DeviceEventKind.BATTERY and isinstance(event.value, int):
            self._board.battery(event.device_id, event.value)
        if event.kind in (DeviceEventKind.CONNECTED, DeviceEventKind.LOST):
            self._board.connected(event.device_id, event.kind is DeviceEventKind.CONNECTED)
        if event.kind in STATUS_EVENTS:
            await self._store_status(event)
        await self._falls.on_event(event)

    async def _store_status(self, event: DeviceEvent) -> None:
        values: dict[str, EvidenceValue] = {"event": event.kind.value}
        if event.value is not None:
            values["value"] = event.value
        record = platform_event(RecordType.DEVICE_STATUS, resident_id=event.resident_id, device_id=event.device_id,
                            at=event.received.wall, synced=event.received.synced, values=values, tz=self._tz)
        try:
            await self._outbox.accept([NewRecord("device_status", Priority.STATUS, record.to_json(),
                                                 event.received.wall, stamp=self._stamp(event.received))])
        except StoreError:
            return  # held in memory by the outbox and written when its disk takes it; nothing to acknowledge
        self._on_accepted()

    async def _evaluate(self, reading: Reading, record_id: str) -> int:
        """Run the vital rules on a reading; the number of alerts it raised."""
        age_s = (self._now() - reading.measured_at).total_seconds()
        if age_s > self._max_age_s:
            # Back-filled from device memory: uploaded for the doctor, but alarming the family about
            # a low glucose from last Tuesday helps nobody.
            log.debug("reading too old to alarm on record_id=%s age_s=%.0f", record_id, age_s)
            return 0
        findings = self._vitals.observe(reading, record_id)
        await self._vital_alerts.apply(reading.resident_id, findings, reading, tz=self._tz)
        return len(findings)

    async def fall_confirmed(self, resident_id: str, at: datetime) -> None:
        """A confirmed fall can make a recent hypertensive crisis an emergency (and vice versa)."""
        await self._vital_alerts.apply(resident_id, self._vitals.note_fall(resident_id, at), None, tz=self._tz)

    async def check_silence(self) -> None:
        await self._silence_alerts.apply(self._silence.check(self._now_mono()))
