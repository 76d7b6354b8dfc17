"""The hub's one BLE manager: one scanner, a table of configured devices, bounded connections.

Every configured device is a row ``address -> session``. One active scanner runs for the whole
process (cuffs and meters advertise only briefly after a measurement, so scanning never stops);
an advert of a configured device starts its session as the pure policy allows. Connections go
through bleak-retry-connector and are bounded by a semaphore, because BlueZ adapters hold only a
few at once. A watchdog power-cycles an adapter that stops reporting anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bleak_retry_connector import BleakClientWithServiceCache, close_stale_connections_by_address, establish_connection

from drivers.ble.adapter import power_cycle_adapter
from drivers.ble.link import GattLink
from drivers.ble.policy import (
    BackoffPolicy,
    ConnectionStyle,
    LinkState,
    ScanHealth,
    SessionOutcome,
    WedgePolicy,
    advert_seen,
    normalize_address,
    power_cycle_reason,
    power_cycled,
    scan_retry_delay,
    scan_start_failed,
    scan_started,
    session_ended,
    session_started,
    should_connect,
)
from drivers.ble.sessions import AdvertSession, ConnectedSession
from drivers.clock import Clock
from drivers.errors import DriverError
from drivers.model import HubTime

log = logging.getLogger(__name__)

DISCONNECT_TIMEOUT_S = 10.0
"""A disconnect from a device that vanished can hang in BlueZ; never wait on it longer than this."""
ADVERT_FRESH_S = 10.0
"""A wearable seen this recently is still there to connect to once its backoff has passed."""

# What a broken radio, a vanished device or bluetoothd can raise at us during I/O.
RADIO_ERRORS = (BleakError, DriverError, asyncio.TimeoutError, EOFError, OSError)


@dataclass(frozen=True, slots=True)
class BleStatus:
    scanning: bool
    last_advert_age_s: float | None
    power_cycles: int
    last_power_cycle_reason: str | None
    connected: tuple[str, ...]
    """Device ids with a live connection."""


@dataclass(slots=True)
class _Device:
    session: ConnectedSession | None
    advert_session: AdvertSession | None
    style: ConnectionStyle
    state: LinkState = field(default_factory=LinkState)
    ble_device: BLEDevice | None = None
    last_seen: float | None = None
    connected: bool = False
    advert_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class BleManager:
    def __init__(
        self,
        connected: Sequence[ConnectedSession],
        advertised: Sequence[AdvertSession] = (),
        *,
        clock: Clock,
        adapter: str = "hci0",
        max_connections: int = 2,
        backoff: BackoffPolicy | None = None,
        wedge: WedgePolicy | None = None,
        on_adapter_trouble: Callable[[str], None] | None = None,
        power_cycle: Callable[[str], Awaitable[None]] = power_cycle_adapter,
        client_class: type[BleakClient] = BleakClientWithServiceCache,
        connect_attempts: int = 4,
        watch_interval_s: float = 1.0,
        on_any_advert: Callable[[BLEDevice, AdvertisementData], None] | None = None,
    ) -> None:
        """``on_any_advert`` hears every advert the scanner reports, configured device or not: the
        hub's one scanner serves a technician's scan too (a second scanner in this process would share
        its D-Bus connection, and BlueZ keeps one discovery session per connection)."""
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._clock = clock
        self._adapter = adapter
        self._backoff = backoff or BackoffPolicy()
        self._wedge = wedge or WedgePolicy()
        self._trouble = on_adapter_trouble or (lambda _message: None)
        self._power_cycle = power_cycle
        self._client_class = client_class
        self._connect_attempts = connect_attempts
        self._watch_interval_s = watch_interval_s
        self._on_any_advert = on_any_advert
        self._slots = asyncio.Semaphore(max_connections)
        self._devices: dict[str, _Device] = {}
        for session in connected:
            self._add(session.tag.address, _Device(session, None, session.style))
        for advert_session in advertised:
            self._add(advert_session.tag.address, _Device(None, advert_session, advert_session.style))
        persistent = sum(d.style is ConnectionStyle.PERSISTENT for d in self._devices.values())
        if persistent >= max_connections and persistent < len(connected):
            log.error(
                "wearables hold every connection slot persistent=%d max_connections=%d; "
                "cuffs and meters will never connect: raise max_connections or configure fewer wearables",
                persistent,
                max_connections,
            )
        self._health = ScanHealth()
        self._scanning = False
        self._power_cycles = 0
        self._last_reason: str | None = None
        self._tasks: asyncio.TaskGroup | None = None

    def _add(self, address: str, device: _Device) -> None:
        key = normalize_address(address)
        if key in self._devices:
            raise ValueError(f"{key} is configured twice; each BLE address may belong to one device")
        self._devices[key] = device

    @property
    def status(self) -> BleStatus:
        now = self._clock.now().monotonic
        last = self._health.last_advert_at
        return BleStatus(
            scanning=self._scanning,
            last_advert_age_s=None if last is None else now - last,
            power_cycles=self._power_cycles,
            last_power_cycle_reason=self._last_reason,
            connected=tuple(
                d.session.tag.device_id for d in self._devices.values() if d.connected and d.session is not None
            ),
        )

    async def run(self) -> None:
        """Scan, connect and supervise until cancelled."""
        async with asyncio.TaskGroup() as tasks:
            self._tasks = tasks
            await self._close_stale_connections()
            while True:
                scanner = await self._start_scanning()
                try:
                    reason = await self._watch()
                finally:
                    await self._stop_scanning(scanner)
                await self._recover(reason)

    # --- scanning ------------------------------------------------------------------------

    async def _close_stale_connections(self) -> None:
        # A wearable BlueZ still holds from before a restart does not advertise, so it would never
        # be seen again: drop such links once, before the first scan.
        for address, device in self._devices.items():
            if device.style is ConnectionStyle.PERSISTENT:
                try:
                    await close_stale_connections_by_address(address)
                except RADIO_ERRORS as exc:
                    log.debug("stale connection check failed address=%s reason=%s", address, exc)

    async def _start_scanning(self) -> BleakScanner:
        while True:
            scanner = BleakScanner(
                detection_callback=self._on_advert, scanning_mode="active", bluez={"adapter": self._adapter}
            )
            try:
                await scanner.start()
            except RADIO_ERRORS as exc:
                self._health = scan_start_failed(self._health)
                log.warning(
                    "scanning failed to start adapter=%s attempt=%d reason=%s",
                    self._adapter,
                    self._health.consecutive_start_failures,
                    exc,
                )
                reason = power_cycle_reason(self._health, expecting_adverts=True, now=self._now(), policy=self._wedge)
                if reason is not None:
                    await self._recover(reason)
                else:
                    await asyncio.sleep(scan_retry_delay(self._health, self._backoff))
                continue
            self._health = scan_started(self._health, self._now())
            self._scanning = True
            log.info("scanning adapter=%s devices=%d", self._adapter, len(self._devices))
            return scanner

    async def _stop_scanning(self, scanner: BleakScanner) -> None:
        self._scanning = False
        with contextlib.suppress(*RADIO_ERRORS):
            async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                await scanner.stop()

    async def _watch(self) -> str:
        """Start sessions that are due; return why the adapter needs a power cycle when it does."""
        while True:
            await asyncio.sleep(self._watch_interval_s)
            now = self._now()
            for device in self._devices.values():
                if device.last_seen is not None and now - device.last_seen <= ADVERT_FRESH_S:
                    self._maybe_connect(device, now)
            expecting = any(not d.connected for d in self._devices.values())
            reason = power_cycle_reason(self._health, expecting_adverts=expecting, now=now, policy=self._wedge)
            if reason is not None:
                return reason

    async def _recover(self, reason: str) -> None:
        message = f"Bluetooth adapter {self._adapter} power-cycled: {reason}"
        log.warning("adapter power cycle adapter=%s reason=%s", self._adapter, reason)
        self._trouble(message)
        try:
            await self._power_cycle(self._adapter)
        except RADIO_ERRORS as exc:
            log.error("adapter power cycle failed adapter=%s reason=%s", self._adapter, exc)
            self._trouble(f"Bluetooth adapter {self._adapter} could not be power-cycled: {exc}")
        self._health = power_cycled(self._health, self._now())
        self._power_cycles += 1
        self._last_reason = reason

    # --- adverts and sessions ------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now().monotonic

    def _on_advert(self, ble_device: BLEDevice, advertisement: AdvertisementData) -> None:
        received = self._clock.now()
        self._health = advert_seen(self._health, received.monotonic)
        if self._on_any_advert is not None:
            try:
                self._on_any_advert(ble_device, advertisement)
            except Exception:  # a listener's bug must not stop the scanner the devices depend on
                log.exception("advert listener failed address=%s", ble_device.address)
        device = self._devices.get(ble_device.address.upper())
        if device is None:
            return
        device.ble_device = ble_device
        device.last_seen = received.monotonic
        if device.advert_session is not None:
            session = device.advert_session
            self._spawn(self._advert(device, session, dict(advertisement.service_data), received))
        else:
            self._maybe_connect(device, received.monotonic)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        if self._tasks is None:
            coroutine.close()
            return
        self._tasks.create_task(coroutine)

    async def _advert(
        self, device: _Device, session: AdvertSession, service_data: Mapping[str, bytes], received: HubTime
    ) -> None:
        async with device.advert_lock:
            try:
                await session.on_advert(service_data, received)
            except Exception:  # a sink failure for one button must not stop the scanner
                log.exception("advert handling failed device=%s", session.tag.device_id)

    def _maybe_connect(self, device: _Device, now: float) -> None:
        if device.session is None or device.ble_device is None:
            return
        if not should_connect(device.style, device.state, now):
            return
        device.state = session_started(device.state)
        self._spawn(self._connect_and_run(device, device.session, device.ble_device))

    async def _connect_and_run(self, device: _Device, session: ConnectedSession, ble_device: BLEDevice) -> None:
        outcome = SessionOutcome.CONNECT_FAILED
        try:
            async with self._slots:
                outcome = await self._session(device, session, ble_device)
        except Exception:  # the supervisor: one device's bug must not stop the others
            log.exception("BLE session crashed device=%s", session.tag.device_id)
            outcome = SessionOutcome.FAILED
        finally:
            device.state = session_ended(device.state, outcome, self._now(), self._backoff)

    async def _session(self, device: _Device, session: ConnectedSession, ble_device: BLEDevice) -> SessionOutcome:
        tag = session.tag
        disconnected = asyncio.Event()
        try:
            client = await establish_connection(
                self._client_class,
                ble_device,
                tag.device_id,
                disconnected_callback=lambda _client: disconnected.set(),
                max_attempts=self._connect_attempts,
                ble_device_callback=lambda: device.ble_device or ble_device,
            )
        except RADIO_ERRORS as exc:
            log.warning("connect failed device=%s address=%s reason=%s", tag.device_id, tag.address, exc)
            return SessionOutcome.CONNECT_FAILED
        device.connected = True
        log.info("connected device=%s address=%s", tag.device_id, tag.address)
        link = GattLink(
            client,
            device_id=tag.device_id,
            clock=self._clock,
            disconnected=disconnected,
            use_start_notify=session.use_start_notify,
        )
        try:
            await session.run(link)
        except RADIO_ERRORS as exc:
            log.warning("session failed device=%s reason=%s", tag.device_id, exc)
            return SessionOutcome.FAILED
        finally:
            device.connected = False
            with contextlib.suppress(*RADIO_ERRORS):
                async with asyncio.timeout(DISCONNECT_TIMEOUT_S):
                    await client.disconnect()
            log.info("disconnected device=%s", tag.device_id)
        return SessionOutcome.COMPLETED if device.style is ConnectionStyle.ON_ADVERT else SessionOutcome.LOST
