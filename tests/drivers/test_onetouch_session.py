"""OneTouch session end to end: the simulator script behind a real pty, the real pyserial path."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon_outbox import DaemonOutbox
from loopcheck import eventually, run_checked, running
from simulators import SystemClock, start_meter_fixture  # noqa: F401

from drivers.errors import NotAcceptedError
from drivers.model import (
    DeviceInfo,
    Glucose,
    GlucoseSample,
    MealContext,
    Reading,
    ReadingFlag,
    TimeSource,
    mg_dl_to_mmol_l,
)
from drivers.serial.onetouch import OneTouchSession
from gateway.hub import reading_to_record

SHANGHAI = ZoneInfo("Asia/Shanghai")
SERIAL = "SIM00001Y"
# The simulator's first results, oldest first: values and meal marks cycle through these.
FIRST_VALUES = (81, 105, 176, 63, 142, 98, 250, 45)
FIRST_MEALS = (MealContext.UNKNOWN, MealContext.PREPRANDIAL, MealContext.POSTPRANDIAL)


class Sink:
    """Stands in for the outbox: records each batch handed over."""

    def __init__(self) -> None:
        self.batches: list[list[Reading]] = []

    async def __call__(self, readings: Sequence[Reading]) -> None:
        self.batches.append(list(readings))

    @property
    def readings(self) -> list[Reading]:
        return [reading for batch in self.batches for reading in batch]

    def assert_no_duplicates(self) -> None:
        keys = [reading.source_key for reading in self.readings]
        assert len(keys) == len(set(keys)), keys


def make_session(port: Path, sink: Callable[[Sequence[Reading]], Awaitable[None]], **timing: float) -> OneTouchSession:
    return OneTouchSession(
        device_id="meter-1",
        resident_id="resident-7",
        port=str(port),
        clock=SystemClock(),
        tz=SHANGHAI,
        sink=sink,
        poll_interval_s=timing.get("poll_interval_s", 0.1),
        reply_timeout_s=timing.get("reply_timeout_s", 0.5),
        redownload_interval_s=timing.get("redownload_interval_s", 60.0),
    )


def local_to_utc(meter_time: datetime, offset_s: float) -> datetime:
    return (meter_time + timedelta(seconds=offset_s)).replace(tzinfo=SHANGHAI).astimezone(UTC)


def test_readings_arrive_with_the_meter_clock_corrected(start_meter):
    meter = start_meter("--records", "3", "--clock-offset", "-120")
    sink = Sink()
    session = make_session(meter.link, sink)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: len(sink.readings) == 3)

    run_checked(scenario())
    status = session.status
    assert status.meter_serial == SERIAL
    assert status.port_open
    assert status.meter_connected
    assert status.last_error is None
    assert status.last_download is not None
    # The meter runs two minutes slow; allow one second for the DMF reply crossing a second boundary.
    assert status.clock_offset_s in (120.0, 121.0)
    assert len(sink.batches) == 1
    readings = sink.readings
    assert [r.measurement for r in readings] == [
        Glucose(mmol_l=mg_dl_to_mmol_l(value), meal=meal)
        for value, meal in zip(FIRST_VALUES, FIRST_MEALS, strict=False)
    ]
    for reading in readings:
        assert reading.device_time is not None
        assert reading.measured_at == local_to_utc(reading.device_time, status.clock_offset_s)
        assert reading.time_source is TimeSource.DEVICE
        assert reading.source_key == (
            f"{SERIAL}|{reading.device_time:%Y-%m-%dT%H:%M:%S}|{FIRST_VALUES[readings.index(reading)]}"
        )
    # Measured hours ago on a slow clock, downloaded now.
    assert readings[-1].measured_at < readings[-1].received.wall


def test_results_added_while_connected_arrive_once(start_meter):
    meter = start_meter("--records", "2")
    sink = Sink()
    session = make_session(meter.link, sink, redownload_interval_s=0.3)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: len(sink.readings) == 2)
            answer = await meter.command("add 63 control B")
            await eventually(lambda: len(sink.readings) == 3)
            # The clock offset of the download that read it: each download measures it again against a
            # meter clock of whole seconds, so a later one may differ by a second.
            offset_s = session.status.clock_offset_s
            await asyncio.sleep(1.0)  # several more downloads of the same memory
            meter_time = datetime.strptime(answer.split()[-1], "%Y-%m-%dT%H:%M:%S")
            added = sink.readings[-1]
            assert offset_s is not None
            assert added == Reading(
                device=DeviceInfo(id="meter-1", transport="serial", model="OneTouch Ultra 2", serial_number=SERIAL),
                resident_id="resident-7",
                measurement=Glucose(mmol_l=3.5, meal=MealContext.PREPRANDIAL, sample=GlucoseSample.CONTROL_SOLUTION),
                measured_at=local_to_utc(meter_time, offset_s),
                time_source=TimeSource.DEVICE,
                received=added.received,
                device_time=meter_time,
                flags=frozenset({ReadingFlag.CONTROL_SOLUTION}),
                source_key=f"{SERIAL}|{meter_time:%Y-%m-%dT%H:%M:%S}|63",
            )

    run_checked(scenario())
    assert [len(batch) for batch in sink.batches] == [2, 1]
    sink.assert_no_duplicates()


def test_unplug_and_replug_needs_no_restart(start_meter):
    meter = start_meter("--records", "2")
    sink = Sink()
    session = make_session(meter.link, sink)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: len(sink.readings) == 2)
            await meter.command("unplug")
            await eventually(lambda: not session.status.port_open)
            assert not meter.link.exists()
            await meter.command("add 70")  # measured while the cable was out
            await meter.command("plug")
            await eventually(lambda: len(sink.readings) == 3)
            assert session.status.port_open

    run_checked(scenario())
    assert [r.measurement for r in sink.batches[-1]] == [Glucose(mmol_l=mg_dl_to_mmol_l(70))]
    sink.assert_no_duplicates()


def test_meter_silent_mid_dump_delivers_what_it_sent_and_the_rest_later(start_meter):
    meter = start_meter("--records", "5")
    # Reply lines before silence: DM@, DMF, the dump header and the two newest results.
    meter.command_blocking("mute 5")
    sink = Sink()
    session = make_session(meter.link, sink, reply_timeout_s=0.3)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: len(sink.readings) == 2)
            await eventually(lambda: not session.status.meter_connected)
            assert session.status.last_error == "DMP dump cut short after 2 of 5 lines"
            await meter.command("unmute")
            await eventually(lambda: len(sink.readings) == 5)

    run_checked(scenario())
    mg_dl = [[round(r.measurement.mmol_l * 18.016) for r in batch] for batch in sink.batches]
    assert mg_dl == [[63, 142], [81, 105, 176]]
    sink.assert_no_duplicates()
    assert session.status.last_error is None


def test_line_noise_never_yields_a_wrong_value(start_meter):
    meter = start_meter("--records", "8", "--bitflip-rate", "0.15", "--garbage-rate", "0.1", "--seed", "3")
    sink = Sink()
    session = make_session(meter.link, sink, poll_interval_s=0.05, reply_timeout_s=0.3, redownload_interval_s=0.2)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: len(sink.readings) == 8, timeout=30.0)

    run_checked(scenario())
    assert len(sink.batches) > 1  # the seeded noise did spoil the first download
    assert sorted(r.measurement.mmol_l for r in sink.readings) == sorted(mg_dl_to_mmol_l(v) for v in FIRST_VALUES)
    sink.assert_no_duplicates()


def test_a_cable_missing_at_start_is_waited_for(tmp_path, start_meter):
    sink = Sink()
    session = make_session(tmp_path / "meter", sink)

    async def scenario() -> None:
        async with running(session):
            await eventually(lambda: session.status.last_error is not None)
            assert not session.status.port_open
            assert "ls -l /dev/serial/by-id/" in (session.status.last_error or "")
            await asyncio.to_thread(start_meter, "--records", "1")
            await eventually(lambda: len(sink.readings) == 1)

    run_checked(scenario())


class FailingSink(Sink):
    """An outbox whose disk fails for the first ``failures`` hand-overs."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.refused = 0

    async def __call__(self, readings: Sequence[Reading]) -> None:
        if self.refused < self.failures:
            self.refused += 1
            raise NotAcceptedError("the gateway's disk is full")
        await super().__call__(readings)


