"""Upload request bodies and the platform's answers (Platform Upload API v1), pure.

Records sit in the outbox as the exact JSON text that was accepted; the body is
spliced from those texts without parsing them again, so what is uploaded is byte
for byte what was accepted, and a batch of 500 records costs no JSON round trip
on a Pi.

The answer is parsed strictly: an answer that does not say clearly what
happened to which record marks nothing delivered (a proxy's login page with
status 200 must not empty the queue).
"""

from __future__ import annotations

import gzip as gzip_module
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from gateway.errors import UplinkError
from gateway.platform_limits import MAX_BODY_BYTES, MAX_RECORDS
from gateway.store.api import PendingRecord
from gateway.uplink.http import HttpResponse

ENVELOPE_RESERVE_BYTES = 1024
"""Room for ``sent_at``, the brackets and up to 499 commas around the records' own bytes."""
MAX_REASON_CHARS = 500
"""A platform's reason is stored with the dead letter; a runaway one must not bloat the outbox."""
_GZIP_LEVEL = 6
"""zlib's default: most of level 9's ratio on JSON at a fraction of the CPU on a Pi."""


class BatchTooLargeError(UplinkError):
    """The records do not fit in one request; send fewer per request."""


class BadRecordTextError(UplinkError):
    """A stored record is not a JSON object's text, so it cannot be spliced into a body."""


class PlatformAnswerError(UplinkError):
    """The platform's 200 answer does not say clearly what happened to which record.

    Nothing is marked delivered; the batch is retried later. If it persists, check
    ``base_url`` (a proxy or captive portal may be answering instead of the platform).
    """


class RecordStatus(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"   # the platform already has this id: delivered by an earlier try
    REJECTED = "rejected"     # permanent for this record: dead letter, never retried


@dataclass(frozen=True, slots=True)
class RecordResult:
    record_id: str
    status: RecordStatus
    reason: str | None


@dataclass(frozen=True, slots=True)
class EncodedBody:
    """A body as it goes on the wire; ``raw_size`` is the size before compression."""

    data: bytes
    content_encoding: str | None
    raw_size: int


def is_object_text(text: str) -> bool:
    """Cheap guard for splicing: braces at both ends. Deeper faults are the platform's 400 to find."""
    stripped = text.strip()
    return stripped.startswith("{") and stripped.endswith("}")


def build_body(record_texts: Sequence[str], sent_at: str) -> bytes:
    """``{"sent_at": ..., "records": [...]}`` with each record's stored JSON text spliced in.

    Raises :class:`BatchTooLargeError` past 500 records or 1 MiB, and
    :class:`BadRecordTextError` for a text that is not an object's (which would
    break the array around it).
    """
    if len(record_texts) > MAX_RECORDS:
        raise BatchTooLargeError(
            f"{len(record_texts)} records in one request; the platform takes at most {MAX_RECORDS}"
        )
    for index, text in enumerate(record_texts):
        if not is_object_text(text):
            raise BadRecordTextError(f"record #{index} in the batch is not a JSON object's text")
    head = '{"sent_at":' + json.dumps(sent_at) + ',"records":['
    body = (head + ",".join(record_texts) + "]}").encode("utf-8")
    if len(body) > MAX_BODY_BYTES:
        raise BatchTooLargeError(
            f"request body is {len(body)} bytes; the platform takes at most {MAX_BODY_BYTES} before compression"
        )
    return body


def record_bytes_budget(batch_max_bytes: int) -> int:
    """The records' bytes to ask the outbox for, so that the body around them stays within 1 MiB.

    ``batch_max_bytes`` counts the records' JSON, as a technician thinks of it (up to the
    platform's 1 MiB); the envelope is ours to make room for.
    """
    return max(1, min(batch_max_bytes, MAX_BODY_BYTES - ENVELOPE_RESERVE_BYTES))


def encode_body(body: bytes, *, gzip: bool) -> EncodedBody:
    if not gzip:
        return EncodedBody(data=body, content_encoding=None, raw_size=len(body))
    # mtime=0: the same records give the same bytes, which keeps the signature reproducible in tests.
    data = gzip_module.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
    return EncodedBody(data=data, content_encoding="gzip", raw_size=len(body))


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def is_json_content_type(content_type: str | None) -> bool:
    if content_type is None:
        return True  # some gateways strip it; the body check below still applies
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def parse_results(
    body: bytes, expected_ids: Collection[str], content_type: str | None = None
) -> tuple[RecordResult, ...]:
    """The per-record results of a 200 answer, for ids of this batch only.

    Records of the batch missing from the answer are simply not in the result (they
    stay pending). Anything else unexpected raises :class:`PlatformAnswerError`.
    """
    if not is_json_content_type(content_type):
        raise PlatformAnswerError(f"answer has Content-Type {content_type!r}, not JSON")
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PlatformAnswerError(f"answer is not JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("results"), list):
        raise PlatformAnswerError('answer has no "results" list')
    results: list[RecordResult] = []
    seen: set[str] = set()
    for index, entry in enumerate(document["results"]):
        result = _parse_result(index, entry)
        if result.record_id not in expected_ids:
            raise PlatformAnswerError(f"results[{index}] names record {result.record_id!r}, which was not in the batch")
        if result.record_id in seen:
            raise PlatformAnswerError(f"results[{index}] names record {result.record_id!r} a second time")
        seen.add(result.record_id)
        results.append(result)
    return tuple(results)


def _parse_result(index: int, entry: object) -> RecordResult:
    if not isinstance(entry, dict):
        raise PlatformAnswerError(f"results[{index}] is not an object")
    record_id = entry.get("record_id")
    if not isinstance(record_id, str) or not record_id:
        raise PlatformAnswerError(f"results[{index}] has no record_id")
    status_text = entry.get("status")
    try:
        status = RecordStatus(str(status_text)) if isinstance(status_text, str) else None
    except ValueError:
        status = None
    if status is None:
        raise PlatformAnswerError(f"results[{index}] has unknown status {status_text!r}")
    reason = entry.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise PlatformAnswerError(f"results[{index}] has a reason that is not text")
    if reason is not None:
        reason = reason[:MAX_REASON_CHARS]
    return RecordResult(record_id=record_id, status=status, reason=reason)


@dataclass(frozen=True, slots=True)
class PreparedRequest:
    """One request's body (before compression) and whose records it carries."""

    body: bytes
    entry_owners: tuple[str, ...]
    """The record id behind each entry of the body, in body order (a record may own several entries)."""

    @property
    def record_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.entry_owners))


