"""`yiyang doctor` on the command line: its lines are an interface, `--json` the same checks, the exit status."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import devstack
from gatewayproc import cli

from gateway.status import write_status_file

GATEWAY = "gw-test"
LINE = re.compile(r"^(ok      |warning |PROBLEM |skipped ) [a-z][a-z0-9 _.:-]*: \S.*$")
FIX = re.compile(r"^ {9}fix: \S.*$")


def figures_masked(line: str) -> str:
    return re.sub(r"\d+(?:\.\d+)?", "#", line)


def write_hub(tmp_path: Path, broker_port: int, platform: devstack.Platform) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    now = datetime.now(UTC).isoformat()
    write_status_file(data / "status.json", {
        "gateway_id": GATEWAY, "version": "0.1.0", "started_at": now, "updated_at": now, "problems": [],
        "queue": {"pending": 0, "dead": 0, "db_bytes": 0, "budget_bytes": 2**29, "budget_state": "ok"},
        "uplink": {"enabled": True}, "devices": {}})
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[gateway]
id = "{GATEWAY}"
data_dir = "{data}"
[platform]
url = "{platform.url}"
secret_file = "{platform.secret_file}"
[mqtt]
port = {broker_port}
[[residents]]
id = "r-0001"
""", encoding="utf-8")
    return config


def test_the_lines_the_json_and_the_exit_status_agree(tmp_path: Path, broker: devstack.Broker,
                                                       platform: devstack.Platform) -> None:
    config = write_hub(tmp_path, broker.port, platform)
    shown = cli("doctor", "--config", str(config))
    data = cli("doctor", "--config", str(config), "--json")
    report = json.loads(data.stdout)
    lines = shown.stdout.splitlines()
    assert lines[0] == f"hub {GATEWAY} ({config}), judged as user root"
    assert all(LINE.match(line) or FIX.match(line) for line in lines[1:-1]), shown.stdout
    checks = [line for line in lines[1:-1] if LINE.match(line)]
    assert [line.split(":", 1)[0].split(None, 1)[1] for line in checks] == [c["name"] for c in report["checks"]]
    for check, line in zip(report["checks"], checks, strict=True):
        label = {"ok": "ok", "warning": "warning", "problem": "PROBLEM", "skipped": "skipped"}[check["status"]]
        # Figures (free space, the status file's age) move between the two runs: compare the words.
        assert figures_masked(line) == figures_masked(f"{label:<8} {check['name']}: {check['verdict']}")
        if check["status"] == "problem":
            assert lines[lines.index(line) + 1] == f"{'':9}fix: {check['fix']}"
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["daemon"]["status"] == "ok"
    assert by_name["broker"]["verdict"] == f"connected to 127.0.0.1:{broker.port} as anonymous"
    assert by_name["platform"]["status"] == "ok"
    assert by_name["bluetooth"] == {"name": "bluetooth", "status": "skipped", "fix": None,
                                    "verdict": "no Bluetooth devices configured"}
    # This machine's clock may or may not be set by NTP, and no fleet key is installed: the exit status follows.
    assert report["ok"] is (not report["problems"])
    assert shown.returncode == data.returncode == (0 if report["ok"] else 1)
    assert lines[-1] == (f"{len(report['problems'])} problem(s) found" if report["problems"] else "no problem found")


def test_a_broken_part_fails_the_exit_status_with_its_fix(tmp_path: Path, platform: devstack.Platform) -> None:
    config = write_hub(tmp_path, devstack.free_port(), platform)
    shown = cli("doctor", "--config", str(config))
    assert shown.returncode == 1
    lines = shown.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("PROBLEM  broker: "))
    assert "connection refused: the broker is not running" in lines[at]
    assert lines[at + 1].startswith("         fix: systemctl restart mosquitto")


def test_an_unknown_service_user_is_a_usage_error(tmp_path: Path, platform: devstack.Platform) -> None:
    config = write_hub(tmp_path, devstack.free_port(), platform)
    result = cli("doctor", "--config", str(config), "--user", "no-such-user")
    assert result.returncode == 2
    assert "there is no user 'no-such-user'" in result.stderr
