"""The outbox's SQLite plumbing: connection settings, times as integers, error translation.

Kept apart from the repositories (:mod:`gateway.store.records` and the others), which are about the tables.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from gateway.errors import DiskFullError, OutboxCorruptError, OutboxUnavailableError, StoreError

log = logging.getLogger(__name__)

# Another process (the technician's CLI) may hold the write lock briefly; wait
# for it rather than fail an acceptance.
_BUSY_TIMEOUT_MS = 5000


# Primary result codes (sqlite3.h); extended codes carry them in the low byte.
_SQLITE_PERM = 3
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26
_UNAVAILABLE_CODES = frozenset({_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CANTOPEN})


def to_us(moment: datetime, what: str) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware UTC datetime, got naive {moment.isoformat()}")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)


def store_error(path: Path, action: str, exc: sqlite3.Error) -> StoreError:
    """The typed error for a SQLite failure: what went wrong and what to do about it."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == _SQLITE_FULL:
        return DiskFullError(
            f"{path}: the disk is full ({action}): free disk space on the hub; "
            "no accepted record has been lost"
        )
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return OutboxCorruptError(
            f"{path} is not a usable outbox database ({exc}; while {action}). The running gateway "
            "moves such a file aside (outbox.sqlite.corrupt-*) and opens a fresh outbox by itself; "
            "records keep their device-derived ids, so readings downloaded again are not counted twice. "
            "Keep the moved file for recovery."
        )
    if code in _UNAVAILABLE_CODES:
        return OutboxUnavailableError(
            f"{path}: {action} failed: {exc}. Check that the data directory exists, is writable by the "
            f"gateway's user and that its filesystem is mounted read-write (`findmnt -T {path.parent}`)"
        )
    return StoreError(f"{path}: {action} failed: {exc}")


# The WAL counts against the budget, so it is kept to about 1/20 of it:
# checkpoint after that many pages and truncate the file back to that size.
_WAL_BUDGET_DIVISOR = 20
_WAL_PAGES_MIN, _WAL_PAGES_MAX = 4, 1000  # 1000 is SQLite's own default


def configure(conn: sqlite3.Connection, path: Path, budget_bytes: int) -> None:
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
    db.enable_wal()
    if db.journal_mode != "wal":
        log.warning("outbox path=%s: WAL mode unavailable on this filesystem; using journal_mode=%s",
                    path, db.journal_mode)
    # A record is accepted when its commit returns, and only then is the device
    # acknowledged (an RACP sequence advanced, a radar frame consumed), after
    # which the device may forget the measurement. In WAL mode synchronous=NORMAL
    # does not fsync the WAL at commit, so a power cut -- the common failure of a
    # hub on a wall socket -- could roll back a commit the device was already told
    # about. FULL fsyncs the WAL at every commit: an accepted record survives.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    page_size: int = conn.execute("PRAGMA page_size").fetchone()[0]
    wal_pages = min(max(budget_bytes // page_size // _WAL_BUDGET_DIVISOR, _WAL_PAGES_MIN), _WAL_PAGES_MAX)
    conn.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
    conn.execute(f"PRAGMA journal_size_limit = {wal_pages * page_size}")

