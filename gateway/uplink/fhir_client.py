"""The FHIR R4 uplink profile's requests and answers (the :class:`BatchEncoder` for FHIR), pure.

The service does the rest as for v1 (signing with the same pluggable signer,
retries, 400/413 splitting, Retry-After, the 401 clock correction). What is
FHIR's own:

- the body is a transaction ``Bundle`` POSTed to the FHIR base itself;
- a 200 answer is a ``transaction-response`` Bundle whose entries answer the
  request's entries *in order*: 201 created, 200 already there (our
  ``ifNoneExist`` matched: a retry after a lost answer), 4xx refused with an
  ``OperationOutcome`` saying why;
- a server that refuses the whole transaction for one bad resource answers 422
  (or 400) with an OperationOutcome: split, as for v1, to find the record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from gateway.platform_limits import MAX_RECORDS
from gateway.record import AlertValues
from gateway.store.api import PendingRecord
from gateway.uplink.batch import (
    MAX_REASON_CHARS,
    BatchTooLargeError,
    PlatformAnswerError,
    PreparedRequest,
    RecordResult,
    RecordStatus,
    is_json_content_type,
    reason_from,
)
from gateway.uplink.fhir import FhirMappingError, alert_flag, build_bundle, observation, record_from_text
from gateway.uplink.http import HttpResponse

FHIR_JSON = "application/fhir+json"
FHIR_MAX_BODY_BYTES = 4 * 1024 * 1024
"""A Bundle is about three times the v1 text of the same records; FHIR servers commonly take
several MiB per request. A server with a smaller limit answers 413 and the batch is split."""
TRANSIENT_ENTRY_STATUSES = frozenset({408, 409, 429})
"""Entry answers that say "not now" rather than "never" (a Flag updated concurrently, a busy
server): the record stays pending instead of becoming a dead letter."""
_RESPONSE_BUNDLE_TYPES = frozenset({"transaction-response", "batch-response"})
_STATUS = re.compile(r"\s*(\d{3})(?:\s|$)")


class FhirEncoder:
    """Stored v1 records as FHIR R4 transaction Bundles (reference/platform-api.md, "FHIR R4 profile")."""

    content_type = f"{FHIR_JSON}; charset=utf-8"
    accept = FHIR_JSON
    # 422: the usual FHIR answer when a resource of the transaction fails validation.
    split_statuses = frozenset({400, 413, 422})

    def __init__(self, max_body_bytes: int = FHIR_MAX_BODY_BYTES) -> None:
        self._max_body_bytes = max_body_bytes

    def __repr__(self) -> str:
        return f"FhirEncoder(max_body_bytes={self._max_body_bytes})"

    def request_path(self, base_path: str, gateway_id: str) -> str:
        # A FHIR transaction goes to the base itself; the gateway is named by the signature headers.
        return base_path.rstrip("/") or "/"

    def unsendable_reason(self, record: PendingRecord) -> str | None:
        try:
            stored = record_from_text(record.body_json)
            observation(stored)
            if isinstance(stored.values, AlertValues):
                alert_flag(stored)
        except FhirMappingError as exc:
            return f"FHIR profile: {exc}"[:MAX_REASON_CHARS]
        return None

    def encode(self, records: Sequence[PendingRecord], sent_at: str) -> PreparedRequest:
        if len(records) > MAX_RECORDS:
            raise BatchTooLargeError(f"{len(records)} records in one Bundle; at most {MAX_RECORDS} per request")
        bundle = build_bundle([record_from_text(record.body_json) for record in records])
        body = json.dumps(bundle.document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) > self._max_body_bytes:
            raise BatchTooLargeError(f"Bundle is {len(body)} bytes; at most {self._max_body_bytes} per request")
        return PreparedRequest(body=body, entry_owners=tuple(owner.record_id for owner in bundle.owners))

    def parse_answer(self, answer: HttpResponse, request: PreparedRequest) -> tuple[RecordResult, ...]:
        return parse_transaction_response(answer.body, request.entry_owners, answer.headers.get("content-type"))

    def refusal_reason(self, answer: HttpResponse) -> str:
        try:
            document = json.loads(answer.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return reason_from(answer)
        diagnostics = outcome_text(document)
        return f"HTTP {answer.status}: {diagnostics}"[:MAX_REASON_CHARS] if diagnostics else reason_from(answer)


def outcome_text(outcome: object) -> str | None:
    """What an ``OperationOutcome`` says, its issues' diagnostics (or details) joined; None if none."""
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return None
    texts: list[str] = []
    for issue in outcome.get("issue") or []:
        if not isinstance(issue, dict):
            continue
        details = issue.get("details")
        text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
        if isinstance(text, str) and text:
            texts.append(text)
    return "; ".join(texts) or None


