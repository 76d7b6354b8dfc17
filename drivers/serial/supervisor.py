"""Keep a serial device's port open: the one supervisor loop every serial session shares.

USB-serial adapters vanish and come back (unplugged, a brown-out, the hub's USB hub resetting);
``/dev/serial/by-id/...`` links return within about a second of a replug. The loop reopens with a
capped backoff forever, so an unplug/replug never needs a daemon restart, and tells the session
what happened through hooks (its status, its device-lost event).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn

from drivers.errors import DeviceUnavailableError
from drivers.serial.port import SerialPort, SerialSettings

log = logging.getLogger(__name__)

REOPEN_BASE_S = 0.25
"""First retry after the port vanished: a replugged adapter's by-id link returns within ~1 s."""
REOPEN_CAP_S = 5.0
"""Longest wait between reopen attempts, so a replugged cable is picked up within seconds."""


def reopen_delay_s(attempt: int) -> float:
    """Capped exponential backoff for reopening a missing port (attempt 0, 1, 2, ...)."""
    return float(min(REOPEN_CAP_S, REOPEN_BASE_S * 2 ** min(attempt, 16)))


async def _nothing(_exc: DeviceUnavailableError) -> None:
    return None


@dataclass(frozen=True)
class PortHooks:
    """What a session wants to hear about its port."""

    opened: Callable[[], None] = lambda: None
    unavailable: Callable[[DeviceUnavailableError], Awaitable[None]] = _nothing
    """Called at every failed open attempt (the first one is logged)."""
    lost: Callable[[DeviceUnavailableError], Awaitable[None]] = _nothing
    """The open port went away in the middle of serving."""


async def keep_port_open(path: str, settings: SerialSettings | None, serve: Callable[[SerialPort], Awaitable[None]],
                         *, what: str, device_id: str, hooks: PortHooks = PortHooks()) -> NoReturn:
    """Open ``path``, run ``serve`` on it, and start again whenever the port goes away. Until cancelled."""
    attempt = 0
    while True:
        try:
            port = await SerialPort.open(path, settings)
        except DeviceUnavailableError as exc:
            if attempt == 0:
                log.warning("%s port unavailable device_id=%s port=%s", what, device_id, path)
            await hooks.unavailable(exc)
            await asyncio.sleep(reopen_delay_s(attempt))
            attempt += 1
            continue
        attempt = 0
        log.info("%s port open device_id=%s port=%s", what, device_id, path)
        hooks.opened()
        try:
            async with port:
                await serve(port)
        except DeviceUnavailableError as exc:
            log.warning("%s port lost device_id=%s port=%s", what, device_id, path)
            await hooks.lost(exc)
            await asyncio.sleep(REOPEN_BASE_S)
