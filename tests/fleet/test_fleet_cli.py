"""``yiyang config check`` and ``yiyang status`` show what the fleet applied; ``run`` starts from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fleetdocs import local_toml
from gatewayproc import cli

from gateway.cli import main, render_status
from gateway.fleet.effective import FILES_UNUSABLE, load_effective
from gateway.fleet.report import HUB, DocumentError, Report, ReportStatus
from gateway.fleet.resume import RESTARTED
from gateway.fleet.state import FleetState, Trial, status_fields
from gateway.fleet.statefile import FleetStateFile, state_path

AT = datetime(2026, 11, 22, 9, 0, 5, tzinfo=UTC)
BUTTON = {"id": "sos", "driver": "bthome-button", "address": "AA:BB:CC:DD:EE:02", "resident": "r-0001",
          "bind_key": "231d39c1d7cc1ab1aee224cd096db932"}
OVERLAY = {"thresholds": {"glucose_level1_hypo_mmol_l": 4.2}, "devices": [BUTTON]}
APPLIED = FleetState(highest_seen=42, applied_version=42, applied_at=AT, overlay=OVERLAY)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    secret = tmp_path / "platform.secret"
    secret.write_text("demo-secret\n", encoding="utf-8")
    secret.chmod(0o600)
    path = tmp_path / "gateway.toml"
    path.write_text(local_toml(tmp_path / "data").replace("/etc/yiyang/platform.secret", str(secret)), encoding="utf-8")
    return path


def save(config: Path, state: FleetState) -> FleetStateFile:
    store = FleetStateFile(state_path(config.parent / "data"))
    store.save(state)
    return store


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["config", "check", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_config_check_without_fleet_state_is_unchanged(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(capsys, str(config)) == (0, [f"{config}: OK"], "")


def test_config_check_names_the_applied_version_and_the_fleets_sections(config: Path) -> None:
    save(config, APPLIED)
    result = cli("config", "check", str(config))  # as a technician runs it: a real process
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [
        f"{config}: OK",
        "fleet: version 42 applied 2026-11-22T09:00:05+00:00; sections from the fleet: thresholds, devices",
    ]


def test_config_check_effective_prints_what_run_would_use_as_json(config: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    save(config, APPLIED)
    code, out, err = check(capsys, "--effective", str(config))
    effective = json.loads("\n".join(out))
    assert code == 0
    assert effective["thresholds"]["glucose_level1_hypo_mmol_l"] == 4.2
    assert [d["id"] for d in effective["devices"]] == ["sos"]
    assert effective["devices"][0]["bind_key"] == "********", "a BTHome key is a secret"
    assert effective["platform"]["secret_file"] == str(config.parent / "platform.secret"), "secret files by path"
    assert err.splitlines() == [
        "fleet: version 42 applied 2026-11-22T09:00:05+00:00; sections from the fleet: thresholds, devices"]


def test_config_check_validates_the_effective_configuration(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The technician removed r-0002 from the file; the fleet's devices still measure r-0002.
    save(config, FleetState(highest_seen=42, applied_version=42, applied_at=AT,
                            overlay={"devices": [{**BUTTON, "resident": "r-0002"}]}))
    text = config.read_text(encoding="utf-8")
    bedroom = text[text.index('[[devices]]\nid = "bp-bedroom"'):]
    config.write_text(text.replace('[[residents]]\nid = "r-0002"\n', "").replace(bedroom, ""), encoding="utf-8")
    code, out, _err = check(capsys, str(config))
    assert code == 1
    assert out == [
        f"{config}: 1 problem(s):",
        f"  {config} with fleet version 42: devices[0].resident: no resident has id 'r-0002'; use one of: r-0001, "
        "or add a [[residents]] entry",
        f"fleet: version 42 no longer fits {config}: the hub's local file changed and no longer fits this "
        "configuration; the hub runs on its local file alone and will not apply this version again: send a new "
        "version that fits",
        "fleet: no configuration from the fleet applied",
    ]
    assert check(capsys, "--effective", str(config))[0] == 1, "no JSON for a configuration with problems"


def test_config_check_says_a_trial_will_be_rolled_back(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = save(config, APPLIED.begin(Trial(43, {"devices": []}, AT, None)))
    code, out, _err = check(capsys, str(config))
    assert (code, out) == (0, [
        f"{config}: OK",
        "fleet: version 43 was being checked when the hub stopped; the daemon rolls it back when it starts",
        "fleet: version 42 applied 2026-11-22T09:00:05+00:00; sections from the fleet: thresholds, devices",
    ])
    assert store.read() == APPLIED.begin(Trial(43, {"devices": []}, AT, None)), "config check changes nothing"


def test_config_check_tells_the_last_refusal(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    refused = Report(43, ReportStatus.REJECTED, (DocumentError("storage.budget_mb", "8 is below the minimum 16; use "
                                                               "a value from 16 to 65536"),), 42, AT, {})
    save(config, APPLIED.seen(43, refused))
    assert check(capsys, str(config))[1][-1] == (
        "fleet: last document, version 43, rejected: storage.budget_mb: 8 is below the minimum 16; use a value from 16 "
        "to 65536")


def test_config_check_warns_of_a_corrupt_state(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = state_path(config.parent / "data")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 64)
    code, out, _err = check(capsys, str(config))
    assert code == 0
    assert out[0] == f"{config}: OK"
    assert out[1].startswith(f"warning: {path}: not a fleet state (")
    assert out[1].endswith(f"; the daemon moves it aside and starts from {config} alone")
    assert path.exists(), "config check moves nothing"


def test_run_starts_from_the_effective_configuration(config: Path) -> None:
    save(config, APPLIED)
    running, state = load_effective(config)
    assert running.thresholds.glucose_level1_hypo_mmol_l == 4.2
    assert [d.id for d in running.devices] == ["sos"]
    assert state == APPLIED


def test_run_rolls_back_a_trial_it_restarted_in(config: Path) -> None:
    store = save(config, APPLIED.begin(Trial(43, {"devices": []}, AT, None)))
    running, state = load_effective(config)
    assert [d.id for d in running.devices] == ["sos"], "the previous configuration"
    assert state.last_report is not None and state.last_report.errors == (DocumentError(HUB, RESTARTED),)
    assert store.read() == state


def test_run_sets_aside_a_fleet_configuration_naming_a_file_the_hub_lacks(config: Path) -> None:
    # `run` refuses to start on a missing file: the fleet's must not be able to stop a hub that way.
    missing = config.parent / "broker.password"
    save(config, FleetState(highest_seen=42, applied_version=42, applied_at=AT,
                            overlay={"mqtt": {"username": "hub", "password_file": str(missing)}}))
    running, state = load_effective(config)
    assert running.mqtt.password_file is None, "the local file's [mqtt]"
    assert state.last_report is not None
    assert [e.path for e in state.last_report.errors] == [HUB, "mqtt.password_file"]
    assert state.last_report.errors[0].message == FILES_UNUSABLE
    assert (state.applied_version, state.overlay, 42 in state.rolled_back) == (None, {}, True)


def test_status_shows_the_fleet_version_from_the_daemons_status_payload() -> None:
    status = {"gateway_id": "gw-0001", "queue": {}, "devices": {}, "fleet": status_fields(APPLIED)}
    assert "  fleet: version 42 applied 2026-11-22T09:00:05+00:00; sections from the fleet: thresholds, devices" in (
        render_status(status).splitlines())
    assert "fleet" not in render_status({"queue": {}, "devices": {}}), "a daemon that does not say shows nothing"
