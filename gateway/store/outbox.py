"""The outbox: every record that leaves the hub waits here until the platform has it.

One SQLite file in WAL mode, one connection, used from one thread (the
:mod:`gateway.store.aio` wrapper gives it a thread of its own). A record is
*accepted* when its transaction commits; only then may a driver acknowledge
the device (advance an RACP sequence number, consume a radar frame).

Storage is bounded by ``budget_bytes``: past ``warn_ratio`` of it the state is
WARNING (logged, reported in :meth:`Outbox.stats`); at the budget delivered
rows are pruned oldest first, then raw motion snippets. Pending and dead rows
are never pruned: when only they are left, new records are refused with
:class:`StorageFullError` rather than losing any.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from gateway.errors import OutboxUnavailableError, StorageFullError, StoreError
from gateway.store import stamps
from gateway.store.api import (
    Accepted,
    BudgetState,
    ClockCorrection,
    DeadLetter,
    HubStamp,
    NewRecord,
    PendingRecord,
    Priority,
    PruneReport,
    QueueStats,
    RecordState,
    Retimed,
)
from gateway.store.ids import RecordIdFactory
from gateway.store.salvage import SalvageReport, salvage
from gateway.store.schema import migrate
from gateway.store.sqlite import configure, from_us, store_error, to_us

log = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 512 * 2**20
DEFAULT_WARN_RATIO = 0.8
DEFAULT_DELIVERED_RETENTION_S = 30 * 86400

# Rows deleted per step while pruning to the budget: the step starts small so a
# small outbox stops close to its target, and doubles so a 512 MiB one prunes
# in a few hundred steps.
_PRUNE_FIRST_STEP_ROWS, _PRUNE_MAX_STEP_ROWS = 8, 4096
_LAST_ERROR_MAX_CHARS = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


def budget_state(db_bytes: int, budget_bytes: int, warn_ratio: float, *, prunable: bool) -> BudgetState:
    """Where the outbox stands against its budget; ``prunable``: delivered rows or snippets remain."""
    if db_bytes >= budget_bytes:
        return BudgetState.PRUNING if prunable else BudgetState.FULL
    if db_bytes >= budget_bytes * warn_ratio:
        return BudgetState.WARNING
    return BudgetState.OK


def _validated_payload(index: int, record: NewRecord) -> str:
    """The payload as stored: a JSON object without ``record_id``; ValueError naming the record."""
    where = f"record {index} (type {record.type!r})"
    if not record.type:
        raise ValueError(f"record {index}: type is empty; give the platform record type")
    if not isinstance(record.priority, Priority):
        raise ValueError(f"{where}: priority {record.priority!r} is not a gateway.store.Priority")
    try:
        payload = json.loads(record.payload_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: payload_json is not valid JSON ({exc})") from exc
    if not isinstance(payload, dict):
        raise ValueError(f"{where}: payload_json must be a JSON object, got {type(payload).__name__}")
    if "record_id" in payload:
        raise ValueError(f"{where}: payload_json already has a record_id; the outbox assigns it")
    return record.payload_json.strip() if payload else "{}"


def _body_json(record_id: str, payload_json: str) -> str:
    # Splicing instead of json round-tripping keeps the platform's field order and
    # is cheap on the uplink's hot path; payloads were checked to be objects at acceptance.
    if payload_json == "{}":
        return f'{{"record_id":"{record_id}"}}'
    return f'{{"record_id":"{record_id}",{payload_json[1:]}'


@dataclass(frozen=True, slots=True)
class MotionSnippet:
    """Raw IMU samples kept as the evidence of a fall alert."""

    alert_id: str
    device_id: str
    first_sample_at: datetime
    sample_rate_hz: float
    samples: bytes


class Outbox:
    """The synchronous outbox; use it from one thread only."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        *,
        budget_bytes: int,
        warn_ratio: float,
        delivered_retention_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        """Use :meth:`open`; this takes a connection already configured and migrated."""
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._budget_bytes = budget_bytes
        self._warn_ratio = warn_ratio
        self._retention_us = round(delivered_retention_s * 1_000_000)
        self._clock = clock
        self._ids = RecordIdFactory()
        self._wal_path = path.with_name(path.name + "-wal")
        self._page_size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        self._logged_state = BudgetState.OK

    # -- opening and closing -------------------------------------------------

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        warn_ratio: float = DEFAULT_WARN_RATIO,
        delivered_retention_s: float = DEFAULT_DELIVERED_RETENTION_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> Outbox:
        """Open (or create) the outbox at ``path`` and bring its schema up to date."""
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
        if not 0 < warn_ratio < 1:
            raise ValueError(f"warn_ratio must be between 0 and 1 (exclusive), got {warn_ratio}")
        if not (math.isfinite(delivered_retention_s) and delivered_retention_s >= 0):
            raise ValueError(f"delivered_retention_s must be >= 0 seconds, got {delivered_retention_s}")
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
            configure(conn, path, budget_bytes)
            applied = migrate(conn)
            outbox = cls(
                conn,
                path,
                budget_bytes=budget_bytes,
                warn_ratio=warn_ratio,
                delivered_retention_s=delivered_retention_s,
                clock=clock,
            )
        except sqlite3.Error as exc:
            conn.close()
            raise store_error(path, "opening the database", exc) from exc
        except BaseException:
            conn.close()
            raise
        log.info("outbox opened path=%s migrations_applied=%s", path, applied or "none")
        return outbox

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except sqlite3.Error as exc:
                # A connection to a damaged or vanished file may fail to close cleanly; it is gone either way.
                log.warning("outbox closed with an error path=%s error=%s", self.path, exc)

    def set_limits(self, *, budget_bytes: int, warn_ratio: float, delivered_retention_s: float) -> None:
        """New storage settings from a reloaded configuration; they apply from the next write and prune."""
        self._budget_bytes = budget_bytes
        self._warn_ratio = warn_ratio
        self._retention_us = round(delivered_retention_s * 1_000_000)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def salvage_from(self, damaged: Path) -> SalvageReport:
        """Copy what still reads cleanly of a corrupt outbox's pending records into this one."""
        with self._translated("salvaging records from a corrupt outbox"):
            return salvage(damaged, self._connection())

    # -- accepting -----------------------------------------------------------

    def accept(self, records: Sequence[NewRecord], *, corrections: Sequence[ClockCorrection] = ()) -> list[Accepted]:
        """Accept records in one transaction; when this returns, they are on disk.

        A record whose ``dedupe_key`` (or given ``record_id``) was ever accepted is not inserted
        again: its existing id comes back with ``new=False``. Keys outlive their rows (pruned rows
        leave their key in ``source_keys``), so a device memory downloaded again after
        retention never uploads a reading twice.
        The budget is checked before the batch, so one batch may overshoot it; a batch of alerts
        and events only is never refused for the budget (the disk itself may still be full).
        """
        (result,) = self.accept_groups([records], corrections=corrections)
        if isinstance(result, ValueError):
            raise result
        return result

    def accept_groups(self, groups: Sequence[Sequence[NewRecord]], *,
                      corrections: Sequence[ClockCorrection] = ()) -> list[list[Accepted] | ValueError]:
        """Accept several callers' records in one transaction (group commit: one fsync for them all).

        ``corrections``: the clock steps already applied (:meth:`correct_clock`); a record stamped before
        one of them and stored only now is corrected as it goes in.
        Each group is validated on its own: a group with an invalid record gets its ValueError back
        and the others are accepted all the same. StoreError fails them all (nothing was written).
        """
        results: list[list[Accepted] | ValueError] = []
        valid: list[tuple[int, list[tuple[NewRecord, str, int]]]] = []
        for group in groups:
            try:
                rows = [(record, _validated_payload(i, record), to_us(record.created_at, f"record {i} created_at"))
                        for i, record in enumerate(group)]
            except ValueError as exc:
                results.append(exc)
                continue
            results.append([])
            if rows:
                valid.append((len(results) - 1, rows))
        if not valid:
            return results
        if not all(record.vital for _, rows in valid for record, _, _ in rows):
            # Alerts go in even at the budget: they are few and small, and refusing one would
            # silence an emergency to save a few hundred bytes.
            self._ensure_room()
        accepted_ms = to_us(self._clock(), "clock()") // 1000
        with self._write("accepting records") as conn:
            for index, rows in valid:
                results[index] = [self._insert(conn, record, payload, created_us, accepted_ms, corrections=corrections)
                                  for record, payload, created_us in rows]
        return results

    def _insert(self, conn: sqlite3.Connection, record: NewRecord, payload: str, created_us: int,
                accepted_ms: int, *, corrections: Sequence[ClockCorrection]) -> Accepted:
        existing = self._existing_id(conn, record)
        if existing is not None:
            return Accepted(existing, new=False)
        record_id = record.record_id or self._ids.new_id(accepted_ms)
        stamp = record.stamp
        if stamp is not None:
            missed = stamps.stamped_before(stamp, corrections)
            payload, created_us = stamps.retimed_payload(payload, created_us, missed)
            if any(correction.synced for correction in missed):
                stamp = None  # corrected for good
            elif missed:
                # Corrected for the steps it missed, still on an unsynchronised clock: a later step must
                # find it (it is before that one), the one it missed must not shift it a second time.
                stamp = HubStamp(stamp.boot_id, max(c.before_monotonic for c in missed))
        conn.execute(
            "INSERT INTO records (record_id, type, priority, state, created_at, payload_json,"
            " dedupe_key, size_bytes) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
            (record_id, record.type, int(record.priority), created_us, payload,
             record.dedupe_key, len(payload.encode())),
        )
        if stamp is not None:
            stamps.add(conn, record_id, stamp)
        return Accepted(record_id, new=True)

    # -- the hub clock -------------------------------------------------------

    def correct_clock(self, correction: ClockCorrection) -> Retimed:
        """The hub clock stepped: correct the pending records stamped before it, in one transaction."""
        with self._write("correcting records for a clock step") as conn:
            return stamps.correct(conn, correction)

    @staticmethod
    def _existing_id(conn: sqlite3.Connection, record: NewRecord) -> str | None:
        """The id under which the outbox already has this record (by source key or given id), if any."""
        if record.dedupe_key is not None:
            row = conn.execute(
                "SELECT record_id FROM records WHERE dedupe_key = ?"
                " UNION ALL SELECT record_id FROM source_keys WHERE dedupe_key = ? LIMIT 1",
                (record.dedupe_key, record.dedupe_key),
            ).fetchone()
            if row is not None:
                return str(row[0])
        if record.record_id is not None:
            # A given id without a source key is one the hub chose while the disk was failing
            # (gateway.store.aio holds such records): it is in ``records`` if its commit happened.
            row = conn.execute("SELECT record_id FROM records WHERE record_id = ?", (record.record_id,)).fetchone()
            if row is not None:
                return str(row[0])
        return None

    def add_motion_snippet(
        self, *, alert_id: str, device_id: str, first_sample_at: datetime, sample_rate_hz: float,
        samples: bytes,
    ) -> None:
        """Keep raw motion as the evidence of a fall alert; prunable at the budget, after delivered rows."""
        first_us = to_us(first_sample_at, "first_sample_at")
        if not (math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
            raise ValueError(f"sample_rate_hz must be a positive number, got {sample_rate_hz}")
        if not samples:
            raise ValueError(f"motion snippet for alert {alert_id} has no samples")
        self._ensure_room()
        now_us = to_us(self._clock(), "clock()")
        with self._write("storing a motion snippet") as conn:
            conn.execute(
                "INSERT INTO motion_snippets (alert_id, device_id, first_sample_at, sample_rate_hz,"
                " samples, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (alert_id, device_id, first_us, sample_rate_hz, bytes(samples), now_us),
            )

    def motion_snippets(self, alert_id: str) -> list[MotionSnippet]:
        with self._read("reading motion snippets") as conn:
            rows = conn.execute(
                "SELECT alert_id, device_id, first_sample_at, sample_rate_hz, samples"
                " FROM motion_snippets WHERE alert_id = ? ORDER BY snippet_id",
                (alert_id,),
            ).fetchall()
        return [MotionSnippet(a, d, from_us(f), r, bytes(s)) for a, d, f, r, s in rows]

    # -- the uplink's side ---------------------------------------------------

    def pending_batch(self, *, max_records: int = 500, max_bytes: int = 1_000_000,
                      exclude: Collection[str] = (), held_before: datetime | None = None) -> list[PendingRecord]:
        """The next records to upload: alerts first, then oldest first, leaving out ``exclude``.

        ``held_before``: records stamped by an unsynchronised clock and dated before it (a clock that was
        not set) wait for the clock step that corrects them instead of reaching the platform in the
        wrong year.
        Stops before the bodies would exceed ``max_bytes`` (UTF-8), but always
        returns at least one record if any is pending, so one oversized record
        cannot block the queue. ``exclude``: records the platform already has that are not
        yet marked delivered (the uplink marks many at once, in one transaction).
        """
        if max_records < 1 or max_bytes < 1:
            raise ValueError(f"max_records and max_bytes must be >= 1, got {max_records}, {max_bytes}")
        batch: list[PendingRecord] = []
        total = 0
        # INDEXED BY: without ANALYZE statistics the planner prefers the
        # (state, created_at) index and sorts every pending row per batch.
        query = ("SELECT record_id, type, priority, payload_json, attempts FROM records"
                 " INDEXED BY records_pending_order WHERE state = 'pending'")
        params: tuple[object, ...] = ()
        if exclude:
            query += " AND record_id NOT IN (SELECT value FROM json_each(?))"
            params += (json.dumps(list(exclude)),)
        if held_before is not None:
            query += " AND " + stamps.HELD_CONDITION
            params += (to_us(held_before, "held_before"),)
        params += (max_records,)
        with self._read("reading pending records") as conn:
            cursor = conn.execute(query + " ORDER BY priority, created_at, record_id LIMIT ?", params)
            for record_id, record_type, priority, payload, attempts in cursor:
                body = _body_json(record_id, payload)
                total += len(body.encode())
                if batch and total > max_bytes:
                    break
                batch.append(PendingRecord(record_id, record_type, Priority(priority), body, attempts))
        return batch

    def mark_delivered(self, record_ids: Sequence[str]) -> None:
        """The platform has these records; they stay (marked) until retention prunes them."""
        now_us = to_us(self._clock(), "clock()")
        unique = set(record_ids)
        with self._write("marking records delivered") as conn:
            # One statement for the whole set (the ids as one JSON array): an UPDATE per record made
            # delivery, not the platform, the drain's bottleneck. INDEXED BY: the planner would
            # otherwise walk every pending row (the state index) and test each against the set.
            changed = conn.execute(
                "UPDATE records INDEXED BY sqlite_autoindex_records_1 SET state = 'delivered', delivered_at = ?"
                " WHERE state = 'pending' AND record_id IN (SELECT value FROM json_each(?))",
                (now_us, json.dumps(sorted(unique))),
            ).rowcount
        if changed != len(unique):
            log.info("mark_delivered: %d of %d record ids were not pending", len(unique) - changed, len(unique))

    def note_attempt(self, record_ids: Sequence[str], error: str) -> None:
        """An upload of these records failed (transiently); count it and keep the reason."""
        error = error[:_LAST_ERROR_MAX_CHARS]
        with self._write("noting an upload attempt") as conn:
            conn.execute(
                "UPDATE records INDEXED BY sqlite_autoindex_records_1 SET attempts = attempts + 1, last_error = ?"
                " WHERE state = 'pending' AND record_id IN (SELECT value FROM json_each(?))",
                (error, json.dumps(sorted(set(record_ids)))),
            )

    def mark_dead(self, record_id: str, reason: str) -> None:
        """The platform rejected this record for good: keep it for the technician, never retry it."""
        now_us = to_us(self._clock(), "clock()")
        with self._write("marking a record dead") as conn:
            changed = conn.execute(
                "UPDATE records SET state = 'dead', dead_reason = ?, dead_at = ?"
                " WHERE record_id = ? AND state = 'pending'",
                (reason, now_us, record_id),
            ).rowcount
        if changed:
            # The reason stays in the database: a platform's message may quote health values.
            log.warning("record dead-lettered record_id=%s", record_id)
        else:
            log.info("mark_dead: record_id=%s is not pending; left as it is", record_id)

    def requeue_dead(self, record_ids: Sequence[str] | None = None) -> int:
        """Technician action: send dead letters again (all of them if ``record_ids`` is None)."""
        requeue = (
            "UPDATE records SET state = 'pending', attempts = 0, dead_reason = NULL, dead_at = NULL"
            " WHERE state = 'dead'"
        )
        with self._write("requeueing dead letters") as conn:
            if record_ids is None:
                count = conn.execute(requeue).rowcount
            else:
                count = sum(
                    conn.execute(requeue + " AND record_id = ?", (record_id,)).rowcount
                    for record_id in set(record_ids)
                )
        log.info("dead letters requeued count=%d", count)
        return count

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        with self._read("reading dead letters") as conn:
            rows = conn.execute(
                "SELECT record_id, type, dead_reason, dead_at FROM records WHERE state = 'dead'"
                " ORDER BY dead_at, record_id LIMIT ?",
                (limit,),
            ).fetchall()
        return [DeadLetter(rid, rtype, reason, from_us(dead_at)) for rid, rtype, reason, dead_at in rows]

    def record_state(self, record_id: str) -> RecordState | None:
        """Where a record is; None if the outbox never had it or has pruned it."""
        with self._read("reading a record's state") as conn:
            row = conn.execute("SELECT state FROM records WHERE record_id = ?", (record_id,)).fetchone()
        return None if row is None else RecordState(row[0])

    # -- driver cursors ------------------------------------------------------

    def get_cursor(self, name: str) -> str | None:
        with self._read("reading a cursor") as conn:
            row = conn.execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, name: str, value: str) -> None:
        now_us = to_us(self._clock(), "clock()")
        with self._write("saving a cursor") as conn:
            conn.execute(
                "INSERT INTO cursors (name, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (name, value, now_us),
            )

    def save_active_alert(self, alert_id: str, alert_json: str) -> None:
        now_us = to_us(self._clock(), "clock()")
        with self._write("saving an active alert") as conn:
            conn.execute(
                "INSERT INTO active_alerts (alert_id, alert_json, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (alert_id) DO UPDATE SET alert_json = excluded.alert_json,"
                " updated_at = excluded.updated_at",
                (alert_id, alert_json, now_us),
            )

    def drop_active_alert(self, alert_id: str) -> None:
        with self._write("closing an active alert") as conn:
            conn.execute("DELETE FROM active_alerts WHERE alert_id = ?", (alert_id,))

    def active_alerts(self) -> list[str]:
        """The JSON of every alert still open, oldest change first."""
        with self._read("reading active alerts") as conn:
            return [str(r[0]) for r in conn.execute("SELECT alert_json FROM active_alerts ORDER BY updated_at")]

    # -- size, stats and pruning --------------------------------------------

    def stats(self) -> QueueStats:
        with self._read("reading queue statistics") as conn:
            counts = dict(conn.execute("SELECT state, COUNT(*) FROM records GROUP BY state").fetchall())
            oldest = conn.execute("SELECT MIN(created_at) FROM records WHERE state = 'pending'").fetchone()[0]
            alerts = conn.execute(
                "SELECT COUNT(*) FROM records INDEXED BY records_pending_order"
                " WHERE state = 'pending' AND priority = ?", (int(Priority.ALERT),)
            ).fetchone()[0]
            db_bytes = self._db_bytes(conn)
            state = self._budget_state(conn, db_bytes)
        return QueueStats(
            pending=counts.get(RecordState.PENDING.value, 0),
            delivered=counts.get(RecordState.DELIVERED.value, 0),
            dead=counts.get(RecordState.DEAD.value, 0),
            oldest_pending_at=None if oldest is None else from_us(oldest),
            pending_alerts=alerts,
            db_bytes=db_bytes,
            budget_bytes=self._budget_bytes,
            budget_state=state,
        )

    def prune(self) -> PruneReport:
        """Retention, then the budget: delivered rows oldest first, then motion snippets.

        Pending and dead rows are never removed here.
        """
        cutoff_us = to_us(self._clock(), "clock()") - self._retention_us
        with self._write("pruning delivered records past retention") as conn:
            delivered_removed = conn.execute(
                "DELETE FROM records WHERE state = 'delivered' AND delivered_at < ?", (cutoff_us,)
            ).rowcount
        snippets_removed = 0
        if self._db_bytes(self._connection()) >= self._budget_bytes:
            self._checkpoint()
        if self._db_bytes(self._connection()) >= self._budget_bytes:
            # Down to just under the warning level, not just under the budget, so
            # that not every following record has to prune again.
            target_pages = int(self._budget_bytes * self._warn_ratio) // self._page_size - 1
            with self._write("pruning to the storage budget") as conn:
                delivered_removed += self._prune_oldest(
                    conn, target_pages,
                    "DELETE FROM records WHERE record_id IN (SELECT record_id FROM records"
                    " WHERE state = 'delivered' ORDER BY created_at LIMIT ?)",
                )
                snippets_removed = self._prune_oldest(
                    conn, target_pages,
                    "DELETE FROM motion_snippets WHERE snippet_id IN (SELECT snippet_id FROM motion_snippets"
                    " ORDER BY snippet_id LIMIT ?)",
                )
            self._checkpoint()
        with self._read("measuring the outbox") as conn:
            bytes_after = self._db_bytes(conn)
            state = self._budget_state(conn, bytes_after)
        self._log_budget(state, bytes_after, delivered_removed, snippets_removed)
        return PruneReport(delivered_removed, snippets_removed, bytes_after, state)

    def _prune_oldest(self, conn: sqlite3.Connection, target_pages: int, delete_oldest_sql: str) -> int:
        removed = 0
        step = _PRUNE_FIRST_STEP_ROWS
        while self._used_pages(conn) > target_pages:
            deleted = conn.execute(delete_oldest_sql, (step,)).rowcount
            if deleted == 0:
                break
            removed += deleted
            step = min(step * 2, _PRUNE_MAX_STEP_ROWS)
        return removed

    def _ensure_room(self) -> None:
        if self._db_bytes(self._connection()) < self._budget_bytes:
            return
        report = self.prune()
        if report.budget_state is BudgetState.FULL:
            raise StorageFullError(
                f"{self.path}: the outbox is at its budget ({report.bytes_after} of {self._budget_bytes} "
                "bytes) and holds only undelivered records, which are never dropped; new records are "
                "refused. Get the hub online so pending records can be delivered, or raise the store "
                "budget if the disk has room."
            )

    def _used_pages(self, conn: sqlite3.Connection) -> int:
        page_count: int = conn.execute("PRAGMA page_count").fetchone()[0]
        freelist: int = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return page_count - freelist

    def _db_bytes(self, conn: sqlite3.Connection) -> int:
        """Bytes the outbox holds: pages in use plus the WAL file.

        Free pages are not counted: SQLite reuses them for new rows, so the file
        never grows past what is in use; after pruning they are room, not usage.
        """
        try:
            wal_bytes = self._wal_path.stat().st_size
        except FileNotFoundError:
            wal_bytes = 0
        return self._used_pages(conn) * self._page_size + wal_bytes

    def _budget_state(self, conn: sqlite3.Connection, db_bytes: int) -> BudgetState:
        prunable = db_bytes >= self._budget_bytes and bool(
            conn.execute(
                "SELECT EXISTS (SELECT 1 FROM records WHERE state = 'delivered')"
                " OR EXISTS (SELECT 1 FROM motion_snippets)"
            ).fetchone()[0]
        )
        return budget_state(db_bytes, self._budget_bytes, self._warn_ratio, prunable=prunable)

    def _log_budget(self, state: BudgetState, db_bytes: int, delivered: int, snippets: int) -> None:
        if delivered or snippets:
            log.info("outbox pruned delivered_removed=%d snippets_removed=%d", delivered, snippets)
        if state is self._logged_state:
            return
        self._logged_state = state
        level = {BudgetState.OK: logging.INFO, BudgetState.WARNING: logging.WARNING}.get(state, logging.ERROR)
        log.log(
            level,
            "outbox budget_state=%s db_bytes=%d budget_bytes=%d path=%s",
            state.value, db_bytes, self._budget_bytes, self.path,
        )

    def _checkpoint(self) -> None:
        # TRUNCATE gives the WAL's disk space back, which the budget counts.
        with self._translated("checkpointing the WAL"):
            self._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # -- transactions --------------------------------------------------------

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

    @contextmanager
    def _write(self, action: str) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so a busy database is waited
        # for (busy_timeout) at BEGIN rather than failing halfway through.
        yield from self._transaction("BEGIN IMMEDIATE", action)

    @contextmanager
    def _read(self, action: str) -> Iterator[sqlite3.Connection]:
        # One read transaction, so several queries see the same snapshot.
        yield from self._transaction("BEGIN", action)

    def _transaction(self, begin: str, action: str) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._translated(action):
            conn.execute(begin)
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
