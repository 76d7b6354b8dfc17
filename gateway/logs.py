"""Log set-up: one line per event, ``key=value`` fields, readable by a technician in journalctl.

Log calls carry ids (device, record, alert, resident), never measured values:
health data stays in the outbox and the alert payloads.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str = "info", *, stream: object = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # paho and bleak are chatty at debug; their warnings still come through.
    for noisy in ("paho", "bleak", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
