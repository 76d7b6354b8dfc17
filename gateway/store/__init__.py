"""The outbox: durable store-and-forward queue of everything the hub uploads.

:mod:`gateway.store.api` holds the types. The database: :class:`DatabaseFile` (one open file, its
transactions and budget, on the caller's thread) and :class:`Database` (the daemon's: that file kept
usable on a thread of its own). One repository per table builds the :class:`~gateway.store.work.Work`
either runs: :mod:`.records`, :mod:`.snippets`, :mod:`.cursors`, :mod:`.active_alerts`, :mod:`.stamps`.
:class:`Intake` is the daemon's way in: group commit, holding in memory while the disk fails.
"""

from gateway.errors import StorageFullError, StoreError
from gateway.store.api import (
    Accepted,
    BudgetState,
    DeadLetter,
    NewRecord,
    PendingRecord,
    Priority,
    PruneReport,
    QueuePlace,
    QueueStats,
    RecordState,
)
from gateway.store.budget import StorageLimits, budget_state
from gateway.store.database import Database
from gateway.store.dbfile import DatabaseFile, utc_now
from gateway.store.ids import RecordIdFactory, uuid7, uuid7_time
from gateway.store.intake import Intake
from gateway.store.snippets import MotionSnippet
from gateway.store.work import Runner, Work

__all__ = [
    "Accepted",
    "BudgetState",
    "Database",
    "DatabaseFile",
    "DeadLetter",
    "Intake",
    "MotionSnippet",
    "NewRecord",
    "PendingRecord",
    "Priority",
    "PruneReport",
    "QueuePlace",
    "QueueStats",
    "RecordIdFactory",
    "RecordState",
    "Runner",
    "StorageFullError",
    "StorageLimits",
    "StoreError",
    "Work",
    "budget_state",
    "utc_now",
    "uuid7",
    "uuid7_time",
]
