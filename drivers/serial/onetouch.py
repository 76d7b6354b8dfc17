"""OneTouch Ultra 2 session: finds the meter on its cable, downloads it, hands Readings to a sink.

Lifecycle, as a small supervisor loop:

* the cable (USB-serial adapter) may be missing: reopen with capped backoff, forever, so an
  unplug/replug never needs a daemon restart;
* with the port open, poll ``DM@`` every ``poll_interval_s`` to see whether a meter is on the cable;
* download (``DM@``, ``DMF``, ``DMP``) when a meter appears (or a different one), and again every
  ``redownload_interval_s`` while it stays connected: a meter left on its cable can still be used
  (the simulator does this), and a full dump of 500 results takes about 30 s at 9600 baud, so
  re-reading it every poll would keep the line busy for nothing;
* a download cut short (the meter stopped answering, or lines failed their checksum) still hands
  over every result it parsed, since those are real, and is retried at the next poll, up to
  ``MAX_QUICK_RETRIES`` times in a row before falling back to the re-download interval.

The sink returns only once readings are durably committed; keys handed over successfully are
remembered for the life of the process so a meter left plugged in is not re-sent each download (the
outbox dedupes by source key anyway). A sink that could not store them (``NotAcceptedError``: the
gateway's disk failed) leaves them unremembered: the download counts as incomplete and the meter's
memory is offered again at the next try.

:meth:`OneTouchSession.resync` (the fleet's ``resync``) brings the next download forward to the
next poll and offers the meter's whole memory again, forgetting what was handed over: the gateway's
outbox keeps what it already has once (source keys) and takes what it lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import TypeVar

from drivers.clock import Clock
from drivers.errors import CodecError, DeviceTimeoutError, DeviceUnavailableError, NotAcceptedError
from drivers.model import DeviceEvent, DeviceEventKind, Reading
from drivers.serial import onetouch_codec as codec
from drivers.serial.port import SerialPort
from drivers.serial.supervisor import PortHooks, keep_port_open

log = logging.getLogger(__name__)

_T = TypeVar("_T")

Sink = Callable[[Sequence[Reading]], Awaitable[None]]
EventSink = Callable[[DeviceEvent], Awaitable[None]]

COMMAND_ATTEMPTS = 3
"""A one-line reply that fails its checksum is line noise: ask again, a few times."""
HEADER_SKIP_LINES = 3
"""Noise lines tolerated before a dump header before the dump is given up as unreadable."""
MAX_QUICK_RETRIES = 3
"""Incomplete downloads retried at the next poll; a record that never reads cleanly must not make
the session dump the whole meter every few seconds forever."""



@dataclass(frozen=True, slots=True)
class OneTouchStatus:
    """What the hub status page shows about this meter (no health values)."""

    port_open: bool = False
    meter_connected: bool = False
    meter_serial: str | None = None
    last_download: datetime | None = None
    """Hub wall time (UTC) of the last complete download."""
    last_error: str | None = None
    clock_offset_s: float | None = None
    """Hub local wall time minus meter clock at the last download."""
    readings_handed_over: int = 0


class OneTouchSession:
    def __init__(
        self,
        *,
        device_id: str,
        resident_id: str,
        port: str,
        clock: Clock,
        tz: tzinfo,
        sink: Sink,
        on_event: EventSink | None = None,
        poll_interval_s: float = 5.0,
        reply_timeout_s: float = 2.0,
        redownload_interval_s: float = 600.0,
    ) -> None:
        if poll_interval_s <= 0 or reply_timeout_s <= 0 or redownload_interval_s <= 0:
            raise ValueError("poll_interval_s, reply_timeout_s and redownload_interval_s must be positive")
        self._device_id = device_id
        self._resident_id = resident_id
        self._port_path = port
        self._clock = clock
        self._tz = tz
        self._sink = sink
        self._on_event = on_event
        self._poll_interval_s = poll_interval_s
        self._reply_timeout_s = reply_timeout_s
        self._redownload_interval_s = redownload_interval_s
        self._handed_over: set[str] = set()
        self._status = OneTouchStatus()
        self._resync = False

    @property
    def resync_when(self) -> str:
        if self._status.meter_connected:
            return f"at the next poll (within {self._poll_interval_s:g} s): the meter is on its cable"
        return (f"when the meter is next on its cable (polled every {self._poll_interval_s:g} s); "
                "it is not there now")

    async def resync(self) -> None:
        """Download the meter again at the next poll that finds it, offering every record once more."""
        self._resync = True
        log.info("resync requested device_id=%s: download at the next poll", self._device_id)

    @property
    def status(self) -> OneTouchStatus:
        return self._status

    def _update(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    # -- supervisor: the cable -------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the meter until cancelled."""
        first_failure = True

        async def unavailable(exc: DeviceUnavailableError) -> None:
            nonlocal first_failure
            if first_failure:
                self._update(port_open=False, meter_connected=False, last_error=str(exc))
            first_failure = False

        def opened() -> None:
            nonlocal first_failure
            first_failure = True
            self._update(port_open=True)

        async def lost(exc: DeviceUnavailableError) -> None:
            self._update(port_open=False, meter_connected=False, last_error=str(exc))

        await keep_port_open(self._port_path, None, self._serve, what="meter", device_id=self._device_id,
                             hooks=PortHooks(opened=opened, unavailable=unavailable, lost=lost))

    # -- the meter on the cable ------------------------------------------------------------------

    async def _serve(self, port: SerialPort) -> None:
        next_download = 0.0
        quick_retries = 0
        while True:
            serial = await self._probe(port)
            if serial is None:
                if self._status.meter_connected:
                    log.info("meter disconnected device_id=%s", self._device_id)
                    self._update(meter_connected=False)
                    await self._emit(DeviceEventKind.LOST, "the meter stopped answering on its cable")
                next_download = 0.0
            else:
                if not self._status.meter_connected or serial != self._status.meter_serial:
                    log.info("meter connected device_id=%s serial=%s", self._device_id, serial)
                    self._update(meter_connected=True, meter_serial=serial)
                    await self._emit(DeviceEventKind.CONNECTED, None)
                    next_download = 0.0
                if self._resync:
                    self._resync = False
                    self._handed_over.clear()
                    next_download = 0.0
                if time.monotonic() >= next_download:
                    complete = await self._download(port, serial)
                    if complete or quick_retries >= MAX_QUICK_RETRIES:
                        quick_retries = 0
                        next_download = time.monotonic() + self._redownload_interval_s
                    else:
                        quick_retries += 1
            await asyncio.sleep(self._poll_interval_s)

    async def _emit(self, kind: DeviceEventKind, detail: str | None) -> None:
        """Tell the gateway the meter came onto or left its cable (a meter is plugged in to be read)."""
        if self._on_event is not None:
            await self._on_event(DeviceEvent(device_id=self._device_id, resident_id=self._resident_id, kind=kind,
                                             received=self._clock.now(), detail=detail))

    async def _probe(self, port: SerialPort) -> str | None:
        """The meter's serial number, or None when no meter answers on the cable."""
        try:
            return await self._exchange(port, codec.CMD_SERIAL, codec.parse_serial)
        except DeviceTimeoutError:
            return None
        except CodecError as exc:
            log.warning("meter reply unreadable device_id=%s error=%s", self._device_id, type(exc).__name__)
            self._update(last_error=f"DM@ reply unreadable: {exc}")
            return None

    async def _exchange(self, port: SerialPort, command: str, parse: Callable[[str], _T]) -> _T:
        """Send a command, parse its one-line reply; ask again when the reply is line noise."""
        failure: CodecError | None = None
        for _ in range(COMMAND_ATTEMPTS):
            await port.discard_input()
            await port.write(codec.encode_command(command))
            line = await port.read_line(timeout_s=self._reply_timeout_s)
            try:
                return parse(codec.parse_line(line))
            except CodecError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _download(self, port: SerialPort, serial: str) -> bool:
        """Read clock and memory; hand over new readings. True when the dump was complete and clean."""
        try:
            meter_clock = await self._exchange(port, codec.CMD_READ_CLOCK, codec.parse_clock)
        except (DeviceTimeoutError, CodecError) as exc:
            log.warning("meter clock unreadable device_id=%s error=%s", self._device_id, type(exc).__name__)
            self._update(last_error=f"DMF clock read failed: {type(exc).__name__}")
            return False
        hub_now = self._clock.now()
        offset = codec.meter_clock_offset(meter_clock, hub_now.wall, self._tz)
        self._update(clock_offset_s=offset.total_seconds())

        parser = codec.DumpParser()
        readings: list[Reading] = []
        try:
            await self._read_dump(port, parser, serial, offset, readings)
        except (DeviceTimeoutError, CodecError) as exc:
            announced = parser.header.count if parser.header else "?"
            log.warning(
                "meter dump cut short device_id=%s lines=%d announced=%s error=%s",
                self._device_id,
                parser.lines_seen,
                announced,
                type(exc).__name__,
            )
            self._update(last_error=f"DMP dump cut short after {parser.lines_seen} of {announced} lines")
            await self._hand_over(readings)
            return False
        except DeviceUnavailableError:
            await self._hand_over(readings)
            raise
        if not await self._hand_over(readings):
            return False
        result = parser.result()
        for error in result.errors:
            log.warning(
                "meter dump line rejected device_id=%s line=%d kind=%s",
                self._device_id,
                error.line_number,
                error.kind,
            )
        if result.errors:
            self._update(last_error=f"DMP dump had {len(result.errors)} unreadable lines")
            return False
        log.info(
            "meter downloaded device_id=%s records=%d clock_offset_s=%d",
            self._device_id,
            len(result.records),
            offset.total_seconds(),
        )
        self._update(last_download=hub_now.wall, last_error=None)
        return True

    async def _read_dump(
        self,
        port: SerialPort,
        parser: codec.DumpParser,
        serial: str,
        offset: timedelta,
        readings: list[Reading],
    ) -> None:
        await port.discard_input()
        await port.write(codec.encode_command(codec.CMD_DUMP))
        received = self._clock.now()
        skipped = 0
        while not parser.complete:
            line = await port.read_line(timeout_s=self._reply_timeout_s)
            try:
                record = parser.feed(line)
            except CodecError:
                # Only the header raises; noise ahead of it is skipped, a few lines at most.
                skipped += 1
                if skipped > HEADER_SKIP_LINES:
                    raise
                continue
            if parser.header is not None and parser.header.serial != serial:
                serial = parser.header.serial  # the dump's own serial number names its records
            if record is not None:
                readings.append(
                    codec.record_to_reading(
                        record,
                        serial=serial,
                        clock_offset=offset,
                        hub_time=received,
                        tz=self._tz,
                        device_id=self._device_id,
                        resident_id=self._resident_id,
                    )
                )

    async def _hand_over(self, readings: Sequence[Reading]) -> bool:
        """Hand new readings to the sink; False when it could not store them (offer them again later)."""
        fresh: dict[str, Reading] = {}
        for reading in readings:
            assert reading.source_key is not None
            if reading.source_key not in self._handed_over:
                fresh.setdefault(reading.source_key, reading)
        if not fresh:
            return True
        # The meter dumps newest first; the outbox wants them in the order they were measured.
        batch = sorted(fresh.values(), key=lambda reading: reading.measured_at)
        try:
            await self._sink(batch)
        except NotAcceptedError as exc:
            log.warning("meter readings not stored by the gateway device_id=%s count=%d: kept on the meter, "
                        "offered again at the next download", self._device_id, len(batch))
            self._update(last_error=f"readings not stored: {exc}")
            return False
        self._handed_over.update(fresh)
        self._update(readings_handed_over=self._status.readings_handed_over + len(batch))
        log.info("meter readings handed over device_id=%s count=%d", self._device_id, len(batch))
        return True
