"""Log set-up: one line per event, ``key=value`` fields, readable by a technician in journalctl.

Log calls carry ids (device, record, alert, resident), never measured values:
health data stays in the outbox and the alert payloads.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_ID = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


def log_id(value: str) -> str:
    """``value`` if it looks like an id, else ``<invalid>``: what a client chose is not written as is."""
    return value if _ID.fullmatch(value) else "<invalid>"


def setup_logging(level: str = "info", *, stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho and bleak are chatty at debug; their warnings still come through.
    for noisy in ("paho", "bleak", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))


class LogBudget:
    """At most ``burst`` lines per ``window_s`` for one kind of event; the rest are only counted.

    Anything a client can send can be sent a thousand times a second: refusing it must not flood the
    journal (or the SD card). The count of lines held back is said on the next line let through.
    """

    def __init__(self, logger: logging.Logger, *, burst: int = 10, window_s: float = 60.0,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._burst = burst
        self._window_s = window_s
        self._now = now
        self._window_start = -window_s
        self._used = 0
        self._held_back = 0

    def warning(self, msg: str, *args: object) -> None:
        now = self._now()
        if now - self._window_start >= self._window_s:
            self._window_start, self._used = now, 0
        if self._used >= self._burst:
            self._held_back += 1
            return
        self._used += 1
        if self._held_back:
            msg, args = f"{msg} held_back=%d", (*args, self._held_back)
            self._held_back = 0
        self._log.warning(msg, *args)
