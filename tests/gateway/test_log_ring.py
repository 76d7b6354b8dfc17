"""The hub's recent log lines for the fleet's ``logs`` command: bounded, its own loggers only, scrubbed.

The real path first: a OneTouch meter behind a pty (scripts/sim_onetouch.py) is read by its session into
a real outbox, with the ring installed as ``yiyang run`` installs it; what ``logs`` would send back
carries the meter's events and none of its glucose values.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from daemon_outbox import DaemonOutbox
from loopcheck import eventually, running
from simulators import SystemClock, start_meter_fixture  # noqa: F401

from drivers.model import Reading, mg_dl_to_mmol_l
from drivers.serial.onetouch import OneTouchSession
from gateway.fleet.errors import CommandError
from gateway.fleet.logs_command import ANSWER_LINES_MAX_BYTES, logs
from gateway.hub import reading_to_record
from gateway.log_ring import LINE_MAX_CHARS, LogRing
from gateway.log_scrub import scrub
from gateway.logs import setup_logging
from gateway.mqtt_policy import MAX_PACKET_BYTES

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The simulator's first results (mg/dL), as in tests/drivers/test_onetouch_session.py.
FIRST_VALUES = (81, 105, 176, 63, 142, 98, 250, 45)


@pytest.fixture
def installed() -> Iterator[LogRing]:
    """The ring as ``yiyang run`` installs it (gateway.logs.setup_logging), the test's root logger restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    ring = setup_logging("info", stream=io.StringIO())
    try:
        yield ring
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def health_values(lines: Sequence[str]) -> list[str]:
    """Any of the meter's values, in mg/dL or mmol/L, standing as a number of its own in the lines."""
    numbers = {str(v) for v in FIRST_VALUES} | {f"{mg_dl_to_mmol_l(v):.1f}" for v in FIRST_VALUES}
    found = []
    for line in lines:
        message = line.split(": ", 1)[1]  # past the timestamp and logger name
        found += [n for n in re.findall(r"(?<![\w.:/-])\d+(?:\.\d+)?(?![\w.:/-])", message) if n in numbers]
    return found


async def test_a_meter_read_into_the_outbox_leaves_its_events_in_the_ring_and_none_of_its_values(
        installed: LogRing, start_meter, tmp_path: Path) -> None:
    meter = start_meter("--records", "8")
    async with await DaemonOutbox.open(tmp_path / "outbox.sqlite") as outbox:
        stored: list[Reading] = []

        async def sink(readings: Sequence[Reading]) -> None:
            await outbox.intake.accept([reading_to_record(r, SHANGHAI, "gw-test") for r in readings])
            stored.extend(readings)

        session = OneTouchSession(device_id="glucose-kitchen", resident_id="r-0001", port=str(meter.link),
                                  clock=SystemClock(), tz=SHANGHAI, sink=sink, poll_interval_s=0.1,
                                  reply_timeout_s=0.5, redownload_interval_s=60.0)
        async with running(session):
            await eventually(lambda: len(stored) == 8 and session.status.last_download is not None)
    # A careless line of our own, and what other libraries log at warning and at info.
    logging.getLogger("gateway.hub").warning("reading device=glucose-kitchen glucose=%s mmol/L", 2.5)
    logging.getLogger("bleak.backends.bluezdbus.client").warning("notification %r", bytearray(b"\x1e\x00\xb9"))
    logging.getLogger("paho.mqtt.client").info("Sending PUBLISH (d0, q1, r1, m3), b'{\"mmol_l\": 2.5}'")
    try:
        raise ValueError("systolic 187 out of range")
    except ValueError:
        logging.getLogger("drivers.ble.bps").exception("undecodable value device=bp-1")

    answer = await logs(installed)({"lines": "1000"})
    lines = answer["lines"]
    assert any("meter downloaded device_id=glucose-kitchen records=8" in line for line in lines)
    assert any("meter readings handed over device_id=glucose-kitchen count=8" in line for line in lines)
    assert stored[0].measurement.mmol_l == mg_dl_to_mmol_l(FIRST_VALUES[0])  # type: ignore[union-attr]
    assert health_values(lines) == []
    assert [line.split(maxsplit=2)[2] for line in lines[-3:]] == [
        "gateway.hub: reading device=glucose-kitchen glucose=<withheld>",
        "bleak.backends.bluezdbus.client: (text withheld: not a gateway logger; the hub's journal has it)",
        # paho's info line is not kept at all; the exception is named, its message and traceback are not.
        "drivers.ble.bps: undecodable value device=bp-1 exc=ValueError",
    ]
    assert not any("PUBLISH" in line or "187" in line or "Traceback" in line for line in lines)
    assert answer["returned"] == len(lines) and answer["cut_for_size"] is False


