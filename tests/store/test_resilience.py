"""Storage that fails: corrupt, deleted, read-only and full outboxes, on real files and real mounts.

The daemon must never stop over its disk: what cannot be written is held in memory and written
later, a corrupt file is moved aside, a deleted one is noticed and brought back with its content.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from old_outbox import OldRecord, write_old_outbox
from tmpfs import fill, remount, tmpfs

from gateway.errors import DiskFullError, NotDurableError, OutboxCorruptError, OutboxUnavailableError
from gateway.store import (
    Database,
    DatabaseFile,
    Intake,
    NewRecord,
    Priority,
    RecordState,
    StorageLimits,
    cursors,
    records,
    snippets,
)
from gateway.store import intake as intake_module
from gateway.store.ids import derived_record_id
from gateway.store.keeper import IDENTITY_CHECK_S, REOPEN_EVERY_S, OutboxKeeper, corrupt_files
from gateway.store.reserve import RESERVE_FILE_NAME, DiskReserve

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def reading(n: int, *, key: str | None = None, pad: int = 0) -> NewRecord:
    record_id = derived_record_id("gw-test", key) if key else None
    return NewRecord("blood_glucose", Priority.READING, f'{{"n":{n},"pad":"{"x" * pad}"}}', T0, key, record_id)


def alert(n: int) -> NewRecord:
    return NewRecord("alert", Priority.ALERT, f'{{"alert":{n}}}', T0)


def damage_root_pages(path: Path, table: str) -> None:
    """Overwrite the root page of ``table`` and of each of its indexes with garbage (a small table is its
    root page), after writing the WAL back into the file."""
    conn = sqlite3.connect(path)
    try:
        roots = [root for (root,) in conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE tbl_name = ? AND rootpage > 0", (table,))]
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    data = bytearray(path.read_bytes())
    for root in roots:
        data[page_size * (root - 1): page_size * root] = b"\xa5" * page_size
    path.write_bytes(bytes(data))


class Ticks:
    """The keeper's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- record identity that survives the outbox ---------------------------------------------------------


def test_derived_ids_are_stable_per_gateway_and_source_and_valid_uuids() -> None:
    first = derived_record_id("gw-0001", "glucose-kitchen|onetouch:ABC123:2026-11-30T08:00:00:5.4")
    assert first == derived_record_id("gw-0001", "glucose-kitchen|onetouch:ABC123:2026-11-30T08:00:00:5.4")
    assert first != derived_record_id("gw-0002", "glucose-kitchen|onetouch:ABC123:2026-11-30T08:00:00:5.4")
    assert first != derived_record_id("gw-0001", "glucose-kitchen|onetouch:ABC123:2026-11-30T08:00:01:5.4")
    assert uuid.UUID(first).version == 5
    with pytest.raises(ValueError, match="non-empty"):
        derived_record_id("gw-0001", "")


def test_a_fresh_outbox_gives_a_device_record_the_id_it_had_before(tmp_path: Path) -> None:
    record = reading(1, key="meter|k1")
    with DatabaseFile.open(tmp_path / "first.db") as first:
        (before,) = first.run(records.accept([record]))
    with DatabaseFile.open(tmp_path / "second.db") as second:
        (after,) = second.run(records.accept([record]))
        (again,) = second.run(records.accept([record]))
    assert before.record_id == after.record_id == record.record_id
    assert (before.new, after.new, again.new) == (True, True, False)


def test_a_given_id_already_stored_is_not_stored_twice(tmp_path: Path) -> None:
    record = NewRecord("alert", Priority.ALERT, '{"a":1}', T0, record_id=str(uuid.uuid4()))
    with DatabaseFile.open(tmp_path / "o.db") as box:
        assert box.run(records.accept([record]))[0].new
        assert not box.run(records.accept([record]))[0].new
        assert box.stats().pending == 1


def test_alerts_are_accepted_past_the_storage_budget(tmp_path: Path) -> None:
    with DatabaseFile.open(tmp_path / "o.db", limits=StorageLimits(budget_bytes=64 * 1024)) as box:
        with pytest.raises(Exception, match="at its budget"):  # noqa: PT012 (fill until refused)
            for n in range(1000):
                box.run(records.accept([reading(n, pad=2000)]))
        assert box.run(records.accept([alert(1)]))[0].new


