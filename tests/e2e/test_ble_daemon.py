"""The daemon (a subprocess) against the fake BlueZ (another process) on a private D-Bus: the real
bleak path from emulated cuff, meter, oximeter, thermometer, button and micro:bit to the reference
platform and the family's MQTT topics."""

from __future__ import annotations

import re
from pathlib import Path

import devstack
import numpy as np
import pytest
from ble_daemon import ble_daemon, types_at
from gatewayproc import GATEWAY_ID, wait_until
from mqtt_probe import Probe
from synthetic import scenario

DRIVERS = {"cuff": "ble-bps", "meter": "ble-gls", "oximeter": "ble-plx", "thermometer": "ble-hts",
           "button": "bthome-button", "microbit": "microbit-accel"}


@pytest.mark.timeout(180)
def test_ble_devices_reach_the_platform_and_the_family(tmp_path: Path, broker: devstack.Broker) -> None:
    settings = {name: {"driver": driver} for name, driver in DRIVERS.items()}
    with ble_daemon(tmp_path, broker, "home", settings) as (platform, bluez, gateway):
        probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/#")
        gateway.start()
        try:
            # The meter's 50 stored records come in by RACP as soon as it is seen.
            wait_until(lambda: types_at(platform)["blood_glucose"] == 50, 60, "50 glucose records")
            bluez.command(cmd="measure", device="cuff", systolic=185, diastolic=100, mean_arterial=128,
                          pulse_rate=80)
            bluez.command(cmd="measure", device="thermometer", celsius=37.1)
            bluez.command(cmd="measure", device="oximeter", spo2=97, pulse_rate=70)
            wait_until(lambda: all(types_at(platform)[t] >= 1 for t in ("blood_pressure", "body_temperature",
                                                                         "spo2")), 60, "cuff, thermometer, oximeter")
            crisis = probe.wait_for("events/alert", timeout_s=20)
            assert any(a["kind"] == "hypertensive_crisis" for a in crisis)

            bluez.command(cmd="press", device="button", event="press")
            wait_until(lambda: any(a["kind"] == "help_request" for a in probe.json_on("events/alert")), 20,
                       "the SOS press as a help request")

            fall = scenario("forward_fall", 50.0).samples.astype(np.float32)
            npy = tmp_path / "fall.npy"
            np.save(npy, fall)
            bluez.command(cmd="feed", device="microbit", npy=str(npy))
            wait_until(lambda: any(a["kind"] == "fall" for a in probe.json_on("events/alert")), 40,
                       "the micro:bit fall")
            wait_until(lambda: types_at(platform)["help_request"] >= 1 and types_at(platform)["fall"] >= 1, 20,
                       "help request and fall records at the platform")
        finally:
            probe.close()
            assert gateway.stop() == 0
    log = gateway.log_text()
    assert "Traceback" not in log
    # Logs carry ids, never measured values (185 as a number of its own; a port like 41855 is not one).
    assert re.search(r"(?<![\d.])185(?![\d.])", log) is None
