"""The uplink against the real reference platform in each fault mode: how hard does it knock?

    python bench/uplink_faults.py [--seconds 60] [--records 20000] [--modes healthy,400-all,...]

For each mode a fresh reference platform (scripts/platform_server.py, a subprocess on loopback)
and a fresh outbox holding a backlog of real-shaped glucose records; the Uplink runs in this
process with its production settings (backoff 1 s doubling to 300 s, full jitter, the error
throttle's defaults) for ``--seconds``, then the figures: requests sent, requests a minute, the
busiest second, the platform's answers by status, records delivered, dead-lettered and pending,
and the batch limit the uplink settled on. For ``healthy`` also the backlog's drain rate (the
throttle must not slow it).

Modes:
    healthy          the platform takes everything
    400-all          the platform answers 400 to every request (changed API, mangling proxy)
    413-all          the platform answers 413 to every request
    413-above-64k    a proxy refuses bodies over 64 KiB (decompressed)
    one-bad-record   one malformed record (values not an object) among the backlog
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.store import Database, NewRecord, Priority, StorageLimits, records
from gateway.uplink import HttpResponse, Uplink, post

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import devstack

GATEWAY_ID = "gw-bench"
SECRET = "bench-secret-0123456789abcdef"
TZ = ZoneInfo("Asia/Shanghai")
BAD_INDEX = 317
MODES: dict[str, tuple[str, ...]] = {
    "healthy": (),
    "400-all": ("--faults", "400"),
    "413-all": ("--faults", "413"),
    "413-above-64k": ("--faults", "413:max_bytes=65536"),
    "one-bad-record": (),
}


def reading(n: int) -> NewRecord:
    """A blood-glucose record shaped as the hub stores it (gateway.wire), about 400 bytes."""
    at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(seconds=n)
    local = at.astimezone(TZ).isoformat()
    payload = {
        "type": "blood_glucose", "resident_id": "r-0001",
        "device": {"id": "glucose-kitchen", "model": "OneTouch Ultra 2", "transport": "serial",
                   "serial": "GMF600DCY"},
        "measured_at": local, "received_at": local, "time_source": "device",
        "values": {"value": round(3.5 + (n % 200) / 20, 2), "meal": "unknown", "sample": "capillary_plasma"},
        "unit": "mmol/L", "flags": [],
    }
    return NewRecord("blood_glucose", Priority.READING, json.dumps(payload, separators=(",", ":")), at,
                     f"glucose-kitchen|GMF600DCY|{n}")


def malformed(record: NewRecord) -> NewRecord:
    payload = json.loads(record.payload_json)
    payload["values"] = "corrupted in storage"
    return NewRecord(record.type, record.priority, json.dumps(payload), record.created_at, record.dedupe_key)


class CountingTransport:
    """The real HTTP POST, with the time of each request kept (the busiest second is a client-side figure)."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpResponse:
        self.sent_at.append(time.monotonic())
        return post(url, body, headers, timeout_s)

    def busiest_second(self) -> int:
        peak, first = 0, 0
        for last, at in enumerate(self.sent_at):
            while at - self.sent_at[first] >= 1.0:
                first += 1
            peak = max(peak, last - first + 1)
        return peak


@dataclass(frozen=True)
class Figures:
    mode: str
    seconds: float
    requests: int
    busiest_second: int
    answers: dict[str, int]
    delivered: int
    dead: int
    pending: int
    batch_limit: tuple[int, int]
    drain_s: float | None

    def line(self) -> str:
        per_minute = self.requests * 60.0 / self.seconds
        answers = " ".join(f"{status}:{count}" for status, count in sorted(self.answers.items())) or "-"
        drain = (f"  drained in {self.drain_s:.2f} s ({self.delivered / self.drain_s:,.0f} records/s)"
                 if self.drain_s else "")
        return (f"{self.mode:<15} {self.requests:>6} {per_minute:>9.1f} {self.busiest_second:>7} "
                f"{self.delivered:>9} {self.dead:>5} {self.pending:>8}  {self.batch_limit[0]:>3} rec/"
                f"{self.batch_limit[1]:>7} B  {answers}{drain}")


def platform_answers(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/admin/records", timeout=10) as answer:
        counts: dict[str, Any] = json.loads(answer.read())
    return {str(k): int(v) for k, v in counts["upload_answers"].items()}


async def run_mode(mode: str, seconds: float, count: int, workdir: Path) -> Figures:
    backlog = [reading(n) for n in range(count)]
    if mode == "one-bad-record":
        backlog[BAD_INDEX] = malformed(backlog[BAD_INDEX])
    with devstack.platform_server(workdir / "platform", GATEWAY_ID, secret=SECRET, extra_args=MODES[mode]) as platform:
        outbox = await Database.open(workdir / "outbox.db", limits=StorageLimits(budget_bytes=4 * 2**30))
        try:
            for start in range(0, count, 1000):
                await outbox.run(records.accept(backlog[start : start + 1000]))
            transport = CountingTransport()
            uplink = Uplink(gateway_id=GATEWAY_ID, base_url=platform.url, secret=SECRET.encode(), outbox=outbox,
                            clock_synced=lambda: True, transport=transport)
            started = time.monotonic()
            task = asyncio.create_task(uplink.run())
            drain_s = None
            while (elapsed := time.monotonic() - started) < seconds:
                if drain_s is None and (await outbox.stats()).pending == 0:
                    drain_s = elapsed
                await asyncio.sleep(0.05)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stats = await outbox.stats()
            status = uplink.status
            answers = await asyncio.to_thread(platform_answers, platform.url)
        finally:
            await outbox.close()
    return Figures(mode=mode, seconds=seconds, requests=len(transport.sent_at),
                   busiest_second=transport.busiest_second(), answers=answers, delivered=stats.delivered,
                   dead=stats.dead, pending=stats.pending,
                   batch_limit=(status.batch_max_records, status.batch_max_bytes), drain_s=drain_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="run time per mode (default 60)")
    parser.add_argument("--records", type=int, default=20_000, help="backlog per mode (default 20000)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--verbose", action="store_true", help="show the uplink's own log (stderr)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s) {unknown}; choose from {list(MODES)}")
    print(f"uplink against the reference platform: {args.seconds:g} s per mode, backlog {args.records} records")
    print(f"{'mode':<15} {'reqs':>6} {'reqs/min':>9} {'peak/s':>7} {'delivered':>9} {'dead':>5} {'pending':>8}"
          "  learned limit      answers")
    for mode in modes:
        with tempfile.TemporaryDirectory(prefix=f"uplink-bench-{mode}-") as tmp:
            figures = asyncio.run(run_mode(mode, args.seconds, args.records, Path(tmp)))
        print(figures.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
