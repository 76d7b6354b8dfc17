"""The daemon (a subprocess) against the fake BlueZ (another process): an Omron cuff speaking Omron's own
protocol and a Sinocare meter, through the real bleak path to the reference platform, each reading once."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import devstack
import pytest
from ble_daemon import ble_daemon, types_at
from gatewayproc import platform_records, wait_until

SETTINGS = {"omron": {"driver": "omron-bp"}, "sinocare": {"driver": "sinocare-glucose"}}
IDS = {"omron": "bp-omron", "sinocare": "glucose-sinocare"}


def values_at(platform: devstack.Platform, kind: str) -> list[dict[str, object]]:
    return [r["values"] for r in platform_records(platform.db) if r["type"] == kind]


@pytest.mark.timeout(240)
def test_omron_and_sinocare_readings_reach_the_platform_once_each(tmp_path: Path, broker: devstack.Broker) -> None:
    with ble_daemon(tmp_path, broker, "vendors", SETTINGS, IDS) as (platform, bluez, gateway):
        # Two users' readings in the cuff's memory, and the cuff showing -P- for the hub's key.
        bluez.command(cmd="omron_measure", device="omron", user=1, systolic=143, diastolic=91, pulse_rate=77)
        bluez.command(cmd="omron_measure", device="omron", user=2, systolic=121, diastolic=79, pulse_rate=66)
        bluez.command(cmd="hold_button", device="omron")
        bluez.command(cmd="sinocare_measure", device="sinocare", mmol_per_l=6.1)
        gateway.start()
        try:
            wait_until(lambda: types_at(platform)["blood_pressure"] == 2 and types_at(platform)["blood_glucose"] == 4,
                       60, "two Omron readings and four Sinocare results")
            # Second visits: the cuff's whole memory and the meter's whole history are read again.
            wait_until(lambda: not any(d["connected"] for d in bluez.command(cmd="status")["devices"].values()), 20,
                       "both devices to hang up")
            bluez.command(cmd="omron_measure", device="omron", user=1, systolic=138, diastolic=88, pulse_rate=72)
            bluez.command(cmd="sinocare_measure", device="sinocare", mmol_per_l=7.4)
            wait_until(lambda: types_at(platform)["blood_pressure"] >= 3 and types_at(platform)["blood_glucose"] >= 5,
                       90, "the new reading of each, after the hub's pause between visits")
        finally:
            assert gateway.stop() == 0
        assert types_at(platform)["blood_pressure"] == 3
        assert types_at(platform)["blood_glucose"] == 5
        assert sorted(v["systolic"] for v in values_at(platform, "blood_pressure")) == [121, 138, 143]
        assert sorted(v["value"] for v in values_at(platform, "blood_glucose")) == [5.1, 5.2, 5.3, 6.1, 7.4]
    log = gateway.log_text()
    assert "Traceback" not in log
    # The hub's Omron key is in the outbox's cursor table, and nowhere in the log or at the platform.
    outbox = next((tmp_path / "data").rglob("outbox*.sqlite"))
    with sqlite3.connect(outbox) as conn:
        (key,) = conn.execute("SELECT value FROM cursors WHERE name = 'omron-bp:bp-omron:unlock-key'").fetchone()
    assert re.fullmatch(r"[0-9a-f]{32}", key)
    assert key not in log and key.upper() not in log
    assert not any(key in str(record) for record in platform_records(platform.db))
