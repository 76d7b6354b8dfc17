"""Omron cuffs' memory: where each user's ring buffer lies, and what a record's bits say. Pure.

Every model keeps one ring buffer of fixed-size records per user in its EEPROM; where, how big,
and the bit layout of a record differ by model. The table below holds the models whose layout
the public omblepy driver documents (``deviceSpecific/hem-7361t.py``, ``hem-7322t.py``): bit
positions count from the most significant bit of the record read as one integer in the model's
byte order, as omblepy writes them, so a new model is one row copied from there.

An empty slot is all ``FF``. The hub reads every slot of every user at each visit and relies on
each record's identity (user, cuff time, values) to drop the ones it already has: the cuff's own
"unread" counters are emptied by the phone app's auto-sync, and the hub never writes to the
cuff's memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Literal

from drivers.ble.stored_time import stored_record_time
from drivers.errors import CodecError
from drivers.model import BloodPressure, DeviceInfo, HubTime, Reading, ReadingFlag


class OmronRecordError(CodecError):
    """A record slot of an Omron cuff's memory holds no valid measurement (an impossible date)."""


@dataclass(frozen=True, slots=True)
class Bits:
    """Bits ``first``..``last`` (inclusive, 0 = the record's most significant bit), plus ``add``."""

    first: int
    last: int
    add: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class OmronModel:
    name: str
    byteorder: Literal["little", "big"]
    user_starts: tuple[int, ...]
    """EEPROM address of each user's ring buffer, user 1 first."""
    records_per_user: int
    record_size: int
    block_size: int
    """EEPROM bytes asked for in one read (omblepy's transmissionBlockSize for the model)."""
    fields: Mapping[str, Bits]
    """systolic, diastolic, pulse, year, month, day, hour, minute, second, movement, irregular."""

    def __post_init__(self) -> None:
        missing = set(_FIELD_NAMES) - set(self.fields)
        if missing:
            raise ValueError(f"Omron model {self.name}: no bits for {sorted(missing)}")
        if any(not 0 <= b.first <= b.last < self.record_size * 8 for b in self.fields.values()):
            raise ValueError(f"Omron model {self.name}: a field lies outside its {self.record_size}-byte record")
        if self.record_size * self.records_per_user % self.block_size:
            raise ValueError(f"Omron model {self.name}: a ring buffer is not a whole number of reads")

    def reads(self, user: int) -> Iterator[tuple[int, int]]:
        """(address, size) of the reads that fetch one user's whole ring buffer."""
        start = self.user_starts[user]
        for offset in range(0, self.records_per_user * self.record_size, self.block_size):
            yield start + offset, self.block_size


_FIELD_NAMES = ("systolic", "diastolic", "pulse", "year", "month", "day", "hour", "minute", "second",
                "movement", "irregular")  # fmt: skip

MODELS: Mapping[str, OmronModel] = {
    model.name: model
    for model in (
        OmronModel(  # omblepy deviceSpecific/hem-7361t.py (M500 Intelli IT and its relatives)
            name="HEM-7361T", byteorder="little", user_starts=(0x0098, 0x06D8), records_per_user=100,
            record_size=0x10, block_size=0x10,
            fields={"minute": Bits(68, 73), "second": Bits(74, 79), "movement": Bits(80, 80),
                    "irregular": Bits(81, 81), "month": Bits(82, 85), "day": Bits(86, 90), "hour": Bits(91, 95),
                    "year": Bits(98, 103, 2000), "pulse": Bits(104, 111), "diastolic": Bits(112, 119),
                    "systolic": Bits(120, 127, 25)},
        ),
        OmronModel(  # omblepy deviceSpecific/hem-7322t.py (M700 Intelli IT)
            name="HEM-7322T", byteorder="big", user_starts=(0x02AC, 0x0824), records_per_user=100,
            record_size=0x0E, block_size=0x38,
            fields={"diastolic": Bits(0, 7), "systolic": Bits(8, 15, 25), "year": Bits(16, 23, 2000),
                    "pulse": Bits(24, 31), "movement": Bits(32, 32), "irregular": Bits(33, 33),
                    "month": Bits(34, 37), "day": Bits(38, 42), "hour": Bits(43, 47), "minute": Bits(52, 57),
                    "second": Bits(58, 63)},
        ),
    )
}  # fmt: skip
DEFAULT_MODEL = "HEM-7361T"
"""The model assumed when a cuff does not say which it is (the one the reference names)."""


def model_named(model_number: str) -> OmronModel | None:
    """The layout for a cuff's Model Number String, if known. Exact names only: omblepy shows that
    variants (HEM-7361T-D) lay out their memory differently."""
    return MODELS.get(model_number.strip().upper())


