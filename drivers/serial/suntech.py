"""SunTech Advantage OEM blood-pressure (NIBP) module session: starts measurements, collects results.

The host drives this module, so the session is a small loop that owns the port and does one
exchange at a time (a reply carries no command id, only a length):

* measurements the hub starts (``measure_now``: the hub's button or a doctor's "measure now"
  command; or every ``schedule_s``): send start adult, wait for ``O``, poll the cuff pressure while
  it runs, wait for ``K``, then ask for the last BP data. A result is handed over as a Reading (the
  sink returns after commit) or, when it carries an error code, as a DEVICE_ERROR event with the
  module's reason: a result with an error code is not a reading. A measurement still running after
  ``measurement_timeout_s`` (120 s at most) or a module that stops answering is aborted and reported.
  A ``B`` (busy: a measurement started at the device is running) is retried every ``busy_retry_s``;
* measurements started at the device: every ``poll_interval_s`` ask for the last BP data and hand
  it over when it differs from the last result seen. The module has no clock and no counter, so a
  result's identity is its bytes plus the hub time it was first received (its ``source_key``).
  Consequences of that heuristic, on purpose: the first result read after the session starts is
  only remembered, never handed over (a result still in the module's memory after a hub restart
  cannot be told from one uploaded before it, and re-sending an old blood pressure as new is worse
  than missing one taken while the hub was down); a result is remembered across an unplug/replug,
  so one taken while the cable was out is collected; and two measurements at the device with
  byte-identical results in a row are collected once. Before the hub starts a measurement of its
  own it reads the last result first, so one taken at the device is never overwritten unseen;
* the USB-serial adapter may vanish: ``keep_port_open`` reopens it forever.

Logs carry the device id, never blood pressure or cuff pressure values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from drivers.clock import Clock
from drivers.errors import DeviceUnavailableError, NotAcceptedError
from drivers.model import DeviceEvent, DeviceEventKind, DeviceInfo, HubTime, Reading
from drivers.serial import suntech_codec as codec
from drivers.serial.port import SerialPort, SerialSettings
from drivers.serial.suntech_codec import Ack, AckCode, BpResult, CuffPressure, Packet, ReturnString
from drivers.serial.supervisor import PortHooks, keep_port_open

log = logging.getLogger(__name__)

_T = TypeVar("_T")

ReadingSink = Callable[[Sequence[Reading]], Awaitable[None]]
EventSink = Callable[[DeviceEvent], Awaitable[None]]

REPLY_TIMEOUT_S = 2.0
"""The module answers a command within tens of milliseconds; 2 s covers a sluggish USB adapter."""
MEASUREMENT_TIMEOUT_S = 120.0
"""An adult measurement takes 30-40 s; the sheet's longest is well inside two minutes, so past this
the module is stuck and the cuff must not stay inflated on an elder's arm."""
CUFF_POLL_S = 0.5
"""Cuff pressure is asked for this often during a measurement: the hub page shows progress, and the
answers tell a module that went silent mid-measurement apart from a slow one."""
SILENT_AFTER_S = 10.0
"""No answer at all to this many seconds of cuff pressure polls: the module lost power or its cable."""
BUSY_RETRY_S = 5.0
"""A ``B`` means a measurement started at the device is running; it ends within a minute or so."""
POLL_INTERVAL_S = 5.0
READ_SLICE_S = 0.25
"""Longest single wait for bytes while idle, so a ``measure_now`` is picked up promptly."""
FETCH_ATTEMPTS = 2
"""A BP data packet lost to line noise is asked for again once."""


class Origin(StrEnum):
    """Who started a measurement."""

    COMMAND = "command"
    SCHEDULE = "schedule"
    DEVICE = "device"


