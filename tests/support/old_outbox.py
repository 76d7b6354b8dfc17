"""Outbox files as earlier gateways left them, for the migration and salvage tests.

Schemas 1 to 5 kept every record, and its state, in one ``records`` table. A test writes such a file
with the migrations of that time and the rows it needs, then opens it with today's gateway.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.store.schema import MIGRATIONS, migrate


@dataclass(frozen=True, slots=True)
class OldRecord:
    """A row of the one-table ``records`` of schemas 1-5 (times in microseconds)."""

    record_id: str
    state: str = "pending"
    created_at: int = 1_000_000
    payload_json: str = "{}"
    dedupe_key: str | None = None
    type: str = "blood_glucose"
    attempts: int = 0
    last_error: str | None = None
    delivered_at: int | None = None
    dead_reason: str | None = None
    dead_at: int | None = None


@dataclass(frozen=True, slots=True)
class OldStamp:
    """A ``hub_stamps`` row (schema 4 on): a record stamped by an unset clock."""

    record_id: str
    boot_id: str
    monotonic: float


def write_old_outbox(path: Path, version: int, rows: Sequence[OldRecord], stamps: Sequence[OldStamp] = ()) -> None:
    """An outbox at schema ``version`` (1-5) holding ``rows``, checkpointed, as a gateway of then left it."""
    if not 1 <= version <= 5:
        raise ValueError(f"schemas 1-5 kept records in one table; version {version} did not")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")  # as the gateway opens it
        migrate(conn, MIGRATIONS[:version])
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO records (record_id, type, priority, state, created_at, payload_json, dedupe_key,"
            " attempts, last_error, delivered_at, dead_reason, dead_at, size_bytes)"
            " VALUES (?, ?, 2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.record_id, r.type, r.state, r.created_at, r.payload_json, r.dedupe_key, r.attempts, r.last_error,
              r.delivered_at, r.dead_reason, r.dead_at, len(r.payload_json.encode())) for r in rows])
        conn.executemany("INSERT INTO hub_stamps (record_id, boot_id, monotonic) VALUES (?, ?, ?)",
                         [(s.record_id, s.boot_id, s.monotonic) for s in stamps])
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
