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
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from drivers.model import ReadingType
from gateway import __version__
from gateway.alerts.acks import ACK_MAX_BYTES, SNOOZE_MAX_BYTES
from gateway.alerts.sms import SmsNotifier
from gateway.ble_scan import HubScan, ScanReport
from gateway.clock import PLAUSIBLE_FROM, ClockSyncMode, SystemClock, kernel_clock_synced
from gateway.clock_watch import ClockWatch
from gateway.config import GatewayConfig, UplinkProfile
from gateway.detect.silence import SilenceWatch, watched_device
from gateway.detect.vital_state import VitalsMonitor
from gateway.doctor import Report, in_daemon_report
from gateway.driver_registry import (
    Measurable,
    Notifier,
    Resyncable,
    SessionContext,
    ble_devices,
    build_notifier,
    notifier_device,
    serial_devices,
    start_device,
)
from gateway.errors import StoreError
from gateway.family import roster_of
from gateway.fleet.answered import AnsweredRequests
from gateway.fleet.commands import MAX_PAYLOAD_BYTES as COMMAND_MAX_BYTES
from gateway.fleet.commands import CommandService
from gateway.fleet.handlers import CommandParts, fleet_commands
from gateway.fleet.health import HealthTargets, check_health, probe_record
from gateway.fleet.overlay import LocalConfig
from gateway.fleet.service import ConfigDocumentService, HealthResult
from gateway.fleet.signing import load_public_key
from gateway.fleet.state import status_fields
from gateway.fleet.statefile import FleetStateFile, state_path
from gateway.homeassistant.discovery import readings_by_resident
from gateway.homeassistant.publisher import DiscoveryPublisher
from gateway.hub import Hub
from gateway.inbox import Inbox, Route
from gateway.log_ring import LogRing
from gateway.mqtt import IncomingMessage, LinkSettings, MqttLink
from gateway.mqtt_policy import MAX_PACKET_BYTES, Subscription
from gateway.reload import ReloadPlan, plan_reload
from gateway.respond.contacts import Roster
from gateway.respond.falls import FallResponder, escalate_interrupted_falls
from gateway.respond.service import AlertService
from gateway.sdnotify import notify, watchdog_interval_s
from gateway.status import DeviceStatusBoard, runtime_status_path
from gateway.status_publisher import StatusPublisher
from gateway.store import Database, Intake, StorageLimits, active_alerts, cursors, records
from gateway.store.api import RecordState
from gateway.supervisor import supervise
from gateway.topics import ACK_FILTER, COMMAND_FILTER, SNOOZE_FILTER, legacy_retained_topics
from gateway.uplink import FhirEncoder, Uplink, load_secret
from gateway.vocabulary import Severity

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
SILENCE_CHECK_S = 60.0
REPEAT_CHECK_S = 5.0
STREAM_CHECK_S = 10.0
"""How often a stream's gathered summaries are looked at: committed once STREAM_COMMIT_S has gone by
(gateway.hub), even when the stream has stopped."""
STORAGE_CARE_S = 2.0
"""How often the outbox is looked after (reopened, checked for deletion, held records written):
records held while the disk failed reach it within seconds of the disk coming back."""
STOP_GRACE_S = 10.0


CONFIG_DESIRED = "config/desired"
CONFIG_REPORTED = "config/reported"
HUB_SUBSCRIPTIONS = (Subscription(ACK_FILTER, ACK_MAX_BYTES), Subscription(SNOOZE_FILTER, SNOOZE_MAX_BYTES),
                     Subscription(COMMAND_FILTER, COMMAND_MAX_BYTES),
                     # Up to what the broker's packet limit lets through, not the 256 KiB a document may
                     # have: one a little over is then refused by the document path, with a report.
                     Subscription(CONFIG_DESIRED, MAX_PACKET_BYTES))
"""What the hub listens to, each with the most a message there may carry (routed by :mod:`gateway.inbox`)."""


def outbox_path(cfg: GatewayConfig) -> Path:
    return Path(cfg.gateway.data_dir) / "outbox.sqlite"


