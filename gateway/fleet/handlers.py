"""The fleet's commands, one row each: what runs, and whether it is harmless to run twice.

The daemon builds :class:`CommandParts` from the parts it composed and hands the table to
gateway.fleet.commands.CommandService, which decides whether a request may run. The small handlers
live here; the larger ones have modules of their own (logs_command, scan_command, device_commands).

``repeatable`` (gateway.fleet.commands.Command): a command that only reads the hub, or asks devices
for records the outbox dedupes, may run on a hub whose clock is not synchronised, where a replay
can be refused by request id only. ``test-alert`` (the family's phones ring) and ``measure`` (a cuff
inflates on the resident's arm) may not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from gateway.doctor import Report
from gateway.driver_registry import Measurable, Resyncable
from gateway.fleet.args import optional_id
from gateway.fleet.commands import Command, Handler
from gateway.fleet.device_commands import measure, resync
from gateway.fleet.errors import CommandError
from gateway.fleet.logs_command import logs
from gateway.fleet.scan_command import Scan, scan
from gateway.log_ring import LogRing
from gateway.respond import messages
from gateway.respond.service import AlertService
from gateway.vocabulary import AlertKind, Severity


class StatusSource(Protocol):
    """The hub's status document (gateway.status_publisher.StatusPublisher)."""

    async def payload(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class CommandParts:
    """What the commands need from the running hub, and nothing else of it."""

    version: str
    started_at: datetime
    status: StatusSource
    examine: Callable[[Mapping[str, Any]], Awaitable[Report]]
    """The doctor's checks, run in the daemon on its status document (gateway.doctor.in_daemon_report)."""
    alerts: AlertService
    resident_ids: tuple[str, ...]
    measurable: Mapping[str, Measurable]
    resyncable: Mapping[str, Resyncable]
    log_ring: LogRing | None
    scan: Scan
    ble_addresses: Mapping[str, str]
    """Configured BLE device address -> device id, for the scan's "configured as"."""


def fleet_commands(parts: CommandParts) -> dict[str, Command]:
    return {
        "ping": Command(ping(parts.version, parts.started_at), repeatable=True),
        "queue": Command(queue(parts.status), repeatable=True),
        "doctor": Command(doctor(parts.status, parts.examine), repeatable=True),
        "logs": Command(logs(parts.log_ring), repeatable=True),
        "scan": Command(scan(parts.scan, parts.ble_addresses), repeatable=True),
        "resync": Command(resync(parts.resyncable), repeatable=True),
        "test-alert": Command(raise_test_alert(parts.alerts, parts.resident_ids), repeatable=False),
        "measure": Command(measure(parts.measurable), repeatable=False),
    }


def ping(version: str, started_at: datetime) -> Handler:
    async def handler(_args: Mapping[str, Any]) -> dict[str, Any]:
        return {"pong": True, "version": version, "started_at": started_at.isoformat()}

    return handler


def queue(status: StatusSource) -> Handler:
    async def handler(_args: Mapping[str, Any]) -> dict[str, Any]:
        return (await status.payload())["queue"]  # type: ignore[no-any-return]

    return handler


def doctor(status: StatusSource, examine: Callable[[Mapping[str, Any]], Awaitable[Report]]) -> Handler:
    """``yiyang doctor``'s checks as the daemon can run them: ``ok``, ``problems`` (one line each),
    ``checks`` (name, status, verdict, fix) and the status document they were judged on."""

    async def handler(_args: Mapping[str, Any]) -> dict[str, Any]:
        payload = await status.payload()
        report = await examine(payload)
        return {**report.as_json(), "status": payload}

    return handler


def raise_test_alert(alerts: AlertService, resident_ids: tuple[str, ...]) -> Handler:
    """Raise and resolve a test alert end to end: the installer's check that the family's app hears the hub."""

    async def handler(args: Mapping[str, Any]) -> dict[str, Any]:
        resident = optional_id(args, "resident_id") or resident_ids[0]
        if resident not in resident_ids:  # it becomes a topic level: only configured ids
            raise CommandError(f"no resident {resident!r}; have: {', '.join(resident_ids)}")
        alert = await alerts.raise_alert(kind=AlertKind.TEST, severity=Severity.WARNING, resident_id=resident,
                                         message=messages.TEST_ALERT, evidence={"requested_by": "fleet"})
        await alerts.resolve(alert.alert_id)
        return {"alert_id": alert.alert_id}

    return handler
