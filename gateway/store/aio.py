"""The outbox for asyncio code: every call runs on one dedicated thread, and storage trouble is survivable.

A commit with ``synchronous=FULL`` waits for an fsync, which on an SD card can
take tens of milliseconds: far too long for the event loop. The one thread owns
the SQLite connection (through :class:`gateway.store.keeper.OutboxKeeper`, which
also reopens, recovers and moves aside), which also serialises every call without a lock.

When records cannot be committed (disk full, read-only or vanished data directory)
they are **held in memory**, bounded, and written as soon as the outbox can take
them; ``accept`` then raises :class:`NotDurableError` naming the ids they were given,
so an alert can still be published and a driver knows not to acknowledge its device.
What is held and why is in :attr:`AsyncOutbox.health`.

Cancelling an awaiting caller does not cancel the call already handed to the
thread: an ``accept`` may still commit. Callers that retry after cancellation
should give records a ``dedupe_key`` so the retry finds the first copy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from gateway.errors import NotDurableError, StoreError
from gateway.store.api import (
    Accepted,
    ClockCorrection,
    DeadLetter,
    HubStamp,
    NewRecord,
    PendingRecord,
    PruneReport,
    QueueStats,
    RecordState,
    Retimed,
    StorageHealth,
)
from gateway.store.ids import RecordIdFactory
from gateway.store.keeper import OutboxKeeper, corrupt_files
from gateway.store.outbox import (
    DEFAULT_BUDGET_BYTES,
    DEFAULT_DELIVERED_RETENTION_S,
    DEFAULT_WARN_RATIO,
    MotionSnippet,
    Outbox,
    utc_now,
)
from gateway.store.reserve import DiskReserve

log = logging.getLogger(__name__)

_T = TypeVar("_T")

THREAD_NAME_PREFIX = "outbox-sqlite"
MAX_HELD_RECORDS = 10_000
MAX_HELD_BYTES = 16 * 2**20
"""Memory the hub spends on records it could not store: a few days of a household's readings
(a handful an hour) with room to spare, and a small share of a Pi's RAM. Past it, records that
their device still holds (they have a source key and were not acknowledged) are let go first;
alerts and events never are."""


class AsyncOutbox:
    """The outbox with the same methods as :class:`Outbox`, as coroutines; open with :meth:`open` or :meth:`start`."""

    def __init__(self, keeper: OutboxKeeper, executor: ThreadPoolExecutor) -> None:
        self._keeper = keeper
        self._executor = executor
        self._closed = False
        self.path = keeper.path
        self._ids = RecordIdFactory()
        self._held: list[NewRecord] = []
        self._held_bytes = 0
        self._held_alert_states: dict[str, str | None] = {}
        """alert id -> its JSON to save, or None to drop it from the open alerts (latest change wins)."""
        self._dropped = 0
        self._write_error: str | None = None
        self._corrupt_files: tuple[str, ...] = ()
        self._flush_lock = asyncio.Lock()
        self._waiting: list[tuple[Sequence[NewRecord], asyncio.Future[list[Accepted]]]] = []
        self._committer: asyncio.Task[None] | None = None
        self.commits = 0
        """Accept transactions committed (each one fsync), for the benchmarks and the SD-card figures."""
        self._corrections: list[ClockCorrection] = []
        self.stamp_now: Callable[[], HubStamp | None] = lambda: None
        """The hub clock's stamp for a record made just now (None once synchronised): given to records
        offered without one (alerts, events, status); readings bring the stamp of their receipt."""
        self.held_before: datetime | None = None
        """Records stamped by an unset clock and dated before this wait for their correction (the uplink
        does not see them): :data:`gateway.clock.PLAUSIBLE_FROM` in the daemon."""

    @staticmethod
    def _opener(budget_bytes: int, warn_ratio: float, delivered_retention_s: float,
                clock: Callable[[], datetime]) -> Callable[[Path], Outbox]:
        return functools.partial(Outbox.open, budget_bytes=budget_bytes, warn_ratio=warn_ratio,
                                 delivered_retention_s=delivered_retention_s, clock=clock)

    async def set_limits(self, *, budget_bytes: int, warn_ratio: float, delivered_retention_s: float,
                         reserve_bytes: int, clock: Callable[[], datetime] = utc_now) -> None:
        """New storage settings from a reloaded configuration, on the open outbox and for every reopen."""
        opener = self._opener(budget_bytes, warn_ratio, delivered_retention_s, clock)
        reserve = DiskReserve(self.path.parent, reserve_bytes) if reserve_bytes else None

        def apply(box: Outbox) -> None:
            box.set_limits(budget_bytes=budget_bytes, warn_ratio=warn_ratio,
                           delivered_retention_s=delivered_retention_s)

        await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(self._keeper.reconfigure, opener, reserve, apply))

    @classmethod
    async def start(
        cls,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        warn_ratio: float = DEFAULT_WARN_RATIO,
        delivered_retention_s: float = DEFAULT_DELIVERED_RETENTION_S,
        reserve_bytes: int = 0,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> AsyncOutbox:
        """The daemon's outbox: never fails to start; an unusable file is reported in :attr:`health`."""
        opener = cls._opener(budget_bytes, warn_ratio, delivered_retention_s, clock)
        reserve = DiskReserve(Path(path).parent, reserve_bytes) if reserve_bytes else None
        keeper = OutboxKeeper(Path(path), opener, reserve=reserve, monotonic=monotonic)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME_PREFIX)
        outbox = cls(keeper, executor)
        await outbox.maintain()
        return outbox

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        warn_ratio: float = DEFAULT_WARN_RATIO,
        delivered_retention_s: float = DEFAULT_DELIVERED_RETENTION_S,
        reserve_bytes: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> AsyncOutbox:
        """Like :meth:`start`, but raises the StoreError when the outbox cannot be opened now."""
        outbox = await cls.start(path, budget_bytes=budget_bytes, warn_ratio=warn_ratio,
                                 delivered_retention_s=delivered_retention_s, reserve_bytes=reserve_bytes,
                                 clock=clock)
        try:
            await outbox._call(lambda _box: None)
        except BaseException:
            await outbox.close()
            raise
        return outbox

    async def _call(self, action: Callable[[Outbox], _T], *, write: bool = False) -> _T:
        if self._closed:
            raise StoreError(f"the outbox {self.path} is closed")
        try:
            result = await asyncio.get_running_loop().run_in_executor(self._executor, self._keeper.call, action)
        except StoreError as exc:
            if write:
                self._note_write_failure(exc)
            raise
        if write and self._write_error is not None and not self._held:
            self._write_error = None
            log.warning("outbox writable again path=%s", self.path)
        return result

    def _note_write_failure(self, exc: StoreError) -> None:
        if self._write_error is None:
            log.error("outbox write failed path=%s error=%s", self.path, exc)
        self._write_error = str(exc)

    async def close(self) -> None:
        if self._closed:
            return
        if self._committer is not None and not self._committer.done():
            await asyncio.wait({self._committer})
        if self._held or self._held_alert_states:
            await self.flush_held()
            if self._held:
                log.error("gateway stopping with records it could not store count=%d path=%s: their devices "
                          "still hold those with a source key", len(self._held), self.path)
        # Queued behind any call still running, so that call finishes first.
        await asyncio.get_running_loop().run_in_executor(self._executor, self._keeper.close)
        self._closed = True
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- care and health ---------------------------------------------------------------------------

    async def maintain(self) -> None:
        """Reopen if needed, notice a deleted file, take the disk reserve back, write what is held."""
        if self._closed:
            return

        def care(box: Outbox) -> tuple[str, ...]:
            return tuple(p.name for p in corrupt_files(box.path))

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._keeper.maintain)
            self._corrupt_files = await self._call(care)
        except StoreError as exc:
            self._note_write_failure(exc)
            return
        await self.flush_held()

    @property
    def health(self) -> StorageHealth:
        return StorageHealth(
            writable=self._write_error is None and not self._held,
            last_error=self._write_error,
            held_records=len(self._held),
            held_alerts=sum(1 for record in self._held if record.vital),
            dropped_records=self._dropped,
            reserve_released=self._keeper.reserve_released,
            incidents=tuple(self._keeper.incidents),
            corrupt_files=self._corrupt_files,
        )

    # -- holding what cannot be stored -------------------------------------------------------------

    async def accept(self, records: Sequence[NewRecord]) -> list[Accepted]:
        if any(record.stamp is None for record in records):
            stamp = self.stamp_now()
            if stamp is not None:
                records = [record if record.stamp else dataclasses.replace(record, stamp=stamp)
                           for record in records]
        if self._held:
            await self.flush_held()
        if self._held:
            # Still failing: no second attempt for these, they queue behind the others.
            held = self._hold(records)
            raise NotDurableError(f"{len(held)} record(s) held in memory: {self._write_error}", held)
        try:
            return await self._grouped(records)
        except NotDurableError:
            raise
        except StoreError as exc:
            held = self._hold(records)
            raise NotDurableError(f"{len(held)} record(s) held in memory: {exc}", held) from exc

    async def _grouped(self, records: Sequence[NewRecord]) -> list[Accepted]:
        """Group commit: records offered while a commit is under way go in the next one, together.

        Many devices reporting at once (a morning's cuff, meter and oximeter, a burst of events)
        then cost one fsync, not one each: on an SD card, fewer and larger writes are what lasts.
        """
        future: asyncio.Future[list[Accepted]] = asyncio.get_running_loop().create_future()
        self._waiting.append((records, future))
        if self._committer is None or self._committer.done():
            # A task of its own: a caller cancelled while waiting must not strand the others.
            self._committer = asyncio.get_running_loop().create_task(self._commit_waiting())
        return await asyncio.shield(future)

    async def _commit_waiting(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            groups = [records for records, _ in waiting]
            try:
                results = await self._call(functools.partial(_accept_groups, groups, tuple(self._corrections)),
                                           write=True)
            except BaseException as exc:  # StoreError (or a closed outbox): every caller of the group hears it
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            self.commits += 1
            for (_, future), result in zip(waiting, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, ValueError):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def flush_held(self) -> bool:
        """Write held records and alert changes; True when nothing is held any more."""
        async with self._flush_lock:
            if self._held:
                batch = list(self._held)
                try:
                    corrections = tuple(self._corrections)
                    await self._call(lambda box: box.accept(batch, corrections=corrections), write=True)
                except StoreError:
                    return False
                del self._held[: len(batch)]
                self._held_bytes = sum(len(r.payload_json) for r in self._held)
                log.warning("held records stored count=%d path=%s", len(batch), self.path)
            for alert_id, alert_json in list(self._held_alert_states.items()):
                try:
                    await self._write_alert_state(alert_id, alert_json)
                except StoreError:
                    return False
                if self._held_alert_states.get(alert_id, "") == alert_json:
                    del self._held_alert_states[alert_id]
            if self._write_error is not None and not self._held:
                self._write_error = None
                log.warning("outbox writable again path=%s", self.path)
            return True

    def _hold(self, records: Sequence[NewRecord]) -> tuple[str, ...]:
        given: list[str] = []
        for record in records:
            record_id = record.record_id or self._ids.new_id()
            self._held.append(dataclasses.replace(record, record_id=record_id))
            self._held_bytes += len(record.payload_json)
            given.append(record_id)
        self._shed()
        return tuple(given)

    def _shed(self) -> None:
        while len(self._held) > MAX_HELD_RECORDS or self._held_bytes > MAX_HELD_BYTES:
            victim = next((i for i, r in enumerate(self._held) if r.dedupe_key is not None), None)
            if victim is None:
                victim = next((i for i, r in enumerate(self._held) if not r.vital), None)
            if victim is None:
                return  # only alerts and events left: they stay, whatever the bound
            record = self._held.pop(victim)
            self._held_bytes -= len(record.payload_json)
            self._dropped += 1
            log.error("held record let go (memory bound) record_id=%s type=%s on_device=%s", record.record_id,
                      record.type, record.dedupe_key is not None)

    # -- the open alerts ---------------------------------------------------------------------------

    async def save_active_alert(self, alert_id: str, alert_json: str) -> None:
        """Never raises for storage: the change is held and written later (the alert itself is in memory)."""
        await self._alert_state(alert_id, alert_json)

    async def drop_active_alert(self, alert_id: str) -> None:
        await self._alert_state(alert_id, None)

    async def _alert_state(self, alert_id: str, alert_json: str | None) -> None:
        if self._held_alert_states:
            self._held_alert_states[alert_id] = alert_json
            await self.flush_held()
            return
        try:
            await self._write_alert_state(alert_id, alert_json)
        except StoreError:
            self._held_alert_states[alert_id] = alert_json

    async def _write_alert_state(self, alert_id: str, alert_json: str | None) -> None:
        if alert_json is None:
            await self._call(lambda box: box.drop_active_alert(alert_id), write=True)
        else:
            await self._call(lambda box: box.save_active_alert(alert_id, alert_json), write=True)

    async def active_alerts(self) -> list[str]:
        return await self._call(lambda box: box.active_alerts())

    # -- the rest, as they are ---------------------------------------------------------------------

    async def add_motion_snippet(
        self, *, alert_id: str, device_id: str, first_sample_at: datetime, sample_rate_hz: float,
        samples: bytes,
    ) -> None:
        await self._call(lambda box: box.add_motion_snippet(
            alert_id=alert_id, device_id=device_id, first_sample_at=first_sample_at,
            sample_rate_hz=sample_rate_hz, samples=samples), write=True)

    async def motion_snippets(self, alert_id: str) -> list[MotionSnippet]:
        return await self._call(lambda box: box.motion_snippets(alert_id))

    async def pending_batch(self, *, max_records: int = 500, max_bytes: int = 1_000_000,
                            exclude: Collection[str] = ()) -> list[PendingRecord]:
        held_before = self.held_before
        return await self._call(lambda box: box.pending_batch(max_records=max_records, max_bytes=max_bytes,
                                                              exclude=exclude, held_before=held_before))

    async def correct_clock(self, correction: ClockCorrection) -> Retimed:
        """The hub clock stepped: correct what is stored, and what is stored from now on, stamped before it."""
        self._corrections.append(correction)  # first: a record accepted meanwhile is corrected as it goes in
        return await self._call(lambda box: box.correct_clock(correction), write=True)

    async def mark_delivered(self, record_ids: Sequence[str]) -> None:
        await self._call(lambda box: box.mark_delivered(record_ids), write=True)

    async def mark_dead(self, record_id: str, reason: str) -> None:
        await self._call(lambda box: box.mark_dead(record_id, reason), write=True)

    async def note_attempt(self, record_ids: Sequence[str], error: str) -> None:
        await self._call(lambda box: box.note_attempt(record_ids, error), write=True)

    async def requeue_dead(self, record_ids: Sequence[str] | None = None) -> int:
        return await self._call(lambda box: box.requeue_dead(record_ids), write=True)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._call(lambda box: box.dead_letters(limit))

    async def record_state(self, record_id: str) -> RecordState | None:
        return await self._call(lambda box: box.record_state(record_id))

    async def stats(self) -> QueueStats:
        return await self._call(lambda box: box.stats())

    async def prune(self) -> PruneReport:
        return await self._call(lambda box: box.prune(), write=True)

    async def get_cursor(self, name: str) -> str | None:
        return await self._call(lambda box: box.get_cursor(name))

    async def set_cursor(self, name: str, value: str) -> None:
        await self._call(lambda box: box.set_cursor(name, value), write=True)


def _accept_groups(groups: list[Sequence[NewRecord]], corrections: tuple[ClockCorrection, ...],
                   box: Outbox) -> list[list[Accepted] | ValueError]:
    return box.accept_groups(groups, corrections=corrections)
