"""Signed fleet commands through the broker to the daemon and back (scripts/fleet.py as the operator)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import devstack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from gatewayproc import GATEWAY_ID, GatewayProcess, outbox_rows, platform_records, wait_until, write_config
from mqtt_probe import Probe
from mqtt_publisher import publish_once

from gateway.fleet.signing import sign

FLEET = Path(__file__).resolve().parents[2] / "scripts" / "fleet.py"


def fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(FLEET), *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.timeout(120)
def test_signed_commands_are_answered_and_everything_else_refused(tmp_path: Path, broker: devstack.Broker) -> None:
    assert fleet("keygen", "--out", str(tmp_path / "fleet")).returncode == 0
    assert fleet("keygen", "--out", str(tmp_path / "intruder")).returncode == 0
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              extra=f'\n[fleet]\npublic_key_file = "{tmp_path / "fleet" / "fleet.pub"}"\n')
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/residents/+/events/alert")
        gateway.start()
        try:
            common = ("--broker", f"{broker.host}:{broker.port}", "--gateway", GATEWAY_ID)
            key = ("--key", str(tmp_path / "fleet" / "fleet.key"))
            ping = fleet("cmd", *common, *key, "--timeout", "20", "ping")
            assert ping.returncode == 0, ping.stdout + ping.stderr
            assert '"pong": true' in ping.stdout

            doctor = fleet("cmd", *common, *key, "doctor")
            assert doctor.returncode == 0, doctor.stdout
            # `yiyang doctor`'s checks, run in the daemon: the broker is its own connection, the platform
            # the same signed probe that stores nothing.
            checks = {c["name"]: c for c in json.loads(doctor.stdout)["result"]["checks"]}
            assert {n: checks[n]["status"] for n in ("daemon", "broker", "platform", "fleet key")} == dict.fromkeys(
                ("daemon", "broker", "platform", "fleet key"), "ok"), checks

            alert = fleet("cmd", *common, *key, "test-alert")
            assert alert.returncode == 0, alert.stdout
            events = probe.wait_for("events/alert", 2)
            assert [(e["kind"], e["state"]) for e in events] == [("test", "raised"), ("test", "resolved")]

            forged = fleet("cmd", *common, "--key", str(tmp_path / "intruder" / "fleet.key"), "ping")
            assert forged.returncode == 1
            assert "bad signature" in forged.stdout

            first = fleet("cmd", *common, *key, "--request-id", "r-42", "queue")
            assert first.returncode == 0, first.stdout
            replay = fleet("cmd", *common, *key, "--request-id", "r-42", "queue")
            assert replay.returncode == 1
            assert "already answered" in replay.stdout

            unknown = fleet("cmd", *common, *key, "format-disk")
            assert unknown.returncode == 1
            assert "unknown command" in unknown.stdout
        finally:
            probe.close()
            assert gateway.stop() == 0


@pytest.mark.timeout(120)
def test_the_doctors_measure_now_starts_a_blood_pressure_measurement(tmp_path: Path,
                                                                      broker: devstack.Broker) -> None:
    assert fleet("keygen", "--out", str(tmp_path / "fleet")).returncode == 0
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            devstack.suntech(tmp_path / "nibp", ("--measure-s", "2")) as nibp:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              extra=f"""
[fleet]
public_key_file = "{tmp_path / 'fleet' / 'fleet.pub'}"

[[devices]]
id = "bp-kiosk"
driver = "suntech-nibp"
port = "{nibp.link}"
resident = "r-0001"
""")
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        gateway.start()
        try:
            nibp.command("result 128 82 71")
            common = ("--broker", f"{broker.host}:{broker.port}", "--gateway", GATEWAY_ID,
                      "--key", str(tmp_path / "fleet" / "fleet.key"), "--timeout", "60")
            measured = fleet("cmd", *common, "--arg", "device_id=bp-kiosk", "measure")
            assert measured.returncode == 0, measured.stdout + measured.stderr
            wait_until(lambda: any(r["type"] == "blood_pressure" for r in platform_records(platform.db)), 20,
                       "the reading at the platform")
            bp = next(r for r in platform_records(platform.db) if r["type"] == "blood_pressure")
            assert (bp["values"]["systolic"], bp["values"]["diastolic"]) == (128, 82)  # type: ignore[index]
            unknown = fleet("cmd", *common, "--arg", "device_id=nope", "measure")
            assert unknown.returncode == 1
            assert "bp-kiosk" in unknown.stdout
        finally:
            assert gateway.stop() == 0


# The simulator's first results (mg/dL) and the same in mmol/L as the hub stores them.
METER_VALUES = (81, 105, 176, 63, 142, 98, 250, 45)


def values_in(lines: list[str]) -> list[str]:
    """Any meter value standing as a number of its own in the lines' messages."""
    numbers = {str(v) for v in METER_VALUES} | {f"{v / 18.016:.1f}" for v in METER_VALUES} \
        | {f"{v / 18.016:.2f}" for v in METER_VALUES}
    messages = [line.split(": ", 1)[1] for line in lines]
    return [n for m in messages for n in re.findall(r"(?<![\w.:/-])\d+(?:\.\d+)?(?![\w.:/-])", m) if n in numbers]


