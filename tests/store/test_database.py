"""Database and Intake: the outbox's SQLite work happens on its own thread, never on the loop."""

from __future__ import annotations

import asyncio
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.store import (
    BudgetState,
    Database,
    Intake,
    MotionSnippet,
    NewRecord,
    Priority,
    RecordState,
    StoreError,
    cursors,
    records,
    snippets,
)
from gateway.store.database import THREAD_NAME_PREFIX

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


class ThreadNotingClock:
    """The outbox's wall clock; it is read inside every write, so it sees which thread does the work."""

    def __init__(self) -> None:
        self.threads: set[threading.Thread] = set()

    def __call__(self) -> datetime:
        self.threads.add(threading.current_thread())
        return T0


def glucose(n: int, key: str | None = None) -> NewRecord:
    return NewRecord("blood_glucose", Priority.READING, f'{{"glucose_mmol_l":{5 + n / 10}}}', T0, key)


def test_every_call_runs_on_the_one_outbox_thread(tmp_path: Path) -> None:
    clock = ThreadNotingClock()

    async def scenario() -> None:
        loop_thread = threading.current_thread()
        db = await Database.open(tmp_path / "o.db", clock=clock)
        try:
            a, b = await Intake(db).accept([glucose(0), glucose(1)])
            await db.run(records.note_attempt([a.record_id], "timeout"))
            await db.run(records.mark_delivered([a.record_id]))
            await db.run(records.mark_dead(b.record_id, "HTTP 422"))
            await db.run(cursors.put("meter:racp", "7"))
            await db.run(snippets.add(MotionSnippet("fall-1", "imu-1", T0, 50.0, b"\0" * 12)))
            await db.prune()
        finally:
            await db.close()
        assert loop_thread not in clock.threads
        assert len(clock.threads) == 1
        assert next(iter(clock.threads)).name.startswith(THREAD_NAME_PREFIX)

    asyncio.run(scenario())


def test_the_same_work_as_on_the_callers_thread(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await Database.open(tmp_path / "o.db") as db:
            intake = Intake(db)
            (reading,) = await intake.accept([glucose(0, key="meter-1:1")])
            (fall_alert,) = await intake.accept([NewRecord("alert", Priority.ALERT, '{"kind":"fall"}', T0)])
            assert [p.record_id for p in await db.run(records.pending_batch())] == [fall_alert.record_id,
                                                                                   reading.record_id]
            await db.run(records.mark_delivered([fall_alert.record_id]))
            await db.run(records.mark_dead(reading.record_id, "HTTP 422"))
            assert [d.record_id for d in await db.run(records.dead_letters())] == [reading.record_id]
            assert await db.run(records.requeue_dead()) == 1
            assert await db.run(records.state(reading.record_id)) is RecordState.PENDING
            await db.run(cursors.put("meter-1:racp", "1"))
            assert await db.run(cursors.get("meter-1:racp")) == "1"
            stats = await db.stats()
            assert (stats.pending, stats.delivered, stats.budget_state) == (1, 1, BudgetState.OK)
            assert await db.run(snippets.for_alert("none")) == []
        with pytest.raises(StoreError, match="closed"):
            await db.stats()

    asyncio.run(scenario())


def test_concurrent_callers_are_serialised(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with await Database.open(tmp_path / "o.db") as db:
            box = Intake(db)
            results = await asyncio.gather(*(box.accept([glucose(n, key=f"meter-1:{n % 10}")]) for n in range(40)))
            record_ids = {accepted.record_id for (accepted,) in results}
            assert len(record_ids) == 10
            assert sum(accepted.new for (accepted,) in results) == 10
            assert (await db.stats()).pending == 10

    asyncio.run(scenario())


def test_open_errors_reach_the_caller(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("a file where the data directory should be")

    async def scenario() -> None:
        await Database.open(not_a_directory / "o.db")

    with pytest.raises(StoreError, match="cannot create the outbox directory"):
        asyncio.run(scenario())


def test_records_offered_together_are_committed_together() -> None:
    async def scenario(tmp: Path) -> None:
        db = await Database.open(tmp / "o.db")
        box = Intake(db)
        try:
            before = box.commits
            results = await asyncio.gather(*(box.accept([glucose(n, key=f"meter-{n}:1")]) for n in range(20)))
            assert box.commits - before == 1  # twenty devices at once: one transaction, one fsync
            assert len({accepted.record_id for (accepted,) in results}) == 20
            assert (await db.stats()).pending == 20
        finally:
            await box.close()
            await db.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp)))


def test_one_callers_bad_record_fails_only_that_caller_in_a_group() -> None:
    async def scenario(tmp: Path) -> None:
        db = await Database.open(tmp / "o.db")
        box = Intake(db)
        try:
            bad = NewRecord("blood_glucose", Priority.READING, "not json", T0)
            good, refused, other = await asyncio.gather(
                box.accept([glucose(1)]), box.accept([bad]), box.accept([glucose(2)]), return_exceptions=True)
            assert isinstance(refused, ValueError)
            assert not isinstance(good, BaseException) and not isinstance(other, BaseException)
            assert (await db.stats()).pending == 2
        finally:
            await box.close()
            await db.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp)))


def test_a_caller_cancelled_while_waiting_strands_nobody_else() -> None:
    async def scenario(tmp: Path) -> None:
        db = await Database.open(tmp / "o.db")
        box = Intake(db)
        try:
            first = asyncio.create_task(box.accept([glucose(1)]))
            second = asyncio.create_task(box.accept([glucose(2)]))
            await asyncio.sleep(0)
            first.cancel()
            (accepted,) = await asyncio.wait_for(second, 5)
            assert accepted.new
        finally:
            await box.close()
            await db.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp)))
