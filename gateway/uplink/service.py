"""The uplink: drains the outbox to the provincial platform (v1 JSON or the FHIR R4 profile).

One loop: take the next batch from the outbox, sign it, POST it from a worker
thread, and record what the platform said about each record. The outbox is the
only queue, so a crash anywhere loses nothing: a record is pending until the
platform has answered for it by id. What differs between platform profiles (the
body, the path, reading the answer) is a :class:`BatchEncoder`; the rest is shared.
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
from typing import Protocol
from urllib.parse import urlsplit

from gateway.errors import ConfigError
from gateway.platform_limits import BATCH_MAX_BYTES_RANGE, BATCH_MAX_RECORDS_RANGE
from gateway.store.api import PendingRecord
from gateway.uplink.backoff import backoff_delay, parse_retry_after, server_clock_offset
from gateway.uplink.batch import (
    BatchEncoder,
    BatchTooLargeError,
    PlatformAnswerError,
    PreparedRequest,
    RecordStatus,
    V1Encoder,
    encode_body,
    record_bytes_budget,
)
from gateway.uplink.http import HttpResponse, Transport, TransportError, post
from gateway.uplink.signing import HmacSha256Signer, Signer

log = logging.getLogger(__name__)

CLOCK_OFFSET_TOLERANCE_S = 2.0
"""``Date`` has 1 s resolution and the answer takes a while to arrive: smaller differences are noise."""
_GATEWAY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_RETRY_AFTER_STATUSES = frozenset({429, 503})


class AsyncOutboxLike(Protocol):
    """What the uplink needs of :class:`gateway.store.aio.AsyncOutbox`."""

    async def pending_batch(self, *, max_records: int, max_bytes: int) -> list[PendingRecord]: ...
    async def mark_delivered(self, record_ids: list[str], /) -> object: ...
    async def mark_dead(self, record_id: str, reason: str, /) -> object: ...
    async def note_attempt(self, record_ids: list[str], error: str, /) -> object: ...


@dataclass(frozen=True, slots=True)
class UplinkStatus:
    last_success_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    next_attempt_at: datetime | None = None
    """When the uplink is waiting out a failure: the time of its next try."""
    server_clock_offset_s: float = 0.0
    """Seconds the platform's clock is ahead of ours, as used for ``X-Timestamp``."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """The platform was not reached or refused the request as a whole; try later."""

    error: str
    retry_after_s: float | None = None


@dataclass(slots=True)
class _Round:
    """One batch's delivery, possibly split into several requests."""

    progress: bool = False
    suspects: list[tuple[PendingRecord, str]] = field(default_factory=list)
    """Single records the platform refused as a request (400, 413): bad unless *every* request failed."""


