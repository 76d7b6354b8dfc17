"""Journal fields from the project's log lines, the handler chosen under systemd, and the native protocol on the wire.

What runs offline here: the field extraction (pure), the handler selection against a real file's device
and inode, and systemd-python's real ``journal.send`` (libsystemd) writing its native-protocol datagram
to a socket this test binds where journald's would be. journald itself does not run on this machine; where
it does, the last test reads the entry back with ``journalctl DEVICE_ID=...`` instead.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.journal import JournalHandler, journal_fields, journal_sender, journal_wanted
from gateway.logs import log_handler, setup_logging

JOURNAL_SOCKET = Path("/run/systemd/journal/socket")


def record(message: str, *args: object, level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("gateway.hub", level, "/x/gateway/hub.py", 114, message, args, None, "on_readings")
    made.__dict__.update(extra)
    return made


@pytest.mark.parametrize(("message", "args", "fields"), [
    ("readings accepted device=%s new=%d already_had=%d durable=%s", ("glucose-kitchen", 3, 0, True),
     {"DEVICE_ID": "glucose-kitchen"}),
    ("alert raised alert_id=%s kind=%s severity=%s resident=%s",
     ("0190c3a1-7f2e-7c4b-9d1a-5b2e8c9f0a11", "glucose_low", "emergency", "r-0001"),
     {"ALERT_ID": "0190c3a1-7f2e-7c4b-9d1a-5b2e8c9f0a11", "RESIDENT_ID": "r-0001"}),
    # the id ends where the sentence goes on
    ("fall detected while one is pending resident=%s device=%s: same episode", ("r-0001", "wear-1"),
     {"RESIDENT_ID": "r-0001", "DEVICE_ID": "wear-1"}),
    ("held record let go (memory bound) record_id=%s type=%s on_device=%s",
     ("0190c3a1-0000-7000-8000-000000000001", "blood_glucose", True),
     {"RECORD_ID": "0190c3a1-0000-7000-8000-000000000001"}),
    ("ack refused reason=%s resident=%s alert_id=%s contact=%s", ("not linked", "r-0002", "a-1", "c-0001"),
     {"RESIDENT_ID": "r-0002", "ALERT_ID": "a-1", "CONTACT_ID": "c-0001"}),
    ("command answered request_id=%s command=%s", ("r-42", "doctor"), {"REQUEST_ID": "r-42"}),
    # not ids: another key that ends like one, a value that is not an id, nothing at all
    ("ble_device=%s subdevice=%s", ("x", "y"), {}),
    ("mqtt topic refused device=%s", ("<invalid>",), {}),
    ("device=%s/%s", ("a", "b"), {}),
    ("gateway starting", (), {}),
])
def test_ids_in_the_message_become_fields(message: str, args: tuple[object, ...], fields: dict[str, str]) -> None:
    assert journal_fields(record(message, *args)) == fields


def test_ids_passed_as_extra_come_first_and_junk_is_left_out() -> None:
    made = record("readings accepted device=%s", "from-message", device_id="from-extra", alert_id="bad id!",
                  resident_id=42)
    assert journal_fields(made) == {"DEVICE_ID": "from-extra"}


def test_the_handler_sends_the_message_its_priority_and_ids_and_nothing_else() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    handler = JournalHandler(lambda message, **fields: sent.append((message, fields)))
    handler.handle(record("readings accepted device=%s new=%d", "glucose-kitchen", 3, level=logging.WARNING))
    message, fields = sent[0]
    assert message == "gateway.hub: readings accepted device=glucose-kitchen new=3"
    assert fields == {"PRIORITY": "4", "SYSLOG_IDENTIFIER": "yiyang", "LOGGER": "gateway.hub",
                      "THREAD_NAME": "MainThread", "CODE_FILE": "/x/gateway/hub.py", "CODE_LINE": 114,
                      "CODE_FUNC": "on_readings", "DEVICE_ID": "glucose-kitchen"}


def test_a_failing_journal_never_fails_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    errors: list[logging.LogRecord] = []

    def down(_message: str, **_fields: object) -> None:
        raise OSError("journald is gone")

    handler = JournalHandler(down)
    monkeypatch.setattr(handler, "handleError", errors.append)
    handler.handle(record("x device=%s", "d"))
    assert len(errors) == 1


# -- which handler -------------------------------------------------------------------------------------


@pytest.fixture
def stream(tmp_path: Path) -> Iterator[io.TextIOWrapper]:
    with open(tmp_path / "stderr", "w", encoding="utf-8") as file:
        yield file


def stream_id(stream: io.TextIOWrapper) -> str:
    status = os.fstat(stream.fileno())
    return f"{status.st_dev}:{status.st_ino}"


def test_the_journal_only_when_standard_error_is_its_stream(stream: io.TextIOWrapper) -> None:
    def send(_message: str, **_fields: object) -> None: ...

    assert isinstance(log_handler(stream, {"JOURNAL_STREAM": stream_id(stream)}, send), JournalHandler)
    assert journal_wanted({"JOURNAL_STREAM": stream_id(stream)}, stream)
    # Inherited by a child whose output goes elsewhere; a unit that sends standard error to a file; no systemd.
    for environ in ({"JOURNAL_STREAM": "1:2"}, {"INVOCATION_ID": uuid.uuid4().hex}, {}, {"JOURNAL_STREAM": "junk"}):
        handler = log_handler(stream, environ, send)
        assert type(handler) is logging.StreamHandler, environ
    assert not journal_wanted({"JOURNAL_STREAM": "1:2"}, io.StringIO())  # not a file at all


def test_without_systemd_python_the_lines_stay_plain(stream: io.TextIOWrapper,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.logs.journal_sender", lambda: None)
    assert type(log_handler(stream, {"JOURNAL_STREAM": stream_id(stream)})) is logging.StreamHandler


def test_setup_logging_keeps_the_ring_beside_the_journal(stream: io.TextIOWrapper) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        sent: list[dict[str, Any]] = []
        ring = setup_logging("info", stream=stream, environ={"JOURNAL_STREAM": stream_id(stream)},
                             journal_send=lambda message, **fields: sent.append({"MESSAGE": message, **fields}))
        logging.getLogger("gateway.hub").info("readings accepted device=%s new=%d", "glucose-kitchen", 1)
        assert [h.__class__ for h in root.handlers] == [JournalHandler, type(ring)]
        assert sent[-1]["DEVICE_ID"] == "glucose-kitchen"
        assert ring.tail(10, max_json_bytes=10_000).lines[-1].endswith("readings accepted device=glucose-kitchen new=1")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


# -- systemd-python's own sender, on the wire ----------------------------------------------------------


def parse_native(datagram: bytes) -> dict[str, str]:
    """The journal's native protocol: ``NAME=value\\n``, or ``NAME\\n`` + 64-bit LE length + bytes + ``\\n``."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        head, newline, tail = rest.partition(b"\n")
        assert newline, rest
        if b"=" in head:
            name, _, value = head.partition(b"=")
            fields[name.decode()] = value.decode()
            rest = tail
        else:
            (length,) = struct.unpack("<Q", tail[:8])
            fields[head.decode()] = tail[8:8 + length].decode()
            rest = tail[8 + length + 1:]
    return fields


