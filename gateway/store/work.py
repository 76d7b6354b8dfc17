"""A unit of work on the outbox database: what it is called, whether it writes, and the SQL it runs.

The repositories (:mod:`.records`, :mod:`.snippets`, :mod:`.cursors`, :mod:`.open_alerts`) build
:class:`Work`; a database runs it in one transaction: :meth:`gateway.store.database.Database.run` on the
outbox's own thread (the daemon), :meth:`gateway.store.dbfile.DatabaseFile.run` on the caller's (the CLI,
tests, benchmarks). Whether a work writes, and whether it may grow the file past the budget, is the
repository's to say, next to its SQL, so no call site can get it wrong.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Generic, Protocol, TypeVar

from gateway.store.ids import RecordIdFactory

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Access(Enum):
    READ = "read"
    """One read transaction: its queries see one snapshot."""
    WRITE = "write"
    """``BEGIN IMMEDIATE``: the write lock is taken up front, so a busy database is waited for at BEGIN
    rather than failing halfway through."""
    GROW = "grow"
    """A write that adds rows the budget counts: room is made first (pruning), and it is refused with
    :class:`gateway.errors.StorageFullError` when only undelivered rows are left."""


@dataclass(frozen=True, slots=True)
class Tx:
    """What a unit of work is given: the connection inside its transaction, the time, the record ids."""

    conn: sqlite3.Connection
    now: datetime
    """The outbox's clock, read on the database's thread when the transaction began."""
    ids: RecordIdFactory
    """The database's UUIDv7 maker: ids increase within one open file, whatever its clock did."""


@dataclass(frozen=True, slots=True)
class Work(Generic[T_co]):
    what: str
    """What it does, as a failure names it: "marking records delivered"."""
    access: Access
    run: Callable[[Tx], T_co]


def read(what: str, run: Callable[[Tx], T]) -> Work[T]:
    return Work(what, Access.READ, run)


def write(what: str, run: Callable[[Tx], T]) -> Work[T]:
    return Work(what, Access.WRITE, run)


def grow(what: str, run: Callable[[Tx], T]) -> Work[T]:
    return Work(what, Access.GROW, run)


class Runner(Protocol):
    """What runs work on the outbox database from asyncio code (:class:`gateway.store.database.Database`)."""

    async def run(self, work: Work[T], /) -> T: ...
