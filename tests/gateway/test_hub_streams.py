"""Continuous-stream summaries: evaluated the moment they arrive, committed together every STREAM_COMMIT_S,
or at once when one of them raises an alert. A real outbox; the hub's monotonic clock is the test's."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon_outbox import DaemonOutbox

from drivers.model import DeviceInfo, HubTime, Reading, SpO2, TimeSource
from gateway.config import Thresholds
from gateway.detect.silence import SilenceWatch
from gateway.detect.vital_state import VitalsMonitor
from gateway.hub import STREAM_COMMIT_S, Hub
from gateway.respond.falls import FallResponder
from gateway.respond.service import AlertService
from gateway.status import DeviceStatusBoard
from gateway.store import records

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)


class Published:
    def __init__(self) -> None:
        self.topics: list[str] = []

    def publish(self, suffix: str, payload: dict[str, object] | None, *, qos: int = 1, retain: bool = False) -> None:
        self.topics.append(suffix)


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def summary(spo2: float, at: datetime) -> Reading:
    return Reading(device=DeviceInfo("oximeter", "ble"), resident_id="r-0001", measurement=SpO2(spo2, 64),
                   measured_at=at, time_source=TimeSource.HUB, received=HubTime(at, 1.0, True), continuous=True)


def build(outbox: DaemonOutbox, ticks: Ticks, published: Published) -> tuple[Hub, AlertService]:
    def now() -> datetime:
        return T0 + timedelta(seconds=ticks.now)

    alerts = AlertService(outbox=outbox.intake, publisher=published, tz=TZ, now=now, now_monotonic=ticks)
    falls = FallResponder(alerts=alerts, outbox=outbox.intake, store=outbox.db, tz=TZ, now_wall=now,
                          now_monotonic=ticks)
    hub = Hub(gateway_id="gw-test", outbox=outbox.intake, alerts=alerts, publisher=published, board=DeviceStatusBoard(),
              vitals=VitalsMonitor(lambda _rid: Thresholds()), silence=SilenceWatch([], started_at=ticks.now),
              tz=TZ, now=now, now_monotonic=ticks, max_reading_age_s=3600, falls=falls)
    return hub, alerts


async def readings_stored(outbox: DaemonOutbox) -> int:
    return (await outbox.db.stats()).pending


async def test_summaries_are_committed_together_every_stream_commit_s_and_at_once_with_an_alert(tmp_path: Path) -> None:
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    ticks, published = Ticks(), Published()
    hub, alerts = build(outbox, ticks, published)
    try:
        commits = outbox.intake.commits
        for n in range(5):  # 50 s of a quiet night, one summary every 10 s
            await hub.on_readings([summary(96, T0 + timedelta(seconds=10 * n))])
            ticks.now += 10
        assert await readings_stored(outbox) == 0
        assert published.topics.count("residents/r-0001/readings/spo2") == 5  # shown at once, though not stored
        ticks.now += STREAM_COMMIT_S
        await hub.flush_streams(due_only=True)
        assert await readings_stored(outbox) == 5
        assert outbox.intake.commits == commits + 1  # five summaries, one transaction

        await hub.on_readings([summary(80, T0 + timedelta(minutes=5))])  # very low: an emergency
        assert [a.kind.value for a in alerts.active] == ["spo2_low"]
        pending = (await outbox.db.run(records.pending_batch(max_records=100)))
        assert {p.type for p in pending} == {"spo2", "alert"}
        assert await readings_stored(outbox) == 7  # the alert and its evidence, committed at once
        assert alerts.active[0].related_record_ids[0] in {p.record_id for p in pending}
    finally:
        await outbox.close()


async def test_a_stream_that_stops_is_committed_by_the_periodic_look(tmp_path: Path) -> None:
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    ticks, published = Ticks(), Published()
    hub, _alerts = build(outbox, ticks, published)
    try:
        await hub.on_readings([summary(97, T0)])
        await hub.flush_streams(due_only=True)
        assert await readings_stored(outbox) == 0  # not STREAM_COMMIT_S yet
        ticks.now += STREAM_COMMIT_S
        await asyncio.wait_for(hub.flush_streams(due_only=True), 5)
        assert await readings_stored(outbox) == 1
    finally:
        await outbox.close()


async def test_the_last_summary_of_a_stream_commits_the_batch_at_once(tmp_path: Path) -> None:
    outbox = await DaemonOutbox.open(tmp_path / "outbox.sqlite")
    ticks, published = Ticks(), Published()
    hub, _alerts = build(outbox, ticks, published)
    try:
        for n in range(3):
            await hub.on_readings([summary(96, T0 + timedelta(seconds=10 * n))])
            ticks.now += 10
        assert await readings_stored(outbox) == 0
        # The clip came off the finger and hung up: its last, partial window ends the stream.
        await hub.on_readings([dataclasses.replace(summary(95, T0 + timedelta(seconds=30)), stream_end=True)])
        assert await readings_stored(outbox) == 4
    finally:
        await outbox.close()
