"""The outbox's data types: what goes in, what comes out.

Kept apart from the SQLite implementation so the uplink, the hub and the CLI
depend on these types only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum


class Priority(IntEnum):
    """Upload order: lower goes first (alerts before everything, then oldest first)."""

    ALERT = 0
    EVENT = 1       # falls, help requests: the evidence behind alerts
    READING = 2
    STATUS = 3      # device_status records


class RecordState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"   # the platform rejected it permanently; kept for the technician and the fleet


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record offered to the outbox; it gets its id when its transaction commits."""

    type: str
    """Platform record type: blood_pressure, blood_glucose, spo2, body_temperature, fall,
    help_request, alert, device_status."""
    priority: Priority
    payload_json: str
    """The platform record as compact JSON, *without* ``record_id`` (the outbox adds it)."""
    created_at: datetime
    """Hub wall time (UTC) at acceptance; orders records of equal priority."""
    dedupe_key: str | None = None
    """Identity at the source (device id + device record key). A key already in the outbox
    is not accepted again: the existing record's id is returned with ``new=False``."""


@dataclass(frozen=True, slots=True)
class Accepted:
    record_id: str
    new: bool


@dataclass(frozen=True, slots=True)
class PendingRecord:
    record_id: str
    type: str
    priority: Priority
    body_json: str
    """The full platform record as compact JSON, ``record_id`` included."""
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record_id: str
    type: str
    reason: str
    dead_at: datetime


class BudgetState(StrEnum):
    OK = "ok"
    WARNING = "warning"      # past the warning level: say so loudly (status, log, fleet)
    PRUNING = "pruning"      # at the budget: delivered rows and motion snippets are being pruned
    FULL = "full"            # only undelivered rows left: new records are refused


@dataclass(frozen=True, slots=True)
class QueueStats:
    pending: int
    delivered: int
    dead: int
    oldest_pending_at: datetime | None
    pending_alerts: int
    db_bytes: int
    budget_bytes: int
    budget_state: BudgetState


@dataclass(frozen=True, slots=True)
class PruneReport:
    delivered_removed: int
    snippets_removed: int
    bytes_after: int
    budget_state: BudgetState