@dataclass(frozen=True, slots=True)
class OmronRecord:
    user: int
    """1 or 2: the user button the resident pressed."""
    systolic_mmhg: int
    diastolic_mmhg: int
    pulse_bpm: int
    time: datetime
    """The cuff's clock, naive local time."""
    body_movement: bool
    irregular_heartbeat: bool


def _bits(value: int, width: int, bits: Bits) -> int:
    return ((value >> (width - bits.last - 1)) & ((1 << (bits.last - bits.first + 1)) - 1)) + bits.add


def decode_record(model: OmronModel, user: int, data: bytes) -> OmronRecord | None:
    """One slot of a user's ring buffer: the record, or None for an empty slot (all FF)."""
    if len(data) != model.record_size:
        raise OmronRecordError(f"{model.name} record of {len(data)} bytes; {model.record_size} expected")
    if data == b"\xff" * model.record_size:
        return None
    value, width = int.from_bytes(data, model.byteorder), model.record_size * 8
    f = {name: _bits(value, width, bits) for name, bits in model.fields.items()}
    try:
        # omblepy: the seconds field can read up to 63.
        time = datetime(f["year"], f["month"], f["day"], f["hour"], f["minute"], min(f["second"], 59))
    except ValueError as exc:
        raise OmronRecordError(f"{model.name} user {user} record has an impossible date: {exc}") from None
    return OmronRecord(
        user=user, systolic_mmhg=f["systolic"], diastolic_mmhg=f["diastolic"], pulse_bpm=f["pulse"], time=time,
        body_movement=bool(f["movement"]), irregular_heartbeat=bool(f["irregular"]),
    )  # fmt: skip


def decode_ring_buffer(model: OmronModel, user: int, data: bytes) -> tuple[list[OmronRecord], list[OmronRecordError]]:
    """Every record in a user's ring buffer (the bytes of every slot, in order) and the slots that held garbage."""
    records: list[OmronRecord] = []
    errors: list[OmronRecordError] = []
    for offset in range(0, len(data) - model.record_size + 1, model.record_size):
        try:
            record = decode_record(model, user, data[offset : offset + model.record_size])
        except OmronRecordError as exc:
            errors.append(exc)
            continue
        if record is not None:
            records.append(record)
    return records, errors


def omron_reading(
    record: OmronRecord, *, device: DeviceInfo, resident_id: str, received: HubTime, home_tz: tzinfo
) -> Reading:
    """A record as a Reading, its time the cuff's clock read in the home's time zone (stored_record_time).

    The record's identity at the cuff (user, cuff time,
    values) is its source key, so reading the ring buffer again never uploads it twice.
    """
    measured_at, time_source = stored_record_time(record.time, received, home_tz)
    flags = {flag for flag, on in ((ReadingFlag.BODY_MOVEMENT, record.body_movement),
                                   (ReadingFlag.IRREGULAR_PULSE, record.irregular_heartbeat)) if on}  # fmt: skip
    return Reading(
        device=device,
        resident_id=resident_id,
        measurement=BloodPressure(
            systolic=float(record.systolic_mmhg), diastolic=float(record.diastolic_mmhg), pulse=float(record.pulse_bpm)
        ),
        measured_at=measured_at,
        time_source=time_source,
        received=received,
        device_time=record.time,
        flags=frozenset(flags),
        source_key=(f"omron:u{record.user}:{record.time.isoformat()}:"
                    f"{record.systolic_mmhg}/{record.diastolic_mmhg}/{record.pulse_bpm}"),
    )  # fmt: skip


def encode_record(model: OmronModel, record: OmronRecord) -> bytes:
    """The slot bytes a cuff of ``model`` stores for ``record`` (the fake cuff's writer, and tests')."""
    width = model.record_size * 8
    fields = {"systolic": record.systolic_mmhg, "diastolic": record.diastolic_mmhg, "pulse": record.pulse_bpm,
              "year": record.time.year, "month": record.time.month, "day": record.time.day,
              "hour": record.time.hour, "minute": record.time.minute, "second": record.time.second,
              "movement": int(record.body_movement), "irregular": int(record.irregular_heartbeat)}  # fmt: skip
    value = 0
    for name, bits in model.fields.items():
        raw = fields[name] - bits.add
        size = bits.last - bits.first + 1
        if not 0 <= raw < 1 << size:
            raise ValueError(f"{name}={fields[name]} does not fit {model.name}'s {size} bits")
        value |= raw << (width - bits.last - 1)
    return value.to_bytes(model.record_size, model.byteorder)
