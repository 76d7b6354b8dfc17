"""``config status`` (scripts/fleetctl/status.py) and the rollout's display (display.py), pure parts."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

from fleet_fakes import report
from fleetctl.display import LOG_EVERY_S, ProgressPrinter, status_line, summary
from fleetctl.documents import DocumentSpec
from fleetctl.engine import Progress, RolloutResult
from fleetctl.plan import plan_waves
from fleetctl.reports import Report, ReportError, ReportStatus
from fleetctl.rollout import Counts, HubRecord, Phase, Policy, confirm_sent, new_rollout, record_reports, send_wave
from fleetctl.status import age, fleet_status, render_table, status_json
from fleetctl.topics import Message

ROOT = "yiyang/v1"
NOW = datetime(2027, 1, 15, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def reported(hub: str, payload: bytes, retained: bool = True) -> Message:
    return Message(f"{ROOT}/{hub}/config/reported", payload, retained)


MESSAGES = [
    reported("gw-0002", report(7)),
    reported("gw-0001", report(8, "rejected", [{"path": "config.mqtt.keepalive_s", "message": "must be at most 600"},
                                               {"path": "config.alerts", "message": "unknown key"}],
                               applied_version=7)),
    reported("gw-0003", b"{broken"),
    reported("gw-0009", b""),  # a cleared report
    Message(f"{ROOT}/gw-0004/status", b'{"state": "online"}', True),
]


def test_one_row_per_hub_with_what_it_runs_and_why_it_refused() -> None:
    table = render_table(fleet_status(MESSAGES, ROOT), NOW).splitlines()
    assert table[0].split() == ["HUB", "APPLIED", "STATUS", "REPORT", "AGE", "ERRORS"]
    assert table[1].split()[:5] == ["gw-0001", "7", "rejected", "8", "2h"]
    assert table[1].endswith("config.mqtt.keepalive_s: must be at most 600 (+1 more)")
    assert table[2].split() == ["gw-0002", "7", "applied", "7", "2h"]
    assert table[3].split()[:3] == ["gw-0003", "-", "unreadable"]
    assert table[4] == "3 hubs: 1 applied, 1 rejected, 1 unreadable; applied v7: 2"


def test_with_a_hubs_file_every_listed_hub_has_a_row_even_without_a_report() -> None:
    statuses = fleet_status(MESSAGES, ROOT, hubs=["gw-0002", "gw-0042"])
    assert [(s.hub, s.report is not None) for s in statuses] == [("gw-0002", True), ("gw-0042", False)]
    assert render_table(statuses, NOW).splitlines()[2].split() == ["gw-0042", "-", "no", "report", "-", "-"]


def test_json_for_tools() -> None:
    [rejected, *_] = status_json(fleet_status(MESSAGES, ROOT), NOW)
    assert rejected == {"hub": "gw-0001", "reported": True, "version": 8, "status": "rejected", "applied_version": 7,
                        "applied_at": "2027-01-15T08:00:00+08:00", "age_s": 7200,
                        "errors": [{"path": "config.mqtt.keepalive_s", "message": "must be at most 600"},
                                   {"path": "config.alerts", "message": "unknown key"}]}
    json.dumps(status_json(fleet_status(MESSAGES, ROOT), NOW))


def test_ages() -> None:
    assert [age(NOW - timedelta(seconds=s), NOW) for s in (5, 61, 7300, 200_000, -30)] == [
        "5s", "1m", "2h", "2d", "future"]
    assert age(None, NOW) == "-"


def progress(**changes: object) -> Progress:
    fields: dict[str, object] = {"version": 8, "waves": 11, "waves_sent": 3, "elapsed_s": 75.0, "halting": False,
                                 "counts": Counts(not_sent=792, waiting=99, applied=108, rejected=1)}
    return Progress(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_live_line() -> None:
    assert status_line(progress()) == ("v8  wave 3/11  applied 108  rejected 1  rolled back 0  no answer 0  "
                                       "waiting 99  not sent 792  1:15")
    assert status_line(progress(halting=True)).endswith("HALTING: no further wave")


def test_on_a_terminal_the_line_is_redrawn_and_failures_printed_above_it() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=True, timeout_s=150)
    failure = HubRecord(Phase.ROLLED_BACK, errors=(ReportError("health.broker", "unreachable after the change"),))
    printer(progress(answered=(("gw-0007", failure), ("gw-0008", HubRecord(Phase.APPLIED)))))
    assert out.getvalue() == ("\r\x1b[K  gw-0007  rolled_back\n      health.broker: unreachable after the change\n"
                              + status_line(progress(answered=())))


def test_without_a_terminal_plain_lines_and_a_count_line_now_and_then() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=False)
    printer(progress(elapsed_s=0.0, sent=("gw-0001",) * 99))
    printer(progress(elapsed_s=1.0))  # nothing new, too soon for a count line
    printer(progress(elapsed_s=LOG_EVERY_S))
    lines = out.getvalue().splitlines()
    assert lines[0] == "wave 3/11: sent to 99 hubs"
    assert len(lines) == 3
    assert "\r" not in out.getvalue()


def test_the_summary_of_a_halted_rollout_says_who_failed_why_and_what_to_do() -> None:
    document = DocumentSpec(version=8, issued_at="2027-01-15T08:00:00+08:00", config={"mqtt": {}})
    state = new_rollout(document, "sha256:x", ROOT, plan_waves(["gw-0001", "gw-0002", "gw-0003"], 2, 100),
                        Policy(halt_after=1))
    state = confirm_sent(send_wave(state, 0.0))
    bad = Report(8, ReportStatus.REJECTED, (ReportError("config.mqtt.keepalive_s", "must be at most 600"),))
    state, _ = record_reports(state, [("gw-0001", bad), ("gw-0002", Report(8, ReportStatus.APPLIED))], 1.0)
    lines = summary(RolloutResult(state))
    assert lines[1] == "HALTED: 1 hubs rejected or rolled back (--halt-after 1); 1 hubs were not sent the document."
    assert lines[3:5] == ["  gw-0001  rejected", "      config.mqtt.keepalive_s: must be at most 600"]
    assert "--halt-after above 1" in lines[-1]
