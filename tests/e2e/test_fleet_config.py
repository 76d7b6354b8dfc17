"""Fleet configuration documents through the real daemon, a real Mosquitto and the reference platform.

A meter keeps delivering through every refused document (the running configuration untouched); a
good document adds a second meter in the same process; one that makes the platform unreachable, and
one that makes the broker unreachable, roll back within the grace period and report; a hub killed
during a trial comes back on the previous configuration and never applies that version again.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import devstack
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fleetdocs import Fleet
from gatewayproc import (
    GATEWAY_ID,
    GatewayProcess,
    platform_records,
    take_meter_off_and_on,
    wait_until,
    write_config,
)
from mqtt_probe import Probe

pytestmark = pytest.mark.timeout(240)

ROOT = f"yiyang/v1/{GATEWAY_ID}/"
GRACE_S = 10  # the smallest [fleet] apply_grace_s allowed


class HubFleet(Fleet):
    """The fleet signing for the hub these tests run (gatewayproc's id)."""

    def payload(self, version: object, config: object, **fields: Any) -> bytes:
        return super().payload(version, config, **{"gateway_id": GATEWAY_ID, **fields})


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    return HubFleet()


@pytest.fixture
def meters(tmp_path: Path) -> Iterator[tuple[devstack.PtySimulator, devstack.PtySimulator]]:
    with devstack.onetouch_meter(tmp_path / "meter-1", records=2) as one, \
            devstack.onetouch_meter(tmp_path / "meter-2", records=3, extra_args=("--serial", "SIM00002Y")) as two:
        yield one, two


def hub_config(tmp_path: Path, fleet: Fleet, platform: devstack.Platform, broker: devstack.Broker,
               meter: devstack.PtySimulator) -> Path:
    key = tmp_path / "fleet.pub"
    key.write_bytes(fleet.public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return write_config(tmp_path / "gateway.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                        secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link,
                        extra=f"[fleet]\npublic_key_file = \"{key}\"\napply_grace_s = {GRACE_S}\n")


def devices_section(*meters: tuple[str, Path]) -> list[dict[str, Any]]:
    return [{"id": device_id, "driver": "onetouch-ultra2", "port": str(link), "resident": "r-0001",
             "poll_interval_s": 0.5} for device_id, link in meters]


def glucose_at(platform: devstack.Platform) -> int:
    return sum(1 for r in platform_records(platform.db) if r["type"] == "blood_glucose")


class Reports:
    """The hub's retained config/reported, as the fleet sees it."""

    def __init__(self, broker: devstack.Broker) -> None:
        self.probe = Probe(broker.host, broker.port, f"{ROOT}config/reported")
        self.seen = 0

    def mark(self) -> None:
        """Only reports from now on count (each new one replaces the retained one before it)."""
        self.seen = len(self.probe.json_on("config/reported"))

    def wait(self, condition: Any, what: str, timeout_s: float = 30.0) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def match() -> bool:
            nonlocal found
            for report in self.probe.json_on("config/reported")[self.seen:]:
                if condition(report):
                    found = report
                    return True
            return False

        wait_until(match, timeout_s, what)
        self.mark()
        return found


def publish(broker: devstack.Broker, payload: bytes) -> None:
    probe = Probe(broker.host, broker.port, f"{ROOT}nothing")
    try:
        probe.publish(f"{ROOT}config/desired", payload, retain=True)
    finally:
        probe.close()


def test_refused_documents_leave_the_meter_delivering_and_a_good_one_adds_a_meter_in_process(
        tmp_path: Path, fleet: Fleet, broker: devstack.Broker, platform: devstack.Platform,
        meters: tuple[devstack.PtySimulator, devstack.PtySimulator]) -> None:
    one, two = meters
    gateway = GatewayProcess(hub_config(tmp_path, fleet, platform, broker, one), tmp_path / "daemon.log")
    reports = Reports(broker)
    gateway.start()
    try:
        wait_until(lambda: glucose_at(platform) == 2, 20, "the first meter's readings")
        pid = gateway.proc.pid if gateway.proc else 0
        section = devices_section(("glucose-kitchen", one.link), ("glucose-hall", two.link))
        forger = HubFleet()
        refusals: list[tuple[str, bytes, str, str]] = [
            ("forged", forger.payload(5, {"devices": section}), "signature", "bad signature"),
            ("unsigned", json.dumps({"gateway_id": GATEWAY_ID, "version": 5, "issued_at": "2026-11-30T10:00:00+08:00",
                                     "config": {}}).encode(), "signature", "no signature"),
            ("other hub", fleet.payload(5, {"devices": section}, gateway_id="gw-other"), "gateway_id", "gw-other"),
            ("invalid", fleet.payload(6, {"devices": [{"id": "BAD ID", "driver": "nope"}]}), "devices[0].id", ""),
            ("forbidden", fleet.payload(7, {"gateway": {"id": "gw-stolen", "data_dir": "/tmp/x"}}), "gateway.id", ""),
            # Over 256 KiB, under the broker's packet limit: it reaches the hub, which refuses it.
            ("oversized", fleet.payload(8, {"padding": "x" * (257 * 1024)}), "(document)", "256 KiB"),
        ]
        for name, payload, path, words in refusals:
            reports.mark()
            publish(broker, payload)
            report = reports.wait(lambda r, path=path: r["status"] == "rejected"
                                  and any(e["path"].startswith(path) for e in r["errors"]), f"{name} rejected")
            assert words in json.dumps(report["errors"]), (name, report)
        # The running configuration untouched: the first meter still delivers, the second is not read.
        take_meter_off_and_on(one, tmp_path / "data", mg_dl=110)
        wait_until(lambda: glucose_at(platform) == 3, 30, "the first meter delivering through the refusals")
        assert gateway.proc is not None and gateway.proc.poll() is None

        # Older than one seen: a replay.
        reports.mark()
        publish(broker, fleet.payload(4, {"devices": section}))
        reports.wait(lambda r: r["status"] == "rejected" and "replay" in json.dumps(r["errors"]), "the replay refused")

        # A good one: the second meter, in the same process, within two polls of it being applied.
        reports.mark()
        publish(broker, fleet.payload(9, {"devices": section}))
        applied = reports.wait(lambda r: r["version"] == 9 and r["status"] == "applied", "version 9 applied",
                               timeout_s=GRACE_S + 20)
        assert applied["applied_version"] == 9
        assert [d["id"] for d in applied["effective"]["devices"]] == ["glucose-kitchen", "glucose-hall"]
        wait_until(lambda: glucose_at(platform) == 6, 20, "the added meter's readings")
        assert gateway.proc is not None and gateway.proc.pid == pid and gateway.proc.poll() is None
    finally:
        reports.probe.close()
        gateway.kill()


def test_a_document_that_cuts_off_the_platform_or_the_broker_rolls_back_and_reports(
        tmp_path: Path, fleet: Fleet, broker: devstack.Broker, platform: devstack.Platform,
        meters: tuple[devstack.PtySimulator, devstack.PtySimulator]) -> None:
    one, _two = meters
    gateway = GatewayProcess(hub_config(tmp_path, fleet, platform, broker, one), tmp_path / "daemon.log")
    reports = Reports(broker)
    gateway.start()
    try:
        wait_until(lambda: glucose_at(platform) == 2, 20, "the meter's readings")
        dead_platform = {"url": f"http://127.0.0.1:{devstack.free_port()}", "secret_file": str(platform.secret_file),
                         "timeout_s": 2.0, "backoff_initial_s": 0.1, "backoff_max_s": 1.0}
        publish(broker, fleet.payload(11, {"platform": dead_platform}))
        rolled = reports.wait(lambda r: r["version"] == 11 and r["status"] == "rolled_back",
                              "the dead platform rolled back", timeout_s=GRACE_S + 20)
        assert rolled["errors"][0]["path"] == "platform"
        assert rolled["applied_version"] is None
        # Uploads go on to the platform that is there.
        take_meter_off_and_on(one, tmp_path / "data", mg_dl=95)
        wait_until(lambda: glucose_at(platform) == 3, 30, "uploads going on after the rollback")

        # A broker nobody answers at: the hub loses its broker, rolls back, and reports on the old one.
        publish(broker, fleet.payload(12, {"mqtt": {"port": devstack.free_port()}}))
        rolled = reports.wait(lambda r: r["version"] == 12 and r["status"] == "rolled_back",
                              "the unreachable broker rolled back, reported on the old broker", timeout_s=GRACE_S + 30)
        assert rolled["errors"][0]["path"] == "mqtt"
        assert gateway.proc is not None and gateway.proc.poll() is None
    finally:
        reports.probe.close()
        gateway.kill()


def test_a_hub_killed_during_a_trial_comes_back_on_the_old_configuration_and_never_applies_it(
        tmp_path: Path, fleet: Fleet, broker: devstack.Broker, platform: devstack.Platform,
        meters: tuple[devstack.PtySimulator, devstack.PtySimulator]) -> None:
    one, _two = meters
    gateway = GatewayProcess(hub_config(tmp_path, fleet, platform, broker, one), tmp_path / "daemon.log")
    reports = Reports(broker)
    gateway.start()
    try:
        wait_until(lambda: glucose_at(platform) == 2, 20, "the meter's readings")
        # A port that never opens keeps the trial going for the whole grace period: kill it then.
        section = devices_section(("glucose-kitchen", one.link), ("glucose-ghost", tmp_path / "no-such-port"))
        publish(broker, fleet.payload(21, {"devices": section}))
        state = tmp_path / "data" / "fleet" / "state.json"
        wait_until(lambda: state.exists() and json.loads(state.read_text()).get("trial") is not None, 15,
                   "the trial on disk")
        assert gateway.proc is not None
        os.kill(gateway.proc.pid, signal.SIGKILL)
        gateway.proc.wait(10)
        gateway.start()  # the document is still retained on the broker
        rolled = reports.wait(lambda r: r["version"] == 21 and r["status"] == "rolled_back",
                              "the trial rolled back after the restart", timeout_s=30)
        assert "restart" in json.dumps(rolled["errors"])
        assert [d["id"] for d in rolled["effective"]["devices"]] == ["glucose-kitchen"]
        # Still retained, never applied: the hub runs the old configuration and says nothing new.
        take_meter_off_and_on(one, tmp_path / "data", mg_dl=88)
        wait_until(lambda: glucose_at(platform) == 3, 30, "the old configuration delivering")
        assert json.loads(state.read_text())["trial"] is None
        assert gateway.proc is not None and gateway.proc.poll() is None
    finally:
        reports.probe.close()
        gateway.kill()
