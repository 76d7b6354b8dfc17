"""The outbox's schema, as numbered migrations.

Every migration not yet listed in the ``migrations`` table is applied at open,
all in one transaction: a hub that loses power mid-upgrade comes back with
either the old schema or the new one, never half of each. Migrations are
append-only; a released migration is never edited.

Times are stored as integer microseconds since the Unix epoch (UTC): they sort
and compare as integers, and the index on them stays small.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.errors import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _sql(*statements: str) -> Callable[[sqlite3.Connection], None]:
    # executescript() would COMMIT first and break the one-transaction rule.
    def apply(conn: sqlite3.Connection) -> None:
        for statement in statements:
            conn.execute(statement)

    return apply


_V1_OUTBOX = _sql(
    """
    CREATE TABLE records (
        record_id    TEXT PRIMARY KEY,
        type         TEXT NOT NULL,
        priority     INTEGER NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
        created_at   INTEGER NOT NULL,
        payload_json TEXT NOT NULL,
        dedupe_key   TEXT UNIQUE,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        delivered_at INTEGER,
        dead_reason  TEXT,
        dead_at      INTEGER,
        size_bytes   INTEGER NOT NULL
    )
    """,
    # The uplink's query: exactly its ORDER BY, over pending rows only, so it
    # stays small however many delivered rows are kept for retention.
    """
    CREATE INDEX records_pending_order
        ON records (priority, created_at, record_id) WHERE state = 'pending'
    """,
    # Counts by state, oldest pending, and pruning delivered rows oldest first.
    "CREATE INDEX records_state_created ON records (state, created_at)",
    """
    CREATE TABLE cursors (
        name       TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE motion_snippets (
        snippet_id      INTEGER PRIMARY KEY,
        alert_id        TEXT NOT NULL,
        device_id       TEXT NOT NULL,
        first_sample_at INTEGER NOT NULL,
        sample_rate_hz  REAL NOT NULL,
        samples         BLOB NOT NULL,
        created_at      INTEGER NOT NULL
    )
    """,
    "CREATE INDEX motion_snippets_alert ON motion_snippets (alert_id)",
)

# Alerts still open (raised, repeated, escalated, acknowledged) survive a restart: the daemon
# restores them, so acks are still understood, repeats go on and "all clear" is still sent.
_V2_ACTIVE_ALERTS = _sql(
    """
    CREATE TABLE active_alerts (
        alert_id   TEXT PRIMARY KEY,
        alert_json TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    )
    """,
)

# A device's record identity must outlive the record: a OneTouch meter keeps 500 results and is
# downloaded whole every time, so once retention prunes a delivered reading its key would look new
# and the reading would be uploaded a second time under a new id. Pruned keys move here, by trigger,
# whichever path deletes the row.
_V3_SOURCE_KEYS = _sql(
    """
    CREATE TABLE source_keys (
        dedupe_key TEXT PRIMARY KEY,
        record_id  TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TRIGGER records_keep_source_key AFTER DELETE ON records
    WHEN old.dedupe_key IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO source_keys (dedupe_key, record_id, created_at)
        VALUES (old.dedupe_key, old.record_id, old.created_at);
    END
    """,
)

# Records stamped while the hub clock was not synchronised, with the boot and monotonic time of the
# stamp: when the clock steps, the outbox corrects the ones stamped before it (gateway.clock).
_V4_HUB_STAMPS = _sql(
    """
    CREATE TABLE hub_stamps (
        record_id TEXT PRIMARY KEY REFERENCES records (record_id) ON DELETE CASCADE,
        boot_id   TEXT NOT NULL,
        monotonic REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX hub_stamps_boot ON hub_stamps (boot_id, monotonic)",
)

# Delivery rewrote two index entries per record in (state, created_at), the larger part of marking
# a batch delivered: partial indexes on the rarer states take their place (the pending one exists).
_V5_STATE_INDEXES = _sql(
    "DROP INDEX records_state_created",
    "CREATE INDEX records_delivered ON records (created_at, delivered_at) WHERE state = 'delivered'",
    "CREATE INDEX records_dead ON records (dead_at) WHERE state = 'dead'",
)

# Delivery rewrote each record's whole row (a few hundred bytes of payload) to change its state: on
# a backlog, as many bytes again as the records themselves and most of an upload's time. A record's data
# is now written once, in ``record_rows``; its state is which narrow table holds its row: the upload
# queue (pending), ``deliveries`` or ``dead_letters``. Delivery moves a row of a few dozen bytes.
# ``row`` is an INTEGER PRIMARY KEY, so a VACUUM or a dump keeps the numbers the state tables use.
# ``records`` stays, as a view with the old columns but the delivery time, for whoever reads the file
# with sqlite3: a record in neither the queue nor the dead letters is delivered (every change of
# state inserts the row in its new table and deletes it from the old in one transaction).
# hub_stamps references the records it stamps: it is set aside while they move (with foreign keys on,
# dropping the old table would delete its rows) and made again, referencing ``record_rows``.
_V6_UPLOAD_QUEUE = _sql(
    "CREATE TEMP TABLE hub_stamps_moving AS SELECT record_id, boot_id, monotonic FROM hub_stamps",
    "DROP TABLE hub_stamps",
    """
    CREATE TABLE record_rows (
        row          INTEGER PRIMARY KEY,
        record_id    TEXT NOT NULL UNIQUE,
        type         TEXT NOT NULL,
        priority     INTEGER NOT NULL,
        created_at   INTEGER NOT NULL,
        payload_json TEXT NOT NULL,
        dedupe_key   TEXT,
        size_bytes   INTEGER NOT NULL
    )
    """,
    # Unique where there is a key: a live reading has none and costs no entry (a page per commit).
    "CREATE UNIQUE INDEX record_rows_source_key ON record_rows (dedupe_key) WHERE dedupe_key IS NOT NULL",
    """
    CREATE TABLE upload_queue (
        row        INTEGER PRIMARY KEY,
        priority   INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        record_id  TEXT NOT NULL,
        attempts   INTEGER NOT NULL DEFAULT 0,
        last_error TEXT
    )
    """,
    # The uplink's order, read from the index alone until a batch's rows are fetched.
    "CREATE INDEX upload_order ON upload_queue (priority, created_at, record_id)",
    # In the order pruning takes them (past the retention, then to the budget: delivered longest ago
    # first), with no index: a mark adds to one b-tree, a page or two per commit on the SD card.
    """
    CREATE TABLE deliveries (
        delivered_at INTEGER NOT NULL,
        row          INTEGER NOT NULL,
        PRIMARY KEY (delivered_at, row)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE dead_letters (
        row     INTEGER PRIMARY KEY,
        reason  TEXT NOT NULL,
        dead_at INTEGER NOT NULL
    )
    """,
    "INSERT INTO record_rows (row, record_id, type, priority, created_at, payload_json, dedupe_key, size_bytes)"
    " SELECT rowid, record_id, type, priority, created_at, payload_json, dedupe_key, size_bytes FROM records",
    "INSERT INTO upload_queue (row, priority, created_at, record_id, attempts, last_error)"
    " SELECT rowid, priority, created_at, record_id, attempts, last_error FROM records WHERE state = 'pending'",
    "INSERT INTO deliveries (delivered_at, row)"
    " SELECT coalesce(delivered_at, created_at), rowid FROM records WHERE state = 'delivered'",
    "INSERT INTO dead_letters (row, reason, dead_at)"
    " SELECT rowid, coalesce(dead_reason, ''), coalesce(dead_at, created_at) FROM records WHERE state = 'dead'",
    "DROP TRIGGER records_keep_source_key",
    "DROP TABLE records",
    """
    CREATE TRIGGER record_rows_keep_source_key AFTER DELETE ON record_rows
    WHEN old.dedupe_key IS NOT NULL
    BEGIN
        INSERT OR IGNORE INTO source_keys (dedupe_key, record_id, created_at)
        VALUES (old.dedupe_key, old.record_id, old.created_at);
    END
    """,
    """
    CREATE TABLE hub_stamps (
        record_id TEXT PRIMARY KEY REFERENCES record_rows (record_id) ON DELETE CASCADE,
        boot_id   TEXT NOT NULL,
        monotonic REAL NOT NULL
    ) WITHOUT ROWID
    """,
    "INSERT INTO hub_stamps (record_id, boot_id, monotonic)"
    " SELECT record_id, boot_id, monotonic FROM hub_stamps_moving",
    "DROP TABLE hub_stamps_moving",
    "CREATE INDEX hub_stamps_boot ON hub_stamps (boot_id, monotonic)",
    """
    CREATE VIEW records AS
    SELECT r.record_id, r.type, r.priority,
           CASE WHEN q.row IS NOT NULL THEN 'pending' WHEN x.row IS NOT NULL THEN 'dead' ELSE 'delivered' END
               AS state,
           r.created_at, r.payload_json, r.dedupe_key, coalesce(q.attempts, 0) AS attempts, q.last_error,
           x.reason AS dead_reason, x.dead_at, r.size_bytes
    FROM record_rows AS r
    LEFT JOIN upload_queue AS q ON q.row = r.row
    LEFT JOIN dead_letters AS x ON x.row = r.row
    """,
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "outbox: records, cursors, motion_snippets", _V1_OUTBOX),
    Migration(2, "active_alerts", _V2_ACTIVE_ALERTS),
    Migration(3, "source_keys outlive pruned records", _V3_SOURCE_KEYS),
    Migration(4, "hub_stamps: records a clock step corrects", _V4_HUB_STAMPS),
    Migration(5, "partial indexes per record state", _V5_STATE_INDEXES),
    Migration(6, "record state in narrow tables: upload_queue, deliveries, dead_letters", _V6_UPLOAD_QUEUE),
)


def _applied_versions(conn: sqlite3.Connection) -> set[int]:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS migrations (
            version    INTEGER PRIMARY KEY,
            name       TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )
        """
    )
    return {row[0] for row in conn.execute("SELECT version FROM migrations")}


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations this database lacks, in one transaction; returns the versions applied.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open transaction.
    """
    latest = max((m.version for m in migrations), default=0)
    conn.execute("BEGIN IMMEDIATE")
    try:
        applied = _applied_versions(conn)
        newer = {v for v in applied if v > latest}
        if newer:
            raise StoreError(
                f"the outbox database has schema version(s) {sorted(newer)} but this gateway knows only "
                f"up to {latest}: it was written by a newer gateway. Install that version again, "
                "or move the database aside to start a new one."
            )
        todo = [m for m in sorted(migrations, key=lambda m: m.version) if m.version not in applied]
        now = datetime.now(UTC).isoformat()
        for migration in todo:
            migration.apply(conn)
            conn.execute(
                "INSERT INTO migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, now),
            )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return [m.version for m in todo]
