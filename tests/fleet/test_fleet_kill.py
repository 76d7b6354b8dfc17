"""SIGKILL at random instants while a hub applies document after document (tests/support/fleet_crash.py).

Each round starts the process from what the last one left (as systemd would restart the daemon),
lets it apply, reject and roll back documents for a random while, and kills it. Then the state on
disk and ``load_effective`` (what ``yiyang run`` starts with) must agree: the configuration of the
applied version, never a mix; a trial found on disk rolled back to the previous configuration; an
applied report only ever next to that version's configuration.

The seed is printed; pin it with FLEET_KILL_SEED=<seed>, run longer with FLEET_KILL_ROUNDS=<n>.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fleet_crash import marker_version
from fleetdocs import Fleet, local_toml

from gateway.fleet.effective import load_effective
from gateway.fleet.overlay import LocalConfig, validate_effective
from gateway.fleet.report import HUB, DocumentError, ReportStatus, effective_view
from gateway.fleet.resume import RESTARTED
from gateway.fleet.statefile import FleetStateFile, corrupt_state_files, state_path

REPO = Path(__file__).resolve().parents[2]
ROUNDS = int(os.environ.get("FLEET_KILL_ROUNDS", "12"))
LONGEST_RUN_S = 0.3
"""A round applies documents for up to this long (some 50 documents) before it is killed."""


def start_child(config: Path, key: Path, seed: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "support" / "fleet_crash.py"), "loop", str(config), str(key), str(seed)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n", "the child did not start"
    return child


def test_a_hub_killed_at_random_instants_starts_from_the_old_or_the_new_configuration(tmp_path: Path) -> None:
    seed = int(os.environ.get("FLEET_KILL_SEED", str(random.randrange(2**32))))
    print(f"FLEET_KILL_SEED={seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    config = tmp_path / "gateway.toml"
    config.write_text(local_toml(data_dir), encoding="utf-8")
    local = LocalConfig.from_text(config.read_text(encoding="utf-8"), str(config))
    key = tmp_path / "fleet.key"
    key.write_bytes(Fleet().key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    store = FleetStateFile(state_path(data_dir))
    highest = 0
    trials_killed = 0
    for round_ in range(ROUNDS):
        child = start_child(config, key, rng.randrange(2**32))
        time.sleep(rng.uniform(0, LONGEST_RUN_S))
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        assert child.stdout is not None
        child.stdout.close()

        where = f"seed {seed}, round {round_}"
        raw = store.read()  # never a mix: a file that is not a state raises here
        assert raw is not None, where
        running, state = load_effective(config)

        # What runs is the applied overlay's configuration, whatever instant the kill came at.
        expected, problems = validate_effective(local.mapping, raw.overlay)
        assert running == expected, (where, problems)
        if raw.applied_version is None:
            assert running == local.config, where
        else:
            assert marker_version(running) == raw.applied_version, where
            assert raw.applied_version % 4 and raw.applied_version % 5, f"{where}: a failing version applied"
        # A trial on disk is rolled back at start, to the previous configuration, and reported.
        if raw.trial is not None:
            trials_killed += 1
            assert state.last_report is not None and state.last_report.version == raw.trial.version, where
            assert state.last_report.status is ReportStatus.ROLLED_BACK, where
            assert state.last_report.errors == (DocumentError(HUB, RESTARTED),), where
            assert raw.trial.version in state.rolled_back and state.trial is None, where
        # An applied report is only ever next to that version's configuration.
        last = state.last_report
        if last is not None and last.status is ReportStatus.APPLIED:
            assert last.version == state.applied_version == marker_version(running), where
            assert last.effective == effective_view(running), where
        assert state.applied_version == raw.applied_version and state.overlay == raw.overlay, where
        assert store.read() == state, f"{where}: load_effective left another state than it started with"
        assert state.highest_seen >= highest, f"{where}: the highest version seen went back"
        highest = state.highest_seen
        assert corrupt_state_files(data_dir) == [], where
    print(f"{ROUNDS} kills, {trials_killed} during a trial, highest version {highest}")
    assert highest > ROUNDS, "the rounds applied documents"
