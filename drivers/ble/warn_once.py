"""A device's repeated complaints, told in full once: the first time at warning, every repeat at debug.

A device with broken firmware, or one that does a thing the public facts do not describe, would
otherwise fill the log with the same line at every notification or visit.
"""

from __future__ import annotations

import logging


class WarnOnce:
    """Log a fact about one device at warning the first time it is told, at debug after.

    ``what`` names the fact (a characteristic, a command, "clock"...); the lines go to ``logger``,
    the module's own, with the caller's place in the record.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._told: set[str] = set()

    def __call__(self, what: str, message: str, *args: object) -> None:
        level = logging.DEBUG if what in self._told else logging.WARNING
        self._told.add(what)
        self._log.log(level, message, *args, stacklevel=2)
