"""The hub's own recent log lines in memory, for the fleet's ``logs`` command.

A hub in an elder's home has no technician at its console: the journal is there, but out of reach.
:class:`LogRing` keeps the last lines (bounded in count and in bytes, so a chatty hour cannot grow
it) and hands out its tail. What it keeps is chosen for leaving the hub:

- only the lines of the project's own loggers (``gateway``, ``drivers``), whose calls carry ids,
  counts and states by rule. Other libraries log what they like: bleak at debug logs GATT
  notifications byte for byte, paho logs packets, i.e. readings. Their warnings are kept as a
  line that says one was logged and where (the journal has it), without its text;
- each kept line is cut to :data:`LINE_MAX_CHARS`, made printable, and scrubbed
  (:func:`gateway.log_scrub.scrub`) as a second line of defence;
- no tracebacks: the exception's type is named, the journal keeps the rest.

Safe to call from any thread (paho's network thread logs too).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from gateway.inbound import excerpt
from gateway.log_scrub import scrub

OWN_LOGGERS = ("gateway", "drivers")
LINE_MAX_CHARS = 500
"""A log line of ours is one event with a few ids: a longer one is cut (and says how long it was)."""
RING_MAX_LINES = 1000
"""As many as ``logs`` may ask for."""
RING_MAX_BYTES = 256 * 1024
"""Memory held by the ring at most, in UTF-8 bytes of its lines, whatever their length."""
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True, slots=True)
class LogTail:
    lines: tuple[str, ...]
    """Oldest first."""
    held: int
    """Lines the ring holds now."""
    cut_for_size: bool
    """Fewer lines than asked for because the answer would have been too big."""


class LogRing(logging.Handler):
    def __init__(self, *, max_lines: int = RING_MAX_LINES, max_bytes: int = RING_MAX_BYTES) -> None:
        super().__init__()
        if max_lines < 1 or max_bytes < LINE_MAX_CHARS * 4:
            raise ValueError("max_lines must be >= 1 and max_bytes room for at least one line")
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._lines: deque[tuple[str, int]] = deque()
        self._bytes = 0
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        # As logging.StreamHandler does: a log call with bad arguments is reported by logging's
        # handleError, never raised at the code that logged.
        try:
            line = self._line(record)
        except Exception:  # noqa: BLE001
            self.handleError(record)
            return
        if line is None:
            return
        size = len(line.encode())
        with self._guard:
            self._lines.append((line, size))
            self._bytes += size
            while len(self._lines) > self._max_lines or self._bytes > self._max_bytes:
                _, dropped = self._lines.popleft()
                self._bytes -= dropped

    def tail(self, count: int, *, max_json_bytes: int) -> LogTail:
        """The last ``count`` lines whose JSON strings (as the answer carries them) fit in ``max_json_bytes``."""
        with self._guard:
            newest_first = [line for line, _ in reversed(self._lines)][:count]
            held = len(self._lines)
        taken: list[str] = []
        budget = max_json_bytes
        for line in newest_first:
            cost = len(json.dumps(line, ensure_ascii=False).encode()) + 1  # the comma between them
            if cost > budget:
                break
            budget -= cost
            taken.append(line)
        return LogTail(lines=tuple(reversed(taken)), held=held, cut_for_size=len(taken) < len(newest_first))

    @staticmethod
    def _line(record: logging.LogRecord) -> str | None:
        stamp = time.strftime(DATE_FORMAT, time.localtime(record.created))
        head = f"{stamp} {record.levelname:<7} {record.name}:"
        if not _own(record.name):
            if record.levelno < logging.WARNING:
                return None
            return f"{head} (text withheld: not a gateway logger; the hub's journal has it)"
        text = excerpt(record.getMessage(), LINE_MAX_CHARS)
        if record.exc_info and record.exc_info[0] is not None:
            text += f" exc={record.exc_info[0].__name__}"
        return f"{head} {scrub(text)}"


def _own(name: str) -> bool:
    return any(name == root or name.startswith(f"{root}.") for root in OWN_LOGGERS)
