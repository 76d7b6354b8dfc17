"""Is the hub still well after a new configuration? The checks run within ``[fleet] apply_grace_s``.

A remote change must never strand a hub. After a reload the hub checks, concurrently and each up
to the grace period:

* **the broker**: connected (when the MQTT section changed, or it was connected before): a change
  that cuts the hub off its broker cuts the family off its alerts;
* **the platform**, when its section changed: a signed upload is accepted. The probe is a real
  record, a ``device_status`` of the hub itself saying which configuration version it runs, so a
  platform sees every remote change (and an empty batch would be a malformed request);
* **every serial device added or changed**: its port opens (busy counts: the session holds it).

Any failure is a reason to roll back; the reasons are what the fleet operator reads.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

from gateway.errors import NotDurableError, StoreError
from gateway.fleet.service import HealthResult
from gateway.record import EventValues, PlatformRecord, RecordDevice, RecordType
from gateway.reload import ReloadPlan
from gateway.store.api import NewRecord, Priority, RecordState
from gateway.store.ids import RecordIdFactory
from gateway.wire import hub_time_source, iso

log = logging.getLogger(__name__)

POLL_S = 0.5
"""How often a condition is looked at again while waiting: well under the grace period."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One failed check: the setting at fault (a key path) and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class HealthTargets:
    """What the checks look at, from the running daemon (injected, so each check is small and testable)."""

    broker_connected: asyncio.Event
    accept: Callable[[Sequence[NewRecord]], Awaitable[object]]
    record_state: Callable[[str], Awaitable[RecordState | None]]
    wake_uplink: Callable[[], None]
    uplink_error: Callable[[], str | None]
    uplink_success_at: Callable[[], datetime | None]
    serial_ports: dict[str, tuple[int, str]]
    """Device id -> (index in ``devices``, port) of every serial device the new configuration has."""


async def check_health(plan: ReloadPlan, targets: HealthTargets, *, grace_s: float, broker_was_connected: bool,
                       probe: NewRecord | None) -> HealthResult:
    """Run the checks the plan calls for, concurrently, each within ``grace_s``."""
    deadline = time.monotonic() + grace_s
    checks: list[Awaitable[Finding | None]] = []
    if plan.mqtt or broker_was_connected:
        checks.append(_broker(targets.broker_connected, deadline))
    if plan.uplink and probe is not None:
        checks.append(_platform(targets, probe, deadline))
    checks.extend(_port(device_id, index, port, deadline) for device_id, (index, port) in targets.serial_ports.items()
                  if device_id in plan.serial_to_check)
    found = [finding for finding in await asyncio.gather(*checks) if finding is not None]
    if not found:
        return HealthResult(ok=True)
    reason = "; ".join(f"{finding.path}: {finding.reason}" for finding in found)
    log.warning("configuration health check failed reasons=%s", reason)
    return HealthResult(ok=False, reason=reason, path=found[0].path)


async def _broker(connected: asyncio.Event, deadline: float) -> Finding | None:
    try:
        await asyncio.wait_for(connected.wait(), max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        return Finding("mqtt", "the MQTT broker was not reachable within the grace period")
    return None


async def _platform(targets: HealthTargets, probe: NewRecord, deadline: float) -> Finding | None:
    started = datetime.now().astimezone()
    record_id: str | None = None
    try:
        await targets.accept([probe])
        record_id = probe.record_id
    except NotDurableError as exc:
        record_id = exc.record_ids[0] if exc.record_ids else None
    except StoreError:
        record_id = None  # the outbox is down: any upload going through will do
    targets.wake_uplink()
    while time.monotonic() < deadline:
        if record_id is not None and await _delivered(targets, record_id):
            return None
        success = targets.uplink_success_at()
        if success is not None and success >= started:
            return None
        await asyncio.sleep(POLL_S)
    error = targets.uplink_error()
    return Finding("platform", f"the platform did not accept an upload within the grace period "
                               f"({error or 'no answer'})")


async def _delivered(targets: HealthTargets, record_id: str) -> bool:
    try:
        return await targets.record_state(record_id) is RecordState.DELIVERED
    except StoreError:
        return False


async def _port(device_id: str, index: int, port: str, deadline: float) -> Finding | None:
    while True:
        outcome = await asyncio.to_thread(_try_open, port)
        if outcome == "ok":
            return None
        if time.monotonic() >= deadline:
            return Finding(f"devices[{index}].port", f"device {device_id}: {port} did not open ({outcome})")
        await asyncio.sleep(POLL_S)


def _try_open(port: str) -> str:
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        # Busy: the device session holds it exclusively, which is the port open and in use.
        return "ok" if exc.errno == errno.EBUSY else (exc.strerror or str(exc))
    os.close(fd)
    return "ok"


def probe_record(*, gateway_id: str, version: int, at: datetime, synced: bool, tz: tzinfo) -> NewRecord:
    """The hub's own ``device_status`` saying it now runs configuration ``version``: the platform probe.

    It concerns the hub, not a resident, so it names none. Its id is made on the hub like any other.
    """
    record = PlatformRecord(
        type=RecordType.DEVICE_STATUS,
        resident_id=None,
        device=RecordDevice(gateway_id, transport="hub", model="yiyang-gateway"),
        measured_at=iso(at, tz),
        received_at=iso(at, tz),
        time_source=hub_time_source(synced),
        values=EventValues({"event": "configuration_applied", "version": version}),
    )
    return NewRecord("device_status", Priority.STATUS, record.to_json(), at, record_id=RecordIdFactory().new_id())
