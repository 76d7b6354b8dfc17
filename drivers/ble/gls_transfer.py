"""Pure bookkeeping of one RACP download: pairing measurements with contexts, what may be committed.

A meter sends each stored record as a Glucose Measurement, followed (when its flag says so) by
a Glucose Measurement Context with the same sequence number. A record is complete when its
context arrived or none was announced. Only the run of complete records from the start may be
committed, so the cursor (the newest committed record) never skips a record: if the meter hangs
up mid-transfer, the next download asks from the first record not committed.

"Newest" follows the meter's numbering, which the first download learns from the order the records
come in (oldest first): up, as the Glucose Profile has it, or down, as TaiDoc meters count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from drivers.ble.gls import GlucoseContext, GlucoseMeasurement, base_time_key
from drivers.model import HubTime

CURSOR_PREFIX = "ble-gls:"


def cursor_name(device_id: str) -> str:
    """The outbox cursor holding where one meter's download stands."""
    return f"{CURSOR_PREFIX}{device_id}:last-sequence"


class Direction(StrEnum):
    """Which way a meter numbers its records."""

    UP = "up"
    """Each new record gets the next higher number (the Glucose Profile's way)."""
    DOWN = "down"
    """Each new record gets the next lower number (TaiDoc meters, public trackers)."""


@dataclass(frozen=True, slots=True)
class RecordMark:
    """A record as the cursor remembers it: its sequence number and its base time (``gls.base_time_key``)."""

    sequence: int
    base_time: str

    @classmethod
    def of(cls, measurement: GlucoseMeasurement) -> RecordMark:
        return cls(measurement.sequence_number, base_time_key(measurement.base_time))

    @property
    def time_known(self) -> bool:
        return bool(self.base_time) and not self.base_time.startswith("0000")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a meter's download stands: the newest record committed, which way the meter counts, and
    the oldest record it held (to see its memory wiped and its numbering started again)."""

    newest: RecordMark
    direction: Direction | None = None
    """None until two records showed it; a cursor from before this was known is UP."""
    oldest: RecordMark | None = None

    def encode(self) -> str:
        return json.dumps({"newest": [self.newest.sequence, self.newest.base_time],
                           "direction": self.direction.value if self.direction else None,
                           "oldest": [self.oldest.sequence, self.oldest.base_time] if self.oldest else None})

    def is_newer(self, sequence: int) -> bool:
        """Whether a record numbered ``sequence`` came after the newest committed one."""
        if self.direction is Direction.DOWN:
            return sequence < self.newest.sequence
        return sequence > self.newest.sequence


def _mark(value: object) -> RecordMark | None:
    if (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and 0 <= value[0] <= 0xFFFF
            and isinstance(value[1], str)):
        return RecordMark(value[0], value[1])
    return None


def parse_cursor(value: str | None) -> Cursor | None:
    """The cursor in an outbox value; None when unset or unreadable (the download then asks for all).

    A bare number is a cursor written before the direction was learnt: an upward-counting meter's.
    """
    if value is None:
        return None
    if value.isdigit():
        number = int(value)
        return Cursor(RecordMark(number, ""), Direction.UP) if number <= 0xFFFF else None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or (newest := _mark(data.get("newest"))) is None:
        return None
    direction = data.get("direction")
    return Cursor(newest, Direction(direction) if direction in ("up", "down") else None, _mark(data.get("oldest")))


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    measurement: GlucoseMeasurement
    context: GlucoseContext | None
    received: HubTime


class GlucoseTransfer:
    """Collects one download's records in arrival order, and learns which way the meter counts."""

    def __init__(self, after: Cursor | None) -> None:
        self._after = after if after is not None and after.direction is not None else None
        """Only records newer than this are kept; with no direction known, all are (the outbox
        drops those it holds by their source keys)."""
        self.direction: Direction | None = after.direction if after is not None else None
        self._first_sequence: int | None = None
        self._records: list[GlucoseRecord] = []
        self._contexts: dict[int, GlucoseContext] = {}
        self.ignored = 0
        """Records at or before the cursor: meters that ignore the RACP filter resend them."""
        self.learned = False
        """True when this download showed the direction, which was not known before."""

    def add_measurement(self, measurement: GlucoseMeasurement, received: HubTime) -> None:
        self._learn(measurement.sequence_number)
        if self._after is not None and not self._after.is_newer(measurement.sequence_number):
            self.ignored += 1
            return
        context = self._contexts.pop(measurement.sequence_number, None)
        self._records.append(GlucoseRecord(measurement, context, received))

    def _learn(self, sequence: int) -> None:
        # Meters report stored records in storage order, oldest first: the second number says the way.
        if self.direction is not None:
            return
        if self._first_sequence is None:
            self._first_sequence = sequence
        elif sequence != self._first_sequence:
            self.direction = Direction.UP if sequence > self._first_sequence else Direction.DOWN
            self.learned = True

    def newest(self, records: Sequence[GlucoseRecord]) -> GlucoseRecord:
        """The newest of ``records`` by the meter's numbering (the highest, or the lowest counting down)."""
        pick = min if self.direction is Direction.DOWN else max
        return pick(records, key=lambda record: record.measurement.sequence_number)

    def add_context(self, context: GlucoseContext) -> None:
        for index, record in enumerate(self._records):
            if record.measurement.sequence_number == context.sequence_number and record.context is None:
                self._records[index] = GlucoseRecord(record.measurement, context, record.received)
                return
        # Some meters send the context first; keep it for its measurement.
        self._contexts[context.sequence_number] = context

    def complete_count(self) -> int:
        """How many records from the start are complete."""
        for index, record in enumerate(self._records):
            if record.measurement.context_follows and record.context is None:
                return index
        return len(self._records)

    def take_complete(self) -> list[GlucoseRecord]:
        """Remove and return the complete records from the start (ready to commit)."""
        count = self.complete_count()
        taken, self._records = self._records[:count], self._records[count:]
        return taken

    def take_all(self) -> list[GlucoseRecord]:
        """Everything, once the meter said the transfer is over: a context it announced but never
        sent will not come, so its measurement goes without one."""
        taken, self._records = self._records, []
        return taken
