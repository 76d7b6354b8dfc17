"""The ``records`` table: the queue of everything the hub uploads, and its dead letters.

A record is *accepted* when the transaction of :func:`accept` commits; only then may a driver
acknowledge the device (advance an RACP sequence number, consume a radar frame). It is then pending
until the platform has it (:func:`mark_delivered`) or refuses it for good (:func:`mark_dead`).
Delivered rows stay for the retention and are pruned by the budget (:mod:`gateway.store.budget`);
pending and dead rows are never pruned.

A repository: each function builds the :class:`~gateway.store.work.Work` a database runs.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from gateway.store import stamps
from gateway.store.api import (
    Accepted,
    ClockCorrection,
    DeadLetter,
    HubStamp,
    NewRecord,
    PendingRecord,
    Priority,
    QueuePlace,
    RecordState,
)
from gateway.store.sqlite import from_us, to_us
from gateway.store.work import Tx, Work, grow, read, write

log = logging.getLogger(__name__)

_LAST_ERROR_MAX_CHARS = 500


@dataclass(frozen=True, slots=True)
class _Row:
    record: NewRecord
    payload: str
    created_us: int


@dataclass(frozen=True, slots=True)
class RecordCounts:
    pending: int
    delivered: int
    dead: int
    oldest_pending_at: datetime | None
    pending_alerts: int


# -- accepting -------------------------------------------------------------------------------------


def accept(records: Sequence[NewRecord], *, corrections: Sequence[ClockCorrection] = ()) -> Work[list[Accepted]]:
    """Accept records in one transaction; when it has run, they are on disk.

    A record whose ``dedupe_key`` (or given ``record_id``) was ever accepted is not inserted
    again: its existing id comes back with ``new=False``. Keys outlive their rows (pruned rows
    leave their key in ``source_keys``), so a device memory downloaded again after
    retention never uploads a reading twice.
    The budget is checked before the batch, so one batch may overshoot it; a batch of alerts
    and events only is never refused for the budget (the disk itself may still be full).
    ValueError here, naming the record, for an invalid one: nothing of the batch is accepted.
    """
    together = _accepting([_checked(records)], corrections)

    def run(tx: Tx) -> list[Accepted]:
        (accepted,) = together.run(tx)
        assert not isinstance(accepted, ValueError)
        return accepted

    return Work(together.what, together.access, run)


def accept_groups(groups: Sequence[Sequence[NewRecord]], *,
                  corrections: Sequence[ClockCorrection] = ()) -> Work[list[list[Accepted] | ValueError]]:
    """Accept several callers' records in one transaction (group commit: one fsync for them all).

    ``corrections``: the clock steps already applied (:func:`gateway.store.stamps.correct`); a record
    stamped before one of them and stored only now is corrected as it goes in.
    Each group is validated on its own: a group with an invalid record gets its ValueError back
    and the others are accepted all the same. StoreError fails them all (nothing was written).
    """
    checked: list[list[_Row] | ValueError] = []
    for group in groups:
        try:
            checked.append(_checked(group))
        except ValueError as exc:
            checked.append(exc)
    return _accepting(checked, corrections)


def _checked(records: Sequence[NewRecord]) -> list[_Row]:
    return [_Row(record, _validated_payload(i, record), to_us(record.created_at, f"record {i} created_at"))
            for i, record in enumerate(records)]


def _accepting(checked: list[list[_Row] | ValueError],
               corrections: Sequence[ClockCorrection]) -> Work[list[list[Accepted] | ValueError]]:
    corrections = tuple(corrections)
    rows = [row for group in checked if not isinstance(group, ValueError) for row in group]

    def run(tx: Tx) -> list[list[Accepted] | ValueError]:
        accepted_ms = to_us(tx.now, "clock()") // 1000
        return [group if isinstance(group, ValueError)
                else [_insert(tx, row, accepted_ms, corrections) for row in group]
                for group in checked]

    if not rows:
        return read("accepting records", run)  # nothing to write: no write lock, no commit
    if all(row.record.vital for row in rows):
        # Alerts go in even at the budget: they are few and small, and refusing one would
        # silence an emergency to save a few hundred bytes.
        return write("accepting records", run)
    return grow("accepting records", run)


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


def _insert(tx: Tx, row: _Row, accepted_ms: int, corrections: Sequence[ClockCorrection]) -> Accepted:
    record, payload, created_us = row.record, row.payload, row.created_us
    existing = _existing_id(tx.conn, record)
    if existing is not None:
        return Accepted(existing, new=False)
    record_id = record.record_id or tx.ids.new_id(accepted_ms)
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
    tx.conn.execute(
        "INSERT INTO records (record_id, type, priority, state, created_at, payload_json,"
        " dedupe_key, size_bytes) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
        (record_id, record.type, int(record.priority), created_us, payload,
         record.dedupe_key, len(payload.encode())),
    )
    if stamp is not None:
        stamps.add(tx.conn, record_id, stamp)
    return Accepted(record_id, new=True)


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
        # (gateway.store.intake holds such records): it is in ``records`` if its commit happened.
        row = conn.execute("SELECT record_id FROM records WHERE record_id = ?", (record.record_id,)).fetchone()
        if row is not None:
            return str(row[0])
    return None


# -- the uplink's side -----------------------------------------------------------------------------


def pending_batch(*, max_records: int = 500, max_bytes: int = 1_000_000, exclude: Collection[str] = (),
                  after: QueuePlace | None = None, held_before: datetime | None = None) -> Work[list[PendingRecord]]:
    """The next records to upload: alerts first, then oldest first, leaving out ``exclude``.

    ``held_before``: records stamped by an unsynchronised clock and dated before it (a clock that was
    not set) wait for the clock step that corrects them instead of reaching the platform in the
    wrong year.
    Stops before the bodies would exceed ``max_bytes`` (UTF-8), but always
    returns at least one record if any is pending, so one oversized record
    cannot block the queue. ``exclude``: records the platform already has that are not
    yet marked delivered (the uplink marks many at once, in one transaction). ``after``: the last
    place taken, at or after every excluded record's: when exactly the excluded records are pending
    up to it (nothing new arrived behind it, nothing failed there), the batch starts after it instead
    of walking past them; otherwise (an alert that came in meanwhile, a record to retry) the batch
    is read from the front, leaving them out.
    """
    if max_records < 1 or max_bytes < 1:
        raise ValueError(f"max_records and max_bytes must be >= 1, got {max_records}, {max_bytes}")

    held_us = None if held_before is None else to_us(held_before, "held_before")

    def run(tx: Tx) -> list[PendingRecord]:
        held = held_us if held_us is not None and _any_dated_before(tx.conn, held_us) else None
        query, params = _PENDING, cast(tuple[object, ...], ())
        if exclude and after is not None and _behind(tx.conn, after, held) == len(exclude):
            query, params = _PENDING_AFTER, (after.priority, after.created_us, after.record_id)
        elif exclude:
            query += " AND record_id NOT IN (SELECT value FROM json_each(?))"
            params += (json.dumps(list(exclude)),)
        if held is not None:
            query += _NOT_HELD
            params += (held,)
        batch: list[PendingRecord] = []
        total = 0
        rows = tx.conn.execute(query + _PENDING_ORDER, (*params, max_records))
        for row, record_id, record_type, priority, created_us, payload, attempts in rows:
            body = _body_json(record_id, payload)
            total += len(body.encode())
            if batch and total > max_bytes:
                break
            batch.append(PendingRecord(record_id, record_type, _PRIORITIES[priority], body, attempts,
                                       QueuePlace(priority, created_us, record_id, row)))
        return batch

    return read("reading pending records", run)


# INDEXED BY: without ANALYZE statistics the planner prefers another index and sorts every pending
# row per batch.
_PENDING = ("SELECT rowid, record_id, type, priority, created_at, payload_json, attempts FROM records"
            " INDEXED BY records_pending_order WHERE state = 'pending'")
_PENDING_AFTER = _PENDING + " AND (priority, created_at, record_id) > (?, ?, ?)"
_PENDING_ORDER = " ORDER BY priority, created_at, record_id LIMIT ?"
_BEHIND = ("SELECT COUNT(*) FROM records INDEXED BY records_pending_order"
           " WHERE state = 'pending' AND (priority, created_at, record_id) <= (?, ?, ?)")
_NOT_HELD = " AND " + stamps.HELD_CONDITION
_DATED_BEFORE = ("SELECT EXISTS (SELECT 1 FROM records INDEXED BY records_pending_order"
                 " WHERE state = 'pending' AND priority = ? AND created_at < ?)")
_PRIORITIES = {int(p): p for p in Priority}


def _any_dated_before(conn: sqlite3.Connection, at_us: int) -> bool:
    """Whether any pending record is dated before ``at_us`` (one index seek per priority): when none
    is, no record can be held for the clock and the batch need not ask each row."""
    return any(conn.execute(_DATED_BEFORE, (int(priority), at_us)).fetchone()[0] for priority in Priority)


def records_behind(place: QueuePlace, *, held_before: datetime | None = None) -> Work[int]:
    """How many records :func:`pending_batch` would find at or before ``place``: what it compares with
    the records left out to know whether it may start after ``place``."""
    held_us = None if held_before is None else to_us(held_before, "held_before")

    def run(tx: Tx) -> int:
        return _behind(tx.conn, place, held_us)

    return read("counting pending records", run)


def _behind(conn: sqlite3.Connection, place: QueuePlace, held_us: int | None) -> int:
    """How many records are pending, and not held, at or before ``place`` in the upload order (the index
    alone, unless a record there is dated before ``held_us``)."""
    query, params = _BEHIND, cast(tuple[object, ...], (place.priority, place.created_us, place.record_id))
    if held_us is not None:
        query += _NOT_HELD
        params += (held_us,)
    return int(conn.execute(query, params).fetchone()[0])


def _body_json(record_id: str, payload_json: str) -> str:
    # Splicing instead of json round-tripping keeps the platform's field order and
    # is cheap on the uplink's hot path; payloads were checked to be objects at acceptance.
    if payload_json == "{}":
        return f'{{"record_id":"{record_id}"}}'
    return f'{{"record_id":"{record_id}",{payload_json[1:]}'


def mark_delivered(record_ids: Sequence[str]) -> Work[None]:
    """The platform has these records; they stay (marked) until retention prunes them."""
    unique = sorted(set(record_ids))
    ids_json = json.dumps(unique)

    def run(tx: Tx) -> None:
        # One statement for the whole set (the ids as one JSON array). INDEXED BY: the planner would
        # otherwise walk every pending row and test each against the set.
        changed = tx.conn.execute(
            "UPDATE records INDEXED BY sqlite_autoindex_records_1 SET state = 'delivered', delivered_at = ?"
            " WHERE state = 'pending' AND record_id IN (SELECT value FROM json_each(?))",
            (to_us(tx.now, "clock()"), ids_json),
        ).rowcount
        _note_unmarked(changed, len(unique))

    return write("marking records delivered", run)


def mark_places_delivered(places: Collection[QueuePlace]) -> Work[None]:
    """The platform has the records at these places (as :func:`pending_batch` gave them): the uplink's way.

    The rows are visited in table order, which is the order they were written in: several times
    faster than finding each by its id. A row whose id is not the one taken (a database rebuilt by
    hand in between, which renumbers rows) is left alone and stays pending: sent again, never lost.
    """
    ordered = sorted(set(places), key=lambda p: p.row)
    rows_json = json.dumps([p.row for p in ordered])
    ids_json = json.dumps([p.record_id for p in ordered])

    def run(tx: Tx) -> None:
        changed = tx.conn.execute(
            "UPDATE records SET state = 'delivered', delivered_at = ?"
            " WHERE rowid IN (SELECT value FROM json_each(?)) AND state = 'pending'"
            " AND record_id IN (SELECT value FROM json_each(?))",
            (to_us(tx.now, "clock()"), rows_json, ids_json),
        ).rowcount
        _note_unmarked(changed, len(ordered))

    return write("marking records delivered", run)


def _note_unmarked(changed: int, asked: int) -> None:
    if changed != asked:
        log.info("mark_delivered: %d of %d records were not pending", asked - changed, asked)


def note_attempt(record_ids: Sequence[str], error: str) -> Work[None]:
    """An upload of these records failed (transiently); count it and keep the reason."""
    params = (error[:_LAST_ERROR_MAX_CHARS], json.dumps(sorted(set(record_ids))))

    def run(tx: Tx) -> None:
        tx.conn.execute(
            "UPDATE records INDEXED BY sqlite_autoindex_records_1 SET attempts = attempts + 1, last_error = ?"
            " WHERE state = 'pending' AND record_id IN (SELECT value FROM json_each(?))",
            params,
        )

    return write("noting an upload attempt", run)


def mark_dead(record_id: str, reason: str) -> Work[None]:
    """The platform rejected this record for good: keep it for the technician, never retry it."""

    def run(tx: Tx) -> None:
        changed = tx.conn.execute(
            "UPDATE records SET state = 'dead', dead_reason = ?, dead_at = ?"
            " WHERE record_id = ? AND state = 'pending'",
            (reason, to_us(tx.now, "clock()"), record_id),
        ).rowcount
        if changed:
            # The reason stays in the database: a platform's message may quote health values.
            log.warning("record dead-lettered record_id=%s", record_id)
        else:
            log.info("mark_dead: record_id=%s is not pending; left as it is", record_id)

    return write("marking a record dead", run)


def requeue_dead(record_ids: Sequence[str] | None = None) -> Work[int]:
    """Technician action: send dead letters again (all of them if ``record_ids`` is None)."""
    requeue = (
        "UPDATE records SET state = 'pending', attempts = 0, dead_reason = NULL, dead_at = NULL"
        " WHERE state = 'dead'"
    )
    chosen = None if record_ids is None else set(record_ids)

    def run(tx: Tx) -> int:
        if chosen is None:
            count = tx.conn.execute(requeue).rowcount
        else:
            count = sum(tx.conn.execute(requeue + " AND record_id = ?", (record_id,)).rowcount
                        for record_id in chosen)
        log.info("dead letters requeued count=%d", count)
        return count

    return write("requeueing dead letters", run)


def dead_letters(limit: int = 100) -> Work[list[DeadLetter]]:
    """Dead letters, oldest first."""

    def run(tx: Tx) -> list[DeadLetter]:
        rows = tx.conn.execute(
            "SELECT record_id, type, dead_reason, dead_at FROM records WHERE state = 'dead'"
            " ORDER BY dead_at, record_id LIMIT ?",
            (limit,),
        ).fetchall()
        return [DeadLetter(rid, rtype, reason, from_us(dead_at)) for rid, rtype, reason, dead_at in rows]

    return read("reading dead letters", run)


def state(record_id: str) -> Work[RecordState | None]:
    """Where a record is; None if the outbox never had it or has pruned it."""

    def run(tx: Tx) -> RecordState | None:
        row = tx.conn.execute("SELECT state FROM records WHERE record_id = ?", (record_id,)).fetchone()
        return None if row is None else RecordState(row[0])

    return read("reading a record's state", run)


# -- for the budget and the statistics (inside their transactions) ---------------------------------


def counts(conn: sqlite3.Connection) -> RecordCounts:
    # Each state counted on its own partial index (there is no index over every state).
    def count(state: RecordState) -> int:
        return int(conn.execute(_COUNT_BY_STATE[state]).fetchone()[0])

    # The oldest pending record is the oldest of each priority's first in the upload order.
    firsts = [conn.execute("SELECT created_at FROM records INDEXED BY records_pending_order"
                           " WHERE state = 'pending' AND priority = ? ORDER BY created_at LIMIT 1",
                           (int(priority),)).fetchone() for priority in Priority]
    oldest = min((row[0] for row in firsts if row is not None), default=None)
    alerts = conn.execute(
        "SELECT COUNT(*) FROM records INDEXED BY records_pending_order"
        " WHERE state = 'pending' AND priority = ?", (int(Priority.ALERT),)
    ).fetchone()[0]
    return RecordCounts(
        pending=count(RecordState.PENDING),
        delivered=count(RecordState.DELIVERED),
        dead=count(RecordState.DEAD),
        oldest_pending_at=None if oldest is None else from_us(oldest),
        pending_alerts=alerts,
    )


_COUNT_BY_STATE = {
    RecordState.PENDING: "SELECT COUNT(*) FROM records INDEXED BY records_pending_order WHERE state = 'pending'",
    RecordState.DELIVERED: "SELECT COUNT(*) FROM records INDEXED BY records_delivered WHERE state = 'delivered'",
    RecordState.DEAD: "SELECT COUNT(*) FROM records INDEXED BY records_dead WHERE state = 'dead'",
}


def any_delivered(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM records INDEXED BY records_delivered"
                             " WHERE state = 'delivered')").fetchone()[0])


def delete_delivered_before(conn: sqlite3.Connection, cutoff_us: int) -> int:
    return conn.execute("DELETE FROM records WHERE rowid IN (SELECT rowid FROM records INDEXED BY records_delivered"
                        " WHERE state = 'delivered' AND delivered_at < ?)", (cutoff_us,)).rowcount


def delete_oldest_delivered(conn: sqlite3.Connection, count: int) -> int:
    return conn.execute(
        "DELETE FROM records WHERE rowid IN (SELECT rowid FROM records INDEXED BY records_delivered"
        " WHERE state = 'delivered' ORDER BY created_at LIMIT ?)", (count,)
    ).rowcount
