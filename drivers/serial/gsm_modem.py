"""GSM/4G modem session: SMS out through AT commands, for when the internet is down.

Lifecycle, as a small supervisor loop (:meth:`GsmModem.run`):

* the port may be missing (USB modem unplugged, or re-enumerating after a reset): reopen with
  capped backoff, forever;
* with the port open, initialise (``AT``, ``ATE0``, ``AT+CMEE=1``, ``AT+CPIN?`` must be READY,
  ``AT+CREG?``, ``AT+CSQ``), then check registration and signal every ``health_interval_s``;
* modems wedge (a SIM800 that stops answering after a brown-out, an EC20 stuck in a network
  search): every command has a deadline; a command that misses it gets ``AT+CFUN=1,1`` (full
  reset), a wait for the reboot, a re-initialisation and, for an SMS, one retry.

One modem holds one conversation: health checks and sends queue on one FIFO lock, so an SMS never
interleaves with another command. Phone numbers and message text never reach a log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import TypeVar

from drivers.errors import CodecError, DeviceTimeoutError, DeviceUnavailableError
from drivers.serial import at_codec as at
from drivers.serial.port import SerialPort, SerialSettings
from drivers.serial.supervisor import PortHooks, keep_port_open

log = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_BAUDRATE = 115200
"""SIM800 autobauds; EC20's USB AT port ignores the rate; 115200 is both vendors' default."""
BOOT_PROBES = 5
"""``AT`` attempts after a reset: a SIM800 swallows the first one or two while it autobauds."""


@dataclass(frozen=True, slots=True)
class ModemTiming:
    command_timeout_s: float = 5.0
    """Plain commands answer in milliseconds; 5 s covers a SIM800 busy with a network search."""
    sms_timeout_s: float = 60.0
    """``+CMGS`` waits for the network's acknowledgement: up to 60 s on a weak 2G cell (SIM800 manual)."""
    reset_settle_s: float = 15.0
    """From ``AT+CFUN=1,1`` to "SMS Ready": about 10-13 s on SIM800 and EC20."""
    health_interval_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("command_timeout_s", "sms_timeout_s", "reset_settle_s", "health_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ModemTiming.{name} must be positive")


class ModemNotReadyError(at.ModemError):
    """The modem cannot send now (port missing, SIM problem, still initialising); try again later."""


@dataclass(frozen=True, slots=True)
class ModemStatus:
    """What the hub status page shows about the modem."""

    port_open: bool = False
    ready: bool = False
    """Initialised and able to take an SMS (the network may still refuse it: see registration)."""
    sim: at.SimState | None = None
    registration: at.Registration | None = None
    signal_dbm: int | None = None
    """None when the modem does not know (``+CSQ: 99``)."""
    last_error: str | None = None
    last_health_check: float | None = None
    """Monotonic time of the last successful check."""
    sms_sent: int = 0
    resets: int = 0


@dataclass(frozen=True, slots=True)
class SmsResult:
    encoding: at.SmsEncoding
    parts: int
    references: tuple[int, ...]
    """The network's message reference of each part (``+CMGS: <mr>``)."""
    attempts: int
    reset: bool
    """Whether the modem had to be reset (``AT+CFUN=1,1``) to get it out."""


@dataclass(frozen=True, slots=True)
class ModemHealth:
    registration: at.Registration
    signal: at.SignalQuality


