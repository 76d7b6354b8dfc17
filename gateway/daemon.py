"""The composition root: the only module that knows every part.

It builds the parts from the validated configuration, hands each its own
section, runs them as tasks of one TaskGroup on one event loop, and on
SIGTERM/SIGINT stops the drivers first (nothing new is accepted), then the
rest, so every accepted record is either uploaded or safely in the outbox.

Every service and device session runs under :func:`gateway.supervisor.supervise`:
a failure is put on the status board and restarted, never allowed to stop the
daemon (a hub that stops is a hub that no longer alerts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.model import ReadingType
from drivers.serial.gsm_modem import GsmModem
from gateway import __version__
from gateway.alerts.acks import ACK_MAX_BYTES
from gateway.alerts.falls import FallResponder
from gateway.alerts.model import AlertKind, Message, Severity
from gateway.alerts.service import AlertService
from gateway.alerts.sms import SmsNotifier
from gateway.ble_scan import HubScan
from gateway.clock import ClockSyncMode, SystemClock
from gateway.config import GatewayConfig, UplinkProfile
from gateway.detect.silence import SilenceWatch, watched_device
from gateway.detect.vital_state import VitalsMonitor
from gateway.driver_registry import (
    NOTIFIER_DRIVERS,
    Measurable,
    Resyncable,
    SessionContext,
    ble_devices,
    serial_devices,
    start_device,
)
from gateway.errors import StoreError
from gateway.family import FamilyLinks, family_accounts, sms_contacts
from gateway.fleet.answered import AnsweredRequests
from gateway.fleet.commands import MAX_PAYLOAD_BYTES as COMMAND_MAX_BYTES
from gateway.fleet.commands import CommandService
from gateway.fleet.handlers import CommandParts, fleet_commands
from gateway.fleet.signing import load_public_key
from gateway.hub import Hub
from gateway.inbox import Inbox, Route
from gateway.log_ring import LogRing
from gateway.mqtt import IncomingMessage, LinkSettings, MqttLink
from gateway.mqtt_policy import Subscription
from gateway.sdnotify import notify, watchdog_interval_s
from gateway.status import DeviceStatusBoard, fallback_status_path
from gateway.status_publisher import StatusPublisher
from gateway.store.aio import AsyncOutbox
from gateway.supervisor import supervise
from gateway.topics import ACK_FILTER, COMMAND_FILTER, legacy_retained_topics
from gateway.uplink import FhirEncoder, Uplink, load_secret

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
SILENCE_CHECK_S = 60.0
REPEAT_CHECK_S = 5.0
STORAGE_CARE_S = 2.0
"""How often the outbox is looked after (reopened, checked for deletion, held records written):
records held while the disk failed reach it within seconds of the disk coming back."""
RESTARTED_DURING_FALL = Message("网关在跌倒取消期内重启，无法确认是否起身，请立即查看",
                                "The hub restarted during a fall's cancel window: check on the resident now")
STOP_GRACE_S = 10.0


HUB_SUBSCRIPTIONS = (Subscription(ACK_FILTER, ACK_MAX_BYTES), Subscription(COMMAND_FILTER, COMMAND_MAX_BYTES))
"""What the hub listens to, each with the most a message there may carry (routed by :mod:`gateway.inbox`)."""


def outbox_path(cfg: GatewayConfig) -> Path:
    return Path(cfg.gateway.data_dir) / "outbox.sqlite"


def status_path(cfg: GatewayConfig) -> Path:
    return Path(cfg.gateway.data_dir) / "status.json"


def answered_commands_path(cfg: GatewayConfig) -> Path:
    return Path(cfg.gateway.data_dir) / "fleet" / "commands.json"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _read_optional(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8").strip() if path else None


def _tls_context(cfg: GatewayConfig) -> ssl.SSLContext | None:
    if not cfg.mqtt.tls:
        return None
    return ssl.create_default_context(cafile=str(cfg.mqtt.ca_file) if cfg.mqtt.ca_file else None)


def _nothing() -> None:
    pass


@dataclass(frozen=True, slots=True)
class DeviceSessions:
    """The device sessions the daemon runs, and what the fleet's commands may ask of them."""

    jobs: tuple[tuple[str, Callable[[], Awaitable[None]]], ...]
    measurable: Mapping[str, Measurable]
    resyncable: Mapping[str, Resyncable]
    scan: HubScan
    """The fleet's BLE scan: through the BLE manager's scanner when there is one."""

    @classmethod
    def of(cls, jobs: Sequence[tuple[str, Callable[[], Awaitable[None]]]], sessions: Mapping[str, object],
           scan: HubScan) -> DeviceSessions:
        return cls(tuple(jobs), {i: s for i, s in sessions.items() if isinstance(s, Measurable)},
                   {i: s for i, s in sessions.items() if isinstance(s, Resyncable)}, scan)