class BatchEncoder(Protocol):
    """What differs between uplink profiles (v1 JSON, FHIR R4): the body, the path and the answer.

    Retries, splitting, signing and the outbox bookkeeping are the service's and shared.
    """

    @property
    def content_type(self) -> str: ...
    @property
    def accept(self) -> str: ...
    @property
    def split_statuses(self) -> frozenset[int]:
        """Whole-request statuses that mean "something in this batch is bad": split to find it."""
        ...

    def request_path(self, base_path: str, gateway_id: str) -> str: ...

    def unsendable_reason(self, record: PendingRecord) -> str | None:
        """Why this record can never be sent by this profile (dead letter), or None."""
        ...

    def encode(self, records: Sequence[PendingRecord], sent_at: str) -> PreparedRequest:
        """Raises :class:`BatchTooLargeError` when the records do not fit one request."""
        ...

    def parse_answer(self, answer: HttpResponse, request: PreparedRequest) -> tuple[RecordResult, ...]:
        """The per-record results of a 200 answer; raises :class:`PlatformAnswerError` if unusable."""
        ...

    def refusal_reason(self, answer: HttpResponse) -> str:
        """A whole-request refusal as the reason stored with a dead letter."""
        ...


def reason_from(answer: HttpResponse) -> str:
    text = answer.body.decode("utf-8", errors="replace").strip()
    return f"HTTP {answer.status}: {text}"[:MAX_REASON_CHARS] if text else f"HTTP {answer.status}"


class V1Encoder:
    """Platform Upload API v1: the stored record texts spliced into ``{"sent_at", "records"}``."""

    content_type = "application/json; charset=utf-8"
    accept = "application/json"
    split_statuses = frozenset({400, 413})

    def request_path(self, base_path: str, gateway_id: str) -> str:
        return base_path.rstrip("/") + f"/v1/gateways/{gateway_id}/records"

    def unsendable_reason(self, record: PendingRecord) -> str | None:
        # Certain without asking the platform: it cannot be spliced into any request.
        return None if is_object_text(record.body_json) else "stored record text is not a JSON object"

    def encode(self, records: Sequence[PendingRecord], sent_at: str) -> PreparedRequest:
        body = build_body([record.body_json for record in records], sent_at)
        return PreparedRequest(body=body, entry_owners=tuple(record.record_id for record in records))

    def parse_answer(self, answer: HttpResponse, request: PreparedRequest) -> tuple[RecordResult, ...]:
        return parse_results(answer.body, frozenset(request.entry_owners), answer.headers.get("content-type"))

    def refusal_reason(self, answer: HttpResponse) -> str:
        return reason_from(answer)
