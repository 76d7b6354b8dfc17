"""Commands that reach device sessions: ``measure`` (take a measurement now) and ``resync`` (ask
meters for their stored records again).

Sessions are reached through the small protocols in gateway.driver_registry (``Measurable``,
``Resyncable``), never by their classes: a new kind of device joins by having the method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.errors import DriverError
from gateway.driver_registry import Measurable, Resyncable
from gateway.errors import GatewayError
from gateway.fleet.args import optional_id
from gateway.fleet.commands import Handler
from gateway.fleet.errors import CommandError


def measure(sessions: Mapping[str, Measurable]) -> Handler:
    async def handler(args: Mapping[str, Any]) -> dict[str, Any]:
        device_id = optional_id(args, "device_id") or ""
        session = sessions.get(device_id)
        if session is None:
            raise CommandError(f"no device {device_id!r} that can measure on demand; "
                               f"have: {', '.join(sorted(sessions)) or 'none'}")
        try:
            await session.measure_now()
        except DriverError as exc:
            raise CommandError(f"{device_id}: {exc}") from exc
        return {"device_id": device_id, "done": True}

    return handler


def resync(sessions: Mapping[str, Resyncable]) -> Handler:
    """``device_id`` one device, or every resyncable device when absent. The answer says, per
    device, when its records will come: only asked now, they arrive when the device is next read."""

    async def handler(args: Mapping[str, Any]) -> dict[str, Any]:
        device_id = optional_id(args, "device_id")
        if device_id is not None and device_id not in sessions:
            raise CommandError(f"no device {device_id!r} that can be asked for its records again; "
                               f"have: {', '.join(sorted(sessions)) or 'none'}")
        chosen = [device_id] if device_id is not None else sorted(sessions)
        devices: list[dict[str, str]] = []
        for chosen_id in chosen:
            session = sessions[chosen_id]
            try:
                await session.resync()
            except (GatewayError, DriverError) as exc:
                if device_id is not None:
                    raise CommandError(f"{chosen_id}: resync not requested: {exc}") from exc
                devices.append({"device_id": chosen_id, "error": f"resync not requested: {exc}"})
                continue
            devices.append({"device_id": chosen_id, "when": session.resync_when})
        return {"devices": devices,
                "records": "sent again by the device; the ones the hub already holds are dropped, not duplicated"}

    return handler
