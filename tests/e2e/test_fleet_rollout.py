"""Configuration rollouts end to end: scripts/fleet.py config push / status, a real Mosquitto, and 30
simulated hubs in this process (tests/support/fleet_hubs.py) that verify each document's signature
and report on config/reported like a hub.

What is checked: the waves go out in order, each after the one before has answered; a halt leaves
the later waves' hubs without any document (nothing retained on their config/desired); a re-run
resumes the same rollout without sending anything again to hubs already done; ``config status``
shows every hub.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import devstack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fleet_hubs import Event, SimulatedFleet, hub_ids, retained_on
from fleetctl.documents import load_private_key
from fleetctl.engine import Progress, push_config
from fleetctl.link import BrokerAddress
from fleetctl.request import RolloutRequest

from gateway.broker_acl import render_acl
from gateway.fleet.signing import load_public_key

FLEET = Path(__file__).resolve().parents[2] / "scripts" / "fleet.py"
ROOT = "yiyang/v1"
HUBS = hub_ids(30)
WAVES = [HUBS[:5], *(HUBS[i : i + 5] for i in range(5, 30, 5))]  # --canary 5 --wave-percent 20


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(FLEET), *args], capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def operator(tmp_path: Path) -> Path:
    """The operator's files: the key pair, the hubs file, a document body."""
    assert fleet("keygen", "--out", str(tmp_path / "keys")).returncode == 0
    (tmp_path / "hubs.txt").write_text("# the first five are the canaries\n" + "\n".join(HUBS) + "\n")
    (tmp_path / "change.toml").write_text("[alerts]\nrepeat_emergency_s = 90.0\n")
    return tmp_path


def received(events: list[Event], hub: str) -> int:
    return sum(1 for e in events if e.kind == "received" and e.hub == hub)


@pytest.mark.timeout(180)
def test_waves_in_order_a_halt_then_a_resumed_rollout_and_the_fleet_status(
        operator: Path, broker: devstack.Broker) -> None:
    public = load_public_key(operator / "keys" / "fleet.pub")
    failing = {"gw-sim-0007": "rejected", "gw-sim-0009": "rolled_back"}  # both in the second wave
    push = ("config", "push", "--broker", f"{broker.host}:{broker.port}", "--key", str(operator / "keys" / "fleet.key"),
            "--state", str(operator / "rollout.json"), "--timeout", "60")
    first_run = (*push, "--hubs", str(operator / "hubs.txt"), "--body", str(operator / "change.toml"),
                 "--canary", "5", "--wave-percent", "20", "--halt-after", "2")
    with SimulatedFleet(broker.host, broker.port, public, HUBS, failing) as hubs:
        dry = fleet(*first_run, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "wave 6: 5 hubs (gw-sim-0026 .. gw-sim-0030)" in dry.stdout
        assert not (operator / "rollout.json").exists()

        halted = fleet(*first_run)
        assert halted.returncode == 1, halted.stdout + halted.stderr
        assert "HALTED: 2 hubs rejected or rolled back (--halt-after 2); 20 hubs were not sent" in halted.stdout
        assert "gw-sim-0007  rejected\n      config.mqtt.keepalive_s: gw-sim-0007: must be at most 600" in halted.stdout
        assert "gw-sim-0009  rolled_back" in halted.stdout

        events = hubs.journal.events()
        # In order: every hub of the canary wave reported before any hub of the second wave got a document.
        last_canary_report = max(i for i, e in enumerate(events) if e.kind == "reported" and e.hub in WAVES[0])
        first_second_wave = min(i for i, e in enumerate(events) if e.kind == "received" and e.hub in WAVES[1])
        assert last_canary_report < first_second_wave
        # The halt: the later waves' hubs got nothing, and the broker holds nothing for them.
        later = [hub for wave in WAVES[2:] for hub in wave]
        assert not [e for e in events if e.hub in later]
        assert retained_on(broker.host, broker.port, [f"{ROOT}/{hub}/config/desired" for hub in later]) == {}

        # The operator judges the two failures acceptable and goes on: the same rollout, resumed.
        resumed = fleet(*push, "--halt-after", "5")
        assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # the two failures still stand
        assert resumed.stdout.startswith("resuming the rollout of version 1 to 30 hubs in 6 waves")
        assert "applied 28  rejected 1  rolled back 1" in resumed.stdout
        events = hubs.journal.events()
        assert {hub: received(events, hub) for hub in HUBS} == dict.fromkeys(HUBS, 1)  # nobody sent anything twice
        for earlier, wave in itertools.pairwise(WAVES[2:]):
            answered = max(i for i, e in enumerate(events) if e.kind == "reported" and e.hub in earlier)
            assert answered < min(i for i, e in enumerate(events) if e.kind == "received" and e.hub in wave)

        status = fleet("config", "status", "--broker", f"{broker.host}:{broker.port}",
                       "--hubs", str(operator / "hubs.txt"))
        assert status.returncode == 0, status.stderr
        rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:-1]}
        assert sorted(rows) == HUBS
        assert rows["gw-sim-0001"][1:4] == ["1", "applied", "1"]
        assert rows["gw-sim-0007"][1:4] == ["-", "rejected", "1"]
        assert status.stdout.splitlines()[-1] == ("30 hubs: 28 applied, 1 rejected, 1 rolled_back; "
                                                  "applied v1: 28, none: 2")
        as_json = json.loads(fleet("config", "status", "--broker", f"{broker.host}:{broker.port}", "--json").stdout)
        assert [entry["hub"] for entry in as_json] == HUBS


