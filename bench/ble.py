"""BLE figures through the real bleak path (fake BlueZ on a private D-Bus) and the real daemon.

    python bench/ble.py [--cuff-runs 5] [--stream-s 20]

- notification throughput: a glucose meter with 2,000 stored records sends them (measurement +
  context notification each) as fast as the bus takes them; the daemon decodes, pairs, commits and
  advances the RACP cursor. Rate = records stored per second of hub receive time.
- advert to stored reading: a cuff takes a measurement (starts advertising); time until the reading
  is committed in the daemon's outbox (the row's hub receive time minus the moment of measuring).
- one Omron visit (omron-bp): unlock, then both users' whole ring buffers (200 EEPROM reads of 16
  bytes, each a command and a two-part answer): wall time and the daemon's CPU time for the visit.
- CPU of one 50 Hz IMU stream: the daemon's CPU time (utime + stime from /proc) while a micro:bit
  streams, per second and per sample, against the same daemon idle.
- CPU of one streaming oximeter of each vendor kind, alone with the daemon: a PC-60F (an SpO2 frame
  and 25 pleth frames a second through its UART, cut into 20-byte notifications), an O2Ring polled
  once a second, an iChoice clip (one 6-byte frame a second). Per second, and per notification the
  device sent (counted by the fake BlueZ).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests" / "support")]
import devstack  # noqa: E402
from bluez_process import BluezProcess, fake_bluez_process  # noqa: E402

from gateway.status import read_status, runtime_status_path  # noqa: E402

GATEWAY_ID = "gw-bench"
DRIVERS = {"meter": "ble-gls", "cuff": "ble-bps", "microbit": "microbit-accel", "omron": "omron-bp",
           "sinocare": "sinocare-glucose", "pc60f": "viatom-oximeter", "o2ring": "o2ring",
           "ichoice": "ichoice-oximeter"}
OXIMETERS = {"pc60f": "PC-60F, SpO2 + 25 pleth frames/s", "o2ring": "O2Ring, polled 1/s",
             "ichoice": "iChoice, 1 frame/s"}


def write_config(workdir: Path, platform: devstack.Platform, broker: devstack.Broker, bluez: BluezProcess) -> Path:
    return devstack.hub_config(workdir, GATEWAY_ID, platform, broker.port,
                               {name: {"driver": DRIVERS[name], "address": address}
                                for name, address in bluez.devices.items()})


def rows(workdir: Path, record_type: str) -> list[int]:
    """created_at (hub receive time, microseconds since the epoch) of the outbox rows of a type."""
    db = workdir / "data" / "outbox.sqlite"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return [r[0] for r in conn.execute("SELECT created_at FROM records WHERE type = ? ORDER BY created_at",
                                               (record_type,))]
    except sqlite3.OperationalError:
        return []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


KEEP = bool(os.environ.get("BENCH_KEEP"))


def with_daemon(scenario: str, run: Callable[[Path, BluezProcess, subprocess.Popen[bytes]], None]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix=f"ble-bench-{scenario}-"))
    try:
        with devstack.mosquitto(workdir / "broker") as broker, \
                devstack.platform_server(workdir / "platform", GATEWAY_ID) as platform, \
                fake_bluez_process(workdir / "bluez", scenario) as bluez:
            config = write_config(workdir, platform, broker, bluez)
            with open(workdir / "daemon.log", "wb") as log:
                daemon = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                          stdout=log, stderr=log, env=dict(os.environ, **bluez.env))
            try:
                run(workdir, bluez, daemon)
            finally:
                devstack.stop_process(daemon)
    finally:
        if not KEEP:
            shutil.rmtree(workdir, ignore_errors=True)


def throughput(workdir: Path, _bluez: BluezProcess, _daemon: subprocess.Popen[bytes]) -> None:
    if not wait(lambda: len(rows(workdir, "blood_glucose")) >= 2000, 300):
        print(f"  throughput: only {len(rows(workdir, 'blood_glucose'))} of 2000 records arrived")
        return
    stamps = rows(workdir, "blood_glucose")
    span_s = (stamps[-1] - stamps[0]) / 1e6
    rate = (len(stamps) - 1) / span_s
    print(f"  {'RACP download, full handling':>34}: {rate:8.0f} records/s = {2 * rate:8.0f} notifications/s "
          f"(2,000 records in {span_s:.2f} s; measurement + context each)")


def advert_to_stored(runs: int) -> Callable[[Path, BluezProcess, subprocess.Popen[bytes]], None]:
    def run(workdir: Path, bluez: BluezProcess, _daemon: subprocess.Popen[bytes]) -> None:
        time.sleep(3.0)  # scanner up
        delays: list[float] = []
        for n in range(runs):
            before = len(rows(workdir, "blood_pressure"))
            measured = datetime.now(UTC).timestamp()
            bluez.command(cmd="measure", device="cuff", systolic=120 + n, diastolic=80, mean_arterial=93,
                          pulse_rate=70)
            if wait(lambda b=before: len(rows(workdir, "blood_pressure")) > b, 40):  # type: ignore[misc]
                delays.append(rows(workdir, "blood_pressure")[-1] / 1e6 - measured)
            # The manager leaves a device alone for 30 s after a completed session (policy.py).
            time.sleep(31.0)
        if delays:
            print(f"  {'advert to stored reading':>34}: median {np.median(delays) * 1000:6.0f} ms  "
                  f"max {max(delays) * 1000:6.0f} ms  ({len(delays)}/{runs} measurements)")
        else:
            print("  advert to stored reading: no reading stored")
    return run


def omron_visit(workdir: Path, bluez: BluezProcess, daemon: subprocess.Popen[bytes]) -> None:
    time.sleep(3.0)  # scanner up
    cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
    # A measurement starts the cuff advertising; the button held right after lets it take the hub's key.
    bluez.command(cmd="omron_measure", device="omron", user=1, systolic=128, diastolic=82, pulse_rate=70)
    bluez.command(cmd="hold_button", device="omron")

    def done() -> bool:
        connected = bluez.command(cmd="status")["devices"]["omron"]["connected"]
        return bool(rows(workdir, "blood_pressure")) and not connected

    if not wait(done, 120):
        print("  Omron visit: no reading stored")
        return
    cpu, wall = cpu_seconds(daemon.pid) - cpu0, time.monotonic() - t0
    print(f"  {'one Omron visit (200 reads)':>34}: {wall:5.1f} s wall, daemon CPU {cpu * 1000:5.0f} ms "
          f"= {cpu / 200 * 1e3:4.1f} ms per EEPROM read (advert to hang-up)")
    log = (workdir / "daemon.log").read_text(encoding="utf-8", errors="replace")
    print(f"  {'':>34}  sessions: {log.count(' connected device=omron')}, records read: "
          f"{log.count('Omron ring buffer read')} ring buffers")


def imu_cpu(stream_s: float) -> Callable[[Path, BluezProcess, subprocess.Popen[bytes]], None]:
    def run(workdir: Path, _bluez: BluezProcess, daemon: subprocess.Popen[bytes]) -> None:
        status_paths = [workdir / "data" / "status.json", runtime_status_path(GATEWAY_ID, workdir / "data")]

        def streaming() -> bool:
            try:
                return bool((read_status(status_paths) or {})["devices"]["microbit"]["last_seen"])
            except KeyError:
                return False

        if not wait(streaming, 60):
            print("  IMU stream: the micro:bit never streamed")
            return
        time.sleep(2.0)
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(stream_s)
        per_s = (cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0)
        print(f"  {'one 50 Hz IMU stream, daemon CPU':>34}: {per_s * 100:5.1f} % of a core = "
              f"{per_s / 50 * 1e6:5.0f} us per sample (bleak + D-Bus + hub + detector)")
    return run


def oximeter_cpu(name: str, stream_s: float) -> Callable[[Path, BluezProcess, subprocess.Popen[bytes]], None]:
    def run(workdir: Path, bluez: BluezProcess, daemon: subprocess.Popen[bytes]) -> None:
        status_paths = [workdir / "data" / "status.json", runtime_status_path(GATEWAY_ID, workdir / "data")]

        def summarised() -> bool:
            try:
                return bool((read_status(status_paths) or {})["devices"][name]["last_reading"])
            except KeyError:
                return False

        def notifications() -> int:
            return int(bluez.command(cmd="status")["devices"][name]["notifications"])

        bluez.command(cmd="stream", device=name, seconds=stream_s + 40.0, spo2=96, pulse_rate=64)
        if not wait(summarised, 60):
            print(f"  {OXIMETERS[name]}: no SpO2 summary reached the hub")
            return
        time.sleep(2.0)
        cpu0, sent0, t0 = cpu_seconds(daemon.pid), notifications(), time.monotonic()
        time.sleep(stream_s)
        elapsed = time.monotonic() - t0
        per_s = (cpu_seconds(daemon.pid) - cpu0) / elapsed
        rate = (notifications() - sent0) / elapsed
        print(f"  {OXIMETERS[name]:>34}: {per_s * 100:5.1f} % of a core = {per_s / rate * 1e6:5.0f} us per "
              f"notification ({rate:4.1f} notifications/s; bleak + D-Bus + framing + window + hub)")
    return run


def idle_cpu(stream_s: float) -> Callable[[Path, BluezProcess, subprocess.Popen[bytes]], None]:
    def run(_workdir: Path, _bluez: BluezProcess, daemon: subprocess.Popen[bytes]) -> None:
        time.sleep(3.0)
        cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(stream_s)
        per_s = (cpu_seconds(daemon.pid) - cpu0) / (time.monotonic() - t0)
        print(f"  {'same daemon, idle (one cuff)':>34}: {per_s * 100:5.1f} % of a core")
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cuff-runs", type=int, default=3)
    parser.add_argument("--stream-s", type=float, default=20.0)
    args = parser.parse_args()
    print("BLE through bleak and the fake BlueZ, daemon as a separate process:")
    only = os.environ.get("BENCH_ONLY")
    parts = {"throughput": ("big-meter", throughput), "advert": ("cuff", advert_to_stored(args.cuff_runs)),
             "idle": ("cuff", idle_cpu(args.stream_s)), "omron": ("vendors", omron_visit),
             "imu": ("wearable", imu_cpu(args.stream_s)),
             **{name: (name, oximeter_cpu(name, args.stream_s)) for name in OXIMETERS}}
    for name, (scenario, run) in parts.items():
        if not only or only == name:
            with_daemon(scenario, run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
