"""A continuous oximeter's window summaries reach the sustained-SpO2 rule as one stream.

The real window (drivers.ble.streams.SpO2Window) over a 1 Hz stream, its summaries turned into
readings as every continuous oximeter session does, and the real monitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drivers.ble.streams import SpO2Window, spo2_summary_reading
from drivers.model import DeviceInfo, HubTime, ReadingFlag
from gateway.alerts.model import AlertKind, Severity
from gateway.config import Thresholds
from gateway.detect.vital_state import VitalFinding, VitalsMonitor

T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
OXIMETER = DeviceInfo("pc60f", "ble", "viatom-oximeter")


@dataclass(frozen=True)
class Sample:
    spo2_percent: float | None
    pulse_rate_bpm: float | None = 70.0
    perfusion_index_percent: float | None = None
    flags: frozenset[ReadingFlag] = frozenset()


def findings_per_second(spo2_by_second: list[float | None]) -> dict[int, list[VitalFinding]]:
    window, monitor = SpO2Window(10.0), VitalsMonitor(lambda _resident: Thresholds())
    found: dict[int, list[VitalFinding]] = {}
    for second, spo2 in enumerate(spo2_by_second):
        received = HubTime(T0 + timedelta(seconds=second), float(second), True)
        summary = window.add(Sample(spo2), received)
        if summary is not None:
            reading = spo2_summary_reading(summary, OXIMETER, "r-0001")
            found[second] = monitor.observe(reading, f"rec-{second}")
    return found


def test_a_night_below_90_alarms_once_as_sustained_and_never_escalates() -> None:
    found = findings_per_second([88.0] * 180)
    alarms = {second: f for second, f in found.items() if f}
    assert list(alarms) == [43]  # the fourth summary: 30 s after the first low one, 44 samples in
    [finding] = alarms[43]
    assert (finding.kind, finding.severity) == (AlertKind.SPO2_LOW, Severity.URGENT)
    assert finding.threshold == "spo2_low_percent/spo2_sustained_s"
    assert finding.record_ids == ("rec-43", "rec-10")


def test_a_finger_out_for_a_whole_window_starts_a_new_stream() -> None:
    # 25 s low, 22 s without a value (two windows with no summary), then low again.
    found = findings_per_second([88.0] * 25 + [None] * 22 + [88.0] * 20)
    kinds = [(second, [(f.kind, f.severity, f.threshold) for f in findings]) for second, findings in found.items()]
    # Before the gap one stream (10, 21, 32 s), too short to be sustained. After it the first
    # summary counts as a check again, and a low check after the stream's low first one is two in a row.
    assert kinds == [(10, []), (21, []), (32, []), (54, [(AlertKind.SPO2_LOW, Severity.URGENT, "spo2_low_percent")]),
                     (65, [])]