# -- corrupt ------------------------------------------------------------------------------------------


def test_a_corrupt_file_at_start_is_moved_aside_and_a_fresh_outbox_opened(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    path.write_bytes(b"an SD card gone bad " * 500)
    keeper = OutboxKeeper(path, DatabaseFile.open)
    assert keeper.call(lambda box: box.run(records.accept([reading(1)])))[0].new
    (moved,) = corrupt_files(path)
    assert moved.read_bytes().startswith(b"an SD card gone bad")
    assert any("corrupt" in incident for incident in keeper.incidents)
    keeper.close()


def test_corruption_found_while_running_salvages_the_pending_records(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    keeper = OutboxKeeper(path, DatabaseFile.open)
    offered = [reading(n, key=f"meter|{n}", pad=500) for n in range(30)]
    stored = keeper.call(lambda box: box.run(records.accept(offered)))
    keeper.call(lambda box: box.run(cursors.put("gls", "17")))
    keeper.close()
    # Damage the motion_snippets table only: the records table still reads, the file is corrupt.
    damage_root_pages(path, "motion_snippets")

    keeper = OutboxKeeper(path, DatabaseFile.open)
    with pytest.raises(OutboxCorruptError):
        keeper.call(lambda box: box.run(snippets.for_alert("any")))
    assert len(corrupt_files(path)) == 1
    pending = keeper.call(lambda box: box.run(records.pending_batch(max_records=500)))
    assert sorted(p.record_id for p in pending) == sorted(a.record_id for a in stored)
    assert keeper.call(lambda box: box.run(cursors.get("gls"))) is None  # a cursor is not trusted: read the meter again
    assert any("30 pending record(s)" in incident for incident in keeper.incidents)
    keeper.close()


def test_salvage_copies_only_the_pending_records_of_either_layout(tmp_path: Path) -> None:
    # A file of this version (states in their own tables), and one a gateway before schema 6 wrote and
    # no newer one opened (states in the records table): each with a record pending, delivered and dead.
    current = tmp_path / "current.sqlite"
    with DatabaseFile.open(current) as box:
        pending, delivered, dead = (a.record_id for a in box.run(records.accept(
            [reading(n, key=f"m|{n}") for n in range(3)])))
        box.run(records.mark_delivered([delivered]))
        box.run(records.mark_dead(dead, "refused"))
    legacy = tmp_path / "legacy.sqlite"
    write_old_outbox(legacy, 5, [OldRecord(f"old-{state}", state, 1_000_000 * (n + 1), dedupe_key=f"old|{n}")
                                 for n, state in enumerate(("pending", "delivered", "dead"))])

    with DatabaseFile.open(tmp_path / "fresh.sqlite") as fresh:
        assert fresh.salvage_from(current).records == 1
        assert fresh.salvage_from(legacy).records == 1
        assert sorted(p.record_id for p in fresh.run(records.pending_batch())) == sorted([pending, "old-pending"])
        stats = fresh.stats()
        assert (stats.pending, stats.delivered, stats.dead) == (2, 0, 0)
        # Salvaging again (the same file found twice) copies nothing twice.
        assert fresh.salvage_from(current).records == 0


# -- deleted or replaced while running ----------------------------------------------------------------


def test_an_outbox_deleted_while_running_comes_back_with_everything_it_held(tmp_path: Path) -> None:
    path = tmp_path / "data" / "outbox.sqlite"
    ticks = Ticks()
    keeper = OutboxKeeper(path, DatabaseFile.open, monotonic=ticks)
    stored = keeper.call(lambda box: box.run(records.accept([reading(n, key=f"m|{n}") for n in range(5)])))
    keeper.call(lambda box: box.run(records.mark_delivered([stored[0].record_id])))
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)

    ticks.now += IDENTITY_CHECK_S
    more = keeper.call(lambda box: box.run(records.accept([reading(99, key="m|99")])))
    assert path.exists()
    assert keeper.call(lambda box: box.run(records.state(stored[0].record_id))) is RecordState.DELIVERED
    pending = {p.record_id for p in keeper.call(lambda box: box.run(records.pending_batch()))}
    assert pending == {a.record_id for a in stored[1:]} | {more[0].record_id}
    assert any("deleted" in incident for incident in keeper.incidents)
    keeper.close()
    with DatabaseFile.open(path) as reopened:  # and it is a proper file on disk, not only in the process
        assert reopened.stats().pending == 5


def test_the_whole_data_directory_deleted_is_recreated(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = data / "outbox.sqlite"
    ticks = Ticks()
    keeper = OutboxKeeper(path, DatabaseFile.open, monotonic=ticks)
    keeper.call(lambda box: box.run(records.accept([reading(1)])))
    for child in data.iterdir():
        child.unlink()
    data.rmdir()
    ticks.now += IDENTITY_CHECK_S
    keeper.maintain()
    assert keeper.call(lambda box: box.stats().pending) == 1
    assert path.exists()
    keeper.close()


# -- read-only and full disks (real tmpfs mounts) -------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 2048) as mountpoint:
        yield mountpoint


def test_a_read_only_data_directory_holds_records_and_writes_them_when_it_is_writable(small_disk: Path) -> None:
    async def scenario() -> None:
        path = small_disk / "outbox.sqlite"
        remount(small_disk, read_only=True)
        ticks = Ticks()
        db = await Database.start(path, monotonic=ticks)  # does not raise: the daemon must start anyway
        box = Intake(db)
        try:
            assert not box.health.writable
            with pytest.raises(NotDurableError) as caught:
                await box.accept([alert(1), reading(2, key="meter|2")])
            ids = caught.value.record_ids
            assert len(ids) == 2
            assert ids[1] == derived_record_id("gw-test", "meter|2")
            health = box.health
            assert (health.held_records, health.held_alerts, health.writable) == (2, 1, False)
            assert any("STORAGE FAILING" in p for p in health.problems())

            remount(small_disk, read_only=False)
            ticks.now += REOPEN_EVERY_S
            await box.maintain()
            assert box.health.writable
            assert box.health.held_records == 0
            assert {await db.run(records.state(i)) for i in ids} == {RecordState.PENDING}
        finally:
            await box.close()
            await db.close()

    asyncio.run(scenario())


def test_a_full_disk_gives_up_its_reserve_for_alerts_and_holds_readings(small_disk: Path) -> None:
    async def scenario() -> None:
        path = small_disk / "outbox.sqlite"
        db = await Database.open(path, reserve_bytes=256 * 1024)
        box = Intake(db)
        try:
            assert (small_disk / RESERVE_FILE_NAME).stat().st_size == 256 * 1024
            filler = fill(small_disk)
            (raised,) = await box.accept([alert(1)])  # written into the space the reserve gave back
            assert raised.new
            assert not (small_disk / RESERVE_FILE_NAME).exists()
            assert box.health.reserve_released
            fill(small_disk)  # the reserve's space is gone too now
            with pytest.raises(NotDurableError):
                await box.accept([reading(n, key=f"m|{n}", pad=4000) for n in range(40)])
            assert box.health.held_records == 40

            filler.unlink()
            (small_disk / "filler.bin").unlink(missing_ok=True)
            await box.maintain()
            assert box.health.held_records == 0
            assert box.health.writable
            assert not box.health.reserve_released
            assert (await db.stats()).pending == 41
        finally:
            await box.close()
            await db.close()

    asyncio.run(scenario())


def test_a_damaged_upload_queue_loses_no_pending_record_it_sends_some_again(tmp_path: Path) -> None:
    # A record's data and its state are in two tables now: a file whose queue no longer reads must not
    # lose the pending records, even at the price of sending delivered ones again (the platform counts
    # a record id once).
    damaged = tmp_path / "damaged.sqlite"
    with DatabaseFile.open(damaged) as box:
        accepted = [a.record_id for a in box.run(records.accept([reading(n, key=f"m|{n}", pad=300)
                                                                  for n in range(40)]))]
        box.run(records.mark_delivered(accepted[:10]))
        box.run(records.mark_dead(accepted[10], "refused"))
    damage_root_pages(damaged, "upload_queue")  # the queue and its index: 29 rows, one page each

    with DatabaseFile.open(tmp_path / "fresh.sqlite") as fresh:
        report = fresh.salvage_from(damaged)
        sent = {p.record_id for p in fresh.run(records.pending_batch(max_records=500, max_bytes=10**7))}
    assert set(accepted[11:]) <= sent  # every pending record
    assert sent == set(accepted)       # and, the queue unreadable, the others too: sent again, counted once
    assert report.unreadable_ranges == 0


def test_an_upgrade_on_a_disk_too_full_to_migrate_keeps_the_old_file_and_holds_readings(small_disk: Path) -> None:
    # Schema 6 copies the records once: a hub whose disk cannot take the copy must keep its file as it
    # was, start anyway, hold what comes in, and migrate when there is room.
    path = small_disk / "outbox.sqlite"
    write_old_outbox(path, 5, [OldRecord(f"old-{n}", created_at=n, payload_json=json.dumps({"pad": "x" * 1000}),
                                         dedupe_key=f"old|{n}") for n in range(400)])
    filler = fill(small_disk, leave_bytes=128 * 1024)

    async def scenario() -> None:
        ticks = Ticks()
        db = await Database.start(path, monotonic=ticks)
        box = Intake(db)
        try:
            assert not box.health.writable
            with pytest.raises(NotDurableError):
                await box.accept([alert(1)])
            assert box.health.held_records == 1
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as old:
                assert old.execute("SELECT max(version) FROM migrations").fetchone() == (5,)
                assert old.execute("SELECT count(*) FROM records WHERE state = 'pending'").fetchone() == (400,)

            filler.unlink()
            ticks.now += REOPEN_EVERY_S
            await box.maintain()
            assert box.health.writable and box.health.held_records == 0
            assert (await db.stats()).pending == 401
            batch = await db.run(records.pending_batch(max_records=1000, max_bytes=10**7))
            assert batch[0].type == "alert" and {r.record_id for r in batch[1:]} == {f"old-{n}" for n in range(400)}
        finally:
            await box.close()
            await db.close()

    asyncio.run(scenario())


def test_a_disk_full_error_names_what_to_do(tmp_path: Path) -> None:
    with DatabaseFile.open(tmp_path / "o.db") as box:
        conn = box._connection()
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        with pytest.raises(DiskFullError, match="free disk space"):
            box.run(records.accept([reading(n, pad=8000) for n in range(10)]))


def test_the_reserve_is_taken_only_with_room_to_spare(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "tiny", 256) as disk:
        reserve = DiskReserve(disk, 200 * 1024)
        assert not reserve.ensure()  # 200 KiB on a 256 KiB disk would leave no room to work
        assert not (disk / RESERVE_FILE_NAME).exists()
        small = DiskReserve(disk, 64 * 1024)
        assert small.ensure()
        assert small.release()
        assert not small.release()


# -- the memory bound -----------------------------------------------------------------------------------


def test_the_memory_bound_lets_go_of_what_devices_still_hold_and_never_of_alerts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake_module, "MAX_HELD_RECORDS", 5)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")

    async def scenario() -> None:
        db = await Database.start(not_a_dir / "outbox.sqlite")
        box = Intake(db)
        try:
            for batch in ([alert(0), alert(1)], [reading(2)], [reading(3, key="m|3"), reading(4, key="m|4")],
                          [reading(5)], [alert(6)], [alert(7)], [alert(8)]):
                with pytest.raises(NotDurableError):
                    await box.accept(batch)
            health = box.health
            # Let go first: the two on the meter (m|3, m|4); then the oldest unkeyed reading (2); alerts stay.
            assert health.dropped_records == 4
            assert health.held_alerts == 5
            assert health.held_records == 5
        finally:
            await box.close()
            await db.close()

    asyncio.run(scenario())


def test_opening_an_unwritable_place_is_retried_not_fatal(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    ticks = Ticks()
    keeper = OutboxKeeper(not_a_dir / "o.db", DatabaseFile.open, monotonic=ticks)
    with pytest.raises(OutboxUnavailableError, match="cannot create the outbox directory"):
        keeper.call(lambda box: box.stats())
    not_a_dir.unlink()
    with pytest.raises(OutboxUnavailableError):  # not tried again yet
        keeper.call(lambda box: box.stats())
    ticks.now += REOPEN_EVERY_S
    assert keeper.call(lambda box: box.stats()).pending == 0
    keeper.close()