class Interrupted(Exception):
    """The operator's Ctrl-C, or a lost ssh session, in the middle of a rollout."""


@pytest.mark.timeout(120)
def test_an_interrupted_rollout_resumes_without_sending_again_to_hubs_already_done(
        operator: Path, broker: devstack.Broker) -> None:
    key = load_private_key(operator / "keys" / "fleet.key")
    state = operator / "rollout.json"
    request = RolloutRequest(hubs=tuple(HUBS), config={"alerts": {"repeat_emergency_s": 90.0}}, canary=5,
                             wave_percent=20, timeout_s=60)
    address = BrokerAddress(broker.host, broker.port)

    def stop_after_the_third_wave_is_sent(progress: Progress) -> None:
        if progress.sent and progress.waves_sent == 3:
            raise Interrupted

    with SimulatedFleet(broker.host, broker.port, key.public_key(), HUBS) as hubs:
        with pytest.raises(Interrupted):
            push_config(address, key, request, state_path=state, progress=stop_after_the_third_wave_is_sent)
        # The third wave's documents are out: its hubs answer whether or not a tool is watching.
        hubs.journal.wait_for(lambda events: all(any(e.kind == "reported" and e.hub == hub for e in events)
                                                 for hub in WAVES[2]), 20, "the third wave's reports")
        result = push_config(address, key, request, state_path=state)
        assert result.ok
        events = hubs.journal.events()
        assert {hub: received(events, hub) for hub in HUBS} == dict.fromkeys(HUBS, 1)
        assert {e.status for e in events if e.kind == "reported"} == {"applied"}


@pytest.mark.timeout(60)
def test_a_different_document_for_the_same_state_file_is_refused(operator: Path, broker: devstack.Broker) -> None:
    key = Ed25519PrivateKey.generate()
    state = operator / "rollout.json"
    request = RolloutRequest(hubs=tuple(HUBS[:3]), config={"alerts": {"repeat_emergency_s": 90.0}}, canary=1)
    with SimulatedFleet(broker.host, broker.port, key.public_key(), HUBS[:3]):
        assert push_config(BrokerAddress(broker.host, broker.port), key, request, state_path=state).ok
    (operator / "other.toml").write_text("[alerts]\nrepeat_emergency_s = 60.0\n")
    refused = fleet("config", "push", "--broker", f"{broker.host}:{broker.port}", "--key",
                    str(operator / "keys" / "fleet.key"), "--state", str(state), "--body", str(operator / "other.toml"))
    assert refused.returncode == 2
    assert "the state file is another rollout: it was signed with another key" in refused.stderr
    assert "its document body differs" in refused.stderr


@pytest.mark.timeout(60)
def test_the_fleet_account_is_all_a_rollout_needs(operator: Path, tmp_path: Path) -> None:
    """A broker that admits only known accounts, with the ACL `yiyang broker-acl` writes for the fleet."""
    acl = render_acl("gw-sim-0001", ROOT, "hub", "fleet", []) + f"\nuser sims\ntopic readwrite {ROOT}/#\n"
    accounts = {"fleet": "fleet-secret", "sims": "sims-secret"}
    (operator / "fleet.password").write_text("fleet-secret\n")
    (operator / "wrong.password").write_text("guess\n")
    (operator / "three.txt").write_text("\n".join(HUBS[:3]) + "\n")
    public = load_public_key(operator / "keys" / "fleet.pub")
    with devstack.mosquitto(tmp_path / "acl-broker", acl=acl, accounts=accounts) as broker, \
            SimulatedFleet(broker.host, broker.port, public, HUBS[:3], account=("sims", "sims-secret")):
        push = ("config", "push", "--broker", f"{broker.host}:{broker.port}", "--username", "fleet",
                "--key", str(operator / "keys" / "fleet.key"), "--state", str(operator / "rollout.json"),
                "--hubs", str(operator / "three.txt"), "--body", str(operator / "change.toml"), "--canary", "1")
        refused = fleet(*push, "--password-file", str(operator / "wrong.password"))
        assert refused.returncode == 1
        assert "refused us" in refused.stderr
        done = fleet(*push, "--password-file", str(operator / "fleet.password"))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Every hub applied it." in done.stdout