class AtChannel:
    """Commands and their responses over one open port (no policy: that is :class:`GsmModem`'s)."""

    def __init__(self, port: SerialPort, timing: ModemTiming) -> None:
        self.port = port
        self._timing = timing
        self._framer = at.AtFramer()
        self._items: deque[str | at.Prompt] = deque()

    async def command(self, command: str, *, timeout_s: float | None = None) -> at.AtResponse:
        reply = await self._exchange(command, expect_prompt=False, timeout_s=timeout_s)
        assert isinstance(reply, at.AtResponse)
        return reply

    async def ok(self, command: str) -> at.AtResponse:
        return (await self.command(command)).expect_ok()

    async def submit(self, cmgs_argument: str, body: str) -> int:
        """``AT+CMGS=...``, the ``> `` prompt, the body and Ctrl-Z; the network's message reference."""
        command = f"AT+CMGS={cmgs_argument}"
        reply = await self._exchange(command, expect_prompt=True, timeout_s=None)
        if isinstance(reply, at.AtResponse):
            reply.expect_ok()
            raise CodecError("AT+CMGS answered OK without the '> ' prompt: is the modem in the right mode?")
        await self.port.write(body.encode("ascii") + at.CTRL_Z)
        parser = at.ResponseParser(command)
        done = await self._await(parser, self._timing.sms_timeout_s, "AT+CMGS message body")
        assert isinstance(done, at.AtResponse)
        return at.parse_cmgs(done.expect_ok())

    async def _exchange(
        self, command: str, *, expect_prompt: bool, timeout_s: float | None
    ) -> at.AtResponse | at.Prompt:
        # Whatever is left over (late URCs, a reply to a command that timed out) belongs to nobody.
        self._items.clear()
        await self.port.discard_input()
        await self.port.write(at.encode_command(command))
        parser = at.ResponseParser(command, expect_prompt=expect_prompt)
        return await self._await(parser, timeout_s or self._timing.command_timeout_s, command.split("=", 1)[0])

    async def _await(self, parser: at.ResponseParser, timeout_s: float, what: str) -> at.AtResponse | at.Prompt:
        deadline = time.monotonic() + timeout_s
        while True:
            while self._items:
                reply = parser.feed(self._items.popleft())
                if reply is not None:
                    return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeviceTimeoutError(f"modem did not answer {what} within {timeout_s:g} s (wedged or rebooting)")
            data = await self.port.read_available(timeout_s=min(remaining, 0.5))
            self._items.extend(self._framer.feed(data))


async def probe(channel: AtChannel) -> None:
    """``AT`` until it answers OK: the first ones after power-up may go to autobaud."""
    for attempt in range(BOOT_PROBES):
        try:
            await channel.ok("AT")
            return
        except DeviceTimeoutError:
            if attempt == BOOT_PROBES - 1:
                raise


async def initialise(channel: AtChannel) -> ModemHealth:
    await probe(channel)
    await channel.ok("ATE0")  # echo off: replies are then only replies
    await channel.ok("AT+CMEE=1")  # numeric +CME ERROR codes instead of a bare ERROR
    sim = at.parse_cpin(await channel.command("AT+CPIN?"))
    if sim is not at.SimState.READY:
        raise at.SimNotReadyError(sim)
    return await read_health(channel)


async def read_health(channel: AtChannel) -> ModemHealth:
    registration = at.parse_creg(await channel.ok("AT+CREG?"))
    signal = at.parse_csq(await channel.ok("AT+CSQ"))
    return ModemHealth(registration, signal)


async def send(channel: AtChannel, plan: at.SmsPlan) -> tuple[int, ...]:
    """Send one planned SMS on an initialised modem; the message reference of each part."""
    if isinstance(plan, at.TextModeSms):
        await channel.ok("AT+CMGF=1")
        for setup in plan.setup:
            await channel.ok(setup)
        return (await channel.submit(plan.cmgs_argument, plan.body),)
    await channel.ok("AT+CMGF=0")
    return tuple([await channel.submit(str(part.tpdu_length), part.pdu_hex) for part in plan.parts])


