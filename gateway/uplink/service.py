"""The uplink: drains the outbox to the provincial platform (v1 JSON or the FHIR R4 profile).

One loop of rounds: take the next batch from the outbox (no larger than the platform is learned to
take), send it (:mod:`gateway.uplink.sender`), and record what the platform said about each record.
The outbox is the only queue, so a crash anywhere loses nothing: a record is pending until the
platform has answered for it by id. What differs between platform profiles (the body, the path,
reading the answer) is a :class:`BatchEncoder`; the rest is shared.

A round that met any error waits (backoff, or the platform's Retry-After) before the next one; a
batch refused as a whole (400, 413) is split within a request budget
(:mod:`gateway.uplink.splitting`); 413 lowers the batch limit (:mod:`gateway.uplink.batch_limit`);
and while errors last every request is paced (:mod:`gateway.uplink.pacing`). A healthy uplink
sends back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.platform_limits import BATCH_MAX_BYTES_RANGE, BATCH_MAX_RECORDS_RANGE, MAX_BODY_BYTES, MAX_RECORDS
from gateway.store import records
from gateway.store.api import PendingRecord, QueuePlace
from gateway.store.work import Runner
from gateway.uplink.backoff import backoff_delay, parse_retry_after
from gateway.uplink.batch import (
    BatchEncoder,
    PlatformAnswerError,
    PreparedRequest,
    RecordStatus,
    V1Encoder,
    record_bytes_budget,
)
from gateway.uplink.batch_limit import BatchSize, LearnedLimit
from gateway.uplink.http import HttpResponse, Transport, post
from gateway.uplink.pacing import ErrorThrottle, ThrottleSettings
from gateway.uplink.sender import Endpoint, NotAnswered, SignedSender, TooLarge
from gateway.uplink.signing import HmacSha256Signer, Signer
from gateway.uplink.splitting import Bisection, split_budget

log = logging.getLogger(__name__)

_GATEWAY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_TOO_LARGE = 413
TOO_LARGE_REASON = "too large for the platform"
"""Starts the dead-letter reason of a single record the platform refuses with 413."""


MARK_EVERY_RECORDS = 2000
"""Delivered records are marked in the outbox once per this many (one transaction, one fsync), not
once per request: on an SD card every fsync costs write cycles, and the marks were the drain's
bottleneck. Until they are marked the uplink leaves them out of what it reads; they are marked once
the first of them has waited ``mark_after_s`` (a night of SpO2 summaries, uploaded every minute,
then costs one mark every few minutes instead of one a minute), when an upload fails, and when the
uplink stops. A crash before the mark only uploads them again, which the platform answers
"duplicate"."""



@dataclass(frozen=True, slots=True)
class UplinkStatus:
    last_success_at: datetime | None = None
    """When the platform last took records (a round with errors may still have delivered some)."""
    last_error: str | None = None
    consecutive_failures: int = 0
    """Rounds in a row that met an error; 0 after a clean round."""
    next_attempt_at: datetime | None = None
    """When the uplink is waiting out a failure: the time of its next try."""
    server_clock_offset_s: float = 0.0
    """Seconds the platform's clock is ahead of ours, as used for ``X-Timestamp``."""
    batch_max_records: int = MAX_RECORDS
    """Records per request now: the configured limit, or less since the platform answered 413."""
    batch_max_bytes: int = MAX_BODY_BYTES
    """Records' bytes per request now (before gzip): the configured limit, or less since a 413."""
    throttled: bool = False
    """Requests are rate-limited because errors last (until a clean round)."""
    throttled_until: datetime | None = None
    """Set while a request waits for its turn under that rate limit: when it may go."""
    delivered_unmarked: int = 0
    """Records the platform has that the outbox still counts pending (written delivered within
    ``mark_after_s``, see :data:`MARK_EVERY_RECORDS`)."""


@dataclass(frozen=True, slots=True)
class _Refusal:
    """The platform (or the encoder, for a body it cannot make small enough) refused a request as a whole."""

    status: int
    reason: str
    """As stored with a dead letter."""


@dataclass(slots=True)
class _Round:
    """What one batch's requests came to."""

    progress: bool = False
    """The platform answered for at least one record."""
    error: str | None = None
    """The round's last error; None: every request went through (a clean round, no wait after it)."""
    retry_after_s: float | None = None
    stopped: bool = False
    """An error that ends the round (the platform or the link is unwell, not the batch)."""
    suspects: list[tuple[PendingRecord, _Refusal]] = field(default_factory=list)
    """Single records the platform refused as a request (400, 413): bad unless *every* request failed."""
    too_large: list[BatchSize] = field(default_factory=list)
    """Requests refused as too large (413, or by the encoder)."""
    went_through: list[BatchSize] = field(default_factory=list)
    """Requests the platform answered with 200."""