def test_the_ring_keeps_the_newest_lines_within_its_line_and_byte_bounds() -> None:
    ring = LogRing(max_lines=100, max_bytes=64 * 1024)
    log = logging.getLogger("gateway.test_ring")
    log.addHandler(ring)
    log.propagate = False
    try:
        for index in range(250):
            log.warning("event=%d device=bp-1", index)
        assert ring.tail(1000, max_json_bytes=10**6).lines[0].endswith("event=150 device=bp-1")
        assert ring.tail(1000, max_json_bytes=10**6).held == 100
        for index in range(200):  # long lines: the byte bound holds before the line bound
            log.warning("x%d %s", index, "y" * 2000)
        tail = ring.tail(1000, max_json_bytes=10**6)
        assert sum(len(line.encode()) for line in tail.lines) <= 64 * 1024
        assert all(len(line.split(": ", 1)[1]) <= LINE_MAX_CHARS + len("…(2005 chars)") for line in tail.lines)
        assert tail.lines[-1].split(": ", 1)[1].startswith("x199 yyy")
    finally:
        log.removeHandler(ring)
        log.propagate = True


async def test_the_answer_fits_one_mqtt_packet_whatever_the_lines_hold(installed: LogRing) -> None:
    log = logging.getLogger("gateway.test_ring")
    for index in range(1500):  # Chinese text is 3 bytes a character in UTF-8, \n escapes grow in JSON
        log.warning("事件 %d %s", index, "告警\n" * 200)
    answer = await logs(installed)({"lines": 1000})
    packet = len(json.dumps({"request_id": "r" * 128, "ok": True, "result": answer}, ensure_ascii=False).encode())
    assert packet + len("yiyang/v1/gw-0001/cmd/logs/result") + 64 < MAX_PACKET_BYTES
    assert answer["cut_for_size"] is True
    assert 0 < answer["returned"] < 1000
    assert sum(len(json.dumps(line, ensure_ascii=False).encode()) + 1 for line in answer["lines"]) \
        <= ANSWER_LINES_MAX_BYTES
    assert answer["lines"][-1].split(": ", 1)[1].startswith("事件 1499 ")  # the newest kept


async def test_lines_must_be_a_whole_number_from_1_to_1000(installed: LogRing) -> None:
    handler = logs(installed)
    for bad in (0, 1001, "lots", 2.5, True):
        with pytest.raises(CommandError, match="lines must be a whole number from 1 to 1000"):
            await handler({"lines": bad})
    logging.getLogger("gateway.test_ring").warning("one")
    logging.getLogger("gateway.test_ring").warning("two")
    assert [line.split(": ", 1)[1] for line in (await handler({"lines": "2"}))["lines"]] == ["one", "two"]
    with pytest.raises(CommandError, match="keeps no log lines"):
        await logs(None)({})


@pytest.mark.parametrize(("line", "scrubbed"), [
    ("readings accepted device=glucose-kitchen new=1 already_had=0 durable=True",
     "readings accepted device=glucose-kitchen new=1 already_had=0 durable=True"),
    ("device=bp-1 systolic=187 diastolic=113 pulse=71", "device=bp-1 systolic=<withheld> diastolic=<withheld> "
                                                         "pulse=<withheld>"),
    ('{"values": {"systolic": 187, "diastolic": 113}, "unit": "mmHg"}', '{"values": <withheld>, "unit": "mmHg"}'),
    ("BP 187/113 mmHg at 08:15", "BP <withheld> at 08:15"),
    ("glucose 2.7 mmol/L", "glucose <withheld>"),
    ("SpO2 91% pulse 88", "SpO2 <withheld> pulse <withheld>"),
    ("storage at 93% of budget", "storage at 93% of budget"),
    ("temperature: 38.6 site=armpit", "temperature: <withheld> site=armpit"),
    ("notification bytearray(b'\\x1e\\xbb\\x00') on 2a35", "notification <withheld> on 2a35"),
    ('line P "WED","03/05/24","08:15:00   ","  081 ","N","00", 00 09D4', "line <withheld>"),
    ("record_id=0193a2c4-77 alert=hypoglycaemia resident=r-0001", "record_id=0193a2c4-77 alert=hypoglycaemia "
                                                                  "resident=r-0001"),
])
def test_the_scrubber_withholds_what_looks_like_a_health_value_and_keeps_ids(line: str, scrubbed: str) -> None:
    assert scrub(line) == scrubbed


async def test_a_thread_logging_while_the_ring_is_read_is_safe(installed: LogRing) -> None:
    # paho's network thread logs while the loop reads the ring for a logs answer.
    def chatter() -> None:
        for index in range(2000):
            logging.getLogger("gateway.mqtt").info("mqtt event=%d", index)

    worker = asyncio.create_task(asyncio.to_thread(chatter))
    while not worker.done():
        assert len(installed.tail(1000, max_json_bytes=10**6).lines) <= 1000
        await asyncio.sleep(0.001)  # the reader must not starve the writer of the GIL
    await worker
    assert installed.tail(1, max_json_bytes=10**6).lines[0].endswith("mqtt event=1999")
