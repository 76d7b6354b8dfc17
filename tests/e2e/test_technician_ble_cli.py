"""The technician's Bluetooth commands as a technician runs them: `yiyang scan` against the fake
BlueZ (real bleak path), then `yiyang bind` to put a device into the configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import devstack
import pytest
from bluez_process import fake_bluez_process
from gatewayproc import GATEWAY_ID, write_config

from gateway.config import load_config


def yiyang(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **env), check=False)


@pytest.mark.timeout(120)
def test_scan_lists_health_devices_and_bind_adds_one(tmp_path: Path) -> None:
    with fake_bluez_process(tmp_path / "bluez", "home") as bluez, \
            devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as platform:
        bluez.command(cmd="measure", device="cuff", systolic=120, diastolic=80, mean_arterial=93, pulse_rate=70)
        config = write_config(tmp_path / "gw.toml", data_dir=tmp_path / "data", platform_url=platform.url,
                              secret_file=platform.secret_file, broker_port=1883, meter_link=None)
        config.write_text("# installed by technician 007\n" + config.read_text(encoding="utf-8"), encoding="utf-8")

        scan = yiyang("scan", "--seconds", "2", "--config", str(config), env=bluez.env)
        assert scan.returncode == 0, scan.stdout + scan.stderr
        assert "scanning..." in scan.stdout
        assert bluez.devices["cuff"] in scan.stdout
        assert "ble-bps" in scan.stdout
        assert "microbit-accel" in scan.stdout

        bound = yiyang("bind", "--config", str(config), "--id", "bp-bedroom", "--driver", "ble-bps",
                       "--address", bluez.devices["cuff"], "--resident", "r-0001", env=bluez.env)
        assert bound.returncode == 0, bound.stdout + bound.stderr
        assert config.read_text(encoding="utf-8").startswith("# installed by technician 007\n")
        devices = load_config(config).devices
        assert [(d.id, d.driver, d.address) for d in devices] == [("bp-bedroom", "ble-bps", bluez.devices["cuff"])]

        rescan = yiyang("scan", "--seconds", "2", "--config", str(config), env=bluez.env)
        assert "bp-bedroom" in rescan.stdout  # now shown as configured

        refused = yiyang("bind", "--config", str(config), "--id", "x", "--driver", "ble-bps",
                         "--address", "AA:BB:CC:DD:EE:FF", "--resident", "nobody", env=bluez.env)
        assert refused.returncode == 1
        assert "nobody" in refused.stderr
        assert len(load_config(config).devices) == 1  # the file was left as it was
