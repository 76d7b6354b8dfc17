"""The daemon (a subprocess) against the fake BlueZ (another process) on a private D-Bus: the real
bleak path from emulated cuff, meter, oximeter, thermometer, button and micro:bit to the reference
platform and the family's MQTT topics."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import devstack
import numpy as np
import pytest
from bluez_process import fake_bluez_process
from gatewayproc import GATEWAY_ID, GatewayProcess, platform_records, wait_until, write_config
from mqtt_probe import Probe
from synthetic import scenario

DRIVERS = {"cuff": "ble-bps", "meter": "ble-gls", "oximeter": "ble-plx", "thermometer": "ble-hts",
           "button": "bthome-button", "microbit": "microbit-accel"}


def types_at(platform: devstack.Platform) -> Counter[str]:
    return Counter(str(r["type"]) for r in platform_records(platform.db))


@pytest.mark.timeout(180)
def test_ble_devices_reach_the_platform_and_the_family(tmp_path: Path, broker: devstack.Broker) -> None:
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform, \
            fake_bluez_process(tmp_path / "bluez", "home") as bluez:
        devices = "".join(f"""
[[devices]]
id = "{name}"
driver = "{DRIVERS[name]}"
address = "{address}"
resident = "r-0001"
""" for name, address in bluez.devices.items())
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=broker.port, meter_link=None,
                              extra=devices)
        gateway = GatewayProcess(config, tmp_path / "daemon.log", env=bluez.env)
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
