"""SunTech NIBP session end to end: scripts/sim_suntech.py behind a real pty, the real pyserial path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from loopcheck import eventually, run_checked, running
from simulators import SimulatedNibp, SystemClock, start_nibp_fixture  # noqa: F401

from drivers.errors import DeviceUnavailableError
from drivers.model import BloodPressure, DeviceEvent, DeviceEventKind, DeviceInfo, Reading, TimeSource
from drivers.serial.suntech import SuntechNibpSession

K = DeviceEventKind
DEVICE = DeviceInfo(id="bp-hall", transport="serial", model="SunTech Advantage")
POLL_INTERVAL_S = 0.3


@contextlib.contextmanager
def recorded_logs(name: str) -> Iterator[list[logging.LogRecord]]:
    """Every INFO-and-above record of one logger."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger(name)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


class Hub:
    """Stands in for the hub: records readings (as if committed) and events."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.events: list[DeviceEvent] = []

    async def on_readings(self, readings: Sequence[Reading]) -> None:
        await asyncio.sleep(0.05)  # the commit
        self.readings.extend(readings)

    async def on_event(self, event: DeviceEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[DeviceEventKind]:
        return [event.kind for event in self.events]

    def errors(self) -> list[DeviceEvent]:
        return [event for event in self.events if event.kind is K.DEVICE_ERROR]

    def pressures(self) -> list[tuple[float, float, float | None]]:
        return [
            (r.measurement.systolic, r.measurement.diastolic, r.measurement.pulse)
            for r in self.readings
            if isinstance(r.measurement, BloodPressure)
        ]


def make_session(link: Path, hub: Hub, **options: float) -> SuntechNibpSession:
    return SuntechNibpSession(
        device_id="bp-hall",
        resident_id="r-0001",
        port=str(link),
        clock=SystemClock(),
        on_readings=hub.on_readings,
        on_event=hub.on_event,
        poll_interval_s=options.pop("poll_interval_s", POLL_INTERVAL_S),
        busy_retry_s=options.pop("busy_retry_s", 0.3),
        **options,
    )


def test_measure_now_hands_over_the_sheet_result_as_one_reading(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await session.measure_now()
            assert len(hub.readings) == 1
            await asyncio.sleep(3 * POLL_INTERVAL_S)  # later polls see the same result: nothing new

    with recorded_logs("drivers.serial.suntech") as records:
        run_checked(scenario())
    [reading] = hub.readings
    assert reading == Reading(
        device=DEVICE,
        resident_id="r-0001",
        measurement=BloodPressure(systolic=115.0, diastolic=74.0, mean_arterial=88.0, pulse=85.0),
        measured_at=reading.received.wall,
        time_source=TimeSource.HUB,
        received=reading.received,
        source_key=f"73004a001e01000000000000310755005800000000@{reading.received.wall:%Y-%m-%dT%H:%M:%SZ}",
    )
    assert hub.kinds() == [K.CONNECTED]
    status = session.status
    assert status.return_string == "LX SIM 1.00"
    assert status.readings_handed_over == 1
    assert not status.measuring
    assert status.malformed == 0
    logged = " ".join(record.getMessage() for record in records)
    assert "device_id=bp-hall" in logged
    assert "115" not in logged
    assert "74" not in logged


def test_a_result_with_an_error_code_is_a_device_error_not_a_reading(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await nibp.command("result 150 95 80 error 57")
            await session.measure_now()
            await asyncio.sleep(3 * POLL_INTERVAL_S)

    run_checked(scenario())
    assert hub.readings == []
    [error] = hub.errors()
    assert error == DeviceEvent(
        device_id="bp-hall",
        resident_id="r-0001",
        kind=K.DEVICE_ERROR,
        received=error.received,
        value="inflate_timeout",
        detail="inflate timeout, air leak or loose cuff: check the cuff and its hose",
        extra={"origin": "command"},
    )
    assert session.status.device_errors == 1


def test_a_measurement_started_at_the_device_is_collected_once(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await nibp.command("result 132 84 66", "press-button")
            await eventually(lambda: len(hub.readings) == 1)
            await asyncio.sleep(4 * POLL_INTERVAL_S)
            await nibp.command("press-button")  # the default outcome this time: a new result
            await eventually(lambda: len(hub.readings) == 2)
            await asyncio.sleep(4 * POLL_INTERVAL_S)

    run_checked(scenario())
    assert hub.pressures() == [(132.0, 84.0, 66.0), (115.0, 74.0, 85.0)]
    assert hub.errors() == []


def test_a_busy_module_is_asked_again(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await nibp.command("busy")
            await session.measure_now()

    run_checked(scenario())
    assert hub.pressures() == [(115.0, 74.0, 85.0)]
    assert session.status.busy_retries == 1


def test_measure_now_during_a_measurement_at_the_device_keeps_both_results(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub, poll_interval_s=30.0)  # only measure_now looks at the module

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await nibp.command("result 141 90 72", "press-button")
            await session.measure_now()

    run_checked(scenario())
    # The device's result is read before the hub's own measurement overwrites it.
    assert hub.pressures() == [(141.0, 90.0, 72.0), (115.0, 74.0, 85.0)]
    assert session.status.busy_retries >= 1


def test_a_stuck_measurement_is_aborted_and_reported(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub, measurement_timeout_s=1.0)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await nibp.command("stall")
            await session.measure_now()
            await asyncio.sleep(3 * POLL_INTERVAL_S)  # the aborted result is not reported a second time

    run_checked(scenario())
    assert hub.readings == []
    assert [(e.value, e.detail) for e in hub.errors()] == [
        ("measurement_timeout", "measurement did not finish within 1 s; the cuff was told to deflate")
    ]


def test_unplug_and_replug_needs_no_restart(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await session.measure_now()
            await nibp.command("unplug")
            await eventually(lambda: K.LOST in hub.kinds())
            assert not session.status.port_open
            with pytest.raises(DeviceUnavailableError, match="bp-hall is not connected"):
                await session.measure_now()
            await nibp.command("plug")
            await eventually(lambda: hub.kinds().count(K.CONNECTED) == 2)
            await session.measure_now()

    run_checked(scenario())
    assert hub.kinds() == [K.CONNECTED, K.LOST, K.CONNECTED]
    assert hub.pressures() == [(115.0, 74.0, 85.0)] * 2
    assert session.status.port_open


def test_scheduled_measurements_and_line_noise(start_nibp):
    nibp = start_nibp()
    hub = Hub()
    session = make_session(nibp.link, hub, schedule_s=1.0)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.module_connected)
            await nibp.command("garbage 40")
            await eventually(lambda: len(hub.readings) == 1)

    run_checked(scenario())
    assert hub.pressures() == [(115.0, 74.0, 85.0)]
    assert session.status.malformed > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"schedule_s": 0.0}, "schedule_s must be positive"),
        ({"measurement_timeout_s": 121.0}, "measurement_timeout_s must be in"),
        ({"poll_interval_s": 0.0}, "must be positive"),
    ],
)
def test_impossible_settings_are_refused(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        make_session(tmp_path / "nibp", Hub(), **options)