class Uplink:
    """Delivers pending outbox records to the platform until cancelled.

    ``outbox`` runs the :mod:`gateway.store.records` work (the daemon's
    :class:`gateway.store.database.Database`). ``held_before``: records stamped by an unset hub clock
    and dated before it wait for the clock step that corrects them (:data:`gateway.clock.PLAUSIBLE_FROM`
    in the daemon).

    ``clock_synced`` tells whether the hub's wall clock is NTP-synchronised: a
    clock offset learned from the platform while unsynchronised is dropped once
    the clock is synchronised (NTP has stepped the clock, the offset is stale).

    ``encoder`` is the platform profile (default: Platform Upload API v1); with
    :class:`gateway.uplink.fhir_client.FhirEncoder`, ``base_url`` is the FHIR base.

    ``throttle`` paces requests while errors last (default: the constants of
    :mod:`gateway.uplink.pacing`); ``monotonic`` is the clock it counts on.
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        base_url: str,
        secret: bytes,
        outbox: Runner,
        clock_synced: Callable[[], bool],
        batch_max_records: int = 500,
        batch_max_bytes: int = 1_000_000,
        gzip: bool = True,
        timeout_s: float = 15.0,
        backoff_initial_s: float = 1.0,
        backoff_cap_s: float = 300.0,
        idle_poll_s: float = 2.0,
        rng: random.Random | None = None,
        signer: Signer | None = None,
        transport: Transport = post,
        encoder: BatchEncoder | None = None,
        throttle: ThrottleSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        mark_after_s: float = 0.0,
        held_before: datetime | None = None,
    ) -> None:
        _check_settings(gateway_id=gateway_id, base_url=base_url, batch_max_records=batch_max_records,
                        batch_max_bytes=batch_max_bytes, timeout_s=timeout_s, backoff_initial_s=backoff_initial_s,
                        backoff_cap_s=backoff_cap_s, idle_poll_s=idle_poll_s, mark_after_s=mark_after_s)
        parts = urlsplit(base_url)
        self._encoder: BatchEncoder = encoder if encoder is not None else V1Encoder()
        path = self._encoder.request_path(parts.path, gateway_id)
        self._endpoint = Endpoint(gateway_id=gateway_id, url=f"{parts.scheme}://{parts.netloc}{path}", path=path)
        self._sender = SignedSender(
            endpoint=self._endpoint, signer=signer if signer is not None else HmacSha256Signer(gateway_id, secret),
            encoder=self._encoder, transport=transport, gzip=gzip, timeout_s=timeout_s, clock_synced=clock_synced,
            pace=self._pace,
        )
        self._outbox = outbox
        self._held_before = held_before
        self._limit = LearnedLimit.start(BatchSize(records=batch_max_records, record_bytes=batch_max_bytes))
        self._monotonic = monotonic
        self._throttle = ErrorThrottle(monotonic, throttle)
        self._throttled_until: datetime | None = None
        self._throttle_logged = False
        self._backoff_initial_s = backoff_initial_s
        self._backoff_cap_s = backoff_cap_s
        self._idle_poll_s = idle_poll_s
        self._rng = rng if rng is not None else random.Random()
        self._wake = asyncio.Event()
        self._marks: list[str] = []
        """Records the platform has, not yet marked delivered in the outbox."""
        self._taken: dict[str, QueuePlace] = {}
        """Where each record taken since the last mark stands: the marks find their rows by it."""
        self._reach: QueuePlace | None = None
        """The furthest place taken since the last mark: the next batch starts after it when it can."""
        self._marks_since: float | None = None
        self._mark_after_s = mark_after_s
        self._status = UplinkStatus()

    def __repr__(self) -> str:
        return f"Uplink(gateway_id={self._endpoint.gateway_id!r}, url={self._endpoint.url!r})"

    @property
    def status(self) -> UplinkStatus:
        limit = self._limit.current
        return replace(self._status, server_clock_offset_s=self._sender.clock_offset_s,
                       batch_max_records=limit.records, batch_max_bytes=limit.record_bytes,
                       throttled=self._throttle.engaged, throttled_until=self._throttled_until,
                       delivered_unmarked=len(self._marks))

    def wake(self) -> None:
        """New records were accepted: look at the outbox now instead of at the next idle poll.

        Call from the event loop's thread. It does not cut short a wait after a failure.
        """
        self._wake.set()

    async def run(self) -> None:
        log.info("uplink started gateway_id=%s url=%s", self._endpoint.gateway_id, self._endpoint.url)
        try:
            while True:
                parts = await self._next_batch()
                if not parts:
                    if self._marks_due():
                        await self._commit_marks()
                    self._drained()
                    await self._idle()
                    continue
                round_ = await self._deliver(parts)
                self._learn_batch_size(round_)
                if round_.error is None:
                    self._succeeded(sum(map(len, parts)))
                    if len(self._marks) >= MARK_EVERY_RECORDS:
                        await self._commit_marks()
                else:
                    await self._commit_marks()
                    await asyncio.sleep(self._failed(round_))
        finally:
            # Cancelled (the daemon stops): what the platform has, the outbox learns before it closes.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._commit_marks())

    def _marks_due(self) -> bool:
        return self._marks_since is not None and self._monotonic() - self._marks_since >= self._mark_after_s

    async def _commit_marks(self) -> None:
        """Mark delivered what the platform accepted since the last mark (one transaction)."""
        marks, self._marks, self._marks_since = self._marks, [], None
        taken, self._taken, self._reach = self._taken, {}, None
        if not marks:
            return
        places = [taken[record_id] for record_id in marks if record_id in taken]
        if places:
            await self._outbox.run(records.mark_places_delivered(places))
        if len(places) < len(marks):
            await self._outbox.run(records.mark_delivered([r for r in marks if r not in taken]))

    async def _next_batch(self) -> list[list[PendingRecord]]:
        """The next batch from the outbox, as the parts its first requests carry (one, usually)."""
        limit = self._limit.current
        if limit.records > 1:
            batch = await self._pending(limit.records, record_bytes_budget(limit.record_bytes))
            return [batch] if batch else []
        # One record per request: a lone record refused says nothing about whether it or the platform is
        # at fault, so it would stay pending for ever and block the queue behind it. A second record, in
        # a request of its own, tells the two apart.
        batch = await self._pending(2, record_bytes_budget(self._limit.configured.record_bytes))
        return [[record] for record in batch]

    async def _pending(self, max_records: int, max_bytes: int) -> list[PendingRecord]:
        """Pending records, leaving out those the platform has (marks to come) and those held for a clock step."""
        batch = await self._outbox.run(records.pending_batch(max_records=max_records, max_bytes=max_bytes,
                                                             exclude=self._marks, after=self._reach,
                                                             held_before=self._held_before))
        for record in batch:
            if record.place is not None:
                self._taken[record.record_id] = record.place
                if self._reach is None or record.place > self._reach:
                    self._reach = record.place
        return batch

    def _learn_batch_size(self, round_: _Round) -> None:
        before = self._limit.current
        self._limit = self._limit.after_round(too_large=round_.too_large, went_through=round_.went_through,
                                              clean=round_.error is None, now=self._monotonic())
        after = self._limit.current
        if after.records < before.records or after.record_bytes < before.record_bytes:
            log.warning("batch too large for the platform; batch limit lowered records=%d bytes=%d",
                        after.records, after.record_bytes)
        elif after != before:
            log.info("trying larger batches again records=%d bytes=%d", after.records, after.record_bytes)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._idle_poll_s)
        self._wake.clear()

    def _succeeded(self, batch_size: int) -> None:
        if self._status.consecutive_failures:
            log.info("platform takes records again after failed_rounds=%d", self._status.consecutive_failures)
        log.debug("batch delivered records=%d", batch_size)
        self._clear_failures()
        self._status = replace(self._status, last_success_at=datetime.now(UTC))

    def _drained(self) -> None:
        """Nothing is pending: whatever failed before has been dealt with (delivered or dead-lettered)."""
        if self._status.consecutive_failures or self._throttle.engaged:
            log.info("outbox drained after failed_rounds=%d", self._status.consecutive_failures)
            self._clear_failures()

    def _clear_failures(self) -> None:
        self._throttle.release()
        self._throttle_logged = False
        self._status = replace(self._status, last_error=None, consecutive_failures=0, next_attempt_at=None)

    def _failed(self, round_: _Round) -> float:
        """Record a round that met an error; the seconds to wait before the next round."""
        failures = self._status.consecutive_failures + 1
        delay = round_.retry_after_s
        if delay is None:
            delay = backoff_delay(failures, initial=self._backoff_initial_s, cap=self._backoff_cap_s, rng=self._rng)
        log.warning("upload failed error=%r consecutive_failures=%d retry_in_s=%.1f",
                    round_.error, failures, delay)
        now = datetime.now(UTC)
        self._status = replace(self._status, last_error=round_.error, consecutive_failures=failures,
                               next_attempt_at=now + timedelta(seconds=delay),
                               last_success_at=now if round_.progress else self._status.last_success_at)
        return delay

    async def _pace(self) -> None:
        """Wait for the error throttle's permission to send a request (none needed while healthy)."""
        while (wait_s := self._throttle.wait_s()) > 0:
            if not self._throttle_logged:
                self._throttle_logged = True
                log.warning("uplink throttled while errors last requests_per_minute=%g wait_s=%.1f",
                            self._throttle.settings.requests_per_minute, wait_s)
            self._throttled_until = datetime.now(UTC) + timedelta(seconds=wait_s)
            await asyncio.sleep(wait_s)
        self._throttled_until = None
        self._throttle.spend()

    async def _deliver(self, parts: list[list[PendingRecord]]) -> _Round:
        """Send one batch, split within the round's request budget if the platform refuses parts of it."""
        round_ = _Round()
        sendable = [kept for part in parts if (kept := await self._drop_unsendable(part))]
        count = sum(map(len, sendable))
        if not count:
            return round_
        bisection = Bisection(sendable, split_budget(count))
        while not round_.stopped and (part := bisection.next_part()) is not None:
            refusal = await self._send_part(part, round_)
            if refusal is None:
                continue
            if len(part) == 1:
                round_.suspects.append((part[0], refusal))
            else:
                log.info("platform refused a batch status=%d records=%d; splitting", refusal.status, len(part))
                bisection.split(part)
        unsent = bisection.unsent()
        if unsent and not round_.stopped:
            # The budget is spent: the rest waits for the next round (after a backoff), not for more splits.
            log.warning("split budget spent records_left=%d requests=%d", len(unsent), split_budget(count))
            await self._outbox.run(records.note_attempt(
                [record.record_id for record in unsent],
                f"left for the next round: {round_.error or 'split budget spent'}"))
        await self._settle_suspects(round_)
        return round_

    async def _drop_unsendable(self, batch: Sequence[PendingRecord]) -> list[PendingRecord]:
        """The records this profile can send; the others are dead letters (certain without asking)."""
        sendable: list[PendingRecord] = []
        for record in batch:
            reason = self._encoder.unsendable_reason(record)
            if reason is None:
                sendable.append(record)
            else:
                log.warning("record cannot be sent, dead-lettered record_id=%s type=%s reason=%r",
                            record.record_id, record.type, reason)
                await self._outbox.run(records.mark_dead(record.record_id, reason))
        return sendable

    async def _settle_suspects(self, round_: _Round) -> None:
        if not round_.suspects:
            return
        if not round_.progress:
            # No request of the batch got through: a platform or configuration fault is more
            # likely than bad records, so nobody is dead-lettered on that evidence.
            if not round_.stopped:   # a 5xx or a dropped link that ended the round says more
                reason = round_.suspects[0][1].reason
                round_.error = (f"platform refused every request of the batch ({reason}); "
                                "check base_url and the platform's API version")
            await self._outbox.run(records.note_attempt([record.record_id for record, _ in round_.suspects],
                                                        round_.error or "refused"))
            return
        for record, refusal in round_.suspects:
            log.warning("platform refused a record, dead-lettered record_id=%s type=%s status=%d",
                        record.record_id, record.type, refusal.status)
            await self._outbox.run(records.mark_dead(record.record_id, refusal.reason))

    async def _send_part(self, part: Sequence[PendingRecord], round_: _Round) -> _Refusal | None:
        """Send one part of the batch; the platform's reason if it refused the part as a whole (split it).

        Errors that are not about this part's records end the round (``round_.stopped``).
        """
        ids = [record.record_id for record in part]
        sent = await self._sender.send(part)
        if isinstance(sent, TooLarge):
            return await self._too_large_here(part, sent.reason, round_)
        if isinstance(sent, NotAnswered):
            await self._round_failed(round_, ids, sent.error)
            return None
        answer = sent.answer
        if answer.status == 200:
            try:
                await self._apply_results(sent.request, answer, round_)
                round_.went_through.append(_size(part))
            except PlatformAnswerError as exc:
                await self._round_failed(round_, ids, f"platform answer is not usable: {exc}")
            return None
        if answer.status in self._encoder.split_statuses:
            self._throttle.engage()
            reason = self._encoder.refusal_reason(answer)
            if answer.status == _TOO_LARGE:
                reason = f"{TOO_LARGE_REASON}: {reason}"
                round_.too_large.append(_size(part))
            round_.error = f"platform refused a request of {len(part)} record(s): {reason}"
            return _Refusal(answer.status, reason)
        retry_after = None
        if answer.status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(answer.headers.get("retry-after"), datetime.now(UTC))
        await self._round_failed(round_, ids, f"platform answered HTTP {answer.status}", retry_after)
        return None

    async def _round_failed(self, round_: _Round, ids: list[str], error: str,
                            retry_after_s: float | None = None) -> None:
        self._throttle.engage()
        round_.error, round_.retry_after_s, round_.stopped = error, retry_after_s, True
        await self._outbox.run(records.note_attempt(ids, error))

    async def _too_large_here(self, part: Sequence[PendingRecord], reason: str, round_: _Round) -> _Refusal | None:
        """The encoder could not fit the part in one request: nothing was sent, so this is not the platform's error."""
        round_.too_large.append(_size(part))
        if len(part) > 1:
            return _Refusal(_TOO_LARGE, reason)
        # One record that cannot be encoded within the request limit never will be: certain without asking.
        [record] = part
        log.warning("record too large for one request, dead-lettered record_id=%s type=%s", record.record_id,
                    record.type)
        await self._outbox.run(records.mark_dead(record.record_id, f"{TOO_LARGE_REASON}: {reason}"))
        return None

    async def _apply_results(self, request: PreparedRequest, answer: HttpResponse, round_: _Round) -> None:
        ids = request.record_ids
        # A 500-entry answer (a FHIR transaction-response Bundle) is parsed off the loop too.
        results = await asyncio.to_thread(self._encoder.parse_answer, answer, request)
        delivered = [r.record_id for r in results if r.status in (RecordStatus.ACCEPTED, RecordStatus.DUPLICATE)]
        if delivered and self._marks_since is None:
            self._marks_since = self._monotonic()
        self._marks.extend(delivered)  # committed with the others (MARK_EVERY_RECORDS, mark_after_s)
        for result in results:
            if result.status is RecordStatus.REJECTED:
                await self._outbox.run(records.mark_dead(result.record_id,
                                                         result.reason or "rejected by the platform"))
        answered = {result.record_id for result in results}
        missing = [record_id for record_id in ids if record_id not in answered]
        if missing:
            # Not this batch's fault, nor a reason to stop: the records stay pending, and the round waits after.
            self._throttle.engage()
            round_.error = f"platform answered without a result for {len(missing)} record(s)"
            await self._outbox.run(records.note_attempt(missing,
                                                        "platform answered without a result for this record"))
        round_.progress = round_.progress or bool(results)


