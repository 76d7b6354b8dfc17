"""``yiyang report``: a picture of a resident's month for the family doctor.

:mod:`.data` reads and summarises the outbox; :mod:`.plot` draws (matplotlib, loaded only here).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway import __version__
from gateway.config import GatewayConfig
from gateway.errors import ReportError
from gateway.report.data import ReportData, build_report, read_rows

MAX_DAYS = 365
"""Delivered records are kept [storage] delivered_retention_days (at most 365): no more to show."""


def make_report(cfg: GatewayConfig, outbox: Path, resident_id: str, days: int, out: Path, *,
                now: datetime) -> ReportData:
    """Read the resident's last ``days`` days from the outbox and draw them into ``out``; what was drawn."""
    from gateway.report.plot import FORMATS, render  # noqa: PLC0415  (matplotlib: this command only)

    if out.suffix.lower() not in FORMATS:
        raise ReportError(f"{out}: the report is written as PNG, SVG or PDF; name the file .png, .svg or .pdf")
    if not 1 <= days <= MAX_DAYS:
        raise ReportError(f"--days {days}: give 1 to {MAX_DAYS} days")
    residents = [r.id for r in cfg.residents]
    if resident_id not in residents:
        raise ReportError(f"no resident {resident_id!r} in the configuration; have: {', '.join(residents)}")
    start = now - timedelta(days=days)
    scheduled = any(d.resident == resident_id and d.expect_reading_every_h for d in cfg.devices)
    data = build_report(read_rows(outbox, start), resident_id=resident_id, start=start, end=now,
                        thresholds=cfg.thresholds_for(resident_id), scheduled=scheduled)
    render(data, out, ZoneInfo(cfg.gateway.timezone), generated_at=now, version=__version__)
    return data
