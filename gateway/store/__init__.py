"""The outbox: durable store-and-forward queue of everything the hub uploads.

Import from here; :mod:`gateway.store.api` holds the types, :mod:`gateway.store.outbox`
the synchronous SQLite implementation, :mod:`gateway.store.aio` its asyncio face.
"""

from gateway.errors import StorageFullError, StoreError
from gateway.store.aio import AsyncOutbox
from gateway.store.api import (
    Accepted,
    BudgetState,
    DeadLetter,
    NewRecord,
    PendingRecord,
    Priority,
    PruneReport,
    QueueStats,
    RecordState,
)
from gateway.store.ids import RecordIdFactory, uuid7, uuid7_time
from gateway.store.outbox import MotionSnippet, Outbox, budget_state, utc_now

__all__ = [
    "Accepted",
    "AsyncOutbox",
    "BudgetState",
    "DeadLetter",
    "MotionSnippet",
    "NewRecord",
    "Outbox",
    "PendingRecord",
    "Priority",
    "PruneReport",
    "QueueStats",
    "RecordIdFactory",
    "RecordState",
    "StorageFullError",
    "StoreError",
    "budget_state",
    "utc_now",
    "uuid7",
    "uuid7_time",
]
