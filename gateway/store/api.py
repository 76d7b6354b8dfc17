"""The outbox's data types: what goes in, what comes out.

Kept apart from the SQLite implementation so the uplink, the hub and the CLI
depend on these types only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import NamedTuple


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
class HubStamp:
    """When, on the monotonic clock of which boot, a record's hub times were read from a clock
    that was not synchronised: what lets a later clock step correct them."""

    boot_id: str
    monotonic: float


@dataclass(frozen=True, slots=True)
class ClockCorrection:
    """The hub clock stepped by ``delta_s``: what the outbox does about the records stamped before it."""

    boot_id: str
    before_monotonic: float
    """Records of ``boot_id`` stamped before this monotonic time were stamped on the old clock."""
    delta_s: float
    synced: bool
    """The clock is synchronised after the step: the records are then ``hub_corrected`` for good, and
    stamps of earlier boots that cannot be right (:attr:`plausible_from`, the future) are estimated."""
    boot_started_at: datetime
    """This boot's start on the new clock: the latest an earlier boot's record can have happened."""
    now: datetime
    plausible_from: datetime


@dataclass(frozen=True, slots=True)
class Retimed:
    corrected: int
    """Records of this boot moved by the step."""
    estimated: int
    """Records of earlier boots dated outside what is possible, given the start of this boot instead."""


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
    record_id: str | None = None
    """An id chosen by the producer (derived from the source identity, see
    :func:`gateway.store.ids.derived_record_id`); None: the outbox makes a UUIDv7 at commit.
    An id already in the outbox is not accepted again (``new=False``)."""
    stamp: HubStamp | None = None
    """Set when the record's hub times (``received_at``, and ``measured_at`` for ``hub_unsynced``)
    came from an unsynchronised clock; see :mod:`gateway.clock`."""

    @property
    def vital(self) -> bool:
        """Alerts and the events behind them: small, and never refused for the storage budget."""
        return self.priority <= Priority.EVENT


@dataclass(frozen=True, slots=True)
class Accepted:
    record_id: str
    new: bool


class QueuePlace(NamedTuple):
    """Where a pending record stands in the upload order (priority, then creation), and its row.

    What the uplink hands back: the next batch starts after the last place taken instead of
    walking past every record taken since the last mark, and marks find their rows directly.
    A named tuple, not a dataclass: it is a sort key (places compare as the tuples they are), and
    one is made per record read, at a fifth of a frozen dataclass's cost.
    """

    priority: int
    created_us: int
    record_id: str
    row: int


class PendingRecord(NamedTuple):
    """A record as the uplink reads it from the queue. A named tuple for the same reason as
    :class:`QueuePlace`: the uplink reads hundreds of thousands of them from a backlog."""

    record_id: str
    type: str
    priority: Priority
    body_json: str
    """The full platform record as compact JSON, ``record_id`` included."""
    attempts: int
    place: QueuePlace | None = None
    """Its place in the upload order, as :func:`gateway.store.records.pending_batch` read it."""


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


@dataclass(frozen=True, slots=True)
class StorageHealth:
    """What the technician needs to know about the outbox's storage (status, doctor, fleet)."""

    writable: bool
    last_error: str | None
    """Why the last write failed, while writes fail."""
    held_records: int
    """Records accepted from devices and detectors but not yet on disk (kept in memory)."""
    held_alerts: int
    dropped_records: int
    """Held records let go at the memory bound (their devices still hold them)."""
    reserve_released: bool
    incidents: tuple[str, ...]
    """What happened to the outbox file since the daemon started (corrupt, deleted, disk full)."""
    corrupt_files: tuple[str, ...]
    """Outbox files moved aside as corrupt that are still in the data directory."""

    def problems(self) -> list[str]:
        found: list[str] = []
        if not self.writable:
            found.append(
                f"STORAGE FAILING: {self.last_error or 'records cannot be written'}; {self.held_records} record(s) "
                f"({self.held_alerts} alert(s)) held in memory until the disk takes them: alerts still go out"
            )
        if self.dropped_records:
            found.append(f"{self.dropped_records} record(s) let go from memory while storage failed; their devices "
                         "still hold them and they are read again once the outbox is writable")
        if self.reserve_released:
            found.append("the disk filled up and its reserve was used: free disk space on the hub (`df -h`)")
        found.extend(self.incidents)
        found.extend(f"corrupt outbox kept as {name}: copy it off for recovery, then delete it"
                     for name in self.corrupt_files)
        return found
