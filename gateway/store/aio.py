"""The outbox for asyncio code: every call runs on one dedicated thread.

A commit with ``synchronous=FULL`` waits for an fsync, which on an SD card can
take tens of milliseconds: far too long for the event loop. The one thread owns
the SQLite connection (created there, so sqlite3's same-thread check guards
it), which also serialises every call without a lock.

Cancelling an awaiting caller does not cancel the call already handed to the
thread: an ``accept`` may still commit. Callers that retry after cancellation
should give records a ``dedupe_key`` so the retry finds the first copy.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, Self, TypeVar

from gateway.errors import StoreError
from gateway.store.api import (
    Accepted,
    DeadLetter,
    NewRecord,
    PendingRecord,
    PruneReport,
    QueueStats,
    RecordState,
)
from gateway.store.outbox import (
    DEFAULT_BUDGET_BYTES,
    DEFAULT_DELIVERED_RETENTION_S,
    DEFAULT_WARN_RATIO,
    MotionSnippet,
    Outbox,
    utc_now,
)

_P = ParamSpec("_P")
_T = TypeVar("_T")

THREAD_NAME_PREFIX = "outbox-sqlite"


class AsyncOutbox:
    """:class:`Outbox` with the same methods as coroutines; open with :meth:`open`."""

    def __init__(self, outbox: Outbox, executor: ThreadPoolExecutor) -> None:
        self._outbox = outbox
        self._executor = executor
        self._closed = False
        self.path = outbox.path

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        warn_ratio: float = DEFAULT_WARN_RATIO,
        delivered_retention_s: float = DEFAULT_DELIVERED_RETENTION_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> AsyncOutbox:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME_PREFIX)
        opener = functools.partial(
            Outbox.open,
            path,
            budget_bytes=budget_bytes,
            warn_ratio=warn_ratio,
            delivered_retention_s=delivered_retention_s,
            clock=clock,
        )
        try:
            outbox = await asyncio.get_running_loop().run_in_executor(executor, opener)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(outbox, executor)

    async def _run(self, method: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        if self._closed:
            raise StoreError(f"the outbox {self.path} is closed")
        call = functools.partial(method, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def close(self) -> None:
        if self._closed:
            return
        # Queued behind any call still running, so that call finishes first.
        await self._run(self._outbox.close)
        self._closed = True
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def accept(self, records: Sequence[NewRecord]) -> list[Accepted]:
        return await self._run(self._outbox.accept, records)

    async def add_motion_snippet(
        self, *, alert_id: str, device_id: str, first_sample_at: datetime, sample_rate_hz: float,
        samples: bytes,
    ) -> None:
        await self._run(
            self._outbox.add_motion_snippet, alert_id=alert_id, device_id=device_id,
            first_sample_at=first_sample_at, sample_rate_hz=sample_rate_hz, samples=samples,
        )

    async def motion_snippets(self, alert_id: str) -> list[MotionSnippet]:
        return await self._run(self._outbox.motion_snippets, alert_id)

    async def pending_batch(self, *, max_records: int = 500, max_bytes: int = 1_000_000) -> list[PendingRecord]:
        return await self._run(self._outbox.pending_batch, max_records=max_records, max_bytes=max_bytes)

    async def mark_delivered(self, record_ids: Sequence[str]) -> None:
        await self._run(self._outbox.mark_delivered, record_ids)

    async def mark_dead(self, record_id: str, reason: str) -> None:
        await self._run(self._outbox.mark_dead, record_id, reason)

    async def note_attempt(self, record_ids: Sequence[str], error: str) -> None:
        await self._run(self._outbox.note_attempt, record_ids, error)

    async def requeue_dead(self, record_ids: Sequence[str] | None = None) -> int:
        return await self._run(self._outbox.requeue_dead, record_ids)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        return await self._run(self._outbox.dead_letters, limit)

    async def record_state(self, record_id: str) -> RecordState | None:
        return await self._run(self._outbox.record_state, record_id)

    async def stats(self) -> QueueStats:
        return await self._run(self._outbox.stats)

    async def prune(self) -> PruneReport:
        return await self._run(self._outbox.prune)

    async def save_active_alert(self, alert_id: str, alert_json: str) -> None:
        await self._run(self._outbox.save_active_alert, alert_id, alert_json)

    async def drop_active_alert(self, alert_id: str) -> None:
        await self._run(self._outbox.drop_active_alert, alert_id)

    async def active_alerts(self) -> list[str]:
        return await self._run(self._outbox.active_alerts)

    async def get_cursor(self, name: str) -> str | None:
        return await self._run(self._outbox.get_cursor, name)

    async def set_cursor(self, name: str, value: str) -> None:
        await self._run(self._outbox.set_cursor, name, value)