class Uplink:
    """Delivers pending outbox records to the platform until cancelled.

    ``clock_synced`` tells whether the hub's wall clock is NTP-synchronised: a
    clock offset learned from the platform while unsynchronised is dropped once
    the clock is synchronised (NTP has stepped the clock, the offset is stale).

    ``encoder`` is the platform profile (default: Platform Upload API v1); with
    :class:`gateway.uplink.fhir_client.FhirEncoder`, ``base_url`` is the FHIR base.
    """

    def __init__(
        self,
        *,
        gateway_id: str,
        base_url: str,
        secret: bytes,
        outbox: AsyncOutboxLike,
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
    ) -> None:
        _check_settings(gateway_id=gateway_id, base_url=base_url, batch_max_records=batch_max_records,
                        batch_max_bytes=batch_max_bytes, timeout_s=timeout_s, backoff_initial_s=backoff_initial_s,
                        backoff_cap_s=backoff_cap_s, idle_poll_s=idle_poll_s)
        parts = urlsplit(base_url)
        self._encoder: BatchEncoder = encoder if encoder is not None else V1Encoder()
        self._path = self._encoder.request_path(parts.path, gateway_id)
        self._url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self._gateway_id = gateway_id
        self._signer: Signer = signer if signer is not None else HmacSha256Signer(gateway_id, secret)
        self._outbox = outbox
        self._clock_synced = clock_synced
        self._max_records = batch_max_records
        self._max_bytes = batch_max_bytes
        self._gzip = gzip
        self._timeout_s = timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_cap_s = backoff_cap_s
        self._idle_poll_s = idle_poll_s
        self._rng = rng if rng is not None else random.Random()
        self._transport = transport
        self._wake = asyncio.Event()
        self._status = UplinkStatus()
        self._offset_learned_unsynced = False

    def __repr__(self) -> str:
        return f"Uplink(gateway_id={self._gateway_id!r}, url={self._url!r})"

    @property
    def status(self) -> UplinkStatus:
        return self._status

    def wake(self) -> None:
        """New records were accepted: look at the outbox now instead of at the next idle poll.

        Call from the event loop's thread. It does not cut short a wait after a failure.
        """
        self._wake.set()

    async def run(self) -> None:
        log.info("uplink started gateway_id=%s url=%s", self._gateway_id, self._url)
        while True:
            batch = await self._outbox.pending_batch(max_records=self._max_records,
                                                     max_bytes=record_bytes_budget(self._max_bytes))
            if not batch:
                await self._idle()
                continue
            failure = await self._deliver(batch)
            if failure is None:
                self._succeeded(len(batch))
            else:
                await asyncio.sleep(self._failed(failure))

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=self._idle_poll_s)
        self._wake.clear()

    def _succeeded(self, batch_size: int) -> None:
        if self._status.consecutive_failures:
            log.info("platform reachable again after %d failed tries", self._status.consecutive_failures)
        log.debug("batch delivered records=%d", batch_size)
        self._status = replace(self._status, last_success_at=datetime.now(UTC), last_error=None,
                               consecutive_failures=0, next_attempt_at=None)

    def _failed(self, failure: _Failure) -> float:
        """Record the failure; the seconds to wait before the next try."""
        failures = self._status.consecutive_failures + 1
        delay = failure.retry_after_s
        if delay is None:
            delay = backoff_delay(failures, initial=self._backoff_initial_s, cap=self._backoff_cap_s, rng=self._rng)
        log.warning("upload failed error=%r consecutive_failures=%d retry_in_s=%.1f",
                    failure.error, failures, delay)
        self._status = replace(self._status, last_error=failure.error, consecutive_failures=failures,
                               next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay))
        return delay

    async def _deliver(self, batch: Sequence[PendingRecord]) -> _Failure | None:
        """Send one batch; None when the platform answered for at least some of it."""
        sendable: list[PendingRecord] = []
        for record in batch:
            reason = self._encoder.unsendable_reason(record)
            if reason is None:
                sendable.append(record)
            else:
                log.warning("record cannot be sent, dead-lettered record_id=%s type=%s reason=%r",
                            record.record_id, record.type, reason)
                await self._outbox.mark_dead(record.record_id, reason)
        if not sendable:
            return None
        round_ = _Round()
        failure = await self._send_split(sendable, round_)
        if round_.suspects and not round_.progress:
            # No request of the batch got through: a platform or configuration fault is more
            # likely than bad records, so nobody is dead-lettered on that evidence.
            ids = [record.record_id for record, _ in round_.suspects]
            if failure is None:
                failure = _Failure(f"platform refused every request of the batch ({round_.suspects[0][1]}); "
                                   "check base_url and the platform's API version")
            await self._outbox.note_attempt(ids, failure.error)
            return failure
        for record, reason in round_.suspects:
            await self._outbox.mark_dead(record.record_id, reason)
        if failure is None and not round_.progress:
            return _Failure("platform answered 200 without a result for any record of the batch")
        return failure

    async def _send_split(self, records: Sequence[PendingRecord], round_: _Round) -> _Failure | None:
        """Send ``records``; halve them recursively on 400/413 to isolate the record at fault."""
        ids = [record.record_id for record in records]
        sent = await self._send_signed(records)
        if isinstance(sent, _Failure):
            await self._outbox.note_attempt(ids, sent.error)
            return sent
        request, answer = sent
        if answer.status == 200:
            try:
                await self._apply_results(request, answer, round_)
            except PlatformAnswerError as exc:
                error = f"platform answer is not usable: {exc}"
                await self._outbox.note_attempt(ids, error)
                return _Failure(error)
            return None
        if answer.status in self._encoder.split_statuses:
            return await self._split(records, self._encoder.refusal_reason(answer), round_)
        retry_after = None
        if answer.status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(answer.headers.get("retry-after"), datetime.now(UTC))
        error = f"platform answered HTTP {answer.status}"
        await self._outbox.note_attempt(ids, error)
        return _Failure(error, retry_after)

    async def _split(self, records: Sequence[PendingRecord], reason: str, round_: _Round) -> _Failure | None:
        if len(records) == 1:
            round_.suspects.append((records[0], reason))
            return None
        # The same bytes would get the same answer: only smaller requests can make progress.
        half = len(records) // 2
        log.info("platform refused a batch (%s); splitting records=%d", reason[:40], len(records))
        for part in (records[:half], records[half:]):
            failure = await self._send_split(part, round_)
            if failure is not None:
                return failure
        return None

    async def _apply_results(self, request: PreparedRequest, answer: HttpResponse, round_: _Round) -> None:
        ids = request.record_ids
        results = self._encoder.parse_answer(answer, request)
        delivered = [r.record_id for r in results if r.status in (RecordStatus.ACCEPTED, RecordStatus.DUPLICATE)]
        if delivered:
            await self._outbox.mark_delivered(delivered)
        for result in results:
            if result.status is RecordStatus.REJECTED:
                await self._outbox.mark_dead(result.record_id, result.reason or "rejected by the platform")
        answered = {result.record_id for result in results}
        missing = [record_id for record_id in ids if record_id not in answered]
        if missing:
            await self._outbox.note_attempt(missing, "platform answered without a result for this record")
        round_.progress = round_.progress or bool(results)

    async def _send_signed(self, records: Sequence[PendingRecord]) -> tuple[PreparedRequest, HttpResponse] | _Failure:
        """POST the records; after a 401 that shows our clock is off, correct it and retry once."""
        # sent_at is the hub's own clock, uncorrected: the platform compares it with its
        # receipt time to correct records stamped hub_unsynced.
        sent_at = datetime.now().astimezone().isoformat(timespec="milliseconds")
        try:
            request = self._encoder.encode(records, sent_at)
        except BatchTooLargeError as exc:
            unsent = PreparedRequest(body=b"", entry_owners=tuple(record.record_id for record in records))
            return unsent, HttpResponse(status=413, headers={}, body=str(exc).encode())
        body = encode_body(request.body, gzip=self._gzip)
        headers = {"Content-Type": self._encoder.content_type, "Accept": self._encoder.accept}
        if body.content_encoding is not None:
            headers["Content-Encoding"] = body.content_encoding
        for first_try in (True, False):
            self._drop_stale_offset()
            timestamp_ms = round((time.time() + self._status.server_clock_offset_s) * 1000)
            signed = {**headers, **self._signer.auth_headers(path=self._path, timestamp_ms=timestamp_ms,
                                                             body=body.data)}
            try:
                answer = await asyncio.to_thread(self._transport, self._url, body.data, signed, self._timeout_s)
            except TransportError as exc:
                return _Failure(str(exc))
            if answer.status != 401:
                return request, answer
            if not (first_try and self._learn_server_clock(answer)):
                break
        log.error("platform refuses our signature (HTTP 401) gateway_id=%s: the gateway secret or gateway id "
                  "is wrong, or the clocks disagree (server_clock_offset_s=%.0f)",
                  self._gateway_id, self._status.server_clock_offset_s)
        return _Failure("HTTP 401: platform refused the signature or timestamp")

    def _learn_server_clock(self, answer: HttpResponse) -> bool:
        """Take the platform's clock from a 401's ``Date``; True if that changed our timestamps."""
        offset = server_clock_offset(answer.headers.get("date"), datetime.now(UTC))
        if offset is None or abs(offset - self._status.server_clock_offset_s) <= CLOCK_OFFSET_TOLERANCE_S:
            return False
        synced = self._clock_synced()
        log.warning("platform says our clock is off by %.0f s (hub clock %s); signing with the platform's time",
                    offset, "NTP-synchronised" if synced else "not synchronised")
        self._offset_learned_unsynced = not synced
        self._status = replace(self._status, server_clock_offset_s=offset)
        return True

    def _drop_stale_offset(self) -> None:
        if self._offset_learned_unsynced and self._clock_synced():
            log.info("hub clock now synchronised; dropping the platform clock offset of %.0f s",
                     self._status.server_clock_offset_s)
            self._offset_learned_unsynced = False
            self._status = replace(self._status, server_clock_offset_s=0.0)


def _check_settings(*, gateway_id: str, base_url: str, batch_max_records: int, batch_max_bytes: int,
                    timeout_s: float, backoff_initial_s: float, backoff_cap_s: float, idle_poll_s: float) -> None:
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
    if problems:
        raise ConfigError("uplink", problems)

