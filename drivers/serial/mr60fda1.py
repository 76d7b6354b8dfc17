"""Seeed MR60FDA1 fall radar session: reads its frame stream and hands DeviceEvents to the hub.

Lifecycle, as a small supervisor loop:

* the USB-serial adapter may be missing: reopen with capped backoff, forever, so an unplug/replug
  never needs a daemon restart;
* with the port open, ask for the product model and firmware version (logged, shown in ``status``),
  then read chunks and decode them with :mod:`drivers.serial.mr60fda1_codec`;
* presence, motion, fall and residency become events only when their value changes; the
  body-movement parameter (about 1 Hz) at most once per ``body_movement_interval_s``;
* the radar is LOST when no valid frame at all arrives for ``lost_after_s`` (the ~1 Hz
  body-movement parameter makes silence meaningful) or the port goes away, and CONNECTED again at
  its next valid frame. After LOST every state is forgotten, so the first reports afterwards are
  events again: nobody downstream should trust a state from before the gap.

Durability: the radar has no acknowledgement and does not repeat a state report, so a frame is
"consumed" at the session's read position. Every event is awaited in stream order: no later frame is
turned into an event, and no more bytes are read from the port, until ``on_event`` has returned,
which for a FALL the hub does only once the record has committed. The remembered state is updated only
after ``on_event`` returns; if it raises, ``run()`` raises with it (the gateway's failure to handle,
not the radar's) and the pending bytes stay unread in the adapter.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from drivers.clock import Clock
from drivers.errors import CodecError, DeviceUnavailableError
from drivers.model import DeviceEvent, DeviceEventKind, HubTime
from drivers.serial import mr60fda1_codec as codec
from drivers.serial.port import SerialPort, SerialSettings
from drivers.serial.supervisor import PortHooks, keep_port_open

log = logging.getLogger(__name__)

EventSink = Callable[[DeviceEvent], Awaitable[None]]

LOST_AFTER_S = 10.0
"""The radar sends its body-movement parameter about once a second; ten seconds of nothing at all
means it lost power, its adapter wedged, or the cable is loose."""
BODY_MOVEMENT_INTERVAL_S = 30.0
"""The ~1 Hz parameter would be 86,400 events a day; the detector's inactivity rules need far fewer."""
READ_SLICE_S = 0.5
"""Longest single wait for bytes, so silence is noticed promptly and a cancel is never stuck."""



@dataclass(frozen=True, slots=True)
class Mr60fda1Status:
    """What the hub status page shows about this radar (no presence, motion or fall states)."""

    port_open: bool = False
    radar_connected: bool = False
    product_model: str | None = None
    firmware_version: str | None = None
    last_frame_at: datetime | None = None
    """Hub wall time (UTC) of the last valid frame."""
    frames: int = 0
    malformed: int = 0
    """Decode errors and known reports with impossible data, counted (each kind is logged once)."""
    unknown_reports: int = 0
    events: int = 0
    last_error: str | None = None


