"""``config status``: the fleet's retained reports, as a table or as JSON.

Collecting is I/O (a :class:`FleetLink` and a clock); everything after it is pure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetctl.errors import BadReport
from fleetctl.link import FleetLink
from fleetctl.reports import Report, parse_report
from fleetctl.topics import REPORTED, Message, fleet_filter, hub_of


@dataclass(frozen=True, slots=True)
class HubStatus:
    hub: str
    report: Report | None
    """None: no report (the hub never had a document, or is not on this broker)."""
    problem: str | None = None
    """Why the report could not be read."""


def collect_reports(link: FleetLink, root: str, clock: Callable[[], float], listen_s: float,
                    hubs: Sequence[str] | None = None) -> list[Message]:
    """The reports the broker sends for ``listen_s`` after subscribing (its retained ones first),
    or until every hub of ``hubs`` has reported."""
    link.subscribe(fleet_filter(root, REPORTED))
    deadline = clock() + listen_s
    waiting = set(hubs) if hubs is not None else None
    messages: list[Message] = []
    while (remaining := deadline - clock()) > 0 and waiting != set():
        for message in link.receive(remaining):
            messages.append(message)
            if waiting is not None and message.payload:
                waiting.discard(hub_of(message.topic, root, REPORTED) or "")
    return messages


def fleet_status(messages: Iterable[Message], root: str, hubs: Sequence[str] | None = None) -> list[HubStatus]:
    """Each hub's latest report, sorted by hub; with ``hubs``, exactly those (absent ones without a report)."""
    latest: dict[str, HubStatus] = {}
    for message in messages:
        hub = hub_of(message.topic, root, REPORTED)
        if hub is None:
            continue
        if not message.payload:  # a cleared report: the hub has none now
            latest.pop(hub, None)
            continue
        try:
            latest[hub] = HubStatus(hub, parse_report(message.payload))
        except BadReport as exc:
            latest[hub] = HubStatus(hub, None, problem=f"unreadable report: {exc}")
    names = sorted(latest) if hubs is None else sorted(hubs)
    return [latest.get(hub, HubStatus(hub, None)) for hub in names]


def age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "-"
    seconds = int((now - since).total_seconds())
    if seconds < 0:
        return "future"  # the hub's clock is ahead: worth seeing, not worth hiding
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def errors_summary(status: HubStatus, width: int = 60) -> str:
    if status.problem is not None:
        return status.problem[:width]
    if status.report is None or not status.report.errors:
        return ""
    first = status.report.errors[0]
    text = f"{first.path}: {first.message}" if first.path else first.message
    more = len(status.report.errors) - 1
    suffix = f" (+{more} more)" if more else ""
    if len(text) + len(suffix) > width:
        text = text[: max(0, width - len(suffix) - 3)] + "..."
    return text + suffix


COLUMNS = ("HUB", "APPLIED", "STATUS", "REPORT", "AGE", "ERRORS")


def table_rows(statuses: Sequence[HubStatus], now: datetime) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for status in statuses:
        report = status.report
        if report is None:
            rows.append((status.hub, "-", "unreadable" if status.problem else "no report", "-", "-",
                         errors_summary(status)))
            continue
        rows.append((status.hub, _number(report.applied_version), report.status.value, _number(report.version),
                     age(report.applied_at, now), errors_summary(status)))
    return rows


def render_table(statuses: Sequence[HubStatus], now: datetime) -> str:
    rows = [COLUMNS, *table_rows(statuses, now)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([*lines, summary_line(statuses)])


def summary_line(statuses: Sequence[HubStatus]) -> str:
    by_status: dict[str, int] = {}
    by_version: dict[str, int] = {}
    for status in statuses:
        key = status.report.status.value if status.report else ("unreadable" if status.problem else "no report")
        by_status[key] = by_status.get(key, 0) + 1
        if status.report is not None:
            applied = status.report.applied_version
            version = "none" if applied is None else f"v{applied}"
            by_version[version] = by_version.get(version, 0) + 1
    statuses_text = ", ".join(f"{count} {name}" for name, count in sorted(by_status.items()))
    versions_text = ", ".join(f"{version}: {count}" for version, count in
                              sorted(by_version.items(), key=lambda item: (-item[1], item[0])))
    return f"{len(statuses)} hubs: {statuses_text or 'none'}" + (f"; applied {versions_text}" if versions_text else "")


def status_json(statuses: Sequence[HubStatus], now: datetime) -> list[dict[str, Any]]:
    out = []
    for status in statuses:
        report = status.report
        entry: dict[str, Any] = {"hub": status.hub, "reported": report is not None}
        if status.problem is not None:
            entry["problem"] = status.problem
        if report is not None:
            entry.update({
                "version": report.version, "status": report.status.value,
                "applied_version": report.applied_version,
                "applied_at": report.applied_at.isoformat() if report.applied_at else None,
                "age_s": int((now - report.applied_at).total_seconds()) if report.applied_at else None,
                "errors": [{"path": e.path, "message": e.message} for e in report.errors],
            })
        out.append(entry)
    return out


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)
