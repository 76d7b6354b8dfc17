"""The doctor's checks put together: on the hub's command line, and inside the running daemon.

``yiyang doctor`` (:func:`hub_report`) looks at the daemon from outside: its status file, a connect
of its own to the broker. The fleet's ``doctor`` command (:func:`in_daemon_report`) runs in the
daemon, which is alive by definition and answers over its broker connection; every other check is
the same function with the same verdicts. The network checks run concurrently; file and disk
checks in a worker thread, so the daemon's event loop never waits on them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.catalogue import Transport
from gateway.clock import ClockSyncMode
from gateway.config.access import ServiceUser
from gateway.config.files import BROKER_PASSWORD, PLATFORM_SECRET, FileKind, file_complaint
from gateway.config.schema import GatewayConfig
from gateway.doctor import broker, platform_probe
from gateway.doctor.bluetooth import bluetooth_check
from gateway.doctor.daemon_status import DAEMON, daemon_check, outbox_checks, reported_check
from gateway.doctor.host import clock_check, disk_check, fleet_key_check
from gateway.doctor.report import Check, Report, ok, problem
from gateway.doctor.serial_ports import serial_checks

KernelSynced = Callable[[], bool | None]


async def hub_report(cfg: GatewayConfig, *, user: ServiceUser, status: Mapping[str, Any] | None,
                     status_file: Path, now: datetime, kernel_synced: KernelSynced,
                     char_devices: Mapping[int, tuple[str, ...]] | None, timeout_s: float = 5.0) -> Report:
    """Every check, from outside the daemon, judged for ``user`` (the service's)."""
    bluetooth, broker_check, platform = await asyncio.gather(
        _bluetooth(cfg, timeout_s), _broker(cfg, user, timeout_s), _platform(cfg, user))
    rest = await asyncio.to_thread(_local_checks, cfg, user, status=status, now=now, kernel_synced=kernel_synced,
                                   char_devices=char_devices)
    return Report.of([
        [daemon_check(status, now, status_file), reported_check(status), bluetooth],
        rest.serial, [broker_check, platform], rest.host,
    ])


async def in_daemon_report(cfg: GatewayConfig, *, payload: Mapping[str, Any], now: datetime,
                           kernel_synced: KernelSynced, mqtt_connected: bool, timeout_s: float = 5.0) -> Report:
    """Every check, from inside the running daemon (``payload``: its status document now)."""
    user = ServiceUser.current()
    bluetooth, platform = await asyncio.gather(_bluetooth(cfg, timeout_s), _platform(cfg, user))
    # /proc/devices is out of sight inside the unit (ProcSubset=pid): the device class is not judged here.
    rest = await asyncio.to_thread(_local_checks, cfg, user, status=payload, now=now, kernel_synced=kernel_synced,
                                   char_devices=None)
    return Report.of([
        [ok(DAEMON, "answering the fleet (this is the daemon)"), reported_check(payload), bluetooth],
        rest.serial, [broker.connection_check(mqtt_connected, cfg.mqtt), platform], rest.host,
    ])


@dataclass(frozen=True, slots=True)
class _Local:
    serial: list[Check]
    host: list[Check]


def _local_checks(cfg: GatewayConfig, user: ServiceUser, *, status: Mapping[str, Any] | None, now: datetime,
                  kernel_synced: KernelSynced, char_devices: Mapping[int, tuple[str, ...]] | None) -> _Local:
    """The checks that read files and the disk (blocking)."""
    host = [
        clock_check(kernel_synced(), ClockSyncMode(cfg.gateway.clock_sync)),
        disk_check(Path(cfg.gateway.data_dir), cfg.storage),
        *outbox_checks(status, now, upload_enabled=cfg.platform.enabled),
        fleet_key_check(cfg.fleet, user),
    ]
    return _Local(serial_checks(cfg.devices, user, char_devices), host)


async def _bluetooth(cfg: GatewayConfig, timeout_s: float) -> Check:
    return await bluetooth_check(needed=any(d.transport is Transport.BLE for d in cfg.devices), timeout_s=timeout_s)


async def _broker(cfg: GatewayConfig, user: ServiceUser, timeout_s: float) -> Check:
    mqtt = cfg.mqtt
    password: str | None = None
    if mqtt.password_file is not None:
        read = await asyncio.to_thread(_read_private, mqtt.password_file, BROKER_PASSWORD, user)
        if isinstance(read, Check):
            return _renamed(read, broker.NAME, "broker password")
        password = read.decode("utf-8").strip()
    try:
        tls = ssl.create_default_context(cafile=str(mqtt.ca_file) if mqtt.ca_file else None) if mqtt.tls else None
    except (OSError, ssl.SSLError) as exc:
        return problem(broker.NAME, f"the CA file {mqtt.ca_file} cannot be used ({exc})", "yiyang config check")
    return await broker.broker_check(mqtt, password, tls, timeout_s)


async def _platform(cfg: GatewayConfig, user: ServiceUser) -> Check:
    platform = cfg.platform
    if not platform.enabled:
        return await platform_probe.platform_check(platform, cfg.gateway.id, b"")
    read = await asyncio.to_thread(_read_private, platform.secret_file, PLATFORM_SECRET, user)
    if isinstance(read, Check):
        return _renamed(read, platform_probe.NAME, "platform secret")
    return await platform_probe.platform_check(platform, cfg.gateway.id, read.strip())


def _read_private(path: Path, kind: FileKind, user: ServiceUser) -> bytes | Check:
    """The file's bytes, or a problem when ``user`` could not use it as the daemon does."""
    complaint = file_complaint(path, kind, user)
    if complaint is not None:
        return problem("", complaint[0], complaint[1])
    try:
        return path.read_bytes()
    except OSError as exc:
        return problem("", f"cannot read {path} ({exc.strerror})", f"ls -l {path}")


def _renamed(check: Check, name: str, what: str) -> Check:
    return problem(name, f"{what}: {check.verdict}", check.fix or "yiyang config check")

