"""gateway.fleet.service: apply on trial, keep or roll back, report, across restarts; real state files.

The daemon's reload and health check are stand-ins that record what they were given (the real ones
are the daemon's); everything else, the state file included, is the real thing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fleetdocs import Fleet, key_text, local_config
from loopcheck import eventually, run_checked
from tmpfs import remount, tmpfs

from gateway.config import GatewayConfig
from gateway.fleet.overlay import LocalConfig, validate_effective
from gateway.fleet.report import ReportStatus, effective_view
from gateway.fleet.resume import RESTARTED, SET_ASIDE
from gateway.fleet.service import ConfigDocumentService, HealthResult, RestoreError
from gateway.fleet.state import FleetState
from gateway.fleet.statefile import FleetStateFile, state_path

AT = datetime(2026, 11, 22, 1, 0, 5, tzinfo=UTC)
THRESHOLDS = {"thresholds": {"glucose_level1_hypo_mmol_l": 4.2}}
DEVICES = {"devices": [{"id": "oximeter", "driver": "ble-plx", "address": "AA:BB:CC:DD:EE:01", "resident": "r-0002"}]}


@dataclass
class Daemon:
    """The daemon's side: what was reloaded and checked, the reports it published, how checks go."""

    reloads: list[GatewayConfig] = field(default_factory=list)
    checks: list[tuple[GatewayConfig, GatewayConfig]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    health: HealthResult = field(default_factory=lambda: HealthResult(ok=True))
    reload_error: Exception | None = None
    restore_error: Exception | None = None
    hold: asyncio.Event | None = None
    """While set, the health check waits for it (a check still running)."""

    async def reload(self, config: GatewayConfig) -> None:
        self.reloads.append(config)
        error = self.reload_error if len(self.reloads) % 2 == 1 else self.restore_error
        if error is not None:
            raise error

    async def health_check(self, old: GatewayConfig, new: GatewayConfig) -> HealthResult:
        self.checks.append((old, new))
        if self.hold is not None:
            await self.hold.wait()
        return self.health

    def publish(self, report: dict[str, Any]) -> None:
        json.dumps(report)  # what goes to MQTT must be JSON
        self.reports.append(report)


@dataclass
class Hub:
    local: LocalConfig
    store: FleetStateFile
    daemon: Daemon
    fleet: Fleet
    installed: Ed25519PublicKey | None

    def service(self, *, grace_s: float | None = None) -> ConfigDocumentService:
        """A service as a (re)started daemon builds it: a fresh object over the same state file."""
        return ConfigDocumentService(
            local=self.local, store=self.store, reload=self.daemon.reload, health_check=self.daemon.health_check,
            publish_report=self.daemon.publish, installed_key=lambda: self.installed, grace_s=grace_s,
            clock=lambda: AT)

    async def started(self, **kwargs: Any) -> ConfigDocumentService:
        service = self.service(**kwargs)
        await service.resume()
        return service


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    fleet = Fleet()
    return Hub(local_config(tmp_path), FleetStateFile(state_path(tmp_path)), Daemon(), fleet, fleet.public)


def effective(hub: Hub, sections: dict[str, Any]) -> GatewayConfig:
    """What the hub runs with the fleet's ``sections`` over its local file."""
    config, problems = validate_effective(hub.local.mapping, sections)
    assert config is not None, problems
    return config


async def test_a_document_that_passes_is_applied_persisted_and_reported(hub: Hub) -> None:
    service = await hub.started()
    old, new = hub.local.config, effective(hub, THRESHOLDS)
    report = await service.handle(hub.fleet.payload(1, THRESHOLDS))
    assert report is not None
    assert hub.daemon.reports == [report.as_json()] == [{
        "version": 1, "status": "applied", "errors": [], "applied_version": 1,
        "applied_at": "2026-11-22T01:00:05+00:00", "effective": effective_view(new),
    }]
    assert hub.daemon.reloads == [new]
    assert hub.daemon.checks == [(old, new)]
    assert service.config == new
    on_disk = hub.store.read()
    assert on_disk is not None
    assert (on_disk.applied_version, on_disk.overlay, on_disk.trial) == (1, THRESHOLDS, None)
    assert on_disk.last_report == report
    assert await hub.service().resume() == new, "a restart runs what was applied"


async def test_the_applied_version_again_changes_nothing_and_is_not_reported(hub: Hub) -> None:
    service = await hub.started()
    payload = hub.fleet.payload(1, THRESHOLDS)
    await service.handle(payload)
    assert await service.handle(payload) is None
    restarted = await hub.started()
    assert await restarted.handle(payload) is None, "the retained copy after a restart too"
    assert (len(hub.daemon.reports), len(hub.daemon.reloads)) == (1, 1)


async def test_a_failed_health_check_restores_the_previous_configuration(hub: Hub) -> None:
    service = await hub.started()
    await service.handle(hub.fleet.payload(1, THRESHOLDS))
    applied = service.config
    hub.daemon.health = HealthResult(ok=False, reason="broker refused the connection", path="mqtt.host")
    report = await service.handle(hub.fleet.payload(2, DEVICES))
    assert report is not None
    assert report.as_json() == {
        "version": 2, "status": "rolled_back",
        "errors": [{"path": "mqtt.host", "message": "broker refused the connection"}],
        "applied_version": 1, "applied_at": "2026-11-22T01:00:05+00:00", "effective": effective_view(applied),
    }
    assert hub.daemon.reloads[-2:] == [effective(hub, {**THRESHOLDS, **DEVICES}), applied]
    assert service.config == applied
    assert service.state.overlay == THRESHOLDS
    assert 2 in service.state.rolled_back
    assert hub.store.read() == service.state


async def test_a_rolled_back_document_still_retained_is_never_applied_again(hub: Hub) -> None:
    hub.daemon.health = HealthResult(ok=False, reason="no platform")
    service = await hub.started()
    payload = hub.fleet.payload(1, THRESHOLDS)
    await service.handle(payload)
    hub.daemon.health = HealthResult(ok=True)
    assert await service.handle(payload) is None
    assert await (await hub.started()).handle(payload) is None, "nor after a restart"
    assert (len(hub.daemon.reloads), len(hub.daemon.reports)) == (2, 1)


async def test_a_reload_that_raises_rolls_back(hub: Hub) -> None:
    hub.daemon.reload_error = OSError(19, "No such device", "/dev/ttyUSB9")
    service = await hub.started()
    report = await service.handle(hub.fleet.payload(1, THRESHOLDS))
    assert report is not None and report.status is ReportStatus.ROLLED_BACK
    assert [e.as_json() for e in report.errors] == [{
        "path": "(hub)",
        "message": "the hub could not load this configuration (OSError: [Errno 19] No such device: '/dev/ttyUSB9')"}]
    assert hub.daemon.checks == [], "no health check of a configuration that did not load"
    assert hub.daemon.reloads == [effective(hub, THRESHOLDS), hub.local.config]
    assert service.config == hub.local.config


async def test_a_health_check_that_does_not_pass_in_the_grace_period_rolls_back(hub: Hub) -> None:
    hub.daemon.hold = asyncio.Event()
    service = await hub.started(grace_s=0.05)
    report = await service.handle(hub.fleet.payload(1, THRESHOLDS))
    assert report is not None and report.status is ReportStatus.ROLLED_BACK
    assert report.errors[0].message == "the health checks did not pass within 0.05 s ([fleet] apply_grace_s)"


async def test_a_failed_restore_is_reported_and_raised_with_what_to_do(hub: Hub) -> None:
    hub.daemon.health = HealthResult(ok=False, reason="no broker")
    hub.daemon.restore_error = RuntimeError("serial port busy")
    service = await hub.started()
    with pytest.raises(RestoreError, match="restart the daemon, it starts from the previous configuration"):
        await service.handle(hub.fleet.payload(1, THRESHOLDS))
    assert [r["status"] for r in hub.daemon.reports] == ["rolled_back"]
    assert await hub.service().resume() == hub.local.config


async def test_replays_are_rejected(hub: Hub) -> None:
    service = await hub.started()
    await service.handle(hub.fleet.payload(5, THRESHOLDS))
    report = await service.handle(hub.fleet.payload(3, DEVICES))
    assert report is not None
    assert report.as_json()["errors"] == [{"path": "version", "message": (
        "version 3 is below 5, the highest this hub has seen: a replay, or a document sent out of order; "
        "issue a version above 5")}]
    assert (report.version, report.applied_version) == (3, 5)
    assert (await hub.started()).state.highest_seen == 5


async def test_an_invalid_document_uses_its_version_up_and_is_reported_once(hub: Hub) -> None:
    service = await hub.started()
    payload = hub.fleet.payload(4, {"storage": {"budget_mb": 8}, "devices": [{"id": "x"}]})
    report = await service.handle(payload)
    assert report is not None
    assert report.as_json()["errors"] == [
        {"path": "storage.budget_mb", "message": "8 is below the minimum 16; use a value from 16 to 65536"},
        {"path": "devices[0].driver", "message": "required setting is missing; add driver = ... under [devices[0]]"},
    ]
    assert hub.daemon.reloads == []
    assert await service.handle(payload) is None, "the retained copy again: already reported"
    assert await (await hub.started()).handle(payload) is None, "and after a restart"
    assert hub.store.read() == FleetState(highest_seen=4, last_report=report)
    late = await service.handle(hub.fleet.payload(3, THRESHOLDS))
    assert late is not None and late.errors[0].path == "version", "below a refused version is a replay too"


async def test_a_forged_document_is_reported_but_changes_nothing_on_disk(hub: Hub) -> None:
    service = await hub.started()
    forger = Fleet()
    report = await service.handle(forger.payload(99, THRESHOLDS))
    assert report is not None and report.version is None
    assert [r["status"] for r in hub.daemon.reports] == ["rejected"]
    assert hub.store.read() is None
    assert await service.handle(hub.fleet.payload(1, THRESHOLDS)) is not None, "99 was never the fleet's"


async def test_the_key_rotates_only_once_its_document_passed(hub: Hub) -> None:
    next_fleet = Fleet()
    service = await hub.started()
    hub.daemon.health = HealthResult(ok=False, reason="no broker")
    rotate = {"fleet_public_key": key_text(next_fleet.public)}
    await service.handle(hub.fleet.payload(1, THRESHOLDS, **rotate))
    assert service.current_key() is hub.installed, "a rolled-back document rotates nothing"
    early = await service.handle(next_fleet.payload(2, THRESHOLDS))
    assert early is not None and early.errors[0].path == "signature"

    hub.daemon.health = HealthResult(ok=True)
    applied = await service.handle(hub.fleet.payload(3, THRESHOLDS, **rotate))
    assert applied is not None and applied.status is ReportStatus.APPLIED
    assert key_text(service.current_key()) == key_text(next_fleet.public)  # type: ignore[arg-type]
    old_key = await service.handle(hub.fleet.payload(4, DEVICES))
    assert old_key is not None and old_key.errors[0].path == "signature", "the old key is retired"

    restarted = await hub.started()
    new_key = await restarted.handle(next_fleet.payload(5, DEVICES))
    assert new_key is not None and new_key.status is ReportStatus.APPLIED, "the rotation survives a restart"

    technician = Fleet()
    hub.installed = technician.public  # a technician installs another key file: it wins
    assert key_text(restarted.current_key()) == key_text(technician.public)  # type: ignore[arg-type]


async def test_a_restart_during_a_trial_rolls_it_back_and_reports_once_connected(hub: Hub) -> None:
    service = await hub.started()
    await service.handle(hub.fleet.payload(1, THRESHOLDS))
    hub.daemon.hold = asyncio.Event()
    payload = hub.fleet.payload(2, DEVICES)
    trial = asyncio.create_task(service.handle(payload))
    await eventually(lambda: len(hub.daemon.checks) == 2)  # the new configuration is loaded and being checked
    trial.cancel()  # the process dies here: what is on disk is all that is left
    with pytest.raises(asyncio.CancelledError):
        await trial
    on_disk = hub.store.read()
    assert on_disk is not None and on_disk.trial is not None and on_disk.trial.version == 2

    hub.daemon.hold = None
    hub.daemon.reports.clear()
    restarted = hub.service()
    assert await restarted.resume() == effective(hub, THRESHOLDS), "the previous configuration"
    assert hub.daemon.reports == [], "nothing is published before the connection is up"
    restarted.publish_last_report()
    assert hub.daemon.reports == [{
        "version": 2, "status": "rolled_back", "errors": [{"path": "(hub)", "message": RESTARTED}],
        "applied_version": 1, "applied_at": "2026-11-22T01:00:05+00:00",
        "effective": effective_view(effective(hub, THRESHOLDS)),
    }]
    assert await restarted.handle(payload) is None, "the retained document is not tried again"
    assert hub.store.read() == restarted.state


async def test_an_overlay_that_no_longer_fits_the_local_file_is_set_aside(hub: Hub) -> None:
    service = await hub.started()
    payload = hub.fleet.payload(1, DEVICES)  # the oximeter measures r-0002
    await service.handle(payload)
    # The technician removes r-0002 (and the device of theirs that measured r-0002).
    mapping = {**hub.local.mapping, "residents": [{"id": "r-0001"}], "devices": []}
    hub.local = LocalConfig.from_mapping(mapping, "gateway.toml")
    restarted = hub.service()
    assert await restarted.resume() == hub.local.config
    report = restarted.state.last_report
    assert report is not None
    assert [e.as_json() for e in report.errors] == [
        {"path": "(hub)", "message": SET_ASIDE},
        {"path": "devices[0].resident", "message": "no resident has id 'r-0002'; use one of: r-0001, or add a "
                                                   "[[residents]] entry"}]
    assert (report.version, report.status, restarted.state.overlay, restarted.state.applied_version) == (
        1, ReportStatus.ROLLED_BACK, {}, None)
    assert await restarted.handle(payload) is None, "never applied again"


async def test_a_corrupt_state_starts_from_the_local_file_and_takes_the_retained_document_afresh(hub: Hub) -> None:
    service = await hub.started()
    await service.handle(hub.fleet.payload(7, THRESHOLDS))
    hub.store.path.write_bytes(b"\x00" * 512)  # a damaged sector
    restarted = hub.service()
    assert await restarted.resume() == hub.local.config
    report = await restarted.handle(hub.fleet.payload(7, THRESHOLDS))
    assert report is not None and report.status is ReportStatus.APPLIED


async def test_a_publish_that_fails_keeps_the_report_for_the_next_connection(hub: Hub) -> None:
    def offline(_report: dict[str, Any]) -> None:
        raise ConnectionError("not connected")

    service = ConfigDocumentService(local=hub.local, store=hub.store, reload=hub.daemon.reload,
                                    health_check=hub.daemon.health_check, publish_report=offline,
                                    installed_key=lambda: hub.installed, clock=lambda: AT)
    await service.resume()
    report = await service.handle(hub.fleet.payload(1, THRESHOLDS))
    assert report is not None and report.status is ReportStatus.APPLIED
    restarted = await hub.started()
    restarted.publish_last_report()
    assert hub.daemon.reports == [report.as_json()]


async def test_handle_before_resume_is_a_programming_error(hub: Hub) -> None:
    with pytest.raises(RuntimeError, match=r"resume\(\) must run first"):
        await hub.service().handle(hub.fleet.payload(1, THRESHOLDS))


def test_state_writes_do_not_block_the_event_loop(hub: Hub) -> None:
    class SlowDisk(FleetStateFile):
        def save(self, state: FleetState) -> None:
            time.sleep(0.3)  # an SD card at the end of its life: fsync takes this long
            super().save(state)

    hub.store = SlowDisk(hub.store.path)

    async def scenario() -> None:
        service = await hub.started()
        assert await service.handle(hub.fleet.payload(1, THRESHOLDS)) is not None

    run_checked(scenario())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 1024) as mountpoint:
        yield mountpoint


