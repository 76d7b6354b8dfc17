"""Pure bookkeeping of one RACP download: pairing measurements with contexts, what may be committed.

A meter sends each stored record as a Glucose Measurement, followed (when its flag says so) by
a Glucose Measurement Context with the same sequence number. A record is complete when its
context arrived or none was announced. Only the run of complete records from the start may be
committed, so the cursor (the highest committed sequence number) never skips a record: if the
meter hangs up mid-transfer, the next download asks from the first record not committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.ble.gls import GlucoseContext, GlucoseMeasurement
from drivers.model import HubTime

CURSOR_PREFIX = "ble-gls:"


def cursor_name(device_id: str) -> str:
    """The outbox cursor holding the last committed sequence number of one meter."""
    return f"{CURSOR_PREFIX}{device_id}:last-sequence"


def parse_cursor(value: str | None) -> int | None:
    """The sequence number in a cursor value; None when unset or not a 16-bit number."""
    if value is None or not value.isdigit():
        return None
    number = int(value)
    return number if number <= 0xFFFF else None


@dataclass(frozen=True, slots=True)
class GlucoseRecord:
    measurement: GlucoseMeasurement
    context: GlucoseContext | None
    received: HubTime


class GlucoseTransfer:
    """Collects one download's records in arrival order."""

    def __init__(self, after_sequence: int | None) -> None:
        self._after = after_sequence
        self._records: list[GlucoseRecord] = []
        self._contexts: dict[int, GlucoseContext] = {}
        self.ignored = 0
        """Records at or below the cursor: meters that ignore the RACP filter resend them."""

    def add_measurement(self, measurement: GlucoseMeasurement, received: HubTime) -> None:
        if self._after is not None and measurement.sequence_number <= self._after:
            self.ignored += 1
            return
        context = self._contexts.pop(measurement.sequence_number, None)
        self._records.append(GlucoseRecord(measurement, context, received))

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
