"""The rollout state file (scripts/fleetctl/statefile.py): the whole state back, atomically, or a clear refusal."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from fleetctl import statefile
from fleetctl.documents import DocumentSpec
from fleetctl.plan import plan_waves
from fleetctl.reports import Report, ReportError, ReportStatus
from fleetctl.rollout import Policy, RolloutState, confirm_sent, new_rollout, record_reports, send_wave
from fleetctl.statefile import StateFileError

T0 = 1_800_000_000.0


def midway() -> RolloutState:
    document = DocumentSpec(version=5, issued_at="2027-01-15T08:00:00+08:00",
                            config={"contacts": [{"id": "c-0001", "name": "李伟"}]}, fleet_public_key="a2V5")
    plan = plan_waves([f"gw-{n:04d}" for n in range(1, 8)], canary=2, wave_percent=50)
    state = confirm_sent(send_wave(new_rollout(document, "sha256:ab", "yiyang/v1", plan, Policy(3, 90.0)), T0))
    rejected = Report(version=5, status=ReportStatus.REJECTED, errors=(ReportError("config.contacts", "bad"),))
    state, _ = record_reports(state, [("gw-0001", rejected)], T0 + 1.5)
    return send_wave(state, T0 + 2)  # the second wave marked sent, not yet confirmed


def test_the_state_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    state = midway()
    statefile.save(path, state)
    assert statefile.load(path) == state
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the body may name family contacts
    assert [p.name for p in tmp_path.iterdir()] == ["rollout.json"]  # no temporary file left behind


def test_no_file_is_a_new_rollout(tmp_path: Path) -> None:
    assert statefile.load(tmp_path / "rollout.json") is None


def test_a_failed_write_leaves_the_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rollout.json"
    statefile.save(path, midway())
    before = path.read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        statefile.save(path, confirm_sent(midway()))
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rollout.json"]


@pytest.mark.parametrize(("change", "why"), [
    (lambda d: d.update(format="something/2"), "not a rollout state file"),
    (lambda d: d.pop("signer"), "damaged rollout state"),
    (lambda d: d["document"].update(version="5"), "damaged rollout state"),
    (lambda d: d["hubs"].pop("gw-0007"), "its hubs and its waves differ"),
    (lambda d: d.update(waves_confirmed=3), "wave counts out of range"),
    (lambda d: d["hubs"]["gw-0003"].update(phase="not_sent"), "wave 2 is partly sent"),
    (lambda d: d["hubs"]["gw-0003"].update(phase="sleeping"), "damaged rollout state"),
])
def test_a_damaged_state_file_is_refused_with_what_is_wrong(tmp_path: Path, change: object, why: str) -> None:
    data = statefile.to_json(midway())
    change(data)  # type: ignore[operator]
    path = tmp_path / "rollout.json"
    path.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match=why):
        statefile.load(path)


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rollout.json"
    path.write_text("{")
    with pytest.raises(StateFileError, match="not JSON"):
        statefile.load(path)
