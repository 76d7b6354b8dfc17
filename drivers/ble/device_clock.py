"""Device clocks: Current Time (0x2A2B) bytes, and what the hub makes of a device's clock.

Current Time layout: Date Time (7 bytes), day of week u8 (1 Monday .. 7 Sunday, 0 unknown),
fractions u8 (1/256 s), adjust reason u8 (bit 0 manual update, bit 1 external reference,
bit 2 time zone change, bit 3 DST change). Device clocks are never trusted as such: the hub
measures the offset between its own (synchronised) clock and the device's and applies that.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from drivers.ble.datetime_char import DATE_TIME_SIZE, BleDateTime, decode_date_time, encode_date_time
from drivers.errors import CodecError
from drivers.model import HubTime

CURRENT_TIME_SIZE = 10
ADJUST_MANUAL = 0x01
ADJUST_EXTERNAL_REFERENCE = 0x02

CLOCK_TOLERANCE = timedelta(minutes=3)
"""Only reset a device clock that is further off than this: writing a clock costs a GATT
write on every connection, and a few minutes do not matter for a reading's date."""


@dataclass(frozen=True, slots=True)
class CurrentTime:
    date_time: BleDateTime
    day_of_week: int | None
    fractions256: int
    adjust_reason: int


def decode_current_time(data: bytes) -> CurrentTime:
    """Decode a Current Time (0x2A2B) value (10 bytes; longer values carry vendor bytes we ignore)."""
    if len(data) < CURRENT_TIME_SIZE:
        raise CodecError(f"Current Time: expected {CURRENT_TIME_SIZE} bytes, got {len(data)}")
    day_of_week = data[DATE_TIME_SIZE]
    if day_of_week > 7:
        raise CodecError(f"Current Time: day of week {day_of_week} is outside 0-7")
    return CurrentTime(
        date_time=decode_date_time(bytes(data[:DATE_TIME_SIZE])),
        day_of_week=day_of_week or None,
        fractions256=data[DATE_TIME_SIZE + 1],
        adjust_reason=data[DATE_TIME_SIZE + 2],
    )


def encode_current_time(local: datetime, adjust_reason: int = ADJUST_EXTERNAL_REFERENCE) -> bytes:
    """Current Time for a naive device-local datetime (what to write to set a device clock)."""
    fractions = local.microsecond * 256 // 1_000_000
    return encode_date_time(local) + bytes([local.isoweekday(), fractions, adjust_reason])


@dataclass(frozen=True, slots=True)
class DeviceClock:
    """What one read of a device clock told the hub."""

    offset: timedelta | None
    """Hub UTC minus the device clock read as if it were UTC (see ``measurement_time``); None
    when the device clock is unknown or the hub's own clock is not synchronised."""
    drift: timedelta | None
    """Device clock minus the home's local time; None when either is unknown."""

    @property
    def needs_setting(self) -> bool:
        return self.drift is not None and abs(self.drift) > CLOCK_TOLERANCE


def read_device_clock(device_time: BleDateTime, read_at: HubTime, home_tz: tzinfo) -> DeviceClock:
    """Compare a device clock read at ``read_at`` with the hub clock.

    An unsynchronised hub clock (no RTC, no network yet) is no reference: then neither an offset
    nor a drift is claimed, and readings fall back to hub time marked unsynced.
    """
    device_naive = device_time.to_datetime()
    if device_naive is None or not read_at.synced:
        return DeviceClock(offset=None, drift=None)
    hub_local = read_at.wall.astimezone(home_tz).replace(tzinfo=None)
    return DeviceClock(
        offset=read_at.wall - device_naive.replace(tzinfo=UTC),
        drift=device_naive - hub_local,
    )


def home_local_time(now: HubTime, home_tz: tzinfo) -> datetime:
    """The naive local time of the home, as a device clock should show it."""
    return now.wall.astimezone(home_tz).replace(tzinfo=None)
