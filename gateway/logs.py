"""Log set-up: one line per event, ``key=value`` fields, readable by a technician in journalctl.

Log calls carry ids (device, record, alert, resident), never measured values:
health data stays in the outbox and the alert payloads. Under systemd the records go to the journal
with those ids as fields of their own (gateway.journal); elsewhere as plain lines on standard error.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TextIO

from gateway.journal import JournalHandler, Send, journal_sender, journal_wanted
from gateway.log_ring import DATE_FORMAT, LogRing

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


def log_id(value: str) -> str:
    """``value`` if it looks like an id, else ``<invalid>``: what a client chose is not written as is."""
    return value if _ID.fullmatch(value) else "<invalid>"


def setup_logging(level: str = "info", *, stream: TextIO | None = None,
                  environ: Mapping[str, str] | None = None, journal_send: Send | None = None) -> LogRing:
    """The journal (or plain lines on ``stream``) and the in-memory ring the fleet's ``logs`` command reads.

    ``environ`` and ``journal_send`` are for tests: the process environment and systemd-python's sender.
    """
    handler = log_handler(stream or sys.stderr, os.environ if environ is None else environ, journal_send)
    ring = LogRing()
    root = logging.getLogger()
    root.handlers[:] = [handler, ring]
    root.setLevel(level.upper())
    # paho and bleak are chatty at debug; their warnings still come through.
    for noisy in ("paho", "bleak", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    return ring


def log_handler(stream: TextIO, environ: Mapping[str, str], journal_send: Send | None = None) -> logging.Handler:
    """The journal's native protocol when ``stream`` is the journal's stream (gateway.journal), else plain lines."""
    if journal_wanted(environ, stream):
        send = journal_send or journal_sender()
        if send is not None:
            return JournalHandler(send)
        # Without systemd-python (the optional [systemd] extra) the lines still reach the journal, without fields.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt=DATE_FORMAT))
    return handler


class RateLimitedLog:
    """One kind of log line that may repeat without end (a refused connect every 2 s, a flood of
    poison messages): the first ``per_window`` in each window of ``window_s`` are logged, the rest
    counted and told in one summary line when the next window opens (or at :meth:`flush`).

    The clock is injected (``time.monotonic`` in the gateway, a fake one in tests). Safe to share
    between paho's network thread and the event loop.
    """

    def __init__(self, logger: logging.Logger, what: str, *, per_window: int, window_s: float,
                 clock: Callable[[], float]) -> None:
        if per_window < 1 or window_s <= 0:
            raise ValueError("per_window must be >= 1 and window_s > 0")
        self._log = logger
        self._what = what
        self._per_window = per_window
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start: float | None = None
        self._logged = 0
        self._suppressed = 0

    @property
    def suppressed(self) -> int:
        """Lines held back in the current window, not yet told in a summary."""
        return self._suppressed

    def log(self, level: int, msg: str, *args: object) -> bool:
        """Log ``msg % args`` unless this window's allowance is used up; True if it was logged."""
        with self._lock:
            now = self._clock()
            if self._window_start is None or now - self._window_start >= self._window_s:
                self._summarise(level)
                self._window_start, self._logged = now, 0
            if self._logged >= self._per_window:
                self._suppressed += 1
                return False
            self._logged += 1
        self._log.log(level, msg, *args)
        return True

    def flush(self, level: int = logging.INFO) -> None:
        """Tell now how many lines were held back (e.g. when the trouble is over)."""
        with self._lock:
            self._summarise(level)

    def _summarise(self, level: int) -> None:
        if self._suppressed:
            self._log.log(level, "%s: suppressed=%d more (at most %d logged per %.0f s)", self._what,
                          self._suppressed, self._per_window, self._window_s)
            self._suppressed = 0
