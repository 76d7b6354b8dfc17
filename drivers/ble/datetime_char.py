"""Date Time (0x2A08): the 7-byte device time inside SIG health measurements, and what it means.

Layout: year u16 (1582-9999, 0 = unknown), month u8 (1-12, 0 = unknown), day u8 (1-31,
0 = unknown), hours u8 (0-23), minutes u8 (0-59), seconds u8 (0-59). The value is the
device's own wall clock: naive local time, often never set or reset by a battery change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from drivers.ble.ieee11073 import FieldType
from drivers.errors import CodecError
from drivers.model import HubTime, TimeSource

DATE_TIME_SIZE = 7

# Field name -> inclusive range the SIG allows; 0 in a date part means "not known".
_RANGES: dict[str, tuple[int, int]] = {
    "year": (1582, 9999),
    "month": (1, 12),
    "day": (1, 31),
    "hours": (0, 23),
    "minutes": (0, 59),
    "seconds": (0, 59),
}
_UNKNOWN_ALLOWED = frozenset({"year", "month", "day"})


@dataclass(frozen=True, slots=True)
class BleDateTime:
    """A device date-time as sent; a date part is None when the device does not know it."""

    year: int | None
    month: int | None
    day: int | None
    hours: int
    minutes: int
    seconds: int

    @property
    def date_known(self) -> bool:
        return self.year is not None and self.month is not None and self.day is not None

    def to_datetime(self) -> datetime | None:
        """The naive device-local datetime, or None when any date part is unknown."""
        if self.year is None or self.month is None or self.day is None:
            return None
        return datetime(self.year, self.month, self.day, self.hours, self.minutes, self.seconds)


def _check(name: str, value: int) -> int | None:
    if value == 0 and name in _UNKNOWN_ALLOWED:
        return None
    low, high = _RANGES[name]
    if not low <= value <= high:
        raise CodecError(
            f"Date Time: {name} {value} is outside {low}-{high}; the device clock holds garbage "
            "(set it through the Current Time Service, or ignore its time)"
        )
    return value


def decode_date_time(data: bytes) -> BleDateTime:
    """Decode exactly 7 bytes of Date Time."""
    if len(data) != DATE_TIME_SIZE:
        raise CodecError(f"Date Time: expected {DATE_TIME_SIZE} bytes, got {len(data)}")
    raw = {
        "year": int.from_bytes(data[0:2], "little"),
        "month": data[2],
        "day": data[3],
        "hours": data[4],
        "minutes": data[5],
        "seconds": data[6],
    }
    checked = {name: _check(name, value) for name, value in raw.items()}
    value = BleDateTime(
        year=checked["year"],
        month=checked["month"],
        day=checked["day"],
        hours=raw["hours"],
        minutes=raw["minutes"],
        seconds=raw["seconds"],
    )
    if value.date_known:
        try:
            value.to_datetime()
        except ValueError as exc:
            raise CodecError(f"Date Time: no such date {raw['year']}-{raw['month']}-{raw['day']}") from exc
    return value


def encode_date_time(value: datetime | BleDateTime) -> bytes:
    """Encode a (naive, device-local) datetime as Date Time, e.g. to set a device clock."""
    if isinstance(value, datetime):
        value = BleDateTime(value.year, value.month, value.day, value.hour, value.minute, value.second)
    return (value.year or 0).to_bytes(2, "little") + bytes(
        [value.month or 0, value.day or 0, value.hours, value.minutes, value.seconds]
    )


DATE_TIME: FieldType[BleDateTime] = FieldType("Date Time", DATE_TIME_SIZE, decode_date_time)


def measurement_time(
    device_time: datetime | None, received: HubTime, clock_offset: timedelta | None
) -> tuple[datetime, TimeSource]:
    """Best UTC estimate of when a measurement was taken, and where that estimate came from.

    ``clock_offset`` is the hub's UTC wall clock minus the device clock read as if it were
    UTC, measured by the session when it last read the device clock (e.g. Current Time). It
    folds the device's time zone and drift together, so no time zone is needed here. Without
    an offset, or without a device time, the hub receive time is the only honest answer.
    """
    if device_time is not None and clock_offset is not None:
        return device_time.replace(tzinfo=UTC) + clock_offset, TimeSource.DEVICE
    return received.wall, TimeSource.HUB if received.synced else TimeSource.HUB_UNSYNCED