def test_readings_the_gateway_could_not_store_are_offered_again_not_forgotten(start_meter):
    meter = start_meter("--records", "3")
    sink = FailingSink(failures=2)
    session = make_session(meter.link, sink, redownload_interval_s=60.0)

    async def scenario() -> None:
        async with running(session):
            # Two refusals, each counted as an incomplete download and retried at the next poll.
            await eventually(lambda: len(sink.readings) == 3)

    run_checked(scenario())
    assert sink.refused == 2
    assert len(sink.batches) == 1
    sink.assert_no_duplicates()
    assert session.status.last_error is None  # a complete download since clears it


def test_a_resync_downloads_the_meter_again_at_the_next_poll_and_the_outbox_keeps_each_reading_once(
        start_meter, tmp_path):
    meter = start_meter("--records", "3")
    batches: list[list[str]] = []

    async def scenario() -> None:
        async with await DaemonOutbox.open(tmp_path / "outbox.sqlite") as outbox:

            async def into_the_outbox(readings: Sequence[Reading]) -> None:
                await outbox.intake.accept([reading_to_record(r, SHANGHAI, "gw-test") for r in readings])
                batches.append([str(r.source_key) for r in readings])

            # The next download of its own would come in an hour: only the resync brings it forward.
            session = make_session(meter.link, into_the_outbox, redownload_interval_s=3600.0)
            async with running(session):
                await eventually(lambda: session.status.last_download is not None)
                first = session.status.last_download
                assert "at the next poll (within 0.1 s)" in session.resync_when
                await session.resync()
                await eventually(lambda: session.status.last_download != first)
            assert (await outbox.db.stats()).pending == 3

    run_checked(scenario())
    assert len(batches) == 2
    assert batches[1] == batches[0]  # the whole memory offered again, and stored once (pending above)


def test_a_resync_with_no_meter_on_the_cable_says_it_waits_for_one(tmp_path):
    session = make_session(tmp_path / "meter", Sink())
    assert session.resync_when == ("when the meter is next on its cable (polled every 0.1 s); it is not there now")
