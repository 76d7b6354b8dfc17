"""What a new configuration changes in the running daemon: a pure comparison of two configurations.

The daemon reloads in place (same process, same outbox, same open alerts) and touches only what
changed: a device whose settings changed is restarted, the others keep their connections; a new
platform address rebuilds the uplink, never the outbox; new thresholds apply to the next reading.
Keeping this decision pure makes it testable without a daemon and keeps the daemon's reload a list
of small, obvious steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.catalogue import Role
from gateway.config import DeviceSettings, GatewayConfig, Transport


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    serial_added: tuple[str, ...] = ()
    serial_removed: tuple[str, ...] = ()
    serial_changed: tuple[str, ...] = ()
    """Serial devices whose settings changed: their sessions restart (and their ports are checked)."""
    ble: bool = False
    """The BLE devices changed: the one BLE manager restarts with the new list."""
    uplink: bool = False
    mqtt: bool = False
    sms: bool = False
    """The modem, the SMS contacts or the SMS rate changed."""
    alerts: bool = False
    detect: bool = False
    family: bool = False
    """Contacts or residents changed: who may acknowledge what."""
    storage: bool = False
    log_level: bool = False
    clock_sync: bool = False
    timezone: bool = False
    thresholds: bool = False
    """Informational: thresholds are read live, per reading."""
    homeassistant: bool = False
    """Discovery on or off, or another prefix (the configs are published again at every reload anyway)."""

    @property
    def serial_to_check(self) -> tuple[str, ...]:
        """Serial devices the health check must see open: every one added or changed."""
        return (*self.serial_added, *self.serial_changed)

    @property
    def changes_anything(self) -> bool:
        return any((self.serial_added, self.serial_removed, self.serial_changed, self.ble, self.uplink,
                    self.mqtt, self.sms, self.alerts, self.detect, self.family, self.storage, self.log_level,
                    self.clock_sync, self.timezone, self.thresholds, self.homeassistant))

    def describe(self) -> list[str]:
        """What changes, in words, for the log and the fleet report."""
        parts = [f"{what} {', '.join(ids)}" for what, ids in (
            ("devices added:", self.serial_added), ("devices removed:", self.serial_removed),
            ("devices restarted:", self.serial_changed)) if ids]
        parts += [name for name, flag in (
            ("BLE devices", self.ble), ("platform uplink", self.uplink), ("MQTT connection", self.mqtt),
            ("SMS", self.sms), ("alert timing", self.alerts), ("detection", self.detect),
            ("family access", self.family), ("storage", self.storage), ("log level", self.log_level),
            ("clock sync", self.clock_sync), ("time zone", self.timezone), ("thresholds", self.thresholds),
            ("Home Assistant", self.homeassistant),
        ) if flag]
        return parts


def _serial(devices: tuple[DeviceSettings, ...]) -> dict[str, DeviceSettings]:
    return {d.id: d for d in devices if d.transport is Transport.SERIAL and d.spec.role is not Role.NOTIFIES}


def _modem(devices: tuple[DeviceSettings, ...]) -> list[DeviceSettings]:
    return [d for d in devices if d.spec.role is Role.NOTIFIES]


def plan_reload(old: GatewayConfig, new: GatewayConfig) -> ReloadPlan:
    """What must be restarted or re-set to go from ``old`` to ``new`` (both validated)."""
    old_serial, new_serial = _serial(old.devices), _serial(new.devices)
    old_ble = [d for d in old.devices if d.transport is Transport.BLE]
    new_ble = [d for d in new.devices if d.transport is Transport.BLE]
    old_modem, new_modem = _modem(old.devices), _modem(new.devices)
    residents_changed = old.residents != new.residents
    return ReloadPlan(
        serial_added=tuple(sorted(new_serial.keys() - old_serial.keys())),
        serial_removed=tuple(sorted(old_serial.keys() - new_serial.keys())),
        serial_changed=tuple(sorted(i for i in old_serial.keys() & new_serial.keys()
                                    if old_serial[i] != new_serial[i])),
        ble=old_ble != new_ble,
        uplink=old.platform != new.platform,
        mqtt=old.mqtt != new.mqtt,
        sms=old_modem != new_modem or old.sms != new.sms or old.contacts != new.contacts,
        alerts=old.alerts != new.alerts,
        detect=old.detect != new.detect,
        family=old.contacts != new.contacts or residents_changed,
        storage=old.storage != new.storage,
        log_level=old.gateway.log_level != new.gateway.log_level,
        clock_sync=old.gateway.clock_sync != new.gateway.clock_sync,
        timezone=old.gateway.timezone != new.gateway.timezone,
        thresholds=old.thresholds != new.thresholds or residents_changed,
        homeassistant=old.homeassistant != new.homeassistant,
    )