def _storage_limits(cfg: GatewayConfig) -> StorageLimits:
    storage = cfg.storage
    return StorageLimits(budget_bytes=storage.budget_mb * 2**20, warn_ratio=storage.warn_percent / 100,
                         delivered_retention_s=storage.delivered_retention_days * 86400.0)


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


def _repeat_intervals(cfg: GatewayConfig) -> dict[Severity, float]:
    return {Severity.EMERGENCY: cfg.alerts.repeat_emergency_s, Severity.URGENT: cfg.alerts.repeat_urgent_s}


def _roster(cfg: GatewayConfig) -> Roster:
    return roster_of(cfg.contacts, [resident.id for resident in cfg.residents])


def _silence_watch(cfg: GatewayConfig) -> SilenceWatch:
    return SilenceWatch([w for d in cfg.devices if (w := watched_device(d)) is not None],
                        started_at=time.monotonic())


class Daemon:
    """The running hub. Built once; :meth:`reload` moves it to a new configuration in place."""

    def __init__(self, cfg: GatewayConfig, local: LocalConfig | None = None, log_ring: LogRing | None = None) -> None:
        """``local``: the hub's own configuration file, when the fleet may configure it (``yiyang run``);
        ``log_ring``: the in-memory log lines installed by gateway.logs.setup_logging (the fleet's ``logs``)."""
        self.cfg = cfg
        self._local = local
        self.log_ring = log_ring
        self.tz = ZoneInfo(cfg.gateway.timezone)
        self.clock = SystemClock(ClockSyncMode(cfg.gateway.clock_sync))
        self.board = DeviceStatusBoard()
        self.started_at = _utc_now()
        self.measurable: dict[str, Measurable] = {}
        self.resyncable: dict[str, Resyncable] = {}
        self._scan = HubScan()
        """The fleet's BLE scan: through the BLE manager's scanner when there is one."""
        self.uplink: Uplink | None = None
        self._group: asyncio.TaskGroup | None = None
        self._device_tasks: dict[str, asyncio.Task[None]] = {}
        self._uplink_task: asyncio.Task[None] | None = None
        self._modem_task: asyncio.Task[None] | None = None
        self._sms: SmsNotifier | None = None
        self._reload_lock = asyncio.Lock()
        self._broker_was_connected = False
        self.fleet: ConfigDocumentService | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await self._build()
        mqtt, db, intake = self.mqtt, self.db, self.intake
        await mqtt.start()
        log.info("gateway starting id=%s version=%s devices=%d data_dir=%s", self.cfg.gateway.id, __version__,
                 len(self.cfg.devices), self.cfg.gateway.data_dir)
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._start_sms(self.cfg)
                self._start_uplink()
                self._start_devices(self.cfg, [d.id for d in serial_devices(self.cfg.devices)], ble=True)
                services = [self._spawn(name, start) for name, start in self._services()]
                notify("READY=1")
                log.info("gateway ready")
                await stop.wait()
                await self._stop(services)
        finally:
            self._group = None
            if self._sms is not None:
                await self._sms.aclose()
            await mqtt.stop()
            await intake.close()
            await db.close()
            log.info("gateway stopped")

    async def _build(self) -> None:
        """Every long-lived part, from the configuration; nothing runs yet."""
        cfg = self.cfg
        secret = await self._secret()
        fleet_key_file = cfg.fleet.public_key_file
        fleet_key = await asyncio.to_thread(load_public_key, fleet_key_file) if fleet_key_file else None
        self.db = db = await self._open_outbox()
        self.intake = intake = Intake(db, stamp_now=self.clock.stamp_now)
        self.clock_watch = ClockWatch(self.clock, intake, db, monotonic=time.monotonic,
                                      on_corrected=self._wake_uplink)
        self.mqtt = mqtt = MqttLink(await self._link_settings(cfg), subscriptions=HUB_SUBSCRIPTIONS)
        self.uplink = self._build_uplink(cfg, secret)
        self.alerts = alerts = AlertService(
            outbox=intake, publisher=mqtt, tz=self.tz, now=_utc_now, on_stored=self._wake_uplink,
            clock_synced=self.clock.synced, listeners=[], repeat_s=_repeat_intervals(cfg), roster=_roster(cfg),
            escalate_after_s=cfg.alerts.escalate_after_s, residents=[r.id for r in cfg.residents])
        await self._restore_alerts(db, alerts)
        for topic in legacy_retained_topics([a.alert_id for a in alerts.active], [t.value for t in ReadingType]):
            mqtt.publish(topic, None, retain=True)
        self.falls = FallResponder(
            alerts=alerts, outbox=intake, store=db, tz=self.tz, now_wall=_utc_now, now_monotonic=time.monotonic,
            on_stored=self._wake_uplink, clock_synced=self.clock.synced,
            cancel_window_s=cfg.detect.fall_cancel_window_s, long_lie_s=cfg.detect.long_lie_s,
            # hub is built below: the lambda looks it up when a fall is confirmed
            on_confirmed=lambda resident, at: self.hub.fall_confirmed(resident, at),  # noqa: PLW0108
            upright_get=self._cursor_get, upright_set=self._cursor_set)
        # Thresholds are read per reading from the configuration in force: a reload changes them at once.
        self.hub = Hub(gateway_id=cfg.gateway.id, outbox=intake, alerts=alerts, publisher=mqtt, board=self.board,
                       vitals=VitalsMonitor(lambda rid: self.cfg.thresholds_for(rid)),  # noqa: PLW0108
                       silence=_silence_watch(cfg), tz=self.tz, now=_utc_now, now_monotonic=time.monotonic,
                       max_reading_age_s=cfg.detect.max_reading_age_s, falls=self.falls,
                       on_accepted=self._wake_uplink, stamp=self.clock.stamp)
        self.fleet = fleet = await self._fleet_service(fleet_key)
        self.status = status = StatusPublisher(
            cfg.gateway.id, status_path(cfg), runtime_status_path(cfg.gateway.id, cfg.gateway.data_dir), self.board,
            db, intake,
            self.uplink, mqtt, mqtt.connected.is_set, self.clock.synced, self.started_at,
            fleet=(lambda: status_fields(fleet.state)) if fleet is not None else None,
            clock_step=lambda: self.clock_watch.last_step)
        mqtt.on_connect(status.schedule)
        if fleet is not None:
            mqtt.on_connect(fleet.publish_last_report)
        self.commands = await self._commands(mqtt, fleet_key)
        mqtt.on_connect(alerts.republish_active)
        self.homeassistant = DiscoveryPublisher(mqtt, db)
        await self._configure_homeassistant(cfg)
        mqtt.on_connect(self.homeassistant.connected)

    def _services(self) -> list[tuple[str, Callable[[], Awaitable[None]]]]:
        db, intake, alerts = self.db, self.intake, self.alerts
        return [
            ("status", self.status.run),
            ("clock", self.clock_watch.run),
            ("storage", lambda: self._every(STORAGE_CARE_S, intake.maintain)),
            ("prune", lambda: self._every(PRUNE_EVERY_S, db.prune)),
            ("mqtt-inbox", lambda: self._inbox(self.mqtt, alerts, self.commands, self.fleet)),
            ("watchdog", self._watchdog),
            ("falls", self.falls.run),
            ("repeats", lambda: self._every(REPEAT_CHECK_S, alerts.follow_up)),
            ("silence", lambda: self._every(SILENCE_CHECK_S, self.hub.check_silence)),
            ("streams", lambda: self._every(STREAM_CHECK_S, lambda: self.hub.flush_streams(due_only=True))),
        ]

    async def _stop(self, services: list[asyncio.Task[None]]) -> None:
        """Drivers first (nothing new is accepted), a last status, then the rest."""
        notify("STOPPING=1")
        log.info("gateway stopping: drivers first, then uplink and broker")
        drivers = list(self._device_tasks.values())
        for task in drivers:
            task.cancel()
        if drivers:
            await asyncio.wait(drivers, timeout=STOP_GRACE_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.hub.flush_streams(), STOP_GRACE_S)  # the last minute of a stream
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.status.publish(to_disk=True), 2.0)
        for service in (*services, self._uplink_task, self._modem_task):
            if service is not None:
                service.cancel()

    # -- reloading in place ------------------------------------------------------------------------

    async def reload(self, new: GatewayConfig) -> ReloadPlan:
        """Move the running hub to ``new`` (validated): restart only what changed, in this process.

        The outbox, the open alerts and the falls being watched carry on; a device whose settings did
        not change keeps its connection. Raises what a rebuilt part raises (e.g. an unreadable new
        secret): the caller (the fleet's apply) then reloads the previous configuration.
        """
        async with self._reload_lock:
            old = self.cfg
            plan = plan_reload(old, new)
            log.info("reloading configuration changes=%s", "; ".join(plan.describe()) or "none")
            secret = await self._secret_of(new) if plan.uplink else None
            settings = await self._link_settings(new) if plan.mqtt else None
            self.cfg = new
            if plan.timezone:
                self.tz = ZoneInfo(new.gateway.timezone)
            if plan.clock_sync:
                self.clock.set_mode(ClockSyncMode(new.gateway.clock_sync))
            if plan.log_level:
                logging.getLogger().setLevel(new.gateway.log_level.value.upper())
            await self._reload_devices(old, new, plan)
            if plan.uplink:
                await self._cancel(self._uplink_task)
                self.uplink = self._build_uplink(new, secret or b"")
                self.status.uplink = self.uplink
                self._start_uplink()
            if settings is not None:
                await self.mqtt.reconfigure(settings)
            if plan.sms or plan.timezone:
                await self._cancel(self._modem_task)
                if self._sms is not None:
                    await self._sms.aclose()
                self._start_sms(new)
            self._retune_alerts(new)
            await self._configure_homeassistant(new)
            self.falls.reconfigure(cancel_window_s=new.detect.fall_cancel_window_s,
                                   long_lie_s=new.detect.long_lie_s, tz=self.tz)
            devices_changed = old.devices != new.devices
            self.hub.reconfigure(max_reading_age_s=new.detect.max_reading_age_s, tz=self.tz,
                                 silence=_silence_watch(new) if devices_changed else None)
            if plan.storage:
                storage = new.storage
                await self.db.set_limits(_storage_limits(new), reserve_bytes=storage.reserve_mb * 2**20)
            self.commands.replace_commands(fleet_commands(self._command_parts()))
            self.status.schedule()
            log.info("configuration reloaded")
            return plan

    async def _configure_homeassistant(self, cfg: GatewayConfig) -> None:
        """Home Assistant's discovery configs for this configuration (published again at every reload)."""
        await self.homeassistant.configure(
            cfg.homeassistant, gateway_id=cfg.gateway.id, hub_root=self.mqtt.root.rstrip("/"), version=__version__,
            residents=readings_by_resident([r.id for r in cfg.residents], cfg.devices))

    async def check_health(self, old: GatewayConfig, new: GatewayConfig, *, grace_s: float, version: int,
                           broker_was_connected: bool) -> HealthResult:
        """After :meth:`reload` from ``old`` to ``new``: is the hub still well (gateway.fleet.health)?"""
        plan = plan_reload(old, new)
        uplink = self.uplink
        targets = HealthTargets(
            broker_connected=self.mqtt.connected, accept=self.intake.accept, record_state=self._record_state,
            wake_uplink=self._wake_uplink,
            uplink_error=lambda: uplink.status.last_error if uplink is not None else None,
            uplink_success_at=lambda: uplink.status.last_success_at if uplink is not None else None,
            serial_ports={d.id: (i, d.port) for i, d in enumerate(new.devices) if d in serial_devices(new.devices)},
        )
        probe = None
        if new.platform.enabled:
            probe = probe_record(gateway_id=new.gateway.id, version=version, at=_utc_now(),
                                 synced=self.clock.synced(), tz=self.tz)
        return await check_health(plan, targets, grace_s=grace_s, broker_was_connected=broker_was_connected,
                                  probe=probe)

    async def _reload_devices(self, old: GatewayConfig, new: GatewayConfig, plan: ReloadPlan) -> None:
        # A new time zone reaches device clocks through their sessions: every session restarts.
        restart_all = plan.timezone
        stop = [*plan.serial_removed, *plan.serial_changed]
        start = [*plan.serial_added, *plan.serial_changed]
        if restart_all:
            stop = [d.id for d in serial_devices(old.devices)]
            start = [d.id for d in serial_devices(new.devices)]
        for device_id in stop:
            self.measurable.pop(device_id, None)
            self.resyncable.pop(device_id, None)
            await self._cancel(self._device_tasks.pop(f"device:{device_id}", None))
        for device_id in plan.serial_removed:
            self.board.forget(device_id)
        ble = plan.ble or restart_all
        if ble:
            await self._cancel(self._device_tasks.pop("ble", None))
            for device in ble_devices(old.devices):
                self.measurable.pop(device.id, None)
                self.resyncable.pop(device.id, None)
                if device.id not in {d.id for d in new.devices}:
                    self.board.forget(device.id)
        self._start_devices(new, start, ble=ble)

    # -- parts -------------------------------------------------------------------------------------

    def _spawn(self, name: str, start: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        assert self._group is not None, "parts are started while the daemon runs"
        return self._group.create_task(self._supervised(name, start), name=name)

    @staticmethod
    async def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is None or task.done():
            return
        task.cancel()
        await asyncio.wait({task}, timeout=STOP_GRACE_S)

    def _wake_uplink(self) -> None:
        if self.uplink is not None:
            self.uplink.wake()

    def _start_uplink(self) -> None:
        uplink = self.uplink
        self._uplink_task = self._spawn("uplink", uplink.run) if uplink is not None else None

    def _start_sms(self, cfg: GatewayConfig) -> None:
        modem, self._sms = self._build_sms(cfg)
        self._modem_task = self._spawn("gsm-modem", modem.run) if modem is not None else None
        self._retune_alerts(cfg)

    def _retune_alerts(self, cfg: GatewayConfig) -> None:
        self.alerts.reconfigure(repeat_s=_repeat_intervals(cfg), roster=_roster(cfg), tz=self.tz,
                                listeners=[self._sms.on_change] if self._sms else [],
                                escalate_after_s=cfg.alerts.escalate_after_s, residents=[r.id for r in cfg.residents])

    def _start_devices(self, cfg: GatewayConfig, serial_ids: list[str], *, ble: bool) -> None:
        """Start the sessions of these serial devices, and the BLE manager for every BLE device if ``ble``."""
        ctx = SessionContext(clock=self.clock, tz=self.tz, hub=self.hub)
        wanted = set(serial_ids)
        for device in serial_devices(cfg.devices):
            if device.id not in wanted:
                continue
            session = start_device(device, ctx, self.board)
            self._track(device.id, session)
            name = f"device:{device.id}"
            self._device_tasks[name] = self._spawn(name, session.run)
        if not ble:
            return
        ble_list = ble_devices(cfg.devices)
        if not ble_list:
            self._scan = HubScan()
            return
        # Loaded only with BLE devices configured: bleak and bthome-ble cost some 20 MB of RSS.
        from gateway.ble_wiring import BleDevices  # noqa: PLC0415

        for device in ble_list:
            self.board.register(device.id, device.driver)
        ble_hub = BleDevices(
            ble_list, clock=self.clock, tz=self.tz, on_readings=self.hub.on_readings, on_motion=self.hub.on_motion,
            on_event=self.hub.on_event, cursor_get=self._cursor_get, cursor_set=self._cursor_set,
            report_error=lambda component, message: self.board.error(component, _utc_now(), message),
        )
        for device_id, ble_session in ble_hub.sessions.items():
            self._track(device_id, ble_session)
        self._device_tasks["ble"] = self._spawn("ble", ble_hub.run)
        # The fleet's scan listens to the manager's scanner: a second one in this process would be refused.
        self._scan = HubScan(ble_hub.tap, ble_hub.scanning)

    def _track(self, device_id: str, session: object) -> None:
        """What the fleet's commands may ask of a session: measure now, read its memory again."""
        if isinstance(session, Measurable):
            self.measurable[device_id] = session
        if isinstance(session, Resyncable):
            self.resyncable[device_id] = session

    async def _secret(self) -> bytes:
        # Refuse to start on a secret others can read, before anything else is touched.
        return await self._secret_of(self.cfg)

    @staticmethod
    async def _secret_of(cfg: GatewayConfig) -> bytes:
        platform = cfg.platform
        return await asyncio.to_thread(load_secret, Path(platform.secret_file)) if platform.enabled else b""

    def _resident_ids(self) -> list[str]:
        return [resident.id for resident in self.cfg.residents]

    async def _open_outbox(self) -> Database:
        """The outbox, even when its disk fails now: the daemon starts, holds records in memory and says so."""
        db = await Database.start(outbox_path(self.cfg), limits=_storage_limits(self.cfg),
                                  reserve_bytes=self.cfg.storage.reserve_mb * 2**20)
        if db.write_error is not None:
            log.error("gateway starting without a writable outbox path=%s: alerts still go out, records are held "
                      "in memory until the data directory can be written", db.path)
        return db

    async def _cursor_get(self, name: str) -> str | None:
        return await self.db.run(cursors.get(name))

    async def _cursor_set(self, name: str, value: str) -> None:
        await self.db.run(cursors.put(name, value))

    async def _record_state(self, record_id: str) -> RecordState | None:
        return await self.db.run(records.state(record_id))

    @staticmethod
    async def _restore_alerts(db: Database, alerts: AlertService) -> None:
        try:
            restored = alerts.restore(await db.run(active_alerts.all_open()))
        except StoreError as exc:
            log.error("open alerts could not be read back after the restart: %s", exc)
            return
        await escalate_interrupted_falls(alerts, restored)

    @staticmethod
    async def _link_settings(cfg: GatewayConfig) -> LinkSettings:
        mqtt = cfg.mqtt
        password = await asyncio.to_thread(_read_optional, mqtt.password_file)
        return LinkSettings(
            host=mqtt.host, port=mqtt.port, gateway_id=cfg.gateway.id, topic_root=mqtt.topic_root,
            client_id=mqtt.client_id, username=mqtt.username or None, password=password, keepalive_s=mqtt.keepalive_s,
            tls=_tls_context(cfg),
        )

    def _build_uplink(self, cfg: GatewayConfig, secret: bytes) -> Uplink | None:
        platform = cfg.platform
        if not platform.enabled:
            log.warning("platform upload is DISABLED in the configuration: records stay in the outbox")
            return None
        fhir = platform.profile is UplinkProfile.FHIR_R4
        return Uplink(
            gateway_id=cfg.gateway.id, base_url=platform.fhir_base if fhir else platform.url, secret=secret,
            outbox=self.db, held_before=PLAUSIBLE_FROM, clock_synced=self.clock.synced,
            batch_max_records=platform.batch_max_records,
            batch_max_bytes=platform.batch_max_bytes, gzip=platform.gzip, timeout_s=platform.timeout_s,
            backoff_initial_s=platform.backoff_initial_s, backoff_cap_s=platform.backoff_max_s,
            encoder=FhirEncoder() if fhir else None, mark_after_s=platform.mark_delivered_after_s,
        )

    def _build_sms(self, cfg: GatewayConfig) -> tuple[Notifier | None, SmsNotifier | None]:
        contacts = [contact for contact in _roster(cfg) if contact.phone]
        device = notifier_device(cfg.devices)
        if device is None:
            if contacts:
                log.warning("SMS is OFF: %d contact(s) with a phone configured but no gsm-modem device",
                            len(contacts))
            return None, None
        modem = build_notifier(device, self.board)
        if not contacts:
            log.warning("gsm-modem %s configured but no [[contacts]] with a phone: nobody gets SMS", device.id)
        return modem, SmsNotifier(modem, contacts, _utc_now, tz=self.tz,
                                  max_per_contact_per_hour=cfg.sms.max_per_contact_per_hour)

    async def _fleet_service(self, installed: Ed25519PublicKey | None) -> ConfigDocumentService | None:
        """The fleet's configuration documents (gateway.fleet.service), when the hub has its file to fall back on."""
        if self._local is None:
            return None
        mqtt = self.mqtt
        service = ConfigDocumentService(
            local=self._local, store=FleetStateFile(state_path(Path(self.cfg.gateway.data_dir))),
            reload=self._reload_for_fleet, health_check=self._fleet_health,
            publish_report=lambda report: mqtt.publish(CONFIG_REPORTED, report, retain=True),
            installed_key=lambda: installed)
        await service.resume()  # `yiyang run` settled a trial already; this only reads the state back
        return service

    async def _reload_for_fleet(self, new: GatewayConfig) -> None:
        self._broker_was_connected = self.mqtt.connected.is_set()
        await self.reload(new)

    async def _fleet_health(self, old: GatewayConfig, new: GatewayConfig) -> HealthResult:
        fleet = self.fleet
        trial = fleet.state.trial if fleet is not None else None
        # A second less than the service's own deadline: the checks then say which one failed.
        grace_s = max(1.0, old.fleet.apply_grace_s - 1.0)
        return await self.check_health(old, new, grace_s=grace_s, version=trial.version if trial else 0,
                                       broker_was_connected=self._broker_was_connected)

    @staticmethod
    async def _inbox(mqtt: MqttLink, alerts: AlertService, commands: CommandService,
                     fleet: ConfigDocumentService | None) -> None:
        """Family acks and snoozes, fleet commands and configuration documents (the filters the link
        subscribes), each message handled alone."""

        async def ack(message: IncomingMessage) -> None:
            await alerts.handle_ack(message.topic, None if message.oversized else message.payload,
                                    retained=message.retained)

        async def snooze(message: IncomingMessage) -> None:
            await alerts.handle_snooze(message.topic, None if message.oversized else message.payload,
                                       retained=message.retained)

        async def command(message: IncomingMessage) -> None:
            if not message.oversized:  # no request id to answer to
                await commands.handle(message.topic, message.payload)

        async def document(message: IncomingMessage) -> None:
            # Too big to be taken in: refused by size before anything else, like the service would.
            if fleet is not None and not message.oversized and message.payload:
                await fleet.handle(message.payload)

        # A document's trial can take the whole grace period: acks and commands must not wait for it.
        await Inbox([Route(ACK_FILTER, ack), Route(SNOOZE_FILTER, snooze),
                     Route(COMMAND_FILTER, command, background=True),
                     Route(CONFIG_DESIRED, document, background=True)]).serve(mqtt.receive)

    async def _commands(self, mqtt: MqttLink, installed_key: Ed25519PublicKey | None) -> CommandService:
        cfg = self.cfg
        answered = await AnsweredRequests.load(answered_commands_path(cfg), now=_utc_now(),
                                               clock_synced=self.clock.synced())
        fleet = self.fleet
        return CommandService(gateway_id=cfg.gateway.id, public_key=installed_key,
                              # The fleet's key follows a rotation a configuration document carried.
                              key_source=fleet.current_key if fleet is not None else None,
                              commands=fleet_commands(self._command_parts()), reply=mqtt.publish,
                              answered=answered, now=_utc_now, clock_synced=self.clock.synced)

    def _command_parts(self) -> CommandParts:
        cfg = self.cfg
        return CommandParts(
            version=__version__, started_at=self.started_at, status=self.status, examine=self._examine,
            alerts=self.alerts, resident_ids=tuple(self._resident_ids()), measurable=self.measurable,
            resyncable=self.resyncable, log_ring=self.log_ring, scan=self._scan_now,
            ble_addresses={d.address: d.id for d in cfg.devices if d.address},
        )

    async def _examine(self, payload: Mapping[str, Any]) -> Report:
        """The fleet's ``doctor``: ``yiyang doctor``'s checks, from inside (on the configuration in force now)."""
        return await in_daemon_report(self.cfg, payload=payload, now=_utc_now(), kernel_synced=kernel_clock_synced,
                                      mqtt_connected=self.mqtt.connected.is_set())

    async def _scan_now(self, seconds: float) -> ScanReport:
        return await self._scan(seconds)  # the scan of the BLE devices in force now (a reload may change them)

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


async def run_until_signalled(cfg: GatewayConfig, local: LocalConfig | None = None,
                              log_ring: LogRing | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    await Daemon(cfg, local, log_ring).run(stop)
    log.info("ran for %.0f s", time.monotonic() - started)