class GsmModem:
    """The modem as the gateway sees it: ``run()`` keeps it alive, ``send_sms()`` queues on it."""

    def __init__(
        self,
        *,
        device_id: str,
        port: str,
        baudrate: int = DEFAULT_BAUDRATE,
        timing: ModemTiming | None = None,
    ) -> None:
        self._device_id = device_id
        self._port_path = port
        self._settings = SerialSettings(baudrate=baudrate)
        self._timing = timing or ModemTiming()
        self._lock = asyncio.Lock()  # FIFO: sends go out in the order they were asked for
        self._channel: AtChannel | None = None
        self._ready = False
        self._lost = asyncio.Event()
        self._next_reference = 0
        self._status = ModemStatus()

    @property
    def status(self) -> ModemStatus:
        return self._status

    def _update(self, **changes: object) -> None:
        self._status = replace(self._status, **changes)  # type: ignore[arg-type]

    # -- sending ---------------------------------------------------------------------------------

    async def send_sms(self, number: str, text: str) -> SmsResult:
        """Send ``text`` to ``number`` (E.164); returns once the network accepted every part.

        Raises ``ValueError`` for a bad number or an over-long text, :class:`ModemNotReadyError`
        when the modem cannot send now, :class:`at.AtCommandError` when the modem or network refused
        it (``+CMS ERROR``), ``DeviceTimeoutError`` when even a reset did not help.
        """
        self._next_reference = (self._next_reference + 1) % 256
        plan = at.plan_sms(number, text, reference=self._next_reference)
        parts = 1 if isinstance(plan, at.TextModeSms) else len(plan.parts)
        async with self._lock:
            channel = self._channel
            if channel is None or not self._ready:
                reason = self._status.last_error or "still initialising"
                raise ModemNotReadyError(f"modem {self._device_id} cannot send SMS now: {reason}")
            try:
                references = await self._guarded(send(channel, plan))
                reset = False
            except DeviceTimeoutError:
                log.warning("sms send timed out, resetting modem device_id=%s", self._device_id)
                try:
                    await self._guarded(self._reset(channel))
                    references = await self._guarded(send(channel, plan))
                except (DeviceTimeoutError, at.ModemError, CodecError) as exc:
                    self._not_ready(f"{type(exc).__name__} after reset: {exc}")
                    raise
                reset = True
        self._update(sms_sent=self._status.sms_sent + 1, last_error=None)
        log.info("sms sent device_id=%s encoding=%s parts=%d", self._device_id, plan.encoding.value, parts)
        return SmsResult(plan.encoding, parts, references, attempts=2 if reset else 1, reset=reset)

    async def _guarded(self, step: Awaitable[_T]) -> _T:
        try:
            return await step
        except DeviceUnavailableError:
            self._lost.set()  # the supervisor closes and reopens the port
            raise

    # -- keeping it alive ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the modem until cancelled."""
        first_failure = True

        async def unavailable(exc: DeviceUnavailableError) -> None:
            nonlocal first_failure
            if first_failure:
                self._update(port_open=False, ready=False, last_error=str(exc))
            first_failure = False

        def opened() -> None:
            nonlocal first_failure
            first_failure = True
            self._update(port_open=True)
            self._lost.clear()

        async def lost(exc: DeviceUnavailableError) -> None:
            self._update(port_open=False, ready=False, last_error=str(exc))

        async def serve(port: SerialPort) -> None:
            await self._serve(AtChannel(port, self._timing))

        await keep_port_open(self._port_path, self._settings, serve, what="modem", device_id=self._device_id,
                             hooks=PortHooks(opened=opened, unavailable=unavailable, lost=lost))

    async def _serve(self, channel: AtChannel) -> None:
        self._channel = channel
        try:
            while True:
                async with self._lock:
                    await self._guarded(self._check(channel))
                try:
                    await asyncio.wait_for(self._lost.wait(), self._timing.health_interval_s)
                except TimeoutError:
                    continue
                raise DeviceUnavailableError(f"modem {self._device_id} port failed during a send")
        finally:
            # Before the port closes, so no send picks up a channel that is going away.
            self._channel = None
            self._ready = False

    async def _check(self, channel: AtChannel) -> None:
        """Initialise when needed, else read registration and signal; reset a modem that stopped answering."""
        try:
            try:
                health = await (read_health(channel) if self._ready else initialise(channel))
            except DeviceTimeoutError:
                log.warning("modem not answering, resetting device_id=%s", self._device_id)
                await self._reset(channel)
                health = await read_health(channel)
        except at.SimNotReadyError as exc:
            self._not_ready(str(exc), sim=exc.state)
            return
        except (at.ModemError, CodecError, DeviceTimeoutError) as exc:
            self._not_ready(f"{type(exc).__name__}: {exc}")
            return
        if not self._ready:
            log.info("modem ready device_id=%s", self._device_id)
        self._ready = True
        if not health.registration.registered:
            log.warning("modem not registered device_id=%s registration=%s", self._device_id,
                        health.registration.value)  # fmt: skip
        self._update(
            ready=True,
            sim=at.SimState.READY,
            registration=health.registration,
            signal_dbm=health.signal.dbm,
            last_health_check=time.monotonic(),
            last_error=None if health.registration.registered else f"not registered: {health.registration.value}",
        )

    def _not_ready(self, reason: str, *, sim: at.SimState | None = None) -> None:
        if self._status.last_error != reason:
            log.warning("modem not ready device_id=%s reason=%s", self._device_id, reason)
        self._ready = False
        self._update(ready=False, last_error=reason, **({"sim": sim} if sim else {}))

    async def _reset(self, channel: AtChannel) -> None:
        """``AT+CFUN=1,1``, wait for the reboot, initialise again. The caller holds the lock."""
        self._ready = False
        self._update(ready=False, resets=self._status.resets + 1)
        await channel.port.write(at.encode_command("AT+CFUN=1,1"))
        await asyncio.sleep(self._timing.reset_settle_s)
        await initialise(channel)
        self._ready = True
        self._update(ready=True, last_error=None)
