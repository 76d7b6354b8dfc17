"""What a hub says on ``config/reported``, read defensively. Pure.

A report is the hub's word, but a fleet tool reads thousands of them: each is bounded in size and
depth before it is parsed, and one that cannot be read is :class:`BadReport` for that hub alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from fleetctl.errors import BadReport
from gateway.errors import InboundError
from gateway.inbound import excerpt, parse_json_bounded
from gateway.mqtt_policy import MAX_DOCUMENT_BYTES

MAX_REPORT_BYTES = 2 * MAX_DOCUMENT_BYTES
"""A report carries the hub's whole running configuration (``effective``): as big as the largest
document, with room to spare."""
MAX_REPORT_DEPTH = 32
"""gateway.toml nests a few levels (devices, thresholds); the report adds two."""
MAX_ERRORS = 50
"""Errors kept per report: enough to fix a document, not enough to flood a terminal or the state file."""
MAX_TEXT = 300
"""Characters kept of an error's path or message."""


class ReportStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class ReportError:
    path: str
    """Where in the document, e.g. ``config.mqtt.keepalive_s`` (as the hub names it)."""
    message: str


@dataclass(frozen=True, slots=True)
class Report:
    version: int | None
    """The document this report is about; None when the hub could not read one."""
    status: ReportStatus
    errors: tuple[ReportError, ...] = ()
    applied_version: int | None = None
    """The version the hub runs now (after a rejection or rollback, the previous one)."""
    applied_at: datetime | None = None


def parse_report(payload: bytes) -> Report:
    try:
        data = parse_json_bounded(payload, max_bytes=MAX_REPORT_BYTES, max_depth=MAX_REPORT_DEPTH)
    except InboundError as exc:
        raise BadReport(str(exc)) from None
    if not isinstance(data, dict):
        raise BadReport("not a JSON object")
    try:
        status = ReportStatus(str(data.get("status")))
    except ValueError:
        raise BadReport(f"status {excerpt(str(data.get('status')), 40)!r} is none of "
                        f"{', '.join(s.value for s in ReportStatus)}") from None
    return Report(
        version=_version(data, "version"),
        status=status,
        errors=_errors(data.get("errors")),
        applied_version=_version(data, "applied_version"),
        applied_at=_time(data.get("applied_at")),
    )


def _version(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadReport(f"{name} is not a version number")
    return value


def _errors(value: object) -> tuple[ReportError, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadReport("errors is not a list")
    errors = []
    for item in value[:MAX_ERRORS]:
        # An error the hub wrote oddly is still worth showing to the operator, in whatever form.
        if isinstance(item, dict):
            errors.append(ReportError(_text(item.get("path", "")), _text(item.get("message", ""))))
        else:
            errors.append(ReportError("", _text(item)))
    if len(value) > MAX_ERRORS:
        errors.append(ReportError("", f"... and {len(value) - MAX_ERRORS} more"))
    return tuple(errors)


def _text(value: object) -> str:
    return excerpt(value if isinstance(value, str) else str(value), MAX_TEXT)


def _time(value: object) -> datetime | None:
    """The hub's ISO 8601 time with its offset; None when absent or unreadable (it only feeds an age)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
