"""Reading the hubs' config/reported (scripts/fleetctl/reports.py): the contract's payloads, and hostile ones."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from fleetctl.errors import BadReport
from fleetctl.reports import MAX_ERRORS, Report, ReportError, ReportStatus, parse_report

CST = timezone(timedelta(hours=8))


def test_an_applied_report_as_the_contract_shows_it() -> None:
    payload = json.dumps({"version": 42, "status": "applied", "errors": [], "applied_version": 42,
                          "applied_at": "2026-11-22T09:00:05+08:00", "effective": {"mqtt": {"keepalive_s": 60}}})
    assert parse_report(payload.encode()) == Report(
        version=42, status=ReportStatus.APPLIED, applied_version=42,
        applied_at=datetime(2026, 11, 22, 9, 0, 5, tzinfo=CST))


def test_a_rejection_keeps_every_error_with_its_path() -> None:
    payload = {"version": 43, "status": "rejected", "applied_version": 42, "applied_at": "2026-11-22T09:00:05+08:00",
               "errors": [{"path": "config.devices[0].port", "message": "must be an absolute device path"},
                          {"path": "version", "message": "lower than the applied 44"}]}
    report = parse_report(json.dumps(payload).encode())
    assert report.status is ReportStatus.REJECTED
    assert report.errors == (ReportError("config.devices[0].port", "must be an absolute device path"),
                             ReportError("version", "lower than the applied 44"))


def test_a_hub_that_could_not_read_the_document_reports_no_version() -> None:
    report = parse_report(b'{"version": null, "status": "rejected", "errors": [{"path": "", "message": "not JSON"}]}')
    assert (report.version, report.applied_version, report.applied_at) == (None, None, None)


def test_odd_but_harmless_fields_are_shown_as_they_are() -> None:
    report = parse_report(json.dumps({"version": 1, "status": "rolled_back", "applied_at": "yesterday",
                                      "errors": ["health check: broker unreachable", {"message": 5}]}).encode())
    assert report.applied_at is None
    assert report.errors == (ReportError("", "health check: broker unreachable"), ReportError("", "5"))


def test_a_flood_of_errors_is_cut() -> None:
    errors = [{"path": f"p{i}", "message": "m" * 900} for i in range(500)]
    report = parse_report(json.dumps({"version": 1, "status": "rejected", "errors": errors}).encode())
    assert len(report.errors) == MAX_ERRORS + 1
    assert report.errors[-1].message == "... and 450 more"
    assert len(report.errors[0].message) < 400


@pytest.mark.parametrize(("payload", "why"), [
    (b"\xff", "not UTF-8"),
    (b"[" * 5000 + b"]" * 5000, "nested deeper"),
    (b"[1]", "not a JSON object"),
    (b'{"version": 1, "status": "done"}', "status 'done' is none of"),
    (b'{"version": "42", "status": "applied"}', "version is not a version number"),
    (b'{"version": true, "status": "applied"}', "version is not a version number"),
    (b'{"version": 1, "status": "applied", "errors": "bad"}', "errors is not a list"),
    (b"x" * (1024 * 1024), "too large"),
])
def test_unreadable_reports_are_one_typed_error(payload: bytes, why: str) -> None:
    with pytest.raises(BadReport, match=why):
        parse_report(payload)
