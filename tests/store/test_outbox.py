"""The outbox on real SQLite files: acceptance, order, delivery, budget, durability."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from old_outbox import OldRecord, OldStamp, write_old_outbox

from gateway.errors import OutboxCorruptError
from gateway.store import (
    Accepted,
    BudgetState,
    DatabaseFile,
    DeadLetter,
    MotionSnippet,
    NewRecord,
    PendingRecord,
    Priority,
    PruneReport,
    QueuePlace,
    RecordIdFactory,
    RecordState,
    StorageFullError,
    StorageLimits,
    StoreError,
    budget_state,
    cursors,
    records,
    snippets,
    uuid7,
    uuid7_time,
)
from gateway.store.api import HubStamp
from gateway.store.schema import MIGRATIONS, Migration, migrate

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
WEEK_RETENTION = StorageLimits(delivered_retention_s=7 * 86400)


class FakeClock:
    """The outbox's injected wall clock, moved by the test."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def bp(n: int, *, at: datetime = T0, key: str | None = None, pad: int = 0) -> NewRecord:
    payload = {"type": "blood_pressure", "systolic": 120 + n, "diastolic": 80, "unit": "mmHg"}
    if pad:
        payload["note"] = "x" * pad
    return NewRecord("blood_pressure", Priority.READING, json.dumps(payload, separators=(",", ":")), at, key)


def alert(n: int, *, at: datetime = T0) -> NewRecord:
    return NewRecord("alert", Priority.ALERT, f'{{"kind":"fall","n":{n}}}', at)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock) -> Iterator[DatabaseFile]:
    with DatabaseFile.open(tmp_path / "outbox.db", clock=clock) as box:
        yield box


def ids(accepted: list[Accepted]) -> list[str]:
    return [a.record_id for a in accepted]


# -- ids ---------------------------------------------------------------------


def test_uuid7_matches_the_rfc_9562_example() -> None:
    # RFC 9562 appendix A.6: unix_ts_ms 0x017F22E279B0, rand_a 0xCC3, rand_b 0x18C4DC0C0C07398F.
    made = uuid7(0x017F22E279B0, (0xCC3 << 62) | 0x18C4DC0C0C07398F)
    assert made == "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"
    assert uuid7_time(made) == datetime(2022, 2, 22, 19, 22, 22, tzinfo=UTC)


