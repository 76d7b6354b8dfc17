"""What a typical home costs the hub's SD card in a day: bytes written and fsyncs, measured on the real daemon.

    python bench/sdcard.py [--baseline-s 120] [--night-s 600]

The daemon runs with a typical home's devices (fake BlueZ on a private D-Bus for the BLE ones, a
pty simulator for the radar): a micro:bit wearable streaming at 50 Hz, a blood-pressure cuff, a
glucose meter, a pulse oximeter, the MR60FDA1 radar, status published as usual, the platform and
the broker up. Three phases, each measured from /proc/<pid>/io (write_bytes: what reached the block
layer on the daemon's account) and ``strace -f -C -y`` (fsync and fdatasync calls, and the bytes of
every write by file, printed per phase):

1. the baseline: everything streaming, nothing measured (the wearable, the radar, status);
2. the day's spot measurements: two blood pressures and two glucose readings (each stored, alerted
   on if need be, uploaded, marked delivered);
3. a night of SpO2: the oximeter streaming continuous readings, one summary kept per 10 s (committed
   every two minutes), uploaded, and written delivered every ``mark_delivered_after_s`` (300 s): the phase
   should last several of those (600 s by default).

The daemon's log lines go to a pipe, as under systemd: they are the journal's writes, not the
daemon's, and are reported apart (on a Pi with a persistent journal they reach the same card).

Per day = baseline rate x 24 h + the four spot readings + the night rate x 8 h (the baseline's share
of phases 2 and 3 taken out). Targets: <= 20 MB written and <= 5,000 fsyncs per day, with every
reading and alert still committed before it is acknowledged. Needs strace (scripts/setup.sh).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "scripts"), str(REPO / "tests" / "support")]
import devstack  # noqa: E402
from bluez_process import BluezProcess, fake_bluez_process  # noqa: E402

from gateway.status import read_status, runtime_status_path  # noqa: E402

GATEWAY_ID = "gw-sdcard"
BLE_DRIVERS = {"cuff": "ble-bps", "meter": "ble-gls", "oximeter": "ble-plx", "microbit": "microbit-accel"}
INITIAL_METER_RECORDS = 50
"""The fake meter's memory when the bench starts (tests/support/fake_bluez, scenario "home")."""
TARGET_BYTES_PER_DAY = 20 * 2**20
TARGET_FSYNCS_PER_DAY = 5000
NIGHT_H = 8.0
WRITE_LINE = re.compile(r"(?:write|pwrite64|writev)\((\d+)<(/[^>]*)>.*\) = (\d+)$", re.M)
"""An strace -y line of a write to a file: the descriptor with its path, and the bytes written."""
SYNC_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$", re.M)
"""A line of strace -c's table for fsync or fdatasync: % time, seconds, usecs/call, calls, [errors], name."""


@dataclass(frozen=True)
class Cost:
    bytes_written: int
    fsyncs: int
    seconds: float
    by_file: dict[str, int] = field(default_factory=dict)
    """Bytes the daemon wrote to each regular file (system calls, before the page cache)."""
    logged: int = 0
    """Bytes of log lines (the journal's, not the daemon's own writes)."""

    def minus(self, rate: Cost) -> Cost:
        """This phase with the baseline's share of its duration taken out."""
        share = self.seconds / rate.seconds
        return Cost(max(0, round(self.bytes_written - rate.bytes_written * share)),
                    max(0, round(self.fsyncs - rate.fsyncs * share)), self.seconds)

    def scaled(self, seconds: float) -> Cost:
        factor = seconds / self.seconds
        return Cost(round(self.bytes_written * factor), round(self.fsyncs * factor), seconds)


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError("no write_bytes in /proc/PID/io")


class LogPipe:
    """Reads the daemon's output (the journal's share) and counts its bytes; kept in the work directory
    for the reader only when the bench ends."""

    def __init__(self, stream: IO[bytes], keep_at: Path) -> None:
        self.bytes = 0
        self._lines: list[bytes] = []
        self._keep_at = keep_at
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.bytes += len(line)
            self._lines.append(line)

    def close(self) -> None:
        self._thread.join(timeout=10)
        self._keep_at.write_bytes(b"".join(self._lines))