@pytest.mark.timeout(150)
def test_resync_and_logs_over_mqtt_through_the_running_daemon(tmp_path: Path, broker: devstack.Broker) -> None:
    assert fleet("keygen", "--out", str(tmp_path / "fleet")).returncode == 0
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            devstack.onetouch_meter(tmp_path / "meter", records=8) as meter:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link,
                              extra=f'\n[fleet]\npublic_key_file = "{tmp_path / "fleet" / "fleet.pub"}"\n')
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/residents/+/events/alert")
        gateway.start()
        try:
            wait_until(lambda: "meter downloaded device_id=glucose-kitchen records=8" in gateway.log_text(), 30,
                       "the meter's 8 readings stored")
            common = ("--broker", f"{broker.host}:{broker.port}", "--gateway", GATEWAY_ID,
                      "--key", str(tmp_path / "fleet" / "fleet.key"), "--timeout", "30")
            # Measured now, on a meter left on its cable: its next download of its own is ten minutes away.
            meter.command("add 45")
            resynced = fleet("cmd", *common, "--arg", "device_id=glucose-kitchen", "resync")
            assert resynced.returncode == 0, resynced.stdout
            [device] = json.loads(resynced.stdout)["result"]["devices"]
            assert device["device_id"] == "glucose-kitchen"
            assert device["when"].startswith("at the next poll")
            # The whole memory comes again: the new reading is stored, the eight others are not twice.
            alert = probe.wait_for("events/alert", timeout_s=20)[0]
            assert (alert["kind"], alert["evidence"]["value"]) == ("hypoglycaemia", 2.5)
            assert "readings accepted device=glucose-kitchen new=1 already_had=8" in gateway.log_text()
            assert sum(1 for row in outbox_rows(tmp_path / "data") if row[1] == "blood_glucose") == 9

            answered = fleet("cmd", *common, "--arg", "lines=1000", "logs")
            assert answered.returncode == 0, answered.stdout + answered.stderr
            result = json.loads(answered.stdout)["result"]
            lines = result["lines"]
            assert any("readings accepted device=glucose-kitchen new=8" in line for line in lines), lines
            assert any("alert raised" in line and "kind=hypoglycaemia" in line for line in lines), lines
            assert values_in(lines) == []  # around two downloads and an alert: ids and counts only
            assert result["returned"] == len(lines) <= 1000
            assert len(answered.stdout.encode()) < 260 * 1024
        finally:
            probe.close()
            assert gateway.stop() == 0


@pytest.mark.timeout(150)
def test_a_command_replayed_after_a_restart_is_refused_and_a_retained_one_is_not_run_again(
        tmp_path: Path, broker: devstack.Broker) -> None:
    assert fleet("keygen", "--out", str(tmp_path / "fleet")).returncode == 0
    hub = f"yiyang/v1/{GATEWAY_ID}"
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              extra=f'\n[fleet]\npublic_key_file = "{tmp_path / "fleet" / "fleet.pub"}"\n')
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        # Sees what the fleet tool sends and what the hub answers: a captured command to replay.
        probe = Probe(broker.host, broker.port, f"{hub}/cmd/#")
        gateway.start()
        try:
            common = ("--broker", f"{broker.host}:{broker.port}", "--gateway", GATEWAY_ID,
                      "--key", str(tmp_path / "fleet" / "fleet.key"), "--timeout", "20")
            first = fleet("cmd", *common, "--request-id", "r-queue-1", "queue")
            assert first.returncode == 0, first.stdout + first.stderr
            [captured] = [payload for topic, payload, _ in probe.messages if topic == f"{hub}/cmd/queue"]

            # A command left retained on the broker (a fleet tool's mistake): run once ...
            key = load_pem_private_key((tmp_path / "fleet" / "fleet.key").read_bytes(), password=None)
            assert isinstance(key, Ed25519PrivateKey)
            issued_at = datetime.now(UTC).isoformat()
            document = {"gateway_id": GATEWAY_ID, "command": "ping", "request_id": "r-retained",
                        "issued_at": issued_at, "args": {}}
            retained = json.dumps({"request_id": "r-retained", "issued_at": issued_at, "args": {},
                                   "signature": sign(document, key)}).encode()
            assert publish_once(broker.host, broker.port, f"{hub}/cmd/ping", retained, retain=True)
            answers = probe.wait_for("cmd/ping/result", 1, timeout_s=20)
            assert [(a["request_id"], a["ok"]) for a in answers] == [("r-retained", True)]

            assert gateway.stop() == 0
            gateway.start()
            # ... and after the restart the broker hands it over again on subscribe: refused.
            answers = probe.wait_for("cmd/ping/result", 2, timeout_s=30)
            assert (answers[1]["request_id"], answers[1]["ok"]) == ("r-retained", False)
            assert answers[1]["error"] == "request r-retained was already answered (replay?)"

            # The captured queue command, byte for byte, within its ten minutes: refused by its id.
            assert publish_once(broker.host, broker.port, f"{hub}/cmd/queue", captured)
            answers = probe.wait_for("cmd/queue/result", 2, timeout_s=20)
            assert (answers[1]["request_id"], answers[1]["ok"]) == ("r-queue-1", False)
            assert "already answered" in answers[1]["error"]
        finally:
            publish_once(broker.host, broker.port, f"{hub}/cmd/ping", b"", retain=True)
            probe.close()
            assert gateway.stop() == 0
    log = gateway.log_text()
    assert log.count("command done command=ping request_id=r-retained") == 1
    assert log.count("command done command=queue request_id=r-queue-1") == 1