def _entry_status(index: int, entry: object) -> tuple[int, str | None]:
    """The HTTP status of one answer entry and, for a refusal, what its outcome says."""
    response = entry.get("response") if isinstance(entry, dict) else None
    if not isinstance(response, dict) or not isinstance(response.get("status"), str):
        raise PlatformAnswerError(f"entry[{index}] has no response.status")
    match = _STATUS.match(response["status"])
    if match is None:
        raise PlatformAnswerError(f"entry[{index}] response.status {response['status']!r} is not an HTTP status")
    status = int(match.group(1))
    return status, outcome_text(response.get("outcome"))


def _combine(statuses: Sequence[tuple[int, str | None]]) -> tuple[RecordStatus | None, str | None]:
    """One record's result from the answers to its entries (its Observation first)."""
    for status, diagnostics in statuses:
        if 400 <= status < 500 and status not in TRANSIENT_ENTRY_STATUSES:
            reason = f"HTTP {status}: {diagnostics}" if diagnostics else f"HTTP {status}"
            return RecordStatus.REJECTED, reason[:MAX_REASON_CHARS]
    if not all(200 <= status < 300 for status, _ in statuses):
        return None, None   # a server error or "try later" for part of it: the record stays pending
    # 200 to a conditional create: the server already had an Observation with this record id.
    return (RecordStatus.DUPLICATE if statuses[0][0] == 200 else RecordStatus.ACCEPTED), None


def parse_transaction_response(
    body: bytes, entry_owners: Sequence[str], content_type: str | None = None
) -> tuple[RecordResult, ...]:
    """The per-record results of a ``transaction-response`` Bundle.

    Entries answer the request's entries in order, so an answer with a different
    number of entries cannot be matched and raises :class:`PlatformAnswerError`
    (nothing is marked delivered). Records whose entries got a 5xx or a transient
    4xx are left out of the result: they stay pending.
    """
    if not is_json_content_type(content_type):
        raise PlatformAnswerError(f"answer has Content-Type {content_type!r}, not FHIR JSON")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise PlatformAnswerError(f"answer is not JSON: {exc}") from exc
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise PlatformAnswerError("answer is not a FHIR Bundle")
    if document.get("type") not in _RESPONSE_BUNDLE_TYPES:
        raise PlatformAnswerError(f"answer Bundle has type {document.get('type')!r}, not transaction-response")
    entries = document.get("entry") or []
    if not isinstance(entries, list) or len(entries) != len(entry_owners):
        count = len(entries) if isinstance(entries, list) else "no"
        raise PlatformAnswerError(f"answer Bundle has {count} entries for the {len(entry_owners)} sent")
    by_record: dict[str, list[tuple[int, str | None]]] = {}
    for index, (owner, entry) in enumerate(zip(entry_owners, entries, strict=True)):
        by_record.setdefault(owner, []).append(_entry_status(index, entry))
    results = []
    for record_id, statuses in by_record.items():
        status, reason = _combine(statuses)
        if status is not None:
            results.append(RecordResult(record_id=record_id, status=status, reason=reason))
    return tuple(results)
