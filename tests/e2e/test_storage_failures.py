"""The daemon against real storage failures: a full disk, a read-only data directory, a deleted and a
corrupt outbox. Real tmpfs mounts (root), real meter simulator on a pty, real Mosquitto, the
reference platform over HTTP.

What must hold: the family hears a hypoglycaemia within 5 s whatever the disk does, the daemon
stays up, and once the disk is back every reading is at the platform exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import devstack
import pytest
from gatewayproc import (
    GATEWAY_ID,
    GatewayProcess,
    platform_records,
    status_of,
    take_meter_off_and_on,
    wait_until,
    write_config,
)
from mqtt_probe import Probe
from tmpfs import fill, remount, tmpfs

from gateway.status import read_status

pytestmark = pytest.mark.timeout(180)

ALERT_WITHIN_S = 5.0
DEVICE = "glucose-kitchen"


@pytest.fixture
def meter(tmp_path: Path) -> Iterator[devstack.PtySimulator]:
    with devstack.onetouch_meter(tmp_path / "meter", records=3) as m:
        yield m


@pytest.fixture
def data_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "data", 4096) as mountpoint:
        yield mountpoint


def readings_at(platform: devstack.Platform) -> list[dict[str, Any]]:
    return [r for r in platform_records(platform.db) if r["type"] == "blood_glucose"]


def measurements(platform: devstack.Platform) -> Counter[tuple[str, float]]:
    """What the platform holds, by content: a reading stored twice under two ids counts 2 here."""
    return Counter((r["measured_at"], r["values"]["value"]) for r in readings_at(platform))


def wait_for_hypo_alert(probe: Probe, since: float) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((a for a in probe.json_on("events/alert") if a["kind"] == "hypoglycaemia"), None)

    wait_until(lambda: found() is not None, 15, "the hypoglycaemia alert at the family's subscriber")
    arrived = time.monotonic()
    alert = found()
    assert alert is not None
    assert arrived - since <= ALERT_WITHIN_S, f"the alert took {arrived - since:.1f} s"
    assert (alert["severity"], alert["resident_id"]) == ("emergency", "r-0001")
    return alert


def start_gateway(tmp_path: Path, data_dir: Path, platform: devstack.Platform, broker: devstack.Broker,
                  meter: devstack.PtySimulator, storage: str = "") -> GatewayProcess:
    config = write_config(tmp_path / "gateway.toml", data_dir=data_dir, platform_url=platform.url,
                          secret_file=platform.secret_file, broker_port=broker.port, meter_link=meter.link,
                          extra=f"[storage]\n{storage}\n")
    gateway = GatewayProcess(config, tmp_path / "daemon.log")
    gateway.start()
    wait_until(lambda: len(readings_at(platform)) == 3, 20, "the meter's 3 readings at the platform")
    return gateway


def assert_up(gateway: GatewayProcess) -> None:
    assert gateway.proc is not None and gateway.proc.poll() is None, "the daemon stopped"


def test_a_full_disk_still_alerts_within_5_s_and_every_reading_arrives_once_when_space_returns(
        tmp_path: Path, data_disk: Path, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    # No reserve here, so the disk is truly full and the in-memory path is what carries the alert
    # (the reserve has its own test in tests/store/test_resilience.py).
    gateway = start_gateway(tmp_path, data_disk, platform, broker, meter, storage="reserve_mb = 0")
    probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/#")
    try:
        filler = fill(data_disk)
        plugged_in = take_meter_off_and_on(meter, data_disk, mg_dl=45)
        wait_for_hypo_alert(probe, plugged_in)

        wait_until(lambda: status_of(data_disk).get("storage", {}).get("writable") is False, 10,
                   "the status to say storage is failing")
        assert status_of(data_disk)["storage"]["held_records"] >= 1
        assert_up(gateway)
        assert len(readings_at(platform)) == 3  # the new one is held, not yet anywhere on disk

        filler.unlink()
        wait_until(lambda: len(readings_at(platform)) == 4, 30, "the held reading at the platform")
        wait_until(lambda: any(r["type"] == "alert" for r in platform_records(platform.db)), 30,
                   "the held alert at the platform")
        wait_until(lambda: status_of(data_disk).get("storage", {}).get("writable") is True, 10,
                   "the status to say storage is fine again")
        assert max(measurements(platform).values()) == 1
        assert_up(gateway)
    finally:
        probe.close()
        gateway.kill()


def test_a_read_only_data_directory_alerts_within_5_s_and_loses_nothing_once_writable(
        tmp_path: Path, data_disk: Path, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    # A filesystem cannot be remounted read-only under a process writing to it ("busy"): the kernel
    # does that only on its own errors. What a technician meets is a hub starting on a read-only data
    # directory (the case that used to pass `config check` and die at the first write): that is this.
    gateway = start_gateway(tmp_path, data_disk, platform, broker, meter)
    probe = Probe(broker.host, broker.port, f"yiyang/v1/{GATEWAY_ID}/#")
    try:
        assert gateway.stop() == 0
        remount(data_disk, read_only=True)
        meter.command("add 45")  # measured while the hub was down; the meter stays on its cable
        gateway.start()
        wait_until(lambda: status_of(data_disk).get("storage", {}).get("writable") is False, 20,
                   "the daemon up on a read-only data directory, saying so")
        # From the moment the daemon is up (its first status): the meter is read and the family told.
        wait_for_hypo_alert(probe, time.monotonic())
        assert_up(gateway)
        assert len(readings_at(platform)) == 3

        remount(data_disk, read_only=False)
        wait_until(lambda: len(readings_at(platform)) == 4, 30, "the held reading at the platform")
        wait_until(lambda: any(r["type"] == "alert" for r in platform_records(platform.db)), 30,
                   "the held alert at the platform")
        assert max(measurements(platform).values()) == 1
        assert_up(gateway)
    finally:
        probe.close()
        gateway.kill()


def test_an_outbox_deleted_running_or_stopped_counts_no_reading_twice(
        tmp_path: Path, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    data_dir = tmp_path / "data"
    outbox = data_dir / "outbox.sqlite"
    gateway = start_gateway(tmp_path, data_dir, platform, broker, meter)
    try:
        # Deleted while running: noticed, and written back with what it held.
        inode = outbox.stat().st_ino
        for suffix in ("", "-wal", "-shm"):
            Path(f"{outbox}{suffix}").unlink(missing_ok=True)
        wait_until(lambda: outbox.exists() and outbox.stat().st_ino != inode, 15, "the outbox written back")
        wait_until(lambda: len(delivered_readings(outbox)) == 3, 10, "the restored outbox to know the 3 readings")
        assert_up(gateway)

        # Deleted while stopped: a fresh outbox reads the meter's whole memory again; the ids are the
        # ones the platform already has, so it answers "duplicate" and counts nothing twice.
        assert gateway.stop() == 0
        for suffix in ("", "-wal", "-shm"):
            Path(f"{outbox}{suffix}").unlink(missing_ok=True)
        gateway.start()
        wait_until(lambda: outbox.exists() and len(delivered_readings(outbox)) == 3, 30,
                   "the meter read again into the fresh outbox and answered for by the platform")
        assert len(readings_at(platform)) == 3
        assert max(measurements(platform).values()) == 1
    finally:
        gateway.kill()


def test_a_corrupt_outbox_is_moved_aside_and_counts_no_reading_twice(
        tmp_path: Path, platform: devstack.Platform, broker: devstack.Broker,
        meter: devstack.PtySimulator) -> None:
    data_dir = tmp_path / "data"
    outbox = data_dir / "outbox.sqlite"
    gateway = start_gateway(tmp_path, data_dir, platform, broker, meter)
    try:
        assert gateway.stop() == 0
        outbox.write_bytes(b"an SD card gone bad " * 4000)
        gateway.start()
        wait_until(lambda: len(delivered_readings(outbox)) == 3, 30,
                   "the meter read again into a fresh outbox and answered for by the platform")
        (moved,) = data_dir.glob("outbox.sqlite.corrupt-*")
        assert moved.read_bytes().startswith(b"an SD card gone bad")
        assert len(readings_at(platform)) == 3
        assert max(measurements(platform).values()) == 1
        wait_until(lambda: any(moved.name in p for p in status_of(data_dir).get("problems", [])), 10,
                   "the technician told about the moved file")
        assert_up(gateway)
    finally:
        gateway.kill()


def delivered_readings(outbox: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=5) as conn:
            rows = conn.execute(
                "SELECT record_id FROM records WHERE type = 'blood_glucose' AND state = 'delivered'").fetchall()
    except sqlite3.Error:
        return []
    return [row[0] for row in rows]


def test_status_json_is_parseable_for_tools(tmp_path: Path) -> None:
    # read_status takes the freshest of several files and survives a half-written one.
    first, second, broken = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    first.write_text(json.dumps({"updated_at": "2026-11-30T10:00:00+00:00", "which": "a"}))
    second.write_text(json.dumps({"updated_at": "2026-11-30T10:00:05+00:00", "which": "b"}))
    broken.write_text('{"updated_at": "2026-11-30T10:')
    assert (read_status([first, second, broken]) or {})["which"] == "b"
    assert read_status([tmp_path / "missing.json"]) is None
