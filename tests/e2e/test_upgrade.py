"""A hub upgraded with a backlog: the outbox an older gateway left is migrated by the daemon and every
record goes up exactly once, even when the daemon is killed in the middle of the drain."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import devstack
import pytest
from gatewayproc import (
    GATEWAY_ID,
    RESIDENT_ID,
    GatewayProcess,
    outbox_rows,
    platform_records,
    set_fault,
    started_since,
    wait_until,
    write_config,
)
from old_outbox import OldRecord, write_old_outbox

from drivers.model import DeviceInfo, Glucose, HubTime, MealContext, Reading, TimeSource
from gateway.hub import reading_to_record

pytestmark = pytest.mark.timeout(180)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def old_reading(n: int, state: str) -> OldRecord:
    """A glucose meter's reading as a gateway of schema 5 stored it, in ``state``."""
    at = T0 + timedelta(minutes=n)
    reading = Reading(device=DeviceInfo("glucose-kitchen", "serial", "OneTouch Ultra 2", "GMF600DCY"),
                      resident_id=RESIDENT_ID, measurement=Glucose(5.0 + n % 30 / 10, MealContext.UNKNOWN),
                      measured_at=at, time_source=TimeSource.DEVICE, received=HubTime(at, 0.0, True),
                      source_key=f"GMF600DCY|{n}")
    record = reading_to_record(reading, ZoneInfo("Asia/Shanghai"), GATEWAY_ID)
    assert record.record_id is not None
    created_us = int(at.timestamp() * 1_000_000)
    return OldRecord(record.record_id, state, created_us, record.payload_json, record.dedupe_key, record.type,
                     delivered_at=created_us if state == "delivered" else None,
                     dead_reason="HTTP 422" if state == "dead" else None,
                     dead_at=created_us if state == "dead" else None)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[devstack.Platform]:
    with devstack.platform_server(tmp_path / "platform", GATEWAY_ID) as p:
        yield p


def test_an_upgraded_hub_sends_its_old_backlog_exactly_once_through_a_kill(
        tmp_path: Path, platform: devstack.Platform, broker: devstack.Broker) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # What the old gateway left: 50 readings the platform already has, 1,500 it does not, one it refused.
    backlog = ([old_reading(n, "delivered") for n in range(50)]
               + [old_reading(n, "pending") for n in range(50, 1550)] + [old_reading(1550, "dead")])
    write_old_outbox(data / "outbox.sqlite", 5, backlog)
    pending = {r.record_id for r in backlog if r.state == "pending"}

    config = write_config(tmp_path / "gateway.toml", data_dir=data, platform_url=platform.url,
                          secret_file=platform.secret_file, broker_port=broker.port, meter_link=None)
    gateway = GatewayProcess(config, tmp_path / "daemon.log")
    set_fault(platform.url, "slow", delay_s=0.5)  # 500 records a request, one request each half second
    try:
        gateway.start()
        wait_until(lambda: len(platform_records(platform.db)) >= 500, 60, "the drain under way")
        gateway.signal(signal.SIGKILL)  # mid-drain: marks not yet written must not lose or double anything
        gateway.wait(10)
        assert len(platform_records(platform.db)) < len(pending), "the kill came after the drain, not during it"
        restarted = datetime.now(UTC)
        gateway.start()
        wait_until(lambda: started_since(data, restarted), 30, "the daemon started again")
        wait_until(lambda: pending <= {r["record_id"] for r in platform_records(platform.db)}, 90,
                   "every pending record of the old outbox at the platform")
        wait_until(lambda: sum(state == "pending" for _, _, state, _ in outbox_rows(data)) == 0, 30,
                   "the outbox to mark them delivered")
        gateway.signal(signal.SIGTERM)
        assert gateway.wait(20) == 0
    finally:
        gateway.kill()

    at_platform = [r["record_id"] for r in platform_records(platform.db) if r["type"] == "blood_glucose"]
    assert sorted(at_platform) == sorted(pending)  # neither the delivered nor the dead one went up
    states = {record_id: state for record_id, _, state, _ in outbox_rows(data)}
    assert states == {r.record_id: ("dead" if r.state == "dead" else "delivered") for r in backlog}
