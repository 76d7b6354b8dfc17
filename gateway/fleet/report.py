"""What the hub answers on ``config/reported`` (pure): the outcome of a document and what now runs.

``{"version", "status": "applied" | "rejected" | "rolled_back", "errors": [{"path", "message"}],
"applied_version", "applied_at", "effective": {...}}``. ``effective`` is the running configuration in
the file's own shape with the paths of secret files (never their contents) and with the values
that are themselves secret or personal masked (:data:`MASKED`). The report is retained by the broker
and kept in the fleet state, so the fleet sees it after any reconnect of either side.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.config import GatewayConfig
from gateway.config.check import render_effective

WHOLE_DOCUMENT = "(document)"
"""The path of an error about the payload as a whole (its size, its JSON)."""
HUB = "(hub)"
"""The path of an error on the hub's side (a health check, a restart, a disk that refused the state)."""


@dataclass(frozen=True, slots=True)
class DocumentError:
    """One reason a document was refused or rolled back: a key path (``devices[1].port``) and what
    is wrong with what to do, in the words of ``yiyang config check``."""

    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class ReportStatus(StrEnum):
    APPLIED = "applied"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"


@dataclass(frozen=True, slots=True)
class Report:
    version: int | None
    """The document's version; None when the document never proved to be the fleet's for this hub
    (unsigned, forged, another hub's, no version)."""
    status: ReportStatus
    errors: tuple[DocumentError, ...]
    applied_version: int | None
    applied_at: datetime | None
    effective: Mapping[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status.value,
            "errors": [error.as_json() for error in self.errors],
            "applied_version": self.applied_version,
            "applied_at": self.applied_at.isoformat() if self.applied_at is not None else None,
            "effective": self.effective,
        }


def _mask_all(value: object) -> object:
    return "********" if value else value


def _mask_phone(value: object) -> object:
    # The last four digits let the operator tell contacts apart and check a number; the rest is
    # personal information that has no business in a retained message (PIPL).
    if not isinstance(value, str) or len(value) <= 4:
        return _mask_all(value)
    return "*" * (len(value) - 4) + value[-4:]


MASKED: Mapping[tuple[str, str], Callable[[object], object]] = {
    ("devices", "bind_key"): _mask_all,  # a BTHome key decrypts the button's advertisements
    ("contacts", "phone"): _mask_phone,
}
"""(array of tables, key) -> how its value is shown in a report; secret *files* are shown by path."""


def effective_view(config: GatewayConfig) -> dict[str, Any]:
    """The running configuration as reported: ``render_effective`` with :data:`MASKED` applied."""
    view = render_effective(config)
    for (array, key), mask in MASKED.items():
        view[array] = [{**entry, key: mask(entry[key])} for entry in view[array]]
    return view


def report_from_json(data: object) -> Report:
    """A report as :meth:`Report.as_json` wrote it; ValueError when it is not one."""
    if not isinstance(data, Mapping):
        raise ValueError("a report must be an object")
    errors = data.get("errors")
    effective = data.get("effective")
    if not isinstance(errors, list) or not isinstance(effective, Mapping):
        raise ValueError("a report needs errors (array) and effective (object)")
    applied_at = data.get("applied_at")
    return Report(
        version=optional_version(data.get("version")),
        status=ReportStatus(str(data.get("status"))),
        errors=tuple(_error_from_json(error) for error in errors),
        applied_version=optional_version(data.get("applied_version")),
        applied_at=None if applied_at is None else aware_time(applied_at),
        effective=dict(effective),
    )


def optional_version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"not a version: {value!r}")
    return value


def aware_time(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a time must be an ISO 8601 string")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("a time must carry its UTC offset")
    return parsed


def _error_from_json(data: object) -> DocumentError:
    if not isinstance(data, Mapping) or not isinstance(data.get("path"), str) \
            or not isinstance(data.get("message"), str):
        raise ValueError("an error is {path, message}")
    return DocumentError(data["path"], data["message"])
