"""When a record read from a device's memory was measured, from the device's own clock. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from drivers.model import HubTime, TimeSource

FUTURE_TOLERANCE = timedelta(hours=1)
"""A device time this far past the hub's clock is a wrong clock (a battery change resets it), not a reading."""


def stored_record_time(device_time: datetime, received: HubTime, home_tz: tzinfo) -> tuple[datetime, TimeSource]:
    """The device's clock (naive local time) read in the home's time zone, as UTC.

    For a device whose clock the hub cannot read, this is the only time a stored record has: the
    hub's receive time would make last month's reading look new (and alarm on it). A device time in
    the hub's future falls back to the receive time.
    """
    measured_at = device_time.replace(tzinfo=home_tz).astimezone(UTC)
    if measured_at > received.wall + FUTURE_TOLERANCE:
        return received.wall, TimeSource.HUB if received.synced else TimeSource.HUB_UNSYNCED
    return measured_at, TimeSource.DEVICE
