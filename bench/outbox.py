"""Outbox throughput on this machine's disk, and draining a backlog through the real daemon.

    python bench/outbox.py ingest --db-dir DIR [--records N] [--batch 100]
    python bench/outbox.py drain --db-dir DIR [--records 100000]
    python bench/outbox.py inproc --db-dir DIR [--records 100000]
    python bench/outbox.py group --db-dir DIR [--devices 20]
    python bench/outbox.py all --db-dir DIR

``ingest`` prints the durable acceptance rate (records/s) two ways: one commit
per record, as the daemon does for a reading (each commit waits for an fsync,
synchronous=FULL), and ``--batch`` records per transaction. Run it on the hub's
own storage (SD card, eMMC, USB SSD): the figure is dominated by fsync latency,
so a laptop's NVMe says little about a Pi. Each mode gets a fresh database in
DIR, removed afterwards unless ``--keep``.

``inproc`` drains a backlog in process, with no HTTP: batches of 500, each taken after the last place
taken and holding what an unset clock dated, marked delivered by place every 2,000, each mark a
transaction with its fsync, as the uplink does; the figure is the outbox's own ceiling.
``group`` has ``--devices`` callers accept one record each at the same moment, through the async
outbox the daemon uses, and prints how many commits (fsyncs) that took: group commit puts them in one.

``drain`` fills an outbox with a backlog of real-shaped records (what a hub holds after days
offline), starts the reference platform and a private Mosquitto on loopback, runs the gateway
daemon (``python -m gateway run``) on that outbox, and prints the time until the platform holds
every record, the rate, and the daemon's peak RSS (VmHWM from /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers.model import DeviceInfo, Glucose, HubTime, MealContext, Reading, TimeSource
from gateway.clock import PLAUSIBLE_FROM
from gateway.hub import reading_to_record
from gateway.store import DatabaseFile, NewRecord, Priority, StorageLimits, records
from gateway.uplink.service import MARK_EVERY_RECORDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import devstack

TZ = ZoneInfo("Asia/Shanghai")


def _bench_reading(n: int) -> NewRecord:
    """A blood-glucose record exactly as the hub stores it (gateway.wire), about 400 bytes."""
    at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=n)
    reading = Reading(
        device=DeviceInfo("glucose-kitchen", "serial", "OneTouch Ultra 2", "GMF600DCY"),
        resident_id="r-0001",
        measurement=Glucose(round(3.5 + (n % 200) / 20, 2), MealContext.UNKNOWN),
        measured_at=at,
        time_source=TimeSource.DEVICE,
        received=HubTime(at, 0.0, True),
        source_key=f"GMF600DCY|{n}",
    )
    return reading_to_record(reading, TZ, "gw-bench")


def _reading(n: int) -> NewRecord:
    # Shaped like a real blood-pressure record (about 300 bytes of JSON).
    payload = {
        "type": "blood_pressure",
        "resident_id": "R-000123",
        "device_id": "omron-bp-AA:BB:CC:DD:EE:FF",
        "systolic_mmhg": 120 + n % 40,
        "diastolic_mmhg": 80 + n % 20,
        "pulse_bpm": 60 + n % 30,
        "measured_at": "2025-03-01T08:00:00+08:00",
        "received_at": "2025-03-01T00:00:01.123456Z",
        "time_quality": "device_synced",
        "flags": [],
    }
    return NewRecord(
        "blood_pressure",
        Priority.READING,
        json.dumps(payload, separators=(",", ":")),
        datetime.now(UTC),
        f"omron-bp-AA:BB:CC:DD:EE:FF:{n}",
    )


def _ingest_rate(db_path: Path, count: int, per_commit: int) -> float:
    offers = [_reading(n) for n in range(count)]
    with DatabaseFile.open(db_path) as box:
        started = time.perf_counter()
        for start in range(0, count, per_commit):
            box.run(records.accept(offers[start : start + per_commit]))
        elapsed = time.perf_counter() - started
    return count / elapsed


def ingest(args: argparse.Namespace) -> int:
    with _scratch(args, "outbox-bench-") as run_dir:
        modes = [("one commit per record", 1), (f"{args.batch} records per commit", args.batch)]
        print(f"outbox ingest: {args.records} records, db in {run_dir}")
        for n, (label, per_commit) in enumerate(modes):
            rate = _ingest_rate(run_dir / f"ingest-{n}.db", args.records, per_commit)
            print(f"  {label:>28}: {rate:10.0f} records/s")
    return 0


def _ingest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-dir", type=Path, required=True, help="directory on the disk to measure")
    parser.add_argument("--records", type=int, default=2000, help="records per mode (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="records per transaction, batched mode")
    parser.add_argument("--keep", action="store_true", help="keep the databases for inspection")


def _fill(db: Path, count: int) -> None:
    with DatabaseFile.open(db, limits=StorageLimits(budget_bytes=4 * 2**30)) as box:
        for start in range(0, count, 1000):
            box.run(records.accept([_bench_reading(n) for n in range(start, min(count, start + 1000))]))


def _platform_count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def drain(args: argparse.Namespace) -> int:
    with _scratch(args, "drain-bench-") as run_dir:
        data_dir = run_dir / "data"
        data_dir.mkdir()
        started = time.perf_counter()
        _fill(data_dir / "outbox.sqlite", args.records)
        print(f"outbox drain: {args.records} pending records ({time.perf_counter() - started:.1f} s to fill), "
              f"db in {run_dir}")
        with devstack.mosquitto(run_dir / "broker") as broker, \
                devstack.platform_server(run_dir / "platform", "gw-bench") as platform:
            config = run_dir / "gateway.toml"
            config.write_text(f"""