@pytest.mark.timeout(30)
def test_systemd_pythons_sender_carries_the_fields() -> None:
    send = journal_sender()
    assert send is not None, "systemd-python is missing: scripts/setup.sh installs the [systemd] extra"
    marker = f"journal test {uuid.uuid4().hex}"
    handler = JournalHandler(send)
    if JOURNAL_SOCKET.exists():  # a machine where journald runs: read the entry back as a technician would
        handler.handle(record(marker + " device=%s", "glucose-kitchen"))
        journalctl = shutil.which("journalctl")
        assert journalctl is not None
        found = subprocess.run([journalctl, "--no-pager", "-o", "json", "DEVICE_ID=glucose-kitchen",
                                f"MESSAGE=gateway.hub: {marker} device=glucose-kitchen"],
                               capture_output=True, text=True, check=True, timeout=20)
        entry = json.loads(found.stdout.splitlines()[-1])
        assert entry["DEVICE_ID"] == "glucose-kitchen"
        return
    created = not JOURNAL_SOCKET.parent.exists()
    JOURNAL_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        receiver.bind(str(JOURNAL_SOCKET))
        receiver.settimeout(5)
        handler.handle(record(marker + " device=%s alert_id=%s", "glucose-kitchen", "a-1", level=logging.ERROR))
        fields = parse_native(receiver.recv(65536))
    finally:
        receiver.close()
        JOURNAL_SOCKET.unlink(missing_ok=True)
        if created:
            JOURNAL_SOCKET.parent.rmdir()
    assert fields["MESSAGE"] == f"gateway.hub: {marker} device=glucose-kitchen alert_id=a-1"
    assert (fields["DEVICE_ID"], fields["ALERT_ID"], fields["PRIORITY"]) == ("glucose-kitchen", "a-1", "3")
    assert fields["SYSLOG_IDENTIFIER"] == "yiyang"