@contextmanager
def measured(pid: int, into: list[Cost], journal: LogPipe) -> Iterator[None]:
    """Count the daemon's fsyncs (strace attached for the phase) and block-layer bytes written."""
    strace = shutil.which("strace")
    if strace is None:
        raise SystemExit("strace is not installed: run scripts/setup.sh --dev")
    # One tracer (a process has one): -C prints each call (the writes, by file with -y) and the summary.
    tracer = subprocess.Popen([strace, "-f", "-C", "-y", "-qq", "-e", "signal=none", "-e",
                               "trace=fsync,fdatasync,write,pwrite64,writev", "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # strace attaches to every thread
    bytes_before, started, logged_before = write_bytes(pid), time.monotonic(), journal.bytes
    try:
        yield
    finally:
        os.sync()  # what the daemon wrote reaches the block layer on its account before it is read
        seconds = time.monotonic() - started
        written = write_bytes(pid) - bytes_before
        tracer.send_signal(signal.SIGINT)
        _, trace = tracer.communicate(timeout=60)
        fsyncs = sum(int(m.group(1)) for m in SYNC_LINE.finditer(trace))
        into.append(Cost(written, fsyncs, seconds, _bytes_by_file(trace), journal.bytes - logged_before))


def _bytes_by_file(trace: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for match in WRITE_LINE.finditer(trace):
        path = match.group(2)
        if path.startswith(("/dev/", "socket:", "pipe:", "anon_inode:")):
            continue
        totals[path] = totals.get(path, 0) + int(match.group(3))
    return totals


def write_config(workdir: Path, platform: devstack.Platform, broker: devstack.Broker, bluez: BluezProcess,
                 radar: Path) -> Path:
    devices = {name: {"driver": BLE_DRIVERS[name], "address": address}
               for name, address in bluez.devices.items() if name in BLE_DRIVERS}
    devices["radar"] = {"driver": "mr60fda1", "port": str(radar)}
    return devstack.hub_config(workdir, GATEWAY_ID, platform, broker.port, devices)


def wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _status(workdir: Path, runtime: Path) -> dict[str, Any]:
    path = runtime / runtime_status_path(GATEWAY_ID, workdir / "data").name
    return read_status([workdir / "data" / "status.json", path]) or {}


def readings(workdir: Path, runtime: Path, device_id: str) -> int:
    return int(_status(workdir, runtime).get("devices", {}).get(device_id, {}).get("readings_accepted", 0))


def run(args: argparse.Namespace) -> int:
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)  # the disk to measure: a directory made for the run is fine
    workdir = Path(tempfile.mkdtemp(prefix="sdcard-bench-", dir=args.dir))
    costs: list[Cost] = []
    try:
        with devstack.mosquitto(workdir / "broker") as broker, \
                devstack.platform_server(workdir / "platform", GATEWAY_ID) as platform, \
                devstack.radar(workdir / "radar") as radar, \
                fake_bluez_process(workdir / "bluez", "home") as bluez:
            config = write_config(workdir, platform, broker, bluez, radar.link)
            runtime = workdir / "run"
            runtime.mkdir()
            # /run is a tmpfs on a Pi (systemd's RuntimeDirectory): the status file costs the SD card nothing.
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(runtime)], check=True)
            env = dict(os.environ, **bluez.env, RUNTIME_DIRECTORY=str(runtime))
            # Its output goes to a pipe, as under systemd (the journal's stream), not to a file on the
            # disk measured: what the journal writes is journald's, counted apart (LogPipe).
            daemon = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
            assert daemon.stdout is not None
            journal = LogPipe(daemon.stdout, workdir / "daemon.log")
            try:
                if not wait(lambda: _streaming(workdir, runtime), 60):
                    raise SystemExit(f"the wearable never streamed: see {workdir / 'daemon.log'}")
                # The meter's memory (a first visit) and the start-up writes are not a day's cost.
                wait(lambda: readings(workdir, runtime, "meter") >= INITIAL_METER_RECORDS, 120)
                time.sleep(70.0)  # uploaded, and marked delivered a minute after the uplink goes idle
                with measured(daemon.pid, costs, journal):
                    time.sleep(args.baseline_s)
                with measured(daemon.pid, costs, journal):
                    for n in range(2):
                        bluez.command(cmd="measure", device="cuff", systolic=128 + n, diastolic=82, mean_arterial=97,
                                      pulse_rate=70)
                        bluez.command(cmd="add_record", device="meter", mmol_per_l=6.1 + n)
                        wait(lambda n=n: readings(workdir, runtime, "cuff") > n
                             and readings(workdir, runtime, "meter") > INITIAL_METER_RECORDS + n, 90)
                        time.sleep(31.0)  # the BLE manager leaves a device alone for 30 s after a visit
                    time.sleep(65.0)  # uploaded and marked delivered (the uplink marks a minute after going idle)
                with measured(daemon.pid, costs, journal):
                    bluez.command(cmd="measure", device="oximeter", spo2=96, pulse_rate=64)  # it advertises
                    wait(lambda: bluez.command(cmd="status")["devices"]["oximeter"]["connected"], 60)
                    bluez.command(cmd="stream", device="oximeter", seconds=float(args.night_s), rate_hz=1.0)
                    time.sleep(args.night_s)
            finally:
                devstack.stop_process(daemon)
                journal.close()
                subprocess.run(["umount", "-l", str(runtime)], check=False)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    baseline, spot, night = costs
    spot_only, night_only = spot.minus(baseline), night.minus(baseline)
    day = [("baseline (wearable 50 Hz, radar, status) x 24 h", baseline.scaled(86400)),
           ("two blood pressures, two glucose readings", spot_only),
           (f"a night of SpO2 x {NIGHT_H:g} h", night_only.scaled(NIGHT_H * 3600))]
    for label, cost in (("baseline", baseline), ("spot phase", spot), ("night phase", night)):
        print(f"measured {label}: {cost.seconds:.0f} s, {cost.bytes_written / 1024:.0f} KiB, {cost.fsyncs} fsyncs, "
              f"{cost.logged / 1024:.1f} KiB of log lines")
        for path, size in sorted(cost.by_file.items(), key=lambda item: -item[1])[:6]:
            print(f"    written by the daemon to {path}: {size / 1024:.1f} KiB")
    total_bytes = sum(cost.bytes_written for _, cost in day)
    total_fsyncs = sum(cost.fsyncs for _, cost in day)
    for label, cost in day:
        print(f"  {label:>52}: {cost.bytes_written / 2**20:7.2f} MiB  {cost.fsyncs:6d} fsyncs")
    print(f"  {'per day':>52}: {total_bytes / 2**20:7.2f} MiB  {total_fsyncs:6d} fsyncs "
          f"(targets <= {TARGET_BYTES_PER_DAY / 2**20:.0f} MiB, <= {TARGET_FSYNCS_PER_DAY})")
    log_per_day = (baseline.logged / baseline.seconds * 86400 + max(0, spot.logged - baseline.logged
                   * spot.seconds / baseline.seconds) + night.logged / night.seconds * NIGHT_H * 3600)
    print(f"  {'log lines per day (the journal, if persistent)':>52}: {log_per_day / 2**20:7.2f} MiB")
    return 0 if total_bytes <= TARGET_BYTES_PER_DAY and total_fsyncs <= TARGET_FSYNCS_PER_DAY else 1


def _streaming(workdir: Path, runtime: Path) -> bool:
    return bool(_status(workdir, runtime).get("devices", {}).get("microbit", {}).get("last_seen"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline-s", type=float, default=120.0)
    parser.add_argument("--night-s", type=float, default=600.0)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the daemon's data directory goes (the disk measured)")
    parser.add_argument("--keep", action="store_true")
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