class Failure(StrEnum):
    """Why a measurement the hub started gave no result (the DEVICE_ERROR value for these)."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MEASUREMENT_TIMEOUT = "measurement_timeout"
    MODULE_SILENT = "module_silent"
    NO_RESULT = "no_result"


@dataclass(frozen=True, slots=True)
class SuntechNibpStatus:
    """What the hub status page shows about this module (no blood pressure values)."""

    port_open: bool = False
    module_connected: bool = False
    return_string: str | None = None
    """Model and firmware ("LX..." Advantage, "SB..." Advantage A+)."""
    measuring: bool = False
    cuff_pressure_mmhg: int | None = None
    """Live cuff pressure during a measurement the hub started (progress, not a health value)."""
    last_result_at: datetime | None = None
    """Hub wall time (UTC) the last result was handed over (a reading or a device error)."""
    readings_handed_over: int = 0
    device_errors: int = 0
    busy_retries: int = 0
    malformed: int = 0
    last_error: str | None = None


class _Link:
    """The open port as a stream of packets: send a command, take the next packet before a deadline."""

    def __init__(self, port: SerialPort, clock: Clock, on_malformed: Callable[[codec.DecodeError], None]) -> None:
        self._port = port
        self._clock = clock
        self._on_malformed = on_malformed
        self._decoder = codec.FrameDecoder()
        self._pending: deque[Packet] = deque()
        self.last_heard: float | None = None
        """Hub monotonic time of the last valid packet."""

    async def send(self, command: bytes) -> None:
        await self._port.write(command)

    async def next_packet(self, deadline: float) -> Packet | None:
        """The next packet, or None when none arrived before ``deadline`` (hub monotonic)."""
        while not self._pending:
            remaining = deadline - self._clock.now().monotonic
            if remaining <= 0:
                return None
            chunk = await self._port.read_available(timeout_s=min(remaining, READ_SLICE_S))
            for item in self._decoder.feed(chunk):
                if isinstance(item, codec.DecodeError):
                    self._on_malformed(item)
                else:
                    self._pending.append(item)
        self.last_heard = self._clock.now().monotonic
        return self._pending.popleft()


class SuntechNibpSession:
    def __init__(
        self,
        *,
        device_id: str,
        resident_id: str,
        port: str,
        clock: Clock,
        on_readings: ReadingSink,
        on_event: EventSink,
        schedule_s: float | None = None,
        baudrate: int = 9600,
        poll_interval_s: float = POLL_INTERVAL_S,
        measurement_timeout_s: float = MEASUREMENT_TIMEOUT_S,
        busy_retry_s: float = BUSY_RETRY_S,
    ) -> None:
        if schedule_s is not None and schedule_s <= 0:
            raise ValueError(f"schedule_s must be positive or None (no schedule), got {schedule_s}")
        if not 0 < measurement_timeout_s <= MEASUREMENT_TIMEOUT_S:
            raise ValueError(
                f"measurement_timeout_s must be in (0, {MEASUREMENT_TIMEOUT_S:g}] s, got {measurement_timeout_s}"
            )
        if poll_interval_s <= 0 or busy_retry_s <= 0 or baudrate <= 0:
            raise ValueError("poll_interval_s, busy_retry_s and baudrate must be positive")
        self._device_id = device_id
        self._resident_id = resident_id
        self._port_path = port
        self._clock = clock
        self._on_readings = on_readings
        self._on_event = on_event
        self._schedule_s = schedule_s
        self._settings = SerialSettings(baudrate=baudrate)
        self._poll_interval_s = poll_interval_s
        self._measurement_timeout_s = measurement_timeout_s
        self._busy_retry_s = busy_retry_s
        self._lost_after_s = 2 * poll_interval_s + REPLY_TIMEOUT_S
        """The module is asked something at least every poll interval; two unanswered means gone."""
        self._requests: list[asyncio.Future[None]] = []
        self._last_result: BpResult | None = None
        self._next_poll = 0.0
        self._next_schedule = float("inf")
        self._logged: set[str] = set()
        self._status = SuntechNibpStatus()

    @property
    def status(self) -> SuntechNibpStatus:
        return self._status

    def _update(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    # -- the public surface ----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the module until cancelled."""
        if self._schedule_s is not None:
            self._next_schedule = self._clock.now().monotonic + self._schedule_s

        async def unavailable(exc: DeviceUnavailableError) -> None:
            if self._status.port_open or self._status.last_error is None:
                self._update(port_open=False, last_error=str(exc))

        async def lost(exc: DeviceUnavailableError) -> None:
            self._update(port_open=False, measuring=False, cuff_pressure_mmhg=None, last_error=str(exc))
            await self._mark_lost("serial port lost")

        await keep_port_open(self._port_path, self._settings, self._serve, what="nibp", device_id=self._device_id,
                             hooks=PortHooks(opened=lambda: self._update(port_open=True), unavailable=unavailable,
                                             lost=lost))

    async def measure_now(self) -> None:
        """Start an adult measurement and return once its outcome was handed over.

        The outcome goes to ``on_readings`` (a reading) or ``on_event`` (DEVICE_ERROR: an error code,
        busy, a timeout); this returns normally in every such case. Calls made while one waits to
        start share that measurement. Raises :class:`DeviceUnavailableError` when the port is not
        open or is lost before the outcome.
        """
        if not self._status.port_open:
            reason = self._status.last_error or "port not open"
            raise DeviceUnavailableError(f"blood-pressure module {self._device_id} is not connected ({reason})")
        request: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.append(request)
        await request

    # -- the module on the port ------------------------------------------------------------------

    async def _serve(self, port: SerialPort) -> None:
        link = _Link(port, self._clock, self._malformed)
        try:
            await self._identify(link)
            await self._collect_device_result(link)
            while True:
                await self._step(link)
                await self._check_heard(link)
        except BaseException as exc:
            self._fail_requests(exc)
            raise

    async def _step(self, link: _Link) -> None:
        now = self._clock.now().monotonic
        if self._requests:
            waiting, self._requests = self._requests, []
            try:
                await self._measure(link, Origin.COMMAND)
            except BaseException as exc:
                _settle(waiting, exc)
                raise
            _settle(waiting, None)
        elif now >= self._next_schedule:
            self._next_schedule = now + (self._schedule_s or 0.0)
            await self._measure(link, Origin.SCHEDULE)
        elif now >= self._next_poll:
            await self._collect_device_result(link)
        else:
            packet = await link.next_packet(min(now + READ_SLICE_S, self._next_poll))
            if packet is not None:
                self._stray(packet)

    async def _identify(self, link: _Link) -> None:
        await link.send(codec.GET_RETURN_STRING)
        answer = await self._expect(link, lambda p: p if isinstance(p, ReturnString) else None)
        if answer is not None:
            log.info("nibp module identified device_id=%s return_string=%s", self._device_id, answer.text)
            self._update(return_string=answer.text)

    async def _measure(self, link: _Link, origin: Origin) -> None:
        log.info("nibp measurement starting device_id=%s origin=%s", self._device_id, origin.value)
        self._update(measuring=True)
        try:
            if not await self._start(link, origin):
                return
            end = await self._await_end(link, origin)
            if end is None:
                return
            fetched = await self._fetch_result(link)
            if fetched is None:
                await self._report(Failure.NO_RESULT, "the module sent no BP data after the measurement", origin)
            elif end is AckCode.DONE or fetched[0] != self._last_result:
                await self._hand_over(*fetched, origin)
            else:
                await self._report(end.name.lower(), f"measurement ended: {end.text}", origin)
        finally:
            self._update(measuring=False, cuff_pressure_mmhg=None)
            self._next_poll = self._clock.now().monotonic + self._poll_interval_s

    async def _start(self, link: _Link, origin: Origin) -> bool:
        """Send start adult until the module takes it (``O``); report and give up otherwise."""
        give_up_at = self._clock.now().monotonic + self._measurement_timeout_s
        while True:
            # A result taken at the device would be overwritten by ours: read it first.
            await self._collect_device_result(link)
            await link.send(codec.START_ADULT)
            answer = await self._expect(link, _start_answer)
            if answer is AckCode.RECEIVED:
                return True
            if answer is AckCode.BUSY and self._clock.now().monotonic + self._busy_retry_s < give_up_at:
                self._update(busy_retries=self._status.busy_retries + 1)
                log.info("nibp module busy, retrying device_id=%s origin=%s", self._device_id, origin.value)
                await self._listen(self._clock.now().monotonic + self._busy_retry_s, link)
                continue
            if answer is None:
                await self._report(Failure.NO_ANSWER, "the module did not answer the start command", origin)
            elif answer is AckCode.BUSY:
                await self._report(
                    Failure.BUSY, f"the module stayed busy for {self._measurement_timeout_s:g} s", origin
                )
            else:
                await self._report(answer.name.lower(), f"start refused: {answer.text}", origin)
            return False

    async def _await_end(self, link: _Link, origin: Origin) -> AckCode | None:
        """Poll cuff pressure until the module ends the measurement; abort and report on a timeout."""
        started = self._clock.now().monotonic
        heard = next_poll = started
        while True:
            now = self._clock.now().monotonic
            if now - started >= self._measurement_timeout_s:
                await self._abort(link, Failure.MEASUREMENT_TIMEOUT,
                                  f"measurement did not finish within {self._measurement_timeout_s:g} s", origin)
                return None
            if now - heard >= SILENT_AFTER_S:
                await self._abort(link, Failure.MODULE_SILENT,
                                  f"the module stopped answering for {SILENT_AFTER_S:g} s during the measurement",
                                  origin)
                return None
            if now >= next_poll:
                await link.send(codec.GET_CUFF_PRESSURE)
                next_poll = now + CUFF_POLL_S
            packet = await link.next_packet(next_poll)
            if packet is None:
                continue
            heard = self._clock.now().monotonic
            if isinstance(packet, CuffPressure):
                self._update(cuff_pressure_mmhg=packet.mmhg)
            elif isinstance(packet, Ack) and packet.code in _MEASUREMENT_ENDS:
                return packet.code
            else:
                self._stray(packet)

    async def _abort(self, link: _Link, failure: Failure, reason: str, origin: Origin) -> None:
        log.warning("nibp measurement aborted device_id=%s reason=%s", self._device_id, failure.value)
        await link.send(codec.ABORT)
        await self._expect(link, lambda p: p if isinstance(p, Ack) and p.code is AckCode.ABORTED else None)
        await self._report(failure, reason + "; the cuff was told to deflate", origin)
        # The aborted measurement leaves a result ("terminated by user") that is already reported.
        fetched = await self._fetch_result(link)
        if fetched is not None:
            self._last_result = fetched[0]

    async def _collect_device_result(self, link: _Link) -> None:
        """Hand over the module's last result if it is new (see the module docstring for "new")."""
        self._next_poll = self._clock.now().monotonic + self._poll_interval_s
        fetched = await self._fetch_result(link)
        if fetched is None:
            return
        result, received = fetched
        if self._last_result is None:
            self._last_result = result  # the baseline: see the module docstring
        elif result != self._last_result and not result.empty:
            await self._hand_over(result, received, Origin.DEVICE)
        else:
            self._last_result = result

    async def _fetch_result(self, link: _Link) -> tuple[BpResult, HubTime] | None:
        for _ in range(FETCH_ATTEMPTS):
            await link.send(codec.GET_LAST_BP_DATA)
            result = await self._expect(link, lambda p: p if isinstance(p, BpResult) else None)
            if result is not None:
                return result, self._clock.now()
        return None

    async def _expect(self, link: _Link, accept: Callable[[Packet], _T | None]) -> _T | None:
        """The first packet ``accept`` takes within the reply timeout; others are strays."""
        deadline = self._clock.now().monotonic + REPLY_TIMEOUT_S
        while (packet := await link.next_packet(deadline)) is not None:
            taken = accept(packet)
            if taken is not None:
                return taken
            self._stray(packet)
        return None

    async def _listen(self, until: float, link: _Link) -> None:
        while (packet := await link.next_packet(until)) is not None:
            self._stray(packet)

    def _stray(self, packet: Packet) -> None:
        """A packet nobody asked for: a ``K`` means a measurement at the device ended, so look now."""
        if isinstance(packet, Ack) and packet.code is AckCode.DONE:
            self._next_poll = 0.0
        elif isinstance(packet, codec.UnknownPacket):
            self._log_once(f"unknown_{len(packet.data)}", "nibp packet with no known layout device_id=%s length=%d",
                           self._device_id, len(packet.data) + 3)

    # -- handing over ----------------------------------------------------------------------------

    async def _hand_over(self, result: BpResult, received: HubTime, origin: Origin) -> None:
        device = DeviceInfo(id=self._device_id, transport="serial", model=codec.MODEL)
        reading = codec.result_to_reading(result, device, self._resident_id, received)
        if reading is not None:
            try:
                await self._on_readings([reading])
            except NotAcceptedError:
                # The module keeps only its last result and its identity includes when the hub first
                # read it: offering it again would make a second record. The gateway holds it in memory.
                log.warning("nibp reading not yet on the gateway's disk device_id=%s", self._device_id)
            log.info("nibp reading handed over device_id=%s origin=%s", self._device_id, origin.value)
            self._update(readings_handed_over=self._status.readings_handed_over + 1, last_result_at=received.wall)
        elif result.error_code is not None:
            code = result.error_code
            value = code.name.lower() if isinstance(code, codec.ErrorCode) else f"0x{code:02X}"
            await self._report(value, codec.error_text(code), origin, received)
        self._last_result = result

    async def _report(self, value: str, detail: str, origin: Origin, received: HubTime | None = None) -> None:
        received = received or self._clock.now()
        log.warning("nibp measurement failed device_id=%s origin=%s code=%s", self._device_id, origin.value, value)
        await self._emit(DeviceEventKind.DEVICE_ERROR, received, value=value, detail=detail,
                         extra={"origin": origin.value})
        self._update(device_errors=self._status.device_errors + 1, last_result_at=received.wall, last_error=detail)

    # -- presence --------------------------------------------------------------------------------

    async def _check_heard(self, link: _Link) -> None:
        now = self._clock.now()
        recent = link.last_heard is not None and now.monotonic - link.last_heard < self._lost_after_s
        if recent and not self._status.module_connected:
            self._update(module_connected=True, last_error=None)
            log.info("nibp module connected device_id=%s", self._device_id)
            await self._emit(DeviceEventKind.CONNECTED, now)
        elif not recent and self._status.module_connected:
            await self._mark_lost(f"no answer for {self._lost_after_s:g} s", now)

    async def _mark_lost(self, reason: str, now: HubTime | None = None) -> None:
        if not self._status.module_connected:
            return
        self._update(module_connected=False)
        log.warning("nibp module lost device_id=%s reason=%s", self._device_id, reason)
        await self._emit(DeviceEventKind.LOST, now or self._clock.now(), detail=reason)

    async def _emit(self, kind: DeviceEventKind, received: HubTime, *, value: str | None = None,
                    detail: str | None = None, extra: dict[str, int | float | str] | None = None) -> None:
        await self._on_event(DeviceEvent(device_id=self._device_id, resident_id=self._resident_id, kind=kind,
                                         received=received, value=value, detail=detail, extra=extra or {}))

    def _fail_requests(self, exc: BaseException) -> None:
        waiting, self._requests = self._requests, []
        _settle(waiting, exc)

    def _malformed(self, error: codec.DecodeError) -> None:
        self._update(malformed=self._status.malformed + 1)
        # Once per kind: a noisy cable would otherwise fill the log; the count is in the status.
        self._log_once(error.kind.value, "nibp packet malformed device_id=%s kind=%s dropped=%d",
                       self._device_id, error.kind.value, error.dropped)

    def _log_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(message, *args)


_MEASUREMENT_ENDS = frozenset({AckCode.DONE, AckCode.ABORTED, AckCode.ERROR, AckCode.TIMEOUT})
_START_ANSWERS = frozenset(AckCode) - {AckCode.DONE}
"""A ``K`` is the end of some earlier measurement, never an answer to a start."""


def _start_answer(packet: Packet) -> AckCode | None:
    return packet.code if isinstance(packet, Ack) and packet.code in _START_ANSWERS else None


def _settle(requests: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    """Tell every waiting ``measure_now`` how it ended: done, cancelled, or the error that ended it."""
    for request in requests:
        if request.done():
            continue
        if exc is None:
            request.set_result(None)
        elif isinstance(exc, Exception):
            request.set_exception(exc)
        else:
            with contextlib.suppress(asyncio.InvalidStateError):
                request.cancel()
