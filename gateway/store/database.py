"""The daemon's outbox database: one file, one connection, one thread of its own, all the transactions.

A commit with ``synchronous=FULL`` waits for an fsync, which on an SD card can take tens of
milliseconds: far too long for the event loop. :meth:`Database.run` hands each
:class:`~gateway.store.work.Work` to the one worker thread, which owns the connection (an open
:class:`~gateway.store.dbfile.DatabaseFile`, kept usable by the
:class:`~gateway.store.keeper.OutboxKeeper`: reopened, recovered, moved aside) and so serialises every
transaction without a lock.

Cancelling an awaiting caller does not cancel the work already handed to the thread: a write may still
commit. Callers that retry after cancellation should give records a ``dedupe_key`` so the retry finds
the first copy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from gateway.errors import StoreError
from gateway.store.api import PruneReport, QueueStats
from gateway.store.budget import StorageLimits
from gateway.store.dbfile import DatabaseFile, utc_now
from gateway.store.keeper import Opener, OutboxKeeper, corrupt_files
from gateway.store.reserve import DiskReserve
from gateway.store.work import Access, Work

log = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_NAME_PREFIX = "outbox-sqlite"


class Database:
    """The outbox database for asyncio code; open with :meth:`start` or :meth:`open`."""

    def __init__(self, keeper: OutboxKeeper, executor: ThreadPoolExecutor, clock: Callable[[], datetime]) -> None:
        self._keeper = keeper
        self._executor = executor
        self._clock = clock
        self._closed = False
        self.path = keeper.path
        self._write_error: str | None = None
        self._corrupt_files: tuple[str, ...] = ()

    @classmethod
    async def start(cls, path: Path, *, limits: StorageLimits | None = None, reserve_bytes: int = 0,
                    clock: Callable[[], datetime] = utc_now,
                    monotonic: Callable[[], float] = time.monotonic) -> Database:
        """The daemon's database: never fails to start; an unusable file shows in :attr:`write_error`."""
        path = Path(path)
        keeper = OutboxKeeper(path, _opener(limits or StorageLimits(), clock),
                              reserve=_reserve(path, reserve_bytes), monotonic=monotonic)
        database = cls(keeper, ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME_PREFIX), clock)
        await database.maintain()
        return database

    @classmethod
    async def open(cls, path: Path, *, limits: StorageLimits | None = None, reserve_bytes: int = 0,
                   clock: Callable[[], datetime] = utc_now) -> Database:
        """Like :meth:`start`, but raises the StoreError when the outbox cannot be opened now."""
        database = await cls.start(path, limits=limits, reserve_bytes=reserve_bytes, clock=clock)
        try:
            await database._on_thread(lambda _file: None, writes=False)
        except BaseException:
            await database.close()
            raise
        return database

    async def close(self) -> None:
        if self._closed:
            return
        await self._submit(self._keeper.close)  # queued behind any work still running, so that work finishes first
        self._closed = True
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- work --------------------------------------------------------------------------------------

    async def run(self, work: Work[T]) -> T:
        """Run ``work`` in a transaction of its own on the database's thread; the StoreError if it fails."""
        return await self._on_thread(lambda file: file.run(work), writes=work.access is not Access.READ)

    async def stats(self) -> QueueStats:
        return await self._on_thread(DatabaseFile.stats, writes=False)

    async def prune(self) -> PruneReport:
        """Retention, then the budget (:meth:`gateway.store.dbfile.DatabaseFile.prune`)."""
        return await self._on_thread(DatabaseFile.prune, writes=True)

    async def _on_thread(self, action: Callable[[DatabaseFile], T], *, writes: bool) -> T:
        """``action`` on a usable file, through the keeper; a failed write is kept for the health."""
        if self._closed:
            raise StoreError(f"the outbox {self.path} is closed")
        try:
            result = await self._submit(functools.partial(self._keeper.call, action))
        except StoreError as exc:
            if writes:
                self._note_write_failure(exc)
            raise
        if writes and self._write_error is not None:
            self._write_error = None
            log.warning("outbox writable again path=%s", self.path)
        return result

    async def _submit(self, call: Callable[[], T]) -> T:
        """Every blocking call of the database goes to its one thread here (which serialises them)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _note_write_failure(self, exc: StoreError) -> None:
        if self._write_error is None:
            log.error("outbox write failed path=%s error=%s", self.path, exc)
        self._write_error = str(exc)

    # -- care --------------------------------------------------------------------------------------

    async def maintain(self) -> bool:
        """Reopen if needed, notice a deleted file, take the disk reserve back; True when the file is usable."""
        if self._closed:
            return False

        def care(file: DatabaseFile) -> tuple[str, ...]:
            return tuple(p.name for p in corrupt_files(file.path))

        try:
            await self._submit(self._keeper.maintain)
            self._corrupt_files = await self._on_thread(care, writes=False)
        except StoreError as exc:
            self._note_write_failure(exc)
            return False
        return True

    async def set_limits(self, limits: StorageLimits, *, reserve_bytes: int) -> None:
        """New storage settings from a reloaded configuration, on the open file and for every reopen."""

        def apply(file: DatabaseFile) -> None:
            file.set_limits(limits)

        await self._submit(functools.partial(self._keeper.reconfigure, _opener(limits, self._clock),
                                             _reserve(self.path, reserve_bytes), apply))

    # -- what the technician is told -----------------------------------------------------------------

    @property
    def write_error(self) -> str | None:
        """Why the last write failed, until one succeeds."""
        return self._write_error

    @property
    def incidents(self) -> tuple[str, ...]:
        """What happened to the file since the daemon started (corrupt, deleted, disk full)."""
        return tuple(self._keeper.incidents)

    @property
    def reserve_released(self) -> bool:
        return self._keeper.reserve_released

    @property
    def corrupt_files(self) -> tuple[str, ...]:
        """Outbox files moved aside as corrupt that are still in the data directory."""
        return self._corrupt_files


def _opener(limits: StorageLimits, clock: Callable[[], datetime]) -> Opener:
    return functools.partial(DatabaseFile.open, limits=limits, clock=clock)


def _reserve(path: Path, reserve_bytes: int) -> DiskReserve | None:
    return DiskReserve(path.parent, reserve_bytes) if reserve_bytes else None
