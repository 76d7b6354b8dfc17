"""The daemon's way into the outbox: group commit, holding in memory while the disk fails, clock steps.

What the hub stores arrives here, from many coroutines at once:

* **group commit**: records offered while a commit is under way go in the next one, together. Many
  devices reporting at once (a morning's cuff, meter and oximeter, a burst of events) then cost one
  fsync, not one each: on an SD card, fewer and larger writes are what lasts.
* **holding**: when records cannot be committed (disk full, read-only or vanished data directory)
  they are held in memory, bounded, and written as soon as the outbox can take them; ``accept`` then
  raises :class:`NotDurableError` naming the ids they were given, so an alert can still be published
  and a driver knows not to acknowledge its device. Changes to the open alerts are held the same way.
* **clock steps**: a record stamped before a step of the hub clock and stored only after it is
  corrected as it goes in (:func:`gateway.store.stamps.correct` corrects what was already stored).

Everything else reaches the database directly, through :meth:`gateway.store.database.Database.run`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Sequence

from gateway.errors import NotDurableError, StoreError
from gateway.store import active_alerts, records, stamps
from gateway.store.api import Accepted, ClockCorrection, HubStamp, NewRecord, Retimed, StorageHealth
from gateway.store.database import Database
from gateway.store.ids import RecordIdFactory

log = logging.getLogger(__name__)

MAX_HELD_RECORDS = 10_000
MAX_HELD_BYTES = 16 * 2**20
"""Memory the hub spends on records it could not store: a few days of a household's readings
(a handful an hour) with room to spare, and a small share of a Pi's RAM. Past it, records that
their device still holds (they have a source key and were not acknowledged) are let go first;
alerts and events never are."""


class Intake:
    """Records, open-alert changes and clock steps on their way into ``database``; one per daemon."""

    def __init__(self, database: Database, *, stamp_now: Callable[[], HubStamp | None] = lambda: None) -> None:
        self._db = database
        self._stamp_now = stamp_now
        """The hub clock's stamp for a record made just now (None once synchronised): given to records
        offered without one (alerts, events, status); readings bring the stamp of their receipt."""
        self._ids = RecordIdFactory()
        self._held: list[NewRecord] = []
        self._held_bytes = 0
        self._held_alert_states: dict[str, str | None] = {}
        """alert id -> its JSON to save, or None to drop it from the open alerts (latest change wins)."""
        self._hold_error: str | None = None
        """Why records are held: the failure that made the intake hold them, or the latest that kept them."""
        self._dropped = 0
        self._flush_lock = asyncio.Lock()
        self._waiting: list[tuple[Sequence[NewRecord], asyncio.Future[list[Accepted]]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._corrections: list[ClockCorrection] = []
        self.commits = 0
        """Accept transactions committed (each one fsync), for the benchmarks and the SD-card figures."""

    # -- records -----------------------------------------------------------------------------------

    async def accept(self, offered: Sequence[NewRecord]) -> list[Accepted]:
        """Commit ``offered`` (with whatever else is offered meanwhile); NotDurableError when held instead."""
        if any(record.stamp is None for record in offered):
            stamp = self._stamp_now()
            if stamp is not None:
                offered = [record if record.stamp else dataclasses.replace(record, stamp=stamp)
                           for record in offered]
        if self._held:
            await self.flush_held()
        if self._held:
            # Still failing: no second attempt for these, they queue behind the others.
            held = self._hold(offered)
            raise NotDurableError(f"{len(held)} record(s) held in memory: {self._hold_error}", held)
        try:
            return await self._grouped(offered)
        except NotDurableError:
            raise
        except StoreError as exc:
            self._hold_error = str(exc)
            held = self._hold(offered)
            raise NotDurableError(f"{len(held)} record(s) held in memory: {exc}", held) from exc

    async def _grouped(self, offered: Sequence[NewRecord]) -> list[Accepted]:
        """Group commit: records offered while a commit is under way go in the next one, together."""
        future: asyncio.Future[list[Accepted]] = asyncio.get_running_loop().create_future()
        self._waiting.append((offered, future))
        if self._committer is None or self._committer.done():
            # A task of its own: a caller cancelled while waiting must not strand the others.
            self._committer = asyncio.get_running_loop().create_task(self._commit_waiting())
        return await asyncio.shield(future)

    async def _commit_waiting(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            try:
                work = records.accept_groups([offered for offered, _ in waiting], corrections=self._corrections)
                results = await self._db.run(work)
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

    async def correct_clock(self, correction: ClockCorrection) -> Retimed:
        """The hub clock stepped: correct what is stored, and what is stored from now on, stamped before it."""
        self._corrections.append(correction)  # first: a record accepted meanwhile is corrected as it goes in
        return await self._db.run(stamps.correct(correction))

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
            await self._db.run(active_alerts.drop(alert_id))
        else:
            await self._db.run(active_alerts.save(alert_id, alert_json))

    # -- holding what cannot be stored -------------------------------------------------------------

    async def maintain(self) -> None:
        """The daemon's periodic care: the database's (reopen, deletion, reserve), then write what is held."""
        if await self._db.maintain():
            await self.flush_held()

    async def flush_held(self) -> bool:
        """Write held records and alert changes; True when nothing is held any more."""
        async with self._flush_lock:
            if self._held:
                batch = list(self._held)
                try:
                    await self._db.run(records.accept(batch, corrections=self._corrections))
                except StoreError as exc:
                    self._hold_error = str(exc)
                    return False
                del self._held[: len(batch)]
                self._held_bytes = sum(len(r.payload_json) for r in self._held)
                log.warning("held records stored count=%d path=%s", len(batch), self._db.path)
            for alert_id, alert_json in list(self._held_alert_states.items()):
                try:
                    await self._write_alert_state(alert_id, alert_json)
                except StoreError:
                    return False
                if self._held_alert_states.get(alert_id, "") == alert_json:
                    del self._held_alert_states[alert_id]
            if not self._held:
                self._hold_error = None
            return True

    def _hold(self, offered: Sequence[NewRecord]) -> tuple[str, ...]:
        given: list[str] = []
        for record in offered:
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

    @property
    def health(self) -> StorageHealth:
        """The storage as the technician sees it: the database's incidents and what is held in memory."""
        database = self._db
        return StorageHealth(
            writable=database.write_error is None and not self._held,
            last_error=database.write_error or (self._hold_error if self._held else None),
            held_records=len(self._held),
            held_alerts=sum(1 for record in self._held if record.vital),
            dropped_records=self._dropped,
            reserve_released=database.reserve_released,
            incidents=database.incidents,
            corrupt_files=database.corrupt_files,
        )

    async def close(self) -> None:
        """Let the commit under way finish and write what is held; the database stays open (close it next)."""
        if self._committer is not None and not self._committer.done():
            await asyncio.wait({self._committer})
        if self._held or self._held_alert_states:
            await self.flush_held()
            if self._held:
                log.error("gateway stopping with records it could not store count=%d path=%s: their devices "
                          "still hold those with a source key", len(self._held), self._db.path)
