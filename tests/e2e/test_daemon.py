"""The daemon end to end: real meter simulator on a pty, real Mosquitto, reference platform over HTTP."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import devstack
import pytest
from gatewayproc import (
    GATEWAY_ID,
    GatewayProcess,
    cli,
    outbox_rows,
    platform_records,
    set_fault,
    wait_until,
    write_config,
)
from mqtt_probe import Probe

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[devstack.Platform]:
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as p:
        yield p


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[devstack.PtySimulator]:
    with devstack.onetouch_meter(tmp_path / "meter", records=3) as m:
        yield m


@pytest.fixture
def gateway(tmp_path: Path, platform: devstack.Platform, broker: devstack.Broker,
            meter: devstack.PtySimulator) -> Iterator[GatewayProcess]:
    config = write_config(tmp_path / "gateway.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                          secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link)
    # asyncio debug mode logs every callback that holds the loop for more than 100 ms: the
    # tests below assert there is none (no blocking call on the event loop).
    proc = GatewayProcess(config, tmp_path / "daemon.log", env={"PYTHONASYNCIODEBUG": "1"})
    yield proc
    proc.kill()
    if proc.log.exists():
        assert "Executing <" not in proc.log.read_text(errors="replace"), "a callback blocked the event loop"


def readings_at(platform: devstack.Platform) -> list[dict[str, object]]:
    return [r for r in platform_records(platform.db) if r["type"] == "blood_glucose"]


def test_readings_reach_the_platform_and_a_low_glucose_alerts_the_family(
        gateway: GatewayProcess, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/#")
    gateway.start()
    wait_until(lambda: len(readings_at(platform)) == 3, 20, "the meter's 3 readings at the platform")
    assert probe.wait_for("status")[-1]["state"] == "online"
    assert {r["time_source"] for r in readings_at(platform)} == {"device"}

    meter.command("mute")         # taken off the cable
    wait_until(lambda: "meter disconnected" in gateway.log_text(), 10, "the gateway to notice")
    meter.command("add 50")       # 2.8 mmol/L
    meter.command("unmute")       # back on the cable

    alert = probe.wait_for("events/alert", timeout_s=20)[0]
    assert (alert["kind"], alert["severity"], alert["state"], alert["resident_id"]) == (
        "hypoglycaemia", "emergency", "raised", "r-0001")
    assert alert["evidence"]["value"] == 2.78
    wait_until(lambda: any(r["type"] == "alert" for r in platform_records(platform.db)), 10, "the alert uploaded")
    assert len(readings_at(platform)) == 4

    gateway.signal(signal.SIGTERM)
    assert gateway.wait(20) == 0
    assert "gateway stopped" in gateway.log_text()
    assert probe.wait_for("status")[-1]["state"] == "offline"
    # Logs carry ids, never measured values.
    assert "2.78" not in gateway.log_text() and "50 mg" not in gateway.log_text()
    probe.close()

    # The technician's view afterwards.
    queue = cli("queue", "--config", str(gateway.config), "--json")
    assert queue.returncode == 0, queue.stderr
    assert '"pending": 0' in queue.stdout and '"dead": 0' in queue.stdout


def test_a_restart_neither_reuploads_nor_skips(gateway: GatewayProcess, platform: devstack.Platform,
                                                meter: devstack.PtySimulator, tmp_path: Path) -> None:
    gateway.start()
    wait_until(lambda: len(readings_at(platform)) == 3, 20, "3 readings at the platform")
    assert gateway.stop() == 0
    meter.command("add 120")
    gateway.start()
    wait_until(lambda: len(readings_at(platform)) == 4, 20, "the new reading after restart")
    assert gateway.stop() == 0
    rows = outbox_rows(tmp_path / "data")
    assert len([r for r in rows if r[1] == "blood_glucose"]) == 4
    assert len(readings_at(platform)) == 4


def test_garbage_on_the_serial_line_is_survived(tmp_path: Path, platform: devstack.Platform,
                                                broker: devstack.Broker) -> None:
    with devstack.onetouch_meter(tmp_path / "noisy", records=8,
                                 extra_args=("--garbage-rate", "0.1", "--bitflip-rate", "0.05", "--seed", "7")) as m:
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=m.link)
        gateway = GatewayProcess(config, tmp_path / "daemon.log")
        gateway.start()
        try:
            wait_until(lambda: len(readings_at(platform)) == 8, 60, "all 8 readings despite line noise")
            assert gateway.proc is not None and gateway.proc.poll() is None
        finally:
            gateway.stop()
    values = sorted(r["values"]["value"] for r in readings_at(platform))  # type: ignore[index]
    # The simulator's first 8 results, converted: no corrupted value got through.
    assert values == sorted(round(v / 18.016, 2) for v in (81, 105, 176, 63, 142, 98, 250, 45))


def test_platform_answering_nonsense_marks_nothing_delivered(gateway: GatewayProcess,
                                                             platform: devstack.Platform, tmp_path: Path) -> None:
    set_fault(platform.url, "nonsense", count=5)
    gateway.start()
    wait_until(lambda: len(readings_at(platform)) == 3, 30, "delivery once the platform makes sense again")
    assert gateway.stop() == 0
    assert {r[2] for r in outbox_rows(tmp_path / "data")} == {"delivered"}
    assert gateway.log_text().count("platform answer is not usable") == 5


def test_world_readable_secret_is_refused(gateway: GatewayProcess, platform: devstack.Platform) -> None:
    os.chmod(platform.secret_file, 0o644)
    gateway.start()
    assert gateway.wait(20) != 0
    assert "chmod 600" in gateway.log_text()
    assert "demo-secret" not in gateway.log_text()
    check = cli("config", "check", str(gateway.config))
    assert check.returncode == 1 and "chmod 600" in check.stdout


def test_config_check_lists_every_problem_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[gateway]\nid = "GW 1"\ndata_dir = "/var/lib/yiyang"\n\n[platform]\nurl = "ftp://x"\n'
                   'secret_file = "/etc/yiyang/platform.secret"\nbatch_max_records = 9000\n\n'
                   '[[residents]]\nid = "r-1"\ncolour = "blue"\n', encoding="utf-8")
    result = cli("config", "check", str(bad))
    assert result.returncode == 1
    lines = result.stdout
    assert f"{bad}:2:" in lines and "gateway.id" in lines
    assert f"{bad}:6:" in lines and "platform.url" in lines
    assert f"{bad}:8:" in lines and "batch_max_records" in lines
    assert f"{bad}:12:" in lines and "colour" in lines


def test_the_documented_default_config_passes_its_own_check(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    result = cli("config", "check", str(repo / "config" / "gateway.toml"))
    # The shipped file points at /etc/yiyang/platform.secret, which does not exist here:
    # the only problem may be that one, and it must say what to do.
    # A low-disk warning line is about this machine, not the file.
    problems = [line for line in result.stdout.splitlines()[1:] if line.strip() and not line.startswith("warning: ")]
    assert all("secret_file" in p for p in problems), result.stdout


def test_status_tells_the_technician_what_is_wrong(gateway: GatewayProcess, platform: devstack.Platform) -> None:
    not_yet = cli("status", "--config", str(gateway.config))
    assert not_yet.returncode == 1 and "NOT RUNNING" in not_yet.stdout
    gateway.start()
    wait_until(lambda: len(readings_at(platform)) == 3, 20, "3 readings at the platform")
    wait_until(lambda: '"readings_accepted": 3' in cli("status", "--config", str(gateway.config), "--json").stdout,
               10, "status to show the readings within seconds")
    status = cli("status", "--config", str(gateway.config))
    assert "glucose-kitchen" in status.stdout and "onetouch-ultra2" in status.stdout
    assert status.returncode == 0, status.stdout
    gateway.stop()