def _size(part: Sequence[PendingRecord]) -> BatchSize:
    return BatchSize(records=len(part), record_bytes=max(1, sum(len(record.body_json.encode()) for record in part)))


def _check_settings(*, gateway_id: str, base_url: str, batch_max_records: int, batch_max_bytes: int,
                    timeout_s: float, backoff_initial_s: float, backoff_cap_s: float, idle_poll_s: float,
                    mark_after_s: float) -> None:
    problems: list[str] = []
    if not _GATEWAY_ID.fullmatch(gateway_id):
        problems.append(f"gateway_id {gateway_id!r}: use the id the platform issued "
                        "(1-64 letters, digits, '.', '_', '-')")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        problems.append(f"base_url {base_url!r}: give the platform's http:// or https:// address without query")
    for name, value, (low, high) in (("batch_max_records", batch_max_records, BATCH_MAX_RECORDS_RANGE),
                                     ("batch_max_bytes", batch_max_bytes, BATCH_MAX_BYTES_RANGE)):
        if not low <= value <= high:
            problems.append(f"{name} {value}: must be {low}..{high} (as platform.{name} in the configuration)")
    if timeout_s <= 0:
        problems.append(f"timeout_s {timeout_s}: must be > 0")
    if not 0 < backoff_initial_s <= backoff_cap_s:
        problems.append(f"backoff_initial_s {backoff_initial_s}, backoff_cap_s {backoff_cap_s}: "
                        "need 0 < initial <= cap")
    if idle_poll_s <= 0:
        problems.append(f"idle_poll_s {idle_poll_s}: must be > 0")
    if not 0 <= mark_after_s <= 3600:
        problems.append(f"mark_after_s {mark_after_s}: must be 0..3600 (as platform.mark_delivered_after_s)")
    if problems:
        raise ConfigError("uplink", problems)

