"""Glucose meter session: download new stored records over RACP, resuming from a cursor.

The cursor (the last committed sequence number) lives in the outbox, read and written through
injected callables, and is advanced only after the sink returned, i.e. after the records are
committed. Records are committed in chunks during the download, so a meter that drops the link
mid-transfer (Accu-Chek does when a strip goes in) keeps what was committed; the next visit asks
for "records >= last committed + 1" and gets the rest, nothing twice and nothing skipped.

:meth:`GlucoseMeterSession.resync` (the fleet's ``resync``) makes the next download ask for every
stored record instead: the way to recover records the cursor has stepped over, e.g. after a meter's
sequence numbers started again from 1 (battery out, factory reset) while the cursor stayed high.
The records the gateway already holds come again and are dropped there (their source keys).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta, tzinfo

from drivers.ble.gls import (
    decode_glucose_context,
    decode_glucose_measurement,
    glucose_reading,
)
from drivers.ble.gls_transfer import (
    Cursor,
    Direction,
    GlucoseRecord,
    GlucoseTransfer,
    RecordMark,
    cursor_name,
    parse_cursor,
)
from drivers.ble.link import GattLink, require
from drivers.ble.policy import ConnectionStyle
from drivers.ble.racp import (
    RacpNumberOfRecords,
    RacpRequest,
    RacpResponse,
    RacpResponseCode,
    decode_racp_response,
    report_all_records,
    report_first_record,
    report_records_from,
    report_records_up_to,
)
from drivers.ble.sessions import CodecComplaints, CursorGet, CursorSet, DeviceTag, Sinks, on_connected
from drivers.ble.uuids import GLUCOSE_MEASUREMENT, GLUCOSE_MEASUREMENT_CONTEXT, RECORD_ACCESS_CONTROL_POINT
from drivers.errors import CodecError, DeviceTimeoutError
from drivers.model import DeviceEvent, DeviceEventKind, HubTime, Reading, ReadingFlag

log = logging.getLogger(__name__)

# Meters that do not implement the ">=" filter answer one of these; then all records are asked
# for and the ones at or below the cursor are dropped on the hub.
_FILTER_REFUSED = frozenset(
    {
        RacpResponseCode.INVALID_OPERATOR,
        RacpResponseCode.OPERATOR_NOT_SUPPORTED,
        RacpResponseCode.INVALID_OPERAND,
        RacpResponseCode.OPERAND_NOT_SUPPORTED,
    }
)
MEMORY_RESET = "memory_reset"
"""The device error a meter whose numbering started again is reported as."""


def _memory_was_reset(cursor: Cursor, oldest: RecordMark) -> bool:
    """Whether the meter's oldest record says its memory was wiped since the hub last read it.

    An upward-counting meter's oldest record never has a higher number than the newest the hub read
    (unless records were lost to a full memory). One numbered at or below it that is *newer* than it
    (a base time after the cursor's), or that is not the oldest record the hub saw last time (same or
    lower number, another time: the clock was reset with the memory), is a record of a new numbering.
    """
    if oldest.sequence > cursor.newest.sequence:
        return False
    if oldest.time_known and cursor.newest.time_known and oldest.base_time > cursor.newest.base_time:
        return True
    before = cursor.oldest
    return before is not None and oldest.sequence <= before.sequence and oldest != before


# HI / LO on the meter's display: not a number to upload, but nobody may miss it.
_OUT_OF_RANGE_CODES: dict[ReadingFlag, str] = {ReadingFlag.ABOVE_RANGE: "HI", ReadingFlag.BELOW_RANGE: "LO"}


class GlucoseMeterSession:
    style = ConnectionStyle.ON_ADVERT

    def __init__(
        self,
        tag: DeviceTag,
        sinks: Sinks,
        home_tz: tzinfo,
        cursor_get: CursorGet,
        cursor_set: CursorSet,
        *,
        commit_every: int = 10,
        racp_timeout_s: float = 15.0,
        use_start_notify: bool = True,
    ) -> None:
        if commit_every < 1:
            raise ValueError(f"commit_every must be at least 1, got {commit_every}")
        self.tag = tag
        self.use_start_notify = use_start_notify
        self._sinks = sinks
        self._home_tz = home_tz
        self._cursor_get = cursor_get
        self._cursor_set = cursor_set
        self._commit_every = commit_every
        self._racp_timeout_s = racp_timeout_s
        self._cursor = cursor_name(tag.device_id)
        self._complain = CodecComplaints(tag.device_id)
        self._resync = False
        self._download_cursor: Cursor | None = None
        self._oldest: RecordMark | None = None

    @property
    def resync_when(self) -> str:
        return ("at its next connection, when the meter next advertises (after a measurement, or when it is "
                "switched on): it is asked for every stored record, and the ones the hub holds are dropped")

    async def resync(self) -> None:
        """Ask for every stored record at the next connection, not only those after the cursor.

        The flag covers a download running now (its commits would overwrite the cursor); clearing
        the cursor covers a restart before the meter comes back.
        """
        self._resync = True
        await self._cursor_set(self._cursor, "")
        log.info("resync requested device=%s: all records at the next connection", self.tag.device_id)

    async def run(self, link: GattLink) -> None:
        offset = await on_connected(link, self.tag, self._sinks, self._home_tz)
        require(link, GLUCOSE_MEASUREMENT)
        require(link, RECORD_ACCESS_CONTROL_POINT)
        # Meters refuse RACP unless measurement, context and RACP are all subscribed first.
        await link.subscribe(GLUCOSE_MEASUREMENT)
        if link.offers(GLUCOSE_MEASUREMENT_CONTEXT):
            await link.subscribe(GLUCOSE_MEASUREMENT_CONTEXT)
        await link.subscribe(RECORD_ACCESS_CONTROL_POINT)
        cursor = None if self._resync else parse_cursor(await self._cursor_get(self._cursor))
        # From here the cursor carries a resync's progress: a meter that hangs up halfway goes on
        # from what was committed next time, instead of starting over at every visit.
        self._resync = False
        oldest: RecordMark | None = None
        if cursor is not None and cursor.direction is Direction.UP:
            oldest = await self._first_record(link)
            if oldest is not None and _memory_was_reset(cursor, oldest):
                await self._report_reset(link, cursor, oldest)
                cursor = None
        transfer = GlucoseTransfer(after=cursor)
        self._download_cursor = cursor
        self._oldest = oldest if oldest is not None else (cursor.oldest if cursor is not None else None)
        response = await self._download(link, self._request(cursor), transfer, offset)
        if response.code in _FILTER_REFUSED and cursor is not None:
            log.info(
                "meter refused the RACP filter device=%s code=%s; asking for all records",
                self.tag.device_id,
                response.code.name,
            )
            response = await self._download(link, report_all_records(), transfer, offset)
        if not response.succeeded:
            raise DeviceTimeoutError(f"{self.tag.device_id}: RACP download failed with {response.code.name}")
        if transfer.learned and transfer.direction is Direction.DOWN:
            log.info("meter counts its records backwards device=%s: new ones are asked for below the cursor",
                     self.tag.device_id)
        if transfer.ignored:
            log.info("records at or before the cursor ignored device=%s count=%d", self.tag.device_id, transfer.ignored)

    @staticmethod
    def _request(cursor: Cursor | None) -> RacpRequest:
        if cursor is None or cursor.direction is None:
            return report_all_records()
        edge = cursor.newest.sequence
        if cursor.direction is Direction.DOWN:
            return report_records_up_to(edge - 1) if edge > 0 else report_all_records()
        return report_records_from(edge + 1) if edge < 0xFFFF else report_all_records()

    async def _first_record(self, link: GattLink) -> RecordMark | None:
        """The meter's oldest record (RACP "first record"), or None when it does not answer that."""
        await link.write(RECORD_ACCESS_CONTROL_POINT, report_first_record().encode(), response=True)
        first: RecordMark | None = None
        while True:
            value = await link.receive(self._racp_timeout_s)
            if value is None:
                raise DeviceTimeoutError(f"{self.tag.device_id}: the meter went silent asking for its first record")
            try:
                if value.uuid == GLUCOSE_MEASUREMENT.uuid and first is None:
                    first = RecordMark.of(decode_glucose_measurement(value.data))
                elif value.uuid == RECORD_ACCESS_CONTROL_POINT.uuid:
                    response = decode_racp_response(value.data)
                    if isinstance(response, RacpResponse):
                        if not response.succeeded:
                            log.info("meter does not report its first record device=%s code=%s",
                                     self.tag.device_id, response.code.name)
                        return first if response.code is RacpResponseCode.SUCCESS else None
            except CodecError as exc:
                self._complain(value.uuid, exc)

    async def _report_reset(self, link: GattLink, cursor: Cursor, oldest: RecordMark) -> None:
        detail = (f"the meter's records start again at #{oldest.sequence} ({oldest.base_time or 'no time'}) while "
                  f"the hub had read up to #{cursor.newest.sequence} ({cursor.newest.base_time or 'no time'}): its "
                  "memory was reset (battery out, or a factory reset); every record is read again")
        log.warning("glucose meter memory reset device=%s: %s", self.tag.device_id, detail)
        await self._sinks.on_event(DeviceEvent(
            device_id=self.tag.device_id, resident_id=self.tag.resident_id, kind=DeviceEventKind.DEVICE_ERROR,
            received=link.clock.now(), value=MEMORY_RESET, detail=detail))

    async def _download(
        self, link: GattLink, request: RacpRequest, transfer: GlucoseTransfer, offset: timedelta | None
    ) -> RacpResponse:
        await link.write(RECORD_ACCESS_CONTROL_POINT, request.encode(), response=True)
        response: RacpResponse | None = None
        try:
            while response is None:
                value = await link.receive(self._racp_timeout_s)
                if value is None:
                    raise DeviceTimeoutError(
                        f"{self.tag.device_id}: the meter {'hung up' if not link.connected else 'went silent'} "
                        "before ending the RACP download; the rest comes at its next visit"
                    )
                response = self._take(value.uuid, value.data, value.received, transfer)
                if transfer.complete_count() >= self._commit_every:
                    await self._commit(transfer.take_complete(), offset, transfer)
        finally:
            # After the meter's final response no announced context will come any more.
            await self._commit(transfer.take_all() if response is not None else transfer.take_complete(), offset,
                               transfer)
        return response

    def _take(self, uuid: str, data: bytes, received: HubTime, transfer: GlucoseTransfer) -> RacpResponse | None:
        try:
            if uuid == GLUCOSE_MEASUREMENT.uuid:
                transfer.add_measurement(decode_glucose_measurement(data), received)
            elif uuid == GLUCOSE_MEASUREMENT_CONTEXT.uuid:
                transfer.add_context(decode_glucose_context(data))
            elif uuid == RECORD_ACCESS_CONTROL_POINT.uuid:
                response = decode_racp_response(data)
                return None if isinstance(response, RacpNumberOfRecords) else response
        except CodecError as exc:
            self._complain(uuid, exc)
        return None

    async def _commit(
        self, records: Sequence[GlucoseRecord], offset: timedelta | None, transfer: GlucoseTransfer
    ) -> None:
        if not records:
            return
        readings: list[Reading] = []
        events: list[DeviceEvent] = []
        for record in records:
            reading = glucose_reading(
                record.measurement,
                record.context,
                device=self.tag.info,
                resident_id=self.tag.resident_id,
                received=record.received,
                clock_offset=offset,
            )
            if reading is not None:
                readings.append(reading)
            for flag, code in _OUT_OF_RANGE_CODES.items():
                if reading is None and flag in record.measurement.flags:
                    events.append(self.tag.event(DeviceEventKind.DEVICE_ERROR, record.received, code))
        if readings:
            await self._sinks.on_readings(readings)
        for event in events:
            await self._sinks.on_event(event)
        newest = RecordMark.of(transfer.newest(records).measurement)
        before = self._download_cursor
        if before is not None and not Cursor(before.newest, transfer.direction).is_newer(newest.sequence):
            newest = before.newest  # all were re-sends of what the hub holds
        if self._oldest is None and before is None:
            self._oldest = RecordMark.of(records[0].measurement)  # all records, oldest first
        cursor = Cursor(newest, transfer.direction, self._oldest)
        # Only now, with the records committed, may the meter's memory be considered read.
        await self._cursor_set(self._cursor, cursor.encode())
        self._download_cursor = cursor
        log.info("glucose records committed device=%s count=%d last_sequence=%d",
                 self.tag.device_id, len(records), newest.sequence)