class Daemon:
    def __init__(self, cfg: GatewayConfig, log_ring: LogRing | None = None) -> None:
        """``log_ring``: the in-memory log lines installed by gateway.logs.setup_logging (the fleet's ``logs``)."""
        self.cfg = cfg
        self.tz = ZoneInfo(cfg.gateway.timezone)
        self.clock = SystemClock(ClockSyncMode(cfg.gateway.clock_sync))
        self.board = DeviceStatusBoard()
        self.started_at = _utc_now()
        self.log_ring = log_ring

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        secret = await self._secret()
        fleet_key_file = cfg.fleet.public_key_file
        fleet_key = await asyncio.to_thread(load_public_key, fleet_key_file) if fleet_key_file else None
        outbox = await self._open_outbox()
        mqtt = await self._mqtt()
        uplink = self._uplink(secret, outbox)
        wake_uplink = uplink.wake if uplink is not None else _nothing
        modem, sms = self._sms(cfg)
        family = FamilyLinks.of(family_accounts(cfg.contacts, self._resident_ids()))
        alerts = AlertService(outbox=outbox, publisher=mqtt, tz=self.tz, now=_utc_now, on_stored=wake_uplink,
                              clock_synced=self.clock.synced, listeners=[sms.on_change] if sms else [],
                              repeat_s={Severity.EMERGENCY: cfg.alerts.repeat_emergency_s,
                                        Severity.URGENT: cfg.alerts.repeat_urgent_s},
                              family=family)
        await self._restore_alerts(alerts)
        for topic in legacy_retained_topics([a.alert_id for a in alerts.active], [t.value for t in ReadingType]):
            mqtt.publish(topic, None, retain=True)
        falls = FallResponder(alerts=alerts, outbox=outbox, tz=self.tz, now_wall=_utc_now,
                              now_monotonic=time.monotonic, on_stored=wake_uplink, clock_synced=self.clock.synced,
                              cancel_window_s=cfg.detect.fall_cancel_window_s, long_lie_s=cfg.detect.long_lie_s,
                              # hub is built below: the lambda looks it up when a fall is confirmed
                              on_confirmed=lambda resident, at: hub.fall_confirmed(resident, at))  # noqa: PLW0108
        silence = SilenceWatch([w for d in cfg.devices if (w := watched_device(d)) is not None],
                               started_at=time.monotonic())
        hub = Hub(gateway_id=cfg.gateway.id, outbox=outbox, alerts=alerts, publisher=mqtt, board=self.board,
                  vitals=VitalsMonitor(cfg.thresholds_for), silence=silence, tz=self.tz, now=_utc_now,
                  now_monotonic=time.monotonic, max_reading_age_s=cfg.detect.max_reading_age_s, falls=falls,
                  on_accepted=wake_uplink)

        status = StatusPublisher(cfg.gateway.id, status_path(cfg), fallback_status_path(cfg.gateway.id), self.board,
                                 outbox, uplink, mqtt, mqtt.connected.is_set, self.clock.synced, self.started_at)
        mqtt.on_connect(status.schedule)
        devices = self._device_sessions(hub, outbox)
        commands = await self._commands(mqtt, fleet_key, alerts, status, devices)
        mqtt.on_connect(alerts.republish_active)
        await mqtt.start()
        log.info("gateway starting id=%s version=%s devices=%d data_dir=%s", cfg.gateway.id, __version__,
                 len(cfg.devices), cfg.gateway.data_dir)
        try:
            async with asyncio.TaskGroup() as group:
                drivers = [group.create_task(self._supervised(name, start), name=name)
                           for name, start in devices.jobs]
                service_jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                    ("status", status.run),
                    ("storage", lambda: self._every(STORAGE_CARE_S, outbox.maintain)),
                    ("prune", lambda: self._every(PRUNE_EVERY_S, outbox.prune)),
                    ("mqtt-inbox", lambda: self._inbox(mqtt, alerts, commands)),
                    ("watchdog", self._watchdog),
                    ("falls", falls.run),
                    ("repeats", lambda: self._every(REPEAT_CHECK_S, alerts.repeat_due)),
                    ("silence", lambda: self._every(SILENCE_CHECK_S, hub.check_silence)),
                ]
                if modem is not None:
                    service_jobs.append(("gsm-modem", modem.run))
                if uplink is not None:
                    service_jobs.append(("uplink", uplink.run))
                services = [group.create_task(self._supervised(name, start), name=name)
                            for name, start in service_jobs]
                notify("READY=1")
                log.info("gateway ready")
                await stop.wait()
                notify("STOPPING=1")
                log.info("gateway stopping: drivers first, then uplink and broker")
                for task in drivers:
                    task.cancel()
                if drivers:
                    await asyncio.wait(drivers, timeout=STOP_GRACE_S)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(status.publish(), 2.0)
                for task in services:
                    task.cancel()
        finally:
            if sms is not None:
                await sms.aclose()
            await mqtt.stop()
            await outbox.close()
            log.info("gateway stopped")

    async def _secret(self) -> bytes:
        # Refuse to start on a secret others can read, before anything else is touched.
        platform = self.cfg.platform
        return await asyncio.to_thread(load_secret, Path(platform.secret_file)) if platform.enabled else b""

    def _resident_ids(self) -> list[str]:
        return [resident.id for resident in self.cfg.residents]

    async def _open_outbox(self) -> AsyncOutbox:
        """The outbox, even when its disk fails now: the daemon starts, holds records in memory and says so."""
        storage = self.cfg.storage
        outbox = await AsyncOutbox.start(
            outbox_path(self.cfg),
            budget_bytes=storage.budget_mb * 2**20,
            warn_ratio=storage.warn_percent / 100,
            delivered_retention_s=storage.delivered_retention_days * 86400.0,
            reserve_bytes=storage.reserve_mb * 2**20,
        )
        if not outbox.health.writable:
            log.error("gateway starting without a writable outbox path=%s: alerts still go out, records are held "
                      "in memory until the data directory can be written", outbox.path)
        return outbox

    @staticmethod
    async def _restore_alerts(alerts: AlertService) -> None:
        try:
            restored = await alerts.restore()
        except StoreError as exc:
            log.error("open alerts could not be read back after the restart: %s", exc)
            return
        for alert in restored:
            # A fall still in its cancel window when the hub went down: nobody can now tell whether
            # the resident got up, and a missed fall is the worst failure there is. Escalate.
            if alert.kind is AlertKind.FALL and alert.severity is not Severity.EMERGENCY:
                await alerts.escalate(alert.alert_id, severity=Severity.EMERGENCY, message=RESTARTED_DURING_FALL,
                                      evidence={"outcome": "hub_restarted"})

    async def _mqtt(self) -> MqttLink:
        cfg = self.cfg.mqtt
        password = await asyncio.to_thread(_read_optional, cfg.password_file)
        return MqttLink(LinkSettings(
            host=cfg.host, port=cfg.port, gateway_id=self.cfg.gateway.id, topic_root=cfg.topic_root,
            client_id=cfg.client_id, username=cfg.username or None, password=password, keepalive_s=cfg.keepalive_s,
            tls=_tls_context(self.cfg),
        ), subscriptions=HUB_SUBSCRIPTIONS)

    def _uplink(self, secret: bytes, outbox: AsyncOutbox) -> Uplink | None:
        cfg = self.cfg.platform
        if not cfg.enabled:
            log.warning("platform upload is DISABLED in the configuration: records stay in the outbox")
            return None
        fhir = cfg.profile is UplinkProfile.FHIR_R4
        return Uplink(
            gateway_id=self.cfg.gateway.id, base_url=cfg.fhir_base if fhir else cfg.url, secret=secret,
            outbox=outbox, clock_synced=self.clock.synced, batch_max_records=cfg.batch_max_records,
            batch_max_bytes=cfg.batch_max_bytes, gzip=cfg.gzip, timeout_s=cfg.timeout_s,
            backoff_initial_s=cfg.backoff_initial_s, backoff_cap_s=cfg.backoff_max_s,
            encoder=FhirEncoder() if fhir else None,
        )

    def _device_sessions(self, hub: Hub, outbox: AsyncOutbox) -> DeviceSessions:
        """One session per serial device; all BLE devices share one manager (one scanner per process)."""
        ctx = SessionContext(clock=self.clock, tz=self.tz, hub=hub)
        jobs: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        sessions: dict[str, object] = {}
        for device in serial_devices(self.cfg.devices):
            session = sessions[device.id] = start_device(device, ctx, self.board)
            jobs.append((f"device:{device.id}", session.run))
        if not (ble := ble_devices(self.cfg.devices)):
            return DeviceSessions.of(jobs, sessions, HubScan())
        # Loaded only with BLE devices configured: bleak and bthome-ble cost some 20 MB of RSS.
        from gateway.ble_wiring import BleDevices  # noqa: PLC0415

        for device in ble:
            self.board.register(device.id, device.driver)
        ble_hub = BleDevices(
            ble, clock=self.clock, tz=self.tz, on_readings=hub.on_readings, on_motion=hub.on_motion,
            on_event=hub.on_event, cursor_get=outbox.get_cursor, cursor_set=outbox.set_cursor,
            report_error=lambda component, message: self.board.error(component, _utc_now(), message),
        )
        sessions.update(ble_hub.sessions)
        jobs.append(("ble", ble_hub.run))
        # The fleet's scan listens to the manager's scanner: a second one in this process would be refused.
        return DeviceSessions.of(jobs, sessions, HubScan(ble_hub.tap, ble_hub.scanning))

    def _sms(self, cfg: GatewayConfig) -> tuple[GsmModem | None, SmsNotifier | None]:
        contacts = sms_contacts(cfg.contacts, self._resident_ids())
        device = next((d for d in cfg.devices if d.driver in NOTIFIER_DRIVERS), None)
        if device is None:
            if contacts:
                log.warning("SMS is OFF: %d contact(s) with a phone configured but no gsm-modem device",
                            len(contacts))
            return None, None
        self.board.register(device.id, device.driver)
        modem = GsmModem(device_id=device.id, port=device.port, baudrate=device.baudrate or 115200)
        if not contacts:
            log.warning("gsm-modem %s configured but no [[contacts]] with a phone: nobody gets SMS", device.id)
        return modem, SmsNotifier(modem, contacts, _utc_now, tz=self.tz,
                                  max_per_contact_per_hour=cfg.sms.max_per_contact_per_hour)

    @staticmethod
    async def _inbox(mqtt: MqttLink, alerts: AlertService, commands: CommandService) -> None:
        """Family acks and fleet commands (the filters ``_mqtt`` subscribes), each message handled alone."""

        async def ack(message: IncomingMessage) -> None:
            await alerts.handle_ack(message.topic, None if message.oversized else message.payload,
                                    retained=message.retained)

        async def command(message: IncomingMessage) -> None:
            if not message.oversized:  # no request id to answer to
                await commands.handle(message.topic, message.payload)

        await Inbox([Route(ACK_FILTER, ack), Route(COMMAND_FILTER, command, background=True)]).serve(mqtt.receive)

    async def _commands(self, mqtt: MqttLink, key: Ed25519PublicKey | None, alerts: AlertService,
                        status: StatusPublisher, devices: DeviceSessions) -> CommandService:
        cfg = self.cfg
        answered = await AnsweredRequests.load(answered_commands_path(cfg), now=_utc_now(),
                                               clock_synced=self.clock.synced())
        parts = CommandParts(
            version=__version__, started_at=self.started_at, now=_utc_now, status=status, alerts=alerts,
            resident_ids=tuple(self._resident_ids()), measurable=devices.measurable, resyncable=devices.resyncable,
            log_ring=self.log_ring, scan=devices.scan,
            ble_addresses={d.address: d.id for d in cfg.devices if d.address},
        )
        return CommandService(gateway_id=cfg.gateway.id, public_key=key, commands=fleet_commands(parts),
                              reply=mqtt.publish, answered=answered, now=_utc_now, clock_synced=self.clock.synced)

    @staticmethod
    async def _every(period_s: float, job: Callable[[], Awaitable[object]]) -> None:
        while True:
            await job()
            await asyncio.sleep(period_s)

    async def _supervised(self, name: str, start: Callable[[], Awaitable[None]]) -> None:
        await supervise(name, start, lambda service, text: self.board.problem(f"service:{service}", text))

    @staticmethod
    async def _watchdog() -> None:
        interval = watchdog_interval_s()
        if interval is None:
            return
        while True:
            # Fed from the loop itself: a blocked loop stops the pings and systemd restarts us.
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def run_until_signalled(cfg: GatewayConfig, log_ring: LogRing | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    await Daemon(cfg, log_ring).run(stop)
    log.info("ran for %.0f s", time.monotonic() - started)
