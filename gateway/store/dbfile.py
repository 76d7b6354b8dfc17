"""One open outbox file: its connection, its transactions and its budget, used from one thread.

One SQLite file in WAL mode, one connection. Every :class:`~gateway.store.work.Work` runs in a
transaction of its own (:meth:`DatabaseFile.run`), its SQLite errors translated into the typed
:class:`gateway.errors.StoreError` that says what to do. This is the synchronous outbox of the CLI,
the tests and the benchmarks, on the caller's thread; the daemon's
:class:`gateway.store.database.Database` keeps one on a thread of its own (through the
:class:`~gateway.store.keeper.OutboxKeeper`, which replaces it when the file is lost).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from gateway.errors import OutboxUnavailableError, StorageFullError, StoreError
from gateway.store import records
from gateway.store.api import BudgetState, PruneReport, QueueStats
from gateway.store.budget import Budget, Pruned, StorageLimits, checkpoint
from gateway.store.ids import RecordIdFactory
from gateway.store.salvage import SalvageReport, salvage
from gateway.store.schema import migrate
from gateway.store.sqlite import configure, store_error
from gateway.store.work import Access, Tx, Work, read, write

log = logging.getLogger(__name__)

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class DatabaseFile:
    """The outbox file open on one connection; use it from one thread only."""

    def __init__(self, conn: sqlite3.Connection, path: Path, limits: StorageLimits,
                 clock: Callable[[], datetime]) -> None:
        """Use :meth:`open`; this takes a connection already configured and migrated."""
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._clock = clock
        self._ids = RecordIdFactory()
        self._budget = Budget(path, conn.execute("PRAGMA page_size").fetchone()[0], limits)

    # -- opening and closing -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, limits: StorageLimits | None = None,
             clock: Callable[[], datetime] = utc_now) -> DatabaseFile:
        """Open (or create) the outbox at ``path`` and bring its schema up to date."""
        limits = limits or StorageLimits()
        path = Path(path)
        if path.is_dir():
            raise StoreError(f"{path} is a directory; the outbox path must name a database file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxUnavailableError(
                f"cannot create the outbox directory {path.parent}: {exc.strerror}; create it, writable by the "
                "gateway's user"
            ) from exc
        try:
            conn = sqlite3.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise store_error(path, "opening the database", exc) from exc
        try:
            configure(conn, path, limits.budget_bytes)
            applied = migrate(conn)
            database = cls(conn, path, limits, clock)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(path, "opening the database", exc) from exc
        except BaseException:
            conn.close()
            raise
        log.info("outbox opened path=%s migrations_applied=%s", path, applied or "none")
        database.requeue_stateless()
        return database

    def requeue_stateless(self) -> None:
        """Records a damaged or hand-edited file left in no state table go back to the queue. Not fatal:
        an outbox that cannot do it now (a full disk) still opens, and the next open tries again."""
        try:
            if self.run(records.stateless_count()):
                self.run(records.requeue_stateless())
        except StoreError as exc:
            log.warning("outbox could not queue records without a state path=%s error=%s", self.path, exc)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except sqlite3.Error as exc:
                # A connection to a damaged or vanished file may fail to close cleanly; it is gone either way.
                log.warning("outbox closed with an error path=%s error=%s", self.path, exc)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def set_limits(self, limits: StorageLimits) -> None:
        """New storage settings from a reloaded configuration; they apply from the next write and prune."""
        self._budget.limits = limits

    # -- work --------------------------------------------------------------------------------------

    def run(self, work: Work[T]) -> T:
        """Run ``work`` in a transaction of its own; StoreError (typed) when SQLite fails it.

        A :attr:`~gateway.store.work.Access.GROW` work makes room first and is refused with
        :class:`StorageFullError` when only undelivered records are left.
        """
        if work.access is Access.GROW:
            self._ensure_room()
        conn = self._connection()
        with self._translated(work.what):
            # IMMEDIATE takes the write lock up front, so a busy database is waited
            # for (busy_timeout) at BEGIN rather than failing halfway through.
            conn.execute("BEGIN" if work.access is Access.READ else "BEGIN IMMEDIATE")
            try:
                result = work.run(Tx(conn, self._clock(), self._ids))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return result

    def stats(self) -> QueueStats:
        return self.run(read("reading queue statistics", self._budget.stats))

    def prune(self) -> PruneReport:
        """Retention, then the budget: the rows delivered longest ago first, then motion snippets.

        Pending and dead rows are never removed here.
        """
        budget = self._budget
        delivered = self.run(write("pruning delivered records past retention", budget.prune_retention))
        pruned = Pruned(delivered, 0)
        if self._over_budget():
            self._checkpoint()
        if self._over_budget():
            to_budget = self.run(write("pruning to the storage budget", budget.prune_to_budget))
            pruned = Pruned(delivered + to_budget.delivered, to_budget.snippets)
            self._checkpoint()

        def measure(tx: Tx) -> tuple[int, BudgetState]:
            db_bytes = budget.db_bytes(tx.conn)
            return db_bytes, budget.state(tx.conn, db_bytes)

        bytes_after, state = self.run(read("measuring the outbox", measure))
        budget.log(state, bytes_after, pruned)
        return PruneReport(pruned.delivered, pruned.snippets, bytes_after, state)

    def _ensure_room(self) -> None:
        if not self._over_budget():
            return
        report = self.prune()
        if report.budget_state is BudgetState.FULL:
            raise StorageFullError(
                f"{self.path}: the outbox is at its budget ({report.bytes_after} of "
                f"{self._budget.limits.budget_bytes} bytes) and holds only undelivered records, which are never "
                "dropped; new records are refused. Get the hub online so pending records can be delivered, or "
                "raise the store budget if the disk has room."
            )

    def _over_budget(self) -> bool:
        with self._translated("measuring the outbox"):
            return self._budget.over(self._connection())

    def _checkpoint(self) -> None:
        with self._translated("checkpointing the WAL"):
            checkpoint(self._connection())

    # -- the file as a whole (for the keeper) ------------------------------------------------------

    def copy_to(self, target: Path) -> None:
        """Write a consistent copy of the whole database to ``target`` (SQLite's online backup).

        Works on a connection whose file was deleted under it: the open descriptors still
        reach the data, which is how a deleted outbox is brought back with its content.
        """
        with self._translated("copying the outbox"):
            copy = sqlite3.connect(target, isolation_level=None)
            try:
                self._connection().backup(copy)
            finally:
                copy.close()

    def salvage_from(self, damaged: Path) -> SalvageReport:
        """Copy what still reads cleanly of a corrupt outbox's pending records into this one."""
        with self._translated("salvaging records from a corrupt outbox"):
            return salvage(damaged, self._connection())

    # -- the connection ----------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the outbox {self.path} is closed")
        return self._conn

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise store_error(self.path, action, exc) from exc
