"""The hub side of the uplink tests: a real outbox and an uplink draining it, on a checked event loop.

The platform side is the ``platform_factory`` fixture in tests/uplink/conftest.py (the reference
platform server as a subprocess, for ``GATEWAY_ID`` with ``SECRET``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon_outbox import DaemonOutbox
from loopcheck import run_checked

from gateway.store import NewRecord, Priority, QueueStats
from gateway.uplink.service import Uplink

GATEWAY_ID = "gw-0001"
SECRET = "platform-secret-for-tests-0123456789"
T0 = datetime(2026, 11, 22, 7, 31, 5, tzinfo=UTC)


def blood_pressure(n: int, **changes: Any) -> NewRecord:
    """The ``n``-th reading of a cuff, a minute apart; ``changes`` replace fields (a bad one, a big one)."""
    payload = {
        "type": "blood_pressure", "resident_id": "r-430121-0042",
        "device": {"id": "ble:C4:7C:8D:6A:11:02", "model": "Omron HEM-7155T", "transport": "ble"},
        "measured_at": (T0 + timedelta(minutes=n)).isoformat(), "received_at": (T0 + timedelta(minutes=n)).isoformat(),
        "time_source": "device", "values": {"systolic": 120 + n, "diastolic": 80, "mean_arterial": 93, "pulse": 70},
        "unit": "mmHg", "flags": [],
    } | changes
    return NewRecord(str(payload["type"]), Priority.READING, json.dumps(payload), T0 + timedelta(seconds=n))


def admin(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A GET (or, with ``body``, a POST) to the reference platform's admin API."""
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url + path, data=data), timeout=5) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.05)


@dataclass
class Hub:
    outbox: DaemonOutbox
    uplink: Uplink
    ids: list[str]

    async def stats(self) -> QueueStats:
        return await self.outbox.db.stats()

    async def settled(self, delivered: int, dead: int = 0, timeout_s: float = 10.0) -> None:
        async def done() -> bool:
            stats = await self.stats()
            return stats.delivered == delivered and stats.dead == dead and stats.pending == 0

        await until(done, timeout_s)


@contextlib.asynccontextmanager
async def hub(tmp_path: Path, url: str, records: list[NewRecord], *, secret: str = SECRET,
              clock_synced: bool = True, **settings: Any) -> AsyncIterator[Hub]:
    """An outbox holding ``records`` and an uplink draining it to ``url`` (fast backoff for tests)."""
    outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
    accepted = await outbox.intake.accept(records)
    options: dict[str, Any] = {"timeout_s": 2.0, "backoff_initial_s": 0.05, "backoff_cap_s": 0.2,
                               "idle_poll_s": 0.05, "rng": random.Random(1)} | settings
    uplink = Uplink(gateway_id=GATEWAY_ID, base_url=url, secret=secret.encode(), outbox=outbox.db,
                    clock_synced=lambda: clock_synced, **options)
    task = asyncio.create_task(uplink.run())
    try:
        yield Hub(outbox, uplink, [a.record_id for a in accepted])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await outbox.close()


def run(scenario: Awaitable[None]) -> None:
    """Run with asyncio's debug checks: a callback that blocks the loop fails the test (loopcheck)."""
    run_checked(scenario)
