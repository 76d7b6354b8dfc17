"""``yiyang report``: the month read from a real outbox, summarised (pure), and drawn as PNG, SVG and PDF.

The pictures themselves were looked at when the report was made; here they are checked for what a
machine can check: the format, the page size, no glyph missing (matplotlib warns, and warnings fail
the tests), and a resident without readings getting the page that says so.
"""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from month_of_readings import write_month

from gateway.cli import main
from gateway.config import parse_config
from gateway.config.schema import Thresholds
from gateway.errors import ReportError
from gateway.report import make_report
from gateway.report import plot as report_plot
from gateway.report.data import AlertMark, build_report, read_rows

END = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CONFIG = """
[gateway]
id = "gw-0001"
data_dir = "{data}"
[platform]
url = "http://127.0.0.1:8480"
secret_file = "/etc/yiyang/platform.secret"
[[residents]]
id = "r-0001"
[residents.thresholds]
systolic_crisis_mmhg = 170
[[residents]]
id = "r-0002"
[[devices]]
id = "bp-bedroom"
driver = "ble-bps"
address = "C4:7C:8D:6A:11:02"
resident = "r-0001"
expect_reading_every_h = 26
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    write_month(tmp_path / "data" / "outbox.sqlite", "r-0001", END)
    write_month(tmp_path / "data" / "outbox.sqlite", "r-0003", END)  # another resident's month: not shown
    path = tmp_path / "gateway.toml"
    path.write_text(CONFIG.format(data=tmp_path / "data"), encoding="utf-8")
    return path


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_the_month_is_read_from_the_outbox_for_one_resident_and_summarised(config_file: Path) -> None:
    cfg = parse_config(config_file.read_text(), "gateway.toml")
    rows = read_rows(config_file.parent / "data" / "outbox.sqlite", END - timedelta(days=30))
    data = build_report(rows, resident_id="r-0001", start=END - timedelta(days=30), end=END,
                        thresholds=cfg.thresholds_for("r-0001"), scheduled=True)
    assert (len(data.blood_pressure), len(data.glucose)) == (55, 30)  # twice a day, less the cuff's two days off
    assert max(p.systolic for p in data.blood_pressure) == 186
    assert min(p.mmol_l for p in data.glucose) == 3.4
    assert [(a.kind, a.severity) for a in data.alerts] == [  # raised only: their acknowledgements are not counted
        ("hypertensive_crisis", "urgent"), ("measurement_missed", "warning"), ("measurement_missed", "warning"),
        ("hypoglycaemia", "urgent")]
    assert data.missed == 2
    assert data.thresholds.systolic_crisis_mmhg == 170  # the resident's own
    assert all(END - timedelta(days=30) <= p.at < END for p in data.blood_pressure)


def test_rows_that_are_not_the_residents_or_not_records_are_skipped() -> None:
    at = "2026-11-20T08:00:00.000+08:00"
    rows = [
        ("blood_glucose", json.dumps({"resident_id": "r-1", "measured_at": at, "values": {"value": 5.5}})),
        ("blood_glucose", json.dumps({"resident_id": "r-2", "measured_at": at, "values": {"value": 9.9}})),
        ("blood_glucose", json.dumps({"resident_id": "r-1", "measured_at": "2026-01-01T00:00:00+08:00",
                                      "values": {"value": 1.0}})),  # before the period
        ("blood_glucose", "not json"),
        ("blood_pressure", json.dumps({"resident_id": "r-1", "measured_at": at, "values": {"systolic": "high"}})),
        ("alert", json.dumps({"resident_id": "r-1", "measured_at": at,
                              "values": {"state": "resolved", "kind": "fall", "severity": "emergency"}})),
        ("alert", json.dumps({"resident_id": "r-1", "measured_at": at,
                              "values": {"state": "raised", "kind": "fall", "severity": "emergency"}})),
    ]
    data = build_report(rows, resident_id="r-1", start=END - timedelta(days=30), end=END, thresholds=Thresholds(),
                        scheduled=False)
    assert [p.mmol_l for p in data.glucose] == [5.5]
    assert data.blood_pressure == ()
    assert data.alerts == (AlertMark(datetime.fromisoformat(at), "fall", "emergency"),)
    assert data.missed is None  # no schedule: "no measurement missed" would be a claim the hub cannot make


@pytest.mark.parametrize(("name", "magic"), [("month.png", b"\x89PNG"), ("month.svg", b"<?xml"),
                                             ("month.pdf", b"%PDF")])
def test_the_report_is_drawn_in_the_format_of_its_extension(config_file: Path, tmp_path: Path, name: str,
                                                            magic: bytes) -> None:
    cfg = parse_config(config_file.read_text(), "gateway.toml")
    out = tmp_path / name
    data = make_report(cfg, config_file.parent / "data" / "outbox.sqlite", "r-0001", 30, out, now=END)
    assert data.has_readings
    assert out.read_bytes().startswith(magic)
    if name.endswith(".png"):
        assert png_size(out) == (1753, 1240)  # A4 landscape at 150 dpi


def test_yiyang_report_for_a_resident_with_no_readings_says_so(config_file: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "none.png"
    assert main(["report", "--config", str(config_file), "--resident", "r-0002", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "0 blood pressure and 0 glucose readings" in said and "no readings: the picture says so" in said
    assert png_size(out) == (1753, 1240)


@pytest.mark.parametrize(("args", "complaint"), [
    (["--resident", "r-0009", "--out", "x.png"], "no resident 'r-0009'"),
    (["--resident", "r-0001", "--out", "x.jpg"], "name the file .png, .svg or .pdf"),
    (["--resident", "r-0001", "--out", "x.png", "--days", "0"], "give 1 to 365 days"),
])
def test_yiyang_report_refuses_what_it_cannot_draw(config_file: Path, args: list[str], complaint: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--config", str(config_file), *args]) == 1
    assert complaint in capsys.readouterr().err


def test_without_a_chinese_font_the_report_is_refused_not_drawn_with_empty_boxes(
        config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_plot, "CJK_FAMILIES", ("No Such Font",))
    cfg = parse_config(config_file.read_text(), "gateway.toml")
    with pytest.raises(ReportError, match="fonts-noto-cjk"):
        make_report(cfg, config_file.parent / "data" / "outbox.sqlite", "r-0001", 30, tmp_path / "x.png", now=END)
    assert not (tmp_path / "x.png").exists()
