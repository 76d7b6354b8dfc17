"""Outbox throughput on this machine's disk.

    python bench/outbox.py ingest --db-dir DIR [--records N] [--batch 100]

``ingest`` prints the durable acceptance rate (records/s) two ways: one commit
per record, as the daemon does for a reading (each commit waits for an fsync,
synchronous=FULL), and ``--batch`` records per transaction. Run it on the hub's
own storage (SD card, eMMC, USB SSD): the figure is dominated by fsync latency,
so a laptop's NVMe says little about a Pi. Each mode gets a fresh database in
DIR, removed afterwards unless ``--keep``.

Further subcommands (``drain``: pending_batch + mark_delivered rates) plug into
``COMMANDS``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from gateway.store import NewRecord, Outbox, Priority


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


def _ingest_rate(db_path: Path, records: int, per_commit: int) -> float:
    offers = [_reading(n) for n in range(records)]
    with Outbox.open(db_path) as box:
        started = time.perf_counter()
        for start in range(0, records, per_commit):
            box.accept(offers[start : start + per_commit])
        elapsed = time.perf_counter() - started
    return records / elapsed


def ingest(args: argparse.Namespace) -> int:
    db_dir: Path = args.db_dir
    db_dir.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="outbox-bench-", dir=db_dir))
    try:
        modes = [("one commit per record", 1), (f"{args.batch} records per commit", args.batch)]
        print(f"outbox ingest: {args.records} records, db in {run_dir}")
        for n, (label, per_commit) in enumerate(modes):
            rate = _ingest_rate(run_dir / f"ingest-{n}.db", args.records, per_commit)
            print(f"  {label:>28}: {rate:10.0f} records/s")
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


def _ingest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-dir", type=Path, required=True, help="directory on the disk to measure")
    parser.add_argument("--records", type=int, default=2000, help="records per mode (default 2000)")
    parser.add_argument("--batch", type=int, default=100, help="records per transaction, batched mode")
    parser.add_argument("--keep", action="store_true", help="keep the databases for inspection")


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "ingest": ("durable acceptance rate, per-record and batched commits", _ingest_args, ingest),
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
