"""No record reaches the platform dated in the wrong year: a hub that booted at 1970 holds what it
stamped until network time steps its clock, then uploads it corrected (a real platform server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import devstack
from daemon_outbox import DaemonOutbox
from pi_clock import TRUE_BOOT, PiClock, reading
from uplink_hub import GATEWAY_ID, SECRET, run, until

from drivers.model import HubTime
from gateway.clock import PLAUSIBLE_FROM
from gateway.uplink import Uplink


def platform_bodies(db: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(db)
    try:
        return [json.loads(body) for (body,) in conn.execute("SELECT body FROM records")]
    finally:
        conn.close()


def test_a_hub_booted_at_1970_uploads_nothing_dated_1970(platform_factory: Callable[..., devstack.Platform],
                                                        tmp_path: Path) -> None:
    platform = platform_factory()
    pi = PiClock()
    clock = pi.system_clock()

    async def scenario() -> None:
        outbox = await DaemonOutbox.open(tmp_path / "outbox.db")
        watch = await pi.watch(clock, outbox)
        uplink = Uplink(gateway_id=GATEWAY_ID, base_url=platform.url, secret=SECRET.encode(), outbox=outbox.db,
                        clock_synced=clock.synced, timeout_s=2.0, backoff_initial_s=0.05, backoff_cap_s=0.2,
                        idle_poll_s=0.05, rng=random.Random(1), held_before=PLAUSIBLE_FROM)
        task = asyncio.create_task(uplink.run())
        try:
            stamped = []
            for n in range(4):
                pi.advance(120.0)
                at = clock.now()
                stamped.append(at)
                await outbox.intake.accept([reading(at, clock.stamp(at), n)])
            # A record the meter stamped itself, received over a link that works: it goes up...
            meter = HubTime(wall=TRUE_BOOT - timedelta(hours=1), monotonic=pi.monotonic, synced=True)
            await outbox.intake.accept([reading(meter, None, 9, time_source="device")])
            uplink.wake()

            async def meter_delivered() -> bool:
                return (await outbox.db.stats()).delivered == 1

            await until(meter_delivered, 10.0)
            # ...past the 1970 ones, which wait: none reached the platform.
            assert [b["values"] for b in platform_bodies(platform.db)] == [{"value": 37.4}]
            assert (await outbox.db.stats()).pending == 4

            pi.advance(3.0)
            pi.ntp_arrives()
            await watch.check_once()
            uplink.wake()

            async def delivered() -> bool:
                return (await outbox.db.stats()).delivered == 5

            await until(delivered, 10.0)
            bodies = [b for b in platform_bodies(platform.db) if b["values"] != {"value": 37.4}]
            assert len(bodies) == 4
            for body in bodies:
                measured = datetime.fromisoformat(str(body["measured_at"]))
                assert body["time_source"] == "hub_corrected"
                assert TRUE_BOOT <= measured <= TRUE_BOOT + timedelta(seconds=pi.monotonic)
            assert sorted(datetime.fromisoformat(str(b["measured_at"])) for b in bodies) == \
                [TRUE_BOOT + timedelta(seconds=at.monotonic) for at in stamped]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await outbox.close()

    run(scenario())

