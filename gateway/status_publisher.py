"""Publishes the hub's status: retained on MQTT (``status``) and as the file ``yiyang status`` reads."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from gateway import __version__
from gateway.clock_watch import StepReport
from gateway.errors import StoreError
from gateway.status import DeviceStatusBoard, write_status_file
from gateway.store.api import QueueStats, StorageHealth
from gateway.uplink import Uplink

log = logging.getLogger(__name__)

STATUS_EVERY_S = 30.0
STATUS_NEWS_S = 2.0
DISK_STATUS_EVERY_S = 300.0
"""The data directory's copy of the status (read when the runtime one is gone: after a reboot,
or by a tool without access to /run) is written this often, not at every publish: 288 small
writes a day instead of thousands."""


class QueueSource(Protocol):
    """The outbox database (:class:`gateway.store.database.Database`)."""

    async def stats(self) -> QueueStats: ...


class HealthSource(Protocol):
    """The outbox's intake (:class:`gateway.store.intake.Intake`): incidents and what it holds in memory."""

    @property
    def health(self) -> StorageHealth: ...


class StatusSink(Protocol):
    def publish(self, suffix: str, payload: dict[str, Any] | None, *, qos: int = 1, retain: bool = False) -> None:
        ...


def uplink_status(uplink: Uplink | None) -> dict[str, Any]:
    if uplink is None:
        return {"enabled": False}
    up = uplink.status
    return {
        "enabled": True,
        "last_success_at": up.last_success_at.isoformat() if up.last_success_at else None,
        "last_error": up.last_error,
        "consecutive_failures": up.consecutive_failures,
        "next_attempt_at": up.next_attempt_at.isoformat() if up.next_attempt_at else None,
        # Less than configured once the platform answered 413: a proxy with a smaller body limit.
        "batch_max_records": up.batch_max_records,
        "batch_max_bytes": up.batch_max_bytes,
        "throttled": up.throttled,
        "throttled_until": up.throttled_until.isoformat() if up.throttled_until else None,
        "server_clock_offset_s": up.server_clock_offset_s,
        "delivered_unmarked": up.delivered_unmarked,
    }


def queue_status(stats: QueueStats) -> dict[str, Any]:
    return {
        "pending": stats.pending, "dead": stats.dead, "delivered": stats.delivered,
        "pending_alerts": stats.pending_alerts,
        "oldest_pending_at": stats.oldest_pending_at.isoformat() if stats.oldest_pending_at else None,
        "db_bytes": stats.db_bytes, "budget_bytes": stats.budget_bytes,
        "budget_state": stats.budget_state.value,
    }


@dataclass
class StatusPublisher:
    gateway_id: str
    path: Path
    """The status file in the data directory, written every DISK_STATUS_EVERY_S."""
    runtime_path: Path
    """The status file kept fresh at every publish, in a runtime directory (RAM)."""
    board: DeviceStatusBoard
    queue: QueueSource
    storage: HealthSource
    uplink: Uplink | None
    mqtt: StatusSink
    mqtt_connected: Callable[[], bool]
    clock_synced: Callable[[], bool]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fleet: Callable[[], dict[str, Any]] | None = None
    """The fleet configuration in force (gateway.fleet.state.status_fields), when the fleet manages it."""
    clock_step: Callable[[], StepReport | None] = lambda: None
    """The last step of the hub clock and the records corrected for it (gateway.clock_watch)."""
    _disk_written_at: float = -DISK_STATUS_EVERY_S
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def payload(self) -> dict[str, Any]:
        storage = self.storage.health
        try:
            queue: dict[str, Any] = queue_status(await self.queue.stats())
        except StoreError as exc:
            queue = {"unavailable": str(exc)}
        problems = [*storage.problems(), *self.board.problems.values()]
        return {
            "state": "online",
            "gateway_id": self.gateway_id,
            "version": __version__,
            "started_at": self.started_at.isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "clock_synced": self.clock_synced(),
            **_clock_step(self.clock_step()),
            "mqtt_connected": self.mqtt_connected(),
            "devices": self.board.as_json(),
            "queue": queue,
            "storage": {"writable": storage.writable, "held_records": storage.held_records,
                        "held_alerts": storage.held_alerts, "dropped_records": storage.dropped_records},
            "uplink": uplink_status(self.uplink),
            "problems": problems,
            **({"fleet": self.fleet()} if self.fleet is not None else {}),
        }

    async def publish(self, *, to_disk: bool = False) -> None:
        """Publish the status (MQTT, the runtime file); ``to_disk`` also writes the data directory's copy
        now (at stop), else it is written every DISK_STATUS_EVERY_S."""
        payload = await self.payload()
        if self.mqtt_connected():  # while away, the last will says offline; reconnecting republishes
            self.mqtt.publish("status", payload, retain=True)
        runtime_ok = await self._write(self.runtime_path, payload)
        now = time.monotonic()
        disk_due = to_disk or not runtime_ok or now - self._disk_written_at >= DISK_STATUS_EVERY_S
        # A full or read-only data directory fails here: the runtime copy still answers `yiyang status`.
        if disk_due and await self._write(self.path, payload):
            self._disk_written_at = now

    @staticmethod
    async def _write(path: Path, payload: dict[str, Any]) -> bool:
        try:
            await asyncio.to_thread(write_status_file, path, payload)
        except OSError as exc:
            log.error("status file not written path=%s error=%s", path, exc.strerror)
            return False
        return True

    def schedule(self) -> None:
        """Publish soon (from a callback that cannot await, e.g. after an MQTT reconnect)."""
        task = asyncio.ensure_future(self.publish())
        self._background.add(task)  # keep a reference until done: the loop holds tasks weakly
        task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        """Publish every STATUS_EVERY_S, and within STATUS_NEWS_S of a device change (a technician
        plugging a meter in wants to see it in `yiyang status` now, not in half a minute)."""
        published_version, published_at = -1, -float("inf")
        while True:
            now = time.monotonic()
            if self.board.version != published_version or now - published_at >= STATUS_EVERY_S:
                published_version, published_at = self.board.version, now
                await self.publish()
            await asyncio.sleep(STATUS_NEWS_S)


def _clock_step(step: StepReport | None) -> dict[str, Any]:
    if step is None:
        return {}
    return {"clock_step": {"at": step.at.isoformat(), "delta_s": round(step.delta_s, 3), "synced": step.synced,
                           "records_corrected": step.corrected, "records_estimated": step.estimated}}