class Mr60fda1Session:
    def __init__(
        self,
        *,
        device_id: str,
        resident_id: str,
        port: str,
        clock: Clock,
        on_event: EventSink,
        baudrate: int = 115200,
        lost_after_s: float = LOST_AFTER_S,
        body_movement_interval_s: float = BODY_MOVEMENT_INTERVAL_S,
    ) -> None:
        if lost_after_s <= 0 or body_movement_interval_s < 0 or baudrate <= 0:
            raise ValueError("lost_after_s and baudrate must be positive, body_movement_interval_s not negative")
        self._device_id = device_id
        self._resident_id = resident_id
        self._port_path = port
        self._clock = clock
        self._on_event = on_event
        self._settings = SerialSettings(baudrate=baudrate)
        self._lost_after_s = lost_after_s
        self._body_movement_interval_s = body_movement_interval_s
        self._reported: dict[DeviceEventKind, int] = {}
        self._body_movement_at: float | None = None
        self._connected: bool | None = None
        """None until the radar is first heard from or given up on."""
        self._last_heard = 0.0
        self._identity_asked_at = 0.0
        self._logged: set[str] = set()
        self._status = Mr60fda1Status()

    @property
    def status(self) -> Mr60fda1Status:
        return self._status

    def _update(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    # -- supervisor: the adapter -----------------------------------------------------------------

    async def run(self) -> None:
        """Serve the radar until cancelled."""
        self._last_heard = self._clock.now().monotonic

        async def unavailable(exc: DeviceUnavailableError) -> None:
            if self._status.port_open or self._status.last_error is None:
                self._update(port_open=False, last_error=str(exc))
            await self._check_silence()  # a radar whose cable is out is a radar not heard from

        async def lost(exc: DeviceUnavailableError) -> None:
            self._update(port_open=False, last_error=str(exc))
            await self._mark_lost("serial port lost")

        await keep_port_open(self._port_path, self._settings, self._serve, what="radar", device_id=self._device_id,
                             hooks=PortHooks(opened=lambda: self._update(port_open=True), unavailable=unavailable,
                                             lost=lost))

    # -- the radar on the port -------------------------------------------------------------------

    async def _serve(self, port: SerialPort) -> None:
        decoder = codec.FrameDecoder()
        await self._ask_identity(port)
        while True:
            chunk = await port.read_available(timeout_s=READ_SLICE_S)
            for item in decoder.feed(chunk):
                if isinstance(item, codec.DecodeError):
                    self._malformed(item.kind.value, f"{item.dropped} bytes dropped")
                else:
                    await self._on_frame(port, item)
            await self._check_silence()

    async def _ask_identity(self, port: SerialPort) -> None:
        self._identity_asked_at = self._clock.now().monotonic
        await port.write(codec.QUERY_PRODUCT_MODEL + codec.QUERY_FIRMWARE_VERSION)

    async def _on_frame(self, port: SerialPort, frame: codec.Frame) -> None:
        now = self._clock.now()
        self._last_heard = now.monotonic
        self._update(last_frame_at=now.wall, frames=self._status.frames + 1)
        if self._connected is not True:
            await self._mark_connected(port, now)
        try:
            report = codec.decode_report(frame)
        except CodecError as exc:
            self._malformed(f"report_{frame.control:02x}_{frame.command:02x}", str(exc))
            return
        if isinstance(report, codec.StateReport):
            await self._on_state(report, now)
        elif isinstance(report, codec.IdentityReport):
            log.info("radar identity device_id=%s %s=%s", self._device_id, report.field.value, report.text)
            self._update(**{report.field.value: report.text})
        else:
            self._update(unknown_reports=self._status.unknown_reports + 1)
            key = f"unknown_{report.control:02x}_{report.command:02x}"
            if key not in self._logged:
                self._logged.add(key)
                log.info(
                    "radar report not in the table device_id=%s control=0x%02X command=0x%02X length=%d",
                    self._device_id,
                    report.control,
                    report.command,
                    len(report.data),
                )

    async def _on_state(self, report: codec.StateReport, now: HubTime) -> None:
        if report.kind is DeviceEventKind.BODY_MOVEMENT:
            last = self._body_movement_at
            if last is not None and now.monotonic - last < self._body_movement_interval_s:
                return
        elif self._reported.get(report.kind) == report.value:
            return
        await self._emit(report.kind, now, value=report.value, detail=report.label)
        if report.kind is DeviceEventKind.BODY_MOVEMENT:
            self._body_movement_at = now.monotonic
        else:
            self._reported[report.kind] = report.value

    async def _mark_connected(self, port: SerialPort, now: HubTime) -> None:
        self._connected = True
        self._update(radar_connected=True, last_error=None)
        log.info("radar connected device_id=%s", self._device_id)
        await self._emit(DeviceEventKind.CONNECTED, now)
        if self._status.firmware_version is None and self._identity_asked_at < now.monotonic - READ_SLICE_S:
            # The radar may have powered up after the port opened and missed the first question.
            await self._ask_identity(port)

    async def _check_silence(self) -> None:
        now = self._clock.now()
        if now.monotonic - self._last_heard >= self._lost_after_s:
            await self._mark_lost(f"no frame for {self._lost_after_s:g} s", now)

    async def _mark_lost(self, reason: str, now: HubTime | None = None) -> None:
        if self._connected is False:
            return
        self._connected = False
        self._reported.clear()
        self._body_movement_at = None
        self._update(radar_connected=False)
        log.warning("radar lost device_id=%s reason=%s", self._device_id, reason)
        await self._emit(DeviceEventKind.LOST, now or self._clock.now(), detail=reason)

    async def _emit(
        self, kind: DeviceEventKind, received: HubTime, *, value: int | None = None, detail: str | None = None
    ) -> None:
        event = DeviceEvent(
            device_id=self._device_id,
            resident_id=self._resident_id,
            kind=kind,
            received=received,
            value=value,
            detail=detail,
        )
        await self._on_event(event)
        self._update(events=self._status.events + 1)

    def _malformed(self, kind: str, detail: str) -> None:
        self._update(malformed=self._status.malformed + 1, last_error=f"malformed frame ({kind}): {detail}")
        if kind not in self._logged:
            self._logged.add(kind)
            # Once per kind: a noisy cable would otherwise fill the log; the count is in the status.
            log.warning("radar frame malformed device_id=%s kind=%s detail=%s", self._device_id, kind, detail)