async def test_a_disk_that_refuses_the_state_applies_nothing_and_never_disagrees_with_it(small_disk: Path) -> None:
    fleet = Fleet()
    hub = Hub(local_config(small_disk), FleetStateFile(state_path(small_disk)), Daemon(), fleet, fleet.public)
    service = await hub.started()
    await service.handle(fleet.payload(1, THRESHOLDS))

    remount(small_disk, read_only=True)
    refused = await service.handle(fleet.payload(2, DEVICES))
    assert refused is not None and refused.status is ReportStatus.REJECTED
    assert refused.errors[0].path == "(hub)"
    assert "cannot write the fleet state (Read-only file system)" in refused.errors[0].message
    assert refused.errors[0].message.endswith("; nothing was applied")
    assert len(hub.daemon.reloads) == 1

    # The trial is written, then the disk goes read-only during the health check: not recorded as
    # applied, so rolled back now, as the next start would.
    remount(small_disk, read_only=False)

    async def disk_fails_meanwhile(old: GatewayConfig, new: GatewayConfig) -> HealthResult:
        remount(small_disk, read_only=True)
        return HealthResult(ok=True)

    hub.daemon.health_check = disk_fails_meanwhile  # type: ignore[method-assign]
    service = hub.service()
    await service.resume()
    report = await service.handle(fleet.payload(3, DEVICES))
    assert report is not None and report.status is ReportStatus.ROLLED_BACK
    assert report.errors[0].message.startswith("the configuration passed its checks but the hub could not record it")
    assert service.config == effective(hub, THRESHOLDS)
    remount(small_disk, read_only=False)
    assert await hub.service().resume() == effective(hub, THRESHOLDS), "the disk and the running hub agree"
