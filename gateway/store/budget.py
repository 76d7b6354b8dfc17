"""The outbox's size against its budget: measuring, the budget state, and what pruning removes.

Storage is bounded by ``budget_bytes``: past ``warn_ratio`` of it the state is WARNING (logged,
reported in the statistics); at the budget the rows delivered longest ago are pruned first, then raw motion
snippets. Pending and dead rows are never pruned: when only they are left, new records are refused
with :class:`gateway.errors.StorageFullError` rather than losing any. Delivered rows older than the
retention go at every prune.

:class:`Budget` works inside transactions a :class:`gateway.store.dbfile.DatabaseFile` opens (it
orders them: pruning spans several, with WAL checkpoints between).
"""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.store import records, snippets
from gateway.store.api import BudgetState, QueueStats
from gateway.store.sqlite import to_us
from gateway.store.work import Tx

log = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 512 * 2**20
DEFAULT_WARN_RATIO = 0.8
DEFAULT_DELIVERED_RETENTION_S = 30 * 86400

# Rows deleted per step while pruning to the budget: the step starts small so a
# small outbox stops close to its target, and doubles so a 512 MiB one prunes
# in a few hundred steps.
_PRUNE_FIRST_STEP_ROWS, _PRUNE_MAX_STEP_ROWS = 8, 4096

_DeleteOldest = Callable[[sqlite3.Connection, int], int]
"""A repository's "delete the N oldest prunable rows" (:func:`gateway.store.records.delete_oldest_delivered`)."""


@dataclass(frozen=True, slots=True)
class StorageLimits:
    budget_bytes: int = DEFAULT_BUDGET_BYTES
    warn_ratio: float = DEFAULT_WARN_RATIO
    delivered_retention_s: float = DEFAULT_DELIVERED_RETENTION_S

    def __post_init__(self) -> None:
        if self.budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {self.budget_bytes}")
        if not 0 < self.warn_ratio < 1:
            raise ValueError(f"warn_ratio must be between 0 and 1 (exclusive), got {self.warn_ratio}")
        if not (math.isfinite(self.delivered_retention_s) and self.delivered_retention_s >= 0):
            raise ValueError(f"delivered_retention_s must be >= 0 seconds, got {self.delivered_retention_s}")


@dataclass(frozen=True, slots=True)
class Pruned:
    delivered: int
    snippets: int


def budget_state(db_bytes: int, budget_bytes: int, warn_ratio: float, *, prunable: bool) -> BudgetState:
    """Where the outbox stands against its budget; ``prunable``: delivered rows or snippets remain."""
    if db_bytes >= budget_bytes:
        return BudgetState.PRUNING if prunable else BudgetState.FULL
    if db_bytes >= budget_bytes * warn_ratio:
        return BudgetState.WARNING
    return BudgetState.OK


class Budget:
    """One outbox file's budget; used from the thread of its connection."""

    def __init__(self, path: Path, page_size: int, limits: StorageLimits) -> None:
        self.path = path
        self.limits = limits
        self._wal_path = path.with_name(path.name + "-wal")
        self._page_size = page_size
        self._logged_state = BudgetState.OK

    # -- measuring -----------------------------------------------------------------------------------

    def db_bytes(self, conn: sqlite3.Connection) -> int:
        """Bytes the outbox holds: pages in use plus the WAL file.

        Free pages are not counted: SQLite reuses them for new rows, so the file
        never grows past what is in use; after pruning they are room, not usage.
        """
        try:
            wal_bytes = self._wal_path.stat().st_size
        except FileNotFoundError:
            wal_bytes = 0
        return _used_pages(conn) * self._page_size + wal_bytes

    def over(self, conn: sqlite3.Connection) -> bool:
        return self.db_bytes(conn) >= self.limits.budget_bytes

    def state(self, conn: sqlite3.Connection, db_bytes: int) -> BudgetState:
        limits = self.limits
        prunable = db_bytes >= limits.budget_bytes and (records.any_delivered(conn) or snippets.any_kept(conn))
        return budget_state(db_bytes, limits.budget_bytes, limits.warn_ratio, prunable=prunable)

    def stats(self, tx: Tx) -> QueueStats:
        counts = records.counts(tx.conn)
        db_bytes = self.db_bytes(tx.conn)
        return QueueStats(
            pending=counts.pending,
            delivered=counts.delivered,
            dead=counts.dead,
            oldest_pending_at=counts.oldest_pending_at,
            pending_alerts=counts.pending_alerts,
            db_bytes=db_bytes,
            budget_bytes=self.limits.budget_bytes,
            budget_state=self.state(tx.conn, db_bytes),
        )

    # -- pruning -------------------------------------------------------------------------------------

    def prune_retention(self, tx: Tx) -> int:
        """Delivered rows past the retention; their source keys stay (``source_keys``)."""
        cutoff_us = to_us(tx.now, "clock()") - round(self.limits.delivered_retention_s * 1_000_000)
        return records.delete_delivered_before(tx.conn, cutoff_us)

    def prune_to_budget(self, tx: Tx) -> Pruned:
        """Delivered rows, longest delivered first, then motion snippets, until the outbox is under the warning level.

        Down to just under the warning level, not just under the budget, so that not every
        following record has to prune again.
        """
        target_pages = int(self.limits.budget_bytes * self.limits.warn_ratio) // self._page_size - 1
        delivered = _prune_oldest(tx.conn, target_pages, records.delete_oldest_delivered)
        removed_snippets = _prune_oldest(tx.conn, target_pages, snippets.delete_oldest)
        return Pruned(delivered, removed_snippets)

    def log(self, state: BudgetState, db_bytes: int, pruned: Pruned) -> None:
        if pruned.delivered or pruned.snippets:
            log.info("outbox pruned delivered_removed=%d snippets_removed=%d", pruned.delivered, pruned.snippets)
        if state is self._logged_state:
            return
        self._logged_state = state
        level = {BudgetState.OK: logging.INFO, BudgetState.WARNING: logging.WARNING}.get(state, logging.ERROR)
        log.log(
            level,
            "outbox budget_state=%s db_bytes=%d budget_bytes=%d path=%s",
            state.value, db_bytes, self.limits.budget_bytes, self.path,
        )


def _used_pages(conn: sqlite3.Connection) -> int:
    page_count: int = conn.execute("PRAGMA page_count").fetchone()[0]
    freelist: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return page_count - freelist


def _prune_oldest(conn: sqlite3.Connection, target_pages: int, delete_oldest: _DeleteOldest) -> int:
    removed = 0
    step = _PRUNE_FIRST_STEP_ROWS
    while _used_pages(conn) > target_pages:
        deleted = delete_oldest(conn, step)
        if deleted == 0:
            break
        removed += deleted
        step = min(step * 2, _PRUNE_MAX_STEP_ROWS)
    return removed


def checkpoint(conn: sqlite3.Connection) -> None:
    """Write the WAL back and truncate it: TRUNCATE gives its disk space back, which the budget counts."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
