"""The records the hub uploads: their data (``record_rows``) and their state, in narrow tables.

A record is *accepted* when the transaction of :func:`accept` commits; only then may a driver
acknowledge the device (advance an RACP sequence number, consume a radar frame). It is then pending
(its row is in ``upload_queue``) until the platform has it (:func:`mark_delivered`: the row moves to
``deliveries``) or refuses it for good (:func:`mark_dead`: to ``dead_letters``). The record's own row,
payload and all, is written once: a change of state moves a few dozen bytes, not the record.
Delivered rows stay for the retention and are pruned by the budget (:mod:`gateway.store.budget`);
pending and dead rows are never pruned. The ``records`` view shows each record with its state.

A repository: each function builds the :class:`~gateway.store.work.Work` a database runs.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

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
    number = tx.conn.execute(
        "INSERT INTO record_rows (record_id, type, priority, created_at, payload_json, dedupe_key, size_bytes)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (record_id, record.type, int(record.priority), created_us, payload,
         record.dedupe_key, len(payload.encode())),
    ).lastrowid
    tx.conn.execute("INSERT INTO upload_queue (row, priority, created_at, record_id) VALUES (?, ?, ?, ?)",
                    (number, int(record.priority), created_us, record_id))
    if stamp is not None:
        stamps.add(tx.conn, record_id, stamp)
    return Accepted(record_id, new=True)


def _existing_id(conn: sqlite3.Connection, record: NewRecord) -> str | None:
    """The id under which the outbox already has this record (by source key or given id), if any."""
    if record.dedupe_key is not None:
        row = conn.execute(
            "SELECT record_id FROM record_rows WHERE dedupe_key = ?"
            " UNION ALL SELECT record_id FROM source_keys WHERE dedupe_key = ? LIMIT 1",
            (record.dedupe_key, record.dedupe_key),
        ).fetchone()
        if row is not None:
            return str(row[0])
    if record.record_id is not None:
        # A given id without a source key is one the hub chose while the disk was failing
        # (gateway.store.intake holds such records): it is in ``record_rows`` if its commit happened.
        row = conn.execute("SELECT record_id FROM record_rows WHERE record_id = ?", (record.record_id,)).fetchone()
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
        params: dict[str, object] = {"limit": max_records, "held_before": held}
        if exclude and after is not None and _behind(tx.conn, after, held) == len(exclude):
            params.update(priority=after.priority, created=after.created_us, record_id=after.record_id)
            query = _pending_after(held=held is not None)
        else:
            params["exclude"] = json.dumps(list(exclude)) if exclude else None
            query = _pending(exclude=bool(exclude), held=held is not None)
        batch: list[PendingRecord] = []
        total = 0
        rows = tx.conn.execute(query, params)
        for row, record_id, record_type, priority, created_us, payload, attempts in rows:
            body = _body_json(record_id, payload)
            total += len(body.encode())
            if batch and total > max_bytes:
                break
            batch.append(PendingRecord(record_id, record_type, _PRIORITIES[priority], body, attempts,
                                       QueuePlace(priority, created_us, record_id, row)))
        return batch

    return read("reading pending records", run)


def _pending(*, exclude: bool, held: bool) -> str:
    """The query of the next batch from the front of the queue (named parameters)."""
    return (_PENDING + "1" + (_NOT_EXCLUDED if exclude else "") + (_NOT_HELD if held else "")
            + " ORDER BY q.priority, q.created_at, q.record_id LIMIT :limit")


def _pending_after(*, held: bool) -> str:
    """The query of the next batch after a place: the rest of its priority, sought on (priority,
    created_at), then the priorities after it. SQLite seeks a comparison of row values on the index's
    first column only: ``(priority, created_at, record_id) > place`` walked every entry before the place."""
    not_held = _NOT_HELD if held else ""
    return (_PENDING + "q.priority = :priority AND q.created_at >= :created"
            " AND (q.created_at, q.record_id) > (:created, :record_id)" + not_held
            + " UNION ALL " + _PENDING + "q.priority > :priority" + not_held + " ORDER BY 4, 5, 2 LIMIT :limit")


# INDEXED BY: the queue is walked in upload order, each record's row fetched by its number.
_PENDING = ("SELECT q.row, q.record_id, r.type, q.priority, q.created_at, r.payload_json, q.attempts"
            " FROM upload_queue AS q INDEXED BY upload_order JOIN record_rows AS r ON r.row = q.row WHERE ")
_NOT_EXCLUDED = " AND q.record_id NOT IN (SELECT value FROM json_each(:exclude))"
_NOT_HELD = " AND " + stamps.HELD_CONDITION
_BEHIND = ("SELECT COUNT(*) FROM upload_queue AS q INDEXED BY upload_order"
           " WHERE (q.priority, q.created_at, q.record_id) <= (:priority, :created, :record_id)")
_DATED_BEFORE = ("SELECT EXISTS (SELECT 1 FROM upload_queue INDEXED BY upload_order"
                 " WHERE priority = ? AND created_at < ?)")
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
    params = {"priority": place.priority, "created": place.created_us, "record_id": place.record_id,
              "held_before": held_us}
    query = _BEHIND if held_us is None else _BEHIND + _NOT_HELD
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
        # The set as one JSON array, each id found by the unique index of record_rows.
        taken = dict(tx.conn.execute(
            "SELECT r.row, r.record_id FROM record_rows AS r JOIN upload_queue AS q ON q.row = r.row"
            " WHERE r.record_id IN (SELECT value FROM json_each(?))", (ids_json,)))
        _note_unmarked(_deliver(tx, json.dumps(taken)), len(unique))

    return write("marking records delivered", run)


def mark_places_delivered(places: Collection[QueuePlace]) -> Work[None]:
    """The platform has the records at these places (as :func:`pending_batch` gave them): the uplink's way.

    Each row is found by its number, several times faster than by its id. A row that does not hold
    the id taken (a database replaced in between, whose numbers are another file's) is left alone
    and stays pending: sent again, never lost.
    """
    taken = {place.row: place.record_id for place in places}
    taken_json = json.dumps(taken)

    def run(tx: Tx) -> None:
        _note_unmarked(_deliver(tx, taken_json), len(taken))

    return write("marking records delivered", run)


def _deliver(tx: Tx, taken_json: str) -> int:
    """Move queue rows to ``deliveries``; ``taken_json``: a JSON object of row number to the record id
    the row must hold (an object, so each row is checked against its own id: a list of ids would
    cost a temporary index per statement). How many moved."""
    tx.conn.execute(_DELIVER_TAKEN, (to_us(tx.now, "clock()"), taken_json))
    return int(tx.conn.execute(_UNQUEUE_TAKEN, (taken_json,)).rowcount)


_TAKEN = (" FROM json_each(?) AS j JOIN upload_queue AS q ON q.row = CAST(j.key AS INTEGER)"
          " WHERE q.record_id = j.value")
_DELIVER_TAKEN = "INSERT INTO deliveries (delivered_at, row) SELECT ?, q.row" + _TAKEN
_UNQUEUE_TAKEN = "DELETE FROM upload_queue WHERE row IN (SELECT q.row" + _TAKEN + ")"  # noqa: S608 (constant parts)


def _note_unmarked(changed: int, asked: int) -> None:
    if changed != asked:
        log.info("mark_delivered: %d of %d records were not pending", asked - changed, asked)


def note_attempt(record_ids: Sequence[str], error: str) -> Work[None]:
    """An upload of these records failed (transiently); count it and keep the reason."""
    params = (error[:_LAST_ERROR_MAX_CHARS], json.dumps(sorted(set(record_ids))))

    def run(tx: Tx) -> None:
        tx.conn.execute(
            "UPDATE upload_queue SET attempts = attempts + 1, last_error = ?"
            " WHERE row IN (SELECT row FROM record_rows WHERE record_id IN (SELECT value FROM json_each(?)))",
            params,
        )

    return write("noting an upload attempt", run)


def mark_dead(record_id: str, reason: str) -> Work[None]:
    """The platform rejected this record for good: keep it for the technician, never retry it."""

    def run(tx: Tx) -> None:
        found = tx.conn.execute("SELECT q.row FROM record_rows AS r JOIN upload_queue AS q ON q.row = r.row"
                                " WHERE r.record_id = ?", (record_id,)).fetchone()
        if found is not None:
            tx.conn.execute("INSERT INTO dead_letters (row, reason, dead_at) VALUES (?, ?, ?)",
                            (found[0], reason, to_us(tx.now, "clock()")))
            tx.conn.execute("DELETE FROM upload_queue WHERE row = ?", found)
            # The reason stays in the database: a platform's message may quote health values.
            log.warning("record dead-lettered record_id=%s", record_id)
        else:
            log.info("mark_dead: record_id=%s is not pending; left as it is", record_id)

    return write("marking a record dead", run)


def requeue_dead(record_ids: Sequence[str] | None = None) -> Work[int]:
    """Technician action: send dead letters again (all of them if ``record_ids`` is None)."""
    chosen = None if record_ids is None else json.dumps(sorted(set(record_ids)))

    def run(tx: Tx) -> int:
        if chosen is None:
            tx.conn.execute(_REQUEUE + _ALL_DEAD)
            count = tx.conn.execute("DELETE FROM dead_letters").rowcount
        else:
            tx.conn.execute(_REQUEUE + _DEAD_OF_IDS, (chosen,))
            count = tx.conn.execute(_UNDEAD_OF_IDS, (chosen,)).rowcount
        log.info("dead letters requeued count=%d", count)
        return int(count)

    return write("requeueing dead letters", run)


_REQUEUE = ("INSERT INTO upload_queue (row, priority, created_at, record_id)"
            " SELECT row, priority, created_at, record_id FROM record_rows WHERE row IN")
_ALL_DEAD = " (SELECT row FROM dead_letters)"
_DEAD_OF_IDS = (" (SELECT x.row FROM dead_letters AS x JOIN record_rows AS r ON r.row = x.row"
                " WHERE r.record_id IN (SELECT value FROM json_each(?)))")
_UNDEAD_OF_IDS = ("DELETE FROM dead_letters WHERE row IN (SELECT x.row FROM dead_letters AS x"
                  " JOIN record_rows AS r ON r.row = x.row WHERE r.record_id IN (SELECT value FROM json_each(?)))")


def dead_letters(limit: int = 100) -> Work[list[DeadLetter]]:
    """Dead letters, oldest first."""

    def run(tx: Tx) -> list[DeadLetter]:
        rows = tx.conn.execute(
            "SELECT r.record_id, r.type, x.reason, x.dead_at FROM dead_letters AS x"
            " JOIN record_rows AS r ON r.row = x.row ORDER BY x.dead_at, r.record_id LIMIT ?",
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


def stateless_count() -> Work[int]:
    """How many records are in no state table (neither queued, delivered nor dead): none, unless the file
    was damaged or edited by hand. Counts only (a few milliseconds), so it can run at every open."""

    def run(tx: Tx) -> int:
        (rows,) = tx.conn.execute("SELECT COUNT(*) FROM record_rows").fetchone()
        states = sum(int(tx.conn.execute(query).fetchone()[0]) for query in _COUNT_BY_STATE.values())
        return max(0, int(rows) - states)

    return read("counting records without a state", run)


def requeue_stateless() -> Work[int]:
    """Queue again the records that are in no state table: sent again (the platform counts a record id
    once) rather than taken for delivered by the ``records`` view and never sent."""

    def run(tx: Tx) -> int:
        queued = tx.conn.execute(
            "INSERT INTO upload_queue (row, priority, created_at, record_id)"
            " SELECT r.row, r.priority, r.created_at, r.record_id FROM record_rows AS r"
            " WHERE NOT EXISTS (SELECT 1 FROM upload_queue AS q WHERE q.row = r.row)"
            " AND NOT EXISTS (SELECT 1 FROM dead_letters AS x WHERE x.row = r.row)"
            " AND r.row NOT IN (SELECT row FROM deliveries)").rowcount
        if queued:
            log.warning("outbox records without a state queued again count=%d", queued)
        return int(queued)

    return write("queueing records without a state", run)


# -- for the budget and the statistics (inside their transactions) ---------------------------------


def counts(conn: sqlite3.Connection) -> RecordCounts:
    # Each state counted on its own table.
    def count(state: RecordState) -> int:
        return int(conn.execute(_COUNT_BY_STATE[state]).fetchone()[0])

    # The oldest pending record is the oldest of each priority's first in the upload order.
    firsts = [conn.execute("SELECT created_at FROM upload_queue INDEXED BY upload_order"
                           " WHERE priority = ? ORDER BY created_at LIMIT 1",
                           (int(priority),)).fetchone() for priority in Priority]
    oldest = min((row[0] for row in firsts if row is not None), default=None)
    alerts = conn.execute(
        "SELECT COUNT(*) FROM upload_queue INDEXED BY upload_order WHERE priority = ?", (int(Priority.ALERT),)
    ).fetchone()[0]
    return RecordCounts(
        pending=count(RecordState.PENDING),
        delivered=count(RecordState.DELIVERED),
        dead=count(RecordState.DEAD),
        oldest_pending_at=None if oldest is None else from_us(oldest),
        pending_alerts=alerts,
    )


_COUNT_BY_STATE = {
    RecordState.PENDING: "SELECT COUNT(*) FROM upload_queue",
    RecordState.DELIVERED: "SELECT COUNT(*) FROM deliveries",
    RecordState.DEAD: "SELECT COUNT(*) FROM dead_letters",
}


def any_delivered(conn: sqlite3.Connection) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM deliveries)").fetchone()[0])


def delete_delivered_before(conn: sqlite3.Connection, cutoff_us: int) -> int:
    conn.execute("DELETE FROM record_rows WHERE row IN (SELECT row FROM deliveries WHERE delivered_at < ?)",
                 (cutoff_us,))
    return int(conn.execute("DELETE FROM deliveries WHERE delivered_at < ?", (cutoff_us,)).rowcount)


def delete_oldest_delivered(conn: sqlite3.Connection, count: int) -> int:
    """The ``count`` records delivered longest ago (the budget's step, at most a few thousand)."""
    oldest = conn.execute("SELECT delivered_at, row FROM deliveries ORDER BY delivered_at, row LIMIT ?",
                          (count,)).fetchall()
    if not oldest:
        return 0
    last_at, last_row = oldest[-1]
    conn.execute("DELETE FROM record_rows WHERE row IN (SELECT value FROM json_each(?))",
                 (json.dumps([row for _, row in oldest]),))
    return int(conn.execute("DELETE FROM deliveries WHERE delivered_at < ? OR (delivered_at = ? AND row <= ?)",
                            (last_at, last_at, last_row)).rowcount)
