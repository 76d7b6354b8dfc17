"""gateway.fleet.state and statefile: the state's JSON, its atomic file, a corrupt file moved aside."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fleetdocs import key_text

from gateway.fleet.report import DocumentError, Report, ReportStatus
from gateway.fleet.state import (
    FleetState,
    RotatedKey,
    Trial,
    Verdict,
    describe_fleet,
    state_from_json,
    state_to_json,
    status_fields,
)
from gateway.fleet.statefile import (
    FleetStateCorrupt,
    FleetStateError,
    FleetStateFile,
    corrupt_state_files,
    state_path,
)

REPO = Path(__file__).resolve().parents[2]
AT = datetime(2026, 11, 22, 1, 0, 5, tzinfo=UTC)
KEY = key_text(Ed25519PrivateKey.generate().public_key())
REPORT = Report(7, ReportStatus.APPLIED, (), 7, AT, {"thresholds": {"pulse_high_bpm": 120}})
FULL = FleetState(
    highest_seen=9, applied_version=7, applied_at=AT,
    overlay={"thresholds": {"pulse_high_bpm": 120}, "devices": []},
    rolled_back=frozenset({5, 8}),
    trial=Trial(9, {"devices": [{"id": "血压计"}]}, AT, KEY),
    rotated_key=RotatedKey(KEY, None),
    last_report=Report(8, ReportStatus.ROLLED_BACK, (DocumentError("(hub)", "broker unreachable"),), 7, AT, {}),
)


def test_the_state_survives_its_json() -> None:
    assert state_from_json(json.loads(json.dumps(state_to_json(FULL)))) == FULL
    assert state_from_json(state_to_json(FleetState())) == FleetState()


@pytest.mark.parametrize("broken", [
    {"format": 2},
    {**state_to_json(FULL), "highest_seen": -1},
    {**state_to_json(FULL), "rolled_back": [0]},
    {**state_to_json(FULL), "applied_at": "2026-11-22T01:00:05"},
    {**state_to_json(FULL), "overlay": []},
    {**state_to_json(FULL), "trial": {"version": 9}},
    {**state_to_json(FULL), "rotated_key": {"public_key": "AAAA"}},
    {**state_to_json(FULL), "last_report": {"status": "maybe", "errors": [], "effective": {}}},
    [],
])
def test_anything_else_is_not_a_state(broken: object) -> None:
    with pytest.raises(ValueError):  # each says its own reason; that it refuses is the point
        state_from_json(broken)


def test_verdicts() -> None:
    state = FleetState(highest_seen=9, applied_version=7, rolled_back=frozenset({8}))
    assert [state.verdict(v) for v in (7, 8, 6, 9, 10)] == [
        Verdict.ALREADY_APPLIED, Verdict.ROLLED_BACK, Verdict.REPLAY, Verdict.EVALUATE, Verdict.EVALUATE]


def test_rolled_back_versions_are_bounded_keeping_the_highest() -> None:
    state = FleetState()
    for version in range(1, 101):
        state = state.begin(Trial(version, {}, AT, None)).roll_back(REPORT)
    assert state.rolled_back == frozenset(range(37, 101))
    assert state.verdict(36) is Verdict.REPLAY, "a forgotten rollback is still never applied again"


def test_status_fields_and_the_technicians_line() -> None:
    fields = status_fields(FULL)
    assert fields == {"version": 7, "applied_at": "2026-11-22T01:00:05+00:00", "sections": ["thresholds", "devices"]}
    assert describe_fleet(fields) == (
        "fleet: version 7 applied 2026-11-22T01:00:05+00:00; sections from the fleet: thresholds, devices")
    assert describe_fleet(status_fields(FleetState())) == "fleet: no configuration from the fleet applied"


# --- the file ---------------------------------------------------------------------------------------


def test_save_then_load_and_the_file_is_private(tmp_path: Path) -> None:
    store = FleetStateFile(state_path(tmp_path))
    assert store.read() is None
    assert store.load() == FleetState()
    store.save(FULL)
    assert store.load() == FULL
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600, "the overlay may hold a BTHome key and phone numbers"
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["state.json"], "no temporary file left"


def test_a_temporary_file_left_by_a_killed_write_is_removed_at_start(tmp_path: Path) -> None:
    store = FleetStateFile(state_path(tmp_path))
    store.save(FULL)
    leftover = store.path.with_name(".state.json.abc123.tmp")
    leftover.write_text('{"format": 1, "highe')
    assert store.load() == FULL
    assert not leftover.exists()


@pytest.mark.parametrize("content", [b"", b"\x00" * 4096, b'{"format": 1, "highest_seen": 3', b"[]",
                                     b'{"format": 1}', b"[" * 10_000])
def test_a_corrupt_file_is_moved_aside_loudly_and_the_hub_starts_from_its_local_file(
        tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    store = FleetStateFile(state_path(tmp_path), wall=lambda: AT)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(content)
    with pytest.raises(FleetStateCorrupt, match=r"state\.json: not a fleet state"):
        store.read()
    assert store.path.read_bytes() == content, "read() changes nothing (config check)"
    with caplog.at_level(logging.ERROR):
        assert store.load() == FleetState()
    aside = store.path.with_name("state.json.corrupt-20261122T010005Z")
    assert store.moved_aside == aside
    assert aside.read_bytes() == content
    assert not store.path.exists()
    assert corrupt_state_files(tmp_path) == [aside]
    assert "fleet state corrupt, moved aside; starting from the local configuration" in caplog.text
    store.path.write_bytes(content)
    store.load()
    assert corrupt_state_files(tmp_path) == [aside, aside.with_name(aside.name + "-2")], "nothing overwritten"


def test_a_state_that_cannot_be_written_says_what_to_check(tmp_path: Path) -> None:
    blocker = tmp_path / "fleet"
    blocker.write_text("a file where the directory goes")
    store = FleetStateFile(tmp_path / "fleet" / "state.json")
    with pytest.raises(FleetStateError, match=r"cannot write the fleet state \(File exists\); check that .*fleet "
                                              "is writable and the disk has space"):
        store.save(FULL)


def test_a_sigkill_at_every_instant_of_the_write_path_leaves_the_old_state_or_the_new(tmp_path: Path) -> None:
    old = FleetState(highest_seen=3, applied_version=3, applied_at=AT, overlay={"devices": []})
    new = FULL
    store = FleetStateFile(state_path(tmp_path))
    new_json = tmp_path / "new.json"
    new_json.write_text(json.dumps(state_to_json(new)))

    def run(instant: int) -> subprocess.CompletedProcess[str]:
        store.save(old)
        return subprocess.run([sys.executable, str(REPO / "tests" / "support" / "fleet_crash.py"), "save",
                               str(store.path), str(new_json), str(instant)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, check=False, timeout=60)

    dry = run(-1)
    assert dry.returncode == 0, dry.stderr
    instants = int(dry.stdout)
    assert instants == 8, "write, fsync, replace, fsync of the directory: before and after each"
    outcomes = []
    for instant in range(instants):
        killed = run(instant)
        assert killed.returncode == -9, killed.stderr
        assert store.read() in (old, new), f"a mix at instant {instant}"
        outcomes.append("new" if store.load() == new else "old")
        assert [p.name for p in store.path.parent.iterdir()] == ["state.json"]
    # Killed before the rename: the old state; from the rename on: the new one.
    assert outcomes == ["old"] * 5 + ["new"] * 3
