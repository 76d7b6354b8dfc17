"""The family doctor's picture of a month: blood pressure and glucose with the resident's threshold bands.

Pure drawing of :class:`gateway.report.data.ReportData` with matplotlib's object API (no pyplot, no
global state, no display); the format follows the file's extension (PNG, SVG or PDF). Titles are in
Chinese and English, so a CJK font must be installed (Debian's ``fonts-noto-cjk``, which
``scripts/setup.sh`` installs); without one the report is refused rather than drawn with empty boxes.
A resident with no readings in the period gets a page that says so, not empty axes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from matplotlib import font_manager, rc_context
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, DateFormatter, DayLocator
from matplotlib.figure import Figure

from gateway.errors import ReportError
from gateway.report.data import AlertMark, ReportData

FORMATS = (".png", ".svg", ".pdf")
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Micro Hei",
                "WenQuanYi Zen Hei", "Droid Sans Fallback")
"""Fonts with the Chinese glyphs, best first: fonts-noto-cjk's, then others Debian packages."""
PAGE_INCHES = (11.69, 8.27)
"""A4 landscape: printed for the doctor's file as often as it is looked at on a phone."""
DPI = 150

SYSTOLIC, DIASTOLIC, GLUCOSE = "#c0392b", "#2e6da4", "#6a3d9a"
DANGER, CAUTION = "#f4b6b0", "#fde2b8"
SEVERITY_COLOURS = {"emergency": "#b2182b", "urgent": "#e08214", "warning": "#8c8c8c"}
GAP_DAYS = 1.5
"""Readings further apart than this are not joined by a line (a daily measurement skipped a day)."""
MAX_DAILY_TICK_DAYS = 62
SEVERITY_WORDS = {"emergency": "危急 emergency", "urgent": "紧急 urgent", "warning": "提醒 warning"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""matplotlib's date epoch (``date.epoch``, set below so the two cannot differ): x is days since it."""


def day_number(at: datetime) -> float:
    """A time as matplotlib's date axis counts it (what ``matplotlib.dates.date2num`` gives, typed)."""
    return (at - EPOCH).total_seconds() / 86400.0


def day_numbers(times: Sequence[datetime]) -> list[float]:
    return [day_number(at) for at in times]


def cjk_family() -> str:
    """The first installed font family with Chinese glyphs; ReportError when there is none."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    raise ReportError("no Chinese font is installed for the report's titles: apt-get install fonts-noto-cjk "
                      "(scripts/setup.sh installs it)")


def render(data: ReportData, out: Path, tz: tzinfo, *, generated_at: datetime, version: str) -> None:
    """Draw the report into ``out``; its extension (.png, .svg, .pdf) says the format."""
    if out.suffix.lower() not in FORMATS:
        raise ReportError(f"{out}: the report is written as PNG, SVG or PDF; name the file .png, .svg or .pdf")
    # PDF fonts as Type 3 (matplotlib's default): Noto CJK's outlines are CFF, and embedding them as
    # TrueType (fonttype 42) makes a file that poppler and some printers complain about.
    with rc_context({"font.family": [cjk_family(), "DejaVu Sans"], "axes.unicode_minus": False,
                     "svg.fonttype": "path", "pdf.fonttype": 3, "date.epoch": "1970-01-01T00:00:00"}):
        figure = Figure(figsize=PAGE_INCHES, dpi=DPI, layout="constrained")
        grid = figure.add_gridspec(4, 1, height_ratios=[0.12, 1, 1, 0.03])
        _header(figure.add_subplot(grid[0]), data, tz)
        if data.has_readings:
            pressure = figure.add_subplot(grid[1])
            _charts(pressure, figure.add_subplot(grid[2], sharex=pressure), data, tz)
        else:
            _no_data(figure.add_subplot(grid[1:3]), data)
        footer = figure.add_subplot(grid[3])
        footer.set_axis_off()
        made = generated_at.astimezone(tz)
        footer.text(1.0, 0.0, f"yiyang-gateway {version} · 生成于 generated {made:%Y-%m-%d %H:%M} · "
                    "阈值为该住户的配置 thresholds as configured for this resident", ha="right", va="bottom",
                    fontsize=7, color="#666666", transform=footer.transAxes)
        try:
            figure.savefig(out, format=out.suffix.lower().lstrip("."))
        except OSError as exc:
            raise ReportError(f"cannot write {out}: {exc.strerror}") from exc


def _header(axes: Axes, data: ReportData, tz: tzinfo) -> None:
    axes.set_axis_off()
    start, end = data.start.astimezone(tz), data.end.astimezone(tz)
    # The title as the figure's, which constrained layout makes room for; the figures below it.
    figure = axes.get_figure()
    assert isinstance(figure, Figure)
    figure.suptitle(f"住户 {data.resident_id} 近 {data.days} 天血压与血糖\n"
                    f"Resident {data.resident_id}: blood pressure and glucose, last {data.days} days",
                    fontsize=15, fontweight="bold")
    missed_zh = "未设测量计划" if data.missed is None else f"漏测 {data.missed} 次"
    missed_en = "no measurement schedule set" if data.missed is None else f"{data.missed} missed measurements"
    axes.text(0.5, 0.5, f"{start:%Y-%m-%d} – {end:%Y-%m-%d}  ·  血压 {len(data.blood_pressure)} 次  ·  "
              f"血糖 {len(data.glucose)} 次  ·  {missed_zh}  ·  警报 {len(data.alerts)} 次\n"
              f"{len(data.blood_pressure)} blood pressure and {len(data.glucose)} glucose readings  ·  "
              f"{missed_en}  ·  {len(data.alerts)} alerts", ha="center", va="center", fontsize=10,
              transform=axes.transAxes)


def _no_data(axes: Axes, data: ReportData) -> None:
    axes.set_axis_off()
    axes.text(0.5, 0.5, f"此期间住户 {data.resident_id} 没有血压或血糖记录\n"
                f"No blood pressure or glucose readings for resident {data.resident_id} in these {data.days} days\n\n"
                "请检查设备是否在用、是否已配对，或查看 `yiyang status`\n"
                "Check that the devices are in use and paired, or see `yiyang status`",
                ha="center", va="center", fontsize=15, linespacing=1.8, transform=axes.transAxes,
                bbox={"boxstyle": "round,pad=1.2", "facecolor": "#f7f7f7", "edgecolor": "#999999"})


def _charts(pressure: Axes, glucose: Axes, data: ReportData, tz: tzinfo) -> None:
    _pressure(pressure, data)
    _glucose(glucose, data)
    for axes in (pressure, glucose):
        axes.set_xlim(day_number(data.start), day_number(data.end))
        axes.grid(True, axis="y", color="#e5e5e5")
        if data.days <= MAX_DAILY_TICK_DAYS:
            # A tick every day or two: AutoDateLocator adds month starts that crowd the neighbouring day.
            axes.xaxis.set_major_locator(DayLocator(interval=max(1, round(data.days / 15)), tz=tz))  # type: ignore[no-untyped-call]
        else:
            axes.xaxis.set_major_locator(AutoDateLocator(tz=tz, maxticks=16))  # type: ignore[no-untyped-call]
        axes.xaxis.set_major_formatter(DateFormatter("%m-%d", tz=tz))  # type: ignore[no-untyped-call]
        _alerts(axes, data.alerts)
        # Above the frame, right of the title: the bands and lines are explained without hiding a reading.
        axes.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, ncols=4, frameon=False)


def _pressure(axes: Axes, data: ReportData) -> None:
    t = data.thresholds
    axes.set_title("血压 Blood pressure (mmHg)", loc="left", fontsize=12)
    top = max([t.systolic_crisis_mmhg + 30, *(p.systolic + 15 for p in data.blood_pressure)])
    axes.set_ylim(40, top)
    axes.axhspan(t.systolic_crisis_mmhg, top, color=DANGER, alpha=0.6, lw=0,
                 label=f"收缩压危象 systolic ≥ {t.systolic_crisis_mmhg}")
    axes.axhline(t.diastolic_crisis_mmhg, color="#b2182b", lw=1, ls="--",
                 label=f"舒张压危象 diastolic ≥ {t.diastolic_crisis_mmhg}")
    axes.axhline(t.diastolic_grade3_mmhg, color="#e08214", lw=1, ls="--",
                 label=f"舒张压 3 级 diastolic ≥ {t.diastolic_grade3_mmhg}")
    # A line, not a band: a band under 90 would seem to say every diastolic value is low.
    axes.axhline(t.systolic_low_mmhg, color="#4a90c8", lw=1, ls="--", label=f"低血压 systolic < {t.systolic_low_mmhg}")
    if not data.blood_pressure:
        _empty(axes, "此期间没有血压记录 No blood pressure readings in this period")
        return
    times = [p.at for p in data.blood_pressure]
    axes.plot(*_broken(times, [p.systolic for p in data.blood_pressure]), "-o", color=SYSTOLIC, ms=4, lw=1.2,
              label="收缩压 systolic")
    axes.plot(*_broken(times, [p.diastolic for p in data.blood_pressure]), "-s", color=DIASTOLIC, ms=4, lw=1.2,
              label="舒张压 diastolic")


def _glucose(axes: Axes, data: ReportData) -> None:
    t = data.thresholds
    axes.set_title("血糖 Glucose (mmol/L)", loc="left", fontsize=12)
    top = max([t.glucose_severe_hyper_mmol_l + 3, *(p.mmol_l + 2 for p in data.glucose)])
    axes.set_ylim(0, top)
    axes.axhspan(0, t.glucose_level2_hypo_mmol_l, color=DANGER, alpha=0.6, lw=0,
                 label=f"严重低血糖 < {t.glucose_level2_hypo_mmol_l}")
    axes.axhspan(t.glucose_level2_hypo_mmol_l, t.glucose_level1_hypo_mmol_l, color=CAUTION, alpha=0.8, lw=0,
                 label=f"低血糖 < {t.glucose_level1_hypo_mmol_l}")
    axes.axhspan(t.glucose_high_mmol_l, t.glucose_severe_hyper_mmol_l, color=CAUTION, alpha=0.8, lw=0,
                 label=f"高血糖 > {t.glucose_high_mmol_l}")
    axes.axhspan(t.glucose_severe_hyper_mmol_l, top, color=DANGER, alpha=0.6, lw=0,
                 label=f"严重高血糖 ≥ {t.glucose_severe_hyper_mmol_l}")
    if not data.glucose:
        _empty(axes, "此期间没有血糖记录 No glucose readings in this period")
        return
    axes.plot(*_broken([p.at for p in data.glucose], [p.mmol_l for p in data.glucose]), "-D", color=GLUCOSE,
              ms=4, lw=1.2, label="血糖 glucose")


def _alerts(axes: Axes, alerts: Sequence[AlertMark]) -> None:
    labelled: set[str] = set()
    for alert in alerts:
        colour = SEVERITY_COLOURS.get(alert.severity, "#8c8c8c")
        label = None
        if alert.severity not in labelled:
            labelled.add(alert.severity)
            label = f"警报 alert: {SEVERITY_WORDS.get(alert.severity, alert.severity)}"
        axes.axvline(day_number(alert.at), color=colour, lw=1.0, ls=":", alpha=0.9, label=label)
        axes.plot([day_number(alert.at)], [1.0], marker="v", ms=7, color=colour, transform=axes.get_xaxis_transform(),
                  clip_on=False)


def _broken(times: Sequence[datetime], values: Sequence[float]) -> tuple[list[float], list[float]]:
    """x and y with a gap (NaN) wherever readings stopped for more than :data:`GAP_DAYS`: no line drawn
    across days nobody measured, which would look like readings."""
    xs, ys = [], []
    for index, (at, value) in enumerate(zip(times, values, strict=True)):
        if index and (at - times[index - 1]).total_seconds() > GAP_DAYS * 86400:
            xs.append(math.nan)
            ys.append(math.nan)
        xs.append(day_number(at))
        ys.append(value)
    return xs, ys


def _empty(axes: Axes, message: str) -> None:
    axes.text(0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", fontsize=12, color="#555555",
              bbox={"boxstyle": "round,pad=0.6", "facecolor": "white", "edgecolor": "#bbbbbb"})