[gateway]
id = "gw-bench"
data_dir = "{data_dir}"
clock_sync = "assume_synced"
[platform]
url = "{platform.url}"
secret_file = "{platform.secret_file}"
[storage]
budget_mb = 4096
[mqtt]
port = {broker.port}
[[residents]]
id = "r-0001"
""", encoding="utf-8")
            with open(run_dir / "daemon.log", "wb") as log:
                daemon = subprocess.Popen([sys.executable, "-m", "gateway", "run", "--config", str(config)],
                                          stdout=log, stderr=log, env=dict(os.environ, PYTHONUNBUFFERED="1"))
            try:
                started = time.perf_counter()
                peak = 0.0
                while (count := _platform_count(platform.db)) < args.records:
                    if daemon.poll() is not None:
                        print(f"  the daemon exited with {daemon.returncode}: see {run_dir / 'daemon.log'}")
                        return 1
                    peak = max(peak, _peak_rss_mb(daemon.pid))
                    if time.perf_counter() - started > args.timeout:
                        print(f"  timed out after {args.timeout} s with {count} records at the platform")
                        return 1
                    time.sleep(0.05)
                elapsed = time.perf_counter() - started
                peak = max(peak, _peak_rss_mb(daemon.pid))
            finally:
                devstack.stop_process(daemon)
        print(f"  {'drain time':>28}: {elapsed:10.1f} s")
        print(f"  {'drain rate':>28}: {args.records / elapsed:10.0f} records/s (target >= 5000)")
        print(f"  {'daemon peak RSS (VmHWM)':>28}: {peak:10.1f} MB (target <= 80)")
    return 0


def inproc(args: argparse.Namespace) -> int:
    with _scratch(args, "outbox-inproc-") as run_dir:
        db = run_dir / "outbox.sqlite"
        _fill(db, args.records)
        with DatabaseFile.open(db, limits=StorageLimits(budget_bytes=4 * 2**30)) as box:
            started = time.perf_counter()
            delivered, marks, commits = 0, [], 0
            reach = None
            marking_s = 0.0
            # As the uplink does: batches of 500 (the platform's request limit) starting after the last
            # place taken, marked delivered per MARK_EVERY_RECORDS in one transaction (one fsync).
            while True:
                batch = box.run(records.pending_batch(max_records=500, max_bytes=1_000_000,
                                                      exclude=[p.record_id for p in marks], after=reach,
                                                      held_before=PLAUSIBLE_FROM))
                marks.extend(record.place for record in batch if record.place is not None)
                delivered += len(batch)
                if batch:
                    reach = batch[-1].place
                if marks and (not batch or len(marks) >= MARK_EVERY_RECORDS):
                    mark_started = time.perf_counter()
                    box.run(records.mark_places_delivered(marks))
                    marking_s += time.perf_counter() - mark_started
                    commits += 1
                    marks, reach = [], None
                elif not batch:
                    break
            elapsed = time.perf_counter() - started
            assert box.stats().pending == 0
        print(f"outbox in-process drain: {delivered} records in {elapsed:.2f} s = {delivered / elapsed:,.0f} records/s "
              f"(batches of 500, {commits} commits with fsync; reading {elapsed - marking_s:.2f} s, "
              f"marking {marking_s:.2f} s)")
    return 0


def group(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from gateway.store import Database, Intake  # noqa: PLC0415

    async def scenario(run_dir: Path) -> tuple[int, float]:
        db = await Database.open(run_dir / "outbox.sqlite")
        box = Intake(db)
        try:
            before = box.commits
            started = time.perf_counter()
            await asyncio.gather(*(box.accept([_reading(n)]) for n in range(args.devices)))
            elapsed = time.perf_counter() - started
            return box.commits - before, elapsed
        finally:
            await box.close()
            await db.close()

    with _scratch(args, "outbox-group-") as run_dir:
        commits, elapsed = asyncio.run(scenario(run_dir))
        print(f"outbox group commit: {args.devices} callers accepting one record each at once: {commits} commit(s), "
              f"{elapsed * 1000:.1f} ms")
    return 0


@contextlib.contextmanager
def _scratch(args: argparse.Namespace, prefix: str) -> Iterator[Path]:
    """A fresh directory under ``--db-dir`` (the disk measured) for one mode, removed after unless ``--keep``."""
    db_dir: Path = args.db_dir
    db_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=prefix, dir=db_dir))
    try:
        yield run_dir
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)


def _drain_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-dir", type=Path, required=True, help="directory on the disk to measure")
    parser.add_argument("--records", type=int, default=100_000, help="backlog size (default 100000)")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the databases for inspection")


def run_all(args: argparse.Namespace) -> int:
    ingest_args = argparse.Namespace(db_dir=args.db_dir, records=2000, batch=100, keep=False)
    inproc_args = argparse.Namespace(db_dir=args.db_dir, records=100_000, keep=False)
    group_args = argparse.Namespace(db_dir=args.db_dir, devices=20, keep=False)
    drain_args = argparse.Namespace(db_dir=args.db_dir, records=args.records, timeout=args.timeout, keep=False)
    return ingest(ingest_args) or inproc(inproc_args) or group(group_args) or drain(drain_args)


def _group_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-dir", type=Path, required=True, help="directory on the disk to measure")
    parser.add_argument("--devices", type=int, default=20, help="callers accepting at the same moment")
    parser.add_argument("--keep", action="store_true", help="keep the databases for inspection")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "inproc": ("in-process drain rate: take and mark delivered, no HTTP", _drain_args, inproc),
    "group": ("commits for many records accepted at once (group commit)", _group_args, group),
    "ingest": ("durable acceptance rate, per-record and batched commits", _ingest_args, ingest),
    "drain": ("time for the daemon to drain a backlog to the reference platform; daemon peak RSS",
              _drain_args, drain),
    "all": ("ingest, in-process drain, group commit, then the daemon's drain", _drain_args, run_all),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, (summary, add_args, run) in COMMANDS.items():
        sub = commands.add_parser(name, help=summary, description=summary)
        add_args(sub)
        sub.set_defaults(run=run)
    args = parser.parse_args(argv)
    if getattr(args, "records", 1) < 1 or getattr(args, "batch", 1) < 1:
        parser.error("--records and --batch must be at least 1")
    run_command: Callable[[argparse.Namespace], int] = args.run
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
