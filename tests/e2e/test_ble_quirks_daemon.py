"""The daemon (a subprocess) against the fake BlueZ's "quirks" scenario: an encrypted Xiaomi MiBeacon
thermometer, an A&D UA-651BLE, a cuff that measures nothing but NaN, and a glucose meter that resends its
whole history on every visit and then has its memory wiped. Each reading at the reference platform once."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import devstack
import pytest
from ble_daemon import ble_daemon, types_at
from gatewayproc import platform_records, wait_until

MI_KEY = "b65f0e3b2cd35e8a4a3f6e9c5d7e1a20"  # the fake XiaomiThermometer's default bind key
DEVICES = {"mi-thermo": {"driver": "xiaomi-mibeacon", "bind_key": MI_KEY}, "and-cuff": {"driver": "and-bp"},
           "cuff": {"driver": "ble-bps"}, "meter": {"driver": "ble-gls"}}
NAN_ONLY = "04" + "ff07" * 4  # 0x2A35 with pulse: NaN pressures, NaN pulse, no status field


def statuses_saying(platform: devstack.Platform, word: str) -> list[dict[str, object]]:
    return [r for r in platform_records(platform.db) if r["type"] == "device_status" and word in json.dumps(r)]


@pytest.mark.timeout(180)
def test_quirky_devices_reach_the_platform_once_each(tmp_path: Path, broker: devstack.Broker) -> None:
    with ble_daemon(tmp_path, broker, "quirks", DEVICES) as (platform, bluez, gateway):
        gateway.start()
        try:
            # The meter sends all 10 records on every visit; the platform has each once.
            wait_until(lambda: types_at(platform)["blood_glucose"] == 10, 60, "10 glucose records")
            bluez.command(cmd="measure", device="and-cuff", systolic=151, diastolic=96, mean_arterial=114,
                          pulse_rate=79)
            bluez.command(cmd="measure", device="mi-thermo", celsius=38.7)
            wait_until(lambda: types_at_end(platform_records(platform.db)) == {
                "blood_glucose": 10, "blood_pressure": 1, "body_temperature": 1},
                60, "the A&D cuff's reading and the Xiaomi thermometer's")
            bluez.command(cmd="store_raw", device="cuff", hex=NAN_ONLY)
            wait_until(lambda: bool(statuses_saying(platform, "measurement_failed")), 60,
                       "the NaN-only measurement as a device error")

            bluez.command(cmd="add_record", device="meter", mmol_per_l=4.6, meal=3)
            wait_until(lambda: types_at(platform)["blood_glucose"] == 11, 60, "the new glucose record")
            bluez.command(cmd="reset_memory", device="meter")
            bluez.command(cmd="add_record", device="meter", mmol_per_l=3.3, meal=3)
            bluez.command(cmd="add_record", device="meter", mmol_per_l=9.2, meal=2)
            wait_until(lambda: types_at(platform)["blood_glucose"] == 13, 60, "the records after the reset")
            wait_until(lambda: bool(statuses_saying(platform, "memory_reset")), 30, "the reset as a device error")
        finally:
            assert gateway.stop() == 0
        records = platform_records(platform.db)
    readings = [r for r in records if r["type"] in ("blood_glucose", "blood_pressure", "body_temperature")]
    assert len({r["record_id"] for r in readings}) == len(readings) == 15
    assert types_at_end(records) == {"blood_glucose": 13, "blood_pressure": 1, "body_temperature": 1}
    log = gateway.log_text()
    assert "Traceback" not in log
    # Logs carry ids, never measured values (151 as a number of its own).
    assert re.search(r"(?<![\d.])151(?![\d.])", log) is None


def types_at_end(records: list[dict[str, object]]) -> dict[str, int]:
    counts = Counter(str(r["type"]) for r in records)
    return {kind: counts[kind] for kind in ("blood_glucose", "blood_pressure", "body_temperature")}
