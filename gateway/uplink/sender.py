"""One signed upload request: encode, compress, sign, POST from a worker thread, and the 401 clock fix.

What to send and what the answer means for the outbox is the service's; this module only turns
records into one HTTP exchange. A platform that refuses our timestamp (401) with its own ``Date``
teaches us its clock, once per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.store.api import PendingRecord
from gateway.uplink.backoff import server_clock_offset
from gateway.uplink.batch import BatchEncoder, BatchTooLargeError, EncodedBody, PreparedRequest, encode_body
from gateway.uplink.http import HttpResponse, Transport, TransportError
from gateway.uplink.signing import Signer

log = logging.getLogger(__name__)

CLOCK_OFFSET_TOLERANCE_S = 2.0
"""``Date`` has 1 s resolution and the answer takes a while to arrive: smaller differences are noise."""


@dataclass(frozen=True, slots=True)
class Answered:
    """The platform answered (any status but a 401 we could not fix)."""

    request: PreparedRequest
    answer: HttpResponse


@dataclass(frozen=True, slots=True)
class NotAnswered:
    """No usable answer: the link failed, or the platform refuses our signature."""

    error: str


@dataclass(frozen=True, slots=True)
class TooLarge:
    """The encoder cannot fit these records in one request; nothing was sent."""

    reason: str


SendOutcome = Answered | NotAnswered | TooLarge


@dataclass(frozen=True, slots=True)
class Endpoint:
    gateway_id: str
    url: str
    path: str
    """The URL's path, as signed."""


class SignedSender:
    """Sends records as one signed request. ``pace`` is awaited before every HTTP request (the
    401 retry included): it is where the service's error throttle waits."""

    def __init__(
        self,
        *,
        endpoint: Endpoint,
        signer: Signer,
        encoder: BatchEncoder,
        transport: Transport,
        gzip: bool,
        timeout_s: float,
        clock_synced: Callable[[], bool],
        pace: Callable[[], Awaitable[None]],
    ) -> None:
        self._endpoint = endpoint
        self._signer = signer
        self._encoder = encoder
        self._transport = transport
        self._gzip = gzip
        self._timeout_s = timeout_s
        self._clock_synced = clock_synced
        self._pace = pace
        self._clock_offset_s = 0.0
        self._offset_learned_unsynced = False

    def __repr__(self) -> str:
        return f"SignedSender(url={self._endpoint.url!r})"

    @property
    def clock_offset_s(self) -> float:
        """Seconds the platform's clock is ahead of ours, as used for ``X-Timestamp``."""
        return self._clock_offset_s

    async def send(self, records: Sequence[PendingRecord]) -> SendOutcome:
        """POST the records; after a 401 that shows our clock is off, correct it and retry once."""
        # sent_at is the hub's own clock, uncorrected: the platform compares it with its
        # receipt time to correct records stamped hub_unsynced.
        sent_at = datetime.now().astimezone().isoformat(timespec="milliseconds")
        # Encoding 500 records (a FHIR Bundle especially) and gzipping up to 1 MiB take tens of
        # milliseconds on a Pi: a worker thread's, not the event loop's.
        prepared = await asyncio.to_thread(self._prepare, records, sent_at)
        if isinstance(prepared, TooLarge):
            return prepared
        request, body = prepared
        headers = {"Content-Type": self._encoder.content_type, "Accept": self._encoder.accept}
        if body.content_encoding is not None:
            headers["Content-Encoding"] = body.content_encoding
        for first_try in (True, False):
            await self._pace()   # before signing: a wait must not age the timestamp
            self._drop_stale_offset()
            timestamp_ms = round((time.time() + self._clock_offset_s) * 1000)
            signed = {**headers, **self._signer.auth_headers(path=self._endpoint.path, timestamp_ms=timestamp_ms,
                                                             body=body.data)}
            try:
                answer = await asyncio.to_thread(self._transport, self._endpoint.url, body.data, signed,
                                                 self._timeout_s)
            except TransportError as exc:
                return NotAnswered(str(exc))
            if answer.status != 401:
                return Answered(request, answer)
            if not (first_try and self._learn_server_clock(answer)):
                break
        log.error("platform refuses our signature (HTTP 401) gateway_id=%s: the gateway secret or gateway id "
                  "is wrong, or the clocks disagree (server_clock_offset_s=%.0f)",
                  self._endpoint.gateway_id, self._clock_offset_s)
        return NotAnswered("HTTP 401: platform refused the signature or timestamp")

    def _prepare(self, records: Sequence[PendingRecord],
                 sent_at: str) -> tuple[PreparedRequest, EncodedBody] | TooLarge:
        try:
            request = self._encoder.encode(records, sent_at)
        except BatchTooLargeError as exc:
            return TooLarge(str(exc))
        return request, encode_body(request.body, gzip=self._gzip)

    def _learn_server_clock(self, answer: HttpResponse) -> bool:
        """Take the platform's clock from a 401's ``Date``; True if that changed our timestamps."""
        offset = server_clock_offset(answer.headers.get("date"), datetime.now(UTC))
        if offset is None or abs(offset - self._clock_offset_s) <= CLOCK_OFFSET_TOLERANCE_S:
            return False
        synced = self._clock_synced()
        log.warning("platform says our clock is off by %.0f s (hub clock %s); signing with the platform's time",
                    offset, "NTP-synchronised" if synced else "not synchronised")
        self._offset_learned_unsynced = not synced
        self._clock_offset_s = offset
        return True

    def _drop_stale_offset(self) -> None:
        if self._offset_learned_unsynced and self._clock_synced():
            log.info("hub clock now synchronised; dropping the platform clock offset of %.0f s",
                     self._clock_offset_s)
            self._offset_learned_unsynced = False
            self._clock_offset_s = 0.0
