"""The ``scan`` command: what advertises near the hub, as ``yiyang scan`` shows a technician on site.

The listening itself is gateway.ble_scan's (through the BLE manager's scanner when the hub has one);
this turns the sightings into a bounded answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from drivers.ble.policy import normalize_address
from gateway.ble_scan import BleScanError, ScanReport
from gateway.fleet.args import number
from gateway.fleet.commands import Handler
from gateway.fleet.errors import CommandError

SECONDS_DEFAULT = 10.0
SECONDS_MAX = 60.0
DEVICES_MAX = 200
"""A block of flats can have hundreds of phones, TVs and tags in range. The health devices come first
and then the strongest; 200 rows of at most ~400 bytes keep the answer far below the packet limit."""

Scan = Callable[[float], Awaitable[ScanReport]]


def scan(listen: Scan, configured: Mapping[str, str]) -> Handler:
    """``configured`` maps the configured BLE devices' addresses to their ids."""
    known = {normalize_address(address): device_id for address, device_id in configured.items()}

    async def handler(args: Mapping[str, Any]) -> dict[str, Any]:
        seconds = number(args, "seconds", default=SECONDS_DEFAULT, low=0.5, high=SECONDS_MAX)
        try:
            report = await listen(seconds)
        except BleScanError as exc:
            raise CommandError(str(exc)) from exc
        ordered = sorted(report.sightings, key=lambda s: (not s.drivers, -s.rssi, s.address))
        devices = [{"address": s.address, "name": s.name, "rssi": s.rssi, "drivers": list(s.drivers),
                    "configured_as": known.get(s.address)} for s in ordered[:DEVICES_MAX]]
        answer: dict[str, Any] = {"seconds": report.seconds, "listened_with": report.listened_with,
                                  "devices": devices, "devices_left_out": max(0, len(ordered) - DEVICES_MAX)}
        if report.note:
            answer["note"] = report.note
        return answer

    return handler
