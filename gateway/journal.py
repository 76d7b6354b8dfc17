"""Log records to the systemd journal with the ids they carry as fields, so ``journalctl DEVICE_ID=...`` works.

The project's log calls carry ids as ``key=value`` (``readings accepted device=glucose-kitchen new=3``,
``alert raised alert_id=... resident=r-0001``), never health values (gateway.logs). Under systemd the
daemon sends each record through the journal's native protocol (systemd-python's ``journal.send``)
with those ids as fields of their own, found in the message (:func:`journal_fields`) or passed with
``extra={"device_id": ...}``. The message stays as it is, so a technician reading ``journalctl -u
yiyang`` sees the same lines as before.

When to use it (:func:`journal_wanted`): when standard error is the journal's stream, which systemd
says in ``JOURNAL_STREAM`` (device and inode of that stream: systemd.exec(5) asks programs to compare
them with their own standard error before upgrading to the native protocol, since a child may
inherit the variable with its output sent elsewhere). ``INVOCATION_ID`` alone (a unit whose
``StandardError=`` goes to a file or a terminal) keeps plain lines: the operator chose where they go.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

FIELDS: Mapping[str, str] = {
    "device": "DEVICE_ID", "device_id": "DEVICE_ID",
    "record_id": "RECORD_ID",
    "alert_id": "ALERT_ID",
    "resident": "RESIDENT_ID", "resident_id": "RESIDENT_ID",
    "contact": "CONTACT_ID", "contact_id": "CONTACT_ID",
    "request_id": "REQUEST_ID",
}
"""The key a log call writes (``device=%s``) or passes in ``extra`` -> the journal field it becomes."""

SYSLOG_IDENTIFIER = "yiyang"
JOURNAL_FORMAT = "%(name)s: %(message)s"
"""The journal stamps time and priority itself."""
_VALUE = r"[A-Za-z0-9_.:+-]{1,64}"
_KEYS = "|".join(sorted(FIELDS, key=len, reverse=True))
_KEYED = re.compile(r"(?<![\w.])(" + _KEYS + r")=(" + _VALUE + r")(?=[\s,;)\]]|$)")
"""``key=value`` as a word of its own (not ``ble_device=``), the value ending where the word does."""
_ID = re.compile(_VALUE)
_TRAILING = ".:,;"
"""``resident=r-0001: same episode``: punctuation after an id belongs to the sentence (ids do not end so)."""

# syslog priorities (sd-journal's PRIORITY=), as systemd-python maps logging's levels
_PRIORITIES = ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3), (logging.CRITICAL, 2))

Send = Callable[..., Any]
"""``systemd.journal.send(MESSAGE, **fields)``."""


def journal_fields(record: logging.LogRecord) -> dict[str, str]:
    """The id fields of one record: ``extra=`` attributes first, then ``key=value`` pairs in its message.

    A value that does not look like an id is not made a field (the message still carries it).
    The first value of a field wins: ``device=a ... device=b`` gives ``DEVICE_ID=a``.
    """
    fields: dict[str, str] = {}
    for key, field in FIELDS.items():
        value = record.__dict__.get(key)
        if isinstance(value, str) and field not in fields and _ID.fullmatch(value):
            fields[field] = value
    try:
        message = record.getMessage()
    except (TypeError, ValueError):  # bad arguments: logging's own handleError reports the record
        return fields
    for match in _KEYED.finditer(message):
        value = match.group(2).rstrip(_TRAILING)
        field = FIELDS[match.group(1)]
        if value and field not in fields:
            fields[field] = value
    return fields


def priority(levelno: int) -> int:
    for level, value in _PRIORITIES:
        if levelno <= level:
            return value
    return 1


class JournalHandler(logging.Handler):
    """One journal entry per record: MESSAGE, PRIORITY, the logger and code location, and the ids.

    systemd-python has a JournalHandler of its own; it passes every attribute of the record as a field
    (``msg``, ``args``: lowercase, so journald drops them, but the call's arguments travel all the
    same). This one sends only what is named here.
    """

    def __init__(self, send: Send, identifier: str = SYSLOG_IDENTIFIER) -> None:
        super().__init__()
        self._send = send
        self._identifier = identifier
        self.setFormatter(logging.Formatter(JOURNAL_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self._send(message, PRIORITY=str(priority(record.levelno)), SYSLOG_IDENTIFIER=self._identifier,
                       LOGGER=record.name, THREAD_NAME=record.threadName or "", CODE_FILE=record.pathname,
                       CODE_LINE=record.lineno, CODE_FUNC=record.funcName, **journal_fields(record))
        except Exception:  # noqa: BLE001 -- as logging's own handlers: a failed log line never fails the caller
            self.handleError(record)


def journal_wanted(environ: Mapping[str, str], stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default standard error) is the journal's stream systemd connected."""
    expected = environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError, AttributeError):  # closed, or not a real file (pytest's capture)
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def journal_sender() -> Send | None:
    """systemd-python's ``journal.send``; None when the optional [systemd] extra is not installed."""
    try:
        journal = importlib.import_module("systemd.journal")  # optional: only a hub under systemd needs it
    except ImportError:
        return None
    send: Send = journal.send
    return send