def test_record_ids_increase_within_a_millisecond_and_when_the_clock_steps_back() -> None:
    factory = RecordIdFactory(random_bytes=lambda n: b"\xff" * n)
    made = [factory.new_id(ms) for ms in (1_000, 1_000, 1_000, 999, 500, 1_001)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(uuid.UUID(m).version == 7 for m in made)
    assert uuid7_time(made[4]) == datetime.fromtimestamp(1.0, tz=UTC)  # carried forward, not 500 ms


def test_uuid7_refuses_out_of_range_parts() -> None:
    with pytest.raises(ValueError, match="outside"):
        uuid7(-1, 0)
    with pytest.raises(ValueError, match="74 bits"):
        uuid7(0, 1 << 74)
    with pytest.raises(ValueError, match="not a UUIDv7"):
        uuid7_time(str(uuid.uuid4()))


# -- accepting -----------------------------------------------------------------


def test_accept_gives_time_ordered_ids_and_queues_full_bodies(outbox: DatabaseFile) -> None:
    accepted = outbox.run(records.accept([bp(0), bp(1), bp(2)]))

    assert [a.new for a in accepted] == [True, True, True]
    record_ids = ids(accepted)
    assert record_ids == sorted(record_ids)
    assert {uuid7_time(r) for r in record_ids} == {T0}
    batch = outbox.run(records.pending_batch())
    assert [p._replace(place=None) for p in batch] == [
        PendingRecord(
            rid, "blood_pressure", Priority.READING,
            f'{{"record_id":"{rid}","type":"blood_pressure","systolic":{120 + n},'
            '"diastolic":80,"unit":"mmHg"}',
            0,
        )
        for n, rid in enumerate(record_ids)
    ]
    places = [p.place for p in batch]
    assert all(p is not None for p in places) and places == sorted(places)  # type: ignore[type-var]


def test_records_taken_but_not_yet_marked_can_be_left_out(outbox: DatabaseFile) -> None:
    accepted = ids(outbox.run(records.accept([bp(n) for n in range(5)])))
    first = outbox.run(records.pending_batch(max_records=2))
    assert [p.record_id for p in first] == accepted[:2]
    taken = [p.record_id for p in first]
    rest = outbox.run(records.pending_batch(max_records=10, exclude=taken))
    assert [p.record_id for p in rest] == accepted[2:]
    # A new alert still goes first, whatever is left out.
    (alert,) = ids(outbox.run(records.accept([NewRecord("alert", Priority.ALERT, '{"a":1}', T0)])))
    assert outbox.run(records.pending_batch(max_records=1, exclude=taken))[0].record_id == alert
    # Nothing marked: without the exclusion, the same first ones again (after the alert).
    assert [p.record_id for p in outbox.run(records.pending_batch(max_records=3))] == [alert, *accepted[:2]]


def place(record: PendingRecord) -> QueuePlace:
    assert record.place is not None
    return record.place


def test_a_batch_after_the_last_place_taken_is_the_batch_leaving_out_what_was_taken(outbox: DatabaseFile) -> None:
    accepted = ids(outbox.run(records.accept([bp(n, at=T0 + timedelta(seconds=n)) for n in range(8)])))
    first = outbox.run(records.pending_batch(max_records=3))
    taken, reach = [p.record_id for p in first], place(first[-1])
    after = outbox.run(records.pending_batch(max_records=3, exclude=taken, after=reach))
    assert after == outbox.run(records.pending_batch(max_records=3, exclude=taken))
    assert [p.record_id for p in after] == accepted[3:6]
    # An alert that arrives behind the place goes first all the same.
    (new_alert,) = ids(outbox.run(records.accept([alert(1)])))
    assert [p.record_id for p in outbox.run(records.pending_batch(max_records=2, exclude=taken, after=reach))] == [
        new_alert, accepted[3]]
    outbox.run(records.mark_delivered([new_alert]))
    # A record taken and not delivered (its upload failed) is not left out: it comes back first.
    failed = taken.pop(1)
    again = outbox.run(records.pending_batch(max_records=2, exclude=taken, after=reach))
    assert [p.record_id for p in again] == [failed, accepted[3]]


def test_a_record_held_for_the_clock_does_not_send_the_batch_back_to_the_front(outbox: DatabaseFile) -> None:
    # As the daemon asks: records dated before the release and stamped by an unset clock are held.
    stamped_at_1970 = NewRecord("blood_pressure", Priority.READING, '{"n":0}', datetime(1970, 1, 1, 0, 5, tzinfo=UTC),
                                stamp=HubStamp("boot-1", 300.0))
    (held,) = ids(outbox.run(records.accept([stamped_at_1970])))
    accepted = ids(outbox.run(records.accept([bp(n, at=T0 + timedelta(seconds=n)) for n in range(6)])))
    release = datetime(2026, 1, 1, tzinfo=UTC)
    first = outbox.run(records.pending_batch(max_records=2, held_before=release))
    assert [p.record_id for p in first] == accepted[:2]
    taken = [p.record_id for p in first]
    # The held record sits before the place taken and is not counted there: the batch starts after it.
    assert outbox.run(records.records_behind(place(first[-1]), held_before=release)) == len(taken)
    after = outbox.run(records.pending_batch(max_records=3, exclude=taken, after=place(first[-1]),
                                             held_before=release))
    assert [p.record_id for p in after] == accepted[2:5]
    assert held not in [p.record_id for p in outbox.run(records.pending_batch(max_records=10, held_before=release))]


def test_marks_by_place_mark_those_records_and_never_another_row(outbox: DatabaseFile) -> None:
    accepted = ids(outbox.run(records.accept([bp(n, at=T0 + timedelta(seconds=n)) for n in range(4)])))
    batch = outbox.run(records.pending_batch(max_records=3))
    # The third place names a row that now holds another record (a database rebuilt by hand renumbers rows).
    wrong = place(batch[2])._replace(row=place(batch[2]).row + 1)
    outbox.run(records.mark_places_delivered([place(batch[0]), place(batch[1]), wrong]))
    assert [outbox.run(records.state(r)) for r in accepted] == [
        RecordState.DELIVERED, RecordState.DELIVERED, RecordState.PENDING, RecordState.PENDING]
    assert outbox.stats().delivered == 2 and outbox.stats().pending == 2


def test_the_state_indexes_migration_keeps_every_count(tmp_path: Path) -> None:
    path = tmp_path / "v4.db"
    # A hub's outbox before the fifth migration: one record in each state.
    write_old_outbox(path, 4, [OldRecord("r0", "pending", 1_000_000),
                               OldRecord("r1", "delivered", 2_000_000, delivered_at=5),
                               OldRecord("r2", "dead", 3_000_000, dead_at=5)])
    with DatabaseFile.open(path) as box:  # opening applies the fifth
        stats = box.stats()
        assert (stats.pending, stats.delivered, stats.dead) == (1, 1, 1)
        assert stats.oldest_pending_at == datetime.fromtimestamp(1, UTC)
        (added,) = ids(box.run(records.accept([bp(0)])))
        box.run(records.mark_delivered([added]))
        assert box.stats().delivered == 2
    conn = sqlite3.connect(path)
    try:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert "records_state_created" not in indexes


def test_the_upload_queue_migration_keeps_every_record_in_its_state(tmp_path: Path) -> None:
    path = tmp_path / "v5.db"
    # A hub's outbox before the sixth migration (opened with foreign keys on, so the move must not
    # cascade): a record in each state, one pending after two failed attempts, one stamped by an
    # unset clock, each with a source key.
    write_old_outbox(path, 5, [
        OldRecord("r0", "pending", 1_000_000, '{"n":1}', "key-0", attempts=2, last_error="HTTP 503"),
        OldRecord("r1", "delivered", 2_000_000, '{"n":1}', "key-1", delivered_at=5),
        OldRecord("r2", "dead", 3_000_000, '{"n":1}', "key-2", dead_reason="schema", dead_at=6),
        OldRecord("r3", "pending", 4_000_000, '{"n":1}', "key-3"),
    ], [OldStamp("r3", "boot-a", 12.5)])
    with DatabaseFile.open(path) as box:  # opening applies the sixth
        stats = box.stats()
        assert (stats.pending, stats.delivered, stats.dead) == (2, 1, 1)
        assert [box.run(records.state(f"r{n}")) for n in range(4)] == [
            RecordState.PENDING, RecordState.DELIVERED, RecordState.DEAD, RecordState.PENDING]
        first, second = box.run(records.pending_batch())
        assert (first.record_id, first.attempts, second.record_id) == ("r0", 2, "r3")
        assert first.body_json == '{"record_id":"r0","n":1}'
        (dead,) = box.run(records.dead_letters())
        assert (dead.record_id, dead.reason) == ("r2", "schema")
        # The stamp still holds r3 back for its clock, and a key seen before is still known.
        assert [r.record_id for r in box.run(records.pending_batch(held_before=T0))] == ["r0"]
        assert not box.run(records.accept([bp(0, key="key-1")]))[0].new
        # Delivering and requeueing work on the migrated file.
        box.run(records.mark_delivered(["r0"]))
        assert box.run(records.requeue_dead(["r2"])) == 1
        stats = box.stats()
        assert (stats.pending, stats.delivered, stats.dead) == (2, 2, 0)
    conn = sqlite3.connect(path)
    try:
        (stamps,) = conn.execute("SELECT count(*) FROM hub_stamps WHERE record_id = 'r3'").fetchone()
        rows = conn.execute("SELECT record_id, state FROM records ORDER BY record_id").fetchall()
    finally:
        conn.close()
    assert stamps == 1
    assert rows == [("r0", "delivered"), ("r1", "delivered"), ("r2", "pending"), ("r3", "pending")]


def test_empty_payload_object_gets_just_the_record_id(outbox: DatabaseFile) -> None:
    (accepted,) = outbox.run(records.accept([NewRecord("device_status", Priority.STATUS, "{ }", T0)]))
    assert outbox.run(records.pending_batch())[0].body_json == f'{{"record_id":"{accepted.record_id}"}}'


def test_accept_of_nothing_writes_nothing(outbox: DatabaseFile) -> None:
    assert outbox.run(records.accept([])) == []
    assert outbox.stats().pending == 0


def test_dedupe_key_returns_the_existing_id_and_inserts_nothing(outbox: DatabaseFile) -> None:
    (first,) = outbox.run(records.accept([bp(0, key="meter-7:seq-41")]))
    again = outbox.run(records.accept([bp(0, key="meter-7:seq-41"), bp(1, key="meter-7:seq-42"),
                                       bp(1, key="meter-7:seq-42")]))

    assert again[0] == Accepted(first.record_id, new=False)
    assert again[1].new
    assert again[2] == Accepted(again[1].record_id, new=False)
    assert outbox.stats().pending == 2


@pytest.mark.parametrize(
    ("record", "complaint"),
    [
        (NewRecord("spo2", Priority.READING, '{"spo2":97}', datetime(2025, 3, 1)), "timezone-aware"),
        (NewRecord("spo2", Priority.READING, '{"record_id":"x"}', T0), "already has a record_id"),
        (NewRecord("spo2", Priority.READING, "[97]", T0), "must be a JSON object"),
        (NewRecord("spo2", Priority.READING, '{"spo2":', T0), "not valid JSON"),
        (NewRecord("", Priority.READING, "{}", T0), "type is empty"),
    ],
)
def test_bad_records_are_refused_whole_batch_naming_the_record(
    outbox: DatabaseFile, record: NewRecord, complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint) as caught:
        outbox.run(records.accept([bp(0), record]))
    assert "record 1" in str(caught.value)
    assert outbox.stats().pending == 0


# -- order and batches ---------------------------------------------------------


def test_alerts_go_before_older_readings_then_oldest_first(outbox: DatabaseFile) -> None:
    old_reading, new_reading = outbox.run(records.accept([bp(1, at=T0 + DAY), bp(0, at=T0)]))
    status = outbox.run(records.accept([NewRecord("device_status", Priority.STATUS, "{}", T0 - DAY)]))[0]
    fall = outbox.run(records.accept([NewRecord("fall", Priority.EVENT, "{}", T0 + 2 * DAY)]))[0]
    newest_alert = outbox.run(records.accept([alert(0, at=T0 + 3 * DAY)]))[0]

    order = [p.record_id for p in outbox.run(records.pending_batch())]

    assert order == [
        newest_alert.record_id, fall.record_id, new_reading.record_id, old_reading.record_id, status.record_id
    ]


def test_batches_stop_before_max_bytes_but_never_come_back_empty(outbox: DatabaseFile) -> None:
    outbox.run(records.accept([bp(n, pad=900) for n in range(5)]))
    body_bytes = len(outbox.run(records.pending_batch(max_records=1))[0].body_json.encode())

    assert len(outbox.run(records.pending_batch(max_bytes=3 * body_bytes))) == 3
    assert len(outbox.run(records.pending_batch(max_bytes=3 * body_bytes - 1))) == 2
    assert len(outbox.run(records.pending_batch(max_bytes=10))) == 1
    assert len(outbox.run(records.pending_batch(max_records=4))) == 4


# -- delivery, dead letters ----------------------------------------------------


def test_delivered_records_leave_the_queue(outbox: DatabaseFile, clock: FakeClock) -> None:
    a, b = ids(outbox.run(records.accept([bp(0), bp(1)])))
    clock.advance(timedelta(minutes=5))
    outbox.run(records.mark_delivered([a, a, "01900000-0000-7000-8000-000000000000"]))

    assert [p.record_id for p in outbox.run(records.pending_batch())] == [b]
    assert outbox.run(records.state(a)) is RecordState.DELIVERED
    assert outbox.stats().delivered == 1


def test_failed_attempts_are_counted(outbox: DatabaseFile) -> None:
    (a,) = ids(outbox.run(records.accept([bp(0)])))
    outbox.run(records.note_attempt([a], "HTTP 503 from platform"))
    outbox.run(records.note_attempt([a], "timeout"))
    assert outbox.run(records.pending_batch())[0].attempts == 2


def test_dead_letters_stay_until_a_technician_requeues_them(outbox: DatabaseFile, clock: FakeClock) -> None:
    a, b, c = ids(outbox.run(records.accept([bp(0), bp(1), bp(2)])))
    outbox.run(records.note_attempt([a], "HTTP 422"))
    clock.advance(timedelta(seconds=1))
    outbox.run(records.mark_dead(a, "platform 422: unknown resident"))
    clock.advance(timedelta(seconds=1))
    outbox.run(records.mark_dead(b, "platform 422: systolic out of range"))
    outbox.run(records.mark_dead(b, "marked twice"))  # already dead: left as it is

    assert [p.record_id for p in outbox.run(records.pending_batch())] == [c]
    assert outbox.run(records.dead_letters()) == [
        DeadLetter(a, "blood_pressure", "platform 422: unknown resident", T0 + timedelta(seconds=1)),
        DeadLetter(b, "blood_pressure", "platform 422: systolic out of range", T0 + timedelta(seconds=2)),
    ]
    assert outbox.run(records.dead_letters(limit=1)) == outbox.run(records.dead_letters())[:1]
    assert outbox.prune().delivered_removed == 0

    assert outbox.run(records.requeue_dead([a])) == 1
    assert [(p.record_id, p.attempts) for p in outbox.run(records.pending_batch())] == [(a, 0), (c, 0)]
    assert outbox.run(records.requeue_dead()) == 1
    assert outbox.run(records.dead_letters()) == []
    assert outbox.stats().pending == 3


def test_stats_count_states_and_name_the_oldest_pending(outbox: DatabaseFile) -> None:
    assert outbox.stats().oldest_pending_at is None
    a, _, c = ids(outbox.run(records.accept([bp(0, at=T0), bp(1, at=T0 + DAY), alert(0, at=T0 + 2 * DAY)])))
    outbox.run(records.mark_delivered([a]))
    dead = outbox.run(records.accept([bp(3, at=T0 - DAY)]))[0].record_id
    outbox.run(records.mark_dead(dead, "rejected"))

    stats = outbox.stats()

    assert (stats.pending, stats.delivered, stats.dead, stats.pending_alerts) == (2, 1, 1, 1)
    assert stats.oldest_pending_at == T0 + DAY
    assert stats.budget_state is BudgetState.OK
    assert 0 < stats.db_bytes < stats.budget_bytes
    outbox.run(records.mark_delivered([c]))
    assert outbox.stats().pending_alerts == 0


# -- cursors and motion snippets -------------------------------------------------


def test_cursors_are_committed_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with DatabaseFile.open(path) as box:
        assert box.run(cursors.get("glucose:AA:BB:racp")) is None
        box.run(cursors.put("glucose:AA:BB:racp", "41"))
        box.run(cursors.put("glucose:AA:BB:racp", "42"))
    with DatabaseFile.open(path) as box:
        assert box.run(cursors.get("glucose:AA:BB:racp")) == "42"


def test_motion_snippets_are_kept_for_their_alert(outbox: DatabaseFile) -> None:
    samples = bytes(range(256)) * 3
    outbox.run(snippets.add(MotionSnippet("alert-1", "imu-9", T0, 50.0, samples)))
    assert outbox.run(snippets.for_alert("alert-1")) == [MotionSnippet("alert-1", "imu-9", T0, 50.0, samples)]
    assert outbox.run(snippets.for_alert("alert-2")) == []
    with pytest.raises(ValueError, match="sample_rate_hz"):
        outbox.run(snippets.add(MotionSnippet("a", "d", T0, 0.0, samples)))


# -- retention and budget --------------------------------------------------------


def test_retention_prunes_old_delivered_rows_only(tmp_path: Path, clock: FakeClock) -> None:
    with DatabaseFile.open(tmp_path / "o.db", clock=clock, limits=WEEK_RETENTION) as box:
        old, dead, pending = ids(box.run(records.accept([bp(0), bp(1), bp(2)])))
        box.run(records.mark_delivered([old]))
        box.run(records.mark_dead(dead, "rejected"))
        clock.advance(6 * DAY)
        recent = box.run(records.accept([bp(3)]))[0].record_id
        box.run(records.mark_delivered([recent]))
        clock.advance(2 * DAY)

        report = box.prune()

        assert (report.delivered_removed, report.snippets_removed, report.budget_state) == (1, 0, BudgetState.OK)
        assert box.run(records.state(old)) is None
        assert box.run(records.state(recent)) is RecordState.DELIVERED
        assert box.run(records.state(dead)) is RecordState.DEAD
        assert box.run(records.state(pending)) is RecordState.PENDING


def test_a_pruned_readings_identity_is_remembered_so_a_redownload_is_not_new(tmp_path: Path,
                                                                            clock: FakeClock) -> None:
    # A OneTouch meter keeps 500 results and is downloaded whole each time: a month later the first
    # ones are long delivered and pruned, yet they come again and must not be uploaded twice.
    with DatabaseFile.open(tmp_path / "o.db", clock=clock, limits=WEEK_RETENTION) as box:
        first = box.run(records.accept([bp(0, key="meter|0")]))[0]
        box.run(records.mark_delivered([first.record_id]))
        clock.advance(8 * DAY)
        assert box.prune().delivered_removed == 1
        assert box.run(records.state(first.record_id)) is None
        again = box.run(records.accept([bp(0, key="meter|0"), bp(1, key="meter|1")]))
        assert again[0] == Accepted(first.record_id, new=False)
        assert again[1].new
        assert [p.record_id for p in box.run(records.pending_batch())] == [again[1].record_id]


@pytest.mark.parametrize(
    ("db_bytes", "prunable", "expected"),
    [
        (0, False, BudgetState.OK),
        (799, True, BudgetState.OK),
        (800, False, BudgetState.WARNING),
        (999, True, BudgetState.WARNING),
        (1000, True, BudgetState.PRUNING),
        (1000, False, BudgetState.FULL),
        (5000, False, BudgetState.FULL),
    ],
)
def test_budget_state_table(db_bytes: int, prunable: bool, expected: BudgetState) -> None:
    assert budget_state(db_bytes, 1000, 0.8, prunable=prunable) is expected


BUDGET = 400 * 1024


def _fill_delivered_until(box: DatabaseFile, state: BudgetState, start: int) -> int:
    n = start
    for _ in range(2000):
        if box.stats().budget_state is state:
            return n
        box.run(records.mark_delivered(ids(box.run(records.accept([bp(i, pad=1500) for i in range(n, n + 4)])))))
        n += 4
    raise AssertionError(f"never reached {state}")


def _accept_pending_until_refused(box: DatabaseFile, pending: list[str]) -> StorageFullError:
    for i in range(2000):
        try:
            pending += ids(box.run(records.accept([bp(20_000 + i, pad=1500)])))
        except StorageFullError as refusal:
            return refusal
    raise AssertionError("never refused")


def test_budget_prunes_delivered_then_snippets_and_never_undelivered(
    tmp_path: Path, clock: FakeClock
) -> None:
    limits = StorageLimits(budget_bytes=BUDGET, warn_ratio=0.6)
    with DatabaseFile.open(tmp_path / "o.db", limits=limits, clock=clock) as box:
        dead = box.run(records.accept([bp(-1)]))[0].record_id
        box.run(records.mark_dead(dead, "rejected"))
        box.run(snippets.add(MotionSnippet("fall-1", "imu-9", T0, 50.0, b"\x01" * 20_000)))
        pending: list[str] = []

        n = _fill_delivered_until(box, BudgetState.WARNING, 0)
        assert box.prune().budget_state is BudgetState.WARNING  # said loudly, nothing removed
        assert box.stats().delivered == n

        # Delivered rows keep coming: at the budget the oldest delivered go, nothing else.
        for i in range(400):
            pending += ids(box.run(records.accept([bp(10_000 + i, pad=200)])))
            box.run(records.mark_delivered(ids(box.run(records.accept([bp(n + i, pad=1500)])))))
            if box.stats().delivered < n:
                break
        else:
            raise AssertionError("the budget never pruned delivered rows")
        assert box.stats().db_bytes < BUDGET
        assert box.run(snippets.for_alert("fall-1")) != []

        # Only undelivered records arriving: delivered rows go, then snippets, then refusal.
        refusal = _accept_pending_until_refused(box, pending)
        assert "only undelivered records" in str(refusal)
        stats = box.stats()
        assert (stats.delivered, stats.dead, stats.pending) == (0, 1, len(pending))
        assert stats.budget_state is BudgetState.FULL
        assert box.run(snippets.for_alert("fall-1")) == []
        assert box.run(records.state(dead)) is RecordState.DEAD
        everything = records.pending_batch(max_records=10_000, max_bytes=10**9)
        assert {p.record_id for p in box.run(everything)} == set(pending)
        assert box.prune() == PruneReport(0, 0, box.stats().db_bytes, BudgetState.FULL)

        # The hub comes back online: delivering frees room, and accepting works again.
        box.run(records.mark_delivered(pending[: len(pending) // 2]))
        assert box.prune().budget_state in {BudgetState.OK, BudgetState.WARNING}
        assert box.run(records.accept([bp(99_999)]))[0].new


def test_disk_full_is_storage_full_and_loses_nothing(outbox: DatabaseFile) -> None:
    kept = ids(outbox.run(records.accept([bp(0)])))
    # SQLite's own page limit gives the same SQLITE_FULL a full disk does.
    conn = outbox._connection()
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(StorageFullError, match="disk is full"):
        outbox.run(records.accept([bp(n, pad=8000) for n in range(1, 10)]))
    assert [p.record_id for p in outbox.run(records.pending_batch())] == kept


# -- opening, migrations, corruption, durability ----------------------------------


def test_reopen_applies_no_migration_twice_and_keeps_records(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "outbox.db"
    with DatabaseFile.open(path) as box:
        kept = ids(box.run(records.accept([bp(0)])))
    with DatabaseFile.open(path) as box:
        assert [p.record_id for p in box.run(records.pending_batch())] == kept
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        assert migrate(conn) == []
        applied = conn.execute("SELECT version FROM migrations ORDER BY version").fetchall()
        assert applied == [(v,) for v in range(1, len(MIGRATIONS) + 1)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_schema_untouched(tmp_path: Path) -> None:
    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("THIS IS NOT SQL")

    conn = sqlite3.connect(tmp_path / "o.db", isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            migrate(conn, (*MIGRATIONS, Migration(2, "broken", broken)))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == set()
    finally:
        conn.close()


def test_a_database_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    DatabaseFile.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("INSERT INTO migrations VALUES (99, 'future', '2030-01-01')")
    conn.close()
    with pytest.raises(StoreError, match=r"schema version\(s\) \[99\].*newer gateway"):
        DatabaseFile.open(path)


def test_a_corrupt_file_is_refused_with_what_happens_next(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database, it is an SD card gone bad " * 200)
    with pytest.raises(OutboxCorruptError) as caught:
        DatabaseFile.open(path)
    message = str(caught.value)
    assert str(path) in message
    assert "moves such a file aside" in message
    assert path.read_bytes().startswith(b"this is not a database")  # the plain DatabaseFile never replaces it


def test_a_damaged_page_gives_store_error_not_sqlite_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with DatabaseFile.open(path) as box:
        box.run(records.accept([bp(n, pad=3000) for n in range(40)]))
    conn = sqlite3.connect(path)
    (root_page,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'records'").fetchone()
    conn.close()
    data = bytearray(path.read_bytes())
    data[4096 * (root_page - 1) : 4096 * root_page] = b"\xa5" * 4096  # the records table's root
    path.write_bytes(bytes(data))
    with DatabaseFile.open(path) as box, pytest.raises(OutboxCorruptError, match="moves such a file aside"):
        box.run(records.pending_batch())


def test_a_closed_outbox_says_so(tmp_path: Path) -> None:
    box = DatabaseFile.open(tmp_path / "o.db")
    box.close()
    box.close()
    with pytest.raises(StoreError, match="closed"):
        box.stats()


_ACCEPT_FOREVER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from gateway.store import DatabaseFile, NewRecord, Priority, records

box = DatabaseFile.open(Path(sys.argv[1]))
n = 0
while True:
    batch = [NewRecord("spo2", Priority.READING, '{"spo2":97,"n":%d}' % (n + i), datetime.now(UTC),
                       "oximeter-3:%d" % (n + i)) for i in range(n % 3 + 1)]
    for accepted in box.run(records.accept(batch)):
        sys.stdout.write(accepted.record_id + "\\n")
    sys.stdout.flush()
    n += len(batch)
"""


def test_records_accepted_before_sigkill_are_all_there_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _ACCEPT_FOREVER, str(path)], stdout=subprocess.PIPE, text=True
    )
    acknowledged: list[str] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < 60:
            line = child.stdout.readline()
            assert line, f"child exited early with {child.wait()}"
            acknowledged.append(line.strip())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
    acknowledged += rest.split()
    assert child.returncode == -signal.SIGKILL

    with DatabaseFile.open(path) as box:
        for record_id in acknowledged:
            assert box.run(records.state(record_id)) is RecordState.PENDING, record_id
        assert box.stats().pending >= len(acknowledged)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        conn.close()


# -- property: every accepted record is in exactly one state ------------------------


DEDUPE_KEYS = [f"meter-1:{n}" for n in range(6)]


class OutboxLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="outbox-sm-"))
        self.clock = FakeClock()
        self.box = DatabaseFile.open(self.dir / "o.db", clock=self.clock)
        self.state: dict[str, RecordState] = {}
        self.order_key: dict[str, tuple[int, datetime, str]] = {}
        self.by_dedupe_key: dict[str, str] = {}
        self.pruned: set[str] = set()

    def teardown(self) -> None:
        self.box.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _pending(self) -> list[str]:
        return sorted((r for r, s in self.state.items() if s is RecordState.PENDING), key=self.order_key.get)

    @rule(
        offers=st.lists(
            st.tuples(st.sampled_from(Priority), st.none() | st.sampled_from(DEDUPE_KEYS)), min_size=1, max_size=4
        ),
        age_s=st.integers(0, 3600),
    )
    def accept(self, offers: list[tuple[Priority, str | None]], age_s: int) -> None:
        self.clock.advance(timedelta(seconds=1))
        created = self.clock.now - timedelta(seconds=age_s)
        offered = [NewRecord("spo2", p, '{"spo2":97}', created, key) for p, key in offers]
        for (priority, key), accepted in zip(offers, self.box.run(records.accept(offered)), strict=True):
            if key is not None and key in self.by_dedupe_key:
                assert accepted == Accepted(self.by_dedupe_key[key], new=False)
                continue
            assert accepted.new
            assert accepted.record_id not in self.state
            self.state[accepted.record_id] = RecordState.PENDING
            self.order_key[accepted.record_id] = (priority, created, accepted.record_id)
            if key is not None:
                self.by_dedupe_key[key] = accepted.record_id

    @precondition(lambda self: any(s is RecordState.PENDING for s in self.state.values()))
    @rule(data=st.data(), max_records=st.integers(1, 8))
    def deliver_part_of_a_batch(self, data: st.DataObject, max_records: int) -> None:
        batch = [p.record_id for p in self.box.run(records.pending_batch(max_records=max_records))]
        assert batch == self._pending()[:max_records]
        delivered = data.draw(st.lists(st.sampled_from(batch), unique=True))
        self.box.run(records.note_attempt(batch, "HTTP 503"))
        self.box.run(records.mark_delivered(delivered))
        for record_id in delivered:
            self.state[record_id] = RecordState.DELIVERED

    @precondition(lambda self: bool(self.state))
    @rule(data=st.data())
    def reject(self, data: st.DataObject) -> None:
        record_id = data.draw(st.sampled_from(sorted(self.state)))
        self.box.run(records.mark_dead(record_id, "HTTP 422"))
        if self.state[record_id] is RecordState.PENDING:
            self.state[record_id] = RecordState.DEAD

    @rule()
    def requeue_all(self) -> None:
        dead = [r for r, s in self.state.items() if s is RecordState.DEAD]
        assert self.box.run(records.requeue_dead()) == len(dead)
        for record_id in dead:
            self.state[record_id] = RecordState.PENDING

    @rule()
    def retention_passes(self) -> None:
        self.clock.advance(31 * DAY)
        delivered = {r for r, s in self.state.items() if s is RecordState.DELIVERED}
        assert self.box.prune().delivered_removed == len(delivered)
        for record_id in delivered:
            del self.state[record_id]
            self.pruned.add(record_id)
        # Keys outlive pruned rows (source_keys): a key accepted once stays known.

    @invariant()
    def every_record_is_in_exactly_one_state(self) -> None:
        stats = self.box.stats()
        counted = [list(self.state.values()).count(s) for s in RecordState]
        assert [stats.pending, stats.delivered, stats.dead] == counted
        for record_id, state in self.state.items():
            assert self.box.run(records.state(record_id)) is state
        for record_id in self.pruned:
            assert self.box.run(records.state(record_id)) is None


TestOutboxLifecycle = OutboxLifecycle.TestCase
TestOutboxLifecycle.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)


def test_a_record_left_in_no_state_is_queued_again_when_the_outbox_opens(tmp_path: Path) -> None:
    # A record's state is a row in another table than the record: a file damaged or edited by hand
    # could lose that row, and the records view would then take the record for delivered.
    path = tmp_path / "outbox.db"
    with DatabaseFile.open(path) as box:
        first, second, third = ids(box.run(records.accept([bp(0), bp(1), bp(2)])))
        box.run(records.mark_delivered([first]))
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("DELETE FROM upload_queue WHERE record_id = ?", (second,))
        assert conn.execute("SELECT state FROM records WHERE record_id = ?", (second,)).fetchone() == ("delivered",)
    finally:
        conn.close()
    with DatabaseFile.open(path) as box:
        assert box.run(records.state(second)) is RecordState.PENDING
        assert [p.record_id for p in box.run(records.pending_batch())] == [second, third]
        stats = box.stats()
        assert (stats.pending, stats.delivered, stats.dead) == (2, 1, 0)
        assert box.run(records.stateless_count()) == 0
